-- What a dealer lets an integration partner do for it: one row per grant of a purpose (e.g.
-- `charging-sessions`) to a partner key, recorded as the dealer's consent, with who granted it
-- and when; revoking keeps the row and records who revoked it and when. A partner acts only
-- for the dealers (and their branches) holding an unrevoked grant of the purpose.
-- `granted_by_key_id` is NULL for a grant of the demo seed.
CREATE TABLE partner_grants (
    id                INTEGER PRIMARY KEY,
    dealer_id         BIGINT NOT NULL REFERENCES org_units(id),
    partner_key_id    BIGINT NOT NULL REFERENCES api_keys(id),
    purpose           TEXT NOT NULL,
    granted_by_key_id BIGINT REFERENCES api_keys(id),
    granted_at        BIGINT NOT NULL,
    revoked_by_key_id BIGINT REFERENCES api_keys(id),
    revoked_at        BIGINT
);
CREATE UNIQUE INDEX partner_grants_active ON partner_grants (dealer_id, partner_key_id, purpose)
    WHERE revoked_at IS NULL;
CREATE INDEX partner_grants_partner ON partner_grants (partner_key_id, purpose);

-- The customer's consent to share their history across the dealers of the network (the
-- shared 360 view), with when and by which key it was last recorded (given or withdrawn);
-- `share_consent_by_key_id` is NULL when the demo seed recorded it.
ALTER TABLE customers ADD COLUMN share_consent BIGINT NOT NULL DEFAULT 0;
ALTER TABLE customers ADD COLUMN share_consent_at BIGINT;
ALTER TABLE customers ADD COLUMN share_consent_by_key_id BIGINT REFERENCES api_keys(id);
