//! Customers, their interaction timeline and the 360 view.

use axum::extract::State;
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
use crate::customers::interactions::{self, Interaction, NewInteraction};
use crate::customers::view360::{self, Customer360};
use crate::customers::{self, Customer, CustomerPatch, CustomerSearch, NewCustomer, ShareConsent};
use crate::error::Result;
use crate::network;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search, create))
        .routes(routes!(get, update))
        .routes(routes!(view_360))
        .routes(routes!(share_consent))
        .routes(routes!(add_interaction))
}

/// Finds customers by phone, name, plate, VIN or tag, newest first, within the caller's scope.
#[utoipa::path(get, path = "/customers", tag = "customers", params(CustomerSearch, PageParams),
    responses((status = 200, body = Page<Customer>), (status = 400, body = Problem)))]
async fn search(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<CustomerSearch>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Customer>>> {
    caller.require(Permission::ReadRecords)?;
    let limit = page.limit()?;
    let mut conn = state.db.pool().acquire().await?;
    let rows = customers::search(
        &mut conn,
        &state.reads,
        &caller,
        &q,
        page.before_id()?,
        limit,
    )
    .await?;
    Ok(Json(Page::from_rows(rows, limit, |c| c.id)))
}

/// Creates a customer. Send `Idempotency-Key` to make retries safe.
#[utoipa::path(post, path = "/customers", tag = "customers", request_body = NewCustomer,
    params(("Idempotency-Key" = Option<String>, Header, description = "a retried POST with the same key creates nothing twice")),
    responses((status = 201, body = Customer), (status = 422, body = Problem), (status = 413, body = Problem)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    key: IdempotencyKey,
    Json(new): Json<NewCustomer>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut create = match Create::begin(&state.db, &caller, "POST /customers", key, &new).await? {
        Begun::Fresh(c) => c,
        Begun::Replayed(response) => return Ok(response),
    };
    let dealer_id = network::dealer_for_write(create.conn(), &caller, new.dealer_id).await?;
    let customer = customers::create(create.conn(), &caller, dealer_id, new, Writer::Staff).await?;
    create
        .created(format!("/api/v1/customers/{}", customer.id), &customer)
        .await
}

/// One customer, with its ETag.
#[utoipa::path(get, path = "/customers/{id}", tag = "customers", params(("id" = i64, Path)),
    responses((status = 200, body = Customer), (status = 404, body = Problem)))]
async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(tagged(
        &customers::read(&mut conn, &state.reads, &caller, id).await?,
    ))
}

/// Changes a customer. `If-Match` must carry the ETag you read: a stale one gets 412.
#[utoipa::path(patch, path = "/customers/{id}", tag = "customers", request_body = CustomerPatch,
    params(("id" = i64, Path), ("If-Match" = String, Header, description = "the ETag you read, e.g. \"3\"")),
    responses((status = 200, body = Customer), (status = 412, body = Problem), (status = 428, body = Problem), (status = 422, body = Problem)))]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    IfMatch(version): IfMatch,
    Json(patch): Json<CustomerPatch>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let customer = customers::update(&mut tx, &caller, id, version, patch).await?;
    tx.commit().await?;
    Ok(tagged(&customer))
}

/// Records the customer's consent to share their history across the network's dealers, or its
/// withdrawal, with the time and your key. Audited; the customer's ETag changes.
#[utoipa::path(put, path = "/customers/{id}/share-consent", tag = "customers", request_body = ShareConsent,
    params(("id" = i64, Path)),
    responses((status = 200, body = Customer), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn share_consent(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(consent): Json<ShareConsent>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let customer = customers::set_share_consent(&mut tx, &caller, id, &consent).await?;
    tx.commit().await?;
    Ok(tagged(&customer))
}

/// Everything about one customer in one call: vehicles, timeline, tickets, sales and repair
/// orders, points, and (if HQ shares history) other dealers' records of the same person, when
/// the customer gave their share consent, or of the cars this dealer services (a repair order
/// or an appointment for the vehicle). Audited; reading other dealers' records also writes a
/// `read_cross_dealer` entry naming them.
#[utoipa::path(get, path = "/customers/{id}/360", tag = "customers", params(("id" = i64, Path)),
    responses((status = 200, body = Customer360), (status = 404, body = Problem)))]
async fn view_360(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Customer360>> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(
        view360::view(&mut conn, &state.reads, &caller, id).await?,
    ))
}

/// Records a call, visit, message, note, purchase or service on the customer's timeline.
#[utoipa::path(post, path = "/customers/{id}/interactions", tag = "customers", request_body = NewInteraction,
    params(("id" = i64, Path)),
    responses((status = 201, body = Interaction), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn add_interaction(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    key: IdempotencyKey,
    Json(new): Json<NewInteraction>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let route = format!("POST /customers/{id}/interactions");
    let mut create = match Create::begin(&state.db, &caller, &route, key, &new).await? {
        Begun::Fresh(c) => c,
        Begun::Replayed(response) => return Ok(response),
    };
    let interaction = interactions::create(create.conn(), &caller, id, new).await?;
    create
        .created(format!("/api/v1/customers/{id}/360"), &interaction)
        .await
}
