//! Trade-ins: the evaluation of a customer's old car (VIN, plate, mileage, a graded checklist,
//! photos in the attachment store, a quote) and its acquisition, linked to the new order as a `trade-in` line that
//! reduces the amount to pay. Owns `trade_ins`; the line is written through
//! [`super::orders`]' table conventions (`sales_order_lines`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::{AnyConnection, FromRow};
use utoipa::ToSchema;

use super::orders::{self, LineKind, Order, OrderStatus};
use super::text_enum;
use crate::access::{self, Caller, Record};
use crate::attachments::{self, Attachment, Store};
use crate::audit::{self, Entry};
use crate::clock;
use crate::custom_fields::{self, Entity, Writer};
use crate::db::decode;
use crate::error::{Error, FieldError, Result};
use crate::model::Versioned;
use crate::text;
use crate::{customers, vehicles};

pub const CHECKLIST_MAX: usize = 100;
/// The `owner_kind` of a trade-in's photos in the attachment store.
const PHOTO_OWNER: &str = "trade_in";

text_enum!(
    /// The condition of one checklist item.
    Grade {
        Green => "green",
        Yellow => "yellow",
        Red => "red",
    }
);

text_enum!(
    TradeInStatus {
        Quoted => "quoted",
        Accepted => "accepted",
        Declined => "declined",
    }
);

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecklistItem {
    /// e.g. `漆面`, `发动机`, `底盘`; 1 to 100 characters.
    pub item: String,
    pub grade: Grade,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TradeIn {
    pub id: i64,
    pub dealer_id: i64,
    pub customer_id: i64,
    pub vin: String,
    pub plate: Option<String>,
    pub model: String,
    pub mileage_km: i64,
    pub checklist: Vec<ChecklistItem>,
    pub quote_fen: i64,
    pub status: TradeInStatus,
    /// The order it was traded in against, once accepted.
    pub order_id: Option<i64>,
    /// Photos of the car, oldest first (download at `/attachments/{id}`).
    pub photos: Vec<Attachment>,
    /// The values of the dealer's custom fields for trade-ins
    /// (`GET /custom-fields?entity=trade_in`).
    pub custom_fields: Map<String, Value>,
    /// Send it back as `If-Match` when updating.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Versioned for TradeIn {
    fn version(&self) -> i64 {
        self.version
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTradeIn {
    /// A customer of the dealer (the dealer is the customer's).
    pub customer_id: i64,
    pub vin: String,
    pub plate: Option<String>,
    pub model: String,
    pub mileage_km: i64,
    #[serde(default)]
    pub checklist: Vec<ChecklistItem>,
    /// The price offered for the car.
    pub quote_fen: i64,
    /// Values of the dealer's custom fields for trade-ins, validated against their definitions
    /// (`GET /custom-fields?entity=trade_in`); a required one must be given.
    #[serde(default)]
    pub custom_fields: Map<String, Value>,
}

/// A change to a trade-in; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TradeInPatch {
    /// Merged into the stored custom field values by key; a key set to `null` is removed. The
    /// result is validated against the dealer's definitions, as on create.
    pub custom_fields: Option<Map<String, Value>>,
}

impl TradeInPatch {
    /// The names of the fields this patch sets (what the audit log records, never the values).
    pub fn fields(&self) -> Vec<&'static str> {
        [("custom_fields", self.custom_fields.is_some())]
            .into_iter()
            .filter_map(|(name, set)| set.then_some(name))
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Acceptance {
    /// An order of the same customer, not yet delivered or cancelled, without a trade-in.
    pub order_id: i64,
}

#[derive(FromRow)]
struct TradeInRow {
    id: i64,
    dealer_id: i64,
    customer_id: i64,
    vin: String,
    plate: Option<String>,
    model: String,
    mileage_km: i64,
    checklist: String,
    quote_fen: i64,
    status: String,
    order_id: Option<i64>,
    custom_fields: String,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

const COLUMNS: &str = "id, dealer_id, customer_id, vin, plate, model, mileage_km, checklist, quote_fen, status, \
     order_id, custom_fields, version, created_at, updated_at";

impl TradeInRow {
    fn into_trade_in(self, photos: Vec<Attachment>) -> Result<TradeIn> {
        Ok(TradeIn {
            status: decode("trade_ins", &self.status, TradeInStatus::parse)?,
            checklist: serde_json::from_str(&self.checklist).unwrap_or_default(),
            id: self.id,
            dealer_id: self.dealer_id,
            customer_id: self.customer_id,
            vin: self.vin,
            plate: self.plate,
            model: self.model,
            mileage_km: self.mileage_km,
            quote_fen: self.quote_fen,
            order_id: self.order_id,
            photos,
            custom_fields: custom_fields::from_column(&self.custom_fields),
            version: self.version,
            created_at: clock::to_datetime(self.created_at),
            updated_at: clock::to_datetime(self.updated_at),
        })
    }
}

/// Records an evaluation with its quote, for a customer in the caller's scope. Audited.
pub async fn create(
    conn: &mut AnyConnection,
    caller: &Caller,
    new: &NewTradeIn,
) -> Result<TradeIn> {
    let dealer_id = customers::dealer_of(conn, caller, new.customer_id).await?;
    let mut errors = Vec::new();
    let vin = vehicles::identity::parse_vin(&new.vin)
        .map_err(|m| errors.push(FieldError::new("vin", "invalid_vin", m)))
        .ok();
    let plate = new.plate.as_deref().and_then(|p| {
        vehicles::identity::parse_plate(p)
            .map_err(|m| errors.push(FieldError::new("plate", "invalid_plate", m)))
            .ok()
    });
    let model = text::required(&mut errors, "model", &new.model, 100);
    if !(0..=3_000_000).contains(&new.mileage_km) {
        errors.push(FieldError::new(
            "mileage_km",
            "invalid_km",
            "an odometer reading is between 0 and 3,000,000 km",
        ));
    }
    if !(0..=orders::AMOUNT_MAX).contains(&new.quote_fen) {
        errors.push(FieldError::new(
            "quote_fen",
            "out_of_range",
            "a quote is 0 or more fen",
        ));
    }
    if new.checklist.len() > CHECKLIST_MAX {
        errors.push(FieldError::new(
            "checklist",
            "too_many",
            format!("at most {CHECKLIST_MAX} items"),
        ));
    }
    for (i, item) in new.checklist.iter().enumerate() {
        text::required(
            &mut errors,
            &format!("checklist[{i}].item"),
            &item.item,
            100,
        );
        text::optional(
            &mut errors,
            &format!("checklist[{i}].note"),
            item.note.as_deref(),
            orders::TEXT_MAX,
        );
    }
    custom_fields::validate(
        conn,
        dealer_id,
        Entity::TradeIn,
        Writer::Staff,
        &new.custom_fields,
        &mut errors,
    )
    .await?;
    let (Some(vin), Some(model)) = (vin, model) else {
        return Err(Error::Invalid(errors));
    };
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let now = clock::now_ms();
    let row: TradeInRow = sqlx::query_as(&format!(
        "INSERT INTO trade_ins (dealer_id, customer_id, vin, plate, model, mileage_km, checklist, quote_fen, status, \
         custom_fields, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING {COLUMNS}"
    ))
    .bind(dealer_id)
    .bind(new.customer_id)
    .bind(&vin)
    .bind(plate.map(|p| p.display))
    .bind(&model)
    .bind(new.mileage_km)
    .bind(serde_json::to_string(&new.checklist).unwrap_or_else(|_| "[]".into()))
    .bind(new.quote_fen)
    .bind(TradeInStatus::Quoted.as_str())
    .bind(custom_fields::to_column(&new.custom_fields))
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    audit::record(
        conn,
        caller,
        Entry::ok("create", "trade_in", row.id, dealer_id),
    )
    .await?;
    row.into_trade_in(Vec::new())
}

/// The dealer of trade-in `id` if the caller can see it (else not found, audited by the API).
pub async fn dealer_of(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<i64> {
    access::owning_dealer(conn, caller, Record::TradeIn, id).await
}

async fn fetch(conn: &mut AnyConnection, id: i64) -> Result<TradeIn> {
    let row: Option<TradeInRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM trade_ins WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let photos = attachments::list(conn, PHOTO_OWNER, id).await?;
    row.ok_or(Error::NotFound { entity: "trade_in" })?
        .into_trade_in(photos)
}

pub async fn get(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<TradeIn> {
    dealer_of(conn, caller, id).await?;
    fetch(conn, id).await
}

/// Changes trade-in `id`, if it is still at version `expected`: its custom field values, merged
/// into the stored ones and validated against the dealer's definitions. Accepted in every
/// status (the values are the dealer's own records, not the quote). Audited with the names of
/// the fields changed.
pub async fn update(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
    expected: i64,
    patch: TradeInPatch,
) -> Result<TradeIn> {
    let dealer_id = dealer_of(conn, caller, id).await?;
    let current = fetch(conn, id).await?;
    if current.version != expected {
        return Err(Error::StaleVersion {
            current: current.version,
        });
    }
    let changed = patch.fields();
    let fields = custom_fields::patched(
        conn,
        dealer_id,
        Entity::TradeIn,
        current.custom_fields,
        patch.custom_fields,
    )
    .await?;
    let updated = sqlx::query(
        "UPDATE trade_ins SET custom_fields = $1, version = version + 1, updated_at = $2 \
         WHERE id = $3 AND version = $4",
    )
    .bind(custom_fields::to_column(&fields))
    .bind(clock::now_ms())
    .bind(id)
    .bind(expected)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(Error::StaleVersion {
            current: expected + 1,
        });
    }
    audit::record(
        conn,
        caller,
        Entry::ok("update", "trade_in", id, dealer_id)
            .with_detail(serde_json::json!({ "fields": changed })),
    )
    .await?;
    fetch(conn, id).await
}

/// Adds a photo (JPEG, PNG, WebP or PDF, checked by its bytes) to trade-in `id`. Audited.
pub async fn add_photo(
    conn: &mut AnyConnection,
    store: &Store,
    caller: &Caller,
    id: i64,
    content_type: &str,
    bytes: &[u8],
) -> Result<Attachment> {
    let dealer_id = dealer_of(conn, caller, id).await?;
    let photo = attachments::save(
        conn,
        store,
        dealer_id,
        PHOTO_OWNER,
        id,
        content_type,
        bytes,
        None,
        caller,
    )
    .await?;
    audit::record(
        conn,
        caller,
        Entry::ok("add_photo", "trade_in", id, dealer_id)
            .with_detail(serde_json::json!({ "attachment_id": photo.id })),
    )
    .await?;
    Ok(photo)
}

/// The customer accepts the quote: the trade-in is acquired and becomes a `trade-in` line of
/// the order (minus the quote), recorded in the order's timeline. Audited.
pub async fn accept(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
    acceptance: &Acceptance,
) -> Result<(TradeIn, Order)> {
    let dealer_id = dealer_of(conn, caller, id).await?;
    let trade_in = fetch(conn, id).await?;
    if trade_in.status != TradeInStatus::Quoted {
        return Err(Error::InvalidTransition {
            from: trade_in.status.as_str().to_owned(),
            to: TradeInStatus::Accepted.as_str().to_owned(),
            allowed: Vec::new(),
        });
    }
    let order_dealer = orders::dealer_of(conn, caller, acceptance.order_id).await?;
    let order = orders::fetch_row(conn, acceptance.order_id).await?;
    if order_dealer != dealer_id || order.customer_id != trade_in.customer_id {
        return Err(Error::invalid(
            "order_id",
            "other_customer",
            "the order is not the same customer's",
        ));
    }
    let status = order.status()?;
    if matches!(status, OrderStatus::Delivered | OrderStatus::Cancelled) {
        return Err(Error::Conflict {
            code: "order_closed",
            message: format!("a {} order takes no trade-in", status.as_str()),
        });
    }
    if orders::lines_of(conn, order.id)
        .await?
        .iter()
        .any(|l| l.kind == LineKind::TradeIn)
    {
        return Err(Error::Conflict {
            code: "trade_in_exists",
            message: "the order already has a trade-in".into(),
        });
    }
    let updated = sqlx::query(
        "UPDATE trade_ins SET status = $1, order_id = $2, version = version + 1, updated_at = $3 \
         WHERE id = $4 AND status = $5",
    )
    .bind(TradeInStatus::Accepted.as_str())
    .bind(order.id)
    .bind(clock::now_ms())
    .bind(id)
    .bind(TradeInStatus::Quoted.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(Error::Conflict {
            code: "trade_in_changed",
            message: "the trade-in was accepted or declined meanwhile".into(),
        });
    }
    orders::claim(conn, order.id, order.version, status).await?;
    sqlx::query(
        "INSERT INTO sales_order_lines (order_id, kind, description, amount_fen, cost_fen, trade_in_id) \
         VALUES ($1, $2, $3, $4, 0, $5)",
    )
    .bind(order.id)
    .bind(LineKind::TradeIn.as_str())
    .bind(format!("trade-in {} ({})", trade_in.model, trade_in.vin))
    .bind(-trade_in.quote_fen)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    orders::record_event(
        conn,
        caller,
        order.id,
        "trade_in",
        Some(status),
        status,
        Some(&format!("trade-in {id} accepted")),
    )
    .await?;
    audit::record(
        conn,
        caller,
        Entry::ok("accept", "trade_in", id, dealer_id)
            .with_detail(serde_json::json!({ "order_id": order.id })),
    )
    .await?;
    Ok((fetch(conn, id).await?, orders::load(conn, order.id).await?))
}

/// The customer declines the quote. Audited.
pub async fn decline(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<TradeIn> {
    let dealer_id = dealer_of(conn, caller, id).await?;
    let updated = sqlx::query(
        "UPDATE trade_ins SET status = $1, version = version + 1, updated_at = $2 WHERE id = $3 AND status = $4",
    )
    .bind(TradeInStatus::Declined.as_str())
    .bind(clock::now_ms())
    .bind(id)
    .bind(TradeInStatus::Quoted.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let trade_in = fetch(conn, id).await?;
    if updated == 0 {
        return Err(Error::InvalidTransition {
            from: trade_in.status.as_str().to_owned(),
            to: TradeInStatus::Declined.as_str().to_owned(),
            allowed: Vec::new(),
        });
    }
    audit::record(
        conn,
        caller,
        Entry::ok("decline", "trade_in", id, dealer_id),
    )
    .await?;
    Ok(trade_in)
}
