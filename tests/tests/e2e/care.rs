//! Customer care: the outbox delivery worker, the reminders scheduler and the loyalty ledger,
//! through the API and with the workers called the way the host's loops call them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dealer_host::clock;
use dealer_host::outbox::{self, Outgoing, SendError, SendFuture, Sender, Senders};
use dealer_host::plugins::dispatch::Plugins;
use dealer_host::{AppState, loyalty, reminders, workers};
use dealer_tests::{Backend, TestApp, call, on_both_backends, shared_runtime, valid_vin};
use serde_json::{Value, json};

on_both_backends!(
    due_messages_are_delivered_once_through_their_channel_sender,
    a_failing_sender_is_retried_with_backoff_then_given_up,
    concurrent_workers_deliver_each_message_exactly_once,
    the_outbox_is_for_admins_of_its_dealer,
    the_background_loop_delivers_until_stopped,
    an_event_is_awarded_once_per_cause_with_its_cause_in_the_ledger,
    redeeming_more_than_the_balance_is_refused_and_changes_nothing,
    concurrent_redemptions_never_overdraw,
    tiers_and_expiry_come_from_the_loyalty_plugin,
    a_partner_reports_a_charging_session,
    a_vehicle_due_for_maintenance_gets_one_reminder_delivered_once,
    insurance_expiring_in_30_days_gives_an_advisor_task,
    concurrent_scheduler_runs_send_each_reminder_once,
    the_scheduler_is_run_on_demand_by_admins,
);

/// A sender that records what it was given.
#[derive(Default)]
struct Recording {
    sent: Mutex<Vec<Outgoing>>,
}

impl Sender for Recording {
    fn send<'a>(&'a self, message: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            self.sent.lock().unwrap().push(message.clone());
            Ok("recorded".to_owned())
        })
    }
}

impl Recording {
    fn ids(&self) -> Vec<i64> {
        self.sent.lock().unwrap().iter().map(|m| m.id).collect()
    }
}

/// A sender that always fails the same way.
struct Failing(fn() -> SendError);

impl Sender for Failing {
    fn send<'a>(&'a self, _message: &'a Outgoing) -> SendFuture<'a> {
        let error = (self.0)();
        Box::pin(async move { Err(error) })
    }
}

fn recording_senders(channel: &str) -> (Arc<Recording>, Senders) {
    let recording = Arc::new(Recording::default());
    let senders = Senders::log_only().with(channel, recording.clone());
    (recording, senders)
}

/// Plugins of a host on the app's database, as a replica's would be.
fn plugins(app: &TestApp) -> Plugins {
    dealer_host::state::plugins(app.db.clone(), shared_runtime(), None)
}

/// Messages to a staff member of `dealer_id` reachable on every staff channel (a mobile
/// number, an e-mail address, the task list and the app).
async fn enqueue(app: &TestApp, dealer_id: i64, channel: &str, count: usize) -> Vec<i64> {
    let mut tx = app.db.begin_write().await.unwrap();
    let (staff,): (i64,) = sqlx::query_as(
        "INSERT INTO staff (org_unit_id, name, role, position, phone, email, created_at) \
         VALUES ($1, '值班经理', 'service', 'service_manager', '13800001111', 'duty@example.com', 0) \
         RETURNING id",
    )
    .bind(dealer_id)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    let mut ids = Vec::new();
    for i in 0..count {
        let message = outbox::Message {
            channel: channel.into(),
            recipient: format!("staff:{staff}"),
            template: "test.greeting".into(),
            data: vec![("n".into(), i.to_string())],
            purpose: outbox::Purpose::Service,
        };
        ids.push(
            outbox::enqueue(&mut tx, dealer_id, &message, None)
                .await
                .unwrap()
                .expect("a new message"),
        );
    }
    tx.commit().await.unwrap();
    ids
}

fn items(page: &Value) -> &Vec<Value> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page with items: {page}"))
}

async fn outbox_items(app: &TestApp, query: &str) -> Vec<Value> {
    let page = app
        .read(&app.keys.a_admin, &format!("/outbox?limit=200{query}"))
        .await;
    items(&page).clone()
}

async fn due_messages_are_delivered_once_through_their_channel_sender(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sms = enqueue(&app, app.units.dealer_a, "sms", 3).await;
    let apps = enqueue(&app, app.units.dealer_a, "app", 2).await;
    let (recording, senders) = recording_senders("sms");

    let report = outbox::deliver_due(&app.db, &senders, "worker-1", clock::now_ms())
        .await
        .unwrap();
    assert_eq!(report.claimed, 5, "{report:?}");
    assert_eq!(report.sent, 5, "{report:?}");
    let mut delivered = recording.ids();
    delivered.sort();
    assert_eq!(delivered, sms, "the sms sender got the sms messages only");
    let first = recording.sent.lock().unwrap()[0].clone();
    assert_eq!(first.template, "test.greeting");
    assert!(first.recipient.starts_with("staff:"), "{first:?}");
    assert_eq!(
        first.to[0].address, "13800001111",
        "resolved to the staff member's mobile"
    );
    assert_eq!(first.attempt, 1);

    let again = outbox::deliver_due(&app.db, &senders, "worker-1", clock::now_ms())
        .await
        .unwrap();
    assert_eq!(again.claimed, 0, "nothing is sent twice: {again:?}");
    assert_eq!(recording.ids().len(), 3);

    let sent = outbox_items(&app, "&status=sent").await;
    assert_eq!(sent.len(), 5);
    for item in &sent {
        assert_eq!(item["attempts"], 1, "{item}");
        assert!(item["sent_at"].is_string(), "{item}");
    }
    let app_sent: Vec<i64> = sent
        .iter()
        .filter(|i| i["channel"] == "app")
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert_eq!(app_sent.len(), apps.len());
    assert!(outbox_items(&app, "&status=pending").await.is_empty());
}

async fn a_failing_sender_is_retried_with_backoff_then_given_up(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let [retried] = enqueue(&app, app.units.dealer_a, "sms", 1).await[..] else {
        panic!("one message");
    };
    let [refused] = enqueue(&app, app.units.dealer_a, "email", 1).await[..] else {
        panic!("one message");
    };
    let senders = Senders::log_only()
        .with(
            "sms",
            Arc::new(Failing(|| SendError::Retryable("gateway busy".into()))),
        )
        .with(
            "email",
            Arc::new(Failing(|| SendError::Permanent("no such mailbox".into()))),
        );
    let now = clock::now_ms();
    let report = outbox::deliver_due(&app.db, &senders, "w", now)
        .await
        .unwrap();
    assert_eq!((report.retrying, report.failed), (1, 1), "{report:?}");

    let pending = outbox_items(&app, "&status=pending").await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["id"], retried);
    assert_eq!(pending[0]["attempts"], 1);
    assert_eq!(pending[0]["last_error"], "gateway busy");
    let failed = outbox_items(&app, "&status=failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["id"], refused);
    assert_eq!(
        failed[0]["attempts"], 1,
        "a permanent failure is not retried"
    );

    let early = outbox::deliver_due(&app.db, &senders, "w", now + 1_000)
        .await
        .unwrap();
    assert_eq!(early.claimed, 0, "backoff: not retried at once: {early:?}");

    let day = 24 * 3600 * 1000;
    let mut at = now;
    for _ in 1..outbox::MAX_ATTEMPTS {
        at += day;
        let report = outbox::deliver_due(&app.db, &senders, "w", at)
            .await
            .unwrap();
        assert_eq!(report.claimed, 1, "{report:?}");
    }
    let failed = outbox_items(&app, "&status=failed").await;
    assert_eq!(failed.len(), 2, "given up after the last attempt");
    let gave_up = failed.iter().find(|i| i["id"] == retried).unwrap();
    assert_eq!(gave_up["attempts"], outbox::MAX_ATTEMPTS);
    let after = outbox::deliver_due(&app.db, &senders, "w", at + 30 * day)
        .await
        .unwrap();
    assert_eq!(after.claimed, 0);
}

async fn concurrent_workers_deliver_each_message_exactly_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ids = enqueue(&app, app.units.dealer_a, "sms", 120).await;
    let (recording, senders) = recording_senders("sms");
    let now = clock::now_ms();
    let (a, b) = tokio::join!(
        outbox::deliver_due(&app.db, &senders, "replica-a", now),
        outbox::deliver_due(&app.db, &senders, "replica-b", now),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.sent + b.sent, 120, "{a:?} {b:?}");
    let mut counts: HashMap<i64, usize> = HashMap::new();
    for id in recording.ids() {
        *counts.entry(id).or_default() += 1;
    }
    assert_eq!(counts.len(), ids.len(), "every message was delivered");
    assert!(
        counts.values().all(|n| *n == 1),
        "no message was delivered twice: {counts:?}"
    );
}

async fn the_outbox_is_for_admins_of_its_dealer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    enqueue(&app, app.units.dealer_a, "app", 2).await;
    enqueue(&app, app.units.dealer_b, "app", 1).await;
    assert_eq!(outbox_items(&app, "").await.len(), 2);
    let b = app.read(&app.keys.b_admin, "/outbox").await;
    assert_eq!(items(&b).len(), 1);
    let hq = app.read(&app.keys.hq_admin, "/outbox").await;
    assert_eq!(items(&hq).len(), 3);
    let sales = call(app.get(&app.keys.a_sales, "/outbox")).await;
    assert_eq!(sales.status, 403, "{}", sales.text);
    let bad = call(app.get(&app.keys.a_admin, "/outbox?status=lost")).await;
    assert_eq!(bad.status, 400, "{}", bad.text);

    let doc = call(app.client.get(format!("{}/openapi.json", app.base))).await;
    for path in [
        "/outbox",
        "/tasks",
        "/reminders/run",
        "/vehicles/{id}/reminders",
        "/customers/{id}/points",
        "/customers/{id}/points/redeem",
        "/customers/{id}/points/events",
    ] {
        assert!(doc.body["paths"][path].is_object(), "{path} is documented");
    }
}

async fn the_background_loop_delivers_until_stopped(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let files = dealer_tests::scratch_dir("care-workers");
    let state = AppState::with_runtime(app.db.clone(), shared_runtime(), &files.path)
        .expect("a host's state");
    let (recording, senders) = recording_senders("app");
    let intervals = workers::Intervals {
        outbox: Some(Duration::from_millis(50)),
        scheduler: None,
        run_retention: None,
        imports: None,
    };
    let running = workers::start(&state, Arc::new(senders), intervals);
    let ids = enqueue(&app, app.units.dealer_a, "app", 2).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while recording.ids().len() < ids.len() {
        assert!(tokio::time::Instant::now() < deadline, "the loop delivers");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.stop().await;
    enqueue(&app, app.units.dealer_a, "app", 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(recording.ids(), ids, "nothing is delivered once stopped");
    assert_eq!(outbox_items(&app, "&status=pending").await.len(), 1);
}

async fn customer(app: &TestApp, name: &str) -> i64 {
    app.create(
        &app.keys.a_sales,
        "/customers",
        &json!({"name": name, "phones": [{"number": "13800138000"}], "tags": [],
                "marketing_consent": true, "birthday": "1990-03-15"}),
    )
    .await["id"]
        .as_i64()
        .unwrap()
}

async fn report_event(app: &TestApp, key: &str, customer_id: i64, event: &Value) -> (u16, Value) {
    let reply = call(app.post(
        key,
        &format!("/customers/{customer_id}/points/events"),
        event,
    ))
    .await;
    (reply.status, reply.body)
}

async fn points(app: &TestApp, customer_id: i64) -> Value {
    app.read(
        &app.keys.a_service,
        &format!("/customers/{customer_id}/points?limit=200"),
    )
    .await
}

async fn redeem(app: &TestApp, customer_id: i64, points: i64) -> dealer_tests::Reply {
    call(app.post(
        &app.keys.a_service,
        &format!("/customers/{customer_id}/points/redeem"),
        &json!({"points": points, "reason": "兑换保养工时"}),
    ))
    .await
}

async fn an_event_is_awarded_once_per_cause_with_its_cause_in_the_ledger(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = customer(&app, "吴磊").await;
    let spend = json!({"kind": "spend", "amount_fen": 1_234_567,
                       "cause": {"kind": "repair_order", "id": "7"}});
    let (status, award) = report_event(&app, &app.keys.a_service, id, &spend).await;
    assert_eq!(status, 201, "{award}");
    assert_eq!(
        award["points"], 12_345,
        "built-in: 1 point per yuan: {award}"
    );
    assert_eq!(award["balance"], 12_345);
    assert_eq!(award["duplicate"], false);
    assert!(award["run_id"].is_i64(), "{award}");

    let (status, again) = report_event(&app, &app.keys.a_service, id, &spend).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["event_id"], award["event_id"]);
    assert_eq!(again["balance"], 12_345, "the same cause awards once");

    let direct = loyalty::award(
        &app.db,
        &plugins(&app),
        loyalty::LoyaltyEvent {
            dealer_id: app.units.dealer_a,
            customer_id: id,
            kind: loyalty::EventKind::Spend,
            amount_fen: 1_234_567,
            cause: loyalty::Cause::new("repair_order", 7),
            attributes: Vec::new(),
        },
    )
    .await
    .unwrap();
    assert!(direct.duplicate, "the domain call is idempotent too");

    let survey = json!({"kind": "survey_answered", "cause": {"kind": "survey", "id": "3"}});
    let (status, _) = report_event(&app, &app.keys.a_service, id, &survey).await;
    assert_eq!(status, 201);

    let read = points(&app, id).await;
    assert_eq!(read["account"]["balance"], 12_395);
    assert_eq!(read["account"]["lifetime_spend_fen"], 1_234_567);
    let ledger = items(&read["ledger"]);
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger[0]["cause"], json!({"kind": "survey", "id": "3"}));
    assert_eq!(ledger[0]["points"], 50);
    assert_eq!(
        ledger[1]["cause"],
        json!({"kind": "repair_order", "id": "7"})
    );
    assert_eq!(ledger[1]["kind"], "earn");
    assert_eq!(ledger[1]["balance_after"], 12_345);
    assert!(
        ledger[1]["decided_by"].is_null(),
        "the built-in rule decided"
    );
    assert!(ledger[1]["run_id"].is_i64());

    let outside = call(app.get(&app.keys.b_admin, &format!("/customers/{id}/points"))).await;
    assert_eq!(outside.status, 404);
    let invalid =
        json!({"kind": "birthday", "amount_fen": 100, "cause": {"kind": "Bad Kind", "id": ""}});
    let reply = call(app.post(
        &app.keys.a_service,
        &format!("/customers/{id}/points/events"),
        &invalid,
    ))
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(reply.names_field("cause.kind") && reply.names_field("amount_fen"));
}

async fn redeeming_more_than_the_balance_is_refused_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = customer(&app, "周芳").await;
    let referral = json!({"kind": "referral", "cause": {"kind": "customer", "id": "99"}});
    report_event(&app, &app.keys.a_service, id, &referral).await;
    let before = points(&app, id).await;
    assert_eq!(before["account"]["balance"], 500);

    let refused = redeem(&app, id, 501).await;
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert!(refused.has_code("insufficient_points"));
    assert_eq!(points(&app, id).await, before, "nothing changed");

    let reply = call(
        app.post(
            &app.keys.a_service,
            &format!("/customers/{id}/points/redeem"),
            &json!({"points": 200, "reason": "兑换洗车券"}),
        )
        .header("Idempotency-Key", "redeem-1"),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["account"]["balance"], 300);
    assert_eq!(reply.body["entry"]["kind"], "redeem");
    assert_eq!(reply.body["entry"]["points"], -200);
    assert_eq!(
        reply.body["entry"]["cause"],
        json!({"kind": "staff", "id": app.staff.a_service.to_string()}),
        "the staff member who redeemed"
    );
    let replay = call(
        app.post(
            &app.keys.a_service,
            &format!("/customers/{id}/points/redeem"),
            &json!({"points": 200, "reason": "兑换洗车券"}),
        )
        .header("Idempotency-Key", "redeem-1"),
    )
    .await;
    assert_eq!(replay.status, 201);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(points(&app, id).await["account"]["balance"], 300);

    let zero = redeem(&app, id, 0).await;
    assert_eq!(zero.status, 422, "{}", zero.text);
    let nobody = customer(&app, "新客户").await;
    let empty = redeem(&app, nobody, 1).await;
    assert_eq!(empty.status, 409, "{}", empty.text);
    let sales_reads =
        call(app.get(&app.keys.a_sales, &format!("/customers/{nobody}/points"))).await;
    assert_eq!(sales_reads.body["account"]["balance"], 0);
}

async fn concurrent_redemptions_never_overdraw(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = customer(&app, "郑强").await;
    let referral = json!({"kind": "referral", "cause": {"kind": "customer", "id": "1"}});
    report_event(&app, &app.keys.a_service, id, &referral).await;
    let replies = futures_join(&app, id, 8).await;
    let ok = replies.iter().filter(|s| **s == 201).count();
    let refused = replies.iter().filter(|s| **s == 409).count();
    assert_eq!((ok, refused), (3, 5), "{replies:?}");
    let read = points(&app, id).await;
    assert_eq!(read["account"]["balance"], 20);
    let ledger = items(&read["ledger"]);
    assert!(
        ledger
            .iter()
            .all(|e| e["balance_after"].as_i64().unwrap() >= 0)
    );
}

/// `count` concurrent redemptions of 160 points; their statuses.
async fn futures_join(app: &TestApp, customer_id: i64, count: usize) -> Vec<u16> {
    let mut handles = Vec::new();
    for _ in 0..count {
        let request = app.post(
            &app.keys.a_service,
            &format!("/customers/{customer_id}/points/redeem"),
            &json!({"points": 160, "reason": "并发兑换"}),
        );
        handles.push(tokio::spawn(async move { call(request).await.status }));
    }
    let mut statuses = Vec::new();
    for handle in handles {
        statuses.push(handle.await.unwrap());
    }
    statuses
}

async fn tiers_and_expiry_come_from_the_loyalty_plugin(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.enable_first_party("loyalty", "loyalty").await;
    let id = customer(&app, "王静").await;
    let small = json!({"kind": "spend", "amount_fen": 10_000, "cause": {"kind": "repair_order", "id": "1"}});
    let (status, first) = report_event(&app, &app.keys.a_service, id, &small).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(
        first["tier"], "银卡",
        "a new customer starts in the plugin's entry tier: {first}"
    );
    assert_eq!(first["tier_changed"], false);
    assert_eq!(first["decided_by"]["plugin"], "loyalty");
    assert_eq!(first["decided_by"]["version"], "0.1.0");
    assert_eq!(first["points"], 100);

    let big = json!({"kind": "vehicle_delivered", "amount_fen": 20_000_000,
                     "cause": {"kind": "sales_order", "id": "42"}});
    let (status, second) = report_event(&app, &app.keys.a_service, id, &big).await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(
        second["tier"], "金卡",
        "lifetime spend past 100,000 yuan: {second}"
    );
    assert_eq!(second["tier_changed"], true);
    assert_eq!(second["points"], 200_000, "银卡 earns 100%: {second}");
    let entry = &second["entries"][0];
    assert_eq!(entry["decided_by"]["plugin"], "loyalty");
    assert!(
        entry["expires_at"].is_string(),
        "earned points expire: {entry}"
    );

    let read = points(&app, id).await;
    assert_eq!(read["account"]["tier"], "金卡");
    let record = app
        .read(&app.keys.a_service, &format!("/customers/{id}"))
        .await;
    assert_eq!(
        record["member_tier"], "金卡",
        "the customer record holds the same tier: {record}"
    );
    assert_eq!(read["account"]["balance"], 200_100);

    // Redeeming takes the oldest lot first: the 100 points of the first spend, then 50 more.
    let reply = redeem(&app, id, 150).await;
    assert_eq!(reply.status, 201, "{}", reply.text);

    let now = clock::now_ms();
    let nothing = loyalty::expire_due(&app.db, now).await.unwrap();
    assert_eq!(nothing.lots, 0, "nothing is due yet");
    let later = now + 25 * 31 * 24 * 3600 * 1000;
    let expired = loyalty::expire_due(&app.db, later).await.unwrap();
    assert_eq!(expired.customers, 1, "{expired:?}");
    assert_eq!(
        expired.lots, 1,
        "the first lot was used up by the redemption"
    );
    assert_eq!(expired.points, 199_950);
    let again = loyalty::expire_due(&app.db, later).await.unwrap();
    assert_eq!(again.lots, 0, "expiry runs once");

    let read = points(&app, id).await;
    assert_eq!(read["account"]["balance"], 0);
    let ledger = items(&read["ledger"]);
    assert_eq!(ledger[0]["kind"], "expire");
    assert_eq!(ledger[0]["points"], -199_950);
    assert_eq!(ledger[0]["balance_after"], 0);
    assert_eq!(ledger[0]["cause"]["kind"], "points_lot");
    assert_eq!(
        ledger[0]["cause"]["id"],
        ledger[2]["id"].to_string().as_str(),
        "the lot of the second award expired: {ledger:?}"
    );
    let kinds: Vec<&str> = ledger.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["expire", "redeem", "earn", "earn"]);
    let expiry_filter = app
        .read(
            &app.keys.a_service,
            &format!("/customers/{id}/points?kind=expire"),
        )
        .await;
    assert_eq!(items(&expiry_filter["ledger"]).len(), 1);
}

async fn a_partner_reports_a_charging_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.enable_first_party("loyalty", "loyalty").await;
    let id = customer(&app, "陈晨").await;
    let partners = app.read(&app.keys.a_admin, "/partners").await;
    app.create(
        &app.keys.a_admin,
        "/partners/grants",
        &json!({"partner_key_id": partners[0]["key_id"], "purpose": "charging-sessions"}),
    )
    .await;
    let session = json!({"kind": "partner_activity", "cause": {"kind": "partner", "id": "charge-20251123-001"},
                         "attributes": {"kwh": "35.5"}});
    let (status, award) = report_event(&app, &app.keys.partner, id, &session).await;
    assert_eq!(status, 201, "{award}");
    assert_eq!(award["points"], 35, "1 point per kWh: {award}");
    let (status, again) = report_event(&app, &app.keys.partner, id, &session).await;
    assert_eq!((status, &again["duplicate"]), (200, &json!(true)));
    let read = points(&app, id).await;
    let ledger = items(&read["ledger"]);
    assert_eq!(ledger.len(), 1);
    assert_eq!(
        ledger[0]["cause"],
        json!({"kind": "partner", "id": "charge-20251123-001"})
    );
    let analyst = report_event(&app, &app.keys.hq_analyst, id, &session).await;
    assert_eq!(analyst.0, 403);
}

/// A vehicle of dealer A owned by a new customer.
async fn owned_vehicle(
    app: &TestApp,
    serial: u32,
    purchase_date: &str,
    insurance_expiry: Option<&str>,
) -> (i64, i64) {
    let owner = customer(app, "车主").await;
    let vehicle = app
        .create(
            &app.keys.a_sales,
            "/vehicles",
            &json!({"vin": valid_vin(serial), "brand": "比亚迪", "model": "汉", "plate": "京A·12345",
                    "purchase_date": purchase_date, "insurance_expiry": insurance_expiry,
                    "owner_id": owner}),
        )
        .await;
    (vehicle["id"].as_i64().unwrap(), owner)
}

fn day_ms() -> i64 {
    24 * 3600 * 1000
}

async fn a_vehicle_due_for_maintenance_gets_one_reminder_delivered_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let now = clock::now_ms();
    let today = reminders::today_in_china(now);
    let bought = (today - chrono::Months::new(7)).to_string();
    let (vehicle, owner) = owned_vehicle(&app, 1, &bought, None).await;
    let plugins = plugins(&app);

    let report = reminders::run_due(&app.db, &plugins, today, now)
        .await
        .unwrap();
    assert_eq!((report.vehicles, report.sent), (1, 1), "{report:?}");
    let again = reminders::run_due(&app.db, &plugins, today, now)
        .await
        .unwrap();
    assert_eq!(again.vehicles, 0, "planned less than a day ago: {again:?}");
    let tomorrow = reminders::run_due(
        &app.db,
        &plugins,
        today + chrono::Days::new(1),
        now + day_ms() + 1,
    )
    .await
    .unwrap();
    assert_eq!(
        (tomorrow.vehicles, tomorrow.sent),
        (1, 0),
        "planned again, not sent again: {tomorrow:?}"
    );
    let forced = reminders::plan_vehicle(&app.db, &plugins, vehicle, today, now)
        .await
        .unwrap();
    assert_eq!((forced.reminders, forced.sent), (1, 0), "{forced:?}");

    let planned = app
        .read(
            &app.keys.a_service,
            &format!("/vehicles/{vehicle}/reminders"),
        )
        .await;
    let planned = planned.as_array().unwrap();
    assert_eq!(planned.len(), 1, "{planned:?}");
    assert_eq!(planned[0]["kind"], "maintenance");
    assert_eq!(planned[0]["status"], "sent");
    assert_eq!(planned[0]["customer_id"], owner);
    let hidden = call(app.get(&app.keys.b_admin, &format!("/vehicles/{vehicle}/reminders"))).await;
    assert_eq!(hidden.status, 404);

    let queued = outbox_items(&app, "&status=pending").await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0]["id"], planned[0]["outbox_id"]);
    assert_eq!(queued[0]["template"], "reminder.maintenance");
    assert_eq!(queued[0]["recipient"], format!("customer:{owner}"));

    let (recording, senders) = recording_senders("sms");
    outbox::deliver_due(&app.db, &senders, "w", clock::now_ms())
        .await
        .unwrap();
    outbox::deliver_due(&app.db, &senders, "w", clock::now_ms() + day_ms())
        .await
        .unwrap();
    let sent = recording.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "delivered once: {sent:?}");
    assert_eq!(sent[0].recipient, format!("customer:{owner}"));
    assert!(
        sent[0]
            .data
            .iter()
            .any(|(k, v)| k == "vehicle_id" && *v == vehicle.to_string())
    );
}

async fn insurance_expiring_in_30_days_gives_an_advisor_task(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let now = clock::now_ms();
    let today = reminders::today_in_china(now);
    let recent = (today - chrono::Days::new(10)).to_string();
    let expiry = (today + chrono::Days::new(30)).to_string();
    let later = (today + chrono::Days::new(90)).to_string();
    let (vehicle, owner) = owned_vehicle(&app, 2, &recent, Some(&expiry)).await;
    let (not_yet, _) = owned_vehicle(&app, 3, &recent, Some(&later)).await;
    let plugins = plugins(&app);
    let report = reminders::run_due(&app.db, &plugins, today, now)
        .await
        .unwrap();
    assert_eq!(report.tasks, 1, "{report:?}");
    assert_eq!(report.sent, 0, "maintenance is not due yet: {report:?}");
    reminders::run_due(
        &app.db,
        &plugins,
        today + chrono::Days::new(1),
        now + day_ms() + 1,
    )
    .await
    .unwrap();

    let tasks = app.read(&app.keys.a_service, "/tasks?status=open").await;
    let tasks = items(&tasks);
    assert_eq!(tasks.len(), 1, "one task, however often planned: {tasks:?}");
    assert_eq!(tasks[0]["kind"], "insurance_renewal");
    assert_eq!(tasks[0]["vehicle_id"], vehicle);
    assert_eq!(tasks[0]["customer_id"], owner);
    assert_eq!(tasks[0]["due"], today.to_string());
    let other = app
        .read(&app.keys.a_service, &format!("/tasks?vehicle_id={not_yet}"))
        .await;
    assert!(items(&other).is_empty(), "expiry in 90 days: not yet");
    let scheduled = app
        .read(
            &app.keys.a_service,
            &format!("/vehicles/{not_yet}/reminders"),
        )
        .await;
    let renewal = scheduled
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "insurance_renewal")
        .expect("the renewal is planned");
    assert_eq!(renewal["status"], "scheduled");
    assert_eq!(renewal["audience"], "advisor");
    assert_eq!(
        renewal["due"],
        (today + chrono::Days::new(60)).to_string(),
        "30 days before expiry"
    );
    let b = app.read(&app.keys.b_admin, "/tasks").await;
    assert!(items(&b).is_empty());

    // The advisor marks it done from the workbench; another dealer cannot.
    let task = tasks[0]["id"].as_i64().unwrap();
    let foreign = call(app.post(
        &app.keys.b_admin,
        &format!("/tasks/{task}/done"),
        &json!({}),
    ))
    .await;
    assert_eq!(foreign.status, 404, "{}", foreign.text);
    let done = call(app.post(
        &app.keys.a_service,
        &format!("/tasks/{task}/done"),
        &json!({}),
    ))
    .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.body["status"], "done");
    assert_eq!(done.body["done_by_staff_id"], app.staff.a_service);
    assert!(done.body["done_at"].is_string());
    let again = call(app.post(&app.keys.a_gm, &format!("/tasks/{task}/done"), &json!({}))).await;
    assert_eq!(
        again.body["done_by_staff_id"], app.staff.a_service,
        "done once"
    );
    let open = app.read(&app.keys.a_service, "/tasks?status=open").await;
    assert!(items(&open).is_empty(), "{open}");
}

async fn concurrent_scheduler_runs_send_each_reminder_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let now = clock::now_ms();
    let today = reminders::today_in_china(now);
    let bought = (today - chrono::Months::new(8)).to_string();
    let expiry = (today + chrono::Days::new(20)).to_string();
    for serial in 0..8 {
        owned_vehicle(&app, 100 + serial, &bought, Some(&expiry)).await;
    }
    let (one, two) = (plugins(&app), plugins(&app));
    let (a, b) = tokio::join!(
        reminders::run_due(&app.db, &one, today, now),
        reminders::run_due(&app.db, &two, today, now),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.vehicles + b.vehicles,
        8,
        "each vehicle planned once: {a:?} {b:?}"
    );
    assert_eq!(a.sent + b.sent, 8);
    assert_eq!(a.tasks + b.tasks, 8);

    // Two runs of every vehicle at once, as two replicas after a lease expired would do.
    let (c, d) = tokio::join!(
        reminders::run_due(&app.db, &one, today, now + day_ms() + 1),
        reminders::run_due(&app.db, &two, today, now + day_ms() + 1),
    );
    let (c, d) = (c.unwrap(), d.unwrap());
    assert_eq!(c.sent + d.sent + c.tasks + d.tasks, 0, "{c:?} {d:?}");
    let mut forced = Vec::new();
    for vehicle in items(&app.read(&app.keys.a_admin, "/vehicles?limit=200").await) {
        let id = vehicle["id"].as_i64().unwrap();
        forced.push(reminders::plan_vehicle(&app.db, &one, id, today, now));
        forced.push(reminders::plan_vehicle(&app.db, &two, id, today, now));
    }
    for plan in futures_all(forced).await {
        assert_eq!(plan.sent + plan.tasks, 0, "{plan:?}");
    }

    let queued = outbox_items(&app, "").await;
    assert_eq!(
        queued.len(),
        8,
        "one maintenance reminder per vehicle: {queued:?}"
    );
    let tasks = app.read(&app.keys.a_service, "/tasks?limit=200").await;
    assert_eq!(items(&tasks).len(), 8);
}

/// Runs the futures concurrently and returns their results, unwrapped.
async fn futures_all<F, T>(futures: Vec<F>) -> Vec<T>
where
    F: std::future::Future<Output = dealer_host::error::Result<T>>,
{
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<T>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, result) in pinned.iter_mut().zip(results.iter_mut()) {
            if result.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *result = Some(value.unwrap()),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results.into_iter().map(Option::unwrap).collect()
}

async fn the_scheduler_is_run_on_demand_by_admins(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let today = reminders::today_in_china(clock::now_ms());
    let bought = (today - chrono::Months::new(7)).to_string();
    owned_vehicle(&app, 9, &bought, None).await;
    let sales = call(app.post(&app.keys.a_sales, "/reminders/run", &json!({}))).await;
    assert_eq!(sales.status, 403, "{}", sales.text);
    let run = call(app.post(&app.keys.a_admin, "/reminders/run", &json!({}))).await;
    assert_eq!(run.status, 200, "{}", run.text);
    assert_eq!(run.body["vehicles"], 1);
    assert_eq!(run.body["sent"], 1);
    let hq = call(app.post(&app.keys.hq_admin, "/reminders/run", &json!({}))).await;
    assert_eq!(hq.status, 200, "{}", hq.text);
    assert_eq!(hq.body["vehicles"], 0, "planned already today");
}
