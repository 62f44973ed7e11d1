//! After-sales service: appointments, repair orders and proactive campaigns.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{self, IdempotencyKey, IfMatch, Json, Path, Query};
use super::idempotency::{Begun, Create};
use super::pagination::{Page, PageParams};
use super::problem::Problem;
use crate::access::{Caller, Permission};
use crate::attachments::Attachment;
use crate::error::Result;
use crate::service::Period;
use crate::service::appointments::{
    self, Appointment, AppointmentFilter, AppointmentStatus, Conversion, NewAppointment,
};
use crate::service::campaigns::{self, Campaign, CampaignVehicle, Invited, NewCampaign};
use crate::service::extra_work::{
    self, NewExtraWork, OwnerDecision, OwnerView, Proposal, Proposed,
};
use crate::service::repair_orders::{
    self, CheckIn, Dispatch, FirstTimeFix, Move, NewLine, NewPayment, NewProgress, NewRepairOrder,
    OwnerRepair, PhotoStage, QualityCheck, RepairOrder, RepairOrderPatch, RoFilter,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_appointments, create_appointment))
        .routes(routes!(appointment_conversion))
        .routes(routes!(get_appointment))
        .routes(routes!(arrive))
        .routes(routes!(cancel))
        .routes(routes!(list_repair_orders, create_repair_order))
        .routes(routes!(first_time_fix))
        .routes(routes!(get_repair_order, update_repair_order))
        .routes(routes!(check_in))
        .routes(routes!(dispatch))
        .routes(routes!(add_line))
        .routes(routes!(add_progress))
        .routes(routes!(move_repair_order))
        .routes(routes!(quality_check))
        .routes(routes!(settle))
        .routes(routes!(pay))
        .routes(routes!(list_campaigns, create_campaign))
        .routes(routes!(get_campaign))
        .routes(routes!(campaign_vehicles))
        .routes(routes!(invite))
        .routes(routes!(list_extra_work, propose_extra_work))
        .routes(routes!(inspection_photo))
        .routes(routes!(progress_photo))
        .routes(routes!(owner_view, owner_decide))
        .routes(routes!(owner_repair))
        .routes(routes!(owner_repair_photo))
}

/// Appointments in the caller's scope, newest first. `status=no_show` lists bookings whose
/// slot ended without an arrival.
#[utoipa::path(get, path = "/appointments", tag = "service", params(AppointmentFilter, PageParams),
    responses((status = 200, body = Page<Appointment>), (status = 400, body = Problem)))]
async fn list_appointments(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<AppointmentFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Appointment>>> {
    caller.require(Permission::ReadRecords)?;
    let limit = page.limit()?;
    let mut conn = state.db.pool().acquire().await?;
    let rows = appointments::list(&mut conn, &caller, &filter, page.before_id()?, limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |a| a.id)))
}

/// Books an appointment (online or by phone) for a vehicle, a service type and a slot. Retry
/// safely with `Idempotency-Key`.
#[utoipa::path(post, path = "/appointments", tag = "service", request_body = NewAppointment,
    params(("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key replays the first answer")),
    responses((status = 201, body = Appointment), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn create_appointment(
    State(state): State<AppState>,
    caller: Caller,
    key: IdempotencyKey,
    Json(new): Json<NewAppointment>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    let valid = appointments::check_new(&mut conn, &caller, &new).await?;
    drop(conn);
    let mut create =
        match Create::begin(&state.db, &caller, "POST /appointments", key, &new).await? {
            Begun::Fresh(create) => create,
            Begun::Replayed(response) => return Ok(response),
        };
    let appointment = appointments::create(create.conn(), &caller, &valid).await?;
    create
        .created(
            format!("/api/v1/appointments/{}", appointment.id),
            &appointment,
        )
        .await
}

/// Appointment conversion of a period: appointments whose slot starts in it, and how many
/// arrived (`arrived / made`).
#[utoipa::path(get, path = "/appointments/conversion", tag = "service", params(Period),
    responses((status = 200, body = Conversion), (status = 400, body = Problem), (status = 422, body = Problem)))]
async fn appointment_conversion(
    State(state): State<AppState>,
    caller: Caller,
    Query(period): Query<Period>,
) -> Result<Json<Conversion>> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(
        appointments::conversion(&mut conn, &caller, &period).await?,
    ))
}

#[utoipa::path(get, path = "/appointments/{id}", tag = "service", params(("id" = i64, Path)),
    responses((status = 200, body = Appointment), (status = 404, body = Problem)))]
async fn get_appointment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(extract::tagged(
        &appointments::get(&mut conn, &caller, id).await?,
    ))
}

async fn move_appointment(
    state: &AppState,
    caller: &Caller,
    id: i64,
    expected: i64,
    to: AppointmentStatus,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let appointment = appointments::move_to(&mut tx, caller, id, expected, to).await?;
    tx.commit().await?;
    Ok(extract::tagged(&appointment))
}

/// Records that the car arrived (a late arrival of a no-show too); a repair order can then be
/// opened from it.
#[utoipa::path(post, path = "/appointments/{id}/arrive", tag = "service",
    params(("id" = i64, Path), ("If-Match" = String, Header, description = "the ETag you read")),
    responses((status = 200, body = Appointment), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)))]
async fn arrive(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    IfMatch(expected): IfMatch,
) -> Result<Response> {
    move_appointment(&state, &caller, id, expected, AppointmentStatus::Arrived).await
}

/// Cancels a booking that has not passed.
#[utoipa::path(post, path = "/appointments/{id}/cancel", tag = "service",
    params(("id" = i64, Path), ("If-Match" = String, Header, description = "the ETag you read")),
    responses((status = 200, body = Appointment), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)))]
async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    IfMatch(expected): IfMatch,
) -> Result<Response> {
    move_appointment(&state, &caller, id, expected, AppointmentStatus::Cancelled).await
}

/// Repair orders in the caller's scope, newest first.
#[utoipa::path(get, path = "/repair-orders", tag = "service", params(RoFilter, PageParams),
    responses((status = 200, body = Page<RepairOrder>), (status = 400, body = Problem)))]
async fn list_repair_orders(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<RoFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<RepairOrder>>> {
    caller.require(Permission::ReadRecords)?;
    let limit = page.limit()?;
    let mut conn = state.db.pool().acquire().await?;
    let rows = repair_orders::list(&mut conn, &caller, &filter, page.before_id()?, limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |r| r.id)))
}

/// Opens a repair order, from an arrived appointment or for a customer's vehicle. One for the
/// same vehicle and complaint code within 30 days of the previous one's settlement is flagged
/// as its comeback. Retry safely with `Idempotency-Key`.
#[utoipa::path(post, path = "/repair-orders", tag = "service", request_body = NewRepairOrder,
    params(("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key replays the first answer")),
    responses((status = 201, body = RepairOrder), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_repair_order(
    State(state): State<AppState>,
    caller: Caller,
    key: IdempotencyKey,
    Json(new): Json<NewRepairOrder>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    let valid = repair_orders::check_new(&mut conn, &caller, &new).await?;
    drop(conn);
    let mut create =
        match Create::begin(&state.db, &caller, "POST /repair-orders", key, &new).await? {
            Begun::Fresh(create) => create,
            Begun::Replayed(response) => return Ok(response),
        };
    let order = repair_orders::create(create.conn(), &caller, &valid).await?;
    create
        .created(format!("/api/v1/repair-orders/{}", order.id), &order)
        .await
}

/// First-time-fix of a period: repair orders settled in it with no comeback for the same issue
/// within 30 days, over all repair orders settled in it.
#[utoipa::path(get, path = "/repair-orders/first-time-fix", tag = "service", params(Period),
    responses((status = 200, body = FirstTimeFix), (status = 400, body = Problem), (status = 422, body = Problem)))]
async fn first_time_fix(
    State(state): State<AppState>,
    caller: Caller,
    Query(period): Query<Period>,
) -> Result<Json<FirstTimeFix>> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(
        repair_orders::first_time_fix(&mut conn, &caller, &period).await?,
    ))
}

/// A repair order with its inspection, lines, payments and timeline; the ETag is its version.
#[utoipa::path(get, path = "/repair-orders/{id}", tag = "service", params(("id" = i64, Path)),
    responses((status = 200, body = RepairOrder), (status = 404, body = Problem)))]
async fn get_repair_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(extract::tagged(
        &repair_orders::get(&mut conn, &caller, id).await?,
    ))
}

/// Changes a repair order's custom fields (merged by key, `null` removes one; validated against
/// the dealer's definitions), in any status. Send the ETag you read as `If-Match`.
#[utoipa::path(patch, path = "/repair-orders/{id}", tag = "service", request_body = RepairOrderPatch,
    params(("id" = i64, Path), ("If-Match" = String, Header, description = "the ETag you read")),
    responses((status = 200, body = RepairOrder), (status = 404, body = Problem), (status = 412, body = Problem),
        (status = 422, body = Problem), (status = 428, body = Problem)))]
async fn update_repair_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    IfMatch(expected): IfMatch,
    Json(patch): Json<RepairOrderPatch>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let order = repair_orders::update(&mut tx, &caller, id, expected, patch).await?;
    tx.commit().await?;
    Ok(extract::tagged(&order))
}

/// Check-in inspection: the odometer (recorded as a mileage reading of the vehicle) and the
/// inspection items graded green / yellow / red; `open → inspected`.
#[utoipa::path(post, path = "/repair-orders/{id}/check-in", tag = "service", request_body = CheckIn,
    params(("id" = i64, Path), ("If-Match" = String, Header, description = "the ETag you read")),
    responses((status = 200, body = RepairOrder), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem)))]
async fn check_in(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    IfMatch(expected): IfMatch,
    Json(body): Json<CheckIn>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let order = repair_orders::check_in(&mut tx, &caller, id, expected, &body).await?;
    tx.commit().await?;
    Ok(extract::tagged(&order))
}

/// Assigns a technician of the dealer (`inspected → in_progress`, or a reassignment).
#[utoipa::path(post, path = "/repair-orders/{id}/dispatch", tag = "service", request_body = Dispatch,
    params(("id" = i64, Path), ("If-Match" = String, Header, description = "the ETag you read")),
    responses((status = 200, body = RepairOrder), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem)))]
async fn dispatch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    IfMatch(expected): IfMatch,
    Json(body): Json<Dispatch>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let order = repair_orders::dispatch(&mut tx, &caller, id, expected, &body).await?;
    tx.commit().await?;
    Ok(extract::tagged(&order))
}

/// Adds a labour or parts line (amounts in fen) until the order is settled.
#[utoipa::path(post, path = "/repair-orders/{id}/lines", tag = "service", request_body = NewLine,
    params(("id" = i64, Path), ("If-Match" = String, Header, description = "the ETag you read")),
    responses((status = 200, body = RepairOrder), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem)))]
async fn add_line(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    IfMatch(expected): IfMatch,
    Json(body): Json<NewLine>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let order = repair_orders::add_line(&mut tx, &caller, id, expected, &body).await?;
    tx.commit().await?;
    Ok(extract::tagged(&order))
}

/// A progress update on the timeline; attach photos to it with
/// `POST /repair-orders/{id}/progress/{event_id}/photos`. Answers the repair order; the new
/// entry is the last of its `events`.
#[utoipa::path(post, path = "/repair-orders/{id}/progress", tag = "service", request_body = NewProgress,
    params(("id" = i64, Path)),
    responses((status = 200, body = RepairOrder), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn add_progress(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(body): Json<NewProgress>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let (order, _) = repair_orders::add_progress(&mut tx, &caller, id, &body).await?;
    tx.commit().await?;
    Ok(extract::tagged(&order))
}

/// Moves a repair order: to `quality_check`; from the quality check to `ready` (passed) or back
/// to `in_progress` (failed); from `waiting_approval` back to `in_progress` once the extra work
/// is decided; `open` or `inspected` to `cancelled`. A refused move is 409 with the allowed
/// next states.
#[utoipa::path(post, path = "/repair-orders/{id}/status", tag = "service", request_body = Move,
    params(("id" = i64, Path), ("If-Match" = String, Header, description = "the ETag you read")),
    responses((status = 200, body = RepairOrder), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem)))]
async fn move_repair_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    IfMatch(expected): IfMatch,
    Json(body): Json<Move>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let order = repair_orders::move_to(&mut tx, &caller, id, expected, &body).await?;
    tx.commit().await?;
    Ok(extract::tagged(&order))
}

/// The quality check's result: passed → `ready`, failed → back to `in_progress`.
#[utoipa::path(post, path = "/repair-orders/{id}/quality-check", tag = "service", request_body = QualityCheck,
    params(("id" = i64, Path), ("If-Match" = String, Header, description = "the ETag you read")),
    responses((status = 200, body = RepairOrder), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem)))]
async fn quality_check(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    IfMatch(expected): IfMatch,
    Json(body): Json<QualityCheck>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let order = repair_orders::quality_check(&mut tx, &caller, id, expected, &body).await?;
    tx.commit().await?;
    Ok(extract::tagged(&order))
}

/// Settles a ready repair order: its totals are computed from its lines (fen) and frozen;
/// then the `repair-settled` event goes to the dealer's integration plugin (e.g. the
/// provincial maintenance-record upload).
#[utoipa::path(post, path = "/repair-orders/{id}/settle", tag = "service",
    params(("id" = i64, Path), ("If-Match" = String, Header, description = "the ETag you read")),
    responses((status = 200, body = RepairOrder), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)))]
async fn settle(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    IfMatch(expected): IfMatch,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let order = repair_orders::settle(&state.db, &state.plugins, &caller, id, expected).await?;
    Ok(extract::tagged(&order))
}

/// Records a payment of a settled order; paid in full closes it (`paid`).
#[utoipa::path(post, path = "/repair-orders/{id}/payments", tag = "service", request_body = NewPayment,
    params(("id" = i64, Path), ("If-Match" = String, Header, description = "the ETag you read")),
    responses((status = 200, body = RepairOrder), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem)))]
async fn pay(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    IfMatch(expected): IfMatch,
    Json(body): Json<NewPayment>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let order = repair_orders::pay(&mut tx, &caller, id, expected, &body).await?;
    tx.commit().await?;
    Ok(extract::tagged(&order))
}

/// Campaigns of units in the caller's scope, with their counts.
#[utoipa::path(get, path = "/campaigns", tag = "service",
    responses((status = 200, body = Vec<Campaign>)))]
async fn list_campaigns(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Campaign>>> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(campaigns::list(&mut conn, &caller).await?))
}

/// Creates a campaign: vehicles under the unit carrying a component batch in a mileage window.
/// Retry safely with `Idempotency-Key`.
#[utoipa::path(post, path = "/campaigns", tag = "service", request_body = NewCampaign,
    params(("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key replays the first answer")),
    responses((status = 201, body = Campaign), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn create_campaign(
    State(state): State<AppState>,
    caller: Caller,
    key: IdempotencyKey,
    Json(new): Json<NewCampaign>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut create = match Create::begin(&state.db, &caller, "POST /campaigns", key, &new).await? {
        Begun::Fresh(create) => create,
        Begun::Replayed(response) => return Ok(response),
    };
    let campaign = campaigns::create(create.conn(), &caller, &new).await?;
    create
        .created(format!("/api/v1/campaigns/{}", campaign.id), &campaign)
        .await
}

/// A campaign with its counts: owners invited, vehicles booked, vehicles arrived.
#[utoipa::path(get, path = "/campaigns/{id}", tag = "service", params(("id" = i64, Path)),
    responses((status = 200, body = Campaign), (status = 404, body = Problem)))]
async fn get_campaign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(extract::tagged(
        &campaigns::get(&mut conn, &caller, id).await?,
    ))
}

/// Exactly the vehicles the campaign selects now, with the mileage each was selected on.
#[utoipa::path(get, path = "/campaigns/{id}/vehicles", tag = "service", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<CampaignVehicle>), (status = 404, body = Problem)))]
async fn campaign_vehicles(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Vec<CampaignVehicle>>> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(campaigns::vehicles(&mut conn, &caller, id).await?))
}

/// Invites the owner of every vehicle the campaign selects now; a vehicle already invited is
/// not invited (nor notified) again.
#[utoipa::path(post, path = "/campaigns/{id}/invite", tag = "service", params(("id" = i64, Path)),
    responses((status = 200, body = Invited), (status = 404, body = Problem)))]
async fn invite(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Invited>> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let invited = campaigns::invite(&mut tx, &caller, id).await?;
    tx.commit().await?;
    Ok(Json(invited))
}

/// The extra work proposed on a repair order, oldest first, with the owner's decisions.
#[utoipa::path(get, path = "/repair-orders/{id}/extra-work", tag = "service", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<Proposal>), (status = 404, body = Problem)))]
async fn list_extra_work(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Vec<Proposal>>> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(extra_work::list(&mut conn, &caller, id).await?))
}

/// Proposes extra work found during the repair. The dealer's approval hook decides who must
/// agree; when the owner must, the order waits for approval and the answer carries the owner's
/// single-use link (send it to the owner).
#[utoipa::path(post, path = "/repair-orders/{id}/extra-work", tag = "service", request_body = NewExtraWork,
    params(("id" = i64, Path), ("If-Match" = String, Header, description = "the ETag you read")),
    responses((status = 200, body = Proposed), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem), (status = 424, body = Problem)))]
async fn propose_extra_work(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    IfMatch(expected): IfMatch,
    Json(body): Json<NewExtraWork>,
) -> Result<Json<Proposed>> {
    caller.require(Permission::WriteRecords)?;
    Ok(Json(
        extra_work::propose(&state.db, &state.plugins, &caller, id, expected, &body).await?,
    ))
}

async fn photo(
    state: &AppState,
    caller: &Caller,
    id: i64,
    stage: PhotoStage,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut tx = state.db.begin_write().await?;
    let attachment = repair_orders::add_photo(
        &mut tx,
        &state.attachments,
        caller,
        id,
        stage,
        content_type,
        body,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(attachment)).into_response())
}

/// A check-in photo (JPEG, PNG or WebP, at most 8 MiB), sent as the raw body with its
/// Content-Type. A refused upload stores nothing.
#[utoipa::path(post, path = "/repair-orders/{id}/inspection/photos", tag = "service", params(("id" = i64, Path)),
    request_body(content = Vec<u8>, content_type = "image/jpeg"),
    responses((status = 201, body = Attachment), (status = 404, body = Problem), (status = 413, body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem)))]
async fn inspection_photo(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    photo(&state, &caller, id, PhotoStage::Inspection, &headers, &body).await
}

/// A photo of a progress update (see `POST /repair-orders/{id}/progress`).
#[utoipa::path(post, path = "/repair-orders/{id}/progress/{event_id}/photos", tag = "service",
    params(("id" = i64, Path), ("event_id" = i64, Path)),
    request_body(content = Vec<u8>, content_type = "image/jpeg"),
    responses((status = 201, body = Attachment), (status = 404, body = Problem), (status = 413, body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem)))]
async fn progress_photo(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, event_id)): Path<(i64, i64)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    photo(
        &state,
        &caller,
        id,
        PhotoStage::Progress(event_id),
        &headers,
        &body,
    )
    .await
}

/// A repair order as its owner follows it, through the link given when it was opened (no API
/// key): the status and its history in the owner's words, the progress photos of each step
/// with their explanation, and the amount once settled.
#[utoipa::path(get, path = "/owner/repairs/{token}", tag = "owner", security(()),
    params(("token" = String, Path)),
    responses((status = 200, body = OwnerRepair), (status = 404, body = Problem), (status = 410, body = Problem)))]
async fn owner_repair(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<OwnerRepair>> {
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(repair_orders::for_owner(&mut conn, &token).await?))
}

/// The bytes of a progress photo of the repair order behind the owner's link (no API key),
/// with its content type; an attachment that is not one of that order's progress photos is
/// 404.
#[utoipa::path(get, path = "/owner/repairs/{token}/photos/{attachment_id}", tag = "owner", security(()),
    params(("token" = String, Path), ("attachment_id" = i64, Path)),
    responses((status = 200, description = "the photo", content_type = "application/octet-stream"),
        (status = 404, body = Problem), (status = 410, body = Problem)))]
async fn owner_repair_photo(
    State(state): State<AppState>,
    Path((token, attachment_id)): Path<(String, i64)>,
) -> Result<Response> {
    let mut conn = state.db.pool().acquire().await?;
    let (attachment, bytes) =
        repair_orders::owner_photo(&mut conn, &state.attachments, &token, attachment_id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, attachment.content_type),
            (header::CACHE_CONTROL, "private, max-age=3600".to_owned()),
        ],
        bytes,
    )
        .into_response())
}

/// The extra work proposed on the owner's car, through the owner's link (no API key): the
/// dealer, the car, the items and amounts. A used or expired link is 410.
#[utoipa::path(get, path = "/owner/extra-work/{token}", tag = "owner", security(()),
    params(("token" = String, Path)),
    responses((status = 200, body = OwnerView), (status = 404, body = Problem), (status = 410, body = Problem)))]
async fn owner_view(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<OwnerView>> {
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(extra_work::owner_view(&mut conn, &token).await?))
}

/// The owner's decision through the link (no API key): approve all items, some (`items`), or
/// decline. Works once; a second use or an expired link is 410.
#[utoipa::path(post, path = "/owner/extra-work/{token}", tag = "owner", security(()),
    params(("token" = String, Path)), request_body = OwnerDecision,
    responses((status = 200, body = Proposal), (status = 404, body = Problem), (status = 410, body = Problem), (status = 422, body = Problem)))]
async fn owner_decide(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Json(decision): Json<OwnerDecision>,
) -> Result<Json<Proposal>> {
    Ok(Json(
        extra_work::owner_decide(&state.db, &token, &decision).await?,
    ))
}
