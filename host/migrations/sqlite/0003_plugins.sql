-- The plugin platform: plugins and their versions, the wasm artifacts (stored once per
-- content digest), each dealer's bindings and kill switches, secrets, the plugins' private
-- stores and the run log. Same conventions as 0001 (ids i64, times BIGINT ms, flags BIGINT 0/1,
-- JSON as TEXT); binary values are BLOB here and BYTEA in the PostgreSQL twin.

-- A plugin belongs to an org unit: HQ's are the catalogue, a dealer's are its private ones.
-- `hook` is a world name (`commission`, `ticket-routing`, ...); `grants` are HQ's capability
-- grants as JSON (`{"private_dir": false, "outbound_hosts": [], "credentials": []}`).
CREATE TABLE plugins (
    id            INTEGER PRIMARY KEY,
    owner_org_id  BIGINT NOT NULL REFERENCES org_units(id),
    name          TEXT NOT NULL,
    hook          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    config_schema TEXT,
    grants        TEXT NOT NULL DEFAULT '{}',
    killed        BIGINT NOT NULL DEFAULT 0,
    killed_reason TEXT,
    killed_at     BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (owner_org_id, name)
);

-- Compiled components by SHA-256 (hex): two versions with the same bytes share one row.
CREATE TABLE plugin_artifacts (
    sha256     TEXT PRIMARY KEY,
    bytes      BLOB NOT NULL,
    size       BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

-- `version` is semver text; order versions by parsing it, never by the text.
CREATE TABLE plugin_versions (
    id          INTEGER PRIMARY KEY,
    plugin_id   BIGINT NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
    version     TEXT NOT NULL,
    wit_version TEXT NOT NULL,
    sha256      TEXT NOT NULL REFERENCES plugin_artifacts(sha256),
    size        BIGINT NOT NULL,
    uploaded_by BIGINT,
    notes       TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    UNIQUE (plugin_id, version)
);

-- A dealer's plugin for a hook, pinned to a version; `previous_version` is what a rollback
-- returns to. Both versions must exist.
CREATE TABLE plugin_bindings (
    id               INTEGER PRIMARY KEY,
    dealer_id        BIGINT NOT NULL REFERENCES org_units(id),
    hook             TEXT NOT NULL,
    plugin_id        BIGINT NOT NULL REFERENCES plugins(id),
    pinned_version   TEXT NOT NULL,
    previous_version TEXT,
    config           TEXT NOT NULL DEFAULT '{}',
    failure_policy   TEXT NOT NULL DEFAULT 'fallback' CHECK (failure_policy IN ('fallback', 'fail_closed')),
    killed           BIGINT NOT NULL DEFAULT 0,
    killed_reason    TEXT,
    version          BIGINT NOT NULL DEFAULT 1,
    updated_at       BIGINT NOT NULL,
    updated_by       BIGINT,
    UNIQUE (dealer_id, hook),
    FOREIGN KEY (plugin_id, pinned_version) REFERENCES plugin_versions (plugin_id, version),
    FOREIGN KEY (plugin_id, previous_version) REFERENCES plugin_versions (plugin_id, version)
);
CREATE INDEX plugin_bindings_plugin ON plugin_bindings (plugin_id);

-- The dealer-wide kill switch: while `killed`, every hook of the dealer runs its default.
CREATE TABLE plugin_dealer_switches (
    dealer_id  BIGINT PRIMARY KEY REFERENCES org_units(id),
    killed     BIGINT NOT NULL DEFAULT 0,
    reason     TEXT,
    updated_at BIGINT NOT NULL
);

-- Credentials a plugin names by handle; the host adds them to outbound requests. Write-only.
CREATE TABLE plugin_secrets (
    dealer_id  BIGINT NOT NULL REFERENCES org_units(id),
    handle     TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (dealer_id, handle)
);

-- Each plugin's private key-value store, per dealer.
CREATE TABLE plugin_store (
    dealer_id  BIGINT NOT NULL REFERENCES org_units(id),
    plugin_id  BIGINT NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    value      BLOB NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (dealer_id, plugin_id, key)
);

-- The run log, like the audit log a record of what happened (no foreign keys). `input` is the
-- masked input JSON, kept only for the most recent runs of each (dealer, hook, source) so live
-- runs can be replayed (and replays do not push them out); `input_digest` (SHA-256 of the
-- unmasked canonical input) stays.
CREATE TABLE plugin_runs (
    id           INTEGER PRIMARY KEY,
    dealer_id    BIGINT NOT NULL,
    plugin_id    BIGINT,
    plugin_name  TEXT,
    version      TEXT,
    hook         TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    duration_us  BIGINT NOT NULL,
    outcome      TEXT NOT NULL,
    memory_bytes BIGINT NOT NULL,
    fuel_used    BIGINT NOT NULL,
    error        TEXT,
    input_digest TEXT NOT NULL,
    input        TEXT,
    output       TEXT,
    -- Logs, events, notifications, partner calls and denials of the run (masked), kept with
    -- the input.
    effects      TEXT,
    now_ms       BIGINT NOT NULL,
    replay_of    BIGINT,
    source       TEXT NOT NULL CHECK (source IN ('live', 'replay', 'evaluate'))
);
CREATE INDEX plugin_runs_dealer ON plugin_runs (dealer_id, id DESC);
CREATE INDEX plugin_runs_plugin ON plugin_runs (plugin_id, started_at);
-- Partial: only the runs that still hold an input, so trimming to the most recent ones and
-- listing them for replay read a few hundred entries per (dealer, hook, source), however long
-- the log.
CREATE INDEX plugin_runs_recorded ON plugin_runs (dealer_id, hook, source, id DESC) WHERE input IS NOT NULL;
