-- The rollups as migrations 4, 5 and 9 to 14 built them.
-- Hourly rollup per shop (DESIGN section 3): the additive measures of every metric
-- except BUYERS for the orders placed in one UTC hour of one shop. A cell is always
-- recomputed from the raw rows (never patched with deltas), under a transaction-scoped
-- advisory lock on the cell, in the same transaction as the write that changed it, so
-- a rollup answer equals the raw recomputation exactly.
CREATE TABLE rollup_shop_hour (
    shop_id          BIGINT NOT NULL REFERENCES shops (id),
    hour             TIMESTAMPTZ NOT NULL,
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
    PRIMARY KEY (shop_id, hour)
);

-- The placed_at an order had before its last update, returned by the ingest upsert so
-- that the cell it left is refreshed too (read under the row lock, so concurrent
-- writers never miss a move).
ALTER TABLE orders ADD COLUMN previous_placed_at TIMESTAMPTZ;

-- Recomputes the given (shop, hour) cells from the raw tables. Callers lock the cells
-- first with rollup_lock_key.
CREATE FUNCTION rollup_refresh(p_shop_ids BIGINT[], p_hours TIMESTAMPTZ[]) RETURNS void
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
      FROM orders o
      JOIN (SELECT DISTINCT * FROM unnest(p_shop_ids, p_hours) AS c(shop_id, hour)) c
        ON o.shop_id = c.shop_id AND o.placed_at >= c.hour AND o.placed_at < c.hour + interval '1 hour'
      LEFT JOIN LATERAL (SELECT coalesce(sum(i.quantity), 0) AS units FROM order_items i WHERE i.order_id = o.id) it ON true
      LEFT JOIN LATERAL (
            SELECT bool_or(x.status = 'REFUNDED') AS refunded,
                   sum(x.refund_amount) FILTER (WHERE x.status = 'REFUNDED') AS refund_minor,
                   bool_or(x.dispute <> 'NONE') AS disputed
              FROM after_sales x WHERE x.order_id = o.id) a ON true
     GROUP BY o.shop_id, date_trunc('hour', o.placed_at);
$$;

-- Rebuilds the whole rollup (after a bulk load).
CREATE FUNCTION rollup_rebuild() RETURNS void
LANGUAGE sql AS $$
    TRUNCATE rollup_shop_hour;
    INSERT INTO rollup_shop_hour
    SELECT o.shop_id, date_trunc('hour', o.placed_at),
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
      FROM orders o
      LEFT JOIN (SELECT order_id, sum(quantity) AS units FROM order_items GROUP BY order_id) it ON it.order_id = o.id
      LEFT JOIN (SELECT order_id,
                        bool_or(status = 'REFUNDED') AS refunded,
                        sum(refund_amount) FILTER (WHERE status = 'REFUNDED') AS refund_minor,
                        bool_or(dispute <> 'NONE') AS disputed
                   FROM after_sales GROUP BY order_id) a ON a.order_id = o.id
     GROUP BY o.shop_id, date_trunc('hour', o.placed_at);
$$;

SELECT rollup_rebuild();

-- Daily rollup per shop on the Asia/Shanghai calendar (the default report zone): the
-- same measures as rollup_shop_hour, summed from its 24 hourly cells of the day. It
-- answers totals and DAY/WEEK/MONTH trends whose boundaries are +08:00 midnights with
-- 24 times fewer rows; every other window reads the hourly table.
CREATE TABLE rollup_shop_day (
    shop_id          BIGINT NOT NULL REFERENCES shops (id),
    day              DATE NOT NULL,
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
    PRIMARY KEY (shop_id, day)
);

-- Recomputes the day cells containing the given (shop, instant) pairs from the hourly
-- cells; called right after rollup_refresh under the same cell locks.
CREATE FUNCTION rollup_refresh_days(p_shop_ids BIGINT[], p_hours TIMESTAMPTZ[]) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM rollup_shop_day d
     USING unnest(p_shop_ids, p_hours) AS c(shop_id, hour)
     WHERE d.shop_id = c.shop_id AND d.day = (c.hour AT TIME ZONE 'Asia/Shanghai')::date;
    WITH keys AS (
        SELECT DISTINCT c.shop_id, (c.hour AT TIME ZONE 'Asia/Shanghai')::date AS day
          FROM unnest(p_shop_ids, p_hours) AS c(shop_id, hour)
    )
    INSERT INTO rollup_shop_day
    SELECT r.shop_id, k.day, sum(r.orders), sum(r.paid_orders), sum(r.gmv_minor), sum(r.units),
           sum(r.refund_orders), sum(r.refund_minor), sum(r.dispute_orders), sum(r.delivered_orders),
           sum(r.delivery_seconds), sum(r.commission_minor)
      FROM keys k
      JOIN rollup_shop_hour r
        ON r.shop_id = k.shop_id
       AND r.hour >= (k.day::timestamp AT TIME ZONE 'Asia/Shanghai')
       AND r.hour < ((k.day + 1)::timestamp AT TIME ZONE 'Asia/Shanghai')
     GROUP BY r.shop_id, k.day;
$$;

CREATE FUNCTION rollup_rebuild_days() RETURNS void
LANGUAGE sql AS $$
    TRUNCATE rollup_shop_day;
    INSERT INTO rollup_shop_day
    SELECT shop_id, (hour AT TIME ZONE 'Asia/Shanghai')::date, sum(orders), sum(paid_orders), sum(gmv_minor),
           sum(units), sum(refund_orders), sum(refund_minor), sum(dispute_orders), sum(delivered_orders),
           sum(delivery_seconds), sum(commission_minor)
      FROM rollup_shop_hour
     GROUP BY 1, 2;
$$;

SELECT rollup_rebuild_days();
ANALYZE rollup_shop_hour;
ANALYZE rollup_shop_day;

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

-- PRODUCT cells in rollup_dim_day / rollup_dim_week, with the raw path's item-line
-- attribution: per (shop, day, product) the orders containing the product (each once),
-- the GMV and units of its lines, and the order-level amounts (refund, delivery time,
-- commission) of the orders whose first line is the product. ITEMS cells hold the same
-- measures per shop-day over all lines (each order once): the total of a PRODUCT
-- breakdown. Orders with several products count in each product's row, so a folded
-- "other" row's order counts are not sums of cells (see db::analytics).
CREATE FUNCTION rollup_item_cells(p_shop_ids BIGINT[], p_days DATE[])
RETURNS SETOF rollup_dim_day
LANGUAGE sql STABLE AS $$
    WITH picked AS (
        SELECT o.id, o.shop_id, (o.placed_at AT TIME ZONE 'Asia/Shanghai')::date AS day,
               o.paid_at IS NOT NULL AS paid, o.commission_amount, o.creator_id,
               o.shipped_at, o.delivered_at
          FROM orders o
         WHERE p_shop_ids IS NULL
        UNION ALL
        SELECT o.id, o.shop_id, c.day, o.paid_at IS NOT NULL, o.commission_amount, o.creator_id,
               o.shipped_at, o.delivered_at
          FROM (SELECT DISTINCT * FROM unnest(p_shop_ids, p_days) AS c(shop_id, day)) c
          JOIN orders o
            ON o.shop_id = c.shop_id
           AND o.placed_at >= (c.day::timestamp AT TIME ZONE 'Asia/Shanghai')
           AND o.placed_at < ((c.day + 1)::timestamp AT TIME ZONE 'Asia/Shanghai')
         WHERE p_shop_ids IS NOT NULL
    ),
    after AS (
        SELECT a.order_id,
               bool_or(a.status = 'REFUNDED') AS refunded,
               coalesce(sum(a.refund_amount) FILTER (WHERE a.status = 'REFUNDED'), 0) AS refund_minor,
               bool_or(a.dispute <> 'NONE') AS disputed
          FROM after_sales a
         WHERE p_shop_ids IS NULL OR a.order_id IN (SELECT id FROM picked)
         GROUP BY a.order_id
    ),
    -- One row per order and product: its lines' amounts, and whether it holds the
    -- order's first line.
    keyed AS (
        SELECT p.id, p.shop_id, p.day, coalesce(i.product_id::text, '') AS k,
               bool_or(i.line_no = f.first_line) AS first,
               sum(i.paid_amount) AS line_paid, sum(i.quantity) AS quantity
          FROM picked p
          JOIN order_items i ON i.order_id = p.id
          JOIN (SELECT order_id, min(line_no) AS first_line FROM order_items
                 WHERE p_shop_ids IS NULL OR order_id IN (SELECT id FROM picked)
                 GROUP BY order_id) f ON f.order_id = p.id
         GROUP BY p.id, p.shop_id, p.day, coalesce(i.product_id::text, '')
    ),
    measured AS (
        SELECT k.*, p.paid, p.commission_amount, p.creator_id, p.shipped_at, p.delivered_at,
               coalesce(a.refunded, false) AS refunded, coalesce(a.refund_minor, 0) AS refund_minor,
               coalesce(a.disputed, false) AS disputed
          FROM keyed k
          JOIN picked p ON p.id = k.id
          LEFT JOIN after a ON a.order_id = k.id
    )
    SELECT 'PRODUCT', shop_id, day, k,
           count(*), count(*) FILTER (WHERE paid),
           coalesce(sum(line_paid) FILTER (WHERE paid), 0),
           coalesce(sum(quantity) FILTER (WHERE paid), 0),
           count(*) FILTER (WHERE paid AND refunded),
           coalesce(sum(refund_minor) FILTER (WHERE first), 0),
           count(*) FILTER (WHERE disputed),
           count(*) FILTER (WHERE delivered_at IS NOT NULL AND shipped_at IS NOT NULL),
           coalesce(sum(extract(epoch FROM delivered_at - shipped_at))
                    FILTER (WHERE first AND delivered_at IS NOT NULL AND shipped_at IS NOT NULL), 0),
           coalesce(sum(commission_amount) FILTER (WHERE first AND paid AND creator_id IS NOT NULL), 0)
      FROM measured
     GROUP BY shop_id, day, k
    UNION ALL
    SELECT 'ITEMS', shop_id, day, '',
           count(*), count(*) FILTER (WHERE paid),
           coalesce(sum(line_paid) FILTER (WHERE paid), 0),
           coalesce(sum(quantity) FILTER (WHERE paid), 0),
           count(*) FILTER (WHERE paid AND refunded),
           coalesce(sum(refund_minor), 0),
           count(*) FILTER (WHERE disputed),
           count(*) FILTER (WHERE delivered_at IS NOT NULL AND shipped_at IS NOT NULL),
           coalesce(sum(extract(epoch FROM delivered_at - shipped_at))
                    FILTER (WHERE delivered_at IS NOT NULL AND shipped_at IS NOT NULL), 0),
           coalesce(sum(commission_amount) FILTER (WHERE paid AND creator_id IS NOT NULL), 0)
      FROM (SELECT id, shop_id, day, bool_or(paid) AS paid, sum(line_paid) AS line_paid,
                   sum(quantity) AS quantity, bool_or(refunded) AS refunded,
                   max(refund_minor) AS refund_minor, bool_or(disputed) AS disputed,
                   max(delivered_at) AS delivered_at, max(shipped_at) AS shipped_at,
                   max(commission_amount) AS commission_amount, max(creator_id) AS creator_id
              FROM measured GROUP BY id, shop_id, day) o
     GROUP BY shop_id, day;
$$;

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
     WHERE d.shop_id = c.shop_id AND d.day = c.day;
    INSERT INTO rollup_dim_day SELECT * FROM rollup_dim_cells(v_shops, v_days);
    INSERT INTO rollup_dim_day SELECT * FROM rollup_item_cells(v_shops, v_days);
    SELECT array_agg(shop_id), array_agg(week) INTO v_week_shops, v_weeks
      FROM (SELECT DISTINCT c.shop_id, date_trunc('week', c.day::timestamp)::date AS week
              FROM unnest(v_shops, v_days) AS c(shop_id, day)) k;
    DELETE FROM rollup_dim_week w
     USING unnest(v_week_shops, v_weeks) AS c(shop_id, week)
     WHERE w.shop_id = c.shop_id AND w.week = c.week;
    INSERT INTO rollup_dim_week SELECT * FROM rollup_dim_week_cells(v_week_shops, v_weeks);
END;
$$;

CREATE OR REPLACE FUNCTION rollup_rebuild_dims() RETURNS void
LANGUAGE sql AS $$
    TRUNCATE rollup_dim_day;
    INSERT INTO rollup_dim_day SELECT * FROM rollup_dim_cells(NULL, NULL);
    INSERT INTO rollup_dim_day SELECT * FROM rollup_item_cells(NULL, NULL);
    SELECT rollup_rebuild_dim_weeks();
$$;

INSERT INTO rollup_dim_day SELECT * FROM rollup_item_cells(NULL, NULL);
SELECT rollup_rebuild_dim_weeks();
ANALYZE rollup_dim_day;
ANALYZE rollup_dim_week;

-- PRODUCT and CATEGORY breakdowns count product-orders: an order counts once for each
-- distinct product it contains, in every count (orders, paid, refunded, disputed,
-- delivered) and in delivery time, so a product's AVG_DELIVERY_HOURS is the mean over
-- the delivered orders containing it, and rows, "other" and total are all sums of
-- PRODUCT cells. The order's money (refund, commission) stays on the product of its
-- first line. An ITEMS cell per shop-day is the sum of its PRODUCT cells: the total of
-- a PRODUCT breakdown without reading every product.
CREATE OR REPLACE FUNCTION rollup_item_cells(p_shop_ids BIGINT[], p_days DATE[])
RETURNS SETOF rollup_dim_day
LANGUAGE sql STABLE AS $$
    WITH picked AS (
        SELECT o.id, o.shop_id, (o.placed_at AT TIME ZONE 'Asia/Shanghai')::date AS day,
               o.paid_at IS NOT NULL AS paid, o.commission_amount, o.creator_id,
               o.shipped_at, o.delivered_at
          FROM orders o
         WHERE p_shop_ids IS NULL
        UNION ALL
        SELECT o.id, o.shop_id, c.day, o.paid_at IS NOT NULL, o.commission_amount, o.creator_id,
               o.shipped_at, o.delivered_at
          FROM (SELECT DISTINCT * FROM unnest(p_shop_ids, p_days) AS c(shop_id, day)) c
          CROSS JOIN LATERAL (
                SELECT * FROM orders o
                 WHERE o.shop_id = c.shop_id
                   AND o.placed_at >= (c.day::timestamp AT TIME ZONE 'Asia/Shanghai')
                   AND o.placed_at < ((c.day + 1)::timestamp AT TIME ZONE 'Asia/Shanghai')
                OFFSET 0) o
         WHERE p_shop_ids IS NOT NULL
    ),
    after AS (
        SELECT a.order_id,
               bool_or(a.status = 'REFUNDED') AS refunded,
               coalesce(sum(a.refund_amount) FILTER (WHERE a.status = 'REFUNDED'), 0) AS refund_minor,
               bool_or(a.dispute <> 'NONE') AS disputed
          FROM picked p JOIN after_sales a ON a.order_id = p.id
         GROUP BY a.order_id
    ),
    lines AS (
        SELECT p.id, p.shop_id, p.day, coalesce(i.product_id::text, '') AS k,
               i.line_no = min(i.line_no) OVER (PARTITION BY p.id) AS first,
               i.paid_amount, i.quantity
          FROM picked p
          JOIN order_items i ON i.order_id = p.id
    ),
    -- One row per order and product: its lines' amounts, and whether it holds the
    -- order's first line.
    keyed AS (
        SELECT id, shop_id, day, k, bool_or(first) AS first,
               sum(paid_amount) AS line_paid, sum(quantity) AS quantity
          FROM lines
         GROUP BY id, shop_id, day, k
    ),
    measured AS (
        SELECT k.*, p.paid, p.commission_amount, p.creator_id, p.shipped_at, p.delivered_at,
               coalesce(a.refunded, false) AS refunded, coalesce(a.refund_minor, 0) AS refund_minor,
               coalesce(a.disputed, false) AS disputed
          FROM keyed k
          JOIN picked p ON p.id = k.id
          LEFT JOIN after a ON a.order_id = k.id
    ),
    products AS (
        SELECT 'PRODUCT'::text AS dim, shop_id, day, k AS key,
               count(*) AS orders, count(*) FILTER (WHERE paid) AS paid_orders,
               coalesce(sum(line_paid) FILTER (WHERE paid), 0) AS gmv_minor,
               coalesce(sum(quantity) FILTER (WHERE paid), 0) AS units,
               count(*) FILTER (WHERE paid AND refunded) AS refund_orders,
               coalesce(sum(refund_minor) FILTER (WHERE first), 0) AS refund_minor,
               count(*) FILTER (WHERE disputed) AS dispute_orders,
               count(*) FILTER (WHERE delivered_at IS NOT NULL AND shipped_at IS NOT NULL) AS delivered_orders,
               coalesce(sum(extract(epoch FROM delivered_at - shipped_at))
                        FILTER (WHERE delivered_at IS NOT NULL AND shipped_at IS NOT NULL), 0) AS delivery_seconds,
               coalesce(sum(commission_amount) FILTER (WHERE first AND paid AND creator_id IS NOT NULL), 0) AS commission_minor
          FROM measured
         GROUP BY shop_id, day, k
    )
    SELECT dim, shop_id, day, key, orders, paid_orders, gmv_minor, units, refund_orders,
           refund_minor, dispute_orders, delivered_orders, delivery_seconds, commission_minor
      FROM products
    UNION ALL
    SELECT 'ITEMS', shop_id, day, '', sum(orders), sum(paid_orders), sum(gmv_minor), sum(units),
           sum(refund_orders), sum(refund_minor), sum(dispute_orders), sum(delivered_orders),
           sum(delivery_seconds), sum(commission_minor)
      FROM products
     GROUP BY shop_id, day;
$$;

DELETE FROM rollup_dim_day WHERE dim IN ('PRODUCT', 'ITEMS');
DELETE FROM rollup_dim_week WHERE dim IN ('PRODUCT', 'ITEMS');
INSERT INTO rollup_dim_day SELECT * FROM rollup_item_cells(NULL, NULL);
INSERT INTO rollup_dim_week
SELECT dim, shop_id, date_trunc('week', day::timestamp)::date, key,
       sum(orders), sum(paid_orders), sum(gmv_minor), sum(units),
       sum(refund_orders), sum(refund_minor), sum(dispute_orders),
       sum(delivered_orders), sum(delivery_seconds), sum(commission_minor)
  FROM rollup_dim_day
 WHERE dim IN ('PRODUCT', 'ITEMS')
 GROUP BY 1, 2, 3, 4
 ORDER BY 1, 2, 3, 4;
ANALYZE rollup_dim_day;
ANALYZE rollup_dim_week;

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

