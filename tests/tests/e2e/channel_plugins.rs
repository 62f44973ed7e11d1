//! The channel extension point (WIT 0.2.0) and the host's signing: the first-party Alibaba
//! Cloud SMS plugin sends through a local stand-in of `SendSms` that checks the real signature
//! (HMAC-SHA1 under a test AccessKeySecret + `&`, as Alibaba Cloud does) and answers like the
//! provider, called as the outbox will call it (`Plugins::send_message`), beside a 0.1.0
//! component in the same host; a hostile 0.2.0 guest never sees the secret it may sign with.

use std::sync::{Arc, Mutex};

use axum::http::{StatusCode, Uri};
use base64::Engine;
use dealer_host::clock;
use dealer_host::outbox::{self, Senders, channels::PluginChannel};
use dealer_host::plugins::hooks::channel::{Message, Purpose};
use dealer_tests::guests::wasm_bytes;
use dealer_tests::service::owner_with_car;
use dealer_tests::{Backend, TestApp, call, on_both_backends};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

on_both_backends!(
    an_sms_goes_out_signed_by_the_host_beside_a_0_1_0_plugin,
    a_wrong_secret_is_a_rejected_signature_not_worth_retrying,
    a_dealer_without_a_channel_plugin_fails_the_message,
    a_hostile_guest_signs_but_never_sees_the_secret,
    a_repair_orders_sms_reaches_its_owner_through_the_dealers_plugin,
);

const ACCESS_KEY_ID: &str = "LTAI5tTestKeyId";
/// The AccessKeySecret the stand-in checks signatures with; the dealer stores it followed
/// by `&`.
const ACCESS_KEY_SECRET: &str = "testSecret-9f2c41";
const CREDENTIAL: &str = "aliyun-sms-secret";
const BIZ_ID: &str = "900619746936498440^0";

/// One `SendSms` request the stand-in accepted: its parameters, decoded.
#[derive(Debug, Clone)]
struct Sent {
    params: Vec<(String, String)>,
}

impl Sent {
    fn get(&self, key: &str) -> &str {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// RFC 3986 as Alibaba Cloud's signature encodes (written here independently of the plugin).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn hmac_sha1(key: &str, data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).expect("a key");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hmac_sha256(key: &str, data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("a key");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The signature Alibaba Cloud expects for `params` (all but `Signature`).
fn expected_signature(params: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "Signature")
        .map(|(k, v)| (encode(k), encode(v)))
        .collect();
    pairs.sort();
    let query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let string_to_sign = format!("GET&%2F&{}", encode(&query));
    base64::engine::general_purpose::STANDARD.encode(hmac_sha1(
        &format!("{ACCESS_KEY_SECRET}&"),
        string_to_sign.as_bytes(),
    ))
}

/// A stand-in of `https://dysmsapi.aliyuncs.com/` on `127.0.0.1:<random port>`: a `GET`
/// whose signature checks is answered `OK` with [`BIZ_ID`], one that does not is answered as
/// the provider does (400 `SignatureDoesNotMatch`).
struct Aliyun {
    authority: String,
    accepted: Arc<Mutex<Vec<Sent>>>,
    refused: Arc<Mutex<usize>>,
    server: tokio::task::JoinHandle<()>,
}

impl Aliyun {
    async fn start() -> Aliyun {
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(Mutex::new(0));
        let (log, refusals) = (Arc::clone(&accepted), Arc::clone(&refused));
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(move |uri: Uri| {
                let (log, refusals) = (Arc::clone(&log), Arc::clone(&refusals));
                async move {
                    let url = reqwest::Url::parse(&format!("http://stand-in{uri}")).expect("a URL");
                    let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
                    let sent = Sent { params };
                    let signed = sent.get("Signature") == expected_signature(&sent.params)
                        && sent.get("AccessKeyId") == ACCESS_KEY_ID
                        && sent.get("SignatureMethod") == "HMAC-SHA1"
                        && sent.get("SignatureVersion") == "1.0";
                    if !signed {
                        *refusals.lock().expect("the refusals") += 1;
                        return (
                            StatusCode::BAD_REQUEST,
                            axum::Json(json!({
                                "Message": "Specified signature does not match our calculation.",
                                "RequestId": "8E0B0E3A-6B2C-4D5A-9E41-3C1F0B9A2D77",
                                "Recommend": "https://next.api.aliyun.com/troubleshoot",
                                "HostId": "dysmsapi.aliyuncs.com",
                                "Code": "SignatureDoesNotMatch",
                            })),
                        );
                    }
                    log.lock().expect("the log").push(sent);
                    (
                        StatusCode::OK,
                        axum::Json(json!({
                            "Message": "OK", "RequestId": "F655A8D5-B967-440B-8683-DAD6FF8DE990",
                            "BizId": BIZ_ID, "Code": "OK",
                        })),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the stand-in");
        let port = listener.local_addr().expect("an address").port();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Aliyun {
            authority: format!("127.0.0.1:{port}"),
            accepted,
            refused,
            server,
        }
    }

    fn accepted(&self) -> Vec<Sent> {
        self.accepted.lock().expect("the log").clone()
    }

    fn refused(&self) -> usize {
        *self.refused.lock().expect("the refusals")
    }
}

impl Drop for Aliyun {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// HQ publishes `package` as plugin `name` for `hook` (version 1.0.0) and grants it
/// `outbound_hosts` and the credential; dealer A stores `secret` (if any) behind it and binds
/// the plugin with `config`, refusing rather than falling back. Returns the plugin's id.
async fn install(
    app: &TestApp,
    (name, package, hook): (&str, &str, &str),
    outbound_hosts: &[&str],
    secret: Option<&str>,
    config: Value,
) -> i64 {
    let plugin = app
        .create(
            &app.keys.hq_admin,
            "/plugins",
            &json!({"name": name, "hook": hook}),
        )
        .await;
    let id = plugin["id"].as_i64().expect("a plugin id");
    let reply = call(
        app.client
            .post(format!("{}/plugins/{id}/versions?version=1.0.0", app.base))
            .bearer_auth(&app.keys.hq_admin)
            .header("content-type", "application/wasm")
            .body(wasm_bytes(package)),
    )
    .await;
    assert_eq!(reply.status, 201, "{name}: {}", reply.text);
    let reply = call(app.put(
        &app.keys.hq_admin,
        &format!("/plugins/{id}/grants"),
        &json!({"outbound_hosts": outbound_hosts, "credentials": [CREDENTIAL]}),
    ))
    .await;
    assert_eq!(reply.status, 200, "grants: {}", reply.text);
    let a = app.units.dealer_a;
    if let Some(secret) = secret {
        store_secret(app, secret).await;
    }
    let reply = call(app.put(
        &app.keys.a_admin,
        &format!("/dealers/{a}/plugins/{hook}"),
        &json!({"plugin_id": id, "pinned_version": "1.0.0", "config": config,
                "failure_policy": "fail_closed"}),
    ))
    .await;
    assert_eq!(reply.status, 200, "binding: {}", reply.text);
    id
}

async fn store_secret(app: &TestApp, secret: &str) {
    let a = app.units.dealer_a;
    let reply = call(app.put(
        &app.keys.a_admin,
        &format!("/dealers/{a}/plugin-secrets/{CREDENTIAL}"),
        &json!({ "secret": secret }),
    ))
    .await;
    assert_eq!(reply.status, 204, "the secret: {}", reply.text);
}

/// Installs the SMS plugin for dealer A against `aliyun`, with the dealer's `secret`.
async fn install_sms(app: &TestApp, aliyun: &Aliyun, secret: &str) -> i64 {
    let config = json!({
        "access_key_id": ACCESS_KEY_ID,
        "sign_name": "比亚迪4S店",
        "templates": {"maintenance-due": "SMS_123456789"},
        "endpoint": format!("http://{}/", aliyun.authority),
    });
    install(
        app,
        ("channel-aliyun-sms", "plugin-channel-aliyun-sms", "channel"),
        &[&aliyun.authority],
        Some(secret),
        config,
    )
    .await
}

fn message(to: &[&str]) -> Message {
    Message {
        channel: "sms".to_owned(),
        to: to.iter().map(|n| (*n).to_owned()).collect(),
        template: "maintenance-due".to_owned(),
        params: vec![
            ("model".to_owned(), "汉 EV".to_owned()),
            ("date".to_owned(), "2025-12-01".to_owned()),
        ],
        purpose: Purpose::Service,
    }
}

/// A recorded run's input, output, effects and error, as stored.
type RecordedRun = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The recorded runs of dealer A's `hook`: input, output, effects and error, as stored.
async fn recorded(app: &TestApp, hook: &str) -> Vec<String> {
    let rows: Vec<RecordedRun> = sqlx::query_as(
        "SELECT input, output, effects, error FROM plugin_runs \
         WHERE dealer_id = $1 AND hook = $2 ORDER BY id",
    )
    .bind(app.units.dealer_a)
    .bind(hook)
    .fetch_all(app.db.pool())
    .await
    .expect("the runs");
    rows.into_iter()
        .map(|(input, output, effects, error)| {
            format!(
                "{} {} {} {}",
                input.unwrap_or_default(),
                output.unwrap_or_default(),
                effects.unwrap_or_default(),
                error.unwrap_or_default()
            )
        })
        .collect()
}

/// The plugin's WIT version as the registry read it from the component.
async fn wit_version(app: &TestApp, plugin: i64) -> String {
    let detail = app
        .read(&app.keys.hq_admin, &format!("/plugins/{plugin}"))
        .await;
    detail["versions"][0]["wit_version"]
        .as_str()
        .unwrap_or_else(|| panic!("a version: {detail}"))
        .to_owned()
}

/// The SMS plugin (0.2.0) sends through the stand-in with a signature it accepts, the host
/// signing with the stored secret, and answers the provider's BizId per number; the run is
/// recorded with the numbers masked. A 0.1.0 commission plugin decides in the same host.
async fn an_sms_goes_out_signed_by_the_host_beside_a_0_1_0_plugin(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.units.dealer_a;
    let aliyun = Aliyun::start().await;
    let sms = install_sms(&app, &aliyun, &format!("{ACCESS_KEY_SECRET}&")).await;
    assert_eq!(wit_version(&app, sms).await, "0.2.0");

    let answers = app
        .state
        .plugins
        .send_message(a, message(&["13812345678", "13987654321"]))
        .await
        .expect("the SMS is sent");
    assert_eq!(answers, [BIZ_ID, BIZ_ID]);
    assert_eq!(aliyun.refused(), 0);
    let accepted = aliyun.accepted();
    assert_eq!(accepted.len(), 1, "one request for both numbers");
    let sent = &accepted[0];
    assert_eq!(sent.get("Action"), "SendSms");
    assert_eq!(sent.get("Version"), "2017-05-25");
    assert_eq!(sent.get("Format"), "JSON");
    assert_eq!(sent.get("PhoneNumbers"), "13812345678,13987654321");
    assert_eq!(sent.get("SignName"), "比亚迪4S店");
    assert_eq!(sent.get("TemplateCode"), "SMS_123456789");
    let param: Value = serde_json::from_str(sent.get("TemplateParam")).expect("JSON");
    assert_eq!(param, json!({"model": "汉 EV", "date": "2025-12-01"}));
    let timestamp = sent.get("Timestamp");
    assert!(
        timestamp.len() == 20 && timestamp.ends_with('Z') && timestamp.as_bytes()[10] == b'T',
        "{timestamp}"
    );
    assert!(
        !sent
            .params
            .iter()
            .any(|(_, v)| v.contains(ACCESS_KEY_SECRET))
    );

    // The run is recorded like any hook's, the numbers masked.
    let runs = recorded(&app, "channel").await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(runs[0].contains("138****5678"), "{}", runs[0]);
    assert!(!runs[0].contains("13812345678"), "{}", runs[0]);
    assert!(!runs[0].contains("13987654321"), "{}", runs[0]);
    assert!(!runs[0].contains(ACCESS_KEY_SECRET), "{}", runs[0]);

    // A component built against WIT 0.1.0 runs in the same host, through the same linker.
    let flat = install(
        &app,
        ("flat", "guest-commission-flat", "commission"),
        &[],
        None,
        json!({"percent": 2}),
    )
    .await;
    assert_eq!(wit_version(&app, flat).await, "0.1.0");
    let reply = call(app.post(
        &app.keys.a_admin,
        &format!("/dealers/{a}/hooks/commission/evaluate"),
        &json!({"input": {
            "order_id": 1, "dealer_id": a, "customer_id": 7, "model": "汉 EV",
            "delivered_at": 1_763_900_000_000_i64, "list_price": 20_000_000, "discount": 0,
            "final_price": 20_000_000, "gross_profit": 1_000_000, "lines": [],
            "staff": [{"member": {"id": 7, "role": "sales"}, "units_this_month": 1}],
        }}),
    ))
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["source"]["plugin"], "flat", "{}", reply.text);
    assert_eq!(reply.body["output"][0]["amount"], 400_000, "{}", reply.text);

    // And the SMS plugin still sends after it.
    let again = app
        .state
        .plugins
        .send_message(a, message(&["13812345678"]))
        .await
        .expect("sent again");
    assert_eq!(again, [BIZ_ID]);
    assert_eq!(aliyun.accepted().len(), 2);
}

/// The dealer's secret stored without the provider's key (another secret): the stand-in
/// rejects the signature, and the message fails, not worth retrying.
async fn a_wrong_secret_is_a_rejected_signature_not_worth_retrying(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let aliyun = Aliyun::start().await;
    install_sms(&app, &aliyun, "not-the-secret&").await;
    let failure = app
        .state
        .plugins
        .send_message(app.units.dealer_a, message(&["13812345678"]))
        .await
        .expect_err("refused");
    assert!(!failure.retryable, "{failure:?}");
    assert!(
        failure.message.contains("SignatureDoesNotMatch"),
        "{failure:?}"
    );
    assert_eq!(aliyun.refused(), 1);
    assert!(aliyun.accepted().is_empty());

    // The secret without its `&` is a wrong key too; with it, the same plugin sends.
    store_secret(&app, ACCESS_KEY_SECRET).await;
    let failure = app
        .state
        .plugins
        .send_message(app.units.dealer_a, message(&["13812345678"]))
        .await
        .expect_err("refused");
    assert!(failure.message.contains("SignatureDoesNotMatch"));
    store_secret(&app, &format!("{ACCESS_KEY_SECRET}&")).await;
    let answers = app
        .state
        .plugins
        .send_message(app.units.dealer_a, message(&["13812345678"]))
        .await
        .expect("sent");
    assert_eq!(answers, [BIZ_ID]);
}

/// No channel plugin: the built-in default fails the message, not worth retrying.
async fn a_dealer_without_a_channel_plugin_fails_the_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let failure = app
        .state
        .plugins
        .send_message(app.units.dealer_a, message(&["13812345678"]))
        .await
        .expect_err("no plugin");
    assert!(!failure.retryable);
    assert!(failure.message.contains("no channel plugin"), "{failure:?}");
    let runs = recorded(&app, "channel").await;
    assert_eq!(runs.len(), 1, "the built-in decision is recorded too");
    assert!(!runs[0].contains("13812345678"), "{}", runs[0]);
}

/// A 0.2.0 guest granted the credential gets signatures (the same the host computes with the
/// secret), never the secret: not from signing, the environment, files, or an outbound call
/// to a host off its allowlist; a handle it was not granted is refused, and its signatures
/// are bounded per run. Nothing recorded of its runs holds the secret.
async fn a_hostile_guest_signs_but_never_sees_the_secret(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.units.dealer_a;
    let secret = format!("{ACCESS_KEY_SECRET}&");
    let hostile = install(
        &app,
        ("hostile", "guest-hostile", "ticket-routing"),
        &["127.0.0.1:9"],
        Some(&secret),
        json!({"behaviour": "ok"}),
    )
    .await;
    let route = |config: Value| {
        let app = &app;
        async move {
            let reply = call(app.put(
                &app.keys.a_admin,
                &format!("/dealers/{a}/plugins/ticket-routing"),
                &json!({"plugin_id": hostile, "pinned_version": "1.0.0", "config": config,
                        "failure_policy": "fail_closed"}),
            ))
            .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            let reply = call(app.post(
                &app.keys.a_admin,
                &format!("/dealers/{a}/hooks/ticket-routing/evaluate"),
                &json!({"input": {
                    "ticket_id": 1, "dealer_id": a, "channel": "app", "category": "service",
                    "subject": "s", "description": "d", "customer_id": 7,
                    "customer_tier": null, "customer_tags": [], "vehicle_id": null,
                    "opened_at": 1_763_900_000_000_i64,
                }}),
            ))
            .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            let reason = reply.body["output"]["reason"]
                .as_str()
                .unwrap_or_else(|| panic!("a route: {}", reply.text))
                .to_owned();
            assert!(!reply.text.contains(ACCESS_KEY_SECRET), "{}", reply.text);
            reason
        }
    };

    let data = "GET&%2F&probe";
    let signed = route(json!({"behaviour": "sign", "credential": CREDENTIAL, "data": data})).await;
    assert_eq!(
        signed,
        format!(
            "sign: sha1={} sha256={}",
            hex(&hmac_sha1(&secret, data.as_bytes())),
            hex(&hmac_sha256(&secret, data.as_bytes()))
        )
    );
    assert!(!signed.contains(&hex(secret.as_bytes())));

    let ungranted = route(json!({"behaviour": "sign", "credential": "other-secret"})).await;
    assert!(
        ungranted.starts_with("sign: sha1=Denied(") && ungranted.contains("not granted"),
        "{ungranted}"
    );

    let flood = route(json!({"behaviour": "sign-flood", "credential": CREDENTIAL})).await;
    assert_eq!(flood, "sign-flood: 64 signed, 36 refused");

    assert_eq!(
        route(json!({"behaviour": "env"})).await,
        "env: vars=0 args=0"
    );
    let files = route(json!({"behaviour": "open-file"})).await;
    assert!(!files.contains(ACCESS_KEY_SECRET), "{files}");
    let outbound = route(
        json!({"behaviour": "outbound", "url": "http://127.0.0.1:1/echo",
                                "credential": CREDENTIAL}),
    )
    .await;
    assert!(
        outbound.contains("Denied") && outbound.contains("allowlist"),
        "{outbound}"
    );

    for run in recorded(&app, "ticket-routing").await {
        assert!(!run.contains(ACCESS_KEY_SECRET), "{run}");
    }
}

/// The outbox's SMS goes through the dealer's channel plugin: opening a repair order texts the
/// owner an absolute link to its progress, signed by the host for the provider; a dealer that
/// enabled no channel plugin has its SMS logged, and the attempt says so.
async fn a_repair_orders_sms_reaches_its_owner_through_the_dealers_plugin(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let aliyun = Aliyun::start().await;
    let config = json!({
        "access_key_id": ACCESS_KEY_ID,
        "sign_name": "远航北京朝阳4S店",
        "templates": {"repair-opened": "SMS_900001"},
        "endpoint": format!("http://{}/", aliyun.authority),
    });
    install(
        &app,
        ("channel-aliyun-sms", "plugin-channel-aliyun-sms", "channel"),
        &[&aliyun.authority],
        Some(&format!("{ACCESS_KEY_SECRET}&")),
        config,
    )
    .await;
    let (customer, vehicle) = owner_with_car(&app, &app.keys.a_service, 51, json!([])).await;
    let order = app
        .create(
            &app.keys.a_service,
            "/repair-orders",
            &json!({"customer_id": customer, "vehicle_id": vehicle, "complaint_code": "BRAKE"}),
        )
        .await;
    let (b_customer, b_vehicle) = owner_with_car(&app, &app.keys.b_admin, 52, json!([])).await;
    app.create(
        &app.keys.b_admin,
        "/repair-orders",
        &json!({"customer_id": b_customer, "vehicle_id": b_vehicle, "complaint_code": "NOISE"}),
    )
    .await;
    let senders = Senders::log_only()
        .public_url("https://crm.example.cn")
        .with(
            "sms",
            Arc::new(PluginChannel::new(app.state.plugins.clone())),
        );
    let report = outbox::deliver_due(&app.db, &senders, "w", clock::now_ms())
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (2, 0), "{report:?}");

    let [sent] = &aliyun.accepted()[..] else {
        panic!("one SendSms: {:?}", aliyun.accepted());
    };
    assert_eq!(sent.get("PhoneNumbers"), "13900000051");
    assert_eq!(sent.get("TemplateCode"), "SMS_900001");
    let params: Value = serde_json::from_str(sent.get("TemplateParam")).expect("JSON parameters");
    let token = order["owner_link"]["token"].as_str().unwrap();
    assert_eq!(
        params["progress-url"],
        format!("https://crm.example.cn/o/r/{token}"),
        "the owner's absolute link: {params}"
    );
    let page = call(
        app.client
            .get(format!("{}/owner/repairs/{token}", app.base)),
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.text);

    let answers: Vec<(i64, String)> = sqlx::query_as(
        "SELECT o.dealer_id, a.answer FROM outbox_attempts a JOIN outbox o ON o.id = a.outbox_id \
         WHERE o.template = 'repair-opened' ORDER BY o.dealer_id",
    )
    .fetch_all(app.db.pool())
    .await
    .unwrap();
    assert_eq!(
        answers,
        vec![
            (app.units.dealer_a, BIZ_ID.to_owned()),
            (app.units.dealer_b, outbox::channels::NOT_ENABLED.to_owned()),
        ],
        "the provider's id, or the log for a dealer without a channel plugin"
    );
}
