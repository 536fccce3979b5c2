SELECT order_id,
       bool_or(status = 'REFUNDED') AS refunded,
       coalesce(sum(refund_amount) FILTER (WHERE status = 'REFUNDED'), 0)::bigint AS refund_minor,
       bool_or(dispute <> 'NONE') AS disputed,
       bool_or(status IN ('REQUESTED', 'APPROVED') AND kind IN ('REFUND_ONLY', 'RETURN_REFUND')) AS refund_pending,
       bool_or(dispute = 'OPEN') AS dispute_open
  FROM after_sales
 WHERE order_id = ANY($1)
 GROUP BY order_id
