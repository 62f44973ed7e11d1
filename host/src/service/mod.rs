//! After-sales service: appointments ([`appointments`]), repair orders and their timeline
//! ([`repair_orders`]), extra work approved by the owner through a link ([`extra_work`]) and
//! proactive campaigns ([`campaigns`]). Each module names the tables it owns.

pub mod appointments;
pub mod campaigns;
pub mod extra_work;
pub mod repair_orders;

use std::collections::HashSet;

use sqlx::AnyConnection;

use crate::access::Caller;
use crate::error::{Error, FieldError, Result};

/// The reporting period of the service reports ([`crate::clock::Period`]).
pub use crate::clock::Period;

/// `numerator / denominator`, or `None` when nothing was counted.
pub fn ratio(numerator: i64, denominator: i64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// Which of `vehicle_ids` (vehicle records of one dealer) that dealer services: a repair order
/// or an appointment (not cancelled) for the vehicle.
pub async fn serviced(conn: &mut AnyConnection, vehicle_ids: &[i64]) -> Result<HashSet<i64>> {
    if vehicle_ids.is_empty() {
        return Ok(HashSet::new());
    }
    let mut serviced: HashSet<i64> = repair_orders::with_orders(conn, vehicle_ids)
        .await?
        .into_iter()
        .collect();
    serviced.extend(appointments::with_appointments(conn, vehicle_ids).await?);
    Ok(serviced)
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
