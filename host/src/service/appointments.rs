//! Service appointments, booked online or by phone for a vehicle, a service type and a slot.
//! Owns `appointments`.
//!
//! An appointment is `booked`, then `arrived` (it may become a repair order) or `cancelled`.
//! A booked appointment whose slot has ended without an arrival is shown as `no_show`; that
//! state is derived from the clock, never stored, so it needs no background job.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow};
use utoipa::{IntoParams, ToSchema};

use super::{Period, campaigns};
use crate::access::Caller;
use crate::audit::{self, Entry};
use crate::clock;
use crate::db::decode;
use crate::db::{Param, Sql};
use crate::error::{Error, FieldError, Result};
use crate::model::Versioned;
use crate::network;

/// Longest `note`, in characters.
pub const NOTE_MAX: usize = 2000;
/// Longest slot: one day.
const SLOT_MAX_MS: i64 = 24 * 3_600_000;
/// Default slot length when no end is given: one hour.
const SLOT_DEFAULT_MS: i64 = 3_600_000;

/// How the appointment was booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = AppointmentChannel)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Online,
    Phone,
}

impl Channel {
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Online => "online",
            Channel::Phone => "phone",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        [Channel::Online, Channel::Phone]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceType {
    Maintenance,
    Repair,
    Warranty,
    /// A proactive campaign; the appointment names the campaign.
    Campaign,
    Inspection,
    Other,
}

impl ServiceType {
    pub const ALL: [ServiceType; 6] = [
        ServiceType::Maintenance,
        ServiceType::Repair,
        ServiceType::Warranty,
        ServiceType::Campaign,
        ServiceType::Inspection,
        ServiceType::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::Maintenance => "maintenance",
            ServiceType::Repair => "repair",
            ServiceType::Warranty => "warranty",
            ServiceType::Campaign => "campaign",
            ServiceType::Inspection => "inspection",
            ServiceType::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<ServiceType> {
        ServiceType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// What the API shows: the stored state, or `no_show` for a booking whose slot has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentStatus {
    Booked,
    Arrived,
    Cancelled,
    /// Booked, and the slot ended without an arrival.
    NoShow,
}

impl AppointmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AppointmentStatus::Booked => "booked",
            AppointmentStatus::Arrived => "arrived",
            AppointmentStatus::Cancelled => "cancelled",
            AppointmentStatus::NoShow => "no_show",
        }
    }

    /// The moves a person can make from this state. A late arrival still counts.
    pub fn next(self) -> &'static [AppointmentStatus] {
        use AppointmentStatus::*;
        match self {
            Booked => &[Arrived, Cancelled],
            NoShow => &[Arrived],
            Arrived | Cancelled => &[],
        }
    }

    fn check_move(self, to: AppointmentStatus) -> Result<()> {
        if self.next().contains(&to) {
            return Ok(());
        }
        Err(Error::InvalidTransition {
            from: self.as_str().to_owned(),
            to: to.as_str().to_owned(),
            allowed: self.next().iter().map(|s| s.as_str().to_owned()).collect(),
        })
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Appointment {
    pub id: i64,
    pub dealer_id: i64,
    pub customer_id: i64,
    pub vehicle_id: i64,
    pub channel: Channel,
    pub service_type: ServiceType,
    pub campaign_id: Option<i64>,
    pub slot_start: DateTime<Utc>,
    pub slot_end: DateTime<Utc>,
    pub status: AppointmentStatus,
    pub note: String,
    pub arrived_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The repair order opened from this appointment.
    pub repair_order_id: Option<i64>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Versioned for Appointment {
    fn version(&self) -> i64 {
        self.version
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAppointment {
    /// Required for HQ callers; dealer staff leave it out.
    pub dealer_id: Option<i64>,
    pub customer_id: i64,
    /// A vehicle the customer owns or drives, of the same dealer.
    pub vehicle_id: i64,
    pub channel: Channel,
    pub service_type: ServiceType,
    /// Required with service type `campaign` (and only then).
    pub campaign_id: Option<i64>,
    pub slot_start: DateTime<Utc>,
    /// Default one hour after the start; at most one day after it.
    pub slot_end: Option<DateTime<Utc>>,
    /// Up to 2000 characters.
    pub note: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AppointmentFilter {
    /// `no_show`: booked, slot over, nobody came; `booked`: booked and still ahead.
    pub status: Option<AppointmentStatus>,
    pub customer_id: Option<i64>,
    pub vehicle_id: Option<i64>,
    pub campaign_id: Option<i64>,
    /// Only slots starting at or after this time (a calendar's first day, e.g.
    /// `2026-12-03T00:00:00+08:00`).
    pub from: Option<DateTime<Utc>>,
    /// Only slots starting before this time.
    pub until: Option<DateTime<Utc>>,
}

/// Appointment conversion of a period: appointments whose slot starts in it, and how many of
/// them arrived.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = AppointmentConversion)]
pub struct Conversion {
    /// The period's `from`, as asked.
    pub from: String,
    /// The period's `to`, as asked.
    pub to: String,
    /// Appointments made (every one whose slot starts in the period, cancelled included).
    pub made: i64,
    pub arrived: i64,
    pub cancelled: i64,
    pub no_show: i64,
    /// `arrived / made`; absent when none were made.
    pub rate: Option<f64>,
}

#[derive(FromRow)]
struct Row {
    id: i64,
    dealer_id: i64,
    customer_id: i64,
    vehicle_id: i64,
    channel: String,
    service_type: String,
    campaign_id: Option<i64>,
    slot_start: i64,
    slot_end: i64,
    status: String,
    note: String,
    arrived_at: Option<i64>,
    cancelled_at: Option<i64>,
    repair_order_id: Option<i64>,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

const COLUMNS: &str = "id, dealer_id, customer_id, vehicle_id, channel, service_type, campaign_id, slot_start, \
     slot_end, status, note, arrived_at, cancelled_at, repair_order_id, version, created_at, updated_at";

fn parse_stored_status(s: &str) -> Option<AppointmentStatus> {
    match s {
        "booked" => Some(AppointmentStatus::Booked),
        "arrived" => Some(AppointmentStatus::Arrived),
        "cancelled" => Some(AppointmentStatus::Cancelled),
        _ => None,
    }
}

impl Row {
    fn status(&self, now: i64) -> Result<AppointmentStatus> {
        let stored = decode("status", &self.status, parse_stored_status)?;
        Ok(match stored {
            AppointmentStatus::Booked if self.slot_end < now => AppointmentStatus::NoShow,
            other => other,
        })
    }

    fn into_appointment(self, now: i64) -> Result<Appointment> {
        Ok(Appointment {
            status: self.status(now)?,
            channel: decode("channel", &self.channel, Channel::parse)?,
            service_type: decode("service_type", &self.service_type, ServiceType::parse)?,
            id: self.id,
            dealer_id: self.dealer_id,
            customer_id: self.customer_id,
            vehicle_id: self.vehicle_id,
            campaign_id: self.campaign_id,
            slot_start: clock::to_datetime(self.slot_start),
            slot_end: clock::to_datetime(self.slot_end),
            note: self.note,
            arrived_at: clock::opt_datetime(self.arrived_at),
            cancelled_at: clock::opt_datetime(self.cancelled_at),
            repair_order_id: self.repair_order_id,
            version: self.version,
            created_at: clock::to_datetime(self.created_at),
            updated_at: clock::to_datetime(self.updated_at),
        })
    }
}

/// A [`NewAppointment`] that passed [`check_new`], with its dealer and slot.
pub struct ValidAppointment<'a> {
    new: &'a NewAppointment,
    dealer_id: i64,
    slot: (i64, i64),
}

/// Validates a new appointment: fields, slot (not over, at most a day), dealer, customer and
/// vehicle (visible, of that dealer, linked to each other) and the campaign. Run it outside
/// the create's transaction (a denied lookup is audited on `conn`).
pub async fn check_new<'a>(
    conn: &mut AnyConnection,
    caller: &Caller,
    new: &'a NewAppointment,
) -> Result<ValidAppointment<'a>> {
    let mut errors = Vec::new();
    if let Some(note) = &new.note
        && note.chars().count() > NOTE_MAX
    {
        errors.push(FieldError::new(
            "note",
            "too_long",
            format!("note is at most {NOTE_MAX} characters"),
        ));
    }
    let start = new.slot_start.timestamp_millis();
    let end = new
        .slot_end
        .map_or(start + SLOT_DEFAULT_MS, |e| e.timestamp_millis());
    if end <= start || end - start > SLOT_MAX_MS {
        errors.push(FieldError::new(
            "slot_end",
            "invalid_slot",
            "a slot ends after it starts and lasts at most one day",
        ));
    } else if end <= clock::now_ms() {
        errors.push(FieldError::new(
            "slot_start",
            "slot_passed",
            "the slot is already over",
        ));
    }
    let dealer = match network::dealer_for_write(conn, caller, new.dealer_id).await {
        Ok(d) => Some(d),
        Err(Error::Invalid(mut e)) => {
            errors.append(&mut e);
            None
        }
        Err(e) => return Err(e),
    };
    super::check_customer_and_vehicle(
        conn,
        caller,
        &mut errors,
        dealer,
        new.customer_id,
        new.vehicle_id,
    )
    .await?;
    match (new.service_type, new.campaign_id) {
        (ServiceType::Campaign, None) => errors.push(FieldError::new(
            "campaign_id",
            "required",
            "a campaign appointment names its campaign",
        )),
        (ServiceType::Campaign, Some(c)) => {
            if let Some(d) = dealer
                && !campaigns::covers_dealer(conn, c, d).await?
            {
                errors.push(FieldError::new(
                    "campaign_id",
                    "unknown_campaign",
                    "no campaign with that id covers this dealer",
                ));
            }
        }
        (_, Some(_)) => errors.push(FieldError::new(
            "campaign_id",
            "not_a_campaign_appointment",
            "only an appointment of service type campaign names a campaign",
        )),
        (_, None) => {}
    }
    match dealer {
        Some(dealer_id) if errors.is_empty() => Ok(ValidAppointment {
            new,
            dealer_id,
            slot: (start, end),
        }),
        _ => Err(Error::Invalid(errors)),
    }
}

/// Stores a checked appointment as `booked`, with its audit entry.
pub async fn create(
    conn: &mut AnyConnection,
    caller: &Caller,
    valid: &ValidAppointment<'_>,
) -> Result<Appointment> {
    let new = valid.new;
    let now = clock::now_ms();
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO appointments (dealer_id, customer_id, vehicle_id, channel, service_type, campaign_id, \
         slot_start, slot_end, status, note, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'booked', $9, $10, $10) RETURNING id",
    )
    .bind(valid.dealer_id)
    .bind(new.customer_id)
    .bind(new.vehicle_id)
    .bind(new.channel.as_str())
    .bind(new.service_type.as_str())
    .bind(new.campaign_id)
    .bind(valid.slot.0)
    .bind(valid.slot.1)
    .bind(new.note.as_deref().map(str::trim).unwrap_or(""))
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    audit::record(
        conn,
        caller,
        Entry::ok("create", "appointment", id, valid.dealer_id),
    )
    .await?;
    fetch(conn, id).await
}

/// The dealer of appointment `id` if the caller can see it.
pub async fn dealer_of(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<i64> {
    crate::access::owning_dealer(conn, caller, crate::access::Record::Appointment, id).await
}

pub async fn get(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<Appointment> {
    dealer_of(conn, caller, id).await?;
    fetch(conn, id).await
}

async fn fetch_row(conn: &mut AnyConnection, id: i64) -> Result<Row> {
    let row: Option<Row> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM appointments WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    row.ok_or(Error::NotFound {
        entity: "appointment",
    })
}

async fn fetch(conn: &mut AnyConnection, id: i64) -> Result<Appointment> {
    fetch_row(conn, id).await?.into_appointment(clock::now_ms())
}

/// Appointments in the caller's scope matching `filter`, newest first; `limit + 1` at most.
pub async fn list(
    conn: &mut AnyConnection,
    caller: &Caller,
    filter: &AppointmentFilter,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<Appointment>> {
    let now = clock::now_ms();
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM appointments WHERE 1 = 1"));
    caller.scope(&mut sql, "dealer_id");
    match filter.status {
        Some(AppointmentStatus::NoShow) => {
            sql.push(" AND status = 'booked' AND slot_end < ")
                .bind(Param::Int(now));
        }
        Some(AppointmentStatus::Booked) => {
            sql.push(" AND status = 'booked' AND slot_end >= ")
                .bind(Param::Int(now));
        }
        Some(s) => {
            sql.push(" AND status = ")
                .bind(Param::Text(s.as_str().to_owned()));
        }
        None => {}
    }
    for (column, value) in [
        ("customer_id", filter.customer_id),
        ("vehicle_id", filter.vehicle_id),
        ("campaign_id", filter.campaign_id),
    ] {
        if let Some(v) = value {
            sql.push(" AND ")
                .push(column)
                .push(" = ")
                .bind(Param::Int(v));
        }
    }
    if let Some(from) = filter.from {
        sql.push(" AND slot_start >= ")
            .bind(Param::Int(from.timestamp_millis()));
    }
    if let Some(until) = filter.until {
        sql.push(" AND slot_start < ")
            .bind(Param::Int(until.timestamp_millis()));
    }
    if let Some(b) = before_id {
        sql.push(" AND id < ").bind(Param::Int(b));
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .bind(Param::Int(limit + 1));
    let rows: Vec<Row> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    rows.into_iter().map(|r| r.into_appointment(now)).collect()
}

/// Moves appointment `id` (at version `expected`) to `arrived` or `cancelled`.
pub async fn move_to(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
    expected: i64,
    to: AppointmentStatus,
) -> Result<Appointment> {
    let dealer_id = dealer_of(conn, caller, id).await?;
    let now = clock::now_ms();
    let row = fetch_row(conn, id).await?;
    if row.version != expected {
        return Err(Error::StaleVersion {
            current: row.version,
        });
    }
    row.status(now)?.check_move(to)?;
    let column = match to {
        AppointmentStatus::Arrived => "arrived_at",
        _ => "cancelled_at",
    };
    let updated = sqlx::query(&format!(
        "UPDATE appointments SET status = $1, {column} = $2, updated_at = $2, version = version + 1 \
         WHERE id = $3 AND version = $4"
    ))
    .bind(to.as_str())
    .bind(now)
    .bind(id)
    .bind(expected)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(Error::StaleVersion {
            current: expected + 1,
        });
    }
    let action = match to {
        AppointmentStatus::Arrived => "arrive",
        _ => "cancel",
    };
    audit::record(
        conn,
        caller,
        Entry::ok(action, "appointment", id, dealer_id),
    )
    .await?;
    fetch(conn, id).await
}

/// The arrived appointment `id` a repair order is being opened from: its dealer, customer and
/// vehicle. Refused unless it arrived and has no repair order yet.
pub async fn for_repair_order(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
) -> Result<(i64, i64, i64, ServiceType)> {
    let appointment = get(conn, caller, id).await?;
    if appointment.status != AppointmentStatus::Arrived {
        return Err(Error::Conflict {
            code: "appointment_not_arrived",
            message: "a repair order is opened from an appointment once the car has arrived".into(),
        });
    }
    if let Some(ro) = appointment.repair_order_id {
        return Err(Error::Conflict {
            code: "appointment_converted",
            message: format!("repair order {ro} was already opened from this appointment"),
        });
    }
    Ok((
        appointment.dealer_id,
        appointment.customer_id,
        appointment.vehicle_id,
        appointment.service_type,
    ))
}

/// Which of `vehicle_ids` have an appointment that was not cancelled.
pub(crate) async fn with_appointments(
    conn: &mut AnyConnection,
    vehicle_ids: &[i64],
) -> Result<Vec<i64>> {
    let sql = Sql::in_list(
        "SELECT DISTINCT vehicle_id FROM appointments WHERE vehicle_id IN ",
        vehicle_ids,
        " AND status <> 'cancelled'",
    );
    let rows: Vec<(i64,)> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Links appointment `id` to the repair order opened from it; refused if another was opened
/// from it meanwhile.
pub async fn link_repair_order(
    conn: &mut AnyConnection,
    id: i64,
    repair_order_id: i64,
) -> Result<()> {
    let updated = sqlx::query(
        "UPDATE appointments SET repair_order_id = $1, updated_at = $2, version = version + 1 \
         WHERE id = $3 AND status = 'arrived' AND repair_order_id IS NULL",
    )
    .bind(repair_order_id)
    .bind(clock::now_ms())
    .bind(id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(Error::Conflict {
            code: "appointment_converted",
            message: "a repair order was already opened from this appointment".into(),
        });
    }
    Ok(())
}

/// Appointment conversion over `period` in the caller's scope.
pub async fn conversion(
    conn: &mut AnyConnection,
    caller: &Caller,
    period: &Period,
) -> Result<Conversion> {
    let offset = network::utc_offset_minutes(conn, caller.org_id).await?;
    let (start, end) = period.bounds_ms(offset)?;
    let mut sql = Sql::new("SELECT status, slot_end FROM appointments WHERE slot_start >= ");
    sql.bind(Param::Int(start))
        .push(" AND slot_start < ")
        .bind(Param::Int(end));
    caller.scope(&mut sql, "dealer_id");
    let rows: Vec<(String, i64)> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    let now = clock::now_ms();
    let count =
        |f: &dyn Fn(&str, i64) -> bool| rows.iter().filter(|(s, e)| f(s, *e)).count() as i64;
    let made = rows.len() as i64;
    let arrived = count(&|s, _| s == "arrived");
    Ok(Conversion {
        from: period.from.trim().to_owned(),
        to: period.to.trim().to_owned(),
        made,
        arrived,
        cancelled: count(&|s, _| s == "cancelled"),
        no_show: count(&|s, e| s == "booked" && e < now),
        rate: super::ratio(arrived, made),
    })
}

/// Campaign bookings and arrivals: `(booked, arrived)` distinct vehicles with an appointment
/// for campaign `campaign_id` (cancelled ones excluded), and of them those that came.
pub async fn campaign_counts(conn: &mut AnyConnection, campaign_id: i64) -> Result<(i64, i64)> {
    let (booked, arrived): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(DISTINCT vehicle_id), COUNT(DISTINCT CASE WHEN status = 'arrived' THEN vehicle_id END) \
         FROM appointments WHERE campaign_id = $1 AND status <> 'cancelled'",
    )
    .bind(campaign_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok((booked, arrived))
}

#[cfg(test)]
mod tests {
    use super::*;
    use AppointmentStatus::*;

    #[test]
    fn a_booking_arrives_or_is_cancelled_and_a_no_show_may_still_arrive() {
        assert!(Booked.check_move(Arrived).is_ok());
        assert!(Booked.check_move(Cancelled).is_ok());
        assert!(NoShow.check_move(Arrived).is_ok());
        assert!(NoShow.check_move(Cancelled).is_err());
        assert!(Arrived.check_move(Cancelled).is_err());
        assert!(Cancelled.check_move(Arrived).is_err());
    }

    #[test]
    fn a_passed_booking_reads_as_a_no_show() {
        let row = Row {
            id: 1,
            dealer_id: 1,
            customer_id: 1,
            vehicle_id: 1,
            channel: "phone".into(),
            service_type: "maintenance".into(),
            campaign_id: None,
            slot_start: 1_000,
            slot_end: 2_000,
            status: "booked".into(),
            note: String::new(),
            arrived_at: None,
            cancelled_at: None,
            repair_order_id: None,
            version: 1,
            created_at: 0,
            updated_at: 0,
        };
        assert_eq!(row.status(1_999).unwrap(), Booked);
        assert_eq!(row.status(2_001).unwrap(), NoShow);
    }
}
