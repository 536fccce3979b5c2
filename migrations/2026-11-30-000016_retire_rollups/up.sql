-- Every analytics answer comes from each node's in-memory store, kept current from
-- the change log (docs/ANALYTICS.md): the rollup tables, their cell functions and the
-- column that told the write path where an order had been go.
DO $$
DECLARE f record;
BEGIN
    FOR f IN SELECT p.oid::regprocedure AS sig FROM pg_proc p
              JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'public' AND p.proname LIKE 'rollup\_%'
    LOOP
        EXECUTE format('DROP FUNCTION %s', f.sig);
    END LOOP;
END
$$;
DROP TABLE rollup_dim_month;
DROP TABLE rollup_dim_week;
DROP TABLE rollup_dim_day;
DROP TABLE rollup_shop_day;
DROP TABLE rollup_shop_hour;
ALTER TABLE orders DROP COLUMN previous_placed_at;
