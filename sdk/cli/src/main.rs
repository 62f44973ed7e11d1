//! `dealer-plugin`: scaffold, build, test, push and enable a dealer platform plugin.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use dealer_plugin::harness::{Harness, Verdict};
use dealer_plugin::publish::{Binding, Client};
use dealer_plugin::{build, harness, scaffold};
use dealer_plugin_runtime::Hook;
use serde_json::Value;

#[derive(Parser)]
#[command(
    name = "dealer-plugin",
    version,
    about = "Scaffold, build, test and publish a dealer platform plugin"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Policy {
    Fallback,
    FailClosed,
}

impl Policy {
    fn as_str(self) -> &'static str {
        match self {
            Policy::Fallback => "fallback",
            Policy::FailClosed => "fail_closed",
        }
    }
}

#[derive(clap::Args)]
struct Server {
    /// The host, e.g. https://dealer.example (or its API, .../api/v1).
    #[arg(long, env = "DEALER_HOST")]
    host: String,
    /// An API key (`dealer-host keys create`).
    #[arg(long, env = "DEALER_API_KEY", hide_env_values = true)]
    key: String,
}

#[derive(Subcommand)]
enum Command {
    /// Scaffolds a plugin crate in <dir>/<name>.
    New {
        name: String,
        /// The extension point.
        #[arg(long)]
        hook: String,
        /// The parent directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The platform's `sdk` directory (default: the SDK this CLI was built with).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Builds the plugin into a component and validates it like the host does.
    Build {
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Runs every fixture through the built component.
    Test {
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The fixtures' directory, relative to --dir.
        #[arg(long, default_value = "fixtures")]
        fixtures: PathBuf,
    },
    /// Creates the plugin if needed and uploads the built component as a version.
    Push {
        #[command(flatten)]
        server: Server,
        /// Default: the package name.
        #[arg(long)]
        name: Option<String>,
        /// Default: the package version.
        #[arg(long)]
        version: Option<String>,
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Enables a plugin for a dealer, pinned to a version.
    Enable {
        #[command(flatten)]
        server: Server,
        #[arg(long)]
        dealer: i64,
        #[arg(long)]
        name: String,
        /// Default: the version in the Cargo.toml of --dir.
        #[arg(long)]
        version: Option<String>,
        /// The dealer's configuration, a JSON object.
        #[arg(long, default_value = "{}")]
        config: String,
        #[arg(long, value_enum, default_value = "fallback")]
        policy: Policy,
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Re-pins a dealer's hook to another version.
    Pin {
        #[command(flatten)]
        server: Server,
        #[arg(long)]
        dealer: i64,
        #[arg(long)]
        hook: String,
        #[arg(long)]
        version: String,
    },
    /// Returns a dealer's hook to the version pinned before.
    Rollback {
        #[command(flatten)]
        server: Server,
        #[arg(long)]
        dealer: i64,
        #[arg(long)]
        hook: String,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command; `Ok(false)` when it ran but something failed (a fixture).
fn run(command: Command) -> Result<bool> {
    match command {
        Command::New {
            name,
            hook,
            dir,
            sdk,
        } => {
            let hook = scaffold::parse_hook(&hook)?;
            let sdk = sdk.unwrap_or_else(scaffold::default_sdk);
            let made = scaffold::new_plugin(&name, hook, &dir, &sdk)?;
            println!("created {} ({hook} plugin)", made.display());
            println!(
                "next: cd {} && dealer-plugin build && dealer-plugin test",
                made.display()
            );
        }
        Command::Build { dir } => {
            let plugin = build::cargo_build(&dir)?;
            let runtime = build::local_runtime()?;
            let loaded = build::load(&runtime, &plugin.wasm)?;
            let size = std::fs::metadata(&plugin.wasm)?.len();
            println!("{}", plugin.wasm.display());
            println!(
                "{size} bytes, hook {}, WIT {}",
                loaded.info.hook, loaded.info.wit_version
            );
        }
        Command::Test { dir, fixtures } => return test(&dir, &fixtures),
        Command::Push {
            server,
            name,
            version,
            dir,
        } => {
            let plugin = build::plugin_crate(&dir)?;
            let runtime = build::local_runtime()?;
            let hook = build::load(&runtime, &plugin.wasm)?.info.hook;
            let schema_path = plugin.dir.join("config.schema.json");
            let schema =
                if schema_path.is_file() {
                    let text = std::fs::read_to_string(&schema_path)?;
                    Some(serde_json::from_str::<Value>(&text).with_context(|| {
                        format!("{} is not JSON: fix it", schema_path.display())
                    })?)
                } else {
                    None
                };
            let wasm = std::fs::read(&plugin.wasm)?;
            let name = name.unwrap_or(plugin.name.clone());
            let version = version.unwrap_or(plugin.version.clone());
            let pushed = block_on(Client::new(&server.host, &server.key)?.push(
                &name,
                hook,
                &format!("{name} ({hook})"),
                schema,
                &version,
                wasm,
            ))?;
            println!(
                "plugin {} `{}`: version {version} uploaded",
                pushed.id, pushed.name
            );
            println!("{}", pushed.id);
        }
        Command::Enable {
            server,
            dealer,
            name,
            version,
            config,
            policy,
            dir,
        } => {
            let version = match version {
                Some(version) => version,
                None => {
                    build::plugin_crate(&dir)
                        .context(
                            "pass --version, or --dir with the plugin whose version to enable",
                        )?
                        .version
                }
            };
            let config: Value = serde_json::from_str(&config)
                .context("--config is not JSON: pass an object such as '{\"percent\": 2}'")?;
            if !config.is_object() {
                bail!("--config must be a JSON object such as '{{\"percent\": 2}}'");
            }
            let client = Client::new(&server.host, &server.key)?;
            print_binding(
                dealer,
                &block_on(client.enable(dealer, &name, &version, config, policy.as_str()))?,
            );
        }
        Command::Pin {
            server,
            dealer,
            hook,
            version,
        } => {
            let hook = hook_arg(&hook)?;
            let client = Client::new(&server.host, &server.key)?;
            print_binding(dealer, &block_on(client.pin(dealer, hook, &version))?);
        }
        Command::Rollback {
            server,
            dealer,
            hook,
        } => {
            let hook = hook_arg(&hook)?;
            let client = Client::new(&server.host, &server.key)?;
            print_binding(dealer, &block_on(client.rollback(dealer, hook))?);
        }
    }
    Ok(true)
}

fn hook_arg(text: &str) -> Result<Hook> {
    Hook::parse(text).with_context(|| {
        format!(
            "`{text}` is not an extension point: pass --hook with one of {}",
            Hook::ALL.map(Hook::as_str).join(", ")
        )
    })
}

fn block_on<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(future)
}

fn print_binding(dealer: i64, binding: &Binding) {
    println!(
        "dealer {dealer}, {}: plugin {} `{}` version {} (previous {}), binding version {}",
        binding.hook,
        binding.plugin_id,
        binding.plugin_name,
        binding.pinned_version,
        binding.previous_version.as_deref().unwrap_or("none"),
        binding.version
    );
}

fn test(dir: &Path, fixtures: &Path) -> Result<bool> {
    let plugin = build::plugin_crate(dir)?;
    let harness = Harness::new(&plugin.wasm)?;
    let mut passed = true;
    for fixture in harness::fixtures(&plugin.dir.join(fixtures))? {
        let result = harness.run(&fixture)?;
        let name = fixture.file_name().unwrap_or_default().to_string_lossy();
        let cost = format!("fuel {}, {:?}", result.fuel_used, result.duration);
        match &result.verdict {
            Verdict::Ok => println!("ok       {name} ({cost})"),
            Verdict::Differs { expected, actual } => {
                passed = false;
                println!("differs  {name} ({cost})");
                println!("  expected: {}", serde_json::to_string_pretty(expected)?);
                println!("  actual:   {}", serde_json::to_string_pretty(actual)?);
            }
            Verdict::Partner { problems } => {
                passed = false;
                println!("partner  {name} ({cost}): the partner calls differ from the fixture's");
                for problem in problems {
                    println!("  {problem}");
                }
            }
            Verdict::Failed { outcome, error } => {
                passed = false;
                println!(
                    "failed   {name} ({cost}): {}: {error}",
                    serde_json::to_value(outcome)?.as_str().unwrap_or_default()
                );
            }
        }
    }
    Ok(passed)
}
