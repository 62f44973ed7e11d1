//! The plugin platform on the host's side. The runtime itself (engine, bindings, hooks, the
//! host API) is the crate `dealer-plugin-runtime`, re-exported here; this module keeps what
//! needs the database and the dealer model:
//!
//! - [`registry`] stores plugins, versions, artifacts and each dealer's bindings (and
//!   implements the runtime's `PluginData`: a plugin's store and the dealer's secrets).
//! - [`running`] is the live calls running now, stopped when a kill switch covers them.
//! - [`runs`] is the run log, with the masked inputs kept for replay.
//! - [`dispatch`] is what the domain calls: the dealer's plugin for a hook, its failure
//!   policy, and the built-in default when no plugin is enabled.
//! - [`config_schema`] is the schema a dealer's configuration is checked against.
//! - [`catalogue`] publishes built components from the operator's command line.
//! - [`manage`] is the use cases that change the registry, each with its audit entry.
//!
//! Record look-ups for a run are the domain's ([`crate::lookups`]), handed to [`dispatch`]
//! when the host starts, so this module never reads customers, vehicles or orders.

pub mod catalogue;
pub mod config_schema;
pub mod dispatch;
pub mod manage;
pub mod registry;
pub mod running;
pub mod runs;

pub use dealer_plugin_runtime::{Hook, WIT_VERSION, bindings, hooks, host_api, runtime};

use dealer_plugin_runtime::runtime::RuntimeError;

use crate::error::Error;

impl From<RuntimeError> for Error {
    /// A refused upload is the uploader's error (422, with a code per reason); a cache that
    /// cannot be written is the host's.
    fn from(error: RuntimeError) -> Error {
        match error {
            RuntimeError::TooLarge { limit, .. } => Error::PayloadTooLarge { limit },
            RuntimeError::Cache(e) => {
                tracing::error!(error = %e, "cannot write the plugin cache");
                Error::PluginUnavailable("the host could not cache the compiled component".into())
            }
            other => {
                let code = match &other {
                    RuntimeError::CoreModule => "not_a_component",
                    RuntimeError::NotWasm(_) => "not_wasm",
                    RuntimeError::UnsupportedVersion { .. } => "unsupported_wit_version",
                    RuntimeError::NoHook | RuntimeError::SeveralHooks(_) => "unknown_world",
                    RuntimeError::Link(_) => "unsatisfied_imports",
                    _ => "invalid_component",
                };
                Error::invalid("body", code, other.to_string())
            }
        }
    }
}
