-- Scoped lists filter by dealer and page by id: without (dealer_id, id) the planner sorts every
-- vehicle of the scope to return one page (0.9 s at a million vehicles).
CREATE INDEX vehicles_dealer ON vehicles (dealer_id, id);
-- Campaigns select by batch alone too.
CREATE INDEX vehicle_components_batch_only ON vehicle_components (batch);
