-- Custom fields on sales orders, repair orders and trade-ins, as customers and vehicles have
-- them: the values as a JSON object, validated by the host against the dealer's definitions.
ALTER TABLE sales_orders ADD COLUMN custom_fields TEXT NOT NULL DEFAULT '{}';
ALTER TABLE repair_orders ADD COLUMN custom_fields TEXT NOT NULL DEFAULT '{}';
ALTER TABLE trade_ins ADD COLUMN custom_fields TEXT NOT NULL DEFAULT '{}';

-- A dealer defines fields for trade-ins too.
ALTER TABLE custom_field_defs DROP CONSTRAINT custom_field_defs_entity_check;
ALTER TABLE custom_field_defs ADD CONSTRAINT custom_field_defs_entity_check
    CHECK (entity IN ('customer', 'vehicle', 'order', 'repair_order', 'trade_in'));
