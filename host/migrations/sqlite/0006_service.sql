-- After-sales service: appointments, repair orders (inspection, lines, timeline, extra work,
-- payments) and proactive campaigns. Same conventions as 0001 (ids i64, times BIGINT UTC ms,
-- money integer fen, flags BIGINT 0/1).

-- Proactive campaigns: vehicles carrying a component batch whose mileage is in a window,
-- within the subtree of the unit that created the campaign.
CREATE TABLE campaigns (
    id          INTEGER PRIMARY KEY,
    org_unit_id BIGINT NOT NULL REFERENCES org_units(id),
    name        TEXT NOT NULL,
    component   TEXT,
    batch       TEXT NOT NULL,
    min_km      BIGINT NOT NULL,
    max_km      BIGINT NOT NULL,
    created_by  BIGINT,
    version     BIGINT NOT NULL DEFAULT 1,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX campaigns_org ON campaigns (org_unit_id, id);

-- One invitation per campaign and vehicle, sent to the vehicle's owner.
CREATE TABLE campaign_invitations (
    id          INTEGER PRIMARY KEY,
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id),
    vehicle_id  BIGINT NOT NULL REFERENCES vehicles(id),
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    dealer_id   BIGINT NOT NULL REFERENCES org_units(id),
    invited_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX campaign_invitations_once ON campaign_invitations (campaign_id, vehicle_id);

CREATE TABLE appointments (
    id              INTEGER PRIMARY KEY,
    dealer_id       BIGINT NOT NULL REFERENCES org_units(id),
    customer_id     BIGINT NOT NULL REFERENCES customers(id),
    vehicle_id      BIGINT NOT NULL REFERENCES vehicles(id),
    channel         TEXT NOT NULL,
    service_type    TEXT NOT NULL,
    campaign_id     BIGINT REFERENCES campaigns(id),
    slot_start      BIGINT NOT NULL,
    slot_end        BIGINT NOT NULL,
    status          TEXT NOT NULL,
    note            TEXT NOT NULL DEFAULT '',
    arrived_at      BIGINT,
    cancelled_at    BIGINT,
    repair_order_id BIGINT,
    version         BIGINT NOT NULL DEFAULT 1,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX appointments_dealer ON appointments (dealer_id, id);
CREATE INDEX appointments_slot ON appointments (dealer_id, slot_start);
CREATE INDEX appointments_campaign ON appointments (campaign_id);

CREATE TABLE repair_orders (
    id                  INTEGER PRIMARY KEY,
    dealer_id           BIGINT NOT NULL REFERENCES org_units(id),
    customer_id         BIGINT NOT NULL REFERENCES customers(id),
    vehicle_id          BIGINT NOT NULL REFERENCES vehicles(id),
    appointment_id      BIGINT REFERENCES appointments(id),
    complaint_code      TEXT NOT NULL,
    complaint           TEXT NOT NULL DEFAULT '',
    status              TEXT NOT NULL,
    technician_staff_id BIGINT REFERENCES staff(id),
    mileage_km          BIGINT,
    comeback_of_id      BIGINT REFERENCES repair_orders(id),
    labour_fen          BIGINT NOT NULL DEFAULT 0,
    parts_fen           BIGINT NOT NULL DEFAULT 0,
    total_fen           BIGINT NOT NULL DEFAULT 0,
    paid_fen            BIGINT NOT NULL DEFAULT 0,
    settled_at          BIGINT,
    paid_at             BIGINT,
    version             BIGINT NOT NULL DEFAULT 1,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX repair_orders_dealer ON repair_orders (dealer_id, id);
CREATE INDEX repair_orders_vehicle ON repair_orders (vehicle_id, complaint_code, settled_at);
CREATE INDEX repair_orders_settled ON repair_orders (settled_at);
CREATE INDEX repair_orders_comeback ON repair_orders (comeback_of_id);

-- The timeline: status moves, dispatches, progress updates, decisions, payments.
CREATE TABLE repair_order_events (
    id              INTEGER PRIMARY KEY,
    repair_order_id BIGINT NOT NULL REFERENCES repair_orders(id),
    at              BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    from_status     TEXT,
    to_status       TEXT NOT NULL,
    note            TEXT,
    actor_key_id    BIGINT,
    owner_link_id   BIGINT
);
CREATE INDEX repair_order_events_order ON repair_order_events (repair_order_id, id);

CREATE TABLE inspection_items (
    id              INTEGER PRIMARY KEY,
    repair_order_id BIGINT NOT NULL REFERENCES repair_orders(id),
    item            TEXT NOT NULL,
    grade           TEXT NOT NULL CHECK (grade IN ('green', 'yellow', 'red')),
    note            TEXT
);
CREATE INDEX inspection_items_order ON inspection_items (repair_order_id);

-- Labour and parts; quantity in hundredths (1.5 hours is 150).
CREATE TABLE repair_order_lines (
    id                 INTEGER PRIMARY KEY,
    repair_order_id    BIGINT NOT NULL REFERENCES repair_orders(id),
    kind               TEXT NOT NULL CHECK (kind IN ('labour', 'part')),
    description        TEXT NOT NULL,
    quantity_centi     BIGINT NOT NULL,
    unit_price_fen     BIGINT NOT NULL,
    amount_fen         BIGINT NOT NULL,
    extra_work_item_id BIGINT,
    created_at         BIGINT NOT NULL
);
CREATE INDEX repair_order_lines_order ON repair_order_lines (repair_order_id);

-- Extra work the advisor proposes; the owner decides through a link.
CREATE TABLE extra_work_proposals (
    id                  INTEGER PRIMARY KEY,
    repair_order_id     BIGINT NOT NULL REFERENCES repair_orders(id),
    approval_request_id BIGINT NOT NULL,
    owner_link_id       BIGINT,
    status              TEXT NOT NULL,
    total_fen           BIGINT NOT NULL,
    proposed_by_key     BIGINT NOT NULL,
    decision            TEXT,
    decided_by          TEXT,
    decision_channel    TEXT,
    approved_fen        BIGINT,
    decided_at          BIGINT,
    applied_at          BIGINT,
    created_at          BIGINT NOT NULL
);
CREATE INDEX extra_work_proposals_order ON extra_work_proposals (repair_order_id);

CREATE TABLE extra_work_items (
    id          INTEGER PRIMARY KEY,
    proposal_id BIGINT NOT NULL REFERENCES extra_work_proposals(id),
    kind        TEXT NOT NULL CHECK (kind IN ('labour', 'part')),
    description TEXT NOT NULL,
    amount_fen  BIGINT NOT NULL,
    approved    BIGINT
);
CREATE INDEX extra_work_items_proposal ON extra_work_items (proposal_id);

CREATE TABLE repair_order_payments (
    id              INTEGER PRIMARY KEY,
    repair_order_id BIGINT NOT NULL REFERENCES repair_orders(id),
    method          TEXT NOT NULL,
    amount_fen      BIGINT NOT NULL CHECK (amount_fen > 0),
    paid_at         BIGINT NOT NULL,
    actor_key_id    BIGINT NOT NULL
);
CREATE INDEX repair_order_payments_order ON repair_order_payments (repair_order_id);
