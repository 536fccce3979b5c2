DROP FUNCTION rollup_rebuild_days();
DROP FUNCTION rollup_refresh_days(BIGINT[], TIMESTAMPTZ[]);
DROP TABLE rollup_shop_day;
