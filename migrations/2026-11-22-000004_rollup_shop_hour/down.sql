DROP FUNCTION rollup_rebuild();
DROP FUNCTION rollup_refresh(BIGINT[], TIMESTAMPTZ[]);
ALTER TABLE orders DROP COLUMN previous_placed_at;
DROP TABLE rollup_shop_hour;
