//! The sales lifecycle: leads and their funnel, test drives, sales orders with approvals,
//! trade-ins, delivery and commission. Each submodule owns its tables (named in its header).

pub mod commission;
pub mod delivery;
pub mod funnel;
pub mod leads;
pub mod orders;
pub mod test_drives;
pub mod trade_ins;

use sqlx::AnyConnection;

use crate::access::Caller;
use crate::error::{Error, FieldError, Result};

/// A closed set of values stored as text: `as_str`, `parse` and `ALL`, serialised exactly as
/// stored.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        pub enum $name { $(#[serde(rename = $text)] $variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }

            pub fn parse(s: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }
    };
}
pub(crate) use text_enum;

/// The dealer owning row `id` of `table` if the caller can see it; a row outside the caller's
/// scope is not found ([`Error::Denied`], audited by the API layer).
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

/// A stored value this module wrote itself but cannot read back: a bug or a hand edit.
pub(crate) fn decode<T>(table: &str, value: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    parse(value).ok_or_else(|| {
        Error::Database(sqlx::Error::Decode(
            format!("{table}: bad value {value:?}").into(),
        ))
    })
}

/// Trims `value` and checks its length in characters; pushes an error and returns `None` if
/// it is out of `1..=max`.
pub(crate) fn checked_text(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: &str,
    max: usize,
) -> Option<String> {
    let value = value.trim();
    let len = value.chars().count();
    if len == 0 {
        errors.push(FieldError::new(
            field,
            "required",
            format!("{field} must not be empty"),
        ));
        None
    } else if len > max {
        errors.push(FieldError::new(
            field,
            "too_long",
            format!("{field} is at most {max} characters"),
        ));
        None
    } else {
        Some(value.to_owned())
    }
}

/// An optional text field: absent or blank is `None`, otherwise checked like [`checked_text`].
pub(crate) fn optional_text(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Option<String> {
    value
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| checked_text(errors, field, v, max))
}

/// Whether `staff_id` is an active member of `dealer_id`'s staff.
pub(crate) async fn is_active_staff(
    conn: &mut AnyConnection,
    dealer_id: i64,
    staff_id: i64,
) -> Result<bool> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT id FROM staff WHERE id = $1 AND org_unit_id = $2 AND active = 1")
            .bind(staff_id)
            .bind(dealer_id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.is_some())
}
