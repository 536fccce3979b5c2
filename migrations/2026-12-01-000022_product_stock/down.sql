DROP TRIGGER change_log_product_stock ON products;
DROP FUNCTION change_log_product_stock();
ALTER TABLE products DROP COLUMN stock, DROP COLUMN stock_updated_at;
