//! What a committed sale, repair or survey answer sets off beyond its own records: the owner's
//! loyalty points, the care plan of a delivered car, and the dealer's partner integrations.
//!
//! Each runs after the cause's transaction committed, because each calls a plugin (which must
//! never run inside a write transaction) and none may undo the sale or the repair. Each is
//! keyed by its cause, so running one again (a retry, another replica) changes nothing twice.
//! A failure is logged with its cause (an integration's failure is also kept with its event);
//! the sale or repair stands, and what did happen is visible where it lives: the customer's
//! points, the vehicle's reminders, the integration events.

use crate::api::AppState;
use crate::error::Error;
use crate::integrations;
use crate::loyalty::{self, Cause, EventKind, LoyaltyEvent};
use crate::reminders;
use crate::sales::orders::Order;
use crate::service::repair_orders::{self, RepairOrder};
use crate::surveys;

fn failed(what: &str, cause: &str, error: &Error) {
    tracing::error!(error = %error, cause, "follow-up {what} failed; the cause stands");
}

/// A delivered car: points for the purchase, the owner's care plan (first service and
/// anniversary reminders), and the `vehicle-delivered` event for partners (an insurer's
/// quote).
pub async fn delivered(state: &AppState, order: &Order) {
    let cause = format!("sales_order:{}", order.id);
    let event = LoyaltyEvent {
        dealer_id: order.dealer_id,
        customer_id: order.customer_id,
        kind: EventKind::VehicleDelivered,
        amount_fen: order.final_price_fen,
        cause: Cause::new("sales_order", order.id),
        attributes: vec![("model".into(), order.model.clone())],
    };
    if let Err(e) = loyalty::award(&state.db, &state.plugins, event).await {
        failed("loyalty points", &cause, &e);
    }
    if let Some(vehicle_id) = order.vehicle_id {
        let now = crate::clock::now_ms();
        let today = crate::network::business_date(&state.db, order.dealer_id, now)
            .await
            .unwrap_or_else(|_| crate::clock::business_date(now, crate::clock::CST_MINUTES));
        if let Err(e) =
            reminders::plan_vehicle(&state.db, &state.plugins, vehicle_id, today, now).await
        {
            failed("care plan", &cause, &e);
        }
    }
    let event = integrations::DomainEvent {
        dealer_id: order.dealer_id,
        kind: "vehicle-delivered",
        cause: cause.clone(),
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
        }),
        occurred_at: order
            .delivered_at
            .map_or_else(crate::clock::now_ms, |t| t.timestamp_millis()),
    };
    if let Err(e) = integrations::emit(state, event).await {
        failed("partner integrations", &cause, &e);
    }
}

/// A settled repair order: points for what the owner spent, and the `repair-settled` event
/// for partners (the upload to the provincial maintenance-record platform, JT/T 1132).
pub async fn settled(state: &AppState, order: &RepairOrder) {
    let cause = format!("repair_order:{}", order.id);
    if order.total_fen > 0 {
        let event = LoyaltyEvent {
            dealer_id: order.dealer_id,
            customer_id: order.customer_id,
            kind: EventKind::Spend,
            amount_fen: order.total_fen,
            cause: Cause::new("repair_order", order.id),
            attributes: Vec::new(),
        };
        if let Err(e) = loyalty::award(&state.db, &state.plugins, event).await {
            failed("loyalty points", &cause, &e);
        }
    }
    let event = match state.db.pool().acquire().await {
        Ok(mut conn) => repair_orders::settled_event(&mut conn, order).await,
        Err(e) => Err(e.into()),
    };
    let handed = match event {
        Ok(event) => integrations::emit(state, event).await.map(drop),
        Err(e) => Err(e),
    };
    if let Err(e) = handed {
        failed("partner integrations", &cause, &e);
    }
}

/// An answered survey: the loyalty plugin's points for answering.
pub async fn survey_answered(state: &AppState, dealer_id: i64, survey_id: i64) {
    let cause = format!("survey:{survey_id}");
    let customer = match state.db.pool().acquire().await {
        Ok(mut conn) => surveys::customer_of(&mut conn, survey_id).await,
        Err(e) => Err(e.into()),
    };
    let awarded = match customer {
        Ok(customer_id) => {
            let event = LoyaltyEvent {
                dealer_id,
                customer_id,
                kind: EventKind::SurveyAnswered,
                amount_fen: 0,
                cause: Cause::new("survey", survey_id),
                attributes: Vec::new(),
            };
            loyalty::award(&state.db, &state.plugins, event)
                .await
                .map(drop)
        }
        Err(e) => Err(e),
    };
    if let Err(e) = awarded {
        failed("loyalty points", &cause, &e);
    }
}
