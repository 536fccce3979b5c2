SELECT order_id,
       bool_or(status = 'REFUNDED') AS refunded,
       coalesce(sum(refund_amount) FILTER (WHERE status = 'REFUNDED'), 0)::bigint AS refund_minor,
       bool_or(dispute <> 'NONE') AS disputed
  FROM after_sales
 WHERE order_id >= $1 AND order_id < $2
 GROUP BY order_id
