-- Back to migration 11's maintenance, without month cells.
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

DROP FUNCTION rollup_rebuild_dim_months();
DROP INDEX rollup_dim_week_by_key;
DROP INDEX rollup_dim_day_by_key;
DROP TABLE rollup_dim_month;
