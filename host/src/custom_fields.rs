//! Dealer-defined custom fields: a dealer adds typed fields (EV battery data, trade-in checklist
//! items, ...) to customers, vehicles, sales orders, repair orders and trade-ins without a code
//! change. Each of those tables keeps its values in a `custom_fields` column (a JSON object,
//! [`from_column`] / [`to_column`]); every write of such a record validates them against the
//! dealer's definitions ([`validate`]), a patch merging into the stored ones ([`merge`]). Owns
//! `custom_field_defs`.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::{AnyConnection, FromRow};
use utoipa::ToSchema;

use crate::access::Caller;
use crate::audit::{self, Entry};
use crate::clock;
use crate::db::{Param, Sql};
use crate::error::{Error, FieldError, Result};
use crate::text;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Customer,
    Vehicle,
    Order,
    RepairOrder,
    TradeIn,
}

impl Entity {
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Customer => "customer",
            Entity::Vehicle => "vehicle",
            Entity::Order => "order",
            Entity::RepairOrder => "repair_order",
            Entity::TradeIn => "trade_in",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// A string; `min`/`max` bound its length in characters.
    Text,
    /// A whole number; `min`/`max` bound it.
    Integer,
    /// Any number; `min`/`max` bound it.
    Decimal,
    /// Integer fen, never negative.
    Money,
    Boolean,
    /// 'YYYY-MM-DD'.
    Date,
    /// One of `choices`.
    Choice,
}

impl FieldType {
    fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Integer => "integer",
            FieldType::Decimal => "decimal",
            FieldType::Money => "money",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::Choice => "choice",
        }
    }

    fn parse(s: &str) -> FieldType {
        match s {
            "integer" => FieldType::Integer,
            "decimal" => FieldType::Decimal,
            "money" => FieldType::Money,
            "boolean" => FieldType::Boolean,
            "date" => FieldType::Date,
            "choice" => FieldType::Choice,
            _ => FieldType::Text,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldDef {
    pub id: i64,
    pub dealer_id: i64,
    pub entity: Entity,
    pub key: String,
    pub label: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    pub required: bool,
    pub choices: Option<Vec<String>>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub version: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFieldDef {
    /// HQ names the dealer; dealer admins leave it out.
    pub dealer_id: Option<i64>,
    pub entity: Entity,
    /// `[a-z][a-z0-9_]*`, at most 40 characters; the key in `custom_fields`.
    pub key: String,
    pub label: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    #[serde(default)]
    pub required: bool,
    pub choices: Option<Vec<String>>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldDefPatch {
    pub label: Option<String>,
    pub required: Option<bool>,
    pub choices: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::model::nullable")]
    pub min: Option<Option<f64>>,
    #[serde(default, deserialize_with = "crate::model::nullable")]
    pub max: Option<Option<f64>>,
}

#[derive(FromRow)]
struct DefRow {
    id: i64,
    dealer_id: i64,
    entity: String,
    field_key: String,
    label: String,
    field_type: String,
    required: i64,
    choices: Option<String>,
    min_value: Option<f64>,
    max_value: Option<f64>,
    version: i64,
}

impl From<DefRow> for FieldDef {
    fn from(r: DefRow) -> Self {
        FieldDef {
            id: r.id,
            dealer_id: r.dealer_id,
            entity: serde_json::from_value(Value::String(r.entity)).unwrap_or(Entity::Customer),
            key: r.field_key,
            label: r.label,
            field_type: FieldType::parse(&r.field_type),
            required: r.required != 0,
            choices: r.choices.and_then(|c| serde_json::from_str(&c).ok()),
            min: r.min_value,
            max: r.max_value,
            version: r.version,
        }
    }
}

/// A bound `min` or `max`, as text the statement casts to a number. sqlx 0.8's `Any` driver
/// sends a NULL `f64` to PostgreSQL as a `float4` parameter, and the connection's cached
/// statement then refuses the next non-NULL `f64` bound there (a field with a `min` defined
/// after one without failed with a 500); a text parameter is one type whatever its value.
fn bound_param(bound: Option<f64>) -> Option<String> {
    bound.map(|b| b.to_string())
}

const DEF_COLUMNS: &str = "id, dealer_id, entity, field_key, label, field_type, required, choices, min_value, max_value, version";

fn check_definition(def: &FieldDef) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let key_ok = def.key.len() <= 40
        && def
            .key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase())
        && def
            .key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !key_ok {
        errors.push(FieldError::new("key", "invalid_key", "a key is lower-case letters, digits and _, starting with a letter, at most 40 characters"));
    }
    let mut label = def.label.clone();
    text::trim_or_invalid(&mut errors, "label", "invalid_label", &mut label, 80);
    match (&def.choices, def.field_type) {
        (None, FieldType::Choice) => errors.push(FieldError::new(
            "choices",
            "required",
            "a choice field lists its choices",
        )),
        (Some(c), FieldType::Choice)
            if c.is_empty() || c.iter().any(|s| text::check(s, 80).is_err()) =>
        {
            errors.push(FieldError::new(
                "choices",
                "invalid_choices",
                "each choice is a visible text of 1 to 80 characters",
            ))
        }
        (Some(_), t) if t != FieldType::Choice => errors.push(FieldError::new(
            "choices",
            "not_applicable",
            "only choice fields have choices",
        )),
        _ => {}
    }
    if let (Some(min), Some(max)) = (def.min, def.max)
        && min > max
    {
        errors.push(FieldError::new(
            "min",
            "invalid_range",
            "min is larger than max",
        ));
    }
    if (def.min.is_some() || def.max.is_some())
        && matches!(
            def.field_type,
            FieldType::Boolean | FieldType::Date | FieldType::Choice
        )
    {
        errors.push(FieldError::new(
            "min",
            "not_applicable",
            "min and max apply to text, integer, decimal and money fields",
        ));
    }
    errors
}

/// Defines a field for `dealer_id` (the caller has checked they may write for it), with its
/// audit entry on `conn`.
pub async fn create(
    conn: &mut AnyConnection,
    caller: &Caller,
    dealer_id: i64,
    new: NewFieldDef,
) -> Result<FieldDef> {
    let def = FieldDef {
        id: 0,
        dealer_id,
        entity: new.entity,
        key: new.key.trim().to_owned(),
        label: new.label.trim().to_owned(),
        field_type: new.field_type,
        required: new.required,
        choices: new.choices,
        min: new.min,
        max: new.max,
        version: 1,
    };
    let errors = check_definition(&def);
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let now = clock::now_ms();
    let row: DefRow = sqlx::query_as(&format!(
        "INSERT INTO custom_field_defs (dealer_id, entity, field_key, label, field_type, required, choices, \
         min_value, max_value, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, \
         CAST($8 AS DOUBLE PRECISION), CAST($9 AS DOUBLE PRECISION), $10, $10) \
         RETURNING {DEF_COLUMNS}"
    ))
    .bind(dealer_id)
    .bind(def.entity.as_str())
    .bind(&def.key)
    .bind(&def.label)
    .bind(def.field_type.as_str())
    .bind(i64::from(def.required))
    .bind(def.choices.as_ref().map(|c| serde_json::to_string(c).unwrap_or_default()))
    .bind(bound_param(def.min))
    .bind(bound_param(def.max))
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    let def = FieldDef::from(row);
    audit::record(
        conn,
        caller,
        Entry::ok("create", "custom_field", def.id, dealer_id),
    )
    .await?;
    Ok(def)
}

/// Definitions of the dealers in the caller's scope.
pub async fn list(
    conn: &mut AnyConnection,
    caller: &Caller,
    entity: Option<Entity>,
) -> Result<Vec<FieldDef>> {
    let mut sql = Sql::new(&format!(
        "SELECT {DEF_COLUMNS} FROM custom_field_defs WHERE 1 = 1"
    ));
    caller.scope(&mut sql, "dealer_id");
    if let Some(e) = entity {
        sql.push(" AND entity = ")
            .bind(Param::Text(e.as_str().into()));
    }
    sql.push(" ORDER BY dealer_id, entity, field_key");
    let rows: Vec<DefRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().map(FieldDef::from).collect())
}

async fn definitions(
    conn: &mut AnyConnection,
    dealer_id: i64,
    entity: Entity,
) -> Result<Vec<FieldDef>> {
    let rows: Vec<DefRow> = sqlx::query_as(&format!(
        "SELECT {DEF_COLUMNS} FROM custom_field_defs WHERE dealer_id = $1 AND entity = $2"
    ))
    .bind(dealer_id)
    .bind(entity.as_str())
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(FieldDef::from).collect())
}

/// Updates a definition in the caller's scope, if it is still at `expected_version`, with its
/// audit entry on `conn`.
pub async fn update(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
    expected_version: i64,
    patch: FieldDefPatch,
) -> Result<FieldDef> {
    let mut sql = Sql::new(&format!(
        "SELECT {DEF_COLUMNS} FROM custom_field_defs WHERE id = "
    ));
    sql.bind(Param::Int(id));
    caller.scope(&mut sql, "dealer_id");
    let row: Option<DefRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_optional(&mut *conn)
        .await?;
    let mut def = FieldDef::from(row.ok_or(Error::NotFound {
        entity: "custom field",
    })?);
    if def.version != expected_version {
        return Err(Error::StaleVersion {
            current: def.version,
        });
    }
    if let Some(label) = patch.label {
        def.label = label.trim().to_owned();
    }
    if let Some(required) = patch.required {
        def.required = required;
    }
    if let Some(choices) = patch.choices {
        def.choices = Some(choices);
    }
    if let Some(min) = patch.min {
        def.min = min;
    }
    if let Some(max) = patch.max {
        def.max = max;
    }
    let errors = check_definition(&def);
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let row: Option<DefRow> = sqlx::query_as(&format!(
        "UPDATE custom_field_defs SET label = $1, required = $2, choices = $3, \
         min_value = CAST($4 AS DOUBLE PRECISION), max_value = CAST($5 AS DOUBLE PRECISION), \
         version = version + 1, updated_at = $6 WHERE id = $7 AND version = $8 RETURNING {DEF_COLUMNS}"
    ))
    .bind(&def.label)
    .bind(i64::from(def.required))
    .bind(def.choices.as_ref().map(|c| serde_json::to_string(c).unwrap_or_default()))
    .bind(bound_param(def.min))
    .bind(bound_param(def.max))
    .bind(clock::now_ms())
    .bind(id)
    .bind(expected_version)
    .fetch_optional(&mut *conn)
    .await?;
    let def = row.map(FieldDef::from).ok_or(Error::StaleVersion {
        current: expected_version + 1,
    })?;
    audit::record(
        conn,
        caller,
        Entry::ok("update", "custom_field", id, def.dealer_id),
    )
    .await?;
    Ok(def)
}

/// The values stored in a record's `custom_fields` column.
pub fn from_column(text: &str) -> Map<String, Value> {
    serde_json::from_str(text).unwrap_or_default()
}

/// What a record's `custom_fields` column stores for `values`.
pub fn to_column(values: &Map<String, Value>) -> String {
    Value::Object(values.clone()).to_string()
}

/// Applies a patch's `custom_fields`, if it has them, to the stored values: a key set to
/// `null` is removed, others replaced, absent ones kept.
pub fn merge(
    mut stored: Map<String, Value>,
    patch: Option<Map<String, Value>>,
) -> Map<String, Value> {
    for (k, v) in patch.unwrap_or_default() {
        if v.is_null() {
            stored.remove(&k);
        } else {
            stored.insert(k, v);
        }
    }
    stored
}

/// A staff patch of a record whose only change is its custom fields: `stored` merged with
/// `patch` (see [`merge`]) and checked as a whole, or [`Error::Invalid`] naming each problem.
pub async fn patched(
    conn: &mut AnyConnection,
    dealer_id: i64,
    entity: Entity,
    stored: Map<String, Value>,
    patch: Option<Map<String, Value>>,
) -> Result<Map<String, Value>> {
    let fields = merge(stored, patch);
    let mut errors = Vec::new();
    validate(conn, dealer_id, entity, Writer::Staff, &fields, &mut errors).await?;
    if errors.is_empty() {
        Ok(fields)
    } else {
        Err(Error::Invalid(errors))
    }
}

/// Who writes a record's custom field values, for what [`validate`] asks of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// Staff writing the record through its own API: every value is checked and the dealer's
    /// required fields must be given.
    Staff,
    /// The host making or updating a record as a follow-up of another use case (the customer
    /// made from a lead for its order, the vehicle made or updated at delivery), or an import
    /// of a dealer's export, which brings no custom fields. It writes no
    /// values of its own (a new record has none, an updated one keeps its own), so nothing is
    /// checked and the use case never fails for them: staff fill in a required field at their
    /// next write of the record.
    FollowUp,
}

/// Checks `values` written by `writer` against the dealer's definitions for `entity`, pushing
/// one error per problem (unknown key, wrong type, out of range, required and missing).
pub async fn validate(
    conn: &mut AnyConnection,
    dealer_id: i64,
    entity: Entity,
    writer: Writer,
    values: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Result<()> {
    if writer == Writer::FollowUp {
        return Ok(());
    }
    let defs = definitions(conn, dealer_id, entity).await?;
    errors.extend(check_values(&defs, values));
    Ok(())
}

fn check_values(defs: &[FieldDef], values: &Map<String, Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for key in values.keys() {
        if !defs.iter().any(|d| &d.key == key) {
            errors.push(FieldError::new(
                format!("custom_fields.{key}"),
                "unknown_custom_field",
                "this dealer defines no such field (see GET /api/v1/custom-fields)",
            ));
        }
    }
    for def in defs {
        let field = format!("custom_fields.{}", def.key);
        match values.get(&def.key) {
            None | Some(Value::Null) if def.required => errors.push(FieldError::new(
                field,
                "required",
                format!("{} is required", def.label),
            )),
            None | Some(Value::Null) => {}
            Some(value) => {
                if let Err(message) = check_value(def, value) {
                    errors.push(FieldError::new(field, "invalid_custom_field", message));
                }
            }
        }
    }
    errors
}

fn check_value(def: &FieldDef, value: &Value) -> Result<(), String> {
    let in_range = |n: f64, what: &str| -> Result<(), String> {
        if let Some(min) = def.min
            && n < min
        {
            return Err(format!("{what} must be at least {min}"));
        }
        if let Some(max) = def.max
            && n > max
        {
            return Err(format!("{what} must be at most {max}"));
        }
        Ok(())
    };
    match def.field_type {
        FieldType::Text => {
            let s = value.as_str().ok_or("expected text")?;
            in_range(s.chars().count() as f64, "the length")
        }
        FieldType::Integer => {
            let n = value.as_i64().ok_or("expected a whole number")?;
            in_range(n as f64, "the value")
        }
        FieldType::Decimal => {
            let n = value.as_f64().ok_or("expected a number")?;
            in_range(n, "the value")
        }
        FieldType::Money => {
            let n = value
                .as_i64()
                .filter(|n| *n >= 0)
                .ok_or("expected an amount in fen (a whole number, not negative)")?;
            in_range(n as f64, "the amount")
        }
        FieldType::Boolean => value
            .as_bool()
            .map(|_| ())
            .ok_or_else(|| "expected true or false".into()),
        FieldType::Date => value
            .as_str()
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .map(|_| ())
            .ok_or_else(|| "expected a date as YYYY-MM-DD".into()),
        FieldType::Choice => {
            let s = value.as_str().ok_or("expected one of the choices")?;
            let choices = def.choices.as_deref().unwrap_or_default();
            if choices.iter().any(|c| c == s) {
                Ok(())
            } else {
                Err(format!("expected one of: {}", choices.join(", ")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(key: &str, field_type: FieldType, required: bool) -> FieldDef {
        FieldDef {
            id: 1,
            dealer_id: 1,
            entity: Entity::Vehicle,
            key: key.into(),
            label: key.into(),
            field_type,
            required,
            choices: None,
            min: None,
            max: None,
            version: 1,
        }
    }

    fn codes(defs: &[FieldDef], values: Value) -> Vec<(String, String)> {
        let Value::Object(map) = values else {
            panic!("an object")
        };
        check_values(defs, &map)
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect()
    }

    #[test]
    fn values_are_checked_against_their_types_and_ranges() {
        let mut battery = def("battery_kwh", FieldType::Decimal, false);
        battery.min = Some(10.0);
        battery.max = Some(150.0);
        let mut grade = def("grade", FieldType::Choice, false);
        grade.choices = Some(vec!["A".into(), "B".into()]);
        let defs = [
            battery,
            grade,
            def("inspected_on", FieldType::Date, false),
            def("deposit", FieldType::Money, false),
        ];
        assert!(codes(&defs, json!({"battery_kwh": 75.5, "grade": "A", "inspected_on": "2026-05-01", "deposit": 500000})).is_empty());
        let bad = codes(
            &defs,
            json!({"battery_kwh": 200, "grade": "C", "inspected_on": "01/05/2026", "deposit": -1}),
        );
        assert_eq!(bad.len(), 4, "{bad:?}");
        assert!(bad.iter().all(|(_, code)| code == "invalid_custom_field"));
    }

    #[test]
    fn unknown_keys_and_missing_required_fields_are_reported_by_name() {
        let defs = [def("trade_in_ok", FieldType::Boolean, true)];
        let errors = codes(&defs, json!({"colour": "red"}));
        assert_eq!(
            errors,
            vec![
                (
                    "custom_fields.colour".to_owned(),
                    "unknown_custom_field".to_owned()
                ),
                (
                    "custom_fields.trade_in_ok".to_owned(),
                    "required".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn a_patch_null_removes_a_value() {
        let stored = json!({"a": 1, "b": 2}).as_object().cloned().unwrap();
        let patch = json!({"a": null, "c": 3}).as_object().cloned().unwrap();
        assert_eq!(
            Value::Object(merge(stored.clone(), Some(patch))),
            json!({"b": 2, "c": 3})
        );
        assert_eq!(
            Value::Object(merge(stored.clone(), None)),
            Value::Object(stored)
        );
    }

    #[test]
    fn definitions_are_checked() {
        let mut choice = def("grade", FieldType::Choice, false);
        assert_eq!(check_definition(&choice)[0].code, "required");
        choice.choices = Some(vec!["A".into()]);
        assert!(check_definition(&choice).is_empty());
        let bad_key = def("Bad Key", FieldType::Text, false);
        assert_eq!(check_definition(&bad_key)[0].code, "invalid_key");
    }
}
