DROP TRIGGER change_log_shipments_insert ON shipments;
DROP TRIGGER change_log_shipments_update ON shipments;
DROP TRIGGER change_log_shipments_delete ON shipments;
