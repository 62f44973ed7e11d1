//! Sales orders (terms, approvals, status, delivery), trade-ins and commission statements.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;
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
use crate::sales::commission::{self, Statement, StatementQuery};
use crate::sales::delivery::{self, NewDelivery};
use crate::sales::orders::{
    self, NewOrder, Order, OrderFilter, OrderPatch, OwnerOrder, StatusMove,
};
use crate::sales::trade_ins::{self, Acceptance, NewTradeIn, TradeIn, TradeInPatch};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_orders, create_order))
        .routes(routes!(get_order, revise_order))
        .routes(routes!(move_order))
        .routes(routes!(owner_order))
        .routes(routes!(deliver_order))
        .routes(routes!(commission_statement))
        .routes(routes!(create_trade_in))
        .routes(routes!(get_trade_in, update_trade_in))
        .routes(routes!(accept_trade_in))
        .routes(routes!(decline_trade_in))
        .routes(routes!(add_trade_in_photo))
}

/// Orders in the caller's scope, newest first.
#[utoipa::path(get, path = "/orders", tag = "sales", params(OrderFilter, PageParams),
    responses((status = 200, body = Page<Order>), (status = 400, body = Problem)))]
async fn list_orders(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<OrderFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Order>>> {
    caller.require(Permission::ReadRecords)?;
    let limit = page.limit()?;
    let mut conn = state.db.pool().acquire().await?;
    let rows = orders::list(&mut conn, &caller, &filter, page.before_id()?, limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |o| o.id)))
}

/// Creates a draft order for a lead (whose customer buys, made from the lead if needed; the
/// lead moves to `negotiating`) or a customer. Discounts and finance plans are set by
/// revising the draft (`PATCH`), which asks for their approvals. Retry safely with
/// `Idempotency-Key`.
#[utoipa::path(post, path = "/orders", tag = "sales", request_body = NewOrder,
    params(("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key replays the first answer")),
    responses((status = 201, body = Order), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
async fn create_order(
    State(state): State<AppState>,
    caller: Caller,
    key: IdempotencyKey,
    Json(new): Json<NewOrder>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut create = match Create::begin(&state.db, &caller, "POST /orders", key, &new).await? {
        Begun::Fresh(create) => create,
        Begun::Replayed(response) => return Ok(response),
    };
    let order = orders::create(create.conn(), &caller, &new).await?;
    create
        .created(format!("/api/v1/orders/{}", order.id), &order)
        .await
}

/// An order with its lines, approval requests, timeline and commission lines; the ETag is its
/// version.
#[utoipa::path(get, path = "/orders/{id}", tag = "sales", params(("id" = i64, Path)),
    responses((status = 200, body = Order), (status = 404, body = Problem)))]
async fn get_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    let order = orders::get(&mut conn, &caller, id).await?;
    Ok(extract::tagged(&order))
}

/// Revises a draft order's terms (discount, finance plan, insurance, colour, lines), allocates
/// its VIN, or changes its custom fields (merged by key, `null` removes one; any status). A
/// changed discount or finance plan becomes a new approval request,
/// decided by the dealer's approval plugin; staff with the step's position approve or reject
/// it at `/approvals/{id}/approve|reject`. Send the ETag you read as `If-Match`.
#[utoipa::path(patch, path = "/orders/{id}", tag = "sales", request_body = OrderPatch,
    params(("id" = i64, Path), ("If-Match" = String, Header, description = "the ETag you read")),
    responses((status = 200, body = Order), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem), (status = 428, body = Problem)))]
async fn revise_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    IfMatch(expected): IfMatch,
    Json(patch): Json<OrderPatch>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let order = orders::revise(&state.db, &state.plugins, &caller, id, expected, &patch).await?;
    Ok(extract::tagged(&order))
}

/// Moves an order: draft → confirmed (every current approval approved) → pdi_passed →
/// finance_approved (only with a finance plan) → ready; cancelled from any status before
/// delivery. A refused move is 409 `invalid_transition` naming the allowed ones. Send the
/// ETag you read as `If-Match`.
#[utoipa::path(post, path = "/orders/{id}/status", tag = "sales", request_body = StatusMove,
    params(("id" = i64, Path), ("If-Match" = String, Header, description = "the ETag you read")),
    responses((status = 200, body = Order), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem), (status = 428, body = Problem)))]
async fn move_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    IfMatch(expected): IfMatch,
    Json(step): Json<StatusMove>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let order = orders::move_status(&mut tx, &caller, id, expected, &step).await?;
    tx.commit().await?;
    Ok(extract::tagged(&order))
}

/// Delivers a `ready` order with a VIN: the vehicle is made (or updated) with the customer as
/// owner, the delivery date as purchase date and an initial mileage reading; the dealer's
/// commission plugin computes the commission lines (stored with what computed them). Send the
/// ETag you read as `If-Match`.
#[utoipa::path(post, path = "/orders/{id}/delivery", tag = "sales", request_body = NewDelivery,
    params(("id" = i64, Path), ("If-Match" = String, Header, description = "the ETag you read")),
    responses((status = 200, body = Order), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem), (status = 424, body = Problem)))]
async fn deliver_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    IfMatch(expected): IfMatch,
    Json(new): Json<NewDelivery>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let order = delivery::deliver(&state.db, &state.plugins, &caller, id, expected, &new).await?;
    Ok(extract::tagged(&order))
}

/// A staff member's commission lines for a month (`YYYY-MM`), with their total.
#[utoipa::path(get, path = "/commission", tag = "sales", params(StatementQuery),
    responses((status = 200, body = Statement), (status = 400, body = Problem), (status = 422, body = Problem)))]
async fn commission_statement(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<StatementQuery>,
) -> Result<Json<Statement>> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(
        commission::statement(&mut conn, &caller, &query).await?,
    ))
}

/// Records the evaluation of a customer's old car with its quote and the dealer's custom fields
/// for trade-ins.
#[utoipa::path(post, path = "/trade-ins", tag = "sales", request_body = NewTradeIn,
    responses((status = 201, body = TradeIn), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn create_trade_in(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewTradeIn>,
) -> Result<(StatusCode, Json<TradeIn>)> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let trade_in = trade_ins::create(&mut tx, &caller, &new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(trade_in)))
}

#[utoipa::path(get, path = "/trade-ins/{id}", tag = "sales", params(("id" = i64, Path)),
    responses((status = 200, body = TradeIn), (status = 404, body = Problem)))]
async fn get_trade_in(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    let trade_in = trade_ins::get(&mut conn, &caller, id).await?;
    Ok(extract::tagged(&trade_in))
}

/// Changes a trade-in's custom fields (merged by key, `null` removes one; validated against the
/// dealer's definitions). Send the ETag you read as `If-Match`.
#[utoipa::path(patch, path = "/trade-ins/{id}", tag = "sales", request_body = TradeInPatch,
    params(("id" = i64, Path), ("If-Match" = String, Header, description = "the ETag you read")),
    responses((status = 200, body = TradeIn), (status = 404, body = Problem), (status = 412, body = Problem),
        (status = 422, body = Problem), (status = 428, body = Problem)))]
async fn update_trade_in(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    IfMatch(expected): IfMatch,
    Json(patch): Json<TradeInPatch>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let trade_in = trade_ins::update(&mut tx, &caller, id, expected, patch).await?;
    tx.commit().await?;
    Ok(extract::tagged(&trade_in))
}

/// The trade-in and the order it now reduces.
#[derive(Debug, Serialize, ToSchema)]
struct Acquired {
    trade_in: TradeIn,
    order: Order,
}

/// The customer accepts the quote: the car is acquired and becomes a `trade-in` line of the
/// order, reducing the amount to pay.
#[utoipa::path(post, path = "/trade-ins/{id}/accept", tag = "sales", request_body = Acceptance,
    params(("id" = i64, Path)),
    responses((status = 200, body = Acquired), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
async fn accept_trade_in(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(acceptance): Json<Acceptance>,
) -> Result<Json<Acquired>> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let (trade_in, order) = trade_ins::accept(&mut tx, &caller, id, &acceptance).await?;
    tx.commit().await?;
    Ok(Json(Acquired { trade_in, order }))
}

/// The customer declines the quote.
#[utoipa::path(post, path = "/trade-ins/{id}/decline", tag = "sales", params(("id" = i64, Path)),
    responses((status = 200, body = TradeIn), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn decline_trade_in(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<TradeIn>> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let trade_in = trade_ins::decline(&mut tx, &caller, id).await?;
    tx.commit().await?;
    Ok(Json(trade_in))
}

/// Uploads a photo of the evaluated car (JPEG, PNG, WebP or PDF, at most 8 MiB) as the raw
/// body with its `Content-Type`.
#[utoipa::path(post, path = "/trade-ins/{id}/photos", tag = "sales", params(("id" = i64, Path)),
    request_body(content = Vec<u8>, content_type = "image/jpeg"),
    responses((status = 201, body = Attachment), (status = 404, body = Problem), (status = 413, body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem)))]
async fn add_trade_in_photo(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Attachment>)> {
    caller.require(Permission::WriteRecords)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut tx = state.db.begin_write().await?;
    let photo = trade_ins::add_photo(
        &mut tx,
        &state.attachments,
        &caller,
        id,
        content_type,
        &body,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(photo)))
}

/// A car order as its owner follows it while waiting for the car, through the link sent when
/// it was confirmed (no API key): the car, the status and its history in the owner's words,
/// the amount still due. An expired link is 410.
#[utoipa::path(get, path = "/owner/orders/{token}", tag = "owner", security(()),
    params(("token" = String, Path)),
    responses((status = 200, body = OwnerOrder), (status = 404, body = Problem), (status = 410, body = Problem)))]
async fn owner_order(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<OwnerOrder>> {
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(orders::for_owner(&mut conn, &token).await?))
}
