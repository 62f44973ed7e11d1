//! Loyalty points: a customer's account and ledger, redemptions, and events reported by
//! partners and staff.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{IdempotencyKey, Json, Path, Query};
use super::idempotency::{Begun, Create};
use super::pagination::{Page, PageParams};
use super::problem::Problem;
use crate::access::{Caller, Permission, Role};
use crate::error::Result;
use crate::loyalty::{
    self, Account, Award, LedgerEntry, LedgerFilter, NewRedemption, Redemption, ReportedEvent,
};

/// A customer's points account and a page of its ledger, newest first.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Points {
    pub account: Account,
    pub ledger: Page<LedgerEntry>,
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(points))
        .routes(routes!(redeem))
        .routes(routes!(report_event))
}

/// A customer's points: balance, tier, lifetime spend and the ledger (newest first), each
/// movement with its cause and who decided it.
#[utoipa::path(get, path = "/customers/{id}/points", tag = "loyalty",
    params(("id" = i64, Path), LedgerFilter, PageParams),
    responses((status = 200, body = Points), (status = 404, body = Problem)))]
async fn points(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Query(filter): Query<LedgerFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Points>> {
    caller.require(Permission::ReadRecords)?;
    let limit = page.limit()?;
    let mut conn = state.db.pool().acquire().await?;
    let (account, entries) =
        loyalty::points(&mut conn, &caller, id, &filter, page.before_id()?, limit).await?;
    Ok(Json(Points {
        account,
        ledger: Page::from_rows(entries, limit, |e| e.id),
    }))
}

/// Redeems points, oldest first. More than the balance is refused with 409
/// `insufficient_points` and nothing changes. Retry safely with `Idempotency-Key`.
#[utoipa::path(post, path = "/customers/{id}/points/redeem", tag = "loyalty",
    request_body = NewRedemption,
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key replays the first answer")),
    responses((status = 201, body = Redemption), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
async fn redeem(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    key: IdempotencyKey,
    Json(new): Json<NewRedemption>,
) -> Result<Response> {
    caller.require(Permission::WriteRecords)?;
    let route = format!("POST /customers/{id}/points/redeem");
    let mut create = match Create::begin(&state.db, &caller, &route, key, &new).await? {
        Begun::Fresh(create) => create,
        Begun::Replayed(response) => return Ok(response),
    };
    let redemption = loyalty::redeem(create.conn(), &caller, id, &new).await?;
    create
        .created(format!("/api/v1/customers/{id}/points"), &redemption)
        .await
}

/// Reports a loyalty event (a partner's EV charging session, a referral, a survey answer,
/// ...): the dealer's loyalty plugin decides the points and any tier change. The same cause
/// and kind are awarded once: a repeat answers 200 with the earlier award (`duplicate`).
/// Staff who change records and partners may report. A partner reports only
/// `partner_activity` (403 otherwise), for customers of dealers that granted it
/// `charging-sessions` (`POST /partners/grants`); any other customer is 404, whether or not it
/// exists.
#[utoipa::path(post, path = "/customers/{id}/points/events", tag = "loyalty",
    request_body = ReportedEvent, params(("id" = i64, Path)),
    responses((status = 201, body = Award), (status = 200, body = Award), (status = 404, body = Problem),
        (status = 422, body = Problem), (status = 424, body = Problem)))]
async fn report_event(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(reported): Json<ReportedEvent>,
) -> Result<Response> {
    if caller.role != Role::Partner {
        caller.require(Permission::WriteRecords)?;
    }
    let mut conn = state.db.pool().acquire().await?;
    let event = loyalty::reported(&mut conn, &caller, id, reported).await?;
    drop(conn);
    let award = loyalty::award_by(&state.db, &state.plugins, &caller, event).await?;
    let status = if award.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(award)).into_response())
}
