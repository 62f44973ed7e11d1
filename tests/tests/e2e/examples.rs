//! The partner examples of `examples/` end to end through the real host: published by HQ with
//! their configuration schema, granted a local stand-in for the partner's API and the
//! credential, the dealer's secret stored, bound for dealer A, and an event evaluated. Each
//! test checks the decision and what the partner received; each failure test checks that a
//! failing partner leaves the built-in decision and a `plugin_error` in the run log.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use dealer_tests::guests::wasm_bytes;
use dealer_tests::service::owner_with_car;
use dealer_tests::{Backend, TestApp, call, on_both_backends, valid_vin};
use serde_json::{Value, json};

on_both_backends!(
    insurance_quotes_a_delivered_vehicle_with_the_dealers_bearer_secret,
    a_domain_event_reaches_the_partner_once_and_its_answer_is_kept,
    insurance_falls_back_when_the_insurer_fails,
    ev_charging_awards_points_for_the_energy_charged,
    ev_charging_falls_back_on_a_session_without_a_customer,
    maintenance_records_upload_a_settled_repair_with_the_api_key_header,
    maintenance_records_fall_back_when_the_platform_fails_or_the_order_is_incomplete,
);

const OCCURRED_AT: i64 = 1_763_900_000_000;
const DAY: i64 = 24 * 60 * 60 * 1000;
pub(crate) const INSURER_SECRET: &str = "insurer-s3cr3t-7";
const PLATFORM_SECRET: &str = "platform-s3cr3t-9";

/// One request the partner stand-in received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    method: Method,
    path: String,
    headers: HeaderMap,
    pub(crate) body: Value,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// A stand-in for a partner's API on `127.0.0.1:<random port>`: records every request and
/// answers each with `status` (until [`Partner::answer_with`] changes it) and the JSON
/// `answer`.
pub(crate) struct Partner {
    /// `127.0.0.1:<port>`, as HQ allowlists it.
    authority: String,
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    server: tokio::task::JoinHandle<()>,
}

impl Partner {
    pub(crate) async fn start(status: u16, answer: Value) -> Partner {
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        let status = Arc::new(AtomicU16::new(status));
        let current = Arc::clone(&status);
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let log = Arc::clone(&log);
                let answer = answer.clone();
                let status =
                    StatusCode::from_u16(current.load(Ordering::SeqCst)).expect("a status code");
                async move {
                    log.lock().expect("the request log").push(Received {
                        method,
                        path: uri.path().to_owned(),
                        headers,
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    });
                    (status, axum::Json(answer))
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the stand-in");
        let port = listener.local_addr().expect("an address").port();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Partner {
            authority: format!("127.0.0.1:{port}"),
            received,
            status,
            server,
        }
    }

    /// Answers every request from now on with `status`.
    pub(crate) fn answer_with(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.authority)
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().expect("the request log").clone()
    }
}

impl Drop for Partner {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Registers example `name` in the catalogue (as HQ) with its configuration schema and
/// uploads its component as version 1.0.0.
pub(crate) async fn publish(app: &TestApp, name: &str, schema: &str) -> i64 {
    let schema: Value = serde_json::from_str(schema).expect("the example's schema is JSON");
    let plugin = app
        .create(
            &app.keys.hq_admin,
            "/plugins",
            &json!({"name": name, "hook": "integration", "description": "partner example",
                    "config_schema": schema}),
        )
        .await;
    let id = plugin["id"].as_i64().expect("a plugin id");
    let reply = call(
        app.client
            .post(format!("{}/plugins/{id}/versions?version=1.0.0", app.base))
            .bearer_auth(&app.keys.hq_admin)
            .header("content-type", "application/wasm")
            .body(wasm_bytes(&format!("example-{name}"))),
    )
    .await;
    assert_eq!(reply.status, 201, "upload answered {}", reply.text);
    id
}

/// HQ allows `plugin` to call `partner` with `credential`; dealer A stores its `secret`.
pub(crate) async fn connect(
    app: &TestApp,
    plugin: i64,
    partner: &Partner,
    credential: &str,
    secret: &str,
) {
    let reply = call(app.put(
        &app.keys.hq_admin,
        &format!("/plugins/{plugin}/grants"),
        &json!({"outbound_hosts": [partner.authority], "credentials": [credential]}),
    ))
    .await;
    assert_eq!(reply.status, 200, "grants answered {}", reply.text);
    let a = app.units.dealer_a;
    let reply = call(app.put(
        &app.keys.a_admin,
        &format!("/dealers/{a}/plugin-secrets/{credential}"),
        &json!({ "secret": secret }),
    ))
    .await;
    assert_eq!(
        reply.status, 204,
        "storing the secret answered {}",
        reply.text
    );
}

/// Binds `plugin` for dealer A's integration hook with `config`, falling back on failure.
pub(crate) async fn bind(app: &TestApp, plugin: i64, config: Value) {
    let a = app.units.dealer_a;
    let reply = call(app.put(
        &app.keys.hq_admin,
        &format!("/dealers/{a}/plugins/integration"),
        &json!({"plugin_id": plugin, "pinned_version": "1.0.0", "config": config,
                "failure_policy": "fallback"}),
    ))
    .await;
    assert_eq!(reply.status, 200, "bind answered {}", reply.text);
}

/// The example insurance plugin published, connected to `insurer` (a fake partner answering
/// `status` with `answer`) with the dealer's secret, and bound for dealer A.
pub(crate) async fn insurer(app: &TestApp, status: u16, answer: Value) -> Partner {
    let insurer = Partner::start(status, answer).await;
    let id = publish(
        app,
        "insurance",
        include_str!("../../../examples/insurance/config.schema.json"),
    )
    .await;
    connect(app, id, &insurer, "insurer-api-key", INSURER_SECRET).await;
    bind(app, id, json!({"quote_url": insurer.url("/v1/quotes")})).await;
    insurer
}

/// An event of dealer A, its payload given as JSON.
fn event(app: &TestApp, kind: &str, customer: Option<i64>, payload: &Value) -> Value {
    json!({
        "kind": kind, "id": format!("evt-{kind}"), "dealer_id": app.units.dealer_a,
        "occurred_at": OCCURRED_AT, "customer_id": customer, "vehicle_id": 3,
        "order_id": null, "repair_order_id": 501, "payload": payload.to_string(),
    })
}

/// Evaluates `input` with dealer A's integration plugin (as HQ) and returns the decision.
async fn decide(app: &TestApp, input: Value) -> Value {
    let a = app.units.dealer_a;
    let reply = call(app.post(
        &app.keys.hq_admin,
        &format!("/dealers/{a}/hooks/integration/evaluate"),
        &json!({ "input": input }),
    ))
    .await;
    assert_eq!(reply.status, 200, "evaluate answered {}", reply.text);
    reply.body
}

/// Asserts the plugin's decision came from the plugin itself.
fn assert_from_plugin(decision: &Value, name: &str) {
    assert_eq!(decision["source"]["kind"], "plugin", "{decision}");
    assert_eq!(decision["source"]["plugin"], name, "{decision}");
}

/// Asserts the built-in decision (no actions) replaced a run that failed with a message
/// containing `error`, and that the run log lists it as a `plugin_error`. Returns the log.
async fn assert_fell_back(app: &TestApp, decision: &Value, error: &str) -> String {
    assert_eq!(decision["output"], json!([]), "{decision}");
    assert_eq!(decision["source"]["kind"], "default", "{decision}");
    assert_eq!(decision["source"]["reason"], "fallback", "{decision}");
    let failed = &decision["source"]["failed"];
    assert_eq!(failed["outcome"], "plugin_error", "{decision}");
    let message = failed["error"].as_str().expect("the failure's message");
    assert!(message.contains(error), "{message}");

    let a = app.units.dealer_a;
    let runs = call(app.get(
        &app.keys.hq_admin,
        &format!("/plugin-runs?dealer_id={a}&outcome=plugin_error"),
    ))
    .await;
    assert_eq!(runs.status, 200, "{}", runs.text);
    let items = runs.body["items"].as_array().expect("runs");
    assert!(
        items
            .iter()
            .any(|run| run["id"] == failed["run_id"] && run["outcome"] == "plugin_error"),
        "{}",
        runs.text
    );
    runs.text
}

/// A domain event emitted by the host (as delivery does) goes through the dealer's
/// integration plugin to the partner; the partner's answer is kept with the event, and the
/// event emitted again (a retry, another replica) reaches the partner no second time.
async fn a_domain_event_reaches_the_partner_once_and_its_answer_is_kept(backend: Backend) {
    use dealer_host::integrations::{self, DomainEvent};
    let app = TestApp::spawn(backend).await;
    let insurer = insurer(
        &app,
        200,
        json!({"quote_id": "Q-91", "premium_fen": 480_000}),
    )
    .await;
    let (customer, vehicle) = owner_with_car(&app, &app.keys.a_sales, 31, json!([])).await;
    let event = DomainEvent {
        dealer_id: app.units.dealer_a,
        kind: "vehicle-delivered".into(),
        cause: "sales_order:77".into(),
        customer_id: Some(customer),
        vehicle_id: Some(vehicle),
        order_id: Some(77),
        repair_order_id: None,
        payload: json!({"model": "红旗 H5"}),
        occurred_at: OCCURRED_AT,
    };
    let handled = integrations::emit(&app.state.db, &app.state.plugins, event.clone())
        .await
        .expect("the event is handled")
        .expect("a first emission is handled");
    assert_eq!(handled.status, "handled");
    assert_eq!(handled.decided_by["plugin"], "insurance");
    assert_eq!(handled.actions[0].kind, "record_reference");
    assert_eq!(handled.actions[0].detail["value"], "Q-91");
    let again = integrations::emit(&app.state.db, &app.state.plugins, event)
        .await
        .expect("no error");
    assert!(again.is_none(), "an event is handled once");
    let received = insurer.received();
    assert_eq!(received.len(), 1, "the insurer heard of the delivery once");
    assert_eq!(
        received[0].body["event_id"],
        "vehicle-delivered:sales_order:77"
    );

    let listed = app
        .read(&app.keys.a_sales, "/integration-events?order_id=77")
        .await;
    assert_eq!(listed[0]["actions"][1]["kind"], "create_task", "{listed}");
    // The insurer's follow-up is a task for the dealer's staff, made once.
    let tasks = app
        .read(&app.keys.a_admin, &format!("/tasks?vehicle_id={vehicle}"))
        .await;
    let tasks = tasks["items"]
        .as_array()
        .or(tasks.as_array())
        .expect("tasks");
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert!(
        tasks[0]["title"].as_str().unwrap().contains("Q-91"),
        "{tasks:?}"
    );
    assert_eq!(tasks[0]["kind"], "insurance-advisor");
    let other = app.read(&app.keys.b_admin, "/integration-events").await;
    assert_eq!(other, json!([]), "dealer B sees none of dealer A's events");
}

async fn insurance_quotes_a_delivered_vehicle_with_the_dealers_bearer_secret(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let insurer = insurer(
        &app,
        200,
        json!({"quote_id": "Q-88", "premium_fen": 523_400}),
    )
    .await;

    let payload = json!({"model": "红旗 H5", "final_price": 18_980_000});
    let decision = decide(&app, event(&app, "vehicle-delivered", Some(9), &payload)).await;
    assert_from_plugin(&decision, "insurance");
    assert_eq!(
        decision["output"],
        json!([
            {"record-reference": {"key": "insurance-quote-id", "value": "Q-88"}},
            {"create-task": {"assignee_role": "insurance-advisor",
                            "title": "跟进保险报价 Q-88（保费 ¥5234.00）",
                            "due": OCCURRED_AT + 2 * DAY}},
        ])
    );
    let calls = &decision["effects"]["outbound"];
    assert_eq!(calls[0]["credential"], "insurer-api-key", "{decision}");
    assert_eq!(calls[0]["status"], 200);

    let received = insurer.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let request = &received[0];
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.path, "/v1/quotes");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {INSURER_SECRET}").as_str())
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.body,
        json!({
            "event_id": "evt-vehicle-delivered", "event_kind": "vehicle-delivered",
            "dealer_id": app.units.dealer_a, "occurred_at": OCCURRED_AT,
            "customer_id": 9, "vehicle_id": 3, "payload": payload,
        })
    );

    // Another kind of event: no call, no actions.
    let decision = decide(&app, event(&app, "repair-settled", Some(9), &json!({}))).await;
    assert_from_plugin(&decision, "insurance");
    assert_eq!(decision["output"], json!([]));
    assert_eq!(insurer.received().len(), 1);
}

async fn insurance_falls_back_when_the_insurer_fails(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let insurer = Partner::start(500, json!({"error": "rating engine down"})).await;
    let id = publish(
        &app,
        "insurance",
        include_str!("../../../examples/insurance/config.schema.json"),
    )
    .await;
    connect(&app, id, &insurer, "pingan-key", INSURER_SECRET).await;
    bind(
        &app,
        id,
        json!({"quote_url": insurer.url("/quotes"), "credential": "pingan-key"}),
    )
    .await;

    let decision = decide(
        &app,
        event(
            &app,
            "insurance-expiring",
            Some(9),
            &json!({"expiry": "2026-12-31"}),
        ),
    )
    .await;
    let log = assert_fell_back(&app, &decision, "the insurer answered 500").await;
    assert!(
        !log.contains(INSURER_SECRET),
        "the run log leaks the secret"
    );
    let received = insurer.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(
        received[0].header("authorization"),
        Some(format!("Bearer {INSURER_SECRET}").as_str())
    );
    assert_eq!(received[0].body["event_kind"], "insurance-expiring");
}

async fn ev_charging_awards_points_for_the_energy_charged(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = publish(
        &app,
        "ev-charging",
        include_str!("../../../examples/ev-charging/config.schema.json"),
    )
    .await;
    bind(&app, id, json!({})).await;
    let session = json!({"kwh": 35.5, "session_id": "S-2026-1", "operator": "特来电"});
    let decision = decide(&app, event(&app, "charging-session", Some(9), &session)).await;
    assert_from_plugin(&decision, "ev-charging");
    assert_eq!(
        decision["output"],
        json!([{"award-points": {"customer_id": 9, "points": 71,
                                "reason": "充电 35.5 kWh (会话 S-2026-1，特来电)"}}])
    );
    assert_eq!(decision["effects"]["outbound"], json!([]), "{decision}");

    // The dealer's rate.
    bind(&app, id, json!({"points_per_kwh": 3})).await;
    let decision = decide(&app, event(&app, "charging-session", Some(9), &session)).await;
    assert_eq!(decision["output"][0]["award-points"]["points"], 106);

    // Another kind of event: no actions.
    let decision = decide(&app, event(&app, "vehicle-delivered", Some(9), &json!({}))).await;
    assert_eq!(decision["output"], json!([]));

    // A session the host hands over lands in the customer's points ledger, once, naming the
    // partner's plugin.
    let (customer, _) = owner_with_car(&app, &app.keys.a_sales, 32, json!([])).await;
    let charged = dealer_host::integrations::DomainEvent {
        dealer_id: app.units.dealer_a,
        kind: "charging-session".into(),
        cause: "partner:S-2026-1".into(),
        customer_id: Some(customer),
        vehicle_id: None,
        order_id: None,
        repair_order_id: None,
        payload: session,
        occurred_at: OCCURRED_AT,
    };
    for _ in 0..2 {
        dealer_host::integrations::emit(&app.state.db, &app.state.plugins, charged.clone())
            .await
            .expect("the session is handled");
    }
    let points = app
        .read(&app.keys.a_sales, &format!("/customers/{customer}/points"))
        .await;
    assert_eq!(points["account"]["balance"], 106, "{points}");
    let earned = &points["ledger"]["items"][0];
    assert_eq!(earned["decided_by"]["plugin"], "ev-charging", "{points}");
    assert_eq!(earned["cause"]["kind"], "integration");
}

async fn ev_charging_falls_back_on_a_session_without_a_customer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = publish(
        &app,
        "ev-charging",
        include_str!("../../../examples/ev-charging/config.schema.json"),
    )
    .await;
    bind(&app, id, json!({"points_per_kwh": 2})).await;
    let session = json!({"kwh": 35.5, "session_id": "S-2026-2", "operator": "特来电"});
    let decision = decide(&app, event(&app, "charging-session", None, &session)).await;
    assert_fell_back(
        &app,
        &decision,
        "event evt-charging-session: a charging session without a customer",
    )
    .await;
    let decision = decide(
        &app,
        event(&app, "charging-session", Some(9), &json!({"kwh": "lots"})),
    )
    .await;
    assert_fell_back(&app, &decision, "the payload is not a charging session").await;
}

fn repair_order(vin: &str) -> Value {
    json!({
        "vin": vin, "plate": "京A·12345", "repair_date": "2026-11-20",
        "settled_date": "2026-11-21", "mileage_km": 45_210, "fault_description": "发动机异响",
        "items": [{"name": "更换正时皮带", "code": "W-101", "hours": 2.5}],
        "parts": [{"name": "正时皮带", "code": "P-2001", "quantity": 1}],
    })
}

async fn maintenance_records_upload_a_settled_repair_with_the_api_key_header(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let platform = Partner::start(200, json!({"code": 0, "recordId": "MR-110105-0007"})).await;
    let id = publish(
        &app,
        "maintenance-records",
        include_str!("../../../examples/maintenance-records/config.schema.json"),
    )
    .await;
    connect(
        &app,
        id,
        &platform,
        "maintenance-platform-key",
        PLATFORM_SECRET,
    )
    .await;
    bind(
        &app,
        id,
        json!({"platform_url": platform.url("/api/records"), "company_code": "110105000123"}),
    )
    .await;

    let vin = valid_vin(7);
    let decision = decide(
        &app,
        event(&app, "repair-settled", Some(9), &repair_order(&vin)),
    )
    .await;
    assert_from_plugin(&decision, "maintenance-records");
    assert_eq!(
        decision["output"],
        json!([{"record-reference": {"key": "maintenance-record-id", "value": "MR-110105-0007"}}])
    );
    assert_eq!(
        decision["effects"]["outbound"][0]["credential"],
        "maintenance-platform-key"
    );

    let received = platform.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let request = &received[0];
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.path, "/api/records");
    assert_eq!(request.header("x-api-key"), Some(PLATFORM_SECRET));
    assert_eq!(request.header("authorization"), None);
    assert_eq!(
        request.body,
        json!({
            "companyCode": "110105000123", "vin": vin, "plateNumber": "京A·12345",
            "repairDate": "2026-11-20", "repairMileage": 45_210,
            "faultDescription": "发动机异响",
            "repairProjectList": [
                {"projectName": "更换正时皮带", "projectCode": "W-101", "workingHours": 2.5}
            ],
            "partsList": [{"partsName": "正时皮带", "partsCode": "P-2001", "partsQuantity": 1.0}],
            "settlementDate": "2026-11-21", "costListCode": "501",
        })
    );
}

async fn maintenance_records_fall_back_when_the_platform_fails_or_the_order_is_incomplete(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let platform = Partner::start(500, json!({"code": 500, "message": "系统繁忙"})).await;
    let id = publish(
        &app,
        "maintenance-records",
        include_str!("../../../examples/maintenance-records/config.schema.json"),
    )
    .await;
    connect(
        &app,
        id,
        &platform,
        "maintenance-platform-key",
        PLATFORM_SECRET,
    )
    .await;
    bind(
        &app,
        id,
        json!({"platform_url": platform.url("/api/records"), "company_code": "110105000123"}),
    )
    .await;

    let decision = decide(
        &app,
        event(
            &app,
            "repair-settled",
            Some(9),
            &repair_order(&valid_vin(8)),
        ),
    )
    .await;
    let log = assert_fell_back(&app, &decision, "the maintenance platform answered 500").await;
    assert!(
        !log.contains(PLATFORM_SECRET),
        "the run log leaks the secret"
    );
    let received = platform.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].header("x-api-key"), Some(PLATFORM_SECRET));

    // An order without a VIN is refused before any call.
    let mut incomplete = repair_order(&valid_vin(9));
    incomplete.as_object_mut().expect("an object").remove("vin");
    let decision = decide(&app, event(&app, "repair-settled", Some(9), &incomplete)).await;
    assert_fell_back(
        &app,
        &decision,
        "repair order of event evt-repair-settled: no VIN",
    )
    .await;
    assert_eq!(platform.received().len(), 1);
}
