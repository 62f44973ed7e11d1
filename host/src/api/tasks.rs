//! Advisor tasks the host created (insurance renewals planned by the reminders plugin, ...).

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{Json, Query};
use super::pagination::{Page, PageParams};
use super::problem::Problem;
use crate::access::{Caller, Permission};
use crate::error::Result;
use crate::tasks::{self, Task, TaskFilter};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// Tasks for the service advisors in the caller's scope, newest first.
#[utoipa::path(get, path = "/tasks", tag = "tasks", params(TaskFilter, PageParams),
    responses((status = 200, body = Page<Task>), (status = 400, body = Problem)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<TaskFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Task>>> {
    caller.require(Permission::ReadRecords)?;
    let limit = page.limit()?;
    let mut conn = state.db.pool().acquire().await?;
    let rows = tasks::list(&mut conn, &caller, &filter, page.before_id()?, limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |t| t.id)))
}
