//! `dealer-host`: serve the API, migrate the database, seed demo or benchmark data, manage keys.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use dealer_host::access::{Role, keys};
use dealer_host::audit::Actor;
use dealer_host::config::{LogFormat, Overrides, Settings};
use dealer_host::plugins::catalogue;
use dealer_host::plugins::runtime::{Limits, Runtime};
use dealer_host::tls::TlsFiles;
use dealer_host::{Db, network, outbox, seed};
use tracing_subscriber::EnvFilter;

/// Every plugin call allocates and frees a store, an instance and its bindings; mimalloc
/// makes those small allocations cheaper than the system allocator (measured in
/// `tests/benches/plugin_calls.rs`, which uses the same allocator).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "dealer-host", version, about = "The dealer platform host")]
struct Cli {
    /// TOML file with database_url, data_dir, listen, log_format.
    #[arg(long, global = true, env = "DEALER_CONFIG")]
    config: Option<PathBuf>,
    /// sqlite://path?mode=rwc (default: a file under the data directory) or postgres://...
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Where the embedded database and other state live (default ./data).
    #[arg(long, global = true, env = "DEALER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[arg(long, global = true, env = "DEALER_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database and serve the API.
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, env = "DEALER_LISTEN")]
        listen: Option<SocketAddr>,
        /// Load the demo network if the database is empty and print a fresh key per role.
        #[arg(long)]
        demo: bool,
        /// Seconds between outbox passes: due follow-ups of committed changes (domain events),
        /// then due messages (default 5; 0 turns both off).
        #[arg(long, env = "DEALER_OUTBOX_INTERVAL_SECS")]
        outbox_interval_secs: Option<u64>,
        /// Seconds between scheduler passes: reminders, points expiry (default 3600; 0: off).
        #[arg(long, env = "DEALER_SCHEDULER_INTERVAL_SECS")]
        scheduler_interval_secs: Option<u64>,
        /// Seconds between two sweeps for tickets past their SLA deadlines.
        #[arg(long, env = "DEALER_SLA_INTERVAL_SECS", default_value_t = 60,
            value_parser = clap::value_parser!(u64).range(1..))]
        sla_interval_secs: u64,
        /// Serve HTTPS with this PEM certificate chain (with --tls-key); the files are read
        /// again when they change, without a restart.
        #[arg(long, env = "DEALER_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, env = "DEALER_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Apply pending database migrations.
    Migrate,
    /// Load data: the demo network, and optionally many more customers for benchmarks.
    Seed {
        /// Add this many generated customers (with vehicles and history) to the demo dealers.
        #[arg(long)]
        customers: Option<u64>,
    },
    /// Create, list and revoke API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Publish built plugins to HQ's catalogue and enable them for a dealer.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// Print the API's OpenAPI document (JSON), as `/api/v1/openapi.json` serves it; needs
    /// no database.
    Openapi,
}

#[derive(Subcommand)]
enum PluginsCommand {
    /// Validate a component and publish it as a version of a catalogue plugin (registered on
    /// first publication; the same bytes again change nothing).
    Publish {
        /// The component (`.wasm`, built for wasm32-wasip2).
        wasm: PathBuf,
        /// The catalogue name, e.g. `commission`.
        #[arg(long)]
        name: String,
        /// Semantic version, e.g. 1.0.0.
        #[arg(long)]
        version: String,
        /// The configuration schema (JSON) dealers' configurations are checked against.
        #[arg(long)]
        schema: Option<PathBuf>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Enable a catalogue plugin for a dealer's extension point.
    Enable {
        /// The dealer's code, e.g. BJ-CY-4S.
        #[arg(long)]
        dealer: String,
        #[arg(long)]
        name: String,
        /// Default: the newest version.
        #[arg(long)]
        version: Option<String>,
        /// The dealer's configuration of the plugin, a JSON object.
        #[arg(long = "plugin-config", default_value = "{}")]
        plugin_config: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; it is printed once and only its digest is stored.
    Create {
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Code of the network unit the key acts for (e.g. HQ, or a dealer's code).
        #[arg(long)]
        org: String,
        #[arg(long, default_value = "created on the command line")]
        label: String,
    },
    /// Revoke a key by id or prefix.
    Revoke { key: String },
    /// List keys (never their secrets).
    List,
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| {
        let names: Vec<_> = dealer_host::access::ALL_ROLES
            .iter()
            .map(|r| r.as_str())
            .collect();
        format!("unknown role {s:?}; one of: {}", names.join(", "))
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Openapi = cli.command {
        println!("{}", dealer_host::api::document().to_pretty_json()?);
        return Ok(());
    }
    let (listen, outbox_interval_secs, scheduler_interval_secs) = match &cli.command {
        Command::Serve {
            listen,
            outbox_interval_secs,
            scheduler_interval_secs,
            ..
        } => (*listen, *outbox_interval_secs, *scheduler_interval_secs),
        _ => (None, None, None),
    };
    let settings = Settings::resolve(Overrides {
        config_file: cli.config,
        database_url: cli.database_url,
        data_dir: cli.data_dir,
        listen,
        log_format: cli.log_format,
        outbox_interval_secs,
        scheduler_interval_secs,
    })?;
    init_tracing(settings.log_format);

    let db = Db::connect(&settings.database_url).await.with_context(|| {
        format!(
            "cannot open the {} database",
            backend_name(&settings.database_url)
        )
    })?;
    db.migrate().await.context("cannot migrate the database")?;

    match cli.command {
        Command::Migrate => println!("database migrated ({})", db.backend().name()),
        Command::Seed { customers } => {
            let summary = seed::demo(&db).await?;
            println!("{summary}");
            if let Some(n) = customers {
                let added = seed::scale(&db, n).await?;
                println!("added {added} generated customers");
            }
        }
        Command::Keys { command } => keys_command(&db, command).await?,
        Command::Plugins { command } => plugins_command(&db, &settings.data_dir, command).await?,
        Command::Openapi => unreachable!("printed before the database is opened"),
        Command::Serve {
            demo,
            sla_interval_secs,
            tls_cert,
            tls_key,
            ..
        } => {
            let listener = tokio::net::TcpListener::bind(settings.listen)
                .await
                .with_context(|| format!("cannot listen on {}", settings.listen))?;
            let addr = listener.local_addr()?;
            let endpoint = match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => dealer_host::Endpoint::Tls(
                    dealer_host::tls::Listener::new(listener, TlsFiles::new(cert, key))
                        .context("cannot start TLS")?,
                ),
                _ => dealer_host::Endpoint::Plain(listener),
            };
            if demo {
                let summary = seed::demo(&db).await?;
                let issued = seed::issue_demo_keys(&db).await?;
                println!("{summary}\n");
                println!(
                    "Dealer platform demo on {} ({} database)",
                    addr,
                    db.backend().name()
                );
                println!("  browse the API:  http://{addr}/docs");
                println!(
                    "  try:             curl -H 'Authorization: Bearer <key>' http://{addr}/api/v1/customers\n"
                );
                println!("API keys (fresh each start; earlier demo keys are revoked):");
                for key in issued {
                    let who = match key.position {
                        Some(position) => format!("{} ({})", key.role.as_str(), position.as_str()),
                        None => key.role.as_str().to_owned(),
                    };
                    println!("  {who:<30} {}  {}", key.key, key.unit_name);
                }
                println!();
            }
            tracing::info!(%addr, backend = db.backend().name(), "serving");
            let mut state = dealer_host::AppState::new(db, &settings.data_dir)
                .map_err(|e| anyhow::anyhow!("cannot start the plugin runtime: {e:#}"))?;
            state.sla_interval = std::time::Duration::from_secs(sla_interval_secs);
            dealer_host::serve_with_workers(
                endpoint,
                state,
                std::sync::Arc::new(outbox::Senders::log_only()),
                settings.workers,
                shutdown_signal(),
            )
            .await?;
        }
    }
    Ok(())
}

async fn plugins_command(
    db: &Db,
    data_dir: &std::path::Path,
    command: PluginsCommand,
) -> anyhow::Result<()> {
    match command {
        PluginsCommand::Publish {
            wasm,
            name,
            version,
            schema,
            description,
        } => {
            let bytes =
                std::fs::read(&wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
            let config_schema = match schema {
                Some(path) => Some(
                    serde_json::from_slice(
                        &std::fs::read(&path)
                            .with_context(|| format!("cannot read {}", path.display()))?,
                    )
                    .with_context(|| format!("{} is not JSON", path.display()))?,
                ),
                None => None,
            };
            let version = semver::Version::parse(&version)
                .with_context(|| format!("{version:?} is not a semantic version such as 1.0.0"))?;
            let runtime = std::sync::Arc::new(
                Runtime::new(Some(&data_dir.join("plugin-cache")), Limits::default())
                    .map_err(|e| anyhow::anyhow!("cannot start the plugin runtime: {e:#}"))?,
            );
            let published = catalogue::publish(
                db,
                &runtime,
                catalogue::Publish {
                    name: &name,
                    version: version.clone(),
                    description: &description,
                    config_schema,
                    bytes,
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("cannot publish {}: {}", wasm.display(), describe(&e)))?;
            match published {
                catalogue::Published::Added(plugin, hook) => {
                    println!(
                        "published {}@{version} ({hook}), plugin id {}",
                        plugin.name, plugin.id
                    )
                }
                catalogue::Published::Unchanged(plugin) => {
                    println!("{}@{version} is already published", plugin.name)
                }
            }
        }
        PluginsCommand::Enable {
            dealer,
            name,
            version,
            plugin_config,
        } => {
            let config = serde_json::from_str(&plugin_config)
                .with_context(|| format!("--plugin-config {plugin_config:?} is not JSON"))?;
            let binding = catalogue::enable(db, &dealer, &name, version.as_deref(), config)
                .await
                .map_err(|e| {
                    anyhow::anyhow!("cannot enable {name} for {dealer}: {}", describe(&e))
                })?;
            println!(
                "{dealer}: {} uses {}@{}",
                binding.hook, binding.plugin_name, binding.pinned_version
            );
        }
    }
    Ok(())
}

/// A domain error for a person at a terminal: with each invalid field's message.
fn describe(error: &dealer_host::error::Error) -> String {
    match error {
        dealer_host::error::Error::Invalid(fields) => fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

async fn keys_command(db: &Db, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { role, org, label } => {
            let mut tx = db.begin_write().await?;
            let Some(unit) = network::find_by_code(&mut tx, &org).await? else {
                bail!("no network unit with code {org:?} (see GET /api/v1/network/units)");
            };
            let created =
                network::create_key(&mut tx, Actor::COMMAND_LINE, role, unit.id, None, &label)
                    .await?;
            tx.commit().await?;
            println!("{}", created.key);
            eprintln!(
                "key {} ({} at {}); store it now, it is not shown again",
                created.info.prefix,
                role.as_str(),
                unit.name
            );
        }
        KeysCommand::Revoke { key } => {
            let mut tx = db.begin_write().await?;
            let revoked = network::revoke_key(&mut tx, Actor::COMMAND_LINE, &key).await?;
            tx.commit().await?;
            println!("revoked key {} ({})", revoked.prefix, revoked.role.as_str());
        }
        KeysCommand::List => {
            let mut conn = db.pool().acquire().await?;
            for k in keys::list_all(&mut conn).await? {
                let state = if k.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:>4}  {}  {:<17} unit {:<4} {:<8} {}",
                    k.id,
                    k.prefix,
                    k.role.as_str(),
                    k.org_unit_id,
                    state,
                    k.label
                );
            }
        }
    }
    Ok(())
}

fn backend_name(url: &str) -> &'static str {
    dealer_host::Backend::from_url(url)
        .map(|b| b.name())
        .unwrap_or("configured")
}

fn init_tracing(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = terminate => {} }
    tracing::info!("shutting down");
}
