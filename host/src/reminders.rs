//! The reminders scheduler: each owned vehicle's history goes through the dealer's reminders
//! plugin once a day, and what it plans is stored and, when due, delivered: reminders to the
//! owner through the outbox, reminders for the advisor as [`crate::tasks`]. Owns
//! `vehicle_care` (when each vehicle was last planned, and the lease of the replica planning
//! it) and `reminders`.
//!
//! Each reminder is stored once per vehicle and plugin dedupe key, and enqueued with the
//! outbox dedupe key `reminder:<vehicle>:<plugin key>` (tasks are unique per dealer and that
//! same key), so a run repeated, or run by several replicas at once, sends each reminder
//! exactly once. A reminder not yet due is kept as `scheduled`; the run of the day it falls due
//! delivers it.
//!
//! Planning a vehicle whose policy expires within
//! [`integrations::INSURANCE_NOTICE_DAYS`] also records the `insurance-expiring` event for
//! partners, once per policy expiry, as a follow-up the domain events worker runs.

use std::time::Duration;

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::{AnyConnection, FromRow};
use utoipa::ToSchema;

use crate::access::{Caller, Role};
use crate::audit::{self, Entry};
use crate::customers::interactions;
use crate::db::{Param, Sql};
use crate::domain_events::{self, FollowUp};
use crate::error::{Error, Result};
use crate::lookups::{customer_view, vehicle_view};
use crate::plugins::dispatch::{DecisionSource, Plugins};
use crate::plugins::hooks::{RemindersHook, reminders};
use crate::plugins::runs::Source;
use crate::service::repair_orders;
use crate::vehicles::{self, mileage};
use crate::{Db, clock, customers, integrations, network, outbox, tasks};

/// A vehicle is planned again once its plan is this old.
pub const PLAN_EVERY: Duration = Duration::from_secs(24 * 3600);
/// How long a replica may hold a vehicle it is planning before another may take it over.
const LEASE: Duration = Duration::from_secs(10 * 60);
/// Vehicles selected per query.
const BATCH: i64 = 100;
/// The worker name the scheduler audits under.
const WORKER: &str = "reminders";
/// Most service visits given to the plugin, newest first.
const MAX_VISITS: i64 = 200;

/// What a scheduler run did.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct RunReport {
    /// Vehicles this run planned.
    pub vehicles: u64,
    /// Vehicles whose plan failed (the plugin refused; see the plugin run log). They are
    /// planned again the next day.
    pub failed: u64,
    /// Reminders the plugins planned, due or not.
    pub reminders: u64,
    /// Reminders to owners enqueued to the outbox by this run.
    pub sent: u64,
    /// Advisor tasks created by this run.
    pub tasks: u64,
}

/// What planning one vehicle did.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct VehiclePlan {
    pub vehicle_id: i64,
    pub reminders: u64,
    pub sent: u64,
    pub tasks: u64,
    /// The plugin that planned (absent for the built-in rule), and its run.
    pub plugin: Option<String>,
    pub run_id: Option<i64>,
}

/// Plans every vehicle with a current owner whose plan is older than [`PLAN_EVERY`] (or
/// that was never planned), in batches, each vehicle claimed with a lease so that replicas
/// running at once share the work. `today` is the date reminders are due against.
pub async fn run_due(db: &Db, plugins: &Plugins, today: NaiveDate, now: i64) -> Result<RunReport> {
    let worker = format!("{}-{:016x}", std::process::id(), rand::random::<u64>());
    let cutoff = now - PLAN_EVERY.as_millis() as i64;
    let mut report = RunReport::default();
    let mut after = 0_i64;
    loop {
        let due: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT v.id, v.dealer_id FROM vehicles v \
             JOIN vehicle_people p ON p.vehicle_id = v.id AND p.role = 'owner' AND p.until IS NULL \
             LEFT JOIN vehicle_care c ON c.vehicle_id = v.id \
             WHERE v.id > $1 AND (c.vehicle_id IS NULL OR (c.planned_at <= $2 \
             AND (c.lease_until IS NULL OR c.lease_until < $3))) ORDER BY v.id LIMIT $4",
        )
        .bind(after)
        .bind(cutoff)
        .bind(now)
        .bind(BATCH)
        .fetch_all(db.pool())
        .await?;
        let Some(&(last, _)) = due.last() else {
            return Ok(report);
        };
        after = last;
        for vehicle_id in claim(db, &due, &worker, cutoff, now).await? {
            match plan(db, plugins, vehicle_id, today, now).await {
                Ok(plan) => {
                    report.vehicles += 1;
                    report.reminders += plan.reminders;
                    report.sent += plan.sent;
                    report.tasks += plan.tasks;
                }
                Err(error @ (Error::PluginFailed { .. } | Error::PluginUnavailable(_))) => {
                    tracing::warn!(vehicle_id, %error, "could not plan a vehicle's reminders");
                    report.failed += 1;
                    release(db, vehicle_id, now, &error.to_string()).await?;
                }
                Err(error) => {
                    release(db, vehicle_id, now, &error.to_string()).await?;
                    return Err(error);
                }
            }
        }
    }
}

/// Takes the lease on the vehicles of `due` (id, dealer) still due for planning, in one
/// transaction of two statements for the whole batch; returns those it took, in id order
/// (not those another replica holds or planned meanwhile).
async fn claim(
    db: &Db,
    due: &[(i64, i64)],
    worker: &str,
    cutoff: i64,
    now: i64,
) -> Result<Vec<i64>> {
    let mut tx = db.begin_write().await?;
    let mut insert =
        Sql::new("INSERT INTO vehicle_care (vehicle_id, dealer_id, planned_at) VALUES ");
    for (i, (vehicle_id, dealer_id)) in due.iter().enumerate() {
        insert
            .push(if i == 0 { "(" } else { ", (" })
            .bind(Param::Int(*vehicle_id))
            .push(", ")
            .bind(Param::Int(*dealer_id))
            .push(", 0)");
    }
    insert.push(" ON CONFLICT (vehicle_id) DO NOTHING");
    sqlx::query_with(insert.text(), insert.arguments())
        .execute(&mut *tx)
        .await?;
    let mut update = Sql::new("UPDATE vehicle_care SET leased_by = ");
    update
        .bind(Param::Text(worker.to_owned()))
        .push(", lease_until = ")
        .bind(Param::Int(now + LEASE.as_millis() as i64))
        .push(" WHERE planned_at <= ")
        .bind(Param::Int(cutoff))
        .push(" AND (lease_until IS NULL OR lease_until < ")
        .bind(Param::Int(now))
        .push(") AND vehicle_id IN ")
        .push_list(due.iter().map(|(vehicle_id, _)| Param::Int(*vehicle_id)))
        .push(" RETURNING vehicle_id");
    let mut claimed: Vec<(i64,)> = sqlx::query_as_with(update.text(), update.arguments())
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    claimed.sort_unstable();
    Ok(claimed.into_iter().map(|(id,)| id).collect())
}

/// Gives a vehicle's lease back after its plan failed; it is planned again the next day.
async fn release(db: &Db, vehicle_id: i64, now: i64, error: &str) -> Result<()> {
    sqlx::query(
        "UPDATE vehicle_care SET planned_at = $1, leased_by = NULL, lease_until = NULL, \
         last_error = $2 WHERE vehicle_id = $3",
    )
    .bind(now)
    .bind(error.chars().take(500).collect::<String>())
    .bind(vehicle_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Plans one vehicle now, whenever it was last planned: the integrator calls it when a car is
/// delivered, to start the owner's care plan. Due reminders are delivered at once.
pub async fn plan_vehicle(
    db: &Db,
    plugins: &Plugins,
    vehicle_id: i64,
    today: NaiveDate,
    now: i64,
) -> Result<VehiclePlan> {
    plan(db, plugins, vehicle_id, today, now).await
}

/// The service visits of a vehicle, as the reminders plugin sees them, oldest first: its
/// settled repair orders (with the odometer at check-in and the kind of service), and the
/// interactions of kind `service` recorded against it (visits the platform did not manage,
/// counted as maintenance; their mileage is left to the plugin, which reads the readings).
pub async fn service_visits(
    conn: &mut AnyConnection,
    vehicle_id: i64,
) -> Result<Vec<reminders::ServiceVisit>> {
    let settled = repair_orders::visits(conn, vehicle_id, MAX_VISITS).await?;
    let recent = interactions::recent(conn, &[], &[vehicle_id], MAX_VISITS).await?;
    let mut visits: Vec<(chrono::NaiveDate, reminders::ServiceVisit)> = settled
        .into_iter()
        .map(|v| {
            let visit = reminders::ServiceVisit {
                date: v.date.to_string(),
                mileage_km: v.mileage_km,
                kind: v.kind.into(),
            };
            (v.date, visit)
        })
        .collect();
    visits.extend(
        recent
            .into_iter()
            .filter(|i| i.kind == interactions::Kind::Service && i.vehicle_id == Some(vehicle_id))
            .map(|i| {
                let date = i.occurred_at.date_naive();
                let visit = reminders::ServiceVisit {
                    date: date.to_string(),
                    mileage_km: None,
                    kind: "maintenance".into(),
                };
                (date, visit)
            }),
    );
    visits.sort_by_key(|(date, _)| *date);
    Ok(visits.into_iter().map(|(_, visit)| visit).collect())
}

/// The reminders hook's input for a vehicle: the vehicle with its latest mileage and daily
/// estimate, its owner, its readings and its service visits. Read with the dealer's own scope,
/// phones masked, as a plugin would read them.
async fn history(
    conn: &mut AnyConnection,
    vehicle_id: i64,
    today: NaiveDate,
) -> Result<(i64, reminders::History)> {
    let (dealer_id,): (i64,) = sqlx::query_as("SELECT dealer_id FROM vehicles WHERE id = $1")
        .bind(vehicle_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(Error::NotFound { entity: "vehicle" })?;
    let (_, dealer_path) = network::kind_and_path(conn, dealer_id)
        .await?
        .ok_or(Error::NotFound { entity: "dealer" })?;
    let reader = Caller {
        key_id: 0,
        role: Role::Partner,
        org_id: dealer_id,
        org_kind: "dealer".into(),
        org_path: dealer_path,
        staff_id: None,
        position: None,
    };
    let vehicle = vehicle_view(vehicles::get(conn, &reader, vehicle_id).await?);
    let owner = match vehicle.owner_id {
        Some(id) => Some(customer_view(customers::get(conn, &reader, id).await?)),
        None => None,
    };
    let readings = mileage::readings_for(conn, &[vehicle_id])
        .await?
        .remove(&vehicle_id)
        .unwrap_or_default()
        .into_iter()
        .map(|r| reminders::MileageReading {
            date: r.read_at.date_naive().to_string(),
            km: r.km,
        })
        .collect();
    let visits = service_visits(conn, vehicle_id).await?;
    Ok((
        dealer_id,
        reminders::History {
            vehicle,
            owner,
            readings,
            visits,
            today: today.to_string(),
        },
    ))
}

fn kind_str(kind: reminders::ReminderKind) -> &'static str {
    use reminders::ReminderKind::*;
    match kind {
        Maintenance => "maintenance",
        InsuranceRenewal => "insurance_renewal",
        Birthday => "birthday",
        PurchaseAnniversary => "purchase_anniversary",
        Care => "care",
    }
}

/// Greetings are marketing (they need the owner's consent); a reminder about the car or its
/// policy is service.
fn purpose_of(kind: reminders::ReminderKind) -> outbox::Purpose {
    use reminders::ReminderKind::*;
    match kind {
        Birthday | PurchaseAnniversary => outbox::Purpose::Marketing,
        Maintenance | InsuranceRenewal | Care => outbox::Purpose::Service,
    }
}

/// Plans `vehicle_id`: reads its history, asks the dealer's reminders plugin (outside any
/// transaction), then stores the plan and delivers what is due in one transaction.
async fn plan(
    db: &Db,
    plugins: &Plugins,
    vehicle_id: i64,
    today: NaiveDate,
    now: i64,
) -> Result<VehiclePlan> {
    let mut conn = db.pool().acquire().await?;
    let (dealer_id, history) = history(&mut conn, vehicle_id, today).await?;
    drop(conn);
    let owner_id = history.owner.as_ref().map(|o| o.id);
    let expiring = integrations::insurance_expiring(&history.vehicle, today, now);
    let decision = plugins
        .call::<RemindersHook>(dealer_id, history, Source::Live)
        .await?;
    let (plugin, version) = match &decision.source {
        DecisionSource::Plugin {
            plugin, version, ..
        } => (Some(plugin.clone()), Some(version.clone())),
        DecisionSource::Default { .. } => (None, None),
    };

    let mut tx = db.begin_write().await?;
    let mut plan = VehiclePlan {
        vehicle_id,
        plugin: plugin.clone(),
        run_id: decision.run_id,
        ..VehiclePlan::default()
    };
    for reminder in &decision.output {
        plan.reminders += 1;
        let stored = Stored {
            dealer_id,
            vehicle_id,
            customer_id: owner_id,
            reminder,
            plugin: plugin.as_deref(),
            version: version.as_deref(),
            run_id: decision.run_id,
        };
        let (id, status) = store(&mut tx, &stored, now).await?;
        let due = NaiveDate::parse_from_str(&reminder.due, "%Y-%m-%d").unwrap_or(today);
        if status != "scheduled" || due > today {
            continue;
        }
        let key = format!("reminder:{vehicle_id}:{}", reminder.dedupe_key);
        match reminder.audience {
            reminders::Audience::Owner => {
                let Some(owner) = owner_id else {
                    continue;
                };
                let message = outbox::Message {
                    channel: reminder.channel.clone(),
                    recipient: format!("customer:{owner}"),
                    template: format!("reminder.{}", kind_str(reminder.kind)),
                    data: vec![
                        ("vehicle_id".into(), vehicle_id.to_string()),
                        ("due".into(), reminder.due.clone()),
                        ("message".into(), reminder.message.clone()),
                    ],
                    purpose: purpose_of(reminder.kind),
                };
                let queued = outbox::enqueue(&mut tx, dealer_id, &message, Some(&key)).await?;
                plan.sent += u64::from(queued.is_some());
                mark(&mut tx, id, "sent", queued, None, now).await?;
            }
            reminders::Audience::Advisor => {
                let task = tasks::NewTask {
                    dealer_id,
                    vehicle_id: Some(vehicle_id),
                    customer_id: owner_id,
                    kind: kind_str(reminder.kind),
                    title: &reminder.message,
                    due: &reminder.due,
                    dedupe_key: &key,
                };
                let created = tasks::create_once(&mut tx, &task, now).await?;
                plan.tasks += u64::from(created.is_some());
                mark(&mut tx, id, "task", None, created, now).await?;
            }
        }
    }
    for notification in &decision.effects.notifications {
        outbox::enqueue(
            &mut tx,
            dealer_id,
            &outbox::Message::from(notification),
            None,
        )
        .await?;
    }
    if let Some(event) = expiring {
        let cause = event.cause.clone();
        domain_events::record(&mut tx, dealer_id, &cause, &[FollowUp::Partner(event)]).await?;
    }
    sqlx::query(
        "INSERT INTO vehicle_care (vehicle_id, dealer_id, planned_at, plugin, plugin_version, run_id) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (vehicle_id) DO UPDATE SET planned_at = $3, \
         leased_by = NULL, lease_until = NULL, plugin = $4, plugin_version = $5, run_id = $6, \
         last_error = NULL",
    )
    .bind(vehicle_id)
    .bind(dealer_id)
    .bind(now)
    .bind(plugin.as_deref())
    .bind(version.as_deref())
    .bind(decision.run_id)
    .execute(&mut *tx)
    .await?;
    audit::record_system(
        &mut tx,
        WORKER,
        Entry::ok("plan_reminders", "vehicle", vehicle_id, dealer_id).with_detail(
            serde_json::json!({ "reminders": plan.reminders, "sent": plan.sent, "tasks": plan.tasks, "run_id": decision.run_id }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(plan)
}

/// A planned reminder to store.
struct Stored<'a> {
    dealer_id: i64,
    vehicle_id: i64,
    customer_id: Option<i64>,
    reminder: &'a reminders::Reminder,
    plugin: Option<&'a str>,
    version: Option<&'a str>,
    run_id: Option<i64>,
}

/// Stores a planned reminder once per vehicle and dedupe key; a reminder still `scheduled`
/// takes the new plan's due date and message. Returns its id and status.
async fn store(conn: &mut AnyConnection, r: &Stored<'_>, now: i64) -> Result<(i64, String)> {
    sqlx::query(
        "INSERT INTO reminders (dealer_id, vehicle_id, customer_id, kind, due, audience, channel, message, \
         dedupe_key, status, plugin, plugin_version, run_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'scheduled', $10, $11, $12, $13, $13) \
         ON CONFLICT (vehicle_id, dedupe_key) DO UPDATE SET due = $5, channel = $7, message = $8, \
         customer_id = $3, plugin = $10, plugin_version = $11, run_id = $12, updated_at = $13 \
         WHERE reminders.status = 'scheduled'",
    )
    .bind(r.dealer_id)
    .bind(r.vehicle_id)
    .bind(r.customer_id)
    .bind(kind_str(r.reminder.kind))
    .bind(&r.reminder.due)
    .bind(match r.reminder.audience {
        reminders::Audience::Owner => "owner",
        reminders::Audience::Advisor => "advisor",
    })
    .bind(&r.reminder.channel)
    .bind(&r.reminder.message)
    .bind(&r.reminder.dedupe_key)
    .bind(r.plugin)
    .bind(r.version)
    .bind(r.run_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let row: (i64, String) = sqlx::query_as(
        "SELECT id, status FROM reminders WHERE vehicle_id = $1 AND dedupe_key = $2",
    )
    .bind(r.vehicle_id)
    .bind(&r.reminder.dedupe_key)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row)
}

/// Marks a reminder delivered: `sent` (with its outbox message, if this run enqueued it) or
/// `task` (with the task, if this run created it).
async fn mark(
    conn: &mut AnyConnection,
    id: i64,
    status: &str,
    outbox_id: Option<i64>,
    task_id: Option<i64>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE reminders SET status = $1, outbox_id = $2, task_id = $3, updated_at = $4 WHERE id = $5",
    )
    .bind(status)
    .bind(outbox_id)
    .bind(task_id)
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A reminder as planned for a vehicle.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlannedReminder {
    pub id: i64,
    pub vehicle_id: i64,
    /// The owner it goes to (for owner reminders).
    pub customer_id: Option<i64>,
    /// `maintenance`, `insurance_renewal`, `birthday`, `purchase_anniversary`, `care`.
    pub kind: String,
    /// `YYYY-MM-DD`.
    pub due: String,
    /// `owner` or `advisor`.
    pub audience: String,
    pub channel: String,
    pub message: String,
    /// `scheduled` (not due yet), `sent` (to the outbox) or `task` (an advisor task).
    pub status: String,
    pub outbox_id: Option<i64>,
    pub task_id: Option<i64>,
    /// The plugin that planned it; absent for the built-in rule.
    pub plugin: Option<String>,
    pub plugin_version: Option<String>,
    pub run_id: Option<i64>,
}

#[derive(FromRow)]
struct PlannedRow {
    id: i64,
    vehicle_id: i64,
    customer_id: Option<i64>,
    kind: String,
    due: String,
    audience: String,
    channel: String,
    message: String,
    status: String,
    outbox_id: Option<i64>,
    task_id: Option<i64>,
    plugin: Option<String>,
    plugin_version: Option<String>,
    run_id: Option<i64>,
}

/// The reminders planned for vehicle `vehicle_id` (in the caller's scope), latest due first.
pub async fn for_vehicle(
    conn: &mut AnyConnection,
    caller: &Caller,
    vehicle_id: i64,
) -> Result<Vec<PlannedReminder>> {
    vehicles::dealer_of(conn, caller, vehicle_id).await?;
    let rows: Vec<PlannedRow> = sqlx::query_as(
        "SELECT id, vehicle_id, customer_id, kind, due, audience, channel, message, status,          outbox_id, task_id, plugin, plugin_version, run_id FROM reminders WHERE vehicle_id = $1          ORDER BY due DESC, id DESC",
    )
    .bind(vehicle_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| PlannedReminder {
            id: r.id,
            vehicle_id: r.vehicle_id,
            customer_id: r.customer_id,
            kind: r.kind,
            due: r.due,
            audience: r.audience,
            channel: r.channel,
            message: r.message,
            status: r.status,
            outbox_id: r.outbox_id,
            task_id: r.task_id,
            plugin: r.plugin,
            plugin_version: r.plugin_version,
            run_id: r.run_id,
        })
        .collect())
}

/// Today in China (UTC+8), the date reminders fall due against ([`clock::business_date`]).
pub fn today_in_china(now: i64) -> NaiveDate {
    clock::business_date(now, clock::CST_MINUTES)
}
