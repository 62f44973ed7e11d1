//! Domain events handed to the dealer's integration plugin: a delivered car to the insurer, a
//! settled repair order to the provincial maintenance-record platform (JT/T 1132), and so on.
//! Owns `integration_events` and `integration_actions`.
//!
//! [`emit`] runs after the change that caused the event has committed (a follow-up of
//! [`crate::domain_events`]): the plugin (which may call its partner) is never inside a write
//! transaction, and its failure never undoes the sale or the repair. Each event is handled
//! once per cause (`event_key`), whoever emits it again; what the plugin asked for is applied
//! in one transaction with the event's record: points through the loyalty ledger, tasks for
//! the dealer's staff, notifications through the outbox, references and settlements kept with
//! the event. An event whose plugin failed (refusing, or falling back to the built-in nothing)
//! is kept as `failed` and handled again when emitted again: the domain events worker retries
//! it with a backoff, so the partner is not left out.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow};
use utoipa::{IntoParams, ToSchema};

use crate::access::Caller;
use crate::audit::{self, Entry};
use crate::clock;
use crate::db::{Db, Param, Sql};
use crate::error::{Error, Result};
use crate::loyalty::{self, Cause, DecidedBy};
use crate::outbox::{self, Message};
use crate::plugins::bindings::types::Vehicle;
use crate::plugins::dispatch::{DecisionSource, Plugins};
use crate::plugins::hooks::{IntegrationHook, integration};
use crate::plugins::runs::Source;
use crate::tasks::{self, NewTask};

/// Days before its expiry a policy is announced to partners (`insurance-expiring`).
pub const INSURANCE_NOTICE_DAYS: i64 = 45;

/// Something that happened which partners may act on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DomainEvent {
    pub dealer_id: i64,
    /// `vehicle-delivered`, `repair-settled`, `insurance-expiring`, ...
    pub kind: String,
    /// What caused it, unique per event: `sales_order:42`.
    pub cause: String,
    pub customer_id: Option<i64>,
    pub vehicle_id: Option<i64>,
    pub order_id: Option<i64>,
    pub repair_order_id: Option<i64>,
    pub payload: serde_json::Value,
    /// UTC milliseconds.
    pub occurred_at: i64,
}

impl DomainEvent {
    fn key(&self) -> String {
        format!("{}:{}", self.kind, self.cause)
    }
}

/// The `insurance-expiring` event of `vehicle` (as plugins see it) on `today`, if its policy
/// expires within [`INSURANCE_NOTICE_DAYS`]. Its cause names the vehicle and the expiry date,
/// so each policy is announced once, and a renewed one again when it nears its own expiry.
pub fn insurance_expiring(vehicle: &Vehicle, today: NaiveDate, now: i64) -> Option<DomainEvent> {
    let expiry =
        NaiveDate::parse_from_str(vehicle.insurance_expiry.as_deref()?, "%Y-%m-%d").ok()?;
    let days_left = (expiry - today).num_days();
    if !(0..=INSURANCE_NOTICE_DAYS).contains(&days_left) {
        return None;
    }
    Some(DomainEvent {
        dealer_id: vehicle.dealer_id,
        kind: "insurance-expiring".to_owned(),
        cause: format!("vehicle:{}:{expiry}", vehicle.id),
        customer_id: vehicle.owner_id,
        vehicle_id: Some(vehicle.id),
        order_id: None,
        repair_order_id: None,
        payload: serde_json::json!({
            "vin": vehicle.vin,
            "plate": vehicle.plate,
            "brand": vehicle.brand,
            "model": vehicle.model,
            "insurer": vehicle.insurer,
            "insurance_expiry": expiry.to_string(),
            "days_left": days_left,
        }),
        occurred_at: now,
    })
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IntegrationEvent {
    pub id: i64,
    pub dealer_id: i64,
    pub kind: String,
    pub event_key: String,
    pub customer_id: Option<i64>,
    pub vehicle_id: Option<i64>,
    pub order_id: Option<i64>,
    pub repair_order_id: Option<i64>,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub occurred_at: i64,
    /// `handled`, or `failed` when the plugin failed and its policy is to refuse.
    pub status: String,
    /// The plugin and version that handled it, or the built-in rule (no partner: nothing).
    #[schema(value_type = Object)]
    pub decided_by: serde_json::Value,
    pub run_id: Option<i64>,
    pub error: Option<String>,
    pub actions: Vec<AppliedAction>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AppliedAction {
    pub seq: i64,
    /// `record_reference`, `award_points`, `create_task`, `notify`, `settle`.
    pub kind: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

#[derive(FromRow)]
struct EventRow {
    id: i64,
    dealer_id: i64,
    kind: String,
    event_key: String,
    customer_id: Option<i64>,
    vehicle_id: Option<i64>,
    order_id: Option<i64>,
    repair_order_id: Option<i64>,
    payload: String,
    occurred_at: i64,
    status: String,
    decided_by: String,
    run_id: Option<i64>,
    error: Option<String>,
}

#[derive(FromRow)]
struct ActionRow {
    event_id: i64,
    seq: i64,
    kind: String,
    detail: String,
}

const EVENT_COLUMNS: &str = "id, dealer_id, kind, event_key, customer_id, vehicle_id, order_id, \
     repair_order_id, payload, occurred_at, status, decided_by, run_id, error";

/// Hands `event` to the dealer's integration plugin and applies what it asks for. Call it
/// after the cause committed. An event already handled is not handled again (`None`); one
/// whose plugin failed is answered with status `failed` and handled again on the next call.
pub async fn emit(
    db: &Db,
    plugins: &Plugins,
    event: DomainEvent,
) -> Result<Option<IntegrationEvent>> {
    let key = event.key();
    let mut conn = db.pool().acquire().await?;
    if find(&mut conn, &key)
        .await?
        .is_some_and(|earlier| earlier.status == "handled")
    {
        return Ok(None);
    }
    drop(conn);
    let input = integration::Event {
        kind: event.kind.clone(),
        id: key.clone(),
        dealer_id: event.dealer_id,
        occurred_at: event.occurred_at,
        customer_id: event.customer_id,
        vehicle_id: event.vehicle_id,
        order_id: event.order_id,
        repair_order_id: event.repair_order_id,
        payload: event.payload.to_string(),
    };
    let decided = plugins
        .call::<IntegrationHook>(event.dealer_id, input, Source::Live)
        .await;
    let mut decider = None;
    let (actions, decided_by, run_id, error) = match decided {
        Ok(decision) => {
            let mut fell_back = None;
            match &decision.source {
                DecisionSource::Plugin {
                    plugin, version, ..
                } => {
                    decider = Some(DecidedBy {
                        plugin: plugin.clone(),
                        version: version.clone(),
                    });
                }
                // The built-in rule tells no partner: a plugin that failed has not handled it.
                DecisionSource::Default {
                    failed: Some(run), ..
                } => {
                    fell_back = Some(run.error.clone().unwrap_or_else(|| {
                        format!(
                            "{}@{} failed ({})",
                            run.plugin,
                            run.version,
                            run.outcome.as_str()
                        )
                    }));
                }
                DecisionSource::Default { failed: None, .. } => {}
            }
            (
                decision.output,
                serde_json::to_value(&decision.source).unwrap_or_default(),
                decision.run_id,
                fell_back,
            )
        }
        Err(Error::PluginFailed {
            plugin,
            version,
            outcome,
            message,
            run_id,
            ..
        }) => (
            Vec::new(),
            serde_json::json!({
                "kind": "plugin", "plugin": plugin, "version": version, "outcome": outcome.as_str(),
            }),
            Some(run_id),
            Some(message),
        ),
        Err(other) => return Err(other),
    };
    let mut tx = db.begin_write().await?;
    let inserted: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO integration_events (dealer_id, kind, event_key, customer_id, vehicle_id, \
         order_id, repair_order_id, payload, occurred_at, status, decided_by, run_id, error, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (event_key) DO UPDATE SET status = excluded.status, \
         decided_by = excluded.decided_by, run_id = excluded.run_id, error = excluded.error \
         WHERE integration_events.status = 'failed' RETURNING id",
    )
    .bind(event.dealer_id)
    .bind(&event.kind)
    .bind(&key)
    .bind(event.customer_id)
    .bind(event.vehicle_id)
    .bind(event.order_id)
    .bind(event.repair_order_id)
    .bind(event.payload.to_string())
    .bind(event.occurred_at)
    .bind(if error.is_some() { "failed" } else { "handled" })
    .bind(decided_by.to_string())
    .bind(run_id)
    .bind(error.as_deref())
    .bind(clock::now_ms())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((id,)) = inserted else {
        return Ok(None);
    };
    for (seq, action) in (1..).zip(&actions) {
        let (kind, detail) =
            apply(&mut tx, &event, &key, seq, action, decider.as_ref(), run_id).await?;
        sqlx::query(
            "INSERT INTO integration_actions (event_id, seq, kind, detail) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(seq)
        .bind(kind)
        .bind(detail.to_string())
        .execute(&mut *tx)
        .await?;
    }
    audit::record_system(
        &mut tx,
        "integrations",
        Entry::ok("handle_event", "integration_event", id, event.dealer_id)
            .with_detail(serde_json::json!({ "kind": event.kind, "actions": actions.len() })),
    )
    .await?;
    tx.commit().await?;
    let mut conn = db.pool().acquire().await?;
    find(&mut conn, &key).await
}

/// Applies one action in the event's transaction; answers its kind and what was done.
async fn apply(
    conn: &mut AnyConnection,
    event: &DomainEvent,
    key: &str,
    seq: i64,
    action: &integration::Action,
    decider: Option<&DecidedBy>,
    run_id: Option<i64>,
) -> Result<(&'static str, serde_json::Value)> {
    use integration::Action;
    Ok(match action {
        Action::RecordReference(reference) => (
            "record_reference",
            serde_json::json!({ "key": reference.key, "value": reference.value }),
        ),
        Action::Notify(notification) => {
            let message = Message::from(notification);
            let dedupe = format!("integration:{key}:{seq}");
            let outbox_id = outbox::enqueue(conn, event.dealer_id, &message, Some(&dedupe)).await?;
            (
                "notify",
                serde_json::json!({
                    "channel": message.channel,
                    "recipient": message.recipient,
                    "template": message.template,
                    "outbox_id": outbox_id,
                }),
            )
        }
        Action::AwardPoints(grant) => {
            let cause = Cause::new("integration", format!("{key}:{seq}"));
            let entry = loyalty::grant(
                conn,
                event.dealer_id,
                grant.customer_id,
                grant.points,
                &grant.reason,
                &cause,
                decider,
                run_id,
            )
            .await?;
            (
                "award_points",
                serde_json::json!({
                    "customer_id": grant.customer_id,
                    "points": grant.points,
                    "reason": grant.reason,
                    "ledger_id": entry.map(|e| e.id),
                }),
            )
        }
        Action::CreateTask(task) => {
            let due =
                clock::business_date(task.due.unwrap_or(event.occurred_at), clock::CST_MINUTES)
                    .to_string();
            let dedupe = format!("integration:{key}:{seq}");
            let new = NewTask {
                dealer_id: event.dealer_id,
                vehicle_id: event.vehicle_id,
                customer_id: event.customer_id,
                kind: &task.assignee_role,
                title: &task.title,
                due: &due,
                dedupe_key: &dedupe,
            };
            let task_id = tasks::create_once(conn, &new, clock::now_ms()).await?;
            (
                "create_task",
                serde_json::json!({
                    "assignee_role": task.assignee_role,
                    "title": task.title,
                    "due": due,
                    "task_id": task_id,
                }),
            )
        }
        Action::Settle(amount) => ("settle", serde_json::json!({ "amount_fen": amount })),
    })
}

async fn find(conn: &mut AnyConnection, key: &str) -> Result<Option<IntegrationEvent>> {
    let row: Option<EventRow> = sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM integration_events WHERE event_key = $1"
    ))
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => Ok(assemble(conn, vec![row]).await?.pop()),
        None => Ok(None),
    }
}

async fn assemble(conn: &mut AnyConnection, rows: Vec<EventRow>) -> Result<Vec<IntegrationEvent>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql =
        Sql::new("SELECT event_id, seq, kind, detail FROM integration_actions WHERE event_id IN ");
    sql.push_list(rows.iter().map(|r| Param::Int(r.id)))
        .push(" ORDER BY event_id, seq");
    let actions: Vec<ActionRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| IntegrationEvent {
            actions: actions
                .iter()
                .filter(|a| a.event_id == r.id)
                .map(|a| AppliedAction {
                    seq: a.seq,
                    kind: a.kind.clone(),
                    detail: serde_json::from_str(&a.detail).unwrap_or_default(),
                })
                .collect(),
            id: r.id,
            dealer_id: r.dealer_id,
            kind: r.kind,
            event_key: r.event_key,
            customer_id: r.customer_id,
            vehicle_id: r.vehicle_id,
            order_id: r.order_id,
            repair_order_id: r.repair_order_id,
            payload: serde_json::from_str(&r.payload).unwrap_or_default(),
            occurred_at: r.occurred_at,
            status: r.status,
            decided_by: serde_json::from_str(&r.decided_by).unwrap_or_default(),
            run_id: r.run_id,
            error: r.error,
        })
        .collect())
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventFilter {
    pub kind: Option<String>,
    pub order_id: Option<i64>,
    pub repair_order_id: Option<i64>,
    pub customer_id: Option<i64>,
}

/// Events in the caller's scope, newest first (at most 200).
pub async fn list(
    conn: &mut AnyConnection,
    caller: &Caller,
    filter: &EventFilter,
) -> Result<Vec<IntegrationEvent>> {
    let mut sql = Sql::new(&format!(
        "SELECT {EVENT_COLUMNS} FROM integration_events WHERE 1 = 1"
    ));
    caller.scope(&mut sql, "dealer_id");
    if let Some(kind) = &filter.kind {
        sql.push(" AND kind = ").bind(Param::Text(kind.clone()));
    }
    for (column, value) in [
        ("order_id", filter.order_id),
        ("repair_order_id", filter.repair_order_id),
        ("customer_id", filter.customer_id),
    ] {
        if let Some(value) = value {
            sql.push(&format!(" AND {column} = "))
                .bind(Param::Int(value));
        }
    }
    sql.push(" ORDER BY id DESC LIMIT 200");
    let rows: Vec<EventRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    assemble(conn, rows).await
}
