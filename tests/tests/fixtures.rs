//! Every first-party plugin, and the partner example that needs no partner, run against its
//! `fixtures/*.json` through the plugin author's harness (`dealer_plugin::harness`): the same
//! runtime, limits and checks as the host, with no database. And each first-party plugin's
//! configuration schema checked by the host's own schema code.

use std::path::Path;

use dealer_plugin::harness::{Verdict, fixtures, run_fixture};
use dealer_tests::guests::wasm;

/// (crate, folder) of each plugin with fixtures.
const WITH_FIXTURES: [(&str, &str); 6] = [
    ("plugin-approval", "plugins/approval"),
    ("plugin-commission", "plugins/commission"),
    ("plugin-loyalty", "plugins/loyalty"),
    ("plugin-reminders", "plugins/reminders"),
    ("plugin-ticket-routing", "plugins/ticket-routing"),
    ("example-ev-charging", "examples/ev-charging"),
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
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Each first-party plugin's `config.schema.json` is one the host accepts, names exactly the
/// settings of the plugin's `Config`, and admits its defaults: checked with the host's own
/// schema code, so the plugins and the host cannot drift apart.
#[test]
fn every_schema_is_accepted_by_the_host_and_admits_the_plugins_defaults() {
    use dealer_host::plugins::config_schema;
    use serde_json::Value;

    let defaults: [(&str, Value); 5] = [
        ("approval", to_json(plugin_approval::Config::default())),
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
