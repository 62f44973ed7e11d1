//! The records behind a figure: for a KPI, a unit (or a row of a breakdown) and a period, the
//! records its `count` is over, each marked `counted` when it is in the figure's `part` (the
//! tickets that breached, the customers who came back, the owners at risk). Uses the same
//! rules as [`super::measures`], so the list and the figure cannot disagree.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa::{IntoParams, ToSchema};

use super::measures::{Measure, at_risk, late_ticket, paid_visits_per_customer};
use super::{Breakdown, DAY_MS, Frame, HOUR_MS, Kpi, Subject, UNASSIGNED};
use crate::access::Caller;
use crate::clock::{self, Period};
use crate::db::{Param, Sql};
use crate::error::{Error, Result};
use crate::sales::text_enum;

/// The most records an export holds; past it the person narrows the period or the unit.
pub const MAX_EXPORT: i64 = 100_000;

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordsQuery {
    pub kpi: Kpi,
    pub from: String,
    pub to: String,
    pub unit_id: Option<i64>,
    /// With `key`: the breakdown whose row the records are of.
    pub by: Option<Breakdown>,
    /// A row of the breakdown (`KpiRow.key`); absent: the whole unit.
    pub key: Option<String>,
    /// `true`: only the records in the figure's part; `false`: only those outside it.
    pub counted: Option<bool>,
}

text_enum!(
    /// What a drill-down record is.
    RecordKind {
        Ticket => "ticket",
        Survey => "survey",
        Customer => "customer",
        RepairOrder => "repair_order",
        Lead => "lead",
    }
);

/// One record behind a figure.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DrillRecord {
    pub kind: RecordKind,
    /// The record's id (the customer's, for a customer).
    pub id: i64,
    pub dealer_id: i64,
    pub dealer_name: String,
    pub customer_id: Option<i64>,
    pub customer_name: String,
    /// When the record entered the period: closed, answered, last visit, settled, captured.
    pub at: DateTime<Utc>,
    /// In the figure's part.
    pub counted: bool,
    /// The record's share of the figure: seconds (AHT), a score (CSAT, NPS), visits (return
    /// rate), fen (LTV, revenue), days (time between visits; churn: since the last visit),
    /// hours (repair duration), appointments (conversion); absent where it has none.
    pub value: Option<f64>,
    /// What the record is about: the ticket's subject, the complaint code, the comment, the
    /// lead's stage.
    pub detail: String,
    /// Churn: the owner's usual interval between paid visits, in days.
    pub usual_interval_days: Option<f64>,
}

impl Kpi {
    fn record_kind(self) -> RecordKind {
        match self {
            Kpi::Fcr | Kpi::Aht | Kpi::Backlog => RecordKind::Ticket,
            Kpi::Csat | Kpi::CsatSatisfied | Kpi::Nps => RecordKind::Survey,
            Kpi::ReturnRate
            | Kpi::Ltv
            | Kpi::TimeBetweenVisits
            | Kpi::AppointmentConversion
            | Kpi::Churn => RecordKind::Customer,
            Kpi::FirstTimeFix | Kpi::RepairDuration | Kpi::Revenue => RecordKind::RepairOrder,
            Kpi::LeadConversion => RecordKind::Lead,
        }
    }

    /// A record's value from its raw column.
    fn record_value(self, raw: Option<i64>) -> Option<f64> {
        let raw = raw? as f64;
        match self {
            Kpi::Fcr | Kpi::Backlog | Kpi::FirstTimeFix | Kpi::LeadConversion => None,
            Kpi::Aht => Some(raw / 1000.0),
            Kpi::TimeBetweenVisits | Kpi::Churn => Some(raw / DAY_MS),
            Kpi::RepairDuration => Some(raw / HOUR_MS),
            _ => Some(raw),
        }
    }
}

/// `(id, dealer_id, customer_id, at, counted, value, aux, detail, name)` as the SQL gives it.
type RawRecord = (
    i64,
    i64,
    Option<i64>,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    String,
    String,
);

/// The records' query: the KPI's rows in a subquery `q`, named from `customers`.
fn sql(kpi: Kpi, frame: &Frame, filter: &Filter) -> Sql {
    let (start, end) = (Param::Int(frame.start), Param::Int(frame.end));
    let mut sql = Sql::new(
        "SELECT q.id, q.dealer_id, q.customer_id, q.at, q.counted, q.v, q.aux, q.detail, COALESCE(c.name, q.fallback) FROM (",
    );
    match kpi {
        Kpi::Fcr | Kpi::Aht => {
            sql.push("SELECT t.id, t.dealer_id, t.customer_id, t.closed_at AS at, ")
                .push(if kpi == Kpi::Fcr {
                    "CASE WHEN t.first_contact_resolution = 1 THEN 1 ELSE 0 END"
                } else {
                    "1"
                })
                .push(
                    " AS counted, t.closed_at - t.opened_at AS v, CAST(NULL AS BIGINT) AS aux, \
                 t.subject AS detail, '' AS fallback FROM tickets t \
                 WHERE t.status = 'closed' AND t.closed_at >= ",
                )
                .bind(start)
                .push(" AND t.closed_at < ")
                .bind(end);
            filter.apply(&mut sql, frame, "t.dealer_id", Measure::TicketsClosed);
        }
        Kpi::Backlog => {
            sql.push("SELECT t.id, t.dealer_id, t.customer_id, t.opened_at AS at, CASE WHEN ");
            late_ticket(&mut sql, frame);
            sql.push(
                " THEN 1 ELSE 0 END AS counted, CAST(NULL AS BIGINT) AS v, CAST(NULL AS BIGINT) AS aux, \
                 t.subject AS detail, '' AS fallback FROM tickets t WHERE ((t.opened_at >= ",
            )
            .bind(start)
            .push(" AND t.opened_at < ")
            .bind(end)
            .push(") OR (");
            late_ticket(&mut sql, frame);
            sql.push("))");
            filter.apply(&mut sql, frame, "t.dealer_id", Measure::TicketsOpened);
        }
        Kpi::Csat | Kpi::CsatSatisfied | Kpi::Nps => {
            let (counted, score) = match kpi {
                Kpi::Csat => ("1", "s.csat"),
                Kpi::CsatSatisfied => ("CASE WHEN s.csat >= 4 THEN 1 ELSE 0 END", "s.csat"),
                _ => ("CASE WHEN s.nps <= 6 THEN 1 ELSE 0 END", "s.nps"),
            };
            sql.push(&format!(
                "SELECT s.id, s.dealer_id, s.customer_id, s.answered_at AS at, {counted} AS counted, \
                 {score} AS v, CAST(NULL AS BIGINT) AS aux, COALESCE(s.comment, '') AS detail, \
                 '' AS fallback FROM surveys s WHERE {score} IS NOT NULL AND s.answered_at >= "
            ))
            .bind(start)
            .push(" AND s.answered_at < ")
            .bind(end);
            filter.apply(&mut sql, frame, "s.dealer_id", Measure::Surveys);
        }
        Kpi::ReturnRate | Kpi::Ltv | Kpi::TimeBetweenVisits => {
            let v = match kpi {
                Kpi::ReturnRate => "v.n",
                Kpi::Ltv => "v.spend",
                _ => "CASE WHEN v.n >= 2 THEN (v.last_at - v.first_at) / (v.n - 1) END",
            };
            let counted = if kpi == Kpi::Ltv {
                "1"
            } else {
                "CASE WHEN v.n >= 2 THEN 1 ELSE 0 END"
            };
            sql.push(&format!(
                "SELECT v.customer_id AS id, v.dealer_id, v.customer_id, v.last_at AS at, \
                 {counted} AS counted, CAST({v} AS BIGINT) AS v, CAST(NULL AS BIGINT) AS aux, \
                 '' AS detail, '' AS fallback FROM ("
            ));
            paid_visits_per_customer(&mut sql, &filter.narrow(frame), Some(frame.start));
            sql.push(") v WHERE 1 = 1");
        }
        Kpi::AppointmentConversion => {
            sql.push(
                "SELECT b.customer_id AS id, b.dealer_id, b.customer_id, b.at, b.came AS counted, \
                 b.n AS v, CAST(NULL AS BIGINT) AS aux, '' AS detail, '' AS fallback FROM \
                 (SELECT a.dealer_id, a.customer_id, MAX(a.slot_start) AS at, COUNT(*) AS n, \
                 MAX(CASE WHEN a.status = 'arrived' THEN 1 ELSE 0 END) AS came \
                 FROM appointments a WHERE a.slot_start >= ",
            )
            .bind(start)
            .push(" AND a.slot_start < ")
            .bind(end);
            filter.apply(&mut sql, frame, "a.dealer_id", Measure::Bookings);
            sql.push(" GROUP BY a.dealer_id, a.customer_id) b WHERE 1 = 1");
        }
        Kpi::FirstTimeFix | Kpi::RepairDuration | Kpi::Revenue => {
            let counted = if kpi == Kpi::FirstTimeFix {
                "CASE WHEN NOT EXISTS (SELECT 1 FROM repair_orders c2 WHERE c2.comeback_of_id = r.id) THEN 1 ELSE 0 END"
            } else {
                "1"
            };
            let v = match kpi {
                Kpi::RepairDuration => "r.settled_at - r.created_at",
                _ => "r.total_fen",
            };
            sql.push(&format!(
                "SELECT r.id, r.dealer_id, r.customer_id, r.settled_at AS at, {counted} AS counted, \
                 {v} AS v, CAST(NULL AS BIGINT) AS aux, r.complaint_code AS detail, '' AS fallback \
                 FROM repair_orders r WHERE r.settled_at >= "
            ))
            .bind(start)
            .push(" AND r.settled_at < ")
            .bind(end);
            filter.apply(&mut sql, frame, "r.dealer_id", Measure::RepairOrders);
        }
        Kpi::LeadConversion => {
            sql.push(
                "SELECT l.id, l.dealer_id, l.customer_id, l.created_at AS at, \
                 CASE WHEN l.stage = 'won' THEN 1 ELSE 0 END AS counted, CAST(NULL AS BIGINT) AS v, \
                 CAST(NULL AS BIGINT) AS aux, l.stage AS detail, l.name AS fallback \
                 FROM leads l WHERE l.created_at >= ",
            )
            .bind(start)
            .push(" AND l.created_at < ")
            .bind(end);
            filter.apply(&mut sql, frame, "l.dealer_id", Measure::Leads);
        }
        Kpi::Churn => {
            sql.push(
                "SELECT h.customer_id AS id, h.dealer_id, h.customer_id, h.last_at AS at, CASE WHEN ",
            );
            at_risk(&mut sql, frame);
            sql.push(" THEN 1 ELSE 0 END AS counted, ").bind(end).push(
                " - h.last_at AS v, (h.last_at - h.first_at) / (h.n - 1) AS aux, '' AS detail, \
                     '' AS fallback FROM (",
            );
            paid_visits_per_customer(&mut sql, &filter.narrow(frame), None);
            sql.push(" HAVING COUNT(*) >= 2) h JOIN org_units u ON u.id = h.dealer_id WHERE 1 = 1");
        }
    }
    sql.push(") q LEFT JOIN customers c ON c.id = q.customer_id WHERE 1 = 1");
    match filter.counted {
        Some(true) => sql.push(" AND q.counted = 1"),
        Some(false) => sql.push(" AND q.counted = 0"),
        None => &mut sql,
    };
    sql.push(" ORDER BY q.at DESC, q.id DESC");
    sql
}

/// Which records of the frame: a row of the breakdown, and whether in the part.
struct Filter {
    /// A unit row: its path.
    unit_path: Option<String>,
    /// A dimension row: its breakdown and value (`None`: records without one).
    dimension: Option<(Breakdown, Option<String>)>,
    counted: Option<bool>,
}

impl Filter {
    /// Scopes to the frame (or the row's unit) and, for a dimension row, its value.
    fn apply(&self, sql: &mut Sql, frame: &Frame, dealer_column: &str, measure: Measure) {
        self.narrow(frame).scope(sql, dealer_column);
        if let Some((by, value)) = &self.dimension
            && let Some(column) = measure.column(*by)
        {
            match value {
                Some(value) => sql
                    .push(" AND ")
                    .push(column)
                    .push(" = ")
                    .bind(Param::Text(value.clone())),
                None => sql.push(" AND ").push(column).push(" IS NULL"),
            };
        }
    }

    /// The frame, or the row unit's part of it.
    fn narrow(&self, frame: &Frame) -> Frame {
        Frame {
            start: frame.start,
            end: frame.end,
            path: self.unit_path.clone().unwrap_or_else(|| frame.path.clone()),
        }
    }
}

/// The filter a query names; a row that is not one of the breakdown's is refused.
fn filter(subject: &Subject, query: &RecordsQuery) -> Result<Filter> {
    let mut filter = Filter {
        unit_path: None,
        dimension: None,
        counted: query.counted,
    };
    let Some(key) = &query.key else {
        return Ok(filter);
    };
    let by = query.by.unwrap_or(Breakdown::Child);
    if by.is_unit() {
        let unit = key
            .parse::<i64>()
            .ok()
            .and_then(|id| subject.row_units(by).into_iter().find(|u| u.id == id))
            .ok_or_else(|| {
                Error::invalid("key", "unknown_row", "no row of the breakdown has that key")
            })?;
        filter.unit_path = Some(unit.path.clone());
    } else {
        if !query.kpi.splits_by(by) {
            return Err(Error::invalid(
                "by",
                "not_split",
                format!("{} does not split by {}", query.kpi.as_str(), by.as_str()),
            ));
        }
        let value = (key != UNASSIGNED).then(|| key.clone());
        filter.dimension = Some((by, value));
    }
    Ok(filter)
}

/// A page of the records behind a figure: `limit` from `offset`, newest first.
pub async fn list(
    conn: &mut AnyConnection,
    caller: &Caller,
    query: &RecordsQuery,
    offset: i64,
    limit: i64,
) -> Result<Vec<DrillRecord>> {
    let subject = Subject::resolve(conn, caller, query.unit_id).await?;
    list_for(conn, &subject, query, offset, limit).await
}

/// [`list`] for a resolved subject.
pub(super) async fn list_for(
    conn: &mut AnyConnection,
    subject: &Subject,
    query: &RecordsQuery,
    offset: i64,
    limit: i64,
) -> Result<Vec<DrillRecord>> {
    let frame = subject.frame(&Period {
        from: query.from.clone(),
        to: query.to.clone(),
    })?;
    let filter = filter(subject, query)?;
    let mut sql = sql(query.kpi, &frame, &filter);
    sql.push(" LIMIT ")
        .bind(Param::Int(limit))
        .push(" OFFSET ")
        .bind(Param::Int(offset));
    let rows: Vec<RawRecord> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    let kind = query.kpi.record_kind();
    Ok(rows
        .into_iter()
        .map(
            |(id, dealer_id, customer_id, at, counted, v, aux, detail, name)| DrillRecord {
                kind,
                id,
                dealer_id,
                dealer_name: subject.name_of(dealer_id),
                customer_id,
                customer_name: name,
                at: clock::to_datetime(at),
                counted: counted == 1,
                value: query.kpi.record_value(v),
                detail,
                usual_interval_days: aux.map(|ms| ms as f64 / DAY_MS),
            },
        )
        .collect())
}
