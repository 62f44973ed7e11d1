-- The KPIs at HQ scale (500 dealers, a million customers, five million repair orders). Every
-- KPI query keeps the dealers under a unit (`dealer_id IN (...)`) and a period, so each table
-- is read by dealer and then by the time that puts a record in the period: without the dealer
-- first, a period's range is read for the whole network, or a dealer's whole history for a
-- month of it.
CREATE INDEX repair_orders_dealer_settled ON repair_orders (dealer_id, settled_at);
CREATE INDEX tickets_dealer_closed ON tickets (dealer_id, closed_at);
-- Each owner's paid visits at a dealer, in order (churn, return rate, a store's active and lost
-- customers), read from the index alone.
CREATE INDEX repair_orders_paid_visits ON repair_orders (dealer_id, customer_id, settled_at, total_fen)
    WHERE total_fen > 0 AND settled_at IS NOT NULL;
-- The store cockpit's SLA breaches by hour.
CREATE INDEX tickets_dealer_first_contact_breached ON tickets (dealer_id, first_contact_breached_at);
CREATE INDEX tickets_dealer_resolution_breached ON tickets (dealer_id, resolution_breached_at);
