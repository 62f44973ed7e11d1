//! The plugin platform end to end over the API: upload and validation, enabling and pinning,
//! replay of recorded runs against a candidate, rollback, kill switches, the run log, and
//! hostile plugins that must be stopped without affecting any other dealer.

use dealer_tests::guests::wasm_bytes;
use dealer_tests::{Backend, TestApp, call, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    malformed_uploads_are_refused_and_nothing_is_stored,
    upload_enable_replay_pin_roll_back_kill_and_read_the_run_log,
    a_configuration_is_checked_against_the_schema_before_it_is_saved,
    a_dealer_publishes_into_its_own_space_only,
    an_infinite_loop_is_stopped_and_other_dealers_keep_being_served,
    unbounded_memory_growth_is_refused_at_the_limit,
    deep_recursion_traps,
    a_huge_output_is_refused,
    a_panic_traps,
    a_fail_closed_hook_refuses_the_operation,
    files_and_sockets_are_denied_without_a_capability,
    a_private_directory_is_granted_by_hq,
    another_dealers_customer_is_not_found_by_a_plugin_and_the_attempt_is_audited,
    outbound_calls_reach_only_allowlisted_hosts_with_the_secret_injected,
    a_wasi_http_client_is_held_to_the_same_allowlist_and_credentials,
    the_store_keeps_state_per_dealer_and_wasi_grants_no_environment,
    events_and_notifications_come_back_with_the_decision,
);

const WASM: &str = "application/wasm";

/// Registers a catalogue plugin (as HQ) and uploads `guest` as its version `version`.
pub(crate) async fn publish(
    app: &TestApp,
    name: &str,
    hook: &str,
    guest: &str,
    version: &str,
) -> i64 {
    let plugin = app
        .create(
            &app.keys.hq_admin,
            "/plugins",
            &json!({"name": name, "hook": hook, "description": "test plugin"}),
        )
        .await;
    let id = plugin["id"].as_i64().expect("a plugin id");
    upload(app, id, guest, version).await;
    id
}

pub(crate) async fn upload(app: &TestApp, plugin: i64, guest: &str, version: &str) -> Value {
    let reply = call(
        app.client
            .post(format!(
                "{}/plugins/{plugin}/versions?version={version}",
                app.base
            ))
            .bearer_auth(&app.keys.hq_admin)
            .header("content-type", WASM)
            .body(wasm_bytes(guest)),
    )
    .await;
    assert_eq!(reply.status, 201, "upload answered {}", reply.text);
    reply.body
}

pub(crate) async fn bind(
    app: &TestApp,
    dealer: i64,
    hook: &str,
    plugin: i64,
    version: &str,
    config: Value,
) {
    bind_with(app, dealer, hook, plugin, version, config, "fallback").await;
}

pub(crate) async fn bind_with(
    app: &TestApp,
    dealer: i64,
    hook: &str,
    plugin: i64,
    version: &str,
    config: Value,
    policy: &str,
) {
    let reply = call(
        app.client
            .put(format!("{}/dealers/{dealer}/plugins/{hook}", app.base))
            .bearer_auth(&app.keys.hq_admin)
            .json(
                &json!({"plugin_id": plugin, "pinned_version": version, "config": config,
                "failure_policy": policy}),
            ),
    )
    .await;
    assert_eq!(reply.status, 200, "bind answered {}", reply.text);
}

pub(crate) fn ticket(dealer: i64, subject: &str) -> Value {
    json!({
        "ticket_id": 1, "dealer_id": dealer, "channel": "hotline", "category": "complaint",
        "subject": subject, "description": "客户来电", "customer_id": 1,
        "customer_tier": null, "customer_tags": [], "vehicle_id": null,
        "opened_at": 1_763_900_000_000_i64,
    })
}

fn sale(dealer: i64, final_price: i64, gross_profit: i64) -> Value {
    json!({
        "order_id": 1, "dealer_id": dealer, "customer_id": 1, "model": "红旗 H5",
        "delivered_at": 1_763_900_000_000_i64, "list_price": final_price + 500_000,
        "discount": 500_000, "final_price": final_price, "gross_profit": gross_profit,
        "lines": [],
        "staff": [{"member": {"id": 7, "role": "sales"}, "units_this_month": 3}],
    })
}

async fn evaluate(
    app: &TestApp,
    key: &str,
    dealer: i64,
    hook: &str,
    input: Value,
) -> dealer_tests::Reply {
    call(app.post(
        key,
        &format!("/dealers/{dealer}/hooks/{hook}/evaluate"),
        &json!({ "input": input }),
    ))
    .await
}

/// Evaluates `input` as HQ and expects a 200.
pub(crate) async fn decide(app: &TestApp, dealer: i64, hook: &str, input: Value) -> Value {
    let reply = evaluate(app, &app.keys.hq_admin, dealer, hook, input).await;
    assert_eq!(reply.status, 200, "evaluate answered {}", reply.text);
    reply.body
}

/// A routing decision of the hostile plugin configured with `behaviour` for dealer A.
async fn hostile(app: &TestApp, behaviour: &str, extra: Value) -> Value {
    let id = publish(app, "hostile", "ticket-routing", "guest-hostile", "1.0.0").await;
    let mut config = json!({ "behaviour": behaviour });
    config
        .as_object_mut()
        .expect("an object")
        .extend(extra.as_object().cloned().unwrap_or_default());
    bind(
        app,
        app.units.dealer_a,
        "ticket-routing",
        id,
        "1.0.0",
        config,
    )
    .await;
    decide(
        app,
        app.units.dealer_a,
        "ticket-routing",
        ticket(app.units.dealer_a, "噪音"),
    )
    .await
}

pub(crate) fn failed_outcome(decision: &Value) -> &str {
    assert_eq!(
        decision["source"]["reason"], "fallback",
        "expected a fallback: {decision}"
    );
    decision["source"]["failed"]["outcome"]
        .as_str()
        .expect("the failed run's outcome")
}

async fn malformed_uploads_are_refused_and_nothing_is_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let plugin = app
        .create(
            &app.keys.hq_admin,
            "/plugins",
            &json!({"name": "routing", "hook": "ticket-routing"}),
        )
        .await;
    let id = plugin["id"].as_i64().expect("an id");
    let up = |body: Vec<u8>, content_type: &'static str, version: &'static str| {
        app.client
            .post(format!(
                "{}/plugins/{id}/versions?version={version}",
                app.base
            ))
            .bearer_auth(&app.keys.hq_admin)
            .header("content-type", content_type)
            .body(body)
    };
    let cases: Vec<(Vec<u8>, &str, &str, u16, &str)> = vec![
        (b"not wasm at all".to_vec(), WASM, "1.0.0", 422, "not_wasm"),
        (
            b"\0asm\x01\0\0\0".to_vec(),
            WASM,
            "1.0.0",
            422,
            "not_a_component",
        ),
        (
            b"\0asm\x0d\0\x01\0garbage".to_vec(),
            WASM,
            "1.0.0",
            422,
            "invalid_component",
        ),
        (
            wasm_bytes("guest-commission-flat"),
            WASM,
            "1.0.0",
            422,
            "wrong_hook",
        ),
        (
            wasm_bytes("guest-routing-keywords"),
            WASM,
            "one",
            422,
            "invalid_version",
        ),
        (
            wasm_bytes("guest-routing-keywords"),
            "application/json",
            "1.0.0",
            400,
            "unsupported_media_type",
        ),
    ];
    for (body, content_type, version, status, code) in cases {
        let reply = call(up(body, content_type, version)).await;
        assert_eq!(reply.status, status, "{code}: {}", reply.text);
        assert!(reply.has_code(code), "expected {code}: {}", reply.text);
    }
    // A body announced larger than the 40 MiB limit is refused before it is read.
    let (status, _, body) = app
        .announce_body(
            &app.keys.hq_admin,
            &format!("/plugins/{id}/versions?version=1.0.0"),
            WASM,
            41 << 20,
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "body_too_large");
    // A dealer cannot upload into the catalogue.
    let reply = call(
        app.client
            .post(format!("{}/plugins/{id}/versions?version=1.0.0", app.base))
            .bearer_auth(&app.keys.a_admin)
            .header("content-type", WASM)
            .body(wasm_bytes("guest-routing-keywords")),
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.text);

    let detail = app
        .read(&app.keys.hq_admin, &format!("/plugins/{id}"))
        .await;
    assert_eq!(detail["versions"], json!([]), "nothing was stored");
    let stored: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM plugin_artifacts")
        .fetch_one(app.db.pool())
        .await
        .expect("count artifacts");
    assert_eq!(stored.0, 0);

    // The valid component is accepted, and the same version twice is a conflict.
    let version = upload(&app, id, "guest-routing-keywords", "1.0.0").await;
    assert_eq!(
        version["wit_version"],
        dealer_host::plugins::WIT_VERSION,
        "the SDK's"
    );
    let reply = call(up(wasm_bytes("guest-routing-keywords"), WASM, "1.0.0")).await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert!(reply.has_code("version_exists"));
}

async fn upload_enable_replay_pin_roll_back_kill_and_read_the_run_log(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.units.dealer_a;
    let id = publish(
        &app,
        "commission",
        "commission",
        "guest-commission-flat",
        "1.0.0",
    )
    .await;

    // With no plugin the built-in default decides: 1% of the final price.
    let decision = decide(&app, a, "commission", sale(a, 20_000_000, 3_000_000)).await;
    assert_eq!(decision["source"]["kind"], "default");
    assert_eq!(decision["source"]["reason"], "no_plugin");
    assert_eq!(decision["output"][0]["amount"], 200_000);

    bind(&app, a, "commission", id, "1.0.0", json!({"percent": 2})).await;
    for price in [10_000_000, 20_000_000, 30_000_000] {
        let decision = decide(&app, a, "commission", sale(a, price, price / 10)).await;
        assert_eq!(decision["source"]["kind"], "plugin", "{decision}");
        assert_eq!(decision["source"]["version"], "1.0.0");
        assert_eq!(decision["output"][0]["amount"], price * 2 / 100);
    }

    // Version 2 pays a share of gross profit instead; replay it on the recorded sales.
    upload(&app, id, "guest-commission-gross", "2.0.0").await;
    let report = call(app.post(
        &app.keys.a_admin,
        &format!("/dealers/{a}/plugins/commission/replay"),
        &json!({"version": "2.0.0", "config": {}}),
    ))
    .await;
    assert_eq!(report.status, 200, "{}", report.text);
    let report = report.body;
    assert_eq!(report["candidate_version"], "2.0.0");
    // The three decisions of 1.0.0 and the built-in one before it.
    assert_eq!(report["total"], 4, "{report}");
    assert_eq!(report["different"], 4);
    assert_eq!(report["candidate_failed"], 0);
    let first = &report["runs"][0];
    assert_eq!(first["recorded_version"], "1.0.0");
    // The newest recorded sale: 30,000,000 final, 3,000,000 gross; 500 bp of gross.
    assert_eq!(first["recorded_output"][0]["amount"], 600_000);
    assert_eq!(first["candidate_output"][0]["amount"], 150_000);
    let built_in = &report["runs"][3];
    assert_eq!(built_in["recorded_version"], Value::Null, "{report}");
    assert_eq!(built_in["recorded_output"][0]["amount"], 200_000);

    // Pin 2.0.0 (with the ETag of the binding) and the next call uses it.
    let bindings = app
        .read(&app.keys.a_admin, &format!("/dealers/{a}/plugins"))
        .await;
    let etag = bindings["bindings"][0]["version"]
        .as_i64()
        .expect("a version");
    let pinned = call(
        app.patch(
            &app.keys.a_admin,
            &format!("/dealers/{a}/plugins/commission"),
            &json!({"pinned_version": "2.0.0", "config": {"share_bp": 1000}}),
        )
        .header("if-match", format!("\"{etag}\"")),
    )
    .await;
    assert_eq!(pinned.status, 200, "{}", pinned.text);
    assert_eq!(pinned.body["previous_version"], "1.0.0");
    let decision = decide(&app, a, "commission", sale(a, 10_000_000, 1_000_000)).await;
    assert_eq!(decision["source"]["version"], "2.0.0");
    assert_eq!(decision["output"][0]["amount"], 100_000);

    // Roll back in one call.
    let rolled = call(app.post(
        &app.keys.a_admin,
        &format!("/dealers/{a}/plugins/commission/rollback"),
        &json!({}),
    ))
    .await;
    assert_eq!(rolled.status, 200, "{}", rolled.text);
    assert_eq!(rolled.body["pinned_version"], "1.0.0");
    let decision = decide(&app, a, "commission", sale(a, 10_000_000, 1_000_000)).await;
    assert_eq!(decision["source"]["version"], "1.0.0");

    // Kill switches: the hook falls back at once, and comes back when revived.
    let switches = [
        (
            format!("/dealers/{a}/plugins/commission/kill-switch"),
            "binding_killed",
        ),
        (format!("/dealers/{a}/plugin-kill-switch"), "dealer_killed"),
        (format!("/plugins/{id}/kill-switch"), "plugin_killed"),
    ];
    for (path, reason) in &switches {
        let on = call(
            app.client
                .put(format!("{}{path}", app.base))
                .bearer_auth(&app.keys.hq_admin)
                .json(&json!({"killed": true, "reason": "investigating"})),
        )
        .await;
        assert_eq!(on.status, 200, "{path}: {}", on.text);
        let decision = decide(&app, a, "commission", sale(a, 10_000_000, 1_000_000)).await;
        assert_eq!(decision["source"]["reason"], *reason, "{path}: {decision}");
        let off = call(
            app.client
                .put(format!("{}{path}", app.base))
                .bearer_auth(&app.keys.hq_admin)
                .json(&json!({"killed": false})),
        )
        .await;
        assert_eq!(off.status, 200, "{path}: {}", off.text);
        let decision = decide(&app, a, "commission", sale(a, 10_000_000, 1_000_000)).await;
        assert_eq!(decision["source"]["kind"], "plugin", "{path}: {decision}");
    }

    // The run log: every plugin run, with per-version aggregates.
    let runs = app
        .read(
            &app.keys.a_admin,
            &format!("/plugin-runs?dealer_id={a}&limit=200"),
        )
        .await;
    let items = runs["items"].as_array().expect("runs");
    let count = |source: &str, plugin: bool| {
        items
            .iter()
            .filter(|r| r["source"] == source && r["plugin_id"].is_null() != plugin)
            .count()
    };
    assert_eq!(count("evaluate", true), 8, "{runs}");
    // The built-in decisions: before any plugin, and once per kill switch.
    assert_eq!(count("evaluate", false), 4, "{runs}");
    assert_eq!(count("replay", true), 4);
    assert!(items.iter().all(|r| r["outcome"] == "ok"));
    let stats = app
        .read(
            &app.keys.hq_admin,
            &format!("/plugin-runs/stats?dealer_id={a}"),
        )
        .await;
    let v1 = stats
        .as_array()
        .expect("stats")
        .iter()
        .find(|s| s["version"] == "1.0.0")
        .expect("stats of 1.0.0");
    assert_eq!(v1["count"], 7, "{stats}");
    assert_eq!(v1["error_rate"], 0.0);
    assert!(v1["p50_us"].as_i64().expect("p50") > 0);

    // Another dealer cannot read dealer A's runs.
    let reply = call(app.get(&app.keys.b_admin, &format!("/plugin-runs?dealer_id={a}"))).await;
    assert_eq!(reply.status, 404, "{}", reply.text);
}

async fn a_configuration_is_checked_against_the_schema_before_it_is_saved(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.units.dealer_a;
    let plugin = app
        .create(
            &app.keys.hq_admin,
            "/plugins",
            &json!({"name": "flat", "hook": "commission",
                "config_schema": {"fields": {"percent": {"type": "integer", "min": 0, "max": 10, "required": true}}}}),
        )
        .await;
    let id = plugin["id"].as_i64().expect("an id");
    upload(&app, id, "guest-commission-flat", "1.0.0").await;
    for (config, code) in [
        (json!({"percent": 80}), "invalid_config_value"),
        (json!({}), "required"),
        (json!({"percent": 1, "bonus": 2}), "unknown_config_key"),
    ] {
        let reply = call(
            app.client
                .put(format!("{}/dealers/{a}/plugins/commission", app.base))
                .bearer_auth(&app.keys.a_admin)
                .json(&json!({"plugin_id": id, "pinned_version": "1.0.0", "config": config})),
        )
        .await;
        assert_eq!(reply.status, 422, "{}", reply.text);
        assert!(reply.has_code(code), "expected {code}: {}", reply.text);
    }
    let bindings = app
        .read(&app.keys.a_admin, &format!("/dealers/{a}/plugins"))
        .await;
    assert_eq!(bindings["bindings"], json!([]), "nothing was saved");

    // A schema that cannot be checked is refused when the plugin is registered.
    let reply = call(app.post(
        &app.keys.hq_admin,
        "/plugins",
        &json!({"name": "bad", "hook": "commission", "config_schema": {"fields": {"x": {"type": "colour"}}}}),
    ))
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(reply.has_code("invalid_config_schema"));

    // Dealer B may not bind dealer A's hook.
    let reply = call(
        app.client
            .put(format!("{}/dealers/{a}/plugins/commission", app.base))
            .bearer_auth(&app.keys.b_admin)
            .json(&json!({"plugin_id": id, "pinned_version": "1.0.0", "config": {"percent": 1}})),
    )
    .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
}

async fn a_dealer_publishes_into_its_own_space_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b) = (app.units.dealer_a, app.units.dealer_b);
    let own = app
        .create(
            &app.keys.a_admin,
            "/plugins",
            &json!({"name": "our-commission", "hook": "commission"}),
        )
        .await;
    let id = own["id"].as_i64().expect("an id");
    assert_eq!(own["owner_org_id"], a);
    let reply = call(
        app.client
            .post(format!("{}/plugins/{id}/versions?version=0.1.0", app.base))
            .bearer_auth(&app.keys.a_admin)
            .header("content-type", WASM)
            .body(wasm_bytes("guest-commission-flat")),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let reply = call(
        app.client
            .put(format!("{}/dealers/{a}/plugins/commission", app.base))
            .bearer_auth(&app.keys.a_admin)
            .json(&json!({"plugin_id": id, "pinned_version": "0.1.0", "config": {"percent": 3}})),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let decision = evaluate(
        &app,
        &app.keys.a_admin,
        a,
        "commission",
        sale(a, 1_000_000, 0),
    )
    .await;
    assert_eq!(
        decision.body["output"][0]["amount"], 30_000,
        "{}",
        decision.text
    );

    // Dealer B neither sees nor uses it.
    let listed = app.read(&app.keys.b_admin, "/plugins").await;
    assert!(
        listed
            .as_array()
            .expect("a list")
            .iter()
            .all(|p| p["id"] != id)
    );
    let reply = call(app.get(&app.keys.b_admin, &format!("/plugins/{id}"))).await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    let reply = call(
        app.client
            .put(format!("{}/dealers/{b}/plugins/commission", app.base))
            .bearer_auth(&app.keys.b_admin)
            .json(&json!({"plugin_id": id, "pinned_version": "0.1.0", "config": {}})),
    )
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(reply.has_code("unknown_plugin"));
    // A partner's key sees no dealer's plugins.
    let reply = call(app.get(&app.keys.partner, "/plugins")).await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    // Sales staff manage no plugins.
    let reply = call(app.post(
        &app.keys.a_sales,
        "/plugins",
        &json!({"name": "mine", "hook": "commission"}),
    ))
    .await;
    assert_eq!(reply.status, 403, "{}", reply.text);
}

async fn an_infinite_loop_is_stopped_and_other_dealers_keep_being_served(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b) = (app.units.dealer_a, app.units.dealer_b);
    let id = publish(&app, "hostile", "ticket-routing", "guest-hostile", "1.0.0").await;
    bind(
        &app,
        a,
        "ticket-routing",
        id,
        "1.0.0",
        json!({"behaviour": "loop"}),
    )
    .await;
    bind(
        &app,
        b,
        "ticket-routing",
        id,
        "1.0.0",
        json!({"behaviour": "ok"}),
    )
    .await;

    let looping = decide(&app, a, "ticket-routing", ticket(a, "噪音"));
    let others = async {
        let mut decisions = Vec::new();
        for _ in 0..5 {
            decisions.push(decide(&app, b, "ticket-routing", ticket(b, "噪音")).await);
        }
        decisions
    };
    let (looping, others) = tokio::join!(looping, others);
    assert_eq!(failed_outcome(&looping), "timeout", "{looping}");
    // The fallback is the built-in route.
    assert_eq!(looping["output"]["team"], "service");
    for decision in others {
        assert_eq!(decision["source"]["kind"], "plugin", "{decision}");
        assert_eq!(decision["output"]["reason"], "ok");
    }
    let runs = app
        .read(
            &app.keys.hq_admin,
            &format!("/plugin-runs?dealer_id={a}&outcome=timeout"),
        )
        .await;
    assert_eq!(runs["items"].as_array().map(Vec::len), Some(1), "{runs}");
    assert!(
        runs["items"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("fuel") || e.contains("deadline"))
    );
}

async fn unbounded_memory_growth_is_refused_at_the_limit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let decision = hostile(&app, "grow-memory", json!({})).await;
    assert_eq!(failed_outcome(&decision), "out_of_memory", "{decision}");
    let runs = app
        .read(&app.keys.hq_admin, "/plugin-runs?outcome=out_of_memory")
        .await;
    let memory = runs["items"][0]["memory_bytes"].as_i64().expect("memory");
    assert!(
        memory <= 64 << 20,
        "peak memory {memory} is within the 64 MiB limit"
    );
    assert!(
        memory > 32 << 20,
        "the plugin grew to near the limit: {memory}"
    );
}

async fn deep_recursion_traps(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let decision = hostile(&app, "recurse", json!({})).await;
    assert_eq!(failed_outcome(&decision), "trap", "{decision}");
    // Plugins get a 64 KiB shadow stack in linear memory (.cargo/config.toml), which runs out
    // before wasmtime's native stack limit: the overflow is an access below the memory.
    let error = decision["source"]["failed"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.contains("stack") || error.contains("out of bounds memory access"),
        "{decision}"
    );
}

async fn a_huge_output_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let decision = hostile(&app, "huge-output", json!({})).await;
    assert_eq!(failed_outcome(&decision), "invalid_output", "{decision}");
    let app = TestApp::spawn(backend).await;
    let decision = hostile(&app, "huge-notifications", json!({})).await;
    assert_eq!(failed_outcome(&decision), "invalid_output", "{decision}");
}

async fn a_panic_traps(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let decision = hostile(&app, "panic", json!({})).await;
    assert_eq!(failed_outcome(&decision), "trap", "{decision}");
}

async fn a_fail_closed_hook_refuses_the_operation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.units.dealer_a;
    let id = publish(&app, "hostile", "ticket-routing", "guest-hostile", "1.0.0").await;
    bind_with(
        &app,
        a,
        "ticket-routing",
        id,
        "1.0.0",
        json!({"behaviour": "panic"}),
        "fail_closed",
    )
    .await;
    let reply = evaluate(
        &app,
        &app.keys.a_admin,
        a,
        "ticket-routing",
        ticket(a, "噪音"),
    )
    .await;
    assert_eq!(reply.status, 424, "{}", reply.text);
    assert!(reply.has_code("plugin_failed"));
    assert!(
        reply.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("hostile@1.0.0"))
    );
}

async fn files_and_sockets_are_denied_without_a_capability(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let decision = hostile(&app, "open-file", json!({})).await;
    let reason = decision["output"]["reason"].as_str().expect("a reason");
    assert!(reason.starts_with("open-file: denied"), "{reason}");
    let app = TestApp::spawn(backend).await;
    let decision = hostile(&app, "open-socket", json!({})).await;
    let reason = decision["output"]["reason"].as_str().expect("a reason");
    assert!(reason.starts_with("open-socket: denied"), "{reason}");
    let app = TestApp::spawn(backend).await;
    let decision = hostile(&app, "write-private", json!({})).await;
    let reason = decision["output"]["reason"].as_str().expect("a reason");
    assert!(reason.starts_with("write-private: denied"), "{reason}");
}

async fn a_private_directory_is_granted_by_hq(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.units.dealer_a;
    let id = publish(&app, "hostile", "ticket-routing", "guest-hostile", "1.0.0").await;
    // A dealer cannot grant capabilities.
    let reply = call(
        app.client
            .put(format!("{}/plugins/{id}/grants", app.base))
            .bearer_auth(&app.keys.a_admin)
            .json(&json!({"private_dir": true})),
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    let reply = call(
        app.client
            .put(format!("{}/plugins/{id}/grants", app.base))
            .bearer_auth(&app.keys.hq_admin)
            .json(&json!({"private_dir": true})),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    bind(
        &app,
        a,
        "ticket-routing",
        id,
        "1.0.0",
        json!({"behaviour": "write-private"}),
    )
    .await;
    let decision = decide(&app, a, "ticket-routing", ticket(a, "噪音")).await;
    let reason = decision["output"]["reason"].as_str().expect("a reason");
    assert!(reason.starts_with("write-private: ok"), "{reason}");
    let written = app
        .files_dir()
        .join(format!("dealer-{a}"))
        .join(format!("plugin-{id}"))
        .join("note.txt");
    assert!(written.exists(), "{} exists", written.display());
    // The directory is the plugin's only file access: /etc stays out of reach.
    bind(
        &app,
        a,
        "ticket-routing",
        id,
        "1.0.0",
        json!({"behaviour": "open-file"}),
    )
    .await;
    let decision = decide(&app, a, "ticket-routing", ticket(a, "噪音")).await;
    let reason = decision["output"]["reason"].as_str().expect("a reason");
    assert!(reason.contains("read /etc/passwd"), "{reason}");
}

async fn another_dealers_customer_is_not_found_by_a_plugin_and_the_attempt_is_audited(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let theirs = app
        .create(
            &app.keys.b_admin,
            "/customers",
            &json!({"name": "李娜", "phones": [{"number": "13912345678"}], "tags": []}),
        )
        .await;
    let ours = app
        .create(
            &app.keys.a_admin,
            "/customers",
            &json!({"name": "王芳", "phones": [{"number": "13812345678"}], "tags": []}),
        )
        .await;
    let decision = hostile(
        &app,
        "peek-other-dealer",
        json!({"customer_id": theirs["id"]}),
    )
    .await;
    assert_eq!(decision["output"]["reason"], "peek: NotFound", "{decision}");
    let audit = app
        .read(
            &app.keys.hq_admin,
            "/audit?action=plugin_lookup&outcome=denied",
        )
        .await;
    let entry = &audit["items"][0];
    assert_eq!(entry["entity_id"], theirs["id"], "{audit}");
    assert_eq!(entry["actor_role"], "plugin");
    assert_eq!(entry["detail"]["plugin"], "hostile");
    assert_eq!(
        entry["detail"]["count"], 1,
        "one entry for the run, with its count"
    );

    // The dealer's own customer is found.
    let a = app.units.dealer_a;
    let id = app.read(&app.keys.hq_admin, "/plugins").await[0]["id"].clone();
    bind(
        &app,
        a,
        "ticket-routing",
        id.as_i64().expect("an id"),
        "1.0.0",
        json!({"behaviour": "peek-other-dealer", "customer_id": ours["id"]}),
    )
    .await;
    let decision = decide(&app, a, "ticket-routing", ticket(a, "噪音")).await;
    assert_eq!(
        decision["output"]["reason"], "peek: found 王芳",
        "{decision}"
    );
}

const PARTNER_SECRET: &str = "s3cr3t-key-42";

/// A stand-in for a partner's API: answers 200 `authorized` when it receives the dealer's
/// secret as a bearer token, `anonymous` when it receives none. It never echoes the secret,
/// so the plugin cannot have learnt it.
async fn partner_stand_in() -> (String, tokio::task::JoinHandle<()>) {
    use axum::http::HeaderMap;
    let app = axum::Router::new()
        .route(
            "/moved",
            axum::routing::get(|| async {
                axum::response::Redirect::temporary("http://127.0.0.1:5432/")
            }),
        )
        .fallback(|headers: HeaderMap| async move {
            match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                Some(auth) if auth == format!("Bearer {PARTNER_SECRET}") => "authorized",
                Some(_) => "wrong-secret",
                None => "anonymous",
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the stand-in");
    let addr = listener.local_addr().expect("an address");
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    (format!("127.0.0.1:{}", addr.port()), server)
}

/// HQ allowlists `partner` for plugin `id` with the credential `insurer-api-key`, and dealer
/// A's admin stores [`PARTNER_SECRET`] behind it.
async fn allow_the_partner(app: &TestApp, id: i64, partner: &str) {
    let a = app.units.dealer_a;
    let reply = call(
        app.client
            .put(format!("{}/plugins/{id}/grants", app.base))
            .bearer_auth(&app.keys.hq_admin)
            .json(&json!({"outbound_hosts": [partner], "credentials": ["insurer-api-key"]})),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = call(
        app.client
            .put(format!(
                "{}/dealers/{a}/plugin-secrets/insurer-api-key",
                app.base
            ))
            .bearer_auth(&app.keys.a_admin)
            .json(&json!({ "secret": PARTNER_SECRET })),
    )
    .await;
    assert_eq!(reply.status, 204, "{}", reply.text);
}

async fn outbound_calls_reach_only_allowlisted_hosts_with_the_secret_injected(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.units.dealer_a;
    let (partner, _server) = partner_stand_in().await;
    let id = publish(&app, "hostile", "ticket-routing", "guest-hostile", "1.0.0").await;
    let url = format!("http://{partner}/quotes");

    // Not on the allowlist: denied.
    bind(
        &app,
        a,
        "ticket-routing",
        id,
        "1.0.0",
        json!({"behaviour": "outbound", "url": url}),
    )
    .await;
    let decision = decide(&app, a, "ticket-routing", ticket(a, "噪音")).await;
    let reason = decision["output"]["reason"].as_str().expect("a reason");
    assert!(reason.starts_with("outbound: error: Denied"), "{reason}");

    // Allowlisted, with the dealer's secret injected by the host.
    allow_the_partner(&app, id, &partner).await;
    bind(
        &app,
        a,
        "ticket-routing",
        id,
        "1.0.0",
        json!({"behaviour": "outbound", "url": url, "credential": "insurer-api-key"}),
    )
    .await;
    let decision = decide(&app, a, "ticket-routing", ticket(a, "噪音")).await;
    let reason = decision["output"]["reason"].as_str().expect("a reason");
    assert_eq!(reason, "outbound: 200 authorized");
    let calls = &decision["effects"]["outbound"];
    assert_eq!(calls[0]["credential"], "insurer-api-key", "{decision}");
    assert_eq!(calls[0]["status"], 200);

    // The secret is never returned, nor in the run log.
    let handles = app
        .read(&app.keys.a_admin, &format!("/dealers/{a}/plugin-secrets"))
        .await;
    assert_eq!(handles, json!(["insurer-api-key"]));
    let runs = call(app.get(&app.keys.hq_admin, &format!("/plugin-runs?dealer_id={a}"))).await;
    assert!(
        runs.text.contains("outbound: 200 authorized"),
        "{}",
        runs.text
    );
    assert!(
        !runs.text.contains(PARTNER_SECRET),
        "the run log leaks the secret"
    );

    // A redirect off the allowlist is not followed: the plugin sees it.
    bind(
        &app,
        a,
        "ticket-routing",
        id,
        "1.0.0",
        json!({"behaviour": "outbound", "url": format!("http://{partner}/moved")}),
    )
    .await;
    let decision = decide(&app, a, "ticket-routing", ticket(a, "噪音")).await;
    let reason = decision["output"]["reason"].as_str().expect("a reason");
    assert!(reason.starts_with("outbound: 307"), "{reason}");

    // A credential the plugin was not granted is refused.
    bind(
        &app,
        a,
        "ticket-routing",
        id,
        "1.0.0",
        json!({"behaviour": "outbound", "url": url, "credential": "bank-key"}),
    )
    .await;
    let decision = decide(&app, a, "ticket-routing", ticket(a, "噪音")).await;
    let reason = decision["output"]["reason"].as_str().expect("a reason");
    assert!(reason.starts_with("outbound: error: Denied"), "{reason}");
}

/// A component that reaches partners through `wasi:http` (what JavaScript's `fetch` or
/// Python's HTTP client compile to) gets exactly what the `outbound` interface gives.
async fn a_wasi_http_client_is_held_to_the_same_allowlist_and_credentials(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.units.dealer_a;
    let (partner, _server) = partner_stand_in().await;
    let id = publish(&app, "hostile", "ticket-routing", "guest-hostile", "1.0.0").await;
    let url = format!("http://{partner}/quotes");
    let route = |config: Value| {
        let app = &app;
        async move {
            bind(app, a, "ticket-routing", id, "1.0.0", config).await;
            let decision = decide(app, a, "ticket-routing", ticket(a, "噪音")).await;
            let reason = decision["output"]["reason"].as_str().map(str::to_owned);
            (reason.expect("a reason"), decision)
        }
    };

    // Not on the allowlist: denied before any connection.
    let (reason, decision) = route(json!({"behaviour": "wasi-http", "url": url})).await;
    assert_eq!(
        reason, "wasi-http: error: ErrorCode::HttpRequestDenied",
        "{decision}"
    );
    assert!(
        decision["effects"]["outbound"][0]["error"].is_string(),
        "{decision}"
    );

    allow_the_partner(&app, id, &partner).await;

    // Allowlisted without a credential: it goes, anonymously.
    let (reason, _) = route(json!({"behaviour": "wasi-http", "url": url})).await;
    assert_eq!(reason, "wasi-http: 200 anonymous");

    // With the handle: the host puts the dealer's secret in, the plugin never sees it.
    let (reason, decision) =
        route(json!({"behaviour": "wasi-http", "url": url, "credential": "insurer-api-key"})).await;
    assert_eq!(reason, "wasi-http: 200 authorized", "{decision}");
    let calls = &decision["effects"]["outbound"];
    assert_eq!(calls[0]["credential"], "insurer-api-key", "{decision}");
    assert_eq!(calls[0]["status"], 200, "{decision}");
    assert_eq!(calls[0]["url"], url, "{decision}");
    let runs = call(app.get(&app.keys.hq_admin, &format!("/plugin-runs?dealer_id={a}"))).await;
    assert!(
        !runs.text.contains(PARTNER_SECRET),
        "the run log leaks the secret"
    );

    // A handle the plugin was not granted is refused.
    let (reason, _) =
        route(json!({"behaviour": "wasi-http", "url": url, "credential": "bank-key"})).await;
    assert_eq!(reason, "wasi-http: error: ErrorCode::HttpRequestDenied");
}

async fn the_store_keeps_state_per_dealer_and_wasi_grants_no_environment(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b) = (app.units.dealer_a, app.units.dealer_b);
    let id = publish(&app, "hostile", "ticket-routing", "guest-hostile", "1.0.0").await;
    bind(
        &app,
        a,
        "ticket-routing",
        id,
        "1.0.0",
        json!({"behaviour": "store"}),
    )
    .await;
    bind(
        &app,
        b,
        "ticket-routing",
        id,
        "1.0.0",
        json!({"behaviour": "store"}),
    )
    .await;
    for expected in ["store: 1", "store: 2", "store: 3"] {
        let decision = decide(&app, a, "ticket-routing", ticket(a, "噪音")).await;
        assert_eq!(decision["output"]["reason"], expected);
    }
    let decision = decide(&app, b, "ticket-routing", ticket(b, "噪音")).await;
    assert_eq!(
        decision["output"]["reason"], "store: 1",
        "dealer B has a store of its own"
    );

    bind(
        &app,
        a,
        "ticket-routing",
        id,
        "1.0.0",
        json!({"behaviour": "env"}),
    )
    .await;
    let decision = decide(&app, a, "ticket-routing", ticket(a, "噪音")).await;
    assert_eq!(decision["output"]["reason"], "env: vars=0 args=0");
}

async fn events_and_notifications_come_back_with_the_decision(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let decision = hostile(&app, "emit", json!({})).await;
    assert_eq!(decision["source"]["kind"], "plugin", "{decision}");
    assert_eq!(decision["effects"]["events"][0]["kind"], "hostile-emitted");
    assert_eq!(decision["effects"]["events"][0]["payload"]["ticket_id"], 1);
    assert_eq!(
        decision["effects"]["notifications"][0]["template"],
        "hostile-emit"
    );
}

/// Several stateless hosts on one PostgreSQL database: a change made through one is used by
/// the others without a restart (PostgreSQL NOTIFY drops their binding caches).
mod replicas {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_version_pinned_through_one_replica_is_used_by_the_other() {
        let app = TestApp::spawn(Backend::Postgres).await;
        let a = app.units.dealer_a;
        let id = publish(
            &app,
            "commission",
            "commission",
            "guest-commission-flat",
            "1.0.0",
        )
        .await;
        upload(&app, id, "guest-commission-gross", "2.0.0").await;
        bind(&app, a, "commission", id, "1.0.0", json!({"percent": 1})).await;
        let other = app.replica().await;
        let on_other = || async {
            let reply = call(
                app.client
                    .post(app.on(&other, &format!("/dealers/{a}/hooks/commission/evaluate")))
                    .bearer_auth(&app.keys.hq_admin)
                    .json(&json!({ "input": sale(a, 10_000_000, 1_000_000) })),
            )
            .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            reply.body
        };
        // The other replica caches the binding as it is now.
        assert_eq!(on_other().await["source"]["version"], "1.0.0");

        bind(&app, a, "commission", id, "2.0.0", json!({})).await;
        let mut seen = Value::Null;
        for _ in 0..50 {
            seen = on_other().await;
            if seen["source"]["version"] == "2.0.0" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(seen["source"]["version"], "2.0.0", "{seen}");
        assert_eq!(seen["output"][0]["amount"], 50_000);

        // A kill switch thrown on one replica stops the plugin on the other.
        let on = call(
            app.client
                .put(format!("{}/plugins/{id}/kill-switch", app.base))
                .bearer_auth(&app.keys.hq_admin)
                .json(&json!({"killed": true, "reason": "incident"})),
        )
        .await;
        assert_eq!(on.status, 200, "{}", on.text);
        for _ in 0..50 {
            seen = on_other().await;
            if seen["source"]["reason"] == "plugin_killed" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(seen["source"]["reason"], "plugin_killed", "{seen}");
    }
}
