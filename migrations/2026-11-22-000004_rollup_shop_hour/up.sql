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
