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
pub mod loyalty;
pub mod network;
pub mod outbox;
pub mod owner_links;
pub mod plugins;
pub mod reminders;
pub mod seed;
pub mod tasks;
pub mod tickets;
pub mod vehicles;
pub mod workers;

use std::future::Future;

use std::sync::Arc;

use tokio::net::TcpListener;

pub use api::AppState;
pub use db::{Backend, Db};

/// Serves the API on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    state.plugins.listen_for_changes();
    let app = api::router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
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
