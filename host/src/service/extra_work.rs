//! Extra work found during a repair: the advisor proposes items, the approval hook decides who
//! must agree (the owner, through a single-use link that expires, and above an amount the
//! service advisor too), and the approved items become lines of the repair order. Owns
//! `extra_work_proposals` and `extra_work_items`.
//!
//! The decision is kept on the proposal: who decided (the owner), through which channel
//! (`link`), which items, what amount, when.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow};
use utoipa::ToSchema;

use super::repair_orders::{self, AMOUNT_MAX_FEN, LineKind, RepairOrder, RoStatus};
use crate::access::Caller;
use crate::approvals::{self, ApprovalStatus, NewRequest, RequestKind, Subject};
use crate::audit::{self, Actor, Entry};
use crate::clock;
use crate::db::Db;
use crate::db::decode;
use crate::error::{Error, FieldError, Result};
use crate::outbox;
use crate::owner_links::{self, Purpose};
use crate::plugins::dispatch::Plugins;
use crate::text;
use crate::vehicles;

/// How long the owner's link works: three days.
pub const LINK_TTL_MS: i64 = 3 * 86_400_000;
/// Most items in one proposal.
pub const ITEMS_MAX: usize = 50;
const DESCRIPTION_MAX: usize = 200;

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewExtraWorkItem {
    /// Default `labour`.
    pub kind: Option<LineKind>,
    /// 1 to 200 characters, e.g. 更换前刹车片.
    pub description: String,
    /// 1 fen or more.
    pub amount_fen: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewExtraWork {
    /// 1 to 50 items.
    pub items: Vec<NewExtraWorkItem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    /// Waiting for the owner (or a later approval step).
    Pending,
    Approved,
    /// The owner approved some of the items.
    PartiallyApproved,
    /// The owner declined.
    Declined,
    /// An approval step (or the hook) refused it.
    Rejected,
    /// The owner's link expired without an answer.
    Expired,
}

impl ProposalStatus {
    fn as_str(self) -> &'static str {
        match self {
            ProposalStatus::Pending => "pending",
            ProposalStatus::Approved => "approved",
            ProposalStatus::PartiallyApproved => "partially_approved",
            ProposalStatus::Declined => "declined",
            ProposalStatus::Rejected => "rejected",
            ProposalStatus::Expired => "expired",
        }
    }

    fn parse(s: &str) -> Option<ProposalStatus> {
        [
            ProposalStatus::Pending,
            ProposalStatus::Approved,
            ProposalStatus::PartiallyApproved,
            ProposalStatus::Declined,
            ProposalStatus::Rejected,
            ProposalStatus::Expired,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExtraWorkItem {
    pub id: i64,
    pub kind: LineKind,
    pub description: String,
    pub amount_fen: i64,
    /// The owner's answer for this item; absent until decided.
    pub approved: Option<bool>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Proposal {
    pub id: i64,
    pub repair_order_id: i64,
    pub approval_request_id: i64,
    pub status: ProposalStatus,
    pub items: Vec<ExtraWorkItem>,
    pub total_fen: i64,
    /// Who decided: `owner` (through the link) or `approval` (the approval hook or a step).
    pub decided_by: Option<String>,
    /// `link` when the owner answered through the link.
    pub decision_channel: Option<String>,
    /// The amount of the approved items.
    pub approved_fen: Option<i64>,
    pub decided_at: Option<DateTime<Utc>>,
    /// When the approved items became lines of the repair order.
    pub applied_at: Option<DateTime<Utc>>,
    pub link_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The link the advisor sends to the owner.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ExtraWorkOwnerLink)]
pub struct OwnerLink {
    pub token: String,
    /// The owner's page, `/o/w/{token}` on the host's public address (the owner's SMS carries
    /// it); its API is `/api/v1/owner/extra-work/{token}`.
    pub path: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Proposed {
    pub proposal: Proposal,
    /// Present while the owner's answer is needed.
    pub owner_link: Option<OwnerLink>,
    pub repair_order: RepairOrder,
}

/// What the owner sees through the link: no personal data beyond their car.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OwnerView {
    pub dealer_name: String,
    /// The number the owner calls the dealer on.
    pub dealer_phone: Option<String>,
    pub vehicle: OwnerVehicle,
    pub complaint: String,
    pub items: Vec<ExtraWorkItem>,
    pub total_fen: i64,
    pub status: ProposalStatus,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OwnerVehicle {
    pub brand: String,
    pub model: String,
    pub plate: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerDecision {
    pub approve: bool,
    /// With `approve`: the items approved (default all of them).
    pub items: Option<Vec<i64>>,
}

#[derive(FromRow)]
struct Row {
    id: i64,
    repair_order_id: i64,
    approval_request_id: i64,
    status: String,
    total_fen: i64,
    decided_by: Option<String>,
    decision_channel: Option<String>,
    approved_fen: Option<i64>,
    decided_at: Option<i64>,
    applied_at: Option<i64>,
    link_expires_at: Option<i64>,
    created_at: i64,
}

/// The link's expiry is read from the link itself, never copied.
const COLUMNS: &str = "id, repair_order_id, approval_request_id, status, total_fen, decided_by, decision_channel, \
     approved_fen, decided_at, applied_at, \
     (SELECT l.expires_at FROM owner_links l WHERE l.id = owner_link_id) AS link_expires_at, created_at";

async fn items_of(conn: &mut AnyConnection, proposal_id: i64) -> Result<Vec<ExtraWorkItem>> {
    let rows: Vec<(i64, String, String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT id, kind, description, amount_fen, approved FROM extra_work_items WHERE proposal_id = $1 ORDER BY id",
    )
    .bind(proposal_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(id, kind, description, amount_fen, approved)| {
            Ok(ExtraWorkItem {
                id,
                kind: decode("kind", &kind, LineKind::parse)?,
                description,
                amount_fen,
                approved: approved.map(|a| a == 1),
            })
        })
        .collect()
}

async fn hydrate(conn: &mut AnyConnection, row: Row) -> Result<Proposal> {
    Ok(Proposal {
        items: items_of(conn, row.id).await?,
        status: decode("status", &row.status, ProposalStatus::parse)?,
        id: row.id,
        repair_order_id: row.repair_order_id,
        approval_request_id: row.approval_request_id,
        total_fen: row.total_fen,
        decided_by: row.decided_by,
        decision_channel: row.decision_channel,
        approved_fen: row.approved_fen,
        decided_at: clock::opt_datetime(row.decided_at),
        applied_at: clock::opt_datetime(row.applied_at),
        link_expires_at: clock::opt_datetime(row.link_expires_at),
        created_at: clock::to_datetime(row.created_at),
    })
}

async fn fetch_row(conn: &mut AnyConnection, id: i64) -> Result<Row> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM extra_work_proposals WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or(Error::NotFound {
        entity: "extra_work",
    })
}

/// The extra-work proposals of repair order `id`, oldest first.
pub async fn list(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<Vec<Proposal>> {
    repair_orders::dealer_of(conn, caller, id).await?;
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM extra_work_proposals WHERE repair_order_id = $1 ORDER BY id"
    ))
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(hydrate(conn, row).await?);
    }
    Ok(out)
}

fn check_items(new: &NewExtraWork) -> Result<Vec<(LineKind, String, i64)>> {
    let mut errors = Vec::new();
    if new.items.is_empty() || new.items.len() > ITEMS_MAX {
        errors.push(FieldError::new(
            "items",
            "invalid_items",
            format!("propose 1 to {ITEMS_MAX} items"),
        ));
    }
    let mut items = Vec::new();
    for (i, item) in new.items.iter().enumerate() {
        let description = text::required(
            &mut errors,
            &format!("items[{i}].description"),
            &item.description,
            DESCRIPTION_MAX,
        )
        .unwrap_or_default();
        if !(1..=AMOUNT_MAX_FEN).contains(&item.amount_fen) {
            errors.push(FieldError::new(
                format!("items[{i}].amount_fen"),
                "invalid_amount",
                "an amount is 1 to 10,000,000,000 fen",
            ));
        }
        items.push((
            item.kind.unwrap_or(LineKind::Labour),
            description,
            item.amount_fen,
        ));
    }
    if errors.is_empty() {
        Ok(items)
    } else {
        Err(Error::Invalid(errors))
    }
}

/// Proposes extra work on repair order `id` (at version `expected`, `in_progress`): asks the
/// approval hook who must agree (outside any write transaction), stores the request and the
/// proposal, and, when the owner's answer is needed, issues the owner's link and moves the
/// order to `waiting_approval`. Approved at once by the hook, the items become lines.
pub async fn propose(
    db: &Db,
    plugins: &Plugins,
    caller: &Caller,
    id: i64,
    expected: i64,
    new: &NewExtraWork,
) -> Result<Proposed> {
    let mut conn = db.pool().acquire().await?;
    repair_orders::dealer_of(&mut conn, caller, id).await?;
    let order = repair_orders::fetch(&mut conn, id).await?;
    if order.version != expected {
        return Err(Error::StaleVersion {
            current: order.version,
        });
    }
    order.status.check_move(RoStatus::WaitingApproval)?;
    let items = check_items(new)?;
    let total: i64 = items.iter().map(|(_, _, amount)| amount).sum();
    let request = NewRequest {
        dealer_id: order.dealer_id,
        subject: Subject::RepairOrder(id),
        kind: RequestKind::ExtraRepairWork,
        requested_by: caller.staff_id,
        customer_id: Some(order.customer_id),
        amount_fen: total,
        base_amount_fen: order.total_fen,
        description: items
            .iter()
            .map(|(_, d, _)| d.as_str())
            .collect::<Vec<_>>()
            .join("; "),
        attributes: vec![
            ("complaint_code".into(), order.complaint_code.clone()),
            ("items".into(), items.len().to_string()),
        ],
    };
    let question = approvals::question(&mut conn, &request).await?;
    drop(conn);
    let decided = approvals::decide(plugins, question).await?;

    let mut tx = db.begin_write().await?;
    let row = repair_orders::fetch_row(&mut tx, id).await?;
    if row.version != expected {
        return Err(Error::StaleVersion {
            current: row.version,
        });
    }
    row.status()?.check_move(RoStatus::WaitingApproval)?;
    let approval = approvals::store(&mut tx, &request, decided, caller).await?;
    let now = clock::now_ms();
    let (proposal_id,): (i64,) = sqlx::query_as(
        "INSERT INTO extra_work_proposals (repair_order_id, approval_request_id, status, total_fen, proposed_by_key, created_at) \
         VALUES ($1, $2, 'pending', $3, $4, $5) RETURNING id",
    )
    .bind(id)
    .bind(approval.id)
    .bind(total)
    .bind(caller.key_id)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    for (kind, description, amount) in &items {
        sqlx::query(
            "INSERT INTO extra_work_items (proposal_id, kind, description, amount_fen) VALUES ($1, $2, $3, $4)",
        )
        .bind(proposal_id)
        .bind(kind.as_str())
        .bind(description)
        .bind(amount)
        .execute(&mut *tx)
        .await?;
    }
    let summary = format!("{} items, {total} fen", items.len());
    let owner_link = match approval.status {
        ApprovalStatus::Pending => {
            let issued = owner_links::issue(
                &mut tx,
                row.dealer_id,
                Purpose::ExtraWork,
                proposal_id,
                LINK_TTL_MS,
                true,
            )
            .await?;
            sqlx::query("UPDATE extra_work_proposals SET owner_link_id = $1 WHERE id = $2")
                .bind(issued.id)
                .bind(proposal_id)
                .execute(&mut *tx)
                .await?;
            repair_orders::advance(
                &mut tx,
                Actor::Staff(caller),
                &row,
                RoStatus::WaitingApproval,
                "extra_work",
                Some(&summary),
                &[],
            )
            .await?;
            let message = outbox::Message {
                channel: "sms".to_owned(),
                recipient: format!("customer:{}", row.customer_id),
                template: "extra-work-proposed".to_owned(),
                data: vec![
                    ("repair-order-id".to_owned(), id.to_string()),
                    ("amount-fen".to_owned(), total.to_string()),
                    (
                        "decision-url".to_owned(),
                        owner_links::page(Purpose::ExtraWork, &issued.token),
                    ),
                ],
                purpose: outbox::Purpose::Service,
            };
            let key = format!("extra-work:{proposal_id}:proposed");
            outbox::enqueue(&mut tx, row.dealer_id, &message, Some(&key)).await?;
            Some(OwnerLink {
                path: owner_links::page(Purpose::ExtraWork, &issued.token),
                token: issued.token,
                expires_at: clock::to_datetime(issued.expires_at),
            })
        }
        ApprovalStatus::Approved => {
            sqlx::query("UPDATE extra_work_items SET approved = 1 WHERE proposal_id = $1")
                .bind(proposal_id)
                .execute(&mut *tx)
                .await?;
            record_decision(
                &mut tx,
                proposal_id,
                ProposalStatus::Approved,
                "approval",
                None,
                total,
            )
            .await?;
            apply(&mut tx, id, proposal_id).await?;
            repair_orders::advance(
                &mut tx,
                Actor::Staff(caller),
                &row,
                RoStatus::InProgress,
                "extra_work",
                Some(&summary),
                &[],
            )
            .await?;
            None
        }
        ApprovalStatus::Rejected => {
            record_decision(
                &mut tx,
                proposal_id,
                ProposalStatus::Rejected,
                "approval",
                None,
                0,
            )
            .await?;
            mark_applied(&mut tx, proposal_id).await?;
            repair_orders::advance(
                &mut tx,
                Actor::Staff(caller),
                &row,
                RoStatus::InProgress,
                "extra_work",
                Some(&summary),
                &[],
            )
            .await?;
            None
        }
    };
    audit::record(
        &mut tx,
        caller,
        Entry::ok("propose_extra_work", "repair_order", id, row.dealer_id).with_detail(
            serde_json::json!({
                "proposal_id": proposal_id, "approval_request_id": approval.id, "total_fen": total,
            }),
        ),
    )
    .await?;
    let stored = fetch_row(&mut tx, proposal_id).await?;
    let proposal = hydrate(&mut tx, stored).await?;
    let repair_order = repair_orders::fetch(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Proposed {
        proposal,
        owner_link,
        repair_order,
    })
}

async fn record_decision(
    conn: &mut AnyConnection,
    proposal_id: i64,
    status: ProposalStatus,
    decided_by: &str,
    channel: Option<&str>,
    approved_fen: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE extra_work_proposals SET status = $1, decided_by = $2, decision_channel = $3, approved_fen = $4, \
         decided_at = $5 WHERE id = $6",
    )
    .bind(status.as_str())
    .bind(decided_by)
    .bind(channel)
    .bind(approved_fen)
    .bind(clock::now_ms())
    .bind(proposal_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn mark_applied(conn: &mut AnyConnection, proposal_id: i64) -> Result<()> {
    sqlx::query("UPDATE extra_work_proposals SET applied_at = $1 WHERE id = $2")
        .bind(clock::now_ms())
        .bind(proposal_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Turns the approved items of a proposal into lines of repair order `id` (one each, quantity
/// one, at the proposed amount).
async fn apply(conn: &mut AnyConnection, id: i64, proposal_id: i64) -> Result<()> {
    for item in items_of(conn, proposal_id).await? {
        if item.approved == Some(true) {
            repair_orders::insert_line(
                conn,
                id,
                item.kind,
                &item.description,
                100,
                item.amount_fen,
                Some(item.id),
            )
            .await?;
        }
    }
    mark_applied(conn, proposal_id).await
}

/// Whether the proposal is still waiting: a decided proposal's link answers as used.
async fn still_pending(
    conn: &mut AnyConnection,
    row: &Row,
    link: &owner_links::Link,
) -> Result<()> {
    if row.status == ProposalStatus::Pending.as_str() {
        Ok(())
    } else {
        Err(owner_links::used(conn, link).await?)
    }
}

/// What the owner sees through link `token`.
pub async fn owner_view(conn: &mut AnyConnection, token: &str) -> Result<OwnerView> {
    let link = owner_links::resolve(conn, Purpose::ExtraWork, token).await?;
    let row = fetch_row(conn, link.subject_id).await?;
    still_pending(conn, &row, &link).await?;
    let order = repair_orders::fetch_row(conn, row.repair_order_id).await?;
    let vehicle = vehicles::get_unscoped(conn, order.vehicle_id).await?;
    let proposal = hydrate(conn, row).await?;
    let dealer = crate::network::contact(conn, order.dealer_id).await?;
    Ok(OwnerView {
        dealer_name: dealer.name,
        dealer_phone: dealer.phone,
        vehicle: OwnerVehicle {
            brand: vehicle.brand,
            model: vehicle.model,
            plate: vehicle.plate,
        },
        complaint: order.complaint,
        items: proposal.items,
        total_fen: proposal.total_fen,
        status: proposal.status,
        expires_at: clock::to_datetime(link.expires_at),
    })
}

/// Records the owner's answer through link `token` (once: the link is consumed in the same
/// transaction): which items, what amount, channel `link`, when. Approved, and with no
/// approval step left, the items become lines and the work resumes; declined, the work
/// resumes without them.
pub async fn owner_decide(db: &Db, token: &str, decision: &OwnerDecision) -> Result<Proposal> {
    let mut tx = db.begin_write().await?;
    let link = owner_links::resolve(&mut tx, Purpose::ExtraWork, token).await?;
    let row = fetch_row(&mut tx, link.subject_id).await?;
    still_pending(&mut tx, &row, &link).await?;
    let items = items_of(&mut tx, row.id).await?;
    let chosen: Vec<i64> = match (decision.approve, &decision.items) {
        (false, _) => Vec::new(),
        (true, None) => items.iter().map(|i| i.id).collect(),
        (true, Some(ids)) => {
            if let Some(unknown) = ids.iter().find(|id| !items.iter().any(|i| i.id == **id)) {
                return Err(Error::invalid(
                    "items",
                    "unknown_item",
                    format!("item {unknown} is not part of this proposal"),
                ));
            }
            ids.clone()
        }
    };
    let approve = !chosen.is_empty();
    owner_links::consume(&mut tx, &link).await?;
    let request =
        approvals::act_as_owner(&mut tx, row.approval_request_id, approve, "link", link.id).await?;
    for item in &items {
        sqlx::query("UPDATE extra_work_items SET approved = $1 WHERE id = $2")
            .bind(i64::from(chosen.contains(&item.id)))
            .bind(item.id)
            .execute(&mut *tx)
            .await?;
    }
    let approved_fen: i64 = items
        .iter()
        .filter(|i| chosen.contains(&i.id))
        .map(|i| i.amount_fen)
        .sum();
    let status = if !approve {
        ProposalStatus::Declined
    } else if chosen.len() == items.len() {
        ProposalStatus::Approved
    } else {
        ProposalStatus::PartiallyApproved
    };
    record_decision(&mut tx, row.id, status, "owner", Some("link"), approved_fen).await?;
    let order = repair_orders::fetch_row(&mut tx, row.repair_order_id).await?;
    let note = format!(
        "{}: {} items, {approved_fen} fen",
        status.as_str(),
        chosen.len()
    );
    let owner = Actor::Owner { link_id: link.id };
    match (approve, request.status) {
        (false, _) | (true, ApprovalStatus::Rejected) => {
            mark_applied(&mut tx, row.id).await?;
            repair_orders::advance(
                &mut tx,
                owner,
                &order,
                RoStatus::InProgress,
                "owner_decision",
                Some(&note),
                &[],
            )
            .await?;
        }
        (true, ApprovalStatus::Approved) => {
            apply(&mut tx, order.id, row.id).await?;
            repair_orders::advance(
                &mut tx,
                owner,
                &order,
                RoStatus::InProgress,
                "owner_decision",
                Some(&note),
                &[],
            )
            .await?;
        }
        (true, ApprovalStatus::Pending) => {
            repair_orders::append_event(
                &mut tx,
                owner,
                order.id,
                "owner_decision",
                Some(RoStatus::WaitingApproval),
                RoStatus::WaitingApproval,
                Some(&note),
            )
            .await?;
        }
    }
    audit::record_owner(
        &mut tx,
        link.id,
        Entry::ok("owner_decision", "repair_order", order.id, order.dealer_id).with_detail(
            serde_json::json!({
                "proposal_id": row.id, "approve": approve, "items": chosen,
                "approved_fen": approved_fen, "channel": "link",
            }),
        ),
    )
    .await?;
    let stored = fetch_row(&mut tx, row.id).await?;
    let proposal = hydrate(&mut tx, stored).await?;
    tx.commit().await?;
    Ok(proposal)
}

/// Before staff move repair order `id` from `waiting_approval` back to work: settles every
/// proposal not yet applied by its approval's outcome (approved items become lines; a
/// rejection or an owner who let the link expire leaves them out). Refused while an approval
/// is still pending and the owner's link still works.
pub async fn resume_check(conn: &mut AnyConnection, id: i64) -> Result<()> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM extra_work_proposals WHERE repair_order_id = $1 AND applied_at IS NULL ORDER BY id"
    ))
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let requests = approvals::for_subject(conn, Subject::RepairOrder(id)).await?;
    let now = clock::now_ms();
    for row in rows {
        let status = requests
            .iter()
            .find(|r| r.id == row.approval_request_id)
            .map(|r| r.status);
        match status {
            Some(ApprovalStatus::Approved) => apply(conn, id, row.id).await?,
            Some(ApprovalStatus::Rejected) => {
                sqlx::query(
                    "UPDATE extra_work_proposals SET status = $1, applied_at = $2 WHERE id = $3",
                )
                .bind(ProposalStatus::Rejected.as_str())
                .bind(now)
                .bind(row.id)
                .execute(&mut *conn)
                .await?;
            }
            _ if row.status == ProposalStatus::Pending.as_str()
                && row.link_expires_at.is_some_and(|e| e <= now) =>
            {
                record_decision(conn, row.id, ProposalStatus::Expired, "nobody", None, 0).await?;
                mark_applied(conn, row.id).await?;
            }
            _ => {
                return Err(Error::Conflict {
                    code: "approval_pending",
                    message: format!(
                        "extra work {} still waits for its approval (request {})",
                        row.id, row.approval_request_id
                    ),
                });
            }
        }
    }
    Ok(())
}
