//! The interaction timeline: calls, visits, messages, notes, purchases and services recorded
//! against a customer (and optionally one of their vehicles). Owns `interactions`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow};
use utoipa::ToSchema;

use super::dealer_of;
use crate::access::Caller;
use crate::audit::{self, Entry};
use crate::clock;
use crate::db::{Param, Sql};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Call,
    Visit,
    Message,
    Note,
    Purchase,
    Service,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Interaction {
    pub id: i64,
    pub dealer_id: i64,
    pub customer_id: i64,
    pub vehicle_id: Option<i64>,
    pub staff_id: Option<i64>,
    pub kind: Kind,
    /// e.g. phone, wechat, in_store.
    pub channel: Option<String>,
    pub summary: String,
    pub occurred_at: DateTime<Utc>,
}

/// Interactions are never edited: each keeps version 1.
impl crate::model::Versioned for Interaction {
    fn version(&self) -> i64 {
        1
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInteraction {
    pub kind: Kind,
    pub channel: Option<String>,
    pub summary: String,
    /// One of the customer's vehicles at this dealer.
    pub vehicle_id: Option<i64>,
    /// Default now; not in the future.
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(FromRow)]
struct Row {
    id: i64,
    dealer_id: i64,
    customer_id: i64,
    vehicle_id: Option<i64>,
    staff_id: Option<i64>,
    kind: String,
    channel: Option<String>,
    summary: String,
    occurred_at: i64,
}

impl From<Row> for Interaction {
    fn from(r: Row) -> Self {
        Interaction {
            id: r.id,
            dealer_id: r.dealer_id,
            customer_id: r.customer_id,
            vehicle_id: r.vehicle_id,
            staff_id: r.staff_id,
            kind: serde_json::from_value(serde_json::Value::String(r.kind)).unwrap_or(Kind::Note),
            channel: r.channel,
            summary: r.summary,
            occurred_at: clock::to_datetime(r.occurred_at),
        }
    }
}

const COLUMNS: &str =
    "id, dealer_id, customer_id, vehicle_id, staff_id, kind, channel, summary, occurred_at";

pub async fn create(
    conn: &mut AnyConnection,
    caller: &Caller,
    customer_id: i64,
    new: NewInteraction,
) -> Result<Interaction> {
    let dealer_id = dealer_of(conn, caller, customer_id).await?;
    let summary = new.summary.trim();
    if summary.is_empty() || summary.chars().count() > 2000 {
        return Err(Error::invalid(
            "summary",
            "invalid_text",
            "a summary has 1 to 2000 characters",
        ));
    }
    let now = clock::now_ms();
    let occurred_at = new.occurred_at.map_or(now, |t| t.timestamp_millis());
    if occurred_at > now + 60_000 {
        return Err(Error::invalid(
            "occurred_at",
            "in_future",
            "an interaction cannot happen in the future",
        ));
    }
    if let Some(v) = new.vehicle_id {
        let same_dealer: Option<(i64,)> =
            sqlx::query_as("SELECT id FROM vehicles WHERE id = $1 AND dealer_id = $2")
                .bind(v)
                .bind(dealer_id)
                .fetch_optional(&mut *conn)
                .await?;
        if same_dealer.is_none() {
            return Err(Error::invalid(
                "vehicle_id",
                "unknown_vehicle",
                "not a vehicle of this dealer",
            ));
        }
    }
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO interactions (dealer_id, customer_id, vehicle_id, staff_id, kind, channel, summary, occurred_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
    ))
    .bind(dealer_id)
    .bind(customer_id)
    .bind(new.vehicle_id)
    .bind(caller.staff_id)
    .bind(super::enum_str(&new.kind))
    .bind(new.channel.as_deref().map(str::trim))
    .bind(summary)
    .bind(occurred_at)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    audit::record(
        conn,
        caller,
        Entry::ok("create", "interaction", row.id, dealer_id),
    )
    .await?;
    Ok(row.into())
}

/// The newest `limit` interactions of these customers or vehicles, newest first.
pub async fn recent(
    conn: &mut AnyConnection,
    customer_ids: &[i64],
    vehicle_ids: &[i64],
    limit: i64,
) -> Result<Vec<Interaction>> {
    if customer_ids.is_empty() && vehicle_ids.is_empty() {
        return Ok(Vec::new());
    }
    // Each list is a condition its own index serves ((customer_id, occurred_at),
    // (vehicle_id, occurred_at)); both at once are an OR of the two, which both planners
    // answer from the two indexes. Never a constant false `OR`: SQLite plans that as a scan.
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM interactions WHERE "));
    if !customer_ids.is_empty() {
        sql.push("customer_id IN ")
            .push_list(customer_ids.iter().copied().map(Param::Int));
    }
    if !vehicle_ids.is_empty() {
        if !customer_ids.is_empty() {
            sql.push(" OR ");
        }
        sql.push("vehicle_id IN ")
            .push_list(vehicle_ids.iter().copied().map(Param::Int));
    }
    sql.push(" ORDER BY occurred_at DESC, id DESC LIMIT ")
        .bind(Param::Int(limit));
    let rows: Vec<Row> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().map(Interaction::from).collect())
}
