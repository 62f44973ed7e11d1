//! A hostile plugin cannot take the host or another dealer with it: the deadline bounds wall
//! time, sleeping and polling included; a dealer runs only its share of calls at once and the
//! calls beyond it take the failure policy at once; a kill switch stops the calls already
//! running.

use std::time::Duration;

use dealer_plugin_runtime::runtime::Limits;
use dealer_tests::{Backend, Replica, TestApp, call, on_both_backends};
use serde_json::{Value, json};

use super::plugin_platform::{bind_with, failed_outcome, publish, ticket};

on_both_backends!(
    a_sleeping_plugin_ends_at_its_deadline_while_other_dealers_are_served,
    a_polling_plugin_ends_at_its_deadline_while_other_dealers_are_served,
    calls_beyond_a_dealers_slots_take_the_failure_policy_and_other_dealers_are_served,
    a_replay_waits_for_the_dealers_slots_instead_of_failing_its_steps,
    a_kill_switch_stops_a_call_already_running,
);

/// What a sleeper asks for, far beyond the 1 s deadline: before the deadline bounded WASI
/// waits, its runs took this long.
const ASKED_MS: u64 = 15_000;

/// The hostile plugin, bound for dealer A with `behaviour` (and `extra` configuration) and for
/// dealer B as `ok`, both falling back to the built-in route.
async fn hostile_for_a_ok_for_b(app: &TestApp, behaviour: &str, extra: Value) -> i64 {
    let id = publish(app, "hostile", "ticket-routing", "guest-hostile", "1.0.0").await;
    let mut config = json!({ "behaviour": behaviour });
    config
        .as_object_mut()
        .expect("an object")
        .extend(extra.as_object().cloned().unwrap_or_default());
    let (a, b) = (app.units.dealer_a, app.units.dealer_b);
    bind_with(app, a, "ticket-routing", id, "1.0.0", config, "fallback").await;
    let ok = json!({"behaviour": "ok"});
    bind_with(app, b, "ticket-routing", id, "1.0.0", ok, "fallback").await;
    id
}

/// Evaluates a ticket for `dealer` on the host at `base`, expecting a 200.
async fn route(app: &TestApp, base: &str, dealer: i64) -> Value {
    spawn_route(app, base, dealer)
        .await
        .expect("the evaluation does not panic")
}

/// [`route`] as a task of its own.
fn spawn_route(app: &TestApp, base: &str, dealer: i64) -> tokio::task::JoinHandle<Value> {
    let request = app
        .client
        .post(format!(
            "{base}/dealers/{dealer}/hooks/ticket-routing/evaluate"
        ))
        .bearer_auth(&app.keys.hq_admin)
        .json(&json!({ "input": ticket(dealer, "噪音") }));
    tokio::spawn(async move {
        let reply = call(request).await;
        assert_eq!(reply.status, 200, "evaluate answered {}", reply.text);
        reply.body
    })
}

/// Dealer B's decisions, `n` in a row, each by its `ok` plugin.
async fn b_is_served(app: &TestApp, n: usize) {
    for _ in 0..n {
        let decision = route(app, &app.base, app.units.dealer_b).await;
        assert_eq!(decision["source"]["kind"], "plugin", "{decision}");
        assert_eq!(decision["output"]["reason"], "ok", "{decision}");
    }
}

/// Dealer A's recorded plugin runs.
async fn a_runs(app: &TestApp) -> Vec<Value> {
    let runs = app
        .read(
            &app.keys.hq_admin,
            &format!("/plugin-runs?dealer_id={}&limit=200", app.units.dealer_a),
        )
        .await;
    runs["items"]
        .as_array()
        .expect("runs")
        .iter()
        .filter(|run| !run["plugin_id"].is_null())
        .cloned()
        .collect()
}

/// A plugin that waits through WASI for `ASKED_MS` ends `timeout` at its deadline, not when
/// its wait is over, while dealer B's calls are decided by B's plugin.
async fn waits_past_its_deadline(backend: Backend, behaviour: &str) {
    let app = TestApp::spawn(backend).await;
    hostile_for_a_ok_for_b(&app, behaviour, json!({ "ms": ASKED_MS })).await;
    let (waiting, ()) = tokio::join!(
        route(&app, &app.base, app.units.dealer_a),
        b_is_served(&app, 5)
    );
    assert_eq!(failed_outcome(&waiting), "timeout", "{waiting}");
    assert_eq!(waiting["output"]["team"], "service", "the built-in route");
    let runs = a_runs(&app).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["outcome"], "timeout");
    let error = runs[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("deadline of 1000 ms"), "{error}");
    // Stopped at its 1 s deadline, not after the 15 s it asked for (a third of it is a bound
    // no loaded machine reaches).
    let duration_us = runs[0]["duration_us"].as_i64().expect("a duration");
    assert!(
        duration_us < (ASKED_MS as i64) * 1000 / 3,
        "the run took {duration_us} µs"
    );
}

async fn a_sleeping_plugin_ends_at_its_deadline_while_other_dealers_are_served(backend: Backend) {
    waits_past_its_deadline(backend, "sleep").await;
}

async fn a_polling_plugin_ends_at_its_deadline_while_other_dealers_are_served(backend: Backend) {
    waits_past_its_deadline(backend, "poll").await;
}

/// Dealer A's sleepers, several times its slots: those that get a slot end `timeout` at their
/// deadline; the others wait for a slot only briefly, are recorded as runs that found none
/// and fall back at once; dealer B is decided by its plugin all along.
async fn calls_beyond_a_dealers_slots_take_the_failure_policy_and_other_dealers_are_served(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    hostile_for_a_ok_for_b(&app, "sleep", json!({})).await;
    let slots = app.state.plugins.slots_per_dealer();
    let sleepers = 4 * slots;
    let a = app.units.dealer_a;
    let noisy: Vec<_> = (0..sleepers)
        .map(|_| spawn_route(&app, &app.base, a))
        .collect();
    b_is_served(&app, 5).await;
    let mut decisions = Vec::new();
    for call in noisy {
        decisions.push(call.await.expect("the evaluation does not panic"));
    }
    let mut no_slot = 0;
    for decision in &decisions {
        assert_eq!(failed_outcome(decision), "timeout", "{decision}");
        assert_eq!(decision["output"]["team"], "service", "the built-in route");
        let error = decision["source"]["failed"]["error"]
            .as_str()
            .unwrap_or_default();
        if error.contains("no free plugin slot for this dealer") {
            no_slot += 1;
        } else {
            assert!(error.contains("deadline"), "{decision}");
        }
    }
    assert!(no_slot >= 1, "some calls found no free slot: {decisions:?}");
    assert!(
        no_slot < sleepers,
        "some calls got a slot and ran: {decisions:?}"
    );
    // Every call is in the run log, those that found no slot with their error.
    let runs = a_runs(&app).await;
    assert_eq!(runs.len(), sleepers, "{runs:?}");
    let recorded_no_slot = runs
        .iter()
        .filter(|run| {
            run["outcome"] == "timeout"
                && run["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("no free plugin slot for this dealer"))
        })
        .count();
    assert_eq!(recorded_no_slot, no_slot, "{runs:?}");
}

/// A replay is a person comparing a candidate with recorded decisions: while the dealer's
/// slots are taken by sleepers, its runs wait for a slot instead of failing as "no free
/// slot", which would read as differences that are none.
async fn a_replay_waits_for_the_dealers_slots_instead_of_failing_its_steps(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = hostile_for_a_ok_for_b(&app, "ok", json!({})).await;
    let a = app.units.dealer_a;
    for _ in 0..3 {
        let decision = route(&app, &app.base, a).await;
        assert_eq!(decision["output"]["reason"], "ok", "{decision}");
    }
    let sleep = json!({"behaviour": "sleep"});
    bind_with(&app, a, "ticket-routing", id, "1.0.0", sleep, "fallback").await;
    let sleepers: Vec<_> = (0..2 * app.state.plugins.slots_per_dealer())
        .map(|_| spawn_route(&app, &app.base, a))
        .collect();
    // Let the sleepers take the slots first.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let report = call(app.post(
        &app.keys.a_admin,
        &format!("/dealers/{a}/plugins/ticket-routing/replay"),
        &json!({"version": "1.0.0", "config": {"behaviour": "ok"}}),
    ))
    .await;
    for sleeper in sleepers {
        sleeper.await.expect("the evaluation does not panic");
    }
    assert_eq!(report.status, 200, "{}", report.text);
    assert_eq!(report.body["candidate_failed"], 0, "{}", report.text);
    assert!(
        !report.text.contains("no free plugin slot"),
        "{}",
        report.text
    );
}

/// Turns the kill switch at `path` on (`killed`) or off, through the host at `base`.
async fn switch(app: &TestApp, base: &str, path: &str, killed: bool) {
    let reply = call(
        app.client
            .put(format!("{base}{path}"))
            .bearer_auth(&app.keys.hq_admin)
            .json(&json!({"killed": killed, "reason": "incident 42"})),
    )
    .await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text);
}

/// Waits until `replica` runs a plugin call.
async fn until_running(replica: &Replica) {
    for _ in 0..1500 {
        if replica.state.plugins.running() > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the plugin call did not start");
}

/// A host whose plugins have a minute (so the switch is turned on while the call surely
/// runs) runs a sleeper; each kill switch, turned on meanwhile, stops it at once: the run ends
/// `denied`, naming the switch, and the dealer gets the built-in route. Each switch is tried
/// on a dealer of its own (the plugin's last, as it covers them all). On PostgreSQL the switch
/// is turned on through another replica, whose change notification reaches this one.
async fn a_kill_switch_stops_a_call_already_running(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = publish(&app, "hostile", "ticket-routing", "guest-hostile", "1.0.0").await;
    let (a, b, c) = (app.units.dealer_a, app.units.dealer_b, app.units.dealer_c);
    for dealer in [a, b, c] {
        let config = json!({"behaviour": "sleep", "ms": 120_000});
        bind_with(
            &app,
            dealer,
            "ticket-routing",
            id,
            "1.0.0",
            config,
            "fallback",
        )
        .await;
    }
    let limits = Limits {
        deadline: Duration::from_secs(60),
        ..Limits::default()
    };
    let patient = app.replica_with(limits, "patient").await;
    let switch_base = match backend {
        Backend::Sqlite => patient.base.clone(),
        Backend::Postgres => app.base.clone(),
    };
    let switches = [
        (
            a,
            format!("/dealers/{a}/plugins/ticket-routing/kill-switch"),
            "the binding's kill switch was turned on (incident 42)",
        ),
        (
            b,
            format!("/dealers/{b}/plugin-kill-switch"),
            "the dealer's kill switch was turned on (incident 42)",
        ),
        (
            c,
            format!("/plugins/{id}/kill-switch"),
            "the plugin's kill switch was turned on (incident 42)",
        ),
    ];
    for (dealer, path, named) in &switches {
        let (decision, ()) = tokio::join!(route(&app, &patient.base, *dealer), async {
            until_running(&patient).await;
            switch(&app, &switch_base, path, true).await;
        });
        assert_eq!(failed_outcome(&decision), "denied", "{path}: {decision}");
        assert_eq!(decision["output"]["team"], "service", "the built-in route");
        let error = decision["source"]["failed"]["error"]
            .as_str()
            .unwrap_or_default();
        assert!(error.contains(named), "{path}: {decision}");
    }
    let runs = app.read(&app.keys.hq_admin, "/plugin-runs?limit=200").await;
    let runs = runs["items"].as_array().expect("runs");
    let plugin_runs: Vec<&Value> = runs.iter().filter(|r| !r["plugin_id"].is_null()).collect();
    assert_eq!(plugin_runs.len(), switches.len(), "{runs:?}");
    for ((dealer, _, named), run) in switches.iter().zip(plugin_runs.iter().rev()) {
        assert_eq!(run["dealer_id"], *dealer, "{run}");
        assert_eq!(run["outcome"], "denied", "{run}");
        assert!(
            run["error"].as_str().is_some_and(|e| e.contains(named)),
            "{run}"
        );
    }
    assert_eq!(patient.state.plugins.running(), 0);
}
