DROP FUNCTION rollup_rebuild_dims();
DROP FUNCTION rollup_refresh_dims(BIGINT[], TIMESTAMPTZ[]);
DROP FUNCTION rollup_dim_cells(BIGINT[], DATE[]);
DROP TABLE rollup_dim_day;
