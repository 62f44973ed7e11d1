//! `cargo xtask bench --kpis`: the KPI dashboards at HQ scale. Builds the host (release),
//! seeds the benchmark network (`dealer-host seed --customers N --dealers D`: D dealers, each
//! generated customer with two years of repair orders, appointments, tickets, surveys and
//! leads), serves it, and times over HTTP the requests each cockpit makes: HQ's and a
//! region's (the scorecard by child unit, a KPI's weekly series over three months, the first
//! page of a KPI's records) and a dealer's (its scorecard, the store cockpit, the owners at
//! risk of churning), with `GET /health` in the same run as the baseline. It prints medians,
//! p95s and their ratio to the baseline; it asserts nothing.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

use crate::bench::{LISTEN, Server, measure};
use crate::http::request;

/// What `cargo xtask bench --kpis` was asked.
pub struct Options {
    pub customers: u64,
    pub dealers: u64,
    /// `sqlite` (a fresh file) or a `postgres://` URL of an empty database.
    pub database_url: Option<String>,
    /// Requests per client for each measured query.
    pub requests: usize,
    /// Skip seeding: reuse the database of an earlier run.
    pub reuse: bool,
    /// Concurrent clients of the second round; 1: no second round.
    pub clients: usize,
}

/// The region and the dealer whose cockpits are measured: a demo region, and a benchmark
/// dealer in it.
const REGION: &str = "R-EAST";
const DEALER: &str = "BENCH-D0102";
/// Days of the "this month" scorecards: a whole month, whatever today's date.
const MONTH_DAYS: i64 = 30;
/// Days of the weekly series.
const SERIES_DAYS: i64 = 91;

pub fn run(root: &Path, target: &Path, options: &Options) -> anyhow::Result<()> {
    let binary = target.join("release").join("dealer-host");
    let data_dir = target.join("bench-kpi-data");
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
        let dealers = options.dealers.to_string();
        super::run(
            &mut host(&["seed", "--customers", &customers, "--dealers", &dealers]),
            "seed the KPI benchmark network",
        )?;
        println!(
            "seeded {} dealers and {} generated customers with their history in {:.0} s",
            options.dealers,
            options.customers,
            started.elapsed().as_secs_f64()
        );
    }
    let out = host(&["keys", "create", "--role", "hq_admin", "--org", "HQ"])
        .stderr(Stdio::null())
        .output()
        .context("cannot create a key")?;
    if !out.status.success() {
        bail!("cannot create an hq_admin key");
    }
    let hq = String::from_utf8(out.stdout)?.trim().to_owned();

    let server = Server::start(
        host(&[
            "serve",
            "--listen",
            LISTEN,
            "--outbox-interval-secs",
            "0",
            "--scheduler-interval-secs",
            "0",
        ]),
        &data_dir.join("host.log"),
    )?;
    let backend = server.wait_ready()?;
    let (status, units) = request(LISTEN, "GET", "/api/v1/network/units", Some(&hq), None)?;
    if status != 200 {
        bail!("GET /network/units answered {status}");
    }
    let unit = |code: &str| -> anyhow::Result<i64> {
        units
            .as_array()
            .and_then(|all| all.iter().find(|u| u["code"] == code))
            .and_then(|u| u["id"].as_i64())
            .with_context(|| format!("there is no unit {code}: seed with --dealers"))
    };
    let (region, dealer) = (unit(REGION)?, unit(DEALER)?);
    let today = today_cst();
    let month = (date(today - MONTH_DAYS + 1), date(today));
    let series = (date(today - SERIES_DAYS + 1), date(today));
    let period = |(from, to): &(String, String)| format!("from={from}&to={to}");
    let cockpit = |unit: Option<i64>| -> Vec<(String, String)> {
        let unit = unit.map(|id| format!("&unit_id={id}")).unwrap_or_default();
        vec![
            (
                "scorecard by child".to_owned(),
                format!("/api/v1/kpis?by=child&{}{unit}", period(&month)),
            ),
            (
                "NPS weekly series".to_owned(),
                format!(
                    "/api/v1/kpis/series?kpi=nps&by=child&interval=week&{}{unit}",
                    period(&series)
                ),
            ),
            (
                "revenue records p. 1".to_owned(),
                format!("/api/v1/kpis/records?kpi=revenue&{}{unit}", period(&month)),
            ),
        ]
    };
    let mut queries: Vec<(String, String)> =
        vec![("health (baseline)".to_owned(), "/api/v1/health".to_owned())];
    for (who, unit) in [("HQ", None), ("region", Some(region))] {
        queries.extend(
            cockpit(unit)
                .into_iter()
                .map(|(what, path)| (format!("{who}: {what}"), path)),
        );
    }
    let store = format!("{}&unit_id={dealer}", period(&month));
    queries.extend([
        (
            "store: scorecard".to_owned(),
            format!("/api/v1/kpis?{store}"),
        ),
        (
            "store: cockpit".to_owned(),
            format!("/api/v1/kpis/store?{store}"),
        ),
        (
            "store: churn at risk p. 1".to_owned(),
            format!("/api/v1/kpis/records?kpi=churn&counted=true&{store}"),
        ),
    ]);
    println!(
        "\n{} dealers, {} customers on {backend}; {} requests per client; scorecards and \
         records over {} to {}, series over {} to {}\n",
        options.dealers, options.customers, options.requests, month.0, month.1, series.0, series.1
    );
    let mut rounds = vec![1];
    if options.clients > 1 {
        rounds.push(options.clients);
    }
    let mut head = format!("{:<30}", "query");
    for clients in &rounds {
        let _ = write!(
            head,
            " {:>9} {:>9} {:>7}",
            format!("{clients}: p50"),
            format!("{clients}: p95"),
            "×base"
        );
    }
    println!("{head}");
    let mut baseline: Vec<f64> = Vec::new();
    for (what, path) in &queries {
        let paths = std::slice::from_ref(path);
        let mut line = format!("{what:<30}");
        for (round, clients) in rounds.iter().enumerate() {
            let m = measure(&hq, paths, *clients, options.requests)?;
            if baseline.len() == round {
                baseline.push(m.p50_ms);
            }
            let _ = write!(
                line,
                " {:>9.1} {:>9.1} {:>7.0}",
                m.p50_ms,
                m.p95_ms,
                m.p50_ms / baseline[round]
            );
        }
        println!("{line}");
    }
    println!("\n(ms; ×base: the median over the median of GET /health in the same run)");
    drop(server);
    Ok(())
}

/// Today's date in Beijing, as days since 1970-01-01.
fn today_cst() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (i64::try_from(secs).unwrap_or(0) + 8 * 3600) / 86_400
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01 (the proleptic Gregorian calendar).
fn date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::date;

    #[test]
    fn days_since_the_epoch_are_calendar_dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(59), "1970-03-01");
        assert_eq!(date(20_791), "2026-12-04");
        assert_eq!(date(11_016), "2000-02-29");
    }
}
