//! Project automation, so that the README's two commands work on a fresh machine:
//! `cargo xtask demo` runs the product on its embedded default, `cargo xtask test` runs
//! every test on SQLite and on PostgreSQL; `cargo xtask bench` measures the host at scale.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

mod bench;
mod bench_kpis;
mod console;
mod http;

#[derive(Parser)]
#[command(
    name = "xtask",
    about = "Run the demo, the whole test suite or the benchmark"
)]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the host (release) and the first-party plugins, publish them to the demo
    /// catalogue (enabled for the flagship dealer), and serve the demo network on SQLite.
    Demo {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
    },
    /// Build the console, check formatting and lints, then run every test on SQLite and
    /// PostgreSQL: the Rust suite, then the console's browser tests against the real host.
    Test {
        /// Skip `cargo fmt --check` and clippy.
        #[arg(long)]
        no_lint: bool,
    },
    /// Write the host's OpenAPI document to `console/openapi.json`, which the console's API
    /// client is generated from (the tests fail while it is not current).
    Openapi,
    /// Build the host (release), seed a scale network, serve it and print the latencies of
    /// the 360 view and customer search (1 and 8 clients) and the cost of a hook call.
    Bench {
        /// Generated customers added to the demo network.
        #[arg(long, default_value_t = 1_000_000)]
        customers: u64,
        /// A `postgres://` URL of an empty database (default: a fresh SQLite file).
        #[arg(long)]
        database_url: Option<String>,
        /// Requests per client for each query.
        #[arg(long, default_value_t = 200)]
        requests: usize,
        /// Measure the database an earlier run seeded.
        #[arg(long)]
        reuse: bool,
        /// Measure the KPI cockpits instead (HQ, a region, a store) on a network of
        /// `--dealers` dealers whose customers have two years of history.
        #[arg(long)]
        kpis: bool,
        /// Dealers of the KPI benchmark's network.
        #[arg(long, default_value_t = 500)]
        dealers: u64,
        /// With --kpis: concurrent clients of the second round (1: no second round).
        #[arg(long, default_value_t = 4)]
        clients: usize,
    },
}

fn main() -> anyhow::Result<()> {
    let root = workspace_root();
    match Cli::parse().command {
        Task::Demo { listen } => {
            setup()?;
            console::build(&root)?;
            run(
                cargo(&root).args(["build", "--release", "-p", "dealer-host"]),
                "build the host",
            )?;
            let plugins = first_party_plugins(&root)?;
            let mut build = cargo(&root);
            build.args(["build", "--target", "wasm32-wasip2", "--profile", "plugin"]);
            for plugin in &plugins {
                build.args(["-p", &plugin.package]);
            }
            run(&mut build, "build the first-party plugins")?;
            let binary = target_dir(&root).join("release").join("dealer-host");
            let host = |args: &[&str], what: &str| {
                run(Command::new(&binary).current_dir(&root).args(args), what)
            };
            host(&["seed"], "load the demo network")?;
            let built = target_dir(&root).join("wasm32-wasip2").join("plugin");
            for plugin in &plugins {
                let args = plugin.publish_args(&built);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                host(&args, &format!("publish the {} plugin", plugin.name))?;
                // A channel plugin sends through the dealer's own provider account, which the
                // demo dealer has none of: it is in the catalogue, not enabled.
                if plugin.name.starts_with("channel-") {
                    continue;
                }
                host(
                    &[
                        "plugins",
                        "enable",
                        "--dealer",
                        DEMO_DEALER,
                        "--name",
                        &plugin.name,
                    ],
                    &format!("enable the {} plugin for the demo dealer", plugin.name),
                )?;
            }
            host(&["serve", "--demo", "--listen", &listen], "serve the demo")
        }
        Task::Test { no_lint } => {
            setup()?;
            console::ensure_chromium()?;
            console::build(&root)?;
            if !no_lint {
                console::lint(&root)?;
                run(
                    cargo(&root).args(["fmt", "--all", "--", "--check"]),
                    "check formatting (run `cargo fmt`)",
                )?;
                run(
                    cargo(&root).args([
                        "clippy",
                        "--workspace",
                        "--all-targets",
                        "--",
                        "-D",
                        "warnings",
                    ]),
                    "lint (fix the clippy findings above)",
                )?;
            }
            run(
                cargo(&root).args(["build", "--workspace", "--bins"]),
                "build the host",
            )?;
            let binary = target_dir(&root).join("debug").join("dealer-host");
            console::check_openapi(&root, &binary)?;
            run(cargo(&root).args(["test", "--workspace"]), "run the tests")?;
            console::browser_tests(&root, &binary, &target_dir(&root))
        }
        Task::Openapi => {
            run(
                cargo(&root).args(["build", "--workspace", "--bins"]),
                "build the host",
            )?;
            console::write_openapi(&root, &target_dir(&root).join("debug").join("dealer-host"))
        }
        Task::Bench {
            customers,
            database_url,
            requests,
            reuse,
            kpis,
            dealers,
            clients,
        } => {
            run(
                cargo(&root).args(["build", "--release", "-p", "dealer-host"]),
                "build the host",
            )?;
            if kpis {
                return bench_kpis::run(
                    &root,
                    &target_dir(&root),
                    &bench_kpis::Options {
                        customers,
                        dealers,
                        database_url,
                        requests,
                        reuse,
                        clients,
                    },
                );
            }
            bench::run(
                &root,
                &target_dir(&root),
                &bench::Options {
                    customers,
                    database_url,
                    requests,
                    reuse,
                },
            )
        }
    }
}

/// One-time set-up a fresh machine needs: the wasm target the plugins build for.
fn setup() -> anyhow::Result<()> {
    run(
        Command::new("rustup").args(["target", "add", "wasm32-wasip2"]),
        "add the wasm32-wasip2 target",
    )
}

/// The demo's flagship dealer, which gets every first-party plugin enabled but the channels.
const DEMO_DEALER: &str = "BJ-CY-4S";

/// A first-party plugin crate under `plugins/`.
struct FirstParty {
    /// The catalogue name: the folder's name.
    name: String,
    /// The crate: `plugin-<name>`.
    package: String,
    version: String,
    schema: Option<PathBuf>,
}

impl FirstParty {
    /// `dealer-host` arguments that publish this plugin's component, built into `built`
    /// (`<target>/wasm32-wasip2/plugin`), to HQ's catalogue, with its configuration schema.
    fn publish_args(&self, built: &Path) -> Vec<String> {
        let wasm = built.join(format!("{}.wasm", self.package.replace('-', "_")));
        let mut args = vec![
            "plugins".to_owned(),
            "publish".to_owned(),
            wasm.to_string_lossy().into_owned(),
            "--name".to_owned(),
            self.name.clone(),
            "--version".to_owned(),
            self.version.clone(),
        ];
        if let Some(schema) = &self.schema {
            args.extend(["--schema".to_owned(), schema.to_string_lossy().into_owned()]);
        }
        args
    }
}

fn first_party_plugins(root: &Path) -> anyhow::Result<Vec<FirstParty>> {
    let mut plugins = Vec::new();
    for entry in std::fs::read_dir(root.join("plugins")).context("cannot list plugins/")? {
        let dir = entry?.path();
        let manifest = dir.join("Cargo.toml");
        if !manifest.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&manifest)
            .with_context(|| format!("cannot read {}", manifest.display()))?;
        let field = |key: &str| {
            text.lines()
                .find_map(|line| {
                    let (k, v) = line.split_once('=')?;
                    (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
                })
                .with_context(|| format!("{} has no {key}", manifest.display()))
        };
        let schema = dir.join("config.schema.json");
        plugins.push(FirstParty {
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .context("a plugin folder has a name")?,
            package: field("name")?,
            version: field("version")?,
            schema: schema.exists().then_some(schema),
        });
    }
    plugins.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(plugins)
}

fn cargo(root: &Path) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root);
    c
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// The checkout `cargo xtask` was run in. `cargo run` sets `CARGO_MANIFEST_DIR` for the
/// process; the compile-time value can name another checkout when several share one target
/// directory (cargo then runs the binary last built by any of them).
fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir
        .parent()
        .expect("xtask sits in the workspace")
        .to_owned()
}

fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot start the command to {what}"))?;
    if !status.success() {
        bail!("failed to {what} ({status})");
    }
    Ok(())
}
