//! Vehicles: identity (VIN, plate), specification, insurance, component batches, the people who
//! own and drive them over time, and mileage readings. Owns `vehicles`, `vehicle_components`,
//! `vehicle_people` and (in [`mileage`]) `mileage_readings`.

/// The VIN and plate rules, shared with plugins through the SDK.
pub use dealer_identity as identity;
pub mod mileage;

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::{AnyConnection, FromRow};
use utoipa::{IntoParams, ToSchema};

use crate::access::Caller;
use crate::audit::{self, Entry, ReadLog};
use crate::clock;
use crate::custom_fields::{self, Entity, Writer};
use crate::db::{Param, Sql};
use crate::error::{Error, FieldError, Result};
use crate::text;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// e.g. brake_caliper, battery_pack.
    pub component: String,
    /// Production batch, e.g. BC-2023-07.
    pub batch: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PersonRole {
    Owner,
    MainDriver,
    Family,
}

impl PersonRole {
    fn as_str(self) -> &'static str {
        match self {
            PersonRole::Owner => "owner",
            PersonRole::MainDriver => "main_driver",
            PersonRole::Family => "family",
        }
    }

    fn parse(s: &str) -> PersonRole {
        match s {
            "owner" => PersonRole::Owner,
            "main_driver" => PersonRole::MainDriver,
            _ => PersonRole::Family,
        }
    }
}

/// A person's link to a vehicle; `until` is set once the link ended (e.g. the car was sold).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VehiclePerson {
    pub customer_id: i64,
    pub role: PersonRole,
    pub since: chrono::DateTime<chrono::Utc>,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Vehicle {
    pub id: i64,
    pub dealer_id: i64,
    pub vin: String,
    /// As people write it, e.g. 京A·12345.
    pub plate: Option<String>,
    pub brand: String,
    pub model: String,
    pub trim: Option<String>,
    pub color: Option<String>,
    pub model_year: Option<i64>,
    pub purchase_date: Option<NaiveDate>,
    pub insurer: Option<String>,
    pub insurance_expiry: Option<NaiveDate>,
    pub components: Vec<Component>,
    /// The people linked to it now.
    pub people: Vec<VehiclePerson>,
    pub latest_mileage_km: Option<i64>,
    /// Estimated from the mileage readings (or from the purchase date and one reading).
    pub estimated_daily_km: Option<f64>,
    pub custom_fields: Map<String, Value>,
    pub version: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl crate::model::Versioned for Vehicle {
    fn version(&self) -> i64 {
        self.version
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVehicle {
    /// HQ names the dealer; dealer staff leave it out.
    pub dealer_id: Option<i64>,
    /// 17 characters, check digit in position 9.
    pub vin: String,
    /// e.g. 京A·12345 or 粤BD12345 (new energy).
    pub plate: Option<String>,
    pub brand: String,
    pub model: String,
    pub trim: Option<String>,
    pub color: Option<String>,
    pub model_year: Option<i64>,
    pub purchase_date: Option<NaiveDate>,
    pub insurer: Option<String>,
    pub insurance_expiry: Option<NaiveDate>,
    #[serde(default)]
    pub components: Vec<Component>,
    /// A customer of the same dealer who owns it from now on.
    pub owner_id: Option<i64>,
    #[serde(default)]
    pub custom_fields: Map<String, Value>,
}

/// Fields to change (the VIN never changes); `null` clears a nullable field; `components`
/// replaces the list; `custom_fields` merges by key.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VehiclePatch {
    #[serde(default, deserialize_with = "crate::model::nullable")]
    pub plate: Option<Option<String>>,
    pub brand: Option<String>,
    pub model: Option<String>,
    #[serde(default, deserialize_with = "crate::model::nullable")]
    pub trim: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::model::nullable")]
    pub color: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::model::nullable")]
    pub model_year: Option<Option<i64>>,
    #[serde(default, deserialize_with = "crate::model::nullable")]
    pub purchase_date: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "crate::model::nullable")]
    pub insurer: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::model::nullable")]
    pub insurance_expiry: Option<Option<NaiveDate>>,
    pub components: Option<Vec<Component>>,
    pub custom_fields: Option<Map<String, Value>>,
}

impl VehiclePatch {
    /// The names of the fields this patch sets (for the audit log).
    pub fn fields(&self) -> Vec<&'static str> {
        [
            ("plate", self.plate.is_some()),
            ("brand", self.brand.is_some()),
            ("model", self.model.is_some()),
            ("trim", self.trim.is_some()),
            ("color", self.color.is_some()),
            ("model_year", self.model_year.is_some()),
            ("purchase_date", self.purchase_date.is_some()),
            ("insurer", self.insurer.is_some()),
            ("insurance_expiry", self.insurance_expiry.is_some()),
            ("components", self.components.is_some()),
            ("custom_fields", self.custom_fields.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

/// Longest insurer's name, in characters.
pub(crate) const INSURER_MAX: usize = 60;

/// Trims `components` in place and pushes a problem for each one that names no component or
/// batch, or a component already listed: the one rule of a vehicle's component batches,
/// also for those a sales order will hand over.
pub(crate) fn check_components(errors: &mut Vec<FieldError>, components: &mut [Component]) {
    let mut seen = std::collections::HashSet::new();
    for (i, c) in components.iter_mut().enumerate() {
        c.component = c.component.trim().to_owned();
        c.batch = c.batch.trim().to_owned();
        if c.component.is_empty() || c.batch.is_empty() {
            errors.push(FieldError::new(
                format!("components[{i}]"),
                "invalid_component",
                "a component and its batch are both named",
            ));
        } else if !seen.insert(c.component.clone()) {
            errors.push(FieldError::new(
                format!("components[{i}].component"),
                "duplicate_component",
                "each component is listed once",
            ));
        }
    }
}

/// The state of a vehicle to write, validated and normalised in place by [`Draft::validate`].
struct Draft {
    plate: Option<String>,
    brand: String,
    model: String,
    trim: Option<String>,
    color: Option<String>,
    model_year: Option<i64>,
    purchase_date: Option<NaiveDate>,
    insurer: Option<String>,
    insurance_expiry: Option<NaiveDate>,
    components: Vec<Component>,
    custom_fields: Map<String, Value>,
}

impl Draft {
    /// Pushes every problem onto `errors` and returns the parsed plate, if any.
    async fn validate(
        &mut self,
        conn: &mut AnyConnection,
        dealer_id: i64,
        writer: Writer,
        errors: &mut Vec<FieldError>,
    ) -> Result<Option<identity::Plate>> {
        let plate = match self.plate.as_deref().filter(|p| !p.trim().is_empty()) {
            None => None,
            Some(p) => identity::parse_plate(p)
                .map_err(|message| errors.push(FieldError::new("plate", "invalid_plate", message)))
                .ok(),
        };
        text::trim_or_invalid(errors, "brand", "invalid_text", &mut self.brand, 40);
        text::trim_or_invalid(errors, "model", "invalid_text", &mut self.model, 60);
        for (field, value, max) in [
            ("trim", &mut self.trim, 60),
            ("color", &mut self.color, 30),
            ("insurer", &mut self.insurer, INSURER_MAX),
        ] {
            if let Some(v) = value {
                text::trim_or_invalid(errors, field, "invalid_text", v, max);
            }
        }
        let this_year = i64::from(chrono::Datelike::year(&clock::today_cst()));
        if let Some(y) = self.model_year
            && !(1950..=this_year + 1).contains(&y)
        {
            errors.push(FieldError::new(
                "model_year",
                "invalid_year",
                format!("a model year is between 1950 and {}", this_year + 1),
            ));
        }
        if self.purchase_date.is_some_and(|d| d > clock::today_cst()) {
            errors.push(FieldError::new(
                "purchase_date",
                "invalid_date",
                "the purchase date is in the future",
            ));
        }
        check_components(errors, &mut self.components);
        custom_fields::validate(
            conn,
            dealer_id,
            Entity::Vehicle,
            writer,
            &self.custom_fields,
            errors,
        )
        .await?;
        Ok(plate)
    }
}

#[derive(FromRow)]
struct VehicleRow {
    id: i64,
    dealer_id: i64,
    vin: String,
    plate: Option<String>,
    brand: String,
    model: String,
    trim_level: Option<String>,
    color: Option<String>,
    model_year: Option<i64>,
    purchase_date: Option<String>,
    insurer: Option<String>,
    insurance_expiry: Option<String>,
    custom_fields: String,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

const VEHICLE_COLUMNS: &str = "v.id, v.dealer_id, v.vin, v.plate, v.brand, v.model, v.trim_level, v.color, v.model_year, \
     v.purchase_date, v.insurer, v.insurance_expiry, v.custom_fields, v.version, v.created_at, v.updated_at";

async fn hydrate(conn: &mut AnyConnection, rows: Vec<VehicleRow>) -> Result<Vec<Vehicle>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut components: HashMap<i64, Vec<Component>> = HashMap::new();
    let sql = Sql::in_list(
        "SELECT vehicle_id, component, batch FROM vehicle_components WHERE vehicle_id IN ",
        &ids,
        " ORDER BY vehicle_id, component",
    );
    for (vid, component, batch) in
        sqlx::query_as_with::<_, (i64, String, String), _>(sql.text(), sql.arguments())
            .fetch_all(&mut *conn)
            .await?
    {
        components
            .entry(vid)
            .or_default()
            .push(Component { component, batch });
    }
    let mut people: HashMap<i64, Vec<VehiclePerson>> = HashMap::new();
    let sql = Sql::in_list(
        "SELECT vehicle_id, customer_id, role, since, until FROM vehicle_people WHERE until IS NULL AND vehicle_id IN ",
        &ids,
        " ORDER BY vehicle_id, since",
    );
    for (vid, customer_id, role, since, until) in sqlx::query_as_with::<
        _,
        (i64, i64, String, i64, Option<i64>),
        _,
    >(sql.text(), sql.arguments())
    .fetch_all(&mut *conn)
    .await?
    {
        people.entry(vid).or_default().push(VehiclePerson {
            customer_id,
            role: PersonRole::parse(&role),
            since: clock::to_datetime(since),
            until: clock::opt_datetime(until),
        });
    }
    let mut readings = mileage::readings_for(conn, &ids).await?;
    let today = clock::today_cst();
    Ok(rows
        .into_iter()
        .map(|r| {
            let purchase_date = clock::parse_date(r.purchase_date);
            let own = readings.remove(&r.id).unwrap_or_default();
            Vehicle {
                id: r.id,
                dealer_id: r.dealer_id,
                vin: r.vin,
                plate: r.plate,
                brand: r.brand,
                model: r.model,
                trim: r.trim_level,
                color: r.color,
                model_year: r.model_year,
                purchase_date,
                insurer: r.insurer,
                insurance_expiry: clock::parse_date(r.insurance_expiry),
                components: components.remove(&r.id).unwrap_or_default(),
                people: people.remove(&r.id).unwrap_or_default(),
                latest_mileage_km: own.last().map(|m| m.km),
                estimated_daily_km: mileage::estimate_daily_km(&own, purchase_date, today),
                custom_fields: custom_fields::from_column(&r.custom_fields),
                version: r.version,
                created_at: clock::to_datetime(r.created_at),
                updated_at: clock::to_datetime(r.updated_at),
            }
        })
        .collect())
}

async fn load(conn: &mut AnyConnection, id: i64) -> Result<Vehicle> {
    let row: Option<VehicleRow> = sqlx::query_as(&format!(
        "SELECT {VEHICLE_COLUMNS} FROM vehicles v WHERE v.id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let row = row.ok_or(Error::NotFound { entity: "vehicle" })?;
    Ok(hydrate(conn, vec![row]).await?.remove(0))
}

/// Vehicles a customer is linked to now (owner, main driver or family), unscoped: the caller
/// has established that the customer is visible.
pub async fn for_customers(conn: &mut AnyConnection, customer_ids: &[i64]) -> Result<Vec<Vehicle>> {
    if customer_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = Sql::in_list(
        &format!(
            "SELECT {VEHICLE_COLUMNS} FROM vehicles v WHERE v.id IN (SELECT vehicle_id FROM vehicle_people WHERE until IS NULL AND customer_id IN "
        ),
        customer_ids,
        ") ORDER BY v.id",
    );
    let rows: Vec<VehicleRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    hydrate(conn, rows).await
}

/// Records of the same VINs at dealers other than `dealer_id` (for the network history).
pub async fn same_vin_elsewhere(
    conn: &mut AnyConnection,
    vins: &[String],
    dealer_id: i64,
) -> Result<Vec<Vehicle>> {
    if vins.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(&format!(
        "SELECT {VEHICLE_COLUMNS} FROM vehicles v WHERE v.dealer_id <> "
    ));
    sql.bind(Param::Int(dealer_id))
        .push(" AND v.vin IN ")
        .push_list(vins.iter().cloned().map(Param::Text))
        .push(" ORDER BY v.id");
    let rows: Vec<VehicleRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    hydrate(conn, rows).await
}

/// The dealer of vehicle `id` if the caller can see it (see [`crate::customers::dealer_of`]).
pub async fn dealer_of(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<i64> {
    crate::access::owning_dealer(conn, caller, crate::access::Record::Vehicle, id).await
}

pub async fn get(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<Vehicle> {
    dealer_of(conn, caller, id).await?;
    load(conn, id).await
}

/// [`get`] for a person reading it (over the API), audited as a read of personal data.
pub async fn read(
    conn: &mut AnyConnection,
    reads: &ReadLog,
    caller: &Caller,
    id: i64,
) -> Result<Vehicle> {
    let vehicle = get(conn, caller, id).await?;
    reads
        .record_reads(caller, "vehicle", vec![(vehicle.id, vehicle.dealer_id)])
        .await;
    Ok(vehicle)
}

async fn customer_of_dealer(
    conn: &mut AnyConnection,
    customer_id: i64,
    dealer_id: i64,
) -> Result<bool> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT id FROM customers WHERE id = $1 AND dealer_id = $2")
            .bind(customer_id)
            .bind(dealer_id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.is_some())
}

async fn write_components(
    conn: &mut AnyConnection,
    id: i64,
    components: &[Component],
) -> Result<()> {
    sqlx::query("DELETE FROM vehicle_components WHERE vehicle_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    for c in components {
        sqlx::query(
            "INSERT INTO vehicle_components (vehicle_id, component, batch) VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(&c.component)
        .bind(&c.batch)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A [`NewVehicle`] that passed [`check_new`]: normalised, ready to store.
pub(crate) struct CheckedVehicle {
    vin: String,
    plate: Option<identity::Plate>,
    owner_id: Option<i64>,
    draft: Draft,
}

impl CheckedVehicle {
    /// The VIN, normalised.
    pub(crate) fn vin(&self) -> &str {
        &self.vin
    }
}

/// The one check of a new vehicle of `dealer_id` (VIN, owner, plate, texts, dates, components,
/// custom fields): every problem at once, as [`Error::Invalid`]. [`create`] runs it, and so
/// does an import, row by row. Whether the dealer has the VIN already is the caller's question
/// ([`find_by_vin`]).
pub(crate) async fn check_new(
    conn: &mut AnyConnection,
    dealer_id: i64,
    new: NewVehicle,
    writer: Writer,
) -> Result<CheckedVehicle> {
    let mut errors = Vec::new();
    let vin = identity::parse_vin(&new.vin).unwrap_or_else(|message| {
        errors.push(FieldError::new("vin", "invalid_vin", message));
        String::new()
    });
    if let Some(owner) = new.owner_id
        && !customer_of_dealer(conn, owner, dealer_id).await?
    {
        errors.push(FieldError::new(
            "owner_id",
            "unknown_customer",
            "the owner is not a customer of this dealer",
        ));
    }
    let mut draft = Draft {
        plate: new.plate,
        brand: new.brand,
        model: new.model,
        trim: new.trim,
        color: new.color,
        model_year: new.model_year,
        purchase_date: new.purchase_date,
        insurer: new.insurer,
        insurance_expiry: new.insurance_expiry,
        components: new.components,
        custom_fields: new.custom_fields,
    };
    let plate = draft.validate(conn, dealer_id, writer, &mut errors).await?;
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    Ok(CheckedVehicle {
        vin,
        plate,
        owner_id: new.owner_id,
        draft,
    })
}

/// The vehicle of `dealer_id` with VIN `vin` (normalised), if any.
pub(crate) async fn find_by_vin(
    conn: &mut AnyConnection,
    dealer_id: i64,
    vin: &str,
) -> Result<Option<i64>> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT id FROM vehicles WHERE dealer_id = $1 AND vin = $2")
            .bind(dealer_id)
            .bind(vin)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.map(|(id,)| id))
}

/// The customer who owns vehicle `id` now, if anyone does.
pub(crate) async fn current_owner(conn: &mut AnyConnection, id: i64) -> Result<Option<i64>> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT customer_id FROM vehicle_people WHERE vehicle_id = $1 AND role = 'owner' AND until IS NULL \
         ORDER BY since DESC, id DESC LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|(customer,)| customer))
}

/// Stores a checked vehicle of `dealer_id` (with its owner link) and returns its id; the
/// caller has made sure the dealer does not have the VIN yet, and audits it.
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    dealer_id: i64,
    checked: &CheckedVehicle,
) -> Result<i64> {
    let (d, plate) = (&checked.draft, &checked.plate);
    let now = clock::now_ms();
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO vehicles (dealer_id, vin, plate, plate_key, brand, model, trim_level, color, model_year, purchase_date, \
         insurer, insurance_expiry, custom_fields, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) RETURNING id",
    )
    .bind(dealer_id)
    .bind(&checked.vin)
    .bind(plate.as_ref().map(|p| p.display.clone()))
    .bind(plate.as_ref().map(|p| p.key.clone()))
    .bind(&d.brand)
    .bind(&d.model)
    .bind(d.trim.as_deref())
    .bind(d.color.as_deref())
    .bind(d.model_year)
    .bind(clock::format_date(d.purchase_date))
    .bind(d.insurer.as_deref())
    .bind(clock::format_date(d.insurance_expiry))
    .bind(custom_fields::to_column(&d.custom_fields))
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    write_components(conn, id, &d.components).await?;
    if let Some(owner) = checked.owner_id {
        sqlx::query("INSERT INTO vehicle_people (vehicle_id, customer_id, role, since) VALUES ($1, $2, 'owner', $3)")
            .bind(id)
            .bind(owner)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    Ok(id)
}

/// Creates a vehicle of `dealer_id` (the caller has checked they may write for it), with its
/// audit entry on `conn`; `writer` says whether staff give its custom field values.
pub async fn create(
    conn: &mut AnyConnection,
    caller: &Caller,
    dealer_id: i64,
    new: NewVehicle,
    writer: Writer,
) -> Result<Vehicle> {
    let checked = check_new(conn, dealer_id, new, writer).await?;
    if let Some(existing) = find_by_vin(conn, dealer_id, &checked.vin).await? {
        return Err(Error::Conflict {
            code: "already_exists",
            message: format!(
                "this dealer already has the vehicle with VIN {} (id {existing})",
                checked.vin
            ),
        });
    }
    let id = insert(conn, dealer_id, &checked).await?;
    audit::record(conn, caller, Entry::ok("create", "vehicle", id, dealer_id)).await?;
    load(conn, id).await
}

/// Updates vehicle `id` in the caller's scope, if it is still at `expected_version`, with its
/// audit entry on `conn`; `writer` says whether staff give its custom field values.
pub async fn update(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
    expected_version: i64,
    patch: VehiclePatch,
    writer: Writer,
) -> Result<Vehicle> {
    let dealer_id = dealer_of(conn, caller, id).await?;
    let current = load(conn, id).await?;
    if current.version != expected_version {
        return Err(Error::StaleVersion {
            current: current.version,
        });
    }
    let changed = patch.fields();
    let mut errors = Vec::new();
    let mut d = Draft {
        plate: patch.plate.unwrap_or(current.plate),
        brand: patch.brand.unwrap_or(current.brand),
        model: patch.model.unwrap_or(current.model),
        trim: patch.trim.unwrap_or(current.trim),
        color: patch.color.unwrap_or(current.color),
        model_year: patch.model_year.unwrap_or(current.model_year),
        purchase_date: patch.purchase_date.unwrap_or(current.purchase_date),
        insurer: patch.insurer.unwrap_or(current.insurer),
        insurance_expiry: patch.insurance_expiry.unwrap_or(current.insurance_expiry),
        components: patch.components.unwrap_or(current.components),
        custom_fields: custom_fields::merge(current.custom_fields, patch.custom_fields),
    };
    let plate = d.validate(conn, dealer_id, writer, &mut errors).await?;
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let updated = sqlx::query(
        "UPDATE vehicles SET plate = $1, plate_key = $2, brand = $3, model = $4, trim_level = $5, color = $6, model_year = $7, \
         purchase_date = $8, insurer = $9, insurance_expiry = $10, custom_fields = $11, updated_at = $12, version = version + 1 \
         WHERE id = $13 AND version = $14",
    )
    .bind(plate.as_ref().map(|p| p.display.clone()))
    .bind(plate.as_ref().map(|p| p.key.clone()))
    .bind(&d.brand)
    .bind(&d.model)
    .bind(d.trim.as_deref())
    .bind(d.color.as_deref())
    .bind(d.model_year)
    .bind(clock::format_date(d.purchase_date))
    .bind(d.insurer.as_deref())
    .bind(clock::format_date(d.insurance_expiry))
    .bind(custom_fields::to_column(&d.custom_fields))
    .bind(clock::now_ms())
    .bind(id)
    .bind(expected_version)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(Error::StaleVersion {
            current: expected_version + 1,
        });
    }
    write_components(conn, id, &d.components).await?;
    audit::record(
        conn,
        caller,
        Entry::ok("update", "vehicle", id, dealer_id)
            .with_detail(serde_json::json!({ "fields": changed })),
    )
    .await?;
    load(conn, id).await
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    /// A customer of the vehicle's dealer.
    pub customer_id: i64,
    /// A new owner ends the previous owner's link (a sale); a new main driver ends the
    /// previous main driver's.
    pub role: PersonRole,
}

/// Links a person to a vehicle, ending the link this one replaces.
pub async fn link_person(
    conn: &mut AnyConnection,
    caller: &Caller,
    vehicle_id: i64,
    link: NewLink,
) -> Result<Vec<VehiclePerson>> {
    let dealer_id = dealer_of(conn, caller, vehicle_id).await?;
    if !customer_of_dealer(conn, link.customer_id, dealer_id).await? {
        return Err(Error::invalid(
            "customer_id",
            "unknown_customer",
            "not a customer of this vehicle's dealer",
        ));
    }
    let now = clock::now_ms();
    let ends_previous = matches!(link.role, PersonRole::Owner | PersonRole::MainDriver);
    let already: Option<(i64,)> = sqlx::query_as(
        "SELECT id FROM vehicle_people WHERE vehicle_id = $1 AND customer_id = $2 AND role = $3 AND until IS NULL",
    )
    .bind(vehicle_id)
    .bind(link.customer_id)
    .bind(link.role.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    if already.is_none() {
        if ends_previous {
            sqlx::query("UPDATE vehicle_people SET until = $1 WHERE vehicle_id = $2 AND role = $3 AND until IS NULL")
                .bind(now)
                .bind(vehicle_id)
                .bind(link.role.as_str())
                .execute(&mut *conn)
                .await?;
        }
        sqlx::query("INSERT INTO vehicle_people (vehicle_id, customer_id, role, since) VALUES ($1, $2, $3, $4)")
            .bind(vehicle_id)
            .bind(link.customer_id)
            .bind(link.role.as_str())
            .bind(now)
            .execute(&mut *conn)
            .await?;
        audit::record(
            conn,
            caller,
            Entry::ok("link_person", "vehicle", vehicle_id, dealer_id).with_detail(
                serde_json::json!({ "customer_id": link.customer_id, "role": link.role.as_str() }),
            ),
        )
        .await?;
    }
    Ok(load(conn, vehicle_id).await?.people)
}

/// Every owner the vehicle has had, oldest first.
pub async fn ownership(
    conn: &mut AnyConnection,
    caller: &Caller,
    vehicle_id: i64,
) -> Result<Vec<VehiclePerson>> {
    dealer_of(conn, caller, vehicle_id).await?;
    let rows: Vec<(i64, i64, Option<i64>)> = sqlx::query_as(
        "SELECT customer_id, since, until FROM vehicle_people WHERE vehicle_id = $1 AND role = 'owner' ORDER BY since, id",
    )
    .bind(vehicle_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(customer_id, since, until)| VehiclePerson {
            customer_id,
            role: PersonRole::Owner,
            since: clock::to_datetime(since),
            until: clock::opt_datetime(until),
        })
        .collect())
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VehicleSearch {
    pub vin: Option<String>,
    /// Any spacing: 京A·12345, 京a12345.
    pub plate: Option<String>,
    /// Vehicles this customer owns or drives now.
    pub customer_id: Option<i64>,
    /// With `batch`: vehicles carrying this component batch.
    pub component: Option<String>,
    pub batch: Option<String>,
    pub dealer_id: Option<i64>,
}

pub async fn search(
    conn: &mut AnyConnection,
    reads: &ReadLog,
    caller: &Caller,
    q: &VehicleSearch,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<Vehicle>> {
    let mut sql = Sql::new(&format!(
        "SELECT {VEHICLE_COLUMNS} FROM vehicles v WHERE 1 = 1"
    ));
    caller.scope(&mut sql, "v.dealer_id");
    if let Some(vin) = q.vin.as_deref().filter(|v| !v.trim().is_empty()) {
        sql.push(" AND v.vin = ")
            .bind(Param::Text(vin.trim().to_uppercase()));
    }
    if let Some(plate) = q.plate.as_deref().filter(|p| !p.trim().is_empty()) {
        sql.push(" AND v.plate_key = ")
            .bind(Param::Text(identity::plate_key(plate)));
    }
    if let Some(c) = q.customer_id {
        sql.push(" AND v.id IN (SELECT vehicle_id FROM vehicle_people WHERE until IS NULL AND customer_id = ").bind(Param::Int(c)).push(")");
    }
    match (&q.component, &q.batch) {
        // A batch is selective: collect its few vehicles through the (component, batch) index.
        (component, Some(batch)) => {
            sql.push(" AND v.id IN (SELECT vehicle_id FROM vehicle_components WHERE batch = ")
                .bind(Param::Text(batch.trim().to_owned()));
            if let Some(c) = component {
                sql.push(" AND component = ")
                    .bind(Param::Text(c.trim().to_owned()));
            }
            sql.push(")");
        }
        // A component alone is common: probe each vehicle of the page by primary key instead
        // of materialising every vehicle that has one.
        (Some(component), None) => {
            sql.push(" AND EXISTS (SELECT 1 FROM vehicle_components c WHERE c.vehicle_id = v.id AND c.component = ")
                .bind(Param::Text(component.trim().to_owned()))
                .push(")");
        }
        (None, None) => {}
    }
    if let Some(d) = q.dealer_id {
        sql.push(" AND v.dealer_id = ").bind(Param::Int(d));
    }
    if let Some(b) = before_id {
        sql.push(" AND v.id < ").bind(Param::Int(b));
    }
    sql.push(" ORDER BY v.id DESC LIMIT ")
        .bind(Param::Int(limit + 1));
    let rows: Vec<VehicleRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    let found = hydrate(conn, rows).await?;
    let shown: Vec<(i64, i64)> = found
        .iter()
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .map(|v| (v.id, v.dealer_id))
        .collect();
    reads.record_reads(caller, "vehicle", shown).await;
    Ok(found)
}

/// Vehicles of dealers under the unit with materialised path `org_path` carrying `batch` (of
/// `component` when given), oldest first: the candidates of a service campaign.
pub async fn with_batch_under(
    conn: &mut AnyConnection,
    org_path: &str,
    component: Option<&str>,
    batch: &str,
) -> Result<Vec<Vehicle>> {
    let mut sql = Sql::new(&format!(
        "SELECT {VEHICLE_COLUMNS} FROM vehicles v WHERE v.id IN (SELECT vehicle_id FROM vehicle_components WHERE batch = "
    ));
    sql.bind(Param::Text(batch.to_owned()));
    if let Some(c) = component {
        sql.push(" AND component = ")
            .bind(Param::Text(c.to_owned()));
    }
    sql.push(") AND v.dealer_id IN (SELECT id FROM org_units WHERE path LIKE ")
        .bind(Param::Text(format!("{org_path}%")))
        .push(") ORDER BY v.id");
    let rows: Vec<VehicleRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    hydrate(conn, rows).await
}

/// Vehicle `id` whatever the scope, for a caller that established its right to it another
/// way (an owner's link to a repair of this car).
pub async fn get_unscoped(conn: &mut AnyConnection, id: i64) -> Result<Vehicle> {
    load(conn, id).await
}
