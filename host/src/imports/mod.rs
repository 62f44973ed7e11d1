//! Imports of what a dealer brings on day one: customers, vehicles and service history from a
//! DMS or Excel export (CSV or XLSX), with a column mapping. Owns `import_jobs`,
//! `import_errors` and `import_keys`.
//!
//! A job stores the file and the mapping in effect, then runs in batches of [`BATCH_ROWS`]
//! rows, each batch one transaction that also moves the job's progress on (rows done,
//! created, unchanged, refused, and the last committed line): a job whose runner died resumes
//! after its last committed batch, and a row met again (by its natural key, see [`rows`]) is
//! left unchanged, so running a file twice stores it once. Every row goes through the checks
//! of the API's create; a refused row stores nothing and each of its problems is kept with its
//! line (the header's is 1), field, code and message. A dry run checks every row and stores
//! nothing but the job and its problems. One audit entry per job, when it finishes.

pub mod mapping;
mod rows;
pub mod source;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, FromRow};
use utoipa::ToSchema;

use crate::access::{self, Caller, Record};
use crate::audit::{self, Actor, Entry};
use crate::clock;
use crate::db::{Db, Param, Sql, decode};
use crate::error::{Error, FieldError, Result};
use crate::network;
pub use mapping::{Kind, Mapping};
use rows::{Context, Outcome};
pub use source::Format;

/// Rows committed per transaction: large enough that a commit's cost is spread thin, small
/// enough that the write lock is never held long and an interruption loses little.
pub const BATCH_ROWS: usize = 500;
/// The largest file an import takes.
pub const MAX_FILE_BYTES: usize = 64 * 1024 * 1024;
/// How long a runner holds a job without committing a batch before another may take it over.
const LEASE_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = ImportStatus)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for a runner, or stopped between two batches: resume it.
    Pending,
    /// A runner holds it (until its lease runs out, if it died).
    Running,
    Done,
    /// Stopped by an error other than a bad row (the database); resume it.
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Done => "done",
            Status::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Status> {
        [
            Status::Pending,
            Status::Running,
            Status::Done,
            Status::Failed,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// An import job and its progress.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ImportJob)]
pub struct Job {
    pub id: i64,
    pub dealer_id: i64,
    pub kind: Kind,
    pub format: Format,
    pub file_name: String,
    /// SHA-256 of the file, hex.
    pub file_sha256: String,
    /// The mapping in effect: field → column header.
    #[schema(value_type = Object)]
    pub mapping: Mapping,
    /// Checks every row and stores nothing.
    pub dry_run: bool,
    pub status: Status,
    /// Data rows in the file (the header and blank rows not counted).
    pub rows_total: i64,
    /// Rows done so far; `rows_done / rows_total` is the progress.
    pub rows_done: i64,
    /// Rows stored (in a dry run: that would be stored).
    pub rows_created: i64,
    /// Rows whose record is there already.
    pub rows_unchanged: i64,
    /// Rows refused; their problems are at `GET /imports/{id}/errors`.
    pub rows_failed: i64,
    /// The file line of the last row committed (1, the header, before the first batch).
    pub last_line: i64,
    /// Why the job stopped, if it failed.
    pub failure: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// One problem of one refused row.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ImportRowError)]
pub struct RowError {
    pub id: i64,
    /// The row's line in the file; the header is line 1.
    pub line: i64,
    /// The import's field (`phone`, `vin`, ...), or `file`.
    pub field: String,
    /// Stable code: the one the API's create answers (`invalid_phone`, `invalid_vin`, ...).
    pub code: String,
    pub message: String,
}

#[derive(FromRow)]
struct JobRow {
    id: i64,
    dealer_id: i64,
    kind: String,
    format: String,
    file_name: String,
    file_sha256: String,
    mapping: String,
    dry_run: i64,
    status: String,
    rows_total: i64,
    rows_done: i64,
    rows_created: i64,
    rows_unchanged: i64,
    rows_failed: i64,
    last_line: i64,
    failure: Option<String>,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
}

const JOB_COLUMNS: &str = "id, dealer_id, kind, format, file_name, file_sha256, mapping, dry_run, status, rows_total, \
     rows_done, rows_created, rows_unchanged, rows_failed, last_line, failure, created_at, updated_at, finished_at";

impl JobRow {
    fn into_job(self) -> Result<Job> {
        Ok(Job {
            id: self.id,
            dealer_id: self.dealer_id,
            kind: decode("kind", &self.kind, Kind::parse)?,
            format: decode("format", &self.format, Format::parse)?,
            file_name: self.file_name,
            file_sha256: self.file_sha256,
            mapping: serde_json::from_str(&self.mapping).unwrap_or_default(),
            dry_run: self.dry_run != 0,
            status: decode("status", &self.status, Status::parse)?,
            rows_total: self.rows_total,
            rows_done: self.rows_done,
            rows_created: self.rows_created,
            rows_unchanged: self.rows_unchanged,
            rows_failed: self.rows_failed,
            last_line: self.last_line,
            failure: self.failure,
            created_at: clock::to_datetime(self.created_at),
            updated_at: clock::to_datetime(self.updated_at),
            finished_at: clock::opt_datetime(self.finished_at),
        })
    }
}

/// A file to import for a dealer.
pub struct NewImport {
    pub dealer_id: i64,
    pub kind: Kind,
    /// Default: from the file name's extension.
    pub format: Option<Format>,
    pub file_name: String,
    pub bytes: Vec<u8>,
    /// Field → column header, on top of the default header names.
    pub mapping: Mapping,
    pub dry_run: bool,
}

/// Creates a job for `new`, pending: the file is read and the mapping resolved first, so an
/// unreadable file or a mapping that does not fit its header is refused at once (as
/// [`Error::Invalid`], field `file` or `mapping.<field>`), before any row is looked at.
pub async fn create(db: &Db, actor: Actor<'_>, new: NewImport) -> Result<Job> {
    if new.bytes.len() > MAX_FILE_BYTES {
        return Err(Error::PayloadTooLarge {
            limit: MAX_FILE_BYTES,
        });
    }
    let format = match new
        .format
        .or_else(|| Format::from_file_name(&new.file_name))
    {
        Some(format) => format,
        None => {
            return Err(Error::invalid(
                "format",
                "unknown_format",
                "say whether the file is csv or xlsx",
            ));
        }
    };
    let sheet = source::read(format, &new.bytes)?;
    let (effective, _) = mapping::resolve(new.kind, &sheet.header, &new.mapping)?;
    let now = clock::now_ms();
    let mut tx = db.begin_write().await?;
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO import_jobs (dealer_id, kind, format, file_name, file_sha256, content, mapping, dry_run, status, \
         rows_total, created_by_key_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $10, $11, $11) RETURNING id",
    )
    .bind(new.dealer_id)
    .bind(new.kind.as_str())
    .bind(format.as_str())
    .bind(new.file_name.trim())
    .bind(hex::encode(Sha256::digest(&new.bytes)))
    .bind(new.bytes)
    .bind(serde_json::to_string(&effective).unwrap_or_else(|_| "{}".into()))
    .bind(i64::from(new.dry_run))
    .bind(i64::try_from(sheet.rows.len()).unwrap_or(i64::MAX))
    .bind(actor.key_id())
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let job = load(&mut tx, id).await?;
    tx.commit().await?;
    Ok(job)
}

async fn load(conn: &mut AnyConnection, id: i64) -> Result<Job> {
    let row: Option<JobRow> = sqlx::query_as(&format!(
        "SELECT {JOB_COLUMNS} FROM import_jobs WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or(Error::NotFound {
        entity: "import_job",
    })?
    .into_job()
}

/// The dealer of job `id` if the caller can see it (else not found, audited by the API).
pub async fn dealer_of(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<i64> {
    access::owning_dealer(conn, caller, Record::ImportJob, id).await
}

/// Job `id`, with its progress, if the caller can see it.
pub async fn get(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<Job> {
    dealer_of(conn, caller, id).await?;
    load(conn, id).await
}

/// Job `id` whatever the scope: for the operator's command line.
pub async fn get_unscoped(conn: &mut AnyConnection, id: i64) -> Result<Job> {
    load(conn, id).await
}

/// The problems of job `id`'s refused rows in file order, after problem `after_id`, `limit + 1`
/// at most (the extra one signals a next page). The caller has checked the job's scope.
pub async fn errors(
    conn: &mut AnyConnection,
    id: i64,
    after_id: Option<i64>,
    limit: i64,
) -> Result<Vec<RowError>> {
    let rows: Vec<(i64, i64, String, String, String)> = sqlx::query_as(
        "SELECT id, line, field, code, message FROM import_errors WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(id)
    .bind(after_id.unwrap_or(0))
    .bind(limit + 1)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, line, field, code, message)| RowError {
            id,
            line,
            field,
            code,
            message,
        })
        .collect())
}

/// The record a natural key of `kind` led to at `dealer_id`, if it was met before.
async fn find_key(
    conn: &mut AnyConnection,
    dealer_id: i64,
    kind: Kind,
    key: &str,
) -> Result<Option<i64>> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT record_id FROM import_keys WHERE dealer_id = $1 AND kind = $2 AND natural_key = $3",
    )
    .bind(dealer_id)
    .bind(kind.as_str())
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|(id,)| id))
}

/// Remembers that `key` led to record `record_id` (not in a dry run).
async fn remember_key(
    conn: &mut AnyConnection,
    ctx: &Context<'_>,
    key: &str,
    record_id: i64,
) -> Result<()> {
    if ctx.dry_run {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO import_keys (dealer_id, kind, natural_key, record_id, job_id) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (dealer_id, kind, natural_key) DO NOTHING",
    )
    .bind(ctx.dealer_id)
    .bind(ctx.kind.as_str())
    .bind(key)
    .bind(record_id)
    .bind(ctx.job_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A job taken by one runner ([`claim`]), to run with [`run_claimed`].
#[derive(Debug)]
pub struct Runner {
    id: i64,
    token: String,
}

/// What [`claim`] found.
#[derive(Debug)]
pub enum Claimed {
    /// The job is done already: nothing to run.
    Done(Job),
    Runner(Runner),
}

/// Takes job `id` to run it, unless another runner holds it (409 `import_running`; a runner
/// that died lets go when its lease runs out, a minute after its last batch).
pub async fn claim(db: &Db, id: i64) -> Result<Claimed> {
    let token = uuid::Uuid::new_v4().to_string();
    let now = clock::now_ms();
    let mut tx = db.begin_write().await?;
    let taken = sqlx::query(
        "UPDATE import_jobs SET status = 'running', runner = $1, lease_until = $2, failure = NULL, updated_at = $3 \
         WHERE id = $4 AND status <> 'done' AND (status <> 'running' OR lease_until IS NULL OR lease_until < $3)",
    )
    .bind(&token)
    .bind(now + LEASE_MS)
    .bind(now)
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let job = load(&mut tx, id).await?;
    tx.commit().await?;
    match (taken, job.status) {
        (1, _) => Ok(Claimed::Runner(Runner { id, token })),
        (_, Status::Done) => Ok(Claimed::Done(job)),
        _ => Err(Error::Conflict {
            code: "import_running",
            message: format!(
                "import {id} is being run elsewhere; if that runner died, it can be resumed {} s after its last batch",
                LEASE_MS / 1000
            ),
        }),
    }
}

/// How far a pass goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pass {
    /// Stop (the job pending) after this many batches; `None`: to the end.
    pub max_batches: Option<usize>,
}

/// [`claim`]s job `id`, then [`run_claimed`]; a job done already is answered as it is.
pub async fn run(
    db: &Db,
    actor: Actor<'_>,
    id: i64,
    pass: Pass,
    progress: impl FnMut(&Job),
) -> Result<Job> {
    match claim(db, id).await? {
        Claimed::Done(job) => Ok(job),
        Claimed::Runner(runner) => run_claimed(db, actor, runner, pass, progress).await,
    }
}

/// Runs a claimed job from the row after its last committed one: to the end (then it is done
/// and audited once, as `actor`), or for `pass.max_batches` batches (then it is pending
/// again). `progress` sees the job after each committed batch. A database error fails the
/// job, which may be resumed.
pub async fn run_claimed(
    db: &Db,
    actor: Actor<'_>,
    runner: Runner,
    pass: Pass,
    mut progress: impl FnMut(&Job),
) -> Result<Job> {
    let id = runner.id;
    match run_batches(db, actor, &runner, pass, &mut progress).await {
        Ok(job) => Ok(job),
        Err(e) => {
            let failed = sqlx::query(
                "UPDATE import_jobs SET status = 'failed', failure = $1, runner = NULL, lease_until = NULL, updated_at = $2 \
                 WHERE id = $3 AND runner = $4",
            )
            .bind(e.to_string())
            .bind(clock::now_ms())
            .bind(id)
            .bind(&runner.token)
            .execute(db.pool())
            .await;
            if let Err(recording) = failed {
                tracing::error!(job = id, error = %recording, "could not record that the import failed");
            }
            Err(e)
        }
    }
}

async fn run_batches(
    db: &Db,
    actor: Actor<'_>,
    runner: &Runner,
    pass: Pass,
    progress: &mut impl FnMut(&Job),
) -> Result<Job> {
    let id = runner.id;
    let mut conn = db.pool().acquire().await?;
    let job = load(&mut conn, id).await?;
    let (content,): (Vec<u8>,) = sqlx::query_as("SELECT content FROM import_jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    let utc_offset_minutes = network::utc_offset_minutes(&mut conn, job.dealer_id).await?;
    drop(conn);
    let sheet = source::read(job.format, &content)?;
    let (_, columns) = mapping::resolve(job.kind, &sheet.header, &job.mapping)?;
    let ctx = Context {
        job_id: id,
        dealer_id: job.dealer_id,
        kind: job.kind,
        columns: &columns,
        dry_run: job.dry_run,
        utc_offset_minutes,
        actor,
    };
    let start = sheet.rows.partition_point(|r| r.line <= job.last_line);
    for (committed, batch) in sheet.rows[start..].chunks(BATCH_ROWS).enumerate() {
        if pass.max_batches.is_some_and(|max| committed >= max) {
            return release(db, runner).await;
        }
        let job = commit_batch(db, &ctx, &runner.token, batch).await?;
        progress(&job);
    }
    finish(db, &ctx, &runner.token).await
}

/// Resumes every job whose runner died (running, its lease run out), as the `imports`
/// worker, each to its end; returns how many it finished. A job another runner takes first is
/// left to it.
pub async fn resume_abandoned(db: &Db) -> Result<usize> {
    let ids: Vec<(i64,)> = sqlx::query_as(
        "SELECT id FROM import_jobs WHERE status = 'running' AND lease_until < $1 ORDER BY id",
    )
    .bind(clock::now_ms())
    .fetch_all(db.pool())
    .await?;
    let mut finished = 0;
    for (id,) in ids {
        let runner = match claim(db, id).await {
            Ok(Claimed::Runner(runner)) => runner,
            Ok(Claimed::Done(_)) | Err(Error::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        };
        run_claimed(
            db,
            Actor::System("imports"),
            runner,
            Pass::default(),
            |_| {},
        )
        .await?;
        finished += 1;
    }
    Ok(finished)
}

/// Imports one batch in one transaction, with the job's progress.
async fn commit_batch(
    db: &Db,
    ctx: &Context<'_>,
    runner: &str,
    batch: &[source::Row],
) -> Result<Job> {
    let mut tx = db.begin_write().await?;
    let now = clock::now_ms();
    let held = sqlx::query("UPDATE import_jobs SET lease_until = $1 WHERE id = $2 AND runner = $3")
        .bind(now + LEASE_MS)
        .bind(ctx.job_id)
        .bind(runner)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if held == 0 {
        return Err(Error::Conflict {
            code: "import_running",
            message: format!("import {} was taken over by another runner", ctx.job_id),
        });
    }
    let (mut created, mut unchanged, mut problems) = (0_i64, 0_i64, Vec::new());
    let mut failed = 0_i64;
    for row in batch {
        match rows::import(&mut tx, ctx, &row.cells).await? {
            Outcome::Created => created += 1,
            Outcome::Unchanged => unchanged += 1,
            Outcome::Refused(errors) => {
                failed += 1;
                problems.extend(errors.into_iter().map(|e| (row.line, e)));
            }
        }
    }
    store_problems(&mut tx, ctx.job_id, &problems).await?;
    let last_line = batch.last().map_or(1, |r| r.line);
    sqlx::query(
        "UPDATE import_jobs SET rows_done = rows_done + $1, rows_created = rows_created + $2, \
         rows_unchanged = rows_unchanged + $3, rows_failed = rows_failed + $4, last_line = $5, updated_at = $6 \
         WHERE id = $7",
    )
    .bind(i64::try_from(batch.len()).unwrap_or(i64::MAX))
    .bind(created)
    .bind(unchanged)
    .bind(failed)
    .bind(last_line)
    .bind(now)
    .bind(ctx.job_id)
    .execute(&mut *tx)
    .await?;
    let job = load(&mut tx, ctx.job_id).await?;
    tx.commit().await?;
    Ok(job)
}

/// Problems per INSERT (6 parameters each).
const PROBLEMS_PER_INSERT: usize = 100;

async fn store_problems(
    conn: &mut AnyConnection,
    job_id: i64,
    problems: &[(i64, FieldError)],
) -> Result<()> {
    for chunk in problems.chunks(PROBLEMS_PER_INSERT) {
        let mut sql =
            Sql::new("INSERT INTO import_errors (job_id, line, field, code, message) VALUES ");
        for (i, (line, e)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push_list([
                Param::Int(job_id),
                Param::Int(*line),
                Param::Text(e.field.clone()),
                Param::Text(e.code.clone()),
                Param::Text(e.message.clone()),
            ]);
        }
        sqlx::query_with(sql.text(), sql.arguments())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Lets go of a job stopped between two batches: pending, for whoever resumes it.
async fn release(db: &Db, runner: &Runner) -> Result<Job> {
    let id = runner.id;
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "UPDATE import_jobs SET status = 'pending', runner = NULL, lease_until = NULL, updated_at = $1 \
         WHERE id = $2 AND runner = $3",
    )
    .bind(clock::now_ms())
    .bind(id)
    .bind(&runner.token)
    .execute(&mut *tx)
    .await?;
    let job = load(&mut tx, id).await?;
    tx.commit().await?;
    Ok(job)
}

/// Marks the job done and writes its one audit entry.
async fn finish(db: &Db, ctx: &Context<'_>, runner: &str) -> Result<Job> {
    let mut tx = db.begin_write().await?;
    let now = clock::now_ms();
    sqlx::query(
        "UPDATE import_jobs SET status = 'done', runner = NULL, lease_until = NULL, finished_at = $1, updated_at = $1 \
         WHERE id = $2 AND runner = $3",
    )
    .bind(now)
    .bind(ctx.job_id)
    .bind(runner)
    .execute(&mut *tx)
    .await?;
    let job = load(&mut tx, ctx.job_id).await?;
    let action = if job.dry_run {
        "import_dry_run"
    } else {
        "import"
    };
    audit::record_as(
        &mut tx,
        &ctx.actor,
        Entry::ok(action, "import_job", job.id, job.dealer_id).with_detail(serde_json::json!({
            "kind": job.kind.as_str(),
            "file_sha256": job.file_sha256,
            "rows": job.rows_total,
            "created": job.rows_created,
            "unchanged": job.rows_unchanged,
            "refused": job.rows_failed,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(job)
}
