//! `dealer-host`: serve the API, migrate the database, seed demo or benchmark data, manage keys.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use dealer_host::access::{Role, keys, logins};
use dealer_host::audit::Actor;
use dealer_host::config::{LogFormat, Overrides, Settings};
use dealer_host::plugins::catalogue;
use dealer_host::plugins::runtime::{Limits, Runtime};
use dealer_host::tls::TlsFiles;
use dealer_host::{Db, imports, network, outbox, seed};
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
        /// Serve the console from this directory (a build of `console/`, e.g. one being
        /// developed) instead of the one embedded in the binary.
        #[arg(long)]
        console_dir: Option<PathBuf>,
        /// The address owners reach this host at (`https://crm.example.cn`): the links in
        /// their messages start with it (default: the listening address).
        #[arg(long, env = "DEALER_PUBLIC_URL")]
        public_url: Option<String>,
        /// Send e-mail through this SMTP relay (`smtp://relay:587`, STARTTLS when offered;
        /// `?tls=required` to insist; `smtps://relay:465`; user and password in the URL).
        /// Without it e-mail goes to the log.
        #[arg(long, env = "DEALER_SMTP_URL")]
        smtp_url: Option<String>,
        /// The sender of e-mail.
        #[arg(
            long,
            env = "DEALER_MAIL_FROM",
            default_value = "dealer-platform@localhost"
        )]
        mail_from: String,
    },
    /// Apply pending database migrations.
    Migrate,
    /// Load data: the demo network, and optionally many more customers for benchmarks.
    Seed {
        /// Add this many generated customers (with vehicles and history) to the demo dealers.
        #[arg(long)]
        customers: Option<u64>,
        /// The KPI benchmark's network: grow it to this many dealers, spread the generated
        /// customers over all of them, each with two years of visits, tickets, surveys and leads.
        #[arg(long)]
        dealers: Option<u64>,
    },
    /// Create, list and revoke API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage staff logins for the console.
    Staff {
        #[command(subcommand)]
        command: StaffCommand,
    },
    /// Publish built plugins to HQ's catalogue and enable them for a dealer.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// Print the API's OpenAPI document (JSON), as `/api/v1/openapi.json` serves it; needs
    /// no database.
    Openapi,
    /// Import customers, vehicles or service history from a CSV or XLSX export (or resume an
    /// interrupted import with --resume); rows are committed in batches, rows already there
    /// are left unchanged, and every refused row is written to a CSV report.
    Import(ImportArgs),
}

#[derive(clap::Args)]
struct ImportArgs {
    /// The dealer's code (e.g. BJ-CY-4S) or id.
    #[arg(long, required_unless_present = "resume")]
    dealer: Option<String>,
    /// customers, vehicles or service_history.
    #[arg(long, value_parser = parse_kind, required_unless_present = "resume")]
    kind: Option<imports::Kind>,
    /// The export, `.csv` (UTF-8 or GBK) or `.xlsx`.
    #[arg(long, required_unless_present = "resume")]
    file: Option<PathBuf>,
    /// Field → column header, a TOML or JSON file (`name = "客户姓名"`); other fields are
    /// fed by the columns named like them (姓名, 手机, 车牌, VIN, 里程, ...).
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// csv or xlsx (default: from the file's extension).
    #[arg(long, value_parser = parse_format)]
    format: Option<imports::Format>,
    /// Check every row, store nothing, and report the refused ones.
    #[arg(long)]
    dry_run: bool,
    /// Resume the import job with this id after its last committed batch.
    #[arg(long, conflicts_with_all = ["dealer", "kind", "file", "mapping", "format", "dry_run"])]
    resume: Option<i64>,
    /// Where to write the refused rows (default import-<job id>-errors.csv).
    #[arg(long)]
    report: Option<PathBuf>,
}

fn parse_kind(s: &str) -> Result<imports::Kind, String> {
    imports::Kind::parse(s).ok_or_else(|| {
        let names: Vec<_> = imports::Kind::ALL.iter().map(|k| k.as_str()).collect();
        format!("unknown kind {s:?}; one of: {}", names.join(", "))
    })
}

fn parse_format(s: &str) -> Result<imports::Format, String> {
    imports::Format::parse(s).ok_or_else(|| format!("unknown format {s:?}; csv or xlsx"))
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

#[derive(Subcommand)]
enum StaffCommand {
    /// Set the password of a login (read from DEALER_STAFF_PASSWORD, or else one line of
    /// standard input; never an argument, which other users could see). With --staff-id it
    /// gives that staff member a login named --username first, or renames theirs.
    SetPassword {
        #[arg(long)]
        username: String,
        #[arg(long)]
        staff_id: Option<i64>,
    },
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
        Command::Seed { customers, dealers } => {
            let summary = seed::demo(&db).await?;
            println!("{summary}");
            if customers.is_some() || dealers.is_some() {
                let added = seed::scale(&db, customers.unwrap_or(0), dealers).await?;
                println!("added {added} generated customers");
            }
        }
        Command::Keys { command } => keys_command(&db, command).await?,
        Command::Staff { command } => staff_command(&db, command).await?,
        Command::Plugins { command } => plugins_command(&db, &settings.data_dir, command).await?,
        Command::Openapi => unreachable!("printed before the database is opened"),
        Command::Import(args) => import_command(&db, args).await?,
        Command::Serve {
            demo,
            sla_interval_secs,
            tls_cert,
            tls_key,
            console_dir,
            public_url,
            smtp_url,
            mail_from,
            ..
        } => {
            let listener = tokio::net::TcpListener::bind(settings.listen)
                .await
                .with_context(|| format!("cannot listen on {}", settings.listen))?;
            let addr = listener.local_addr()?;
            let secure_cookies = tls_cert.is_some();
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
                let logins = seed::issue_demo_logins(&db).await?;
                println!("{summary}\n");
                println!(
                    "Dealer platform demo on {} ({} database)",
                    addr,
                    db.backend().name()
                );
                println!("  the console:     http://{addr}/");
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
                println!("\nConsole logins (fresh passwords each start):");
                for login in logins {
                    let who = match login.position {
                        Some(position) => {
                            format!("{} ({})", login.role.as_str(), position.as_str())
                        }
                        None => login.role.as_str().to_owned(),
                    };
                    println!(
                        "  {who:<30} {:<32} {}  {}",
                        login.username, login.password, login.unit_name
                    );
                }
                println!();
            }
            tracing::info!(%addr, backend = db.backend().name(), "serving");
            let mut state = dealer_host::AppState::new(db, &settings.data_dir)
                .map_err(|e| anyhow::anyhow!("cannot start the plugin runtime: {e:#}"))?;
            state.sla_interval = std::time::Duration::from_secs(sla_interval_secs);
            state.secure_cookies = secure_cookies;
            state.console_dir = console_dir;
            let scheme = if secure_cookies { "https" } else { "http" };
            let public_url = public_url.unwrap_or_else(|| format!("{scheme}://{addr}"));
            let through_plugins =
                std::sync::Arc::new(outbox::channels::PluginChannel::new(state.plugins.clone()));
            let mut senders = outbox::Senders::log_only()
                .public_url(&public_url)
                .with("sms", through_plugins.clone())
                .with("wechat", through_plugins);
            if let Some(url) = smtp_url {
                let smtp =
                    outbox::email::Smtp::new(&url, &mail_from).map_err(anyhow::Error::msg)?;
                senders = senders.with("email", std::sync::Arc::new(smtp));
            }
            dealer_host::serve_with_workers(
                endpoint,
                state,
                std::sync::Arc::new(senders),
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

/// Problems printed on the terminal; all of them go to the report file.
const PRINTED_PROBLEMS: usize = 20;

async fn import_command(db: &Db, args: ImportArgs) -> anyhow::Result<()> {
    let id = match args.resume {
        Some(id) => id,
        None => {
            let (Some(dealer), Some(kind), Some(file)) = (args.dealer, args.kind, args.file) else {
                bail!("name the --dealer, the --kind and the --file, or --resume a job");
            };
            let dealer_id = find_dealer(db, &dealer).await?;
            let mapping = match &args.mapping {
                Some(path) => read_mapping(path)?,
                None => imports::Mapping::new(),
            };
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let new = imports::NewImport {
                dealer_id,
                kind,
                format: args.format,
                file_name: file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                bytes,
                mapping,
                dry_run: args.dry_run,
            };
            let job = imports::create(db, Actor::COMMAND_LINE, new)
                .await
                .map_err(|e| {
                    anyhow::anyhow!("cannot import {}: {}", file.display(), describe(&e))
                })?;
            eprintln!(
                "import job {} ({} rows of {}; resume with `dealer-host import --resume {}`)",
                job.id,
                job.rows_total,
                job.kind.as_str(),
                job.id
            );
            job.id
        }
    };
    let mut conn = db.pool().acquire().await?;
    let job = imports::get_unscoped(&mut conn, id)
        .await
        .map_err(|e| anyhow::anyhow!("import {id}: {}", describe(&e)))?;
    drop(conn);
    let bar = indicatif::ProgressBar::new(u64::try_from(job.rows_total).unwrap_or(0)).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} {bar:40} {human_pos}/{human_len} rows ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(if job.dry_run { "checking" } else { "importing" });
    bar.set_position(u64::try_from(job.rows_done).unwrap_or(0));
    bar.reset_eta();
    let started = std::time::Instant::now();
    let first_done = job.rows_done;
    let job = imports::run(
        db,
        Actor::COMMAND_LINE,
        id,
        imports::Pass::default(),
        |job| {
            bar.set_position(u64::try_from(job.rows_done).unwrap_or(0));
        },
    )
    .await
    .map_err(|e| match e {
        dealer_host::error::Error::Conflict { .. } => anyhow::anyhow!("{}", describe(&e)),
        e => anyhow::anyhow!(
            "import {id} stopped: {}; resume it with --resume {id}",
            describe(&e)
        ),
    })?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let rows = job.rows_done - first_done;
    println!(
        "import {} of {} {}: {} rows, {} {}, {} unchanged, {} refused ({rows} rows in {seconds:.1} s, {:.0} rows/s)",
        job.id,
        job.kind.as_str(),
        if job.dry_run {
            "(dry run, nothing stored)"
        } else {
            "done"
        },
        job.rows_done,
        job.rows_created,
        if job.dry_run {
            "would be created"
        } else {
            "created"
        },
        job.rows_unchanged,
        job.rows_failed,
        rows as f64 / seconds.max(0.001),
    );
    if job.rows_failed > 0 {
        let path = args
            .report
            .unwrap_or_else(|| PathBuf::from(format!("import-{}-errors.csv", job.id)));
        let printed = write_report(db, job.id, &path).await?;
        for problem in printed {
            println!(
                "  line {}: {} {}: {}",
                problem.line, problem.field, problem.code, problem.message
            );
        }
        println!("every refused row is in {}", path.display());
    }
    Ok(())
}

/// Writes every problem of job `id` to `path` as CSV and returns the first few.
async fn write_report(
    db: &Db,
    id: i64,
    path: &std::path::Path,
) -> anyhow::Result<Vec<imports::RowError>> {
    let mut writer =
        csv::Writer::from_path(path).with_context(|| format!("cannot write {}", path.display()))?;
    writer.write_record(["line", "field", "code", "message"])?;
    let mut conn = db.pool().acquire().await?;
    let (mut after, mut first) = (None, Vec::new());
    loop {
        let page = imports::errors(&mut conn, id, after, 1000).await?;
        for problem in page.iter().take(1000) {
            writer.write_record([
                problem.line.to_string().as_str(),
                &problem.field,
                &problem.code,
                &problem.message,
            ])?;
            if first.len() < PRINTED_PROBLEMS {
                first.push(problem.clone());
            }
        }
        if page.len() <= 1000 {
            break;
        }
        after = page.get(999).map(|p| p.id);
    }
    writer.flush()?;
    Ok(first)
}

fn read_mapping(path: &std::path::Path) -> anyhow::Result<imports::Mapping> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a JSON object of field to column", path.display()))
    } else {
        toml::from_str(&text)
            .with_context(|| format!("{} is not a TOML table of field to column", path.display()))
    }
}

/// The id of the dealer with this code, or this id.
async fn find_dealer(db: &Db, dealer: &str) -> anyhow::Result<i64> {
    let mut conn = db.pool().acquire().await?;
    let unit = match network::find_by_code(&mut conn, dealer).await? {
        Some(unit) => Some((unit.id, unit.kind)),
        None => match dealer.parse::<i64>() {
            Ok(id) => network::kind_and_path(&mut conn, id)
                .await?
                .map(|(kind, _)| (id, kind)),
            Err(_) => None,
        },
    };
    match unit {
        Some((id, kind)) if kind == "dealer" || kind == "branch" => Ok(id),
        Some((_, kind)) => bail!("{dealer:?} is a unit of kind {kind}, not a dealer"),
        None => bail!("no dealer with code or id {dealer:?} (see GET /api/v1/network/units)"),
    }
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

async fn staff_command(db: &Db, command: StaffCommand) -> anyhow::Result<()> {
    match command {
        StaffCommand::SetPassword { username, staff_id } => {
            let password = match std::env::var("DEALER_STAFF_PASSWORD") {
                Ok(password) => password,
                Err(_) => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("cannot read the password from standard input")?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let staff_id = match staff_id {
                Some(id) => id,
                None => {
                    let mut conn = db.pool().acquire().await?;
                    logins::staff_of_username(&mut conn, &username)
                        .await?
                        .with_context(|| {
                            format!("no login is named {username:?}; give --staff-id to make one")
                        })?
                }
            };
            let change = network::LoginChange::new(&username, Some(&password)).await?;
            let mut tx = db.begin_write().await?;
            let login = network::set_login(&mut tx, Actor::COMMAND_LINE, staff_id, &change).await?;
            tx.commit().await?;
            println!(
                "password set for {} (staff {}); their sessions have ended",
                login.username, login.staff_id
            );
        }
    }
    Ok(())
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
