//! Approval requests: a discount, a finance plan, extra repair work or a refund, with the
//! ordered steps the dealer's approval plugin decided, each approved or rejected by someone
//! holding the step's role. Owns `approval_requests` and `approval_steps`.
//!
//! A request is `pending` while a step waits, `approved` when the last step is approved (or
//! at once when the plugin auto-approves) and `rejected` when any step is (or at once when the
//! plugin refuses). Only the first waiting step can be acted on; it names a position
//! (`general-manager` is held by staff whose position is `general_manager`), `hq` (an HQ admin)
//! or `owner` (the vehicle's owner, through a link). The domain that asked (a sales order, a
//! repair order) gates its own moves on its requests' status.

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow};
use utoipa::{IntoParams, ToSchema};

use crate::access::{Caller, Permission, Record, Role};
use crate::audit::{self, Entry};
use crate::clock;
use crate::db::{Param, Sql};
use crate::error::{Error, Result};
use crate::network::{self, Position};
use crate::plugins::dispatch::{DecisionSource, Plugins};
use crate::plugins::hooks::{ApprovalHook, approval};
use crate::plugins::runs::Source;

/// Longest request description, in characters.
pub const DESCRIPTION_MAX: usize = 500;
/// Longest comment on a step, in characters.
pub const COMMENT_MAX: usize = 1000;

/// The record an approval is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    SalesOrder(i64),
    RepairOrder(i64),
}

impl Subject {
    fn kind(self) -> &'static str {
        match self {
            Subject::SalesOrder(_) => "sales_order",
            Subject::RepairOrder(_) => "repair_order",
        }
    }

    fn id(self) -> i64 {
        match self {
            Subject::SalesOrder(id) | Subject::RepairOrder(id) => id,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    Discount,
    FinancePlan,
    ExtraRepairWork,
    Refund,
}

impl RequestKind {
    const ALL: [RequestKind; 4] = [
        RequestKind::Discount,
        RequestKind::FinancePlan,
        RequestKind::ExtraRepairWork,
        RequestKind::Refund,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Discount => "discount",
            RequestKind::FinancePlan => "finance_plan",
            RequestKind::ExtraRepairWork => "extra_repair_work",
            RequestKind::Refund => "refund",
        }
    }

    fn parse(s: &str) -> RequestKind {
        RequestKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .unwrap_or(RequestKind::Discount)
    }

    fn wit(self) -> approval::RequestKind {
        match self {
            RequestKind::Discount => approval::RequestKind::Discount,
            RequestKind::FinancePlan => approval::RequestKind::FinancePlan,
            RequestKind::ExtraRepairWork => approval::RequestKind::ExtraRepairWork,
            RequestKind::Refund => approval::RequestKind::Refund,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> ApprovalStatus {
        match s {
            "approved" => ApprovalStatus::Approved,
            "rejected" => ApprovalStatus::Rejected,
            _ => ApprovalStatus::Pending,
        }
    }
}

/// What a domain asks to have approved.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub dealer_id: i64,
    pub subject: Subject,
    pub kind: RequestKind,
    /// The staff member asking, if a person asks.
    pub requested_by: Option<i64>,
    pub customer_id: Option<i64>,
    pub amount_fen: i64,
    /// What the amount is measured against (the list price, the repair order's total).
    pub base_amount_fen: i64,
    pub description: String,
    pub attributes: Vec<(String, String)>,
}

/// The approval plugin's decision on a request, not yet stored.
pub struct Decided {
    decision: approval::Decision,
    source: DecisionSource,
    run_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApprovalStep {
    pub seq: i64,
    /// The role that must act: a position in the plugins' spelling (`general-manager`),
    /// `hq` or `owner`.
    pub role: String,
    pub reason: String,
    /// `waiting`, `approved`, `rejected`, or `skipped` (after an earlier rejection).
    pub status: String,
    pub acted_by_staff: Option<i64>,
    /// The owner's link, when the owner acted.
    pub acted_by_link: Option<i64>,
    /// `staff` or the owner's channel (`link`).
    pub channel: Option<String>,
    pub comment: Option<String>,
    pub acted_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApprovalRequest {
    pub id: i64,
    pub dealer_id: i64,
    /// `sales_order` or `repair_order`.
    pub subject_kind: String,
    pub subject_id: i64,
    pub kind: RequestKind,
    pub status: ApprovalStatus,
    pub amount_fen: i64,
    pub base_amount_fen: i64,
    pub description: String,
    /// The plugin's reason for an automatic approval or a refusal.
    pub reason: Option<String>,
    pub requested_by: Option<i64>,
    /// What decided the steps: the plugin with its version, or the built-in rule.
    #[schema(value_type = Object)]
    pub decided_by: serde_json::Value,
    /// The decision's entry in the plugin run log.
    pub run_id: Option<i64>,
    pub steps: Vec<ApprovalStep>,
    pub created_at: i64,
    pub closed_at: Option<i64>,
}

impl ApprovalRequest {
    /// The step waiting for someone, if any.
    pub fn current_step(&self) -> Option<&ApprovalStep> {
        self.steps.iter().find(|s| s.status == "waiting")
    }
}

#[derive(FromRow)]
struct RequestRow {
    id: i64,
    dealer_id: i64,
    subject_kind: String,
    subject_id: i64,
    kind: String,
    status: String,
    amount_fen: i64,
    base_amount_fen: i64,
    description: String,
    reason: Option<String>,
    requested_by: Option<i64>,
    decided_by: String,
    run_id: Option<i64>,
    created_at: i64,
    closed_at: Option<i64>,
}

#[derive(FromRow)]
struct StepRow {
    request_id: i64,
    seq: i64,
    role: String,
    reason: String,
    status: String,
    acted_by_staff: Option<i64>,
    acted_by_link: Option<i64>,
    channel: Option<String>,
    comment: Option<String>,
    acted_at: Option<i64>,
}

const REQUEST_COLUMNS: &str = "id, dealer_id, subject_kind, subject_id, kind, status, amount_fen, \
     base_amount_fen, description, reason, requested_by, decided_by, run_id, created_at, closed_at";
const STEP_COLUMNS: &str = "request_id, seq, role, reason, status, acted_by_staff, acted_by_link, \
     channel, comment, acted_at";

/// The staff member as a plugin sees them: their position in the plugins' spelling, or their
/// access role when they hold no position.
async fn staff_for_plugin(
    conn: &mut AnyConnection,
    staff_id: Option<i64>,
) -> Result<approval::StaffMember> {
    let Some(id) = staff_id else {
        return Ok(approval::StaffMember {
            id: 0,
            role: "system".into(),
        });
    };
    let staff = network::staff_member(conn, id).await?;
    let role = match staff.position {
        Some(position) => position.as_str().replace('_', "-"),
        None => staff.role.as_str().replace('_', "-"),
    };
    Ok(approval::StaffMember { id, role })
}

fn check_new(new: &NewRequest) -> Result<()> {
    let mut errors = Vec::new();
    if new.amount_fen < 0 {
        errors.push(crate::error::FieldError::new(
            "amount_fen",
            "negative",
            "an amount to approve cannot be negative",
        ));
    }
    if new.description.chars().count() > DESCRIPTION_MAX {
        errors.push(crate::error::FieldError::new(
            "description",
            "too_long",
            format!("at most {DESCRIPTION_MAX} characters"),
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(errors))
    }
}

/// What the approval hook is asked about `new`, checked and read on `conn` (who asks), for
/// [`decide`] once `conn` is given back.
pub async fn question(conn: &mut AnyConnection, new: &NewRequest) -> Result<approval::Request> {
    check_new(new)?;
    Ok(approval::Request {
        kind: new.kind.wit(),
        dealer_id: new.dealer_id,
        requested_by: staff_for_plugin(conn, new.requested_by).await?,
        customer_id: new.customer_id,
        order_id: match new.subject {
            Subject::SalesOrder(id) => Some(id),
            Subject::RepairOrder(_) => None,
        },
        repair_order_id: match new.subject {
            Subject::RepairOrder(id) => Some(id),
            Subject::SalesOrder(_) => None,
        },
        amount: new.amount_fen,
        base_amount: new.base_amount_fen,
        description: new.description.clone(),
        attributes: new.attributes.clone(),
    })
}

/// Asks the dealer's approval plugin (or the built-in rule) to decide `question`. Call it
/// holding no connection and outside any transaction: the run is recorded on a connection of
/// its own, and the plugin's look-ups take others.
pub async fn decide(plugins: &Plugins, question: approval::Request) -> Result<Decided> {
    let decision = plugins
        .call::<ApprovalHook>(question.dealer_id, question, Source::Live)
        .await?;
    Ok(Decided {
        decision: decision.output,
        source: decision.source,
        run_id: decision.run_id,
    })
}

/// Stores `new` with its decided steps, in the caller's transaction.
pub async fn store(
    conn: &mut AnyConnection,
    new: &NewRequest,
    decided: Decided,
    caller: &Caller,
) -> Result<ApprovalRequest> {
    let now = clock::now_ms();
    let (status, reason, steps) = match decided.decision {
        approval::Decision::AutoApprove(reason) => (ApprovalStatus::Approved, Some(reason), vec![]),
        approval::Decision::Reject(reason) => (ApprovalStatus::Rejected, Some(reason), vec![]),
        approval::Decision::Steps(steps) => (ApprovalStatus::Pending, None, steps),
    };
    let closed_at = (status != ApprovalStatus::Pending).then_some(now);
    let decided_by = serde_json::to_string(&decided.source).unwrap_or_else(|_| "{}".into());
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO approval_requests (dealer_id, subject_kind, subject_id, kind, status, \
         amount_fen, base_amount_fen, description, reason, requested_by, decided_by, run_id, \
         created_at, closed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         RETURNING id",
    )
    .bind(new.dealer_id)
    .bind(new.subject.kind())
    .bind(new.subject.id())
    .bind(new.kind.as_str())
    .bind(status.as_str())
    .bind(new.amount_fen)
    .bind(new.base_amount_fen)
    .bind(&new.description)
    .bind(reason.as_deref())
    .bind(new.requested_by)
    .bind(decided_by)
    .bind(decided.run_id)
    .bind(now)
    .bind(closed_at)
    .fetch_one(&mut *conn)
    .await?;
    for (seq, step) in (1..).zip(&steps) {
        sqlx::query(
            "INSERT INTO approval_steps (request_id, seq, role, reason, status) \
             VALUES ($1, $2, $3, $4, 'waiting')",
        )
        .bind(id)
        .bind(seq)
        .bind(&step.role)
        .bind(&step.reason)
        .execute(&mut *conn)
        .await?;
    }
    audit::record(
        conn,
        caller,
        Entry::ok("request_approval", "approval_request", id, new.dealer_id).with_detail(
            serde_json::json!({
                "subject": new.subject.kind(),
                "subject_id": new.subject.id(),
                "kind": new.kind.as_str(),
                "status": status.as_str(),
                "steps": steps.len(),
            }),
        ),
    )
    .await?;
    load(conn, id).await
}

async fn load(conn: &mut AnyConnection, id: i64) -> Result<ApprovalRequest> {
    let row: Option<RequestRow> = sqlx::query_as(&format!(
        "SELECT {REQUEST_COLUMNS} FROM approval_requests WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let row = row.ok_or(Error::NotFound {
        entity: "approval request",
    })?;
    let mut all = assemble(conn, vec![row]).await?;
    Ok(all.remove(0))
}

async fn assemble(conn: &mut AnyConnection, rows: Vec<RequestRow>) -> Result<Vec<ApprovalRequest>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(&format!(
        "SELECT {STEP_COLUMNS} FROM approval_steps WHERE request_id IN "
    ));
    sql.push_list(rows.iter().map(|r| Param::Int(r.id)))
        .push(" ORDER BY request_id, seq");
    let steps: Vec<StepRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| ApprovalRequest {
            steps: steps
                .iter()
                .filter(|s| s.request_id == r.id)
                .map(|s| ApprovalStep {
                    seq: s.seq,
                    role: s.role.clone(),
                    reason: s.reason.clone(),
                    status: s.status.clone(),
                    acted_by_staff: s.acted_by_staff,
                    acted_by_link: s.acted_by_link,
                    channel: s.channel.clone(),
                    comment: s.comment.clone(),
                    acted_at: s.acted_at,
                })
                .collect(),
            id: r.id,
            dealer_id: r.dealer_id,
            subject_kind: r.subject_kind,
            subject_id: r.subject_id,
            kind: RequestKind::parse(&r.kind),
            status: ApprovalStatus::parse(&r.status),
            amount_fen: r.amount_fen,
            base_amount_fen: r.base_amount_fen,
            description: r.description,
            reason: r.reason,
            requested_by: r.requested_by,
            decided_by: serde_json::from_str(&r.decided_by).unwrap_or_default(),
            run_id: r.run_id,
            created_at: r.created_at,
            closed_at: r.closed_at,
        })
        .collect())
}

/// Every request about `subject`, oldest first. The domain checks access to the subject.
pub async fn for_subject(
    conn: &mut AnyConnection,
    subject: Subject,
) -> Result<Vec<ApprovalRequest>> {
    let rows: Vec<RequestRow> = sqlx::query_as(&format!(
        "SELECT {REQUEST_COLUMNS} FROM approval_requests WHERE subject_kind = $1 AND subject_id = $2 \
         ORDER BY id"
    ))
    .bind(subject.kind())
    .bind(subject.id())
    .fetch_all(&mut *conn)
    .await?;
    assemble(conn, rows).await
}

/// A request, if the caller's scope holds its dealer.
pub async fn get(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<ApprovalRequest> {
    crate::access::owning_dealer(conn, caller, Record::ApprovalRequest, id).await?;
    load(conn, id).await
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApprovalFilter {
    /// `pending`, `approved` or `rejected`.
    pub status: Option<ApprovalStatus>,
    /// Only requests whose waiting step the caller may act on.
    #[serde(default)]
    pub mine: bool,
}

/// Requests in the caller's scope, newest first (at most 200).
pub async fn list(
    conn: &mut AnyConnection,
    caller: &Caller,
    filter: &ApprovalFilter,
) -> Result<Vec<ApprovalRequest>> {
    let mut sql = Sql::new(&format!(
        "SELECT {REQUEST_COLUMNS} FROM approval_requests WHERE 1 = 1"
    ));
    caller.scope(&mut sql, "dealer_id");
    if let Some(status) = filter.status {
        sql.push(" AND status = ")
            .bind(Param::Text(status.as_str().into()));
    }
    sql.push(" ORDER BY id DESC LIMIT 200");
    let rows: Vec<RequestRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    let all = assemble(conn, rows).await?;
    if !filter.mine {
        return Ok(all);
    }
    let mine = Approver::of(conn, caller).await?;
    Ok(all
        .into_iter()
        .filter(|r| r.current_step().is_some_and(|s| mine.holds(&s.role)))
        .collect())
}

/// What the caller may approve as.
struct Approver {
    hq: bool,
    position: Option<Position>,
}

impl Approver {
    async fn of(conn: &mut AnyConnection, caller: &Caller) -> Result<Approver> {
        let position = match caller.staff_id {
            Some(id) => network::staff_member(conn, id).await?.position,
            None => None,
        };
        Ok(Approver {
            hq: caller.role == Role::HqAdmin,
            position,
        })
    }

    fn holds(&self, role: &str) -> bool {
        if role == "hq" {
            return self.hq;
        }
        self.position
            .is_some_and(|p| Position::parse(role) == Some(p))
    }
}

/// Approves or rejects the waiting step of request `id` as the caller, who must hold the
/// step's role and, to approve, must not be the one who asked unless someone else approved an
/// earlier step (four eyes).
pub async fn act(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
    approve: bool,
    comment: Option<&str>,
) -> Result<ApprovalRequest> {
    caller.require(Permission::WriteRecords)?;
    if comment.is_some_and(|c| c.chars().count() > COMMENT_MAX) {
        return Err(Error::invalid(
            "comment",
            "too_long",
            format!("at most {COMMENT_MAX} characters"),
        ));
    }
    let request = get(conn, caller, id).await?;
    let step = waiting_step(&request)?;
    if step.role == "owner" {
        return Err(Error::Forbidden(
            "this step is the vehicle owner's, who approves it through their link".into(),
        ));
    }
    let actor = Approver::of(conn, caller).await?;
    if !actor.holds(&step.role) {
        let yours = actor.position.map_or("no position".to_owned(), |p| {
            format!("position {}", p.as_str())
        });
        return Err(Error::Forbidden(format!(
            "step {} of this request needs the {} ({}); your key's staff member holds {yours}",
            step.seq, step.role, step.reason
        )));
    }
    // Four eyes: the one who asked approves only after someone else did (the owner's
    // approval of extra work the advisor then confirms).
    let vouched = request.steps.iter().any(|s| {
        s.seq < step.seq
            && s.status == "approved"
            && (s.acted_by_link.is_some() || s.acted_by_staff != caller.staff_id)
    });
    if approve && caller.staff_id.is_some() && caller.staff_id == request.requested_by && !vouched {
        return Err(Error::Forbidden(
            "you asked for this approval: another holder of the step approves it".into(),
        ));
    }
    let actor_ref = Acting {
        staff: caller.staff_id,
        link: None,
        channel: "staff",
    };
    let seq = step.seq;
    let updated = record_act(conn, &request, seq, approve, comment, actor_ref).await?;
    audit::record(
        conn,
        caller,
        Entry::ok(
            if approve { "approve" } else { "reject" },
            "approval_request",
            id,
            request.dealer_id,
        )
        .with_detail(serde_json::json!({ "step": seq, "status": updated.status.as_str() })),
    )
    .await?;
    Ok(updated)
}

/// The owner approves or declines the waiting `owner` step of request `id` through their link
/// (`link_id`), over `channel` (e.g. `link`). The caller has resolved and consumes the link.
pub async fn act_as_owner(
    conn: &mut AnyConnection,
    request_id: i64,
    approve: bool,
    channel: &str,
    link_id: i64,
) -> Result<ApprovalRequest> {
    let request = load(conn, request_id).await?;
    let step = waiting_step(&request)?;
    if step.role != "owner" {
        return Err(Error::Conflict {
            code: "not_owner_step",
            message: format!("the waiting step needs the {}, not the owner", step.role),
        });
    }
    let seq = step.seq;
    let acting = Acting {
        staff: None,
        link: Some(link_id),
        channel,
    };
    let updated = record_act(conn, &request, seq, approve, None, acting).await?;
    audit::record_owner(
        conn,
        link_id,
        Entry::ok(
            if approve { "approve" } else { "reject" },
            "approval_request",
            request_id,
            request.dealer_id,
        )
        .with_detail(serde_json::json!({ "step": seq, "status": updated.status.as_str() })),
    )
    .await?;
    Ok(updated)
}

fn waiting_step(request: &ApprovalRequest) -> Result<&ApprovalStep> {
    request.current_step().ok_or_else(|| Error::Conflict {
        code: "approval_closed",
        message: format!(
            "approval request {} is already {}; nothing waits for a decision",
            request.id,
            request.status.as_str()
        ),
    })
}

struct Acting<'a> {
    staff: Option<i64>,
    link: Option<i64>,
    channel: &'a str,
}

async fn record_act(
    conn: &mut AnyConnection,
    request: &ApprovalRequest,
    seq: i64,
    approve: bool,
    comment: Option<&str>,
    acting: Acting<'_>,
) -> Result<ApprovalRequest> {
    let now = clock::now_ms();
    let done = sqlx::query(
        "UPDATE approval_steps SET status = $1, acted_by_staff = $2, acted_by_link = $3, \
         channel = $4, comment = $5, acted_at = $6 \
         WHERE request_id = $7 AND seq = $8 AND status = 'waiting'",
    )
    .bind(if approve { "approved" } else { "rejected" })
    .bind(acting.staff)
    .bind(acting.link)
    .bind(acting.channel)
    .bind(comment)
    .bind(now)
    .bind(request.id)
    .bind(seq)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Err(Error::Conflict {
            code: "approval_changed",
            message: "someone acted on this step at the same time; read the request again".into(),
        });
    }
    let last = request.steps.iter().all(|s| s.seq <= seq);
    let status = if !approve {
        sqlx::query(
            "UPDATE approval_steps SET status = 'skipped' WHERE request_id = $1 AND status = 'waiting'",
        )
        .bind(request.id)
        .execute(&mut *conn)
        .await?;
        Some(ApprovalStatus::Rejected)
    } else if last {
        Some(ApprovalStatus::Approved)
    } else {
        None
    };
    if let Some(status) = status {
        sqlx::query("UPDATE approval_requests SET status = $1, closed_at = $2 WHERE id = $3")
            .bind(status.as_str())
            .bind(now)
            .bind(request.id)
            .execute(&mut *conn)
            .await?;
    }
    load(conn, request.id).await
}
