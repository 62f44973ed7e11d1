//! The host API, one module per WIT interface of the `imports` world.

/// Structured logging into the host's log and the plugin's run record.
pub mod log {
    pub use crate::bindings::imports::dealer::platform::log::log;
    pub use crate::types::Level;

    /// Logs `message` at [`Level::Trace`].
    pub fn trace(message: &str) {
        log(Level::Trace, message);
    }

    /// Logs `message` at [`Level::Debug`].
    pub fn debug(message: &str) {
        log(Level::Debug, message);
    }

    /// Logs `message` at [`Level::Info`].
    pub fn info(message: &str) {
        log(Level::Info, message);
    }

    /// Logs `message` at [`Level::Warn`].
    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }

    /// Logs `message` at [`Level::Error`].
    pub fn error(message: &str) {
        log(Level::Error, message);
    }
}

/// The plugin's configuration for the calling dealer, validated by the host when it was saved.
pub mod config {
    use crate::bindings::imports::dealer::platform::config as wit;
    use serde::de::DeserializeOwned;

    /// One top-level value of the configuration, `None` when the key is not set.
    ///
    /// The error names the key and says why its value is not a `T`.
    pub fn get<T: DeserializeOwned>(key: &str) -> Result<Option<T>, String> {
        wit::get(key)
            .map(|json| {
                serde_json::from_str(&json).map_err(|error| format!("config `{key}`: {error}"))
            })
            .transpose()
    }

    /// The whole configuration object, e.g. into a struct whose fields have serde defaults.
    pub fn document<T: DeserializeOwned>() -> Result<T, String> {
        serde_json::from_str(&wit::document()).map_err(|error| format!("config: {error}"))
    }
}

/// A small key-value store private to this plugin and this dealer. Writes made by a run that
/// fails are discarded; a replay never writes.
pub mod store {
    pub use crate::bindings::imports::dealer::platform::store::{delete, get, set};
}

/// Read-only look-ups of the calling dealer's own records. Records of other dealers are
/// answered as [`HostError::NotFound`](crate::types::HostError::NotFound).
pub mod records {
    pub use crate::bindings::imports::dealer::platform::records::{
        customer, order, vehicle, vehicles_of,
    };
    pub use crate::types::{Customer, Order, OrderLine, Vehicle};
}

/// The time of the invocation, fixed when the run starts (a replay sees the recorded time).
pub mod clock {
    pub use crate::bindings::imports::dealer::platform::clock::{now, today};
}

/// Events and notifications, delivered by the host only if the run succeeds.
pub mod events {
    pub use crate::bindings::imports::dealer::platform::events::{emit, notify};
    pub use crate::types::Notification;
}

/// Outbound HTTPS to hosts HQ allowlisted for this plugin. Secrets never enter the guest: a
/// request names a credential handle and the host adds the secret.
///
/// ```no_run
/// use dealer_sdk::outbound::{self, Request};
///
/// # fn quote() -> Result<String, String> {
/// let response = outbound::send(
///     &Request::get("https://api.insurer.example/quotes/42").bearer("insurer-api-key"),
/// )?;
/// Ok(response.text().into_owned())
/// # }
/// ```
pub mod outbound {
    use std::borrow::Cow;

    pub use crate::bindings::imports::dealer::platform::outbound::{
        Credential, CredentialPlacement, Method, Request, Response, send,
    };

    impl Request {
        /// A request with no headers, no body and no credential.
        pub fn new(method: Method, url: impl Into<String>) -> Self {
            Request {
                method,
                url: url.into(),
                headers: Vec::new(),
                body: Vec::new(),
                credential: None,
            }
        }

        /// A `GET` request.
        pub fn get(url: impl Into<String>) -> Self {
            Self::new(Method::Get, url)
        }

        /// A `POST` request with `body`.
        pub fn post(url: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
            Self::new(Method::Post, url).body(body)
        }

        /// Adds a header.
        pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
            self.headers.push((name.into(), value.into()));
            self
        }

        /// Replaces the body.
        pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
            self.body = body.into();
            self
        }

        /// Has the host send the credential `handle` as `Authorization: Bearer <secret>`.
        pub fn bearer(mut self, handle: impl Into<String>) -> Self {
            self.credential = Some(Credential {
                handle: handle.into(),
                placement: CredentialPlacement::Bearer,
            });
            self
        }

        /// Has the host send the credential `handle` as the value of the header `name`.
        pub fn credential_header(
            mut self,
            handle: impl Into<String>,
            name: impl Into<String>,
        ) -> Self {
            self.credential = Some(Credential {
                handle: handle.into(),
                placement: CredentialPlacement::Header(name.into()),
            });
            self
        }
    }

    impl Response {
        /// Whether the status is 2xx.
        pub fn is_success(&self) -> bool {
            (200..300).contains(&self.status)
        }

        /// The body as UTF-8 text, invalid sequences replaced by U+FFFD.
        pub fn text(&self) -> Cow<'_, str> {
            String::from_utf8_lossy(&self.body)
        }
    }
}

/// Signatures made by the host with a dealer's secret the plugin never sees: name the
/// credential handle HQ granted, get the HMAC of the data. The key is the secret exactly as
/// the dealer stored it.
///
/// ```no_run
/// use dealer_sdk::signing;
///
/// # fn sign(string_to_sign: &str) -> Result<Vec<u8>, String> {
/// let signature = signing::hmac_sha1("aliyun-sms-secret", string_to_sign.as_bytes())?;
/// # Ok(signature)
/// # }
/// ```
pub mod signing {
    pub use crate::bindings::imports::dealer::platform::signing::{hmac_sha1, hmac_sha256};
}
