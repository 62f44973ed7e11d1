//! Sales orders: the vehicle's configuration and price, discount, finance plan, insurance and
//! accessories as lines, the approvals a discount or a finance plan needs, and the status
//! machine up to delivery. Owns `sales_orders`, `sales_order_lines` and `sales_order_events`
//! (the order's timeline).
//!
//! Statuses: `draft → confirmed → pdi_passed → (finance_approved →) ready → delivered`, and
//! `cancelled` from any status before `delivered`. `finance_approved` is a step only for an
//! order with a finance plan; without one, `pdi_passed` goes straight to `ready`. Confirming
//! needs the order's current approval requests (discount, finance plan) all approved.
//!
//! Terms (discount, finance plan, insurance, accessories) are revised on a draft only. A new
//! discount or finance plan is a new approval request, decided by the dealer's approval
//! plugin outside the write transaction and stored in it; the order keeps the id of its
//! current request for each, so a rejected request is replaced by revising.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::{AnyConnection, FromRow};
use utoipa::{IntoParams, ToSchema};

use super::commission::{self, CommissionLine};
use super::leads::{self, Stage};
use super::{is_active_staff, text_enum};
use crate::access::Caller;
use crate::approvals::{self, ApprovalRequest, ApprovalStatus, NewRequest, RequestKind, Subject};
use crate::audit::{self, Entry};
use crate::clock;
use crate::custom_fields::{self, Entity, Writer};
use crate::db::decode;
use crate::db::{Db, Param, Sql};
use crate::error::{Error, FieldError, Result};
use crate::model::Versioned;
use crate::outbox;
use crate::owner_links::{self, Purpose as LinkPurpose};
use crate::plugins::dispatch::Plugins;
use crate::text;
use crate::vehicles::{self, Component};
use crate::{customers, network};

pub const TEXT_MAX: usize = 200;
pub const LINES_MAX: usize = 50;
/// The most a price or a line may be: 100 million yuan.
pub const AMOUNT_MAX: i64 = 10_000_000_000;

text_enum!(
    OrderStatus {
        Draft => "draft",
        Confirmed => "confirmed",
        PdiPassed => "pdi_passed",
        FinanceApproved => "finance_approved",
        Ready => "ready",
        Delivered => "delivered",
        Cancelled => "cancelled",
    }
);

impl OrderStatus {
    /// The statuses an order in this status may move to; `finance_approved` only for an
    /// order with a finance plan.
    pub fn next(self, financed: bool) -> Vec<OrderStatus> {
        use OrderStatus::*;
        match self {
            Draft => vec![Confirmed, Cancelled],
            Confirmed => vec![PdiPassed, Cancelled],
            PdiPassed if financed => vec![FinanceApproved, Cancelled],
            PdiPassed => vec![Ready, Cancelled],
            FinanceApproved => vec![Ready, Cancelled],
            Ready => vec![Delivered, Cancelled],
            Delivered | Cancelled => Vec::new(),
        }
    }

    pub fn check_move(self, to: OrderStatus, financed: bool) -> Result<()> {
        let next = self.next(financed);
        if next.contains(&to) {
            return Ok(());
        }
        Err(Error::InvalidTransition {
            from: self.as_str().to_owned(),
            to: to.as_str().to_owned(),
            allowed: next.iter().map(|s| s.as_str().to_owned()).collect(),
        })
    }
}

text_enum!(
    /// What a line of an order is; `vehicle` and `trade-in` lines are made by the host.
    LineKind {
        Vehicle => "vehicle",
        Accessory => "accessory",
        Insurance => "insurance",
        Finance => "finance",
        ServicePackage => "service-package",
        TradeIn => "trade-in",
    }
);

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderLine {
    pub id: i64,
    pub kind: LineKind,
    pub description: String,
    /// What the customer pays for it; a trade-in line is negative (it reduces the amount due).
    pub amount_fen: i64,
    /// What it costs the dealer, for gross profit.
    pub cost_fen: i64,
    pub trade_in_id: Option<i64>,
}

/// One entry of an order's timeline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderEvent {
    pub at: DateTime<Utc>,
    /// `created`, `status`, `revised`, `approval_requested`, `trade_in`, `delivered`.
    pub kind: String,
    pub from_status: Option<OrderStatus>,
    pub to_status: OrderStatus,
    pub staff_id: Option<i64>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Order {
    pub id: i64,
    pub dealer_id: i64,
    pub customer_id: i64,
    pub lead_id: Option<i64>,
    pub consultant_id: Option<i64>,
    pub brand: String,
    pub model: String,
    pub trim: Option<String>,
    pub colour: Option<String>,
    /// Set when a vehicle is allocated; required to deliver.
    pub vin: Option<String>,
    pub list_price_fen: i64,
    pub discount_fen: i64,
    pub finance_plan: Option<String>,
    pub financed_fen: i64,
    pub insurance_product: Option<String>,
    /// The insurer of the policy sold with the car; the delivered vehicle keeps it.
    pub insurer: Option<String>,
    /// When that policy expires; the delivered vehicle keeps it (and its renewal is planned).
    pub insurance_expiry: Option<NaiveDate>,
    /// The allocated car's component batches; the delivered vehicle keeps them (campaigns
    /// find it by batch).
    pub components: Vec<Component>,
    pub status: OrderStatus,
    /// The statuses this order may move to from `status` (the one table of moves, so a
    /// client offers only those).
    pub next_statuses: Vec<OrderStatus>,
    /// Every line but trade-ins, less the discount.
    pub final_price_fen: i64,
    /// The trade-in lines (negative).
    pub trade_in_fen: i64,
    /// What the customer still pays: the final price less the trade-ins.
    pub amount_due_fen: i64,
    /// The final price less the dealer's cost of every line but trade-ins.
    pub gross_profit_fen: i64,
    pub lines: Vec<OrderLine>,
    /// The order's approval requests, oldest first; `discount_approval_id` and
    /// `finance_approval_id` name the current ones.
    pub approvals: Vec<ApprovalRequest>,
    pub discount_approval_id: Option<i64>,
    pub finance_approval_id: Option<i64>,
    pub timeline: Vec<OrderEvent>,
    pub commission: Vec<CommissionLine>,
    /// The vehicle made at delivery.
    pub vehicle_id: Option<i64>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// The values of the dealer's custom fields for orders (`GET /custom-fields?entity=order`).
    pub custom_fields: Map<String, Value>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Versioned for Order {
    fn version(&self) -> i64 {
        self.version
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[schema(as = NewOrderLine)]
#[serde(deny_unknown_fields)]
pub struct NewLine {
    /// `accessory`, `insurance`, `finance` or `service-package`.
    pub kind: LineKind,
    /// 1 to 200 characters.
    pub description: String,
    pub amount_fen: i64,
    #[serde(default)]
    pub cost_fen: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    /// The lead this sale comes from: its customer (made now if the lead has none) buys, and
    /// the lead moves to `negotiating`. Give this or `customer_id`.
    pub lead_id: Option<i64>,
    /// A customer of the dealer. Give this or `lead_id`.
    pub customer_id: Option<i64>,
    /// Required for HQ callers without a lead; otherwise the lead's or the caller's dealer.
    pub dealer_id: Option<i64>,
    /// Default the lead's consultant, else the caller.
    pub consultant_id: Option<i64>,
    pub brand: String,
    pub model: String,
    pub trim: Option<String>,
    pub colour: Option<String>,
    pub vin: Option<String>,
    pub list_price_fen: i64,
    /// What the vehicle costs the dealer.
    pub vehicle_cost_fen: i64,
    #[serde(default)]
    pub lines: Vec<NewLine>,
    /// Values of the dealer's custom fields for orders, validated against their definitions
    /// (`GET /custom-fields?entity=order`); a required one must be given.
    #[serde(default)]
    pub custom_fields: Map<String, Value>,
}

/// A revision of a draft order's terms; absent fields stay as they are. A changed discount or
/// finance plan makes a new approval request.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderPatch {
    pub discount_fen: Option<i64>,
    /// `null` removes the finance plan.
    #[serde(default, deserialize_with = "crate::model::nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub finance_plan: Option<Option<String>>,
    pub financed_fen: Option<i64>,
    #[serde(default, deserialize_with = "crate::model::nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub insurance_product: Option<Option<String>>,
    pub colour: Option<String>,
    /// The allocated vehicle (also accepted after the draft, until delivery).
    pub vin: Option<String>,
    /// The insurer of the policy sold (also accepted after the draft, until delivery); `null`
    /// removes it. 1 to 60 characters.
    #[serde(default, deserialize_with = "crate::model::nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub insurer: Option<Option<String>>,
    /// When that policy expires (also accepted after the draft, until delivery); `null`
    /// removes it.
    #[serde(default, deserialize_with = "crate::model::nullable")]
    pub insurance_expiry: Option<Option<NaiveDate>>,
    /// The allocated car's component batches, replacing the list (also accepted after the
    /// draft, until delivery).
    pub components: Option<Vec<Component>>,
    /// Replaces the accessory, insurance, finance and service-package lines.
    pub lines: Option<Vec<NewLine>>,
    /// Merged into the stored custom field values by key; a key set to `null` is removed. The
    /// result is validated against the dealer's definitions, as on create. Accepted in every
    /// status: the values are the dealer's own records, not terms of the sale.
    pub custom_fields: Option<Map<String, Value>>,
}

/// A status move.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusMove {
    /// `confirmed`, `pdi_passed`, `finance_approved`, `ready` or `cancelled` (delivery has its
    /// own call).
    pub status: OrderStatus,
    pub note: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    pub customer_id: Option<i64>,
    pub consultant_id: Option<i64>,
}

#[derive(FromRow)]
pub(crate) struct OrderRow {
    pub id: i64,
    pub dealer_id: i64,
    pub customer_id: i64,
    pub lead_id: Option<i64>,
    pub consultant_id: Option<i64>,
    pub brand: String,
    pub model: String,
    pub trim: Option<String>,
    pub colour: Option<String>,
    pub vin: Option<String>,
    pub list_price_fen: i64,
    pub discount_fen: i64,
    pub finance_plan: Option<String>,
    pub financed_fen: i64,
    pub insurance_product: Option<String>,
    pub insurer: Option<String>,
    pub insurance_expiry: Option<String>,
    pub components: String,
    pub status: String,
    pub discount_approval_id: Option<i64>,
    pub finance_approval_id: Option<i64>,
    pub vehicle_id: Option<i64>,
    pub delivered_at: Option<i64>,
    pub custom_fields: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const ORDER_COLUMNS: &str = "id, dealer_id, customer_id, lead_id, consultant_id, brand, model, trim, colour, vin, \
     list_price_fen, discount_fen, finance_plan, financed_fen, insurance_product, insurer, \
     insurance_expiry, components, status, \
     discount_approval_id, finance_approval_id, vehicle_id, delivered_at, custom_fields, version, created_at, updated_at";

impl OrderRow {
    pub(crate) fn status(&self) -> Result<OrderStatus> {
        decode("sales_orders", &self.status, OrderStatus::parse)
    }

    pub(crate) fn insurance_expiry(&self) -> Result<Option<NaiveDate>> {
        self.insurance_expiry
            .as_deref()
            .map(|d| {
                decode("sales_orders.insurance_expiry", d, |d| {
                    NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()
                })
            })
            .transpose()
    }

    pub(crate) fn components(&self) -> Result<Vec<Component>> {
        decode("sales_orders.components", &self.components, |c| {
            serde_json::from_str(c).ok()
        })
    }
}

/// Money of an order computed from its lines.
pub(crate) struct Totals {
    pub final_price: i64,
    pub trade_in: i64,
    pub gross_profit: i64,
}

pub(crate) fn totals(discount: i64, lines: &[OrderLine]) -> Totals {
    let (sold, trade): (Vec<&OrderLine>, Vec<&OrderLine>) =
        lines.iter().partition(|l| l.kind != LineKind::TradeIn);
    let final_price = sold.iter().map(|l| l.amount_fen).sum::<i64>() - discount;
    let cost: i64 = sold.iter().map(|l| l.cost_fen).sum();
    Totals {
        final_price,
        trade_in: trade.iter().map(|l| l.amount_fen).sum(),
        gross_profit: final_price - cost,
    }
}

fn check_amount(errors: &mut Vec<FieldError>, field: &str, amount: i64) {
    if !(0..=AMOUNT_MAX).contains(&amount) {
        errors.push(FieldError::new(
            field,
            "out_of_range",
            format!("{field} is 0 to {AMOUNT_MAX} fen"),
        ));
    }
}

fn check_lines(errors: &mut Vec<FieldError>, lines: &[NewLine]) {
    if lines.len() > LINES_MAX {
        errors.push(FieldError::new(
            "lines",
            "too_many",
            format!("at most {LINES_MAX} lines"),
        ));
    }
    for (i, line) in lines.iter().enumerate() {
        if matches!(line.kind, LineKind::Vehicle | LineKind::TradeIn) {
            errors.push(FieldError::new(
                format!("lines[{i}].kind"),
                "host_line",
                "vehicle and trade-in lines are made by the host",
            ));
        }
        text::required(
            errors,
            &format!("lines[{i}].description"),
            &line.description,
            TEXT_MAX,
        );
        check_amount(errors, &format!("lines[{i}].amount_fen"), line.amount_fen);
        check_amount(errors, &format!("lines[{i}].cost_fen"), line.cost_fen);
    }
}

fn check_vin(errors: &mut Vec<FieldError>, vin: Option<&str>) -> Option<String> {
    vin.and_then(|v| {
        vehicles::identity::parse_vin(v)
            .map_err(|m| errors.push(FieldError::new("vin", "invalid_vin", m)))
            .ok()
    })
}

async fn insert_lines(conn: &mut AnyConnection, order_id: i64, lines: &[NewLine]) -> Result<()> {
    for line in lines {
        sqlx::query(
            "INSERT INTO sales_order_lines (order_id, kind, description, amount_fen, cost_fen) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(order_id)
        .bind(line.kind.as_str())
        .bind(line.description.trim())
        .bind(line.amount_fen)
        .bind(line.cost_fen)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Appends an entry to the order's timeline.
pub(crate) async fn record_event(
    conn: &mut AnyConnection,
    caller: &Caller,
    order_id: i64,
    kind: &str,
    from: Option<OrderStatus>,
    to: OrderStatus,
    note: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO sales_order_events (order_id, at, kind, from_status, to_status, staff_id, note) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(order_id)
    .bind(clock::now_ms())
    .bind(kind)
    .bind(from.map(OrderStatus::as_str))
    .bind(to.as_str())
    .bind(caller.staff_id)
    .bind(note)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Creates a draft order (with its vehicle line and the given lines). From a lead, the lead's
/// customer buys (made from the lead now if needed) and the lead moves to `negotiating`.
/// Audited.
pub async fn create(conn: &mut AnyConnection, caller: &Caller, new: &NewOrder) -> Result<Order> {
    let mut errors = Vec::new();
    let brand = text::required(&mut errors, "brand", &new.brand, 50);
    let model = text::required(&mut errors, "model", &new.model, 100);
    let trim = text::optional(&mut errors, "trim", new.trim.as_deref(), 100);
    let colour = text::optional(&mut errors, "colour", new.colour.as_deref(), 50);
    let vin = check_vin(&mut errors, new.vin.as_deref());
    check_amount(&mut errors, "list_price_fen", new.list_price_fen);
    check_amount(&mut errors, "vehicle_cost_fen", new.vehicle_cost_fen);
    check_lines(&mut errors, &new.lines);
    let (dealer_id, customer_id, lead) = match (new.lead_id, new.customer_id) {
        (Some(lead_id), None) => {
            let dealer = leads::dealer_of(conn, caller, lead_id).await?;
            let lead = leads::get(conn, caller, lead_id).await?;
            (dealer, None, Some(lead))
        }
        (None, Some(customer_id)) => {
            let dealer = customers::dealer_of(conn, caller, customer_id).await?;
            (dealer, Some(customer_id), None)
        }
        _ => {
            errors.push(FieldError::new(
                "lead_id",
                "lead_or_customer",
                "give either lead_id or customer_id",
            ));
            return Err(Error::Invalid(errors));
        }
    };
    if caller.role.is_dealer_role() && new.dealer_id.is_some_and(|d| d != dealer_id) {
        errors.push(FieldError::new(
            "dealer_id",
            "not_your_dealer",
            "the order belongs to the dealer of its lead or customer",
        ));
    }
    let consultant = new
        .consultant_id
        .or(lead.as_ref().and_then(|l| l.consultant_id))
        .or(caller.staff_id);
    if let Some(c) = consultant
        && !is_active_staff(conn, dealer_id, c).await?
    {
        errors.push(FieldError::new(
            "consultant_id",
            "unknown_staff",
            "not an active staff member of the order's dealer",
        ));
    }
    if let Some(lead) = &lead
        && !lead.stage.is_open()
    {
        lead.stage.check_move(Stage::Negotiating)?;
    }
    custom_fields::validate(
        conn,
        dealer_id,
        Entity::Order,
        Writer::Staff,
        &new.custom_fields,
        &mut errors,
    )
    .await?;
    let (Some(brand), Some(model)) = (brand, model) else {
        return Err(Error::Invalid(errors));
    };
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let customer_id = match (customer_id, &lead) {
        (Some(c), _) => c,
        (None, Some(lead)) => leads::ensure_customer(conn, caller, lead.id).await?,
        (None, None) => return Err(Error::NotFound { entity: "customer" }),
    };
    let now = clock::now_ms();
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO sales_orders (dealer_id, customer_id, lead_id, consultant_id, brand, model, trim, colour, vin, \
         list_price_fen, vehicle_cost_fen, status, custom_fields, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) RETURNING id",
    )
    .bind(dealer_id)
    .bind(customer_id)
    .bind(new.lead_id)
    .bind(consultant)
    .bind(&brand)
    .bind(&model)
    .bind(trim.as_deref())
    .bind(colour.as_deref())
    .bind(vin.as_deref())
    .bind(new.list_price_fen)
    .bind(new.vehicle_cost_fen)
    .bind(OrderStatus::Draft.as_str())
    .bind(custom_fields::to_column(&new.custom_fields))
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    let vehicle_line = NewLine {
        kind: LineKind::Vehicle,
        description: [Some(brand.as_str()), Some(model.as_str()), trim.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" "),
        amount_fen: new.list_price_fen,
        cost_fen: new.vehicle_cost_fen,
    };
    insert_lines(conn, id, std::slice::from_ref(&vehicle_line)).await?;
    insert_lines(conn, id, &new.lines).await?;
    record_event(conn, caller, id, "created", None, OrderStatus::Draft, None).await?;
    if let Some(lead) = &lead {
        leads::advance(conn, caller, lead.id, Stage::Negotiating, "order created").await?;
    }
    audit::record(
        conn,
        caller,
        Entry::ok("create", "sales_order", id, dealer_id),
    )
    .await?;
    load(conn, id).await
}

/// The dealer of order `id` if the caller can see it (else not found, audited by the API).
pub async fn dealer_of(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<i64> {
    crate::access::owning_dealer(conn, caller, crate::access::Record::SalesOrder, id).await
}

/// Order `id` with its lines, approvals, timeline and commission lines.
pub async fn get(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<Order> {
    dealer_of(conn, caller, id).await?;
    load(conn, id).await
}

pub(crate) async fn fetch_row(conn: &mut AnyConnection, id: i64) -> Result<OrderRow> {
    let row: Option<OrderRow> = sqlx::query_as(&format!(
        "SELECT {ORDER_COLUMNS} FROM sales_orders WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or(Error::NotFound {
        entity: "sales_order",
    })
}

pub(crate) async fn lines_of(conn: &mut AnyConnection, order_id: i64) -> Result<Vec<OrderLine>> {
    let rows: Vec<(i64, String, String, i64, i64, Option<i64>)> = sqlx::query_as(
        "SELECT id, kind, description, amount_fen, cost_fen, trade_in_id FROM sales_order_lines \
         WHERE order_id = $1 ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(
            |(id, kind, description, amount_fen, cost_fen, trade_in_id)| {
                Ok(OrderLine {
                    id,
                    kind: decode("sales_order_lines", &kind, LineKind::parse)?,
                    description,
                    amount_fen,
                    cost_fen,
                    trade_in_id,
                })
            },
        )
        .collect()
}

#[derive(FromRow)]
struct EventRow {
    at: i64,
    kind: String,
    from_status: Option<String>,
    to_status: String,
    staff_id: Option<i64>,
    note: Option<String>,
}

async fn timeline_of(conn: &mut AnyConnection, order_id: i64) -> Result<Vec<OrderEvent>> {
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT at, kind, from_status, to_status, staff_id, note FROM sales_order_events \
         WHERE order_id = $1 ORDER BY at, id",
    )
    .bind(order_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(OrderEvent {
                at: clock::to_datetime(r.at),
                kind: r.kind,
                from_status: r
                    .from_status
                    .as_deref()
                    .map(|s| decode("sales_order_events", s, OrderStatus::parse))
                    .transpose()?,
                to_status: decode("sales_order_events", &r.to_status, OrderStatus::parse)?,
                staff_id: r.staff_id,
                note: r.note,
            })
        })
        .collect()
}

/// Order `id`, silently (callers have checked its scope).
pub(crate) async fn load(conn: &mut AnyConnection, id: i64) -> Result<Order> {
    let row = fetch_row(conn, id).await?;
    let lines = lines_of(conn, id).await?;
    let approvals = approvals::for_subject(conn, Subject::SalesOrder(id)).await?;
    let timeline = timeline_of(conn, id).await?;
    let commission = commission::for_order(conn, id).await?;
    let totals = totals(row.discount_fen, &lines);
    let status = row.status()?;
    Ok(Order {
        status,
        next_statuses: status.next(row.finance_plan.is_some()),
        insurance_expiry: row.insurance_expiry()?,
        components: row.components()?,
        id: row.id,
        dealer_id: row.dealer_id,
        customer_id: row.customer_id,
        lead_id: row.lead_id,
        consultant_id: row.consultant_id,
        brand: row.brand,
        model: row.model,
        trim: row.trim,
        colour: row.colour,
        vin: row.vin,
        list_price_fen: row.list_price_fen,
        discount_fen: row.discount_fen,
        finance_plan: row.finance_plan,
        financed_fen: row.financed_fen,
        insurer: row.insurer,
        insurance_product: row.insurance_product,
        final_price_fen: totals.final_price,
        trade_in_fen: totals.trade_in,
        amount_due_fen: totals.final_price + totals.trade_in,
        gross_profit_fen: totals.gross_profit,
        lines,
        approvals,
        discount_approval_id: row.discount_approval_id,
        finance_approval_id: row.finance_approval_id,
        timeline,
        commission,
        vehicle_id: row.vehicle_id,
        delivered_at: clock::opt_datetime(row.delivered_at),
        custom_fields: custom_fields::from_column(&row.custom_fields),
        version: row.version,
        created_at: clock::to_datetime(row.created_at),
        updated_at: clock::to_datetime(row.updated_at),
    })
}

/// Orders in the caller's scope matching `filter`, newest first; `limit + 1` at most.
pub async fn list(
    conn: &mut AnyConnection,
    caller: &Caller,
    filter: &OrderFilter,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<Order>> {
    let mut sql = Sql::new("SELECT id FROM sales_orders WHERE 1 = 1");
    caller.scope(&mut sql, "dealer_id");
    if let Some(s) = filter.status {
        sql.push(" AND status = ")
            .bind(Param::Text(s.as_str().to_owned()));
    }
    if let Some(c) = filter.customer_id {
        sql.push(" AND customer_id = ").bind(Param::Int(c));
    }
    if let Some(c) = filter.consultant_id {
        sql.push(" AND consultant_id = ").bind(Param::Int(c));
    }
    if let Some(b) = before_id {
        sql.push(" AND id < ").bind(Param::Int(b));
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .bind(Param::Int(limit + 1));
    let ids: Vec<(i64,)> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    let mut orders = Vec::with_capacity(ids.len());
    for (id,) in ids {
        orders.push(load(conn, id).await?);
    }
    Ok(orders)
}

/// Sales orders of dealers other than `dealer_id` for customers `customer_ids`, vehicles
/// `vehicle_ids` or cars `vins` (the network history of the 360 view), newest first, `limit`
/// at most.
pub async fn elsewhere(
    conn: &mut AnyConnection,
    dealer_id: i64,
    customer_ids: &[i64],
    vehicle_ids: &[i64],
    vins: &[String],
    limit: i64,
) -> Result<Vec<Order>> {
    let mut sql = Sql::new("SELECT id FROM sales_orders WHERE dealer_id <> ");
    sql.bind(Param::Int(dealer_id))
        .push_in_any(vec![
            ("customer_id", Sql::ints(customer_ids)),
            ("vehicle_id", Sql::ints(vehicle_ids)),
            ("vin", vins.iter().cloned().map(Param::Text).collect()),
        ])
        .push(" ORDER BY id DESC LIMIT ")
        .bind(Param::Int(limit));
    let ids: Vec<(i64,)> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    let mut orders = Vec::with_capacity(ids.len());
    for (id,) in ids {
        orders.push(load(conn, id).await?);
    }
    Ok(orders)
}

/// Moves order `id` from version `expected` to the next one, if it is still in `status`;
/// otherwise a stale version (412) or, when the status moved, the refused transition.
pub(crate) async fn claim(
    conn: &mut AnyConnection,
    id: i64,
    expected: i64,
    from: OrderStatus,
) -> Result<()> {
    let claimed = sqlx::query(
        "UPDATE sales_orders SET version = version + 1, updated_at = $1 WHERE id = $2 AND version = $3 AND status = $4",
    )
    .bind(clock::now_ms())
    .bind(id)
    .bind(expected)
    .bind(from.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if claimed == 0 {
        let row = fetch_row(conn, id).await?;
        return Err(Error::StaleVersion {
            current: row.version,
        });
    }
    Ok(())
}

/// An approval request a revision needs, decided before the write.
struct Planned {
    kind: RequestKind,
    request: NewRequest,
}

/// Revises a draft order's terms, its vehicle and policy until delivery, and its custom fields
/// in any status (the merged values validated as on create). A changed discount or finance
/// plan is decided by the dealer's approval plugin (outside the write transaction) and stored
/// as a new approval request in it, with an entry in the timeline. Audited.
pub async fn revise(
    db: &Db,
    plugins: &Plugins,
    caller: &Caller,
    id: i64,
    expected: i64,
    patch: &OrderPatch,
) -> Result<Order> {
    let mut conn = db.pool().acquire().await?;
    let dealer_id = dealer_of(&mut conn, caller, id).await?;
    let row = fetch_row(&mut conn, id).await?;
    if row.version != expected {
        return Err(Error::StaleVersion {
            current: row.version,
        });
    }
    let status = row.status()?;
    let mut errors = Vec::new();
    if let Some(d) = patch.discount_fen {
        check_amount(&mut errors, "discount_fen", d);
        if d > row.list_price_fen {
            errors.push(FieldError::new(
                "discount_fen",
                "above_price",
                "a discount is at most the list price",
            ));
        }
    }
    if let Some(f) = patch.financed_fen {
        check_amount(&mut errors, "financed_fen", f);
    }
    let finance_plan = patch
        .finance_plan
        .as_ref()
        .map(|p| text::optional(&mut errors, "finance_plan", p.as_deref(), TEXT_MAX));
    let insurance = patch
        .insurance_product
        .as_ref()
        .map(|p| text::optional(&mut errors, "insurance_product", p.as_deref(), TEXT_MAX));
    let colour = patch
        .colour
        .as_deref()
        .map(|c| text::required(&mut errors, "colour", c, 50));
    let vin = check_vin(&mut errors, patch.vin.as_deref());
    let insurer = patch
        .insurer
        .as_ref()
        .map(|i| text::optional(&mut errors, "insurer", i.as_deref(), vehicles::INSURER_MAX));
    let components = patch.components.clone().map(|mut components| {
        vehicles::check_components(&mut errors, &mut components);
        components
    });
    if let Some(lines) = &patch.lines {
        check_lines(&mut errors, lines);
    }
    let fields = custom_fields::merge(
        custom_fields::from_column(&row.custom_fields),
        patch.custom_fields.clone(),
    );
    custom_fields::validate(
        &mut conn,
        dealer_id,
        Entity::Order,
        Writer::Staff,
        &fields,
        &mut errors,
    )
    .await?;
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let terms_change = patch.discount_fen.is_some()
        || patch.finance_plan.is_some()
        || patch.financed_fen.is_some()
        || patch.insurance_product.is_some()
        || patch.colour.is_some()
        || patch.lines.is_some();
    if terms_change && status != OrderStatus::Draft {
        return Err(Error::Conflict {
            code: "order_not_draft",
            message: format!(
                "the terms of a {} order are fixed; only a draft is revised",
                status.as_str()
            ),
        });
    }
    let handover_change = vin.is_some()
        || insurer.is_some()
        || patch.insurance_expiry.is_some()
        || components.is_some();
    if handover_change && matches!(status, OrderStatus::Delivered | OrderStatus::Cancelled) {
        return Err(Error::Conflict {
            code: "order_closed",
            message: format!(
                "a {} order takes no vehicle, policy or components",
                status.as_str()
            ),
        });
    }
    let discount = patch.discount_fen.unwrap_or(row.discount_fen);
    let plan = finance_plan.clone().unwrap_or(row.finance_plan.clone());
    let financed = if plan.is_some() {
        patch.financed_fen.unwrap_or(row.financed_fen)
    } else {
        0
    };
    let new_lines = match &patch.lines {
        Some(lines) => lines
            .iter()
            .map(|l| OrderLine {
                id: 0,
                kind: l.kind,
                description: l.description.clone(),
                amount_fen: l.amount_fen,
                cost_fen: l.cost_fen,
                trade_in_id: None,
            })
            .chain(
                lines_of(&mut conn, id)
                    .await?
                    .into_iter()
                    .filter(|l| matches!(l.kind, LineKind::Vehicle | LineKind::TradeIn)),
            )
            .collect(),
        None => lines_of(&mut conn, id).await?,
    };
    let final_price = totals(discount, &new_lines).final_price;
    let staff = match caller.staff_id {
        Some(s) => Some(network::staff_member(&mut conn, s).await?),
        None => None,
    };
    let request = |kind: RequestKind, amount: i64, base: i64, description: String| NewRequest {
        dealer_id,
        subject: Subject::SalesOrder(id),
        kind,
        requested_by: staff.as_ref().map(|s| s.id),
        customer_id: Some(row.customer_id),
        amount_fen: amount,
        base_amount_fen: base,
        description,
        attributes: vec![
            ("model".to_owned(), row.model.clone()),
            ("finance_plan".to_owned(), plan.clone().unwrap_or_default()),
        ],
    };
    let mut planned = Vec::new();
    if discount != row.discount_fen && discount > 0 {
        planned.push(Planned {
            kind: RequestKind::Discount,
            request: request(
                RequestKind::Discount,
                discount,
                row.list_price_fen,
                format!("a discount on {} {}", row.brand, row.model),
            ),
        });
    }
    if plan.is_some() && (plan != row.finance_plan || financed != row.financed_fen) {
        planned.push(Planned {
            kind: RequestKind::FinancePlan,
            request: request(
                RequestKind::FinancePlan,
                financed,
                final_price,
                format!("finance plan {}", plan.clone().unwrap_or_default()),
            ),
        });
    }
    let mut questions = Vec::new();
    for p in planned {
        let question = approvals::question(&mut conn, &p.request).await?;
        questions.push((p, question));
    }
    drop(conn);
    let mut decided = Vec::new();
    for (p, question) in questions {
        decided.push((p, approvals::decide(plugins, question).await?));
    }

    let mut tx = db.begin_write().await?;
    claim(&mut tx, id, expected, status).await?;
    let mut changed = Vec::new();
    let mut sql = Sql::new("UPDATE sales_orders SET discount_fen = ");
    sql.bind(Param::Int(discount))
        .push(", finance_plan = ")
        .bind(Param::OptText(plan.clone()))
        .push(", financed_fen = ")
        .bind(Param::Int(financed));
    if discount != row.discount_fen {
        changed.push("discount_fen");
        if discount == 0 {
            sql.push(", discount_approval_id = NULL");
        }
    }
    if plan != row.finance_plan || financed != row.financed_fen {
        changed.push("finance_plan");
        if plan.is_none() {
            sql.push(", finance_approval_id = NULL");
        }
    }
    if let Some(insurance) = insurance {
        sql.push(", insurance_product = ")
            .bind(Param::OptText(insurance));
        changed.push("insurance_product");
    }
    if let Some(Some(colour)) = colour {
        sql.push(", colour = ").bind(Param::Text(colour));
        changed.push("colour");
    }
    if let Some(vin) = vin {
        sql.push(", vin = ").bind(Param::Text(vin));
        changed.push("vin");
    }
    if let Some(insurer) = insurer {
        sql.push(", insurer = ").bind(Param::OptText(insurer));
        changed.push("insurer");
    }
    if let Some(expiry) = patch.insurance_expiry {
        sql.push(", insurance_expiry = ")
            .bind(Param::OptText(expiry.map(|d| d.to_string())));
        changed.push("insurance_expiry");
    }
    if let Some(components) = &components {
        sql.push(", components = ").bind(Param::Text(
            serde_json::to_string(components).unwrap_or_default(),
        ));
        changed.push("components");
    }
    if patch.custom_fields.is_some() {
        sql.push(", custom_fields = ")
            .bind(Param::Text(custom_fields::to_column(&fields)));
        changed.push("custom_fields");
    }
    for (p, decision) in decided {
        let stored = approvals::store(&mut tx, &p.request, decision, caller).await?;
        let column = match p.kind {
            RequestKind::Discount => "discount_approval_id",
            _ => "finance_approval_id",
        };
        sql.push(&format!(", {column} = "))
            .bind(Param::Int(stored.id));
        record_event(
            &mut tx,
            caller,
            id,
            "approval_requested",
            Some(status),
            status,
            Some(&format!(
                "{} approval request {}: {}",
                column.trim_end_matches("_approval_id"),
                stored.id,
                stored.status.as_str()
            )),
        )
        .await?;
    }
    sql.push(" WHERE id = ").bind(Param::Int(id));
    sqlx::query_with(sql.text(), sql.arguments())
        .execute(&mut *tx)
        .await?;
    if let Some(lines) = &patch.lines {
        sqlx::query("DELETE FROM sales_order_lines WHERE order_id = $1 AND kind NOT IN ($2, $3)")
            .bind(id)
            .bind(LineKind::Vehicle.as_str())
            .bind(LineKind::TradeIn.as_str())
            .execute(&mut *tx)
            .await?;
        insert_lines(&mut tx, id, lines).await?;
        changed.push("lines");
    }
    record_event(&mut tx, caller, id, "revised", Some(status), status, None).await?;
    audit::record(
        &mut tx,
        caller,
        Entry::ok("update", "sales_order", id, dealer_id)
            .with_detail(serde_json::json!({ "changed": changed })),
    )
    .await?;
    let order = load(&mut tx, id).await?;
    tx.commit().await?;
    Ok(order)
}

/// Refuses to confirm unless each current approval request is approved.
fn check_approvals(row: &OrderRow, requests: &[ApprovalRequest]) -> Result<()> {
    let current = [row.discount_approval_id, row.finance_approval_id];
    let needed = [
        row.discount_fen > 0 && row.discount_approval_id.is_none(),
        row.finance_plan.is_some() && row.finance_approval_id.is_none(),
    ];
    if needed.iter().any(|n| *n) {
        return Err(Error::Conflict {
            code: "approval_missing",
            message: "the discount or finance plan has no approval request; revise the order"
                .into(),
        });
    }
    for id in current.into_iter().flatten() {
        match requests.iter().find(|r| r.id == id).map(|r| r.status) {
            Some(ApprovalStatus::Approved) => {}
            Some(ApprovalStatus::Rejected) => {
                return Err(Error::Conflict {
                    code: "approval_rejected",
                    message: format!(
                        "approval request {id} was rejected; revise the order to ask again"
                    ),
                });
            }
            _ => {
                return Err(Error::Conflict {
                    code: "approval_pending",
                    message: format!("approval request {id} is still pending"),
                });
            }
        }
    }
    Ok(())
}

/// Moves order `id` (at version `expected`) to `to`; confirming needs every current approval
/// approved and wins the order's lead; delivery has its own call
/// ([`super::delivery::deliver`]). Recorded in the timeline and audited.
pub async fn move_status(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
    expected: i64,
    step: &StatusMove,
) -> Result<Order> {
    let dealer_id = dealer_of(conn, caller, id).await?;
    let mut errors = Vec::new();
    let note = text::optional(&mut errors, "note", step.note.as_deref(), TEXT_MAX);
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let row = fetch_row(conn, id).await?;
    if row.version != expected {
        return Err(Error::StaleVersion {
            current: row.version,
        });
    }
    let from = row.status()?;
    let to = step.status;
    from.check_move(to, row.finance_plan.is_some())?;
    if to == OrderStatus::Delivered {
        return Err(Error::invalid(
            "status",
            "use_delivery",
            "deliver with POST /orders/{id}/delivery",
        ));
    }
    if to == OrderStatus::Confirmed {
        let requests = approvals::for_subject(conn, Subject::SalesOrder(id)).await?;
        check_approvals(&row, &requests)?;
    }
    claim(conn, id, expected, from).await?;
    sqlx::query("UPDATE sales_orders SET status = $1 WHERE id = $2")
        .bind(to.as_str())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    record_event(conn, caller, id, "status", Some(from), to, note.as_deref()).await?;
    if to == OrderStatus::Confirmed
        && let Some(lead) = row.lead_id
    {
        leads::advance(conn, caller, lead, Stage::Won, "order confirmed").await?;
    }
    if to == OrderStatus::Confirmed {
        send_tracking_link(conn, dealer_id, id, row.customer_id).await?;
    }
    audit::record(
        conn,
        caller,
        Entry::ok("update", "sales_order", id, dealer_id).with_detail(
            serde_json::json!({ "changed": ["status"], "from": from.as_str(), "to": to.as_str() }),
        ),
    )
    .await?;
    load(conn, id).await
}

/// How long the owner can follow an order: longer than any wait for a car.
const TRACKING_LINK_TTL_MS: i64 = 365 * 24 * 3_600_000;

/// Once an order is confirmed, its owner gets a link to follow it until delivery (by SMS,
/// once per order).
async fn send_tracking_link(
    conn: &mut AnyConnection,
    dealer_id: i64,
    id: i64,
    customer_id: i64,
) -> Result<()> {
    let key = format!("order:{id}:tracking");
    if outbox::enqueued(conn, &key).await? {
        return Ok(());
    }
    let link = owner_links::issue(
        conn,
        dealer_id,
        LinkPurpose::OrderTracking,
        id,
        TRACKING_LINK_TTL_MS,
        false,
    )
    .await?;
    let message = outbox::Message {
        channel: "sms".to_owned(),
        recipient: format!("customer:{customer_id}"),
        template: "order-confirmed".to_owned(),
        data: vec![
            ("order-id".to_owned(), id.to_string()),
            (
                "tracking-url".to_owned(),
                owner_links::page(LinkPurpose::OrderTracking, &link.token),
            ),
        ],
        purpose: outbox::Purpose::Service,
    };
    outbox::enqueue(conn, dealer_id, &message, Some(&key)).await?;
    Ok(())
}

impl OrderStatus {
    /// The status in the owner's words.
    fn for_owner(self) -> &'static str {
        match self {
            OrderStatus::Draft => "订单已创建",
            OrderStatus::Confirmed => "订单已确认，正在为您备车",
            OrderStatus::PdiPassed => "新车已到店并通过交付前检查",
            OrderStatus::FinanceApproved => "贷款已审批通过",
            OrderStatus::Ready => "新车已准备好，等待您来提车",
            OrderStatus::Delivered => "已交车，祝您用车愉快",
            OrderStatus::Cancelled => "订单已取消",
        }
    }
}

/// A car order as its owner follows it through the link sent when it was confirmed: the
/// dealer, the car ordered, the status and its history in the owner's words, the amount still
/// due. No staff, prices of lines, approvals or internal notes.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OwnerOrder {
    pub dealer: String,
    /// The number the owner calls the dealer on.
    pub dealer_phone: Option<String>,
    /// Brand, model, trim and colour.
    pub vehicle: String,
    pub status: OrderStatus,
    pub text: &'static str,
    /// Oldest first.
    pub steps: Vec<OwnerOrderStep>,
    pub amount_due_fen: i64,
    pub delivered: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OwnerOrderStep {
    pub at: DateTime<Utc>,
    pub status: OrderStatus,
    pub text: &'static str,
}

/// The owner's view of the order behind `token`.
pub async fn for_owner(conn: &mut AnyConnection, token: &str) -> Result<OwnerOrder> {
    let link = owner_links::resolve(conn, LinkPurpose::OrderTracking, token).await?;
    let order = load(conn, link.subject_id).await?;
    let dealer = network::contact(conn, order.dealer_id).await?;
    let mut steps: Vec<OwnerOrderStep> = Vec::new();
    for event in &order.timeline {
        if steps.last().is_some_and(|s| s.status == event.to_status) {
            continue;
        }
        steps.push(OwnerOrderStep {
            at: event.at,
            status: event.to_status,
            text: event.to_status.for_owner(),
        });
    }
    Ok(OwnerOrder {
        dealer: dealer.name,
        dealer_phone: dealer.phone,
        vehicle: [
            Some(order.brand),
            Some(order.model),
            order.trim,
            order.colour,
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" "),
        status: order.status,
        text: order.status.for_owner(),
        steps,
        amount_due_fen: order.amount_due_fen,
        delivered: order.status == OrderStatus::Delivered,
    })
}

/// The order's lines as the plugin contract's `order-line` records (the kinds are already the
/// contract's names: `trade-in`, `service-package`, ...).
pub(crate) fn contract_lines(
    lines: &[OrderLine],
) -> Vec<crate::plugins::bindings::types::OrderLine> {
    lines
        .iter()
        .map(|l| crate::plugins::bindings::types::OrderLine {
            kind: l.kind.as_str().to_owned(),
            description: l.description.clone(),
            amount: l.amount_fen,
            cost: l.cost_fen,
        })
        .collect()
}

/// How many orders each consultant delivered from `month_start` to before `month_end`.
pub(crate) async fn delivered_in_month(
    conn: &mut AnyConnection,
    consultants: &[i64],
    month_start: i64,
    month_end: i64,
) -> Result<HashMap<i64, u32>> {
    let mut counts = HashMap::new();
    if consultants.is_empty() {
        return Ok(counts);
    }
    let mut sql = Sql::new(
        "SELECT consultant_id, COUNT(*) FROM sales_orders WHERE status = 'delivered' AND delivered_at >= ",
    );
    sql.bind(Param::Int(month_start))
        .push(" AND delivered_at < ")
        .bind(Param::Int(month_end))
        .push(" AND consultant_id IN ")
        .push_list(consultants.iter().copied().map(Param::Int))
        .push(" GROUP BY consultant_id");
    let rows: Vec<(i64, i64)> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    for (staff, count) in rows {
        counts.insert(staff, u32::try_from(count).unwrap_or(u32::MAX));
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus::*;

    #[test]
    fn finance_approved_is_a_step_only_with_a_finance_plan() {
        assert!(PdiPassed.check_move(FinanceApproved, true).is_ok());
        assert!(PdiPassed.check_move(Ready, true).is_err());
        assert!(PdiPassed.check_move(Ready, false).is_ok());
        match PdiPassed.check_move(FinanceApproved, false) {
            Err(Error::InvalidTransition { allowed, .. }) => {
                assert_eq!(allowed, ["ready", "cancelled"]);
            }
            other => panic!("no finance step without a plan: {other:?}"),
        }
        assert!(Delivered.next(true).is_empty());
        assert!(Cancelled.next(false).is_empty());
    }

    #[test]
    fn totals_leave_trade_ins_out_of_price_and_profit() {
        let line = |kind, amount_fen, cost_fen| OrderLine {
            id: 0,
            kind,
            description: String::new(),
            amount_fen,
            cost_fen,
            trade_in_id: None,
        };
        let lines = [
            line(LineKind::Vehicle, 20_000_000, 18_000_000),
            line(LineKind::Accessory, 500_000, 200_000),
            line(LineKind::TradeIn, -6_000_000, 0),
        ];
        let t = totals(1_000_000, &lines);
        assert_eq!(t.final_price, 19_500_000);
        assert_eq!(t.trade_in, -6_000_000);
        assert_eq!(t.gross_profit, 1_300_000);
        assert_eq!(LineKind::parse("trade-in"), Some(LineKind::TradeIn));
    }
}
