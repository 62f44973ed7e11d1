-- Tickets: routing by plugin, SLA clocks with escalation, hand-offs between departments,
-- first-contact resolution; and surveys (NPS/CSAT) sent when a ticket closes.

-- The route a ticket was given when it was opened, and who decided it: the plugin's name and
-- version, or `built-in` (route_plugin_version NULL), and the run-log entry.
ALTER TABLE tickets ADD COLUMN safety BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tickets ADD COLUMN first_contact_due BIGINT;
ALTER TABLE tickets ADD COLUMN resolution_due BIGINT;
ALTER TABLE tickets ADD COLUMN route_reason TEXT;
ALTER TABLE tickets ADD COLUMN route_plugin TEXT;
ALTER TABLE tickets ADD COLUMN route_plugin_version TEXT;
ALTER TABLE tickets ADD COLUMN route_run_id BIGINT;
-- SLA: when each clock was found breached; each breach raises the escalation level by one.
ALTER TABLE tickets ADD COLUMN first_contact_breached_at BIGINT;
ALTER TABLE tickets ADD COLUMN resolution_breached_at BIGINT;
ALTER TABLE tickets ADD COLUMN escalation_level BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tickets ADD COLUMN handoff_count BIGINT NOT NULL DEFAULT 0;
-- 1/0 once resolved (NULL before): resolved at its first contact without a hand-off or reopen.
ALTER TABLE tickets ADD COLUMN first_contact_resolution BIGINT;
-- The staff member's signed link to follow the ticket (the token itself is not kept here).
ALTER TABLE tickets ADD COLUMN owner_link_id BIGINT;
-- The SLA sweep looks for open clocks past their deadline.
CREATE INDEX tickets_first_contact_due ON tickets (first_contact_due);
CREATE INDEX tickets_resolution_due ON tickets (resolution_due);
CREATE INDEX tickets_dealer_opened ON tickets (dealer_id, opened_at);

-- Timeline entries now have a kind: `status` (a move, or a note when the status stays),
-- `handoff` (from_team → to_team), `breach` (the clock, the new level).
-- `owner_visible` marks a note the owner may read on the signed link; every other note is
-- internal.
ALTER TABLE ticket_events ADD COLUMN kind TEXT NOT NULL DEFAULT 'status';
ALTER TABLE ticket_events ADD COLUMN actor_staff_id BIGINT;
ALTER TABLE ticket_events ADD COLUMN from_team TEXT;
ALTER TABLE ticket_events ADD COLUMN to_team TEXT;
ALTER TABLE ticket_events ADD COLUMN clock TEXT;
ALTER TABLE ticket_events ADD COLUMN escalation_level BIGINT;
ALTER TABLE ticket_events ADD COLUMN owner_visible BIGINT NOT NULL DEFAULT 0;

-- A satisfaction survey of one subject (a ticket; later a repair order), sent by an owner link
-- (purpose `survey`, subject: the survey) and answered once: NPS 0-10, CSAT 1-5, a comment.
CREATE TABLE surveys (
    id           INTEGER PRIMARY KEY,
    dealer_id    BIGINT NOT NULL REFERENCES org_units(id),
    subject_kind TEXT NOT NULL CHECK (subject_kind IN ('ticket', 'repair_order')),
    subject_id   BIGINT NOT NULL,
    customer_id  BIGINT NOT NULL REFERENCES customers(id),
    sent_at      BIGINT NOT NULL,
    answered_at  BIGINT,
    nps          BIGINT CHECK (nps BETWEEN 0 AND 10),
    csat         BIGINT CHECK (csat BETWEEN 1 AND 5),
    comment      TEXT,
    UNIQUE (subject_kind, subject_id)
);
CREATE INDEX surveys_dealer_answered ON surveys (dealer_id, answered_at);
