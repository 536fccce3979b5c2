-- Weekly cells of rollup_dim_day (weeks from Monday on the Asia/Shanghai calendar):
-- the same measures summed over the week's seven day cells. A breakdown over a long
-- range reads whole weeks here and only the days at its ends from rollup_dim_day
-- (a 90-day range: 12 weeks and 6 days instead of 90 days). Shops whose currency
-- differs from the report's still read day cells, because money converts per day.
CREATE TABLE rollup_dim_week (
    dim              TEXT NOT NULL,
    shop_id          BIGINT NOT NULL REFERENCES shops (id),
    week             DATE NOT NULL,
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
    PRIMARY KEY (dim, shop_id, week, key)
);

-- The week cells of the given (shop, week) pairs, summed from the day cells.
CREATE FUNCTION rollup_dim_week_cells(p_shop_ids BIGINT[], p_weeks DATE[])
RETURNS SETOF rollup_dim_week
LANGUAGE sql STABLE AS $$
    SELECT d.dim, d.shop_id, c.week, d.key,
           sum(d.orders), sum(d.paid_orders), sum(d.gmv_minor), sum(d.units),
           sum(d.refund_orders), sum(d.refund_minor), sum(d.dispute_orders),
           sum(d.delivered_orders), sum(d.delivery_seconds), sum(d.commission_minor)
      FROM (SELECT DISTINCT * FROM unnest(p_shop_ids, p_weeks) AS c(shop_id, week)) c
      JOIN rollup_dim_day d ON d.shop_id = c.shop_id AND d.day >= c.week AND d.day < c.week + 7
     GROUP BY d.dim, d.shop_id, c.week, d.key;
$$;

-- Day cells as before, then the weeks containing them. db::rollups::refresh locks
-- shop-weeks, so two writers of one week never both replace its cells.
CREATE OR REPLACE FUNCTION rollup_refresh_dims(p_shop_ids BIGINT[], p_hours TIMESTAMPTZ[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_shops BIGINT[];
    v_days DATE[];
    v_week_shops BIGINT[];
    v_weeks DATE[];
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
    SELECT array_agg(shop_id), array_agg(week) INTO v_week_shops, v_weeks
      FROM (SELECT DISTINCT c.shop_id, date_trunc('week', c.day::timestamp)::date AS week
              FROM unnest(v_shops, v_days) AS c(shop_id, day)) k;
    DELETE FROM rollup_dim_week w
     USING unnest(v_week_shops, v_weeks) AS c(shop_id, week)
     WHERE w.shop_id = c.shop_id AND w.week = c.week;
    INSERT INTO rollup_dim_week SELECT * FROM rollup_dim_week_cells(v_week_shops, v_weeks);
END;
$$;

CREATE FUNCTION rollup_rebuild_dim_weeks() RETURNS void
LANGUAGE sql AS $$
    TRUNCATE rollup_dim_week;
    INSERT INTO rollup_dim_week
    SELECT dim, shop_id, date_trunc('week', day::timestamp)::date, key,
           sum(orders), sum(paid_orders), sum(gmv_minor), sum(units),
           sum(refund_orders), sum(refund_minor), sum(dispute_orders),
           sum(delivered_orders), sum(delivery_seconds), sum(commission_minor)
      FROM rollup_dim_day
     GROUP BY 1, 2, 3, 4
     ORDER BY 1, 2, 3, 4;
$$;

CREATE OR REPLACE FUNCTION rollup_rebuild_dims() RETURNS void
LANGUAGE sql AS $$
    TRUNCATE rollup_dim_day;
    INSERT INTO rollup_dim_day SELECT * FROM rollup_dim_cells(NULL, NULL);
    SELECT rollup_rebuild_dim_weeks();
$$;

SELECT rollup_rebuild_dim_weeks();
ANALYZE rollup_dim_week;
