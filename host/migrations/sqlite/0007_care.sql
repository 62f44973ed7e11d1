-- Customer care: outbox delivery, the reminders scheduler, advisor tasks and the loyalty ledger.
-- Same conventions as 0001 (ids i64, times BIGINT ms UTC, dates TEXT, flags BIGINT, money fen).

-- Loyalty: one account per customer and an append-only ledger of every points movement.
-- The balance can never go negative (CHECK); it always equals the points left in the lots.
CREATE TABLE loyalty_accounts (
    customer_id        BIGINT PRIMARY KEY REFERENCES customers(id) ON DELETE CASCADE,
    dealer_id          BIGINT NOT NULL REFERENCES org_units(id),
    balance            BIGINT NOT NULL DEFAULT 0 CHECK (balance >= 0),
    tier               TEXT,
    lifetime_spend_fen BIGINT NOT NULL DEFAULT 0,
    version            BIGINT NOT NULL DEFAULT 1,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);

-- A loyalty event awarded once per cause (`sales_order:42` of kind `spend`, ...), with the
-- decision that answered it: the plugin (name, version) or the built-in rule, and the run.
CREATE TABLE loyalty_events (
    id           INTEGER PRIMARY KEY,
    dealer_id    BIGINT NOT NULL REFERENCES org_units(id),
    customer_id  BIGINT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    cause_kind   TEXT NOT NULL,
    cause_id     TEXT NOT NULL,
    amount_fen   BIGINT NOT NULL DEFAULT 0,
    points       BIGINT NOT NULL DEFAULT 0,
    tier_before  TEXT,
    tier_after   TEXT,
    plugin       TEXT,
    plugin_version TEXT,
    run_id       BIGINT,
    occurred_at  BIGINT NOT NULL,
    UNIQUE (customer_id, kind, cause_kind, cause_id)
);

-- Every movement: `earn` (+), `redeem` (-), `expire` (-), `adjust` (+ or -), with its reason,
-- its cause and who decided it. Rows are never changed (a trigger refuses UPDATE); they go
-- only with their customer, when a person's data is erased.
CREATE TABLE points_ledger (
    id             INTEGER PRIMARY KEY,
    dealer_id      BIGINT NOT NULL REFERENCES org_units(id),
    customer_id    BIGINT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    kind           TEXT NOT NULL CHECK (kind IN ('earn', 'redeem', 'expire', 'adjust')),
    points         BIGINT NOT NULL CHECK (points <> 0),
    balance_after  BIGINT NOT NULL CHECK (balance_after >= 0),
    reason         TEXT NOT NULL,
    cause_kind     TEXT NOT NULL,
    cause_id       TEXT NOT NULL,
    event_id       BIGINT REFERENCES loyalty_events(id) ON DELETE CASCADE,
    plugin         TEXT,
    plugin_version TEXT,
    run_id         BIGINT,
    expires_at     BIGINT,
    at             BIGINT NOT NULL
);
CREATE INDEX points_ledger_customer ON points_ledger (customer_id, id);
CREATE TRIGGER points_ledger_no_update BEFORE UPDATE ON points_ledger
BEGIN SELECT RAISE(ABORT, 'points_ledger is append-only'); END;

-- The points of each positive movement not yet redeemed or expired, consumed oldest first.
CREATE TABLE points_lots (
    ledger_id   BIGINT PRIMARY KEY REFERENCES points_ledger(id) ON DELETE CASCADE,
    customer_id BIGINT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    remaining   BIGINT NOT NULL CHECK (remaining >= 0),
    expires_at  BIGINT
);
CREATE INDEX points_lots_customer ON points_lots (customer_id, ledger_id);
CREATE INDEX points_lots_expiry ON points_lots (expires_at);

-- The reminder plan of each vehicle: when it was last planned, and a lease while a scheduler
-- replica plans it.
CREATE TABLE vehicle_care (
    vehicle_id     BIGINT PRIMARY KEY REFERENCES vehicles(id) ON DELETE CASCADE,
    dealer_id      BIGINT NOT NULL REFERENCES org_units(id),
    planned_at     BIGINT NOT NULL DEFAULT 0,
    leased_by      TEXT,
    lease_until    BIGINT,
    plugin         TEXT,
    plugin_version TEXT,
    run_id         BIGINT,
    last_error     TEXT
);
CREATE INDEX vehicle_care_planned ON vehicle_care (planned_at);

-- Reminders the plugin planned, one per vehicle and dedupe key; `status` is `scheduled`
-- (not due yet), `sent` (enqueued to the outbox) or `task` (an advisor task was created).
CREATE TABLE reminders (
    id             INTEGER PRIMARY KEY,
    dealer_id      BIGINT NOT NULL REFERENCES org_units(id),
    vehicle_id     BIGINT NOT NULL REFERENCES vehicles(id) ON DELETE CASCADE,
    customer_id    BIGINT REFERENCES customers(id) ON DELETE SET NULL,
    kind           TEXT NOT NULL,
    due            TEXT NOT NULL,
    audience       TEXT NOT NULL CHECK (audience IN ('owner', 'advisor')),
    channel        TEXT NOT NULL,
    message        TEXT NOT NULL,
    dedupe_key     TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('scheduled', 'sent', 'task')),
    outbox_id      BIGINT,
    task_id        BIGINT,
    plugin         TEXT,
    plugin_version TEXT,
    run_id         BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    UNIQUE (vehicle_id, dedupe_key)
);
CREATE INDEX reminders_dealer ON reminders (dealer_id, id);

-- Work for the service advisors (insurance renewals, ...), created once per vehicle and
-- dedupe key.
CREATE TABLE advisor_tasks (
    id          INTEGER PRIMARY KEY,
    dealer_id   BIGINT NOT NULL REFERENCES org_units(id),
    vehicle_id  BIGINT REFERENCES vehicles(id) ON DELETE CASCADE,
    customer_id BIGINT REFERENCES customers(id) ON DELETE SET NULL,
    kind        TEXT NOT NULL,
    title       TEXT NOT NULL,
    due         TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done')),
    dedupe_key  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (dealer_id, dedupe_key)
);
CREATE INDEX advisor_tasks_dealer ON advisor_tasks (dealer_id, status, id);

-- Every delivery attempt of an outbox message: which worker, what came of it.
CREATE TABLE outbox_attempts (
    id        INTEGER PRIMARY KEY,
    outbox_id BIGINT NOT NULL REFERENCES outbox(id) ON DELETE CASCADE,
    attempt   BIGINT NOT NULL,
    worker    TEXT NOT NULL,
    outcome   TEXT NOT NULL CHECK (outcome IN ('sent', 'retrying', 'failed', 'lease_lost')),
    error     TEXT,
    at        BIGINT NOT NULL
);
CREATE INDEX outbox_attempts_message ON outbox_attempts (outbox_id);
