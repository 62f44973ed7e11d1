//! Satisfaction surveys as the owner answers them, through the single-use link sent when the
//! subject was done (no API key).

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{Json, Path};
use crate::audit::{self, Entry};
use crate::error::{Problem, Result};
use crate::follow_ups;
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
    let mut tx = state.db.begin_write().await?;
    let (survey, link) = surveys::answer(&mut tx, &token, &given).await?;
    audit::record_owner(
        &mut tx,
        link.id,
        Entry::ok("answer", "survey", survey.id, link.dealer_id),
    )
    .await?;
    tx.commit().await?;
    follow_ups::survey_answered(&state, link.dealer_id, survey.id).await;
    Ok((StatusCode::CREATED, Json(survey)))
}
