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
use crate::kpis::churn::{self, ChurnTasks, ChurnTasksCreated, OffersSent, RetentionOffer};
use crate::kpis::export::{self, ExportFormat};
use crate::kpis::records::{self, DrillRecord, RecordsQuery};
use crate::kpis::store::{self, StoreCockpit};
use crate::kpis::{self, KpiQuery, KpiReport, KpiSeries, SeriesQuery};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(report))
        .routes(routes!(series))
        .routes(routes!(list_records))
        .routes(routes!(export_records))
        .routes(routes!(store_cockpit))
        .routes(routes!(churn_tasks))
        .routes(routes!(churn_offers))
}

/// A store's cockpit beyond the KPIs: SLA breaches by hour and category, the NPS
/// distribution and detractors' comments, active / new / lost customers, the top service
/// items and the staff leaderboard (`by` is not used).
#[utoipa::path(get, path = "/kpis/store", tag = "kpis", params(KpiQuery),
    responses((status = 200, body = StoreCockpit), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn store_cockpit(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<KpiQuery>,
) -> Result<Json<StoreCockpit>> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(store::cockpit(&mut conn, &caller, &query).await?))
}

/// An advisor task to call back each owner of the churn warning (one per owner and day).
#[utoipa::path(post, path = "/kpis/churn/tasks", tag = "kpis", request_body = ChurnTasks,
    responses((status = 200, body = ChurnTasksCreated), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn churn_tasks(
    State(state): State<AppState>,
    caller: Caller,
    Json(asked): Json<ChurnTasks>,
) -> Result<Json<ChurnTasksCreated>> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let created = churn::create_tasks(&mut tx, &caller, &asked).await?;
    tx.commit().await?;
    Ok(Json(created))
}

/// A retention offer by SMS to each owner of the churn warning who gave marketing consent;
/// the others are counted and left alone.
#[utoipa::path(post, path = "/kpis/churn/offers", tag = "kpis", request_body = RetentionOffer,
    responses((status = 200, body = OffersSent), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn churn_offers(
    State(state): State<AppState>,
    caller: Caller,
    Json(asked): Json<RetentionOffer>,
) -> Result<Json<OffersSent>> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let sent = churn::send_offers(&mut tx, &caller, &asked).await?;
    tx.commit().await?;
    Ok(Json(sent))
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
