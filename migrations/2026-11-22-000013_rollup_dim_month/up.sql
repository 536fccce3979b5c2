-- Monthly sums of the CREATOR and PRODUCT cells per tenant and shop currency (Asia/
-- Shanghai months). A key's sum over the months covering a window bounds its value in
-- the window from above (every measure is additive and never negative), which lets a
-- top-N breakdown evaluate only the keys that can be in the top (db::analytics::top_keys)
-- instead of summing thousands of keys. Money stays in the shop currency; the query
-- converts it at the window's highest rate.
CREATE TABLE rollup_dim_month (
    dim TEXT NOT NULL,
    tenant_id BIGINT NOT NULL,
    month DATE NOT NULL,
    currency TEXT NOT NULL,
    key TEXT NOT NULL,
    orders BIGINT NOT NULL,
    paid_orders BIGINT NOT NULL,
    gmv_minor BIGINT NOT NULL,
    units BIGINT NOT NULL,
    refund_orders BIGINT NOT NULL,
    refund_minor BIGINT NOT NULL,
    dispute_orders BIGINT NOT NULL,
    commission_minor BIGINT NOT NULL,
    PRIMARY KEY (dim, tenant_id, month, currency, key)
);

-- Evaluating a few keys reads their cells by key, from the index alone: a key's cells
-- are spread over the whole table. Only the dimensions with month cells: on the small
-- ones the planner took whole scans of such an index for range scans.
CREATE INDEX rollup_dim_day_by_key ON rollup_dim_day (dim, key, day, shop_id)
    INCLUDE (orders, paid_orders, gmv_minor, units, refund_orders, refund_minor,
             dispute_orders, delivered_orders, delivery_seconds, commission_minor)
    WHERE dim IN ('CREATOR', 'PRODUCT');
CREATE INDEX rollup_dim_week_by_key ON rollup_dim_week (dim, key, week, shop_id)
    INCLUDE (orders, paid_orders, gmv_minor, units, refund_orders, refund_minor,
             dispute_orders, delivered_orders, delivery_seconds, commission_minor)
    WHERE dim IN ('CREATOR', 'PRODUCT');

-- The month cells summed from the day cells (a full rebuild).
CREATE FUNCTION rollup_rebuild_dim_months() RETURNS void
LANGUAGE sql AS $$
    TRUNCATE rollup_dim_month;
    INSERT INTO rollup_dim_month
    SELECT d.dim, s.tenant_id, date_trunc('month', d.day::timestamp)::date, s.currency, d.key,
           sum(d.orders), sum(d.paid_orders), sum(d.gmv_minor), sum(d.units), sum(d.refund_orders),
           sum(d.refund_minor), sum(d.dispute_orders), sum(d.commission_minor)
      FROM rollup_dim_day d JOIN shops s ON s.id = d.shop_id
     WHERE d.dim IN ('CREATOR', 'PRODUCT')
     GROUP BY 1, 2, 3, 4, 5
     ORDER BY 1, 2, 3, 4, 5;
$$;

-- Day cells as before, and the change of the CREATOR and PRODUCT cells added to the
-- month cells. A month spans many shops, so its cells are not recomputed: each write
-- adds the difference between the day cells it replaced and the ones it made, in one
-- statement in key order (concurrent writers of one tenant lock month rows in the same
-- order, and additions commute); a month cell left without orders is removed, as a
-- rebuild would not make it. The tests compare maintained cells with a rebuild.
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
    IF to_regclass('pg_temp.rollup_month_change') IS NULL THEN
        CREATE TEMP TABLE rollup_month_change (LIKE rollup_dim_day) ON COMMIT DELETE ROWS;
    END IF;
    TRUNCATE rollup_month_change;
    WITH gone AS (
        DELETE FROM rollup_dim_day d
         USING unnest(v_shops, v_days) AS c(shop_id, day)
         WHERE d.dim = ANY(ARRAY['PROVINCE', 'CHANNEL', 'CREATOR', 'PAYMENT_METHOD', 'STATUS', 'PRODUCT', 'ITEMS'])
           AND d.shop_id = c.shop_id AND d.day = c.day
        RETURNING d.*
    )
    INSERT INTO rollup_month_change
    SELECT dim, shop_id, day, key, -orders, -paid_orders, -gmv_minor, -units, -refund_orders,
           -refund_minor, -dispute_orders, -delivered_orders, -delivery_seconds, -commission_minor
      FROM gone WHERE dim IN ('CREATOR', 'PRODUCT');
    WITH made AS (
        INSERT INTO rollup_dim_day SELECT * FROM rollup_dim_cells(v_shops, v_days) RETURNING *
    )
    INSERT INTO rollup_month_change SELECT * FROM made WHERE dim = 'CREATOR';
    WITH made AS (
        INSERT INTO rollup_dim_day SELECT * FROM rollup_item_cells(v_shops, v_days) RETURNING *
    )
    INSERT INTO rollup_month_change SELECT * FROM made WHERE dim = 'PRODUCT';
    INSERT INTO rollup_dim_month AS m
    SELECT c.dim, s.tenant_id, date_trunc('month', c.day::timestamp)::date, s.currency, c.key,
           sum(c.orders), sum(c.paid_orders), sum(c.gmv_minor), sum(c.units), sum(c.refund_orders),
           sum(c.refund_minor), sum(c.dispute_orders), sum(c.commission_minor)
      FROM rollup_month_change c JOIN shops s ON s.id = c.shop_id
     GROUP BY 1, 2, 3, 4, 5
     ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (dim, tenant_id, month, currency, key) DO UPDATE
       SET orders = m.orders + excluded.orders,
           paid_orders = m.paid_orders + excluded.paid_orders,
           gmv_minor = m.gmv_minor + excluded.gmv_minor,
           units = m.units + excluded.units,
           refund_orders = m.refund_orders + excluded.refund_orders,
           refund_minor = m.refund_minor + excluded.refund_minor,
           dispute_orders = m.dispute_orders + excluded.dispute_orders,
           commission_minor = m.commission_minor + excluded.commission_minor;
    DELETE FROM rollup_dim_month m
     USING (SELECT DISTINCT c.dim, s.tenant_id, date_trunc('month', c.day::timestamp)::date AS month,
                   s.currency, c.key
              FROM rollup_month_change c JOIN shops s ON s.id = c.shop_id) t
     WHERE m.orders = 0 AND m.dim = t.dim AND m.tenant_id = t.tenant_id AND m.month = t.month
       AND m.currency = t.currency AND m.key = t.key;
    SELECT array_agg(shop_id), array_agg(week) INTO v_week_shops, v_weeks
      FROM (SELECT DISTINCT c.shop_id, date_trunc('week', c.day::timestamp)::date AS week
              FROM unnest(v_shops, v_days) AS c(shop_id, day)) k;
    DELETE FROM rollup_dim_week w
     USING unnest(v_week_shops, v_weeks) AS c(shop_id, week)
     WHERE w.dim = ANY(ARRAY['PROVINCE', 'CHANNEL', 'CREATOR', 'PAYMENT_METHOD', 'STATUS', 'PRODUCT', 'ITEMS'])
       AND w.shop_id = c.shop_id AND w.week = c.week;
    INSERT INTO rollup_dim_week SELECT * FROM rollup_dim_week_cells(v_week_shops, v_weeks);
END;
$$;

CREATE OR REPLACE FUNCTION rollup_rebuild_dims() RETURNS void
LANGUAGE sql AS $$
    TRUNCATE rollup_dim_day;
    INSERT INTO rollup_dim_day SELECT * FROM rollup_dim_cells(NULL, NULL);
    INSERT INTO rollup_dim_day SELECT * FROM rollup_item_cells(NULL, NULL);
    SELECT rollup_rebuild_dim_weeks();
    SELECT rollup_rebuild_dim_months();
$$;

SELECT rollup_rebuild_dim_months();
ANALYZE rollup_dim_month;
