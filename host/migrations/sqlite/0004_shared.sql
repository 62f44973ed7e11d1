-- Shared by the sales and the service lifecycle: staff positions (who may approve what),
-- approval requests with their ordered steps, owners' links, attachments (photos) and the
-- notification outbox. Same conventions as 0001.

-- The job a staff member holds, which approval steps name (`general_manager`, ...); the
-- access role (`role`) stays what the key may do.
ALTER TABLE staff ADD COLUMN position TEXT;

-- A request for approval (a discount, a finance plan, extra repair work, a refund) as the
-- dealer's approval plugin decided it. `status` is `pending` while a step waits, then
-- `approved` or `rejected`; `decided_by` is the decision's source as JSON.
CREATE TABLE approval_requests (
    id              INTEGER PRIMARY KEY,
    dealer_id       BIGINT NOT NULL REFERENCES org_units(id),
    subject_kind    TEXT NOT NULL CHECK (subject_kind IN ('sales_order', 'repair_order')),
    subject_id      BIGINT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('discount', 'finance_plan', 'extra_repair_work', 'refund')),
    status          TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    amount_fen      BIGINT NOT NULL,
    base_amount_fen BIGINT NOT NULL,
    description     TEXT NOT NULL,
    reason          TEXT,
    requested_by    BIGINT REFERENCES staff(id),
    decided_by      TEXT NOT NULL,
    run_id          BIGINT,
    created_at      BIGINT NOT NULL,
    closed_at       BIGINT
);
CREATE INDEX approval_requests_subject ON approval_requests (subject_kind, subject_id);
CREATE INDEX approval_requests_dealer ON approval_requests (dealer_id, status);

-- The steps of a request, in order. Only the first `waiting` step can be acted on. The actor
-- is a staff member (`acted_by_staff`) or the owner through a link (`acted_by_link`).
CREATE TABLE approval_steps (
    request_id     BIGINT NOT NULL REFERENCES approval_requests(id),
    seq            BIGINT NOT NULL,
    role           TEXT NOT NULL,
    reason         TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('waiting', 'approved', 'rejected', 'skipped')),
    acted_by_staff BIGINT REFERENCES staff(id),
    acted_by_link  BIGINT,
    channel        TEXT,
    comment        TEXT,
    acted_at       BIGINT,
    PRIMARY KEY (request_id, seq)
);

-- Links for owners, who have no account. Only the SHA-256 digest of the token is kept.
CREATE TABLE owner_links (
    id          INTEGER PRIMARY KEY,
    dealer_id   BIGINT NOT NULL REFERENCES org_units(id),
    purpose     TEXT NOT NULL CHECK (purpose IN ('extra_work', 'repair_progress', 'ticket_status', 'survey')),
    subject_id  BIGINT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    expires_at  BIGINT NOT NULL,
    single_use  BIGINT NOT NULL,
    used_at     BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX owner_links_subject ON owner_links (purpose, subject_id);

-- Files (photos, documents) attached to a record; the bytes live in the attachments
-- directory under `storage_name`, the row says whose they are.
CREATE TABLE attachments (
    id            INTEGER PRIMARY KEY,
    dealer_id     BIGINT NOT NULL REFERENCES org_units(id),
    owner_kind    TEXT NOT NULL,
    owner_id      BIGINT NOT NULL,
    content_type  TEXT NOT NULL,
    size_bytes    BIGINT NOT NULL,
    sha256        TEXT NOT NULL,
    storage_name  TEXT NOT NULL UNIQUE,
    caption       TEXT,
    uploaded_by   BIGINT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX attachments_owner ON attachments (owner_kind, owner_id);

-- Messages to send (SMS, WeChat, e-mail, app, tasks). `dedupe_key`, when set, is unique: a
-- message enqueued twice under one key is stored once, so nothing is sent twice.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    dealer_id       BIGINT NOT NULL REFERENCES org_units(id),
    channel         TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    template        TEXT NOT NULL,
    data            TEXT NOT NULL,
    dedupe_key      TEXT UNIQUE,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_by       TEXT,
    locked_until    BIGINT,
    last_error      TEXT,
    sent_at         BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_dealer ON outbox (dealer_id, id);
