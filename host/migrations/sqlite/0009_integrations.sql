-- Domain events handed to the dealer's integration plugin (a partner's), with what it did.
-- `event_key` names the cause (`vehicle-delivered:sales_order:42`), so an event is handled
-- once however often, and on however many replicas, it is emitted.
CREATE TABLE integration_events (
    id              INTEGER PRIMARY KEY,
    dealer_id       BIGINT NOT NULL REFERENCES org_units(id),
    kind            TEXT NOT NULL,
    event_key       TEXT NOT NULL UNIQUE,
    customer_id     BIGINT,
    vehicle_id      BIGINT,
    order_id        BIGINT,
    repair_order_id BIGINT,
    payload         TEXT NOT NULL,
    occurred_at     BIGINT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('handled', 'failed')),
    decided_by      TEXT NOT NULL,
    run_id          BIGINT,
    error           TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX integration_events_dealer ON integration_events (dealer_id, id);

-- The actions the plugin returned for an event, in order, as applied.
CREATE TABLE integration_actions (
    event_id BIGINT NOT NULL REFERENCES integration_events(id),
    seq      BIGINT NOT NULL,
    kind     TEXT NOT NULL,
    detail   TEXT NOT NULL,
    PRIMARY KEY (event_id, seq)
);
