//! Odometer readings over time, and the car's real daily mileage estimated from them (what
//! maintenance reminders are adjusted to). Owns `mileage_readings`.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa::ToSchema;

use super::dealer_of;
use crate::access::Caller;
use crate::audit::{self, Entry};
use crate::clock;
use crate::db::Sql;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reading {
    pub km: i64,
    pub read_at: DateTime<Utc>,
    /// Where it came from: check_in, service, app, manual, ...
    pub source: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReading {
    pub km: i64,
    /// Default now; not in the future.
    pub read_at: Option<DateTime<Utc>>,
    /// Default `manual`.
    pub source: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MileageHistory {
    /// Oldest first.
    pub readings: Vec<Reading>,
    pub estimated_daily_km: Option<f64>,
}

/// Readings of each vehicle, oldest first.
pub async fn readings_for(
    conn: &mut AnyConnection,
    vehicle_ids: &[i64],
) -> Result<HashMap<i64, Vec<Reading>>> {
    let mut out: HashMap<i64, Vec<Reading>> = HashMap::new();
    if vehicle_ids.is_empty() {
        return Ok(out);
    }
    let sql = Sql::in_list(
        "SELECT vehicle_id, km, read_at, source FROM mileage_readings WHERE vehicle_id IN ",
        vehicle_ids,
        " ORDER BY vehicle_id, read_at, id",
    );
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    for (vid, km, read_at, source) in rows {
        out.entry(vid).or_default().push(Reading {
            km,
            read_at: clock::to_datetime(read_at),
            source,
        });
    }
    Ok(out)
}

/// Kilometres per day: the slope between the first and last reading of the last year when
/// they are at least two weeks apart; otherwise the latest reading spread over the time since
/// purchase; `None` when neither is known.
pub fn estimate_daily_km(
    readings: &[Reading],
    purchase_date: Option<NaiveDate>,
    today: NaiveDate,
) -> Option<f64> {
    let last = readings.last()?;
    let year_ago = last.read_at - chrono::Duration::days(365);
    let first = readings
        .iter()
        .find(|r| r.read_at >= year_ago)
        .unwrap_or(last);
    let span_days = (last.read_at - first.read_at).num_hours() as f64 / 24.0;
    if span_days >= 14.0 {
        return Some(round1((last.km - first.km) as f64 / span_days));
    }
    let since_purchase = (last.read_at.date_naive().min(today) - purchase_date?).num_days();
    (since_purchase >= 14).then(|| round1(last.km as f64 / since_purchase as f64))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub async fn add(
    conn: &mut AnyConnection,
    caller: &Caller,
    vehicle_id: i64,
    new: NewReading,
) -> Result<Reading> {
    let dealer_id = dealer_of(conn, caller, vehicle_id).await?;
    let read_at = new
        .read_at
        .map_or_else(clock::now_ms, |t| t.timestamp_millis());
    let source = new
        .source
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "manual".into());
    let reading = record(conn, vehicle_id, new.km, read_at, &source).await?;
    audit::record(
        conn,
        caller,
        Entry::ok("add_mileage", "vehicle", vehicle_id, dealer_id),
    )
    .await?;
    Ok(reading)
}

/// Stores a reading of a vehicle the caller may change, once [`check`] passed; the caller
/// audits it.
pub(crate) async fn record(
    conn: &mut AnyConnection,
    vehicle_id: i64,
    km: i64,
    read_at: i64,
    source: &str,
) -> Result<Reading> {
    check(conn, vehicle_id, km, read_at).await?;
    sqlx::query("INSERT INTO mileage_readings (vehicle_id, km, read_at, source, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(vehicle_id)
        .bind(km)
        .bind(read_at)
        .bind(source)
        .bind(clock::now_ms())
        .execute(&mut *conn)
        .await?;
    Ok(Reading {
        km,
        read_at: clock::to_datetime(read_at),
        source: source.to_owned(),
    })
}

/// The one rule of a reading: 0 to 3,000,000 km, not in the future, never below an earlier
/// reading of the vehicle nor above a later one.
pub(crate) async fn check(
    conn: &mut AnyConnection,
    vehicle_id: i64,
    km: i64,
    read_at: i64,
) -> Result<()> {
    let now = clock::now_ms();
    if !(0..=3_000_000).contains(&km) {
        return Err(Error::invalid(
            "km",
            "invalid_km",
            "an odometer reading is between 0 and 3,000,000 km",
        ));
    }
    if read_at > now + 60_000 {
        return Err(Error::invalid(
            "read_at",
            "in_future",
            "a reading cannot be taken in the future",
        ));
    }
    let before: Option<(i64,)> = sqlx::query_as(
        "SELECT km FROM mileage_readings WHERE vehicle_id = $1 AND read_at <= $2 ORDER BY read_at DESC, id DESC LIMIT 1",
    )
    .bind(vehicle_id)
    .bind(read_at)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((earlier,)) = before.filter(|(earlier,)| *earlier > km) {
        return Err(Error::invalid(
            "km",
            "mileage_decreased",
            format!("an earlier reading already shows {earlier} km; odometers do not go back"),
        ));
    }
    let after: Option<(i64,)> = sqlx::query_as(
        "SELECT km FROM mileage_readings WHERE vehicle_id = $1 AND read_at > $2 ORDER BY read_at, id LIMIT 1",
    )
    .bind(vehicle_id)
    .bind(read_at)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((later,)) = after.filter(|(later,)| *later < km) {
        return Err(Error::invalid(
            "km",
            "mileage_decreased",
            format!("a later reading shows only {later} km"),
        ));
    }
    Ok(())
}

pub async fn history(
    conn: &mut AnyConnection,
    caller: &Caller,
    vehicle_id: i64,
) -> Result<MileageHistory> {
    let vehicle = super::get(conn, caller, vehicle_id).await?;
    let readings = readings_for(conn, &[vehicle_id])
        .await?
        .remove(&vehicle_id)
        .unwrap_or_default();
    Ok(MileageHistory {
        readings,
        estimated_daily_km: vehicle.estimated_daily_km,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(date: &str, km: i64) -> Reading {
        let d = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
        Reading {
            km,
            read_at: d.and_hms_opt(9, 0, 0).unwrap().and_utc(),
            source: "service".into(),
        }
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_slope_of_the_last_year_is_the_daily_mileage() {
        let readings = [
            reading("2024-01-01", 1_000),
            reading("2025-06-01", 20_000),
            reading("2025-09-09", 24_000),
        ];
        // The 2024 reading is more than a year before the last one and is ignored: 4,000 km in 100 days.
        assert_eq!(
            estimate_daily_km(&readings, None, day("2025-10-01")),
            Some(40.0)
        );
    }

    #[test]
    fn one_reading_is_spread_over_the_time_since_purchase() {
        let readings = [reading("2025-04-11", 3_000)];
        assert_eq!(
            estimate_daily_km(&readings, Some(day("2025-01-01")), day("2025-05-01")),
            Some(30.0)
        );
        assert_eq!(estimate_daily_km(&readings, None, day("2025-05-01")), None);
    }

    #[test]
    fn no_readings_no_estimate() {
        assert_eq!(
            estimate_daily_km(&[], Some(day("2020-01-01")), day("2025-01-01")),
            None
        );
    }
}
