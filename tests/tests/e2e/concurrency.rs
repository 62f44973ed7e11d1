//! Many requests at once. No request holds a database connection while a plugin decides, so
//! fifty creates that call a hook at the same time all succeed on a pool far smaller than the
//! crowd, with the built-in rule and with a plugin; one key retried fifty times at once stores
//! one record. A pool that is exhausted or closed answers 503 `unavailable` with `Retry-After`,
//! never a long hang and then a 500.

use dealer_tests::service::{act_ok, owner_with_car};
use dealer_tests::{Backend, Reply, TestApp, call, on_both_backends, valid_vin};
use serde_json::{Value, json};

on_both_backends!(
    fifty_tickets_opened_at_once_are_all_created,
    fifty_tickets_routed_by_a_plugin_at_once_are_all_created,
    crowds_of_tickets_past_the_replay_window_are_all_created,
    fifty_retries_of_one_ticket_at_once_store_one_ticket,
    fifty_extra_work_proposals_at_once_are_all_stored,
    fifty_reported_points_events_at_once_are_all_awarded,
    fifty_discounts_asked_at_once_are_all_decided,
    fifty_deliveries_at_once_all_deliver,
    an_exhausted_pool_answers_503_with_retry_after_and_then_recovers,
    a_closed_pool_answers_503_with_retry_after,
);

const CROWD: usize = 50;

/// Sends all `requests` at once; their replies, in the order given.
async fn all_at_once(requests: Vec<reqwest::RequestBuilder>) -> Vec<Reply> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, request) in requests.into_iter().enumerate() {
        tasks.spawn(async move { (i, call(request).await) });
    }
    let mut replies = tasks.join_all().await;
    replies.sort_by_key(|(i, _)| *i);
    replies.into_iter().map(|(_, reply)| reply).collect()
}

/// Panics unless every reply has `status`, naming those that did not.
fn assert_all(replies: &[Reply], status: u16) {
    let others: Vec<String> = replies
        .iter()
        .filter(|r| r.status != status)
        .map(|r| format!("{} {}", r.status, r.text))
        .collect();
    assert!(
        others.is_empty(),
        "{} of {} answered other than {status}: {others:?}",
        others.len(),
        replies.len()
    );
}

async fn customer(app: &TestApp, serial: usize) -> i64 {
    app.create(
        &app.keys.a_service,
        "/customers",
        &json!({"name": "吴磊", "phones": [{"number": format!("1380000{serial:04}")}], "tags": []}),
    )
    .await["id"]
        .as_i64()
        .expect("a customer id")
}

fn ticket(customer_id: i64, n: usize) -> Value {
    json!({
        "customer_id": customer_id, "channel": "hotline", "category": "complaint",
        "subject": format!("保养后发动机异响 {n}"), "description": "冷启动时有明显异响。",
    })
}

async fn tickets_of(app: &TestApp, customer_id: i64) -> Vec<Value> {
    app.read(
        &app.keys.a_service,
        &format!("/tickets?customer_id={customer_id}&limit=200"),
    )
    .await["items"]
        .as_array()
        .expect("a page of tickets")
        .clone()
}

async fn fifty_tickets_at_once(app: &TestApp) -> Vec<Reply> {
    let customer_id = customer(app, 1).await;
    let requests = (0..CROWD)
        .map(|n| app.post(&app.keys.a_service, "/tickets", &ticket(customer_id, n)))
        .collect();
    let replies = all_at_once(requests).await;
    assert_all(&replies, 201);
    assert_eq!(tickets_of(app, customer_id).await.len(), CROWD);
    replies
}

async fn fifty_tickets_opened_at_once_are_all_created(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let replies = fifty_tickets_at_once(&app).await;
    assert!(
        replies
            .iter()
            .all(|r| r.body["routing"]["decided_by"] == "built-in"),
        "{}",
        replies[0].text
    );
}

async fn fifty_tickets_routed_by_a_plugin_at_once_are_all_created(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.enable_first_party("ticket-routing", "ticket-routing")
        .await;
    let replies = fifty_tickets_at_once(&app).await;
    assert!(
        replies
            .iter()
            .all(|r| r.body["routing"]["decided_by"] == "ticket-routing"),
        "{}",
        replies[0].text
    );
}

/// Past the runs kept for replay, every run clears the input of the oldest ones; crowds doing
/// that at once deadlocked on PostgreSQL (500 `deadlock detected`).
async fn crowds_of_tickets_past_the_replay_window_are_all_created(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer_id = customer(&app, 1).await;
    let rounds = dealer_host::plugins::runs::RECENT_INPUTS as usize / CROWD + 4;
    for round in 0..rounds {
        let requests = (0..CROWD)
            .map(|n| {
                let body = ticket(customer_id, round * CROWD + n);
                app.post(&app.keys.a_service, "/tickets", &body)
            })
            .collect();
        assert_all(&all_at_once(requests).await, 201);
    }
    let (stored,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tickets WHERE customer_id = $1")
        .bind(customer_id)
        .fetch_one(app.db.pool())
        .await
        .expect("the tickets counted");
    assert_eq!(stored as usize, rounds * CROWD);
}

async fn fifty_retries_of_one_ticket_at_once_store_one_ticket(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer_id = customer(&app, 1).await;
    let requests = (0..CROWD)
        .map(|_| {
            app.post(&app.keys.a_service, "/tickets", &ticket(customer_id, 0))
                .header("Idempotency-Key", "hotline-call-4711")
        })
        .collect();
    let replies = all_at_once(requests).await;
    assert_all(&replies, 201);
    assert!(
        replies
            .iter()
            .all(|r| r.body["id"] == replies[0].body["id"]),
        "every retry answers the one ticket"
    );
    assert_eq!(tickets_of(&app, customer_id).await.len(), 1);
}

async fn fifty_extra_work_proposals_at_once_are_all_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.keys.a_service;
    let mut orders = Vec::new();
    for serial in 0..CROWD {
        let (customer, vehicle) = owner_with_car(&app, key, serial as u32, json!([])).await;
        let order = app
            .create(
                key,
                "/repair-orders",
                &json!({"customer_id": customer, "vehicle_id": vehicle, "complaint_code": "brake_noise"}),
            )
            .await;
        let ro = format!("/repair-orders/{}", order["id"]);
        act_ok(
            &app,
            key,
            &ro,
            "/check-in",
            &json!({"mileage_km": 1000, "items": []}),
        )
        .await;
        let dispatched = act_ok(
            &app,
            key,
            &ro,
            "/dispatch",
            &json!({"technician_staff_id": app.staff.a_technician}),
        )
        .await;
        orders.push((ro, dispatched["version"].clone()));
    }
    let requests = orders
        .iter()
        .map(|(ro, version)| {
            app.post(
                key,
                &format!("{ro}/extra-work"),
                &json!({"items": [{"description": "更换空调滤芯", "amount_fen": 15_000}]}),
            )
            .header("If-Match", format!("\"{version}\""))
        })
        .collect();
    let replies = all_at_once(requests).await;
    assert_all(&replies, 200);
    for (ro, _) in &orders {
        let proposals = app.read(key, &format!("{ro}/extra-work")).await;
        assert_eq!(
            proposals.as_array().map(Vec::len),
            Some(1),
            "{ro}: {proposals}"
        );
    }
}

async fn fifty_reported_points_events_at_once_are_all_awarded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut customers = Vec::new();
    for serial in 0..CROWD {
        customers.push(customer(&app, serial).await);
    }
    let requests = customers
        .iter()
        .map(|id| {
            app.post(
                &app.keys.a_service,
                &format!("/customers/{id}/points/events"),
                &json!({"kind": "spend", "amount_fen": 10_000,
                        "cause": {"kind": "repair_order", "id": id.to_string()}}),
            )
        })
        .collect();
    let replies = all_at_once(requests).await;
    assert_all(&replies, 201);
    for id in &customers {
        let points = app
            .read(&app.keys.a_service, &format!("/customers/{id}/points"))
            .await;
        assert_eq!(points["account"]["balance"], 100, "{points}");
    }
}

/// A draft order of dealer_a for a new customer, with its VIN from `serial`.
async fn draft_order(app: &TestApp, serial: usize) -> Value {
    let customer_id = customer(app, serial).await;
    app.create(
        &app.keys.a_sales,
        "/orders",
        &json!({
            "customer_id": customer_id, "consultant_id": app.staff.a_sales, "brand": "红旗",
            "model": "H5", "trim": "智联旗畅版", "colour": "釉白", "vin": valid_vin(serial as u32),
            "list_price_fen": 20_000_000, "vehicle_cost_fen": 18_000_000,
        }),
    )
    .await
}

fn if_match(record: &Value) -> String {
    format!("\"{}\"", record["version"])
}

async fn fifty_discounts_asked_at_once_are_all_decided(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut orders = Vec::new();
    for serial in 0..CROWD {
        orders.push(draft_order(&app, serial).await);
    }
    let requests = orders
        .iter()
        .map(|order| {
            app.patch(
                &app.keys.a_sales,
                &format!("/orders/{}", order["id"]),
                &json!({"discount_fen": 500_000}),
            )
            .header("If-Match", if_match(order))
        })
        .collect();
    let replies = all_at_once(requests).await;
    assert_all(&replies, 200);
    for reply in &replies {
        assert_eq!(reply.body["discount_fen"], 500_000, "{}", reply.text);
        assert!(
            reply.body["discount_approval_id"].is_i64(),
            "the discount was decided: {}",
            reply.text
        );
    }
}

async fn fifty_deliveries_at_once_all_deliver(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut orders = Vec::new();
    for serial in 0..CROWD {
        let mut order = draft_order(&app, serial).await;
        for status in ["confirmed", "pdi_passed", "ready"] {
            let reply = call(
                app.post(
                    &app.keys.a_sales,
                    &format!("/orders/{}/status", order["id"]),
                    &json!({"status": status}),
                )
                .header("If-Match", if_match(&order)),
            )
            .await;
            assert_eq!(reply.status, 200, "to {status}: {}", reply.text);
            order = reply.body;
        }
        orders.push(order);
    }
    let requests = orders
        .iter()
        .map(|order| {
            app.post(
                &app.keys.a_sales,
                &format!("/orders/{}/delivery", order["id"]),
                &json!({"mileage_km": 12}),
            )
            .header("If-Match", if_match(order))
        })
        .collect();
    let replies = all_at_once(requests).await;
    assert_all(&replies, 200);
    assert!(
        replies.iter().all(|r| r.body["status"] == "delivered"),
        "{}",
        replies[0].text
    );
}

/// A 503 problem telling the client to retry.
fn assert_unavailable(reply: &Reply) {
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert_eq!(reply.body["code"], "unavailable", "{}", reply.text);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    let retry_after: u64 = reply
        .header("retry-after")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a Retry-After in seconds: {:?}", reply.headers));
    assert!(retry_after > 0, "{retry_after}");
}

async fn an_exhausted_pool_answers_503_with_retry_after_and_then_recovers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer_id = customer(&app, 1).await;
    // The test holds every connection of the host's pool.
    let pool = app.db.pool();
    let mut held = Vec::new();
    for _ in 0..pool.options().get_max_connections() {
        held.push(pool.acquire().await.expect("a connection of the pool"));
    }
    let read = call(app.get(&app.keys.a_service, "/tickets")).await;
    assert_unavailable(&read);
    let create = call(app.post(&app.keys.a_service, "/tickets", &ticket(customer_id, 0))).await;
    assert_unavailable(&create);

    drop(held);
    app.create(&app.keys.a_service, "/tickets", &ticket(customer_id, 0))
        .await;
    assert_eq!(
        tickets_of(&app, customer_id).await.len(),
        1,
        "the refused create stored nothing"
    );
}

async fn a_closed_pool_answers_503_with_retry_after(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer_id = customer(&app, 1).await;
    app.db.pool().close().await;
    assert_unavailable(&call(app.get(&app.keys.a_service, "/tickets")).await);
    assert_unavailable(
        &call(app.post(&app.keys.a_service, "/tickets", &ticket(customer_id, 0))).await,
    );
}
