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
