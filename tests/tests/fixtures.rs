//! Every first-party plugin, and the partner example that needs no partner, run against its
//! `fixtures/*.json` through the plugin author's harness (`dealer_plugin::harness`): the same
//! runtime, limits and checks as the host, with no database.

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
