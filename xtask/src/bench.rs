//! `cargo xtask bench`: the latencies a shop sees at scale. Builds the host (release), seeds
//! the demo network plus `--customers` generated customers (`dealer-host seed`), serves it,
//! and measures the customer 360 view and customer search by name, tag, phone (last 4 digits)
//! and plate with 1 and with 8 concurrent clients, then the throughput of a request that calls
//! a hook (a ticket, routed by the ticket-routing hook) for a dealer with the first-party
//! plugin bound against one with the built-in default. It prints medians, p99s and ratios;
//! it asserts nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

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

const LISTEN: &str = "127.0.0.1:18480";
/// The demo dealer the first-party plugins are enabled for, and one left on the defaults.
const PLUGIN_DEALER: &str = "BJ-CY-4S";
const DEFAULT_DEALER: &str = "SH-PD-4S";

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
        publish_ticket_routing(root, target, &host)?;
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

    let server = Server::start(host(&[
        "serve",
        "--listen",
        LISTEN,
        "--outbox-interval-secs",
        "0",
        "--scheduler-interval-secs",
        "0",
    ]))?;
    let backend = server.wait_ready()?;
    println!(
        "\n{} customers on {backend}; {} requests per client\n",
        options.customers, options.requests
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

    println!("\nhook cost: POST /tickets (routed by the ticket-routing hook), 8 clients");
    let default = tickets(&with_default, DEFAULT_DEALER, options.requests)?;
    let plugin = tickets(&with_plugin, PLUGIN_DEALER, options.requests)?;
    println!(
        "  built-in default ({DEFAULT_DEALER}): {:.0} req/s, p50 {:.2} ms",
        default.per_sec, default.p50_ms
    );
    println!(
        "  plugin bound ({PLUGIN_DEALER}):     {:.0} req/s, p50 {:.2} ms",
        plugin.per_sec, plugin.p50_ms
    );
    println!(
        "  throughput with the plugin / without: {:.2}",
        plugin.per_sec / default.per_sec
    );
    drop(server);
    Ok(())
}

/// Builds the first-party ticket-routing plugin, publishes it and enables it for
/// [`PLUGIN_DEALER`].
fn publish_ticket_routing(
    root: &Path,
    target: &Path,
    host: &dyn Fn(&[&str]) -> Command,
) -> anyhow::Result<()> {
    super::setup()?;
    super::run(
        super::cargo(root).args([
            "build",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "plugin",
            "-p",
            "plugin-ticket-routing",
        ]),
        "build the ticket-routing plugin",
    )?;
    let plugin = super::first_party_plugins(root)?
        .into_iter()
        .find(|p| p.name == "ticket-routing")
        .context("plugins/ticket-routing")?;
    let publish = plugin.publish_args(&target.join("wasm32-wasip2").join("plugin"));
    let publish: Vec<&str> = publish.iter().map(String::as_str).collect();
    super::run(&mut host(&publish), "publish the ticket-routing plugin")?;
    super::run(
        &mut host(&[
            "plugins",
            "enable",
            "--dealer",
            PLUGIN_DEALER,
            "--name",
            "ticket-routing",
        ]),
        "enable the ticket-routing plugin",
    )
}

/// The host serving the benchmark; killed on drop.
struct Server(Child);

impl Server {
    fn start(mut command: Command) -> anyhow::Result<Server> {
        let child = command
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start the host")?;
        Ok(Server(child))
    }

    /// Waits for `/health`; the backend it names.
    fn wait_ready(&self) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok((200, body)) = request("GET", "/api/v1/health", None, None) {
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
        let (_, newest) = request("GET", "/api/v1/customers?limit=1", Some(key), None)?;
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

struct Measured {
    p50_ms: f64,
    p99_ms: f64,
    per_sec: f64,
}

fn summarize(mut latencies: Vec<Duration>, elapsed: Duration) -> Measured {
    latencies.sort_unstable();
    let rank = |percent: usize| {
        let i = (percent * latencies.len()).div_ceil(100).max(1) - 1;
        latencies[i.min(latencies.len() - 1)].as_secs_f64() * 1000.0
    };
    Measured {
        p50_ms: rank(50),
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
fn measure(
    key: &str,
    paths: &[String],
    clients: usize,
    requests: usize,
) -> anyhow::Result<Measured> {
    load(clients, requests, &|c, i| {
        let path = &paths[(c * 31 + i) % paths.len()];
        match request("GET", path, Some(key), None)? {
            (200, _) => Ok(()),
            (status, _) => bail!("GET {path} answered {status}"),
        }
    })
}

/// 8 clients each create `requests` tickets for a customer of `dealer` (the caller's own).
fn tickets(key: &str, dealer: &str, requests: usize) -> anyhow::Result<Measured> {
    let (_, page) = request("GET", "/api/v1/customers?limit=1", Some(key), None)?;
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
    load(
        8,
        requests,
        &|_, _| match request("POST", "/api/v1/tickets", Some(key), Some(&body))? {
            (201, _) => Ok(()),
            (status, answer) => bail!("POST /tickets answered {status}: {answer}"),
        },
    )
}

/// One HTTP/1.1 request on a new connection (`Connection: close`); the status and the JSON
/// body (`Null` if it is not JSON).
fn request(
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    let mut stream = TcpStream::connect(LISTEN)?;
    stream.set_nodelay(true)?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {LISTEN}\r\nConnection: close\r\n");
    if let Some(key) = key {
        head.push_str(&format!("Authorization: Bearer {key}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if let Some(body) = body {
        stream.write_all(body.as_bytes())?;
    }
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP answer: {status_line:?}"))?;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if line.eq_ignore_ascii_case("transfer-encoding: chunked") {
            chunked = true;
        }
    }
    let mut raw = Vec::new();
    reader.read_to_end(&mut raw)?;
    if chunked {
        raw = dechunk(&raw);
    }
    Ok((status, serde_json::from_slice(&raw).unwrap_or(Value::Null)))
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&raw[..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || raw.len() < end + 2 + size {
            break;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[(end + 4 + size).min(raw.len())..];
    }
    out
}
