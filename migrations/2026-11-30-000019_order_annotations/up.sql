-- The seller's own marks on an order (卖家备注 and 旗帜): a note and one of the
-- platforms' five flag colours. Ingest never writes them, so a platform's update of the
-- order keeps them.
ALTER TABLE orders
    ADD COLUMN seller_note TEXT CHECK (length(seller_note) BETWEEN 1 AND 500),
    ADD COLUMN seller_flag TEXT CHECK (seller_flag IN ('RED', 'YELLOW', 'GREEN', 'BLUE', 'PURPLE'));
CREATE INDEX orders_seller_flag_idx ON orders (shop_id, seller_flag, placed_at DESC)
    WHERE seller_flag IS NOT NULL;
