//! Test drives: a dealer's demo fleet, and bookings of a demo vehicle with a consultant for a
//! slot. Owns `demo_vehicles`, `test_drives` and `test_drive_slots`.
//!
//! No double booking: a booking claims one `test_drive_slots` row per quarter hour it covers,
//! for its demo vehicle (`vehicle:<id>`) and for its consultant (`staff:<id>`), under a primary
//! key. Two bookings that overlap share a row, so the database refuses the second, also when
//! both arrive at once (on SQLite the write lock serialises them; on PostgreSQL the second
//! insert waits for the first to commit, then fails). Bookings therefore start and end on the
//! quarter hour.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow};
use utoipa::{IntoParams, ToSchema};

use super::leads::{self, Stage};
use super::{is_active_staff, text_enum};
use crate::access::{self, Caller, Record};
use crate::audit::{self, Entry};
use crate::clock;
use crate::db::decode;
use crate::db::{Param, Sql};
use crate::error::{Error, FieldError, Result};
use crate::text;
use crate::vehicles::identity;

/// Bookings start and end on multiples of this (15 minutes).
pub const SLOT_MS: i64 = 15 * 60 * 1000;
/// The longest booking: 4 hours.
pub const MAX_SLOTS: i64 = 16;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DemoVehicle {
    pub id: i64,
    pub dealer_id: i64,
    pub vin: String,
    pub model: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDemoVehicle {
    /// Required for HQ callers; dealer staff leave it out.
    pub dealer_id: Option<i64>,
    pub vin: String,
    /// 1 to 100 characters.
    pub model: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DemoVehiclePatch {
    /// An inactive demo vehicle cannot be booked.
    pub active: bool,
}

#[derive(FromRow)]
struct DemoRow {
    id: i64,
    dealer_id: i64,
    vin: String,
    model: String,
    active: i64,
    created_at: i64,
}

impl From<DemoRow> for DemoVehicle {
    fn from(r: DemoRow) -> DemoVehicle {
        DemoVehicle {
            id: r.id,
            dealer_id: r.dealer_id,
            vin: r.vin,
            model: r.model,
            active: r.active != 0,
            created_at: clock::to_datetime(r.created_at),
        }
    }
}

const DEMO_COLUMNS: &str = "id, dealer_id, vin, model, active, created_at";

/// Adds a demo vehicle to `dealer_id`'s fleet. Audited.
pub async fn add_demo_vehicle(
    conn: &mut AnyConnection,
    caller: &Caller,
    dealer_id: i64,
    new: &NewDemoVehicle,
) -> Result<DemoVehicle> {
    let mut errors = Vec::new();
    let vin = identity::parse_vin(&new.vin)
        .map_err(|m| errors.push(FieldError::new("vin", "invalid_vin", m)))
        .ok();
    let model = text::required(&mut errors, "model", &new.model, 100);
    let (Some(vin), Some(model)) = (vin, model) else {
        return Err(Error::Invalid(errors));
    };
    let taken: Option<(i64,)> =
        sqlx::query_as("SELECT id FROM demo_vehicles WHERE dealer_id = $1 AND vin = $2")
            .bind(dealer_id)
            .bind(&vin)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some((id,)) = taken {
        return Err(Error::Conflict {
            code: "demo_vehicle_exists",
            message: format!("demo vehicle {id} already has this VIN"),
        });
    }
    let row: DemoRow = sqlx::query_as(&format!(
        "INSERT INTO demo_vehicles (dealer_id, vin, model, created_at) VALUES ($1, $2, $3, $4) \
         RETURNING {DEMO_COLUMNS}"
    ))
    .bind(dealer_id)
    .bind(&vin)
    .bind(&model)
    .bind(clock::now_ms())
    .fetch_one(&mut *conn)
    .await?;
    audit::record(
        conn,
        caller,
        Entry::ok("create", "demo_vehicle", row.id, dealer_id),
    )
    .await?;
    Ok(row.into())
}

/// Turns a demo vehicle on or off. Audited.
pub async fn set_demo_vehicle_active(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
    patch: &DemoVehiclePatch,
) -> Result<DemoVehicle> {
    let dealer_id = access::owning_dealer(conn, caller, Record::DemoVehicle, id).await?;
    let row: DemoRow = sqlx::query_as(&format!(
        "UPDATE demo_vehicles SET active = $1 WHERE id = $2 RETURNING {DEMO_COLUMNS}"
    ))
    .bind(i64::from(patch.active))
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    audit::record(
        conn,
        caller,
        Entry::ok("update", "demo_vehicle", id, dealer_id)
            .with_detail(serde_json::json!({ "changed": ["active"] })),
    )
    .await?;
    Ok(row.into())
}

/// The demo vehicles in the caller's scope.
pub async fn demo_vehicles(conn: &mut AnyConnection, caller: &Caller) -> Result<Vec<DemoVehicle>> {
    let mut sql = Sql::new(&format!(
        "SELECT {DEMO_COLUMNS} FROM demo_vehicles WHERE 1 = 1"
    ));
    caller.scope(&mut sql, "dealer_id");
    sql.push(" ORDER BY id");
    let rows: Vec<DemoRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().map(DemoVehicle::from).collect())
}

text_enum!(
    TestDriveStatus {
        Booked => "booked",
        Cancelled => "cancelled",
    }
);

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TestDrive {
    pub id: i64,
    pub dealer_id: i64,
    pub lead_id: i64,
    pub demo_vehicle_id: i64,
    pub consultant_id: i64,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub status: TestDriveStatus,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTestDrive {
    pub lead_id: i64,
    /// An active demo vehicle of the lead's dealer.
    pub demo_vehicle_id: i64,
    /// An active staff member of the lead's dealer; default the lead's consultant.
    pub consultant_id: Option<i64>,
    /// On the quarter hour.
    pub starts_at: DateTime<Utc>,
    /// On the quarter hour, after the start, at most 4 hours later.
    pub ends_at: DateTime<Utc>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TestDriveFilter {
    pub lead_id: Option<i64>,
    pub demo_vehicle_id: Option<i64>,
    pub consultant_id: Option<i64>,
    /// Only drives starting at or after this time (a calendar's first day).
    pub from: Option<DateTime<Utc>>,
    /// Only drives starting before this time.
    pub until: Option<DateTime<Utc>>,
}

#[derive(FromRow)]
struct DriveRow {
    id: i64,
    dealer_id: i64,
    lead_id: i64,
    demo_vehicle_id: i64,
    consultant_id: i64,
    starts_at: i64,
    ends_at: i64,
    status: String,
    created_at: i64,
}

impl DriveRow {
    fn into_drive(self) -> Result<TestDrive> {
        Ok(TestDrive {
            status: decode("test_drives", &self.status, TestDriveStatus::parse)?,
            id: self.id,
            dealer_id: self.dealer_id,
            lead_id: self.lead_id,
            demo_vehicle_id: self.demo_vehicle_id,
            consultant_id: self.consultant_id,
            starts_at: clock::to_datetime(self.starts_at),
            ends_at: clock::to_datetime(self.ends_at),
            created_at: clock::to_datetime(self.created_at),
        })
    }
}

const DRIVE_COLUMNS: &str = "id, dealer_id, lead_id, demo_vehicle_id, consultant_id, starts_at, ends_at, status, created_at";

fn check_slot(errors: &mut Vec<FieldError>, starts: i64, ends: i64) {
    if starts % SLOT_MS != 0 || ends % SLOT_MS != 0 {
        errors.push(FieldError::new(
            "starts_at",
            "not_on_slot",
            "test drives start and end on the quarter hour",
        ));
    }
    if ends <= starts {
        errors.push(FieldError::new(
            "ends_at",
            "before_start",
            "a test drive ends after it starts",
        ));
    } else if ends - starts > MAX_SLOTS * SLOT_MS {
        errors.push(FieldError::new(
            "ends_at",
            "too_long",
            "a test drive lasts at most 4 hours",
        ));
    }
}

/// Claims every quarter hour of `starts..ends` for `resource`; a slot already claimed is the
/// conflict `code`.
async fn claim_slots(
    conn: &mut AnyConnection,
    drive_id: i64,
    resource: &str,
    starts: i64,
    ends: i64,
    code: &'static str,
    message: &str,
) -> Result<()> {
    let mut slot = starts;
    while slot < ends {
        let claimed = sqlx::query(
            "INSERT INTO test_drive_slots (resource, slot_start, test_drive_id) VALUES ($1, $2, $3)",
        )
        .bind(resource)
        .bind(slot)
        .bind(drive_id)
        .execute(&mut *conn)
        .await;
        match claimed {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(Error::Conflict {
                    code,
                    message: message.to_owned(),
                });
            }
            Err(e) => return Err(e.into()),
        }
        slot += SLOT_MS;
    }
    Ok(())
}

/// Books a test drive for a lead and moves the lead to `test_drive` (unless it is further).
/// An overlapping booking of the same demo vehicle (`demo_vehicle_booked`) or consultant
/// (`consultant_booked`) is a 409 and stores nothing. Audited.
pub async fn book(
    conn: &mut AnyConnection,
    caller: &Caller,
    new: &NewTestDrive,
) -> Result<TestDrive> {
    let dealer_id = leads::dealer_of(conn, caller, new.lead_id).await?;
    let lead = leads::get(conn, caller, new.lead_id).await?;
    let mut errors = Vec::new();
    let (starts, ends) = (
        new.starts_at.timestamp_millis(),
        new.ends_at.timestamp_millis(),
    );
    check_slot(&mut errors, starts, ends);
    let demo: Option<(i64, i64)> =
        sqlx::query_as("SELECT dealer_id, active FROM demo_vehicles WHERE id = $1")
            .bind(new.demo_vehicle_id)
            .fetch_optional(&mut *conn)
            .await?;
    match demo {
        Some((d, active)) if d == dealer_id && active != 0 => {}
        Some((d, _)) if d == dealer_id => errors.push(FieldError::new(
            "demo_vehicle_id",
            "inactive_demo_vehicle",
            "this demo vehicle is out of the fleet",
        )),
        _ => errors.push(FieldError::new(
            "demo_vehicle_id",
            "unknown_demo_vehicle",
            "no demo vehicle with that id at the lead's dealer",
        )),
    }
    let consultant = new.consultant_id.or(lead.consultant_id).or(caller.staff_id);
    match consultant {
        Some(c) if is_active_staff(conn, dealer_id, c).await? => {}
        _ => errors.push(FieldError::new(
            "consultant_id",
            "unknown_staff",
            "name an active staff member of the lead's dealer",
        )),
    }
    let Some(consultant) = consultant.filter(|_| errors.is_empty()) else {
        return Err(Error::Invalid(errors));
    };
    if !lead.stage.is_open() {
        lead.stage.check_move(Stage::TestDrive)?;
    }
    let row: DriveRow = sqlx::query_as(&format!(
        "INSERT INTO test_drives (dealer_id, lead_id, demo_vehicle_id, consultant_id, starts_at, ends_at, status, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {DRIVE_COLUMNS}"
    ))
    .bind(dealer_id)
    .bind(new.lead_id)
    .bind(new.demo_vehicle_id)
    .bind(consultant)
    .bind(starts)
    .bind(ends)
    .bind(TestDriveStatus::Booked.as_str())
    .bind(clock::now_ms())
    .fetch_one(&mut *conn)
    .await?;
    claim_slots(
        conn,
        row.id,
        &format!("vehicle:{}", new.demo_vehicle_id),
        starts,
        ends,
        "demo_vehicle_booked",
        "the demo vehicle is already booked for an overlapping slot",
    )
    .await?;
    claim_slots(
        conn,
        row.id,
        &format!("staff:{consultant}"),
        starts,
        ends,
        "consultant_booked",
        "the consultant is already booked for an overlapping slot",
    )
    .await?;
    leads::advance(
        conn,
        caller,
        new.lead_id,
        Stage::TestDrive,
        "test drive booked",
    )
    .await?;
    audit::record(
        conn,
        caller,
        Entry::ok("create", "test_drive", row.id, dealer_id),
    )
    .await?;
    row.into_drive()
}

/// Cancels a booking and frees its slots (cancelling twice changes nothing). Audited.
pub async fn cancel(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<TestDrive> {
    let dealer_id = access::owning_dealer(conn, caller, Record::TestDrive, id).await?;
    let updated = sqlx::query("UPDATE test_drives SET status = $1 WHERE id = $2 AND status = $3")
        .bind(TestDriveStatus::Cancelled.as_str())
        .bind(id)
        .bind(TestDriveStatus::Booked.as_str())
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if updated == 1 {
        sqlx::query("DELETE FROM test_drive_slots WHERE test_drive_id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        audit::record(
            conn,
            caller,
            Entry::ok("cancel", "test_drive", id, dealer_id),
        )
        .await?;
    }
    let row: DriveRow = sqlx::query_as(&format!(
        "SELECT {DRIVE_COLUMNS} FROM test_drives WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    row.into_drive()
}

/// Test drives in the caller's scope matching `filter`, soonest first.
pub async fn list(
    conn: &mut AnyConnection,
    caller: &Caller,
    filter: &TestDriveFilter,
) -> Result<Vec<TestDrive>> {
    let mut sql = Sql::new(&format!(
        "SELECT {DRIVE_COLUMNS} FROM test_drives WHERE 1 = 1"
    ));
    caller.scope(&mut sql, "dealer_id");
    if let Some(l) = filter.lead_id {
        sql.push(" AND lead_id = ").bind(Param::Int(l));
    }
    if let Some(d) = filter.demo_vehicle_id {
        sql.push(" AND demo_vehicle_id = ").bind(Param::Int(d));
    }
    if let Some(c) = filter.consultant_id {
        sql.push(" AND consultant_id = ").bind(Param::Int(c));
    }
    if let Some(from) = filter.from {
        sql.push(" AND starts_at >= ")
            .bind(Param::Int(from.timestamp_millis()));
    }
    if let Some(until) = filter.until {
        sql.push(" AND starts_at < ")
            .bind(Param::Int(until.timestamp_millis()));
    }
    sql.push(" ORDER BY starts_at, id LIMIT 500");
    let rows: Vec<DriveRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    rows.into_iter().map(DriveRow::into_drive).collect()
}
