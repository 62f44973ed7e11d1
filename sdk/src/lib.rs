//! The guest SDK for the dealer platform: everything a plugin written in Rust needs to be built
//! into a wasm component for one of the platform's extension points.
//!
//! - One module per extension point ([`commission`], [`approval`], [`loyalty`],
//!   [`ticket_routing`], [`reminders`], [`integration`], [`channel`]), each with the `Guest`
//!   trait to implement and the records it takes and returns, and one macro per extension
//!   point to export the implementation ([`export_commission!`], [`export_approval!`],
//!   [`export_loyalty!`], [`export_ticket_routing!`], [`export_reminders!`],
//!   [`export_integration!`], [`export_channel!`]).
//! - The host API: [`log`], [`config`], [`store`], [`records`], [`clock`], [`events`],
//!   [`outbound`], [`signing`]. What a plugin may actually do is decided by HQ's grants; a call without the
//!   capability returns [`types::HostError::Denied`].
//! - The shared [`types`] (customers, vehicles, orders, notifications, ...) and helpers for
//!   [`money`] in fen and calendar [`dates`].
//!
//! The contract is the WIT package `dealer:platform@0.2.0` in `wit/platform/0.2.0`; a plugin
//! built with this SDK targets it (the host also runs components built against 0.1.0).
//!
//! # A complete plugin
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "two-percent"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! dealer-sdk = { path = "../sdk" }
//! ```
//!
//! `src/lib.rs`:
//!
//! ```
//! use dealer_sdk::commission::{CommissionLine, Guest, Sale};
//! use dealer_sdk::{config, log, money};
//!
//! struct TwoPercent;
//!
//! impl Guest for TwoPercent {
//!     fn compute(sale: Sale) -> Result<Vec<CommissionLine>, String> {
//!         // The dealer's configuration, e.g. `{"percent": 3}`; 2 when it is not set.
//!         let percent: i64 = config::get("percent")?.unwrap_or(2);
//!         log::info(&format!(
//!             "order {}: {percent}% of ¥{}",
//!             sale.order_id,
//!             money::format_yuan(sale.final_price)
//!         ));
//!         Ok(sale
//!             .staff
//!             .iter()
//!             .map(|credited| CommissionLine {
//!                 staff_id: credited.member.id,
//!                 amount: money::percent(sale.final_price, percent),
//!                 reason: format!("{percent}% of the final price"),
//!             })
//!             .collect())
//!     }
//! }
//!
//! dealer_sdk::export_commission!(TwoPercent);
//! ```
//!
//! Build it into a component:
//!
//! ```sh
//! rustup target add wasm32-wasip2
//! cargo build --target wasm32-wasip2 --profile plugin -p two-percent
//! # -> target/wasm32-wasip2/plugin/two_percent.wasm
//! ```
//!
//! A hook returns `Err(message)` to fail the run; the host then records the failure and falls
//! back to its built-in default. Host errors convert into that message with `?`.

#[doc(hidden)]
pub mod bindings;
pub mod dates;
mod hooks;
mod host;
pub use dealer_money as money;

/// VINs (ISO 3779 check digit) and Chinese plates, by the same rules the host validates with.
pub mod identity {
    pub use dealer_identity::{Plate, parse_plate, parse_vin, plate_key, vin_check_digit};
}

pub use hooks::{approval, channel, commission, integration, loyalty, reminders, ticket_routing};
pub use host::{clock, config, events, log, outbound, records, signing, store};

/// The types shared by every extension point and by the host API.
pub mod types {
    pub use crate::bindings::imports::dealer::platform::types::*;
}

/// A refused host call as a hook's error message, so that `?` passes it on.
impl From<types::HostError> for String {
    fn from(error: types::HostError) -> Self {
        use types::HostError;
        match error {
            HostError::NotFound => "not found".to_owned(),
            HostError::Denied(why) => format!("denied: {why}"),
            HostError::Invalid(why) => format!("invalid: {why}"),
            HostError::QuotaExceeded(why) => format!("quota exceeded: {why}"),
            HostError::Unavailable(why) => format!("unavailable: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::types::HostError;

    #[test]
    fn host_errors_become_hook_messages() {
        assert_eq!(String::from(HostError::NotFound), "not found");
        assert_eq!(
            String::from(HostError::Denied("no outbound grant".to_owned())),
            "denied: no outbound grant"
        );
        assert_eq!(
            String::from(HostError::QuotaExceeded("store full".to_owned())),
            "quota exceeded: store full"
        );
    }
}
