//! Dealer-defined custom field definitions.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{IfMatch, Json, Path, Query};
use super::problem::Problem;
use crate::access::{Caller, Permission};
use crate::custom_fields::{self, Entity, FieldDef, FieldDefPatch, NewFieldDef};
use crate::error::Result;
use crate::network;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(update))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    entity: Option<Entity>,
}

/// The custom fields defined by the dealers in the caller's scope.
#[utoipa::path(get, path = "/custom-fields", tag = "custom fields", params(ListQuery),
    responses((status = 200, body = Vec<FieldDef>)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<FieldDef>>> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(
        custom_fields::list(&mut conn, &caller, q.entity).await?,
    ))
}

/// Defines a typed field on customers, vehicles, orders, repair orders or trade-ins (dealer or
/// HQ admin).
#[utoipa::path(post, path = "/custom-fields", tag = "custom fields", request_body = NewFieldDef,
    responses((status = 201, body = FieldDef), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewFieldDef>,
) -> Result<(StatusCode, Json<FieldDef>)> {
    caller.require(Permission::ManageCustomFields)?;
    let mut tx = state.db.begin_write().await?;
    let dealer_id = network::dealer_for_write(&mut tx, &caller, new.dealer_id).await?;
    let def = custom_fields::create(&mut tx, &caller, dealer_id, new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(def)))
}

/// Changes a definition's label, requiredness, choices or range. `If-Match` carries its version.
#[utoipa::path(patch, path = "/custom-fields/{id}", tag = "custom fields", request_body = FieldDefPatch,
    params(("id" = i64, Path), ("If-Match" = String, Header, description = "the version you read")),
    responses((status = 200, body = FieldDef), (status = 412, body = Problem)))]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    IfMatch(version): IfMatch,
    Json(patch): Json<FieldDefPatch>,
) -> Result<Json<FieldDef>> {
    caller.require(Permission::ManageCustomFields)?;
    let mut tx = state.db.begin_write().await?;
    let def = custom_fields::update(&mut tx, &caller, id, version, patch).await?;
    tx.commit().await?;
    Ok(Json(def))
}
