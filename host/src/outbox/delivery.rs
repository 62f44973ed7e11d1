//! Delivery: the worker that sends due messages through each channel's [`Sender`], and the
//! admins' view of what was sent.
//!
//! [`deliver_due`] claims due messages with a lease ([`crate::queue`]: `FOR UPDATE SKIP
//! LOCKED` on PostgreSQL, so replicas claim disjoint messages; SQLite's single writer
//! serialises claims), sends them, and marks each sent, or failed with its error: a retryable
//! failure is tried again after a backoff, up to [`MAX_ATTEMPTS`]; a permanent one is not.
//! A message is sent twice only if its worker died after sending and before marking it, and
//! its lease ran out.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow};
use utoipa::{IntoParams, ToSchema};

use crate::access::Caller;
use crate::db::{Param, Sql};
use crate::error::Result;
use crate::plugins::host_api::CHANNELS;
use crate::queue::{self, Queue};
use crate::{Db, clock};

/// Attempts before a message that keeps failing is given up.
pub const MAX_ATTEMPTS: i64 = queue::MAX_ATTEMPTS;
/// The outbox as a work queue: messages claimed 50 at a time, for five minutes.
const QUEUE: Queue = Queue {
    table: "outbox",
    columns: "id, dealer_id, channel, recipient, template, data, attempts",
    lease: Duration::from_secs(5 * 60),
    batch: 50,
};
/// Longest error kept with a message, in characters.
const ERROR_MAX: usize = 500;

/// A claimed message, as a sender gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub id: i64,
    pub dealer_id: i64,
    pub channel: String,
    /// `customer:<id>`, `staff:<id>` or `role:<name>`: whom to resolve, never an address.
    pub recipient: String,
    pub template: String,
    pub data: Vec<(String, String)>,
    /// 1 for the first try.
    pub attempt: i64,
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Worth trying again later (a gateway timeout, a rate limit).
    Retryable(String),
    /// Never going to work (no such recipient, a refused template).
    Permanent(String),
}

pub type SendFuture<'a> =
    Pin<Box<dyn Future<Output = std::result::Result<(), SendError>> + Send + 'a>>;

/// Delivers messages of one channel (an SMS gateway, WeChat, e-mail, the app, the task list).
pub trait Sender: Send + Sync {
    fn send<'a>(&'a self, message: &'a Outgoing) -> SendFuture<'a>;
}

/// The default sender of every channel: a structured log line, with the message's ids,
/// channel, recipient reference and template, never its data (names, messages) nor any phone
/// number. The delivery itself is recorded on the message.
pub struct LogSink;

impl Sender for LogSink {
    fn send<'a>(&'a self, message: &'a Outgoing) -> SendFuture<'a> {
        tracing::info!(
            outbox_id = message.id,
            dealer_id = message.dealer_id,
            channel = %message.channel,
            recipient = %message.recipient,
            template = %message.template,
            attempt = message.attempt,
            "outbox message delivered to the log"
        );
        Box::pin(async { Ok(()) })
    }
}

/// The sender of each channel.
#[derive(Clone)]
pub struct Senders {
    by_channel: HashMap<String, Arc<dyn Sender>>,
}

impl Senders {
    /// [`LogSink`] for every channel.
    pub fn log_only() -> Senders {
        let sink: Arc<dyn Sender> = Arc::new(LogSink);
        Senders {
            by_channel: CHANNELS
                .iter()
                .map(|c| ((*c).to_owned(), sink.clone()))
                .collect(),
        }
    }

    /// These senders with `sender` for `channel`.
    pub fn with(mut self, channel: &str, sender: Arc<dyn Sender>) -> Senders {
        self.by_channel.insert(channel.to_owned(), sender);
        self
    }

    fn get(&self, channel: &str) -> Option<&Arc<dyn Sender>> {
        self.by_channel.get(channel)
    }
}

/// What one [`deliver_due`] call did.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct DeliveryReport {
    pub claimed: u64,
    pub sent: u64,
    /// Failed for now; tried again after a backoff.
    pub retrying: u64,
    /// Given up: a permanent failure, or the last attempt.
    pub failed: u64,
}

#[derive(FromRow)]
struct ClaimedRow {
    id: i64,
    dealer_id: i64,
    channel: String,
    recipient: String,
    template: String,
    data: String,
    attempts: i64,
}

/// Claims the next due messages for `worker` ([`queue::claim`]).
async fn claim(db: &Db, worker: &str, now: i64) -> Result<Vec<Outgoing>> {
    let rows: Vec<ClaimedRow> = queue::claim(db, &QUEUE, worker, now, None).await?;
    let mut claimed: Vec<Outgoing> = rows
        .into_iter()
        .map(|r| Outgoing {
            id: r.id,
            dealer_id: r.dealer_id,
            channel: r.channel,
            recipient: r.recipient,
            template: r.template,
            data: super::decode_data(&r.data),
            attempt: r.attempts + 1,
        })
        .collect();
    claimed.sort_by_key(|m| m.id);
    Ok(claimed)
}

/// Records the outcome of `message`'s attempt, if `worker` still holds its lease.
async fn settle(
    db: &Db,
    worker: &str,
    message: &Outgoing,
    outcome: std::result::Result<(), SendError>,
    now: i64,
) -> Result<Settled> {
    let (status, error, next, settled) = match outcome {
        Ok(()) => ("sent", None, now, Settled::Sent),
        Err(SendError::Retryable(e)) if message.attempt < MAX_ATTEMPTS => (
            "pending",
            Some(e),
            now + queue::backoff(message.attempt),
            Settled::Retrying,
        ),
        Err(SendError::Retryable(e) | SendError::Permanent(e)) => {
            ("failed", Some(e), now, Settled::Failed)
        }
    };
    let error = error.map(|e| e.chars().take(ERROR_MAX).collect::<String>());
    let mut tx = db.begin_write().await?;
    let updated = sqlx::query(
        "UPDATE outbox SET status = $1, attempts = $2, last_error = $3, next_attempt_at = $4, \
         sent_at = $5, locked_by = NULL, locked_until = NULL WHERE id = $6 AND locked_by = $7",
    )
    .bind(status)
    .bind(message.attempt)
    .bind(error.as_deref())
    .bind(next)
    .bind((status == "sent").then_some(now))
    .bind(message.id)
    .bind(worker)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(
        "INSERT INTO outbox_attempts (outbox_id, attempt, worker, outcome, error, at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(message.id)
    .bind(message.attempt)
    .bind(worker)
    .bind(if updated == 1 {
        settled.as_str()
    } else {
        "lease_lost"
    })
    .bind(error.as_deref())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(settled)
}

#[derive(Clone, Copy)]
enum Settled {
    Sent,
    Retrying,
    Failed,
}

impl Settled {
    fn as_str(self) -> &'static str {
        match self {
            Settled::Sent => "sent",
            Settled::Retrying => "retrying",
            Settled::Failed => "failed",
        }
    }
}

/// Delivers every message due at `now`, batch after batch, through its channel's sender;
/// `worker` names this worker in the leases (unique per replica and loop). A message of a
/// channel without a sender fails permanently.
pub async fn deliver_due(
    db: &Db,
    senders: &Senders,
    worker: &str,
    now: i64,
) -> Result<DeliveryReport> {
    let mut report = DeliveryReport::default();
    loop {
        let batch = claim(db, worker, now).await?;
        if batch.is_empty() {
            return Ok(report);
        }
        for message in batch {
            report.claimed += 1;
            let outcome = match senders.get(&message.channel) {
                Some(sender) => sender.send(&message).await,
                None => Err(SendError::Permanent(format!(
                    "no sender for channel `{}`",
                    message.channel
                ))),
            };
            match settle(db, worker, &message, outcome, now).await? {
                Settled::Sent => report.sent += 1,
                Settled::Retrying => report.retrying += 1,
                Settled::Failed => report.failed += 1,
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting to be sent (or to be tried again).
    Pending,
    Sent,
    /// Given up.
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Sent => "sent",
            Status::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "sent" => Status::Sent,
            "failed" => Status::Failed,
            _ => Status::Pending,
        }
    }
}

/// A message as the outbox holds it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Entry {
    pub id: i64,
    pub dealer_id: i64,
    pub channel: String,
    pub recipient: String,
    pub template: String,
    /// The template's values.
    #[schema(value_type = Vec<Vec<String>>)]
    pub data: Vec<(String, String)>,
    pub status: Status,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    pub status: Option<Status>,
    pub channel: Option<String>,
}

#[derive(FromRow)]
struct EntryRow {
    id: i64,
    dealer_id: i64,
    channel: String,
    recipient: String,
    template: String,
    data: String,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    next_attempt_at: i64,
    sent_at: Option<i64>,
    created_at: i64,
}

/// Messages of the caller's scope, newest first, `limit + 1` at most; the page continues
/// below `before_id`.
pub async fn list(
    conn: &mut AnyConnection,
    caller: &Caller,
    filter: &Filter,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<Entry>> {
    let mut sql = Sql::new(
        "SELECT id, dealer_id, channel, recipient, template, data, status, attempts, last_error, \
         next_attempt_at, sent_at, created_at FROM outbox WHERE 1 = 1",
    );
    caller.scope(&mut sql, "dealer_id");
    if let Some(status) = filter.status {
        sql.push(" AND status = ")
            .bind(Param::Text(status.as_str().into()));
    }
    if let Some(channel) = &filter.channel {
        sql.push(" AND channel = ")
            .bind(Param::Text(channel.clone()));
    }
    if let Some(before) = before_id {
        sql.push(" AND id < ").bind(Param::Int(before));
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .bind(Param::Int(limit + 1));
    let rows: Vec<EntryRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let status = Status::parse(&r.status);
            Entry {
                id: r.id,
                dealer_id: r.dealer_id,
                channel: r.channel,
                recipient: r.recipient,
                template: r.template,
                data: super::decode_data(&r.data),
                next_attempt_at: (status == Status::Pending)
                    .then(|| clock::to_datetime(r.next_attempt_at)),
                status,
                attempts: r.attempts,
                last_error: r.last_error,
                sent_at: clock::opt_datetime(r.sent_at),
                created_at: clock::to_datetime(r.created_at),
            }
        })
        .collect())
}
