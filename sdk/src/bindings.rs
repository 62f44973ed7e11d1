//! The bindings `wit-bindgen` generates from `wit/platform/0.2.0`, the newest version of the
//! contract (it includes every interface of 0.1.0 unchanged).
//!
//! The `imports` world (the host API and the shared types) is generated once; every hook
//! world reuses it through `with`, so `types::Customer` is one Rust type in all of them. Each
//! hook world's generated `export!` macro is public, so that the component type section it
//! embeds lands in the plugin's crate; the crate's `export_*!` macros call it.

pub mod imports {
    wit_bindgen::generate!({
        path: "../wit/platform/0.2.0",
        world: "imports",
        additional_derives: [PartialEq],
    });
}

/// Generates one hook world's bindings, reusing the import interfaces of [`imports`].
macro_rules! hook_world {
    ($module:ident, $world:literal) => {
        pub mod $module {
            wit_bindgen::generate!({
                path: "../wit/platform/0.2.0",
                world: $world,
                additional_derives: [PartialEq],
                with: {
                    "dealer:platform/types@0.2.0": super::imports::dealer::platform::types,
                    "dealer:platform/log@0.2.0": super::imports::dealer::platform::log,
                    "dealer:platform/config@0.2.0": super::imports::dealer::platform::config,
                    "dealer:platform/store@0.2.0": super::imports::dealer::platform::store,
                    "dealer:platform/records@0.2.0": super::imports::dealer::platform::records,
                    "dealer:platform/clock@0.2.0": super::imports::dealer::platform::clock,
                    "dealer:platform/events@0.2.0": super::imports::dealer::platform::events,
                    "dealer:platform/outbound@0.2.0": super::imports::dealer::platform::outbound,
                    "dealer:platform/signing@0.2.0": super::imports::dealer::platform::signing,
                },
                pub_export_macro: true,
            });
        }
    };
}

hook_world!(commission, "commission");
hook_world!(approval, "approval");
hook_world!(loyalty, "loyalty");
hook_world!(ticket_routing, "ticket-routing");
hook_world!(reminders, "reminders");
hook_world!(integration, "integration");
hook_world!(channel, "channel");
