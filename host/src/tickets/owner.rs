//! The owner's view of a ticket, through the signed link issued when it was created: the
//! subject, the status in the owner's words, and the timeline without internal notes, teams,
//! SLA or routing details, or anything about the staff.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::AnyConnection;
use utoipa::ToSchema;

use super::{EventKind, TicketEvent, TicketRow, TicketStatus};
use crate::error::{Error, Result};
use crate::owner_links::{self, Purpose};

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

/// One step of the owner's timeline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OwnerStep {
    pub at: DateTime<Utc>,
    pub stage: Stage,
    /// The stage, or what happened, in Chinese.
    pub text: String,
    /// A note the staff chose to show the owner.
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OwnerTicket {
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
    let text = match event.kind {
        EventKind::Status if moved => stage.text().to_owned(),
        EventKind::Status if message.is_some() => "客服留言".to_owned(),
        EventKind::Handoff => "已转交专业部门处理".to_owned(),
        EventKind::Status | EventKind::Breach => return None,
    };
    Some(OwnerStep {
        at: event.at,
        stage,
        text,
        message,
    })
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
    Ok(OwnerTicket {
        subject: ticket.subject,
        stage,
        stage_text: stage.text().to_owned(),
        opened_at: ticket.opened_at,
        timeline: ticket.events.into_iter().filter_map(step).collect(),
    })
}
