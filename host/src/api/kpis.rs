//! The KPIs of a unit of the network: the report, a series, the records behind a figure and
//! their export.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{Json, Query};
use super::pagination::{Page, PageParams};
use super::problem::Problem;
use crate::access::{Caller, Permission};
use crate::error::Result;
use crate::kpis::export::{self, ExportFormat};
use crate::kpis::records::{self, DrillRecord, RecordsQuery};
use crate::kpis::{self, KpiQuery, KpiReport, KpiSeries, SeriesQuery};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(report))
        .routes(routes!(series))
        .routes(routes!(list_records))
        .routes(routes!(export_records))
}

/// Every KPI of a unit (default the caller's) over a period and the period of as many days
/// before it, with a row per child unit, per unit of a level, or per value of a dimension.
#[utoipa::path(get, path = "/kpis", tag = "kpis", params(KpiQuery),
    responses((status = 200, body = KpiReport), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn report(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<KpiQuery>,
) -> Result<Json<KpiReport>> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(kpis::report(&mut conn, &caller, &query).await?))
}

/// One KPI over time, per day, week or month, for the unit and each row of the breakdown.
#[utoipa::path(get, path = "/kpis/series", tag = "kpis", params(SeriesQuery),
    responses((status = 200, body = KpiSeries), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn series(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<SeriesQuery>,
) -> Result<Json<KpiSeries>> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(kpis::series(&mut conn, &caller, &query).await?))
}

/// The records behind a figure, newest first: those its `count` is over, each marked
/// `counted` when it is in the figure's `part`.
#[utoipa::path(get, path = "/kpis/records", tag = "kpis", params(RecordsQuery, PageParams),
    responses((status = 200, body = Page<DrillRecord>), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn list_records(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<RecordsQuery>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<DrillRecord>>> {
    caller.require(Permission::ReadRecords)?;
    let (limit, offset) = (page.limit()?, page.offset()?);
    let mut conn = state.db.pool().acquire().await?;
    let rows = records::list(&mut conn, &caller, &query, offset, limit + 1).await?;
    Ok(Json(Page::from_rows_at(rows, limit, offset)))
}

/// All the records behind a figure as a CSV file (UTF-8) or an Excel workbook, headers in
/// Chinese, times in the unit's local time.
#[utoipa::path(get, path = "/kpis/records/export", tag = "kpis", params(RecordsQuery, ExportFormat),
    responses(
        (status = 200, description = "the file", content(
            (String = "text/csv"),
            (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn export_records(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<RecordsQuery>,
    Query(ExportFormat { format }): Query<ExportFormat>,
) -> Result<Response> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    let file = export::export(&mut conn, &caller, &query, format).await?;
    Ok((
        [
            (header::CONTENT_TYPE, file.format.content_type().to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", file.name),
            ),
        ],
        file.bytes,
    )
        .into_response())
}
