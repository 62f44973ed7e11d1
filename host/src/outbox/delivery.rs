//! Delivery: the worker that sends due messages through each channel's [`Sender`], and the
//! admins' view of what was sent.
//!
//! [`deliver_due`] claims due messages with a lease ([`crate::queue`]: `FOR UPDATE SKIP
//! LOCKED` on PostgreSQL, so replicas claim disjoint messages; SQLite's single writer
//! serialises claims), checks a marketing message's consent again (an owner who opted out
//! since is `refused`), resolves its recipient ([`super::recipients`]; nobody with an address
//! on the channel is `undeliverable`), makes its owner-page links absolute, sends it, and marks
//! each sent with the provider's answer, or failed with its error: a retryable failure is tried
//! again after a backoff, up to [`MAX_ATTEMPTS`]; a permanent one is not.
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

use super::recipients::{self, Address, Resolved};
use super::{Purpose, Refusal};
use crate::access::Caller;
use crate::customers::consent;
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
    columns: "id, dealer_id, channel, recipient, template, data, purpose, attempts",
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
    /// `customer:<id>`, `staff:<id>` or `role:<name>[@<unit code>]`, as enqueued.
    pub recipient: String,
    /// Whom it reaches, resolved when it is sent: at least one.
    pub to: Vec<Address>,
    pub template: String,
    /// The template's values; links to the owner's pages are absolute.
    pub data: Vec<(String, String)>,
    pub purpose: Purpose,
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

/// A send's outcome: the provider's answer (its message id, say), kept with the attempt.
pub type SendFuture<'a> =
    Pin<Box<dyn Future<Output = std::result::Result<String, SendError>> + Send + 'a>>;

/// Delivers messages of one channel (an SMS gateway, WeChat, e-mail, the app, the task list)
/// to every address of [`Outgoing::to`].
pub trait Sender: Send + Sync {
    fn send<'a>(&'a self, message: &'a Outgoing) -> SendFuture<'a>;
}

/// The default sender of every channel: a structured log line, with the message's ids,
/// channel, recipient reference, template and how many people it reached, never its data
/// (names, messages) nor any address. The delivery itself is recorded on the message.
pub struct LogSink;

impl Sender for LogSink {
    fn send<'a>(&'a self, message: &'a Outgoing) -> SendFuture<'a> {
        tracing::info!(
            outbox_id = message.id,
            dealer_id = message.dealer_id,
            channel = %message.channel,
            recipient = %message.recipient,
            template = %message.template,
            people = message.to.len(),
            attempt = message.attempt,
            "outbox message delivered to the log"
        );
        Box::pin(async { Ok("logged".to_owned()) })
    }
}

/// The sender of each channel, and the host's public address that links are made absolute
/// with.
#[derive(Clone)]
pub struct Senders {
    by_channel: HashMap<String, Arc<dyn Sender>>,
    public_url: String,
}

/// The public address of a host nobody configured: its default listening address.
const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

impl Senders {
    /// [`LogSink`] for every channel.
    pub fn log_only() -> Senders {
        let sink: Arc<dyn Sender> = Arc::new(LogSink);
        Senders {
            by_channel: CHANNELS
                .iter()
                .map(|c| ((*c).to_owned(), sink.clone()))
                .collect(),
            public_url: DEFAULT_PUBLIC_URL.to_owned(),
        }
    }

    /// These senders making links absolute from `url` (`https://crm.example.cn`).
    pub fn public_url(mut self, url: &str) -> Senders {
        self.public_url = url.trim_end_matches('/').to_owned();
        self
    }

    /// A link to an owner's page (`/o/…`) as the owner gets it.
    pub fn absolute(&self, path: &str) -> String {
        format!("{}{path}", self.public_url)
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
    /// Marketing to an owner who withdrew consent since it was enqueued.
    pub refused: u64,
    /// Nobody the recipient names has an address on the channel.
    pub undeliverable: u64,
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
    purpose: String,
    attempts: i64,
}

/// Claims the next due messages for `worker` ([`queue::claim`]), not yet resolved.
async fn claim(db: &Db, worker: &str, now: i64) -> Result<Vec<Outgoing>> {
    let rows: Vec<ClaimedRow> = queue::claim(db, &QUEUE, worker, now, None).await?;
    let mut claimed: Vec<Outgoing> = rows
        .into_iter()
        .map(|r| Outgoing {
            id: r.id,
            dealer_id: r.dealer_id,
            channel: r.channel,
            recipient: r.recipient,
            to: Vec::new(),
            template: r.template,
            data: super::decode_data(&r.data),
            purpose: Purpose::parse(&r.purpose),
            attempt: r.attempts + 1,
        })
        .collect();
    claimed.sort_by_key(|m| m.id);
    Ok(claimed)
}

/// What a claimed message comes to before any sender sees it.
enum Prepared {
    Send(Outgoing),
    Refused(Outgoing, Refusal),
    Undeliverable(Outgoing, String),
}

/// Checks `message`'s consent again, resolves whom it reaches and makes its links absolute.
async fn prepare(db: &Db, senders: &Senders, mut message: Outgoing) -> Result<Prepared> {
    let mut conn = db.pool().acquire().await?;
    if message.purpose == Purpose::Marketing
        && let Some(customer) = super::customer_of(&message.recipient)
        && !consent::marketing_allowed(&mut conn, customer).await?
    {
        return Ok(Prepared::Refused(message, Refusal::OptedOut));
    }
    match recipients::resolve(
        &mut conn,
        message.dealer_id,
        &message.recipient,
        &message.channel,
    )
    .await?
    {
        Resolved::Undeliverable(reason) => Ok(Prepared::Undeliverable(message, reason)),
        Resolved::To(to) => {
            message.to = to;
            for (_, value) in &mut message.data {
                if value.starts_with("/o/") {
                    *value = senders.absolute(value);
                }
            }
            Ok(Prepared::Send(message))
        }
    }
}

/// What became of one attempt.
enum Outcome {
    Sent(String),
    Failed(SendError),
    Refused(Refusal),
    Undeliverable(String),
}

/// Records the outcome of `message`'s attempt, if `worker` still holds its lease.
async fn settle(
    db: &Db,
    worker: &str,
    message: &Outgoing,
    outcome: Outcome,
    now: i64,
) -> Result<Settled> {
    let mut answer = None;
    let mut reason = None;
    let (status, error, next, settled) = match outcome {
        Outcome::Sent(said) => {
            answer = Some(said.chars().take(ERROR_MAX).collect::<String>());
            ("sent", None, now, Settled::Sent)
        }
        Outcome::Refused(refusal) => {
            reason = Some(refusal.as_str().to_owned());
            ("refused", None, now, Settled::Refused)
        }
        Outcome::Undeliverable(why) => {
            reason = Some("no_address".to_owned());
            ("undeliverable", Some(why), now, Settled::Undeliverable)
        }
        Outcome::Failed(e) => match e {
            SendError::Retryable(e) if message.attempt < MAX_ATTEMPTS => (
                "pending",
                Some(e),
                now + queue::backoff(message.attempt),
                Settled::Retrying,
            ),
            SendError::Retryable(e) | SendError::Permanent(e) => {
                ("failed", Some(e), now, Settled::Failed)
            }
        },
    };
    let addresses = (!message.to.is_empty()).then(|| {
        message
            .to
            .iter()
            .map(|a| a.address.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    });
    let error = error.map(|e| e.chars().take(ERROR_MAX).collect::<String>());
    let mut tx = db.begin_write().await?;
    let updated = sqlx::query(
        "UPDATE outbox SET status = $1, attempts = $2, last_error = $3, next_attempt_at = $4, \
         sent_at = $5, reason = COALESCE($6, reason), address = COALESCE($7, address), \
         locked_by = NULL, locked_until = NULL WHERE id = $8 AND locked_by = $9",
    )
    .bind(status)
    .bind(message.attempt)
    .bind(error.as_deref())
    .bind(next)
    .bind((status == "sent").then_some(now))
    .bind(reason.as_deref())
    .bind(addresses.as_deref())
    .bind(message.id)
    .bind(worker)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(
        "INSERT INTO outbox_attempts (outbox_id, attempt, worker, outcome, error, answer, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
    .bind(answer.as_deref())
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
    Refused,
    Undeliverable,
}

impl Settled {
    /// The attempt's outcome as `outbox_attempts` keeps it: a message refused or undeliverable
    /// was given up without trying a provider.
    fn as_str(self) -> &'static str {
        match self {
            Settled::Sent => "sent",
            Settled::Retrying => "retrying",
            Settled::Failed | Settled::Refused | Settled::Undeliverable => "failed",
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
        for claimed in batch {
            report.claimed += 1;
            let (message, outcome) = match prepare(db, senders, claimed).await? {
                Prepared::Refused(m, refusal) => (m, Outcome::Refused(refusal)),
                Prepared::Undeliverable(m, why) => (m, Outcome::Undeliverable(why)),
                Prepared::Send(m) => {
                    let sent = match senders.get(&m.channel) {
                        Some(sender) => sender.send(&m).await,
                        None => Err(SendError::Permanent(format!(
                            "no sender for channel `{}`",
                            m.channel
                        ))),
                    };
                    let outcome = match sent {
                        Ok(answer) => Outcome::Sent(answer),
                        Err(e) => Outcome::Failed(e),
                    };
                    (m, outcome)
                }
            };
            match settle(db, worker, &message, outcome, now).await? {
                Settled::Sent => report.sent += 1,
                Settled::Retrying => report.retrying += 1,
                Settled::Failed => report.failed += 1,
                Settled::Refused => report.refused += 1,
                Settled::Undeliverable => report.undeliverable += 1,
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
    /// Not sent, by the owner's consent or the dealer's cap (`reason`).
    Refused,
    /// Nobody the recipient names has an address on the channel (`last_error` says why).
    Undeliverable,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Sent => "sent",
            Status::Failed => "failed",
            Status::Refused => "refused",
            Status::Undeliverable => "undeliverable",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "sent" => Status::Sent,
            "failed" => Status::Failed,
            "refused" => Status::Refused,
            "undeliverable" => Status::Undeliverable,
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
    pub purpose: Purpose,
    pub recipient: String,
    /// Where it went, once resolved (admins only see the outbox).
    pub address: Option<String>,
    pub template: String,
    /// The template's values.
    #[schema(value_type = Vec<Vec<String>>)]
    pub data: Vec<(String, String)>,
    pub status: Status,
    /// Why a message was refused (`no_marketing_consent`, `opted_out`, `frequency_cap`) or
    /// undeliverable (`no_address`).
    pub reason: Option<String>,
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
    purpose: String,
    address: Option<String>,
    status: String,
    reason: Option<String>,
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
        "SELECT id, dealer_id, channel, recipient, template, data, purpose, address, status, \
         reason, attempts, last_error, next_attempt_at, sent_at, created_at FROM outbox WHERE 1 = 1",
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
                purpose: Purpose::parse(&r.purpose),
                recipient: r.recipient,
                address: r.address,
                template: r.template,
                data: super::decode_data(&r.data),
                reason: r.reason,
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

/// One delivery attempt of a message, with the provider's answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = OutboxAttempt)]
pub struct Attempt {
    pub attempt: i64,
    pub worker: String,
    /// `sent`, `retrying`, `failed` or `lease_lost`.
    pub outcome: String,
    pub error: Option<String>,
    /// What the provider answered (its message id, say).
    pub answer: Option<String>,
    pub at: DateTime<Utc>,
}

/// The attempts of message `id` of the caller's scope, oldest first; 404 outside it.
pub async fn attempts(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<Vec<Attempt>> {
    let found: Option<(i64, String)> = sqlx::query_as(
        "SELECT o.dealer_id, u.path FROM outbox o JOIN org_units u ON u.id = o.dealer_id \
         WHERE o.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    crate::access::in_scope(caller, "message", id, found)?;
    let rows: Vec<AttemptRow> = sqlx::query_as(
        "SELECT attempt, worker, outcome, error, answer, at FROM outbox_attempts \
         WHERE outbox_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Attempt {
            attempt: r.attempt,
            worker: r.worker,
            outcome: r.outcome,
            error: r.error,
            answer: r.answer,
            at: clock::to_datetime(r.at),
        })
        .collect())
}

#[derive(FromRow)]
struct AttemptRow {
    attempt: i64,
    worker: String,
    outcome: String,
    error: Option<String>,
    answer: Option<String>,
    at: i64,
}
