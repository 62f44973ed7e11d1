-- Messages that reach people: a purpose on every message (marketing needs consent), the
-- address it was resolved to, the outcomes `refused` (consent, opt-out, frequency cap) and
-- `undeliverable` (the recipient has no address for the channel) with a reason code, the
-- provider's answer per attempt, staff e-mail, owners' opt-outs, each dealer's quiet hours
-- and marketing cap; the owner links and surveys these messages carry.

ALTER TABLE staff ADD COLUMN email TEXT;

-- NULL is the default: no marketing from 21:00 to 08:00 local time (minutes after midnight),
-- at most 2 marketing messages per owner in 7 days.
ALTER TABLE org_units ADD COLUMN quiet_start_minute BIGINT;
ALTER TABLE org_units ADD COLUMN quiet_end_minute BIGINT;
ALTER TABLE org_units ADD COLUMN marketing_per_week BIGINT;

-- An owner's marketing consent given or withdrawn: by staff, or by the owner through an
-- opt-out link or keyword, with the channel it came through.
CREATE TABLE consent_events (
    id          INTEGER PRIMARY KEY,
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    dealer_id   BIGINT NOT NULL REFERENCES org_units(id),
    granted     BIGINT NOT NULL,
    channel     TEXT NOT NULL,
    via         TEXT NOT NULL CHECK (via IN ('staff', 'link', 'keyword')),
    outbox_id   BIGINT,
    at          BIGINT NOT NULL
);
CREATE INDEX consent_events_customer ON consent_events (customer_id, id);

-- SQLite cannot change a CHECK constraint in place: the outbox is rebuilt with the wider one
-- (ids kept). Its attempts refer to it, so they are kept aside and put back.
CREATE TABLE outbox_attempts_kept AS SELECT * FROM outbox_attempts;
DROP TABLE outbox_attempts;
CREATE TABLE outbox_new (
    id              INTEGER PRIMARY KEY,
    dealer_id       BIGINT NOT NULL REFERENCES org_units(id),
    channel         TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    template        TEXT NOT NULL,
    data            TEXT NOT NULL,
    dedupe_key      TEXT UNIQUE,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'failed', 'refused', 'undeliverable')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_by       TEXT,
    locked_until    BIGINT,
    last_error      TEXT,
    sent_at         BIGINT,
    created_at      BIGINT NOT NULL,
    purpose         TEXT NOT NULL DEFAULT 'service' CHECK (purpose IN ('service', 'marketing')),
    reason          TEXT,
    address         TEXT
);
INSERT INTO outbox_new (id, dealer_id, channel, recipient, template, data, dedupe_key, status,
    attempts, next_attempt_at, locked_by, locked_until, last_error, sent_at, created_at)
SELECT id, dealer_id, channel, recipient, template, data, dedupe_key, status,
    attempts, next_attempt_at, locked_by, locked_until, last_error, sent_at, created_at FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_dealer ON outbox (dealer_id, id);
CREATE INDEX outbox_recipient ON outbox (recipient, purpose, created_at);

CREATE TABLE outbox_attempts (
    id        INTEGER PRIMARY KEY,
    outbox_id BIGINT NOT NULL REFERENCES outbox(id) ON DELETE CASCADE,
    attempt   BIGINT NOT NULL,
    worker    TEXT NOT NULL,
    outcome   TEXT NOT NULL CHECK (outcome IN ('sent', 'retrying', 'failed', 'lease_lost')),
    error     TEXT,
    at        BIGINT NOT NULL,
    answer    TEXT
);
INSERT INTO outbox_attempts (id, outbox_id, attempt, worker, outcome, error, at)
SELECT id, outbox_id, attempt, worker, outcome, error, at FROM outbox_attempts_kept;
DROP TABLE outbox_attempts_kept;
CREATE INDEX outbox_attempts_message ON outbox_attempts (outbox_id);

-- New link purposes: a marketing message's opt-out, and an order followed while the owner
-- waits for the car. No table refers to
-- owner_links, so it is rebuilt with the wider CHECK (ids kept).
CREATE TABLE owner_links_new (
    id          INTEGER PRIMARY KEY,
    dealer_id   BIGINT NOT NULL REFERENCES org_units(id),
    purpose     TEXT NOT NULL CHECK (purpose IN ('extra_work', 'repair_progress', 'ticket_status', 'survey', 'opt_out', 'order_tracking')),
    subject_id  BIGINT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    expires_at  BIGINT NOT NULL,
    single_use  BIGINT NOT NULL,
    used_at     BIGINT,
    created_at  BIGINT NOT NULL
);
INSERT INTO owner_links_new (id, dealer_id, purpose, subject_id, token_hash, expires_at, single_use, used_at, created_at)
SELECT id, dealer_id, purpose, subject_id, token_hash, expires_at, single_use, used_at, created_at FROM owner_links;
DROP TABLE owner_links;
ALTER TABLE owner_links_new RENAME TO owner_links;
CREATE INDEX owner_links_subject ON owner_links (purpose, subject_id);

-- A delivered car gets its survey too (subject `sales_order`). No table refers to surveys, so
-- it is rebuilt with the wider CHECK (ids kept).
CREATE TABLE surveys_new (
    id           INTEGER PRIMARY KEY,
    dealer_id    BIGINT NOT NULL REFERENCES org_units(id),
    subject_kind TEXT NOT NULL CHECK (subject_kind IN ('ticket', 'repair_order', 'sales_order')),
    subject_id   BIGINT NOT NULL,
    customer_id  BIGINT NOT NULL REFERENCES customers(id),
    sent_at      BIGINT NOT NULL,
    answered_at  BIGINT,
    nps          BIGINT CHECK (nps BETWEEN 0 AND 10),
    csat         BIGINT CHECK (csat BETWEEN 1 AND 5),
    comment      TEXT,
    UNIQUE (subject_kind, subject_id)
);
INSERT INTO surveys_new (id, dealer_id, subject_kind, subject_id, customer_id, sent_at, answered_at, nps, csat, comment)
SELECT id, dealer_id, subject_kind, subject_id, customer_id, sent_at, answered_at, nps, csat, comment FROM surveys;
DROP TABLE surveys;
ALTER TABLE surveys_new RENAME TO surveys;
CREATE INDEX surveys_dealer_answered ON surveys (dealer_id, answered_at);
CREATE INDEX surveys_answered_at ON surveys (answered_at);
