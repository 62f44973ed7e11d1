//! The plugin runtime: every dealer-specific rule runs as a sandboxed wasm component against
//! the WIT contract in `wit/platform` (`dealer:platform@0.2.0`, and `0.1.0` beside it, see
//! [`WIT_VERSIONS`]). This crate knows the WIT, not
//! the dealer model: the host (and an author's local harness) give it records and plugin data
//! through the traits of [`host_api`].
//!
//! - [`bindings`]: wasmtime's `bindgen!` of the WIT, one world per extension point.
//! - [`runtime`]: one engine (pooling allocator, fuel, epoch deadline), validation of uploads
//!   (what they import is checked before compiling, in `linking`), the on-disk artifact cache,
//!   the loaded components within a memory budget, and [`runtime::Runtime::invoke`], a fresh
//!   instance per call.
//! - [`deadline`]: the wall-clock deadline and the host's cancel handle, checked while a plugin
//!   computes and raced against every WASI wait.
//! - [`hooks`]: the seven extension points: typed call, the checks a decision passes before the
//!   host acts on it, and the built-in default.
//! - [`host_api`]: what a plugin may import, with WASI linked but granting nothing, effects
//!   collected (never applied here), record look-ups and plugin data behind
//!   [`host_api::Records`] and [`host_api::PluginData`].
//!
//! It depends on no web framework and no database driver: `cargo tree -p dealer-plugin-runtime`.

pub mod bindings;
pub mod deadline;
pub mod hooks;
pub mod host_api;
mod linking;
pub mod runtime;

use serde::{Deserialize, Serialize};

/// The newest WIT package version this runtime implements: what the SDK and `dealer-plugin
/// new` target.
pub const WIT_VERSION: &str = "0.2.0";

/// Every WIT package version this runtime implements, oldest first, each in its own folder of
/// `wit/platform/`. A component must target one of them (same `0.minor`, a patch not newer);
/// each version includes every interface of the one before it unchanged, so a component built
/// against an older one keeps running.
pub const WIT_VERSIONS: [&str; 2] = ["0.1.0", "0.2.0"];

/// An extension point: one WIT world, exporting one hook interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Hook {
    Commission,
    Approval,
    Loyalty,
    TicketRouting,
    Reminders,
    Integration,
    /// Since 0.2.0.
    Channel,
}

impl Hook {
    pub const ALL: [Hook; 7] = [
        Hook::Commission,
        Hook::Approval,
        Hook::Loyalty,
        Hook::TicketRouting,
        Hook::Reminders,
        Hook::Integration,
        Hook::Channel,
    ];

    /// The world's name, as stored and as written in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Commission => "commission",
            Hook::Approval => "approval",
            Hook::Loyalty => "loyalty",
            Hook::TicketRouting => "ticket-routing",
            Hook::Reminders => "reminders",
            Hook::Integration => "integration",
            Hook::Channel => "channel",
        }
    }

    /// The WIT version that introduced the extension point: a component of an older version
    /// cannot export it.
    pub fn since(self) -> &'static str {
        match self {
            Hook::Channel => "0.2.0",
            _ => "0.1.0",
        }
    }

    /// The one function the hook interface exports.
    pub fn function(self) -> &'static str {
        match self {
            Hook::Commission => "compute",
            Hook::Approval => "decide",
            Hook::Loyalty => "award-points",
            Hook::TicketRouting => "route-ticket",
            Hook::Reminders => "plan",
            Hook::Integration => "handle",
            Hook::Channel => "send",
        }
    }

    pub fn parse(text: &str) -> Option<Hook> {
        Hook::ALL.into_iter().find(|hook| hook.as_str() == text)
    }

    /// The interface the world exports, without its version: `dealer:platform/commission-hook`.
    pub fn export_interface(self) -> String {
        format!("dealer:platform/{}-hook", self.as_str())
    }
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// The plugin returned its own error.
    PluginError,
    /// The component trapped.
    Trap,
    /// The run used up its time or fuel.
    Timeout,
    /// The run hit its memory limit.
    OutOfMemory,
    /// The plugin's answer broke the hook's rules.
    InvalidOutput,
    /// A kill switch or a refused capability stopped the run.
    Denied,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Ok,
        Outcome::PluginError,
        Outcome::Trap,
        Outcome::Timeout,
        Outcome::OutOfMemory,
        Outcome::InvalidOutput,
        Outcome::Denied,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::PluginError => "plugin_error",
            Outcome::Trap => "trap",
            Outcome::Timeout => "timeout",
            Outcome::OutOfMemory => "out_of_memory",
            Outcome::InvalidOutput => "invalid_output",
            Outcome::Denied => "denied",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }

    pub fn is_error(self) -> bool {
        self != Outcome::Ok
    }
}

/// What HQ allows a plugin beyond computing on its input. Absent fields grant nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Grants {
    /// A private scratch directory (WASI preopen) for each run.
    pub private_dir: bool,
    /// Host names the plugin may send HTTPS requests to, e.g. `api.insurer.example`.
    pub outbound_hosts: Vec<String>,
    /// Secret handles the host may attach to those requests or sign with (`signing`), e.g.
    /// `insurer-api-key`.
    pub credentials: Vec<String>,
}
