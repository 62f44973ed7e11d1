//! Extractors and responders shared by every handler: authentication, JSON bodies and query
//! strings whose rejections become problem+json, `If-Match`, `Idempotency-Key`, ETags.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{AppState, session};
use crate::access::{Caller, keys};
use crate::error::{Error, FieldError};
use crate::model::Versioned;

/// A JSON body; malformed JSON, wrong types, unknown fields, oversized bodies and text holding
/// a NUL character (which PostgreSQL cannot store and no person types) are refused as
/// problem+json before the handler runs.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        if !is_json(req.headers()) {
            return Err(Error::UnsupportedMediaType);
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(JsonRejection::from)?;
        let axum::Json(value) = axum::Json::<T>::from_bytes(&body)?;
        // A NUL can only arrive escaped (`\u0000`); the walk finds where, and rules out an
        // escaped backslash followed by the letters `u0000`.
        if body.windows(6).any(|w| w == b"\\u0000")
            && let Ok(tree) = serde_json::from_slice::<serde_json::Value>(&body)
            && let Some(field) = nul_in(&tree, String::new())
        {
            return Err(nul_character(if field.is_empty() {
                "body".into()
            } else {
                field
            }));
        }
        Ok(Json(value))
    }
}

/// `application/json` or any `application/*+json`, as axum's own `Json` accepts.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|s| s.ends_with("+json"))
}

/// The path (`phones[0].number`) of the first key or string holding a NUL, `""` for the root.
fn nul_in(value: &serde_json::Value, at: String) -> Option<String> {
    match value {
        serde_json::Value::String(s) => s.contains('\0').then_some(at),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_in(item, format!("{at}[{i}]"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(key, item)| {
            let path = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            if key.contains('\0') {
                Some(path)
            } else {
                nul_in(item, path)
            }
        }),
        _ => None,
    }
}

fn nul_character(field: String) -> Error {
    let message = format!("{field} must not hold a NUL character");
    Error::Invalid(vec![FieldError::new(field, "nul_character", message)])
}

/// The first parameter of a query string or path whose value holds a percent-encoded NUL.
fn nul_in_uri(part: &str) -> Option<String> {
    part.split(['&', '/'])
        .find(|piece| piece.contains("%00"))
        .map(|piece| piece.split('=').next().unwrap_or(piece).to_owned())
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl From<JsonRejection> for Error {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge {
                limit: super::BODY_LIMIT,
            },
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Error::UnsupportedMediaType,
            StatusCode::UNPROCESSABLE_ENTITY => {
                let text = rejection.body_text();
                let message = text
                    .strip_prefix("Failed to deserialize the JSON body into the target type: ")
                    .unwrap_or(&text)
                    .to_owned();
                let (field, detail) = match message.split_once(": ") {
                    Some((field, detail)) if !field.contains(' ') => {
                        (field.to_owned(), detail.to_owned())
                    }
                    _ => ("body".to_owned(), message.clone()),
                };
                let code = if detail.starts_with("unknown field") {
                    "unknown_field"
                } else {
                    "invalid_value"
                };
                Error::Invalid(vec![FieldError::new(field, code, detail)])
            }
            _ => Error::BadRequest {
                code: "malformed_json",
                message: rejection.body_text(),
            },
        }
    }
}

/// A query string; a malformed one is `400 invalid_query`, one holding a NUL `422`.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        if let Some(field) = parts.uri.query().and_then(nul_in_uri) {
            return Err(nul_character(field));
        }
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}

impl From<QueryRejection> for Error {
    fn from(rejection: QueryRejection) -> Self {
        Error::BadRequest {
            code: "invalid_query",
            message: rejection.body_text(),
        }
    }
}

/// Path parameters; a malformed one is `400 invalid_path`, one holding a NUL `422`.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        if nul_in_uri(parts.uri.path()).is_some() {
            return Err(nul_character("path".into()));
        }
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(value))
    }
}

impl From<PathRejection> for Error {
    fn from(rejection: PathRejection) -> Self {
        Error::BadRequest {
            code: "invalid_path",
            message: rejection.body_text(),
        }
    }
}

/// A key (`Authorization: Bearer dk_…` or `X-API-Key`) or, without one, a console session
/// cookie (whose writes carry the CSRF token, [`super::session`]).
impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()));
        let caller = match presented {
            Some(key) => {
                let mut conn = state.db.pool().acquire().await?;
                keys::authenticate(&mut conn, key.trim()).await?
            }
            None => match session::cookie_token(&parts.headers) {
                Some(token) => session::caller_of_cookie(parts, state, token).await?.caller,
                None => {
                    return Err(Error::Unauthenticated(
                        "sign in, or send your API key as `Authorization: Bearer dk_...` (create one with `dealer-host keys create`)",
                    ));
                }
            },
        };
        tracing::Span::current().record("key_id", caller.key_id);
        Ok(caller)
    }
}

/// The version a client read (from the ETag) and wants to update. Required on updates:
/// without it a concurrent change could be silently overwritten.
pub struct IfMatch(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Err(Error::PreconditionRequired);
        };
        value
            .to_str()
            .ok()
            .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
            .and_then(|v| v.parse().ok())
            .map(IfMatch)
            .ok_or(Error::BadRequest {
                code: "invalid_if_match",
                message: "If-Match must be the ETag you read, e.g. \"3\"".into(),
            })
    }
}

/// `Idempotency-Key` of a create: a retried POST with the same key replays the first answer.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        match value.to_str() {
            Ok(v) if !v.trim().is_empty() && v.len() <= 255 => {
                Ok(IdempotencyKey(Some(v.trim().to_owned())))
            }
            _ => Err(Error::BadRequest {
                code: "invalid_idempotency_key",
                message: "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
            }),
        }
    }
}

pub fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("a number is a valid header value")
}

/// 200 with the record and its ETag.
pub fn tagged<T: Serialize + Versioned>(record: &T) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, etag(record.version()));
    (StatusCode::OK, headers, axum::Json(record)).into_response()
}
