//! The one error type of the host's domain layer. It knows nothing of HTTP: the API layer maps
//! it once into an `application/problem+json` response (`api::problem`).

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
    /// A sign-in with a wrong username or password (which of the two is not told).
    #[error("the username or the password is wrong")]
    SignInFailed,
    /// A sign-in refused for a while after repeated wrong passwords.
    #[error("too many wrong passwords: sign-in is locked for {} more minutes", retry_after_seconds.div_ceil(60))]
    SignInLocked { retry_after_seconds: u64 },
    /// A write with a session cookie that does not carry the session's CSRF token.
    #[error("send the session's CSRF token in the X-CSRF-Token header with every write")]
    CsrfRejected,
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// An owner's link that is not (or no longer) valid.
    #[error(
        "this link is not valid; check that it was copied whole, or ask the dealer for a new one"
    )]
    LinkNotFound,
    /// Something that existed and is no longer usable (an expired or used link), with the
    /// dealer the owner may ask for a new one when it is known.
    #[error("{message}")]
    Gone {
        code: &'static str,
        message: String,
        dealer_name: Option<String>,
        dealer_phone: Option<String>,
    },
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
    /// A quota of stored things (plugin versions, their bytes) would be exceeded.
    #[error("{message}")]
    QuotaExceeded { code: &'static str, message: String },
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    /// The route exists but not with that method; the answer's `Allow` header lists the
    /// methods it takes.
    #[error("this route does not take that method; the Allow header lists those it takes")]
    MethodNotAllowed,
    #[error(
        "the dealer's {hook} plugin {plugin}@{version} failed ({}): {message}; its policy is to refuse rather than fall back (run {run_id} in the plugin run log)",
        outcome.as_str()
    )]
    PluginFailed {
        hook: &'static str,
        plugin: String,
        version: String,
        outcome: dealer_plugin_runtime::Outcome,
        message: String,
        run_id: i64,
    },
    #[error("the plugin cannot be loaded: {0}")]
    PluginUnavailable(String),
    /// The database cannot be reached now (the pool is exhausted or closed, the connection
    /// failed): the request may be retried shortly.
    #[error("the database is unavailable just now; retry in a few seconds")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// A file the host makes for a person (an export) could not be written.
    #[error("the file could not be written: {0}")]
    FileNotWritten(String),
}

impl From<sqlx::Error> for Error {
    /// An outage (no connection to be had, or the one in use broke) is `Unavailable`; any
    /// other failure of a statement is `Database`.
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Error::Unavailable(e),
            e => Error::Database(e),
        }
    }
}

/// An attempt to reach a record outside the caller's scope, to be audited (made by
/// `Error::denied`, next to the caller's type in `access`).
#[derive(Debug, Clone)]
pub struct Denial {
    /// Who tried, as the audit log names an actor: the key, its role and its unit.
    pub key_id: i64,
    pub role: &'static str,
    pub org_id: i64,
    pub entity: &'static str,
    pub id: i64,
    pub dealer_id: i64,
}

impl Error {
    pub fn invalid(field: &str, code: &str, message: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldError::new(field, code, message)])
    }
}

/// A unique key refused the write: the record exists already.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_unavailable_and_a_failed_statement_is_a_database_error() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        for outage in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(refused),
            sqlx::Error::WorkerCrashed,
        ] {
            assert!(matches!(Error::from(outage), Error::Unavailable(_)));
        }
        assert!(matches!(
            Error::from(sqlx::Error::RowNotFound),
            Error::Database(_)
        ));
        assert!(matches!(
            Error::from(sqlx::Error::Protocol("bad".into())),
            Error::Database(_)
        ));
    }
}
