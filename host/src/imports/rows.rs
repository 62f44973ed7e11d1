//! One row of an export made into the record it describes, through the same checks as the
//! API's create (`customers::check_new`, `vehicles::check_new`, the repair orders' and mileage
//! readings' rules), and found again by its natural key: a customer by external id or phone, a
//! vehicle by VIN, a past visit by VIN, date and repair order number (or the row's digest).
//! Only the cells' own syntax (a date, a number, 男 / 女) is read here.

use chrono::NaiveDate;
use serde_json::Map;
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;

use super::mapping::{Columns, Kind};
use crate::audit::Actor;
use crate::clock;
use crate::custom_fields::Writer;
use crate::customers::{self, Gender, NewCustomer, PhoneInput, SourceChannel, identity};
use crate::error::{Error, FieldError, Result};
use crate::service::repair_orders::{self, PastVisit};
use crate::vehicles::{self, NewVehicle, mileage};

/// What became of a row.
#[derive(Debug)]
pub enum Outcome {
    /// Stored (or, in a dry run, would be).
    Created,
    /// Its record is there already (its natural key was met): nothing changed.
    Unchanged,
    /// Refused, with every problem found; nothing stored.
    Refused(Vec<FieldError>),
}

/// What every row of a job shares.
pub struct Context<'a> {
    pub job_id: i64,
    pub dealer_id: i64,
    pub kind: Kind,
    pub columns: &'a Columns,
    pub dry_run: bool,
    /// The dealer's offset from UTC, for the dates of past visits.
    pub utc_offset_minutes: i32,
    pub actor: Actor<'a>,
}

/// Imports one row (its `cells`) on `conn`, inside the batch's transaction.
pub async fn import(
    conn: &mut AnyConnection,
    ctx: &Context<'_>,
    cells: &[String],
) -> Result<Outcome> {
    let outcome = match ctx.kind {
        Kind::Customers => customer(conn, ctx, cells).await,
        Kind::Vehicles => vehicle(conn, ctx, cells).await,
        Kind::ServiceHistory => past_visit(conn, ctx, cells).await,
    };
    match outcome {
        Err(Error::Invalid(errors)) => Ok(Outcome::Refused(errors)),
        other => other,
    }
}

/// A record's field name as the import calls it (`phones[0].number` is `phone`).
fn import_field(kind: Kind, field: &str) -> String {
    let base = field.split(['[', '.']).next().unwrap_or(field);
    let renamed = match (kind, base) {
        (Kind::Customers, "phones") => "phone",
        (Kind::Vehicles, "owner_id") => "owner",
        (Kind::ServiceHistory, "complaint_code") => "type",
        (Kind::ServiceHistory, "complaint") => "description",
        (Kind::ServiceHistory, "labour_fen") => "labour_amount",
        (Kind::ServiceHistory, "parts_fen") => "parts_amount",
        (Kind::ServiceHistory, "km") => "mileage_km",
        (Kind::ServiceHistory, "read_at") => "date",
        _ if field.starts_with("custom_fields.") => return field.to_owned(),
        _ => base,
    };
    renamed.to_owned()
}

/// The record's problems merged into the cells' own, in the import's field names.
fn refused(kind: Kind, mut errors: Vec<FieldError>, record: Error) -> Result<Outcome> {
    match record {
        Error::Invalid(found) => {
            errors.extend(found.into_iter().map(|mut e| {
                e.field = import_field(kind, &e.field);
                e
            }));
            Ok(Outcome::Refused(errors))
        }
        other => Err(other),
    }
}

/// A list in one cell: `a;b`, `a、b`, `a，b`, `a|b`, `a/b`.
fn list(cell: Option<&str>) -> Vec<String> {
    cell.map(|c| {
        c.split([';', '；', '、', '，', '|', '/'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

/// A date as exports write it: 2024-03-15, 2024/3/15, 2024.03.15, 20240315 (a time after it
/// is ignored).
pub(crate) fn date(s: &str) -> Option<NaiveDate> {
    let day = s.split([' ', 'T']).next().unwrap_or(s);
    ["%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d", "%Y年%m月%d日"]
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(day, f).ok())
}

fn parse_or_push<T>(
    errors: &mut Vec<FieldError>,
    field: &str,
    cell: Option<&str>,
    parse: impl Fn(&str) -> Option<T>,
    code: &str,
    expected: &str,
) -> Option<T> {
    let cell = cell?;
    let parsed = parse(cell);
    if parsed.is_none() {
        errors.push(FieldError::new(
            field,
            code,
            format!("{cell:?} is not {expected}"),
        ));
    }
    parsed
}

fn gender(s: &str) -> Option<Gender> {
    match s.to_lowercase().as_str() {
        "男" | "m" | "male" | "先生" => Some(Gender::Male),
        "女" | "f" | "female" | "女士" => Some(Gender::Female),
        _ => None,
    }
}

fn yes_no(s: &str) -> Option<bool> {
    match s.to_lowercase().as_str() {
        "是" | "同意" | "y" | "yes" | "true" | "1" => Some(true),
        "否" | "不同意" | "n" | "no" | "false" | "0" => Some(false),
        _ => None,
    }
}

fn channel(s: &str) -> Option<SourceChannel> {
    let snake = match s.to_lowercase().as_str() {
        "网络" | "网络广告" | "线上" | "online" => "online_ad".to_owned(),
        "车展" => "auto_show".to_owned(),
        "到店" | "自然到店" | "展厅" => "walk_in".to_owned(),
        "转介绍" | "推荐" | "老客户推荐" => "referral".to_owned(),
        "热线" | "电话" | "400" => "hotline".to_owned(),
        "微信" => "wechat".to_owned(),
        "其他" => "other".to_owned(),
        other => other.to_owned(),
    };
    serde_json::from_value(serde_json::Value::String(snake)).ok()
}

/// A whole number, with thousands separators and a unit (`km`, `公里`) allowed.
fn whole(s: &str) -> Option<i64> {
    let digits: String = s
        .trim_end_matches(|c: char| c.is_alphabetic())
        .chars()
        .filter(|c| !matches!(c, ',' | ' '))
        .collect();
    digits.parse().ok()
}

/// An amount in yuan as exports write it (`1,280.50`, `¥1280.5`, `1280元`) in fen: the
/// grouping and the currency marks dropped, then [`dealer_money::parse_yuan`].
fn yuan_to_fen(s: &str) -> Option<i64> {
    let cleaned: String = s
        .chars()
        .filter(|c| !matches!(c, ',' | ' ' | '¥' | '￥' | '元'))
        .collect();
    dealer_money::parse_yuan(&cleaned).ok()
}

async fn known_key(conn: &mut AnyConnection, ctx: &Context<'_>, key: &str) -> Result<Option<i64>> {
    super::find_key(conn, ctx.dealer_id, ctx.kind, key).await
}

async fn customer(
    conn: &mut AnyConnection,
    ctx: &Context<'_>,
    cells: &[String],
) -> Result<Outcome> {
    let c = ctx.columns;
    let mut errors = Vec::new();
    let phones: Vec<PhoneInput> = list(c.get(cells, "phone"))
        .into_iter()
        .chain(list(c.get(cells, "phone2")))
        .map(|number| PhoneInput {
            number,
            label: None,
        })
        .collect();
    let external_id = c.get(cells, "external_id");
    if phones.is_empty() && external_id.is_none() {
        errors.push(FieldError::new(
            "phone",
            "required",
            "a customer is found again by phone or external id: the row needs one",
        ));
    }
    let new = NewCustomer {
        dealer_id: Some(ctx.dealer_id),
        name: c.get(cells, "name").unwrap_or_default().to_owned(),
        gender: parse_or_push(
            &mut errors,
            "gender",
            c.get(cells, "gender"),
            gender,
            "invalid_gender",
            "男 or 女",
        ),
        birthday: parse_or_push(
            &mut errors,
            "birthday",
            c.get(cells, "birthday"),
            date,
            "invalid_date",
            "a date",
        ),
        id_number: c.get(cells, "id_number").map(str::to_owned),
        phones,
        tags: list(c.get(cells, "tags")),
        member_tier: c.get(cells, "member_tier").map(str::to_owned),
        source_channel: parse_or_push(
            &mut errors,
            "source_channel",
            c.get(cells, "source_channel"),
            channel,
            "invalid_channel",
            "a source channel (online_ad, auto_show, walk_in, app, referral, hotline, wechat, other)",
        ),
        referrer_id: None,
        marketing_consent: parse_or_push(
            &mut errors,
            "marketing_consent",
            c.get(cells, "marketing_consent"),
            yes_no,
            "invalid_flag",
            "是 or 否",
        )
        .unwrap_or(false),
        household: Vec::new(),
        custom_fields: Map::new(),
    };
    let checked = match customers::check_new(conn, ctx.dealer_id, new, Writer::FollowUp).await {
        Ok(checked) if errors.is_empty() => checked,
        Ok(_) => return Ok(Outcome::Refused(errors)),
        Err(e) => return refused(ctx.kind, errors, e),
    };
    let key = external_id.map(|id| format!("external:{id}"));
    let mut existing = match &key {
        Some(key) => known_key(conn, ctx, key).await?,
        None => None,
    };
    if existing.is_none()
        && let Some(phone) = checked.phones().next()
    {
        existing = customers::find_by_phone(conn, ctx.dealer_id, phone).await?;
    }
    if let Some(id) = existing {
        if let Some(key) = &key {
            super::remember_key(conn, ctx, key, id).await?;
        }
        return Ok(Outcome::Unchanged);
    }
    if !ctx.dry_run {
        let id = customers::insert(conn, ctx.dealer_id, &checked).await?;
        if let Some(key) = &key {
            super::remember_key(conn, ctx, key, id).await?;
        }
    }
    Ok(Outcome::Created)
}

async fn vehicle(conn: &mut AnyConnection, ctx: &Context<'_>, cells: &[String]) -> Result<Outcome> {
    let c = ctx.columns;
    let mut errors = Vec::new();
    let mut owner_id = None;
    if let Some(external) = c.get(cells, "owner_external_id") {
        let key = format!("external:{external}");
        owner_id = super::find_key(conn, ctx.dealer_id, Kind::Customers, &key).await?;
        if owner_id.is_none() && c.get(cells, "owner_phone").is_none() {
            errors.push(FieldError::new(
                "owner_external_id",
                "unknown_customer",
                format!(
                    "no customer imported with external id {external:?}; import the customers first"
                ),
            ));
        }
    }
    if owner_id.is_none()
        && let Some(phone) = c.get(cells, "owner_phone")
    {
        match identity::parse_phone(phone) {
            Ok(phone) => {
                owner_id = customers::find_by_phone(conn, ctx.dealer_id, &phone).await?;
                if owner_id.is_none() {
                    errors.push(FieldError::new(
                        "owner_phone",
                        "unknown_customer",
                        "no customer of this dealer has this phone; import the customers first",
                    ));
                }
            }
            Err(message) => errors.push(FieldError::new("owner_phone", "invalid_phone", message)),
        }
    }
    let text = |field: &str| c.get(cells, field).map(str::to_owned);
    let new = NewVehicle {
        dealer_id: Some(ctx.dealer_id),
        vin: text("vin").unwrap_or_default(),
        plate: text("plate"),
        brand: text("brand").unwrap_or_default(),
        model: text("model").unwrap_or_default(),
        trim: text("trim"),
        color: text("color"),
        model_year: parse_or_push(
            &mut errors,
            "model_year",
            c.get(cells, "model_year"),
            whole,
            "invalid_year",
            "a year",
        ),
        purchase_date: parse_or_push(
            &mut errors,
            "purchase_date",
            c.get(cells, "purchase_date"),
            date,
            "invalid_date",
            "a date",
        ),
        insurer: text("insurer"),
        insurance_expiry: parse_or_push(
            &mut errors,
            "insurance_expiry",
            c.get(cells, "insurance_expiry"),
            date,
            "invalid_date",
            "a date",
        ),
        components: Vec::new(),
        owner_id,
        custom_fields: Map::new(),
    };
    let checked = match vehicles::check_new(conn, ctx.dealer_id, new, Writer::FollowUp).await {
        Ok(checked) if errors.is_empty() => checked,
        Ok(_) => return Ok(Outcome::Refused(errors)),
        Err(e) => return refused(ctx.kind, errors, e),
    };
    if vehicles::find_by_vin(conn, ctx.dealer_id, checked.vin())
        .await?
        .is_some()
    {
        return Ok(Outcome::Unchanged);
    }
    if !ctx.dry_run {
        vehicles::insert(conn, ctx.dealer_id, &checked).await?;
    }
    Ok(Outcome::Created)
}

/// The amounts of a past visit in fen: labour and parts as given, or the total alone (as
/// labour) when the export does not split it.
fn amounts(c: &Columns, cells: &[String], errors: &mut Vec<FieldError>) -> (i64, i64) {
    let mut money = |field: &str| {
        parse_or_push(
            errors,
            field,
            c.get(cells, field),
            yuan_to_fen,
            "invalid_amount",
            "an amount in yuan (at most 2 decimals)",
        )
    };
    let (total, labour, parts) = (
        money("amount"),
        money("labour_amount"),
        money("parts_amount"),
    );
    match (total, labour, parts) {
        (total, None, None) => (total.unwrap_or(0), 0),
        (Some(total), labour, parts) if total != labour.unwrap_or(0) + parts.unwrap_or(0) => {
            errors.push(FieldError::new(
                "amount",
                "amount_mismatch",
                format!(
                    "the amount {total} fen is not labour plus parts ({} fen)",
                    labour.unwrap_or(0) + parts.unwrap_or(0)
                ),
            ));
            (0, 0)
        }
        (_, labour, parts) => (labour.unwrap_or(0), parts.unwrap_or(0)),
    }
}

/// What a DMS calls the kind of a visit, as the complaint code reminders and comebacks read.
fn visit_kind(s: Option<&str>) -> String {
    match s {
        None => "repair".to_owned(),
        Some("保养" | "常规保养" | "定期保养" | "首保" | "首次保养") => {
            "maintenance".to_owned()
        }
        Some("维修" | "一般维修" | "机修") => "repair".to_owned(),
        Some("保修" | "索赔" | "三包") => "warranty".to_owned(),
        Some(other) => other.to_lowercase(),
    }
}

async fn past_visit(
    conn: &mut AnyConnection,
    ctx: &Context<'_>,
    cells: &[String],
) -> Result<Outcome> {
    let c = ctx.columns;
    let mut errors = Vec::new();
    let mut vehicle = None;
    match vehicles::identity::parse_vin(c.get(cells, "vin").unwrap_or_default()) {
        Ok(vin) => match vehicles::find_by_vin(conn, ctx.dealer_id, &vin).await? {
            Some(id) => match vehicles::current_owner(conn, id).await? {
                Some(owner) => vehicle = Some((vin, id, owner)),
                None => errors.push(FieldError::new(
                    "vin",
                    "no_owner",
                    "the vehicle has no owner; import the vehicles with their owner first",
                )),
            },
            None => errors.push(FieldError::new(
                "vin",
                "unknown_vehicle",
                "this dealer has no vehicle with this VIN; import the vehicles first",
            )),
        },
        Err(message) => errors.push(FieldError::new("vin", "invalid_vin", message)),
    }
    let day = match c.get(cells, "date") {
        None => {
            errors.push(FieldError::new("date", "required", "the date of the visit"));
            None
        }
        Some(cell) => match date(cell) {
            Some(d) if d > clock::today(ctx.utc_offset_minutes) => {
                errors.push(FieldError::new(
                    "date",
                    "in_future",
                    "a past visit is not in the future",
                ));
                None
            }
            Some(d) => Some(d),
            None => {
                errors.push(FieldError::new(
                    "date",
                    "invalid_date",
                    format!("{cell:?} is not a date"),
                ));
                None
            }
        },
    };
    let mileage_km = parse_or_push(
        &mut errors,
        "mileage_km",
        c.get(cells, "mileage_km"),
        whole,
        "invalid_km",
        "a whole number of km",
    );
    let (labour_fen, parts_fen) = amounts(c, cells, &mut errors);
    let mut visit = PastVisit {
        dealer_id: ctx.dealer_id,
        customer_id: vehicle.as_ref().map_or(0, |v| v.2),
        vehicle_id: vehicle.as_ref().map_or(0, |v| v.1),
        // Noon of the local day: its business date is the day, whatever the offset.
        at: day.map_or(0, |d| {
            clock::day_start_ms(d, ctx.utc_offset_minutes) + 12 * 3_600_000
        }),
        mileage_km,
        complaint_code: visit_kind(c.get(cells, "type")),
        complaint: c.get(cells, "description").unwrap_or_default().to_owned(),
        labour_fen,
        parts_fen,
    };
    let mut record_errors = Vec::new();
    repair_orders::check_past(&mut visit, &mut record_errors);
    if !record_errors.is_empty() {
        return refused(ctx.kind, errors, Error::Invalid(record_errors));
    }
    let (Some((vin, vehicle_id, _)), Some(day), true) = (vehicle, day, errors.is_empty()) else {
        return Ok(Outcome::Refused(errors));
    };
    let key = match c.get(cells, "ro_number") {
        Some(ro) => format!("{vin}|{day}|{ro}"),
        None => {
            let mut digest = Sha256::new();
            for cell in cells {
                digest.update(cell.trim().as_bytes());
                digest.update([0x1f]);
            }
            format!("{vin}|{day}|#{}", hex::encode(&digest.finalize()[..12]))
        }
    };
    if known_key(conn, ctx, &key).await?.is_some() {
        return Ok(Outcome::Unchanged);
    }
    if let Some(km) = visit.mileage_km {
        let reading = if ctx.dry_run {
            mileage::check(conn, vehicle_id, km, visit.at).await
        } else {
            mileage::record(conn, vehicle_id, km, visit.at, "import")
                .await
                .map(drop)
        };
        if let Err(e) = reading {
            return refused(ctx.kind, errors, e);
        }
    }
    if !ctx.dry_run {
        let id = repair_orders::record_past(conn, ctx.actor, &visit).await?;
        super::remember_key(conn, ctx, &key, id).await?;
    }
    Ok(Outcome::Created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_become_fen_exactly() {
        assert_eq!(yuan_to_fen("1,280.50"), Some(128_050));
        assert_eq!(yuan_to_fen("¥1280.5"), Some(128_050));
        assert_eq!(yuan_to_fen("380元"), Some(38_000));
        assert_eq!(yuan_to_fen("0.07"), Some(7));
        assert_eq!(yuan_to_fen("12.345"), None);
        assert_eq!(yuan_to_fen("abc"), None);
    }

    #[test]
    fn dates_numbers_and_kinds_read_as_exports_write_them() {
        let day = NaiveDate::from_ymd_opt(2024, 3, 5).unwrap();
        for s in [
            "2024-03-05",
            "2024/3/5",
            "2024.03.05",
            "20240305",
            "2024-03-05 09:30:00",
            "2024年3月5日",
        ] {
            assert_eq!(date(s), Some(day), "{s}");
        }
        assert_eq!(whole("12,345 km"), Some(12_345));
        assert_eq!(whole("8800公里"), Some(8_800));
        assert_eq!(visit_kind(Some("首保")), "maintenance");
        assert_eq!(visit_kind(Some("钣喷")), "钣喷");
        assert_eq!(import_field(Kind::Customers, "phones[1].number"), "phone");
        assert_eq!(import_field(Kind::ServiceHistory, "km"), "mileage_km");
    }
}
