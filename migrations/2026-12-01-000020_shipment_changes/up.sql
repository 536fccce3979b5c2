-- The CARRIER dimension reads the shipment's carrier, so a change to a shipment is a
-- change to its order in the analytic store's log (shipping through the API also
-- updates the order; a carrier corrected by hand or by an importer does not).
CREATE TRIGGER change_log_shipments_insert AFTER INSERT ON shipments REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION change_log_record('o', 'new', 'order_id');
CREATE TRIGGER change_log_shipments_update AFTER UPDATE ON shipments REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION change_log_record('o', 'new', 'order_id');
CREATE TRIGGER change_log_shipments_delete AFTER DELETE ON shipments REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION change_log_record('o', 'old', 'order_id');
