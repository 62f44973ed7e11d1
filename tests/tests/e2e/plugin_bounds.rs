//! A hostile plugin cannot take the host or another dealer with it: what a guest hands the
//! host (events, log lines, store values, partner requests, notifications) is sized before it
//! is copied and bounded per run, its record look-ups are capped and audited once per run, and
//! what the host records of a run is capped, while another dealer's plugin keeps deciding.
//! One test runs the real `dealer-host` binary in a process of its own to read its memory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use chrono::Utc;
use dealer_host::plugins::Hook;
use dealer_host::plugins::runs::{self, MAX_RECORDED_BYTES, NewRun, Outcome, Retention, Source};
use dealer_tests::guests::{binary, wasm_bytes};
use dealer_tests::{Backend, TestApp, call, on_both_backends, scratch_dir};
use serde_json::{Value, json};

use crate::plugin_platform::{bind, decide, failed_outcome, publish, ticket};

on_both_backends!(
    an_event_flood_ends_the_run_before_the_host_parses_it,
    a_log_flood_keeps_short_lines_and_records_a_marker,
    a_store_flood_is_refused_at_the_stores_quota,
    an_outbound_flood_ends_the_run_before_anything_is_sent,
    a_notification_flood_ends_the_run_at_the_budget,
    a_lookup_flood_is_capped_and_audited_once,
    what_a_run_records_is_capped_and_bounded_per_dealer,
);

/// What the host says when a run handed it more than its budget.
const OVER_BUDGET: &str = "the plugin handed the host more than";

/// Binds the hostile plugin for dealer A with `config` and `ok` for dealer B; decides a ticket
/// for A while B decides five, and returns A's decision (B's must all be the plugin's `ok`).
async fn flood(app: &TestApp, config: Value) -> Value {
    let (a, b) = (app.units.dealer_a, app.units.dealer_b);
    let id = publish(app, "hostile", "ticket-routing", "guest-hostile", "1.0.0").await;
    bind(app, a, "ticket-routing", id, "1.0.0", config).await;
    bind(
        app,
        b,
        "ticket-routing",
        id,
        "1.0.0",
        json!({"behaviour": "ok"}),
    )
    .await;
    let flooding = decide(app, a, "ticket-routing", ticket(a, "噪音"));
    let others = async {
        let mut decisions = Vec::new();
        for _ in 0..5 {
            decisions.push(decide(app, b, "ticket-routing", ticket(b, "噪音")).await);
        }
        decisions
    };
    let (flooding, others) = tokio::join!(flooding, others);
    for decision in others {
        assert_eq!(decision["source"]["kind"], "plugin", "{decision}");
        assert_eq!(decision["output"]["reason"], "ok", "{decision}");
    }
    flooding
}

/// Dealer A's newest recorded run, checked to be small: each recorded field within the cap.
async fn newest_run(app: &TestApp) -> Value {
    let runs = app
        .read(
            &app.keys.hq_admin,
            &format!("/plugin-runs?dealer_id={}&limit=1", app.units.dealer_a),
        )
        .await;
    let run = runs["items"][0].clone();
    for field in ["input", "output", "effects", "error"] {
        let stored = run[field].to_string().len();
        assert!(
            stored <= MAX_RECORDED_BYTES + 64,
            "the recorded {field} holds {stored} bytes"
        );
    }
    run
}

async fn an_event_flood_ends_the_run_before_the_host_parses_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // 5 MiB: past the 4 MiB budget, small enough that the old host survived parsing it.
    let decision = flood(&app, json!({"behaviour": "emit-flood", "mib": 5})).await;
    assert_eq!(failed_outcome(&decision), "invalid_output", "{decision}");
    let error = decision["source"]["failed"]["error"]
        .as_str()
        .expect("an error");
    assert!(error.contains(OVER_BUDGET), "{error}");
    assert!(error.contains("an event"), "{error}");
    let run = newest_run(&app).await;
    assert_eq!(run["outcome"], "invalid_output");
    assert_eq!(run["effects"]["events"], json!([]), "{run}");
}

async fn a_log_flood_keeps_short_lines_and_records_a_marker(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let decision = flood(&app, json!({"behaviour": "log-flood"})).await;
    assert_eq!(decision["source"]["kind"], "plugin", "{decision}");
    assert_eq!(decision["output"]["reason"], "log-flood: 190 lines");
    let logs = decision["effects"]["logs"].as_array().expect("the logs");
    assert_eq!(logs.len(), 190);
    assert!(
        logs.iter()
            .all(|l| l["message"].as_str().map(str::len) == Some(2048))
    );
    // 190 lines of 2 KB are more than a run records: the effects are a marker.
    let run = newest_run(&app).await;
    assert_eq!(run["effects"]["truncated"], true, "{run}");
    assert!(run["effects"]["bytes"].as_i64().expect("a size") > 190 * 2048);
    assert_eq!(run["output"]["reason"], "log-flood: 190 lines");
}

async fn a_store_flood_is_refused_at_the_stores_quota(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let decision = flood(&app, json!({"behaviour": "store-flood"})).await;
    assert_eq!(decision["source"]["kind"], "plugin", "{decision}");
    // The store holds 1 MiB: sixteen values of 64 KiB.
    assert_eq!(
        decision["output"]["reason"], "store-flood: 16 stored, 984 refused",
        "{decision}"
    );
    newest_run(&app).await;
    let (bytes,): (i64,) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(OCTET_LENGTH(value)), 0) AS BIGINT) FROM plugin_store \
         WHERE dealer_id = $1",
    )
    .bind(app.units.dealer_a)
    .fetch_one(app.db.pool())
    .await
    .expect("the store's size");
    assert_eq!(bytes, 16 << 16);
}

async fn an_outbound_flood_ends_the_run_before_anything_is_sent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Not on the allowlist: the size is checked first, so nothing is copied to refuse it.
    let decision = flood(
        &app,
        json!({"behaviour": "outbound-flood", "mib": 5, "url": "http://127.0.0.1:9/flood"}),
    )
    .await;
    assert_eq!(failed_outcome(&decision), "invalid_output", "{decision}");
    let error = decision["source"]["failed"]["error"]
        .as_str()
        .expect("an error");
    assert!(error.contains(OVER_BUDGET), "{error}");
    let run = newest_run(&app).await;
    assert_eq!(run["effects"]["outbound"], json!([]), "{run}");
}

async fn a_notification_flood_ends_the_run_at_the_budget(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let decision = flood(&app, json!({"behaviour": "notify-flood"})).await;
    assert_eq!(failed_outcome(&decision), "invalid_output", "{decision}");
    let error = decision["source"]["failed"]["error"]
        .as_str()
        .expect("an error");
    assert!(error.contains(OVER_BUDGET), "{error}");
    assert!(error.contains("a notification"), "{error}");
    let run = newest_run(&app).await;
    // About 66 KB each: the run's notifications were more than a run records.
    assert_eq!(run["effects"]["truncated"], true, "{run}");
}

async fn a_lookup_flood_is_capped_and_audited_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let theirs = app
        .create(
            &app.keys.b_admin,
            "/customers",
            &json!({"name": "李娜", "phones": [{"number": "13912345678"}], "tags": []}),
        )
        .await;
    let decision = flood(
        &app,
        json!({"behaviour": "lookup-flood", "customer_id": theirs["id"]}),
    )
    .await;
    assert_eq!(decision["source"]["kind"], "plugin", "{decision}");
    assert_eq!(
        decision["output"]["reason"], "lookup-flood: NotFound=64 QuotaExceeded=9936",
        "{decision}"
    );
    let audit = app
        .read(
            &app.keys.hq_admin,
            "/audit?action=plugin_lookup&outcome=denied",
        )
        .await;
    let items = audit["items"].as_array().expect("entries");
    assert_eq!(items.len(), 1, "one entry for the run: {audit}");
    assert_eq!(items[0]["entity_id"], theirs["id"]);
    assert_eq!(items[0]["detail"]["count"], 64);
    assert_eq!(items[0]["detail"]["examples"][0]["id"], theirs["id"]);
    assert_eq!(
        items[0]["detail"]["examples"].as_array().map(Vec::len),
        Some(5)
    );
    newest_run(&app).await;
}

fn big_run(dealer_id: i64, started_ms: i64, bytes: usize) -> NewRun {
    NewRun {
        dealer_id,
        plugin_id: None,
        plugin_name: None,
        version: None,
        hook: Hook::Commission,
        started_at: chrono::DateTime::from_timestamp_millis(started_ms).expect("a time"),
        duration_us: 10,
        outcome: Outcome::Ok,
        memory_bytes: 0,
        fuel_used: 0,
        error: Some("e".repeat(bytes)),
        input: json!({ "note": "n".repeat(bytes) }),
        output: Some(json!([])),
        effects: None,
        now_ms: started_ms,
        replay_of: None,
        source: Source::Live,
    }
}

async fn what_a_run_records_is_capped_and_bounded_per_dealer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b) = (app.units.dealer_a, app.units.dealer_b);
    let now = Utc::now().timestamp_millis();
    let mut conn = app.db.pool().acquire().await.expect("a connection");
    // An input and an error larger than a run records.
    let big = runs::record(&mut conn, &big_run(a, now, 100 << 10))
        .await
        .expect("a run");
    let row: (String, String, String) =
        sqlx::query_as("SELECT input, error, input_digest FROM plugin_runs WHERE id = $1")
            .bind(big)
            .fetch_one(&mut *conn)
            .await
            .expect("the run");
    let input: Value = serde_json::from_str(&row.0).expect("JSON");
    assert_eq!(input["truncated"], true, "{input}");
    assert!(input["bytes"].as_i64().expect("a size") > 100 << 10);
    assert!(row.1.len() < MAX_RECORDED_BYTES + 100, "{}", row.1.len());
    assert!(row.1.ends_with("bytes)"), "the error says it was clipped");
    assert_eq!(
        row.2,
        runs::input_digest(&big_run(a, now, 100 << 10).input),
        "the digest is of the whole input"
    );

    // Ten runs of about 10 KB each, and one of another dealer; a budget of 35 000 bytes
    // keeps the payloads of dealer A's three newest.
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            runs::record(&mut conn, &big_run(a, now + 1 + i, 10_000))
                .await
                .expect("a run"),
        );
    }
    runs::record(&mut conn, &big_run(b, now, 10_000))
        .await
        .expect("another dealer's run");
    drop(conn);
    let retention = Retention {
        max_payload_bytes: 35_000,
        ..Retention::default()
    };
    assert_eq!(
        runs::prune(&app.db, &retention, now).await.expect("prune"),
        0,
        "no run is deleted"
    );
    let kept: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT id, CAST(OCTET_LENGTH(input) + COALESCE(OCTET_LENGTH(output), 0) AS BIGINT) \
         FROM plugin_runs WHERE dealer_id = $1 AND input IS NOT NULL ORDER BY id",
    )
    .bind(a)
    .fetch_all(app.db.pool())
    .await
    .expect("the runs holding payloads");
    assert_eq!(
        kept.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        ids[7..],
        "the newest runs keep their payloads"
    );
    assert!(kept.iter().map(|(_, bytes)| bytes).sum::<i64>() <= 35_000);
    let (others,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM plugin_runs WHERE dealer_id = $1 AND input IS NOT NULL",
    )
    .bind(b)
    .fetch_one(app.db.pool())
    .await
    .expect("count");
    assert_eq!(others, 1, "another dealer's budget is its own");
}

/// The `dealer-host` executable, built on the first call in this process.
fn host_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| binary("dealer-host", "dealer-host"))
}

/// The host process this test started; killed (by its handle) when dropped.
struct HostProcess(Child);

impl Drop for HostProcess {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// `VmHWM` (the peak resident set) of process `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("its status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in its status");
    kib << 10
}

/// The old host took ~214 MiB for the log flood and ~900 MiB for an 8 MiB event; bounded
/// now by the guest's own memory and what the host keeps (a few MiB).
const MAX_GROWTH: u64 = 100 << 20;

#[tokio::test(flavor = "multi_thread")]
async fn floods_leave_the_hosts_memory_bounded() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let binary = tokio::task::spawn_blocking(|| host_binary().to_owned())
        .await
        .expect("the build");
    let data = scratch_dir("bounds-host");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let host = HostProcess(
        Command::new(binary)
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", app.db.url())
            .env("DEALER_DATA_DIR", &data.path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dealer-host"),
    );
    let pid = host.0.id();
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let mut up = false;
    for _ in 0..600 {
        if app
            .client
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "dealer-host answers on {base}");

    let a = app.units.dealer_a;
    let key = &app.keys.hq_admin;
    let plugin = call(
        app.client
            .post(format!("{base}/plugins"))
            .bearer_auth(key)
            .json(&json!({"name": "hostile", "hook": "ticket-routing"})),
    )
    .await;
    assert_eq!(plugin.status, 201, "{}", plugin.text);
    let id = plugin.body["id"].as_i64().expect("an id");
    let uploaded = call(
        app.client
            .post(format!("{base}/plugins/{id}/versions?version=1.0.0"))
            .bearer_auth(key)
            .header("content-type", "application/wasm")
            .body(wasm_bytes("guest-hostile")),
    )
    .await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.text);
    let run = |config: Value| {
        let client = app.client.clone();
        let base = base.clone();
        async move {
            let bound = call(
                client
                    .put(format!("{base}/dealers/{a}/plugins/ticket-routing"))
                    .bearer_auth(key)
                    .json(&json!({"plugin_id": id, "pinned_version": "1.0.0",
                        "config": config, "failure_policy": "fallback"})),
            )
            .await;
            assert_eq!(bound.status, 200, "{}", bound.text);
            let decided = call(
                client
                    .post(format!("{base}/dealers/{a}/hooks/ticket-routing/evaluate"))
                    .bearer_auth(key)
                    .json(&json!({"input": ticket(a, "噪音")})),
            )
            .await;
            assert_eq!(decided.status, 200, "{}", decided.text);
            decided.body
        }
    };
    // Compiled, instantiated and recorded once before measuring.
    let warm = run(json!({"behaviour": "ok"})).await;
    assert_eq!(warm["output"]["reason"], "ok", "{warm}");

    let before = peak_rss(pid);
    let logged = run(json!({"behaviour": "log-flood"})).await;
    assert_eq!(
        logged["output"]["reason"], "log-flood: 190 lines",
        "{logged}"
    );
    let after_logs = peak_rss(pid);
    let emitted = run(json!({"behaviour": "emit-flood", "mib": 8})).await;
    assert_eq!(failed_outcome(&emitted), "invalid_output", "{emitted}");
    let after_events = peak_rss(pid);
    eprintln!(
        "dealer-host peak RSS: {} MiB before, {} MiB after the log flood, {} MiB after the \
         event flood",
        before >> 20,
        after_logs >> 20,
        after_events >> 20
    );
    assert!(
        after_logs - before < MAX_GROWTH,
        "the log flood grew the host's peak memory by {} MiB",
        (after_logs - before) >> 20
    );
    assert!(
        after_events - after_logs < MAX_GROWTH,
        "the event flood grew the host's peak memory by {} MiB",
        (after_events - after_logs) >> 20
    );
}
