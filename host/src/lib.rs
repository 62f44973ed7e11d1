//! The dealer platform host: one model of the network's people, vehicles and their history,
//! served over HTTP, with every dealer-specific rule to be run as a sandboxed plugin.
//! See ARCHITECTURE.md for the map.

pub mod access;
pub mod api;
pub mod approvals;
pub mod attachments;
pub mod audit;
pub mod clock;
pub mod config;
pub mod custom_fields;
pub mod customers;
pub mod db;
pub mod error;
pub mod integrations;
pub mod lookups;
pub mod loyalty;
pub mod model;
pub mod network;
pub mod outbox;
pub mod owner_links;
pub mod plugins;
pub mod reminders;
pub mod sales;
pub mod seed;
pub mod service;
pub mod state;
pub mod surveys;
pub mod tasks;
pub mod text;
pub mod tickets;
pub mod vehicles;
pub mod workers;

use std::future::Future;

use std::sync::Arc;

use tokio::net::TcpListener;

pub use db::{Backend, Db};
pub use state::AppState;

/// Serves the API on `listener` until `shutdown` resolves, then drains in-flight requests.
/// Meanwhile the SLA sweep ([`tickets::sla`]) runs every `state.sla_interval`; it stops with
/// the server.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    state.plugins.listen_for_changes();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sweep = tickets::sla::spawn(state.db.clone(), state.sla_interval, stopped);
    let app = api::router(state);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            stop.send(true).ok();
        })
        .await;
    sweep.abort();
    served
}

/// Serves the API like [`serve`], with the background loops (outbox delivery through
/// `senders`, the scheduler) running at `intervals` until shutdown; on shutdown the server
/// drains, then the loops stop (an outbox pass under way finishes first).
pub async fn serve_with_workers(
    listener: TcpListener,
    state: AppState,
    senders: Arc<outbox::Senders>,
    intervals: workers::Intervals,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let workers = workers::start(&state, senders, intervals);
    let served = serve(listener, state, shutdown).await;
    workers.stop().await;
    served
}
