//! Commission lines: what a delivery pays each credited staff member, and what computed it (the
//! dealer's commission plugin with its version and run, or `built-in`). Owns
//! `commission_lines`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow};
use utoipa::{IntoParams, ToSchema};

use crate::access::Caller;
use crate::clock;
use crate::db::{Param, Sql};
use crate::error::{Error, Result};
use crate::plugins::dispatch::DecisionSource;
use crate::plugins::hooks::commission as hook;

/// The name recorded for a decision of the host's built-in rule.
pub const BUILT_IN: &str = "built-in";

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommissionLine {
    pub id: i64,
    pub dealer_id: i64,
    pub order_id: i64,
    pub staff_id: i64,
    /// `YYYY-MM` of the delivery (UTC).
    pub month: String,
    pub amount_fen: i64,
    pub reason: String,
    /// The plugin that computed it, or `built-in`.
    pub plugin: String,
    /// The plugin's version; absent for `built-in`.
    pub plugin_version: Option<String>,
    /// The plugin run log entry of the computation.
    pub run_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

#[derive(FromRow)]
struct LineRow {
    id: i64,
    dealer_id: i64,
    order_id: i64,
    staff_id: i64,
    month: String,
    amount_fen: i64,
    reason: String,
    plugin: String,
    plugin_version: Option<String>,
    run_id: Option<i64>,
    created_at: i64,
}

impl From<LineRow> for CommissionLine {
    fn from(r: LineRow) -> CommissionLine {
        CommissionLine {
            id: r.id,
            dealer_id: r.dealer_id,
            order_id: r.order_id,
            staff_id: r.staff_id,
            month: r.month,
            amount_fen: r.amount_fen,
            reason: r.reason,
            plugin: r.plugin,
            plugin_version: r.plugin_version,
            run_id: r.run_id,
            created_at: clock::to_datetime(r.created_at),
        }
    }
}

const LINE_COLUMNS: &str = "id, dealer_id, order_id, staff_id, month, amount_fen, reason, plugin, plugin_version, run_id, created_at";

/// What computed a decision, as stored: (plugin name, version) or (`built-in`, none).
pub fn computed_by(source: &DecisionSource) -> (String, Option<String>) {
    match source {
        DecisionSource::Plugin {
            plugin, version, ..
        } => (plugin.clone(), Some(version.clone())),
        DecisionSource::Default { .. } => (BUILT_IN.to_owned(), None),
    }
}

/// Stores the commission lines of a delivered order, computed by `source` in run `run_id`.
pub async fn store(
    conn: &mut AnyConnection,
    dealer_id: i64,
    order_id: i64,
    month: &str,
    lines: &[hook::CommissionLine],
    source: &DecisionSource,
    run_id: Option<i64>,
) -> Result<()> {
    let (plugin, version) = computed_by(source);
    let now = clock::now_ms();
    for line in lines {
        sqlx::query(
            "INSERT INTO commission_lines (dealer_id, order_id, staff_id, month, amount_fen, reason, plugin, \
             plugin_version, run_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(dealer_id)
        .bind(order_id)
        .bind(line.staff_id)
        .bind(month)
        .bind(line.amount)
        .bind(&line.reason)
        .bind(&plugin)
        .bind(version.as_deref())
        .bind(run_id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The commission lines of order `order_id` (not scoped: the caller has checked the order).
pub async fn for_order(conn: &mut AnyConnection, order_id: i64) -> Result<Vec<CommissionLine>> {
    let rows: Vec<LineRow> = sqlx::query_as(&format!(
        "SELECT {LINE_COLUMNS} FROM commission_lines WHERE order_id = $1 ORDER BY id"
    ))
    .bind(order_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(CommissionLine::from).collect())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatementQuery {
    pub staff_id: i64,
    /// `YYYY-MM`.
    pub month: String,
}

/// A staff member's commission for a month.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Statement {
    pub staff_id: i64,
    pub month: String,
    pub total_fen: i64,
    pub lines: Vec<CommissionLine>,
}

fn is_month(s: &str) -> bool {
    chrono::NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d").is_ok() && s.len() == 7
}

/// The commission statement of `staff_id` for `month`, within the caller's scope.
pub async fn statement(
    conn: &mut AnyConnection,
    caller: &Caller,
    query: &StatementQuery,
) -> Result<Statement> {
    if !is_month(&query.month) {
        return Err(Error::invalid(
            "month",
            "invalid_month",
            "a month is YYYY-MM",
        ));
    }
    let mut sql = Sql::new(&format!(
        "SELECT {LINE_COLUMNS} FROM commission_lines WHERE staff_id = "
    ));
    sql.bind(Param::Int(query.staff_id))
        .push(" AND month = ")
        .bind(Param::Text(query.month.clone()));
    caller.scope(&mut sql, "dealer_id");
    sql.push(" ORDER BY id");
    let rows: Vec<LineRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    let lines: Vec<CommissionLine> = rows.into_iter().map(CommissionLine::from).collect();
    Ok(Statement {
        staff_id: query.staff_id,
        month: query.month.clone(),
        total_fen: lines.iter().map(|l| l.amount_fen).sum(),
        lines,
    })
}
