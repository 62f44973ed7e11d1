//! Errors as HTTP answers: every [`Error`] becomes one `application/problem+json` response
//! (RFC 9457) with a stable, machine-readable `code`. The one place where a domain error meets
//! a status code.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{Error, FieldError, is_unique_violation};

/// The seconds a client is told to wait (`Retry-After`) before retrying a request that found
/// the database unavailable.
const RETRY_AFTER_SECONDS: u32 = 5;

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
    /// With an owner's link that expired or was used (410): the dealer who sent it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dealer_name: Option<String>,
    /// With an owner's link that expired or was used (410): the number to call the dealer on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dealer_phone: Option<String>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = status_and_code(&self);
        let detail = match &self {
            Error::Database(e) if is_unique_violation(e) => {
                "a record with these unique values already exists".to_owned()
            }
            Error::Database(e) => {
                tracing::error!(error = %e, "database error");
                "an internal error occurred; it has been logged".to_owned()
            }
            Error::Unavailable(e) => {
                tracing::warn!(error = %e, "database unavailable");
                self.to_string()
            }
            Error::FileNotWritten(e) => {
                tracing::error!(error = %e, "file not written");
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
            dealer_name: match &self {
                Error::Gone { dealer_name, .. } => dealer_name.clone(),
                _ => None,
            },
            dealer_phone: match &self {
                Error::Gone { dealer_phone, .. } => dealer_phone.clone(),
                _ => None,
            },
        };
        let mut response = (status, axum::Json(problem)).into_response();
        match &self {
            Error::Unavailable(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            }
            Error::SignInLocked {
                retry_after_seconds,
            } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
            }
            _ => {}
        }
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

/// The status and the stable code of each error.
fn status_and_code(error: &Error) -> (StatusCode, &'static str) {
    match error {
        Error::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        Error::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
        Error::NotFound { .. } | Error::Denied(_) => (StatusCode::NOT_FOUND, "not_found"),
        Error::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        Error::SignInFailed => (StatusCode::UNAUTHORIZED, "login_failed"),
        Error::SignInLocked { .. } => (StatusCode::TOO_MANY_REQUESTS, "login_locked"),
        Error::CsrfRejected => (StatusCode::FORBIDDEN, "csrf"),
        Error::Conflict { code, .. } => (StatusCode::CONFLICT, code),
        Error::LinkNotFound => (StatusCode::NOT_FOUND, "link_not_found"),
        Error::Gone { code, .. } => (StatusCode::GONE, code),
        Error::UnsupportedUpload(_) => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_file_type")
        }
        Error::InvalidTransition { .. } => (StatusCode::CONFLICT, "invalid_transition"),
        Error::StaleVersion { .. } => (StatusCode::PRECONDITION_FAILED, "stale_version"),
        Error::PreconditionRequired => (StatusCode::PRECONDITION_REQUIRED, "if_match_required"),
        Error::IdempotencyKeyReused => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
        Error::QuotaExceeded { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
        Error::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
        Error::UnsupportedMediaType => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
        }
        Error::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        Error::PluginFailed { .. } => (StatusCode::FAILED_DEPENDENCY, "plugin_failed"),
        Error::PluginUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "plugin_unavailable"),
        Error::Database(e) if is_unique_violation(e) => (StatusCode::CONFLICT, "already_exists"),
        Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        Error::Database(_) | Error::FileNotWritten(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn problem(error: Error) -> (StatusCode, String, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, content_type, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn an_invalid_transition_is_a_conflict_naming_the_allowed_states() {
        let (status, content_type, body) = problem(Error::InvalidTransition {
            from: "closed".into(),
            to: "in_progress".into(),
            allowed: vec![],
        })
        .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(body["code"], "invalid_transition");
        assert_eq!(body["allowed"], serde_json::json!([]));
    }

    #[tokio::test]
    async fn a_stale_version_names_the_current_one() {
        let (status, _, body) = problem(Error::StaleVersion { current: 7 }).await;
        assert_eq!(status, StatusCode::PRECONDITION_FAILED);
        assert_eq!(body["code"], "stale_version");
        assert_eq!(body["current_version"], 7);
    }

    #[tokio::test]
    async fn an_unavailable_database_is_503_with_retry_after() {
        let response = Error::from(sqlx::Error::PoolTimedOut).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        let (_, content_type, body) = problem(Error::from(sqlx::Error::PoolClosed)).await;
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(body["code"], "unavailable");
    }

    #[tokio::test]
    async fn a_database_error_is_internal_and_tells_nothing_of_the_query() {
        let (status, _, body) = problem(Error::Database(sqlx::Error::RowNotFound)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["code"], "internal");
        assert_eq!(
            body["detail"],
            "an internal error occurred; it has been logged"
        );
    }
}
