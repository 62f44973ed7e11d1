//! A plugin's configuration schema, and the check every dealer configuration passes before
//! it is saved.
//!
//! A schema is small on purpose, so that a dealer's IT person can read it:
//!
//! ```json
//! { "fields": {
//!     "percent":  { "type": "integer", "min": 0, "max": 100, "required": true },
//!     "keywords": { "type": "list" },
//!     "team":     { "type": "choice", "choices": ["service", "safety"] } } }
//! ```
//!
//! Types: `text`, `integer`, `number`, `money` (fen, a whole number, not negative), `boolean`,
//! `date` (`YYYY-MM-DD`), `choice` (one of `choices`), `list` (of text), `object` (any JSON
//! object). `min`/`max` bound numbers, and the length of text and lists. Keys the schema does
//! not name are refused.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, FieldError, Result};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Schema {
    #[serde(default)]
    fields: BTreeMap<String, Field>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Field {
    #[serde(rename = "type")]
    kind: Kind,
    #[serde(default)]
    required: bool,
    min: Option<f64>,
    max: Option<f64>,
    choices: Option<Vec<String>>,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Text,
    Integer,
    Number,
    Money,
    Boolean,
    Date,
    Choice,
    List,
    Object,
}

fn parse(schema: &Value) -> std::result::Result<Schema, String> {
    let schema: Schema = serde_json::from_value(schema.clone()).map_err(|e| e.to_string())?;
    for (key, field) in &schema.fields {
        if matches!(field.kind, Kind::Choice) && field.choices.as_ref().is_none_or(|c| c.is_empty())
        {
            return Err(format!("field `{key}` is a choice with no `choices`"));
        }
        if field.description.len() > 500 {
            return Err(format!(
                "the description of `{key}` is longer than 500 bytes"
            ));
        }
    }
    Ok(schema)
}

/// Refuses a schema this module cannot check configurations against.
pub fn check_schema(schema: &Value) -> Result<()> {
    parse(schema).map(|_| ()).map_err(|message| {
        Error::invalid(
            "config_schema",
            "invalid_config_schema",
            format!("{message} (see the plugin registry documentation for the schema format)"),
        )
    })
}

/// Checks a dealer's `config` for a plugin with `schema` (no schema: any JSON object), one
/// error per problem, each naming the field as `config.<key>`.
pub fn check(schema: Option<&Value>, config: &Value) -> Result<()> {
    let Some(object) = config.as_object() else {
        return Err(Error::invalid(
            "config",
            "not_an_object",
            "the configuration must be a JSON object",
        ));
    };
    let Some(schema) = schema else {
        return Ok(());
    };
    let schema = parse(schema).map_err(|message| {
        Error::invalid(
            "config",
            "invalid_config_schema",
            format!("the plugin's configuration schema is invalid: {message}"),
        )
    })?;
    let mut errors = Vec::new();
    for key in object.keys() {
        if !schema.fields.contains_key(key) {
            errors.push(FieldError::new(
                format!("config.{key}"),
                "unknown_config_key",
                format!(
                    "the plugin has no setting `{key}`; it has: {}",
                    schema.fields.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    for (key, field) in &schema.fields {
        let path = format!("config.{key}");
        match object.get(key) {
            None | Some(Value::Null) if field.required => errors.push(FieldError::new(
                path,
                "required",
                format!("`{key}` is required"),
            )),
            None | Some(Value::Null) => {}
            Some(value) => {
                if let Err(message) = check_value(field, value) {
                    errors.push(FieldError::new(path, "invalid_config_value", message));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(errors))
    }
}

fn check_value(field: &Field, value: &Value) -> std::result::Result<(), String> {
    let bounded = |n: f64, what: &str| -> std::result::Result<(), String> {
        if let Some(min) = field.min
            && n < min
        {
            return Err(format!("{what} must be at least {min}"));
        }
        if let Some(max) = field.max
            && n > max
        {
            return Err(format!("{what} must be at most {max}"));
        }
        Ok(())
    };
    match field.kind {
        Kind::Text => bounded(
            value.as_str().ok_or("expected text")?.chars().count() as f64,
            "the length",
        ),
        Kind::Integer => bounded(
            value.as_i64().ok_or("expected a whole number")? as f64,
            "the value",
        ),
        Kind::Number => bounded(value.as_f64().ok_or("expected a number")?, "the value"),
        Kind::Money => bounded(
            value
                .as_i64()
                .filter(|n| *n >= 0)
                .ok_or("expected an amount in fen (a whole number, not negative)")?
                as f64,
            "the amount",
        ),
        Kind::Boolean => value
            .as_bool()
            .map(|_| ())
            .ok_or_else(|| "expected true or false".into()),
        Kind::Date => value
            .as_str()
            .and_then(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .map(|_| ())
            .ok_or_else(|| "expected a date as YYYY-MM-DD".into()),
        Kind::Choice => {
            let choices = field.choices.as_deref().unwrap_or_default();
            match value.as_str() {
                Some(s) if choices.iter().any(|c| c == s) => Ok(()),
                _ => Err(format!("expected one of: {}", choices.join(", "))),
            }
        }
        Kind::List => {
            let items = value.as_array().ok_or("expected a list of text")?;
            if items.iter().any(|i| !i.is_string()) {
                return Err("expected a list of text".into());
            }
            bounded(items.len() as f64, "the number of items")
        }
        Kind::Object => value
            .is_object()
            .then_some(())
            .ok_or_else(|| "expected a JSON object".into()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn codes(result: Result<()>) -> Vec<(String, String)> {
        match result {
            Err(Error::Invalid(errors)) => errors.into_iter().map(|e| (e.field, e.code)).collect(),
            other => panic!("expected validation errors, got {other:?}"),
        }
    }

    #[test]
    fn a_configuration_is_checked_field_by_field() {
        let schema = json!({ "fields": {
            "percent": { "type": "integer", "min": 0, "max": 100, "required": true },
            "keywords": { "type": "list", "max": 3 },
            "team": { "type": "choice", "choices": ["service", "安全"] },
        }});
        assert!(check(Some(&schema), &json!({ "percent": 5, "team": "安全" })).is_ok());
        assert_eq!(
            codes(check(
                Some(&schema),
                &json!({ "percent": 101, "keywords": ["a", "b", "c", "d"], "team": "x", "extra": 1 })
            )),
            vec![
                ("config.extra".to_owned(), "unknown_config_key".to_owned()),
                (
                    "config.keywords".to_owned(),
                    "invalid_config_value".to_owned()
                ),
                (
                    "config.percent".to_owned(),
                    "invalid_config_value".to_owned()
                ),
                ("config.team".to_owned(), "invalid_config_value".to_owned()),
            ]
        );
        assert_eq!(
            codes(check(Some(&schema), &json!({}))),
            vec![("config.percent".to_owned(), "required".to_owned())]
        );
    }

    #[test]
    fn without_a_schema_any_object_passes_but_nothing_else() {
        assert!(check(None, &json!({ "anything": [1, 2] })).is_ok());
        assert_eq!(
            codes(check(None, &json!([1]))),
            vec![("config".to_owned(), "not_an_object".to_owned())]
        );
    }

    #[test]
    fn a_schema_that_cannot_be_checked_is_refused() {
        assert!(check_schema(&json!({ "fields": { "x": { "type": "choice" } } })).is_err());
        assert!(check_schema(&json!({ "fields": { "x": { "type": "colour" } } })).is_err());
        assert!(check_schema(&json!({ "fields": { "x": { "type": "money" } } })).is_ok());
    }
}
