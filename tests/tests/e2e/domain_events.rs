//! What a committed change sets off (a delivery's points, care plan and partner event, a
//! settlement's partner event) survives a crash right after the commit: it is recorded with
//! the change and run by the worker once, also with two replicas running it at once; a
//! partner event whose plugin failed is retried after a backoff until it succeeds; and a
//! policy nearing its expiry is announced to partners once.

use dealer_host::{clock, domain_events, reminders};
use dealer_tests::service::{DAY_MS, act_ok, owner_with_car};
use dealer_tests::{Backend, TestApp, on_both_backends, valid_vin};
use serde_json::{Value, json};

use crate::examples::insurer;
use crate::sales_orders::{customer, deliver, ready_order};

on_both_backends!(
    follow_ups_lost_to_a_crash_are_run_by_the_worker_once_across_replicas,
    a_partner_event_whose_plugin_failed_is_retried_until_it_succeeds,
    a_policy_nearing_its_expiry_is_announced_to_partners_once,
);

async fn balance(app: &TestApp, customer_id: i64) -> Value {
    app.read(
        &app.keys.a_sales,
        &format!("/customers/{customer_id}/points"),
    )
    .await["account"]["balance"]
        .clone()
}

async fn integration_events(app: &TestApp, query: &str) -> Vec<Value> {
    app.read(&app.keys.a_sales, &format!("/integration-events?{query}"))
        .await
        .as_array()
        .expect("a list of events")
        .clone()
}

/// The follow-ups recorded so far: (cause key, status, attempts), by cause key.
async fn follow_ups(app: &TestApp) -> Vec<(String, String, i64)> {
    sqlx::query_as("SELECT cause_key, status, attempts FROM domain_events ORDER BY cause_key")
        .fetch_all(app.db.pool())
        .await
        .expect("the domain events")
}

/// Opens a repair order for the car and settles it (nothing to pay); returns it.
async fn settled_repair(app: &TestApp, customer: i64, vehicle: i64) -> Value {
    let key = &app.keys.a_service;
    let order = app
        .create(
            key,
            "/repair-orders",
            &json!({"customer_id": customer, "vehicle_id": vehicle, "complaint_code": "maintenance"}),
        )
        .await;
    let ro = format!("/repair-orders/{}", order["id"]);
    act_ok(
        app,
        key,
        &ro,
        "/check-in",
        &json!({"mileage_km": 5_000, "items": []}),
    )
    .await;
    act_ok(
        app,
        key,
        &ro,
        "/dispatch",
        &json!({"technician_staff_id": app.staff.a_technician}),
    )
    .await;
    act_ok(
        app,
        key,
        &ro,
        "/status",
        &json!({"status": "quality_check"}),
    )
    .await;
    act_ok(app, key, &ro, "/quality-check", &json!({"passed": true})).await;
    act_ok(app, key, &ro, "/settle", &json!({})).await
}

/// The host "crashes" right after each commit: the delivery and the settlement stand, nothing
/// they set off has run. Two replicas' workers then run it all at once: each follow-up once.
async fn follow_ups_lost_to_a_crash_are_run_by_the_worker_once_across_replicas(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer_id = customer(&app, "13900139051").await;
    let order = ready_order(&app, customer_id, 51).await;
    let (owner, car) = owner_with_car(&app, &app.keys.a_service, 52, json!([])).await;
    app.db.crash_after_commit_for_tests();
    let delivered = deliver(&app, &order).await;
    let vehicle_id = delivered["vehicle_id"].as_i64().expect("the car's vehicle");
    let repair = settled_repair(&app, owner, car).await;
    assert_eq!(repair["status"], "paid", "{repair}");

    assert_eq!(
        balance(&app, customer_id).await,
        0,
        "no points before the worker"
    );
    assert!(integration_events(&app, "").await.is_empty());
    let pending = follow_ups(&app).await;
    let order_id = &order["id"];
    let repair_id = &repair["id"];
    assert_eq!(
        pending
            .iter()
            .map(|(key, _, _)| key.clone())
            .collect::<Vec<_>>(),
        vec![
            format!("care_plan:sales_order:{order_id}"),
            format!("partner:repair-settled:repair_order:{repair_id}"),
            format!("partner:vehicle-delivered:sales_order:{order_id}"),
            format!("points:sales_order:{order_id}"),
        ],
        "recorded with their causes"
    );
    assert!(pending.iter().all(|(_, status, _)| status == "pending"));

    let replica = app.replica().await;
    let now = clock::now_ms();
    let (one, two) = tokio::join!(
        domain_events::run_due(&app.state.db, &app.state.plugins, "replica-1", now),
        domain_events::run_due(&replica.state.db, &replica.state.plugins, "replica-2", now),
    );
    let (one, two) = (
        one.expect("replica 1's pass"),
        two.expect("replica 2's pass"),
    );
    assert_eq!(one.claimed + two.claimed, 4, "{one:?} {two:?}");
    assert_eq!(one.done + two.done, 4, "{one:?} {two:?}");
    assert!(
        follow_ups(&app)
            .await
            .iter()
            .all(|(_, status, attempts)| status == "done" && *attempts == 1),
        "each ran once"
    );

    let final_price = delivered["final_price_fen"].as_i64().expect("a price");
    assert_eq!(balance(&app, customer_id).await, final_price / 100);
    let reminders = app
        .read(
            &app.keys.a_sales,
            &format!("/vehicles/{vehicle_id}/reminders"),
        )
        .await;
    assert!(
        reminders
            .as_array()
            .expect("reminders")
            .iter()
            .any(|r| r["kind"] == "maintenance"),
        "the care plan ran: {reminders}"
    );
    let delivered_events = integration_events(&app, &format!("order_id={order_id}")).await;
    assert_eq!(delivered_events.len(), 1, "{delivered_events:?}");
    assert_eq!(delivered_events[0]["kind"], "vehicle-delivered");
    let settled_events = integration_events(&app, &format!("repair_order_id={repair_id}")).await;
    assert_eq!(settled_events.len(), 1, "{settled_events:?}");
    assert_eq!(settled_events[0]["kind"], "repair-settled");

    let again =
        domain_events::run_due(&app.state.db, &app.state.plugins, "replica-1", now + DAY_MS)
            .await
            .expect("a later pass");
    assert_eq!(again.claimed, 0, "nothing left: {again:?}");
}

/// The insurer is down at delivery: the sale and its points stand, the partner event is kept
/// as failed and tried again once its backoff passed; when the insurer is back it is handled,
/// and never again.
async fn a_partner_event_whose_plugin_failed_is_retried_until_it_succeeds(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let insurer = insurer(
        &app,
        503,
        json!({"quote_id": "Q-61", "premium_fen": 480_000}),
    )
    .await;
    let customer_id = customer(&app, "13900139061").await;
    let order = ready_order(&app, customer_id, 61).await;
    let delivered = deliver(&app, &order).await;

    let final_price = delivered["final_price_fen"].as_i64().expect("a price");
    assert_eq!(balance(&app, customer_id).await, final_price / 100);
    let query = format!("order_id={}", order["id"]);
    let events = integration_events(&app, &query).await;
    assert_eq!(events[0]["status"], "failed", "{events:?}");
    assert!(
        events[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("503")),
        "{events:?}"
    );
    assert_eq!(insurer.received().len(), 1);

    let key = format!("partner:vehicle-delivered:sales_order:{}", order["id"]);
    let (due,): (i64,) =
        sqlx::query_as("SELECT next_attempt_at FROM domain_events WHERE cause_key = $1")
            .bind(&key)
            .fetch_one(app.db.pool())
            .await
            .expect("the partner event's follow-up");
    let (db, plugins) = (&app.state.db, &app.state.plugins);
    let early = domain_events::run_due(db, plugins, "w", due - 1)
        .await
        .unwrap();
    assert_eq!(early.claimed, 0, "not before its backoff: {early:?}");
    assert_eq!(insurer.received().len(), 1);

    insurer.answer_with(200);
    let retried = domain_events::run_due(db, plugins, "w", due).await.unwrap();
    assert_eq!((retried.claimed, retried.done), (1, 1), "{retried:?}");
    let events = integration_events(&app, &query).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["status"], "handled", "{events:?}");
    assert_eq!(events[0]["actions"][0]["kind"], "record_reference");
    assert_eq!(events[0]["actions"][0]["detail"]["value"], "Q-61");
    assert_eq!(insurer.received().len(), 2);

    let later = domain_events::run_due(db, plugins, "w", due + DAY_MS)
        .await
        .unwrap();
    assert_eq!(later.claimed, 0, "{later:?}");
    assert_eq!(
        insurer.received().len(),
        2,
        "the insurer heard of it once more, not twice"
    );
}

/// A car of `owner` whose policy with `insurer` expires on `expiry`.
async fn insured_car(app: &TestApp, serial: u32, expiry: &str) -> i64 {
    let owner = customer(app, &format!("1390013{serial:04}")).await;
    app.create(
        &app.keys.a_sales,
        "/vehicles",
        &json!({"vin": valid_vin(serial), "brand": "红旗", "model": "H5", "plate": "京A·54321",
                "purchase_date": "2024-03-01", "insurer": "中国平安", "insurance_expiry": expiry,
                "owner_id": owner}),
    )
    .await["id"]
        .as_i64()
        .expect("a vehicle id")
}

/// The scheduler finds a policy expiring within 45 days and the worker hands the
/// `insurance-expiring` event to the dealer's insurer plugin: once, however often planned.
async fn a_policy_nearing_its_expiry_is_announced_to_partners_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let insurer = insurer(
        &app,
        200,
        json!({"quote_id": "Q-71", "premium_fen": 410_000}),
    )
    .await;
    let now = clock::now_ms();
    let today = reminders::today_in_china(now);
    let expiry = (today + chrono::Days::new(40)).to_string();
    let soon = insured_car(&app, 71, &expiry).await;
    insured_car(&app, 72, &(today + chrono::Days::new(90)).to_string()).await;

    let (db, plugins) = (&app.state.db, &app.state.plugins);
    for day in 0..2_u64 {
        let at = now + i64::try_from(day).unwrap() * DAY_MS + 1;
        reminders::run_due(db, plugins, today + chrono::Days::new(day), at)
            .await
            .expect("the scheduler's pass");
        domain_events::run_due(db, plugins, "w", at)
            .await
            .expect("the worker's pass");
    }

    let events = integration_events(&app, "kind=insurance-expiring").await;
    assert_eq!(
        events.len(),
        1,
        "one announcement, for the policy due soon: {events:?}"
    );
    assert_eq!(events[0]["vehicle_id"], soon);
    assert_eq!(events[0]["status"], "handled");
    assert_eq!(events[0]["payload"]["insurance_expiry"], expiry);
    assert_eq!(events[0]["payload"]["insurer"], "中国平安");
    let received = insurer.received();
    assert_eq!(received.len(), 1, "the insurer heard of it once");
    assert_eq!(
        received[0].body["event_id"],
        format!("insurance-expiring:vehicle:{soon}:{expiry}")
    );
}
