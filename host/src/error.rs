//! The one error type of the host's domain layer, mapped once into an
//! `application/problem+json` response (RFC 9457) with a stable machine-readable `code`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// One problem with one field of a request.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct FieldError {
    /// The JSON path of the field, e.g. `vin` or `custom_fields.battery_kwh`.
    pub field: String,
    /// Stable code, e.g. `invalid_vin`, `required`, `unknown_field`.
    pub code: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldError>),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("no {entity} with that id is visible to you")]
    NotFound { entity: &'static str },
    /// The record exists outside the caller's scope. The caller is told exactly what
    /// `NotFound` tells them; the attempt is audited once the request's transaction is over.
    #[error("no {} with that id is visible to you", .0.entity)]
    Denied(Box<Denial>),
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// An owner's link that is not (or no longer) valid.
    #[error(
        "this link is not valid; check that it was copied whole, or ask the dealer for a new one"
    )]
    LinkNotFound,
    /// Something that existed and is no longer usable (an expired or used link).
    #[error("{message}")]
    Gone { code: &'static str, message: String },
    /// An upload of a kind that is not accepted.
    #[error("{0}")]
    UnsupportedUpload(String),
    #[error("cannot go from {from} to {to}")]
    InvalidTransition {
        from: String,
        to: String,
        allowed: Vec<String>,
    },
    #[error("the resource changed since you read it (current version {current})")]
    StaleVersion { current: i64 },
    #[error("send If-Match with the ETag you read, so a concurrent change is not overwritten")]
    PreconditionRequired,
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    #[error(
        "the dealer's {hook} plugin {plugin}@{version} failed ({}): {message}; its policy is to refuse rather than fall back (run {run_id} in the plugin run log)",
        outcome.as_str()
    )]
    PluginFailed {
        hook: &'static str,
        plugin: String,
        version: String,
        outcome: crate::plugins::runs::Outcome,
        message: String,
        run_id: i64,
    },
    #[error("the plugin cannot be loaded: {0}")]
    PluginUnavailable(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

/// An attempt to reach a record outside the caller's scope, to be audited.
#[derive(Debug, Clone)]
pub struct Denial {
    pub caller: crate::access::Caller,
    pub entity: &'static str,
    pub id: i64,
    pub dealer_id: i64,
}

impl Error {
    pub fn denied(
        caller: &crate::access::Caller,
        entity: &'static str,
        id: i64,
        dealer_id: i64,
    ) -> Self {
        Error::Denied(Box::new(Denial {
            caller: caller.clone(),
            entity,
            id,
            dealer_id,
        }))
    }

    pub fn invalid(field: &str, code: &str, message: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldError::new(field, code, message)])
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Error::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            Error::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            Error::NotFound { .. } | Error::Denied(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            Error::LinkNotFound => (StatusCode::NOT_FOUND, "link_not_found"),
            Error::Gone { code, .. } => (StatusCode::GONE, code),
            Error::UnsupportedUpload(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_file_type")
            }
            Error::InvalidTransition { .. } => (StatusCode::CONFLICT, "invalid_transition"),
            Error::StaleVersion { .. } => (StatusCode::PRECONDITION_FAILED, "stale_version"),
            Error::PreconditionRequired => (StatusCode::PRECONDITION_REQUIRED, "if_match_required"),
            Error::IdempotencyKeyReused => {
                (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
            }
            Error::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Error::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Error::PluginFailed { .. } => (StatusCode::FAILED_DEPENDENCY, "plugin_failed"),
            Error::PluginUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "plugin_unavailable"),
            Error::Database(e) if is_unique_violation(e) => {
                (StatusCode::CONFLICT, "already_exists")
            }
            Error::Database(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `urn:dealer:problem:<code>`
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// Stable, machine-readable.
    pub code: String,
    /// For a person.
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// With `invalid_transition`: the states that may follow the current one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<String>>,
    /// With `stale_version`: the version now stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i64>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let detail = match &self {
            Error::Database(e) if is_unique_violation(e) => {
                "a record with these unique values already exists".to_owned()
            }
            Error::Database(e) => {
                tracing::error!(error = %e, "database error");
                "an internal error occurred; it has been logged".to_owned()
            }
            other => other.to_string(),
        };
        let problem = Problem {
            kind: format!("urn:dealer:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            code: code.to_owned(),
            detail,
            errors: match &self {
                Error::Invalid(errors) => errors.clone(),
                _ => Vec::new(),
            },
            allowed: match &self {
                Error::InvalidTransition { allowed, .. } => Some(allowed.clone()),
                _ => None,
            },
            current_version: match &self {
                Error::StaleVersion { current } => Some(*current),
                _ => None,
            },
        };
        let mut response = (status, axum::Json(problem)).into_response();
        if let Error::Denied(denial) = self {
            response.extensions_mut().insert(*denial);
        }
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
