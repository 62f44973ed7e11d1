//! After-sales service: appointments ([`appointments`]), repair orders and their timeline
//! ([`repair_orders`]), extra work approved by the owner through a link ([`extra_work`]) and
//! proactive campaigns ([`campaigns`]). Each module names the tables it owns.

pub mod appointments;
pub mod campaigns;
pub mod extra_work;
pub mod repair_orders;

use chrono::NaiveDate;
use serde::Deserialize;
use sqlx::AnyConnection;
use utoipa::IntoParams;

use crate::access::Caller;
use crate::error::{Error, FieldError, Result};

/// A reporting period: whole UTC days `from ..= to`.
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Period {
    /// First day, `YYYY-MM-DD`.
    pub from: NaiveDate,
    /// Last day (included), `YYYY-MM-DD`.
    pub to: NaiveDate,
}

impl Period {
    /// `[start, end)` in UTC milliseconds; refuses a period that ends before it starts.
    pub fn bounds_ms(&self) -> Result<(i64, i64)> {
        if self.to < self.from {
            return Err(Error::invalid(
                "to",
                "before_from",
                "the period ends before it starts",
            ));
        }
        let start = self.from.and_hms_opt(0, 0, 0).map(|d| d.and_utc());
        let end = self
            .to
            .succ_opt()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc());
        match (start, end) {
            (Some(s), Some(e)) => Ok((s.timestamp_millis(), e.timestamp_millis())),
            _ => Err(Error::invalid("to", "invalid_date", "a date out of range")),
        }
    }
}

/// `numerator / denominator`, or `None` when nothing was counted.
pub fn ratio(numerator: i64, denominator: i64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// Trims `value` and checks it has 1 to `max` characters; pushes an error otherwise.
pub(crate) fn checked_text(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: &str,
    max: usize,
) -> String {
    let value = value.trim();
    let len = value.chars().count();
    if len == 0 {
        errors.push(FieldError::new(
            field,
            "required",
            format!("{field} must not be empty"),
        ));
    } else if len > max {
        errors.push(FieldError::new(
            field,
            "too_long",
            format!("{field} is at most {max} characters"),
        ));
    }
    value.to_owned()
}

/// The dealer owning row `id` of `table` (one of this module's tables with a `dealer_id`) if
/// the caller can see it; a row outside the caller's scope is not found ([`Error::Denied`],
/// audited by the API layer).
pub(crate) async fn owning_dealer(
    conn: &mut AnyConnection,
    caller: &Caller,
    table: &'static str,
    entity: &'static str,
    id: i64,
) -> Result<i64> {
    let row: Option<(i64, String)> = sqlx::query_as(&format!(
        "SELECT r.dealer_id, o.path FROM {table} r JOIN org_units o ON o.id = r.dealer_id WHERE r.id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some((dealer, path)) if caller.sees_path(&path) => Ok(dealer),
        Some((dealer, _)) => Err(Error::denied(caller, entity, id, dealer)),
        None => Err(Error::NotFound { entity }),
    }
}

/// Checks that `customer_id` and `vehicle_id` are visible to the caller and belong to
/// `dealer_id`, and that the customer is linked to the vehicle now; pushes field errors.
/// A denied lookup is audited on `conn` (run it outside the write transaction).
pub(crate) async fn check_customer_and_vehicle(
    conn: &mut AnyConnection,
    caller: &Caller,
    errors: &mut Vec<FieldError>,
    dealer_id: Option<i64>,
    customer_id: i64,
    vehicle_id: i64,
) -> Result<()> {
    for (entity, owner) in [
        (
            "customer",
            crate::customers::dealer_of(conn, caller, customer_id).await,
        ),
        (
            "vehicle",
            crate::vehicles::dealer_of(conn, caller, vehicle_id).await,
        ),
    ] {
        let field = format!("{entity}_id");
        match owner {
            Ok(owner) if dealer_id.is_some_and(|d| d != owner) => errors.push(FieldError::new(
                &field,
                &format!("{entity}_of_other_dealer"),
                format!("the {entity} belongs to another dealer"),
            )),
            Ok(_) => {}
            Err(Error::Denied(denial)) => {
                crate::audit::record_denial(conn, &denial).await?;
                errors.push(unknown(&field, entity));
            }
            Err(Error::NotFound { .. }) => errors.push(unknown(&field, entity)),
            Err(e) => return Err(e),
        }
    }
    if errors.is_empty() {
        let vehicle = crate::vehicles::get(conn, caller, vehicle_id).await?;
        if !vehicle.people.iter().any(|p| p.customer_id == customer_id) {
            errors.push(FieldError::new(
                "customer_id",
                "not_linked_to_vehicle",
                "the customer is not a current owner, driver or family member of the vehicle",
            ));
        }
    }
    Ok(())
}

fn unknown(field: &str, entity: &str) -> FieldError {
    FieldError::new(
        field,
        &format!("unknown_{entity}"),
        format!("no {entity} with that id in your network"),
    )
}
