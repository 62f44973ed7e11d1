//! Ticket KPIs for a period, in the caller's scope.
//!
//! - **FCR**: of the tickets closed in the period, the share resolved at their first contact
//!   (see the module documentation of [`super`] for the exact rule).
//! - **AHT**: the mean of `closed_at − opened_at` over the tickets closed in the period.
//! - **Backlog rate**: of the tickets opened in the period, the share not closed by their
//!   resolution deadline (still open, or closed after it; a ticket without a deadline counts
//!   while it is not closed).
//! - **CSAT** and **NPS**: over the survey answers given in the period for tickets: the mean
//!   CSAT (1–5) and the share of 4 and 5; NPS is the percentage of 9–10 minus the percentage
//!   of 0–6, from −100 to 100.
//!
//! A rate is absent when there is nothing to divide by.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::AnyConnection;
use utoipa::ToSchema;

use super::TicketStatus;
use crate::access::Caller;
use crate::clock;
use crate::db::{Param, Sql};
use crate::error::Result;
use crate::surveys;

/// The period of the KPIs ([`crate::clock::Period`]): dates are whole local days, times exact.
pub use crate::clock::Period;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Kpis {
    pub from: DateTime<Utc>,
    /// Exclusive.
    pub to: DateTime<Utc>,
    pub fcr: Fcr,
    pub aht: Aht,
    pub backlog: Backlog,
    pub csat: surveys::Csat,
    pub nps: surveys::Nps,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Fcr {
    /// Tickets closed in the period.
    pub closed: i64,
    /// Of those, resolved at their first contact.
    pub first_contact: i64,
    /// `first_contact / closed`.
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Aht {
    /// Tickets closed in the period.
    pub closed: i64,
    /// Mean time from opened to closed, in seconds.
    pub mean_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Backlog {
    /// Tickets opened in the period.
    pub opened: i64,
    /// Of those, not closed by their resolution deadline.
    pub not_closed_within_sla: i64,
    /// `not_closed_within_sla / opened`.
    pub rate: Option<f64>,
}

/// `part / whole`, absent when `whole` is 0.
pub fn rate(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The KPIs of the tickets in the caller's scope for `period`.
pub async fn compute(conn: &mut AnyConnection, caller: &Caller, period: &Period) -> Result<Kpis> {
    let offset = crate::network::utc_offset_minutes(conn, caller.org_id).await?;
    let (from, to) = period.bounds_ms(offset)?;
    let closed = TicketStatus::Closed.as_str().to_owned();

    let mut sql = Sql::new(
        "SELECT COUNT(*), COUNT(CASE WHEN first_contact_resolution = 1 THEN 1 END), \
         CAST(SUM(closed_at - opened_at) AS BIGINT) FROM tickets WHERE status = ",
    );
    sql.bind(Param::Text(closed.clone()))
        .push(" AND closed_at >= ")
        .bind(Param::Int(from))
        .push(" AND closed_at < ")
        .bind(Param::Int(to));
    caller.scope(&mut sql, "dealer_id");
    let (closed_count, fcr_count, handling_ms): (i64, i64, Option<i64>) =
        sqlx::query_as_with(sql.text(), sql.arguments())
            .fetch_one(&mut *conn)
            .await?;

    let mut sql = Sql::new(
        "SELECT COUNT(*), COUNT(CASE WHEN closed_at IS NULL OR closed_at > resolution_due THEN 1 END) \
         FROM tickets WHERE opened_at >= ",
    );
    sql.bind(Param::Int(from))
        .push(" AND opened_at < ")
        .bind(Param::Int(to));
    caller.scope(&mut sql, "dealer_id");
    let (opened, late): (i64, i64) = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_one(&mut *conn)
        .await?;

    let (csat, nps) = surveys::stats(conn, caller, surveys::SubjectKind::Ticket, from, to).await?;
    Ok(Kpis {
        from: clock::to_datetime(from),
        to: clock::to_datetime(to),
        fcr: Fcr {
            closed: closed_count,
            first_contact: fcr_count,
            rate: rate(fcr_count, closed_count),
        },
        aht: Aht {
            closed: closed_count,
            mean_seconds: handling_ms
                .filter(|_| closed_count > 0)
                .map(|ms| ms as f64 / 1000.0 / closed_count as f64),
        },
        backlog: Backlog {
            opened,
            not_closed_within_sla: late,
            rate: rate(late, opened),
        },
        csat,
        nps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_needs_a_whole() {
        assert_eq!(rate(1, 4), Some(0.25));
        assert_eq!(rate(0, 0), None);
    }
}
