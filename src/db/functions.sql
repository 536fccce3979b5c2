-- The current definition of every PL/pgSQL function, re-applied after the migrations
-- on every start (db::migrate): a change to a function is made here, once, and
-- migrations only create the tables and triggers that call them. CREATE OR REPLACE
-- keeps each function's identity, so the triggers that call it keep working.

-- The change log's writer for the analytic store: one entry per changed order, product
-- or shop of a statement. A bulk loader (`orderscope seed`) sets orderscope.bulk_load
-- and records one 'r' instead. TG_ARGV: kind, 'new' or 'old' (the transition table
-- read), the id column.
CREATE OR REPLACE FUNCTION change_log_record() RETURNS trigger
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

-- A shop change the store reads (platform, currency).
CREATE OR REPLACE FUNCTION change_log_shop() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO change_log (kind, id) VALUES ('s', NEW.id);
    RETURN NULL;
END
$$;

-- Exchange rates changed: every node reloads its rates.
CREATE OR REPLACE FUNCTION change_log_rates() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO change_log (kind, id) VALUES ('f', 0);
    RETURN NULL;
END
$$;

-- A product's stock changed: its shop's stock warnings wake on every node.
CREATE OR REPLACE FUNCTION change_log_product_stock() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO change_log (kind, id) VALUES ('s', NEW.shop_id);
    RETURN NULL;
END
$$;
