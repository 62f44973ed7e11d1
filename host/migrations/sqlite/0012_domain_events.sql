-- The transactional outbox of domain events: what a committed change sets off (points, the
-- owner's care plan, a partner's event), written in the change's own transaction so that a
-- crash after its commit loses none of it. `cause_key` names the follow-up and its cause
-- (`points:sales_order:42`), so each is recorded and run once; workers claim due rows with a
-- lease (`locked_by`, `locked_until`) and retry failures after a backoff.
CREATE TABLE domain_events (
    id              INTEGER PRIMARY KEY,
    dealer_id       BIGINT NOT NULL REFERENCES org_units(id),
    kind            TEXT NOT NULL,
    cause_key       TEXT NOT NULL UNIQUE,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_by       TEXT,
    locked_until    BIGINT,
    last_error      TEXT,
    done_at         BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX domain_events_due ON domain_events (status, next_attempt_at);

-- What an order sold that the delivered car keeps: the insurer and expiry of the policy sold
-- with it, and the allocated car's component batches (a JSON array of {component, batch}).
ALTER TABLE sales_orders ADD COLUMN insurer TEXT;
ALTER TABLE sales_orders ADD COLUMN insurance_expiry TEXT;
ALTER TABLE sales_orders ADD COLUMN components TEXT NOT NULL DEFAULT '[]';
