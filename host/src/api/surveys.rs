//! Satisfaction surveys as the owner answers them, through the single-use link sent when the
//! subject was done (no API key).

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{Json, Path};
use super::problem::Problem;
use crate::error::Result;
use crate::surveys::{self, Answer, Survey, SurveyForm};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(form, answer))
}

/// The survey's questions: NPS (0–10), CSAT (1–5) and a comment. An answered or expired survey
/// is 410.
#[utoipa::path(get, path = "/owner/surveys/{token}", tag = "owner", security(()),
    params(("token" = String, Path)),
    responses((status = 200, body = SurveyForm), (status = 404, body = Problem), (status = 410, body = Problem)))]
async fn form(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<SurveyForm>> {
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(surveys::form(&mut conn, &token).await?))
}

/// Answers the survey, once: a score out of range is 422 (the link stays usable), a second
/// answer 410.
#[utoipa::path(post, path = "/owner/surveys/{token}", tag = "owner", security(()),
    params(("token" = String, Path)), request_body = Answer,
    responses((status = 201, body = Survey), (status = 404, body = Problem), (status = 410, body = Problem),
        (status = 422, body = Problem)))]
async fn answer(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Json(given): Json<Answer>,
) -> Result<(StatusCode, Json<Survey>)> {
    let survey = surveys::answer(&state.db, &state.plugins, &token, &given).await?;
    Ok((StatusCode::CREATED, Json(survey)))
}
