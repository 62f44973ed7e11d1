//! Delivery: a `ready` order becomes `delivered`; the car becomes the customer's vehicle (made,
//! or updated when the dealer already has the VIN) with the delivery date as purchase date
//! and an initial mileage reading, and the dealer's commission plugin computes the commission
//! lines. Writes through [`super::orders`], [`super::commission`] and [`crate::vehicles`].
//!
//! What the order sold goes with the car: the insurer and expiry of the policy sold with it
//! (so its renewal is planned) and the car's component batches (so campaigns find it).
//!
//! [`deliver`] is the one place a delivery happens, whoever calls it. What a delivery sets off
//! beyond the order (loyalty points, the owner's care plan, partners; [`follow_ups`]) is
//! recorded in its transaction as [`domain_events`] and run once it committed: each calls a
//! plugin, which never runs inside a write transaction, and none may undo the sale. The
//! request runs them at once; what fails, or is lost with a crash, the worker runs later.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa::ToSchema;

use super::commission;
use super::orders::{self, Order, OrderRow, OrderStatus};
use crate::access::Caller;
use crate::audit::{self, Entry};
use crate::clock;
use crate::custom_fields::Writer;
use crate::db::Db;
use crate::domain_events::{self, FollowUp};
use crate::error::{Error, Result};
use crate::loyalty::{Cause, EventKind, LoyaltyEvent};
use crate::plugins::dispatch::{Decision, Plugins};
use crate::plugins::hooks::{CommissionHook, commission as hook};
use crate::plugins::runs;
use crate::text;
use crate::vehicles::{self, NewLink, NewVehicle, PersonRole, VehiclePatch, mileage};
use crate::{integrations, network, outbox, surveys};

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDelivery {
    /// The plate, if the car is registered already (e.g. 京A·12345).
    pub plate: Option<String>,
    /// The odometer at handover; default 0.
    #[serde(default)]
    pub mileage_km: i64,
    pub note: Option<String>,
}

/// What the commission plugin decides on: the order, its lines, its gross profit, and the
/// staff credited with the sale (its consultant) with their units delivered this month,
/// this one included.
async fn sale_of(
    conn: &mut AnyConnection,
    row: &OrderRow,
    delivered_at: i64,
    today: NaiveDate,
    offset_minutes: i32,
) -> Result<hook::Sale> {
    let lines = orders::lines_of(conn, row.id).await?;
    let totals = orders::totals(row.discount_fen, &lines);
    let (month_start, month_end) = clock::month_bounds_ms(today, offset_minutes);
    let credited: Vec<i64> = row.consultant_id.into_iter().collect();
    let delivered = orders::delivered_in_month(conn, &credited, month_start, month_end).await?;
    let mut staff = Vec::new();
    for id in credited {
        let member = network::staff_member(conn, id).await?;
        let role = member
            .position
            .map_or_else(|| "sales".to_owned(), |p| p.as_str().replace('_', "-"));
        staff.push(hook::SaleStaff {
            member: crate::plugins::bindings::types::StaffMember { id, role },
            units_this_month: delivered.get(&id).copied().unwrap_or(0).saturating_add(1),
        });
    }
    Ok(hook::Sale {
        order_id: row.id,
        dealer_id: row.dealer_id,
        customer_id: row.customer_id,
        model: row.model.clone(),
        delivered_at,
        list_price: row.list_price_fen,
        discount: row.discount_fen,
        final_price: totals.final_price,
        gross_profit: totals.gross_profit,
        lines: orders::contract_lines(&lines),
        staff,
    })
}

/// Makes (or updates) the delivered car as the customer's vehicle and records its mileage.
async fn hand_over(
    conn: &mut AnyConnection,
    caller: &Caller,
    row: &OrderRow,
    vin: &str,
    delivery: &NewDelivery,
    today: NaiveDate,
) -> Result<i64> {
    let insurance_expiry = row.insurance_expiry()?;
    let components = row.components()?;
    let existing: Option<(i64, i64)> =
        sqlx::query_as("SELECT id, version FROM vehicles WHERE dealer_id = $1 AND vin = $2")
            .bind(row.dealer_id)
            .bind(vin)
            .fetch_optional(&mut *conn)
            .await?;
    let vehicle_id = match existing {
        Some((id, version)) => {
            let patch = VehiclePatch {
                plate: delivery.plate.clone().map(Some),
                brand: Some(row.brand.clone()),
                model: Some(row.model.clone()),
                trim: row.trim.clone().map(Some),
                color: row.colour.clone().map(Some),
                purchase_date: Some(Some(today)),
                insurer: row.insurer.clone().map(Some),
                insurance_expiry: insurance_expiry.map(Some),
                components: (!components.is_empty()).then(|| components.clone()),
                ..VehiclePatch::default()
            };
            vehicles::update(conn, caller, id, version, patch, Writer::FollowUp).await?;
            vehicles::link_person(
                conn,
                caller,
                id,
                NewLink {
                    customer_id: row.customer_id,
                    role: PersonRole::Owner,
                },
            )
            .await?;
            id
        }
        None => {
            let new = NewVehicle {
                dealer_id: Some(row.dealer_id),
                vin: vin.to_owned(),
                plate: delivery.plate.clone(),
                brand: row.brand.clone(),
                model: row.model.clone(),
                trim: row.trim.clone(),
                color: row.colour.clone(),
                model_year: Some(i64::from(today.year())),
                purchase_date: Some(today),
                insurer: row.insurer.clone(),
                insurance_expiry,
                components,
                owner_id: Some(row.customer_id),
                custom_fields: serde_json::Map::new(),
            };
            vehicles::create(conn, caller, row.dealer_id, new, Writer::FollowUp)
                .await?
                .id
        }
    };
    mileage::add(
        conn,
        caller,
        vehicle_id,
        mileage::NewReading {
            km: delivery.mileage_km,
            read_at: None,
            source: Some("delivery".to_owned()),
        },
    )
    .await?;
    Ok(vehicle_id)
}

/// Delivers order `id` (at version `expected`, status `ready`, with a VIN): the commission
/// plugin decides outside the write transaction; then, in one transaction, the order becomes
/// `delivered`, the vehicle is made or updated with the customer as owner, its mileage is
/// recorded, the commission lines are stored with what computed them (and the messages the
/// plugin asked for are enqueued), the timeline and the audit log get their entries.
pub async fn deliver(
    db: &Db,
    plugins: &Plugins,
    caller: &Caller,
    id: i64,
    expected: i64,
    delivery: &NewDelivery,
) -> Result<Order> {
    let mut errors = Vec::new();
    let note = text::optional(
        &mut errors,
        "note",
        delivery.note.as_deref(),
        orders::TEXT_MAX,
    );
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let mut conn = db.pool().acquire().await?;
    let dealer_id = orders::dealer_of(&mut conn, caller, id).await?;
    let row = orders::fetch_row(&mut conn, id).await?;
    if row.version != expected {
        return Err(Error::StaleVersion {
            current: row.version,
        });
    }
    let from = row.status()?;
    from.check_move(OrderStatus::Delivered, row.finance_plan.is_some())?;
    let Some(vin) = row.vin.clone() else {
        return Err(Error::invalid(
            "vin",
            "vin_required",
            "allocate a vehicle (its VIN) to the order before delivering it",
        ));
    };
    // The delivery's date (its commission month, the car's purchase date) is the dealer's.
    let offset = network::utc_offset_minutes(&mut conn, dealer_id).await?;
    let delivered_at = db.now_ms();
    let today = clock::business_date(delivered_at, offset);
    let sale = sale_of(&mut conn, &row, delivered_at, today, offset).await?;
    drop(conn);
    let Decision {
        output: lines,
        source,
        run_id,
        effects,
    } = plugins
        .call::<CommissionHook>(dealer_id, sale, runs::Source::Live)
        .await?;

    let mut tx = db.begin_write().await?;
    orders::claim(&mut tx, id, expected, from).await?;
    let vehicle_id = hand_over(&mut tx, caller, &row, &vin, delivery, today).await?;
    sqlx::query(
        "UPDATE sales_orders SET status = $1, delivered_at = $2, vehicle_id = $3 WHERE id = $4",
    )
    .bind(OrderStatus::Delivered.as_str())
    .bind(delivered_at)
    .bind(vehicle_id)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let month = today.format("%Y-%m").to_string();
    commission::store(&mut tx, dealer_id, id, &month, &lines, &source, run_id).await?;
    for notification in &effects.notifications {
        outbox::enqueue(
            &mut tx,
            dealer_id,
            &outbox::Message::from(notification),
            None,
        )
        .await?;
    }
    orders::record_event(
        &mut tx,
        caller,
        id,
        "delivered",
        Some(from),
        OrderStatus::Delivered,
        note.as_deref(),
    )
    .await?;
    let (plugin, version) = commission::computed_by(&source);
    audit::record(
        &mut tx,
        caller,
        Entry::ok("deliver", "sales_order", id, dealer_id).with_detail(serde_json::json!({
            "vehicle_id": vehicle_id, "commission_lines": lines.len(),
            "commission_by": plugin, "commission_version": version, "run_id": run_id,
        })),
    )
    .await?;
    let order = orders::load(&mut tx, id).await?;
    surveys::send(
        &mut tx,
        dealer_id,
        surveys::SubjectKind::SalesOrder,
        id,
        order.customer_id,
    )
    .await?;
    let follow_ups = follow_ups(&order, delivered_at, today);
    let cause = format!("sales_order:{id}");
    let recorded = domain_events::record(&mut tx, dealer_id, &cause, &follow_ups).await?;
    tx.commit().await?;
    domain_events::run_now(db, plugins, &recorded).await;
    Ok(order)
}

/// What a committed delivery sets off: points for the purchase, the owner's care plan (first
/// service and anniversary reminders), and the `vehicle-delivered` event for partners (an
/// insurer's quote). `delivered_at` and `today` (its business date) are the delivery's own.
fn follow_ups(order: &Order, delivered_at: i64, today: NaiveDate) -> Vec<FollowUp> {
    let points = FollowUp::Points(LoyaltyEvent {
        dealer_id: order.dealer_id,
        customer_id: order.customer_id,
        kind: EventKind::VehicleDelivered,
        amount_fen: order.final_price_fen,
        cause: Cause::new("sales_order", order.id),
        attributes: vec![("model".into(), order.model.clone())],
    });
    let care_plan = order.vehicle_id.map(|vehicle_id| FollowUp::CarePlan {
        vehicle_id,
        today,
        at: delivered_at,
    });
    let partner = FollowUp::Partner(integrations::DomainEvent {
        dealer_id: order.dealer_id,
        kind: "vehicle-delivered".to_owned(),
        cause: format!("sales_order:{}", order.id),
        customer_id: Some(order.customer_id),
        vehicle_id: order.vehicle_id,
        order_id: Some(order.id),
        repair_order_id: None,
        payload: serde_json::json!({
            "vin": order.vin,
            "brand": order.brand,
            "model": order.model,
            "trim": order.trim,
            "final_price_fen": order.final_price_fen,
            "finance_plan": order.finance_plan,
            "insurance_product": order.insurance_product,
            "insurer": order.insurer,
            "insurance_expiry": order.insurance_expiry,
        }),
        occurred_at: delivered_at,
    });
    [Some(points), care_plan, Some(partner)]
        .into_iter()
        .flatten()
        .collect()
}
