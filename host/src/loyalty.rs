//! Loyalty: a points account per customer and an append-only ledger in which every movement
//! names its cause. Owns `loyalty_accounts`, `loyalty_events`, `points_ledger` and
//! `points_lots`.
//!
//! Points are earned in lots (one per positive movement, with its expiry); redemptions and
//! take-backs consume the oldest lots first, and [`expire_due`] expires what is past its
//! `expires_at`. The balance is the sum of what is left in the lots, never negative (a CHECK
//! in the database and the checks here). Every movement first locks the customer's account
//! row, so concurrent movements of one customer run one after the other on PostgreSQL too.
//!
//! How many points an event is worth, and tier changes, are the dealer's loyalty plugin's
//! decision ([`award`]); an event is awarded once per cause, however often it is reported.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow};
use utoipa::{IntoParams, ToSchema};

use crate::access::{Caller, Role};
use crate::audit::{self, Actor, Entry};
use crate::clock;
use crate::db::{Param, Sql};
use crate::error::{Error, FieldError, Result};
use crate::outbox;
use crate::partners::{self, Purpose};
use crate::plugins::dispatch::{DecisionSource, Plugins};
use crate::plugins::hooks::{LoyaltyHook, loyalty};
use crate::plugins::runs::Source;
use crate::{Db, customers};

/// Longest reason of a movement, in characters.
pub const REASON_MAX: usize = 200;
/// Longest cause kind, in characters (`sales_order`, `partner`, ...).
pub const CAUSE_KIND_MAX: usize = 32;
/// Longest cause id, in characters (`42`, a partner's session reference, ...).
pub const CAUSE_ID_MAX: usize = 128;
/// The most points one redemption may take.
pub const MAX_POINTS: i64 = 100_000_000;
/// The most attributes an event may carry.
const MAX_ATTRIBUTES: usize = 32;
/// Customers whose lots [`expire_due`] expires per transaction.
const EXPIRY_BATCH: i64 = 100;
/// The worker name expiry audits under.
const EXPIRY_WORKER: &str = "loyalty-expiry";

/// What happened that may be worth points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = LoyaltyEventKind)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Spend,
    Referral,
    SurveyAnswered,
    Birthday,
    VehicleDelivered,
    PartnerActivity,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::Spend,
        EventKind::Referral,
        EventKind::SurveyAnswered,
        EventKind::Birthday,
        EventKind::VehicleDelivered,
        EventKind::PartnerActivity,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Spend => "spend",
            EventKind::Referral => "referral",
            EventKind::SurveyAnswered => "survey_answered",
            EventKind::Birthday => "birthday",
            EventKind::VehicleDelivered => "vehicle_delivered",
            EventKind::PartnerActivity => "partner_activity",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    fn hook_kind(self) -> loyalty::EventKind {
        match self {
            EventKind::Spend => loyalty::EventKind::Spend,
            EventKind::Referral => loyalty::EventKind::Referral,
            EventKind::SurveyAnswered => loyalty::EventKind::SurveyAnswered,
            EventKind::Birthday => loyalty::EventKind::Birthday,
            EventKind::VehicleDelivered => loyalty::EventKind::VehicleDelivered,
            EventKind::PartnerActivity => loyalty::EventKind::PartnerActivity,
        }
    }

    /// Whether the event's amount is money the customer spent (it adds to the lifetime spend).
    fn is_spend(self) -> bool {
        matches!(self, EventKind::Spend | EventKind::VehicleDelivered)
    }
}

/// What a movement is owed to: `sales_order:42`, `repair_order:7`, `survey:3`,
/// `partner:<session>`, `staff:5`, ...
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Cause {
    /// 1 to 32 characters of `a-z`, `0-9` and `_`.
    pub kind: String,
    /// 1 to 128 characters.
    pub id: String,
}

impl Cause {
    pub fn new(kind: &str, id: impl ToString) -> Cause {
        Cause {
            kind: kind.to_owned(),
            id: id.to_string(),
        }
    }

    fn check(&self, field: &str, errors: &mut Vec<FieldError>) {
        let kind_ok = (1..=CAUSE_KIND_MAX).contains(&self.kind.chars().count())
            && self
                .kind
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !kind_ok {
            errors.push(FieldError::new(
                format!("{field}.kind"),
                "invalid_cause",
                format!("a cause kind is 1 to {CAUSE_KIND_MAX} characters of a-z, 0-9 and _"),
            ));
        }
        let id = self.id.trim();
        if id.is_empty() || id.chars().count() > CAUSE_ID_MAX {
            errors.push(FieldError::new(
                format!("{field}.id"),
                "invalid_cause",
                format!("a cause id is 1 to {CAUSE_ID_MAX} characters"),
            ));
        }
    }

    /// `kind:id`, as the plugin sees it.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.kind, self.id)
    }
}

/// An event reported to the loyalty programme.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoyaltyEvent {
    pub dealer_id: i64,
    pub customer_id: i64,
    pub kind: EventKind,
    /// Money spent, for `spend` and `vehicle_delivered` (negative for a refund); 0 otherwise.
    pub amount_fen: i64,
    pub cause: Cause,
    /// Details for the plugin, e.g. `kwh` of an EV charging session.
    pub attributes: Vec<(String, String)>,
}

/// An event as a partner or staff member reports it over the API.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportedEvent {
    pub kind: EventKind,
    /// Money spent in fen, for `spend` and `vehicle_delivered`; default 0.
    #[serde(default)]
    pub amount_fen: i64,
    /// What caused it, e.g. `{"kind": "partner", "id": "<charging session>"}`. The same cause
    /// and kind are awarded once.
    pub cause: Cause,
    /// Details for the dealer's loyalty plugin, e.g. `{"kwh": "35.5"}`.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    Earn,
    Redeem,
    Expire,
    Adjust,
}

impl MovementKind {
    fn as_str(self) -> &'static str {
        match self {
            MovementKind::Earn => "earn",
            MovementKind::Redeem => "redeem",
            MovementKind::Expire => "expire",
            MovementKind::Adjust => "adjust",
        }
    }

    fn parse(s: &str) -> Option<MovementKind> {
        [
            MovementKind::Earn,
            MovementKind::Redeem,
            MovementKind::Expire,
            MovementKind::Adjust,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// The plugin that decided a movement; absent when the host's built-in rule did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DecidedBy {
    pub plugin: String,
    pub version: String,
}

/// One movement of the ledger.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LedgerEntry {
    pub id: i64,
    pub customer_id: i64,
    pub kind: MovementKind,
    /// Positive for points in, negative for points out.
    pub points: i64,
    pub balance_after: i64,
    pub reason: String,
    pub cause: Cause,
    pub decided_by: Option<DecidedBy>,
    /// The plugin run log entry of the decision, when a hook decided it.
    pub run_id: Option<i64>,
    /// When the points of this movement expire (earned lots only).
    pub expires_at: Option<DateTime<Utc>>,
    pub at: DateTime<Utc>,
}

/// A customer's points account.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Account {
    pub customer_id: i64,
    pub dealer_id: i64,
    pub balance: i64,
    /// The customer's member tier (`customers.member_tier`): the entry tier 银卡 until the
    /// loyalty plugin or staff name another.
    pub tier: String,
    pub lifetime_spend_fen: i64,
    pub version: i64,
}

/// What [`award`] did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Award {
    pub event_id: i64,
    /// The cause had been awarded before: nothing changed, this is the earlier award.
    pub duplicate: bool,
    /// Net points of the event.
    pub points: i64,
    pub balance: i64,
    pub tier: String,
    pub tier_changed: bool,
    pub decided_by: Option<DecidedBy>,
    pub run_id: Option<i64>,
    pub entries: Vec<LedgerEntry>,
}

/// A redemption as the API takes it.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRedemption {
    /// 1 to 100,000,000, at most the balance.
    pub points: i64,
    /// 1 to 200 characters, e.g. `兑换保养工时`.
    pub reason: String,
    /// What the points pay for, e.g. `{"kind": "repair_order", "id": "7"}`; default the staff
    /// member (or the key) redeeming.
    pub cause: Option<Cause>,
}

/// A redemption done: its ledger entry and the account after it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Redemption {
    pub entry: LedgerEntry,
    pub account: Account,
}

impl crate::model::Versioned for Redemption {
    fn version(&self) -> i64 {
        self.account.version
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LedgerFilter {
    /// Only movements of this kind.
    pub kind: Option<MovementKind>,
}

/// What [`expire_due`] expired.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ExpiryReport {
    pub customers: u64,
    pub lots: u64,
    pub points: i64,
}

#[derive(FromRow)]
struct EntryRow {
    id: i64,
    customer_id: i64,
    kind: String,
    points: i64,
    balance_after: i64,
    reason: String,
    cause_kind: String,
    cause_id: String,
    plugin: Option<String>,
    plugin_version: Option<String>,
    run_id: Option<i64>,
    expires_at: Option<i64>,
    at: i64,
}

const ENTRY_COLUMNS: &str = "id, customer_id, kind, points, balance_after, reason, cause_kind, cause_id, \
     plugin, plugin_version, run_id, expires_at, at";

impl EntryRow {
    fn into_entry(self) -> Result<LedgerEntry> {
        let kind = MovementKind::parse(&self.kind).ok_or_else(|| {
            Error::Database(sqlx::Error::Decode(
                format!("points_ledger: bad kind {:?}", self.kind).into(),
            ))
        })?;
        Ok(LedgerEntry {
            id: self.id,
            customer_id: self.customer_id,
            kind,
            points: self.points,
            balance_after: self.balance_after,
            reason: self.reason,
            cause: Cause {
                kind: self.cause_kind,
                id: self.cause_id,
            },
            decided_by: decided_by(self.plugin, self.plugin_version),
            run_id: self.run_id,
            expires_at: clock::opt_datetime(self.expires_at),
            at: clock::to_datetime(self.at),
        })
    }
}

fn decided_by(plugin: Option<String>, version: Option<String>) -> Option<DecidedBy> {
    Some(DecidedBy {
        plugin: plugin?,
        version: version?,
    })
}

#[derive(FromRow)]
struct AccountRow {
    customer_id: i64,
    dealer_id: i64,
    balance: i64,
    tier: String,
    lifetime_spend_fen: i64,
    version: i64,
}

impl From<AccountRow> for Account {
    fn from(r: AccountRow) -> Account {
        Account {
            customer_id: r.customer_id,
            dealer_id: r.dealer_id,
            balance: r.balance,
            tier: r.tier,
            lifetime_spend_fen: r.lifetime_spend_fen,
            version: r.version,
        }
    }
}

/// The customer's account (empty if nothing has moved yet) with the customer's tier.
async fn account(conn: &mut AnyConnection, customer_id: i64, dealer_id: i64) -> Result<Account> {
    let row: Option<AccountRow> = sqlx::query_as(
        "SELECT c.id AS customer_id, c.dealer_id, COALESCE(a.balance, 0) AS balance, \
         c.member_tier AS tier, COALESCE(a.lifetime_spend_fen, 0) AS lifetime_spend_fen, \
         COALESCE(a.version, 0) AS version \
         FROM customers c LEFT JOIN loyalty_accounts a ON a.customer_id = c.id \
         WHERE c.id = $1 AND c.dealer_id = $2",
    )
    .bind(customer_id)
    .bind(dealer_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Account::from)
        .ok_or(Error::NotFound { entity: "customer" })
}

/// Creates the account if needed and locks its row for the rest of the transaction (on
/// PostgreSQL; SQLite's write transaction is exclusive already), then reads it.
async fn lock_account(
    conn: &mut AnyConnection,
    customer_id: i64,
    dealer_id: i64,
    now: i64,
) -> Result<Account> {
    sqlx::query(
        "INSERT INTO loyalty_accounts (customer_id, dealer_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $3) ON CONFLICT (customer_id) DO NOTHING",
    )
    .bind(customer_id)
    .bind(dealer_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE loyalty_accounts SET updated_at = $1 WHERE customer_id = $2")
        .bind(now)
        .bind(customer_id)
        .execute(&mut *conn)
        .await?;
    account(conn, customer_id, dealer_id).await
}

/// Stores the account's new balance and lifetime spend, bumping its version (the tier is the
/// customer's: [`customers::set_member_tier`]).
async fn save_account(conn: &mut AnyConnection, account: &Account, now: i64) -> Result<Account> {
    sqlx::query(
        "UPDATE loyalty_accounts SET balance = $1, lifetime_spend_fen = $2, \
         version = version + 1, updated_at = $3 WHERE customer_id = $4",
    )
    .bind(account.balance)
    .bind(account.lifetime_spend_fen)
    .bind(now)
    .bind(account.customer_id)
    .execute(&mut *conn)
    .await?;
    Ok(Account {
        version: account.version + 1,
        ..account.clone()
    })
}

/// A movement to append.
struct Movement<'a> {
    kind: MovementKind,
    points: i64,
    reason: &'a str,
    cause: &'a Cause,
    event_id: Option<i64>,
    decided_by: Option<&'a DecidedBy>,
    run_id: Option<i64>,
    expires_at: Option<i64>,
}

/// Appends `movement` to the ledger and moves the points: a positive movement becomes a lot,
/// a negative one consumes the oldest lots. `account.balance` is updated (the caller saves it).
async fn append(
    conn: &mut AnyConnection,
    account: &mut Account,
    movement: Movement<'_>,
    now: i64,
) -> Result<LedgerEntry> {
    if movement.points < 0 {
        consume(conn, account.customer_id, -movement.points).await?;
    }
    account.balance += movement.points;
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO points_ledger (dealer_id, customer_id, kind, points, balance_after, reason, \
         cause_kind, cause_id, event_id, plugin, plugin_version, run_id, expires_at, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
    )
    .bind(account.dealer_id)
    .bind(account.customer_id)
    .bind(movement.kind.as_str())
    .bind(movement.points)
    .bind(account.balance)
    .bind(movement.reason)
    .bind(&movement.cause.kind)
    .bind(&movement.cause.id)
    .bind(movement.event_id)
    .bind(movement.decided_by.map(|d| d.plugin.as_str()))
    .bind(movement.decided_by.map(|d| d.version.as_str()))
    .bind(movement.run_id)
    .bind(movement.expires_at)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    if movement.points > 0 {
        sqlx::query(
            "INSERT INTO points_lots (ledger_id, customer_id, remaining, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(account.customer_id)
        .bind(movement.points)
        .bind(movement.expires_at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(LedgerEntry {
        id,
        customer_id: account.customer_id,
        kind: movement.kind,
        points: movement.points,
        balance_after: account.balance,
        reason: movement.reason.to_owned(),
        cause: movement.cause.clone(),
        decided_by: movement.decided_by.cloned(),
        run_id: movement.run_id,
        expires_at: clock::opt_datetime(movement.expires_at),
        at: clock::to_datetime(now),
    })
}

/// Takes `points` from the customer's lots, oldest first. The caller has checked the balance.
async fn consume(conn: &mut AnyConnection, customer_id: i64, points: i64) -> Result<()> {
    let lots: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT ledger_id, remaining FROM points_lots WHERE customer_id = $1 AND remaining > 0 \
         ORDER BY ledger_id",
    )
    .bind(customer_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut left = points;
    for (lot, remaining) in lots {
        if left == 0 {
            break;
        }
        let taken = remaining.min(left);
        sqlx::query("UPDATE points_lots SET remaining = remaining - $1 WHERE ledger_id = $2")
            .bind(taken)
            .bind(lot)
            .execute(&mut *conn)
            .await?;
        left -= taken;
    }
    if left > 0 {
        return Err(Error::Database(sqlx::Error::Protocol(format!(
            "points_lots of customer {customer_id} hold {left} points less than the balance"
        ))));
    }
    Ok(())
}

/// Expires the customer's lots past their `expires_at` at `now`, oldest first, each with its
/// ledger entry. The account is locked by the caller; `account.balance` is updated.
async fn expire_lots(
    conn: &mut AnyConnection,
    account: &mut Account,
    now: i64,
) -> Result<(u64, i64)> {
    let lots: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT ledger_id, remaining FROM points_lots WHERE customer_id = $1 AND remaining > 0 \
         AND expires_at IS NOT NULL AND expires_at <= $2 ORDER BY ledger_id",
    )
    .bind(account.customer_id)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    let mut points = 0;
    for (lot, remaining) in &lots {
        sqlx::query("UPDATE points_lots SET remaining = 0 WHERE ledger_id = $1")
            .bind(lot)
            .execute(&mut *conn)
            .await?;
        account.balance -= remaining;
        points += remaining;
        sqlx::query(
            "INSERT INTO points_ledger (dealer_id, customer_id, kind, points, balance_after, reason, \
             cause_kind, cause_id, at) VALUES ($1, $2, 'expire', $3, $4, $5, 'points_lot', $6, $7)",
        )
        .bind(account.dealer_id)
        .bind(account.customer_id)
        .bind(-remaining)
        .bind(account.balance)
        .bind("积分到期")
        .bind(lot.to_string())
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok((lots.len() as u64, points))
}

fn check_event(event: &LoyaltyEvent) -> Result<()> {
    let mut errors = Vec::new();
    event.cause.check("cause", &mut errors);
    if event.amount_fen.unsigned_abs() > 100_000_000_000 {
        errors.push(FieldError::new(
            "amount_fen",
            "out_of_range",
            "an amount is at most 1,000,000,000 yuan",
        ));
    }
    if !event.kind.is_spend() && event.amount_fen != 0 {
        errors.push(FieldError::new(
            "amount_fen",
            "not_a_spend",
            "only spend and vehicle_delivered events carry an amount",
        ));
    }
    if event.attributes.len() > MAX_ATTRIBUTES
        || event
            .attributes
            .iter()
            .any(|(k, v)| k.is_empty() || k.len() > 64 || v.len() > 2000)
    {
        errors.push(FieldError::new(
            "attributes",
            "invalid_attributes",
            format!("at most {MAX_ATTRIBUTES} attributes, keys 1 to 64 bytes, values up to 2000"),
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(errors))
    }
}

#[derive(FromRow)]
struct EventRow {
    id: i64,
    plugin: Option<String>,
    plugin_version: Option<String>,
    run_id: Option<i64>,
    tier_before: Option<String>,
    tier_after: Option<String>,
}

/// The earlier award of `event`'s cause, if it was awarded.
async fn awarded(conn: &mut AnyConnection, event: &LoyaltyEvent) -> Result<Option<Award>> {
    let row: Option<EventRow> = sqlx::query_as(
        "SELECT id, plugin, plugin_version, run_id, tier_before, tier_after FROM loyalty_events \
             WHERE customer_id = $1 AND kind = $2 AND cause_kind = $3 AND cause_id = $4",
    )
    .bind(event.customer_id)
    .bind(event.kind.as_str())
    .bind(&event.cause.kind)
    .bind(&event.cause.id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let event_id = row.id;
    let rows: Vec<EntryRow> = sqlx::query_as(&format!(
        "SELECT {ENTRY_COLUMNS} FROM points_ledger WHERE event_id = $1 ORDER BY id"
    ))
    .bind(event_id)
    .fetch_all(&mut *conn)
    .await?;
    let entries = rows
        .into_iter()
        .map(EntryRow::into_entry)
        .collect::<Result<Vec<_>>>()?;
    let account = account(conn, event.customer_id, event.dealer_id).await?;
    Ok(Some(Award {
        event_id,
        duplicate: true,
        points: entries.iter().map(|e| e.points).sum(),
        balance: account.balance,
        tier: account.tier,
        tier_changed: row.tier_before != row.tier_after,
        decided_by: decided_by(row.plugin, row.plugin_version),
        run_id: row.run_id,
        entries,
    }))
}

/// Awards `event` with the dealer's loyalty plugin: the plugin sees the account (balance,
/// tier, lifetime spend) and decides the points and any tier change, which are applied in one
/// transaction. The same cause (and kind) is awarded once: a repeat answers the earlier award
/// with `duplicate` set. Audited as a system job; see [`award_by`] for a caller.
pub async fn award(db: &Db, plugins: &Plugins, event: LoyaltyEvent) -> Result<Award> {
    apply_event(db, plugins, event, Actor::System("loyalty")).await
}

/// [`award`] for an event reported over the API by `caller` (audited as theirs).
pub async fn award_by(
    db: &Db,
    plugins: &Plugins,
    caller: &Caller,
    event: LoyaltyEvent,
) -> Result<Award> {
    apply_event(db, plugins, event, Actor::Staff(caller)).await
}

async fn apply_event(
    db: &Db,
    plugins: &Plugins,
    event: LoyaltyEvent,
    actor: Actor<'_>,
) -> Result<Award> {
    check_event(&event)?;
    let mut conn = db.pool().acquire().await?;
    let (dealer,): (i64,) = sqlx::query_as("SELECT dealer_id FROM customers WHERE id = $1")
        .bind(event.customer_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(Error::NotFound { entity: "customer" })?;
    if dealer != event.dealer_id {
        return Err(Error::NotFound { entity: "customer" });
    }
    if let Some(earlier) = awarded(&mut conn, &event).await? {
        return Ok(earlier);
    }
    let seen = account(&mut conn, event.customer_id, event.dealer_id).await?;
    drop(conn);

    let now = clock::now_ms();
    let input = loyalty::Event {
        kind: event.kind.hook_kind(),
        dealer_id: event.dealer_id,
        customer_id: event.customer_id,
        occurred_at: now,
        amount: event.amount_fen,
        reference: event.cause.reference(),
        tier: Some(seen.tier.clone()),
        points_balance: seen.balance,
        lifetime_spend: seen.lifetime_spend_fen,
        attributes: event.attributes.clone(),
    };
    let decision = plugins
        .call::<LoyaltyHook>(event.dealer_id, input, Source::Live)
        .await?;
    let decider = match &decision.source {
        DecisionSource::Plugin {
            plugin, version, ..
        } => Some(DecidedBy {
            plugin: plugin.clone(),
            version: version.clone(),
        }),
        DecisionSource::Default { .. } => None,
    };

    let mut tx = db.begin_write().await?;
    let mut account = lock_account(&mut tx, event.customer_id, event.dealer_id, now).await?;
    let tier_before = account.tier.clone();
    let inserted: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO loyalty_events (dealer_id, customer_id, kind, cause_kind, cause_id, amount_fen, \
         tier_before, plugin, plugin_version, run_id, occurred_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (customer_id, kind, cause_kind, cause_id) DO NOTHING RETURNING id",
    )
    .bind(event.dealer_id)
    .bind(event.customer_id)
    .bind(event.kind.as_str())
    .bind(&event.cause.kind)
    .bind(&event.cause.id)
    .bind(event.amount_fen)
    .bind(&tier_before)
    .bind(decider.as_ref().map(|d| d.plugin.as_str()))
    .bind(decider.as_ref().map(|d| d.version.as_str()))
    .bind(decision.run_id)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((event_id,)) = inserted else {
        // Another award of the same cause committed while the plugin decided.
        tx.rollback().await?;
        let mut conn = db.pool().acquire().await?;
        return awarded(&mut conn, &event).await?.ok_or(Error::NotFound {
            entity: "loyalty event",
        });
    };
    expire_lots(&mut tx, &mut account, now).await?;

    let mut entries = Vec::new();
    for change in &decision.output.changes {
        // The plugin decided on the balance it saw; a take-back never exceeds today's.
        let points = change.points.max(-account.balance);
        if points == 0 {
            continue;
        }
        let entry = append(
            &mut tx,
            &mut account,
            Movement {
                kind: if points > 0 {
                    MovementKind::Earn
                } else {
                    MovementKind::Adjust
                },
                points,
                reason: &change.reason,
                cause: &event.cause,
                event_id: Some(event_id),
                decided_by: decider.as_ref(),
                run_id: decision.run_id,
                expires_at: change.expires_at.filter(|_| points > 0),
            },
            now,
        )
        .await?;
        entries.push(entry);
    }
    if event.kind.is_spend() {
        account.lifetime_spend_fen = account.lifetime_spend_fen.saturating_add(event.amount_fen);
    }
    if let Some(tier) = &decision.output.new_tier {
        account.tier = tier.trim().to_owned();
    }
    let tier_changed = account.tier != tier_before;
    if tier_changed {
        customers::set_member_tier(&mut tx, account.customer_id, &account.tier, now).await?;
    }
    let account = save_account(&mut tx, &account, now).await?;
    let points: i64 = entries.iter().map(|e| e.points).sum();
    sqlx::query("UPDATE loyalty_events SET points = $1, tier_after = $2 WHERE id = $3")
        .bind(points)
        .bind(&account.tier)
        .bind(event_id)
        .execute(&mut *tx)
        .await?;
    for notification in &decision.effects.notifications {
        outbox::enqueue(
            &mut tx,
            event.dealer_id,
            &outbox::Message::from(notification),
            None,
        )
        .await?;
    }
    audit::record_as(
        &mut tx,
        &actor,
        Entry::ok(
            "award_points",
            "customer",
            event.customer_id,
            event.dealer_id,
        )
        .with_detail(serde_json::json!({
            "event_id": event_id, "kind": event.kind.as_str(), "cause": event.cause.reference(),
            "points": points, "tier_changed": tier_changed,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(Award {
        event_id,
        duplicate: false,
        points,
        balance: account.balance,
        tier: account.tier,
        tier_changed,
        decided_by: decider,
        run_id: decision.run_id,
        entries,
    })
}

/// Grants the points a partner's integration plugin decided (an EV charging session, say),
/// in the caller's transaction: once per cause, never below zero (a take-back is capped at
/// the balance). `None` when the cause was granted before.
#[allow(clippy::too_many_arguments)]
pub async fn grant(
    conn: &mut AnyConnection,
    dealer_id: i64,
    customer_id: i64,
    points: i64,
    reason: &str,
    cause: &Cause,
    decided_by: Option<&DecidedBy>,
    run_id: Option<i64>,
) -> Result<Option<LedgerEntry>> {
    let owner: Option<(i64,)> = sqlx::query_as("SELECT dealer_id FROM customers WHERE id = $1")
        .bind(customer_id)
        .fetch_optional(&mut *conn)
        .await?;
    if owner != Some((dealer_id,)) {
        return Err(Error::NotFound { entity: "customer" });
    }
    let now = clock::now_ms();
    let mut account = lock_account(conn, customer_id, dealer_id, now).await?;
    let inserted: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO loyalty_events (dealer_id, customer_id, kind, cause_kind, cause_id, amount_fen, \
         tier_before, plugin, plugin_version, run_id, occurred_at) \
         VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9, $10) \
         ON CONFLICT (customer_id, kind, cause_kind, cause_id) DO NOTHING RETURNING id",
    )
    .bind(dealer_id)
    .bind(customer_id)
    .bind(EventKind::PartnerActivity.as_str())
    .bind(&cause.kind)
    .bind(&cause.id)
    .bind(&account.tier)
    .bind(decided_by.map(|d| d.plugin.as_str()))
    .bind(decided_by.map(|d| d.version.as_str()))
    .bind(run_id)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((event_id,)) = inserted else {
        return Ok(None);
    };
    expire_lots(conn, &mut account, now).await?;
    let points = points.max(-account.balance);
    if points == 0 {
        return Ok(None);
    }
    let movement = Movement {
        kind: if points > 0 {
            MovementKind::Earn
        } else {
            MovementKind::Adjust
        },
        points,
        reason,
        cause,
        event_id: Some(event_id),
        decided_by,
        run_id,
        expires_at: None,
    };
    let entry = append(conn, &mut account, movement, now).await?;
    let account = save_account(conn, &account, now).await?;
    sqlx::query("UPDATE loyalty_events SET points = $1, tier_after = $2 WHERE id = $3")
        .bind(points)
        .bind(&account.tier)
        .bind(event_id)
        .execute(&mut *conn)
        .await?;
    audit::record_as(
        conn,
        &Actor::System("integrations"),
        Entry::ok("award_points", "customer", customer_id, dealer_id).with_detail(
            serde_json::json!({ "event_id": event_id, "cause": cause.reference(), "points": points }),
        ),
    )
    .await?;
    Ok(Some(entry))
}

/// Checks a redemption's fields.
fn check_redemption(new: &NewRedemption) -> Result<()> {
    let mut errors = Vec::new();
    if !(1..=MAX_POINTS).contains(&new.points) {
        errors.push(FieldError::new(
            "points",
            "out_of_range",
            format!("points are 1 to {MAX_POINTS}"),
        ));
    }
    let reason = new.reason.trim().chars().count();
    if reason == 0 || reason > REASON_MAX {
        errors.push(FieldError::new(
            "reason",
            "invalid_reason",
            format!("a reason is 1 to {REASON_MAX} characters"),
        ));
    }
    if let Some(cause) = &new.cause {
        cause.check("cause", &mut errors);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(errors))
    }
}

/// Redeems points of customer `customer_id` (in the caller's scope) in `conn`, a write
/// transaction: points past their expiry are expired first, then the redemption consumes the
/// oldest lots. More than the balance is refused with 409 `insufficient_points` and nothing
/// changes (the caller rolls back).
pub async fn redeem(
    conn: &mut AnyConnection,
    caller: &Caller,
    customer_id: i64,
    new: &NewRedemption,
) -> Result<Redemption> {
    check_redemption(new)?;
    let dealer_id = customers::dealer_of(conn, caller, customer_id).await?;
    let now = clock::now_ms();
    let mut account = lock_account(conn, customer_id, dealer_id, now).await?;
    expire_lots(conn, &mut account, now).await?;
    if new.points > account.balance {
        return Err(Error::Conflict {
            code: "insufficient_points",
            message: format!(
                "the balance is {} points; {} cannot be redeemed",
                account.balance, new.points
            ),
        });
    }
    let cause = new.cause.clone().unwrap_or_else(|| match caller.staff_id {
        Some(staff) => Cause::new("staff", staff),
        None => Cause::new("api_key", caller.key_id),
    });
    let entry = append(
        conn,
        &mut account,
        Movement {
            kind: MovementKind::Redeem,
            points: -new.points,
            reason: new.reason.trim(),
            cause: &cause,
            event_id: None,
            decided_by: None,
            run_id: None,
            expires_at: None,
        },
        now,
    )
    .await?;
    let account = save_account(conn, &account, now).await?;
    audit::record(
        conn,
        caller,
        Entry::ok("redeem_points", "customer", customer_id, dealer_id).with_detail(
            serde_json::json!({ "ledger_id": entry.id, "points": new.points, "cause": cause.reference() }),
        ),
    )
    .await?;
    Ok(Redemption { entry, account })
}

/// Expires every lot past its `expires_at` at `now`, oldest first, a batch of customers per
/// transaction. Safe to run on several replicas at once: each customer's lots are re-read
/// under the account's lock.
pub async fn expire_due(db: &Db, now: i64) -> Result<ExpiryReport> {
    let mut report = ExpiryReport::default();
    let mut after = 0_i64;
    loop {
        let due: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT DISTINCT l.customer_id, a.dealer_id FROM points_lots l \
             JOIN loyalty_accounts a ON a.customer_id = l.customer_id \
             WHERE l.remaining > 0 AND l.expires_at IS NOT NULL AND l.expires_at <= $1 \
             AND l.customer_id > $2 ORDER BY l.customer_id LIMIT $3",
        )
        .bind(now)
        .bind(after)
        .bind(EXPIRY_BATCH)
        .fetch_all(db.pool())
        .await?;
        let Some(&(last, _)) = due.last() else {
            return Ok(report);
        };
        after = last;
        let mut tx = db.begin_write().await?;
        for (customer_id, dealer_id) in due {
            let mut account = lock_account(&mut tx, customer_id, dealer_id, now).await?;
            let (lots, points) = expire_lots(&mut tx, &mut account, now).await?;
            if lots == 0 {
                continue;
            }
            save_account(&mut tx, &account, now).await?;
            audit::record_system(
                &mut tx,
                EXPIRY_WORKER,
                Entry::ok("expire_points", "customer", customer_id, dealer_id)
                    .with_detail(serde_json::json!({ "lots": lots, "points": points })),
            )
            .await?;
            report.customers += 1;
            report.lots += lots;
            report.points += points;
        }
        tx.commit().await?;
    }
}

/// The account of customer `customer_id` (in the caller's scope) and its ledger, newest
/// first, `limit + 1` entries at most, below `before_id`.
pub async fn points(
    conn: &mut AnyConnection,
    caller: &Caller,
    customer_id: i64,
    filter: &LedgerFilter,
    before_id: Option<i64>,
    limit: i64,
) -> Result<(Account, Vec<LedgerEntry>)> {
    let dealer_id = customers::dealer_of(conn, caller, customer_id).await?;
    let account = account(conn, customer_id, dealer_id).await?;
    let mut sql = Sql::new(&format!(
        "SELECT {ENTRY_COLUMNS} FROM points_ledger WHERE customer_id = "
    ));
    sql.bind(Param::Int(customer_id));
    if let Some(kind) = filter.kind {
        sql.push(" AND kind = ")
            .bind(Param::Text(kind.as_str().into()));
    }
    if let Some(before) = before_id {
        sql.push(" AND id < ").bind(Param::Int(before));
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .bind(Param::Int(limit + 1));
    let rows: Vec<EntryRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    let entries = rows
        .into_iter()
        .map(EntryRow::into_entry)
        .collect::<Result<Vec<_>>>()?;
    Ok((account, entries))
}

/// The event a partner or staff member reported for customer `customer_id` (in the caller's
/// scope), checked and ready for [`award_by`]. A partner reports only `partner_activity` (its
/// charging sessions), and only for the customers of dealers that granted it
/// [`Purpose::ChargingSessions`].
pub async fn reported(
    conn: &mut AnyConnection,
    caller: &Caller,
    customer_id: i64,
    reported: ReportedEvent,
) -> Result<LoyaltyEvent> {
    if caller.role == Role::Partner && reported.kind != EventKind::PartnerActivity {
        return Err(Error::Forbidden(format!(
            "a partner reports only {} events",
            EventKind::PartnerActivity.as_str()
        )));
    }
    let dealer_id =
        partners::dealer_of_customer(conn, caller, customer_id, Purpose::ChargingSessions).await?;
    let event = LoyaltyEvent {
        dealer_id,
        customer_id,
        kind: reported.kind,
        amount_fen: reported.amount_fen,
        cause: Cause {
            kind: reported.cause.kind,
            id: reported.cause.id.trim().to_owned(),
        },
        attributes: reported.attributes.into_iter().collect(),
    };
    check_event(&event)?;
    Ok(event)
}
