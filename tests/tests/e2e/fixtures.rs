//! Every first-party plugin and every Rust example run against its `fixtures/*.json` through
//! the plugin author's harness (`dealer_plugin::harness`): the same runtime, limits and checks
//! as the host, with no database; the partner examples call a local stand-in of the
//! partner's API that their fixtures declare. And each first-party plugin's configuration
//! schema checked by the host's own schema code.

use std::path::Path;

use dealer_plugin::harness::{Verdict, fixtures, run_fixture};
use dealer_tests::guests::wasm;

/// (crate, folder) of each plugin with fixtures.
const WITH_FIXTURES: [(&str, &str); 9] = [
    ("plugin-approval", "plugins/approval"),
    ("plugin-channel-aliyun-sms", "plugins/channel-aliyun-sms"),
    ("plugin-commission", "plugins/commission"),
    ("plugin-loyalty", "plugins/loyalty"),
    ("plugin-reminders", "plugins/reminders"),
    ("plugin-ticket-routing", "plugins/ticket-routing"),
    ("example-ev-charging", "examples/ev-charging"),
    ("example-insurance", "examples/insurance"),
    (
        "example-maintenance-records",
        "examples/maintenance-records",
    ),
];

#[test]
fn every_fixture_decides_as_expected_in_the_harness() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace");
    let mut failures = Vec::new();
    for (package, folder) in WITH_FIXTURES {
        let component = wasm(package);
        let found = fixtures(&root.join(folder).join("fixtures")).expect("a fixtures folder");
        assert!(!found.is_empty(), "{folder} has fixtures");
        for fixture in found {
            let result = run_fixture(&component, &fixture).expect("the harness runs");
            match result.verdict {
                Verdict::Ok => {}
                Verdict::Differs { expected, actual } => failures.push(format!(
                    "{}: expected {expected}, got {actual}",
                    fixture.display()
                )),
                Verdict::Failed { outcome, error } => failures.push(format!(
                    "{}: {} ({error})",
                    fixture.display(),
                    outcome.as_str()
                )),
                Verdict::Partner { problems } => failures.push(format!(
                    "{}: partner calls: {}",
                    fixture.display(),
                    problems.join("; ")
                )),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A partner call other than the fixture declares fails the fixture, naming the difference,
/// even when the output is right; and so does a declared call the plugin never made.
#[test]
fn a_partner_call_the_fixture_does_not_declare_fails_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace");
    let original = std::fs::read_to_string(root.join("examples/insurance/fixtures/delivered.json"))
        .expect("the insurance fixture");
    let dir = dealer_tests::scratch_dir("partner-fixture");
    let component = wasm("example-insurance");

    let wrong_secret = original.replace("Bearer fixture-secret", "Bearer another-secret");
    let path = dir.path.join("wrong-secret.json");
    std::fs::write(&path, wrong_secret).expect("write the fixture");
    let result = run_fixture(&component, &path).expect("the harness runs");
    let Verdict::Partner { problems } = result.verdict else {
        panic!("a wrong credential is reported: {:?}", result.verdict);
    };
    assert!(problems[0].contains("authorization"), "{problems:?}");

    let wrong_path = original.replace("\"path\": \"/v1/quotes\"", "\"path\": \"/v2/quotes\"");
    let path = dir.path.join("wrong-path.json");
    std::fs::write(&path, wrong_path).expect("write the fixture");
    let result = run_fixture(&component, &path).expect("the harness runs");
    match result.verdict {
        Verdict::Failed { error, .. } => assert!(error.contains("404"), "{error}"),
        other => panic!("an undeclared call is answered 404 and fails the run: {other:?}"),
    }
}

/// Each first-party plugin's `config.schema.json` is one the host accepts, names exactly the
/// settings of the plugin's `Config`, and admits its defaults: checked with the host's own
/// schema code, so the plugins and the host cannot drift apart.
#[test]
fn every_schema_is_accepted_by_the_host_and_admits_the_plugins_defaults() {
    use dealer_host::plugins::config_schema;
    use serde_json::Value;

    let defaults: [(&str, Value); 6] = [
        ("approval", to_json(plugin_approval::Config::default())),
        (
            "channel-aliyun-sms",
            to_json(plugin_channel_aliyun_sms::Config::default()),
        ),
        ("commission", to_json(plugin_commission::Config::default())),
        ("loyalty", to_json(plugin_loyalty::Config::default())),
        ("reminders", to_json(plugin_reminders::Config::default())),
        (
            "ticket-routing",
            to_json(plugin_ticket_routing::Config::default()),
        ),
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace");
    for (name, defaults) in defaults {
        let path = root.join("plugins").join(name).join("config.schema.json");
        let schema: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("the plugin's schema"))
                .expect("JSON");
        config_schema::check_schema(&schema).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        config_schema::check(Some(&schema), &defaults)
            .unwrap_or_else(|e| panic!("{name}'s defaults: {e:?}"));
        let mut settings: Vec<&String> = schema["fields"]
            .as_object()
            .expect("fields")
            .keys()
            .collect();
        let mut keys: Vec<&String> = defaults.as_object().expect("an object").keys().collect();
        settings.sort();
        keys.sort();
        assert_eq!(settings, keys, "{name}: the schema names every setting");
    }
}

fn to_json(config: impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(config).expect("a configuration is JSON")
}
