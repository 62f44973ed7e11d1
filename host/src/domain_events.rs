//! Domain events: the transactional outbox of what a committed change sets off beyond itself
//! (a delivery's or a settlement's points, the new owner's care plan, a partner's event, the
//! points for a survey answer). Owns `domain_events`.
//!
//! A use case [`record`]s its follow-ups in its own transaction, so they exist exactly when
//! their cause committed: a crash after the commit loses none. Each is keyed by what it is and
//! its cause (`points:sales_order:42`), so recording it again stores nothing. They run outside
//! any transaction (each calls a plugin): right after the commit by the request that caused
//! them ([`run_now`], so the owner sees the points at once), and in any case by the worker
//! ([`run_due`]), which takes what is still pending, including retries. Both claim a
//! follow-up with a lease ([`crate::queue`]), so it runs once across requests and replicas;
//! a failed run is tried again after a backoff, up to [`queue::MAX_ATTEMPTS`]. Each
//! follow-up is itself once per cause (loyalty causes, integration event keys, reminder
//! dedupe keys), so a run repeated after a lease ran out changes nothing twice.

use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow};

use crate::error::{Error, Result};
use crate::integrations::{self, DomainEvent};
use crate::loyalty::{self, LoyaltyEvent};
use crate::plugins::dispatch::Plugins;
use crate::queue::{self, Queue};
use crate::{Db, clock, reminders};

/// The domain events as a work queue: claimed 20 at a time, for five minutes (a follow-up
/// is a plugin call, bounded far below that).
const QUEUE: Queue = Queue {
    table: "domain_events",
    columns: "id, kind, cause_key, payload, attempts",
    lease: Duration::from_secs(5 * 60),
    batch: 20,
};
/// Longest error kept with a follow-up, in characters.
const ERROR_MAX: usize = 500;

/// Something a committed change sets off.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
pub enum FollowUp {
    /// Points for the cause, as the dealer's loyalty plugin decides them.
    Points(LoyaltyEvent),
    /// The vehicle's care plan (first service, anniversaries, insurance renewal), planned by
    /// the reminders plugin as of `today` (the cause's business date) and `at`.
    CarePlan {
        vehicle_id: i64,
        today: NaiveDate,
        at: i64,
    },
    /// An event for the dealer's integration plugin (a partner).
    Partner(DomainEvent),
}

impl FollowUp {
    /// What it is and what caused it, unique: `points:sales_order:42`,
    /// `care_plan:sales_order:42`, `partner:vehicle-delivered:sales_order:42`.
    fn cause_key(&self, cause: &str) -> String {
        match self {
            FollowUp::Points(_) => format!("points:{cause}"),
            FollowUp::CarePlan { .. } => format!("care_plan:{cause}"),
            FollowUp::Partner(event) => format!("partner:{}:{cause}", event.kind),
        }
    }
}

/// Records `follow_ups` of `cause` (`sales_order:42`) at `dealer_id` on the cause's
/// transaction, due now, and answers the ids of those new, for [`run_now`]. One recorded
/// before (the same follow-up of the same cause) is not recorded again.
pub async fn record(
    conn: &mut AnyConnection,
    dealer_id: i64,
    cause: &str,
    follow_ups: &[FollowUp],
) -> Result<Vec<i64>> {
    let now = clock::now_ms();
    let mut recorded = Vec::new();
    for follow_up in follow_ups {
        let tagged = serde_json::to_value(follow_up).unwrap_or_default();
        let id: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO domain_events (dealer_id, kind, cause_key, payload, next_attempt_at, \
             created_at) VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (cause_key) DO NOTHING \
             RETURNING id",
        )
        .bind(dealer_id)
        .bind(tagged["kind"].as_str().unwrap_or_default())
        .bind(follow_up.cause_key(cause))
        .bind(tagged["payload"].to_string())
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
        recorded.extend(id.map(|(id,)| id));
    }
    Ok(recorded)
}

/// What one [`run_due`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    pub claimed: u64,
    pub done: u64,
    /// Failed for now; tried again after a backoff.
    pub retrying: u64,
    /// Given up: a permanent failure, or the last attempt.
    pub failed: u64,
}

#[derive(FromRow)]
struct ClaimedRow {
    id: i64,
    kind: String,
    cause_key: String,
    payload: String,
    attempts: i64,
}

/// Runs the follow-ups `ids` a request recorded, right after their cause committed, those
/// not taken by a worker meanwhile. Never fails: what fails is logged and left to the worker.
pub async fn run_now(db: &Db, plugins: &Plugins, ids: &[i64]) {
    if ids.is_empty() || db.crashes_after_commit() {
        return;
    }
    let worker = format!("request-{:016x}", rand::random::<u64>());
    if let Err(error) = run_claimed(db, plugins, &worker, clock::now_ms(), Some(ids)).await {
        tracing::error!(%error, ?ids, "follow-ups of a change failed; the worker retries them");
    }
}

/// Runs every follow-up due at `now`, batch after batch; `worker` names this worker in the
/// leases (unique per replica and loop).
pub async fn run_due(db: &Db, plugins: &Plugins, worker: &str, now: i64) -> Result<RunReport> {
    let mut report = RunReport::default();
    loop {
        let batch = run_claimed(db, plugins, worker, now, None).await?;
        if batch.claimed == 0 {
            return Ok(report);
        }
        report.claimed += batch.claimed;
        report.done += batch.done;
        report.retrying += batch.retrying;
        report.failed += batch.failed;
    }
}

/// Claims one batch (of `only`, if given) and runs it.
async fn run_claimed(
    db: &Db,
    plugins: &Plugins,
    worker: &str,
    now: i64,
    only: Option<&[i64]>,
) -> Result<RunReport> {
    let mut claimed: Vec<ClaimedRow> = queue::claim(db, &QUEUE, worker, now, only).await?;
    claimed.sort_by_key(|row| row.id);
    let mut report = RunReport::default();
    for row in claimed {
        report.claimed += 1;
        let attempt = row.attempts + 1;
        let outcome = match decode(&row) {
            Ok(follow_up) => run(db, plugins, &follow_up).await,
            Err(message) => Err(Failure {
                retry: false,
                message,
            }),
        };
        let (status, error, next) = match outcome {
            Ok(()) => {
                report.done += 1;
                ("done", None, now)
            }
            Err(error) if attempt < queue::MAX_ATTEMPTS && error.retry => {
                tracing::warn!(
                    error = error.message,
                    cause = row.cause_key,
                    attempt,
                    "a follow-up failed; it is retried"
                );
                report.retrying += 1;
                ("pending", Some(error), now + queue::backoff(attempt))
            }
            Err(error) => {
                tracing::error!(
                    error = error.message,
                    cause = row.cause_key,
                    attempt,
                    "a follow-up failed; given up"
                );
                report.failed += 1;
                ("failed", Some(error), now)
            }
        };
        let error = error.map(|e| e.message.chars().take(ERROR_MAX).collect::<String>());
        sqlx::query(
            "UPDATE domain_events SET status = $1, attempts = $2, last_error = $3, \
             next_attempt_at = $4, done_at = $5, locked_by = NULL, locked_until = NULL \
             WHERE id = $6 AND locked_by = $7",
        )
        .bind(status)
        .bind(attempt)
        .bind(error.as_deref())
        .bind(next)
        .bind((status == "done").then_some(now))
        .bind(row.id)
        .bind(worker)
        .execute(db.pool())
        .await?;
    }
    Ok(report)
}

/// A stored follow-up read back; one the host cannot read is a bug or a hand edit.
fn decode(row: &ClaimedRow) -> std::result::Result<FollowUp, String> {
    serde_json::from_str(&row.payload)
        .and_then(|payload: serde_json::Value| {
            serde_json::from_value(serde_json::json!({ "kind": row.kind, "payload": payload }))
        })
        .map_err(|e| format!("unreadable follow-up {}: {e}", row.id))
}

/// Why a follow-up's run failed, and whether trying again may help.
struct Failure {
    retry: bool,
    message: String,
}

impl From<Error> for Failure {
    /// Everything but a record that is gone passes with time: a plugin that failed or is
    /// unavailable, the database.
    fn from(error: Error) -> Failure {
        Failure {
            retry: !matches!(error, Error::NotFound { .. } | Error::Invalid(_)),
            message: error.to_string(),
        }
    }
}

async fn run(db: &Db, plugins: &Plugins, follow_up: &FollowUp) -> std::result::Result<(), Failure> {
    match follow_up {
        FollowUp::Points(event) => {
            loyalty::award(db, plugins, event.clone()).await?;
        }
        FollowUp::CarePlan {
            vehicle_id,
            today,
            at,
        } => {
            reminders::plan_vehicle(db, plugins, *vehicle_id, *today, *at).await?;
        }
        FollowUp::Partner(event) => {
            if let Some(failed) = integrations::emit(db, plugins, event.clone())
                .await?
                .filter(|handled| handled.status == "failed")
            {
                return Err(Failure {
                    retry: true,
                    message: failed
                        .error
                        .unwrap_or_else(|| "the integration plugin failed".to_owned()),
                });
            }
        }
    }
    Ok(())
}
