-- The sales lifecycle: leads and their funnel, test drives, sales orders with their lines and
-- timeline, trade-ins, and the commission lines computed at delivery. Conventions as in 0001.

-- A prospect. `open_phone` is the phone while the lead is open (NULL once won or lost), so
-- the unique index refuses a second open lead for the same phone at the same dealer.
CREATE TABLE leads (
    id            INTEGER PRIMARY KEY,
    dealer_id     BIGINT NOT NULL REFERENCES org_units(id),
    customer_id   BIGINT REFERENCES customers(id),
    name          TEXT NOT NULL,
    phone         TEXT NOT NULL,
    open_phone    TEXT,
    channel       TEXT NOT NULL,
    stage         TEXT NOT NULL,
    score         BIGINT NOT NULL DEFAULT 0,
    tags          TEXT NOT NULL DEFAULT '[]',
    consultant_id BIGINT REFERENCES staff(id),
    interest      TEXT,
    lost_reason   TEXT,
    version       BIGINT NOT NULL DEFAULT 1,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX leads_open_phone ON leads (dealer_id, open_phone);
CREATE INDEX leads_dealer_created ON leads (dealer_id, created_at);

-- Every stage a lead reached, with its time (the funnel reads it).
CREATE TABLE lead_stage_events (
    id         INTEGER PRIMARY KEY,
    lead_id    BIGINT NOT NULL REFERENCES leads(id),
    from_stage TEXT,
    to_stage   TEXT NOT NULL,
    at         BIGINT NOT NULL,
    note       TEXT
);
CREATE INDEX lead_stage_events_lead ON lead_stage_events (lead_id, at);

-- The last consultant a dealer's round-robin assigned.
CREATE TABLE lead_assignment_cursor (
    dealer_id     BIGINT PRIMARY KEY REFERENCES org_units(id),
    last_staff_id BIGINT NOT NULL
);

CREATE TABLE lead_tasks (
    id          INTEGER PRIMARY KEY,
    lead_id     BIGINT NOT NULL REFERENCES leads(id),
    dealer_id   BIGINT NOT NULL REFERENCES org_units(id),
    title       TEXT NOT NULL,
    due_at      BIGINT NOT NULL,
    assignee_id BIGINT REFERENCES staff(id),
    done_at     BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX lead_tasks_due ON lead_tasks (dealer_id, done_at, due_at);

CREATE TABLE demo_vehicles (
    id         INTEGER PRIMARY KEY,
    dealer_id  BIGINT NOT NULL REFERENCES org_units(id),
    vin        TEXT NOT NULL,
    model      TEXT NOT NULL,
    active     BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    UNIQUE (dealer_id, vin)
);

CREATE TABLE test_drives (
    id              INTEGER PRIMARY KEY,
    dealer_id       BIGINT NOT NULL REFERENCES org_units(id),
    lead_id         BIGINT NOT NULL REFERENCES leads(id),
    demo_vehicle_id BIGINT NOT NULL REFERENCES demo_vehicles(id),
    consultant_id   BIGINT NOT NULL REFERENCES staff(id),
    starts_at       BIGINT NOT NULL,
    ends_at         BIGINT NOT NULL,
    status          TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);

-- One row per booked slot of a demo vehicle or a consultant: the primary key is what makes a
-- double booking impossible, also between concurrent requests.
CREATE TABLE test_drive_slots (
    resource      TEXT NOT NULL,
    slot_start    BIGINT NOT NULL,
    test_drive_id BIGINT NOT NULL REFERENCES test_drives(id),
    PRIMARY KEY (resource, slot_start)
);
CREATE INDEX test_drive_slots_drive ON test_drive_slots (test_drive_id);

CREATE TABLE sales_orders (
    id                   INTEGER PRIMARY KEY,
    dealer_id            BIGINT NOT NULL REFERENCES org_units(id),
    customer_id          BIGINT NOT NULL REFERENCES customers(id),
    lead_id              BIGINT REFERENCES leads(id),
    consultant_id        BIGINT REFERENCES staff(id),
    brand                TEXT NOT NULL,
    model                TEXT NOT NULL,
    trim                 TEXT,
    colour               TEXT,
    vin                  TEXT,
    list_price_fen       BIGINT NOT NULL,
    vehicle_cost_fen     BIGINT NOT NULL,
    discount_fen         BIGINT NOT NULL DEFAULT 0,
    finance_plan         TEXT,
    financed_fen         BIGINT NOT NULL DEFAULT 0,
    insurance_product    TEXT,
    status               TEXT NOT NULL,
    discount_approval_id BIGINT,
    finance_approval_id  BIGINT,
    vehicle_id           BIGINT REFERENCES vehicles(id),
    delivered_at         BIGINT,
    version              BIGINT NOT NULL DEFAULT 1,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE INDEX sales_orders_dealer ON sales_orders (dealer_id, status);

CREATE TABLE sales_order_lines (
    id          INTEGER PRIMARY KEY,
    order_id    BIGINT NOT NULL REFERENCES sales_orders(id),
    kind        TEXT NOT NULL,
    description TEXT NOT NULL,
    amount_fen  BIGINT NOT NULL,
    cost_fen    BIGINT NOT NULL DEFAULT 0,
    trade_in_id BIGINT
);
CREATE INDEX sales_order_lines_order ON sales_order_lines (order_id);

-- The order's timeline: every status change and approval request.
CREATE TABLE sales_order_events (
    id          INTEGER PRIMARY KEY,
    order_id    BIGINT NOT NULL REFERENCES sales_orders(id),
    at          BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    staff_id    BIGINT,
    note        TEXT
);
CREATE INDEX sales_order_events_order ON sales_order_events (order_id, at);

CREATE TABLE trade_ins (
    id          INTEGER PRIMARY KEY,
    dealer_id   BIGINT NOT NULL REFERENCES org_units(id),
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    vin         TEXT NOT NULL,
    plate       TEXT,
    model       TEXT NOT NULL,
    mileage_km  BIGINT NOT NULL,
    checklist   TEXT NOT NULL DEFAULT '[]',
    quote_fen   BIGINT NOT NULL,
    status      TEXT NOT NULL,
    order_id    BIGINT REFERENCES sales_orders(id),
    version     BIGINT NOT NULL DEFAULT 1,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- What a delivery paid to whom, and what computed it (`built-in` for the host's default).
CREATE TABLE commission_lines (
    id             INTEGER PRIMARY KEY,
    dealer_id      BIGINT NOT NULL REFERENCES org_units(id),
    order_id       BIGINT NOT NULL REFERENCES sales_orders(id),
    staff_id       BIGINT NOT NULL REFERENCES staff(id),
    month          TEXT NOT NULL,
    amount_fen     BIGINT NOT NULL,
    reason         TEXT NOT NULL,
    plugin         TEXT NOT NULL,
    plugin_version TEXT,
    run_id         BIGINT,
    created_at     BIGINT NOT NULL
);
CREATE INDEX commission_lines_staff ON commission_lines (staff_id, month);
CREATE INDEX commission_lines_order ON commission_lines (order_id);
