//! The sales funnel as data: of the leads captured in a period, how many reached each stage,
//! and the conversion between consecutive stages, per channel or per consultant. Reads
//! `leads` and `lead_stage_events` (owned by [`super::leads`]).
//!
//! A lead *reached* a stage when it reached that stage or a later one (stages may be skipped;
//! a lost lead keeps what it reached before it was lost).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa::{IntoParams, ToSchema};

use super::leads::Stage;
use super::text_enum;
use crate::access::Caller;
use crate::clock::{self, Period};
use crate::db::{Param, Sql};
use crate::error::Result;
use crate::network;

text_enum!(
    GroupBy {
        Channel => "channel",
        Consultant => "consultant",
    }
);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FunnelQuery {
    /// First day of the period (leads captured from its local midnight on), or an RFC 3339
    /// time; default 30 days before `to`.
    pub from: Option<String>,
    /// Last day of the period, included (or an RFC 3339 time, excluded); default today.
    pub to: Option<String>,
    /// Default `channel`.
    pub group_by: Option<GroupBy>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StageCount {
    pub stage: Stage,
    /// Leads that reached this stage (or a later one).
    pub reached: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = FunnelConversion)]
pub struct Conversion {
    pub from: Stage,
    pub to: Stage,
    /// Reached `to` / reached `from`; absent when none reached `from`.
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FunnelGroup {
    /// The channel, the consultant's staff id, `unassigned`, or `all` for the total.
    pub key: String,
    pub leads: i64,
    pub lost: i64,
    pub stages: Vec<StageCount>,
    pub conversions: Vec<Conversion>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Funnel {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub group_by: GroupBy,
    pub groups: Vec<FunnelGroup>,
    pub total: FunnelGroup,
}

#[derive(Default)]
struct Tally {
    leads: i64,
    lost: i64,
    reached: [i64; Stage::FUNNEL.len()],
}

impl Tally {
    fn add(&mut self, furthest: usize, lost: bool) {
        self.leads += 1;
        self.lost += i64::from(lost);
        for r in &mut self.reached[..=furthest] {
            *r += 1;
        }
    }

    fn into_group(self, key: String) -> FunnelGroup {
        let stages = Stage::FUNNEL
            .iter()
            .zip(self.reached)
            .map(|(stage, reached)| StageCount {
                stage: *stage,
                reached,
            })
            .collect();
        let conversions = Stage::FUNNEL
            .windows(2)
            .zip(self.reached.windows(2))
            .map(|(stages, counts)| Conversion {
                from: stages[0],
                to: stages[1],
                rate: (counts[0] > 0).then(|| counts[1] as f64 / counts[0] as f64),
            })
            .collect();
        FunnelGroup {
            key,
            leads: self.leads,
            lost: self.lost,
            stages,
            conversions,
        }
    }
}

/// Days in the period when `from` is left out: `to`'s and the 30 before.
const DEFAULT_DAYS: i64 = 31;

/// The funnel of the leads captured from `from` to `to` (days, UTC) in the caller's scope.
pub async fn funnel(
    conn: &mut AnyConnection,
    caller: &Caller,
    query: &FunnelQuery,
) -> Result<Funnel> {
    let offset = network::utc_offset_minutes(conn, caller.org_id).await?;
    let to = query
        .to
        .clone()
        .unwrap_or_else(|| clock::today(offset).to_string());
    let (start, end) = match &query.from {
        Some(from) => Period {
            from: from.clone(),
            to,
        }
        .bounds_ms(offset)?,
        // The 30 days before `to`'s day, and that day.
        None => {
            let end = clock::bound_ms("to", &to, true, offset)?;
            (end - DEFAULT_DAYS * 86_400_000, end)
        }
    };
    let group_by = query.group_by.unwrap_or(GroupBy::Channel);
    let mut sql = Sql::new(
        "SELECT l.id, l.channel, l.consultant_id, e.to_stage FROM leads l \
         JOIN lead_stage_events e ON e.lead_id = l.id WHERE l.created_at >= ",
    );
    sql.bind(Param::Int(start))
        .push(" AND l.created_at < ")
        .bind(Param::Int(end));
    caller.scope(&mut sql, "l.dealer_id");
    let rows: Vec<(i64, String, Option<i64>, String)> =
        sqlx::query_as_with(sql.text(), sql.arguments())
            .fetch_all(&mut *conn)
            .await?;
    // Per lead: its group, the furthest funnel stage it reached, whether it was lost.
    let mut leads: BTreeMap<i64, (String, usize, bool)> = BTreeMap::new();
    for (id, channel, consultant, stage) in rows {
        let key = match group_by {
            GroupBy::Channel => channel,
            GroupBy::Consultant => {
                consultant.map_or_else(|| "unassigned".into(), |c| c.to_string())
            }
        };
        let stage = Stage::parse(&stage);
        let entry = leads.entry(id).or_insert((key, 0, false));
        if let Some(rank) = stage.and_then(Stage::rank) {
            entry.1 = entry.1.max(rank);
        }
        entry.2 |= stage == Some(Stage::Lost);
    }
    let mut groups: BTreeMap<String, Tally> = BTreeMap::new();
    let mut total = Tally::default();
    for (key, furthest, lost) in leads.into_values() {
        groups.entry(key).or_default().add(furthest, lost);
        total.add(furthest, lost);
    }
    Ok(Funnel {
        from: clock::business_date(start, offset),
        to: clock::business_date(end - 1, offset),
        group_by,
        groups: groups
            .into_iter()
            .map(|(key, tally)| tally.into_group(key))
            .collect(),
        total: total.into_group("all".into()),
    })
}
