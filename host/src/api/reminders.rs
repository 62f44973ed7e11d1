//! The reminders scheduler, run on demand.

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{Json, Path};
use super::problem::Problem;
use crate::access::{Caller, Permission};
use crate::clock;
use crate::error::Result;
use crate::reminders::{self, PlannedReminder, RunReport};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(run))
        .routes(routes!(for_vehicle))
}

/// Runs the reminders scheduler now (it also runs in the background): every owned vehicle
/// whose plan is older than a day is planned by its dealer's reminders plugin, and what is due
/// is sent or becomes an advisor task. Every vehicle due is planned, whoever triggers the run;
/// each reminder is sent once however often it runs. HQ and dealer admins.
#[utoipa::path(post, path = "/reminders/run", tag = "reminders",
    responses((status = 200, body = RunReport), (status = 403, body = Problem)))]
async fn run(State(state): State<AppState>, caller: Caller) -> Result<Json<RunReport>> {
    caller.require(Permission::OperateWorkers)?;
    let now = clock::now_ms();
    let report = reminders::run_due(
        &state.db,
        &state.plugins,
        reminders::today_in_china(now),
        now,
    )
    .await?;
    Ok(Json(report))
}

/// The reminders planned for a vehicle, latest due first: what was sent or became a task, and
/// what is scheduled, each with the plugin (and run) that planned it.
#[utoipa::path(get, path = "/vehicles/{id}/reminders", tag = "reminders", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<PlannedReminder>), (status = 404, body = Problem)))]
async fn for_vehicle(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Vec<PlannedReminder>>> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(reminders::for_vehicle(&mut conn, &caller, id).await?))
}
