//! `cargo xtask bench`: the latencies a shop sees at scale. Builds the host (release), seeds
//! the demo network plus `--customers` generated customers (`dealer-host seed`), serves it,
//! and measures the customer 360 view and customer search by name, tag, phone (last 4 digits)
//! and plate with 1 and with 8 concurrent clients, then the throughput of a request that calls
//! a hook (a ticket, routed by the ticket-routing hook) for a dealer with the first-party
//! plugin bound against one with the built-in default, then `GET /plugin-runs/stats` over the
//! run log, and how many vehicles a minute of the reminders scheduler plans. It prints
//! medians, p99s and ratios; it asserts nothing.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::http::request;

/// What `cargo xtask bench` was asked.
pub struct Options {
    pub customers: u64,
    /// `sqlite` (a fresh file) or a `postgres://` URL of an empty database.
    pub database_url: Option<String>,
    /// Requests per client for each measured query.
    pub requests: usize,
    /// Skip seeding: reuse the database of an earlier run.
    pub reuse: bool,
}

pub const LISTEN: &str = "127.0.0.1:18480";
/// The demo dealer the first-party plugins are enabled for, and one left on the defaults.
const PLUGIN_DEALER: &str = "BJ-CY-4S";
const DEFAULT_DEALER: &str = "SH-PD-4S";
/// The first-party plugins published and enabled for [`PLUGIN_DEALER`]: one on the request
/// path, one the scheduler calls per vehicle.
const PLUGINS: [&str; 2] = ["ticket-routing", "reminders"];
/// How long the reminders scheduler plans before the host is stopped, if it has not finished.
const SCHEDULER_WINDOW: Duration = Duration::from_secs(60);
/// Rounds of the hook cost, each the dealer on the built-in default and then the one with the
/// plugin. One round at 1 M customers on SQLite gave the plugin 1.35 times the default's
/// throughput, which says more about what ran just before (caches, writes queued behind the
/// read audit) than about the hook; a second round shows how much the ratio moves.
const HOOK_ROUNDS: usize = 2;
/// Calls of `GET /plugin-runs/stats` timed each time.
const STATS_CALLS: usize = 3;

pub fn run(root: &Path, target: &Path, options: &Options) -> anyhow::Result<()> {
    let binary = target.join("release").join("dealer-host");
    let data_dir = target.join("bench-data");
    let database_url = match &options.database_url {
        Some(url) => url.clone(),
        None => format!("sqlite://{}?mode=rwc", data_dir.join("dealer.db").display()),
    };
    let host = |args: &[&str]| -> Command {
        let mut c = Command::new(&binary);
        c.current_dir(root)
            .env("DATABASE_URL", &database_url)
            .env("DEALER_DATA_DIR", &data_dir)
            .args(args);
        c
    };
    if !options.reuse {
        if data_dir.exists() {
            std::fs::remove_dir_all(&data_dir)
                .with_context(|| format!("cannot clear {}", data_dir.display()))?;
        }
        std::fs::create_dir_all(&data_dir)?;
        let started = Instant::now();
        let customers = options.customers.to_string();
        super::run(
            &mut host(&["seed", "--customers", &customers]),
            "seed the benchmark network",
        )?;
        println!(
            "seeded {} generated customers in {:.0} s",
            options.customers,
            started.elapsed().as_secs_f64()
        );
        publish_plugins(root, target, &host)?;
    }
    let key = |role: &str, org: &str| -> anyhow::Result<String> {
        let out = host(&["keys", "create", "--role", role, "--org", org])
            .stderr(Stdio::null())
            .output()
            .context("cannot create a key")?;
        if !out.status.success() {
            bail!("cannot create a {role} key for {org}");
        }
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    };
    let hq = key("hq_admin", "HQ")?;
    let with_plugin = key("service", PLUGIN_DEALER)?;
    let with_default = key("service", DEFAULT_DEALER)?;

    let host_log = data_dir.join("host.log");
    let serve = || {
        Server::start(
            host(&[
                "serve",
                "--listen",
                LISTEN,
                "--outbox-interval-secs",
                "0",
                "--scheduler-interval-secs",
                "0",
            ]),
            &host_log,
        )
    };
    let server = serve()?;
    let backend = server.wait_ready()?;
    println!(
        "\n{} customers on {backend}; {} requests per client (host warnings in {})\n",
        options.customers,
        options.requests,
        host_log.display()
    );

    let samples = Samples::take(&hq, 200)?;
    println!(
        "{:<26} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "query", "1: p50 ms", "1: p99 ms", "8: p50 ms", "8: p99 ms", "8: req/s"
    );
    let queries: [(&str, &Vec<String>); 6] = [
        ("360 view", &samples.views),
        ("search by name (3 chars)", &samples.names),
        ("search by name (2 chars)", &samples.short_names),
        ("search by tag", &samples.tags),
        ("search by phone (last 4)", &samples.phones),
        ("search by plate", &samples.plates),
    ];
    for (what, paths) in queries {
        if paths.is_empty() {
            println!("{what:<26} (no samples)");
            continue;
        }
        let one = measure(&hq, paths, 1, options.requests)?;
        let eight = measure(&hq, paths, 8, options.requests)?;
        println!(
            "{what:<26} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>12.0}",
            one.p50_ms, one.p99_ms, eight.p50_ms, eight.p99_ms, eight.per_sec
        );
    }

    println!(
        "\nhook cost: POST /tickets (routed by the ticket-routing hook), 8 clients, \
         {HOOK_ROUNDS} rounds alternating the two dealers"
    );
    for round in 1..=HOOK_ROUNDS {
        let default = tickets(&with_default, DEFAULT_DEALER, options.requests)?;
        let plugin = tickets(&with_plugin, PLUGIN_DEALER, options.requests)?;
        println!(
            "  round {round}: built-in default ({DEFAULT_DEALER}) {:.0} req/s, p50 {:.2} ms{}; \
             plugin bound ({PLUGIN_DEALER}) {:.0} req/s, p50 {:.2} ms{}; \
             throughput with the plugin / without: {:.2}",
            default.measured.per_sec,
            default.measured.p50_ms,
            default.refusals(),
            plugin.measured.per_sec,
            plugin.measured.p50_ms,
            plugin.refusals(),
            plugin.measured.per_sec / default.measured.per_sec
        );
    }

    let before = run_stats(&hq)?;
    println!(
        "\nGET /plugin-runs/stats over {} runs: p50 {:.0} ms, max {:.0} ms ({STATS_CALLS} calls)",
        before.runs, before.p50_ms, before.max_ms
    );

    println!(
        "\nreminders scheduler: POST /reminders/run, stopped after {} s",
        SCHEDULER_WINDOW.as_secs()
    );
    let planning = std::thread::spawn({
        let hq = hq.clone();
        move || {
            let started = Instant::now();
            let answer = request(
                LISTEN,
                "POST",
                "/api/v1/reminders/run",
                Some(&hq),
                Some("{}"),
            );
            (started.elapsed(), answer)
        }
    });
    let deadline = Instant::now() + SCHEDULER_WINDOW;
    while !planning.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (planned, elapsed, after) = if planning.is_finished() {
        let (elapsed, answer) = planning
            .join()
            .map_err(|_| anyhow::anyhow!("the scheduler client panicked"))?;
        let (status, report) = answer?;
        if status != 200 {
            bail!("POST /reminders/run answered {status}: {report}");
        }
        let planned =
            report["vehicles"].as_u64().unwrap_or(0) + report["failed"].as_u64().unwrap_or(0);
        (planned, elapsed, run_stats(&hq)?)
    } else {
        // Stopping the host ends the run; each vehicle's plan is its own transaction, and
        // records one run of the reminders hook (the plugin's or the built-in default's).
        drop(server);
        let (elapsed, _) = planning
            .join()
            .map_err(|_| anyhow::anyhow!("the scheduler client panicked"))?;
        let server = serve()?;
        server.wait_ready()?;
        let after = run_stats(&hq)?;
        drop(server);
        (after.reminders - before.reminders, elapsed, after)
    };
    println!(
        "  {planned} vehicles planned in {:.0} s: {:.1} vehicles/s \
         ({} by the plugin at {PLUGIN_DEALER}, the rest by the built-in default)",
        elapsed.as_secs_f64(),
        planned as f64 / elapsed.as_secs_f64(),
        after.reminders_by_plugin - before.reminders_by_plugin,
    );
    println!(
        "\nGET /plugin-runs/stats over {} runs: p50 {:.0} ms, max {:.0} ms ({STATS_CALLS} calls)",
        after.runs, after.p50_ms, after.max_ms
    );
    Ok(())
}

/// The timing of `GET /plugin-runs/stats` and the run counts it reports.
struct RunStats {
    p50_ms: f64,
    max_ms: f64,
    /// All runs in the log.
    runs: u64,
    /// Runs of the reminders hook: one per vehicle the scheduler planned.
    reminders: u64,
    /// Those by a plugin rather than the built-in default.
    reminders_by_plugin: u64,
}

fn run_stats(key: &str) -> anyhow::Result<RunStats> {
    let mut latencies = Vec::with_capacity(STATS_CALLS);
    let mut groups = Value::Null;
    for _ in 0..STATS_CALLS {
        let started = Instant::now();
        let (status, answer) =
            request(LISTEN, "GET", "/api/v1/plugin-runs/stats", Some(key), None)?;
        latencies.push(started.elapsed());
        if status != 200 {
            bail!("GET /plugin-runs/stats answered {status}: {answer}");
        }
        groups = answer;
    }
    let groups = groups.as_array().cloned().unwrap_or_default();
    let count = |keep: &dyn Fn(&Value) -> bool| -> u64 {
        groups
            .iter()
            .filter(|g| keep(g))
            .map(|g| g["count"].as_u64().unwrap_or(0))
            .sum()
    };
    let max_ms = latencies
        .iter()
        .max()
        .copied()
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0;
    Ok(RunStats {
        p50_ms: summarize(latencies, Duration::from_secs(1)).p50_ms,
        max_ms,
        runs: count(&|_| true),
        reminders: count(&|g| g["hook"] == "reminders"),
        reminders_by_plugin: count(&|g| g["hook"] == "reminders" && !g["plugin_id"].is_null()),
    })
}

/// Builds the first-party [`PLUGINS`], publishes them and enables them for [`PLUGIN_DEALER`].
fn publish_plugins(
    root: &Path,
    target: &Path,
    host: &dyn Fn(&[&str]) -> Command,
) -> anyhow::Result<()> {
    super::setup()?;
    let plugins: Vec<_> = super::first_party_plugins(root)?
        .into_iter()
        .filter(|p| PLUGINS.contains(&p.name.as_str()))
        .collect();
    let mut build = super::cargo(root);
    build.args(["build", "--target", "wasm32-wasip2", "--profile", "plugin"]);
    for plugin in &plugins {
        build.args(["-p", &plugin.package]);
    }
    super::run(&mut build, "build the benchmark's plugins")?;
    for plugin in &plugins {
        let publish = plugin.publish_args(&target.join("wasm32-wasip2").join("plugin"));
        let publish: Vec<&str> = publish.iter().map(String::as_str).collect();
        super::run(
            &mut host(&publish),
            &format!("publish the {} plugin", plugin.name),
        )?;
        super::run(
            &mut host(&[
                "plugins",
                "enable",
                "--dealer",
                PLUGIN_DEALER,
                "--name",
                &plugin.name,
            ]),
            &format!("enable the {} plugin", plugin.name),
        )?;
    }
    Ok(())
}

/// The host serving the benchmark; killed on drop.
pub struct Server(Child);

impl Server {
    /// Starts the host, its warnings appended to `log` rather than mixed into the tables.
    pub fn start(mut command: Command, log: &Path) -> anyhow::Result<Server> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let child = command
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start the host")?;
        Ok(Server(child))
    }

    /// Waits for `/health`; the backend it names.
    pub fn wait_ready(&self) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok((200, body)) = request(LISTEN, "GET", "/api/v1/health", None, None) {
                return Ok(body["database"].as_str().unwrap_or("?").to_owned());
            }
            if Instant::now() > deadline {
                bail!("the host did not answer /health");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// Request paths for each query, taken from customers spread over the whole id range.
struct Samples {
    views: Vec<String>,
    names: Vec<String>,
    short_names: Vec<String>,
    tags: Vec<String>,
    phones: Vec<String>,
    plates: Vec<String>,
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Samples {
    fn take(key: &str, n: usize) -> anyhow::Result<Samples> {
        let (_, newest) = request(LISTEN, "GET", "/api/v1/customers?limit=1", Some(key), None)?;
        let max_id = newest["items"][0]["id"]
            .as_i64()
            .context("the newest customer")?;
        let mut samples = Samples {
            views: Vec::new(),
            names: Vec::new(),
            short_names: Vec::new(),
            tags: Vec::new(),
            phones: Vec::new(),
            plates: Vec::new(),
        };
        for i in 0..n as i64 {
            // Spread over the ids, a prime stride apart so dealers and ages mix.
            let id = 1 + (i * 7919) % max_id;
            let (status, view) = request(
                LISTEN,
                "GET",
                &format!("/api/v1/customers/{id}/360"),
                Some(key),
                None,
            )?;
            if status != 200 {
                continue;
            }
            samples.views.push(format!("/api/v1/customers/{id}/360"));
            let customer = &view["customer"];
            let name: Vec<char> = customer["name"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .collect();
            if name.len() >= 3 {
                let part: String = name[name.len() - 3..].iter().collect();
                samples
                    .names
                    .push(format!("/api/v1/customers?name={}", encode(&part)));
            }
            if name.len() >= 2 {
                let part: String = name[name.len() - 2..].iter().collect();
                samples
                    .short_names
                    .push(format!("/api/v1/customers?name={}", encode(&part)));
            }
            if let Some(tag) = customer["tags"][0].as_str() {
                samples
                    .tags
                    .push(format!("/api/v1/customers?tag={}", encode(tag)));
            }
            if let Some(phone) = customer["phones"][0]["number"].as_str()
                && phone.len() >= 4
            {
                samples.phones.push(format!(
                    "/api/v1/customers?phone={}",
                    &phone[phone.len() - 4..]
                ));
            }
            if let Some(plate) = view["vehicles"][0]["plate"].as_str() {
                samples
                    .plates
                    .push(format!("/api/v1/customers?plate={}", encode(plate)));
            }
        }
        Ok(samples)
    }
}

pub struct Measured {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub per_sec: f64,
}

fn summarize(mut latencies: Vec<Duration>, elapsed: Duration) -> Measured {
    latencies.sort_unstable();
    let rank = |percent: usize| {
        let i = (percent * latencies.len()).div_ceil(100).max(1) - 1;
        latencies[i.min(latencies.len() - 1)].as_secs_f64() * 1000.0
    };
    Measured {
        p50_ms: rank(50),
        p95_ms: rank(95),
        p99_ms: rank(99),
        per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
    }
}

/// `clients` threads each send `requests` requests (`send(client, i)`), timed one by one.
fn load(
    clients: usize,
    requests: usize,
    send: &(dyn Fn(usize, usize) -> anyhow::Result<()> + Sync),
) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let latencies = std::thread::scope(|s| -> anyhow::Result<Vec<Duration>> {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                s.spawn(move || -> anyhow::Result<Vec<Duration>> {
                    let mut own = Vec::with_capacity(requests);
                    for i in 0..requests {
                        let at = Instant::now();
                        send(c, i)?;
                        own.push(at.elapsed());
                    }
                    Ok(own)
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(
                h.join()
                    .map_err(|_| anyhow::anyhow!("a client panicked"))??,
            );
        }
        Ok(all)
    })?;
    Ok(summarize(latencies, started.elapsed()))
}

/// `clients` threads each GET `requests` of `paths` (round robin, each from its own offset).
pub fn measure(
    key: &str,
    paths: &[String],
    clients: usize,
    requests: usize,
) -> anyhow::Result<Measured> {
    load(clients, requests, &|c, i| {
        let path = &paths[(c * 31 + i) % paths.len()];
        match request(LISTEN, "GET", path, Some(key), None)? {
            (200, _) => Ok(()),
            (status, _) => bail!("GET {path} answered {status}"),
        }
    })
}

/// 8 clients each create `requests` tickets for a customer of `dealer` (the caller's own).
fn tickets(key: &str, dealer: &str, requests: usize) -> anyhow::Result<Tickets> {
    // The key's own dealer: a dealer's key also sees customers shared with it by others,
    // and a ticket is for a customer of the dealer raising it.
    let (_, me) = request(LISTEN, "GET", "/api/v1/me", Some(key), None)?;
    let dealer_id = me["org_id"].as_i64().context("the key's dealer")?;
    let (_, page) = request(
        LISTEN,
        "GET",
        &format!("/api/v1/customers?dealer_id={dealer_id}&limit=1"),
        Some(key),
        None,
    )?;
    let customer = page["items"][0]["id"]
        .as_i64()
        .with_context(|| format!("a customer of {dealer}"))?;
    let body = json!({
        "customer_id": customer,
        "channel": "hotline",
        "category": "complaint",
        "subject": "空调不制冷",
        "description": "客户来电：空调不制冷，要求尽快处理",
    })
    .to_string();
    let refused = Mutex::new(Vec::new());
    let measured = load(8, requests, &|_, _| {
        match request(LISTEN, "POST", "/api/v1/tickets", Some(key), Some(&body))? {
            (201, _) => {}
            (status, answer) => refused.lock().expect("refusals lock").push(format!(
                "{status} {}",
                answer["detail"].as_str().unwrap_or("")
            )),
        }
        Ok(())
    })?;
    Ok(Tickets {
        measured,
        refused: refused.into_inner().expect("refusals lock"),
    })
}

/// A hook cost measurement: the timings, and the answers other than 201 (status and detail),
/// reported rather than ending the run.
struct Tickets {
    measured: Measured,
    refused: Vec<String>,
}

impl Tickets {
    /// ` (n refused, e.g. …)`, or nothing.
    fn refusals(&self) -> String {
        match self.refused.first() {
            None => String::new(),
            Some(first) => format!(" ({} refused, e.g. {first})", self.refused.len()),
        }
    }
}
