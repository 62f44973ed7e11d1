//! Work for a dealer's service advisors that the host creates on its own, such as the
//! insurance renewal the reminders plugin plans 30 days before expiry. Owns `advisor_tasks`.
//!
//! A task is created once per dealer and dedupe key, however often the scheduler plans it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow};
use utoipa::{IntoParams, ToSchema};

use crate::access::{self, Caller, Record};
use crate::audit::{self, Entry};
use crate::clock;
use crate::db::{Param, Sql};
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Open,
    Done,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = CareTask)]
pub struct Task {
    pub id: i64,
    pub dealer_id: i64,
    pub vehicle_id: Option<i64>,
    pub customer_id: Option<i64>,
    /// What it is about, e.g. `insurance_renewal`.
    pub kind: String,
    pub title: String,
    /// `YYYY-MM-DD`.
    pub due: String,
    pub status: TaskStatus,
    pub created_at: DateTime<Utc>,
    /// When an advisor marked it done.
    pub done_at: Option<DateTime<Utc>>,
    /// Who marked it done.
    pub done_by_staff_id: Option<i64>,
}

/// A task to create.
pub struct NewTask<'a> {
    pub dealer_id: i64,
    pub vehicle_id: Option<i64>,
    pub customer_id: Option<i64>,
    pub kind: &'a str,
    pub title: &'a str,
    pub due: &'a str,
    /// Unique per dealer: a second task with the same key is not created.
    pub dedupe_key: &'a str,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskFilter {
    pub status: Option<TaskStatus>,
    pub vehicle_id: Option<i64>,
}

#[derive(FromRow)]
struct Row {
    id: i64,
    dealer_id: i64,
    vehicle_id: Option<i64>,
    customer_id: Option<i64>,
    kind: String,
    title: String,
    due: String,
    status: String,
    created_at: i64,
    done_at: Option<i64>,
    done_by_staff_id: Option<i64>,
}

impl From<Row> for Task {
    fn from(r: Row) -> Task {
        Task {
            id: r.id,
            dealer_id: r.dealer_id,
            vehicle_id: r.vehicle_id,
            customer_id: r.customer_id,
            kind: r.kind,
            title: r.title,
            due: r.due,
            status: if r.status == "done" {
                TaskStatus::Done
            } else {
                TaskStatus::Open
            },
            created_at: clock::to_datetime(r.created_at),
            done_at: clock::opt_datetime(r.done_at),
            done_by_staff_id: r.done_by_staff_id,
        }
    }
}

const COLUMNS: &str = "id, dealer_id, vehicle_id, customer_id, kind, title, due, status, created_at, done_at, done_by_staff_id";

/// Marks task `id` in the caller's scope done, as the caller, with its audit entry on `conn`;
/// a task already done is answered as it is.
pub async fn complete(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<Task> {
    let dealer = access::owning_dealer(conn, caller, Record::AdvisorTask, id).await?;
    let done = sqlx::query(
        "UPDATE advisor_tasks SET status = 'done', done_at = $1, done_by_staff_id = $2 \
         WHERE id = $3 AND status = 'open'",
    )
    .bind(clock::now_ms())
    .bind(caller.staff_id)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 1 {
        audit::record(
            conn,
            caller,
            Entry::ok("complete", "advisor_task", id, dealer),
        )
        .await?;
    }
    let row: Row = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM advisor_tasks WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.into())
}

/// Creates the task unless one with its dedupe key exists at its dealer; the new id, or
/// `None` when it existed.
pub async fn create_once(
    conn: &mut AnyConnection,
    new: &NewTask<'_>,
    now: i64,
) -> Result<Option<i64>> {
    let created: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO advisor_tasks (dealer_id, vehicle_id, customer_id, kind, title, due, dedupe_key, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (dealer_id, dedupe_key) DO NOTHING RETURNING id",
    )
    .bind(new.dealer_id)
    .bind(new.vehicle_id)
    .bind(new.customer_id)
    .bind(new.kind)
    .bind(new.title)
    .bind(new.due)
    .bind(new.dedupe_key)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(created.map(|(id,)| id))
}

/// Tasks in the caller's scope, newest first, `limit + 1` at most; the page continues below
/// `before_id`.
pub async fn list(
    conn: &mut AnyConnection,
    caller: &Caller,
    filter: &TaskFilter,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<Task>> {
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM advisor_tasks WHERE 1 = 1"));
    caller.scope(&mut sql, "dealer_id");
    if let Some(status) = filter.status {
        sql.push(" AND status = ").bind(Param::Text(
            match status {
                TaskStatus::Open => "open",
                TaskStatus::Done => "done",
            }
            .into(),
        ));
    }
    if let Some(vehicle) = filter.vehicle_id {
        sql.push(" AND vehicle_id = ").bind(Param::Int(vehicle));
    }
    if let Some(before) = before_id {
        sql.push(" AND id < ").bind(Param::Int(before));
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .bind(Param::Int(limit + 1));
    let rows: Vec<Row> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().map(Task::from).collect())
}
