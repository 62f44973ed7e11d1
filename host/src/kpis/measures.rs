//! The SQL of the KPIs: each measure counts one kind of record of a period, grouped by the
//! record's dealer and, for a breakdown that splits it, by the breakdown's column. Every count
//! is additive, so [`super`] folds dealers into their regions, groups and HQ by summing.
//!
//! Read-only reporting queries over tables other modules own (tickets, surveys, repair orders,
//! appointments, leads); the rules that put a record in a figure are here and nowhere else.

use sqlx::{AnyConnection, Row};

use super::{Breakdown, Counters, Frame};
use crate::db::{Param, Sql};
use crate::error::Result;

/// One kind of record the KPIs count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Tickets closed in the period: FCR, AHT.
    TicketsClosed,
    /// Tickets opened in the period: the backlog rate's whole.
    TicketsOpened,
    /// Tickets open past their resolution deadline at some moment of the period.
    TicketsLate,
    /// Survey answers given in the period: CSAT, NPS.
    Surveys,
    /// Customers' paid visits in the period: return rate, LTV, time between visits.
    Visits,
    /// Customers who booked an appointment for the period, and those who came.
    Bookings,
    /// Repair orders settled in the period: first-time fix, repair duration, revenue.
    RepairOrders,
    /// Leads captured in the period, and those won.
    Leads,
    /// Owners with a usual interval between paid visits, and those past it by the margin.
    Churn,
}

impl Measure {
    pub const ALL: [Measure; 9] = [
        Measure::TicketsClosed,
        Measure::TicketsOpened,
        Measure::TicketsLate,
        Measure::Surveys,
        Measure::Visits,
        Measure::Bookings,
        Measure::RepairOrders,
        Measure::Leads,
        Measure::Churn,
    ];

    /// The column a breakdown splits this measure's records by; `None` when it does not split
    /// them (a unit breakdown splits every measure by dealer, not by a column).
    pub fn column(self, by: Breakdown) -> Option<&'static str> {
        use Breakdown as B;
        use Measure as M;
        match (self, by) {
            (M::TicketsClosed | M::TicketsOpened | M::TicketsLate, B::Channel) => Some("t.channel"),
            (M::TicketsClosed | M::TicketsOpened | M::TicketsLate, B::Category) => {
                Some("t.category")
            }
            (M::TicketsClosed | M::TicketsOpened | M::TicketsLate, B::Team) => Some("t.team"),
            (M::Surveys, B::Touchpoint) => Some("s.subject_kind"),
            (M::Bookings, B::Channel) => Some("a.channel"),
            (M::Bookings, B::ServiceType) => Some("a.service_type"),
            (M::RepairOrders, B::Advisor) => Some("CAST(r.advisor_staff_id AS TEXT)"),
            (M::RepairOrders, B::ServiceType) => Some("r.service_type"),
            (M::Leads, B::Channel) => Some("l.channel"),
            (M::Leads, B::Consultant) => Some("CAST(l.consultant_id AS TEXT)"),
            _ => None,
        }
    }

    /// Whether `by` splits this measure: every unit breakdown does, a dimension when it names
    /// a column of the measure's records.
    pub fn splits_by(self, by: Breakdown) -> bool {
        by.is_unit() || self.column(by).is_some()
    }

    /// Adds one result row's counts (in the order the measure's SQL selects them).
    fn add(self, counters: &mut Counters, v: &[i64]) {
        match self {
            Measure::TicketsClosed => {
                counters.closed += v[0];
                counters.first_contact += v[1];
                counters.handle_ms += v[2];
            }
            Measure::TicketsOpened => counters.opened += v[0],
            Measure::TicketsLate => counters.late += v[0],
            Measure::Surveys => {
                counters.csat_answers += v[0];
                counters.csat_sum += v[1];
                counters.satisfied += v[2];
                counters.nps_answers += v[3];
                counters.nps_net += v[4];
            }
            Measure::Visits => {
                counters.visitors += v[0];
                counters.returning += v[1];
                counters.spend_fen += v[2];
                counters.gaps += v[3];
                counters.gap_ms += v[4];
                counters.tenure_ms += v[5];
            }
            Measure::Bookings => {
                counters.booked += v[0];
                counters.arrived += v[1];
            }
            Measure::RepairOrders => {
                counters.settled += v[0];
                counters.no_comeback += v[1];
                counters.repair_ms += v[2];
                counters.revenue_fen += v[3];
            }
            Measure::Leads => {
                counters.leads += v[0];
                counters.won += v[1];
            }
            Measure::Churn => {
                counters.owners += v[0];
                counters.at_risk += v[1];
            }
        }
    }

    /// How many counts a row of this measure carries after its dealer and key.
    fn width(self) -> usize {
        match self {
            Measure::TicketsClosed => 3,
            Measure::TicketsOpened | Measure::TicketsLate => 1,
            Measure::Surveys => 5,
            Measure::Visits => 6,
            Measure::Bookings | Measure::Leads | Measure::Churn => 2,
            Measure::RepairOrders => 4,
        }
    }

    /// This measure's SQL over `frame`, grouped by dealer and by `column` when there is one;
    /// each row is `dealer_id, key, counts…`.
    fn sql(self, frame: &Frame, column: Option<&str>) -> Sql {
        let key = column.unwrap_or("CAST(NULL AS TEXT)");
        let group = |sql: &mut Sql, dealer: &str| {
            sql.push(" GROUP BY ").push(dealer);
            if let Some(column) = column {
                sql.push(", ").push(column);
            }
        };
        let (start, end) = (Param::Int(frame.start), Param::Int(frame.end));
        match self {
            Measure::TicketsClosed => {
                let mut sql = Sql::new(&format!(
                    "SELECT t.dealer_id, {key}, COUNT(*), \
                     COUNT(CASE WHEN t.first_contact_resolution = 1 THEN 1 END), \
                     CAST(COALESCE(SUM(t.closed_at - t.opened_at), 0) AS BIGINT) \
                     FROM tickets t WHERE t.status = 'closed' AND t.closed_at >= "
                ));
                sql.bind(start).push(" AND t.closed_at < ").bind(end);
                frame.scope(&mut sql, "t.dealer_id");
                group(&mut sql, "t.dealer_id");
                sql
            }
            Measure::TicketsOpened => {
                let mut sql = Sql::new(&format!(
                    "SELECT t.dealer_id, {key}, COUNT(*) FROM tickets t WHERE t.opened_at >= "
                ));
                sql.bind(start).push(" AND t.opened_at < ").bind(end);
                frame.scope(&mut sql, "t.dealer_id");
                group(&mut sql, "t.dealer_id");
                sql
            }
            Measure::TicketsLate => {
                let mut sql = Sql::new(&format!(
                    "SELECT t.dealer_id, {key}, COUNT(*) FROM tickets t WHERE "
                ));
                late_ticket(&mut sql, frame);
                frame.scope(&mut sql, "t.dealer_id");
                group(&mut sql, "t.dealer_id");
                sql
            }
            Measure::Surveys => {
                let mut sql = Sql::new(&format!(
                    "SELECT s.dealer_id, {key}, COUNT(s.csat), \
                     CAST(COALESCE(SUM(s.csat), 0) AS BIGINT), COUNT(CASE WHEN s.csat >= 4 THEN 1 END), \
                     COUNT(s.nps), \
                     COUNT(CASE WHEN s.nps >= 9 THEN 1 END) - COUNT(CASE WHEN s.nps <= 6 THEN 1 END) \
                     FROM surveys s WHERE s.answered_at >= "
                ));
                sql.bind(start).push(" AND s.answered_at < ").bind(end);
                frame.scope(&mut sql, "s.dealer_id");
                group(&mut sql, "s.dealer_id");
                sql
            }
            Measure::Visits => {
                let mut sql = Sql::new(
                    "SELECT v.dealer_id, CAST(NULL AS TEXT), COUNT(*), \
                     COUNT(CASE WHEN v.n >= 2 THEN 1 END), CAST(COALESCE(SUM(v.spend), 0) AS BIGINT), \
                     CAST(COALESCE(SUM(v.n - 1), 0) AS BIGINT), \
                     CAST(COALESCE(SUM(v.last_at - v.first_at), 0) AS BIGINT), \
                     CAST(COALESCE(SUM(",
                );
                sql.bind(end.clone()).push(
                    " - (SELECT MIN(e.settled_at) FROM repair_orders e \
                     WHERE e.customer_id = v.customer_id AND e.dealer_id = v.dealer_id \
                     AND e.settled_at IS NOT NULL AND e.total_fen > 0)), 0) AS BIGINT) FROM (",
                );
                paid_visits_per_customer(&mut sql, frame, Some(frame.start));
                sql.push(") v GROUP BY v.dealer_id");
                sql
            }
            Measure::Bookings => {
                let mut sql = Sql::new(&format!(
                    "SELECT b.dealer_id, b.k, COUNT(*), CAST(COALESCE(SUM(b.came), 0) AS BIGINT) \
                     FROM (SELECT a.dealer_id, {key} AS k, a.customer_id, \
                     MAX(CASE WHEN a.status = 'arrived' THEN 1 ELSE 0 END) AS came \
                     FROM appointments a WHERE a.slot_start >= "
                ));
                sql.bind(start).push(" AND a.slot_start < ").bind(end);
                frame.scope(&mut sql, "a.dealer_id");
                group(&mut sql, "a.dealer_id");
                sql.push(", a.customer_id) b GROUP BY b.dealer_id, b.k");
                sql
            }
            Measure::RepairOrders => {
                let mut sql = Sql::new(&format!(
                    "SELECT r.dealer_id, {key}, COUNT(*), \
                     COUNT(CASE WHEN NOT EXISTS (SELECT 1 FROM repair_orders c WHERE c.comeback_of_id = r.id) THEN 1 END), \
                     CAST(COALESCE(SUM(r.settled_at - r.created_at), 0) AS BIGINT), \
                     CAST(COALESCE(SUM(r.total_fen), 0) AS BIGINT) \
                     FROM repair_orders r WHERE r.settled_at >= "
                ));
                sql.bind(start).push(" AND r.settled_at < ").bind(end);
                frame.scope(&mut sql, "r.dealer_id");
                group(&mut sql, "r.dealer_id");
                sql
            }
            Measure::Leads => {
                let mut sql = Sql::new(&format!(
                    "SELECT l.dealer_id, {key}, COUNT(*), COUNT(CASE WHEN l.stage = 'won' THEN 1 END) \
                     FROM leads l WHERE l.created_at >= "
                ));
                sql.bind(start).push(" AND l.created_at < ").bind(end);
                frame.scope(&mut sql, "l.dealer_id");
                group(&mut sql, "l.dealer_id");
                sql
            }
            Measure::Churn => {
                let mut sql =
                    Sql::new("SELECT h.dealer_id, CAST(NULL AS TEXT), COUNT(*), COUNT(CASE WHEN ");
                at_risk(&mut sql, frame);
                sql.push(" THEN 1 END) FROM (");
                paid_visits_per_customer(&mut sql, frame, None);
                sql.push(
                    " HAVING COUNT(*) >= 2) h JOIN org_units u ON u.id = h.dealer_id GROUP BY h.dealer_id",
                );
                sql
            }
        }
    }

    /// Adds this measure's counts over `frame` to `into`, one [`Counters`] per dealer and key.
    pub async fn count(
        self,
        conn: &mut AnyConnection,
        frame: &Frame,
        by: Breakdown,
        into: &mut Vec<(i64, Option<String>, Counters)>,
    ) -> Result<()> {
        let sql = self.sql(frame, self.column(by));
        let rows = sqlx::query_with(sql.text(), sql.arguments())
            .fetch_all(&mut *conn)
            .await?;
        for row in rows {
            let dealer: i64 = row.try_get(0)?;
            let key: Option<String> = row.try_get(1)?;
            let values = (0..self.width())
                .map(|i| row.try_get::<i64, _>(i + 2))
                .collect::<Result<Vec<_>, _>>()?;
            let mut counters = Counters::default();
            self.add(&mut counters, &values);
            into.push((dealer, key, counters));
        }
        Ok(())
    }
}

/// `t` (tickets) was open past its resolution deadline at some moment of the frame: the
/// deadline fell before the frame ended, and the ticket was not closed by it nor before the
/// frame began. A ticket without a deadline has no SLA to miss.
pub(super) fn late_ticket(sql: &mut Sql, frame: &Frame) {
    sql.push("t.resolution_due IS NOT NULL AND t.resolution_due < ")
        .bind(Param::Int(frame.end))
        .push(" AND (t.closed_at IS NULL OR (t.closed_at > t.resolution_due AND t.closed_at > ")
        .bind(Param::Int(frame.start))
        .push("))");
}

/// Per dealer and customer, their paid visits (repair orders settled with something to pay)
/// from `since` (or ever) to the frame's end: `dealer_id, customer_id, n, spend, first_at,
/// last_at`, grouped but not closed, so the caller may add a `HAVING`.
pub(super) fn paid_visits_per_customer(sql: &mut Sql, frame: &Frame, since: Option<i64>) {
    sql.push(
        "SELECT r.dealer_id, r.customer_id, COUNT(*) AS n, SUM(r.total_fen) AS spend, \
         MIN(r.settled_at) AS first_at, MAX(r.settled_at) AS last_at FROM repair_orders r \
         WHERE r.total_fen > 0 AND r.settled_at < ",
    )
    .bind(Param::Int(frame.end));
    match since {
        Some(since) => sql.push(" AND r.settled_at >= ").bind(Param::Int(since)),
        None => sql.push(" AND r.settled_at IS NOT NULL"),
    };
    frame.scope(sql, "r.dealer_id");
    sql.push(" GROUP BY r.dealer_id, r.customer_id");
}

/// Over `h` (an owner's paid visits, [`paid_visits_per_customer`]) and `u` (their dealer):
/// the time from the last visit to the frame's end exceeds the usual interval,
/// `(last − first) / (n − 1)`, by more than the dealer's margin. In integers, without the
/// division.
pub(super) fn at_risk(sql: &mut Sql, frame: &Frame) {
    sql.push("(").bind(Param::Int(frame.end)).push(
        " - h.last_at) * (h.n - 1) * 100 > (h.last_at - h.first_at) * \
             (100 + COALESCE(u.churn_margin_percent, 50))",
    );
}
