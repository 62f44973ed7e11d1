//! The plugin platform: every dealer-specific rule runs as a sandboxed wasm component
//! against the WIT contract in `wit/platform` (`dealer:platform@0.1.0`).
//!
//! - [`runtime`] compiles, caches and runs components: a fresh instance per call, bounded in
//!   time (epoch deadline and fuel), memory and output, with WASI linked but granting nothing.
//! - [`host_api`] is what a plugin may import: logging, its configuration, a private store,
//!   read-only look-ups of the calling dealer's records, the clock, events, outbound HTTP.
//! - [`registry`] stores plugins, versions, artifacts and each dealer's bindings.
//! - [`runs`] is the run log, with the masked inputs kept for replay.
//! - [`hooks`] is what the domain calls: the dealer's plugin for a hook, its failure policy,
//!   and the built-in default when no plugin is enabled.

pub mod bindings;
pub mod catalogue;
pub mod config_schema;
pub mod dispatch;
pub mod hooks;
pub mod host_api;
pub mod registry;
pub mod runs;
pub mod runtime;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The WIT package version this host implements. Components must target a version that is
/// semver-compatible with it.
pub const WIT_VERSION: &str = "0.1.0";

/// An extension point: one WIT world, exporting one hook interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Hook {
    Commission,
    Approval,
    Loyalty,
    TicketRouting,
    Reminders,
    Integration,
}

impl Hook {
    pub const ALL: [Hook; 6] = [
        Hook::Commission,
        Hook::Approval,
        Hook::Loyalty,
        Hook::TicketRouting,
        Hook::Reminders,
        Hook::Integration,
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
