//! SLA clocks and escalation. Each routed ticket has two deadlines: first contact (stopped by
//! the first move out of `open`) and resolution (stopped by the move to `resolved` or
//! `closed`). [`escalate_due`] finds every clock past its deadline and not yet breached, and
//! for each, in one transaction: marks the clock breached, raises the ticket's escalation
//! level by one, adds a `breach` entry to the timeline, and enqueues a task for the manager:
//! the dealer's service manager at level 1, the regional service manager for a safety case or
//! from level 2 on.
//!
//! A clock is breached once: the update only matches a clock not yet marked, so two sweeps at
//! once (two replicas, or a sweep run twice) escalate it once, and the outbox's dedupe key
//! (`ticket:<id>:sla:<clock>:level:<level>`) makes the notification single too.
//! [`spawn`] runs the sweep in the background of a serving host.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::AnyConnection;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Clock, EventKind, NewEvent, TicketStatus};
use crate::audit::{self, Entry};
use crate::clock;
use crate::db::Db;
use crate::error::Result;
use crate::network::Position;
use crate::outbox;

/// The name the sweep audits under.
pub const WORKER: &str = "ticket-sla";
/// The default time between two sweeps of a serving host.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Most clocks of one kind looked at by one sweep (the next sweep takes the rest).
const BATCH: i64 = 1000;

/// One clock found breached by a sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Escalation {
    pub ticket_id: i64,
    pub dealer_id: i64,
    pub clock: Clock,
    /// The ticket's escalation level after this breach.
    pub level: i64,
}

/// What one sweep did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub escalated: Vec<Escalation>,
}

/// The columns of a clock: its deadline, the time that stops it, the time it was breached.
fn columns(clock: Clock) -> (&'static str, &'static str, &'static str) {
    match clock {
        Clock::FirstContact => (
            "first_contact_due",
            "first_contact_at",
            "first_contact_breached_at",
        ),
        Clock::Resolution => ("resolution_due", "resolved_at", "resolution_breached_at"),
    }
}

/// Escalates every ticket clock whose deadline is before `now` without its event having
/// happened, once. `now` decides which deadlines have passed and is recorded as the time of
/// the breach.
pub async fn escalate_due(db: &Db, now: DateTime<Utc>) -> Result<Report> {
    let now = now.timestamp_millis();
    let mut conn = db.pool().acquire().await?;
    let mut due = Vec::new();
    for clock in Clock::ALL {
        for id in overdue(&mut conn, clock, now).await? {
            due.push((id, clock));
        }
    }
    drop(conn);
    let mut report = Report::default();
    for (id, clock) in due {
        if let Some(escalation) = escalate(db, id, clock, now).await? {
            report.escalated.push(escalation);
        }
    }
    Ok(report)
}

/// Tickets whose `clock` is past its deadline and not yet marked breached.
async fn overdue(conn: &mut AnyConnection, clock: Clock, now: i64) -> Result<Vec<i64>> {
    let (due, stop, breached) = columns(clock);
    let ids: Vec<(i64,)> = sqlx::query_as(&format!(
        "SELECT id FROM tickets WHERE {due} < $1 AND {stop} IS NULL AND {breached} IS NULL \
         AND status <> $2 ORDER BY id LIMIT $3"
    ))
    .bind(now)
    .bind(TicketStatus::Closed.as_str())
    .bind(BATCH)
    .fetch_all(&mut *conn)
    .await?;
    Ok(ids.into_iter().map(|(id,)| id).collect())
}

/// Breaches `clock` of ticket `id` unless that already happened (or the clock stopped) since
/// it was found overdue.
async fn escalate(db: &Db, id: i64, clock: Clock, now: i64) -> Result<Option<Escalation>> {
    let (due, stop, breached) = columns(clock);
    let mut tx = db.begin_write().await?;
    let at = clock::now_ms();
    let row: Option<(i64, i64, Option<String>, i64, String)> = sqlx::query_as(&format!(
        "UPDATE tickets SET {breached} = $1, escalation_level = escalation_level + 1, \
         version = version + 1, updated_at = $2 \
         WHERE id = $3 AND {breached} IS NULL AND {stop} IS NULL AND {due} < $1 AND status <> $4 \
         RETURNING dealer_id, escalation_level, team, safety, status"
    ))
    .bind(now)
    .bind(at)
    .bind(id)
    .bind(TicketStatus::Closed.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((dealer_id, level, team, safety, status)) = row else {
        return Ok(None);
    };
    let status = super::decode("status", &status, TicketStatus::parse)?;
    let manager = if safety != 0 || level >= 2 {
        Position::RegionalServiceManager
    } else {
        Position::ServiceManager
    };
    let message = outbox::Message {
        channel: "task".to_owned(),
        recipient: format!("role:{}", manager.as_str()),
        template: "ticket-sla-breach".to_owned(),
        data: vec![
            ("ticket-id".to_owned(), id.to_string()),
            ("dealer-id".to_owned(), dealer_id.to_string()),
            ("clock".to_owned(), clock.as_str().to_owned()),
            ("level".to_owned(), level.to_string()),
            ("team".to_owned(), team.unwrap_or_default()),
        ],
        purpose: outbox::Purpose::Service,
    };
    let key = format!("ticket:{id}:sla:{}:level:{level}", clock.as_str());
    outbox::enqueue(&mut tx, dealer_id, &message, Some(&key)).await?;
    NewEvent::new(EventKind::Breach, at, Some(status), status)
        .breach(clock, level)
        .append(&mut tx, id)
        .await?;
    audit::record_system(
        &mut tx,
        WORKER,
        Entry::ok("escalate", "ticket", id, dealer_id)
            .with_detail(serde_json::json!({ "clock": clock.as_str(), "level": level })),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(Escalation {
        ticket_id: id,
        dealer_id,
        clock,
        level,
    }))
}

/// Runs [`escalate_due`] every `interval` until `stop` changes (or its sender is dropped).
/// A failed sweep is logged and retried at the next tick.
pub fn spawn(db: Db, interval: Duration, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    if let Err(error) = escalate_due(&db, Utc::now()).await {
                        tracing::warn!(%error, "the SLA sweep failed");
                    }
                }
                _ = stop.changed() => break,
            }
        }
    })
}
