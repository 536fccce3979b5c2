DROP INDEX orders_seller_flag_idx;
ALTER TABLE orders DROP COLUMN seller_note, DROP COLUMN seller_flag;
