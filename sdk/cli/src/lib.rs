//! `dealer-plugin`, the plugin author's command line, as a library: scaffolding
//! ([`scaffold`]), building and validating a component ([`build`]), running fixtures through
//! it in the host's runtime ([`harness`], usable from a plugin's `cargo test`), and publishing
//! it through the host's API ([`publish`]).

pub mod build;
pub mod harness;
pub mod publish;
pub mod scaffold;
mod templates;
