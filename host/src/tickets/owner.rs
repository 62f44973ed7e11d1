//! The owner's view of a ticket, through the signed link issued when it was created: the
//! subject, the status in the owner's words, and the timeline without internal notes, teams,
//! SLA or routing details, or anything about the staff; and the owner's replies through it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa::ToSchema;

use super::{EventKind, NewEvent, TicketEvent, TicketRow, TicketStatus};
use crate::audit::{self, Entry};
use crate::clock;
use crate::db::Db;
use crate::error::{Error, FieldError, Result};
use crate::network;
use crate::owner_links::{self, Purpose};
use crate::text;

/// The longest reply an owner writes, in characters.
const REPLY_MAX: usize = 1000;

/// The status as the owner reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = OwnerTicketStage)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// `open`: 已受理.
    Received,
    /// `in_progress`: 工程师处理中.
    EngineerOnIt,
    /// 已解决.
    Resolved,
    /// 已关闭.
    Closed,
}

impl Stage {
    fn of(status: TicketStatus) -> Stage {
        match status {
            TicketStatus::Open => Stage::Received,
            TicketStatus::InProgress => Stage::EngineerOnIt,
            TicketStatus::Resolved => Stage::Resolved,
            TicketStatus::Closed => Stage::Closed,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Stage::Received => "已受理",
            Stage::EngineerOnIt => "工程师处理中",
            Stage::Resolved => "已解决",
            Stage::Closed => "已关闭",
        }
    }
}

/// What a step of the owner's timeline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = OwnerTicketStepKind)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// The ticket moved to `stage`.
    Stage,
    /// A note the staff wrote for the owner.
    Note,
    /// Handed to a specialist department.
    Handoff,
    /// The owner's own reply through the link.
    OwnerReply,
}

/// One step of the owner's timeline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OwnerStep {
    pub at: DateTime<Utc>,
    pub kind: StepKind,
    pub stage: Stage,
    /// The stage, or what happened, in Chinese.
    pub text: String,
    /// A note the staff chose to show the owner, or the owner's own reply.
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OwnerTicket {
    pub dealer: String,
    /// The number the owner calls the dealer on.
    pub dealer_phone: Option<String>,
    pub subject: String,
    pub stage: Stage,
    pub stage_text: String,
    pub opened_at: DateTime<Utc>,
    /// Oldest first.
    pub timeline: Vec<OwnerStep>,
}

/// What the owner sees of one timeline entry, if anything.
fn step(event: TicketEvent) -> Option<OwnerStep> {
    let stage = Stage::of(event.to_status);
    let moved = event.from_status != Some(event.to_status);
    let message = event.note.filter(|_| event.owner_visible);
    let (kind, text) = match event.kind {
        EventKind::Status if moved => (StepKind::Stage, stage.text()),
        EventKind::Status if message.is_some() => (StepKind::Note, "客服留言"),
        EventKind::Handoff => (StepKind::Handoff, "已转交专业部门处理"),
        EventKind::OwnerReply => (StepKind::OwnerReply, "您的留言"),
        EventKind::Status | EventKind::Breach => return None,
    };
    Some(OwnerStep {
        at: event.at,
        kind,
        stage,
        text: text.to_owned(),
        message,
    })
}

/// What the owner writes back through the link.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerReply {
    /// 1 to 1000 characters, a visible one among them.
    pub text: String,
}

/// The ticket behind the owner link `token`: unknown → 404, expired → 410.
pub async fn view(conn: &mut AnyConnection, token: &str) -> Result<OwnerTicket> {
    let link = owner_links::resolve(conn, Purpose::TicketStatus, token).await?;
    let row: Option<TicketRow> = sqlx::query_as(&format!(
        "SELECT {} FROM tickets WHERE id = $1 AND dealer_id = $2",
        super::TICKET_COLUMNS
    ))
    .bind(link.subject_id)
    .bind(link.dealer_id)
    .fetch_optional(&mut *conn)
    .await?;
    let row = row.ok_or(Error::NotFound { entity: "ticket" })?;
    let ticket = super::with_events(conn, vec![row]).await?.remove(0);
    let stage = Stage::of(ticket.status);
    let dealer = network::contact(conn, link.dealer_id).await?;
    Ok(OwnerTicket {
        dealer: dealer.name,
        dealer_phone: dealer.phone,
        subject: ticket.subject,
        stage,
        stage_text: stage.text().to_owned(),
        opened_at: ticket.opened_at,
        timeline: ticket.events.into_iter().filter_map(step).collect(),
    })
}

/// Appends the owner's reply, through link `token`, to the ticket's timeline, where the staff
/// read it and the owner sees it as theirs; audited as the owner's. The text is checked like
/// every text (`required`, `too_long`, `control_character`, `invisible_text`, 422); a closed
/// ticket takes no reply (409 `ticket_closed`). Answers the owner's view with the reply in it.
pub async fn reply(db: &Db, token: &str, reply: &OwnerReply) -> Result<OwnerTicket> {
    let mut tx = db.begin_write().await?;
    let link = owner_links::resolve(&mut tx, Purpose::TicketStatus, token).await?;
    let mut errors: Vec<FieldError> = Vec::new();
    let written = text::required(&mut errors, "text", &reply.text, REPLY_MAX);
    let Some(written) = written else {
        return Err(Error::Invalid(errors));
    };
    let status: Option<(String,)> =
        sqlx::query_as("SELECT status FROM tickets WHERE id = $1 AND dealer_id = $2")
            .bind(link.subject_id)
            .bind(link.dealer_id)
            .fetch_optional(&mut *tx)
            .await?;
    let (status,) = status.ok_or(Error::NotFound { entity: "ticket" })?;
    let status = crate::db::decode("status", &status, TicketStatus::parse)?;
    if status == TicketStatus::Closed {
        return Err(Error::Conflict {
            code: "ticket_closed",
            message: "the ticket is closed; call the dealer to reopen it".to_owned(),
        });
    }
    NewEvent::new(EventKind::OwnerReply, clock::now_ms(), Some(status), status)
        .note(Some(&written))
        .for_owner(true)
        .append(&mut tx, link.subject_id)
        .await?;
    audit::record_owner(
        &mut tx,
        link.id,
        Entry::ok("owner_reply", "ticket", link.subject_id, link.dealer_id),
    )
    .await?;
    tx.commit().await?;
    let mut conn = db.pool().acquire().await?;
    view(&mut conn, token).await
}
