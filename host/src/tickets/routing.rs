//! Routing a new ticket through the dealer's `ticket-routing` hook: the input is the ticket with
//! its customer's tier and tags; the decision (priority, team, safety, SLA deadlines, reason,
//! notifications) is stored with the ticket by [`super::create`].
//!
//! The hook runs before the ticket is stored (never inside a write transaction), so the
//! ticket has no id yet: the input's `ticket-id` is 0, and the `ticket-id` entry of the
//! route's notifications is filled in with the stored id when they are enqueued.

use sqlx::AnyConnection;

use super::{Priority, ValidTicket};
use crate::access::Caller;
use crate::clock;
use crate::customers;
use crate::error::Result;
use crate::outbox;
use crate::plugins::bindings::types::Notification;
use crate::plugins::dispatch::{DecisionSource, Plugins};
use crate::plugins::hooks::{TicketRoutingHook, ticket_routing};
use crate::plugins::runs::Source;

/// `decided_by` of a ticket routed by the host's built-in rule.
pub const BUILT_IN: &str = "built-in";

/// The route a ticket is given, with who decided it.
#[derive(Debug, Clone)]
pub struct Routed {
    /// When the ticket was opened (the SLA deadlines count from it).
    pub opened_at: i64,
    pub priority: Priority,
    pub team: String,
    pub safety: bool,
    pub first_contact_due: i64,
    pub resolution_due: i64,
    pub reason: String,
    /// The deciding plugin and its version; `None` for the built-in rule.
    pub plugin: Option<String>,
    pub plugin_version: Option<String>,
    pub run_id: Option<i64>,
    /// The route's notifications, then those the plugin asked for through the host API.
    notifications: Vec<Notification>,
}

impl Routed {
    /// The notifications as outbox messages for the stored ticket `ticket_id`.
    pub fn messages(&self, ticket_id: i64) -> Vec<outbox::Message> {
        self.notifications
            .iter()
            .map(|n| {
                let mut message = outbox::Message::from(n);
                for (key, value) in &mut message.data {
                    if key == "ticket-id" {
                        *value = ticket_id.to_string();
                    }
                }
                message
            })
            .collect()
    }
}

fn priority(p: ticket_routing::Priority) -> Priority {
    match p {
        ticket_routing::Priority::Low => Priority::Low,
        ticket_routing::Priority::Normal => Priority::Normal,
        ticket_routing::Priority::High => Priority::High,
        ticket_routing::Priority::Urgent => Priority::Urgent,
    }
}

/// The hook's input for a checked ticket, opened now, read on `conn` (the customer's tier and
/// tags), for [`route`] once `conn` is given back.
pub async fn input(
    conn: &mut AnyConnection,
    caller: &Caller,
    valid: &ValidTicket<'_>,
) -> Result<ticket_routing::Ticket> {
    let new = valid.new;
    let customer = customers::get(conn, caller, new.customer_id).await?;
    Ok(ticket_routing::Ticket {
        ticket_id: 0,
        dealer_id: valid.dealer_id,
        channel: new.channel.as_str().replace('_', "-"),
        category: new.category.trim().to_owned(),
        subject: new.subject.trim().to_owned(),
        description: new.description.clone().unwrap_or_default(),
        customer_id: new.customer_id,
        customer_tier: Some(customer.member_tier),
        customer_tags: customer.tags,
        vehicle_id: new.vehicle_id,
        opened_at: clock::now_ms(),
    })
}

/// Routes a ticket with the dealer's hook. Call it holding no connection and outside any
/// transaction: the run is recorded on a connection of its own, and the plugin's look-ups
/// take others.
pub async fn route(plugins: &Plugins, input: ticket_routing::Ticket) -> Result<Routed> {
    let opened_at = input.opened_at;
    let decision = plugins
        .call::<TicketRoutingHook>(input.dealer_id, input, Source::Live)
        .await?;
    let (plugin, plugin_version) = match decision.source {
        DecisionSource::Plugin {
            plugin, version, ..
        } => (Some(plugin), Some(version)),
        DecisionSource::Default { .. } => (None, None),
    };
    let route = decision.output;
    let mut notifications = route.notifications;
    notifications.extend(decision.effects.notifications);
    Ok(Routed {
        opened_at,
        priority: priority(route.priority),
        team: route.team.trim().to_owned(),
        safety: route.safety,
        first_contact_due: route.first_contact_due,
        resolution_due: route.resolution_due,
        reason: route.reason,
        plugin,
        plugin_version,
        run_id: decision.run_id,
        notifications,
    })
}
