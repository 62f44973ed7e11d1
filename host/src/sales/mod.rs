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

use crate::error::Result;

/// A closed set of values stored as text: `as_str`, `parse` and `ALL`, serialised exactly as
/// stored.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),* }

        // Written out rather than derived: the derive does not see a `rename` that a
        // macro_rules literal carries, and would document the Rust names.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),*]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

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
