//! Approval requests: the queue of steps waiting for someone, and acting on them.

use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{Json, Path, Query};
use super::problem::Problem;
use crate::access::{Caller, Permission};
use crate::approvals::{self, ApprovalFilter, ApprovalRequest};
use crate::error::Result;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(approve))
        .routes(routes!(reject))
}

/// Approval requests in the caller's scope, newest first; `mine=true` keeps those whose
/// waiting step the caller may act on.
#[utoipa::path(get, path = "/approvals", tag = "approvals", params(ApprovalFilter),
    responses((status = 200, body = Vec<ApprovalRequest>), (status = 400, body = Problem)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<ApprovalFilter>,
) -> Result<Json<Vec<ApprovalRequest>>> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(approvals::list(&mut conn, &caller, &filter).await?))
}

/// One approval request with its steps and who acted on them.
#[utoipa::path(get, path = "/approvals/{id}", tag = "approvals", params(("id" = i64, Path)),
    responses((status = 200, body = ApprovalRequest), (status = 404, body = Problem)))]
async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<ApprovalRequest>> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(approvals::get(&mut conn, &caller, id).await?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepDecision {
    pub comment: Option<String>,
}

async fn act(
    state: &AppState,
    caller: &Caller,
    id: i64,
    approve: bool,
    body: &StepDecision,
) -> Result<Json<ApprovalRequest>> {
    let mut tx = state.db.begin_write().await?;
    let request = approvals::act(&mut tx, caller, id, approve, body.comment.as_deref()).await?;
    tx.commit().await?;
    Ok(Json(request))
}

/// Approves the waiting step. The caller's staff position must be the step's role
/// (`general-manager` ↔ `general_manager`; `hq` needs an HQ admin); an owner's step is
/// approved through the owner's link.
#[utoipa::path(post, path = "/approvals/{id}/approve", tag = "approvals", params(("id" = i64, Path)),
    request_body = StepDecision,
    responses((status = 200, body = ApprovalRequest), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(body): Json<StepDecision>,
) -> Result<Json<ApprovalRequest>> {
    act(&state, &caller, id, true, &body).await
}

/// Rejects the waiting step, which rejects the request.
#[utoipa::path(post, path = "/approvals/{id}/reject", tag = "approvals", params(("id" = i64, Path)),
    request_body = StepDecision,
    responses((status = 200, body = ApprovalRequest), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(body): Json<StepDecision>,
) -> Result<Json<ApprovalRequest>> {
    act(&state, &caller, id, false, &body).await
}
