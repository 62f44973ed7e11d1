//! The append-only audit log: who read or changed what, and who was refused. Owns `audit_log`;
//! the database itself refuses UPDATE and DELETE on it (triggers in the migrations).
//! Entries hold ids and field names, never personal data, so erasing a person leaves it intact.

use dealer_plugin_runtime::host_api::Denial;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow};
use utoipa::{IntoParams, ToSchema};

use tokio::sync::{mpsc, oneshot};

use crate::access::Caller;
use crate::clock;
use crate::db::{Db, Param, Sql};
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The caller asked for something outside their scope; they were told it does not exist.
    Denied,
}

/// One auditable act.
pub struct Entry<'a> {
    pub action: &'a str,
    pub entity: &'a str,
    pub entity_id: Option<i64>,
    pub dealer_id: Option<i64>,
    pub outcome: Outcome,
    pub detail: serde_json::Value,
}

impl<'a> Entry<'a> {
    pub fn ok(action: &'a str, entity: &'a str, entity_id: i64, dealer_id: i64) -> Self {
        Entry {
            action,
            entity,
            entity_id: Some(entity_id),
            dealer_id: Some(dealer_id),
            outcome: Outcome::Ok,
            detail: serde_json::json!({}),
        }
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// Who acted: staff through their key, a vehicle owner through a link (they have no key), or
/// a background job of the host (named: `scheduler`, `loyalty`, ...). A plugin's attempt on
/// other dealers' records are recorded by [`record_plugin_denials`].
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    Staff(&'a Caller),
    Owner { link_id: i64 },
    System(&'a str),
}

impl Actor<'_> {
    /// The operator, on the host's command line (`dealer-host keys|plugins ...`).
    pub const COMMAND_LINE: Actor<'static> = Actor::System("command-line");

    /// The key the actor used, if any (staff only).
    pub fn key_id(&self) -> Option<i64> {
        match self {
            Actor::Staff(caller) => Some(caller.key_id),
            Actor::Owner { .. } | Actor::System(_) => None,
        }
    }

    /// The owner link the actor used, if any (owners only).
    pub fn link_id(&self) -> Option<i64> {
        match self {
            Actor::Owner { link_id } => Some(*link_id),
            Actor::Staff(_) | Actor::System(_) => None,
        }
    }
}

/// Records what `actor` did: [`record`], [`record_owner`] or [`record_system`].
pub async fn record_as(
    conn: &mut AnyConnection,
    actor: &Actor<'_>,
    entry: Entry<'_>,
) -> Result<()> {
    match actor {
        Actor::Staff(caller) => record(conn, caller, entry).await,
        Actor::Owner { link_id } => record_owner(conn, *link_id, entry).await,
        Actor::System(worker) => record_system(conn, worker, entry).await,
    }
}

/// The actor columns of an audit entry.
struct ActorColumns<'a> {
    key_id: Option<i64>,
    role: &'a str,
    org_id: Option<i64>,
}

pub async fn record(conn: &mut AnyConnection, caller: &Caller, entry: Entry<'_>) -> Result<()> {
    let actor = ActorColumns {
        key_id: Some(caller.key_id),
        role: caller.role.as_str(),
        org_id: Some(caller.org_id),
    };
    insert(conn, actor, entry).await
}

/// Records what a vehicle owner did through a link (they have no key); the link's id goes
/// into the entry's detail.
pub async fn record_owner(
    conn: &mut AnyConnection,
    link_id: i64,
    mut entry: Entry<'_>,
) -> Result<()> {
    if let Some(detail) = entry.detail.as_object_mut() {
        detail.insert("link_id".to_owned(), link_id.into());
    }
    let actor = ActorColumns {
        key_id: None,
        role: "owner",
        org_id: None,
    };
    insert(conn, actor, entry).await
}

/// Records what a background job of the host did (`worker` names it, e.g. `scheduler`).
pub async fn record_system(
    conn: &mut AnyConnection,
    worker: &str,
    mut entry: Entry<'_>,
) -> Result<()> {
    if let Some(detail) = entry.detail.as_object_mut() {
        detail.insert("worker".to_owned(), worker.into());
    }
    let actor = ActorColumns {
        key_id: None,
        role: "system",
        org_id: None,
    };
    insert(conn, actor, entry).await
}

async fn insert(conn: &mut AnyConnection, actor: ActorColumns<'_>, entry: Entry<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor_key_id, actor_role, actor_org_id, action, entity, entity_id, \
         dealer_id, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(clock::now_ms())
    .bind(actor.key_id)
    .bind(actor.role)
    .bind(actor.org_id)
    .bind(entry.action)
    .bind(entry.entity)
    .bind(entry.entity_id)
    .bind(entry.dealer_id)
    .bind(match entry.outcome {
        Outcome::Ok => "ok",
        Outcome::Denied => "denied",
    })
    .bind(entry.detail.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The audit of reads of personal data, written in batches so that a read never waits for,
/// or holds, the database's write lock: a reading request hands its entries over and goes on;
/// one task per host writes whatever has gathered in one multi-row INSERT while the previous
/// batch was being written (a group commit), so a busy host writes fewer, larger batches.
/// [`ReadLog::flush`] waits until everything handed over is stored (the audit log's readers
/// and shutdown call it); entries still queued when the process dies are lost, nothing else.
#[derive(Clone)]
pub struct ReadLog {
    queue: mpsc::Sender<Queued>,
}

enum Queued {
    Read(Row),
    Flush(oneshot::Sender<()>),
}

/// One audit row, owned, as the writer stores it.
struct Row {
    at: i64,
    key_id: Option<i64>,
    role: &'static str,
    org_id: Option<i64>,
    action: &'static str,
    entity: &'static str,
    entity_id: Option<i64>,
    dealer_id: Option<i64>,
    detail: String,
}

/// The most rows one INSERT writes (10 parameters each, well below both backends' limits).
const READ_BATCH: usize = 500;
/// Reads waiting to be written before a reading request waits for the writer.
const READ_QUEUE: usize = 10_000;
/// Attempts to write a batch before its entries are given up (and logged as lost).
const READ_ATTEMPTS: u32 = 5;

impl ReadLog {
    /// Starts the writer on the current tokio runtime; it ends when the last handle is dropped.
    pub fn spawn(db: Db) -> ReadLog {
        let (queue, received) = mpsc::channel(READ_QUEUE);
        tokio::spawn(write_reads(db, received));
        ReadLog { queue }
    }

    /// Audits that `caller` read a record (`entry`). Waits only when the queue is full.
    pub async fn record(&self, caller: &Caller, entry: Entry<'static>) {
        let row = Row {
            at: clock::now_ms(),
            key_id: Some(caller.key_id),
            role: caller.role.as_str(),
            org_id: Some(caller.org_id),
            action: entry.action,
            entity: entry.entity,
            entity_id: entry.entity_id,
            dealer_id: entry.dealer_id,
            detail: entry.detail.to_string(),
        };
        if self.queue.send(Queued::Read(row)).await.is_err() {
            tracing::error!(
                entity = entry.entity,
                "the read audit writer has stopped; a read went unaudited"
            );
        }
    }

    /// Audits that `caller` read each of `records` (id, dealer) of `entity`, as `read`.
    pub async fn record_reads(
        &self,
        caller: &Caller,
        entity: &'static str,
        records: Vec<(i64, i64)>,
    ) {
        for (id, dealer_id) in records {
            self.record(caller, Entry::ok("read", entity, id, dealer_id))
                .await;
        }
    }

    /// Waits until every read handed over before this call is stored.
    pub async fn flush(&self) {
        let (done, stored) = oneshot::channel();
        if self.queue.send(Queued::Flush(done)).await.is_ok() {
            stored.await.ok();
        }
    }
}

async fn write_reads(db: Db, mut received: mpsc::Receiver<Queued>) {
    let mut rows = Vec::new();
    let mut flushes = Vec::new();
    while let Some(first) = received.recv().await {
        let mut next = Some(first);
        while let Some(queued) = next.take() {
            match queued {
                Queued::Read(row) => rows.push(row),
                Queued::Flush(done) => flushes.push(done),
            }
            if rows.len() < READ_BATCH {
                next = received.try_recv().ok();
            }
        }
        let mut attempt = 1;
        while !rows.is_empty() {
            match insert_rows(&db, &rows).await {
                Ok(()) => rows.clear(),
                Err(e) if attempt < READ_ATTEMPTS => {
                    tracing::warn!(error = %e, rows = rows.len(), attempt, "could not write read audit entries; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1 << attempt)).await;
                    attempt += 1;
                }
                Err(e) => {
                    tracing::error!(error = %e, rows = rows.len(), "read audit entries lost");
                    rows.clear();
                }
            }
        }
        for done in flushes.drain(..) {
            done.send(()).ok();
        }
    }
}

async fn insert_rows(db: &Db, rows: &[Row]) -> Result<()> {
    let mut sql = Sql::new(
        "INSERT INTO audit_log (at, actor_key_id, actor_role, actor_org_id, action, entity, \
         entity_id, dealer_id, outcome, detail) VALUES ",
    );
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push_list([
            Param::Int(row.at),
            Param::OptInt(row.key_id),
            Param::Text(row.role.to_owned()),
            Param::OptInt(row.org_id),
            Param::Text(row.action.to_owned()),
            Param::Text(row.entity.to_owned()),
            Param::OptInt(row.entity_id),
            Param::OptInt(row.dealer_id),
            Param::Text("ok".to_owned()),
            Param::Text(row.detail.clone()),
        ]);
    }
    sqlx::query_with(sql.text(), sql.arguments())
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Records an attempt to reach a record outside the caller's scope.
pub async fn record_denial(conn: &mut AnyConnection, denial: &crate::error::Denial) -> Result<()> {
    let entry = Entry {
        outcome: Outcome::Denied,
        ..Entry::ok("access", denial.entity, denial.id, denial.dealer_id)
    };
    let actor = ActorColumns {
        key_id: Some(denial.key_id),
        role: denial.role,
        org_id: Some(denial.org_id),
    };
    insert(conn, actor, entry).await
}

/// How many of a run's denied look-ups an audit entry names; the rest are counted.
const DENIAL_EXAMPLES: usize = 5;

/// Records a plugin run's look-ups of records of other dealers (the plugin was told they do
/// not exist) as one entry, however many there were: the first denied record in the entry's
/// columns, the count and the first few in its detail. The actor is the plugin, acting for
/// `calling_dealer`. Nothing is written for a run without denials.
pub async fn record_plugin_denials(
    conn: &mut AnyConnection,
    plugin: &str,
    calling_dealer: i64,
    denials: &[Denial],
) -> Result<()> {
    let Some(first) = denials.first() else {
        return Ok(());
    };
    let examples: Vec<_> = denials
        .iter()
        .take(DENIAL_EXAMPLES)
        .map(|d| serde_json::json!({ "entity": d.entity, "id": d.id, "dealer_id": d.owner_dealer_id }))
        .collect();
    sqlx::query(
        "INSERT INTO audit_log (at, actor_key_id, actor_role, actor_org_id, action, entity, entity_id, \
         dealer_id, outcome, detail) VALUES ($1, NULL, 'plugin', $2, 'plugin_lookup', $3, $4, $5, 'denied', $6)",
    )
    .bind(clock::now_ms())
    .bind(calling_dealer)
    .bind(first.entity)
    .bind(first.id)
    .bind(first.owner_dealer_id)
    .bind(
        serde_json::json!({ "plugin": plugin, "count": denials.len(), "examples": examples })
            .to_string(),
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor_key_id: Option<i64>,
    /// The staff member the actor's key (or console login) acts as.
    pub actor_staff_id: Option<i64>,
    pub actor_role: String,
    pub actor_org_id: Option<i64>,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<i64>,
    pub dealer_id: Option<i64>,
    /// `ok`, or `denied` when the caller asked for a record outside their scope.
    pub outcome: String,
    pub detail: serde_json::Value,
}

#[derive(FromRow)]
struct AuditRow {
    id: i64,
    at: i64,
    actor_key_id: Option<i64>,
    actor_staff_id: Option<i64>,
    actor_role: String,
    actor_org_id: Option<i64>,
    action: String,
    entity: String,
    entity_id: Option<i64>,
    dealer_id: Option<i64>,
    outcome: String,
    detail: String,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    pub entity: Option<String>,
    pub entity_id: Option<i64>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    /// Only entries at or after this time.
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Only entries before this time.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

/// Entries about records of dealers in the caller's scope, newest first, `limit + 1` at most
/// (the extra row tells the caller there is a next page), every read handed to `reads` before
/// the call among them.
pub async fn list(
    conn: &mut AnyConnection,
    reads: &ReadLog,
    caller: &Caller,
    filter: &AuditFilter,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEntry>> {
    reads.flush().await;
    let mut sql = Sql::new(
        "SELECT id, at, actor_key_id, \
         (SELECT k.staff_id FROM api_keys k WHERE k.id = audit_log.actor_key_id) AS actor_staff_id, \
         actor_role, actor_org_id, action, entity, entity_id, dealer_id, \
         outcome, detail FROM audit_log WHERE 1 = 1",
    );
    caller.scope(&mut sql, "dealer_id");
    if let Some(e) = &filter.entity {
        sql.push(" AND entity = ").bind(Param::Text(e.clone()));
    }
    if let Some(id) = filter.entity_id {
        sql.push(" AND entity_id = ").bind(Param::Int(id));
    }
    if let Some(a) = &filter.action {
        sql.push(" AND action = ").bind(Param::Text(a.clone()));
    }
    if let Some(o) = &filter.outcome {
        sql.push(" AND outcome = ").bind(Param::Text(o.clone()));
    }
    if let Some(from) = filter.from {
        sql.push(" AND at >= ")
            .bind(Param::Int(from.timestamp_millis()));
    }
    if let Some(until) = filter.until {
        sql.push(" AND at < ")
            .bind(Param::Int(until.timestamp_millis()));
    }
    if let Some(b) = before_id {
        sql.push(" AND id < ").bind(Param::Int(b));
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .bind(Param::Int(limit + 1));
    let rows: Vec<AuditRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| AuditEntry {
            id: r.id,
            at: clock::to_datetime(r.at),
            actor_key_id: r.actor_key_id,
            actor_staff_id: r.actor_staff_id,
            actor_role: r.actor_role,
            actor_org_id: r.actor_org_id,
            action: r.action,
            entity: r.entity,
            entity_id: r.entity_id,
            dealer_id: r.dealer_id,
            outcome: r.outcome,
            detail: serde_json::from_str(&r.detail).unwrap_or_default(),
        })
        .collect())
}
