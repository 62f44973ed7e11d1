//! Repair orders: check-in inspection, labour and parts lines, technician dispatch, progress,
//! quality check, settlement and payment, with a timeline and comeback tracking. Owns
//! `repair_orders`, `repair_order_events`, `inspection_items`, `repair_order_lines` and
//! `repair_order_payments`.
//!
//! The status machine is [`RoStatus::next`]: `open → inspected → in_progress ⇄
//! waiting_approval`, `in_progress → quality_check → ready` (or back to work), `ready →
//! settled → paid`; `open` and `inspected` may be cancelled. A repair order for the same
//! vehicle and complaint code within 30 days of the settlement of the previous one is a
//! comeback of it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::{AnyConnection, FromRow};
use utoipa::{IntoParams, ToSchema};

use super::appointments::ServiceType;
use super::{Period, appointments};
use crate::access::Caller;
use crate::attachments::{self, Attachment};
use crate::audit::{self, Actor, Entry};
use crate::clock;
use crate::custom_fields::{self, Entity, Writer};
use crate::db::{Db, Param, Sql, decode};
use crate::domain_events::{self, FollowUp};
use crate::error::{Error, FieldError, Result};
use crate::integrations::DomainEvent;
use crate::loyalty::{Cause, EventKind, LoyaltyEvent};
use crate::model::Versioned;
use crate::network;
use crate::owner_links::{self, Purpose};
use crate::plugins::dispatch::Plugins;
use crate::text;
use crate::vehicles::{self, mileage};
use crate::{outbox, surveys};

/// A repair order for the same issue within this long after a settlement is a comeback.
pub const COMEBACK_WINDOW_MS: i64 = 30 * 86_400_000;
/// How long the owner's link to follow a repair works: 90 days.
pub const OWNER_LINK_TTL_MS: i64 = 90 * 86_400_000;
const CODE_MAX: usize = 60;
const TEXT_MAX: usize = 2000;
const ITEM_MAX: usize = 100;
const METHOD_MAX: usize = 40;
/// Largest unit price or extra-work amount: 100 million yuan.
pub const AMOUNT_MAX_FEN: i64 = 10_000_000_000;
/// Largest quantity of a line.
const QUANTITY_MAX: f64 = 100_000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoStatus {
    /// Opened, the car is at the dealer.
    Open,
    /// Check-in inspection recorded.
    Inspected,
    /// A technician is working on it.
    InProgress,
    /// Extra work waits for the owner's decision.
    WaitingApproval,
    QualityCheck,
    /// Passed the quality check, waiting for settlement.
    Ready,
    Settled,
    /// Paid in full; final.
    Paid,
    Cancelled,
}

impl RoStatus {
    pub const ALL: [RoStatus; 9] = [
        RoStatus::Open,
        RoStatus::Inspected,
        RoStatus::InProgress,
        RoStatus::WaitingApproval,
        RoStatus::QualityCheck,
        RoStatus::Ready,
        RoStatus::Settled,
        RoStatus::Paid,
        RoStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RoStatus::Open => "open",
            RoStatus::Inspected => "inspected",
            RoStatus::InProgress => "in_progress",
            RoStatus::WaitingApproval => "waiting_approval",
            RoStatus::QualityCheck => "quality_check",
            RoStatus::Ready => "ready",
            RoStatus::Settled => "settled",
            RoStatus::Paid => "paid",
            RoStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<RoStatus> {
        RoStatus::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The states a repair order in this state may move to.
    pub fn next(self) -> &'static [RoStatus] {
        use RoStatus::*;
        match self {
            Open => &[Inspected, Cancelled],
            Inspected => &[InProgress, Cancelled],
            InProgress => &[WaitingApproval, QualityCheck],
            WaitingApproval => &[InProgress],
            QualityCheck => &[Ready, InProgress],
            Ready => &[Settled],
            Settled => &[Paid],
            Paid | Cancelled => &[],
        }
    }

    pub fn check_move(self, to: RoStatus) -> Result<()> {
        if self.next().contains(&to) {
            return Ok(());
        }
        Err(Error::InvalidTransition {
            from: self.as_str().to_owned(),
            to: to.as_str().to_owned(),
            allowed: self.next().iter().map(|s| s.as_str().to_owned()).collect(),
        })
    }

    /// Whether lines, photos and progress may still be added.
    fn is_open_for_work(self) -> bool {
        !matches!(
            self,
            RoStatus::Settled | RoStatus::Paid | RoStatus::Cancelled
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = InspectionGrade)]
#[serde(rename_all = "snake_case")]
pub enum Grade {
    Green,
    Yellow,
    Red,
}

impl Grade {
    fn as_str(self) -> &'static str {
        match self {
            Grade::Green => "green",
            Grade::Yellow => "yellow",
            Grade::Red => "red",
        }
    }

    fn parse(s: &str) -> Option<Grade> {
        [Grade::Green, Grade::Yellow, Grade::Red]
            .into_iter()
            .find(|g| g.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = RepairLineKind)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    Labour,
    Part,
}

impl LineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LineKind::Labour => "labour",
            LineKind::Part => "part",
        }
    }

    pub fn parse(s: &str) -> Option<LineKind> {
        [LineKind::Labour, LineKind::Part]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InspectionItem {
    /// e.g. 刹车片, tyres, battery (1 to 100 characters).
    pub item: String,
    pub grade: Grade,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Line {
    pub id: i64,
    pub kind: LineKind,
    pub description: String,
    pub quantity: f64,
    pub unit_price_fen: i64,
    /// `quantity × unit_price_fen`, rounded to the fen.
    pub amount_fen: i64,
    /// The extra-work item this line came from, once the owner approved it.
    pub extra_work_item_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Payment {
    pub id: i64,
    pub method: String,
    pub amount_fen: i64,
    pub paid_at: DateTime<Utc>,
}

/// One entry of the timeline. `kind` is what happened (created, check_in, dispatch, status,
/// progress, line, extra_work, owner_decision, quality_check, settlement, payment, revised).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub from_status: Option<RoStatus>,
    pub to_status: RoStatus,
    pub note: Option<String>,
    /// The staff key that did it, or absent when the owner did it through a link.
    pub actor_key_id: Option<i64>,
    pub owner_link_id: Option<i64>,
}

/// A photo of the repair: of the check-in (no `event_id`) or of a progress update.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Photo {
    pub event_id: Option<i64>,
    pub attachment: Attachment,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RepairOrder {
    pub id: i64,
    pub dealer_id: i64,
    pub customer_id: i64,
    pub vehicle_id: i64,
    pub appointment_id: Option<i64>,
    /// The issue category comebacks are matched on.
    pub complaint_code: String,
    pub complaint: String,
    pub status: RoStatus,
    /// The statuses this order may move to from `status` (the one table of moves, so a
    /// client offers only those).
    pub next_statuses: Vec<RoStatus>,
    pub technician_staff_id: Option<i64>,
    /// The odometer at check-in.
    pub mileage_km: Option<i64>,
    /// The earlier repair order of the same vehicle and issue this one comes back for.
    pub comeback_of_id: Option<i64>,
    /// The staff member who opened the order (the service advisor), when the key names one.
    pub advisor_staff_id: Option<i64>,
    pub service_type: ServiceType,
    pub labour_fen: i64,
    pub parts_fen: i64,
    pub total_fen: i64,
    pub paid_fen: i64,
    pub outstanding_fen: i64,
    pub settled_at: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    pub inspection: Vec<InspectionItem>,
    pub lines: Vec<Line>,
    pub payments: Vec<Payment>,
    /// Oldest first.
    pub events: Vec<RoEvent>,
    pub photos: Vec<Photo>,
    /// The values of the dealer's custom fields for repair orders
    /// (`GET /custom-fields?entity=repair_order`).
    pub custom_fields: Map<String, Value>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The owner's link to follow the repair (`GET /api/v1/owner/repairs/{token}`), shown
    /// once: in the answer that opened the order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_link: Option<owner_links::Issued>,
}

impl Versioned for RepairOrder {
    fn version(&self) -> i64 {
        self.version
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRepairOrder {
    /// Required for HQ callers; dealer staff leave it out.
    pub dealer_id: Option<i64>,
    /// An arrived appointment this order is opened from; its customer and vehicle are used.
    pub appointment_id: Option<i64>,
    /// Required without an appointment.
    pub customer_id: Option<i64>,
    /// Required without an appointment.
    pub vehicle_id: Option<i64>,
    /// The issue category, e.g. `brake_noise` (1 to 60 characters).
    pub complaint_code: String,
    /// What the owner reports (up to 2000 characters).
    pub complaint: Option<String>,
    /// The kind of visit; an order opened from an appointment takes the appointment's, and
    /// one without either is a `repair`.
    pub service_type: Option<ServiceType>,
    /// Values of the dealer's custom fields for repair orders, validated against their
    /// definitions (`GET /custom-fields?entity=repair_order`); a required one must be given.
    #[serde(default)]
    pub custom_fields: Map<String, Value>,
}

/// A change to a repair order; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepairOrderPatch {
    /// Merged into the stored custom field values by key; a key set to `null` is removed. The
    /// result is validated against the dealer's definitions, as on create.
    pub custom_fields: Option<Map<String, Value>>,
}

impl RepairOrderPatch {
    /// The names of the fields this patch sets (what the audit log records, never the values).
    pub fn fields(&self) -> Vec<&'static str> {
        [("custom_fields", self.custom_fields.is_some())]
            .into_iter()
            .filter_map(|(name, set)| set.then_some(name))
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckIn {
    /// The odometer, recorded as a mileage reading of the vehicle.
    pub mileage_km: i64,
    #[serde(default)]
    pub items: Vec<InspectionItem>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dispatch {
    /// A technician of the repair order's dealer.
    pub technician_staff_id: i64,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(as = NewRepairOrderLine)]
#[serde(deny_unknown_fields)]
pub struct NewLine {
    pub kind: LineKind,
    pub description: String,
    /// Positive, at most two decimals (1.5 hours of labour).
    pub quantity: f64,
    pub unit_price_fen: i64,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Move {
    /// `quality_check`, `ready` (passed), `in_progress` (failed quality check, or resume after
    /// an extra-work decision) or `cancelled`.
    pub status: RoStatus,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QualityCheck {
    pub passed: bool,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPayment {
    /// e.g. cash, card, wechat_pay, alipay.
    pub method: String,
    /// At most what is still outstanding.
    pub amount_fen: i64,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProgress {
    pub note: String,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoFilter {
    pub status: Option<RoStatus>,
    pub vehicle_id: Option<i64>,
    pub customer_id: Option<i64>,
    /// Only comebacks.
    pub comeback: Option<bool>,
}

/// First-time-fix of a period: repair orders settled in it, and those with no comeback.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FirstTimeFix {
    /// The period's `from`, as asked.
    pub from: String,
    /// The period's `to`, as asked.
    pub to: String,
    pub settled: i64,
    /// Settled in the period and came back for the same issue within 30 days.
    pub with_comeback: i64,
    /// `(settled - with_comeback) / settled`; absent when nothing was settled.
    pub rate: Option<f64>,
}

#[derive(FromRow)]
pub(crate) struct Row {
    pub(crate) id: i64,
    pub(crate) dealer_id: i64,
    pub(crate) customer_id: i64,
    pub(crate) vehicle_id: i64,
    appointment_id: Option<i64>,
    complaint_code: String,
    pub(crate) complaint: String,
    status: String,
    technician_staff_id: Option<i64>,
    mileage_km: Option<i64>,
    comeback_of_id: Option<i64>,
    advisor_staff_id: Option<i64>,
    service_type: String,
    paid_fen: i64,
    settled_at: Option<i64>,
    paid_at: Option<i64>,
    custom_fields: String,
    pub(crate) version: i64,
    created_at: i64,
    updated_at: i64,
}

const COLUMNS: &str = "id, dealer_id, customer_id, vehicle_id, appointment_id, complaint_code, complaint, status, \
     technician_staff_id, mileage_km, comeback_of_id, advisor_staff_id, service_type, paid_fen, settled_at, paid_at, custom_fields, version, \
     created_at, updated_at";

impl Row {
    pub(crate) fn status(&self) -> Result<RoStatus> {
        decode("status", &self.status, RoStatus::parse)
    }
}

/// A [`NewRepairOrder`] that passed [`check_new`].
pub struct ValidRepairOrder {
    dealer_id: i64,
    customer_id: i64,
    vehicle_id: i64,
    appointment_id: Option<i64>,
    complaint_code: String,
    complaint: String,
    service_type: ServiceType,
    custom_fields: Map<String, Value>,
}

/// Validates a new repair order: fields, dealer, custom field values, and either an arrived
/// appointment not yet converted or a customer and vehicle of the dealer. Run it outside the
/// create's transaction.
pub async fn check_new(
    conn: &mut AnyConnection,
    caller: &Caller,
    new: &NewRepairOrder,
) -> Result<ValidRepairOrder> {
    let mut errors = Vec::new();
    let complaint_code =
        text::required(&mut errors, "complaint_code", &new.complaint_code, CODE_MAX)
            .unwrap_or_default();
    let complaint = new.complaint.as_deref().unwrap_or("").trim().to_owned();
    if complaint.chars().count() > TEXT_MAX {
        errors.push(FieldError::new(
            "complaint",
            "too_long",
            format!("complaint is at most {TEXT_MAX} characters"),
        ));
    }
    let dealer = match network::dealer_for_write(conn, caller, new.dealer_id).await {
        Ok(d) => Some(d),
        Err(Error::Invalid(mut e)) => {
            errors.append(&mut e);
            None
        }
        Err(e) => return Err(e),
    };
    let (customer_id, vehicle_id, service_type) = match new.appointment_id {
        Some(appointment) => {
            let (owner, customer, vehicle, booked_type) =
                match appointments::for_repair_order(conn, caller, appointment).await {
                    Err(Error::Denied(denial)) => {
                        audit::record_denial(conn, &denial).await?;
                        return Err(Error::invalid(
                            "appointment_id",
                            "unknown_appointment",
                            "no appointment with that id in your network",
                        ));
                    }
                    Err(Error::NotFound { .. }) => {
                        return Err(Error::invalid(
                            "appointment_id",
                            "unknown_appointment",
                            "no appointment with that id in your network",
                        ));
                    }
                    other => other?,
                };
            if dealer.is_some_and(|d| d != owner)
                || new.customer_id.is_some_and(|c| c != customer)
                || new.vehicle_id.is_some_and(|v| v != vehicle)
            {
                errors.push(FieldError::new(
                    "appointment_id",
                    "appointment_mismatch",
                    "the appointment is for another dealer, customer or vehicle",
                ));
            }
            (customer, vehicle, booked_type)
        }
        None => match (new.customer_id, new.vehicle_id) {
            (Some(c), Some(v)) => {
                super::check_customer_and_vehicle(conn, caller, &mut errors, dealer, c, v).await?;
                (c, v, new.service_type.unwrap_or(ServiceType::Repair))
            }
            _ => {
                errors.push(FieldError::new(
                    "vehicle_id",
                    "required",
                    "name the customer and the vehicle, or the appointment",
                ));
                (0, 0, ServiceType::Repair)
            }
        },
    };
    if let Some(dealer_id) = dealer {
        custom_fields::validate(
            conn,
            dealer_id,
            Entity::RepairOrder,
            Writer::Staff,
            &new.custom_fields,
            &mut errors,
        )
        .await?;
    }
    match dealer {
        Some(dealer_id) if errors.is_empty() => Ok(ValidRepairOrder {
            dealer_id,
            customer_id,
            vehicle_id,
            appointment_id: new.appointment_id,
            complaint_code,
            complaint,
            service_type,
            custom_fields: new.custom_fields.clone(),
        }),
        _ => Err(Error::Invalid(errors)),
    }
}

/// Opens a checked repair order, flags it as a comeback of the latest repair order of the same
/// vehicle and complaint code settled within 30 days, and links its appointment.
pub async fn create(
    conn: &mut AnyConnection,
    caller: &Caller,
    valid: &ValidRepairOrder,
) -> Result<RepairOrder> {
    let now = clock::now_ms();
    let previous: Option<(i64,)> = sqlx::query_as(
        "SELECT id FROM repair_orders WHERE vehicle_id = $1 AND complaint_code = $2 AND settled_at IS NOT NULL \
         AND settled_at >= $3 ORDER BY settled_at DESC, id DESC LIMIT 1",
    )
    .bind(valid.vehicle_id)
    .bind(&valid.complaint_code)
    .bind(now - COMEBACK_WINDOW_MS)
    .fetch_optional(&mut *conn)
    .await?;
    let comeback_of = previous.map(|(id,)| id);
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO repair_orders (dealer_id, customer_id, vehicle_id, appointment_id, complaint_code, complaint, \
         status, comeback_of_id, custom_fields, advisor_staff_id, service_type, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, $9, $10, $11, $11) RETURNING id",
    )
    .bind(valid.dealer_id)
    .bind(valid.customer_id)
    .bind(valid.vehicle_id)
    .bind(valid.appointment_id)
    .bind(&valid.complaint_code)
    .bind(&valid.complaint)
    .bind(comeback_of)
    .bind(custom_fields::to_column(&valid.custom_fields))
    .bind(caller.staff_id)
    .bind(valid.service_type.as_str())
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    if let Some(appointment) = valid.appointment_id {
        appointments::link_repair_order(conn, appointment, id).await?;
    }
    append_event(
        conn,
        Actor::Staff(caller),
        id,
        "created",
        None,
        RoStatus::Open,
        None,
    )
    .await?;
    audit::record(
        conn,
        caller,
        Entry::ok("create", "repair_order", id, valid.dealer_id)
            .with_detail(serde_json::json!({ "comeback_of_id": comeback_of })),
    )
    .await?;
    let link = owner_links::issue(
        conn,
        valid.dealer_id,
        Purpose::RepairProgress,
        id,
        OWNER_LINK_TTL_MS,
        false,
    )
    .await?;
    let message = outbox::Message {
        channel: "sms".to_owned(),
        recipient: format!("customer:{}", valid.customer_id),
        template: "repair-opened".to_owned(),
        data: vec![
            ("repair-order-id".to_owned(), id.to_string()),
            (
                "progress-url".to_owned(),
                owner_links::page(Purpose::RepairProgress, &link.token),
            ),
        ],
        purpose: outbox::Purpose::Service,
    };
    outbox::enqueue(
        conn,
        valid.dealer_id,
        &message,
        Some(&format!("repair:{id}:opened")),
    )
    .await?;
    let mut order = fetch(conn, id).await?;
    order.owner_link = Some(link);
    Ok(order)
}

impl RoStatus {
    /// The status in the owner's words.
    fn for_owner(self) -> &'static str {
        match self {
            RoStatus::Open => "已接车",
            RoStatus::Inspected => "接车检查已完成",
            RoStatus::InProgress => "维修中",
            RoStatus::WaitingApproval => "等待您确认增项",
            RoStatus::QualityCheck => "质检中",
            RoStatus::Ready => "已完工，待结算",
            RoStatus::Settled => "已结算",
            RoStatus::Paid => "已付款，欢迎提车",
            RoStatus::Cancelled => "已取消",
        }
    }
}

/// A repair order as its owner follows it through the link: the dealer, the car, the status
/// and its history in the owner's words, the photos taken during the work with what they
/// show, and the amount once settled. No staff, internal notes, inspection details or
/// internal ids.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OwnerRepair {
    pub dealer: String,
    /// The number the owner calls the dealer on.
    pub dealer_phone: Option<String>,
    /// Brand, model and plate.
    pub vehicle: String,
    pub status: RoStatus,
    pub text: &'static str,
    /// Oldest first.
    pub steps: Vec<OwnerRepairStep>,
    /// Once settled.
    pub total_fen: Option<i64>,
    pub outstanding_fen: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OwnerRepairStep {
    pub at: DateTime<Utc>,
    pub status: RoStatus,
    pub text: &'static str,
    /// The progress updates with photos reported during this step, oldest first.
    pub photos: Vec<OwnerPhotos>,
}

/// Photos taken at one progress update, with the explanation given with them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OwnerPhotos {
    pub at: DateTime<Utc>,
    pub explanation: String,
    /// Each served at `GET /owner/repairs/{token}/photos/{attachment_id}`.
    pub attachment_ids: Vec<i64>,
}

/// The owner's view of the repair order behind `token`.
pub async fn for_owner(conn: &mut AnyConnection, token: &str) -> Result<OwnerRepair> {
    let link = owner_links::resolve(conn, Purpose::RepairProgress, token).await?;
    let order = fetch(conn, link.subject_id).await?;
    let vehicle = vehicles::get_unscoped(conn, order.vehicle_id).await?;
    let dealer = network::contact(conn, order.dealer_id).await?;
    let mut steps: Vec<OwnerRepairStep> = Vec::new();
    for event in &order.events {
        let attachment_ids: Vec<i64> = order
            .photos
            .iter()
            .filter(|p| p.event_id == Some(event.id))
            .map(|p| p.attachment.id)
            .collect();
        let last = steps.last_mut().filter(|s| s.status == event.to_status);
        let Some(step) = last else {
            steps.push(OwnerRepairStep {
                at: event.at,
                status: event.to_status,
                text: event.to_status.for_owner(),
                photos: Vec::new(),
            });
            continue;
        };
        if !attachment_ids.is_empty() {
            step.photos.push(OwnerPhotos {
                at: event.at,
                explanation: event.note.clone().unwrap_or_default(),
                attachment_ids,
            });
        }
    }
    let settled = order.settled_at.is_some();
    Ok(OwnerRepair {
        dealer: dealer.name,
        dealer_phone: dealer.phone,
        vehicle: [Some(vehicle.brand), Some(vehicle.model), vehicle.plate]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" "),
        status: order.status,
        text: order.status.for_owner(),
        steps,
        total_fen: settled.then_some(order.total_fen),
        outstanding_fen: settled.then_some(order.outstanding_fen),
    })
}

/// A progress photo of the repair order behind `token`, with its bytes: an attachment that is
/// not a progress photo of that order is not found.
pub async fn owner_photo(
    conn: &mut AnyConnection,
    store: &attachments::Store,
    token: &str,
    attachment_id: i64,
) -> Result<(Attachment, Vec<u8>)> {
    let link = owner_links::resolve(conn, Purpose::RepairProgress, token).await?;
    let progress: Vec<(i64,)> = sqlx::query_as(
        "SELECT id FROM repair_order_events WHERE repair_order_id = $1 AND kind = 'progress'",
    )
    .bind(link.subject_id)
    .fetch_all(&mut *conn)
    .await?;
    attachments::read_if(conn, store, attachment_id, |a| {
        a.owner_kind == PROGRESS_PHOTOS && progress.iter().any(|(id,)| *id == a.owner_id)
    })
    .await
}

/// The dealer of repair order `id` if the caller can see it.
pub async fn dealer_of(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<i64> {
    crate::access::owning_dealer(conn, caller, crate::access::Record::RepairOrder, id).await
}

pub async fn get(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<RepairOrder> {
    dealer_of(conn, caller, id).await?;
    fetch(conn, id).await
}

pub(crate) async fn fetch_row(conn: &mut AnyConnection, id: i64) -> Result<Row> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM repair_orders WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or(Error::NotFound {
        entity: "repair_order",
    })
}

/// Repair order `id` with everything it holds (unscoped: callers checked visibility).
pub(crate) async fn fetch(conn: &mut AnyConnection, id: i64) -> Result<RepairOrder> {
    let row = fetch_row(conn, id).await?;
    hydrate(conn, vec![row]).await.map(|mut v| v.remove(0))
}

async fn hydrate(conn: &mut AnyConnection, rows: Vec<Row>) -> Result<Vec<RepairOrder>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut lines = load_lines(conn, &ids).await?;
    let mut inspection: HashMap<i64, Vec<InspectionItem>> = HashMap::new();
    let sql = Sql::in_list(
        "SELECT repair_order_id, item, grade, note FROM inspection_items WHERE repair_order_id IN ",
        &ids,
        " ORDER BY id",
    );
    let items: Vec<(i64, String, String, Option<String>)> =
        sqlx::query_as_with(sql.text(), sql.arguments())
            .fetch_all(&mut *conn)
            .await?;
    for (ro, item, grade, note) in items {
        inspection.entry(ro).or_default().push(InspectionItem {
            item,
            grade: decode("grade", &grade, Grade::parse)?,
            note,
        });
    }
    let mut payments: HashMap<i64, Vec<Payment>> = HashMap::new();
    let sql = Sql::in_list(
        "SELECT repair_order_id, id, method, amount_fen, paid_at FROM repair_order_payments WHERE repair_order_id IN ",
        &ids,
        " ORDER BY id",
    );
    let rows_p: Vec<(i64, i64, String, i64, i64)> =
        sqlx::query_as_with(sql.text(), sql.arguments())
            .fetch_all(&mut *conn)
            .await?;
    for (ro, id, method, amount_fen, paid_at) in rows_p {
        payments.entry(ro).or_default().push(Payment {
            id,
            method,
            amount_fen,
            paid_at: clock::to_datetime(paid_at),
        });
    }
    let mut events: HashMap<i64, Vec<RoEvent>> = HashMap::new();
    let sql = Sql::in_list(
        "SELECT repair_order_id, id, at, kind, from_status, to_status, note, actor_key_id, owner_link_id \
         FROM repair_order_events WHERE repair_order_id IN ",
        &ids,
        " ORDER BY id",
    );
    type EventRow = (
        i64,
        i64,
        i64,
        String,
        Option<String>,
        String,
        Option<String>,
        Option<i64>,
        Option<i64>,
    );
    let rows_e: Vec<EventRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    for (ro, id, at, kind, from, to, note, actor_key_id, owner_link_id) in rows_e {
        events.entry(ro).or_default().push(RoEvent {
            id,
            at: clock::to_datetime(at),
            kind,
            from_status: from
                .as_deref()
                .map(|s| decode("from_status", s, RoStatus::parse))
                .transpose()?,
            to_status: decode("to_status", &to, RoStatus::parse)?,
            note,
            actor_key_id,
            owner_link_id,
        });
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let lines = lines.remove(&r.id).unwrap_or_default();
        let (labour_fen, parts_fen) = totals(&lines);
        let total_fen = labour_fen + parts_fen;
        let events = events.remove(&r.id).unwrap_or_default();
        let photos = photos_of(conn, r.id, &events).await?;
        let status = r.status()?;
        out.push(RepairOrder {
            status,
            next_statuses: status.next().to_vec(),
            inspection: inspection.remove(&r.id).unwrap_or_default(),
            payments: payments.remove(&r.id).unwrap_or_default(),
            events,
            photos,
            lines,
            labour_fen,
            parts_fen,
            total_fen,
            paid_fen: r.paid_fen,
            outstanding_fen: total_fen - r.paid_fen,
            id: r.id,
            dealer_id: r.dealer_id,
            customer_id: r.customer_id,
            vehicle_id: r.vehicle_id,
            appointment_id: r.appointment_id,
            complaint_code: r.complaint_code,
            complaint: r.complaint,
            technician_staff_id: r.technician_staff_id,
            mileage_km: r.mileage_km,
            comeback_of_id: r.comeback_of_id,
            advisor_staff_id: r.advisor_staff_id,
            service_type: decode("service_type", &r.service_type, ServiceType::parse)?,
            settled_at: clock::opt_datetime(r.settled_at),
            paid_at: clock::opt_datetime(r.paid_at),
            custom_fields: custom_fields::from_column(&r.custom_fields),
            version: r.version,
            created_at: clock::to_datetime(r.created_at),
            updated_at: clock::to_datetime(r.updated_at),
            owner_link: None,
        });
    }
    Ok(out)
}

async fn load_lines(conn: &mut AnyConnection, ids: &[i64]) -> Result<HashMap<i64, Vec<Line>>> {
    let sql = Sql::in_list(
        "SELECT repair_order_id, id, kind, description, quantity_centi, unit_price_fen, amount_fen, extra_work_item_id \
         FROM repair_order_lines WHERE repair_order_id IN ",
        ids,
        " ORDER BY id",
    );
    type LineRow = (i64, i64, String, String, i64, i64, i64, Option<i64>);
    let rows: Vec<LineRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    let mut out: HashMap<i64, Vec<Line>> = HashMap::new();
    for (ro, id, kind, description, centi, unit_price_fen, amount_fen, extra) in rows {
        out.entry(ro).or_default().push(Line {
            id,
            kind: decode("kind", &kind, LineKind::parse)?,
            description,
            quantity: centi as f64 / 100.0,
            unit_price_fen,
            amount_fen,
            extra_work_item_id: extra,
        });
    }
    Ok(out)
}

/// `(labour, parts)` in fen.
fn totals(lines: &[Line]) -> (i64, i64) {
    lines.iter().fold((0, 0), |(l, p), line| match line.kind {
        LineKind::Labour => (l + line.amount_fen, p),
        LineKind::Part => (l, p + line.amount_fen),
    })
}

/// Repair orders in the caller's scope matching `filter`, newest first; `limit + 1` at most.
pub async fn list(
    conn: &mut AnyConnection,
    caller: &Caller,
    filter: &RoFilter,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<RepairOrder>> {
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM repair_orders WHERE 1 = 1"));
    caller.scope(&mut sql, "dealer_id");
    if let Some(s) = filter.status {
        sql.push(" AND status = ")
            .bind(Param::Text(s.as_str().to_owned()));
    }
    if let Some(v) = filter.vehicle_id {
        sql.push(" AND vehicle_id = ").bind(Param::Int(v));
    }
    if let Some(c) = filter.customer_id {
        sql.push(" AND customer_id = ").bind(Param::Int(c));
    }
    match filter.comeback {
        Some(true) => {
            sql.push(" AND comeback_of_id IS NOT NULL");
        }
        Some(false) => {
            sql.push(" AND comeback_of_id IS NULL");
        }
        None => {}
    }
    if let Some(b) = before_id {
        sql.push(" AND id < ").bind(Param::Int(b));
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .bind(Param::Int(limit + 1));
    let rows: Vec<Row> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    hydrate(conn, rows).await
}

/// Repair orders of dealers other than `dealer_id` for customers `customer_ids` or vehicles
/// `vehicle_ids` (the network history of the 360 view), newest first, `limit` at most.
pub async fn elsewhere(
    conn: &mut AnyConnection,
    dealer_id: i64,
    customer_ids: &[i64],
    vehicle_ids: &[i64],
    limit: i64,
) -> Result<Vec<RepairOrder>> {
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM repair_orders WHERE dealer_id <> "
    ));
    sql.bind(Param::Int(dealer_id))
        .push_in_any(vec![
            ("customer_id", Sql::ints(customer_ids)),
            ("vehicle_id", Sql::ints(vehicle_ids)),
        ])
        .push(" ORDER BY id DESC LIMIT ")
        .bind(Param::Int(limit));
    let rows: Vec<Row> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    hydrate(conn, rows).await
}

/// Which of `vehicle_ids` have a repair order (any status).
pub(crate) async fn with_orders(conn: &mut AnyConnection, vehicle_ids: &[i64]) -> Result<Vec<i64>> {
    let sql = Sql::in_list(
        "SELECT DISTINCT vehicle_id FROM repair_orders WHERE vehicle_id IN ",
        vehicle_ids,
        "",
    );
    let rows: Vec<(i64,)> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Appends an entry to the timeline of repair order `id`; returns its id.
pub(crate) async fn append_event(
    conn: &mut AnyConnection,
    actor: Actor<'_>,
    id: i64,
    kind: &str,
    from: Option<RoStatus>,
    to: RoStatus,
    note: Option<&str>,
) -> Result<i64> {
    let (event,): (i64,) = sqlx::query_as(
        "INSERT INTO repair_order_events (repair_order_id, at, kind, from_status, to_status, note, actor_key_id, owner_link_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(id)
    .bind(clock::now_ms())
    .bind(kind)
    .bind(from.map(RoStatus::as_str))
    .bind(to.as_str())
    .bind(note)
    .bind(actor.key_id())
    .bind(actor.link_id())
    .fetch_one(&mut *conn)
    .await?;
    Ok(event)
}

/// Loads repair order `id` for a change by the caller: visible, at version `expected`.
async fn for_change(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
    expected: i64,
) -> Result<Row> {
    dealer_of(conn, caller, id).await?;
    let row = fetch_row(conn, id).await?;
    if row.version != expected {
        return Err(Error::StaleVersion {
            current: row.version,
        });
    }
    Ok(row)
}

/// Moves `row` to `to` (checked against the status machine), setting `sets` too, guarded by
/// its version; appends the timeline entry.
pub(crate) async fn advance(
    conn: &mut AnyConnection,
    actor: Actor<'_>,
    row: &Row,
    to: RoStatus,
    kind: &str,
    note: Option<&str>,
    sets: &[(&str, Param)],
) -> Result<()> {
    let from = row.status()?;
    if from != to {
        from.check_move(to)?;
    }
    let now = clock::now_ms();
    let mut sql = Sql::new("UPDATE repair_orders SET version = version + 1, updated_at = ");
    sql.bind(Param::Int(now))
        .push(", status = ")
        .bind(Param::Text(to.as_str().to_owned()));
    for (column, value) in sets {
        sql.push(", ").push(column).push(" = ").bind(value.clone());
    }
    sql.push(" WHERE id = ")
        .bind(Param::Int(row.id))
        .push(" AND version = ")
        .bind(Param::Int(row.version));
    let updated = sqlx::query_with(sql.text(), sql.arguments())
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if updated == 0 {
        return Err(Error::StaleVersion {
            current: row.version + 1,
        });
    }
    append_event(conn, actor, row.id, kind, Some(from), to, note).await?;
    Ok(())
}

fn optional_note(errors: &mut Vec<FieldError>, note: Option<&str>) -> Option<String> {
    note.map(|n| text::required(errors, "note", n, TEXT_MAX).unwrap_or_default())
}

fn invalid_if_any(errors: Vec<FieldError>) -> Result<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(errors))
    }
}

/// Changes repair order `id`, if it is still at version `expected`: its custom field values,
/// merged into the stored ones and validated against the dealer's definitions. Accepted in
/// every status (the values are the dealer's own records, not the work or its price). A
/// `revised` entry in the timeline; audited with the names of the fields changed.
pub async fn update(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
    expected: i64,
    patch: RepairOrderPatch,
) -> Result<RepairOrder> {
    let row = for_change(conn, caller, id, expected).await?;
    let changed = patch.fields();
    let fields = custom_fields::patched(
        conn,
        row.dealer_id,
        Entity::RepairOrder,
        custom_fields::from_column(&row.custom_fields),
        patch.custom_fields,
    )
    .await?;
    advance(
        conn,
        Actor::Staff(caller),
        &row,
        row.status()?,
        "revised",
        None,
        &[(
            "custom_fields",
            Param::Text(custom_fields::to_column(&fields)),
        )],
    )
    .await?;
    audit::record(
        conn,
        caller,
        Entry::ok("update", "repair_order", id, row.dealer_id)
            .with_detail(serde_json::json!({ "fields": changed })),
    )
    .await?;
    fetch(conn, id).await
}

/// Records the check-in: the odometer (a mileage reading of the vehicle) and the inspection
/// items; `open → inspected`.
pub async fn check_in(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
    expected: i64,
    check_in: &CheckIn,
) -> Result<RepairOrder> {
    let row = for_change(conn, caller, id, expected).await?;
    row.status()?.check_move(RoStatus::Inspected)?;
    let mut errors = Vec::new();
    let mut items = Vec::new();
    for (i, item) in check_in.items.iter().enumerate() {
        let name = text::required(
            &mut errors,
            &format!("items[{i}].item"),
            &item.item,
            ITEM_MAX,
        )
        .unwrap_or_default();
        let note = item.note.as_deref().map(|n| {
            text::required(&mut errors, &format!("items[{i}].note"), n, TEXT_MAX)
                .unwrap_or_default()
        });
        items.push((name, item.grade, note));
    }
    invalid_if_any(errors)?;
    mileage::add(
        conn,
        caller,
        row.vehicle_id,
        mileage::NewReading {
            km: check_in.mileage_km,
            read_at: None,
            source: Some("check_in".into()),
        },
    )
    .await
    .map_err(|e| match e {
        Error::Invalid(errors) => Error::Invalid(
            errors
                .into_iter()
                .map(|e| FieldError::new("mileage_km", &e.code, e.message))
                .collect(),
        ),
        other => other,
    })?;
    for (item, grade, note) in &items {
        sqlx::query(
            "INSERT INTO inspection_items (repair_order_id, item, grade, note) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(item)
        .bind(grade.as_str())
        .bind(note.as_deref())
        .execute(&mut *conn)
        .await?;
    }
    let reds = items.iter().filter(|(_, g, _)| *g == Grade::Red).count();
    advance(
        conn,
        Actor::Staff(caller),
        &row,
        RoStatus::Inspected,
        "check_in",
        None,
        &[("mileage_km", Param::Int(check_in.mileage_km))],
    )
    .await?;
    audit::record(
        conn,
        caller,
        Entry::ok("check_in", "repair_order", id, row.dealer_id)
            .with_detail(serde_json::json!({ "items": items.len(), "red": reds })),
    )
    .await?;
    fetch(conn, id).await
}

/// Assigns a technician of the dealer: `inspected → in_progress`, or a reassignment while the
/// work is under way.
pub async fn dispatch(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
    expected: i64,
    dispatch: &Dispatch,
) -> Result<RepairOrder> {
    let row = for_change(conn, caller, id, expected).await?;
    let from = row.status()?;
    let to = match from {
        RoStatus::InProgress | RoStatus::WaitingApproval | RoStatus::QualityCheck => from,
        other => {
            other.check_move(RoStatus::InProgress)?;
            RoStatus::InProgress
        }
    };
    let mut errors = Vec::new();
    let note = optional_note(&mut errors, dispatch.note.as_deref());
    let technician = match network::staff_member(conn, dispatch.technician_staff_id).await {
        Ok(s) => Some(s),
        Err(Error::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    let fits = technician.is_some_and(|s| {
        s.org_unit_id == row.dealer_id
            && s.active
            && s.position == Some(network::Position::Technician)
    });
    if !fits {
        errors.push(FieldError::new(
            "technician_staff_id",
            "not_a_technician",
            "not an active technician of this repair order's dealer",
        ));
    }
    invalid_if_any(errors)?;
    advance(
        conn,
        Actor::Staff(caller),
        &row,
        to,
        "dispatch",
        note.as_deref(),
        &[(
            "technician_staff_id",
            Param::Int(dispatch.technician_staff_id),
        )],
    )
    .await?;
    audit::record(
        conn,
        caller,
        Entry::ok("dispatch", "repair_order", id, row.dealer_id).with_detail(
            serde_json::json!({ "technician_staff_id": dispatch.technician_staff_id }),
        ),
    )
    .await?;
    fetch(conn, id).await
}

/// A line's quantity in hundredths, if it is positive with at most two decimals.
fn quantity_centi(quantity: f64) -> Option<i64> {
    let centi = (quantity * 100.0).round();
    (quantity > 0.0 && quantity <= QUANTITY_MAX && (quantity * 100.0 - centi).abs() < 1e-6)
        .then_some(centi as i64)
}

/// `quantity × unit price`, rounded half up to the fen.
fn line_amount(centi: i64, unit_price_fen: i64) -> i64 {
    (centi * unit_price_fen + 50) / 100
}

/// Stores a line of repair order `id` (no status or version change); returns its id.
pub(crate) async fn insert_line(
    conn: &mut AnyConnection,
    id: i64,
    kind: LineKind,
    description: &str,
    centi: i64,
    unit_price_fen: i64,
    extra_work_item_id: Option<i64>,
) -> Result<i64> {
    let (line,): (i64,) = sqlx::query_as(
        "INSERT INTO repair_order_lines (repair_order_id, kind, description, quantity_centi, unit_price_fen, amount_fen, \
         extra_work_item_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(id)
    .bind(kind.as_str())
    .bind(description)
    .bind(centi)
    .bind(unit_price_fen)
    .bind(line_amount(centi, unit_price_fen))
    .bind(extra_work_item_id)
    .bind(clock::now_ms())
    .fetch_one(&mut *conn)
    .await?;
    Ok(line)
}

/// Adds a labour or parts line; refused once the order is settled or cancelled.
pub async fn add_line(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
    expected: i64,
    new: &NewLine,
) -> Result<RepairOrder> {
    let row = for_change(conn, caller, id, expected).await?;
    let status = row.status()?;
    if !status.is_open_for_work() {
        return Err(closed(status));
    }
    let mut errors = Vec::new();
    let description = text::required(&mut errors, "description", &new.description, ITEM_MAX * 2)
        .unwrap_or_default();
    let centi = quantity_centi(new.quantity);
    if centi.is_none() {
        errors.push(FieldError::new(
            "quantity",
            "invalid_quantity",
            format!("a quantity is positive, at most {QUANTITY_MAX}, with at most two decimals"),
        ));
    }
    if !(0..=AMOUNT_MAX_FEN).contains(&new.unit_price_fen) {
        errors.push(FieldError::new(
            "unit_price_fen",
            "invalid_amount",
            "a unit price is 0 to 10,000,000,000 fen",
        ));
    }
    invalid_if_any(errors)?;
    let line = insert_line(
        conn,
        id,
        new.kind,
        &description,
        centi.unwrap_or_default(),
        new.unit_price_fen,
        None,
    )
    .await?;
    advance(conn, Actor::Staff(caller), &row, status, "line", None, &[]).await?;
    audit::record(
        conn,
        caller,
        Entry::ok("add_line", "repair_order", id, row.dealer_id)
            .with_detail(serde_json::json!({ "line_id": line, "kind": new.kind.as_str() })),
    )
    .await?;
    fetch(conn, id).await
}

fn closed(status: RoStatus) -> Error {
    Error::Conflict {
        code: "repair_order_closed",
        message: format!(
            "the repair order is {}; nothing more can be added",
            status.as_str()
        ),
    }
}

/// Adds a progress update to the timeline (photos are then attached to it); returns the
/// repair order and the entry's id. Needs no version: it changes nothing else.
pub async fn add_progress(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
    progress: &NewProgress,
) -> Result<(RepairOrder, i64)> {
    let dealer_id = dealer_of(conn, caller, id).await?;
    let row = fetch_row(conn, id).await?;
    let status = row.status()?;
    if !matches!(
        status,
        RoStatus::InProgress | RoStatus::WaitingApproval | RoStatus::QualityCheck
    ) {
        return Err(Error::Conflict {
            code: "not_in_progress",
            message: format!(
                "progress is reported while the work is under way, not when {}",
                status.as_str()
            ),
        });
    }
    let mut errors = Vec::new();
    let note = text::required(&mut errors, "note", &progress.note, TEXT_MAX).unwrap_or_default();
    invalid_if_any(errors)?;
    let event = append_event(
        conn,
        Actor::Staff(caller),
        id,
        "progress",
        Some(status),
        status,
        Some(&note),
    )
    .await?;
    audit::record(
        conn,
        caller,
        Entry::ok("progress", "repair_order", id, dealer_id)
            .with_detail(serde_json::json!({ "event_id": event })),
    )
    .await?;
    Ok((fetch(conn, id).await?, event))
}

/// Whether timeline entry `event_id` is a progress update of repair order `id`.
async fn is_progress_event(conn: &mut AnyConnection, id: i64, event_id: i64) -> Result<bool> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT id FROM repair_order_events WHERE id = $1 AND repair_order_id = $2 AND kind = 'progress'",
    )
    .bind(event_id)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.is_some())
}

/// Where a photo of a repair order belongs.
#[derive(Debug, Clone, Copy)]
pub enum PhotoStage {
    /// The check-in inspection.
    Inspection,
    /// The progress update with this timeline id.
    Progress(i64),
}

const INSPECTION_PHOTOS: &str = "repair_order_inspection";
const PROGRESS_PHOTOS: &str = "repair_order_progress";

/// Stores a photo of repair order `id` through the attachments store (type and size checked
/// there; a refused upload stores nothing). Refused once the order is closed.
pub async fn add_photo(
    conn: &mut AnyConnection,
    store: &attachments::Store,
    caller: &Caller,
    id: i64,
    stage: PhotoStage,
    content_type: &str,
    bytes: &[u8],
) -> Result<Attachment> {
    let dealer_id = dealer_of(conn, caller, id).await?;
    let status = fetch_row(conn, id).await?.status()?;
    if !status.is_open_for_work() {
        return Err(closed(status));
    }
    let (kind, owner_id) = match stage {
        PhotoStage::Inspection => (INSPECTION_PHOTOS, id),
        PhotoStage::Progress(event) => {
            if !is_progress_event(conn, id, event).await? {
                return Err(Error::NotFound {
                    entity: "progress update",
                });
            }
            (PROGRESS_PHOTOS, event)
        }
    };
    let attachment = attachments::save(
        conn,
        store,
        dealer_id,
        kind,
        owner_id,
        content_type,
        bytes,
        None,
        caller,
    )
    .await?;
    audit::record(
        conn,
        caller,
        Entry::ok("add_photo", "repair_order", id, dealer_id)
            .with_detail(serde_json::json!({ "attachment_id": attachment.id, "stage": kind })),
    )
    .await?;
    Ok(attachment)
}

/// The photos of repair order `id`: check-in first, then each progress update's.
async fn photos_of(conn: &mut AnyConnection, id: i64, events: &[RoEvent]) -> Result<Vec<Photo>> {
    let mut photos: Vec<Photo> = attachments::list(conn, INSPECTION_PHOTOS, id)
        .await?
        .into_iter()
        .map(|attachment| Photo {
            event_id: None,
            attachment,
        })
        .collect();
    for event in events.iter().filter(|e| e.kind == "progress") {
        for attachment in attachments::list(conn, PROGRESS_PHOTOS, event.id).await? {
            photos.push(Photo {
                event_id: Some(event.id),
                attachment,
            });
        }
    }
    Ok(photos)
}

/// A status move that carries no data: to `quality_check`, `ready` (quality check passed),
/// `in_progress` (quality check failed, or back to work after an extra-work decision) or
/// `cancelled`. Moves that record something have their own call (check-in, dispatch,
/// extra work, settlement, payment).
pub async fn move_to(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
    expected: i64,
    mv: &Move,
) -> Result<RepairOrder> {
    let row = for_change(conn, caller, id, expected).await?;
    let from = row.status()?;
    from.check_move(mv.status)?;
    let mut errors = Vec::new();
    let note = optional_note(&mut errors, mv.note.as_deref());
    let kind = match (from, mv.status) {
        (RoStatus::QualityCheck, RoStatus::Ready | RoStatus::InProgress) => "quality_check",
        (_, RoStatus::QualityCheck | RoStatus::Cancelled) => "status",
        (RoStatus::WaitingApproval, RoStatus::InProgress) => {
            super::extra_work::resume_check(conn, id).await?;
            "status"
        }
        (_, to) => {
            errors.push(FieldError::new(
                "status",
                "needs_its_own_call",
                format!(
                    "the move to {} records data: use its own endpoint",
                    to.as_str()
                ),
            ));
            "status"
        }
    };
    invalid_if_any(errors)?;
    advance(
        conn,
        Actor::Staff(caller),
        &row,
        mv.status,
        kind,
        note.as_deref(),
        &[],
    )
    .await?;
    audit::record(
        conn,
        caller,
        Entry::ok("move", "repair_order", id, row.dealer_id)
            .with_detail(serde_json::json!({ "from": from.as_str(), "to": mv.status.as_str() })),
    )
    .await?;
    fetch(conn, id).await
}

/// The quality check's result: passed → `ready`, failed → back to `in_progress`.
pub async fn quality_check(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
    expected: i64,
    qc: &QualityCheck,
) -> Result<RepairOrder> {
    let mv = Move {
        status: if qc.passed {
            RoStatus::Ready
        } else {
            RoStatus::InProgress
        },
        note: qc.note.clone(),
    };
    let row = for_change(conn, caller, id, expected).await?;
    let from = row.status()?;
    if from != RoStatus::QualityCheck {
        return Err(Error::InvalidTransition {
            from: from.as_str().to_owned(),
            to: mv.status.as_str().to_owned(),
            allowed: from.next().iter().map(|s| s.as_str().to_owned()).collect(),
        });
    }
    move_to(conn, caller, id, expected, &mv).await
}

/// Settles repair order `id`: `ready → settled`, its totals computed from its lines and
/// frozen; an order with nothing to pay is paid at once; the owner is sent the survey of the
/// visit. The one place a settlement happens,
/// whoever calls it: what it sets off ([`follow_ups`]) is recorded in its transaction and
/// run once it committed ([`domain_events`]).
pub async fn settle(
    db: &Db,
    plugins: &Plugins,
    caller: &Caller,
    id: i64,
    expected: i64,
) -> Result<RepairOrder> {
    let mut tx = db.begin_write().await?;
    let order = settle_in(&mut tx, caller, id, expected).await?;
    let follow_ups = follow_ups(&mut tx, &order).await?;
    surveys::send(
        &mut tx,
        order.dealer_id,
        surveys::SubjectKind::RepairOrder,
        id,
        order.customer_id,
    )
    .await?;
    let cause = format!("repair_order:{id}");
    let recorded = domain_events::record(&mut tx, order.dealer_id, &cause, &follow_ups).await?;
    tx.commit().await?;
    domain_events::run_now(db, plugins, &recorded).await;
    Ok(order)
}

/// What a settlement sets off: points for what the owner spent, and the `repair-settled`
/// event for partners (the upload to the provincial maintenance-record platform, JT/T 1132).
async fn follow_ups(conn: &mut AnyConnection, order: &RepairOrder) -> Result<Vec<FollowUp>> {
    let points = (order.total_fen > 0).then(|| {
        FollowUp::Points(LoyaltyEvent {
            dealer_id: order.dealer_id,
            customer_id: order.customer_id,
            kind: EventKind::Spend,
            amount_fen: order.total_fen,
            cause: Cause::new("repair_order", order.id),
            attributes: Vec::new(),
        })
    });
    let partner = FollowUp::Partner(settled_event(conn, order).await?);
    Ok(points.into_iter().chain([partner]).collect())
}

async fn settle_in(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
    expected: i64,
) -> Result<RepairOrder> {
    let row = for_change(conn, caller, id, expected).await?;
    row.status()?.check_move(RoStatus::Settled)?;
    let lines = load_lines(conn, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    let (labour, parts) = totals(&lines);
    let now = clock::now_ms();
    advance(
        conn,
        Actor::Staff(caller),
        &row,
        RoStatus::Settled,
        "settlement",
        None,
        &[
            ("labour_fen", Param::Int(labour)),
            ("parts_fen", Param::Int(parts)),
            ("total_fen", Param::Int(labour + parts)),
            ("settled_at", Param::Int(now)),
        ],
    )
    .await?;
    audit::record(
        conn,
        caller,
        Entry::ok("settle", "repair_order", id, row.dealer_id)
            .with_detail(serde_json::json!({ "total_fen": labour + parts })),
    )
    .await?;
    if labour + parts == 0 {
        let settled = fetch_row(conn, id).await?;
        advance(
            conn,
            Actor::Staff(caller),
            &settled,
            RoStatus::Paid,
            "payment",
            None,
            &[("paid_at", Param::Int(now))],
        )
        .await?;
    }
    fetch(conn, id).await
}

/// A visit from before the platform, as a dealer's previous system (DMS) exported it: a
/// repair order that was settled and paid on `at`, with what it cost.
pub(crate) struct PastVisit {
    pub dealer_id: i64,
    pub customer_id: i64,
    pub vehicle_id: i64,
    /// When it was settled, UTC ms.
    pub at: i64,
    pub mileage_km: Option<i64>,
    /// The kind of service, matched like a complaint code (`maintenance`, `repair`, ...).
    pub complaint_code: String,
    pub complaint: String,
    pub labour_fen: i64,
    pub parts_fen: i64,
}

/// The rules of a repair order applied to a past visit: the complaint code and text as
/// [`check_new`] checks them, amounts of 0 to [`AMOUNT_MAX_FEN`], an odometer of 0 to
/// 3,000,000 km. Normalises `visit` in place and pushes every problem.
pub(crate) fn check_past(visit: &mut PastVisit, errors: &mut Vec<FieldError>) {
    visit.complaint_code =
        text::required(errors, "complaint_code", &visit.complaint_code, CODE_MAX)
            .unwrap_or_default();
    visit.complaint = visit.complaint.trim().to_owned();
    if visit.complaint.chars().count() > TEXT_MAX {
        errors.push(FieldError::new(
            "complaint",
            "too_long",
            format!("complaint is at most {TEXT_MAX} characters"),
        ));
    }
    for (field, amount) in [
        ("labour_fen", visit.labour_fen),
        ("parts_fen", visit.parts_fen),
    ] {
        if !(0..=AMOUNT_MAX_FEN).contains(&amount) {
            errors.push(FieldError::new(
                field,
                "invalid_amount",
                format!("an amount is 0 to {AMOUNT_MAX_FEN} fen"),
            ));
        }
    }
    if visit
        .mileage_km
        .is_some_and(|km| !(0..=3_000_000).contains(&km))
    {
        errors.push(FieldError::new(
            "mileage_km",
            "invalid_km",
            "an odometer reading is between 0 and 3,000,000 km",
        ));
    }
}

/// Stores a checked past visit as a paid repair order (its labour and parts as one line each,
/// paid in full by the method `imported`, the timeline saying so) and returns its id. Nothing
/// follows it (no points, no partner event: it happened before the platform); the caller
/// audits it.
pub(crate) async fn record_past(
    conn: &mut AnyConnection,
    actor: Actor<'_>,
    visit: &PastVisit,
) -> Result<i64> {
    let now = clock::now_ms();
    let total = visit.labour_fen + visit.parts_fen;
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO repair_orders (dealer_id, customer_id, vehicle_id, complaint_code, complaint, status, mileage_km, \
         labour_fen, parts_fen, total_fen, paid_fen, settled_at, paid_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'paid', $6, $7, $8, $9, $9, $10, $10, $10, $11) RETURNING id",
    )
    .bind(visit.dealer_id)
    .bind(visit.customer_id)
    .bind(visit.vehicle_id)
    .bind(&visit.complaint_code)
    .bind(&visit.complaint)
    .bind(visit.mileage_km)
    .bind(visit.labour_fen)
    .bind(visit.parts_fen)
    .bind(total)
    .bind(visit.at)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    let description = if visit.complaint.is_empty() {
        &visit.complaint_code
    } else {
        &visit.complaint
    };
    for (kind, amount) in [
        (LineKind::Labour, visit.labour_fen),
        (LineKind::Part, visit.parts_fen),
    ] {
        if amount > 0 {
            insert_line(conn, id, kind, description, 100, amount, None).await?;
        }
    }
    if total > 0 {
        sqlx::query(
            "INSERT INTO repair_order_payments (repair_order_id, method, amount_fen, paid_at, actor_key_id) \
             VALUES ($1, 'imported', $2, $3, $4)",
        )
        .bind(id)
        .bind(total)
        .bind(visit.at)
        .bind(actor.key_id())
        .execute(&mut *conn)
        .await?;
    }
    append_event(
        conn,
        actor,
        id,
        "imported",
        None,
        RoStatus::Paid,
        Some("imported from the dealer's previous system"),
    )
    .await?;
    Ok(id)
}

/// A settled visit of a vehicle, as reminders count them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    /// The settlement date, UTC.
    pub date: chrono::NaiveDate,
    /// The odometer at check-in.
    pub mileage_km: Option<i64>,
    /// `maintenance`, `repair`, `warranty` or `care`: the booked service type when the order
    /// came from an appointment, else `maintenance` for a maintenance complaint code and
    /// `repair` otherwise.
    pub kind: &'static str,
}

/// The settled repair orders of `vehicle_id`, newest first (at most `limit`).
pub async fn visits(conn: &mut AnyConnection, vehicle_id: i64, limit: i64) -> Result<Vec<Visit>> {
    let rows: Vec<(i64, Option<i64>, String, Option<String>)> = sqlx::query_as(
        "SELECT r.settled_at, r.mileage_km, r.complaint_code, a.service_type FROM repair_orders r \
         LEFT JOIN appointments a ON a.id = r.appointment_id \
         WHERE r.vehicle_id = $1 AND r.settled_at IS NOT NULL ORDER BY r.settled_at DESC LIMIT $2",
    )
    .bind(vehicle_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(settled_at, mileage_km, code, booked)| Visit {
            date: clock::to_datetime(settled_at).date_naive(),
            mileage_km,
            kind: match booked.as_deref() {
                Some("maintenance") => "maintenance",
                Some("warranty") => "warranty",
                Some("campaign" | "inspection") => "care",
                Some(_) => "repair",
                None if code == "maintenance" => "maintenance",
                None => "repair",
            },
        })
        .collect())
}

/// The `repair-settled` event of settled order `order`, for the dealer's integration plugin
/// (e.g. the upload to the provincial maintenance-record platform, JT/T 1132): the car, the
/// dates, the odometer at check-in, the complaint, the labour done and the parts used.
pub async fn settled_event(conn: &mut AnyConnection, order: &RepairOrder) -> Result<DomainEvent> {
    let vehicle = vehicles::get_unscoped(conn, order.vehicle_id).await?;
    let settled_at = order.settled_at.unwrap_or(order.updated_at);
    let date = |t: DateTime<Utc>| t.format("%Y-%m-%d").to_string();
    let (labour, parts): (Vec<&Line>, Vec<&Line>) =
        order.lines.iter().partition(|l| l.kind == LineKind::Labour);
    Ok(DomainEvent {
        dealer_id: order.dealer_id,
        kind: "repair-settled".to_owned(),
        cause: format!("repair_order:{}", order.id),
        customer_id: Some(order.customer_id),
        vehicle_id: Some(order.vehicle_id),
        order_id: None,
        repair_order_id: Some(order.id),
        payload: serde_json::json!({
            "vin": vehicle.vin,
            "plate": vehicle.plate,
            "repair_date": date(order.created_at),
            "settled_date": date(settled_at),
            "mileage_km": order.mileage_km,
            "fault_description": order.complaint,
            "complaint_code": order.complaint_code,
            "total_fen": order.total_fen,
            "items": labour.iter().map(|l| serde_json::json!({"name": l.description, "hours": l.quantity})).collect::<Vec<_>>(),
            "parts": parts.iter().map(|l| serde_json::json!({"name": l.description, "quantity": l.quantity})).collect::<Vec<_>>(),
        }),
        occurred_at: settled_at.timestamp_millis(),
    })
}

/// Records a payment of a settled order; paid in full, it is `paid`.
pub async fn pay(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
    expected: i64,
    payment: &NewPayment,
) -> Result<RepairOrder> {
    let row = for_change(conn, caller, id, expected).await?;
    let status = row.status()?;
    if status != RoStatus::Settled {
        return Err(Error::Conflict {
            code: "not_settled",
            message: format!(
                "payments are taken once the order is settled; it is {}",
                status.as_str()
            ),
        });
    }
    let (total,): (i64,) = sqlx::query_as("SELECT total_fen FROM repair_orders WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    let outstanding = total - row.paid_fen;
    let mut errors = Vec::new();
    let method =
        text::required(&mut errors, "method", &payment.method, METHOD_MAX).unwrap_or_default();
    if payment.amount_fen <= 0 || payment.amount_fen > outstanding {
        errors.push(FieldError::new(
            "amount_fen",
            "invalid_amount",
            format!("a payment is 1 to {outstanding} fen (what is outstanding)"),
        ));
    }
    invalid_if_any(errors)?;
    let now = clock::now_ms();
    sqlx::query(
        "INSERT INTO repair_order_payments (repair_order_id, method, amount_fen, paid_at, actor_key_id) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(&method)
    .bind(payment.amount_fen)
    .bind(now)
    .bind(caller.key_id)
    .execute(&mut *conn)
    .await?;
    let paid = row.paid_fen + payment.amount_fen;
    let mut sets = vec![("paid_fen", Param::Int(paid))];
    let to = if paid == total {
        sets.push(("paid_at", Param::Int(now)));
        RoStatus::Paid
    } else {
        RoStatus::Settled
    };
    advance(
        conn,
        Actor::Staff(caller),
        &row,
        to,
        "payment",
        Some(&method),
        &sets,
    )
    .await?;
    audit::record(
        conn,
        caller,
        Entry::ok("payment", "repair_order", id, row.dealer_id)
            .with_detail(serde_json::json!({ "amount_fen": payment.amount_fen, "method": method })),
    )
    .await?;
    fetch(conn, id).await
}

/// First-time-fix over `period` in the caller's scope.
pub async fn first_time_fix(
    conn: &mut AnyConnection,
    caller: &Caller,
    period: &Period,
) -> Result<FirstTimeFix> {
    let offset = network::utc_offset_minutes(conn, caller.org_id).await?;
    let (start, end) = period.bounds_ms(offset)?;
    let mut sql = Sql::new(
        "SELECT COUNT(*), COUNT(CASE WHEN EXISTS (SELECT 1 FROM repair_orders c WHERE c.comeback_of_id = r.id) THEN 1 END) \
         FROM repair_orders r WHERE r.settled_at >= ",
    );
    sql.bind(Param::Int(start))
        .push(" AND r.settled_at < ")
        .bind(Param::Int(end));
    caller.scope(&mut sql, "r.dealer_id");
    let (settled, with_comeback): (i64, i64) = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_one(&mut *conn)
        .await?;
    Ok(FirstTimeFix {
        from: period.from.trim().to_owned(),
        to: period.to.trim().to_owned(),
        settled,
        with_comeback,
        rate: super::ratio(settled - with_comeback, settled),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use RoStatus::*;

    #[test]
    fn the_happy_path_is_allowed_and_nothing_skips_the_quality_check() {
        for (from, to) in [
            (Open, Inspected),
            (Inspected, InProgress),
            (InProgress, WaitingApproval),
            (WaitingApproval, InProgress),
            (InProgress, QualityCheck),
            (QualityCheck, Ready),
            (QualityCheck, InProgress),
            (Ready, Settled),
            (Settled, Paid),
        ] {
            assert!(from.check_move(to).is_ok(), "{from:?} -> {to:?}");
        }
        assert!(InProgress.check_move(Settled).is_err());
        assert!(InProgress.check_move(Ready).is_err());
        for to in RoStatus::ALL {
            assert!(Paid.check_move(to).is_err());
        }
    }

    #[test]
    fn quantities_have_two_decimals_and_amounts_round_half_up() {
        assert_eq!(quantity_centi(1.5), Some(150));
        assert_eq!(quantity_centi(2.0), Some(200));
        assert_eq!(quantity_centi(0.333), None);
        assert_eq!(quantity_centi(0.0), None);
        assert_eq!(quantity_centi(-1.0), None);
        assert_eq!(line_amount(150, 20_000), 30_000);
        assert_eq!(line_amount(33, 101), 33);
        assert_eq!(line_amount(150, 3), 5);
    }

    #[test]
    fn statuses_round_trip() {
        for s in RoStatus::ALL {
            assert_eq!(RoStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
    }
}
