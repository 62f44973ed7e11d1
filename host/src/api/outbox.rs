//! The outbox: what the host sent (or is about to send, refused or gave up on) and each
//! attempt, for admins; owners' answers reported by a channel's gateway; the owner's opt-out
//! link (no API key).

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{Json, Path, Query};
use super::pagination::{Page, PageParams};
use super::problem::Problem;
use crate::access::{Caller, Permission};
use crate::error::Result;
use crate::outbox::{self, Attempt, Entry, Filter, OwnerOptOut, Reply, ReplyOutcome};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(attempts))
        .routes(routes!(reply))
        .routes(routes!(opt_out_view, opt_out))
}

/// Messages of the caller's dealers, newest first, with their delivery status, attempts and
/// last error. HQ and dealer admins.
#[utoipa::path(get, path = "/outbox", tag = "outbox", params(Filter, PageParams),
    responses((status = 200, body = Page<Entry>), (status = 400, body = Problem), (status = 403, body = Problem)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<Filter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Entry>>> {
    caller.require(Permission::OperateWorkers)?;
    let limit = page.limit()?;
    let mut conn = state.db.pool().acquire().await?;
    let rows = outbox::list(&mut conn, &caller, &filter, page.before_id()?, limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |m| m.id)))
}

/// Every delivery attempt of a message, oldest first, with the provider's answer.
#[utoipa::path(get, path = "/outbox/{id}/attempts", tag = "outbox", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<Attempt>), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn attempts(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Vec<Attempt>>> {
    caller.require(Permission::OperateWorkers)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(outbox::attempts(&mut conn, &caller, id).await?))
}

/// An owner's answer to a message, as the SMS or WeChat gateway reports it (with an admin's
/// key): an opt-out keyword (`T`, `TD`, `退订` …) stops marketing to every customer of the
/// caller's dealers with that number.
#[utoipa::path(post, path = "/outbox/replies", tag = "outbox", request_body = Reply,
    responses((status = 200, body = ReplyOutcome), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn reply(
    State(state): State<AppState>,
    caller: Caller,
    Json(given): Json<Reply>,
) -> Result<Json<ReplyOutcome>> {
    caller.require(Permission::OperateWorkers)?;
    let mut tx = state.db.begin_write().await?;
    let outcome = outbox::reply(&mut tx, &caller, &given).await?;
    tx.commit().await?;
    Ok(Json(outcome))
}

/// What an opt-out link stops, before the owner confirms (no API key).
#[utoipa::path(get, path = "/owner/opt-out/{token}", tag = "owner", security(()),
    params(("token" = String, Path)),
    responses((status = 200, body = OwnerOptOut), (status = 404, body = Problem), (status = 410, body = Problem)))]
async fn opt_out_view(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<OwnerOptOut>> {
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(outbox::opt_out_view(&mut conn, &token).await?))
}

/// The owner stops the dealer's marketing (no API key); following the link again changes
/// nothing.
#[utoipa::path(post, path = "/owner/opt-out/{token}", tag = "owner", security(()),
    params(("token" = String, Path)),
    responses((status = 200, body = OwnerOptOut), (status = 404, body = Problem), (status = 410, body = Problem)))]
async fn opt_out(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<OwnerOptOut>> {
    Ok(Json(outbox::opt_out_by_link(&state.db, &token).await?))
}
