//! What a noisy dealer costs the others, and how far past its deadline a stopped run ends.
//!
//! `cargo bench -p dealer-tests --bench plugin_fairness`. Prints, in one run on the same
//! machine (never absolute times to compare across machines):
//! - dealer B's plugin-call latency (p50, p99) through the dispatcher, alone and while dealer
//!   A keeps 32 calls of a spinning plugin going, and their ratio;
//! - the overshoot past the deadline (p50, p99) of runs stopped by it, spinning (with fuel
//!   enough to reach the deadline) and sleeping through WASI, while as many other such runs
//!   as the machine has cores, times four, load it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dealer_host::plugins::runs::Source;
use dealer_plugin_runtime::Grants;
use dealer_plugin_runtime::Outcome;
use dealer_plugin_runtime::hooks::{TicketRoutingHook, ticket_routing};
use dealer_plugin_runtime::host_api::{CallContext, Mode};
use dealer_plugin_runtime::runtime::{Limits, Runtime};
use dealer_tests::guests::wasm_bytes;
use dealer_tests::{Backend, TestApp, call};
use serde_json::json;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Dealer B's calls measured in each phase.
const CALLS: usize = 300;
/// Dealer A's spinning calls kept going at once.
const NOISY: usize = 32;
/// The deadline of the overshoot runs.
const DEADLINE: Duration = Duration::from_millis(250);
/// Stopped runs measured per behaviour.
const STOPPED: usize = 120;

fn ticket(dealer_id: i64) -> ticket_routing::Ticket {
    ticket_routing::Ticket {
        ticket_id: 42,
        dealer_id,
        channel: "hotline".into(),
        category: "complaint".into(),
        subject: "行驶中刹车异响，请尽快联系".into(),
        description: "客户反映高速行驶时制动踏板发软".into(),
        customer_id: 7,
        customer_tier: Some("金卡".into()),
        customer_tags: vec!["VIP".into()],
        vehicle_id: Some(9),
        opened_at: 1_763_900_000_000,
    }
}

fn main() {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let (alone, noisy) = tokio.block_on(fairness());
    let (spin, sleep) = overshoot();
    let ratio = |q: usize| noisy[q].as_secs_f64() / alone[q].as_secs_f64();
    println!();
    println!(
        "cores: {}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "dealer B's plugin call, alone:               p50 {:>8.2?}  p99 {:>8.2?}",
        alone[0], alone[1]
    );
    println!(
        "dealer B's plugin call, A running {NOISY} spins: p50 {:>8.2?}  p99 {:>8.2?}",
        noisy[0], noisy[1]
    );
    println!(
        "ratio (noisy / alone):                       p50 {:>7.2}×  p99 {:>7.2}×",
        ratio(0),
        ratio(1)
    );
    println!(
        "overshoot past a {} ms deadline, spinning:   p50 {:>8.2?}  p99 {:>8.2?}",
        DEADLINE.as_millis(),
        spin[0],
        spin[1]
    );
    println!(
        "overshoot past a {} ms deadline, sleeping:   p50 {:>8.2?}  p99 {:>8.2?}",
        DEADLINE.as_millis(),
        sleep[0],
        sleep[1]
    );
}

/// p50 and p99 of `samples`.
fn quantiles(mut samples: Vec<Duration>) -> [Duration; 2] {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    [at(0.50), at(0.99)]
}

/// Dealer B's call latency alone and with dealer A's spinning calls.
async fn fairness() -> ([Duration; 2], [Duration; 2]) {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (a, b) = (app.units.dealer_a, app.units.dealer_b);
    let plugin = app
        .create(
            &app.keys.hq_admin,
            "/plugins",
            &json!({"name": "hostile", "hook": "ticket-routing", "description": "bench"}),
        )
        .await["id"]
        .as_i64()
        .expect("a plugin id");
    let upload = call(
        app.client
            .post(format!(
                "{}/plugins/{plugin}/versions?version=1.0.0",
                app.base
            ))
            .bearer_auth(&app.keys.hq_admin)
            .header("content-type", "application/wasm")
            .body(wasm_bytes("guest-hostile")),
    )
    .await;
    assert_eq!(upload.status, 201, "{}", upload.text);
    for (dealer, behaviour) in [(a, "loop"), (b, "ok")] {
        let bound = call(
            app.client
                .put(format!(
                    "{}/dealers/{dealer}/plugins/ticket-routing",
                    app.base
                ))
                .bearer_auth(&app.keys.hq_admin)
                .json(&json!({"plugin_id": plugin, "pinned_version": "1.0.0",
                    "config": {"behaviour": behaviour}, "failure_policy": "fallback"})),
        )
        .await;
        assert_eq!(bound.status, 200, "{}", bound.text);
    }
    let plugins = app.state.plugins.clone();
    let b_calls = || async {
        let mut samples = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            let started = Instant::now();
            let decision = plugins
                .call::<TicketRoutingHook>(b, ticket(b), Source::Evaluate)
                .await
                .expect("dealer B's decision");
            samples.push(started.elapsed());
            assert_eq!(decision.output.reason, "ok");
        }
        quantiles(samples)
    };
    b_calls().await;
    let alone = b_calls().await;

    let stop = Arc::new(AtomicBool::new(false));
    let noisy: Vec<_> = (0..NOISY)
        .map(|_| {
            let (plugins, stop) = (plugins.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    plugins
                        .call::<TicketRoutingHook>(a, ticket(a), Source::Evaluate)
                        .await
                        .expect("dealer A's fallback");
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let with_noise = b_calls().await;
    stop.store(true, Ordering::Relaxed);
    for task in noisy {
        task.await.expect("a noisy caller does not panic");
    }
    (alone, with_noise)
}

/// Overshoot past [`DEADLINE`] of spinning and sleeping runs, run at once on four threads per
/// core, half of each.
fn overshoot() -> ([Duration; 2], [Duration; 2]) {
    let limits = Limits {
        deadline: DEADLINE,
        fuel: 1 << 62,
        ..Limits::default()
    };
    let runtime = Arc::new(Runtime::new(None, limits).expect("a runtime"));
    let loaded = runtime
        .inspect(&wasm_bytes("guest-hostile"))
        .expect("the hostile guest");
    let threads = 4 * std::thread::available_parallelism().map_or(2, |n| n.get());
    let per_thread = STOPPED.div_ceil(threads / 2);
    let workers: Vec<_> = (0..threads)
        .map(|n| {
            let (runtime, loaded) = (runtime.clone(), loaded.clone());
            let behaviour = if n % 2 == 0 { "loop" } else { "sleep" };
            std::thread::spawn(move || {
                let mut overshoots = Vec::with_capacity(per_thread);
                for _ in 0..per_thread {
                    let ctx = CallContext {
                        dealer_id: 1,
                        plugin_id: 1,
                        plugin_name: "bench".into(),
                        version: "1.0.0".into(),
                        config: json!({ "behaviour": behaviour }),
                        grants: Grants::default(),
                        now_ms: 1_763_900_000_000,
                        mode: Mode::Live,
                        private_dir: None,
                    };
                    let report =
                        runtime.invoke::<TicketRoutingHook>(&loaded, ctx, None, &ticket(1));
                    assert_eq!(report.outcome, Outcome::Timeout, "{:?}", report.error);
                    overshoots.push(report.duration.saturating_sub(DEADLINE));
                }
                (behaviour, overshoots)
            })
        })
        .collect();
    let (mut spin, mut sleep) = (Vec::new(), Vec::new());
    for worker in workers {
        let (behaviour, overshoots) = worker.join().expect("a worker does not panic");
        match behaviour {
            "loop" => spin.extend(overshoots),
            _ => sleep.extend(overshoots),
        }
    }
    (quantiles(spin), quantiles(sleep))
}
