ALTER TABLE products DROP COLUMN stock, DROP COLUMN stock_updated_at;
