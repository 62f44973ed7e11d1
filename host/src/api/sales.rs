//! The sales lifecycle: leads (with CSV import and follow-up tasks), the funnel, the demo
//! fleet and test drives.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{self, IdempotencyKey, IfMatch, Json, Path, Query};
use super::idempotency::{Begun, Create};
use super::pagination::{Page, PageParams};
use super::problem::Problem;
use crate::access::{Caller, Permission};
use crate::error::{Error, Result};
use crate::network;
use crate::sales::funnel::{self, Funnel, FunnelQuery};
use crate::sales::leads::{
    self, ImportReport, Lead, LeadFilter, LeadPatch, NewLead, NewTask, Task, TaskFilter,
};
use crate::sales::test_drives::{
    self, DemoVehicle, DemoVehiclePatch, NewDemoVehicle, NewTestDrive, TestDrive, TestDriveFilter,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_leads, create_lead))
        .routes(routes!(get_lead, update_lead))
        .routes(routes!(import_leads))
        .routes(routes!(add_task))
        .routes(routes!(complete_task))
        .routes(routes!(overdue_tasks))
        .routes(routes!(get_funnel))
        .routes(routes!(list_demo_vehicles, add_demo_vehicle))
        .routes(routes!(update_demo_vehicle))
        .routes(routes!(list_test_drives, book_test_drive))
        .routes(routes!(cancel_test_drive))
}

/// Leads in the caller's scope, newest first, each with its stage timeline.
#[utoipa::path(get, path = "/leads", tag = "sales", params(LeadFilter, PageParams),
    responses((status = 200, body = Page<Lead>), (status = 400, body = Problem)))]
async fn list_leads(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<LeadFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Lead>>> {
    caller.require(Permission::ReadRecords)?;
    let limit = page.limit()?;
    let mut conn = state.db.pool().acquire().await?;
    let rows = leads::list(&mut conn, &caller, &filter, page.before_id()?, limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |l| l.id)))
}

/// Captures a lead. A customer of the dealer with the same phone is linked; a second open
/// lead for the same phone is refused (409 `duplicate_open_lead`). Without `consultant_id`
/// the dealer's active sales consultants take turns. Retry safely with `Idempotency-Key`.
#[utoipa::path(post, path = "/leads", tag = "sales", request_body = NewLead,
    params(("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key replays the first answer")),
    responses((status = 201, body = Lead), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
async fn create_lead(
    State(state): State<AppState>,
    caller: Caller,
    key: IdempotencyKey,
    Json(new): Json<NewLead>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    let dealer_id = network::dealer_for_write(&mut conn, &caller, new.dealer_id).await?;
    drop(conn);
    let mut create = match Create::begin(&state.db, &caller, "POST /leads", key, &new).await? {
        Begun::Fresh(create) => create,
        Begun::Replayed(response) => return Ok(response),
    };
    let lead = leads::create(create.conn(), &caller, dealer_id, &new).await?;
    create
        .created(format!("/api/v1/leads/{}", lead.id), &lead)
        .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ImportParams {
    /// Required for HQ callers; dealer staff leave it out.
    dealer_id: Option<i64>,
}

/// Imports leads from a CSV file (`text/csv`, UTF-8) whose header names the columns `name`,
/// `phone`, `channel` and optionally `score`, `tags` (separated by `;`), `interest`. Good rows
/// are stored; each bad row is reported with its line number (the header is line 1), field
/// and reason, and stores nothing.
#[utoipa::path(post, path = "/leads/import", tag = "sales", params(ImportParams),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportReport), (status = 422, body = Problem)))]
async fn import_leads(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ImportParams>,
    body: Bytes,
) -> Result<Json<ImportReport>> {
    caller.require(Permission::WriteRecords)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| Error::invalid("csv", "not_utf8", "send the file as UTF-8 text"))?;
    let mut conn = state.db.pool().acquire().await?;
    let dealer_id = network::dealer_for_write(&mut conn, &caller, params.dealer_id).await?;
    drop(conn);
    let mut tx = state.db.begin_write().await?;
    let report = leads::import_csv(&mut tx, &caller, dealer_id, text).await?;
    tx.commit().await?;
    Ok(Json(report))
}

/// A lead with its stage timeline; the ETag is its version.
#[utoipa::path(get, path = "/leads/{id}", tag = "sales", params(("id" = i64, Path)),
    responses((status = 200, body = Lead), (status = 404, body = Problem)))]
async fn get_lead(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    let lead = leads::get(&mut conn, &caller, id).await?;
    Ok(extract::tagged(&lead))
}

/// Changes a lead: its stage (forward through new → contacted → test_drive → negotiating →
/// won, stages may be skipped, or lost with a `lost_reason`; won and lost are final; winning
/// makes the customer), score, tags or consultant. Send the ETag you read as `If-Match`.
#[utoipa::path(patch, path = "/leads/{id}", tag = "sales", request_body = LeadPatch,
    params(("id" = i64, Path), ("If-Match" = String, Header, description = "the ETag you read")),
    responses((status = 200, body = Lead), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem), (status = 428, body = Problem)))]
async fn update_lead(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    IfMatch(expected): IfMatch,
    Json(patch): Json<LeadPatch>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let lead = leads::update(&mut tx, &caller, id, expected, &patch).await?;
    tx.commit().await?;
    Ok(extract::tagged(&lead))
}

/// Adds a follow-up task to a lead (assigned to the lead's consultant unless named).
#[utoipa::path(post, path = "/leads/{id}/tasks", tag = "sales", request_body = NewTask,
    params(("id" = i64, Path)),
    responses((status = 201, body = Task), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn add_task(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(new): Json<NewTask>,
) -> Result<(axum::http::StatusCode, Json<Task>)> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let task = leads::add_task(&mut tx, &caller, id, &new).await?;
    tx.commit().await?;
    Ok((axum::http::StatusCode::CREATED, Json(task)))
}

/// Marks a follow-up task done.
#[utoipa::path(post, path = "/lead-tasks/{id}/done", tag = "sales", params(("id" = i64, Path)),
    responses((status = 200, body = Task), (status = 404, body = Problem)))]
async fn complete_task(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Task>> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let task = leads::complete_task(&mut tx, &caller, id).await?;
    tx.commit().await?;
    Ok(Json(task))
}

/// Open follow-up tasks past their due time, most overdue first.
#[utoipa::path(get, path = "/lead-tasks/overdue", tag = "sales", params(TaskFilter),
    responses((status = 200, body = Vec<Task>)))]
async fn overdue_tasks(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<TaskFilter>,
) -> Result<Json<Vec<Task>>> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(
        leads::overdue_tasks(&mut conn, &caller, &filter).await?,
    ))
}

/// The sales funnel of the leads captured in a period, per channel or consultant: how many
/// reached each stage and the conversion between consecutive stages (HQ sees every dealer,
/// a region its dealers).
#[utoipa::path(get, path = "/funnel", tag = "sales", params(FunnelQuery),
    responses((status = 200, body = Funnel), (status = 400, body = Problem), (status = 422, body = Problem)))]
async fn get_funnel(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<FunnelQuery>,
) -> Result<Json<Funnel>> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(funnel::funnel(&mut conn, &caller, &query).await?))
}

/// The demo fleet in the caller's scope.
#[utoipa::path(get, path = "/demo-vehicles", tag = "sales",
    responses((status = 200, body = Vec<DemoVehicle>)))]
async fn list_demo_vehicles(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<DemoVehicle>>> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(test_drives::demo_vehicles(&mut conn, &caller).await?))
}

/// Adds a demo vehicle to the dealer's fleet.
#[utoipa::path(post, path = "/demo-vehicles", tag = "sales", request_body = NewDemoVehicle,
    responses((status = 201, body = DemoVehicle), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn add_demo_vehicle(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewDemoVehicle>,
) -> Result<(axum::http::StatusCode, Json<DemoVehicle>)> {
    caller.require(Permission::WriteRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    let dealer_id = network::dealer_for_write(&mut conn, &caller, new.dealer_id).await?;
    drop(conn);
    let mut tx = state.db.begin_write().await?;
    let demo = test_drives::add_demo_vehicle(&mut tx, &caller, dealer_id, &new).await?;
    tx.commit().await?;
    Ok((axum::http::StatusCode::CREATED, Json(demo)))
}

/// Takes a demo vehicle out of the fleet, or back in.
#[utoipa::path(patch, path = "/demo-vehicles/{id}", tag = "sales", request_body = DemoVehiclePatch,
    params(("id" = i64, Path)),
    responses((status = 200, body = DemoVehicle), (status = 404, body = Problem)))]
async fn update_demo_vehicle(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(patch): Json<DemoVehiclePatch>,
) -> Result<Json<DemoVehicle>> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let demo = test_drives::set_demo_vehicle_active(&mut tx, &caller, id, &patch).await?;
    tx.commit().await?;
    Ok(Json(demo))
}

/// Test drives in the caller's scope, soonest first.
#[utoipa::path(get, path = "/test-drives", tag = "sales", params(TestDriveFilter),
    responses((status = 200, body = Vec<TestDrive>)))]
async fn list_test_drives(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<TestDriveFilter>,
) -> Result<Json<Vec<TestDrive>>> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(test_drives::list(&mut conn, &caller, &filter).await?))
}

/// Books a demo vehicle and a consultant for a slot (on the quarter hour) and moves the lead
/// to `test_drive`. An overlapping booking of the same demo vehicle or consultant is refused
/// with 409 `demo_vehicle_booked` / `consultant_booked`, also between concurrent requests.
#[utoipa::path(post, path = "/test-drives", tag = "sales", request_body = NewTestDrive,
    responses((status = 201, body = TestDrive), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
async fn book_test_drive(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewTestDrive>,
) -> Result<(axum::http::StatusCode, Json<TestDrive>)> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let drive = test_drives::book(&mut tx, &caller, &new).await?;
    tx.commit().await?;
    Ok((axum::http::StatusCode::CREATED, Json(drive)))
}

/// Cancels a test drive and frees its slots.
#[utoipa::path(post, path = "/test-drives/{id}/cancel", tag = "sales", params(("id" = i64, Path)),
    responses((status = 200, body = TestDrive), (status = 404, body = Problem)))]
async fn cancel_test_drive(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<TestDrive>> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let drive = test_drives::cancel(&mut tx, &caller, id).await?;
    tx.commit().await?;
    Ok(Json(drive))
}
