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
