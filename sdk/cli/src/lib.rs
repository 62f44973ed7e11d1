//! `dealer-plugin`, the plugin author's command line, as a library: scaffolding
//! ([`scaffold`]), building and validating a component ([`build`]), running fixtures through
//! it in the host's runtime ([`harness`], usable from a plugin's `cargo test`, with a local
//! stand-in of a partner's API), and publishing
//! it through the host's API ([`publish`]).

pub mod build;
pub mod harness;
mod partner;
pub mod publish;
pub mod scaffold;
mod templates;
