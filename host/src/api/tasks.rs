//! Advisor tasks the host created (insurance renewals planned by the reminders plugin, ...).

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{Json, Path, Query};
use super::pagination::{Page, PageParams};
use super::problem::Problem;
use crate::access::{Caller, Permission};
use crate::error::Result;
use crate::tasks::{self, Task, TaskFilter};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(complete))
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

/// Marks a task done (its advisor, or anyone who may change the dealer's records); marking
/// a done task again changes nothing.
#[utoipa::path(post, path = "/tasks/{id}/done", tag = "tasks", params(("id" = i64, Path)),
    responses((status = 200, body = Task)))]
async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Task>> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let task = tasks::complete(&mut tx, &caller, id).await?;
    tx.commit().await?;
    Ok(Json(task))
}
