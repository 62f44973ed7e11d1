//! The numbers people steer by (`REQUIREMENTS.md`): every KPI of a unit of the network (HQ, a
//! region, a group, a dealer) over a period, against the period before, broken down by the
//! unit's children, by a level of the tree, or by a dimension of the records (channel,
//! category, team, consultant, advisor, service type, survey touchpoint); a series of one KPI
//! over time; the records behind a figure ([`records`]); a store's cockpit ([`store`]); the
//! churn warning's actions ([`churn`]).
//!
//! How a figure is made: [`measures`] counts each kind of record per dealer (and per
//! dimension value) in SQL, the counts are summed into the rows of the breakdown (a dealer
//! counts in every unit above it), and [`Kpi::figure`] turns a row's counts into the figure.
//! Every count is a sum, so a region's figure is exactly its dealers' counts put together.
//! The definitions of each KPI are on [`Kpi`].

pub mod export;
pub mod measures;
pub mod records;

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa::{IntoParams, ToSchema};

use crate::access::Caller;
use crate::clock::{self, Period};
use crate::db::{Param, Sql};
use crate::error::{Error, Result};
use crate::network;
use crate::sales::text_enum;
use measures::Measure;

const HOUR_MS: f64 = 3_600_000.0;
const DAY_MS: f64 = 86_400_000.0;
const YEAR_MS: f64 = 365.25 * DAY_MS;
/// The most buckets a series has.
const MAX_BUCKETS: usize = 400;

text_enum!(
    /// A KPI. Over the period `[start, end)`; a *paid visit* is a repair order settled in the
    /// period with something to pay (`total_fen > 0`).
    Kpi {
        // Of the tickets closed in the period, the share resolved at their first contact.
        Fcr => "fcr",
        // The mean time from opened to closed of the tickets closed in the period, seconds.
        Aht => "aht",
        // Tickets open past their resolution deadline at some moment of the period (whenever
        // they were opened), over the tickets opened in the period; may exceed 1.
        Backlog => "backlog",
        // The mean CSAT (1–5) of the survey answers given in the period, every touchpoint.
        Csat => "csat",
        // The share of those answers that gave 4 or 5.
        CsatSatisfied => "csat_satisfied",
        // Percent of promoters (9–10) minus percent of detractors (0–6), −100 to 100.
        Nps => "nps",
        // Of the customers with a paid visit in the period (per dealer), those with two or more.
        ReturnRate => "return_rate",
        // Mean yearly spend (the period's, scaled to a year) × mean tenure in years (from each
        // customer's first paid visit ever to the period's end), in fen.
        Ltv => "ltv",
        // Of the customers who booked an appointment whose slot starts in the period, those
        // with one that arrived.
        AppointmentConversion => "appointment_conversion",
        // The mean gap between consecutive paid visits in the period of customers with two or
        // more, in days.
        TimeBetweenVisits => "time_between_visits",
        // Of the repair orders settled in the period, those no comeback points at.
        FirstTimeFix => "first_time_fix",
        // The mean time from opened to settled of the repair orders settled in the period, hours.
        RepairDuration => "repair_duration",
        // After-sales revenue (产值): the total of the repair orders settled in the period, fen.
        Revenue => "revenue",
        // Of the leads captured in the period, those won.
        LeadConversion => "lead_conversion",
        // Of the owners with two or more paid visits before the period's end, those whose time
        // since the last exceeds their usual interval by more than the dealer's margin.
        Churn => "churn",
    }
);

text_enum!(
    /// How a report's rows split the unit.
    Breakdown {
        Child => "child",
        Region => "region",
        Group => "group",
        Dealer => "dealer",
        Channel => "channel",
        Category => "category",
        Team => "team",
        Consultant => "consultant",
        Advisor => "advisor",
        ServiceType => "service_type",
        Touchpoint => "touchpoint",
    }
);

impl Breakdown {
    /// Rows are units of the network (every measure splits by dealer).
    pub fn is_unit(self) -> bool {
        matches!(
            self,
            Breakdown::Child | Breakdown::Region | Breakdown::Group | Breakdown::Dealer
        )
    }
}

impl Kpi {
    /// The record kind whose counts make this KPI.
    pub fn measures(self) -> &'static [Measure] {
        match self {
            Kpi::Fcr | Kpi::Aht => &[Measure::TicketsClosed],
            Kpi::Backlog => &[Measure::TicketsOpened, Measure::TicketsLate],
            Kpi::Csat | Kpi::CsatSatisfied | Kpi::Nps => &[Measure::Surveys],
            Kpi::ReturnRate | Kpi::Ltv | Kpi::TimeBetweenVisits => &[Measure::Visits],
            Kpi::AppointmentConversion => &[Measure::Bookings],
            Kpi::FirstTimeFix | Kpi::RepairDuration | Kpi::Revenue => &[Measure::RepairOrders],
            Kpi::LeadConversion => &[Measure::Leads],
            Kpi::Churn => &[Measure::Churn],
        }
    }

    /// Whether `by` splits this KPI.
    pub fn splits_by(self, by: Breakdown) -> bool {
        self.measures().iter().all(|m| m.splits_by(by))
    }

    /// The figure of counts `c` over a period of `period_ms`.
    pub fn figure(self, c: &Counters, period_ms: i64) -> Figure {
        let share = |part: i64, count: i64| Figure::new(part as f64, count, |p, n| p / n);
        let mean = |part: f64, count: i64| Figure::new(part, count, |p, n| p / n);
        match self {
            Kpi::Fcr => share(c.first_contact, c.closed),
            Kpi::Aht => mean(c.handle_ms as f64 / 1000.0, c.closed),
            Kpi::Backlog => share(c.late, c.opened),
            Kpi::Csat => mean(c.csat_sum as f64, c.csat_answers),
            Kpi::CsatSatisfied => share(c.satisfied, c.csat_answers),
            Kpi::Nps => Figure::new(c.nps_net as f64, c.nps_answers, |p, n| 100.0 * p / n),
            Kpi::ReturnRate => share(c.returning, c.visitors),
            Kpi::Ltv => {
                let years = period_ms as f64 / YEAR_MS;
                let tenure = c.tenure_ms as f64 / YEAR_MS;
                Figure::new(c.spend_fen as f64, c.visitors, |spend, n| {
                    (spend / n / years) * (tenure / n)
                })
            }
            Kpi::AppointmentConversion => share(c.arrived, c.booked),
            Kpi::TimeBetweenVisits => mean(c.gap_ms as f64 / DAY_MS, c.gaps),
            Kpi::FirstTimeFix => share(c.no_comeback, c.settled),
            Kpi::RepairDuration => mean(c.repair_ms as f64 / HOUR_MS, c.settled),
            Kpi::Revenue => Figure::new(c.revenue_fen as f64, c.settled, |p, _| p),
            Kpi::LeadConversion => share(c.won, c.leads),
            Kpi::Churn => share(c.at_risk, c.owners),
        }
    }
}

/// The counts the KPIs are made of, for one row; every one is a sum over records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub closed: i64,
    pub first_contact: i64,
    pub handle_ms: i64,
    pub opened: i64,
    pub late: i64,
    pub csat_answers: i64,
    pub csat_sum: i64,
    pub satisfied: i64,
    pub nps_answers: i64,
    /// Promoters minus detractors.
    pub nps_net: i64,
    pub visitors: i64,
    pub returning: i64,
    pub spend_fen: i64,
    pub tenure_ms: i64,
    pub gaps: i64,
    pub gap_ms: i64,
    pub booked: i64,
    pub arrived: i64,
    pub settled: i64,
    pub no_comeback: i64,
    pub repair_ms: i64,
    pub revenue_fen: i64,
    pub leads: i64,
    pub won: i64,
    pub owners: i64,
    pub at_risk: i64,
}

impl std::ops::AddAssign<&Counters> for Counters {
    fn add_assign(&mut self, o: &Counters) {
        self.closed += o.closed;
        self.first_contact += o.first_contact;
        self.handle_ms += o.handle_ms;
        self.opened += o.opened;
        self.late += o.late;
        self.csat_answers += o.csat_answers;
        self.csat_sum += o.csat_sum;
        self.satisfied += o.satisfied;
        self.nps_answers += o.nps_answers;
        self.nps_net += o.nps_net;
        self.visitors += o.visitors;
        self.returning += o.returning;
        self.spend_fen += o.spend_fen;
        self.tenure_ms += o.tenure_ms;
        self.gaps += o.gaps;
        self.gap_ms += o.gap_ms;
        self.booked += o.booked;
        self.arrived += o.arrived;
        self.settled += o.settled;
        self.no_comeback += o.no_comeback;
        self.repair_ms += o.repair_ms;
        self.revenue_fen += o.revenue_fen;
        self.leads += o.leads;
        self.won += o.won;
        self.owners += o.owners;
        self.at_risk += o.at_risk;
    }
}

/// One KPI's figure for a row.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Figure {
    /// The KPI (a share 0–1, a mean, fen, an NPS score); absent when `count` is 0.
    pub value: Option<f64>,
    /// What is counted, summed or averaged: the records in the share, the sum of the means.
    pub part: f64,
    /// The records the figure is over (its whole): tickets, answers, customers, orders.
    pub count: i64,
}

impl Figure {
    fn new(part: f64, count: i64, value: impl Fn(f64, f64) -> f64) -> Figure {
        Figure {
            value: (count > 0).then(|| value(part, count as f64)),
            part,
            count,
        }
    }
}

/// Every KPI of one row; a KPI the report's breakdown does not split is absent.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Scorecard {
    pub fcr: Option<Figure>,
    pub aht: Option<Figure>,
    pub backlog: Option<Figure>,
    pub csat: Option<Figure>,
    pub csat_satisfied: Option<Figure>,
    pub nps: Option<Figure>,
    pub return_rate: Option<Figure>,
    pub ltv: Option<Figure>,
    pub appointment_conversion: Option<Figure>,
    pub time_between_visits: Option<Figure>,
    pub first_time_fix: Option<Figure>,
    pub repair_duration: Option<Figure>,
    pub revenue: Option<Figure>,
    pub lead_conversion: Option<Figure>,
    pub churn: Option<Figure>,
}

impl Scorecard {
    fn slot(&mut self, kpi: Kpi) -> &mut Option<Figure> {
        match kpi {
            Kpi::Fcr => &mut self.fcr,
            Kpi::Aht => &mut self.aht,
            Kpi::Backlog => &mut self.backlog,
            Kpi::Csat => &mut self.csat,
            Kpi::CsatSatisfied => &mut self.csat_satisfied,
            Kpi::Nps => &mut self.nps,
            Kpi::ReturnRate => &mut self.return_rate,
            Kpi::Ltv => &mut self.ltv,
            Kpi::AppointmentConversion => &mut self.appointment_conversion,
            Kpi::TimeBetweenVisits => &mut self.time_between_visits,
            Kpi::FirstTimeFix => &mut self.first_time_fix,
            Kpi::RepairDuration => &mut self.repair_duration,
            Kpi::Revenue => &mut self.revenue,
            Kpi::LeadConversion => &mut self.lead_conversion,
            Kpi::Churn => &mut self.churn,
        }
    }

    /// The figures of `counters` for the KPIs `by` splits.
    fn of(counters: &Counters, by: Breakdown, period_ms: i64) -> Scorecard {
        let mut card = Scorecard::default();
        for kpi in Kpi::ALL.iter().copied().filter(|k| k.splits_by(by)) {
            *card.slot(kpi) = Some(kpi.figure(counters, period_ms));
        }
        card
    }
}

/// What the KPI routes ask: the unit, the period, the breakdown.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KpiQuery {
    /// First day `YYYY-MM-DD` (the unit's local midnight), or an RFC 3339 time.
    pub from: String,
    /// Last day `YYYY-MM-DD` (included), or an RFC 3339 time (excluded).
    pub to: String,
    /// The unit reported on (HQ, a region, a group, a dealer); default the caller's own.
    pub unit_id: Option<i64>,
    /// How the rows split the unit; default `child`, the units one level below it.
    pub by: Option<Breakdown>,
}

/// A unit of the network, as a report names it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = KpiUnit)]
pub struct Unit {
    pub id: i64,
    pub name: String,
    pub kind: String,
    /// The unit above it; absent for HQ and for the caller's own unit's parent outside their
    /// view.
    pub parent_id: Option<i64>,
}

/// One row of a report: a unit, or a value of the breakdown's dimension.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KpiRow {
    /// The unit's id, the staff member's id (consultant, advisor), the dimension's value, or
    /// `unassigned` for records without one.
    pub key: String,
    /// What a person reads: the unit's or staff member's name, else the value.
    pub label: String,
    /// Set when the row is a unit.
    pub unit_id: Option<i64>,
    pub kpis: Scorecard,
}

/// Every KPI of a unit over a period and the period before, and its breakdown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KpiReport {
    pub unit: Unit,
    /// The path from the top of the caller's view down to the unit (for a breadcrumb).
    pub trail: Vec<Unit>,
    pub from: NaiveDate,
    /// Included.
    pub to: NaiveDate,
    /// The period of as many days just before.
    pub previous_from: NaiveDate,
    pub previous_to: NaiveDate,
    pub by: Breakdown,
    pub total: Scorecard,
    pub previous: Scorecard,
    pub rows: Vec<KpiRow>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesQuery {
    pub kpi: Kpi,
    pub from: String,
    pub to: String,
    pub unit_id: Option<i64>,
    pub by: Option<Breakdown>,
    /// The bucket size; default `week`.
    pub interval: Option<Interval>,
}

text_enum!(
    Interval {
        Day => "day",
        Week => "week",
        Month => "month",
    }
);

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SeriesRow {
    pub key: String,
    pub label: String,
    pub unit_id: Option<i64>,
    /// One value per bucket.
    pub values: Vec<Option<f64>>,
}

/// One KPI over time, for the unit and each row of the breakdown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KpiSeries {
    pub kpi: Kpi,
    pub interval: Interval,
    /// The first day of each bucket (a week is 7 days from the period's first; a month a
    /// calendar month), local dates.
    pub buckets: Vec<NaiveDate>,
    pub total: Vec<Option<f64>>,
    pub rows: Vec<SeriesRow>,
}

/// A unit of the reported subtree.
#[derive(Debug, Clone)]
struct TreeUnit {
    id: i64,
    parent_id: Option<i64>,
    kind: String,
    name: String,
    path: String,
}

/// What a report is over: the unit and its subtree, a time frame.
pub struct Frame {
    pub start: i64,
    pub end: i64,
    /// The unit's materialised path; every record counted is of a dealer under it.
    path: String,
}

impl Frame {
    /// Keeps rows whose `dealer_column` is a unit under the frame's unit.
    pub fn scope(&self, sql: &mut Sql, dealer_column: &str) {
        sql.push(" AND ")
            .push(dealer_column)
            .push(" IN (SELECT id FROM org_units WHERE path LIKE ")
            .bind(Param::Text(format!("{}%", self.path)))
            .push(")");
    }

    fn with_times(&self, start: i64, end: i64) -> Frame {
        Frame {
            start,
            end,
            path: self.path.clone(),
        }
    }
}

/// The unit a caller asks about, its subtree and its local offset.
pub struct Subject {
    unit: TreeUnit,
    units: Vec<TreeUnit>,
    offset: i32,
    trail: Vec<Unit>,
}

impl Subject {
    /// The unit `unit_id` (default the caller's) if the caller sees it: else 404, as for a
    /// unit that does not exist.
    pub async fn resolve(
        conn: &mut AnyConnection,
        caller: &Caller,
        unit_id: Option<i64>,
    ) -> Result<Subject> {
        let id = unit_id.unwrap_or(caller.org_id);
        let (_, path) = network::kind_and_path(conn, id)
            .await?
            .filter(|(_, path)| caller.sees_path(path))
            .ok_or(Error::NotFound { entity: "unit" })?;
        let rows: Vec<(i64, Option<i64>, String, String, String)> = sqlx::query_as(
            "SELECT id, parent_id, kind, name, path FROM org_units WHERE path LIKE $1 ORDER BY name, id",
        )
        .bind(format!("{path}%"))
        .fetch_all(&mut *conn)
        .await?;
        let units: Vec<TreeUnit> = rows
            .into_iter()
            .map(|(id, parent_id, kind, name, path)| TreeUnit {
                id,
                parent_id,
                kind,
                name,
                path,
            })
            .collect();
        let unit = units
            .iter()
            .find(|u| u.id == id)
            .cloned()
            .ok_or(Error::NotFound { entity: "unit" })?;
        let trail = trail(conn, caller, &unit).await?;
        let offset = network::utc_offset_minutes(conn, id).await?;
        Ok(Subject {
            unit,
            units,
            offset,
            trail,
        })
    }

    pub fn offset(&self) -> i32 {
        self.offset
    }

    pub fn id(&self) -> i64 {
        self.unit.id
    }

    /// The frame of `period` read at the unit's offset.
    pub fn frame(&self, period: &Period) -> Result<Frame> {
        let (start, end) = period.bounds_ms(self.offset)?;
        Ok(Frame {
            start,
            end,
            path: self.unit.path.clone(),
        })
    }

    fn unit(&self) -> Unit {
        as_unit(&self.unit)
    }

    /// The name of unit `id` of the subtree.
    fn name_of(&self, id: i64) -> String {
        self.units
            .iter()
            .find(|u| u.id == id)
            .map(|u| u.name.clone())
            .unwrap_or_default()
    }

    /// The units that are the rows of a unit breakdown, in name order.
    fn row_units(&self, by: Breakdown) -> Vec<&TreeUnit> {
        self.units
            .iter()
            .filter(|u| match by {
                Breakdown::Child => u.parent_id == Some(self.unit.id),
                Breakdown::Region => u.kind == "region",
                Breakdown::Group => u.kind == "group",
                Breakdown::Dealer => u.kind == "dealer",
                _ => false,
            })
            .collect()
    }

    /// The row unit that dealer `dealer_id` counts in: the row whose id is on its path.
    fn row_of(&self, rows: &HashMap<i64, usize>, dealer_id: i64) -> Option<usize> {
        let dealer = self.units.iter().find(|u| u.id == dealer_id)?;
        path_ids(&dealer.path).find_map(|id| rows.get(&id).copied())
    }
}

fn as_unit(u: &TreeUnit) -> Unit {
    Unit {
        id: u.id,
        name: u.name.clone(),
        kind: u.kind.clone(),
        parent_id: u.parent_id,
    }
}

/// The ids of a materialised path `/1/4/9/`, from the top.
fn path_ids(path: &str) -> impl Iterator<Item = i64> + '_ {
    path.split('/').filter_map(|s| s.parse().ok())
}

/// The units from the caller's own down to `unit`.
async fn trail(conn: &mut AnyConnection, caller: &Caller, unit: &TreeUnit) -> Result<Vec<Unit>> {
    let ids: Vec<i64> = path_ids(&unit.path).collect();
    let sql = Sql::in_list(
        "SELECT id, parent_id, kind, name, path FROM org_units WHERE id IN ",
        &ids,
        "",
    );
    let rows: Vec<(i64, Option<i64>, String, String, String)> =
        sqlx::query_as_with(sql.text(), sql.arguments())
            .fetch_all(&mut *conn)
            .await?;
    let mut trail: Vec<TreeUnit> = rows
        .into_iter()
        .map(|(id, parent_id, kind, name, path)| TreeUnit {
            id,
            parent_id,
            kind,
            name,
            path,
        })
        .filter(|u| caller.sees_path(&u.path))
        .collect();
    trail.sort_by_key(|u| u.path.len());
    Ok(trail.iter().map(as_unit).collect())
}

/// The rows a breakdown has and the counts summed into each.
struct Tally {
    rows: Vec<(String, String, Option<i64>)>,
    counters: Vec<Counters>,
    total: Counters,
}

/// Counts every measure of `kpis` over `frame` and sums them into `by`'s rows.
async fn tally(
    conn: &mut AnyConnection,
    subject: &Subject,
    frame: &Frame,
    by: Breakdown,
    measures: &[Measure],
) -> Result<Tally> {
    let mut counted = Vec::new();
    let mut total_counted = Vec::new();
    for measure in measures {
        if by.is_unit() {
            measure.count(conn, frame, by, &mut counted).await?;
        } else {
            // The unit's total counts each record once, whatever its dimension value.
            measure
                .count(conn, frame, Breakdown::Dealer, &mut total_counted)
                .await?;
            if measure.splits_by(by) {
                measure.count(conn, frame, by, &mut counted).await?;
            }
        }
    }
    let mut total = Counters::default();
    if by.is_unit() {
        let units = subject.row_units(by);
        let index: HashMap<i64, usize> = units.iter().enumerate().map(|(i, u)| (u.id, i)).collect();
        let mut counters = vec![Counters::default(); units.len()];
        for (dealer, _, c) in &counted {
            total += c;
            if let Some(i) = subject.row_of(&index, *dealer) {
                counters[i] += c;
            }
        }
        let rows = units
            .iter()
            .map(|u| (u.id.to_string(), u.name.clone(), Some(u.id)))
            .collect();
        return Ok(Tally {
            rows,
            counters,
            total,
        });
    }
    for (_, _, c) in &total_counted {
        total += c;
    }
    let mut by_key: BTreeMap<String, Counters> = BTreeMap::new();
    for (_, key, c) in &counted {
        *by_key
            .entry(key.clone().unwrap_or_else(|| UNASSIGNED.to_owned()))
            .or_default() += c;
    }
    let labels = labels(conn, by, by_key.keys()).await?;
    let mut rows = Vec::with_capacity(by_key.len());
    let mut counters = Vec::with_capacity(by_key.len());
    for (key, c) in by_key {
        let label = labels.get(&key).cloned().unwrap_or_else(|| key.clone());
        rows.push((key, label, None));
        counters.push(c);
    }
    Ok(Tally {
        rows,
        counters,
        total,
    })
}

/// The key of the records a dimension has no value for.
pub const UNASSIGNED: &str = "unassigned";

/// Names for staff keys (consultant, advisor); other values are their own label.
async fn labels<'a>(
    conn: &mut AnyConnection,
    by: Breakdown,
    keys: impl Iterator<Item = &'a String>,
) -> Result<HashMap<String, String>> {
    if !matches!(by, Breakdown::Consultant | Breakdown::Advisor) {
        return Ok(HashMap::new());
    }
    let ids: Vec<i64> = keys.filter_map(|k| k.parse().ok()).collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = Sql::in_list("SELECT id, name FROM staff WHERE id IN ", &ids, "");
    let rows: Vec<(i64, String)> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name)| (id.to_string(), name))
        .collect())
}

/// Every KPI of the asked unit over the period and the one before, broken down.
pub async fn report(
    conn: &mut AnyConnection,
    caller: &Caller,
    query: &KpiQuery,
) -> Result<KpiReport> {
    let subject = Subject::resolve(conn, caller, query.unit_id).await?;
    let by = query.by.unwrap_or(Breakdown::Child);
    let frame = subject.frame(&Period {
        from: query.from.clone(),
        to: query.to.clone(),
    })?;
    let length = frame.end - frame.start;
    let before = frame.with_times(frame.start - length, frame.start);
    let now = tally(conn, &subject, &frame, by, &Measure::ALL).await?;
    let then = tally(conn, &subject, &before, Breakdown::Dealer, &Measure::ALL).await?;
    let total_by = if by.is_unit() { by } else { Breakdown::Dealer };
    let offset = subject.offset;
    Ok(KpiReport {
        unit: subject.unit(),
        trail: subject.trail.clone(),
        from: clock::business_date(frame.start, offset),
        to: clock::business_date(frame.end - 1, offset),
        previous_from: clock::business_date(before.start, offset),
        previous_to: clock::business_date(before.end - 1, offset),
        by,
        total: Scorecard::of(&now.total, total_by, length),
        previous: Scorecard::of(&then.total, Breakdown::Dealer, length),
        rows: now
            .rows
            .into_iter()
            .zip(now.counters)
            .map(|((key, label, unit_id), c)| KpiRow {
                key,
                label,
                unit_id,
                kpis: Scorecard::of(&c, by, length),
            })
            .collect(),
    })
}

/// The local start days of the buckets of `[start, end)` and their bounds in UTC ms.
fn buckets(
    start: i64,
    end: i64,
    interval: Interval,
    offset: i32,
) -> Result<Vec<(NaiveDate, i64, i64)>> {
    let mut out = Vec::new();
    let mut day = clock::business_date(start, offset);
    let mut at = start;
    while at < end {
        let next_day = match interval {
            Interval::Day => day.succ_opt(),
            Interval::Week => day.checked_add_days(chrono::Days::new(7)),
            Interval::Month => NaiveDate::from_ymd_opt(day.year(), day.month(), 1)
                .and_then(|first| first.checked_add_months(chrono::Months::new(1))),
        }
        .ok_or_else(|| Error::invalid("to", "too_long", "the period is too long"))?;
        let next = clock::day_start_ms(next_day, offset).min(end);
        out.push((day, at, next));
        if out.len() > MAX_BUCKETS {
            return Err(Error::invalid(
                "interval",
                "too_many_buckets",
                format!("a series has at most {MAX_BUCKETS} buckets: choose a longer interval"),
            ));
        }
        day = next_day;
        at = next;
    }
    Ok(out)
}

/// One KPI over time for the unit and each row of the breakdown.
pub async fn series(
    conn: &mut AnyConnection,
    caller: &Caller,
    query: &SeriesQuery,
) -> Result<KpiSeries> {
    let subject = Subject::resolve(conn, caller, query.unit_id).await?;
    let by = query.by.unwrap_or(Breakdown::Child);
    if !query.kpi.splits_by(by) {
        return Err(Error::invalid(
            "by",
            "not_split",
            format!("{} does not split by {}", query.kpi.as_str(), by.as_str()),
        ));
    }
    let interval = query.interval.unwrap_or(Interval::Week);
    let frame = subject.frame(&Period {
        from: query.from.clone(),
        to: query.to.clone(),
    })?;
    let mut dates = Vec::new();
    let mut total = Vec::new();
    let mut rows: Vec<SeriesRow> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let buckets = buckets(frame.start, frame.end, interval, subject.offset)?;
    let count = buckets.len();
    for (n, (day, start, end)) in buckets.into_iter().enumerate() {
        let bucket = frame.with_times(start, end);
        let tally = tally(conn, &subject, &bucket, by, query.kpi.measures()).await?;
        dates.push(day);
        total.push(query.kpi.figure(&tally.total, end - start).value);
        for ((key, label, unit_id), c) in tally.rows.into_iter().zip(tally.counters) {
            let i = *index.entry(key.clone()).or_insert_with(|| {
                rows.push(SeriesRow {
                    key,
                    label,
                    unit_id,
                    values: vec![None; count],
                });
                rows.len() - 1
            });
            rows[i].values[n] = query.kpi.figure(&c, end - start).value;
        }
    }
    Ok(KpiSeries {
        kpi: query.kpi,
        interval,
        buckets: dates,
        total,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_without_records_has_no_value() {
        let none = Counters::default();
        for kpi in Kpi::ALL {
            assert_eq!(kpi.figure(&none, 86_400_000).value, None, "{kpi:?}");
        }
    }

    #[test]
    fn nps_and_ltv_are_made_as_defined() {
        let c = Counters {
            nps_answers: 4,
            nps_net: 1,
            visitors: 2,
            spend_fen: 100_000,
            // One year and three years of tenure.
            tenure_ms: (4.0 * YEAR_MS) as i64,
            ..Counters::default()
        };
        assert_eq!(Kpi::Nps.figure(&c, 1).value, Some(25.0));
        // 50 000 fen each over half a year is 100 000 a year, times 2 years of mean tenure.
        let half_year = (YEAR_MS / 2.0) as i64;
        let ltv = Kpi::Ltv.figure(&c, half_year).value.unwrap();
        assert!((ltv - 200_000.0).abs() < 1.0, "{ltv}");
    }

    #[test]
    fn weeks_start_at_the_first_day_and_the_last_is_cut_at_the_end() {
        let day = |d: &str| clock::day_start_ms(d.parse().unwrap(), 480);
        let weeks = buckets(day("2026-11-01"), day("2026-11-16"), Interval::Week, 480).unwrap();
        let starts: Vec<String> = weeks.iter().map(|w| w.0.to_string()).collect();
        assert_eq!(starts, ["2026-11-01", "2026-11-08", "2026-11-15"]);
        assert_eq!(weeks[2].2, day("2026-11-16"));
        let months = buckets(day("2026-10-15"), day("2026-12-01"), Interval::Month, 480).unwrap();
        let starts: Vec<String> = months.iter().map(|m| m.0.to_string()).collect();
        assert_eq!(starts, ["2026-10-15", "2026-11-01"]);
    }

    #[test]
    fn the_return_rate_does_not_split_by_channel_but_fcr_does() {
        assert!(!Kpi::ReturnRate.splits_by(Breakdown::Channel));
        assert!(Kpi::Fcr.splits_by(Breakdown::Channel));
        assert!(Kpi::Churn.splits_by(Breakdown::Region));
        assert!(!Kpi::Backlog.splits_by(Breakdown::Touchpoint));
    }
}
