//! Instantiate-and-call of a small Rust plugin per hook, against a native Rust function with
//! the same logic, in the same run; then a restart with 50 plugins in the artifact cache.
//!
//! `cargo bench -p dealer-tests --bench plugin_calls`. Criterion measures each pair; the
//! summary at the end prints the medians and the wasm/native ratio, and the restart's time
//! to first call as a median over repeated restarts (never one absolute time: the machine is
//! shared, so compare within the run).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::hint::black_box;

use criterion::Criterion;
use dealer_plugin_runtime::Grants;
use dealer_plugin_runtime::Hook;
use dealer_plugin_runtime::Outcome;
use dealer_plugin_runtime::hooks::{TicketRoutingHook, ticket_routing};
use dealer_plugin_runtime::host_api::{CallContext, Mode};
use dealer_plugin_runtime::runtime::{HookSpec, Limits, Loaded, Runtime};
use dealer_tests::guests::wasm_bytes;
use dealer_tests::scratch_dir;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn context(config: serde_json::Value) -> CallContext {
    CallContext {
        dealer_id: 1,
        plugin_id: 1,
        plugin_name: "bench".into(),
        version: "1.0.0".into(),
        config,
        grants: Grants::default(),
        now_ms: 1_763_900_000_000,
        mode: Mode::Live,
        private_dir: None,
    }
}

/// Benchmarks `H` through `loaded` against `native`, as `<hook>/wasm` and `<hook>/native`.
fn pair<H: HookSpec, R>(
    c: &mut Criterion,
    runtime: &Runtime,
    loaded: &Loaded,
    input: &H::Input,
    native: impl Fn() -> R,
) {
    let report = runtime.invoke::<H>(loaded, context(serde_json::json!({})), None, input);
    assert_eq!(report.outcome, Outcome::Ok, "{:?}", report.error);
    let mut group = c.benchmark_group(H::HOOK.as_str());
    group.bench_function("wasm", |b| {
        b.iter(|| {
            runtime.invoke::<H>(
                loaded,
                context(serde_json::json!({})),
                None,
                black_box(input),
            )
        })
    });
    group.bench_function("native", |b| b.iter(|| black_box(native())));
    group.finish();
}

/// The same input as the host's and the guest SDK's types (identical field names, other
/// modules): `$($m)::+` is the hook module.
macro_rules! ticket {
    ($($m:ident)::+) => {
        $($m)::+::Ticket {
            ticket_id: 42,
            dealer_id: 1,
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
    };
}

macro_rules! sale {
    ($($m:ident)::+) => {
        $($m)::+::Sale {
            order_id: 1,
            dealer_id: 1,
            customer_id: 7,
            model: "汉 EV".into(),
            delivered_at: 1_763_900_000_000,
            list_price: 25_980_000,
            discount: 800_000,
            final_price: 25_180_000,
            gross_profit: 1_900_000,
            lines: vec![$($m)::+::OrderLine {
                kind: "vehicle".into(),
                description: "汉 EV 冠军版".into(),
                amount: 25_180_000,
                cost: 23_280_000,
            }],
            staff: vec![
                $($m)::+::SaleStaff {
                    member: $($m)::+::StaffMember { id: 7, role: "sales".into() },
                    units_this_month: 12,
                },
                $($m)::+::SaleStaff {
                    member: $($m)::+::StaffMember { id: 8, role: "finance".into() },
                    units_this_month: 3,
                },
            ],
        }
    };
}

macro_rules! request {
    ($($m:ident)::+) => {
        $($m)::+::Request {
            kind: $($m)::+::RequestKind::Discount,
            dealer_id: 1,
            requested_by: $($m)::+::StaffMember { id: 7, role: "sales".into() },
            customer_id: Some(7),
            order_id: Some(1),
            repair_order_id: None,
            amount: 2_500_000,
            base_amount: 25_980_000,
            description: "老客户置换优惠".into(),
            attributes: vec![],
        }
    };
}

macro_rules! event {
    ($($m:ident)::+) => {
        $($m)::+::Event {
            kind: $($m)::+::EventKind::Spend,
            dealer_id: 1,
            customer_id: 7,
            occurred_at: 1_763_900_000_000,
            amount: 128_800,
            reference: "RO-2025-0042".into(),
            tier: Some("金卡".into()),
            points_balance: 3_200,
            lifetime_spend: 9_000_000,
            attributes: vec![],
        }
    };
}

macro_rules! history {
    ($($m:ident)::+) => {
        $($m)::+::History {
            vehicle: $($m)::+::Vehicle {
                id: 9,
                dealer_id: 1,
                vin: "LGXCE4CB0N0123456".into(),
                plate: Some("京A·D12345".into()),
                brand: "比亚迪".into(),
                model: "汉 EV".into(),
                trim: None,
                purchase_date: Some("2024-03-18".into()),
                insurer: Some("人保".into()),
                insurance_expiry: Some("2026-03-17".into()),
                mileage_km: Some(23_400),
                daily_km_tenths: Some(412),
                owner_id: Some(7),
            },
            owner: None,
            readings: vec![$($m)::+::MileageReading { date: "2025-11-01".into(), km: 23_400 }],
            visits: vec![$($m)::+::ServiceVisit {
                date: "2025-06-02".into(),
                mileage_km: Some(16_100),
                kind: "maintenance".into(),
            }],
            today: "2025-11-23".into(),
        }
    };
}

fn calls(c: &mut Criterion, runtime: &Runtime) {
    use dealer_plugin_runtime::hooks::{
        ApprovalHook, CommissionHook, LoyaltyHook, RemindersHook, TicketRoutingHook,
    };
    use dealer_plugin_runtime::hooks::{approval, commission, loyalty, reminders};
    let load = |name: &str| {
        runtime
            .inspect(&wasm_bytes(name))
            .expect("a first-party plugin")
    };

    let guest = sale!(dealer_sdk::commission);
    let config = plugin_commission::Config::default();
    pair::<CommissionHook, _>(
        c,
        runtime,
        &load("plugin-commission"),
        &sale!(commission),
        || plugin_commission::compute(&guest, &config),
    );

    let guest = request!(dealer_sdk::approval);
    let config = plugin_approval::Config::default();
    pair::<ApprovalHook, _>(
        c,
        runtime,
        &load("plugin-approval"),
        &request!(approval),
        || plugin_approval::decide(&guest, &config),
    );

    let guest = event!(dealer_sdk::loyalty);
    let config = plugin_loyalty::Config::default();
    pair::<LoyaltyHook, _>(
        c,
        runtime,
        &load("plugin-loyalty"),
        &event!(loyalty),
        || plugin_loyalty::award(&guest, &config),
    );

    let guest = ticket!(dealer_sdk::ticket_routing);
    let config = plugin_ticket_routing::Config::default();
    pair::<TicketRoutingHook, _>(
        c,
        runtime,
        &load("plugin-ticket-routing"),
        &ticket!(ticket_routing),
        || plugin_ticket_routing::route(&guest, &config),
    );

    let guest = history!(dealer_sdk::reminders);
    let config = plugin_reminders::Config::default();
    pair::<RemindersHook, _>(
        c,
        runtime,
        &load("plugin-reminders"),
        &history!(reminders),
        || plugin_reminders::plan(&guest, &config),
    );
}

/// Median time from creating a runtime over a cache holding 50 plugins to the end of the first
/// call of one of them, over `rounds` restarts; and, as the baseline, the median time to
/// compile that one plugin from its bytes.
fn restart(rounds: usize) -> (Duration, Duration) {
    let cache = scratch_dir("bench-restart");
    let original = wasm_bytes("plugin-ticket-routing");
    let mut hashes = Vec::new();
    {
        let runtime = Runtime::new(Some(&cache.path), Limits::default()).expect("a runtime");
        for n in 0..50_u8 {
            let mut bytes = original.clone();
            // A custom section makes each a distinct component (another content hash).
            bytes.extend_from_slice(&[0, 3, 2, b'v', n]);
            hashes.push(runtime.inspect(&bytes).expect("valid").info.sha256.clone());
        }
    }
    let ticket = ticket!(ticket_routing);
    let mut first_calls = Vec::new();
    let mut compiles = Vec::new();
    for round in 0..rounds {
        let sha = &hashes[round % hashes.len()];
        let started = Instant::now();
        let runtime = Runtime::new(Some(&cache.path), Limits::default()).expect("a runtime");
        let loaded = runtime.load(sha, None).expect("cache").expect("cached");
        let report = runtime.invoke::<TicketRoutingHook>(
            &loaded,
            context(serde_json::json!({})),
            None,
            &ticket,
        );
        first_calls.push(started.elapsed());
        assert_eq!(report.outcome, Outcome::Ok);

        let uncached = Runtime::new(None, Limits::default()).expect("a runtime");
        let started = Instant::now();
        uncached.inspect(&original).expect("valid");
        compiles.push(started.elapsed());
    }
    (median(first_calls), median(compiles))
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Criterion's median point estimate of `<group>/<function>`, in nanoseconds.
fn criterion_median(dir: &Path, group: &str, function: &str) -> Option<f64> {
    let path = dir
        .join(group)
        .join(function)
        .join("new")
        .join("estimates.json");
    let estimates: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    estimates["median"]["point_estimate"].as_f64()
}

fn main() {
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let runtime = Arc::new(Runtime::new(None, Limits::default()).expect("a runtime"));
    calls(&mut criterion, &runtime);
    criterion.final_summary();

    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        Into::into,
    );
    let results = Path::new(&target).join("criterion");
    println!("\nmedians (criterion), wasm instantiate-and-call vs native, same run:");
    println!(
        "{:<16} {:>12} {:>12} {:>8}",
        "hook", "wasm", "native", "ratio"
    );
    for hook in Hook::ALL {
        let (Some(wasm), Some(native)) = (
            criterion_median(&results, hook.as_str(), "wasm"),
            criterion_median(&results, hook.as_str(), "native"),
        ) else {
            continue;
        };
        println!(
            "{:<16} {:>9.2} µs {:>9.3} µs {:>7.0}×",
            hook.as_str(),
            wasm / 1000.0,
            native / 1000.0,
            wasm / native
        );
    }
    let (first_call, compile) = restart(15);
    println!(
        "\nrestart with 50 cached plugins, to the end of the first call: median {:.1} ms \
         (compiling one plugin instead: median {:.1} ms; ratio {:.2})",
        first_call.as_secs_f64() * 1000.0,
        compile.as_secs_f64() * 1000.0,
        first_call.as_secs_f64() / compile.as_secs_f64()
    );
}
