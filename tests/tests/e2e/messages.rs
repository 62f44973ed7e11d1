//! Messages that reach people: recipients resolved to addresses, owner-page links made
//! absolute, the e-mail channel through a real SMTP exchange, and marketing held to consent,
//! opt-outs, quiet hours and the weekly cap.

use std::sync::{Arc, Mutex};

use base64::Engine;
use dealer_host::clock;
use dealer_host::outbox::{self, Outgoing, SendFuture, Sender, Senders};
use dealer_tests::service::owner_with_car;
use dealer_tests::smtp::SmtpReceiver;
use dealer_tests::{Backend, TestApp, call, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    a_repair_order_texts_its_owner_an_absolute_link_to_its_progress,
    a_safety_complaint_pages_the_regional_service_manager_by_sms_and_email,
    a_recipient_without_an_address_is_undeliverable_with_the_reason,
    marketing_without_consent_is_refused_and_recorded,
    an_opt_out_by_link_or_keyword_stops_the_next_marketing_message,
    quiet_hours_delay_marketing_and_the_weekly_cap_refuses_the_rest,
);

const PUBLIC: &str = "https://crm.example.cn";

/// A sender that keeps what it was given and answers like a provider.
#[derive(Default)]
struct Recording {
    sent: Mutex<Vec<Outgoing>>,
}

impl Sender for Recording {
    fn send<'a>(&'a self, message: &'a Outgoing) -> SendFuture<'a> {
        self.sent.lock().unwrap().push(message.clone());
        Box::pin(async move { Ok(format!("provider-id-{}", message.id)) })
    }
}

impl Recording {
    fn sent(&self) -> Vec<Outgoing> {
        self.sent.lock().unwrap().clone()
    }
}

fn sms_senders() -> (Arc<Recording>, Senders) {
    let recording = Arc::new(Recording::default());
    let senders = Senders::log_only()
        .public_url(PUBLIC)
        .with("sms", recording.clone());
    (recording, senders)
}

async fn deliver(app: &TestApp, senders: &Senders, at: i64) -> outbox::DeliveryReport {
    outbox::deliver_due(&app.db, senders, "test-worker", at)
        .await
        .expect("a delivery pass")
}

fn value<'a>(message: &'a Outgoing, key: &str) -> &'a str {
    message
        .data
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {message:?}"))
}

/// The outbox entries of the admin's dealer for `template`, newest first.
async fn entries(app: &TestApp, template: &str) -> Vec<Value> {
    let page = app.read(&app.keys.a_admin, "/outbox?limit=200").await;
    page["items"]
        .as_array()
        .expect("a page")
        .iter()
        .filter(|e| e["template"] == template)
        .cloned()
        .collect()
}

/// A marketing message to `customer` of dealer A, as a campaign or a greeting makes one.
async fn market(app: &TestApp, customer: i64, key: &str) -> Option<i64> {
    let mut tx = app.db.begin_write().await.unwrap();
    let message = outbox::Message {
        channel: "sms".into(),
        recipient: format!("customer:{customer}"),
        template: "spring-offer".into(),
        data: vec![("offer".into(), "春季保养八折".into())],
        purpose: outbox::Purpose::Marketing,
    };
    let id = outbox::enqueue(&mut tx, app.units.dealer_a, &message, Some(key))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

/// Dealer A without quiet hours, so marketing is due at once whatever the time of day.
async fn no_quiet_hours(app: &TestApp) {
    let path = format!("/network/units/{}/messaging", app.units.dealer_a);
    let body = json!({"quiet_start": "00:00", "quiet_end": "00:00", "marketing_per_week": 21});
    let set = call(app.put(&app.keys.a_admin, &path, &body)).await;
    assert_eq!(set.status, 200, "{}", set.text);
}

async fn consenting_customer(app: &TestApp, phone: &str) -> i64 {
    app.create(
        &app.keys.a_sales,
        "/customers",
        &json!({"name": "林晓", "phones": [{"number": phone}], "tags": [], "marketing_consent": true}),
    )
    .await["id"]
        .as_i64()
        .unwrap()
}

async fn a_repair_order_texts_its_owner_an_absolute_link_to_its_progress(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (customer, vehicle) = owner_with_car(&app, &app.keys.a_service, 41, json!([])).await;
    let order = app
        .create(
            &app.keys.a_service,
            "/repair-orders",
            &json!({"customer_id": customer, "vehicle_id": vehicle, "complaint_code": "BRAKE"}),
        )
        .await;
    let (recording, senders) = sms_senders();
    let report = deliver(&app, &senders, clock::now_ms()).await;
    assert_eq!(report.sent, 1, "{report:?}");

    let [sms] = &recording.sent()[..] else {
        panic!("one SMS: {:?}", recording.sent());
    };
    assert_eq!(sms.template, "repair-opened");
    assert_eq!(sms.recipient, format!("customer:{customer}"));
    assert_eq!(sms.to.len(), 1);
    assert_eq!(
        sms.to[0].address, "13900000041",
        "the owner's mobile number"
    );
    let link = value(sms, "progress-url");
    let token = link
        .strip_prefix(&format!("{PUBLIC}/o/r/"))
        .unwrap_or_else(|| panic!("an absolute link to the owner's page: {link}"));
    assert_eq!(
        token, order["owner_link"]["token"],
        "the link of the repair order"
    );
    assert!(link.len() <= 70, "short enough for an SMS: {link}");
    let view = call(
        app.client
            .get(format!("{}/owner/repairs/{token}", app.base)),
    )
    .await;
    assert_eq!(view.status, 200, "{}", view.text);

    let [entry] = &entries(&app, "repair-opened").await[..] else {
        panic!("one entry");
    };
    assert_eq!(entry["status"], "sent");
    assert_eq!(entry["purpose"], "service");
    assert_eq!(entry["address"], "13900000041");
    let attempts = app
        .read(
            &app.keys.a_admin,
            &format!("/outbox/{}/attempts", entry["id"]),
        )
        .await;
    assert_eq!(attempts[0]["outcome"], "sent", "{attempts}");
    assert_eq!(
        attempts[0]["answer"],
        format!("provider-id-{}", entry["id"]),
        "the provider's answer is kept"
    );
    let foreign = call(app.get(
        &app.keys.c_admin,
        &format!("/outbox/{}/attempts", entry["id"]),
    ))
    .await;
    assert_eq!(
        foreign.status, 404,
        "another dealer's message: {}",
        foreign.text
    );
}

async fn a_safety_complaint_pages_the_regional_service_manager_by_sms_and_email(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let manager = app
        .create(
            &app.keys.hq_admin,
            "/staff",
            &json!({
                "org_unit_id": app.units.north, "name": "钱振华", "role": "regional_manager",
                "position": "regional_service_manager", "phone": "13911112222",
                "email": "qian.zhenhua@example.com",
            }),
        )
        .await;
    let customer = consenting_customer(&app, "13800138011").await;
    let ticket = app
        .create(
            &app.keys.a_service,
            "/tickets",
            &json!({
                "customer_id": customer, "channel": "hotline", "category": "safety",
                "subject": "高速上刹车失灵", "description": "车主反映高速行驶时刹车突然变软。",
            }),
        )
        .await;
    let receiver = SmtpReceiver::start().await;
    let smtp = outbox::email::Smtp::new(&receiver.url, "通知 <noreply@dealer.example.cn>")
        .expect("an SMTP sender");
    let (recording, senders) = sms_senders();
    let senders = senders.with("email", Arc::new(smtp));
    deliver(&app, &senders, clock::now_ms()).await;

    let paged: Vec<Outgoing> = recording
        .sent()
        .into_iter()
        .filter(|m| m.template == "safety-escalation")
        .collect();
    let [sms] = &paged[..] else {
        panic!("one SMS page: {:?}", recording.sent());
    };
    assert_eq!(
        sms.to[0].person,
        format!("staff:{}", manager["id"]),
        "the region's service manager above the dealer"
    );
    assert_eq!(sms.to[0].address, "13911112222");

    let mails = receiver.mails();
    let [mail] = &mails[..] else {
        panic!("one mail: {mails:?}");
    };
    assert_eq!(mail.to, vec!["qian.zhenhua@example.com".to_owned()]);
    assert_eq!(mail.from, "noreply@dealer.example.cn");
    let (headers, body) = mail.data.split_once("\n\n").expect("headers and a body");
    assert!(
        headers.to_lowercase().contains("subject: =?utf-8?b?"),
        "a UTF-8 subject: {headers}"
    );
    let body: String = body.split_whitespace().collect();
    let text = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("a base64 body"),
    )
    .unwrap();
    assert!(
        text.contains(&format!("ticket-id: {}", ticket["id"])),
        "{text}"
    );
    assert!(text.contains("高速上刹车失灵"), "{text}");
    let sent = entries(&app, "safety-escalation").await;
    let email = sent.iter().find(|e| e["channel"] == "email").unwrap();
    assert_eq!(email["status"], "sent", "{email}");
    let attempts = app
        .read(
            &app.keys.a_admin,
            &format!("/outbox/{}/attempts", email["id"]),
        )
        .await;
    assert!(
        attempts[0]["answer"]
            .as_str()
            .is_some_and(|a| a.starts_with("250") && a.contains("queued as test-1")),
        "the relay's answer: {attempts}"
    );
    assert_eq!(email["address"], "qian.zhenhua@example.com");
}

async fn a_recipient_without_an_address_is_undeliverable_with_the_reason(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer = consenting_customer(&app, "13800138012").await;
    let mut tx = app.db.begin_write().await.unwrap();
    for (channel, recipient, key) in [
        ("wechat", format!("customer:{customer}"), "a"),
        ("email", "role:regional_service_manager".to_owned(), "b"),
        ("sms", "role:service_manager@NO-SUCH-UNIT".to_owned(), "c"),
    ] {
        let message = outbox::Message {
            channel: channel.into(),
            recipient,
            template: "unreachable".into(),
            data: vec![],
            purpose: outbox::Purpose::Service,
        };
        outbox::enqueue(&mut tx, app.units.dealer_a, &message, Some(key))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let (recording, senders) = sms_senders();
    let report = deliver(&app, &senders, clock::now_ms()).await;
    assert_eq!(report.undeliverable, 3, "{report:?}");
    assert!(recording.sent().is_empty());
    let mut reasons: Vec<String> = entries(&app, "unreachable")
        .await
        .iter()
        .map(|e| {
            assert_eq!(e["status"], "undeliverable", "{e}");
            assert_eq!(e["reason"], "no_address", "{e}");
            e["last_error"].as_str().unwrap().to_owned()
        })
        .collect();
    reasons.sort();
    assert!(
        reasons[0].contains("has not bound a WeChat account"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("no unit with code `NO-SUCH-UNIT`"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].contains("nobody holds the position regional_service_manager"),
        "{reasons:?}"
    );
}

async fn marketing_without_consent_is_refused_and_recorded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (customer, _) = owner_with_car(&app, &app.keys.a_service, 42, json!([])).await;
    let id = market(&app, customer, "offer:1").await.expect("recorded");
    let (recording, senders) = sms_senders();
    let report = deliver(&app, &senders, clock::now_ms()).await;
    assert_eq!(
        report.claimed, 0,
        "a refused message is never due: {report:?}"
    );
    assert!(recording.sent().is_empty());
    let [entry] = &entries(&app, "spring-offer").await[..] else {
        panic!("one entry");
    };
    assert_eq!(entry["id"], id);
    assert_eq!(entry["status"], "refused");
    assert_eq!(entry["reason"], "no_marketing_consent");
    assert_eq!(entry["purpose"], "marketing");
    let again = market(&app, customer, "offer:1").await;
    assert_eq!(
        again, None,
        "its dedupe key is spent: refused once is refused"
    );
}

/// The opt-out link the marketing message `id` carried, as the owner got it.
fn opt_out_token(message: &Outgoing) -> String {
    let link = value(message, "opt-out-url");
    link.strip_prefix(&format!("{PUBLIC}/o/u/"))
        .unwrap_or_else(|| panic!("an absolute opt-out link: {link}"))
        .to_owned()
}

async fn an_opt_out_by_link_or_keyword_stops_the_next_marketing_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    no_quiet_hours(&app).await;
    let by_link = consenting_customer(&app, "13800138021").await;
    let by_keyword = consenting_customer(&app, "13800138022").await;
    market(&app, by_link, "link:1").await.unwrap();
    market(&app, by_keyword, "keyword:1").await.unwrap();
    let (recording, senders) = sms_senders();
    let report = deliver(&app, &senders, clock::now_ms()).await;
    assert_eq!(report.sent, 2, "{report:?}");
    let sent = recording.sent();
    let first = sent
        .iter()
        .find(|m| m.recipient == format!("customer:{by_link}"))
        .unwrap();
    assert_eq!(
        value(first, "opt-out"),
        "回T退订",
        "the SMS says how to stop"
    );

    let token = opt_out_token(first);
    let page = call(
        app.client
            .get(format!("{}/owner/opt-out/{token}", app.base)),
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(page.body["opted_out"], false);
    assert_eq!(page.body["dealer"], "北京朝阳4S店");
    let done = call(
        app.client
            .post(format!("{}/owner/opt-out/{token}", app.base)),
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.body["opted_out"], true);
    assert_eq!(done.body["channel"], "sms");

    let reply = call(app.post(
        &app.keys.a_admin,
        "/outbox/replies",
        &json!({"channel": "sms", "from": "+86 138-0013-8022", "text": " td "}),
    ))
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body, json!({"opt_out": true, "customers": 1}));
    let chat = call(app.post(
        &app.keys.a_admin,
        "/outbox/replies",
        &json!({"channel": "sms", "from": "13800138021", "text": "好的，谢谢"}),
    ))
    .await;
    assert_eq!(chat.body, json!({"opt_out": false, "customers": 0}));

    for customer in [by_link, by_keyword] {
        let read = app
            .read(&app.keys.a_sales, &format!("/customers/{customer}"))
            .await;
        assert_eq!(read["marketing_consent"], false, "{read}");
    }
    let recorded: Vec<(i64, String, String, i64)> =
        sqlx::query_as("SELECT customer_id, channel, via, granted FROM consent_events ORDER BY id")
            .fetch_all(app.db.pool())
            .await
            .unwrap();
    assert_eq!(
        recorded,
        vec![
            (by_link, "sms".to_owned(), "link".to_owned(), 0),
            (by_keyword, "sms".to_owned(), "keyword".to_owned(), 0),
        ],
        "each opt-out with its channel and way"
    );

    market(&app, by_link, "link:2").await.unwrap();
    let refused = entries(&app, "spring-offer").await;
    assert_eq!(refused[0]["status"], "refused", "{}", refused[0]);
    assert_eq!(refused[0]["reason"], "no_marketing_consent");

    let late = consenting_customer(&app, "13800138023").await;
    market(&app, late, "late:1").await.unwrap();
    let read = app
        .read(&app.keys.a_sales, &format!("/customers/{late}"))
        .await;
    let version = read["version"].clone();
    let withdrawn = call(
        app.patch(
            &app.keys.a_sales,
            &format!("/customers/{late}"),
            &json!({"marketing_consent": false}),
        )
        .header("If-Match", format!("\"{version}\"")),
    )
    .await;
    assert_eq!(withdrawn.status, 200, "{}", withdrawn.text);
    let report = deliver(&app, &senders, clock::now_ms()).await;
    assert_eq!(
        report.refused, 1,
        "consent withdrawn before it was sent: {report:?}"
    );
    let entry = entries(&app, "spring-offer").await[0].clone();
    assert_eq!(entry["reason"], "opted_out", "{entry}");
}

async fn quiet_hours_delay_marketing_and_the_weekly_cap_refuses_the_rest(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let path = format!("/network/units/{}/messaging", app.units.dealer_a);
    let defaults = app.read(&app.keys.a_admin, &path).await;
    assert_eq!(
        defaults,
        json!({"quiet_start": "21:00", "quiet_end": "08:00", "marketing_per_week": 2})
    );
    let bad = call(app.put(
        &app.keys.a_admin,
        &path,
        &json!({"quiet_start": "25:00", "quiet_end": "8", "marketing_per_week": -1}),
    ))
    .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    for field in ["quiet_start", "quiet_end", "marketing_per_week"] {
        assert!(bad.names_field(field), "{field}: {}", bad.text);
    }
    let foreign = call(app.get(&app.keys.c_admin, &path)).await;
    assert_eq!(foreign.status, 404);

    let now = clock::now_ms();
    let local_minute = (now / 60_000 + 8 * 60).rem_euclid(24 * 60);
    let hh_mm = |m: i64| {
        let m = m.rem_euclid(24 * 60);
        format!("{:02}:{:02}", m / 60, m % 60)
    };
    let quiet = json!({
        "quiet_start": hh_mm(local_minute - 60), "quiet_end": hh_mm(local_minute + 60),
        "marketing_per_week": 2,
    });
    let set = call(app.put(&app.keys.a_admin, &path, &quiet)).await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.body, quiet);

    let customer = consenting_customer(&app, "13800138031").await;
    for key in ["cap:1", "cap:2", "cap:3"] {
        market(&app, customer, key).await.unwrap();
    }
    let offers = entries(&app, "spring-offer").await;
    let statuses: Vec<&str> = offers
        .iter()
        .rev()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["pending", "pending", "refused"]);
    assert_eq!(offers[0]["reason"], "frequency_cap");
    let due = chrono::DateTime::parse_from_rfc3339(offers[1]["next_attempt_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    let end = now - now.rem_euclid(60_000) + 60 * 60_000;
    assert_eq!(due, end, "due when the quiet hours end");

    let (recording, senders) = sms_senders();
    let early = deliver(&app, &senders, now + 1_000).await;
    assert_eq!(early.claimed, 0, "nothing in the quiet hours: {early:?}");
    let later = deliver(&app, &senders, end).await;
    assert_eq!(later.sent, 2, "{later:?}");
    assert_eq!(recording.sent().len(), 2);
}
