-- Staff sign-in for the console. A login belongs to one staff member; its password is kept
-- only as an argon2id hash ('' until one is set: no sign-in). A login acts through a key of
-- its own (`api_key_id`, label `console sign-in`, a secret nobody is shown), so the audit
-- log, idempotency keys and revocation treat a session like any other key of that person.
-- Consecutive failures lock the login until `locked_until`.
CREATE TABLE staff_logins (
    staff_id            BIGINT NOT NULL PRIMARY KEY REFERENCES staff(id),
    username            TEXT NOT NULL UNIQUE,
    password_hash       TEXT NOT NULL,
    api_key_id          BIGINT NOT NULL REFERENCES api_keys(id),
    disabled_at         BIGINT,
    failed_count        BIGINT NOT NULL DEFAULT 0,
    locked_until        BIGINT,
    password_changed_at BIGINT,
    last_login_at       BIGINT,
    created_at          BIGINT NOT NULL
);

-- Server-side sessions: the cookie holds a random token, only its SHA-256 digest is stored.
-- A session ends at `expires_at`, after two hours without use, or when revoked (logout, a
-- password change, the login disabled).
CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    csrf_token   TEXT NOT NULL,
    staff_id     BIGINT NOT NULL REFERENCES staff(id),
    address      TEXT,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX sessions_staff ON sessions (staff_id);

-- Failed sign-ins by network address, to slow and then refuse guessing across accounts.
CREATE TABLE login_failures (
    address TEXT NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX login_failures_address ON login_failures (address, at);

-- An advisor marks a task done from the console's workbench: when, and who.
ALTER TABLE advisor_tasks ADD COLUMN done_at BIGINT;
ALTER TABLE advisor_tasks ADD COLUMN done_by_staff_id BIGINT REFERENCES staff(id);
