//! The outbox: what the host sent (or is about to send, or gave up on), for admins.

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{Json, Query};
use super::pagination::{Page, PageParams};
use super::problem::Problem;
use crate::access::{Caller, Permission};
use crate::error::Result;
use crate::outbox::{self, Entry, Filter};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
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
