//! The reminders scheduler, run on demand.

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::Json;
use crate::access::{Caller, Permission};
use crate::clock;
use crate::error::{Problem, Result};
use crate::reminders::{self, RunReport};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(run))
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
