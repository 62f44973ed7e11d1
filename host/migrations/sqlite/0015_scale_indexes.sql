-- Indexes for the 360 view, customer search and the reminders scheduler at a million customers.

-- The timeline of vehicles (other dealers' history of the same cars, a vehicle's service
-- visits for the scheduler) reads interactions by vehicle: without this, a full scan each.
CREATE INDEX interactions_vehicle ON interactions (vehicle_id, occurred_at);
-- The 360 view lists a customer's sales and repair orders, newest first.
CREATE INDEX sales_orders_customer ON sales_orders (customer_id, id);
CREATE INDEX repair_orders_customer ON repair_orders (customer_id, id);

-- Search by the last 4 digits of a phone: a generated column (SQLite: VIRTUAL, PostgreSQL:
-- STORED; both computed by the database, so every writer keeps it right), indexed.
ALTER TABLE customer_phones ADD COLUMN last4 TEXT GENERATED ALWAYS AS (substr(phone, -4)) VIRTUAL;
CREATE INDEX customer_phones_last4 ON customer_phones (last4, customer_id);

-- Search by tag pages by customer id, newest first: (tag, customer_id) walks one tag's
-- customers in that order and stops at the page, where (tag) alone sorted all of them.
DROP INDEX customer_tags_tag;
CREATE INDEX customer_tags_tag ON customer_tags (tag, customer_id);

-- Search by part of the name: an FTS5 index with the trigram tokenizer (any substring of 3
-- characters or more, case-insensitive), kept in step with `customers` by the triggers below.
-- PostgreSQL has a pg_trgm index instead; `schema_parity` knows the two.
CREATE VIRTUAL TABLE customers_name_fts USING fts5(
    name, content = 'customers', content_rowid = 'id', tokenize = 'trigram'
);
INSERT INTO customers_name_fts (customers_name_fts) VALUES ('rebuild');
CREATE TRIGGER customers_name_fts_insert AFTER INSERT ON customers BEGIN
    INSERT INTO customers_name_fts (rowid, name) VALUES (new.id, new.name);
END;
CREATE TRIGGER customers_name_fts_delete AFTER DELETE ON customers BEGIN
    INSERT INTO customers_name_fts (customers_name_fts, rowid, name) VALUES ('delete', old.id, old.name);
END;
CREATE TRIGGER customers_name_fts_update AFTER UPDATE OF name ON customers BEGIN
    INSERT INTO customers_name_fts (customers_name_fts, rowid, name) VALUES ('delete', old.id, old.name);
    INSERT INTO customers_name_fts (rowid, name) VALUES (new.id, new.name);
END;

-- Run-log retention deletes by age (started_at) per dealer and hook, and trims each
-- (dealer, hook) to its newest runs.
CREATE INDEX plugin_runs_dealer_hook ON plugin_runs (dealer_id, hook, id);
CREATE INDEX plugin_runs_started ON plugin_runs (started_at);
