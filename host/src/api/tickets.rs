//! Tickets: complaints and service requests, their routing, status timeline, hand-offs and
//! KPIs; and the owner's view of a ticket by its signed link (no API key).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{self, IdempotencyKey, IfMatch, Json, Path, Query};
use super::idempotency::{Begun, Create};
use super::pagination::{Page, PageParams};
use super::problem::Problem;
use crate::access::{Caller, Permission};
use crate::error::Result;
use crate::tickets::kpis::{Kpis, Period};
use crate::tickets::owner::{OwnerReply, OwnerTicket};
use crate::tickets::{self, Handoff, NewTicket, Ticket, TicketFilter, TicketPatch};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(kpis))
        .routes(routes!(get, update))
        .routes(routes!(hand_off))
        .routes(routes!(owner_view))
        .routes(routes!(owner_reply))
}

/// Tickets in the caller's scope, newest first, each with its timeline.
#[utoipa::path(get, path = "/tickets", tag = "tickets", params(TicketFilter, PageParams),
    responses((status = 200, body = Page<Ticket>), (status = 400, body = Problem)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<TicketFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Ticket>>> {
    caller.require(Permission::ReadRecords)?;
    let limit = page.limit()?;
    let mut conn = state.db.pool().acquire().await?;
    let rows = tickets::list(&mut conn, &caller, &filter, page.before_id()?, limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |t| t.id)))
}

/// Opens a ticket for a customer (and optionally a vehicle) of one dealer, routed by the
/// dealer's ticket-routing plugin (priority, team, safety, SLA deadlines; its notifications go
/// to the outbox). A `priority` given raises the routed one; a `team` given replaces it. The
/// answer carries the owner's signed link (`owner_link`), shown only here. Retry safely with
/// `Idempotency-Key`.
#[utoipa::path(post, path = "/tickets", tag = "tickets", request_body = NewTicket,
    params(("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key replays the first answer")),
    responses((status = 201, body = Ticket), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    key: IdempotencyKey,
    Json(new): Json<NewTicket>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    let valid = tickets::check_new(&mut conn, &caller, &new).await?;
    let input = tickets::routing::input(&mut conn, &caller, &valid).await?;
    drop(conn);
    let routed = tickets::routing::route(&state.plugins, input).await?;
    let mut create = match Create::begin(&state.db, &caller, "POST /tickets", key, &new).await? {
        Begun::Fresh(create) => create,
        Begun::Replayed(response) => return Ok(response),
    };
    let ticket = tickets::create(create.conn(), &caller, &valid, &routed).await?;
    create
        .created(format!("/api/v1/tickets/{}", ticket.id), &ticket)
        .await
}

/// A ticket with its status timeline (oldest first); the ETag is its version.
#[utoipa::path(get, path = "/tickets/{id}", tag = "tickets", params(("id" = i64, Path)),
    responses((status = 200, body = Ticket), (status = 404, body = Problem)))]
async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    let ticket = tickets::get(&mut conn, &caller, id).await?;
    Ok(extract::tagged(&ticket))
}

/// Changes a ticket: moves its status (open → in_progress | resolved | closed; in_progress →
/// resolved | closed; resolved → closed | in_progress; closed is final), priority, team (a
/// hand-off), subject, description, or adds a note to its timeline (internal unless
/// `note_for_owner`). Resolving records first-contact resolution; closing sends the
/// satisfaction survey to the customer. Send the ETag you read as `If-Match`.
#[utoipa::path(patch, path = "/tickets/{id}", tag = "tickets", request_body = TicketPatch,
    params(("id" = i64, Path), ("If-Match" = String, Header, description = "the ETag you read")),
    responses((status = 200, body = Ticket), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem), (status = 428, body = Problem)))]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    IfMatch(expected): IfMatch,
    Json(patch): Json<TicketPatch>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let (ticket, _changed) = tickets::update(&mut tx, &caller, id, expected, &patch).await?;
    tx.commit().await?;
    Ok(extract::tagged(&ticket))
}

/// Hands a ticket off to another department. The timeline records the team it left, the one
/// it went to and who moved it; the SLA deadlines stay.
#[utoipa::path(post, path = "/tickets/{id}/handoffs", tag = "tickets", request_body = Handoff,
    params(("id" = i64, Path)),
    responses((status = 201, body = Ticket), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem)))]
async fn hand_off(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(handoff): Json<Handoff>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let mut tx = state.db.begin_write().await?;
    let ticket = tickets::hand_off(&mut tx, &caller, id, &handoff).await?;
    tx.commit().await?;
    let mut response = extract::tagged(&ticket);
    *response.status_mut() = axum::http::StatusCode::CREATED;
    Ok(response)
}

/// KPIs of the tickets in the caller's scope for a period: first-contact resolution, average
/// handling time, backlog rate (opened in the period, not closed within SLA), CSAT and NPS.
#[utoipa::path(get, path = "/tickets/kpis", tag = "tickets", params(Period),
    responses((status = 200, body = Kpis), (status = 422, body = Problem)))]
async fn kpis(
    State(state): State<AppState>,
    caller: Caller,
    Query(period): Query<Period>,
) -> Result<Json<Kpis>> {
    caller.require(Permission::ReadRecords)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(
        tickets::kpis::compute(&mut conn, &caller, &period).await?,
    ))
}

/// The owner's view of a ticket through the signed link issued when it was opened (no API
/// key): the subject, the status in the owner's words and the timeline without internal notes
/// or staff details.
#[utoipa::path(get, path = "/owner/tickets/{token}", tag = "owner", security(()),
    params(("token" = String, Path)),
    responses((status = 200, body = OwnerTicket), (status = 404, body = Problem), (status = 410, body = Problem)))]
async fn owner_view(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<OwnerTicket>> {
    let mut conn = state.db.pool().acquire().await?;
    Ok(Json(tickets::owner::view(&mut conn, &token).await?))
}

/// The owner's reply through the ticket's link (no API key): it joins the timeline, marked as
/// the owner's, where the staff see it. A text with nothing visible, or over 1000 characters,
/// is 422; a closed ticket 409 `ticket_closed`. Answers the owner's view with the reply.
#[utoipa::path(post, path = "/owner/tickets/{token}/replies", tag = "owner", security(()),
    params(("token" = String, Path)), request_body = OwnerReply,
    responses((status = 201, body = OwnerTicket), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 410, body = Problem), (status = 422, body = Problem)))]
async fn owner_reply(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Json(reply): Json<OwnerReply>,
) -> Result<(StatusCode, Json<OwnerTicket>)> {
    let ticket = tickets::owner::reply(&state.db, &token, &reply).await?;
    Ok((StatusCode::CREATED, Json(ticket)))
}
