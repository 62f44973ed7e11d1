-- The foundation model. Conventions (shared with the PostgreSQL twin of this file):
--   * ids are 64-bit integers; times are BIGINT milliseconds since the Unix epoch (UTC);
--   * calendar dates (birthdays, purchase dates) are TEXT 'YYYY-MM-DD';
--   * flags are BIGINT 0/1 and JSON is TEXT, so one portable query set runs on both backends;
--   * money is integer fen.

-- The dealer network is a tree: hq -> region -> group -> dealer -> branch.
-- `path` is the materialised path of ids ('/1/4/9/'), so "everything under X" is a prefix match.
CREATE TABLE org_units (
    id          INTEGER PRIMARY KEY,
    parent_id   BIGINT REFERENCES org_units(id),
    kind        TEXT NOT NULL CHECK (kind IN ('hq', 'region', 'group', 'dealer', 'branch')),
    dealer_type TEXT CHECK (dealer_type IN ('4s', 'service_station', 'repair_shop')),
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    city        TEXT,
    path        TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);
CREATE INDEX org_units_path ON org_units (path);

-- Network-wide policies set by HQ (one row).
CREATE TABLE network_policy (
    id                           BIGINT PRIMARY KEY CHECK (id = 1),
    share_history_across_dealers BIGINT NOT NULL DEFAULT 0,
    updated_at                   BIGINT NOT NULL
);
INSERT INTO network_policy (id, share_history_across_dealers, updated_at) VALUES (1, 0, 0);

CREATE TABLE staff (
    id          INTEGER PRIMARY KEY,
    org_unit_id BIGINT NOT NULL REFERENCES org_units(id),
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    phone       TEXT,
    active      BIGINT NOT NULL DEFAULT 1,
    created_at  BIGINT NOT NULL
);
CREATE INDEX staff_org ON staff (org_unit_id);

-- API keys: only a SHA-256 digest of the secret is stored; the key is shown once.
CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    prefix       TEXT NOT NULL UNIQUE,
    secret_hash  TEXT NOT NULL,
    role         TEXT NOT NULL,
    org_unit_id  BIGINT NOT NULL REFERENCES org_units(id),
    staff_id     BIGINT REFERENCES staff(id),
    label        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    last_used_at BIGINT
);

CREATE TABLE customers (
    id                   INTEGER PRIMARY KEY,
    dealer_id            BIGINT NOT NULL REFERENCES org_units(id),
    name                 TEXT NOT NULL,
    gender               TEXT,
    birthday             TEXT,
    id_number            TEXT,
    member_tier          TEXT NOT NULL DEFAULT 'standard',
    source_channel       TEXT,
    referrer_id          BIGINT REFERENCES customers(id),
    marketing_consent    BIGINT NOT NULL DEFAULT 0,
    marketing_consent_at BIGINT,
    custom_fields        TEXT NOT NULL DEFAULT '{}',
    version              BIGINT NOT NULL DEFAULT 1,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE INDEX customers_dealer ON customers (dealer_id, id);
CREATE INDEX customers_name ON customers (name);

-- Phones are stored normalised (digits, no country code for mainland numbers).
CREATE TABLE customer_phones (
    customer_id BIGINT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    position    BIGINT NOT NULL,
    phone       TEXT NOT NULL,
    label       TEXT NOT NULL DEFAULT 'mobile',
    PRIMARY KEY (customer_id, phone)
);
CREATE INDEX customer_phones_phone ON customer_phones (phone);

CREATE TABLE customer_tags (
    customer_id BIGINT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    tag         TEXT NOT NULL,
    PRIMARY KEY (customer_id, tag)
);
CREATE INDEX customer_tags_tag ON customer_tags (tag);

-- Household: spouse, child, parent, ... (both people are customers of the same dealer).
CREATE TABLE household_links (
    customer_id BIGINT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    member_id   BIGINT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    relation    TEXT NOT NULL,
    PRIMARY KEY (customer_id, member_id)
);

CREATE TABLE vehicles (
    id               INTEGER PRIMARY KEY,
    dealer_id        BIGINT NOT NULL REFERENCES org_units(id),
    vin              TEXT NOT NULL,
    plate            TEXT,
    plate_key        TEXT,
    brand            TEXT NOT NULL,
    model            TEXT NOT NULL,
    trim_level       TEXT,
    color            TEXT,
    model_year       BIGINT,
    purchase_date    TEXT,
    insurer          TEXT,
    insurance_expiry TEXT,
    custom_fields    TEXT NOT NULL DEFAULT '{}',
    version          BIGINT NOT NULL DEFAULT 1,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (dealer_id, vin)
);
CREATE INDEX vehicles_vin ON vehicles (vin);
CREATE INDEX vehicles_plate ON vehicles (plate_key);

-- Component batches fitted to a vehicle (for proactive campaigns).
CREATE TABLE vehicle_components (
    vehicle_id BIGINT NOT NULL REFERENCES vehicles(id) ON DELETE CASCADE,
    component  TEXT NOT NULL,
    batch      TEXT NOT NULL,
    PRIMARY KEY (vehicle_id, component)
);
CREATE INDEX vehicle_components_batch ON vehicle_components (component, batch);

-- Who drives what, over time. A row with `until` NULL is current; closed owner rows are the
-- ownership history. At most one current owner per vehicle.
CREATE TABLE vehicle_people (
    id          INTEGER PRIMARY KEY,
    vehicle_id  BIGINT NOT NULL REFERENCES vehicles(id) ON DELETE CASCADE,
    customer_id BIGINT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('owner', 'main_driver', 'family')),
    since       BIGINT NOT NULL,
    until       BIGINT
);
CREATE UNIQUE INDEX vehicle_people_one_owner ON vehicle_people (vehicle_id) WHERE role = 'owner' AND until IS NULL;
CREATE INDEX vehicle_people_customer ON vehicle_people (customer_id);
CREATE INDEX vehicle_people_vehicle ON vehicle_people (vehicle_id);

CREATE TABLE mileage_readings (
    id         INTEGER PRIMARY KEY,
    vehicle_id BIGINT NOT NULL REFERENCES vehicles(id) ON DELETE CASCADE,
    km         BIGINT NOT NULL CHECK (km >= 0),
    read_at    BIGINT NOT NULL,
    source     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX mileage_readings_vehicle ON mileage_readings (vehicle_id, read_at);

-- The interaction timeline: calls, visits, messages, notes.
CREATE TABLE interactions (
    id          INTEGER PRIMARY KEY,
    dealer_id   BIGINT NOT NULL REFERENCES org_units(id),
    customer_id BIGINT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    vehicle_id  BIGINT REFERENCES vehicles(id) ON DELETE SET NULL,
    staff_id    BIGINT REFERENCES staff(id),
    kind        TEXT NOT NULL,
    channel     TEXT,
    summary     TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX interactions_customer ON interactions (customer_id, occurred_at);

CREATE TABLE tickets (
    id               INTEGER PRIMARY KEY,
    dealer_id        BIGINT NOT NULL REFERENCES org_units(id),
    customer_id      BIGINT NOT NULL REFERENCES customers(id),
    vehicle_id       BIGINT REFERENCES vehicles(id),
    channel          TEXT NOT NULL,
    category         TEXT NOT NULL,
    subject          TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    status           TEXT NOT NULL,
    priority         TEXT NOT NULL,
    team             TEXT,
    opened_at        BIGINT NOT NULL,
    first_contact_at BIGINT,
    resolved_at      BIGINT,
    closed_at        BIGINT,
    version          BIGINT NOT NULL DEFAULT 1,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX tickets_dealer ON tickets (dealer_id, id);
CREATE INDEX tickets_customer ON tickets (customer_id);

-- The status timeline of a ticket (what the owner will follow by link).
CREATE TABLE ticket_events (
    id          INTEGER PRIMARY KEY,
    ticket_id   BIGINT NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
    at          BIGINT NOT NULL,
    actor_key_id BIGINT,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    note        TEXT
);
CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id, at);

-- Dealer-defined custom fields: typed, validated on every write of the entity.
CREATE TABLE custom_field_defs (
    id         INTEGER PRIMARY KEY,
    dealer_id  BIGINT NOT NULL REFERENCES org_units(id),
    entity     TEXT NOT NULL CHECK (entity IN ('customer', 'vehicle', 'order', 'repair_order')),
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

-- Append-only: who read or changed what. Holds ids, never personal data.
CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY,
    at           BIGINT NOT NULL,
    actor_key_id BIGINT,
    actor_role   TEXT NOT NULL,
    actor_org_id BIGINT,
    action       TEXT NOT NULL,
    entity       TEXT NOT NULL,
    entity_id    BIGINT,
    dealer_id    BIGINT,
    outcome      TEXT NOT NULL,
    detail       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_entity ON audit_log (entity, entity_id);
CREATE INDEX audit_log_dealer ON audit_log (dealer_id, id);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

-- A retried POST with the same Idempotency-Key replays the stored response.
CREATE TABLE idempotency_keys (
    api_key_id   BIGINT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       BIGINT NOT NULL,
    response     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (api_key_id, idem_key)
);
