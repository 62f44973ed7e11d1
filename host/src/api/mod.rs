//! The HTTP API: JSON over HTTP under `/api/v1`, errors as problem+json, an OpenAPI document
//! at `/api/v1/openapi.json` and a browsable page at `/docs`.
//!
//! Handlers are thin: extract, call the domain module that owns the table, respond.

mod approvals;
mod attachments;
mod audit;
mod console;
mod custom_fields;
mod customers;
pub mod extract;
mod idempotency;
mod imports;
mod integrations;
mod kpis;
mod loyalty;
mod network;
mod openapi;
mod orders;
mod outbox;
pub mod pagination;
mod partners;
mod plugins;
pub mod problem;
mod reminders;
mod sales;
mod service;
pub mod session;
mod surveys;
mod tasks;
mod tickets;
mod vehicles;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tower_http::trace::TraceLayer;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::attachments as attachment_files;
use crate::error::Error;
use crate::plugins::runtime::MAX_COMPONENT_BYTES;
pub use crate::state::AppState;

/// Largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// The OpenAPI document of the API, as `/api/v1/openapi.json` serves it.
pub fn document() -> utoipa::openapi::OpenApi {
    openapi::complete(routes().split_for_parts().1)
}

pub fn router(state: AppState) -> Router {
    let (api, doc) = routes().split_for_parts();
    Router::new()
        .nest("/api/v1", api.fallback(unknown_route))
        .merge(SwaggerUi::new("/docs").url("/api/v1/openapi.json", openapi::complete(doc)))
        .fallback(console::serve)
        .layer(middleware::map_response(method_not_allowed))
        // The console's scripts are a few MB; gzip makes them a third (images are left alone).
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(middleware::from_fn_with_state(state.clone(), audit_denials))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(refuse_oversized))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), key_id = tracing::field::Empty)
        }))
        .with_state(state)
}

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::frame())
        .routes(routes!(health))
        .merge(network::routes())
        .merge(customers::routes())
        .merge(vehicles::routes())
        .merge(tickets::routes())
        .merge(kpis::routes())
        .merge(service::routes())
        .merge(surveys::routes())
        .merge(custom_fields::routes())
        .merge(audit::routes())
        .merge(plugins::routes())
        .merge(approvals::routes())
        .merge(attachments::routes())
        .merge(integrations::routes())
        .merge(loyalty::routes())
        .merge(partners::routes())
        .merge(outbox::routes())
        .merge(reminders::routes())
        .merge(tasks::routes())
        .merge(sales::routes())
        .merge(orders::routes())
        .merge(imports::routes())
        .merge(session::routes())
}

/// Refuses a body announced larger than the limit before reading any of it. A component
/// upload may be larger than other bodies.
async fn refuse_oversized(request: Request, next: Next) -> Response {
    let limit = body_limit(&request);
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    match announced {
        Some(n) if n > limit => Error::PayloadTooLarge { limit }.into_response(),
        _ => next.run(request).await,
    }
}

fn body_limit(request: &Request) -> usize {
    let path = request.uri().path();
    let post = request.method() == axum::http::Method::POST;
    if post && path.starts_with("/api/v1/plugins/") && path.ends_with("/versions") {
        MAX_COMPONENT_BYTES
    } else if post && (path.ends_with("/photos") || path.ends_with("/attachments")) {
        attachment_files::MAX_BYTES
    } else if post && path == "/api/v1/imports" {
        crate::imports::MAX_FILE_BYTES
    } else {
        BODY_LIMIT
    }
}

/// Audits every attempt to reach a record outside the caller's scope. It runs after the
/// handler, whose transaction (rolled back with the error) is over by then, so the entry is
/// never lost with it.
async fn audit_denials(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if let Some(denial) = response.extensions().get::<crate::error::Denial>() {
        let recorded = match state.db.pool().acquire().await {
            Ok(mut conn) => crate::audit::record_denial(&mut conn, denial).await,
            Err(e) => Err(e.into()),
        };
        if let Err(e) = recorded {
            tracing::error!(error = %e, entity = denial.entity, id = denial.id, "could not audit a denied access");
        }
    }
    response
}

/// Axum answers a known route called with another method with an empty 405; this makes it
/// the same problem+json as every other error, keeping its `Allow` header.
async fn method_not_allowed(response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let mut problem = Error::MethodNotAllowed.into_response();
    if let Some(allow) = response.headers().get(header::ALLOW) {
        problem.headers_mut().insert(header::ALLOW, allow.clone());
    }
    problem
}

async fn unknown_route() -> Error {
    Error::NotFound { entity: "route" }
}

#[derive(Serialize, ToSchema)]
struct Health {
    status: &'static str,
    database: &'static str,
    version: &'static str,
}

/// Liveness and the database in use; needs no key.
#[utoipa::path(get, path = "/health", tag = "system", security(()), responses((status = 200, body = Health)))]
async fn health(State(state): State<AppState>) -> Result<extract::Json<Health>, Error> {
    sqlx::query("SELECT 1").execute(state.db.pool()).await?;
    Ok(extract::Json(Health {
        status: "ok",
        database: state.db.backend().name(),
        version: env!("CARGO_PKG_VERSION"),
    }))
}
