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
pub mod domain_events;
pub mod error;
pub mod imports;
pub mod integrations;
pub mod kpis;
pub mod lookups;
pub mod loyalty;
pub mod model;
pub mod network;
pub mod outbox;
pub mod owner_links;
pub mod partners;
pub mod plugins;
pub mod queue;
pub mod reminders;
pub mod sales;
pub mod seed;
pub mod service;
pub mod state;
pub mod surveys;
pub mod tasks;
pub mod text;
pub mod tickets;
pub mod tls;
pub mod vehicles;
pub mod workers;

use std::future::Future;

use std::sync::Arc;

use tokio::net::TcpListener;

pub use db::{Backend, Db};
pub use state::AppState;

/// Where the API is served: plain HTTP on a TCP listener, or HTTPS ([`tls::Listener`]).
pub enum Endpoint {
    Plain(TcpListener),
    Tls(tls::Listener),
}

impl From<TcpListener> for Endpoint {
    fn from(listener: TcpListener) -> Endpoint {
        Endpoint::Plain(listener)
    }
}

impl From<tls::Listener> for Endpoint {
    fn from(listener: tls::Listener) -> Endpoint {
        Endpoint::Tls(listener)
    }
}

/// Serves the API on `listener` until `shutdown` resolves, then drains in-flight requests.
/// Meanwhile the SLA sweep ([`tickets::sla`]) runs every `state.sla_interval`; it stops with
/// the server. Over TLS every answer carries `Strict-Transport-Security` ([`tls::HSTS`]).
pub async fn serve(
    listener: impl Into<Endpoint>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    state.plugins.listen_for_changes();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sweep = tickets::sla::spawn(state.db.clone(), state.sla_interval, stopped);
    let reads = state.reads.clone();
    let app = api::router(state);
    let shutdown = async move {
        shutdown.await;
        stop.send(true).ok();
    };
    let served = match listener.into() {
        Endpoint::Plain(listener) => {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<api::session::Peer>(),
            )
            .with_graceful_shutdown(shutdown)
            .await
        }
        Endpoint::Tls(listener) => {
            let app = app.layer(axum::middleware::map_response(strict_transport));
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<api::session::Peer>(),
            )
            .with_graceful_shutdown(shutdown)
            .await
        }
    };
    sweep.abort();
    reads.flush().await;
    served
}

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for api::session::Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        api::session::Peer(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tls::Listener>>
    for api::session::Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tls::Listener>) -> Self {
        api::session::Peer(*stream.remote_addr())
    }
}

async fn strict_transport(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        axum::http::header::STRICT_TRANSPORT_SECURITY,
        axum::http::HeaderValue::from_static(tls::HSTS),
    );
    response
}

/// Serves the API like [`serve`], with the background loops (outbox delivery through
/// `senders`, the scheduler) running at `intervals` until shutdown; on shutdown the server
/// drains, then the loops stop (an outbox pass under way finishes first).
pub async fn serve_with_workers(
    listener: impl Into<Endpoint>,
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
