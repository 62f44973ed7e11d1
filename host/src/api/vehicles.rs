//! Vehicles, the people linked to them, ownership history and mileage.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{IdempotencyKey, IfMatch, Json, Path, Query, tagged};
use super::idempotency::{Begun, Create};
use super::pagination::{Page, PageParams};
use super::problem::Problem;
use crate::access::{Caller, Permission};
use crate::custom_fields::Writer;
use crate::error::Result;
use crate::network;
use crate::vehicles::mileage::{self, MileageHistory, NewReading, Reading};
use crate::vehicles::{
    self, NewLink, NewVehicle, Vehicle, VehiclePatch, VehiclePerson, VehicleSearch,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search, create))
        .routes(routes!(get, update))
        .routes(routes!(link_person))
        .routes(routes!(ownership))
        .routes(routes!(mileage_history, add_reading))
}

/// Finds vehicles by VIN, plate, customer or component batch, newest first.
#[utoipa::path(get, path = "/vehicles", tag = "vehicles", params(VehicleSearch, PageParams),
    responses((status = 200, body = Page<Vehicle>)))]
async fn search(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<VehicleSearch>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Vehicle>>> {
    caller.require(Permission::ReadRecords)?;
    let limit = page.limit()?;
    let mut conn = state.db.pool().acquire().await?;
    let rows = vehicles::search(
        &mut conn,
        &state.reads,
        &caller,
        &q,
        page.before_id()?,
        limit,
    )
    .await?;
    Ok(Json(Page::from_rows(rows, limit, |v| v.id)))
}

/// Registers a vehicle (VIN validated with its check digit). Send `Idempotency-Key` to make
/// retries safe.
#[utoipa::path(post, path = "/vehicles", tag = "vehicles", request_body = NewVehicle,
    params(("Idempotency-Key" = Option<String>, Header, description = "a retried POST with the same key creates nothing twice")),
    responses((status = 201, body = Vehicle), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    key: IdempotencyKey,
    Json(new): Json<NewVehicle>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut create = match Create::begin(&state.db, &caller, "POST /vehicles", key, &new).await? {
        Begun::Fresh(c) => c,
        Begun::Replayed(response) => return Ok(response),
    };
    let dealer_id = network::dealer_for_write(create.conn(), &caller, new.dealer_id).await?;
    let vehicle = vehicles::create(create.conn(), &caller, dealer_id, new, Writer::Staff).await?;
    create
        .created(format!("/api/v1/vehicles/{}", vehicle.id), &vehicle)
        .await
}

#[utoipa::path(get, path = "/vehicles/{id}", tag = "vehicles", params(("id" = i64, Path)),
    responses((status = 200, body = Vehicle), (status = 404, body = Problem)))]
async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(tagged(
        &vehicles::read(&mut conn, &state.reads, &caller, id).await?,
    ))
}

/// Changes a vehicle (never its VIN). `If-Match` must carry the ETag you read.
#[utoipa::path(patch, path = "/vehicles/{id}", tag = "vehicles", request_body = VehiclePatch,
    params(("id" = i64, Path), ("If-Match" = String, Header, description = "the ETag you read")),
    responses((status = 200, body = Vehicle), (status = 412, body = Problem), (status = 428, body = Problem)))]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    IfMatch(version): IfMatch,
    Json(patch): Json<VehiclePatch>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let vehicle = vehicles::update(&mut tx, &caller, id, version, patch, Writer::Staff).await?;
    tx.commit().await?;
    Ok(tagged(&vehicle))
}

/// Links an owner, main driver or family member; a new owner or main driver ends the previous
/// one's link. Returns the people linked now.
#[utoipa::path(post, path = "/vehicles/{id}/people", tag = "vehicles", request_body = NewLink, params(("id" = i64, Path)),
    responses((status = 200, body = Vec<VehiclePerson>), (status = 422, body = Problem)))]
async fn link_person(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(link): Json<NewLink>,
) -> Result<Json<Vec<VehiclePerson>>> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let people = vehicles::link_person(&mut tx, &caller, id, link).await?;
    tx.commit().await?;
    Ok(Json(people))
}

/// Every owner the vehicle has had, oldest first; past owners have `until` set.
#[utoipa::path(get, path = "/vehicles/{id}/ownership", tag = "vehicles", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<VehiclePerson>)))]
async fn ownership(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Vec<VehiclePerson>>> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(vehicles::ownership(&mut conn, &caller, id).await?))
}

/// The odometer readings and the estimated real daily mileage.
#[utoipa::path(get, path = "/vehicles/{id}/mileage", tag = "vehicles", params(("id" = i64, Path)),
    responses((status = 200, body = MileageHistory)))]
async fn mileage_history(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<MileageHistory>> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(mileage::history(&mut conn, &caller, id).await?))
}

/// Records an odometer reading; one lower than an earlier reading is refused.
#[utoipa::path(post, path = "/vehicles/{id}/mileage", tag = "vehicles", request_body = NewReading, params(("id" = i64, Path)),
    responses((status = 201, body = Reading), (status = 422, body = Problem)))]
async fn add_reading(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(new): Json<NewReading>,
) -> Result<(StatusCode, Json<Reading>)> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let reading = mileage::add(&mut tx, &caller, id, new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(reading)))
}
