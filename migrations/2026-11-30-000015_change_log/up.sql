-- The change log the analytic store of every API node follows (docs/ANALYTICS.md).
-- Statement-level triggers record which orders, products, shops and exchange rates a
-- transaction wrote, with the writer's transaction id. A node reads, in one snapshot,
-- every entry of a transaction that was not finished at its previous snapshot
-- (xid >= that snapshot's xmin) and reloads those rows from the tables, so it never
-- misses a transaction that commits late, whatever wrote it (API, importer, psql).
CREATE TABLE change_log (
    xid  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    -- 'o' order (with its lines and after-sales), 'p' product, 's' shop,
    -- 'f' exchange rates, 'r' everything (after a bulk load)
    kind "char"      NOT NULL,
    id   BIGINT      NOT NULL,
    at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX change_log_xid ON change_log (xid);

-- Entries below `below` have been deleted; a node whose previous snapshot is older
-- reloads everything instead of following the log.
CREATE TABLE change_log_pruned (
    one   BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    below xid8    NOT NULL
);
INSERT INTO change_log_pruned (below) VALUES ('0');

-- A bulk loader (`orderscope seed`) sets orderscope.bulk_load and records one 'r'.
CREATE FUNCTION change_log_record() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('orderscope.bulk_load', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_ARGV[1] = 'new' THEN
        EXECUTE format('INSERT INTO change_log (kind, id) SELECT DISTINCT %L::"char", %I FROM new_rows', TG_ARGV[0], TG_ARGV[2]);
    ELSE
        EXECUTE format('INSERT INTO change_log (kind, id) SELECT DISTINCT %L::"char", %I FROM old_rows', TG_ARGV[0], TG_ARGV[2]);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER change_log_orders_insert AFTER INSERT ON orders REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION change_log_record('o', 'new', 'id');
CREATE TRIGGER change_log_orders_update AFTER UPDATE ON orders REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION change_log_record('o', 'new', 'id');
CREATE TRIGGER change_log_orders_delete AFTER DELETE ON orders REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION change_log_record('o', 'old', 'id');

CREATE TRIGGER change_log_items_insert AFTER INSERT ON order_items REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION change_log_record('o', 'new', 'order_id');
CREATE TRIGGER change_log_items_update AFTER UPDATE ON order_items REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION change_log_record('o', 'old', 'order_id');
CREATE TRIGGER change_log_items_update_new AFTER UPDATE ON order_items REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION change_log_record('o', 'new', 'order_id');
CREATE TRIGGER change_log_items_delete AFTER DELETE ON order_items REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION change_log_record('o', 'old', 'order_id');

CREATE TRIGGER change_log_after_sales_insert AFTER INSERT ON after_sales REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION change_log_record('o', 'new', 'order_id');
CREATE TRIGGER change_log_after_sales_update AFTER UPDATE ON after_sales REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION change_log_record('o', 'new', 'order_id');
CREATE TRIGGER change_log_after_sales_update_old AFTER UPDATE ON after_sales REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION change_log_record('o', 'old', 'order_id');
CREATE TRIGGER change_log_after_sales_delete AFTER DELETE ON after_sales REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION change_log_record('o', 'old', 'order_id');

CREATE TRIGGER change_log_products_insert AFTER INSERT ON products REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION change_log_record('p', 'new', 'id');
CREATE TRIGGER change_log_products_update AFTER UPDATE ON products REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION change_log_record('p', 'new', 'id');

CREATE TRIGGER change_log_shops_insert AFTER INSERT ON shops REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION change_log_record('s', 'new', 'id');
-- Every write sets its shops' data versions; only a change the store reads is logged.
CREATE FUNCTION change_log_shop() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO change_log (kind, id) VALUES ('s', NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER change_log_shops_update AFTER UPDATE ON shops FOR EACH ROW
    WHEN (OLD.platform IS DISTINCT FROM NEW.platform OR OLD.currency IS DISTINCT FROM NEW.currency)
    EXECUTE FUNCTION change_log_shop();

CREATE FUNCTION change_log_rates() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO change_log (kind, id) VALUES ('f', 0);
    RETURN NULL;
END
$$;
CREATE TRIGGER change_log_fx_rates AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON fx_rates
    FOR EACH STATEMENT EXECUTE FUNCTION change_log_rates();
