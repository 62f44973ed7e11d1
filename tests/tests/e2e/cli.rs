//! The CLI end to end: scaffold a commission plugin, build it once, run its fixture, then
//! publish, enable, re-pin and roll it back on a real host, checking the dealer's commission.
//!
//! The `dealer-plugin` binary is built by cargo once per process (`CARGO_BIN_EXE_*` only
//! exists in the tests of the crate that owns a binary); each run is a process of its own,
//! with its own current directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use dealer_plugin::harness::{Verdict, run_fixture};
use dealer_tests::guests::binary;
use dealer_tests::{Backend, TestApp, call, scratch_dir};
use serde_json::{Value, json};

/// The `dealer-plugin` executable, built on the first call in this process.
fn cli_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| binary("dealer-plugin", "dealer-plugin"))
}

/// Runs the CLI with `args` in `dir`; the scaffold builds into this test's `CARGO_TARGET_DIR`
/// when one is set.
fn cli(dir: &Path, args: &[&str]) -> Output {
    let output = Command::new(cli_binary())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the CLI runs");
    eprintln!(
        "$ dealer-plugin {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn new_refuses_an_existing_directory_a_bad_name_and_an_unknown_hook() {
    let parent = scratch_dir("cli-new");
    let parent = parent.path.to_str().unwrap();
    let first = cli(
        Path::new(parent),
        &["new", "two-pct", "--hook", "commission", "--dir", parent],
    );
    assert!(first.status.success());
    let again = cli(
        Path::new(parent),
        &["new", "two-pct", "--hook", "commission", "--dir", parent],
    );
    assert!(!again.status.success());
    assert!(stderr(&again).contains("already exists: choose another name"));
    let bad = cli(
        Path::new(parent),
        &["new", "Two_Pct", "--hook", "commission", "--dir", parent],
    );
    assert!(stderr(&bad).contains("is not a plugin name"));
    let unknown = cli(
        Path::new(parent),
        &["new", "x-y", "--hook", "bonus", "--dir", parent],
    );
    assert!(stderr(&unknown).contains("pass --hook with one of commission, approval"));
}

/// The commission a dealer's evaluation of `sale` pays, as (staff id, amount, reason).
async fn evaluated(app: &TestApp, sale: &Value) -> Vec<(i64, i64, String)> {
    let reply = call(app.post(
        &app.keys.a_admin,
        &format!("/dealers/{}/hooks/commission/evaluate", app.units.dealer_a),
        &json!({"input": sale}),
    ))
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| {
            (
                line["staff_id"].as_i64().unwrap(),
                line["amount"].as_i64().unwrap(),
                line["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scaffolded_plugin_builds_tests_and_changes_the_dealers_commission() {
    let parent = scratch_dir("cli-flow");
    let created = cli(
        &parent.path,
        &[
            "new",
            "pct-commission",
            "--hook",
            "commission",
            "--dir",
            parent.path.to_str().unwrap(),
        ],
    );
    assert!(created.status.success());
    let dir = parent.path.join("pct-commission");

    let built = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || cli(&dir, &["build"])
    })
    .await
    .unwrap();
    assert!(built.status.success(), "{}", stderr(&built));
    let printed = stdout(&built);
    assert!(printed.contains("hook commission, WIT 0.2.0"), "{printed}");
    let wasm = Path::new(printed.lines().next().unwrap()).to_path_buf();
    assert!(wasm.ends_with("wasm32-wasip2/release/pct_commission.wasm"));

    let tested = cli(&dir, &["test"]);
    assert!(tested.status.success());
    assert!(stdout(&tested).starts_with("ok       example.json (fuel "));

    let fixture = dir.join("fixtures/example.json");
    let original = std::fs::read_to_string(&fixture).unwrap();
    let mut changed: Value = serde_json::from_str(&original).unwrap();
    changed["expect"][0]["amount"] = json!(1);
    std::fs::write(&fixture, changed.to_string()).unwrap();
    let differs = cli(&dir, &["test"]);
    assert!(!differs.status.success());
    assert!(stdout(&differs).starts_with("differs  example.json"));
    match run_fixture(&wasm, &fixture).unwrap().verdict {
        Verdict::Differs { expected, actual } => {
            assert_eq!(expected, changed["expect"]);
            assert_eq!(actual[0]["amount"], 199_800);
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(&fixture, &original).unwrap();
    assert!(run_fixture(&wasm, &fixture).unwrap().passed());

    let app = TestApp::spawn(Backend::Sqlite).await;
    let dealer = app.units.dealer_a.to_string();
    let server = [
        "--host",
        app.base.as_str(),
        "--key",
        app.keys.a_admin.as_str(),
    ];
    let run = |args: Vec<&str>| {
        let dir = dir.clone();
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        tokio::task::spawn_blocking(move || {
            cli(&dir, &args.iter().map(String::as_str).collect::<Vec<_>>())
        })
    };
    let mut sale: Value = serde_json::from_str::<Value>(&original).unwrap()["input"].clone();
    sale["dealer_id"] = json!(app.units.dealer_a);
    let built_in = evaluated(&app, &sale).await;
    assert!(
        built_in
            .iter()
            .all(|(_, _, reason)| reason.starts_with("built-in"))
    );

    let pushed = run([&["push"][..], &server].concat()).await.unwrap();
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    let plugin_id: i64 = stdout(&pushed).lines().last().unwrap().parse().unwrap();
    let again = run([&["push", "--version", "0.2.0"][..], &server].concat())
        .await
        .unwrap();
    assert!(again.status.success());
    assert_eq!(
        stdout(&again).lines().last().unwrap(),
        plugin_id.to_string()
    );
    let duplicate = run([&["push"][..], &server].concat()).await.unwrap();
    assert!(!duplicate.status.success());
    assert!(stderr(&duplicate).contains("uploading version 0.1.0: the host answered 409"));

    let enabled = run([
        &[
            "enable",
            "--dealer",
            &dealer,
            "--name",
            "pct-commission",
            "--config",
            r#"{"percent": 2}"#,
        ][..],
        &server,
    ]
    .concat())
    .await
    .unwrap();
    assert!(enabled.status.success());
    assert!(stdout(&enabled).contains("version 0.1.0 (previous none)"));
    assert_eq!(
        evaluated(&app, &sale).await,
        vec![
            (7, 399_600, "2% of the final price".to_owned()),
            (8, 399_600, "2% of the final price".to_owned())
        ]
    );
    let refused = run([
        &[
            "enable",
            "--dealer",
            &dealer,
            "--name",
            "pct-commission",
            "--config",
            r#"{"percent": 50}"#,
        ][..],
        &server,
    ]
    .concat())
    .await
    .unwrap();
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("percent"), "{}", stderr(&refused));

    let pinned = run([
        &[
            "pin",
            "--dealer",
            &dealer,
            "--hook",
            "commission",
            "--version",
            "0.2.0",
        ][..],
        &server,
    ]
    .concat())
    .await
    .unwrap();
    assert!(pinned.status.success());
    assert!(stdout(&pinned).contains("version 0.2.0 (previous 0.1.0)"));
    let rolled = run([
        &["rollback", "--dealer", &dealer, "--hook", "commission"][..],
        &server,
    ]
    .concat())
    .await
    .unwrap();
    assert!(rolled.status.success());
    assert!(stdout(&rolled).contains("version 0.1.0 (previous 0.2.0)"));
    assert_eq!(evaluated(&app, &sale).await[0].1, 399_600);
}
