//! Tickets: complaints and service requests from every channel, with a status timeline the
//! owner can follow. Owns `tickets` and `ticket_events`.
//!
//! A ticket moves `open → in_progress → resolved → closed` (see [`TicketStatus::next`]); every
//! move, every note, every hand-off and every SLA breach appends a
//! `ticket_events` row.
//!
//! - **Routing** ([`routing`]): a new ticket is routed by the dealer's `ticket-routing` hook
//!   before it is stored. The route decides the safety flag and both SLA deadlines. The
//!   priority is the higher of the route's and the one the caller gave (a caller may raise it,
//!   never lower a plugin's urgent below it); the team is the caller's when given (the intake
//!   desk knows better), else the route's. Later, the team changes only by a hand-off.
//! - **Hand-offs** ([`hand_off`], or a `team` change in a patch, which is recorded the same
//!   way): the ticket moves between departments; the timeline keeps from, to and by whom.
//! - **SLA** ([`sla`]): the first-contact clock stops at the first move out of `open`, the
//!   resolution clock at the move to `resolved` (or `closed`); a clock past its deadline is
//!   breached once and escalates the ticket one level.
//! - **First-contact resolution**: a ticket is resolved at its first contact when the move
//!   that resolves it (to `resolved`, or to `closed` unresolved) is the very first move out of
//!   `open` — nobody had to come back to it — and it was never handed off. The flag is stored
//!   at that move; a reopen (`resolved → in_progress`) sets it to false for good.
//! - **Owner link** ([`owner`]): on creation a long-lived signed link is issued for the owner
//!   to follow the ticket without an account; on closing a survey ([`crate::surveys`]) is sent.

pub mod kpis;
pub mod owner;
pub mod routing;
pub mod sla;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow};
use utoipa::{IntoParams, ToSchema};

use crate::access::{Caller, Position};
use crate::audit;
use crate::clock;
use crate::db::decode;
use crate::db::{Param, Sql};
use crate::error::{Error, FieldError, Result};
use crate::model::Versioned;
use crate::text;
use crate::{customers, network, outbox, owner_links, surveys, vehicles};

/// Longest `category`, in characters.
pub const CATEGORY_MAX: usize = 40;
/// Longest `subject`, in characters.
pub const SUBJECT_MAX: usize = 200;
/// Longest `description` or event `note`, in characters.
pub const TEXT_MAX: usize = 5000;
/// Longest `team` name, in characters.
pub const TEAM_MAX: usize = 100;

/// Where a ticket came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = TicketChannel)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Hotline,
    App,
    Community,
    Wechat,
    WalkIn,
    Email,
}

impl Channel {
    pub const ALL: [Channel; 6] = [
        Channel::Hotline,
        Channel::App,
        Channel::Community,
        Channel::Wechat,
        Channel::WalkIn,
        Channel::Email,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Hotline => "hotline",
            Channel::App => "app",
            Channel::Community => "community",
            Channel::Wechat => "wechat",
            Channel::WalkIn => "walk_in",
            Channel::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Ordered: `low < normal < high < urgent`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Urgent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    pub fn parse(s: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Received, nobody has taken it up yet.
    Open,
    /// Someone is working on it.
    InProgress,
    /// Solved; the customer may still reopen it.
    Resolved,
    /// Final.
    Closed,
}

impl TicketStatus {
    pub const ALL: [TicketStatus; 4] = [
        TicketStatus::Open,
        TicketStatus::InProgress,
        TicketStatus::Resolved,
        TicketStatus::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Open => "open",
            TicketStatus::InProgress => "in_progress",
            TicketStatus::Resolved => "resolved",
            TicketStatus::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<TicketStatus> {
        TicketStatus::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The states a ticket in this state may move to. Nothing moves back to `open`, so the
    /// first move out of it is the first contact; `resolved → in_progress` is a reopen.
    pub fn next(self) -> &'static [TicketStatus] {
        use TicketStatus::*;
        match self {
            Open => &[InProgress, Resolved, Closed],
            InProgress => &[Resolved, Closed],
            Resolved => &[Closed, InProgress],
            Closed => &[],
        }
    }

    /// Refuses a move the table of [`TicketStatus::next`] does not allow, naming the allowed ones.
    pub fn check_move(self, to: TicketStatus) -> Result<()> {
        if self.next().contains(&to) {
            return Ok(());
        }
        Err(Error::InvalidTransition {
            from: self.as_str().to_owned(),
            to: to.as_str().to_owned(),
            allowed: self.next().iter().map(|s| s.as_str().to_owned()).collect(),
        })
    }
}

/// One of a ticket's two SLA clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    /// Stops at the first move out of `open`.
    FirstContact,
    /// Stops at the move to `resolved` (or to `closed`).
    Resolution,
}

impl Clock {
    pub const ALL: [Clock; 2] = [Clock::FirstContact, Clock::Resolution];

    pub fn as_str(self) -> &'static str {
        match self {
            Clock::FirstContact => "first_contact",
            Clock::Resolution => "resolution",
        }
    }

    pub fn parse(s: &str) -> Option<Clock> {
        Clock::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// What a timeline entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = TicketEventKind)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A status move, or a note when `from_status` equals `to_status`.
    Status,
    /// A move between departments (`from_team` → `to_team`).
    Handoff,
    /// An SLA clock past its deadline (`clock`), escalating to `escalation_level`.
    Breach,
    /// A reply the owner wrote through the ticket's link (`note`; no key).
    OwnerReply,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        EventKind::Status,
        EventKind::Handoff,
        EventKind::Breach,
        EventKind::OwnerReply,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Status => "status",
            EventKind::Handoff => "handoff",
            EventKind::Breach => "breach",
            EventKind::OwnerReply => "owner_reply",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One entry of a ticket's timeline. `from_status` is absent on the entry that opened the
/// ticket; a note added without a status change has `from_status` equal to `to_status`, as do
/// hand-off and breach entries (the status they happened in). The route a ticket was given is
/// on the ticket (`routing`), not on its timeline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TicketEvent {
    pub kind: EventKind,
    pub at: DateTime<Utc>,
    pub from_status: Option<TicketStatus>,
    pub to_status: TicketStatus,
    pub note: Option<String>,
    /// Whether the owner sees the note on the signed link (otherwise it is internal).
    pub owner_visible: bool,
    /// The API key that made the change; absent for the host's own entries (SLA sweep).
    pub actor_key_id: Option<i64>,
    /// The staff member behind that key, when it belongs to one.
    pub actor_staff_id: Option<i64>,
    /// Hand-offs: the department the ticket left and the one it went to.
    pub from_team: Option<String>,
    pub to_team: Option<String>,
    /// Breaches: the clock that ran out and the escalation level reached.
    pub clock: Option<Clock>,
    pub escalation_level: Option<i64>,
}

/// Who routed a ticket and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Routing {
    /// The plugin's reason (or the built-in rule's).
    pub reason: String,
    /// The plugin that decided, or `built-in`.
    pub decided_by: String,
    /// The plugin's version; absent for the built-in rule.
    pub plugin_version: Option<String>,
    /// The run-log entry of the decision.
    pub run_id: Option<i64>,
}

/// The signed link the owner follows the ticket with, shown once, when the ticket is created.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = TicketOwnerLink)]
pub struct OwnerLink {
    pub token: String,
    /// The owner's page, `/o/t/{token}` on the host's public address (the SMS to the owner
    /// carries it).
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Ticket {
    pub id: i64,
    pub dealer_id: i64,
    pub customer_id: i64,
    pub vehicle_id: Option<i64>,
    pub channel: Channel,
    /// Free text, e.g. `complaint`, `inquiry`, `repair`, `safety`.
    pub category: String,
    pub subject: String,
    /// Empty when none was given.
    pub description: String,
    pub status: TicketStatus,
    pub priority: Priority,
    pub team: Option<String>,
    /// A safety case (brakes, fire, airbags, ...), as routed.
    pub safety: bool,
    pub opened_at: DateTime<Utc>,
    /// The first move out of `open`.
    pub first_contact_at: Option<DateTime<Utc>>,
    /// The latest move to `resolved` (cleared by a reopen; set on closing if unset).
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// SLA deadlines, as routed (absent on tickets from before routing).
    pub first_contact_due: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
    /// When each clock was found past its deadline.
    pub first_contact_breached_at: Option<DateTime<Utc>>,
    pub resolution_breached_at: Option<DateTime<Utc>>,
    /// One level per breached clock.
    pub escalation_level: i64,
    pub handoff_count: i64,
    /// Set when the ticket is resolved (see the module documentation); absent before.
    pub first_contact_resolution: Option<bool>,
    pub routing: Option<Routing>,
    /// The satisfaction survey sent when the ticket closed, with its answer once given.
    pub survey: Option<surveys::Survey>,
    /// Only in the answer to the create: the owner's signed link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_link: Option<OwnerLink>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The status timeline, oldest first.
    pub events: Vec<TicketEvent>,
}

impl Versioned for Ticket {
    fn version(&self) -> i64 {
        self.version
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTicket {
    /// Required for HQ callers; dealer staff leave it out (their own dealer is used).
    pub dealer_id: Option<i64>,
    /// A customer of the same dealer.
    pub customer_id: i64,
    /// A vehicle of the same dealer.
    pub vehicle_id: Option<i64>,
    pub channel: Channel,
    /// 1 to 40 characters, e.g. `complaint`, `inquiry`, `repair`, `safety`.
    pub category: String,
    /// 1 to 200 characters.
    pub subject: String,
    /// Up to 5000 characters.
    pub description: Option<String>,
    /// Raises the routed priority (the higher of the two is kept); default: the route's.
    pub priority: Option<Priority>,
    /// 1 to 100 characters; replaces the routed team. Default: the route's.
    pub team: Option<String>,
}

/// A move of a ticket to another department.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Handoff {
    /// 1 to 100 characters, not the current team.
    pub to_team: String,
    /// Internal, up to 5000 characters.
    pub note: Option<String>,
}

/// Changes to a ticket. Absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketPatch {
    /// Moves the ticket (see the allowed transitions); the same status is no change.
    pub status: Option<TicketStatus>,
    pub priority: Option<Priority>,
    /// `null` clears the team. A change of team is recorded as a hand-off.
    #[serde(default, deserialize_with = "crate::model::nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub team: Option<Option<String>>,
    pub subject: Option<String>,
    pub description: Option<String>,
    /// Recorded on the timeline entry of this change (up to 5000 characters). Without a status
    /// change it is added to the timeline on its own.
    pub note: Option<String>,
    /// Shows the note to the owner on the signed link (default: internal).
    #[serde(default)]
    pub note_for_owner: bool,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TicketFilter {
    pub status: Option<TicketStatus>,
    pub customer_id: Option<i64>,
    pub priority: Option<Priority>,
    /// `true`: tickets with a breached SLA clock; `false`: tickets with none.
    pub breached: Option<bool>,
}

#[derive(FromRow)]
struct TicketRow {
    id: i64,
    dealer_id: i64,
    customer_id: i64,
    vehicle_id: Option<i64>,
    channel: String,
    category: String,
    subject: String,
    description: String,
    status: String,
    priority: String,
    team: Option<String>,
    opened_at: i64,
    first_contact_at: Option<i64>,
    resolved_at: Option<i64>,
    closed_at: Option<i64>,
    version: i64,
    created_at: i64,
    updated_at: i64,
    safety: i64,
    first_contact_due: Option<i64>,
    resolution_due: Option<i64>,
    first_contact_breached_at: Option<i64>,
    resolution_breached_at: Option<i64>,
    escalation_level: i64,
    handoff_count: i64,
    first_contact_resolution: Option<i64>,
    route_reason: Option<String>,
    route_plugin: Option<String>,
    route_plugin_version: Option<String>,
    route_run_id: Option<i64>,
}

const TICKET_COLUMNS: &str = "id, dealer_id, customer_id, vehicle_id, channel, category, subject, description, \
     status, priority, team, opened_at, first_contact_at, resolved_at, closed_at, version, created_at, updated_at, \
     safety, first_contact_due, resolution_due, first_contact_breached_at, resolution_breached_at, \
     escalation_level, handoff_count, first_contact_resolution, route_reason, route_plugin, \
     route_plugin_version, route_run_id";

#[derive(FromRow)]
struct EventRow {
    ticket_id: i64,
    kind: String,
    at: i64,
    from_status: Option<String>,
    to_status: String,
    note: Option<String>,
    owner_visible: i64,
    actor_key_id: Option<i64>,
    actor_staff_id: Option<i64>,
    from_team: Option<String>,
    to_team: Option<String>,
    clock: Option<String>,
    escalation_level: Option<i64>,
}

const EVENT_COLUMNS: &str = "ticket_id, kind, at, from_status, to_status, note, owner_visible, \
     actor_key_id, actor_staff_id, from_team, to_team, clock, escalation_level";

impl TicketRow {
    fn status(&self) -> Result<TicketStatus> {
        decode("status", &self.status, TicketStatus::parse)
    }

    fn into_ticket(
        self,
        events: Vec<TicketEvent>,
        survey: Option<surveys::Survey>,
    ) -> Result<Ticket> {
        let routing = self.route_reason.map(|reason| Routing {
            reason,
            decided_by: self
                .route_plugin
                .unwrap_or_else(|| routing::BUILT_IN.to_owned()),
            plugin_version: self.route_plugin_version,
            run_id: self.route_run_id,
        });
        Ok(Ticket {
            channel: decode("channel", &self.channel, Channel::parse)?,
            status: decode("status", &self.status, TicketStatus::parse)?,
            priority: decode("priority", &self.priority, Priority::parse)?,
            id: self.id,
            dealer_id: self.dealer_id,
            customer_id: self.customer_id,
            vehicle_id: self.vehicle_id,
            category: self.category,
            subject: self.subject,
            description: self.description,
            team: self.team,
            safety: self.safety != 0,
            opened_at: clock::to_datetime(self.opened_at),
            first_contact_at: clock::opt_datetime(self.first_contact_at),
            resolved_at: clock::opt_datetime(self.resolved_at),
            closed_at: clock::opt_datetime(self.closed_at),
            first_contact_due: clock::opt_datetime(self.first_contact_due),
            resolution_due: clock::opt_datetime(self.resolution_due),
            first_contact_breached_at: clock::opt_datetime(self.first_contact_breached_at),
            resolution_breached_at: clock::opt_datetime(self.resolution_breached_at),
            escalation_level: self.escalation_level,
            handoff_count: self.handoff_count,
            first_contact_resolution: self.first_contact_resolution.map(|f| f != 0),
            routing,
            survey,
            owner_link: None,
            version: self.version,
            created_at: clock::to_datetime(self.created_at),
            updated_at: clock::to_datetime(self.updated_at),
            events,
        })
    }
}

impl EventRow {
    fn into_event(self) -> Result<TicketEvent> {
        Ok(TicketEvent {
            kind: decode("kind", &self.kind, EventKind::parse)?,
            at: clock::to_datetime(self.at),
            from_status: self
                .from_status
                .as_deref()
                .map(|s| decode("from_status", s, TicketStatus::parse))
                .transpose()?,
            to_status: decode("to_status", &self.to_status, TicketStatus::parse)?,
            note: self.note,
            owner_visible: self.owner_visible != 0,
            actor_key_id: self.actor_key_id,
            actor_staff_id: self.actor_staff_id,
            from_team: self.from_team,
            to_team: self.to_team,
            clock: self
                .clock
                .as_deref()
                .map(|c| decode("clock", c, Clock::parse))
                .transpose()?,
            escalation_level: self.escalation_level,
        })
    }
}

fn check_description(errors: &mut Vec<FieldError>, value: &str) {
    if value.chars().count() > TEXT_MAX {
        errors.push(FieldError::new(
            "description",
            "too_long",
            format!("description is at most {TEXT_MAX} characters"),
        ));
    }
}

/// The field checks of a new ticket that need no database.
fn field_errors(new: &NewTicket) -> Vec<FieldError> {
    let mut errors = Vec::new();
    text::required(&mut errors, "category", &new.category, CATEGORY_MAX);
    text::required(&mut errors, "subject", &new.subject, SUBJECT_MAX);
    if let Some(d) = &new.description {
        check_description(&mut errors, d);
    }
    if let Some(t) = &new.team {
        text::required(&mut errors, "team", t, TEAM_MAX);
    }
    errors
}

/// A [`NewTicket`] that passed [`check_new`], with the dealer it belongs to.
pub struct ValidTicket<'a> {
    new: &'a NewTicket,
    dealer_id: i64,
}

/// Validates a new ticket: its fields, its dealer ([`network::dealer_for_write`]), and that the
/// customer and vehicle are visible to the caller and belong to that dealer.
///
/// Run it outside the transaction of the create: a customer or vehicle outside the caller's
/// scope is refused as an invalid field, and its denial is audited here, on `conn`, where the
/// refusal cannot roll it back.
pub async fn check_new<'a>(
    conn: &mut AnyConnection,
    caller: &Caller,
    new: &'a NewTicket,
) -> Result<ValidTicket<'a>> {
    let mut errors = field_errors(new);
    let dealer = match network::dealer_for_write(conn, caller, new.dealer_id).await {
        Ok(d) => Some(d),
        Err(Error::Invalid(mut e)) => {
            errors.append(&mut e);
            None
        }
        Err(e) => return Err(e),
    };
    let owner = customers::dealer_of(conn, caller, new.customer_id).await;
    check_reference(conn, &mut errors, "customer", dealer, owner).await?;
    if let Some(vehicle) = new.vehicle_id {
        let owner = vehicles::dealer_of(conn, caller, vehicle).await;
        check_reference(conn, &mut errors, "vehicle", dealer, owner).await?;
    }
    match dealer {
        Some(dealer_id) if errors.is_empty() => Ok(ValidTicket { new, dealer_id }),
        _ => Err(Error::Invalid(errors)),
    }
}

/// Turns the outcome of a `dealer_of` lookup of the `entity` a ticket refers to into a field
/// error on `<entity>_id` unless it is visible and belongs to `dealer`.
async fn check_reference(
    conn: &mut AnyConnection,
    errors: &mut Vec<FieldError>,
    entity: &str,
    dealer: Option<i64>,
    owner: Result<i64>,
) -> Result<()> {
    let field = format!("{entity}_id");
    let unknown = || {
        FieldError::new(
            &field,
            &format!("unknown_{entity}"),
            format!("no {entity} with that id in your network"),
        )
    };
    match owner {
        Ok(owner) if dealer.is_some_and(|d| d != owner) => errors.push(FieldError::new(
            &field,
            &format!("{entity}_of_other_dealer"),
            format!("the {entity} belongs to another dealer than the ticket"),
        )),
        Ok(_) => {}
        Err(Error::Denied(denial)) => {
            audit::record_denial(conn, &denial).await?;
            errors.push(unknown());
        }
        Err(Error::NotFound { .. }) => errors.push(unknown()),
        Err(e) => return Err(e),
    }
    Ok(())
}

/// How long the owner's link to follow a ticket stays valid: a year.
pub const OWNER_LINK_TTL_MS: i64 = 365 * 24 * 3600 * 1000;

/// Stores a checked, routed ticket as `open`, with the first entry of its timeline, the route's
/// notifications in the outbox, and the owner's signed link, which only this answer carries.
pub async fn create(
    conn: &mut AnyConnection,
    caller: &Caller,
    valid: &ValidTicket<'_>,
    routed: &routing::Routed,
) -> Result<Ticket> {
    let new = valid.new;
    let now = routed.opened_at;
    let priority = new
        .priority
        .map_or(routed.priority, |p| p.max(routed.priority));
    let team = new
        .team
        .as_deref()
        .map(str::trim)
        .unwrap_or(&routed.team)
        .to_owned();
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO tickets (dealer_id, customer_id, vehicle_id, channel, category, subject, description, \
         status, priority, team, opened_at, created_at, updated_at, safety, first_contact_due, resolution_due, \
         route_reason, route_plugin, route_plugin_version, route_run_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $11, $12, $13, $14, $15, $16, $17, $18) \
         RETURNING id",
    )
    .bind(valid.dealer_id)
    .bind(new.customer_id)
    .bind(new.vehicle_id)
    .bind(new.channel.as_str())
    .bind(new.category.trim())
    .bind(new.subject.trim())
    .bind(new.description.as_deref().unwrap_or(""))
    .bind(TicketStatus::Open.as_str())
    .bind(priority.as_str())
    .bind(&team)
    .bind(now)
    .bind(i64::from(routed.safety))
    .bind(routed.first_contact_due)
    .bind(routed.resolution_due)
    .bind(&routed.reason)
    .bind(routed.plugin.as_deref())
    .bind(routed.plugin_version.as_deref())
    .bind(routed.run_id)
    .fetch_one(&mut *conn)
    .await?;
    let open = TicketStatus::Open;
    NewEvent::new(EventKind::Status, now, None, open)
        .by(caller)
        .append(conn, id)
        .await?;
    for (i, message) in routed.messages(id).iter().enumerate() {
        let key = format!("ticket:{id}:route:{i}");
        outbox::enqueue(conn, valid.dealer_id, message, Some(&key)).await?;
    }
    if routed.safety {
        page_safety(conn, valid.dealer_id, id, &valid.new.subject).await?;
    }
    let link = owner_links::issue(
        conn,
        valid.dealer_id,
        owner_links::Purpose::TicketStatus,
        id,
        OWNER_LINK_TTL_MS,
        false,
    )
    .await?;
    sqlx::query("UPDATE tickets SET owner_link_id = $1 WHERE id = $2")
        .bind(link.id)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let message = outbox::Message {
        channel: "sms".to_owned(),
        recipient: format!("customer:{}", valid.new.customer_id),
        template: "ticket-opened".to_owned(),
        data: vec![
            ("ticket-id".to_owned(), id.to_string()),
            (
                "ticket-url".to_owned(),
                owner_links::page(owner_links::Purpose::TicketStatus, &link.token),
            ),
        ],
        purpose: outbox::Purpose::Service,
    };
    outbox::enqueue(
        conn,
        valid.dealer_id,
        &message,
        Some(&format!("ticket:{id}:opened")),
    )
    .await?;
    let mut ticket = fetch(conn, caller, id).await?;
    ticket.owner_link = Some(OwnerLink {
        url: owner_links::page(owner_links::Purpose::TicketStatus, &link.token),
        token: link.token,
        expires_at: clock::to_datetime(link.expires_at),
    });
    audit::record(
        conn,
        caller,
        audit::Entry::ok("create", "ticket", ticket.id, ticket.dealer_id),
    )
    .await?;
    Ok(ticket)
}

/// A safety case pages the regional service manager above the dealer by SMS and by e-mail,
/// whatever the routing plugin notified: the host's rule, once per ticket and channel.
async fn page_safety(
    conn: &mut AnyConnection,
    dealer_id: i64,
    ticket_id: i64,
    subject: &str,
) -> Result<()> {
    let dealer = network::unit_name(conn, dealer_id).await?;
    for channel in ["sms", "email"] {
        let message = outbox::Message {
            channel: channel.to_owned(),
            recipient: format!("role:{}", Position::RegionalServiceManager.as_str()),
            template: "safety-escalation".to_owned(),
            data: vec![
                ("ticket-id".to_owned(), ticket_id.to_string()),
                ("dealer".to_owned(), dealer.clone()),
                ("subject".to_owned(), subject.to_owned()),
            ],
            purpose: outbox::Purpose::Service,
        };
        let key = format!("ticket:{ticket_id}:safety:{channel}");
        outbox::enqueue(conn, dealer_id, &message, Some(&key)).await?;
    }
    Ok(())
}

/// A timeline entry to append: a status move by default, filled in by its builder methods.
struct NewEvent<'a> {
    kind: EventKind,
    at: i64,
    from: Option<TicketStatus>,
    to: TicketStatus,
    note: Option<&'a str>,
    owner_visible: bool,
    actor: Option<&'a Caller>,
    from_team: Option<&'a str>,
    to_team: Option<&'a str>,
    clock: Option<Clock>,
    escalation_level: Option<i64>,
}

impl<'a> NewEvent<'a> {
    fn new(kind: EventKind, at: i64, from: Option<TicketStatus>, to: TicketStatus) -> Self {
        NewEvent {
            kind,
            at,
            from,
            to,
            note: None,
            owner_visible: false,
            actor: None,
            from_team: None,
            to_team: None,
            clock: None,
            escalation_level: None,
        }
    }

    fn by(mut self, caller: &'a Caller) -> Self {
        self.actor = Some(caller);
        self
    }

    fn note(mut self, note: Option<&'a str>) -> Self {
        self.note = note;
        self
    }

    fn for_owner(mut self, visible: bool) -> Self {
        self.owner_visible = visible;
        self
    }

    fn teams(mut self, from: Option<&'a str>, to: Option<&'a str>) -> Self {
        self.from_team = from;
        self.to_team = to;
        self
    }

    fn breach(mut self, clock: Clock, level: i64) -> Self {
        self.clock = Some(clock);
        self.escalation_level = Some(level);
        self
    }

    async fn append(self, conn: &mut AnyConnection, ticket_id: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO ticket_events (ticket_id, kind, at, actor_key_id, actor_staff_id, from_status, \
             to_status, note, owner_visible, from_team, to_team, clock, escalation_level) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(ticket_id)
        .bind(self.kind.as_str())
        .bind(self.at)
        .bind(self.actor.map(|c| c.key_id))
        .bind(self.actor.and_then(|c| c.staff_id))
        .bind(self.from.map(TicketStatus::as_str))
        .bind(self.to.as_str())
        .bind(self.note)
        .bind(i64::from(self.owner_visible))
        .bind(self.from_team)
        .bind(self.to_team)
        .bind(self.clock.map(Clock::as_str))
        .bind(self.escalation_level)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// The dealer of ticket `id` if the caller can see it. A ticket outside the caller's scope is
/// reported as not found ([`Error::Denied`], audited by the API layer).
pub async fn dealer_of(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<i64> {
    crate::access::owning_dealer(conn, caller, crate::access::Record::Ticket, id).await
}

/// Ticket `id` with its timeline; one outside the caller's scope is not found
/// ([`Error::Denied`], audited by the API layer).
pub async fn get(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<Ticket> {
    dealer_of(conn, caller, id).await?;
    fetch(conn, caller, id).await
}

/// Ticket `id` within the caller's scope, silently (callers have checked with [`dealer_of`]).
async fn fetch(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<Ticket> {
    let row = fetch_row(conn, caller, id).await?;
    let mut tickets = with_events(conn, vec![row]).await?;
    Ok(tickets.remove(0))
}

async fn fetch_row(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<TicketRow> {
    let mut sql = Sql::new(&format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE id = "));
    sql.bind(Param::Int(id));
    caller.scope(&mut sql, "dealer_id");
    let row: Option<TicketRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_optional(&mut *conn)
        .await?;
    row.ok_or(Error::NotFound { entity: "ticket" })
}

/// The timelines of `ticket_ids`, each oldest first.
async fn load_events(
    conn: &mut AnyConnection,
    ticket_ids: &[i64],
) -> Result<HashMap<i64, Vec<TicketEvent>>> {
    let mut by_ticket: HashMap<i64, Vec<TicketEvent>> = HashMap::new();
    if ticket_ids.is_empty() {
        return Ok(by_ticket);
    }
    let mut sql = Sql::new(&format!(
        "SELECT {EVENT_COLUMNS} FROM ticket_events WHERE ticket_id"
    ));
    sql.push(" IN ")
        .push_list(ticket_ids.iter().copied().map(Param::Int));
    sql.push(" ORDER BY ticket_id, at, id");
    let rows: Vec<EventRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    for row in rows {
        by_ticket
            .entry(row.ticket_id)
            .or_default()
            .push(row.into_event()?);
    }
    Ok(by_ticket)
}

/// Turns rows into tickets, each with its timeline and survey, keeping their order.
async fn with_events(conn: &mut AnyConnection, rows: Vec<TicketRow>) -> Result<Vec<Ticket>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut events = load_events(conn, &ids).await?;
    let mut surveys = surveys::for_subjects(conn, surveys::SubjectKind::Ticket, &ids).await?;
    rows.into_iter()
        .map(|r| {
            let own = events.remove(&r.id).unwrap_or_default();
            let survey = surveys.remove(&r.id);
            r.into_ticket(own, survey)
        })
        .collect()
}

/// Tickets in the caller's scope matching `filter`, newest first, each with its timeline;
/// `limit + 1` at most (the extra row tells the caller there is a next page).
pub async fn list(
    conn: &mut AnyConnection,
    caller: &Caller,
    filter: &TicketFilter,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<Ticket>> {
    let mut sql = Sql::new(&format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE 1 = 1"));
    caller.scope(&mut sql, "dealer_id");
    if let Some(s) = filter.status {
        sql.push(" AND status = ")
            .bind(Param::Text(s.as_str().to_owned()));
    }
    if let Some(c) = filter.customer_id {
        sql.push(" AND customer_id = ").bind(Param::Int(c));
    }
    if let Some(p) = filter.priority {
        sql.push(" AND priority = ")
            .bind(Param::Text(p.as_str().to_owned()));
    }
    match filter.breached {
        Some(true) => {
            sql.push(
                " AND (first_contact_breached_at IS NOT NULL OR resolution_breached_at IS NOT NULL)",
            );
        }
        Some(false) => {
            sql.push(" AND first_contact_breached_at IS NULL AND resolution_breached_at IS NULL");
        }
        None => {}
    }
    if let Some(b) = before_id {
        sql.push(" AND id < ").bind(Param::Int(b));
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .bind(Param::Int(limit + 1));
    let rows: Vec<TicketRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    with_events(conn, rows).await
}

/// Every ticket of `customer_ids`, newest first, each with its full timeline, for the customer
/// 360 view. Not scoped: the caller has checked that it may see these customers.
pub async fn list_for_customers(
    conn: &mut AnyConnection,
    customer_ids: &[i64],
) -> Result<Vec<Ticket>> {
    if customer_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(&format!(
        "SELECT {TICKET_COLUMNS} FROM tickets WHERE customer_id"
    ));
    sql.push(" IN ")
        .push_list(customer_ids.iter().copied().map(Param::Int));
    sql.push(" ORDER BY id DESC");
    let rows: Vec<TicketRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    with_events(conn, rows).await
}

/// The field checks of a patch that need no database.
fn patch_errors(patch: &TicketPatch) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(s) = &patch.subject {
        text::required(&mut errors, "subject", s, SUBJECT_MAX);
    }
    if let Some(d) = &patch.description {
        check_description(&mut errors, d);
    }
    if let Some(Some(t)) = &patch.team {
        text::required(&mut errors, "team", t, TEAM_MAX);
    }
    if let Some(n) = &patch.note {
        text::required(&mut errors, "note", n, TEXT_MAX);
    }
    errors
}

/// Applies `patch` to ticket `id` if it is still at version `expected`, and returns the ticket
/// with the names of the fields that changed (never their values; `note` when a note was
/// added). A patch that changes nothing changes nothing, version included.
///
/// A change of team is a hand-off (see [`hand_off`]). Resolving records first-contact
/// resolution; closing sends the satisfaction survey.
///
/// A ticket outside the caller's scope is not found ([`Error::Denied`], audited by the API layer).
pub async fn update(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
    expected: i64,
    patch: &TicketPatch,
) -> Result<(Ticket, Vec<&'static str>)> {
    dealer_of(conn, caller, id).await?;
    let errors = patch_errors(patch);
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let current = fetch_row(conn, caller, id).await?;
    if current.version != expected {
        return Err(Error::StaleVersion {
            current: current.version,
        });
    }
    let from = current.status()?;
    let now = clock::now_ms();
    let mut changed = Vec::new();
    let mut sql = Sql::new("UPDATE tickets SET version = version + 1, updated_at = ");
    sql.bind(Param::Int(now));

    let new_team = patch
        .team
        .as_ref()
        .map(|team| team.as_deref().map(|t| t.trim().to_owned()))
        .filter(|team| *team != current.team);
    if let Some(team) = &new_team {
        sql.push(", team = ").bind(Param::OptText(team.clone()));
        sql.push(", handoff_count = handoff_count + 1");
        changed.push("team");
    }
    let moved_to = patch.status.filter(|to| *to != from);
    if let Some(to) = moved_to {
        from.check_move(to)?;
        sql.push(", status = ")
            .bind(Param::Text(to.as_str().to_owned()));
        if from == TicketStatus::Open {
            sql.push(", first_contact_at = COALESCE(first_contact_at, ")
                .bind(Param::Int(now))
                .push(")");
        }
        let first_contact_resolution = i64::from(
            from == TicketStatus::Open && current.handoff_count == 0 && new_team.is_none(),
        );
        match to {
            TicketStatus::Resolved => {
                sql.push(", resolved_at = ").bind(Param::Int(now));
                sql.push(", first_contact_resolution = COALESCE(first_contact_resolution, ")
                    .bind(Param::Int(first_contact_resolution))
                    .push(")");
            }
            TicketStatus::Closed => {
                sql.push(", closed_at = ").bind(Param::Int(now));
                sql.push(", resolved_at = COALESCE(resolved_at, ")
                    .bind(Param::Int(now))
                    .push(")");
                sql.push(", first_contact_resolution = COALESCE(first_contact_resolution, ")
                    .bind(Param::Int(first_contact_resolution))
                    .push(")");
            }
            TicketStatus::InProgress if from == TicketStatus::Resolved => {
                sql.push(", resolved_at = NULL, first_contact_resolution = 0");
            }
            TicketStatus::InProgress | TicketStatus::Open => {}
        }
        changed.push("status");
    }
    if let Some(p) = patch.priority.filter(|p| p.as_str() != current.priority) {
        sql.push(", priority = ")
            .bind(Param::Text(p.as_str().to_owned()));
        changed.push("priority");
    }
    if let Some(subject) = patch
        .subject
        .as_deref()
        .map(str::trim)
        .filter(|s| *s != current.subject)
    {
        sql.push(", subject = ")
            .bind(Param::Text(subject.to_owned()));
        changed.push("subject");
    }
    if let Some(description) = patch
        .description
        .as_deref()
        .filter(|d| *d != current.description)
    {
        sql.push(", description = ")
            .bind(Param::Text(description.to_owned()));
        changed.push("description");
    }
    let note = patch.note.as_deref().map(str::trim);
    if note.is_some() {
        changed.push("note");
    }
    if changed.is_empty() {
        return Ok((fetch(conn, caller, id).await?, changed));
    }

    sql.push(" WHERE id = ")
        .bind(Param::Int(id))
        .push(" AND version = ")
        .bind(Param::Int(expected));
    let updated = sqlx::query_with(sql.text(), sql.arguments())
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if updated == 0 {
        return Err(lost_race(conn, id).await?);
    }
    if let Some(team) = &new_team {
        NewEvent::new(EventKind::Handoff, now, Some(from), from)
            .by(caller)
            .teams(current.team.as_deref(), team.as_deref())
            .append(conn, id)
            .await?;
    }
    if moved_to.is_some() || note.is_some() {
        let to = moved_to.unwrap_or(from);
        NewEvent::new(EventKind::Status, now, Some(from), to)
            .by(caller)
            .note(note)
            .for_owner(patch.note_for_owner && note.is_some())
            .append(conn, id)
            .await?;
    }
    if moved_to == Some(TicketStatus::Closed) {
        surveys::send(
            conn,
            current.dealer_id,
            surveys::SubjectKind::Ticket,
            id,
            current.customer_id,
        )
        .await?;
    }
    let ticket = fetch(conn, caller, id).await?;
    audit::record(
        conn,
        caller,
        audit::Entry::ok("update", "ticket", id, ticket.dealer_id)
            .with_detail(serde_json::json!({ "changed": changed })),
    )
    .await?;
    Ok((ticket, changed))
}

/// The error for an update of ticket `id` that matched no row: someone else changed it first
/// (its version moved on) or it is gone.
async fn lost_race(conn: &mut AnyConnection, id: i64) -> Result<Error> {
    let now_at: Option<(i64,)> = sqlx::query_as("SELECT version FROM tickets WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match now_at {
        Some((current,)) => Error::StaleVersion { current },
        None => Error::NotFound { entity: "ticket" },
    })
}

/// Moves ticket `id` to the department `handoff.to_team`, recording on the timeline the team it
/// left, the one it went to and who moved it. A closed ticket is not handed off (409
/// `ticket_closed`); handing off to the current team is refused (422 `same_team`). The
/// deadlines stay as routed.
///
/// A ticket outside the caller's scope is not found ([`Error::Denied`], audited by the API layer).
pub async fn hand_off(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
    handoff: &Handoff,
) -> Result<Ticket> {
    dealer_of(conn, caller, id).await?;
    let mut errors = Vec::new();
    let to_team = text::required(&mut errors, "to_team", &handoff.to_team, TEAM_MAX);
    let note = handoff
        .note
        .as_deref()
        .and_then(|n| text::required(&mut errors, "note", n, TEXT_MAX));
    let current = fetch_row(conn, caller, id).await?;
    if to_team.is_some() && current.team == to_team {
        errors.push(FieldError::new(
            "to_team",
            "same_team",
            "the ticket is already with that team",
        ));
    }
    let Some(to_team) = to_team.filter(|_| errors.is_empty()) else {
        return Err(Error::Invalid(errors));
    };
    let status = current.status()?;
    if status == TicketStatus::Closed {
        return Err(Error::Conflict {
            code: "ticket_closed",
            message: "a closed ticket is not handed off".to_owned(),
        });
    }
    let now = clock::now_ms();
    let updated = sqlx::query(
        "UPDATE tickets SET team = $1, handoff_count = handoff_count + 1, version = version + 1, \
         updated_at = $2 WHERE id = $3 AND version = $4",
    )
    .bind(&to_team)
    .bind(now)
    .bind(id)
    .bind(current.version)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(lost_race(conn, id).await?);
    }
    NewEvent::new(EventKind::Handoff, now, Some(status), status)
        .by(caller)
        .note(note.as_deref())
        .teams(current.team.as_deref(), Some(&to_team))
        .append(conn, id)
        .await?;
    let ticket = fetch(conn, caller, id).await?;
    audit::record(
        conn,
        caller,
        audit::Entry::ok("handoff", "ticket", id, ticket.dealer_id)
            .with_detail(serde_json::json!({ "changed": ["team"] })),
    )
    .await?;
    Ok(ticket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use TicketStatus::*;

    fn allowed_after(from: TicketStatus, to: TicketStatus) -> Option<Vec<String>> {
        match from.check_move(to) {
            Ok(()) => None,
            Err(Error::InvalidTransition {
                from: f,
                to: t,
                allowed,
            }) => {
                assert_eq!((f.as_str(), t.as_str()), (from.as_str(), to.as_str()));
                Some(allowed)
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn allowed_moves_pass() {
        for (from, to) in [
            (Open, InProgress),
            (Open, Resolved),
            (Open, Closed),
            (InProgress, Resolved),
            (InProgress, Closed),
            (Resolved, Closed),
            (Resolved, InProgress),
        ] {
            assert!(
                from.check_move(to).is_ok(),
                "{from:?} -> {to:?} should be allowed"
            );
        }
    }

    #[test]
    fn nothing_moves_back_to_open() {
        for from in [InProgress, Resolved, Closed] {
            assert!(
                allowed_after(from, Open).is_some(),
                "{from:?} -> open should be refused"
            );
        }
    }

    #[test]
    fn in_progress_cannot_skip_back_or_stay_by_transition() {
        assert_eq!(
            allowed_after(InProgress, Open),
            Some(vec!["resolved".to_owned(), "closed".to_owned()])
        );
        assert!(allowed_after(InProgress, InProgress).is_some());
    }

    #[test]
    fn resolved_may_close_or_reopen() {
        assert_eq!(
            allowed_after(Resolved, Open),
            Some(vec!["closed".to_owned(), "in_progress".to_owned()])
        );
        assert!(allowed_after(Resolved, Resolved).is_some());
    }

    #[test]
    fn closed_is_final() {
        for to in TicketStatus::ALL {
            assert_eq!(
                allowed_after(Closed, to),
                Some(Vec::new()),
                "closed -> {to:?} should be refused"
            );
        }
    }

    #[test]
    fn open_lists_every_later_state() {
        assert_eq!(Open.next(), &[InProgress, Resolved, Closed]);
        assert!(allowed_after(Open, Open).is_some());
    }

    #[test]
    fn invalid_transition_names_the_allowed_states() {
        let err = Closed.check_move(InProgress).unwrap_err();
        assert_eq!(err.to_string(), "cannot go from closed to in_progress");
        assert!(
            matches!(&err, Error::InvalidTransition { from, to, .. } if from == "closed" && to == "in_progress"),
            "{err:?}"
        );
    }

    #[test]
    fn statuses_round_trip_through_text_and_json() {
        for s in TicketStatus::ALL {
            assert_eq!(TicketStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
            assert_eq!(
                serde_json::to_value(c).unwrap(),
                serde_json::json!(c.as_str())
            );
        }
        for p in Priority::ALL {
            assert_eq!(Priority::parse(p.as_str()), Some(p));
            assert_eq!(
                serde_json::to_value(p).unwrap(),
                serde_json::json!(p.as_str())
            );
        }
    }

    #[test]
    fn patch_tells_null_team_from_absent_team() {
        let cleared: TicketPatch =
            serde_json::from_value(serde_json::json!({ "team": null })).unwrap();
        assert_eq!(cleared.team, Some(None));
        let absent: TicketPatch =
            serde_json::from_value(serde_json::json!({ "priority": "high" })).unwrap();
        assert_eq!(absent.team, None);
        assert_eq!(absent.priority, Some(Priority::High));
        assert!(
            serde_json::from_value::<TicketPatch>(serde_json::json!({ "colour": "red" })).is_err()
        );
    }

    fn new_ticket(category: &str, subject: &str) -> NewTicket {
        serde_json::from_value(serde_json::json!({
            "customer_id": 1, "channel": "walk_in", "category": category, "subject": subject,
        }))
        .unwrap()
    }

    #[test]
    fn new_ticket_text_lengths_are_checked_in_characters() {
        assert!(
            field_errors(&new_ticket(
                &"投".repeat(CATEGORY_MAX),
                &"诉".repeat(SUBJECT_MAX)
            ))
            .is_empty()
        );
        let codes: Vec<(String, String)> =
            field_errors(&new_ticket("  ", &"x".repeat(SUBJECT_MAX + 1)))
                .into_iter()
                .map(|e| (e.field, e.code))
                .collect();
        assert_eq!(
            codes,
            vec![
                ("category".to_owned(), "required".to_owned()),
                ("subject".to_owned(), "too_long".to_owned())
            ]
        );
    }

    #[test]
    fn patch_checks_note_team_and_description() {
        let patch = TicketPatch {
            team: Some(Some(String::new())),
            note: Some("x".repeat(TEXT_MAX + 1)),
            description: Some("d".repeat(TEXT_MAX + 1)),
            ..TicketPatch::default()
        };
        let fields: Vec<String> = patch_errors(&patch).into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["description", "team", "note"]);
        assert!(
            patch_errors(&TicketPatch {
                team: Some(None),
                ..TicketPatch::default()
            })
            .is_empty()
        );
    }
}
