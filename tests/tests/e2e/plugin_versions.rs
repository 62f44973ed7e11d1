//! Plugin versions take bounded room: the runtime keeps only as many compiled components
//! loaded as its memory budget holds (a dropped one is mapped again from the artifact cache at
//! its next call), and each owner of plugins has a quota of versions and bytes, freed by
//! deleting a version no binding needs.

use dealer_host::plugins::hooks::{HookSpec, TicketRoutingHook};
use dealer_host::plugins::host_api::{CallContext, Mode};
use dealer_host::plugins::runtime::{Limits, Runtime};
use dealer_plugin_runtime::{Grants, Outcome};
use dealer_tests::guests::{wasm_bytes, with_custom_section};
use dealer_tests::{Backend, TestApp, call, on_both_backends, scratch_dir};
use serde_json::{Value, json};

fn route(runtime: &Runtime, sha256: &str) -> Outcome {
    let loaded = runtime
        .load(sha256, None)
        .expect("a readable cache")
        .expect("in memory or in the artifact cache");
    let input: <TicketRoutingHook as HookSpec>::Input = serde_json::from_value(json!({
        "ticket_id": 1, "dealer_id": 1, "channel": "hotline", "category": "complaint",
        "subject": "刹车异响", "description": "客户来电", "customer_id": 1,
        "customer_tier": null, "customer_tags": [], "vehicle_id": null,
        "opened_at": 1_763_900_000_000_i64,
    }))
    .expect("a ticket");
    let ctx = CallContext {
        dealer_id: 1,
        plugin_id: 1,
        plugin_name: "routing".to_owned(),
        version: "1.0.0".to_owned(),
        config: json!({}),
        grants: Grants::default(),
        now_ms: 1_763_900_000_000,
        mode: Mode::Live,
        private_dir: None,
    };
    runtime
        .invoke::<TicketRoutingHook>(&loaded, ctx, None, &input)
        .outcome
}

#[test]
fn loaded_versions_stay_within_the_memory_budget_and_a_dropped_one_still_runs() {
    let cache = scratch_dir("loaded-budget");
    let original = wasm_bytes("guest-routing-keywords");
    let one = {
        let runtime = Runtime::new(Some(&cache.path), Limits::default()).expect("a runtime");
        let sha = runtime
            .inspect(&with_custom_section(&original, "version-0", 0))
            .expect("a valid component")
            .info
            .sha256
            .clone();
        route(&runtime, &sha);
        runtime.loaded_usage().1
    };
    assert!(one > 0, "a loaded component costs its compiled image");
    // Room for three versions and a half.
    let budget = one * 7 / 2;
    let runtime = Runtime::new(Some(&cache.path), Limits::default())
        .expect("a runtime")
        .with_loaded_budget(budget);

    // Uploads are validated and cached on disk, not kept loaded.
    let mut hashes = Vec::new();
    for n in 0..20 {
        let loaded = runtime
            .inspect(&with_custom_section(&original, &format!("version-{n}"), 0))
            .expect("a valid component");
        hashes.push(loaded.info.sha256.clone());
    }
    assert_eq!(
        runtime.loaded_usage(),
        (0, 0),
        "validating keeps nothing loaded"
    );

    // Each call loads its version; the loaded set never exceeds the budget.
    for sha in &hashes {
        assert_eq!(route(&runtime, sha), Outcome::Ok);
        let (count, bytes) = runtime.loaded_usage();
        assert!(bytes <= budget, "{bytes} bytes loaded, budget {budget}");
        assert!(count <= 3, "{count} components loaded");
    }
    assert_eq!(runtime.loaded_usage().0, 3, "the budget is used");

    // The first version was dropped long ago: it is mapped again from the cache and runs.
    assert_eq!(route(&runtime, &hashes[0]), Outcome::Ok);
    // A call in flight keeps its component even when the set drops it.
    let held = runtime
        .load(&hashes[1], None)
        .expect("readable")
        .expect("cached");
    for sha in &hashes[2..6] {
        route(&runtime, sha);
    }
    assert_eq!(held.info.sha256, hashes[1]);
    assert!(runtime.loaded_usage().1 <= budget);
}

on_both_backends!(
    a_version_no_binding_needs_is_deleted_and_a_needed_one_is_not,
    an_owner_over_its_version_quota_is_refused_until_it_deletes_one,
    large_components_fit_until_the_owners_byte_quota,
    a_component_importing_what_the_host_lacks_is_refused_before_it_is_compiled,
    the_evaluate_api_and_the_run_log_speak_the_wit_names,
);

const WASM: &str = "application/wasm";

async fn new_plugin(app: &TestApp, body: Value) -> i64 {
    app.create(&app.keys.hq_admin, "/plugins", &body).await["id"]
        .as_i64()
        .expect("a plugin id")
}

async fn upload(app: &TestApp, plugin: i64, bytes: Vec<u8>, version: &str) -> dealer_tests::Reply {
    call(
        app.client
            .post(format!(
                "{}/plugins/{plugin}/versions?version={version}",
                app.base
            ))
            .bearer_auth(&app.keys.hq_admin)
            .header("content-type", WASM)
            .body(bytes),
    )
    .await
}

async fn uploaded(app: &TestApp, plugin: i64, bytes: Vec<u8>, version: &str) {
    let reply = upload(app, plugin, bytes, version).await;
    assert_eq!(reply.status, 201, "upload answered {}", reply.text);
}

async fn delete(app: &TestApp, key: &str, plugin: i64, version: &str) -> dealer_tests::Reply {
    call(app.delete(key, &format!("/plugins/{plugin}/versions/{version}"))).await
}

async fn versions(app: &TestApp, plugin: i64) -> Vec<String> {
    app.read(&app.keys.hq_admin, &format!("/plugins/{plugin}"))
        .await["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["version"].as_str().expect("a number").to_owned())
        .collect()
}

async fn artifacts(app: &TestApp) -> i64 {
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM plugin_artifacts")
        .fetch_one(app.db.pool())
        .await
        .expect("count artifacts");
    count
}

async fn a_version_no_binding_needs_is_deleted_and_a_needed_one_is_not(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.units.dealer_a;
    let routing = wasm_bytes("guest-routing-keywords");
    let id = new_plugin(&app, json!({"name": "routing", "hook": "ticket-routing"})).await;
    uploaded(
        &app,
        id,
        with_custom_section(&routing, "version-1", 0),
        "1.0.0",
    )
    .await;
    uploaded(
        &app,
        id,
        with_custom_section(&routing, "version-2", 0),
        "1.1.0",
    )
    .await;
    uploaded(
        &app,
        id,
        with_custom_section(&routing, "version-3", 0),
        "2.0.0",
    )
    .await;
    // 2.1.0 shares the component of 1.0.0.
    uploaded(
        &app,
        id,
        with_custom_section(&routing, "version-1", 0),
        "2.1.0",
    )
    .await;
    assert_eq!(artifacts(&app).await, 3);
    for version in ["1.0.0", "1.1.0"] {
        let reply = call(app.put(
            &app.keys.a_admin,
            &format!("/dealers/{a}/plugins/ticket-routing"),
            &json!({"plugin_id": id, "pinned_version": version}),
        ))
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }

    // 1.1.0 runs for dealer A, and 1.0.0 is what its rollback returns to.
    for (version, why) in [("1.1.0", "pinned by dealer"), ("1.0.0", "rollback")] {
        let reply = delete(&app, &app.keys.hq_admin, id, version).await;
        assert_eq!(reply.status, 409, "{version}: {}", reply.text);
        assert!(reply.has_code("version_in_use"), "{}", reply.text);
        let detail = reply.body["detail"].as_str().expect("a detail");
        assert!(
            detail.contains(why) && detail.contains(&a.to_string()),
            "{detail}"
        );
    }
    // A dealer does not delete the catalogue's versions.
    let reply = delete(&app, &app.keys.a_admin, id, "2.0.0").await;
    assert_eq!(reply.status, 403, "{}", reply.text);

    // A version no binding needs goes, with its component.
    let reply = delete(&app, &app.keys.hq_admin, id, "2.0.0").await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    assert_eq!(versions(&app, id).await, ["2.1.0", "1.1.0", "1.0.0"]);
    assert_eq!(artifacts(&app).await, 2);
    let reply = delete(&app, &app.keys.hq_admin, id, "2.0.0").await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    // A component another version shares stays.
    let reply = delete(&app, &app.keys.hq_admin, id, "2.1.0").await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    assert_eq!(artifacts(&app).await, 2);

    let audit = app
        .read(&app.keys.hq_admin, "/audit?action=delete_version")
        .await;
    let entries = audit["items"].as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{audit}");
    assert_eq!(entries[0]["entity_id"], id);
    assert_eq!(entries[0]["detail"]["version"], "2.1.0");
    assert_eq!(entries[0]["detail"]["artifact_deleted"], false);
    assert_eq!(entries[1]["detail"]["artifact_deleted"], true);

    // Dealer A's plugin still runs, and rolls back to 1.0.0.
    let reply = call(app.post(
        &app.keys.a_admin,
        &format!("/dealers/{a}/plugins/ticket-routing/rollback"),
        &json!({}),
    ))
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["pinned_version"], "1.0.0");
}

async fn an_owner_over_its_version_quota_is_refused_until_it_deletes_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let routing = wasm_bytes("guest-routing-keywords");
    // Dealer A's own plugin; the same component under 50 numbers is 50 versions.
    let id = new_plugin(
        &app,
        json!({"name": "own", "hook": "ticket-routing", "owner_org_id": app.units.dealer_a}),
    )
    .await;
    for n in 0..50 {
        uploaded(&app, id, routing.clone(), &format!("1.0.{n}")).await;
    }
    let reply = upload(
        &app,
        id,
        with_custom_section(&routing, "version-9", 0),
        "2.0.0",
    )
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(reply.has_code("plugin_quota"), "{}", reply.text);
    let detail = reply.body["detail"].as_str().expect("a detail");
    assert!(
        detail.contains("50 versions") && detail.contains("delete versions"),
        "{detail}"
    );
    assert_eq!(versions(&app, id).await.len(), 50, "nothing was stored");
    assert_eq!(artifacts(&app).await, 1);

    // Another owner (HQ's catalogue) has its own quota.
    let catalogue = new_plugin(&app, json!({"name": "routing", "hook": "ticket-routing"})).await;
    uploaded(&app, catalogue, routing.clone(), "1.0.0").await;

    // Deleting a version makes room for one.
    let reply = delete(&app, &app.keys.a_admin, id, "1.0.7").await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    uploaded(
        &app,
        id,
        with_custom_section(&routing, "version-9", 0),
        "2.0.0",
    )
    .await;

    // Two uploads racing for the last room: one gets it, the other is refused.
    let reply = delete(&app, &app.keys.a_admin, id, "1.0.8").await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    let (first, second) = tokio::join!(
        upload(&app, id, routing.clone(), "3.0.0"),
        upload(&app, id, routing.clone(), "3.0.1"),
    );
    let mut statuses = [first.status, second.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 422], "{} / {}", first.text, second.text);
    assert_eq!(versions(&app, id).await.len(), 50);
}

async fn large_components_fit_until_the_owners_byte_quota(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let routing = wasm_bytes("guest-routing-keywords");
    let b = app.units.dealer_b;
    let id = new_plugin(
        &app,
        json!({"name": "python", "hook": "ticket-routing", "owner_org_id": b}),
    )
    .await;
    // Six components of 38 MiB each (over twice a Python interpreter's 18.5 MB) take 228 MiB.
    let size = 38 << 20;
    for n in 0..6 {
        uploaded(
            &app,
            id,
            with_custom_section(&routing, &format!("padding-{n}"), size),
            &format!("1.{n}.0"),
        )
        .await;
    }
    // A seventh would take the dealer past its 256 MiB.
    let reply = upload(
        &app,
        id,
        with_custom_section(&routing, "padding-6", size),
        "1.6.0",
    )
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(reply.has_code("plugin_quota"), "{}", reply.text);
    let detail = reply.body["detail"].as_str().expect("a detail");
    assert!(detail.contains("256 MiB"), "{detail}");
    assert_eq!(versions(&app, id).await.len(), 6, "nothing was stored");

    // The dealer's bound version runs.
    let reply = call(app.put(
        &app.keys.hq_admin,
        &format!("/dealers/{b}/plugins/ticket-routing"),
        &json!({"plugin_id": id, "pinned_version": "1.5.0"}),
    ))
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let decision = call(app.post(
        &app.keys.hq_admin,
        &format!("/dealers/{b}/hooks/ticket-routing/evaluate"),
        &json!({"input": {
            "ticket_id": 1, "dealer_id": b, "channel": "hotline", "category": "complaint",
            "subject": "刹车异响", "description": "客户来电", "customer_id": 1,
            "customer_tier": null, "customer_tags": [], "vehicle_id": null,
            "opened_at": 1_763_900_000_000_i64,
        }}),
    ))
    .await;
    assert_eq!(decision.status, 200, "{}", decision.text);
    assert_eq!(
        decision.body["source"]["version"], "1.5.0",
        "{}",
        decision.text
    );
}

/// A component importing `wasi:keyvalue/store`, which the host does not provide, and
/// `wasi:io/streams`, which it does, carrying a core module that does not validate: compiling it would fail, so
/// being told about the import shows it was refused before compiling.
fn importing_wasi_keyvalue() -> Vec<u8> {
    use wasm_encoder::{
        CodeSection, Component, ComponentImportSection, ComponentTypeRef, ComponentTypeSection,
        Function, FunctionSection, InstanceType, Instruction, Module, ModuleSection, TypeSection,
        ValType,
    };
    let mut types = TypeSection::new();
    types.ty().function([], [ValType::I32]);
    let mut functions = FunctionSection::new();
    functions.function(0);
    let mut body = Function::new([]);
    // Returns nothing where an i32 is due.
    body.instruction(&Instruction::End);
    let mut code = CodeSection::new();
    code.function(&body);
    let mut module = Module::new();
    module.section(&types).section(&functions).section(&code);

    let mut instance_types = ComponentTypeSection::new();
    instance_types.instance(&InstanceType::new());
    let mut imports = ComponentImportSection::new();
    imports
        .import("wasi:io/streams@0.2.0", ComponentTypeRef::Instance(0))
        .import("wasi:keyvalue/store@0.2.0", ComponentTypeRef::Instance(0));
    let mut component = Component::new();
    component
        .section(&ModuleSection(&module))
        .section(&instance_types)
        .section(&imports);
    component.finish()
}

async fn a_component_importing_what_the_host_lacks_is_refused_before_it_is_compiled(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let id = new_plugin(&app, json!({"name": "js-approval", "hook": "approval"})).await;
    let reply = upload(&app, id, importing_wasi_keyvalue(), "1.0.0").await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(reply.has_code("unsatisfied_imports"), "{}", reply.text);
    let message = reply.body["errors"][0]["message"]
        .as_str()
        .expect("a message");
    assert!(message.contains("wasi:keyvalue/store@0.2.0"), "{message}");
    assert!(!message.contains("wasi:io/streams"), "{message}");
    assert!(versions(&app, id).await.is_empty(), "nothing was stored");
}

fn approval_request(dealer: i64, kind: &str, amount: i64) -> Value {
    json!({
        "kind": kind, "dealer_id": dealer,
        "requested_by": {"id": 7, "role": "sales"},
        "customer_id": 1, "order_id": 1, "repair_order_id": null,
        "amount": amount, "base_amount": 25_000_000,
        "description": "红旗 H5 报价", "attributes": [],
    })
}

async fn the_evaluate_api_and_the_run_log_speak_the_wit_names(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.units.dealer_a;
    let evaluate = async |input: Value| {
        let reply = call(app.post(
            &app.keys.hq_admin,
            &format!("/dealers/{a}/hooks/approval/evaluate"),
            &json!({ "input": input }),
        ))
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.body
    };
    // A 2% discount passes, a 5% one needs the sales manager: cases as the WIT names them.
    let small = evaluate(approval_request(a, "discount", 500_000)).await;
    assert!(small["output"]["auto-approve"].is_string(), "{small}");
    let large = evaluate(approval_request(a, "discount", 1_250_000)).await;
    assert_eq!(
        large["output"]["steps"][0]["role"], "sales-manager",
        "{large}"
    );
    // The Rust spelling of earlier versions is still read.
    let old = evaluate(approval_request(a, "Discount", 500_000)).await;
    assert_eq!(old["output"], small["output"]);
    let reply = call(app.post(
        &app.keys.hq_admin,
        &format!("/dealers/{a}/hooks/approval/evaluate"),
        &json!({ "input": approval_request(a, "finance_plan", 1) }),
    ))
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);

    // The run log records input and output in the same spelling.
    let runs = app
        .read(&app.keys.hq_admin, &format!("/plugin-runs?dealer_id={a}"))
        .await;
    let newest = &runs["items"][0];
    assert_eq!(newest["input"]["kind"], "discount", "{newest}");
    assert!(newest["output"]["auto-approve"].is_string(), "{newest}");
}
