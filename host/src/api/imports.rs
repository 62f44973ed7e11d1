//! Imports of customers, vehicles and service history from a DMS or Excel export: upload a
//! file, follow the job's progress, read the problems of its refused rows, resume it.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{Json, Path, Query};
use super::pagination::{Page, PageParams};
use super::problem::Problem;
use crate::access::{Caller, Permission};
use crate::audit::Actor;
use crate::error::{Error, Result};
use crate::imports::{self, Claimed, Format, Job, Kind, Mapping, NewImport, Pass, RowError};
use crate::network;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(
            OpenApiRouter::new()
                .routes(routes!(create_import))
                .layer(DefaultBodyLimit::max(imports::MAX_FILE_BYTES)),
        )
        .routes(routes!(get_import))
        .routes(routes!(import_errors))
        .routes(routes!(resume_import))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ImportParams {
    /// What the file holds.
    kind: Kind,
    /// `csv` or `xlsx`; default from `file_name`'s extension.
    format: Option<Format>,
    /// The file's name, e.g. 客户.xlsx (kept with the job).
    file_name: Option<String>,
    /// Check every row and store nothing (default false).
    #[serde(default)]
    dry_run: bool,
    /// Field → column header as a JSON object, e.g. `{"name":"客户姓名","phone":"手机"}`; fields
    /// left out are fed by the column named like them (姓名, 手机, 车牌, VIN, 里程, ...).
    mapping: Option<String>,
    /// Required for HQ callers; dealer staff leave it out.
    dealer_id: Option<i64>,
}

/// Starts an import of the request body (the file itself: CSV in UTF-8 or GBK, or XLSX, at
/// most 64 MiB) for the caller's dealer: 202 with the job, which then runs in the background
/// in batches; follow it at `GET /imports/{id}`. A file that cannot be read, or a mapping that
/// does not fit its header, is refused at once (422). Dealer admins and HQ only.
#[utoipa::path(post, path = "/imports", tag = "imports", params(ImportParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 202, body = Job), (status = 403, body = Problem), (status = 413, body = Problem),
        (status = 422, body = Problem)))]
async fn create_import(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ImportParams>,
    body: Bytes,
) -> Result<Response> {
    caller.require(Permission::ImportRecords)?;
    let mapping: Mapping = match params.mapping.as_deref() {
        Some(json) => serde_json::from_str(json).map_err(|e| {
            Error::invalid(
                "mapping",
                "invalid_mapping",
                format!("the mapping is a JSON object of field to column header: {e}"),
            )
        })?,
        None => Mapping::new(),
    };
    let mut conn = state.db.pool().acquire().await?;
    let dealer_id = network::dealer_for_write(&mut conn, &caller, params.dealer_id).await?;
    drop(conn);
    let new = NewImport {
        dealer_id,
        kind: params.kind,
        format: params.format,
        file_name: params.file_name.unwrap_or_default(),
        bytes: body.to_vec(),
        mapping,
        dry_run: params.dry_run,
    };
    let job = imports::create(&state.db, Actor::Staff(&caller), new).await?;
    let claimed = imports::claim(&state.db, job.id).await?;
    start(&state, caller, claimed);
    Ok(accepted(&job))
}

/// Runs a claimed job to its end in the background, as `caller`.
fn start(state: &AppState, caller: Caller, claimed: Claimed) {
    let Claimed::Runner(runner) = claimed else {
        return;
    };
    let db = state.db.clone();
    tokio::spawn(async move {
        let ran = imports::run_claimed(&db, Actor::Staff(&caller), runner, Pass::default(), |_| {});
        if let Err(e) = ran.await {
            tracing::warn!(error = %e, "import stopped");
        }
    });
}

fn accepted(job: &Job) -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/api/v1/imports/{}", job.id))],
        axum::Json(job),
    )
        .into_response()
}

/// An import job: its status and progress (`rows_done` of `rows_total`, created, unchanged,
/// refused), for a progress indicator.
#[utoipa::path(get, path = "/imports/{id}", tag = "imports", params(("id" = i64, Path)),
    responses((status = 200, body = Job), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn get_import(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Job>> {
    caller.require(Permission::ImportRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(imports::get(&mut conn, &caller, id).await?))
}

/// The problems of an import's refused rows, in file order: line (the header is line 1),
/// field, code and message, one entry per problem.
#[utoipa::path(get, path = "/imports/{id}/errors", tag = "imports",
    params(("id" = i64, Path), PageParams),
    responses((status = 200, body = Page<RowError>), (status = 404, body = Problem)))]
async fn import_errors(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<RowError>>> {
    caller.require(Permission::ImportRecords)?;
    let limit = page.limit()?;
    let mut conn = state.db.pool().acquire().await?;
    imports::dealer_of(&mut conn, &caller, id).await?;
    let rows = imports::errors(&mut conn, id, page.after_id()?, limit).await?;
    Ok(Json(Page::from_rows_oldest_first(rows, limit, |e| e.id)))
}

/// Resumes an interrupted import after its last committed batch (202); a finished one is
/// answered as it is, one still held by a live runner is 409 `import_running`.
#[utoipa::path(post, path = "/imports/{id}/resume", tag = "imports", params(("id" = i64, Path)),
    responses((status = 202, body = Job), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn resume_import(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response> {
    caller.require(Permission::ImportRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    imports::dealer_of(&mut conn, &caller, id).await?;
    drop(conn);
    let claimed = imports::claim(&state.db, id).await?;
    let job = match &claimed {
        Claimed::Done(job) => job.clone(),
        Claimed::Runner(_) => {
            let mut conn = state.db.pool().acquire().await?;
            imports::get(&mut conn, &caller, id).await?
        }
    };
    start(&state, caller, claimed);
    Ok(accepted(&job))
}
