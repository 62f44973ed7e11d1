//! What the dealers' integration plugins did with the network's domain events.

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{Json, Query};
use super::problem::Problem;
use crate::access::{Caller, Permission};
use crate::error::Result;
use crate::integrations::{self, EventFilter, IntegrationEvent};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// Domain events in the caller's scope handed to integration plugins, newest first, each
/// with the plugin (and version) that handled it and the actions it returned: references a
/// partner gave (an insurance quote id, a maintenance-record id), tasks, notifications.
#[utoipa::path(get, path = "/integration-events", tag = "integrations", params(EventFilter),
    responses((status = 200, body = Vec<IntegrationEvent>), (status = 400, body = Problem)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<EventFilter>,
) -> Result<Json<Vec<IntegrationEvent>>> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(integrations::list(&mut conn, &caller, &filter).await?))
}
