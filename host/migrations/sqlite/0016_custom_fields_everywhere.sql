-- Custom fields on sales orders, repair orders and trade-ins, as customers and vehicles have
-- them: the values as a JSON object, validated by the host against the dealer's definitions.
ALTER TABLE sales_orders ADD COLUMN custom_fields TEXT NOT NULL DEFAULT '{}';
ALTER TABLE repair_orders ADD COLUMN custom_fields TEXT NOT NULL DEFAULT '{}';
ALTER TABLE trade_ins ADD COLUMN custom_fields TEXT NOT NULL DEFAULT '{}';

-- A dealer defines fields for trade-ins too. SQLite cannot change a CHECK constraint in place:
-- the table is rebuilt with the wider one (no table refers to it; ids are kept).
CREATE TABLE custom_field_defs_new (
    id         INTEGER PRIMARY KEY,
    dealer_id  BIGINT NOT NULL REFERENCES org_units(id),
    entity     TEXT NOT NULL CHECK (entity IN ('customer', 'vehicle', 'order', 'repair_order', 'trade_in')),
    field_key  TEXT NOT NULL,
    label      TEXT NOT NULL,
    field_type TEXT NOT NULL CHECK (field_type IN ('text', 'integer', 'decimal', 'money', 'boolean', 'date', 'choice')),
    required   BIGINT NOT NULL DEFAULT 0,
    choices    TEXT,
    min_value  DOUBLE PRECISION,
    max_value  DOUBLE PRECISION,
    version    BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (dealer_id, entity, field_key)
);
INSERT INTO custom_field_defs_new (id, dealer_id, entity, field_key, label, field_type, required, choices,
    min_value, max_value, version, created_at, updated_at)
SELECT id, dealer_id, entity, field_key, label, field_type, required, choices,
    min_value, max_value, version, created_at, updated_at FROM custom_field_defs;
DROP TABLE custom_field_defs;
ALTER TABLE custom_field_defs_new RENAME TO custom_field_defs;
