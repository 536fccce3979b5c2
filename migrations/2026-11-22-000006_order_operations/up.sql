-- Order operations and the abnormal-order work lists.

-- The seller's note when an after-sale case is decided here (approve or reject).
ALTER TABLE after_sales ADD COLUMN resolution_note TEXT;

-- Work lists read only open orders. Partial indexes keep them small however many
-- orders have completed; their predicates are repeated literally by the list queries
-- (src/db/orders.rs) so that the planner can use them.
CREATE INDEX orders_open_idx ON orders (status, shop_id, placed_at DESC, id DESC)
    WHERE status IN ('PENDING_PAYMENT', 'AWAITING_SHIPMENT', 'SHIPPED');

CREATE INDEX after_sales_refund_pending_idx ON after_sales (order_id)
    WHERE status IN ('REQUESTED', 'APPROVED') AND kind IN ('REFUND_ONLY', 'RETURN_REFUND');

CREATE INDEX after_sales_dispute_open_idx ON after_sales (order_id)
    WHERE dispute = 'OPEN';
