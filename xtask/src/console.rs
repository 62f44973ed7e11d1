//! The console's part of the two commands: its build (`npm ci`, `npm run build`, which the
//! host then embeds), its lint, the check that its OpenAPI document is the host's, and its
//! browser tests against the real host on a seeded database, on SQLite and PostgreSQL.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::http::request;
use crate::run;

/// The browser the tests drive: Debian's package.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The demo logins the browser tests sign in with: (username, role, position, unit code).
const LOGINS: [(&str, &str, Option<&str>, &str); 11] = [
    ("hq.hq_admin", "hq_admin", None, "HQ"),
    ("hq.hq_analyst", "hq_analyst", None, "HQ"),
    (
        "r-north.regional_manager",
        "regional_manager",
        None,
        "R-NORTH",
    ),
    (
        "bj-cy-4s.general_manager",
        "dealer_admin",
        Some("general_manager"),
        "BJ-CY-4S",
    ),
    (
        "bj-cy-4s.sales_manager",
        "sales",
        Some("sales_manager"),
        "BJ-CY-4S",
    ),
    (
        "bj-cy-4s.finance_desk",
        "sales",
        Some("finance_desk"),
        "BJ-CY-4S",
    ),
    (
        "bj-cy-4s.sales_consultant",
        "sales",
        Some("sales_consultant"),
        "BJ-CY-4S",
    ),
    (
        "bj-cy-4s.service_advisor",
        "service",
        Some("service_advisor"),
        "BJ-CY-4S",
    ),
    (
        "bj-cy-4s.technician",
        "service",
        Some("technician"),
        "BJ-CY-4S",
    ),
    (
        "sh-pd-4s.general_manager",
        "dealer_admin",
        Some("general_manager"),
        "SH-PD-4S",
    ),
    (
        "sh-pd-4s.sales_consultant",
        "sales",
        Some("sales_consultant"),
        "SH-PD-4S",
    ),
];

/// The password the browser tests' logins get.
const PASSWORD: &str = "console-test-2026";

fn dir(root: &Path) -> PathBuf {
    root.join("console")
}

fn npm(root: &Path) -> Command {
    let mut c = Command::new("npm");
    c.current_dir(dir(root));
    c
}

/// `npm ci` when the installed packages are not those of the lockfile, then `npm run build`
/// (the generated API client, the type check, the bundle in `console/dist`).
pub fn build(root: &Path) -> anyhow::Result<()> {
    let console = dir(root);
    let installed = console.join("node_modules/.package-lock.json");
    let lock = console.join("package-lock.json");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&installed) < modified(&lock) {
        run(
            npm(root).args(["ci", "--no-audit", "--no-fund"]),
            "install the console's packages (npm ci)",
        )?;
    }
    run(npm(root).args(["run", "build"]), "build the console")
}

/// The console's lint (ESLint); its type check is part of the build.
pub fn lint(root: &Path) -> anyhow::Result<()> {
    run(npm(root).args(["run", "lint"]), "lint the console")
}

/// Writes the host's OpenAPI document to `console/openapi.json`, which the console's client
/// is generated from.
pub fn write_openapi(root: &Path, binary: &Path) -> anyhow::Result<()> {
    let document = openapi(binary)?;
    std::fs::write(
        dir(root).join("openapi.json"),
        serde_json::to_string_pretty(&document)? + "\n",
    )
    .context("cannot write console/openapi.json")
}

/// Fails unless `console/openapi.json` is the host's document.
pub fn check_openapi(root: &Path, binary: &Path) -> anyhow::Result<()> {
    let path = dir(root).join("openapi.json");
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?,
    )?;
    if committed != openapi(binary)? {
        bail!(
            "console/openapi.json is not the host's OpenAPI document: run `cargo xtask openapi` and commit it"
        );
    }
    Ok(())
}

fn openapi(binary: &Path) -> anyhow::Result<Value> {
    let output = Command::new(binary)
        .arg("openapi")
        .output()
        .context("cannot run dealer-host openapi")?;
    if !output.status.success() {
        bail!(
            "dealer-host openapi failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// A CJK font, without which the screenshots show Chinese as boxes.
const CJK_FONT: &str = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc";

/// Installs Debian's chromium and a CJK font when they are missing (the browser tests need
/// the one, their screenshots the other).
pub fn ensure_chromium() -> anyhow::Result<()> {
    if Path::new(CHROMIUM).exists() && Path::new(CJK_FONT).exists() {
        return Ok(());
    }
    let install = || {
        Command::new("apt-get")
            .args([
                "install",
                "-y",
                "--no-install-recommends",
                "chromium",
                "fonts-noto-cjk",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install() {
        run(
            Command::new("apt-get").args(["update"]),
            "update the package lists",
        )?;
        if !install() {
            bail!("cannot install chromium (apt-get install chromium fonts-noto-cjk)");
        }
    }
    Ok(())
}

/// A database the browser tests run on, dropped after.
enum Database {
    Sqlite(PathBuf),
    Postgres { name: String, user: &'static str },
}

impl Database {
    fn url(&self) -> String {
        match self {
            Database::Sqlite(path) => format!("sqlite://{}?mode=rwc", path.display()),
            Database::Postgres { name, user } => format!("postgres://{user}@127.0.0.1:5432/{name}"),
        }
    }

    fn backend(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres { .. } => "postgres",
        }
    }

    /// A fresh PostgreSQL database on the local server (user `postgres`, else `root`).
    fn postgres() -> anyhow::Result<Database> {
        let name = format!("console_test_{}", std::process::id());
        for user in ["postgres", "root"] {
            let created = psql(user, &format!("DROP DATABASE IF EXISTS {name}"))
                && psql(user, &format!("CREATE DATABASE {name}"));
            if created {
                return Ok(Database::Postgres { name, user });
            }
        }
        bail!("cannot create a PostgreSQL database on 127.0.0.1:5432 (as postgres or root)")
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        match self {
            Database::Sqlite(path) => {
                std::fs::remove_dir_all(path.parent().unwrap_or(path)).ok();
            }
            Database::Postgres { name, user } => {
                psql(
                    user,
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                );
            }
        }
    }
}

fn psql(user: &str, statement: &str) -> bool {
    Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            user,
            "-d",
            "test",
            "-q",
            "-c",
            statement,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The host the browser tests talk to; killed on drop.
struct Host(Child);

impl Drop for Host {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// Runs the console's browser tests (`npm run test:browser`) against `binary` serving the
/// demo network on SQLite, then on PostgreSQL.
pub fn browser_tests(root: &Path, binary: &Path, target: &Path) -> anyhow::Result<()> {
    let scratch = target.join(format!("console-test-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let sqlite = Database::Sqlite(scratch.join("sqlite").join("dealer.db"));
    std::fs::create_dir_all(scratch.join("sqlite"))?;
    browser_tests_on(root, binary, &scratch, &sqlite)?;
    drop(sqlite);
    let postgres = Database::postgres()?;
    browser_tests_on(root, binary, &scratch, &postgres)?;
    drop(postgres);
    std::fs::remove_dir_all(&scratch).ok();
    Ok(())
}

fn browser_tests_on(
    root: &Path,
    binary: &Path,
    scratch: &Path,
    database: &Database,
) -> anyhow::Result<()> {
    let data_dir = scratch.join(format!("data-{}", database.backend()));
    let host = |args: &[&str]| -> Command {
        let mut c = Command::new(binary);
        c.current_dir(root)
            .env("DATABASE_URL", database.url())
            .env("DEALER_DATA_DIR", &data_dir)
            .env("RUST_LOG", "warn")
            .args(args);
        c
    };
    run(
        host(&["seed"]).stdout(Stdio::null()),
        "load the demo network",
    )?;
    for (username, ..) in LOGINS {
        run(
            host(&["staff", "set-password", "--username", username])
                .env("DEALER_STAFF_PASSWORD", PASSWORD)
                .stdout(Stdio::null()),
            &format!("set the password of {username}"),
        )?;
    }
    let key = String::from_utf8(
        host(&[
            "keys",
            "create",
            "--role",
            "dealer_admin",
            "--org",
            "SH-PD-4S",
        ])
        .stderr(Stdio::null())
        .output()
        .context("cannot create a key")?
        .stdout,
    )?
    .trim()
    .to_owned();
    let addr = free_address()?;
    let log = std::fs::File::create(scratch.join(format!("host-{}.log", database.backend())))?;
    let _host = Host(
        host(&["serve", "--listen", &addr])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start the host")?,
    );
    wait_ready(&addr)?;
    let (_, customers) = request(&addr, "GET", "/api/v1/customers?limit=1", Some(&key), None)?;
    let foreign = customers["items"][0]["id"]
        .as_i64()
        .context("the demo's 上海浦东 store has customers")?;
    let logins: Vec<Value> = LOGINS
        .iter()
        .map(|(username, role, position, org)| {
            json!({"username": username, "password": PASSWORD, "role": role,
                   "position": position, "org_code": org})
        })
        .collect();
    let env = json!({
        "base_url": format!("http://{addr}"),
        "backend": database.backend(),
        "logins": logins,
        "foreign_customer_id": foreign,
    });
    let env_file = scratch.join(format!("env-{}.json", database.backend()));
    std::fs::write(&env_file, serde_json::to_string_pretty(&env)?)?;
    run(
        npm(root)
            .args(["run", "test:browser"])
            .env("CONSOLE_TEST_ENV", &env_file)
            .env("CHROMIUM_PATH", CHROMIUM),
        &format!("run the console's browser tests on {}", database.backend()),
    )
}

fn free_address() -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
}

fn wait_ready(addr: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok((200, _)) = request(addr, "GET", "/api/v1/health", None, None) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the host on {addr} did not answer /health");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
