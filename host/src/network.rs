//! The dealer network: a tree of units (HQ → region → dealer group → dealer → branch), the staff
//! who work in them, and the network-wide policy HQ sets. Owns `org_units`, `staff` and
//! `network_policy`; the use cases of staff logins and sign-in (stored by `access::logins`).

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow};
use utoipa::ToSchema;

pub use crate::access::Position;
use crate::access::keys::{self, ApiKeyInfo, NewApiKey};
use crate::access::logins::{self, NewSession, SessionCaller, StaffLogin};
use crate::access::{Caller, Role};
use crate::audit::{self, Actor, Entry};
use crate::clock;
use crate::db::Db;
use crate::error::{Error, FieldError, Result};
use crate::text;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    Hq,
    Region,
    Group,
    Dealer,
    Branch,
}

impl UnitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UnitKind::Hq => "hq",
            UnitKind::Region => "region",
            UnitKind::Group => "group",
            UnitKind::Dealer => "dealer",
            UnitKind::Branch => "branch",
        }
    }

    /// The kinds a unit of this kind may sit under.
    fn parents(self) -> &'static [&'static str] {
        match self {
            UnitKind::Hq => &[],
            UnitKind::Region => &["hq"],
            UnitKind::Group => &["region"],
            UnitKind::Dealer => &["group", "region"],
            UnitKind::Branch => &["dealer"],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum DealerType {
    /// Sales, service, spare parts and survey: the brand's full-service store.
    #[serde(rename = "4s")]
    FourS,
    #[serde(rename = "service_station")]
    ServiceStation,
    #[serde(rename = "repair_shop")]
    RepairShop,
}

impl DealerType {
    pub fn as_str(self) -> &'static str {
        match self {
            DealerType::FourS => "4s",
            DealerType::ServiceStation => "service_station",
            DealerType::RepairShop => "repair_shop",
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrgUnit {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub kind: String,
    pub dealer_type: Option<String>,
    pub code: String,
    pub name: String,
    pub city: Option<String>,
    /// The number owners call the unit on.
    pub phone: Option<String>,
}

#[derive(FromRow)]
struct UnitRow {
    id: i64,
    parent_id: Option<i64>,
    kind: String,
    dealer_type: Option<String>,
    code: String,
    name: String,
    city: Option<String>,
    phone: Option<String>,
    path: String,
}

impl From<UnitRow> for OrgUnit {
    fn from(r: UnitRow) -> Self {
        OrgUnit {
            id: r.id,
            parent_id: r.parent_id,
            kind: r.kind,
            dealer_type: r.dealer_type,
            code: r.code,
            name: r.name,
            city: r.city,
            phone: r.phone,
        }
    }
}

/// The longest unit code (`BJ-CY-4S`) and unit or city name, in characters.
const UNIT_CODE_MAX: usize = 40;
const UNIT_NAME_MAX: usize = 100;
const UNIT_PHONE_MAX: usize = 30;

const UNIT_COLUMNS: &str = "id, parent_id, kind, dealer_type, code, name, city, phone, path";

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUnit {
    pub parent_id: Option<i64>,
    pub kind: UnitKind,
    /// Required for dealers and branches.
    pub dealer_type: Option<DealerType>,
    /// Unique short code, e.g. `BJ-CY-4S`.
    pub code: String,
    pub name: String,
    pub city: Option<String>,
    /// The number owners call the unit on (shown on their pages).
    #[serde(default)]
    pub phone: Option<String>,
}

/// Creates a unit and sets its materialised path. The caller has checked permission.
pub async fn create_unit(conn: &mut AnyConnection, new: &NewUnit) -> Result<OrgUnit> {
    let mut errors = Vec::new();
    let code = text::required(&mut errors, "code", &new.code, UNIT_CODE_MAX);
    let name = text::required(&mut errors, "name", &new.name, UNIT_NAME_MAX);
    let city = text::optional(&mut errors, "city", new.city.as_deref(), UNIT_NAME_MAX);
    let phone = text::optional(&mut errors, "phone", new.phone.as_deref(), UNIT_PHONE_MAX);
    let is_dealer = matches!(new.kind, UnitKind::Dealer | UnitKind::Branch);
    if is_dealer != new.dealer_type.is_some() {
        errors.push(crate::error::FieldError::new(
            "dealer_type",
            "dealer_type_mismatch",
            "dealers and branches need a dealer_type (4s, service_station, repair_shop); other units have none",
        ));
    }
    let parent_path = match new.parent_id {
        None if new.kind == UnitKind::Hq => {
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM org_units WHERE kind = 'hq'")
                .fetch_one(&mut *conn)
                .await?;
            if n > 0 {
                errors.push(crate::error::FieldError::new(
                    "kind",
                    "hq_exists",
                    "the network already has its HQ",
                ));
            }
            String::from("/")
        }
        None => {
            errors.push(crate::error::FieldError::new(
                "parent_id",
                "required",
                "every unit but HQ has a parent",
            ));
            String::new()
        }
        Some(parent_id) => {
            let parent: Option<UnitRow> = sqlx::query_as(&format!(
                "SELECT {UNIT_COLUMNS} FROM org_units WHERE id = $1"
            ))
            .bind(parent_id)
            .fetch_optional(&mut *conn)
            .await?;
            match parent {
                Some(p) if new.kind.parents().contains(&p.kind.as_str()) => p.path,
                Some(p) => {
                    errors.push(crate::error::FieldError::new(
                        "parent_id",
                        "invalid_parent",
                        format!("a {} cannot sit under a {}", new.kind.as_str(), p.kind),
                    ));
                    String::new()
                }
                None => {
                    errors.push(crate::error::FieldError::new(
                        "parent_id",
                        "unknown_org_unit",
                        "no such parent unit",
                    ));
                    String::new()
                }
            }
        }
    };
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let row: UnitRow = sqlx::query_as(&format!(
        "INSERT INTO org_units (parent_id, kind, dealer_type, code, name, city, phone, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {UNIT_COLUMNS}"
    ))
    .bind(new.parent_id)
    .bind(new.kind.as_str())
    .bind(new.dealer_type.map(DealerType::as_str))
    .bind(code)
    .bind(name)
    .bind(city)
    .bind(phone)
    .bind(clock::now_ms())
    .fetch_one(&mut *conn)
    .await?;
    let path = format!("{parent_path}{}/", row.id);
    sqlx::query("UPDATE org_units SET path = $1 WHERE id = $2")
        .bind(&path)
        .bind(row.id)
        .execute(&mut *conn)
        .await?;
    Ok(row.into())
}

/// The units in the caller's subtree, parents before children.
pub async fn list_units(conn: &mut AnyConnection, caller: &Caller) -> Result<Vec<OrgUnit>> {
    let rows: Vec<UnitRow> = sqlx::query_as(&format!(
        "SELECT {UNIT_COLUMNS} FROM org_units WHERE path LIKE $1 ORDER BY path"
    ))
    .bind(format!("{}%", caller.org_path))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(OrgUnit::from).collect())
}

pub async fn find_by_code(conn: &mut AnyConnection, code: &str) -> Result<Option<OrgUnit>> {
    let row: Option<UnitRow> = sqlx::query_as(&format!(
        "SELECT {UNIT_COLUMNS} FROM org_units WHERE code = $1"
    ))
    .bind(code)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(OrgUnit::from))
}

/// The HQ units (the owners of the plugin catalogue).
pub async fn hq_ids(conn: &mut AnyConnection) -> Result<Vec<i64>> {
    let rows: Vec<(i64,)> = sqlx::query_as("SELECT id FROM org_units WHERE kind = 'hq'")
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// The kind and materialised path of unit `id`.
pub async fn kind_and_path(conn: &mut AnyConnection, id: i64) -> Result<Option<(String, String)>> {
    Ok(
        sqlx::query_as("SELECT kind, path FROM org_units WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// Whom an owner asks about a link: the dealer's name and phone number.
#[derive(Debug, Clone)]
pub struct Contact {
    pub name: String,
    pub phone: Option<String>,
}

/// The name and phone number of unit `id` (what an owner sees of their dealer).
pub async fn contact(conn: &mut AnyConnection, id: i64) -> Result<Contact> {
    let row: Option<(String, Option<String>)> =
        sqlx::query_as("SELECT name, phone FROM org_units WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    row.map(|(name, phone)| Contact { name, phone })
        .ok_or(Error::NotFound { entity: "unit" })
}

/// The name of unit `id` (what an owner sees of their dealer).
pub async fn unit_name(conn: &mut AnyConnection, id: i64) -> Result<String> {
    let row: Option<(String,)> = sqlx::query_as("SELECT name FROM org_units WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|(name,)| name)
        .ok_or(Error::NotFound { entity: "unit" })
}

/// The offset from UTC, in minutes east, that unit `id` keeps its business dates in (the
/// `utc_offset_minutes` it names; China Standard Time, +480, when it names none or is unknown).
pub async fn utc_offset_minutes(conn: &mut AnyConnection, id: i64) -> Result<i32> {
    let row: Option<(Option<i64>,)> =
        sqlx::query_as("SELECT utc_offset_minutes FROM org_units WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row
        .and_then(|(minutes,)| minutes)
        .and_then(|m| i32::try_from(m).ok())
        .unwrap_or(clock::CST_MINUTES))
}

/// The dealer a record created by `caller` belongs to.
///
/// Dealer-level callers always write into their own dealer (naming another one is refused);
/// HQ must name a dealer inside its scope.
pub async fn dealer_for_write(
    conn: &mut AnyConnection,
    caller: &Caller,
    requested: Option<i64>,
) -> Result<i64> {
    if caller.role.is_dealer_role() {
        return match requested {
            Some(id) if id != caller.org_id => Err(Error::invalid(
                "dealer_id",
                "not_your_dealer",
                "dealer staff create records in their own dealer only; leave dealer_id out",
            )),
            _ => Ok(caller.org_id),
        };
    }
    let Some(id) = requested else {
        return Err(Error::invalid(
            "dealer_id",
            "required",
            "name the dealer this record belongs to",
        ));
    };
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT kind, path FROM org_units WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    match row {
        Some((kind, path)) if caller.sees_path(&path) && (kind == "dealer" || kind == "branch") => {
            Ok(id)
        }
        _ => Err(Error::invalid(
            "dealer_id",
            "unknown_dealer",
            "no dealer with that id in your network",
        )),
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Staff {
    pub id: i64,
    pub org_unit_id: i64,
    pub name: String,
    pub role: Role,
    pub position: Option<Position>,
    pub phone: Option<String>,
    /// Where e-mail reaches them (an escalation's page, say).
    pub email: Option<String>,
    pub active: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStaff {
    /// Defaults to the caller's own unit.
    pub org_unit_id: Option<i64>,
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub position: Option<Position>,
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(FromRow)]
struct StaffRow {
    id: i64,
    org_unit_id: i64,
    name: String,
    role: String,
    position: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    active: i64,
}

impl StaffRow {
    fn into_staff(self, caller: Option<&Caller>) -> Staff {
        let masked = caller.is_some_and(Caller::masks_phone);
        Staff {
            id: self.id,
            org_unit_id: self.org_unit_id,
            name: self.name,
            role: Role::parse(&self.role).unwrap_or(Role::Sales),
            position: self.position.as_deref().and_then(Position::parse),
            phone: self.phone.map(|p| {
                if masked {
                    crate::access::masking::phone(&p)
                } else {
                    p
                }
            }),
            email: self.email.map(|e| {
                if masked {
                    crate::access::masking::email(&e)
                } else {
                    e
                }
            }),
            active: self.active != 0,
        }
    }
}

/// The longest staff name, in characters.
const STAFF_NAME_MAX: usize = 64;

const STAFF_COLUMNS: &str = "id, org_unit_id, name, role, position, phone, email, active";

/// Adds a staff member to a unit in the caller's scope, with its audit entry on `conn`.
pub async fn create_staff(
    conn: &mut AnyConnection,
    caller: &Caller,
    new: &NewStaff,
) -> Result<Staff> {
    let unit = new.org_unit_id.unwrap_or(caller.org_id);
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT kind, path FROM org_units WHERE id = $1")
            .bind(unit)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((kind, path)) = row.filter(|(_, path)| caller.sees_path(path)) else {
        return Err(Error::invalid(
            "org_unit_id",
            "unknown_org_unit",
            "no such unit in your network",
        ));
    };
    let _ = path;
    if !new.role.fits_unit(&kind) {
        return Err(Error::invalid(
            "role",
            "role_does_not_fit_unit",
            format!("a {} cannot work at a {kind} unit", new.role.as_str()),
        ));
    }
    let mut errors = Vec::new();
    let name = text::required(&mut errors, "name", &new.name, STAFF_NAME_MAX);
    let email = new.email.as_deref().map(str::trim);
    if email.is_some_and(|e| !looks_like_email(e)) {
        errors.push(FieldError::new(
            "email",
            "invalid_email",
            "an e-mail address is name@domain, without spaces",
        ));
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let row: StaffRow = sqlx::query_as(&format!(
        "INSERT INTO staff (org_unit_id, name, role, position, phone, email, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {STAFF_COLUMNS}"
    ))
    .bind(unit)
    .bind(name)
    .bind(new.role.as_str())
    .bind(new.position.map(Position::as_str))
    .bind(new.phone.as_deref())
    .bind(email)
    .bind(clock::now_ms())
    .fetch_one(&mut *conn)
    .await?;
    let staff = row.into_staff(Some(caller));
    audit::record(
        conn,
        caller,
        Entry::ok("create", "staff", staff.id, staff.org_unit_id),
    )
    .await?;
    Ok(staff)
}

/// A plain check of an e-mail address: one `@` between a name and a dotted domain, no spaces
/// or control characters, at most 254 bytes (what SMTP carries).
fn looks_like_email(e: &str) -> bool {
    let Some((name, domain)) = e.split_once('@') else {
        return false;
    };
    e.len() <= 254
        && !name.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The active staff who hold `position` at unit `unit_id`, or, when none does, at its nearest
/// ancestor where someone does: whom a message to the position reaches (a dealer's service
/// manager at the dealer, its regional service manager at the region above it).
pub async fn holders(
    conn: &mut AnyConnection,
    unit_id: i64,
    position: Position,
) -> Result<Vec<Staff>> {
    let Some((_, path)) = kind_and_path(conn, unit_id).await? else {
        return Ok(Vec::new());
    };
    let columns: Vec<String> = STAFF_COLUMNS
        .split(", ")
        .map(|c| format!("s.{c}"))
        .collect();
    let columns = columns.join(", ");
    let found: Vec<StaffAt> = sqlx::query_as(&format!(
        "SELECT u.path AS unit_path, {columns} FROM staff s JOIN org_units u ON u.id = s.org_unit_id \
         WHERE s.position = $1 AND s.active = 1 AND $2 LIKE u.path || '%' ORDER BY s.id"
    ))
    .bind(position.as_str())
    .bind(&path)
    .fetch_all(&mut *conn)
    .await?;
    let deepest = found.iter().map(|f| f.unit_path.len()).max().unwrap_or(0);
    Ok(found
        .into_iter()
        .filter(|f| f.unit_path.len() == deepest)
        .map(|f| f.staff.into_staff(None))
        .collect())
}

#[derive(FromRow)]
struct StaffAt {
    unit_path: String,
    #[sqlx(flatten)]
    staff: StaffRow,
}

/// The unit whose code is `code`, if any.
pub async fn unit_by_code(conn: &mut AnyConnection, code: &str) -> Result<Option<i64>> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM org_units WHERE code = $1")
        .bind(code)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|(id,)| id))
}

/// How a dealer's marketing messages are paced: no marketing in its quiet hours (local time,
/// minutes after midnight, the window may span midnight) and at most `per_week` to an owner
/// in any 7 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessagingRules {
    pub quiet_start_minute: i64,
    pub quiet_end_minute: i64,
    pub per_week: i64,
    pub utc_offset_minutes: i32,
}

/// Quiet hours from 21:00 to 08:00 and two marketing messages a week, unless a dealer sets
/// its own.
pub const DEFAULT_QUIET_START_MINUTE: i64 = 21 * 60;
pub const DEFAULT_QUIET_END_MINUTE: i64 = 8 * 60;
pub const DEFAULT_MARKETING_PER_WEEK: i64 = 2;

/// Dealer `dealer_id`'s [`MessagingRules`].
pub async fn messaging_rules(conn: &mut AnyConnection, dealer_id: i64) -> Result<MessagingRules> {
    let row: Option<(Option<i64>, Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT quiet_start_minute, quiet_end_minute, marketing_per_week FROM org_units WHERE id = $1",
    )
    .bind(dealer_id)
    .fetch_optional(&mut *conn)
    .await?;
    let (start, end, per_week) = row.unwrap_or_default();
    Ok(MessagingRules {
        quiet_start_minute: start.unwrap_or(DEFAULT_QUIET_START_MINUTE),
        quiet_end_minute: end.unwrap_or(DEFAULT_QUIET_END_MINUTE),
        per_week: per_week.unwrap_or(DEFAULT_MARKETING_PER_WEEK),
        utc_offset_minutes: utc_offset_minutes(conn, dealer_id).await?,
    })
}

/// A dealer's messaging rules as its admin reads and sets them: quiet hours as local `HH:MM`
/// (no marketing from `quiet_start` until `quiet_end`, across midnight when it ends earlier;
/// equal times: no quiet hours) and the most marketing messages an owner gets in 7 days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Messaging {
    pub quiet_start: String,
    pub quiet_end: String,
    pub marketing_per_week: i64,
}

/// The most marketing a dealer may send an owner in a week.
const MARKETING_PER_WEEK_MAX: i64 = 21;

fn hh_mm(minute: i64) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

fn minute_of(errors: &mut Vec<FieldError>, field: &str, value: &str) -> i64 {
    let parsed = value.trim().split_once(':').and_then(|(h, m)| {
        let (h, m) = (h.parse::<i64>().ok()?, m.parse::<i64>().ok()?);
        ((0..24).contains(&h) && (0..60).contains(&m) && value.trim().len() == 5)
            .then_some(h * 60 + m)
    });
    parsed.unwrap_or_else(|| {
        errors.push(FieldError::new(
            field,
            "invalid_time",
            "a local time as HH:MM, 00:00 to 23:59",
        ));
        0
    })
}

/// The dealer or branch `unit_id` in the caller's view, else 404.
async fn dealer_in_view(conn: &mut AnyConnection, caller: &Caller, unit_id: i64) -> Result<()> {
    match kind_and_path(conn, unit_id).await? {
        Some((kind, path)) if caller.sees_path(&path) && (kind == "dealer" || kind == "branch") => {
            Ok(())
        }
        _ => Err(Error::NotFound { entity: "unit" }),
    }
}

/// Dealer `unit_id`'s messaging rules (the defaults where it set none).
pub async fn messaging(
    conn: &mut AnyConnection,
    caller: &Caller,
    unit_id: i64,
) -> Result<Messaging> {
    dealer_in_view(conn, caller, unit_id).await?;
    let rules = messaging_rules(conn, unit_id).await?;
    Ok(Messaging {
        quiet_start: hh_mm(rules.quiet_start_minute),
        quiet_end: hh_mm(rules.quiet_end_minute),
        marketing_per_week: rules.per_week,
    })
}

/// Sets dealer `unit_id`'s messaging rules, with its audit entry on `conn`.
pub async fn set_messaging(
    conn: &mut AnyConnection,
    caller: &Caller,
    unit_id: i64,
    given: &Messaging,
) -> Result<Messaging> {
    dealer_in_view(conn, caller, unit_id).await?;
    let mut errors = Vec::new();
    let start = minute_of(&mut errors, "quiet_start", &given.quiet_start);
    let end = minute_of(&mut errors, "quiet_end", &given.quiet_end);
    if !(0..=MARKETING_PER_WEEK_MAX).contains(&given.marketing_per_week) {
        errors.push(FieldError::new(
            "marketing_per_week",
            "out_of_range",
            format!("0 to {MARKETING_PER_WEEK_MAX} messages a week"),
        ));
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    sqlx::query(
        "UPDATE org_units SET quiet_start_minute = $1, quiet_end_minute = $2, \
         marketing_per_week = $3 WHERE id = $4",
    )
    .bind(start)
    .bind(end)
    .bind(given.marketing_per_week)
    .bind(unit_id)
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        caller,
        Entry::ok("set_messaging", "org_unit", unit_id, unit_id).with_detail(serde_json::json!({
            "quiet_start": hh_mm(start), "quiet_end": hh_mm(end),
            "marketing_per_week": given.marketing_per_week,
        })),
    )
    .await?;
    messaging(conn, caller, unit_id).await
}

/// One staff member, unmasked, for the domain's own checks (who may approve a step, who is
/// credited with a sale). Scope is the caller's business.
pub async fn staff_member(conn: &mut AnyConnection, staff_id: i64) -> Result<Staff> {
    let row: Option<StaffRow> =
        sqlx::query_as(&format!("SELECT {STAFF_COLUMNS} FROM staff WHERE id = $1"))
            .bind(staff_id)
            .fetch_optional(&mut *conn)
            .await?;
    row.map(|r| r.into_staff(None))
        .ok_or(Error::NotFound { entity: "staff" })
}

pub async fn list_staff(conn: &mut AnyConnection, caller: &Caller) -> Result<Vec<Staff>> {
    let rows: Vec<StaffRow> = sqlx::query_as(&format!(
        "SELECT {STAFF_COLUMNS} FROM staff WHERE org_unit_id IN \
         (SELECT id FROM org_units WHERE path LIKE $1) ORDER BY id"
    ))
    .bind(format!("{}%", caller.org_path))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| r.into_staff(Some(caller)))
        .collect())
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// When on, a customer's 360 view also shows what other dealers of the network recorded
    /// about the same person (same phone) or the same vehicle (same VIN).
    pub share_history_across_dealers: bool,
}

pub async fn policy(conn: &mut AnyConnection) -> Result<Policy> {
    let (share,): (i64,) =
        sqlx::query_as("SELECT share_history_across_dealers FROM network_policy WHERE id = 1")
            .fetch_one(&mut *conn)
            .await?;
    Ok(Policy {
        share_history_across_dealers: share != 0,
    })
}

pub async fn set_policy(conn: &mut AnyConnection, policy: &Policy) -> Result<Policy> {
    sqlx::query(
        "UPDATE network_policy SET share_history_across_dealers = $1, updated_at = $2 WHERE id = 1",
    )
    .bind(i64::from(policy.share_history_across_dealers))
    .bind(clock::now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(policy.clone())
}

/// Adds a unit of the network for the caller (who has checked permission), with its audit
/// entry on `conn`. [`create_unit`] alone is for the seeder.
pub async fn add_unit(conn: &mut AnyConnection, caller: &Caller, new: &NewUnit) -> Result<OrgUnit> {
    let unit = create_unit(conn, new).await?;
    audit::record(
        conn,
        caller,
        Entry::ok("create", "org_unit", unit.id, unit.id),
    )
    .await?;
    Ok(unit)
}

/// Sets the network-wide policy for the caller (who has checked permission), with its audit
/// entry on `conn`. [`set_policy`] alone is for the seeder.
pub async fn change_policy(
    conn: &mut AnyConnection,
    caller: &Caller,
    policy: &Policy,
) -> Result<Policy> {
    let policy = set_policy(conn, policy).await?;
    audit::record(
        conn,
        caller,
        Entry::ok("update", "network_policy", 1, caller.org_id)
            .with_detail(serde_json::to_value(&policy).unwrap_or_default()),
    )
    .await?;
    Ok(policy)
}

/// Issues an API key for `role` at unit `org_unit_id`, acting as staff member `staff_id` (who
/// must work at that unit), with its audit entry on `conn`. `by` is the key holder who asked
/// (who has checked they may), or [`Actor::COMMAND_LINE`].
/// [`keys::create`] alone is for the seeder.
pub async fn create_key(
    conn: &mut AnyConnection,
    by: Actor<'_>,
    role: Role,
    org_unit_id: i64,
    staff_id: Option<i64>,
    label: &str,
) -> Result<NewApiKey> {
    if let Some(staff_id) = staff_id {
        match staff_member(conn, staff_id).await {
            Ok(staff) if staff.org_unit_id == org_unit_id => {}
            Ok(_) | Err(Error::NotFound { .. }) => {
                return Err(Error::invalid(
                    "staff_id",
                    "unknown_staff",
                    format!("no staff member {staff_id} works at unit {org_unit_id}, the key's"),
                ));
            }
            Err(e) => return Err(e),
        }
    }
    let created = keys::create(conn, role, org_unit_id, staff_id, label).await?;
    audit::record_as(
        conn,
        &by,
        Entry::ok("create", "api_key", created.info.id, org_unit_id).with_detail(
            serde_json::json!({ "role": role.as_str(), "prefix": created.info.prefix }),
        ),
    )
    .await?;
    Ok(created)
}

/// Revokes a key by id or prefix, with its audit entry on `conn`: within the subtree of a key
/// holder `by`, or anywhere for the operator's command line.
pub async fn revoke_key(
    conn: &mut AnyConnection,
    by: Actor<'_>,
    id_or_prefix: &str,
) -> Result<ApiKeyInfo> {
    let within = match by {
        Actor::Staff(caller) => Some(caller),
        Actor::System(_) => None,
        Actor::Owner { .. } => {
            return Err(Error::Forbidden(
                "an owner's link cannot revoke keys".into(),
            ));
        }
    };
    let revoked = keys::revoke(conn, id_or_prefix, within).await?;
    audit::record_as(
        conn,
        &by,
        Entry::ok("revoke", "api_key", revoked.id, revoked.org_unit_id),
    )
    .await?;
    Ok(revoked)
}

/// A staff member's unit and its path, for the scope check of who may touch them.
async fn staff_in_scope(conn: &mut AnyConnection, caller: &Caller, staff_id: i64) -> Result<Staff> {
    let found: Option<(i64, String)> = sqlx::query_as(
        "SELECT s.org_unit_id, o.path FROM staff s JOIN org_units o ON o.id = s.org_unit_id \
         WHERE s.id = $1",
    )
    .bind(staff_id)
    .fetch_optional(&mut *conn)
    .await?;
    crate::access::in_scope(caller, "staff", staff_id, found)?;
    staff_member(conn, staff_id).await
}

/// A login change asked for: a checked username and, when a password is given, its hash
/// (computed here, before any transaction, since argon2id is slow on purpose).
pub struct LoginChange {
    username: String,
    password_hash: Option<String>,
}

impl LoginChange {
    pub async fn new(username: &str, password: Option<&str>) -> Result<LoginChange> {
        let username = logins::check_username(username)?;
        let password_hash = match password {
            Some(password) => {
                logins::check_password(password, &username)?;
                Some(logins::hash_password(password).await)
            }
            None => None,
        };
        Ok(LoginChange {
            username,
            password_hash,
        })
    }
}

/// The login of a staff member in the caller's scope (`None`: they have none).
pub async fn login_of(
    conn: &mut AnyConnection,
    caller: &Caller,
    staff_id: i64,
) -> Result<Option<StaffLogin>> {
    staff_in_scope(conn, caller, staff_id).await?;
    logins::find(conn, staff_id).await
}

/// Creates or changes the login of staff member `staff_id` — in the subtree of a key holder
/// `by` (who has checked they may manage keys), or anyone for the operator's command line —
/// with its audit entry on `conn`. A new password ends the login's sessions.
pub async fn set_login(
    conn: &mut AnyConnection,
    by: Actor<'_>,
    staff_id: i64,
    change: &LoginChange,
) -> Result<StaffLogin> {
    let staff = match by {
        Actor::Staff(caller) => staff_in_scope(conn, caller, staff_id).await?,
        Actor::System(_) => staff_member(conn, staff_id).await?,
        Actor::Owner { .. } => {
            return Err(Error::Forbidden(
                "an owner's link cannot manage logins".into(),
            ));
        }
    };
    let login = logins::set(
        conn,
        staff.id,
        staff.role,
        staff.org_unit_id,
        &change.username,
        change.password_hash.as_deref(),
    )
    .await?;
    audit::record_as(
        conn,
        &by,
        Entry::ok("set_login", "staff", staff.id, staff.org_unit_id)
            .with_detail(serde_json::json!({ "password_changed": change.password_hash.is_some() })),
    )
    .await?;
    Ok(login)
}

/// Disables the login of staff member `staff_id` in the caller's scope and ends its sessions,
/// with its audit entry on `conn`.
pub async fn disable_login(
    conn: &mut AnyConnection,
    caller: &Caller,
    staff_id: i64,
) -> Result<StaffLogin> {
    let staff = staff_in_scope(conn, caller, staff_id).await?;
    let login = logins::disable(conn, staff_id).await?;
    audit::record(
        conn,
        caller,
        Entry::ok("disable_login", "staff", staff.id, staff.org_unit_id),
    )
    .await?;
    Ok(login)
}

/// Signs a staff member in ([`logins::sign_in`]) and audits it as theirs.
pub async fn sign_in(
    db: &Db,
    login: &str,
    password: &str,
    address: &str,
) -> Result<(NewSession, SessionCaller)> {
    let session = logins::sign_in(db, login, password, address).await?;
    let mut conn = db.pool().acquire().await?;
    let signed_in = logins::authenticate(&mut conn, &session.token).await?;
    audit::record(
        &mut conn,
        &signed_in.caller,
        Entry::ok(
            "sign_in",
            "staff",
            session.staff_id,
            signed_in.caller.org_id,
        ),
    )
    .await?;
    Ok((session, signed_in))
}

/// Changes the signed-in person's own password (the current one checked; their other sessions
/// end), with its audit entry.
pub async fn change_own_password(
    db: &Db,
    session: &SessionCaller,
    current: &str,
    new: &str,
) -> Result<()> {
    let mut conn = db.pool().acquire().await?;
    let staff_id = session.caller.staff_id.unwrap_or_default();
    let username = logins::find(&mut conn, staff_id)
        .await?
        .ok_or(Error::NotFound { entity: "login" })?
        .username;
    drop(conn);
    logins::check_password(new, &username)?;
    logins::check_current(db, staff_id, current).await?;
    let hash = logins::hash_password(new).await;
    let mut tx = db.begin_write().await?;
    logins::store_own_password(&mut tx, session, &hash).await?;
    audit::record(
        &mut tx,
        &session.caller,
        Entry::ok("change_password", "staff", staff_id, session.caller.org_id),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
