-- Daily rollup per shop and order-level dimension value, on the Asia/Shanghai calendar
-- (the default report zone): the measures of rollup_shop_day split by PROVINCE,
-- CHANNEL, CREATOR, PAYMENT_METHOD and STATUS (REGION is summed from PROVINCE through
-- `provinces`). Each order has exactly one value per dimension, so summing cells gives
-- the breakdown rows, the folded "other" row and the total exactly. Keys are those of
-- the raw path (`''` for a missing province, creator or payment method).
-- A shop-day's cells are recomputed from the raw rows by the writer that touched it,
-- under the shop-day lock (db::rollups), in the write's own transaction.
CREATE TABLE rollup_dim_day (
    dim              TEXT NOT NULL,
    shop_id          BIGINT NOT NULL REFERENCES shops (id),
    day              DATE NOT NULL,
    key              TEXT NOT NULL,
    orders           BIGINT NOT NULL,
    paid_orders      BIGINT NOT NULL,
    gmv_minor        BIGINT NOT NULL,
    units            BIGINT NOT NULL,
    refund_orders    BIGINT NOT NULL,
    refund_minor     BIGINT NOT NULL,
    dispute_orders   BIGINT NOT NULL,
    delivered_orders BIGINT NOT NULL,
    delivery_seconds NUMERIC NOT NULL,
    commission_minor BIGINT NOT NULL,
    PRIMARY KEY (dim, shop_id, day, key)
);

-- The cells of the given (shop, local day) pairs, or of every order when both arrays
-- are NULL, from the raw rows.
CREATE FUNCTION rollup_dim_cells(p_shop_ids BIGINT[], p_days DATE[])
RETURNS SETOF rollup_dim_day
LANGUAGE sql STABLE AS $$
    WITH per_order AS (
        SELECT o.shop_id, (o.placed_at AT TIME ZONE 'Asia/Shanghai')::date AS day,
               coalesce(o.province_code, '') AS k_province, o.channel AS k_channel,
               coalesce(o.creator_id::text, '') AS k_creator,
               coalesce(o.payment_method, '') AS k_payment, o.status AS k_status,
               o.paid_at IS NOT NULL AS paid, o.paid_amount, o.commission_amount, o.creator_id,
               o.shipped_at, o.delivered_at,
               coalesce(it.units, 0) AS units,
               coalesce(a.refunded, false) AS refunded, coalesce(a.refund_minor, 0) AS refund_minor,
               coalesce(a.disputed, false) AS disputed
          FROM orders o
          LEFT JOIN (SELECT order_id, sum(quantity) AS units FROM order_items GROUP BY order_id) it
            ON it.order_id = o.id
          LEFT JOIN (SELECT order_id,
                            bool_or(status = 'REFUNDED') AS refunded,
                            sum(refund_amount) FILTER (WHERE status = 'REFUNDED') AS refund_minor,
                            bool_or(dispute <> 'NONE') AS disputed
                       FROM after_sales GROUP BY order_id) a ON a.order_id = o.id
         WHERE p_shop_ids IS NULL
    ),
    picked AS (
        SELECT o.shop_id, c.day,
               coalesce(o.province_code, '') AS k_province, o.channel AS k_channel,
               coalesce(o.creator_id::text, '') AS k_creator,
               coalesce(o.payment_method, '') AS k_payment, o.status AS k_status,
               o.paid_at IS NOT NULL AS paid, o.paid_amount, o.commission_amount, o.creator_id,
               o.shipped_at, o.delivered_at,
               coalesce(it.units, 0) AS units,
               coalesce(a.refunded, false) AS refunded, coalesce(a.refund_minor, 0) AS refund_minor,
               coalesce(a.disputed, false) AS disputed
          FROM (SELECT DISTINCT * FROM unnest(p_shop_ids, p_days) AS c(shop_id, day)) c
          JOIN orders o
            ON o.shop_id = c.shop_id
           AND o.placed_at >= (c.day::timestamp AT TIME ZONE 'Asia/Shanghai')
           AND o.placed_at < ((c.day + 1)::timestamp AT TIME ZONE 'Asia/Shanghai')
          LEFT JOIN LATERAL (SELECT sum(i.quantity) AS units FROM order_items i WHERE i.order_id = o.id) it ON true
          LEFT JOIN LATERAL (
                SELECT bool_or(x.status = 'REFUNDED') AS refunded,
                       sum(x.refund_amount) FILTER (WHERE x.status = 'REFUNDED') AS refund_minor,
                       bool_or(x.dispute <> 'NONE') AS disputed
                  FROM after_sales x WHERE x.order_id = o.id) a ON true
         WHERE p_shop_ids IS NOT NULL
    ),
    orders_in AS (SELECT * FROM per_order UNION ALL SELECT * FROM picked)
    SELECT CASE WHEN GROUPING(k_province) = 0 THEN 'PROVINCE'
                WHEN GROUPING(k_channel) = 0 THEN 'CHANNEL'
                WHEN GROUPING(k_creator) = 0 THEN 'CREATOR'
                WHEN GROUPING(k_payment) = 0 THEN 'PAYMENT_METHOD'
                ELSE 'STATUS' END,
           shop_id, day,
           coalesce(k_province, k_channel, k_creator, k_payment, k_status),
           count(*),
           count(*) FILTER (WHERE paid),
           coalesce(sum(paid_amount) FILTER (WHERE paid), 0),
           coalesce(sum(units) FILTER (WHERE paid), 0),
           count(*) FILTER (WHERE paid AND refunded),
           coalesce(sum(refund_minor), 0),
           count(*) FILTER (WHERE disputed),
           count(*) FILTER (WHERE delivered_at IS NOT NULL AND shipped_at IS NOT NULL),
           coalesce(sum(extract(epoch FROM delivered_at - shipped_at))
                    FILTER (WHERE delivered_at IS NOT NULL AND shipped_at IS NOT NULL), 0),
           coalesce(sum(commission_amount) FILTER (WHERE paid AND creator_id IS NOT NULL), 0)
      FROM orders_in
     GROUP BY GROUPING SETS ((shop_id, day, k_province), (shop_id, day, k_channel),
                             (shop_id, day, k_creator), (shop_id, day, k_payment),
                             (shop_id, day, k_status));
$$;

-- Recomputes the cells of the shop-days containing the given (shop, instant) pairs;
-- called by db::rollups::refresh under the shop-day locks.
CREATE FUNCTION rollup_refresh_dims(p_shop_ids BIGINT[], p_hours TIMESTAMPTZ[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_shops BIGINT[];
    v_days DATE[];
BEGIN
    SELECT array_agg(shop_id), array_agg(day) INTO v_shops, v_days
      FROM (SELECT DISTINCT c.shop_id, (c.hour AT TIME ZONE 'Asia/Shanghai')::date AS day
              FROM unnest(p_shop_ids, p_hours) AS c(shop_id, hour)) k;
    IF v_shops IS NULL THEN
        RETURN;
    END IF;
    DELETE FROM rollup_dim_day d
     USING unnest(v_shops, v_days) AS c(shop_id, day)
     WHERE d.dim IN ('PROVINCE', 'CHANNEL', 'CREATOR', 'PAYMENT_METHOD', 'STATUS')
       AND d.shop_id = c.shop_id AND d.day = c.day;
    INSERT INTO rollup_dim_day SELECT * FROM rollup_dim_cells(v_shops, v_days);
END;
$$;

CREATE FUNCTION rollup_rebuild_dims() RETURNS void
LANGUAGE sql AS $$
    TRUNCATE rollup_dim_day;
    INSERT INTO rollup_dim_day SELECT * FROM rollup_dim_cells(NULL, NULL);
$$;

SELECT rollup_rebuild_dims();
ANALYZE rollup_dim_day;
