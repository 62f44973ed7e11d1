//! The shared 360 view across dealers (HQ's shared-history policy on): a phone number typed into
//! a new customer links to nobody; the customer's share consent, or a car the dealer services,
//! does, and then the view shows the other dealers' vehicles, sales orders and repair orders,
//! and the read is audited as a cross-dealer read naming them.

use dealer_tests::service::slot;
use dealer_tests::{Backend, TestApp, call, on_both_backends, valid_vin};
use serde_json::{Value, json};

on_both_backends!(
    a_throwaway_customer_with_the_same_phone_sees_nothing_of_other_dealers,
    with_share_consent_the_view_shows_other_dealers_records_and_audits_the_read,
    a_car_the_dealer_services_shows_its_history_elsewhere,
    share_consent_is_validated_and_scoped,
);

const PHONE: &str = "13900139000";
const PLATE: &str = "京A·88888";
const NOTE: &str = "北京购车时的交车说明";

/// At dealer A (sharing on): a customer with `PHONE`, a car (VIN from `serial`), an interaction
/// about the car, a sales order for the car and a repair order. Returns the VIN and the ids of
/// the order and the repair order.
async fn bought_at_a(app: &TestApp, serial: u32) -> (String, i64, i64) {
    let reply = call(app.put(
        &app.keys.hq_admin,
        "/network/policy",
        &json!({"share_history_across_dealers": true}),
    ))
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let customer = app
        .create(
            &app.keys.a_sales,
            "/customers",
            &json!({"name": "孙丽", "phones": [{"number": PHONE}]}),
        )
        .await["id"]
        .as_i64()
        .expect("a customer id");
    let vin = valid_vin(serial);
    let vehicle = app
        .create(
            &app.keys.a_sales,
            "/vehicles",
            &json!({"vin": vin, "plate": PLATE, "brand": "红旗", "model": "H7", "owner_id": customer}),
        )
        .await["id"]
        .as_i64()
        .expect("a vehicle id");
    app.create(
        &app.keys.a_sales,
        &format!("/customers/{customer}/interactions"),
        &json!({"kind": "note", "summary": NOTE, "vehicle_id": vehicle}),
    )
    .await;
    let order = app
        .create(
            &app.keys.a_sales,
            "/orders",
            &json!({"customer_id": customer, "consultant_id": app.staff.a_sales, "brand": "红旗",
                    "model": "H7", "vin": vin, "list_price_fen": 25_000_000, "vehicle_cost_fen": 22_000_000}),
        )
        .await["id"]
        .as_i64()
        .expect("an order id");
    let repair = app
        .create(
            &app.keys.a_service,
            "/repair-orders",
            &json!({"customer_id": customer, "vehicle_id": vehicle, "complaint_code": "brake_noise"}),
        )
        .await["id"]
        .as_i64()
        .expect("a repair order id");
    (vin, order, repair)
}

/// A customer of dealer B with `phone`, and, if `vin` is given, a car of theirs with it.
async fn customer_at_b(app: &TestApp, phone: &str, vin: Option<&str>) -> (i64, Option<i64>) {
    let customer = app
        .create(
            &app.keys.b_admin,
            "/customers",
            &json!({"name": "孙丽", "phones": [{"number": phone}]}),
        )
        .await["id"]
        .as_i64()
        .expect("a customer id");
    let vehicle = match vin {
        Some(vin) => Some(
            app.create(
                &app.keys.b_admin,
                "/vehicles",
                &json!({"vin": vin, "brand": "红旗", "model": "H7", "owner_id": customer}),
            )
            .await["id"]
                .as_i64()
                .expect("a vehicle id"),
        ),
        None => None,
    };
    (customer, vehicle)
}

async fn view_at_b(app: &TestApp, customer: i64) -> Value {
    app.read(&app.keys.b_admin, &format!("/customers/{customer}/360"))
        .await
}

/// The cross-dealer read entries about dealer B's `customer`.
async fn cross_dealer_reads(app: &TestApp, customer: i64) -> Vec<Value> {
    app.read(
        &app.keys.b_admin,
        &format!("/audit?action=read_cross_dealer&entity_id={customer}"),
    )
    .await["items"]
        .as_array()
        .expect("a page")
        .clone()
}

/// Dealer A's record in the view's network history.
fn from_a<'a>(app: &TestApp, view: &'a Value) -> &'a Value {
    view["network_history"]
        .as_array()
        .expect("network_history")
        .iter()
        .find(|r| r["dealer_id"] == app.units.dealer_a)
        .unwrap_or_else(|| panic!("dealer A's records are shown: {view}"))
}

fn ids(records: &Value) -> Vec<i64> {
    records
        .as_array()
        .unwrap_or_else(|| panic!("a list: {records}"))
        .iter()
        .map(|r| r["id"].as_i64().expect("an id"))
        .collect()
}

async fn a_throwaway_customer_with_the_same_phone_sees_nothing_of_other_dealers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (vin, _, _) = bought_at_a(&app, 31).await;
    // Even a car with the same VIN typed in, never serviced here, is no link.
    let (customer, _) = customer_at_b(&app, PHONE, Some(&vin)).await;

    let view = view_at_b(&app, customer).await;
    assert_eq!(view["network_history"], json!([]), "{view}");
    let text = view.to_string();
    for leaked in ["京A", "88888", NOTE, "brake_noise"] {
        assert!(!text.contains(leaked), "{leaked} leaks: {view}");
    }
    assert!(cross_dealer_reads(&app, customer).await.is_empty());
}

async fn with_share_consent_the_view_shows_other_dealers_records_and_audits_the_read(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (vin, order, repair) = bought_at_a(&app, 32).await;
    let (customer, _) = customer_at_b(&app, PHONE, None).await;
    let path = format!("/customers/{customer}/share-consent");

    let reply = call(app.put(&app.keys.b_admin, &path, &json!({"consent": true}))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["share_consent"], true);
    assert!(reply.body["share_consent_at"].is_string(), "{}", reply.text);
    let b_admin = app.caller(&app.keys.b_admin).await;
    assert_eq!(reply.body["share_consent_by_key_id"], b_admin.key_id);
    let consents = app
        .read(
            &app.keys.b_admin,
            &format!("/audit?action=share_consent&entity_id={customer}"),
        )
        .await;
    assert_eq!(
        consents["items"][0]["detail"]["consent"], true,
        "{consents}"
    );

    let view = view_at_b(&app, customer).await;
    let a = from_a(&app, &view);
    assert!(
        a["matched_by"]
            .as_array()
            .unwrap()
            .contains(&json!("phone")),
        "{a}"
    );
    assert!(a["vehicles"].to_string().contains(&vin), "{a}");
    assert!(a["vehicles"].to_string().contains("88888"), "{a}");
    assert!(a["interactions"].to_string().contains(NOTE), "{a}");
    assert_eq!(ids(&a["orders"]), [order], "{a}");
    assert_eq!(ids(&a["repair_orders"]), [repair], "{a}");
    // The history is extra information; dealer B's own record is unchanged.
    assert_eq!(view["vehicles"], json!([]), "{view}");
    assert_eq!(view["orders"], json!([]), "{view}");

    let reads = cross_dealer_reads(&app, customer).await;
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(reads[0]["dealer_id"], app.units.dealer_b);
    assert_eq!(
        reads[0]["detail"],
        json!({"other_dealers": [app.units.dealer_a], "link": "share_consent"})
    );

    // Withdrawn, nothing is shared any more.
    let reply = call(app.put(&app.keys.b_admin, &path, &json!({"consent": false}))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["share_consent"], false);
    assert_eq!(
        view_at_b(&app, customer).await["network_history"],
        json!([])
    );
    assert_eq!(cross_dealer_reads(&app, customer).await.len(), 1);
}

async fn a_car_the_dealer_services_shows_its_history_elsewhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (vin, order, repair) = bought_at_a(&app, 33).await;
    let a_ticket = app
        .create(
            &app.keys.a_service,
            "/tickets",
            &json!({"customer_id": from_a_customer(&app).await, "channel": "hotline",
                    "category": "complaint", "subject": "北京店的投诉"}),
        )
        .await;
    // Another phone: the link is the car alone.
    let (customer, vehicle) = customer_at_b(&app, "13700137000", Some(&vin)).await;
    assert_eq!(
        view_at_b(&app, customer).await["network_history"],
        json!([])
    );

    app.create(
        &app.keys.b_admin,
        "/appointments",
        &json!({"customer_id": customer, "vehicle_id": vehicle, "channel": "phone",
                "service_type": "maintenance", "slot_start": slot(1)}),
    )
    .await;
    let view = view_at_b(&app, customer).await;
    let a = from_a(&app, &view);
    assert_eq!(a["matched_by"], json!(["vin"]), "{a}");
    assert!(a["vehicles"].to_string().contains(&vin), "{a}");
    assert!(a["interactions"].to_string().contains(NOTE), "{a}");
    assert_eq!(ids(&a["orders"]), [order], "{a}");
    assert_eq!(ids(&a["repair_orders"]), [repair], "{a}");
    // The car links the car's records, not the rest of the person's.
    assert_eq!(a["tickets"], json!([]), "{a}");
    assert!(
        !view
            .to_string()
            .contains(a_ticket["subject"].as_str().unwrap())
    );

    let reads = cross_dealer_reads(&app, customer).await;
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(
        reads[0]["detail"],
        json!({"other_dealers": [app.units.dealer_a], "link": "serviced_vehicle"})
    );
}

/// Dealer A's customer with `PHONE`.
async fn from_a_customer(app: &TestApp) -> i64 {
    app.read(&app.keys.a_sales, &format!("/customers?phone={PHONE}"))
        .await["items"][0]["id"]
        .as_i64()
        .expect("dealer A's customer")
}

async fn share_consent_is_validated_and_scoped(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (customer, _) = customer_at_b(&app, PHONE, None).await;
    let path = format!("/customers/{customer}/share-consent");
    for body in [
        json!({}),
        json!({"consent": "yes"}),
        json!({"consent": true, "by": 1}),
    ] {
        let reply = call(app.put(&app.keys.b_admin, &path, &body)).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.text);
    }
    let reply = call(app.put(&app.keys.a_admin, &path, &json!({"consent": true}))).await;
    assert_eq!(
        reply.status, 404,
        "another dealer's customer: {}",
        reply.text
    );
    let reply = call(app.put(&app.keys.hq_analyst, &path, &json!({"consent": true}))).await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    let read = app
        .read(&app.keys.b_admin, &format!("/customers/{customer}"))
        .await;
    assert_eq!(read["share_consent"], false, "nothing was recorded: {read}");
}
