//! Integration partners and the grants a dealer admin gives them for the dealer.

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{Json, Path};
use super::problem::Problem;
use crate::access::{Caller, Permission};
use crate::audit::Actor;
use crate::error::Result;
use crate::partners::{self, Grant, NewGrant, Partner};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_partners))
        .routes(routes!(list_grants, grant))
        .routes(routes!(revoke))
}

/// The partners the dealer may grant to, each with the dealer's grants in force. Dealer
/// admins only.
#[utoipa::path(get, path = "/partners", tag = "partners",
    responses((status = 200, body = Vec<Partner>), (status = 403, body = Problem)))]
async fn list_partners(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Partner>>> {
    caller.require(Permission::ManagePartners)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(partners::list_partners(&mut conn, &caller).await?))
}

/// The dealer's grants to partners, newest first, revoked ones included (who granted and
/// revoked each, and when). Dealer admins only.
#[utoipa::path(get, path = "/partners/grants", tag = "partners",
    responses((status = 200, body = Vec<Grant>), (status = 403, body = Problem)))]
async fn list_grants(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<Grant>>> {
    caller.require(Permission::ManagePartners)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(partners::list_grants(&mut conn, &caller).await?))
}

/// Grants a partner a purpose for the dealer (its consent, recorded with your key and the
/// time; audited). Until then the partner's calls for the dealer's customers are answered 404.
/// A grant already in force is 409 `already_granted`; an unknown partner 422
/// `unknown_partner`.
#[utoipa::path(post, path = "/partners/grants", tag = "partners", request_body = NewGrant,
    responses((status = 201, body = Grant), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
async fn grant(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewGrant>,
) -> Result<(StatusCode, Json<Grant>)> {
    caller.require(Permission::ManagePartners)?;
    let mut tx = state.db.begin_write().await?;
    let grant = partners::grant(&mut tx, &Actor::Staff(&caller), caller.org_id, &new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(grant)))
}

/// Revokes one of the dealer's grants (recorded with your key and the time; audited): the
/// partner's calls on it are answered 404 from now on. Revoked already: 409 `grant_revoked`.
#[utoipa::path(delete, path = "/partners/grants/{id}", tag = "partners", params(("id" = i64, Path)),
    responses((status = 200, body = Grant), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Grant>> {
    caller.require(Permission::ManagePartners)?;
    let mut tx = state.db.begin_write().await?;
    let grant = partners::revoke(&mut tx, &caller, id).await?;
    tx.commit().await?;
    Ok(Json(grant))
}
