DROP INDEX after_sales_dispute_open_idx;
DROP INDEX after_sales_refund_pending_idx;
DROP INDEX orders_open_idx;
ALTER TABLE after_sales DROP COLUMN resolution_note;
