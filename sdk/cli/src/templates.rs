//! The plugin `new` writes for each hook: `src/lib.rs`, `config.schema.json` and
//! `fixtures/example.json`, whose input and expected output are built from the host's own
//! types, so they are in the host's JSON format.

use dealer_plugin_runtime::Hook;
use dealer_plugin_runtime::bindings::types::{OrderLine, StaffMember, Vehicle};
use dealer_plugin_runtime::hooks::{
    approval, channel, commission, integration, loyalty, reminders, ticket_routing,
};
use serde_json::{Value, json};

/// What `new` writes for one hook.
pub struct Template {
    pub lib: &'static str,
    pub schema: Value,
    pub fixture: Value,
}

/// The clock of every fixture: 2025-11-23 12:13:20 UTC, in ms.
const AT: i64 = 1_763_900_000_000;
const MINUTE: i64 = 60_000;

/// The template of `hook`.
pub fn template(hook: Hook) -> Template {
    match hook {
        Hook::Commission => commission_template(),
        Hook::Approval => approval_template(),
        Hook::Loyalty => loyalty_template(),
        Hook::TicketRouting => ticket_routing_template(),
        Hook::Integration => integration_template(),
        Hook::Reminders => reminders_template(),
        Hook::Channel => channel_template(),
    }
}

fn fixture(config: Value, input: impl serde::Serialize, expect: impl serde::Serialize) -> Value {
    json!({"config": config, "input": input, "expect": expect})
}

fn schema(key: &str, field: Value) -> Value {
    json!({"fields": {key: field}})
}

const COMMISSION_LIB: &str = r#"//! Commission: `percent` per cent of the final price (1 by default) to each staff member
//! credited with the sale.
//!
//! The decision is the pure function [`compute`]; the exported hook only reads the dealer's
//! configuration.

use dealer_sdk::commission::{CommissionLine, Guest, Sale};
use dealer_sdk::{config, money};

/// The share when the dealer's configuration has no `percent`.
pub const DEFAULT_PERCENT: i64 = 1;

/// One line per staff member: `percent` per cent of the final price, rounded half up.
pub fn compute(sale: &Sale, percent: i64) -> Vec<CommissionLine> {
    sale.staff
        .iter()
        .map(|credited| CommissionLine {
            staff_id: credited.member.id,
            amount: money::percent(sale.final_price.max(0), percent),
            reason: format!("{percent}% of the final price"),
        })
        .collect()
}

struct Plugin;

impl Guest for Plugin {
    fn compute(sale: Sale) -> Result<Vec<CommissionLine>, String> {
        let percent: i64 = config::get("percent")?.unwrap_or(DEFAULT_PERCENT);
        Ok(compute(&sale, percent))
    }
}

dealer_sdk::export_commission!(Plugin);
"#;

fn commission_template() -> Template {
    let percent = 1;
    let sale = commission::Sale {
        order_id: 1001,
        dealer_id: 1,
        customer_id: 42,
        model: "汉 EV".to_owned(),
        delivered_at: AT,
        list_price: 20_980_000,
        discount: 1_000_000,
        final_price: 19_980_000,
        gross_profit: 1_200_000,
        lines: vec![OrderLine {
            kind: "vehicle".to_owned(),
            description: "汉 EV 610km".to_owned(),
            amount: 19_980_000,
            cost: 18_780_000,
        }],
        staff: [(7, "sales", 12), (8, "finance", 0)]
            .map(|(id, role, units_this_month)| commission::SaleStaff {
                member: StaffMember {
                    id,
                    role: role.to_owned(),
                },
                units_this_month,
            })
            .to_vec(),
    };
    let expect: Vec<commission::CommissionLine> = sale
        .staff
        .iter()
        .map(|credited| commission::CommissionLine {
            staff_id: credited.member.id,
            amount: (sale.final_price * percent + 50) / 100,
            reason: format!("{percent}% of the final price"),
        })
        .collect();
    Template {
        lib: COMMISSION_LIB,
        schema: schema(
            "percent",
            json!({"type": "integer", "min": 0, "max": 10,
                "description": "Per cent of the final price each staff member credited with the sale gets; default 1."}),
        ),
        fixture: fixture(json!({"percent": percent}), sale, expect),
    }
}

const APPROVAL_LIB: &str = r#"//! Approval: a request up to `auto_limit_fen` (¥5,000 by default) is approved automatically;
//! a larger one goes to the sales manager.
//!
//! The decision is the pure function [`decide`]; the exported hook only reads the dealer's
//! configuration.

use dealer_sdk::approval::{Decision, Guest, Request, Step};
use dealer_sdk::config;

/// The automatic limit when the dealer's configuration has no `auto_limit_fen`.
pub const DEFAULT_AUTO_LIMIT_FEN: i64 = 500_000;

/// Approves `request` automatically up to `auto_limit_fen`, else asks the sales manager.
pub fn decide(request: &Request, auto_limit_fen: i64) -> Decision {
    if request.amount <= auto_limit_fen {
        Decision::AutoApprove(format!(
            "{} fen is within the automatic limit of {auto_limit_fen} fen",
            request.amount
        ))
    } else {
        Decision::Steps(vec![Step {
            role: "sales-manager".to_owned(),
            reason: format!(
                "{} fen is above the automatic limit of {auto_limit_fen} fen",
                request.amount
            ),
        }])
    }
}

struct Plugin;

impl Guest for Plugin {
    fn decide(request: Request) -> Result<Decision, String> {
        let limit: i64 = config::get("auto_limit_fen")?.unwrap_or(DEFAULT_AUTO_LIMIT_FEN);
        Ok(decide(&request, limit))
    }
}

dealer_sdk::export_approval!(Plugin);
"#;

fn approval_template() -> Template {
    let limit = 500_000;
    let request = approval::Request {
        kind: approval::RequestKind::Discount,
        dealer_id: 1,
        requested_by: StaffMember {
            id: 7,
            role: "sales".to_owned(),
        },
        customer_id: Some(42),
        order_id: Some(1001),
        repair_order_id: None,
        amount: 800_000,
        base_amount: 20_980_000,
        description: "Year-end discount".to_owned(),
        attributes: Vec::new(),
    };
    let expect = approval::Decision::Steps(vec![approval::Step {
        role: "sales-manager".to_owned(),
        reason: format!(
            "{} fen is above the automatic limit of {limit} fen",
            request.amount
        ),
    }]);
    Template {
        lib: APPROVAL_LIB,
        schema: schema(
            "auto_limit_fen",
            json!({"type": "money", "min": 0,
                "description": "Requests up to this amount (fen) are approved automatically, larger ones go to the sales manager; default 500000 (¥5,000)."}),
        ),
        fixture: fixture(json!({"auto_limit_fen": limit}), request, expect),
    }
}

const LOYALTY_LIB: &str = r#"//! Loyalty: `points_per_yuan` points (1 by default) per whole yuan of a spend event; other
//! events earn nothing.
//!
//! The decision is the pure function [`award`]; the exported hook only reads the dealer's
//! configuration.

use dealer_sdk::config;
use dealer_sdk::loyalty::{Award, Event, EventKind, Guest, PointsChange};

/// The rate when the dealer's configuration has no `points_per_yuan`.
pub const DEFAULT_POINTS_PER_YUAN: i64 = 1;

/// Points for a spend event: whole yuan times `points_per_yuan`.
pub fn award(event: &Event, points_per_yuan: i64) -> Award {
    let points = event.amount.max(0) / 100 * points_per_yuan;
    let changes = if event.kind == EventKind::Spend && points > 0 {
        vec![PointsChange {
            points,
            reason: format!("{points_per_yuan} point(s) per yuan spent"),
            expires_at: None,
        }]
    } else {
        Vec::new()
    };
    Award {
        changes,
        new_tier: None,
    }
}

struct Plugin;

impl Guest for Plugin {
    fn award_points(event: Event) -> Result<Award, String> {
        let rate: i64 = config::get("points_per_yuan")?.unwrap_or(DEFAULT_POINTS_PER_YUAN);
        Ok(award(&event, rate))
    }
}

dealer_sdk::export_loyalty!(Plugin);
"#;

fn loyalty_template() -> Template {
    let rate = 2;
    let event = loyalty::Event {
        kind: loyalty::EventKind::Spend,
        dealer_id: 1,
        customer_id: 42,
        occurred_at: AT,
        amount: 1_234_567,
        reference: "repair-order 5001".to_owned(),
        tier: Some("金卡".to_owned()),
        points_balance: 800,
        lifetime_spend: 8_000_000,
        attributes: Vec::new(),
    };
    let expect = loyalty::Award {
        changes: vec![loyalty::PointsChange {
            points: event.amount / 100 * rate,
            reason: format!("{rate} point(s) per yuan spent"),
            expires_at: None,
        }],
        new_tier: None,
    };
    Template {
        lib: LOYALTY_LIB,
        schema: schema(
            "points_per_yuan",
            json!({"type": "integer", "min": 0, "max": 100,
                "description": "Points per whole yuan of a spend event; default 1."}),
        ),
        fixture: fixture(json!({"points_per_yuan": rate}), event, expect),
    }
}

const TICKET_ROUTING_LIB: &str = r#"//! Ticket routing: a ticket whose subject or description contains one of `urgent_words`
//! (ignoring case) is urgent for the safety team, first contact within 30 minutes; any other
//! goes to the service team with normal priority, first contact within 4 hours. Resolution
//! within 3 days.
//!
//! The decision is the pure function [`route`]; the exported hook only reads the dealer's
//! configuration.

use dealer_sdk::config;
use dealer_sdk::dates::MINUTE;
use dealer_sdk::ticket_routing::{Guest, Priority, Route, Ticket};

/// The urgent words when the dealer's configuration has no `urgent_words`.
pub const DEFAULT_URGENT_WORDS: [&str; 2] = ["brake", "fire"];

/// Routes `ticket` by the first of `urgent_words` it contains.
pub fn route(ticket: &Ticket, urgent_words: &[String]) -> Route {
    let text = format!("{} {}", ticket.subject, ticket.description).to_lowercase();
    let word = urgent_words
        .iter()
        .find(|word| !word.trim().is_empty() && text.contains(&word.to_lowercase()));
    let (priority, team, first_contact_minutes, reason) = match word {
        Some(word) => (Priority::Urgent, "safety", 30, format!("urgent word `{word}`")),
        None => (Priority::Normal, "service", 240, "no urgent word".to_owned()),
    };
    Route {
        priority,
        team: team.to_owned(),
        safety: word.is_some(),
        first_contact_due: ticket.opened_at + first_contact_minutes * MINUTE,
        resolution_due: ticket.opened_at + 3 * 24 * 60 * MINUTE,
        notifications: Vec::new(),
        reason,
    }
}

struct Plugin;

impl Guest for Plugin {
    fn route_ticket(ticket: Ticket) -> Result<Route, String> {
        let words: Vec<String> = config::get("urgent_words")?
            .unwrap_or_else(|| DEFAULT_URGENT_WORDS.map(str::to_owned).to_vec());
        Ok(route(&ticket, &words))
    }
}

dealer_sdk::export_ticket_routing!(Plugin);
"#;

fn ticket_routing_template() -> Template {
    let ticket = ticket_routing::Ticket {
        ticket_id: 3001,
        dealer_id: 1,
        channel: "hotline".to_owned(),
        category: "complaint".to_owned(),
        subject: "Brake pedal feels soft".to_owned(),
        description: "Customer reports a soft pedal on the highway".to_owned(),
        customer_id: 42,
        customer_tier: None,
        customer_tags: Vec::new(),
        vehicle_id: Some(9),
        opened_at: AT,
    };
    let expect = ticket_routing::Route {
        priority: ticket_routing::Priority::Urgent,
        team: "safety".to_owned(),
        safety: true,
        first_contact_due: AT + 30 * MINUTE,
        resolution_due: AT + 3 * 24 * 60 * MINUTE,
        notifications: Vec::new(),
        reason: "urgent word `brake`".to_owned(),
    };
    Template {
        lib: TICKET_ROUTING_LIB,
        schema: schema(
            "urgent_words",
            json!({"type": "list", "max": 100,
                "description": "Words (ignoring case) that make a ticket urgent for the safety team; default [\"brake\", \"fire\"]."}),
        ),
        fixture: fixture(json!({"urgent_words": ["brake", "fire"]}), ticket, expect),
    }
}

const INTEGRATION_LIB: &str = r#"//! Integration: every event is recorded as a reference `<key_prefix><event kind>` holding the
//! event's id, for the partner to pick up.
//!
//! The decision is the pure function [`handle`]; the exported hook only reads the dealer's
//! configuration.

use dealer_sdk::config;
use dealer_sdk::integration::{Action, Event, Guest, Reference};

/// The prefix when the dealer's configuration has no `key_prefix`.
pub const DEFAULT_KEY_PREFIX: &str = "last-";

/// One reference to the event.
pub fn handle(event: &Event, key_prefix: &str) -> Vec<Action> {
    vec![Action::RecordReference(Reference {
        key: format!("{key_prefix}{}", event.kind),
        value: event.id.clone(),
    })]
}

struct Plugin;

impl Guest for Plugin {
    fn handle(event: Event) -> Result<Vec<Action>, String> {
        let prefix: String =
            config::get("key_prefix")?.unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_owned());
        Ok(handle(&event, &prefix))
    }
}

dealer_sdk::export_integration!(Plugin);
"#;

fn integration_template() -> Template {
    let event = integration::Event {
        kind: "order.delivered".to_owned(),
        id: "evt-1001".to_owned(),
        dealer_id: 1,
        occurred_at: AT,
        customer_id: Some(42),
        vehicle_id: Some(9),
        order_id: Some(1001),
        repair_order_id: None,
        payload: "{}".to_owned(),
    };
    let expect = vec![integration::Action::RecordReference(
        integration::Reference {
            key: format!("last-{}", event.kind),
            value: event.id.clone(),
        },
    )];
    Template {
        lib: INTEGRATION_LIB,
        schema: schema(
            "key_prefix",
            json!({"type": "text", "max": 32,
                "description": "The prefix of the reference key recorded for each event; default \"last-\"."}),
        ),
        fixture: fixture(json!({"key_prefix": "last-"}), event, expect),
    }
}

const REMINDERS_LIB: &str = r#"//! Reminders: a maintenance reminder to the owner by SMS `interval_months` (6 by default)
//! after the last service visit, or after the purchase when there was none.
//!
//! The decision is the pure function [`plan`]; the exported hook only reads the dealer's
//! configuration.

use dealer_sdk::config;
use dealer_sdk::dates::Date;
use dealer_sdk::reminders::{Audience, History, Reminder, ReminderKind};

/// The interval when the dealer's configuration has no `interval_months`.
pub const DEFAULT_INTERVAL_MONTHS: i32 = 6;

/// The next maintenance reminder, if the vehicle has a last visit or a purchase date.
pub fn plan(history: &History, interval_months: i32) -> Result<Vec<Reminder>, String> {
    let last = history
        .visits
        .iter()
        .map(|visit| visit.date.as_str())
        .max()
        .or(history.vehicle.purchase_date.as_deref());
    let Some(last) = last else {
        return Ok(Vec::new());
    };
    let due = Date::parse(last).map_err(|error| error.to_string())?.add_months(interval_months);
    Ok(vec![Reminder {
        kind: ReminderKind::Maintenance,
        due: due.to_string(),
        audience: Audience::Owner,
        channel: "sms".to_owned(),
        message: format!("Your {} is due for maintenance on {due}", history.vehicle.model),
        dedupe_key: format!("maintenance-{}-{due}", history.vehicle.id),
    }])
}

struct Plugin;

impl dealer_sdk::reminders::Guest for Plugin {
    fn plan(history: History) -> Result<Vec<Reminder>, String> {
        let months: i32 = config::get("interval_months")?.unwrap_or(DEFAULT_INTERVAL_MONTHS);
        plan(&history, months)
    }
}

dealer_sdk::export_reminders!(Plugin);
"#;

fn reminders_template() -> Template {
    let history = reminders::History {
        vehicle: Vehicle {
            id: 9,
            dealer_id: 1,
            vin: "LGXCE4CB0S0000019".to_owned(),
            plate: Some("粤B12345".to_owned()),
            brand: "BYD".to_owned(),
            model: "汉 EV".to_owned(),
            trim: None,
            purchase_date: Some("2024-11-20".to_owned()),
            insurer: None,
            insurance_expiry: None,
            mileage_km: Some(18_200),
            daily_km_tenths: Some(480),
            owner_id: Some(42),
        },
        owner: None,
        readings: vec![reminders::MileageReading {
            date: "2025-05-20".to_owned(),
            km: 12_000,
        }],
        visits: vec![reminders::ServiceVisit {
            date: "2025-05-20".to_owned(),
            mileage_km: Some(12_000),
            kind: "maintenance".to_owned(),
        }],
        today: "2025-11-01".to_owned(),
    };
    let due = "2025-11-20";
    let expect = vec![reminders::Reminder {
        kind: reminders::ReminderKind::Maintenance,
        due: due.to_owned(),
        audience: reminders::Audience::Owner,
        channel: "sms".to_owned(),
        message: format!("Your 汉 EV is due for maintenance on {due}"),
        dedupe_key: format!("maintenance-9-{due}"),
    }];
    Template {
        lib: REMINDERS_LIB,
        schema: schema(
            "interval_months",
            json!({"type": "integer", "min": 1, "max": 24,
                "description": "Months from the last service visit (or the purchase) to the maintenance reminder; default 6."}),
        ),
        fixture: fixture(json!({"interval_months": 6}), history, expect),
    }
}

const CHANNEL_LIB: &str = r#"//! Channel: a message is accepted for each address on the configured `channel` (`sms` by
//! default), with the answer `<answer_prefix><template>`; a message on another channel fails,
//! not worth retrying. Replace [`send`] with the provider's API (`dealer_sdk::outbound`, and
//! `dealer_sdk::signing` for a signed request).
//!
//! The decision is the pure function [`send`]; the exported hook only reads the dealer's
//! configuration.

use dealer_sdk::channel::{Failure, Guest, Message, Receipt};
use dealer_sdk::config;

/// The channel when the dealer's configuration has no `channel`.
pub const DEFAULT_CHANNEL: &str = "sms";

/// A receipt per address, or why the message is not sent.
pub fn send(message: &Message, channel: &str, answer_prefix: &str) -> Result<Vec<Receipt>, Failure> {
    if message.channel != channel {
        return Err(Failure::permanent(format!(
            "this plugin sends on `{channel}`, not `{}`",
            message.channel
        )));
    }
    Ok(message
        .to
        .iter()
        .map(|address| Receipt {
            address: address.clone(),
            answer: format!("{answer_prefix}{}", message.template),
        })
        .collect())
}

struct Plugin;

impl Guest for Plugin {
    fn send(message: Message) -> Result<Vec<Receipt>, Failure> {
        let setting = |key: &str| config::get::<String>(key).map_err(Failure::permanent);
        let channel = setting("channel")?.unwrap_or_else(|| DEFAULT_CHANNEL.to_owned());
        let prefix = setting("answer_prefix")?.unwrap_or_default();
        send(&message, &channel, &prefix)
    }
}

dealer_sdk::export_channel!(Plugin);
"#;

fn channel_template() -> Template {
    let message = channel::Message {
        channel: "sms".to_owned(),
        to: vec!["13800000000".to_owned()],
        template: "maintenance-due".to_owned(),
        params: vec![("model".to_owned(), "汉 EV".to_owned())],
        purpose: channel::Purpose::Service,
    };
    let expect: Result<Vec<channel::Receipt>, channel::Failure> = Ok(vec![channel::Receipt {
        address: "13800000000".to_owned(),
        answer: "accepted:maintenance-due".to_owned(),
    }]);
    Template {
        lib: CHANNEL_LIB,
        schema: json!({"fields": {
            "channel": {"type": "text", "max": 16,
                "description": "The channel this plugin sends on; default \"sms\"."},
            "answer_prefix": {"type": "text", "max": 32,
                "description": "What each receipt's answer starts with, before the template name."},
        }}),
        fixture: fixture(
            json!({"channel": "sms", "answer_prefix": "accepted:"}),
            message,
            expect,
        ),
    }
}
