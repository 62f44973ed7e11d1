//! The network tree, staff, API keys, HQ policy, and "who am I".

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{Json, Path};
use crate::access::keys::{self, ApiKeyInfo, NewApiKey};
use crate::access::{Caller, Permission, Role};
use crate::audit::Actor;
use crate::error::{Error, Result};
use crate::network::{self, Messaging, NewStaff, NewUnit, OrgUnit, Policy, Staff};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(list_units, create_unit))
        .routes(routes!(list_staff, create_staff))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
        .routes(routes!(get_policy, set_policy))
        .routes(routes!(get_messaging, set_messaging))
}

/// The caller behind the key: role and place in the network.
#[utoipa::path(get, path = "/me", tag = "network", responses((status = 200, body = Caller)))]
async fn me(caller: Caller) -> Json<Caller> {
    Json(caller)
}

/// The units of the network the caller can see (their own subtree), parents first.
#[utoipa::path(get, path = "/network/units", tag = "network", responses((status = 200, body = Vec<OrgUnit>)))]
async fn list_units(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<OrgUnit>>> {
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(network::list_units(&mut conn, &caller).await?))
}

/// Adds a region, group, dealer or branch (HQ admin).
#[utoipa::path(post, path = "/network/units", tag = "network", request_body = NewUnit,
    responses((status = 201, body = OrgUnit), (status = 422, body = super::problem::Problem)))]
async fn create_unit(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewUnit>,
) -> Result<(StatusCode, Json<OrgUnit>)> {
    caller.require(Permission::ManageNetwork)?;
    let mut tx = state.db.begin_write().await?;
    let unit = network::add_unit(&mut tx, &caller, &new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(unit)))
}

/// Staff of the units the caller can see.
#[utoipa::path(get, path = "/staff", tag = "network", responses((status = 200, body = Vec<Staff>)))]
async fn list_staff(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<Staff>>> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(network::list_staff(&mut conn, &caller).await?))
}

/// Adds a staff member to a unit in the caller's scope (HQ or dealer admin).
#[utoipa::path(post, path = "/staff", tag = "network", request_body = NewStaff,
    responses((status = 201, body = Staff), (status = 422, body = super::problem::Problem)))]
async fn create_staff(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewStaff>,
) -> Result<(StatusCode, Json<Staff>)> {
    caller.require(Permission::ManageKeys)?;
    let mut tx = state.db.begin_write().await?;
    let staff = network::create_staff(&mut tx, &caller, &new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(staff)))
}

/// API keys attached to units in the caller's scope (never their secrets).
#[utoipa::path(get, path = "/keys", tag = "network", responses((status = 200, body = Vec<ApiKeyInfo>)))]
async fn list_keys(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<ApiKeyInfo>>> {
    caller.require(Permission::ManageKeys)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(keys::list(&mut conn, &caller).await?))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    pub role: Role,
    /// Defaults to the caller's own unit.
    pub org_unit_id: Option<i64>,
    /// The staff member who holds the key; they must work at the key's unit.
    pub staff_id: Option<i64>,
    pub label: String,
}

/// Creates a key; the secret is in this response only. A dealer admin creates dealer roles
/// for its own dealer. A `staff_id` names a staff member of the key's unit (else 422
/// `unknown_staff`).
#[utoipa::path(post, path = "/keys", tag = "network", request_body = KeyRequest,
    responses((status = 201, body = NewApiKey), (status = 403, body = super::problem::Problem),
        (status = 422, body = super::problem::Problem)))]
async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<KeyRequest>,
) -> Result<(StatusCode, Json<NewApiKey>)> {
    caller.require(Permission::ManageKeys)?;
    let unit = req.org_unit_id.unwrap_or(caller.org_id);
    if caller.role != Role::HqAdmin && (!req.role.is_dealer_role() || unit != caller.org_id) {
        return Err(Error::Forbidden(
            "a dealer admin creates sales, service and dealer_admin keys for its own dealer".into(),
        ));
    }
    let mut tx = state.db.begin_write().await?;
    let created = network::create_key(
        &mut tx,
        Actor::Staff(&caller),
        req.role,
        unit,
        req.staff_id,
        &req.label,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Revokes a key (by id or prefix) at once; requests with it are refused from now on.
#[utoipa::path(delete, path = "/keys/{key}", tag = "network", params(("key" = String, Path, description = "id or prefix")),
    responses((status = 200, body = ApiKeyInfo), (status = 404, body = super::problem::Problem)))]
async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<Json<ApiKeyInfo>> {
    caller.require(Permission::ManageKeys)?;
    let mut tx = state.db.begin_write().await?;
    let revoked = network::revoke_key(&mut tx, Actor::Staff(&caller), &key).await?;
    tx.commit().await?;
    Ok(Json(revoked))
}

/// The network-wide policy.
#[utoipa::path(get, path = "/network/policy", tag = "network", responses((status = 200, body = Policy)))]
async fn get_policy(State(state): State<AppState>, _caller: Caller) -> Result<Json<Policy>> {
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(network::policy(&mut conn).await?))
}

/// Sets the network-wide policy (HQ admin).
#[utoipa::path(put, path = "/network/policy", tag = "network", request_body = Policy,
    responses((status = 200, body = Policy), (status = 403, body = super::problem::Problem)))]
async fn set_policy(
    State(state): State<AppState>,
    caller: Caller,
    Json(policy): Json<Policy>,
) -> Result<Json<Policy>> {
    caller.require(Permission::ManageNetwork)?;
    let mut tx = state.db.begin_write().await?;
    let policy = network::change_policy(&mut tx, &caller, &policy).await?;
    tx.commit().await?;
    Ok(Json(policy))
}

/// A dealer's messaging rules: quiet hours for marketing (local time) and the weekly cap per
/// owner. HQ and dealer admins.
#[utoipa::path(get, path = "/network/units/{id}/messaging", tag = "network", params(("id" = i64, Path)),
    responses((status = 200, body = Messaging), (status = 403, body = super::problem::Problem),
        (status = 404, body = super::problem::Problem)))]
async fn get_messaging(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Messaging>> {
    caller.require(Permission::OperateWorkers)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(network::messaging(&mut conn, &caller, id).await?))
}

/// Sets a dealer's messaging rules. HQ and dealer admins.
#[utoipa::path(put, path = "/network/units/{id}/messaging", tag = "network", params(("id" = i64, Path)),
    request_body = Messaging,
    responses((status = 200, body = Messaging), (status = 403, body = super::problem::Problem),
        (status = 404, body = super::problem::Problem), (status = 422, body = super::problem::Problem)))]
async fn set_messaging(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(given): Json<Messaging>,
) -> Result<Json<Messaging>> {
    caller.require(Permission::OperateWorkers)?;
    let mut tx = state.db.begin_write().await?;
    let set = network::set_messaging(&mut tx, &caller, id, &given).await?;
    tx.commit().await?;
    Ok(Json(set))
}
