//! One module per extension point, with the `Guest` trait a plugin implements and the records
//! of that hook, and one macro per extension point to export the implementation.

/// Exports a `Guest` implementation through the hook world's generated `export!` macro.
///
/// Only on wasm: the exported symbols are named like
/// `dealer:platform/commission-hook@0.2.0#compute`, which a native linker refuses, and plugin
/// crates are also built natively (as workspace members, for tests and lints). Natively the
/// macro only checks that the type implements the trait.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_hook {
    ($ty:ident, $world:ident) => {
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::$world::export!($ty with_types_in $crate::bindings::$world);
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            const fn implements_guest<T: $crate::$world::Guest>() {}
            implements_guest::<$ty>()
        };
    };
}

/// Commission: a delivered sale becomes commission lines per staff member. Export with
/// [`export_commission!`](crate::export_commission).
pub mod commission {
    pub use crate::bindings::commission::exports::dealer::platform::commission_hook::*;
}

/// Exports the plugin's implementation of [`commission::Guest`](crate::commission::Guest).
/// Write it once, at the top level of the plugin crate:
/// `dealer_sdk::export_commission!(MyPlugin);`.
#[macro_export]
macro_rules! export_commission {
    ($ty:ident) => {
        $crate::__export_hook!($ty, commission);
    };
}

/// Approval: a request becomes the ordered approval steps, or an automatic approval. Export
/// with [`export_approval!`](crate::export_approval).
pub mod approval {
    pub use crate::bindings::approval::exports::dealer::platform::approval_hook::*;
}

/// Exports the plugin's implementation of [`approval::Guest`](crate::approval::Guest).
/// Write it once, at the top level of the plugin crate:
/// `dealer_sdk::export_approval!(MyPlugin);`.
#[macro_export]
macro_rules! export_approval {
    ($ty:ident) => {
        $crate::__export_hook!($ty, approval);
    };
}

/// Loyalty: an event becomes points and tier changes. Export with
/// [`export_loyalty!`](crate::export_loyalty).
pub mod loyalty {
    pub use crate::bindings::loyalty::exports::dealer::platform::loyalty_hook::*;
}

/// Exports the plugin's implementation of [`loyalty::Guest`](crate::loyalty::Guest).
/// Write it once, at the top level of the plugin crate:
/// `dealer_sdk::export_loyalty!(MyPlugin);`.
#[macro_export]
macro_rules! export_loyalty {
    ($ty:ident) => {
        $crate::__export_hook!($ty, loyalty);
    };
}

/// Ticket routing: a new ticket becomes a priority, a team, SLA deadlines and notifications.
/// Export with [`export_ticket_routing!`](crate::export_ticket_routing).
pub mod ticket_routing {
    pub use crate::bindings::ticket_routing::exports::dealer::platform::ticket_routing_hook::*;
}

/// Exports the plugin's implementation of [`ticket_routing::Guest`](crate::ticket_routing::Guest).
/// Write it once, at the top level of the plugin crate:
/// `dealer_sdk::export_ticket_routing!(MyPlugin);`.
#[macro_export]
macro_rules! export_ticket_routing {
    ($ty:ident) => {
        $crate::__export_hook!($ty, ticket_routing);
    };
}

/// Reminders: a vehicle with its history becomes the next reminders. Export with
/// [`export_reminders!`](crate::export_reminders).
pub mod reminders {
    pub use crate::bindings::reminders::exports::dealer::platform::reminders_hook::*;
}

/// Exports the plugin's implementation of [`reminders::Guest`](crate::reminders::Guest).
/// Write it once, at the top level of the plugin crate:
/// `dealer_sdk::export_reminders!(MyPlugin);`.
#[macro_export]
macro_rules! export_reminders {
    ($ty:ident) => {
        $crate::__export_hook!($ty, reminders);
    };
}

/// Integration: a domain event becomes actions for a partner. Export with
/// [`export_integration!`](crate::export_integration).
pub mod integration {
    pub use crate::bindings::integration::exports::dealer::platform::integration_hook::*;
}

/// Exports the plugin's implementation of [`integration::Guest`](crate::integration::Guest).
/// Write it once, at the top level of the plugin crate:
/// `dealer_sdk::export_integration!(MyPlugin);`.
#[macro_export]
macro_rules! export_integration {
    ($ty:ident) => {
        $crate::__export_hook!($ty, integration);
    };
}

/// Channel (since WIT 0.2.0): a message the host delivers becomes a provider's delivery (an
/// SMS gateway, a WeChat template message). Export with
/// [`export_channel!`](crate::export_channel).
pub mod channel {
    pub use crate::bindings::channel::exports::dealer::platform::channel_hook::*;

    impl Failure {
        /// A failure worth retrying later: throttled, or the provider unavailable.
        pub fn retryable(message: impl Into<String>) -> Self {
            Failure {
                retryable: true,
                message: message.into(),
            }
        }

        /// A failure not worth retrying: a refused template, an invalid number.
        pub fn permanent(message: impl Into<String>) -> Self {
            Failure {
                retryable: false,
                message: message.into(),
            }
        }
    }
}

/// Exports the plugin's implementation of [`channel::Guest`](crate::channel::Guest).
/// Write it once, at the top level of the plugin crate:
/// `dealer_sdk::export_channel!(MyPlugin);`.
#[macro_export]
macro_rules! export_channel {
    ($ty:ident) => {
        $crate::__export_hook!($ty, channel);
    };
}
