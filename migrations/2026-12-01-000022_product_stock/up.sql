-- Stock on hand per product (库存), set by setProductStock or a stock file import; NULL
-- when never set. Stock warnings and days of cover read it beside the sales velocity.
ALTER TABLE products
    ADD COLUMN stock INT CHECK (stock >= 0),
    ADD COLUMN stock_updated_at TIMESTAMPTZ;
CREATE INDEX products_with_stock ON products (shop_id) WHERE stock IS NOT NULL;

-- A stock change is a change to its shop in the analytic store's log, so that the
-- stockWarnings subscription of every node wakes for it (the store itself keeps no
-- stock; reloading a shop's settings is cheap).
CREATE FUNCTION change_log_product_stock() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO change_log (kind, id) VALUES ('s', NEW.shop_id);
    RETURN NULL;
END
$$;
CREATE TRIGGER change_log_product_stock AFTER UPDATE OF stock ON products
    FOR EACH ROW WHEN (OLD.stock IS DISTINCT FROM NEW.stock)
    EXECUTE FUNCTION change_log_product_stock();
