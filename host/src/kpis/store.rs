//! A store's cockpit (门店驾驶舱) beyond the KPIs: SLA breaches by local hour and category,
//! the NPS distribution and what detractors wrote, active / new / lost customers, the top
//! service items and the staff leaderboard. Works for any unit; a dealer is what it is for.

use std::collections::BTreeMap;

use chrono::{DateTime, Timelike, Utc};
use serde::Serialize;
use sqlx::AnyConnection;
use utoipa::ToSchema;

use super::{Frame, KpiQuery, Subject};
use crate::access::Caller;
use crate::clock::{self, Period};
use crate::db::{Param, Sql};
use crate::error::Result;

const DAY_MS: i64 = 86_400_000;
/// The customer windows, in days.
const WINDOWS: [i64; 3] = [30, 90, 365];

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Count {
    pub key: String,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DetractorComment {
    pub survey_id: i64,
    pub customer_id: i64,
    pub customer_name: String,
    pub nps: i64,
    pub comment: String,
    pub answered_at: DateTime<Utc>,
}

/// Customers of a window ending at the period's end.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CustomerWindow {
    pub days: i64,
    /// With a paid visit in the window.
    pub active: i64,
    /// Created in the window.
    pub new: i64,
    /// Active in the window before this one, and not in this one.
    pub lost: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServiceItem {
    pub description: String,
    /// Lines on repair orders settled in the period.
    pub count: i64,
    pub amount_fen: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Leader {
    pub staff_id: i64,
    pub name: String,
    pub position: Option<String>,
    /// Repair orders they opened, settled in the period.
    pub settled_orders: i64,
    pub revenue_fen: i64,
    /// Leads captured in the period they won.
    pub won_leads: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoreCockpit {
    /// Breaches (first contact or resolution) per local hour of the day, 0 to 23.
    pub sla_breaches_by_hour: Vec<i64>,
    pub sla_breaches_by_category: Vec<Count>,
    /// Answers per NPS score, 0 to 10.
    pub nps_distribution: Vec<i64>,
    /// The latest 20 comments of answers 0 to 6.
    pub detractor_comments: Vec<DetractorComment>,
    pub customers: Vec<CustomerWindow>,
    /// The ten most frequent lines.
    pub top_service_items: Vec<ServiceItem>,
    pub leaderboard: Vec<Leader>,
}

/// The cockpit of the asked unit over the period (`by` is not used).
pub async fn cockpit(
    conn: &mut AnyConnection,
    caller: &Caller,
    query: &KpiQuery,
) -> Result<StoreCockpit> {
    let subject = Subject::resolve(conn, caller, query.unit_id).await?;
    let frame = subject.frame(&Period {
        from: query.from.clone(),
        to: query.to.clone(),
    })?;
    let (by_hour, by_category) = breaches(conn, &frame, subject.offset()).await?;
    let (nps_distribution, detractor_comments) = answers(conn, &frame).await?;
    let mut customers = Vec::new();
    for days in WINDOWS {
        customers.push(window(conn, &frame, days).await?);
    }
    Ok(StoreCockpit {
        sla_breaches_by_hour: by_hour,
        sla_breaches_by_category: by_category,
        nps_distribution,
        detractor_comments,
        customers,
        top_service_items: service_items(conn, &frame).await?,
        leaderboard: leaderboard(conn, &frame).await?,
    })
}

async fn breaches(
    conn: &mut AnyConnection,
    frame: &Frame,
    offset: i32,
) -> Result<(Vec<i64>, Vec<Count>)> {
    let mut by_hour = vec![0; 24];
    let mut by_category: BTreeMap<String, i64> = BTreeMap::new();
    for column in ["t.first_contact_breached_at", "t.resolution_breached_at"] {
        let mut sql = Sql::new(&format!(
            "SELECT {column}, t.category FROM tickets t WHERE {column} >= "
        ));
        sql.bind(Param::Int(frame.start))
            .push(&format!(" AND {column} < "))
            .bind(Param::Int(frame.end));
        frame.scope(&mut sql, "t.dealer_id");
        let rows: Vec<(i64, String)> = sqlx::query_as_with(sql.text(), sql.arguments())
            .fetch_all(&mut *conn)
            .await?;
        for (at, category) in rows {
            let local = clock::to_datetime(at + i64::from(offset) * 60_000);
            by_hour[local.hour() as usize] += 1;
            *by_category.entry(category).or_default() += 1;
        }
    }
    let mut by_category: Vec<Count> = by_category
        .into_iter()
        .map(|(key, count)| Count { key, count })
        .collect();
    by_category.sort_by(|a, b| b.count.cmp(&a.count).then(a.key.cmp(&b.key)));
    Ok((by_hour, by_category))
}

async fn answers(
    conn: &mut AnyConnection,
    frame: &Frame,
) -> Result<(Vec<i64>, Vec<DetractorComment>)> {
    let mut sql = Sql::new(
        "SELECT s.nps, COUNT(*) FROM surveys s WHERE s.nps IS NOT NULL AND s.answered_at >= ",
    );
    sql.bind(Param::Int(frame.start))
        .push(" AND s.answered_at < ")
        .bind(Param::Int(frame.end));
    frame.scope(&mut sql, "s.dealer_id");
    sql.push(" GROUP BY s.nps");
    let rows: Vec<(i64, i64)> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    let mut distribution = vec![0; 11];
    for (score, n) in rows {
        if let Some(slot) = usize::try_from(score)
            .ok()
            .and_then(|s| distribution.get_mut(s))
        {
            *slot = n;
        }
    }
    let mut sql = Sql::new(
        "SELECT s.id, s.customer_id, c.name, s.nps, s.comment, s.answered_at FROM surveys s \
         JOIN customers c ON c.id = s.customer_id \
         WHERE s.nps <= 6 AND s.comment IS NOT NULL AND s.comment <> '' AND s.answered_at >= ",
    );
    sql.bind(Param::Int(frame.start))
        .push(" AND s.answered_at < ")
        .bind(Param::Int(frame.end));
    frame.scope(&mut sql, "s.dealer_id");
    sql.push(" ORDER BY s.answered_at DESC, s.id DESC LIMIT 20");
    let rows: Vec<(i64, i64, String, i64, String, i64)> =
        sqlx::query_as_with(sql.text(), sql.arguments())
            .fetch_all(&mut *conn)
            .await?;
    let comments = rows
        .into_iter()
        .map(
            |(survey_id, customer_id, customer_name, nps, comment, at)| DetractorComment {
                survey_id,
                customer_id,
                customer_name,
                nps,
                comment,
                answered_at: clock::to_datetime(at),
            },
        )
        .collect();
    Ok((distribution, comments))
}

/// Distinct customers with a paid visit in `[start, end)` under the frame's unit.
fn visitors(sql: &mut Sql, frame: &Frame, start: i64, end: i64) {
    sql.push(
        "SELECT DISTINCT r.customer_id FROM repair_orders r WHERE r.total_fen > 0 AND r.settled_at >= ",
    )
    .bind(Param::Int(start))
    .push(" AND r.settled_at < ")
    .bind(Param::Int(end));
    frame.scope(sql, "r.dealer_id");
}

async fn window(conn: &mut AnyConnection, frame: &Frame, days: i64) -> Result<CustomerWindow> {
    let end = frame.end;
    let start = end - days * DAY_MS;
    let before = start - days * DAY_MS;
    let mut sql = Sql::new("SELECT COUNT(*) FROM (");
    visitors(&mut sql, frame, start, end);
    sql.push(") a");
    let (active,): (i64,) = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_one(&mut *conn)
        .await?;
    let mut sql = Sql::new("SELECT COUNT(*) FROM customers c WHERE c.created_at >= ");
    sql.bind(Param::Int(start))
        .push(" AND c.created_at < ")
        .bind(Param::Int(end));
    frame.scope(&mut sql, "c.dealer_id");
    let (new,): (i64,) = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_one(&mut *conn)
        .await?;
    let mut sql = Sql::new("SELECT COUNT(*) FROM (");
    visitors(&mut sql, frame, before, start);
    sql.push(") p WHERE p.customer_id NOT IN (");
    visitors(&mut sql, frame, start, end);
    sql.push(")");
    let (lost,): (i64,) = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_one(&mut *conn)
        .await?;
    Ok(CustomerWindow {
        days,
        active,
        new,
        lost,
    })
}

async fn service_items(conn: &mut AnyConnection, frame: &Frame) -> Result<Vec<ServiceItem>> {
    let mut sql = Sql::new(
        "SELECT l.description, COUNT(*), CAST(COALESCE(SUM(l.amount_fen), 0) AS BIGINT) \
         FROM repair_order_lines l JOIN repair_orders r ON r.id = l.repair_order_id \
         WHERE r.settled_at >= ",
    );
    sql.bind(Param::Int(frame.start))
        .push(" AND r.settled_at < ")
        .bind(Param::Int(frame.end));
    frame.scope(&mut sql, "r.dealer_id");
    sql.push(" GROUP BY l.description ORDER BY COUNT(*) DESC, l.description LIMIT 10");
    let rows: Vec<(String, i64, i64)> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(description, count, amount_fen)| ServiceItem {
            description,
            count,
            amount_fen,
        })
        .collect())
}

async fn leaderboard(conn: &mut AnyConnection, frame: &Frame) -> Result<Vec<Leader>> {
    let mut sql = Sql::new(
        "SELECT r.advisor_staff_id, COUNT(*), CAST(COALESCE(SUM(r.total_fen), 0) AS BIGINT) \
         FROM repair_orders r WHERE r.advisor_staff_id IS NOT NULL AND r.settled_at >= ",
    );
    sql.bind(Param::Int(frame.start))
        .push(" AND r.settled_at < ")
        .bind(Param::Int(frame.end));
    frame.scope(&mut sql, "r.dealer_id");
    sql.push(" GROUP BY r.advisor_staff_id");
    let advisors: Vec<(i64, i64, i64)> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    let mut sql = Sql::new(
        "SELECT l.consultant_id, COUNT(*) FROM leads l \
         WHERE l.consultant_id IS NOT NULL AND l.stage = 'won' AND l.created_at >= ",
    );
    sql.bind(Param::Int(frame.start))
        .push(" AND l.created_at < ")
        .bind(Param::Int(frame.end));
    frame.scope(&mut sql, "l.dealer_id");
    sql.push(" GROUP BY l.consultant_id");
    let consultants: Vec<(i64, i64)> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    let mut board: BTreeMap<i64, (i64, i64, i64)> = BTreeMap::new();
    for (id, orders, revenue) in advisors {
        let e = board.entry(id).or_default();
        e.0 += orders;
        e.1 += revenue;
    }
    for (id, won) in consultants {
        board.entry(id).or_default().2 += won;
    }
    if board.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = board.keys().copied().collect();
    let sql = Sql::in_list(
        "SELECT id, name, position FROM staff WHERE id IN ",
        &ids,
        "",
    );
    let names: Vec<(i64, String, Option<String>)> =
        sqlx::query_as_with(sql.text(), sql.arguments())
            .fetch_all(&mut *conn)
            .await?;
    let mut leaders: Vec<Leader> = names
        .into_iter()
        .map(|(staff_id, name, position)| {
            let (settled_orders, revenue_fen, won_leads) =
                board.get(&staff_id).copied().unwrap_or_default();
            Leader {
                staff_id,
                name,
                position,
                settled_orders,
                revenue_fen,
                won_leads,
            }
        })
        .collect();
    leaders.sort_by(|a, b| {
        (b.revenue_fen, b.won_leads, a.staff_id).cmp(&(a.revenue_fen, a.won_leads, b.staff_id))
    });
    leaders.truncate(20);
    Ok(leaders)
}
