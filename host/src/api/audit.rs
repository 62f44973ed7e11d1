//! Reading the audit log.

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{Json, Query};
use super::pagination::{Page, PageParams};
use crate::access::{Caller, Permission};
use crate::audit::{self, AuditEntry, AuditFilter};
use crate::error::Result;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// Who read or changed what in the caller's scope, newest first (HQ and dealer admins).
#[utoipa::path(get, path = "/audit", tag = "audit", params(AuditFilter, PageParams),
    responses((status = 200, body = Page<AuditEntry>)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<AuditFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<AuditEntry>>> {
    caller.require(Permission::ReadAudit)?;
    let limit = page.limit()?;
    let mut conn = state.db.pool().acquire().await?;
    let rows = audit::list(
        &mut conn,
        &state.reads,
        &caller,
        &filter,
        page.before_id()?,
        limit,
    )
    .await?;
    Ok(Json(Page::from_rows(rows, limit, |e| e.id)))
}
