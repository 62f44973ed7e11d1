//! The seven extension points as the runtime calls them: each one's typed call, the checks the
//! host applies to a decision before acting on it, and the built-in default a dealer without
//! a plugin gets.
//!
//! A hook is called with the newest WIT version's Rust types, whichever version the component
//! exports ([`prepare`] finds its export by the version it targets): the component model checks
//! them by structure, and every version declares the interfaces of the ones before it
//! unchanged (see [`crate::bindings`]).

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, ComponentType, InstancePre, Lift, Lower};

use crate::Hook;
use crate::bindings;
use crate::host_api::{HostState, check_notification};

pub use bindings::approval::exports::dealer::platform::approval_hook as approval;
pub use bindings::channel::exports::dealer::platform::channel_hook as channel;
pub use bindings::commission::exports::dealer::platform::commission_hook as commission;
pub use bindings::integration::exports::dealer::platform::integration_hook as integration;
pub use bindings::loyalty::exports::dealer::platform::loyalty_hook as loyalty;
pub use bindings::reminders::exports::dealer::platform::reminders_hook as reminders;
pub use bindings::ticket_routing::exports::dealer::platform::ticket_routing_hook as ticket_routing;

/// Longest reason, message, title or team name a decision may carry, in bytes.
const MAX_TEXT: usize = 2000;
/// Longest error message of a plugin that refused to decide, in bytes.
pub const MAX_ERROR: usize = 4000;

/// A text field of a decision: at most [`MAX_TEXT`] bytes.
fn text(what: &str, value: &str) -> Result<(), String> {
    if value.len() > MAX_TEXT {
        return Err(format!(
            "{what} is {} bytes; at most {MAX_TEXT}",
            value.len()
        ));
    }
    Ok(())
}

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const MAX_LINES: usize = 1000;

/// One extension point as the runtime calls it.
pub trait HookSpec: 'static {
    const HOOK: Hook;
    type Input: Serialize
        + DeserializeOwned
        + Clone
        + Send
        + Sync
        + std::fmt::Debug
        + ComponentType
        + Lower;
    type Output: Serialize + DeserializeOwned + Clone + Send + Sync + std::fmt::Debug;
    /// What the hook interface's function returns.
    type Returned: ComponentType + Lift + Send + Sync + 'static;

    /// The decision in what the plugin returned, or the plugin's own error.
    fn output(returned: Self::Returned) -> Result<Self::Output, String>;

    /// Checks a decision the host is about to act on, field by field (every count and length is
    /// bounded, so a decision is small); an `Err` makes the run `invalid_output`.
    fn check(input: &Self::Input, output: &Self::Output) -> Result<(), String>;

    /// The built-in decision, used when no plugin is enabled or the plugin failed and the
    /// dealer's policy is to fall back.
    fn default(input: &Self::Input) -> Self::Output;
}

/// A component pre-instantiated against the linker, with the index of its hook function.
pub struct Prepared {
    instance: InstancePre<HostState>,
    function: ComponentExportIndex,
}

/// Finds the function of `hook`'s interface at `version` (the one the component exports).
pub(crate) fn prepare(
    hook: Hook,
    version: &semver::Version,
    instance: InstancePre<HostState>,
) -> wasmtime::Result<Prepared> {
    let name = format!("{}@{version}", hook.export_interface());
    let component = instance.component();
    let interface = component
        .get_export_index(None, &name)
        .ok_or_else(|| wasmtime::format_err!("no exported instance named `{name}`"))?;
    let function = component
        .get_export_index(Some(&interface), hook.function())
        .ok_or_else(|| wasmtime::format_err!("`{name}` does not export `{}`", hook.function()))?;
    Ok(Prepared { instance, function })
}

/// Calls hook `H` of a fresh instance of `prepared` on `input`; the component model checks the
/// export's type against `H`'s before the call.
pub(crate) fn call<H: HookSpec>(
    prepared: &Prepared,
    store: &mut Store<HostState>,
    input: &H::Input,
) -> wasmtime::Result<Result<H::Output, String>> {
    let instance = prepared.instance.instantiate(&mut *store)?;
    let function =
        instance.get_typed_func::<(&H::Input,), (H::Returned,)>(&mut *store, &prepared.function)?;
    let (returned,) = function.call(&mut *store, (input,))?;
    Ok(H::output(returned))
}

pub struct CommissionHook;

impl HookSpec for CommissionHook {
    const HOOK: Hook = Hook::Commission;
    type Input = commission::Sale;
    type Output = Vec<commission::CommissionLine>;
    type Returned = Result<Self::Output, String>;

    fn output(returned: Self::Returned) -> Result<Self::Output, String> {
        returned
    }

    fn check(sale: &Self::Input, lines: &Self::Output) -> Result<(), String> {
        if lines.len() > MAX_LINES {
            return Err(format!(
                "{} commission lines; at most {MAX_LINES}",
                lines.len()
            ));
        }
        let mut total: i64 = 0;
        for line in lines {
            if !sale.staff.iter().any(|s| s.member.id == line.staff_id) {
                return Err(format!(
                    "staff member {} is not credited with this sale",
                    line.staff_id
                ));
            }
            if line.amount < 0 {
                return Err(format!(
                    "a negative commission of {} fen for staff member {}",
                    line.amount, line.staff_id
                ));
            }
            text("a commission line's reason", &line.reason)?;
            total = total.saturating_add(line.amount);
        }
        if total > sale.final_price.max(0) {
            return Err(format!(
                "commission of {total} fen exceeds the sale's final price of {} fen",
                sale.final_price
            ));
        }
        Ok(())
    }

    /// 1% of the final price, shared equally by the staff credited with the sale.
    fn default(sale: &Self::Input) -> Self::Output {
        let Ok(count) = i64::try_from(sale.staff.len()) else {
            return Vec::new();
        };
        if count == 0 {
            return Vec::new();
        }
        let pool = sale.final_price.max(0) / 100;
        let share = pool / count;
        let mut remainder = pool - share * count;
        sale.staff
            .iter()
            .map(|s| {
                let extra = i64::from(remainder > 0);
                remainder -= extra;
                commission::CommissionLine {
                    staff_id: s.member.id,
                    amount: share + extra,
                    reason: "built-in: 1% of the final price, shared equally".into(),
                }
            })
            .collect()
    }
}

pub struct ApprovalHook;

impl HookSpec for ApprovalHook {
    const HOOK: Hook = Hook::Approval;
    type Input = approval::Request;
    type Output = approval::Decision;
    type Returned = Result<Self::Output, String>;

    fn output(returned: Self::Returned) -> Result<Self::Output, String> {
        returned
    }

    fn check(_request: &Self::Input, decision: &Self::Output) -> Result<(), String> {
        if let approval::Decision::Steps(steps) = decision {
            if steps.is_empty() {
                return Err("`steps` with no step; use `auto-approve` instead".into());
            }
            if steps.len() > 10 {
                return Err(format!("{} approval steps; at most 10", steps.len()));
            }
            if let Some(step) = steps.iter().find(|s| !is_role(&s.role)) {
                return Err(format!("`{}` is not a role name", step.role));
            }
            steps
                .iter()
                .try_for_each(|s| text("a step's reason", &s.reason))?;
        }
        match decision {
            approval::Decision::AutoApprove(reason) | approval::Decision::Reject(reason) => {
                text("the reason", reason)
            }
            approval::Decision::Steps(_) => Ok(()),
        }
    }

    /// Discounts up to 3% of the base pass, up to 8% need the sales manager, beyond that the
    /// general manager too; finance plans go to the finance desk; extra repair work needs the
    /// owner's consent; refunds need the general manager.
    fn default(request: &Self::Input) -> Self::Output {
        use approval::{Decision, RequestKind, Step};
        let step = |role: &str, reason: &str| Step {
            role: role.into(),
            reason: reason.into(),
        };
        match request.kind {
            RequestKind::Discount => {
                let base = request.base_amount.max(1);
                let basis_points = request.amount.saturating_mul(10_000) / base;
                if basis_points <= 300 {
                    Decision::AutoApprove("built-in: a discount of at most 3% passes".into())
                } else if basis_points <= 800 {
                    Decision::Steps(vec![step(
                        "sales-manager",
                        "built-in: a discount above 3% needs the sales manager",
                    )])
                } else {
                    Decision::Steps(vec![
                        step("sales-manager", "built-in: a discount above 3%"),
                        step(
                            "general-manager",
                            "built-in: a discount above 8% needs the general manager",
                        ),
                    ])
                }
            }
            RequestKind::FinancePlan => Decision::Steps(vec![step(
                "finance-desk",
                "built-in: every finance plan is checked by the finance desk",
            )]),
            RequestKind::ExtraRepairWork => Decision::Steps(vec![step(
                "owner",
                "built-in: extra work needs the owner's consent",
            )]),
            RequestKind::Refund => Decision::Steps(vec![step(
                "general-manager",
                "built-in: refunds need the general manager",
            )]),
        }
    }
}

fn is_role(role: &str) -> bool {
    !role.is_empty()
        && role.len() <= 64
        && role
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

pub struct LoyaltyHook;

impl HookSpec for LoyaltyHook {
    const HOOK: Hook = Hook::Loyalty;
    type Input = loyalty::Event;
    type Output = loyalty::Award;
    type Returned = Result<Self::Output, String>;

    fn output(returned: Self::Returned) -> Result<Self::Output, String> {
        returned
    }

    fn check(event: &Self::Input, award: &Self::Output) -> Result<(), String> {
        if award.changes.len() > 100 {
            return Err(format!(
                "{} point changes; at most 100",
                award.changes.len()
            ));
        }
        let mut balance = event.points_balance;
        for change in &award.changes {
            if change.points.abs() > 100_000_000 {
                return Err(format!(
                    "{} points in one change is implausible",
                    change.points
                ));
            }
            balance = balance.saturating_add(change.points);
            if balance < 0 {
                return Err("the changes would make the points balance negative".into());
            }
            if matches!(change.expires_at, Some(at) if at <= event.occurred_at) {
                return Err("points that expire before they are earned".into());
            }
            text("a points change's reason", &change.reason)?;
        }
        if matches!(&award.new_tier, Some(tier) if tier.trim().is_empty() || tier.trim().chars().count() > 32)
        {
            return Err("a tier name is 1 to 32 characters".into());
        }
        Ok(())
    }

    /// One point per yuan spent; 500 for a referral, 50 for a survey answer, 100 on a
    /// birthday; no tier changes.
    fn default(event: &Self::Input) -> Self::Output {
        use loyalty::{Award, EventKind, PointsChange};
        let (points, reason) = match event.kind {
            EventKind::Spend | EventKind::VehicleDelivered => (
                event.amount.max(0) / 100,
                "built-in: 1 point per yuan spent",
            ),
            EventKind::Referral => (500, "built-in: 500 points for a referral"),
            EventKind::SurveyAnswered => (50, "built-in: 50 points for a survey answer"),
            EventKind::Birthday => (100, "built-in: 100 birthday points"),
            EventKind::PartnerActivity => (0, ""),
        };
        Award {
            changes: if points > 0 {
                vec![PointsChange {
                    points,
                    reason: reason.into(),
                    expires_at: None,
                }]
            } else {
                Vec::new()
            },
            new_tier: None,
        }
    }
}

pub struct TicketRoutingHook;

impl HookSpec for TicketRoutingHook {
    const HOOK: Hook = Hook::TicketRouting;
    type Input = ticket_routing::Ticket;
    type Output = ticket_routing::Route;
    type Returned = Result<Self::Output, String>;

    fn output(returned: Self::Returned) -> Result<Self::Output, String> {
        returned
    }

    fn check(ticket: &Self::Input, route: &Self::Output) -> Result<(), String> {
        if route.team.trim().is_empty() || route.team.len() > 64 {
            return Err("a team name is 1 to 64 bytes".into());
        }
        if route.first_contact_due < ticket.opened_at {
            return Err("the first-contact deadline is before the ticket was opened".into());
        }
        if route.resolution_due < route.first_contact_due {
            return Err("the resolution deadline is before the first-contact deadline".into());
        }
        if route.notifications.len() > 100 {
            return Err(format!(
                "{} notifications; at most 100",
                route.notifications.len()
            ));
        }
        text("the routing reason", &route.reason)?;
        route.notifications.iter().try_for_each(check_notification)
    }

    /// Normal priority to the service team: first contact within 4 hours, resolution within
    /// 3 days; a ticket filed under the `safety` category is urgent, with first contact within
    /// 30 minutes.
    fn default(ticket: &Self::Input) -> Self::Output {
        use ticket_routing::{Priority, Route};
        if ticket.category == "safety" {
            Route {
                priority: Priority::Urgent,
                team: "safety".into(),
                safety: true,
                first_contact_due: ticket.opened_at + 30 * MINUTE_MS,
                resolution_due: ticket.opened_at + 24 * HOUR_MS,
                notifications: Vec::new(),
                reason: "built-in: the safety category is urgent".into(),
            }
        } else {
            Route {
                priority: Priority::Normal,
                team: "service".into(),
                safety: false,
                first_contact_due: ticket.opened_at + 4 * HOUR_MS,
                resolution_due: ticket.opened_at + 72 * HOUR_MS,
                notifications: Vec::new(),
                reason: "built-in: normal priority".into(),
            }
        }
    }
}

pub struct RemindersHook;

impl HookSpec for RemindersHook {
    const HOOK: Hook = Hook::Reminders;
    type Input = reminders::History;
    type Output = Vec<reminders::Reminder>;
    type Returned = Result<Self::Output, String>;

    fn output(returned: Self::Returned) -> Result<Self::Output, String> {
        returned
    }

    fn check(_history: &Self::Input, reminders: &Self::Output) -> Result<(), String> {
        if reminders.len() > 50 {
            return Err(format!("{} reminders; at most 50", reminders.len()));
        }
        for reminder in reminders {
            if chrono::NaiveDate::parse_from_str(&reminder.due, "%Y-%m-%d").is_err() {
                return Err(format!("`{}` is not a YYYY-MM-DD date", reminder.due));
            }
            if reminder.dedupe_key.trim().is_empty() || reminder.dedupe_key.len() > 128 {
                return Err("a dedupe key is 1 to 128 bytes".into());
            }
            if !crate::host_api::CHANNELS.contains(&reminder.channel.as_str()) {
                return Err(format!("unknown channel `{}`", reminder.channel));
            }
            text("a reminder's message", &reminder.message)?;
        }
        Ok(())
    }

    /// Maintenance 6 months after the last visit (or purchase), or sooner when the car's daily
    /// mileage reaches 5,000 km since that visit first; an insurance renewal task for the
    /// advisor 30 days before expiry.
    fn default(history: &Self::Input) -> Self::Output {
        use reminders::{Audience, Reminder, ReminderKind};
        let parse = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
        let mut out = Vec::new();
        let vehicle = &history.vehicle;
        let last_visit = history
            .visits
            .iter()
            .filter_map(|v| Some((parse(&v.date)?, v.mileage_km)))
            .max_by_key(|(date, _)| *date);
        let since = last_visit.or_else(|| {
            vehicle
                .purchase_date
                .as_deref()
                .and_then(parse)
                .map(|d| (d, Some(0)))
        });
        if let Some((since_date, since_km)) = since {
            let by_time = since_date
                .checked_add_months(chrono::Months::new(6))
                .unwrap_or(since_date);
            let by_distance = match (vehicle.daily_km_tenths, vehicle.mileage_km, since_km) {
                (Some(tenths), Some(now_km), Some(then_km)) if tenths > 0 => {
                    let left_km = (5_000 - (now_km - then_km)).max(0);
                    parse(&history.today)
                        .map(|today| today + chrono::Days::new((left_km * 10 / tenths) as u64))
                }
                _ => None,
            };
            let due = by_distance.map_or(by_time, |d| d.min(by_time));
            out.push(Reminder {
                kind: ReminderKind::Maintenance,
                due: due.to_string(),
                audience: Audience::Owner,
                channel: "sms".into(),
                message: "built-in: maintenance every 5,000 km or 6 months".into(),
                dedupe_key: format!("maintenance:{}:{}", vehicle.id, since_date),
            });
        }
        if let Some(expiry) = vehicle.insurance_expiry.as_deref().and_then(parse) {
            out.push(Reminder {
                kind: ReminderKind::InsuranceRenewal,
                due: (expiry - chrono::Days::new(30)).to_string(),
                audience: Audience::Advisor,
                channel: "task".into(),
                message: "built-in: insurance renewal 30 days before expiry".into(),
                dedupe_key: format!("insurance:{}:{}", vehicle.id, expiry),
            });
        }
        out
    }
}

pub struct IntegrationHook;

impl HookSpec for IntegrationHook {
    const HOOK: Hook = Hook::Integration;
    type Input = integration::Event;
    type Output = Vec<integration::Action>;
    type Returned = Result<Self::Output, String>;

    fn output(returned: Self::Returned) -> Result<Self::Output, String> {
        returned
    }

    fn check(event: &Self::Input, actions: &Self::Output) -> Result<(), String> {
        use integration::Action;
        if actions.len() > 100 {
            return Err(format!("{} actions; at most 100", actions.len()));
        }
        for action in actions {
            match action {
                Action::Notify(n) => check_notification(n)?,
                Action::AwardPoints(grant) if Some(grant.customer_id) != event.customer_id => {
                    return Err(format!(
                        "points for customer {}, who is not the event's customer",
                        grant.customer_id
                    ));
                }
                Action::CreateTask(task) if !is_role(&task.assignee_role) => {
                    return Err(format!("`{}` is not a role name", task.assignee_role));
                }
                Action::CreateTask(task) => text("a task's title", &task.title)?,
                Action::AwardPoints(grant) => text("a points grant's reason", &grant.reason)?,
                Action::RecordReference(reference) => {
                    text("a reference's key", &reference.key)?;
                    text("a reference's value", &reference.value)?;
                }
                Action::Settle(_) => {}
            }
        }
        Ok(())
    }

    /// No partner is connected unless a dealer enables one: nothing to do.
    fn default(_event: &Self::Input) -> Self::Output {
        Vec::new()
    }
}

/// Channel (since 0.2.0): a message the host delivers becomes a provider's delivery. A
/// provider's refusal is a decision, not a failed run: the output says whether it is worth
/// retrying.
pub struct ChannelHook;

/// Addresses one message may go to: a provider's batch (Alibaba Cloud takes 1000 numbers).
const MAX_ADDRESSES: usize = 1000;

impl HookSpec for ChannelHook {
    const HOOK: Hook = Hook::Channel;
    type Input = channel::Message;
    /// The provider's answer per address, in the order of the message's `to`, or why it
    /// was not sent.
    type Output = Result<Vec<channel::Receipt>, channel::Failure>;
    type Returned = Self::Output;

    fn output(returned: Self::Returned) -> Result<Self::Output, String> {
        Ok(returned)
    }

    fn check(message: &Self::Input, sent: &Self::Output) -> Result<(), String> {
        let receipts = match sent {
            Ok(receipts) => receipts,
            Err(failure) => return text("the failure's message", &failure.message),
        };
        if receipts.len() != message.to.len() || receipts.len() > MAX_ADDRESSES {
            return Err(format!(
                "{} receipts for {} addresses; one per address",
                receipts.len(),
                message.to.len()
            ));
        }
        for (i, (receipt, address)) in receipts.iter().zip(&message.to).enumerate() {
            // The error names positions, never the addresses (personal data).
            if receipt.address != *address {
                return Err(format!("receipt {i} is not for the message's address {i}"));
            }
            text("a receipt's answer", &receipt.answer)?;
        }
        Ok(())
    }

    /// Not sent: the host has no channel of its own, so a message whose dealer has no
    /// channel plugin fails (and is not worth retrying).
    fn default(_message: &Self::Input) -> Self::Output {
        Err(channel::Failure {
            retryable: false,
            message: "built-in: no channel plugin is enabled for this dealer".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::channel::{Failure, Message, Purpose, Receipt};
    use super::{ChannelHook, HookSpec};

    fn message(to: &[&str]) -> Message {
        Message {
            channel: "sms".into(),
            to: to.iter().map(|a| (*a).to_owned()).collect(),
            template: "maintenance-due".into(),
            params: Vec::new(),
            purpose: Purpose::Marketing,
        }
    }

    fn receipt(address: &str) -> Receipt {
        Receipt {
            address: address.into(),
            answer: "biz-1".into(),
        }
    }

    #[test]
    fn a_channel_answers_one_receipt_per_address_in_order_or_a_short_failure() {
        let sent = message(&["13800000000", "13900000001"]);
        let ok = Ok(vec![receipt("13800000000"), receipt("13900000001")]);
        assert_eq!(ChannelHook::check(&sent, &ok), Ok(()));
        let short = Ok(vec![receipt("13800000000")]);
        assert!(ChannelHook::check(&sent, &short).is_err());
        let swapped = Ok(vec![receipt("13900000001"), receipt("13800000000")]);
        let error = ChannelHook::check(&sent, &swapped).expect_err("out of order");
        assert!(!error.contains("1380"), "no address in the error: {error}");
        let long = Err(Failure {
            retryable: true,
            message: "x".repeat(5000),
        });
        assert!(ChannelHook::check(&sent, &long).is_err());
        let default = ChannelHook::default(&sent);
        assert!(matches!(&default, Err(failure) if !failure.retryable));
        assert_eq!(ChannelHook::check(&sent, &default), Ok(()));
    }
}
