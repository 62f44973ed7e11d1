-- Imports of a dealer's existing records (customers, vehicles, service history) from a DMS or
-- Excel export. A job keeps its file, its column mapping and its progress: rows are committed
-- in batches, `last_line` is the file line (the header is line 1) of the last row of the last
-- committed batch, so an interrupted job resumes after it. A runner holds the job with a lease
-- (`runner`, `lease_until`); a killed runner's lease runs out and another may take it over.
CREATE TABLE import_jobs (
    id                INTEGER PRIMARY KEY,
    dealer_id         BIGINT NOT NULL REFERENCES org_units(id),
    kind              TEXT NOT NULL CHECK (kind IN ('customers', 'vehicles', 'service_history')),
    format            TEXT NOT NULL CHECK (format IN ('csv', 'xlsx')),
    file_name         TEXT NOT NULL,
    file_sha256       TEXT NOT NULL,
    content           BLOB NOT NULL,
    mapping           TEXT NOT NULL,
    dry_run           BIGINT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    rows_total        BIGINT NOT NULL DEFAULT 0,
    rows_done         BIGINT NOT NULL DEFAULT 0,
    rows_created      BIGINT NOT NULL DEFAULT 0,
    rows_unchanged    BIGINT NOT NULL DEFAULT 0,
    rows_failed       BIGINT NOT NULL DEFAULT 0,
    last_line         BIGINT NOT NULL DEFAULT 1,
    failure           TEXT,
    runner            TEXT,
    lease_until       BIGINT,
    created_by_key_id BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    finished_at       BIGINT
);
CREATE INDEX import_jobs_dealer ON import_jobs (dealer_id, id);

-- Every problem of every refused row: its file line, the import field, a code, a message.
CREATE TABLE import_errors (
    id       INTEGER PRIMARY KEY,
    job_id   BIGINT NOT NULL REFERENCES import_jobs(id),
    line     BIGINT NOT NULL,
    field    TEXT NOT NULL,
    code     TEXT NOT NULL,
    message  TEXT NOT NULL
);
CREATE INDEX import_errors_job ON import_errors (job_id, id);

-- The natural key of each imported row (a customer's external id, a service visit's VIN, date
-- and repair order number or row digest) and the record it made: a row met again is skipped.
CREATE TABLE import_keys (
    dealer_id   BIGINT NOT NULL REFERENCES org_units(id),
    kind        TEXT NOT NULL,
    natural_key TEXT NOT NULL,
    record_id   BIGINT NOT NULL,
    job_id      BIGINT NOT NULL REFERENCES import_jobs(id),
    PRIMARY KEY (dealer_id, kind, natural_key)
);
