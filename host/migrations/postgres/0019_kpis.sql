-- The KPIs by advisor and by service type, and the dealer's churn-warning margin.

-- Who opened a repair order (the service advisor), and what kind of visit it is: the
-- appointment's service type when it was opened from one, else what the advisor named.
ALTER TABLE repair_orders ADD COLUMN advisor_staff_id BIGINT REFERENCES staff(id);
ALTER TABLE repair_orders ADD COLUMN service_type TEXT NOT NULL DEFAULT 'repair';
UPDATE repair_orders SET service_type = (
    SELECT a.service_type FROM appointments a WHERE a.id = repair_orders.appointment_id
) WHERE appointment_id IS NOT NULL;
UPDATE repair_orders SET advisor_staff_id = (
    SELECT k.staff_id FROM repair_order_events e JOIN api_keys k ON k.id = e.actor_key_id
    WHERE e.repair_order_id = repair_orders.id ORDER BY e.id LIMIT 1
);

-- An owner is a churn risk when the time since their last paid visit exceeds their usual
-- interval by more than this share, in percent; NULL is the default of 50.
ALTER TABLE org_units ADD COLUMN churn_margin_percent BIGINT;

-- The KPIs read each table by the time that puts a record in a period.
CREATE INDEX tickets_closed_at ON tickets (closed_at);
CREATE INDEX tickets_opened_at ON tickets (opened_at);
CREATE INDEX surveys_answered_at ON surveys (answered_at);
CREATE INDEX appointments_slot_start ON appointments (slot_start);
CREATE INDEX leads_created_at ON leads (created_at);
CREATE INDEX repair_orders_customer_settled ON repair_orders (customer_id, settled_at);
