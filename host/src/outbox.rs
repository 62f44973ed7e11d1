//! The outbox: messages to send (SMS, WeChat, e-mail, app pushes, staff tasks), written in the
//! transaction of the change that causes them, so a message exists exactly when its cause
//! committed. Owns `outbox`.
//!
//! A message may carry a dedupe key, unique across the table: enqueueing the same key again
//! stores nothing, which is what makes a reminder or an escalation go out once however often
//! (and on however many replicas) the job that finds it runs.
//!
//! Every message has a [`Purpose`]. A marketing message to an owner is admitted here, in the
//! cause's transaction: without the owner's marketing consent, or past the dealer's weekly cap
//! for that owner, it is stored `refused` with its reason and never sent; inside the dealer's
//! quiet hours it is due when they end; it carries an opt-out link (and, by SMS, the keyword).
//! Links to the owner's pages are stored as paths (`/o/…`) and made absolute when sent.
//!
//! Delivery ([`deliver_due`], the senders per channel, the admins' listing) is in [`delivery`];
//! it also owns `outbox_attempts`, the record of every delivery attempt. Whom a recipient
//! reference reaches is [`recipients`]; the e-mail channel is [`email`], SMS and WeChat go
//! through the dealer's channel plugin ([`channels`]).

pub mod channels;
mod delivery;
pub mod email;
pub mod recipients;

pub use delivery::{
    Attempt, DeliveryReport, Entry, Filter, LogSink, MAX_ATTEMPTS, Outgoing, SendError, SendFuture,
    Sender, Senders, Status, attempts, deliver_due, list,
};

use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa::ToSchema;

use crate::clock;
use crate::customers::consent;
use crate::error::Result;
use crate::network;
use crate::owner_links::{self, Purpose as LinkPurpose};
use crate::plugins::bindings::types::Notification;

/// Why a message is sent: `service` (about the owner's car, order, ticket or visit: always
/// sent) or `marketing` (offers, greetings, campaigns other than safety recalls: only with
/// consent, outside quiet hours, within the weekly cap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = MessagePurpose)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Service,
    Marketing,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Service => "service",
            Purpose::Marketing => "marketing",
        }
    }

    fn parse(s: &str) -> Purpose {
        if s == "marketing" {
            Purpose::Marketing
        } else {
            Purpose::Service
        }
    }
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Message {
    /// `sms`, `wechat`, `email`, `app`, `task`.
    pub channel: String,
    /// A position (`role:regional_service_manager`, or at a unit by its code:
    /// `role:service_manager@BJ-CY-4S`), a staff member (`staff:42`) or a customer
    /// (`customer:7`).
    pub recipient: String,
    pub template: String,
    pub data: Vec<(String, String)>,
    pub purpose: Purpose,
}

impl From<&Notification> for Message {
    /// A plugin's notification is marketing when it says so in its data (`purpose`:
    /// `marketing`), as a 0.1 plugin can.
    fn from(n: &Notification) -> Message {
        let marketing = n
            .data
            .iter()
            .any(|(k, v)| k == "purpose" && v == "marketing");
        Message {
            channel: n.channel.clone(),
            recipient: n.recipient.clone(),
            template: n.template.clone(),
            data: n.data.clone(),
            purpose: if marketing {
                Purpose::Marketing
            } else {
                Purpose::Service
            },
        }
    }
}

/// Why a message was refused when it was enqueued, or when it was due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The owner never gave marketing consent.
    NoMarketingConsent,
    /// The owner withdrew it after the message was enqueued.
    OptedOut,
    /// The owner already had the dealer's weekly number of marketing messages.
    FrequencyCap,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NoMarketingConsent => "no_marketing_consent",
            Refusal::OptedOut => "opted_out",
            Refusal::FrequencyCap => "frequency_cap",
        }
    }
}

/// How long an opt-out link works: longer than anyone keeps an offer.
const OPT_OUT_LINK_TTL_MS: i64 = 365 * 24 * 3_600_000;
/// What an SMS says to opt out (the keyword [`consent::OPT_OUT_KEYWORDS`] reads).
pub const SMS_OPT_OUT: &str = "回T退订";
const WEEK_MS: i64 = 7 * 24 * 3_600_000;

/// The customer a recipient reference names, if it names one.
pub fn customer_of(recipient: &str) -> Option<i64> {
    recipient.strip_prefix("customer:")?.parse().ok()
}

/// Adds a message for `dealer_id`. With a `dedupe_key` already enqueued, nothing is added and
/// the answer is `None`; otherwise it is the new message's id, whether it is due (now, or when
/// the dealer's quiet hours end) or refused (see the module's header).
pub async fn enqueue(
    conn: &mut AnyConnection,
    dealer_id: i64,
    message: &Message,
    dedupe_key: Option<&str>,
) -> Result<Option<i64>> {
    let now = clock::now_ms();
    let mut due = now;
    let mut refused = None;
    let owner = customer_of(&message.recipient);
    if let (Purpose::Marketing, Some(customer)) = (message.purpose, owner) {
        if !consent::marketing_allowed(conn, customer).await? {
            refused = Some(Refusal::NoMarketingConsent);
        } else {
            let rules = network::messaging_rules(conn, dealer_id).await?;
            if marketing_this_week(conn, &message.recipient, now).await? >= rules.per_week {
                refused = Some(Refusal::FrequencyCap);
            } else {
                due = after_quiet_hours(&rules, now);
            }
        }
    }
    let id: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO outbox (dealer_id, channel, recipient, template, data, dedupe_key, purpose, \
         status, reason, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
         $10, $11) ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
    )
    .bind(dealer_id)
    .bind(&message.channel)
    .bind(&message.recipient)
    .bind(&message.template)
    .bind(encode_data(&message.data))
    .bind(dedupe_key)
    .bind(message.purpose.as_str())
    .bind(if refused.is_some() {
        "refused"
    } else {
        "pending"
    })
    .bind(refused.map(Refusal::as_str))
    .bind(due)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((id,)) = id else {
        return Ok(None);
    };
    if message.purpose == Purpose::Marketing && refused.is_none() && owner.is_some() {
        let link = owner_links::issue(
            conn,
            dealer_id,
            LinkPurpose::OptOut,
            id,
            OPT_OUT_LINK_TTL_MS,
            false,
        )
        .await?;
        let mut data = message.data.clone();
        data.push((
            "opt-out-url".into(),
            owner_links::page(LinkPurpose::OptOut, &link.token),
        ));
        if message.channel == "sms" {
            data.push(("opt-out".into(), SMS_OPT_OUT.into()));
        }
        sqlx::query("UPDATE outbox SET data = $1 WHERE id = $2")
            .bind(encode_data(&data))
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(Some(id))
}

/// Whether a message with `dedupe_key` was enqueued (sent, due or refused).
pub async fn enqueued(conn: &mut AnyConnection, dedupe_key: &str) -> Result<bool> {
    let found: Option<(i64,)> = sqlx::query_as("SELECT id FROM outbox WHERE dedupe_key = $1")
        .bind(dedupe_key)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(found.is_some())
}

/// Marketing messages to `recipient` not refused in the 7 days before `now`.
async fn marketing_this_week(conn: &mut AnyConnection, recipient: &str, now: i64) -> Result<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM outbox WHERE recipient = $1 AND purpose = 'marketing' \
         AND status IN ('pending', 'sent') AND created_at > $2",
    )
    .bind(recipient)
    .bind(now - WEEK_MS)
    .fetch_one(&mut *conn)
    .await?;
    Ok(n)
}

/// `now`, or the end of the dealer's quiet hours when `now` falls inside them (local time; a
/// window may span midnight, 21:00–08:00; an empty one is no quiet hours).
pub fn after_quiet_hours(rules: &network::MessagingRules, now: i64) -> i64 {
    const DAY_MINUTES: i64 = 24 * 60;
    let (start, end) = (rules.quiet_start_minute, rules.quiet_end_minute);
    let local_ms = now + i64::from(rules.utc_offset_minutes) * 60_000;
    let minute = local_ms.div_euclid(60_000).rem_euclid(DAY_MINUTES);
    let quiet = if start <= end {
        (start..end).contains(&minute)
    } else {
        minute >= start || minute < end
    };
    if !quiet {
        return now;
    }
    let wait = (end - minute).rem_euclid(DAY_MINUTES);
    now - now.rem_euclid(60_000) + wait * 60_000
}

fn encode_data(data: &[(String, String)]) -> String {
    let object: serde_json::Map<String, serde_json::Value> = data
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(object).to_string()
}

/// A message's stored `data` (a JSON object of strings, in the order given) as pairs.
fn decode_data(text: &str) -> Vec<(String, String)> {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).unwrap_or_default();
    object
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect()
}

/// What an owner sees of an opt-out link: whose marketing it stops, and whether it has.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OwnerOptOut {
    pub dealer: String,
    /// The number the owner calls the dealer on.
    pub dealer_phone: Option<String>,
    /// The channel the link came by.
    pub channel: String,
    /// Marketing is stopped (it may have been before the owner followed the link).
    pub opted_out: bool,
}

/// The message behind an opt-out link: (id, dealer, customer, channel).
async fn opt_out_subject(
    conn: &mut AnyConnection,
    token: &str,
) -> Result<(owner_links::Link, i64, i64, String)> {
    let link = owner_links::resolve(conn, LinkPurpose::OptOut, token).await?;
    let row: Option<(i64, String, String)> =
        sqlx::query_as("SELECT dealer_id, recipient, channel FROM outbox WHERE id = $1")
            .bind(link.subject_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((dealer, recipient, channel)) = row else {
        return Err(crate::error::Error::LinkNotFound);
    };
    let customer = customer_of(&recipient).ok_or(crate::error::Error::LinkNotFound)?;
    Ok((link, dealer, customer, channel))
}

/// The opt-out link's page, before the owner confirms.
pub async fn opt_out_view(conn: &mut AnyConnection, token: &str) -> Result<OwnerOptOut> {
    let (_, dealer, customer, channel) = opt_out_subject(conn, token).await?;
    let dealer = network::contact(conn, dealer).await?;
    Ok(OwnerOptOut {
        dealer: dealer.name,
        dealer_phone: dealer.phone,
        channel,
        opted_out: !consent::marketing_allowed(conn, customer).await?,
    })
}

/// The owner stops marketing through the link of a message: recorded with the time and the
/// message's channel, and audited as the owner's act. Following it again changes nothing.
pub async fn opt_out_by_link(db: &crate::Db, token: &str) -> Result<OwnerOptOut> {
    let mut tx = db.begin_write().await?;
    let (link, dealer, customer, channel) = opt_out_subject(&mut tx, token).await?;
    let changed = consent::opt_out(
        &mut tx,
        customer,
        dealer,
        &channel,
        consent::Via::Link,
        Some(link.subject_id),
    )
    .await?;
    crate::audit::record_owner(
        &mut tx,
        link.id,
        crate::audit::Entry::ok("opt_out", "customer", customer, dealer).with_detail(
            serde_json::json!({ "channel": channel, "via": "link", "changed": changed }),
        ),
    )
    .await?;
    let dealer = network::contact(&mut tx, dealer).await?;
    tx.commit().await?;
    Ok(OwnerOptOut {
        dealer: dealer.name,
        dealer_phone: dealer.phone,
        channel,
        opted_out: true,
    })
}

/// An owner's answer to a message, as the channel's gateway reports it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(as = ChannelReply)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    /// `sms` or `wechat`.
    pub channel: String,
    /// The sender's mobile number.
    pub from: String,
    pub text: String,
}

/// What a reply did.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ChannelReplyOutcome)]
pub struct ReplyOutcome {
    /// The text was an opt-out keyword (`T`, `TD`, `退订` …).
    pub opt_out: bool,
    /// Customers of the caller's dealers with that number whose marketing consent it withdrew.
    pub customers: u64,
}

/// Reads an owner's reply: an opt-out keyword withdraws the marketing consent of every
/// customer of the caller's dealers with that mobile number, recorded with the channel and
/// audited; any other text changes nothing.
pub async fn reply(
    conn: &mut AnyConnection,
    caller: &crate::access::Caller,
    reply: &Reply,
) -> Result<ReplyOutcome> {
    if !matches!(reply.channel.as_str(), "sms" | "wechat") {
        return Err(crate::error::Error::invalid(
            "channel",
            "unknown_channel",
            "owners answer by sms or wechat",
        ));
    }
    if !consent::is_opt_out(&reply.text) {
        return Ok(ReplyOutcome {
            opt_out: false,
            customers: 0,
        });
    }
    let phone: String = reply.from.chars().filter(char::is_ascii_digit).collect();
    let phone = phone
        .strip_prefix("86")
        .filter(|p| p.len() == 11)
        .unwrap_or(&phone);
    let mut customers = 0;
    for (customer, dealer) in consent::by_phone(conn, &caller.org_path, phone).await? {
        let changed = consent::opt_out(
            conn,
            customer,
            dealer,
            &reply.channel,
            consent::Via::Keyword,
            None,
        )
        .await?;
        customers += u64::from(changed);
        crate::audit::record(
            conn,
            caller,
            crate::audit::Entry::ok("opt_out", "customer", customer, dealer).with_detail(
                serde_json::json!({ "channel": reply.channel, "via": "keyword", "changed": changed }),
            ),
        )
        .await?;
    }
    Ok(ReplyOutcome {
        opt_out: true,
        customers,
    })
}
