//! The API's contract with its clients: every answer the end-to-end suite gets is checked
//! against what the host's OpenAPI document promises for that operation and status (the
//! status is listed, the media type is the documented one, the body validates against the
//! documented schema). A client generated from the document, such as the console's, relies on
//! exactly this.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

/// Where the document's paths are served (its `servers` entry).
const BASE: &str = "/api/v1";

/// The OpenAPI document and the operations it lists.
pub struct Contract {
    doc: Value,
    operations: Vec<Operation>,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

struct Operation {
    method: String,
    template: String,
    segments: Vec<Option<String>>,
}

impl Operation {
    /// How many literal segments of the template `segments` matches, or `None` when it does
    /// not match at all.
    fn matches(&self, method: &str, segments: &[&str]) -> Option<usize> {
        if !self.method.eq_ignore_ascii_case(method) || self.segments.len() != segments.len() {
            return None;
        }
        let mut literal = 0;
        for (template, segment) in self.segments.iter().zip(segments) {
            match template {
                Some(text) if text == segment => literal += 1,
                Some(_) => return None,
                None => {}
            }
        }
        Some(literal)
    }
}

/// The contract of the host this test binary links.
pub fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| {
        let doc = serde_json::to_value(dealer_host::api::document())
            .expect("the OpenAPI document serialises");
        Contract::new(doc)
    })
}

/// Makes each component object schema refuse properties it does not document, so a field
/// the host sends but the document leaves out (invisible to a generated client) is caught. A
/// component that others extend (`allOf`) stays open; the one extending it is closed.
fn close_objects(doc: &mut Value) {
    let mut extended = Vec::new();
    collect_extended(doc, false, &mut extended);
    let Some(schemas) = doc["components"]["schemas"].as_object_mut() else {
        return;
    };
    for (name, schema) in schemas.iter_mut() {
        let object = schema.get("properties").is_some() || schema.get("allOf").is_some();
        if object
            && schema.get("additionalProperties").is_none()
            && !extended.iter().any(|e| e == name)
        {
            schema["unevaluatedProperties"] = Value::Bool(false);
        }
    }
}

/// The components named by a `$ref` inside an `allOf`.
fn collect_extended(value: &Value, in_all_of: bool, extended: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if in_all_of
                && let Some(Value::String(target)) = map.get("$ref")
                && let Some(name) = target.strip_prefix("#/components/schemas/")
            {
                extended.push(name.to_owned());
            }
            for (key, child) in map {
                collect_extended(child, key == "allOf", extended);
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_extended(item, in_all_of, extended);
            }
        }
        _ => {}
    }
}

impl Contract {
    pub fn new(mut doc: Value) -> Contract {
        close_objects(&mut doc);
        let mut operations = Vec::new();
        if let Some(paths) = doc["paths"].as_object() {
            for (template, item) in paths {
                let Some(item) = item.as_object() else {
                    continue;
                };
                for method in ["get", "put", "post", "delete", "patch"] {
                    if item.contains_key(method) {
                        operations.push(Operation {
                            method: method.to_owned(),
                            template: template.clone(),
                            segments: template
                                .trim_start_matches('/')
                                .split('/')
                                .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                                .collect(),
                        });
                    }
                }
            }
        }
        Contract {
            doc,
            operations,
            validators: Mutex::new(HashMap::new()),
        }
    }

    /// Checks one answer to `method path` (the URL's path, with the `/api/v1` prefix) against
    /// the document; `Err` says how it breaks it. Answers outside `/api/v1` are not the API's.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: Option<&str>,
        body: &str,
    ) -> Result<(), String> {
        let Some(path) = path.strip_prefix(BASE) else {
            return Ok(());
        };
        if path == "/openapi.json" {
            return Ok(());
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let operation = self
            .operations
            .iter()
            .filter_map(|op| op.matches(method, &segments).map(|literal| (literal, op)))
            .max_by_key(|(literal, _)| *literal)
            .map(|(_, op)| op);
        let Some(operation) = operation else {
            // No such operation: the router's own 404 or 405, a problem like every error.
            if status == 404 || status == 405 {
                return self.check_body(
                    "no operation",
                    &serde_json::json!({ "$ref": "#/components/schemas/Problem" }),
                    "application/problem+json",
                    content_type,
                    body,
                );
            }
            return Err(format!(
                "{method} {path} answered {status}, but the document has no such operation"
            ));
        };
        let name = format!("{} {}", operation.method.to_uppercase(), operation.template);
        let responses = &self.doc["paths"][&operation.template][&operation.method]["responses"];
        let response = match responses.get(status.to_string()) {
            Some(response) => response,
            None => {
                let listed: Vec<&String> = responses
                    .as_object()
                    .map(|r| r.keys().collect())
                    .unwrap_or_default();
                return Err(format!(
                    "{name} answered {status}, which the document does not list (it lists {listed:?}); the body was {body}"
                ));
            }
        };
        let Some(content) = response["content"].as_object().filter(|c| !c.is_empty()) else {
            return if body.trim().is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{name} {status} is documented without a body but sent {body}"
                ))
            };
        };
        let sent = content_type
            .map(|c| c.split(';').next().unwrap_or(c).trim().to_ascii_lowercase())
            .unwrap_or_default();
        let Some((media, entry)) =
            content
                .iter()
                .find(|(media, _)| **media == sent)
                .or_else(|| {
                    // A documented `text/*` or `*/*` stands for whatever file the route serves.
                    content.iter().find(|(media, _)| {
                        media.as_str() == "*/*" || media.as_str() == "application/octet-stream"
                    })
                })
        else {
            return Err(format!(
                "{name} {status} sent {sent:?}, the document says {:?}",
                content.keys().collect::<Vec<_>>()
            ));
        };
        let json = media == "application/json" || media.ends_with("+json");
        match entry.get("schema") {
            Some(schema) if json => self
                .check_body(&name, schema, media, content_type, body)
                .map_err(|e| format!("{name} {status}: {e}")),
            _ => Ok(()),
        }
    }

    fn check_body(
        &self,
        name: &str,
        schema: &Value,
        media: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> Result<(), String> {
        let sent = content_type
            .map(|c| c.split(';').next().unwrap_or(c).trim())
            .unwrap_or_default();
        if !sent.eq_ignore_ascii_case(media) {
            return Err(format!(
                "{name}: sent {sent:?}, the document says {media:?}"
            ));
        }
        let instance: Value = serde_json::from_str(body)
            .map_err(|e| format!("{name}: the body is not JSON ({e}): {body}"))?;
        let validator = self.validator(schema)?;
        let problems: Vec<String> = validator
            .iter_errors(&instance)
            .take(5)
            .map(|e| format!("at {:?}: {e}", e.instance_path().as_str()))
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the body breaks its schema {schema}: {}; the body was {body}",
                problems.join("; ")
            ))
        }
    }

    /// A validator for `schema`, whose `$ref`s point into the document's components.
    fn validator(&self, schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
        let key = schema.to_string();
        let mut cache = self.validators.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(validator) = cache.get(&key) {
            return Ok(validator.clone());
        }
        let mut root = serde_json::json!({ "allOf": [schema] });
        root["components"] = self.doc["components"].clone();
        let validator = Arc::new(
            jsonschema::draft202012::new(&root)
                .map_err(|e| format!("the document's schema {schema} does not compile: {e}"))?,
        );
        cache.insert(key, validator.clone());
        Ok(validator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Contract {
        Contract::new(json!({
            "openapi": "3.1.0",
            "paths": {
                "/things/{id}": { "get": { "responses": {
                    "200": { "description": "", "content": { "application/json": {
                        "schema": { "$ref": "#/components/schemas/Thing" } } } },
                    "404": { "description": "", "content": { "application/problem+json": {
                        "schema": { "$ref": "#/components/schemas/Problem" } } } },
                    "204": { "description": "" }
                } } },
                "/things/mine": { "get": { "responses": {
                    "200": { "description": "", "content": { "application/json": {
                        "schema": { "type": "array" } } } }
                } } }
            },
            "components": { "schemas": {
                "Thing": { "type": "object", "required": ["kind"],
                           "properties": { "kind": { "type": "string", "enum": ["car", "van"] } } },
                "Problem": { "type": "object", "required": ["code"],
                             "properties": { "code": { "type": "string" } } }
            } }
        }))
    }

    const JSON: Option<&str> = Some("application/json");
    const PROBLEM: Option<&str> = Some("application/problem+json");

    #[test]
    fn an_answer_as_documented_passes() {
        let c = doc();
        assert_eq!(
            c.check("GET", "/api/v1/things/7", 200, JSON, r#"{"kind":"car"}"#),
            Ok(())
        );
        assert_eq!(
            c.check(
                "GET",
                "/api/v1/things/7",
                404,
                PROBLEM,
                r#"{"code":"not_found"}"#
            ),
            Ok(())
        );
        assert_eq!(c.check("GET", "/api/v1/things/7", 204, None, ""), Ok(()));
        assert_eq!(c.check("GET", "/elsewhere", 500, None, "anything"), Ok(()));
    }

    #[test]
    fn a_literal_segment_wins_over_a_parameter() {
        assert_eq!(
            doc().check("GET", "/api/v1/things/mine", 200, JSON, "[]"),
            Ok(())
        );
    }

    #[test]
    fn an_undocumented_status_fails() {
        let e = doc()
            .check("GET", "/api/v1/things/7", 409, PROBLEM, r#"{"code":"x"}"#)
            .unwrap_err();
        assert!(e.contains("does not list"), "{e}");
    }

    #[test]
    fn a_value_outside_the_documented_enum_fails() {
        let e = doc()
            .check("GET", "/api/v1/things/7", 200, JSON, r#"{"kind":"Car"}"#)
            .unwrap_err();
        assert!(e.contains("/kind"), "{e}");
    }

    #[test]
    fn an_undocumented_field_fails() {
        let e = doc()
            .check(
                "GET",
                "/api/v1/things/7",
                200,
                JSON,
                r#"{"kind":"car","colour":"red"}"#,
            )
            .unwrap_err();
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn the_hosts_own_document_is_closed() {
        let health = r#"{"status":"ok","database":"sqlite","version":"0.1.0"}"#;
        assert_eq!(
            contract().check("GET", "/api/v1/health", 200, JSON, health),
            Ok(())
        );
        let extra = r#"{"status":"ok","database":"sqlite","version":"0.1.0","uptime":1}"#;
        assert!(
            contract()
                .check("GET", "/api/v1/health", 200, JSON, extra)
                .is_err()
        );
    }

    #[test]
    fn a_missing_required_field_fails() {
        assert!(
            doc()
                .check("GET", "/api/v1/things/7", 200, JSON, "{}")
                .is_err()
        );
    }

    #[test]
    fn an_error_sent_as_plain_json_fails() {
        let e = doc()
            .check(
                "GET",
                "/api/v1/things/7",
                404,
                JSON,
                r#"{"code":"not_found"}"#,
            )
            .unwrap_err();
        assert!(e.contains("application/problem+json"), "{e}");
    }

    #[test]
    fn a_body_where_none_is_documented_fails() {
        assert!(
            doc()
                .check("GET", "/api/v1/things/7", 204, JSON, "{}")
                .is_err()
        );
    }

    #[test]
    fn an_unknown_route_must_answer_a_problem() {
        let c = doc();
        assert_eq!(
            c.check(
                "GET",
                "/api/v1/nothing",
                404,
                PROBLEM,
                r#"{"code":"not_found"}"#
            ),
            Ok(())
        );
        assert!(c.check("GET", "/api/v1/nothing", 200, JSON, "{}").is_err());
    }
}
