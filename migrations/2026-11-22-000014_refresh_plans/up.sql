-- The write path's cell functions read the orders (or day cells) of the touched
-- shop-hours and shop-days through one index range each. As plain joins with the
-- (shop, period) list, their SQL-function plans scanned all of orders on dataset L
-- (a 1,000-order ingest spent 15 s in them). Each read is a lateral subquery fenced
-- with OFFSET 0, which the planner cannot pull up into a join. rollup_dims() names the dimensions of
-- rollup_dim_day, so that reads of one shop's days use its (dim, shop_id, day) key.
CREATE FUNCTION rollup_dims() RETURNS SETOF TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT unnest(ARRAY['PROVINCE', 'CHANNEL', 'CREATOR', 'PAYMENT_METHOD', 'STATUS', 'PRODUCT', 'ITEMS']);
$$;

CREATE OR REPLACE FUNCTION rollup_refresh(p_shop_ids BIGINT[], p_hours TIMESTAMPTZ[]) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM rollup_shop_hour r
     USING unnest(p_shop_ids, p_hours) AS c(shop_id, hour)
     WHERE r.shop_id = c.shop_id AND r.hour = c.hour;
    INSERT INTO rollup_shop_hour
    SELECT o.shop_id, date_trunc('hour', o.placed_at) AS hour,
           count(*),
           count(*) FILTER (WHERE o.paid_at IS NOT NULL),
           coalesce(sum(o.paid_amount) FILTER (WHERE o.paid_at IS NOT NULL), 0),
           coalesce(sum(it.units) FILTER (WHERE o.paid_at IS NOT NULL), 0),
           count(*) FILTER (WHERE o.paid_at IS NOT NULL AND a.refunded),
           coalesce(sum(a.refund_minor), 0),
           count(*) FILTER (WHERE a.disputed),
           count(*) FILTER (WHERE o.delivered_at IS NOT NULL AND o.shipped_at IS NOT NULL),
           coalesce(sum(extract(epoch FROM o.delivered_at - o.shipped_at))
                    FILTER (WHERE o.delivered_at IS NOT NULL AND o.shipped_at IS NOT NULL), 0),
           coalesce(sum(o.commission_amount) FILTER (WHERE o.paid_at IS NOT NULL AND o.creator_id IS NOT NULL), 0)
      FROM (SELECT DISTINCT * FROM unnest(p_shop_ids, p_hours) AS c(shop_id, hour)) c
      CROSS JOIN LATERAL (
            SELECT * FROM orders o
             WHERE o.shop_id = c.shop_id AND o.placed_at >= c.hour
               AND o.placed_at < c.hour + interval '1 hour'
            OFFSET 0) o
      LEFT JOIN LATERAL (SELECT coalesce(sum(i.quantity), 0) AS units FROM order_items i WHERE i.order_id = o.id) it ON true
      LEFT JOIN LATERAL (
            SELECT bool_or(x.status = 'REFUNDED') AS refunded,
                   sum(x.refund_amount) FILTER (WHERE x.status = 'REFUNDED') AS refund_minor,
                   bool_or(x.dispute <> 'NONE') AS disputed
              FROM after_sales x WHERE x.order_id = o.id) a ON true
     GROUP BY o.shop_id, date_trunc('hour', o.placed_at);
$$;

CREATE OR REPLACE FUNCTION rollup_dim_cells(p_shop_ids BIGINT[], p_days DATE[])
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
          CROSS JOIN LATERAL (
                SELECT * FROM orders o
                 WHERE o.shop_id = c.shop_id
                   AND o.placed_at >= (c.day::timestamp AT TIME ZONE 'Asia/Shanghai')
                   AND o.placed_at < ((c.day + 1)::timestamp AT TIME ZONE 'Asia/Shanghai')
                OFFSET 0) o
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

CREATE OR REPLACE FUNCTION rollup_dim_week_cells(p_shop_ids BIGINT[], p_weeks DATE[])
RETURNS SETOF rollup_dim_week
LANGUAGE sql STABLE AS $$
    SELECT d.dim, d.shop_id, c.week, d.key,
           sum(d.orders), sum(d.paid_orders), sum(d.gmv_minor), sum(d.units),
           sum(d.refund_orders), sum(d.refund_minor), sum(d.dispute_orders),
           sum(d.delivered_orders), sum(d.delivery_seconds), sum(d.commission_minor)
      FROM (SELECT DISTINCT * FROM unnest(p_shop_ids, p_weeks) AS c(shop_id, week)) c
      CROSS JOIN rollup_dims() AS k(dim)
      CROSS JOIN LATERAL (
            SELECT * FROM rollup_dim_day d
             WHERE d.dim = k.dim AND d.shop_id = c.shop_id
               AND d.day >= c.week AND d.day < c.week + 7
            OFFSET 0) d
     GROUP BY d.dim, d.shop_id, c.week, d.key;
$$;
