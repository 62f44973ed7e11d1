//! The WIT contract is language-neutral: the approval plugin of `examples/js-approval`, written
//! in JavaScript and built with the Bytecode Alliance's JavaScript toolchain from npm (jco and
//! ComponentizeJS), is published and run through the real host like any Rust plugin.
//!
//! Its fixtures pass in the plugin author's harness too, as a Rust plugin's do.
//!
//! The component is built once per test process by `examples/js-approval/build.sh`, which
//! needs `node` (>= 20) and `npm`; without them the test fails, it never skips.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use dealer_plugin::harness::{Harness, Verdict, fixtures};
use dealer_tests::{Backend, TestApp, call, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(a_javascript_plugin_decides_approvals_through_the_host);

/// `examples/js-approval/approval.wasm`, built by the example's own build script once per
/// process (the script does nothing when the component is newer than its sources).
fn js_component() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = example_dir();
        let started = Instant::now();
        let output = Command::new("bash")
            .arg(dir.join("build.sh"))
            .current_dir(&dir)
            .output()
            .unwrap_or_else(|error| panic!("running examples/js-approval/build.sh: {error}"));
        assert!(
            output.status.success(),
            "examples/js-approval/build.sh failed ({}); it needs node >= 20 and npm with access \
             to the npm registry.\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let path = dir.join("approval.wasm");
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
        eprintln!(
            "js-approval: build.sh took {:.1?}; the component is {} bytes",
            started.elapsed(),
            bytes.len()
        );
        bytes
    })
}

/// `examples/js-approval`.
fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the workspace")
        .join("examples/js-approval")
}

#[test]
fn the_javascript_plugin_passes_its_fixtures_in_the_harness() {
    js_component();
    let dir = example_dir();
    let harness = Harness::new(&dir.join("approval.wasm")).expect("the component loads");
    let found = fixtures(&dir.join("fixtures")).expect("the example's fixtures");
    assert!(found.len() >= 3, "{found:?}");
    for fixture in found {
        let result = harness.run(&fixture).expect("the harness runs");
        assert_eq!(result.verdict, Verdict::Ok, "{}", fixture.display());
    }
}

fn request(dealer: i64, kind: &str, amount: i64, base_amount: i64) -> Value {
    json!({
        "kind": kind, "dealer_id": dealer,
        "requested_by": {"id": 7, "role": "sales"},
        "customer_id": 1, "order_id": 1, "repair_order_id": null,
        "amount": amount, "base_amount": base_amount,
        "description": "红旗 H5 报价", "attributes": [["channel", "showroom"]],
    })
}

async fn a_javascript_plugin_decides_approvals_through_the_host(backend: Backend) {
    let bytes = js_component().to_vec();
    let app = TestApp::spawn(backend).await;
    let a = app.units.dealer_a;

    let plugin = app
        .create(
            &app.keys.hq_admin,
            "/plugins",
            &json!({"name": "js-approval", "hook": "approval",
                "description": "approval rules written in JavaScript"}),
        )
        .await;
    let id = plugin["id"].as_i64().expect("a plugin id");
    // Uploading validates, compiles and caches it. The runtime is shared by the tests of this
    // process, so the uploads take turns: the first compiles, the second finds it compiled
    // (by its SHA-256) instead of compiling the same 12 MB component at the same time.
    static UPLOADS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let turn = UPLOADS.lock().await;
    let started = Instant::now();
    let uploaded = call(
        app.client
            .post(format!("{}/plugins/{id}/versions?version=1.0.0", app.base))
            .bearer_auth(&app.keys.hq_admin)
            .header("content-type", "application/wasm")
            .body(bytes),
    )
    .await;
    let upload_time = started.elapsed();
    drop(turn);
    assert_eq!(uploaded.status, 201, "upload answered {}", uploaded.text);
    eprintln!(
        "js-approval ({backend:?}): upload took {upload_time:.1?}: {}",
        uploaded.text
    );

    let bound = call(
        app.client
            .put(format!("{}/dealers/{a}/plugins/approval", app.base))
            .bearer_auth(&app.keys.hq_admin)
            .json(
                &json!({"plugin_id": id, "pinned_version": "1.0.0", "config": {},
                "failure_policy": "fail_closed"}),
            ),
    )
    .await;
    assert_eq!(bound.status, 200, "bind answered {}", bound.text);

    // 4% of the base: the plugin approves it (the built-in rule would ask the sales manager,
    // so this also shows the decision is the plugin's).
    let cases = [
        (
            request(a, "discount", 1_000_000, 25_000_000),
            json!({"auto-approve": "a discount of 4.00% is within 5%"}),
        ),
        (
            request(a, "discount", 1_750_000, 25_000_000),
            json!({"steps": [
                {"role": "sales-manager", "reason": "a discount of 7.00% is above 5%"},
            ]}),
        ),
        (
            request(a, "discount", 2_500_001, 25_000_000),
            json!({"steps": [
                {"role": "sales-manager", "reason": "a discount of 10.00% is above 5%"},
                {"role": "general-manager", "reason": "a discount of 10.00% is above 10%"},
            ]}),
        ),
        (
            request(a, "finance-plan", 15_000_000, 25_000_000),
            json!({"steps": [
                {"role": "finance-desk",
                 "reason": "every finance plan is checked by the finance desk"},
            ]}),
        ),
        (
            request(a, "refund", 100_000, 25_000_000),
            json!({"auto-approve": "refund: approved automatically"}),
        ),
    ];
    for (input, expected) in &cases {
        let started = Instant::now();
        let reply = call(app.post(
            &app.keys.hq_admin,
            &format!("/dealers/{a}/hooks/approval/evaluate"),
            &json!({ "input": input }),
        ))
        .await;
        let elapsed = started.elapsed();
        assert_eq!(reply.status, 200, "evaluate answered {}", reply.text);
        let decision = reply.body;
        assert_eq!(decision["source"]["kind"], "plugin", "{decision}");
        assert_eq!(decision["source"]["version"], "1.0.0", "{decision}");
        assert_eq!(decision["output"], *expected, "for {input}: {decision}");
        eprintln!("js-approval ({backend:?}): evaluate answered in {elapsed:.1?}");
    }
    // The one discount case logs through dealer:platform/log.
    let reply = call(app.post(
        &app.keys.hq_admin,
        &format!("/dealers/{a}/hooks/approval/evaluate"),
        &json!({ "input": request(a, "discount", 1_000_000, 25_000_000) }),
    ))
    .await;
    let logs = reply.body["effects"]["logs"].to_string();
    assert!(
        logs.contains("js-approval: discount of 4.00% requested by sales"),
        "{}",
        reply.text
    );

    // A result's `err`: the plugin throws, the run is a plugin error, and fail-closed refuses.
    let reply = call(app.post(
        &app.keys.hq_admin,
        &format!("/dealers/{a}/hooks/approval/evaluate"),
        &json!({ "input": request(a, "discount", 1_000, 0) }),
    ))
    .await;
    assert_ne!(
        reply.status, 200,
        "a plugin error is refused: {}",
        reply.text
    );
    assert!(reply.text.contains("makes no sense"), "{}", reply.text);

    let runs = app
        .read(
            &app.keys.hq_admin,
            &format!("/plugin-runs?dealer_id={a}&limit=50"),
        )
        .await;
    let items = runs["items"].as_array().expect("runs");
    let ok: Vec<&Value> = items.iter().filter(|r| r["outcome"] == "ok").collect();
    assert_eq!(ok.len(), cases.len() + 1, "{runs}");
    assert!(
        items.iter().any(|r| r["outcome"] == "plugin_error"),
        "{runs}"
    );
    for run in &ok {
        eprintln!(
            "js-approval ({backend:?}): run {}: {} us, {} fuel, {} bytes of memory",
            run["id"], run["duration_us"], run["fuel_used"], run["memory_bytes"]
        );
        assert!(run["fuel_used"].as_i64().expect("fuel") > 0, "{run}");
    }
}
