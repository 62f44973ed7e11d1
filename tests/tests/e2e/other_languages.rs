//! The WIT contract is language-neutral: the approval plugins of `examples/js-approval`,
//! written in JavaScript and built with the Bytecode Alliance's JavaScript toolchain from npm
//! (jco and ComponentizeJS), and of `examples/py-approval`, written in Python and built with
//! componentize-py from PyPI with its default settings, are published and run through the real
//! host like any Rust plugin.
//!
//! Their fixtures pass in the plugin author's harness too, as a Rust plugin's do.
//!
//! Each component is built once per test process by its example's `build.sh`: the JavaScript
//! one needs `node` (>= 20) and `npm`, the Python one `python3` with `venv`; without them the
//! tests fail, they never skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use dealer_plugin::harness::{Harness, Verdict, fixtures};
use dealer_tests::{Backend, TestApp, call, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    a_javascript_plugin_decides_approvals_through_the_host,
    a_python_plugin_decides_approvals_through_the_host,
);

/// An example plugin in another language: its folder under `examples/`, which is also its
/// name in the registry and the prefix of its log lines, and what its build needs.
struct Example {
    name: &'static str,
    needs: &'static str,
    built: OnceLock<Vec<u8>>,
}

static JAVASCRIPT: Example = Example {
    name: "js-approval",
    needs: "node >= 20 and npm with access to the npm registry",
    built: OnceLock::new(),
};

static PYTHON: Example = Example {
    name: "py-approval",
    needs: "python3 with the venv module and access to PyPI",
    built: OnceLock::new(),
};

impl Example {
    /// `examples/<name>`.
    fn dir(&self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the tests crate is inside the workspace")
            .join("examples")
            .join(self.name)
    }

    /// `examples/<name>/approval.wasm`, built by the example's own build script once per
    /// process (the script does nothing when the component is newer than its sources).
    fn component(&self) -> &[u8] {
        self.built.get_or_init(|| {
            let dir = self.dir();
            let started = Instant::now();
            let output = Command::new("bash")
                .arg(dir.join("build.sh"))
                .current_dir(&dir)
                .output()
                .unwrap_or_else(|error| panic!("running examples/{}/build.sh: {error}", self.name));
            assert!(
                output.status.success(),
                "examples/{}/build.sh failed ({}); it needs {}.\nstdout:\n{}\nstderr:\n{}",
                self.name,
                output.status,
                self.needs,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            let path = dir.join("approval.wasm");
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
            eprintln!(
                "{}: build.sh took {:.1?}; the component is {} bytes",
                self.name,
                started.elapsed(),
                bytes.len()
            );
            bytes
        })
    }

    fn passes_its_fixtures_in_the_harness(&self) {
        self.component();
        let dir = self.dir();
        let harness = Harness::new(&dir.join("approval.wasm")).expect("the component loads");
        let found = fixtures(&dir.join("fixtures")).expect("the example's fixtures");
        assert!(found.len() >= 3, "{found:?}");
        for fixture in found {
            let result = harness.run(&fixture).expect("the harness runs");
            assert_eq!(result.verdict, Verdict::Ok, "{}", fixture.display());
        }
    }
}

#[test]
fn the_javascript_plugin_passes_its_fixtures_in_the_harness() {
    JAVASCRIPT.passes_its_fixtures_in_the_harness();
}

#[test]
fn the_python_plugin_passes_its_fixtures_in_the_harness() {
    PYTHON.passes_its_fixtures_in_the_harness();
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
    decides_approvals_through_the_host(&JAVASCRIPT, backend).await;
}

async fn a_python_plugin_decides_approvals_through_the_host(backend: Backend) {
    decides_approvals_through_the_host(&PYTHON, backend).await;
}

async fn decides_approvals_through_the_host(example: &Example, backend: Backend) {
    let bytes = example.component().to_vec();
    let app = TestApp::spawn(backend).await;
    let a = app.units.dealer_a;

    let plugin = app
        .create(
            &app.keys.hq_admin,
            "/plugins",
            &json!({"name": example.name, "hook": "approval",
                "description": "approval rules written in another language"}),
        )
        .await;
    let id = plugin["id"].as_i64().expect("a plugin id");
    // Uploading validates, compiles and caches it. The runtime is shared by the tests of this
    // process, so the uploads take turns: the first compiles, the second finds it compiled
    // (by its SHA-256) instead of compiling the same 12 to 18 MB component at the same time.
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
        "{} ({backend:?}): upload took {upload_time:.1?}: {}",
        example.name, uploaded.text
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
        eprintln!(
            "{} ({backend:?}): evaluate answered in {elapsed:.1?}",
            example.name
        );
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
        logs.contains(&format!(
            "{}: discount of 4.00% requested by sales",
            example.name
        )),
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
            "{} ({backend:?}): run {}: {} us, {} fuel, {} bytes of memory",
            example.name, run["id"], run["duration_us"], run["fuel_used"], run["memory_bytes"]
        );
        assert!(run["fuel_used"].as_i64().expect("fuel") > 0, "{run}");
    }
}
