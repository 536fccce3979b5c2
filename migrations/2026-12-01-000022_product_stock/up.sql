-- Stock on hand per product (库存), set by setProductStock or a stock file import; NULL
-- when never set. Stock warnings and days of cover read it beside the sales velocity.
ALTER TABLE products
    ADD COLUMN stock INT CHECK (stock >= 0),
    ADD COLUMN stock_updated_at TIMESTAMPTZ;
CREATE INDEX products_with_stock ON products (shop_id) WHERE stock IS NOT NULL;
