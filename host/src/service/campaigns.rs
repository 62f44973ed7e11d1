//! Proactive service campaigns: every vehicle carrying a component batch whose mileage is in a
//! window, within the subtree of the unit that runs the campaign; invitations to their owners
//! and who booked and came. Owns `campaigns` and `campaign_invitations`.
//!
//! A vehicle's mileage is its latest odometer reading carried forward to today at its
//! estimated daily mileage (the latest reading alone when there is no estimate); a vehicle
//! with no reading has no known mileage and matches no window.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow};
use utoipa::ToSchema;

use super::appointments;
use crate::access::Caller;
use crate::audit::{self, Entry};
use crate::clock;
use crate::db::Sql;
use crate::error::{Error, FieldError, Result};
use crate::model::Versioned;
use crate::text;
use crate::vehicles::{self, PersonRole, mileage};
use crate::{network, outbox};

const NAME_MAX: usize = 200;
const BATCH_MAX: usize = 100;

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    /// The unit running the campaign (default the caller's own); its vehicles are those of
    /// the dealers under it.
    pub org_unit_id: Option<i64>,
    /// 1 to 200 characters.
    pub name: String,
    /// e.g. `brake_caliper`; any component when absent.
    pub component: Option<String>,
    /// The production batch, e.g. `BC-2023-07`.
    pub batch: String,
    /// The mileage window, inclusive.
    pub min_km: i64,
    pub max_km: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Campaign {
    pub id: i64,
    pub org_unit_id: i64,
    pub name: String,
    pub component: Option<String>,
    pub batch: String,
    pub min_km: i64,
    pub max_km: i64,
    /// Owners invited (one per vehicle).
    pub invited: i64,
    /// Vehicles with a (not cancelled) campaign appointment.
    pub booked: i64,
    /// Of those, vehicles that came.
    pub arrived: i64,
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

impl Versioned for Campaign {
    fn version(&self) -> i64 {
        self.version
    }
}

/// A vehicle a campaign selects, with the mileage it was selected on.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignVehicle {
    pub vehicle_id: i64,
    pub dealer_id: i64,
    pub vin: String,
    pub plate: Option<String>,
    /// The current owner, if any (who is invited).
    pub owner_id: Option<i64>,
    pub latest_reading_km: i64,
    pub latest_reading_at: DateTime<Utc>,
    pub estimated_daily_km: Option<f64>,
    /// The latest reading carried forward to now at the estimated daily mileage.
    pub estimated_km: i64,
}

#[derive(FromRow)]
struct Row {
    id: i64,
    org_unit_id: i64,
    name: String,
    component: Option<String>,
    batch: String,
    min_km: i64,
    max_km: i64,
    version: i64,
    created_at: i64,
}

const COLUMNS: &str =
    "id, org_unit_id, name, component, batch, min_km, max_km, version, created_at";

/// Creates a campaign run by `org_unit_id` (default the caller's unit), which the caller must see.
pub async fn create(
    conn: &mut AnyConnection,
    caller: &Caller,
    new: &NewCampaign,
) -> Result<Campaign> {
    let mut errors = Vec::new();
    let name = text::required(&mut errors, "name", &new.name, NAME_MAX).unwrap_or_default();
    let batch = text::required(&mut errors, "batch", &new.batch, BATCH_MAX).unwrap_or_default();
    let component = new
        .component
        .as_deref()
        .map(|c| text::required(&mut errors, "component", c, BATCH_MAX).unwrap_or_default());
    if new.min_km < 0 || new.max_km < new.min_km {
        errors.push(FieldError::new(
            "max_km",
            "invalid_window",
            "the mileage window is 0 <= min_km <= max_km",
        ));
    }
    let org = new.org_unit_id.unwrap_or(caller.org_id);
    match network::kind_and_path(conn, org).await? {
        Some((_, path)) if caller.sees_path(&path) => {}
        _ => errors.push(FieldError::new(
            "org_unit_id",
            "unknown_unit",
            "no unit with that id in your network",
        )),
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let now = clock::now_ms();
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO campaigns (org_unit_id, name, component, batch, min_km, max_km, created_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
    )
    .bind(org)
    .bind(&name)
    .bind(component.as_deref())
    .bind(&batch)
    .bind(new.min_km)
    .bind(new.max_km)
    .bind(caller.key_id)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    audit::record(conn, caller, Entry::ok("create", "campaign", id, org)).await?;
    fetch(conn, id).await
}

/// Campaign `id` and the path of its unit, if the caller sees that unit.
async fn visible(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<(Row, String)> {
    let row: Option<Row> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM campaigns WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let row = row.ok_or(Error::NotFound { entity: "campaign" })?;
    let path = network::kind_and_path(conn, row.org_unit_id)
        .await?
        .map(|(_, p)| p)
        .unwrap_or_default();
    crate::access::in_scope(
        caller,
        "campaign",
        id,
        Some((row.org_unit_id, path.clone())),
    )?;
    Ok((row, path))
}

async fn fetch(conn: &mut AnyConnection, id: i64) -> Result<Campaign> {
    let row: Row = sqlx::query_as(&format!("SELECT {COLUMNS} FROM campaigns WHERE id = $1"))
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    with_counts(conn, row).await
}

async fn with_counts(conn: &mut AnyConnection, row: Row) -> Result<Campaign> {
    let (invited,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM campaign_invitations WHERE campaign_id = $1")
            .bind(row.id)
            .fetch_one(&mut *conn)
            .await?;
    let (booked, arrived) = appointments::campaign_counts(conn, row.id).await?;
    Ok(Campaign {
        id: row.id,
        org_unit_id: row.org_unit_id,
        name: row.name,
        component: row.component,
        batch: row.batch,
        min_km: row.min_km,
        max_km: row.max_km,
        invited,
        booked,
        arrived,
        version: row.version,
        created_at: clock::to_datetime(row.created_at),
    })
}

/// Campaign `id` with its counts; outside the caller's scope it is not found.
pub async fn get(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<Campaign> {
    let (row, _) = visible(conn, caller, id).await?;
    with_counts(conn, row).await
}

/// Campaigns of units in the caller's scope, newest first.
pub async fn list(conn: &mut AnyConnection, caller: &Caller) -> Result<Vec<Campaign>> {
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM campaigns WHERE 1 = 1"));
    caller.scope(&mut sql, "org_unit_id");
    sql.push(" ORDER BY id DESC");
    let rows: Vec<Row> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(with_counts(conn, row).await?);
    }
    Ok(out)
}

/// The vehicles campaign `id` selects now, oldest first.
pub async fn vehicles(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
) -> Result<Vec<CampaignVehicle>> {
    let (row, path) = visible(conn, caller, id).await?;
    matching(conn, &row, &path).await
}

async fn matching(conn: &mut AnyConnection, row: &Row, path: &str) -> Result<Vec<CampaignVehicle>> {
    let candidates =
        vehicles::with_batch_under(conn, path, row.component.as_deref(), &row.batch).await?;
    let ids: Vec<i64> = candidates.iter().map(|v| v.id).collect();
    let mut readings = mileage::readings_for(conn, &ids).await?;
    let now = clock::now_ms();
    let mut out = Vec::new();
    for v in candidates {
        let Some(last) = readings.remove(&v.id).and_then(|mut r| r.pop()) else {
            continue;
        };
        let estimated_km = estimated_km(
            last.km,
            last.read_at.timestamp_millis(),
            v.estimated_daily_km,
            now,
        );
        if !(row.min_km..=row.max_km).contains(&estimated_km) {
            continue;
        }
        out.push(CampaignVehicle {
            vehicle_id: v.id,
            dealer_id: v.dealer_id,
            vin: v.vin,
            plate: v.plate,
            owner_id: v
                .people
                .iter()
                .find(|p| p.role == PersonRole::Owner)
                .map(|p| p.customer_id),
            latest_reading_km: last.km,
            latest_reading_at: last.read_at,
            estimated_daily_km: v.estimated_daily_km,
            estimated_km,
        });
    }
    Ok(out)
}

/// The answer of an invitation round.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Invited {
    /// Owners invited by this round (those invited before are not invited again).
    pub newly_invited: i64,
    /// Matching vehicles with no current owner to invite.
    pub without_owner: i64,
    pub campaign: Campaign,
}

/// Invites the owner of every vehicle campaign `id` selects now: one invitation per vehicle,
/// and one notification enqueued per campaign and vehicle (a later round adds nothing for a
/// vehicle already invited).
pub async fn invite(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<Invited> {
    let (row, path) = visible(conn, caller, id).await?;
    let now = clock::now_ms();
    let mut newly_invited = 0;
    let mut without_owner = 0;
    for v in matching(conn, &row, &path).await? {
        let Some(owner) = v.owner_id else {
            without_owner += 1;
            continue;
        };
        let inserted = sqlx::query(
            "INSERT INTO campaign_invitations (campaign_id, vehicle_id, customer_id, dealer_id, invited_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (campaign_id, vehicle_id) DO NOTHING",
        )
        .bind(id)
        .bind(v.vehicle_id)
        .bind(owner)
        .bind(v.dealer_id)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if inserted == 0 {
            continue;
        }
        newly_invited += 1;
        let message = outbox::Message {
            channel: "sms".into(),
            recipient: format!("customer:{owner}"),
            template: "service_campaign_invitation".into(),
            data: vec![
                ("campaign_id".into(), id.to_string()),
                ("campaign_name".into(), row.name.clone()),
                ("vehicle_id".into(), v.vehicle_id.to_string()),
                ("plate".into(), v.plate.clone().unwrap_or_default()),
            ],
            purpose: outbox::Purpose::Service,
        };
        let dedupe = format!("campaign:{id}:vehicle:{}", v.vehicle_id);
        outbox::enqueue(conn, v.dealer_id, &message, Some(&dedupe)).await?;
    }
    audit::record(
        conn,
        caller,
        Entry::ok("invite", "campaign", id, row.org_unit_id).with_detail(serde_json::json!({
            "newly_invited": newly_invited, "without_owner": without_owner,
        })),
    )
    .await?;
    Ok(Invited {
        newly_invited,
        without_owner,
        campaign: with_counts(conn, row).await?,
    })
}

/// The latest reading carried forward to `now` at `daily_km`.
fn estimated_km(km: i64, read_at: i64, daily_km: Option<f64>, now: i64) -> i64 {
    let days = (now - read_at).max(0) as f64 / 86_400_000.0;
    km + daily_km.map_or(0, |d| (d * days).round() as i64)
}

/// Whether campaign `id` covers dealer `dealer_id` (the dealer is under the campaign's unit).
pub async fn covers_dealer(conn: &mut AnyConnection, id: i64, dealer_id: i64) -> Result<bool> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT c.path, d.path FROM campaigns k JOIN org_units c ON c.id = k.org_unit_id, org_units d \
         WHERE k.id = $1 AND d.id = $2",
    )
    .bind(id)
    .bind(dealer_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.is_some_and(|(campaign, dealer)| dealer.starts_with(&campaign)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mileage_is_carried_forward_at_the_daily_estimate() {
        let day = 86_400_000;
        assert_eq!(estimated_km(18_000, 0, Some(40.0), 10 * day), 18_400);
        assert_eq!(estimated_km(18_000, 0, None, 10 * day), 18_000);
        assert_eq!(estimated_km(18_000, 5 * day, Some(40.0), day), 18_000);
    }
}
