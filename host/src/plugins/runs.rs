//! The run log: one row per run of a hook, by a plugin or by the built-in default, with its
//! outcome, cost and (for the most recent runs) its masked input and output, so a new version
//! can be replayed against what really happened. Owns `plugin_runs`.
//!
//! Personal data never reaches the log unmasked: [`record`] stores [`mask`]ed JSON, and only
//! the SHA-256 of the unmasked input, over its [`canonical`] form. Inputs and outputs are kept
//! for the [`RECENT_INPUTS`] most recent runs of each dealer, hook and [`Source`] (so replaying
//! a version does not push the live inputs out); older runs keep their numbers only, until
//! the [`Retention`] policy deletes them ([`prune`], a background pass).
//!
//! What a run records is bounded: its input, output, effects and error each hold at most
//! [`MAX_RECORDED_BYTES`] (a larger one is stored as the marker `{"truncated": true, "bytes":
//! N}`, or, for the error, clipped with a note), and [`prune`] clears the payloads of each
//! dealer's oldest runs beyond [`Retention::max_payload_bytes`] in all. A replay skips a run
//! whose input was truncated (it no longer reads as the hook's input).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, FromRow};
use utoipa::ToSchema;

pub use dealer_plugin_runtime::Outcome;

use super::Hook;
use crate::access::masking;
use crate::clock;
use crate::db::decode;
use crate::db::{Param, Sql};
use crate::error::{Error, Result};

/// How many runs of each (dealer, hook, source) keep their input and output.
pub const RECENT_INPUTS: i64 = 500;

/// The most a run's input, output, effects or error may hold as stored, in bytes of JSON
/// (text for the error).
pub const MAX_RECORDED_BYTES: usize = 32 << 10;

/// What [`record`] stores for a value over [`MAX_RECORDED_BYTES`] of `bytes`.
fn truncated_marker(bytes: usize) -> Value {
    serde_json::json!({ "truncated": true, "bytes": bytes })
}

/// `value` as a recorded run's effects (or output) hold it: serialized first, so an oversized
/// one becomes the [`truncated_marker`] without ever being expanded into a `Value` (an event
/// payload kept as raw JSON text would take tens of times its size as one).
pub fn recordable<T: Serialize>(value: &T) -> Option<Value> {
    let text = serde_json::to_string(value).ok()?;
    if text.len() > MAX_RECORDED_BYTES {
        return Some(truncated_marker(text.len()));
    }
    serde_json::from_str(&text).ok()
}

/// `value` masked, as the JSON text [`record`] stores: the [`truncated_marker`] past
/// [`MAX_RECORDED_BYTES`].
fn stored_json(value: &Value) -> String {
    let text = mask(value).to_string();
    if text.len() > MAX_RECORDED_BYTES {
        return truncated_marker(text.len()).to_string();
    }
    text
}

/// A run's error as stored: at most [`MAX_RECORDED_BYTES`], clipped with a note of its size.
fn stored_error(error: &str) -> String {
    if error.len() <= MAX_RECORDED_BYTES {
        return error.to_owned();
    }
    let kept = &error[..error.floor_char_boundary(MAX_RECORDED_BYTES)];
    format!("{kept}… (truncated; {} bytes)", error.len())
}

/// Why a run happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A hook called by the domain.
    Live,
    /// A recorded input run again (`replay_of` names the run).
    Replay,
    /// A trial run on an input given by hand.
    Evaluate,
}

impl Source {
    pub const ALL: [Source; 3] = [Source::Live, Source::Replay, Source::Evaluate];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Live => "live",
            Source::Replay => "replay",
            Source::Evaluate => "evaluate",
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// A run to record; see [`record`].
#[derive(Debug, Clone)]
pub struct NewRun {
    pub dealer_id: i64,
    /// `None` for the built-in default.
    pub plugin_id: Option<i64>,
    pub plugin_name: Option<String>,
    pub version: Option<String>,
    pub hook: Hook,
    pub started_at: DateTime<Utc>,
    pub duration_us: i64,
    pub outcome: Outcome,
    pub memory_bytes: i64,
    pub fuel_used: i64,
    pub error: Option<String>,
    /// The input as the plugin saw it, unmasked: [`record`] masks it.
    pub input: Value,
    /// Masked by [`record`] too.
    pub output: Option<Value>,
    /// What the run asked of the host (logs, events, notifications, partner calls,
    /// denials); masked by [`record`].
    pub effects: Option<Value>,
    /// The clock the run saw.
    pub now_ms: i64,
    pub replay_of: Option<i64>,
    pub source: Source,
}

/// A recorded run.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Run {
    pub id: i64,
    pub dealer_id: i64,
    /// Absent for a run of the built-in default.
    pub plugin_id: Option<i64>,
    pub plugin_name: Option<String>,
    pub version: Option<String>,
    pub hook: Hook,
    pub started_at: DateTime<Utc>,
    pub duration_us: i64,
    pub outcome: Outcome,
    pub memory_bytes: i64,
    pub fuel_used: i64,
    pub error: Option<String>,
    /// SHA-256 (hex) of the canonical unmasked input.
    pub input_digest: String,
    /// The masked input; kept for the most recent runs only.
    pub input: Option<Value>,
    /// The masked output; kept for the most recent runs only.
    pub output: Option<Value>,
    /// Logs, events, notifications, partner calls and denials (masked); kept with the input.
    pub effects: Option<Value>,
    /// The clock the run saw, in ms since the epoch.
    pub now_ms: i64,
    /// The run this one replayed.
    pub replay_of: Option<i64>,
    pub source: Source,
}

/// Which runs [`list`] and [`stats`] look at. Absent fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// The dealers whose runs to include; `None` for every dealer.
    pub dealer_ids: Option<Vec<i64>>,
    pub plugin_id: Option<i64>,
    pub hook: Option<Hook>,
    pub outcome: Option<Outcome>,
    pub source: Option<Source>,
    /// Runs started at or after.
    pub since: Option<DateTime<Utc>>,
    /// Runs started before.
    pub until: Option<DateTime<Utc>>,
}

/// Runs of one plugin version for one hook (or of the built-in default: no plugin, no version).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Stats {
    pub plugin_id: Option<i64>,
    pub plugin_name: Option<String>,
    pub version: Option<String>,
    pub hook: Hook,
    pub count: i64,
    /// Runs whose outcome is not `ok`.
    pub errors: i64,
    /// `errors / count`, from 0 to 1.
    pub error_rate: f64,
    /// The number of runs of each outcome that occurred.
    pub by_outcome: BTreeMap<String, i64>,
    /// Median duration in microseconds (nearest rank).
    pub p50_us: i64,
    /// 99th percentile duration in microseconds (nearest rank).
    pub p99_us: i64,
    pub max_memory_bytes: i64,
}

/// A recent live run with its (masked) input, to replay.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Recorded {
    pub run_id: i64,
    pub plugin_id: Option<i64>,
    pub version: Option<String>,
    pub input: Value,
    pub output: Option<Value>,
    pub outcome: Outcome,
    /// The clock the run saw; a replay sees it too.
    pub now_ms: i64,
}

#[derive(FromRow)]
struct RunRow {
    id: i64,
    dealer_id: i64,
    plugin_id: Option<i64>,
    plugin_name: Option<String>,
    version: Option<String>,
    hook: String,
    started_at: i64,
    duration_us: i64,
    outcome: String,
    memory_bytes: i64,
    fuel_used: i64,
    error: Option<String>,
    input_digest: String,
    input: Option<String>,
    output: Option<String>,
    effects: Option<String>,
    now_ms: i64,
    replay_of: Option<i64>,
    source: String,
}

const RUN_COLUMNS: &str = "id, dealer_id, plugin_id, plugin_name, version, hook, started_at, \
     duration_us, outcome, memory_bytes, fuel_used, error, input_digest, input, output, effects, \
     now_ms, replay_of, source";

#[derive(FromRow)]
struct RecordedRow {
    id: i64,
    plugin_id: Option<i64>,
    version: Option<String>,
    input: String,
    output: Option<String>,
    outcome: String,
    now_ms: i64,
}

/// A stored value this module wrote itself but cannot read back: a bug or a hand edit.
fn corrupt(column: &str, value: &str) -> Error {
    Error::Database(sqlx::Error::Decode(
        format!("plugin runs: bad {column} {value:?}").into(),
    ))
}

fn decode_json(column: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|_| corrupt(column, text))
}

fn decode_opt_json(column: &str, text: Option<&str>) -> Result<Option<Value>> {
    text.map(|t| decode_json(column, t)).transpose()
}

impl RunRow {
    fn into_run(self) -> Result<Run> {
        Ok(Run {
            hook: decode("hook", &self.hook, Hook::parse)?,
            outcome: decode("outcome", &self.outcome, Outcome::parse)?,
            source: decode("source", &self.source, Source::parse)?,
            input: decode_opt_json("input", self.input.as_deref())?,
            output: decode_opt_json("output", self.output.as_deref())?,
            effects: decode_opt_json("effects", self.effects.as_deref())?,
            id: self.id,
            dealer_id: self.dealer_id,
            plugin_id: self.plugin_id,
            plugin_name: self.plugin_name,
            version: self.version,
            started_at: clock::to_datetime(self.started_at),
            duration_us: self.duration_us,
            memory_bytes: self.memory_bytes,
            fuel_used: self.fuel_used,
            error: self.error,
            input_digest: self.input_digest,
            now_ms: self.now_ms,
            replay_of: self.replay_of,
        })
    }
}

/// `value` as JSON text with the keys of every object sorted and no whitespace, so equal
/// values have equal text whatever order their keys were built in.
pub fn canonical(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (i, (key, item)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    write(item, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// SHA-256 (hex) of the [`canonical`] text of `input`: what [`record`] stores as
/// `input_digest`.
pub fn input_digest(input: &Value) -> String {
    hex::encode(Sha256::digest(canonical(input)))
}

/// `value` with its personal data masked, recursively:
///
/// - the values of the keys `name` (`张三` → `张*`), `phone`, `phones`, `mobile`,
///   `phone_masked` (`138****1234`), `id_number` (`1101**********002X`), `email`
///   (`z*******@example.com`) and `address` (the first half, at most 6 characters, kept); `-`
///   and `_` are the same in keys, and case does not matter;
/// - in every other string, a mainland mobile number (11 digits `1[3-9]…`, alone or after
///   `86`) or an 18-character resident ID number written as one run of digits.
///
/// Masking is idempotent: a masked value masks to itself.
pub fn mask(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| {
                    let masked = match masker_for(key) {
                        Some(masker) => mask_with(item, masker),
                        None => mask(item),
                    };
                    (key.clone(), masked)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(mask).collect()),
        Value::String(text) => Value::String(mask_numbers(text)),
        other => other.clone(),
    }
}

fn masker_for(key: &str) -> Option<fn(&str) -> String> {
    match key.to_ascii_lowercase().replace('-', "_").as_str() {
        "name" => Some(mask_name),
        "phone" | "phones" | "mobile" | "phone_masked" => Some(masking::phone),
        "id_number" => Some(masking::id_number),
        "email" => Some(mask_email),
        "address" => Some(mask_address),
        _ => None,
    }
}

/// Every string (and number) within `value`, masked with `masker`.
fn mask_with(value: &Value, masker: fn(&str) -> String) -> Value {
    match value {
        Value::String(text) => Value::String(masker(text)),
        Value::Number(n) => Value::String(masker(&n.to_string())),
        Value::Array(items) => Value::Array(items.iter().map(|i| mask_with(i, masker)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), mask_with(v, masker)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The first character, then one `*` per other character (a one-character name is `*`).
fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match (chars.next(), chars.count()) {
        (None, _) => String::new(),
        (Some(_), 0) => "*".to_owned(),
        (Some(first), rest) => format!("{first}{}", "*".repeat(rest)),
    }
}

fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => format!("{}@{domain}", mask_name(local)),
        None => mask_name(email),
    }
}

/// The first half of the address, at most 6 characters (province and city), then `*`s.
fn mask_address(address: &str) -> String {
    let len = address.chars().count();
    let keep = (len / 2).min(6);
    address
        .chars()
        .enumerate()
        .map(|(i, c)| if i < keep { c } else { '*' })
        .collect()
}

fn is_mobile(digits: &str) -> bool {
    let b = digits.as_bytes();
    b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1])
}

/// Masks the mobile numbers and resident ID numbers written as runs of digits in `text`.
fn mask_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        if i - start == 17 && matches!(chars.get(i), Some('X' | 'x')) {
            i += 1;
        }
        let run: String = chars[start..i].iter().collect();
        match run.len() {
            18 => out.push_str(&masking::id_number(&run)),
            11 if is_mobile(&run) => out.push_str(&masking::phone(&run)),
            13 if run.starts_with("86") && is_mobile(&run[2..]) => {
                out.push_str("86");
                out.push_str(&masking::phone(&run[2..]));
            }
            _ => out.push_str(&run),
        }
    }
    out
}

/// Records a run: its input and output masked and capped ([`MAX_RECORDED_BYTES`]), the digest
/// of its whole unmasked input. Runs of the
/// same dealer, hook and source beyond the [`RECENT_INPUTS`] most recent lose their input and
/// output (one indexed update per run, over the few hundred runs that still hold one).
pub async fn record(conn: &mut AnyConnection, run: &NewRun) -> Result<i64> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO plugin_runs (dealer_id, plugin_id, plugin_name, version, hook, started_at, \
         duration_us, outcome, memory_bytes, fuel_used, error, input_digest, input, output, \
         effects, now_ms, replay_of, source) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
         RETURNING id",
    )
    .bind(run.dealer_id)
    .bind(run.plugin_id)
    .bind(run.plugin_name.as_deref())
    .bind(run.version.as_deref())
    .bind(run.hook.as_str())
    .bind(run.started_at.timestamp_millis())
    .bind(run.duration_us)
    .bind(run.outcome.as_str())
    .bind(run.memory_bytes)
    .bind(run.fuel_used)
    .bind(run.error.as_deref().map(stored_error))
    .bind(input_digest(&run.input))
    .bind(stored_json(&run.input))
    .bind(run.output.as_ref().map(stored_json))
    .bind(run.effects.as_ref().map(stored_json))
    .bind(run.now_ms)
    .bind(run.replay_of)
    .bind(run.source.as_str())
    .fetch_one(&mut *conn)
    .await?;
    // Concurrent runs of one hook trim overlapping rows: on PostgreSQL each takes only the
    // rows no other trim holds (the holder clears them), so two trims never wait on each
    // other, which deadlocked under load. SQLite has one writer and no row locks.
    let unlocked = if conn.backend_name() == <sqlx::Postgres as sqlx::Database>::NAME {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    sqlx::query(&format!(
        "UPDATE plugin_runs SET input = NULL, output = NULL, effects = NULL WHERE id IN \
         (SELECT id FROM plugin_runs \
          WHERE dealer_id = $1 AND hook = $2 AND source = $3 AND input IS NOT NULL AND id <= \
          (SELECT id FROM plugin_runs \
           WHERE dealer_id = $1 AND hook = $2 AND source = $3 AND input IS NOT NULL \
           ORDER BY id DESC LIMIT 1 OFFSET $4){unlocked})"
    ))
    .bind(run.dealer_id)
    .bind(run.hook.as_str())
    .bind(run.source.as_str())
    .bind(RECENT_INPUTS)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Appends ` AND ...` for each field of `filter`.
fn push_filter(sql: &mut Sql, filter: &RunFilter) {
    if let Some(dealers) = &filter.dealer_ids {
        sql.push(" AND dealer_id IN ")
            .push_list(dealers.iter().copied().map(Param::Int));
    }
    if let Some(p) = filter.plugin_id {
        sql.push(" AND plugin_id = ").bind(Param::Int(p));
    }
    if let Some(h) = filter.hook {
        sql.push(" AND hook = ")
            .bind(Param::Text(h.as_str().to_owned()));
    }
    if let Some(o) = filter.outcome {
        sql.push(" AND outcome = ")
            .bind(Param::Text(o.as_str().to_owned()));
    }
    if let Some(s) = filter.source {
        sql.push(" AND source = ")
            .bind(Param::Text(s.as_str().to_owned()));
    }
    if let Some(since) = filter.since {
        sql.push(" AND started_at >= ")
            .bind(Param::Int(since.timestamp_millis()));
    }
    if let Some(until) = filter.until {
        sql.push(" AND started_at < ")
            .bind(Param::Int(until.timestamp_millis()));
    }
}

/// Runs matching `filter` with an id below `before_id`, newest first; `limit + 1` at most (the
/// extra row tells the caller there is a next page).
pub async fn list(
    conn: &mut AnyConnection,
    filter: &RunFilter,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<Run>> {
    if filter.dealer_ids.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(&format!(
        "SELECT {RUN_COLUMNS} FROM plugin_runs WHERE 1 = 1"
    ));
    push_filter(&mut sql, filter);
    if let Some(b) = before_id {
        sql.push(" AND id < ").bind(Param::Int(b));
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .bind(Param::Int(limit + 1));
    let rows: Vec<RunRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    rows.into_iter().map(RunRow::into_run).collect()
}

/// The 1-based rank of the value at `percent` among `n` sorted values by the nearest-rank
/// method (the smallest value with at least `percent`% of the values at or below it), as SQL
/// over the column `n`: `ceil(percent * n / 100)`, at least 1 for `n` ≥ 1.
fn nearest_rank_sql(percent: i64) -> String {
    format!("({percent} * n + 99) / 100")
}

#[derive(FromRow)]
struct OutcomeRow {
    plugin_id: Option<i64>,
    plugin_name: Option<String>,
    version: Option<String>,
    hook: String,
    outcome: String,
    count: i64,
    max_memory_bytes: i64,
}

#[derive(FromRow)]
struct PercentileRow {
    plugin_id: Option<i64>,
    version: Option<String>,
    hook: String,
    p50_us: i64,
    p99_us: i64,
}

/// Counts, error rate, outcomes, duration percentiles and peak memory of the runs matching
/// `filter`, one entry per (plugin, version, hook), ordered by those.
///
/// Computed by the database, which returns one row per group and outcome: counts and peaks by
/// `GROUP BY`, the percentiles (nearest rank) by ranking each group's durations with a window
/// function, which both backends have. No run row leaves the database.
pub async fn stats(conn: &mut AnyConnection, filter: &RunFilter) -> Result<Vec<Stats>> {
    if filter.dealer_ids.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(
        "SELECT plugin_id, MAX(plugin_name) AS plugin_name, version, hook, outcome, \
         COUNT(*) AS count, MAX(memory_bytes) AS max_memory_bytes \
         FROM plugin_runs WHERE 1 = 1",
    );
    push_filter(&mut sql, filter);
    sql.push(" GROUP BY plugin_id, version, hook, outcome");
    let outcomes: Vec<OutcomeRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    let mut sql = Sql::new(
        "SELECT plugin_id, version, hook, duration_us, \
         ROW_NUMBER() OVER (PARTITION BY plugin_id, version, hook ORDER BY duration_us) AS rn, \
         COUNT(*) OVER (PARTITION BY plugin_id, version, hook) AS n \
         FROM plugin_runs WHERE 1 = 1",
    );
    push_filter(&mut sql, filter);
    let ranked = format!(
        "SELECT plugin_id, version, hook, \
         MAX(CASE WHEN rn = {p50} THEN duration_us END) AS p50_us, \
         MAX(CASE WHEN rn = {p99} THEN duration_us END) AS p99_us \
         FROM ({}) ranked GROUP BY plugin_id, version, hook",
        sql.text(),
        p50 = nearest_rank_sql(50),
        p99 = nearest_rank_sql(99),
    );
    let percentiles: Vec<PercentileRow> = sqlx::query_as_with(&ranked, sql.arguments())
        .fetch_all(&mut *conn)
        .await?;

    let mut groups: BTreeMap<(Option<i64>, Option<String>, String), Stats> = BTreeMap::new();
    for row in outcomes {
        let outcome = decode("outcome", &row.outcome, Outcome::parse)?;
        let hook = decode("hook", &row.hook, Hook::parse)?;
        let group = groups
            .entry((row.plugin_id, row.version.clone(), row.hook))
            .or_insert_with(|| Stats {
                plugin_id: row.plugin_id,
                plugin_name: None,
                version: row.version,
                hook,
                count: 0,
                errors: 0,
                error_rate: 0.0,
                by_outcome: BTreeMap::new(),
                p50_us: 0,
                p99_us: 0,
                max_memory_bytes: 0,
            });
        if row.plugin_name.is_some() {
            group.plugin_name = row.plugin_name;
        }
        group.count += row.count;
        if outcome.is_error() {
            group.errors += row.count;
        }
        group.by_outcome.insert(row.outcome, row.count);
        group.max_memory_bytes = group.max_memory_bytes.max(row.max_memory_bytes);
    }
    for row in percentiles {
        if let Some(group) = groups.get_mut(&(row.plugin_id, row.version, row.hook)) {
            group.p50_us = row.p50_us;
            group.p99_us = row.p99_us;
        }
    }
    Ok(groups
        .into_values()
        .map(|mut group| {
            group.error_rate = group.errors as f64 / group.count as f64;
            group
        })
        .collect())
}

/// How long the run log keeps runs: at most `max_days` old and at most `max_per_hook` runs
/// of each dealer and hook (the newest), and payloads of at most `max_payload_bytes` per
/// dealer, enforced by [`prune`] every `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_days: u32,
    /// Never fewer than [`RECENT_INPUTS`], so the runs kept for replay stay.
    pub max_per_hook: i64,
    /// The bytes of inputs, outputs and effects (as stored) a dealer's runs keep in all; the
    /// oldest runs beyond it keep their numbers only.
    pub max_payload_bytes: i64,
    pub every: std::time::Duration,
}

impl Default for Retention {
    /// 90 days, 100 000 runs per dealer and hook, 64 MiB of payloads per dealer, pruned
    /// hourly.
    fn default() -> Retention {
        Retention {
            max_days: 90,
            max_per_hook: 100_000,
            max_payload_bytes: 64 << 20,
            every: std::time::Duration::from_secs(3600),
        }
    }
}

/// The stored size of a run's payloads, in bytes, as SQL both backends run.
const PAYLOAD_BYTES: &str = "CAST(OCTET_LENGTH(input) + COALESCE(OCTET_LENGTH(output), 0) \
     + COALESCE(OCTET_LENGTH(effects), 0) AS BIGINT)";

/// Clears the payloads of each dealer's oldest runs beyond `max_bytes` of payloads (newest
/// kept first); the number of runs cleared.
async fn clear_payloads_beyond(db: &crate::Db, max_bytes: i64) -> Result<u64> {
    let crowded: Vec<(i64,)> = sqlx::query_as(&format!(
        "SELECT dealer_id FROM plugin_runs WHERE input IS NOT NULL \
         GROUP BY dealer_id HAVING SUM({PAYLOAD_BYTES}) > $1"
    ))
    .bind(max_bytes)
    .fetch_all(db.pool())
    .await?;
    let mut cleared = 0;
    for (dealer_id,) in crowded {
        let sizes: Vec<(i64, i64)> = sqlx::query_as(&format!(
            "SELECT id, {PAYLOAD_BYTES} FROM plugin_runs \
             WHERE dealer_id = $1 AND input IS NOT NULL ORDER BY id DESC"
        ))
        .bind(dealer_id)
        .fetch_all(db.pool())
        .await?;
        let mut total = 0;
        let Some((newest_cleared, _)) = sizes.into_iter().find(|(_, bytes)| {
            total += bytes;
            total > max_bytes
        }) else {
            continue;
        };
        cleared += sqlx::query(
            "UPDATE plugin_runs SET input = NULL, output = NULL, effects = NULL \
             WHERE dealer_id = $1 AND input IS NOT NULL AND id <= $2",
        )
        .bind(dealer_id)
        .bind(newest_cleared)
        .execute(db.pool())
        .await?
        .rows_affected();
    }
    Ok(cleared)
}

/// Rows deleted per statement, so a large backlog is deleted in short write transactions.
const PRUNE_BATCH: i64 = 5_000;

/// Deletes the runs `retention` no longer keeps: those started more than `max_days` before
/// `now`, and those of each dealer and hook beyond its `max_per_hook` newest; then clears the
/// payloads of each dealer's oldest runs beyond `max_payload_bytes`. Returns how many runs
/// were deleted. Each statement deletes at most [`PRUNE_BATCH`] rows and commits on its own;
/// replicas pruning at once delete each row once.
pub async fn prune(db: &crate::Db, retention: &Retention, now: i64) -> Result<u64> {
    let cutoff = now - i64::from(retention.max_days) * 24 * 3600 * 1000;
    let mut deleted = in_batches(db, || {
        sqlx::query(
            "DELETE FROM plugin_runs WHERE id IN \
             (SELECT id FROM plugin_runs WHERE started_at < $1 LIMIT $2)",
        )
        .bind(cutoff)
        .bind(PRUNE_BATCH)
    })
    .await?;
    let keep = retention.max_per_hook.max(RECENT_INPUTS);
    let crowded: Vec<(i64, String)> = sqlx::query_as(
        "SELECT dealer_id, hook FROM plugin_runs GROUP BY dealer_id, hook HAVING COUNT(*) > $1",
    )
    .bind(keep)
    .fetch_all(db.pool())
    .await?;
    for (dealer_id, hook) in crowded {
        let oldest_kept: Option<(i64,)> = sqlx::query_as(
            "SELECT id FROM plugin_runs WHERE dealer_id = $1 AND hook = $2 \
             ORDER BY id DESC LIMIT 1 OFFSET $3",
        )
        .bind(dealer_id)
        .bind(&hook)
        .bind(keep - 1)
        .fetch_optional(db.pool())
        .await?;
        let Some((oldest_kept,)) = oldest_kept else {
            continue;
        };
        deleted += in_batches(db, || {
            sqlx::query(
                "DELETE FROM plugin_runs WHERE id IN (SELECT id FROM plugin_runs \
                 WHERE dealer_id = $1 AND hook = $2 AND id < $3 LIMIT $4)",
            )
            .bind(dealer_id)
            .bind(&hook)
            .bind(oldest_kept)
            .bind(PRUNE_BATCH)
        })
        .await?;
    }
    let cleared = clear_payloads_beyond(db, retention.max_payload_bytes).await?;
    if cleared > 0 {
        tracing::info!(
            cleared,
            "cleared the payloads of runs beyond a dealer's byte budget"
        );
    }
    Ok(deleted)
}

/// Runs `delete` (a statement deleting at most [`PRUNE_BATCH`] rows, each on its own) until it
/// deletes nothing; the number deleted.
async fn in_batches<'q>(
    db: &crate::Db,
    delete: impl Fn() -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
) -> Result<u64> {
    let mut deleted = 0;
    loop {
        let n = delete().execute(db.pool()).await?.rows_affected();
        if n == 0 {
            return Ok(deleted);
        }
        deleted += n;
    }
}

/// The `limit` most recent live and evaluated runs of the dealer's `hook` that still hold their input,
/// newest first.
pub async fn recorded(
    conn: &mut AnyConnection,
    dealer_id: i64,
    hook: Hook,
    limit: i64,
) -> Result<Vec<Recorded>> {
    let rows: Vec<RecordedRow> = sqlx::query_as(
        "SELECT id, plugin_id, version, input, output, outcome, now_ms FROM plugin_runs \
         WHERE dealer_id = $1 AND hook = $2 AND source IN ($3, $4) AND input IS NOT NULL \
         ORDER BY id DESC LIMIT $5",
    )
    .bind(dealer_id)
    .bind(hook.as_str())
    .bind(Source::Live.as_str())
    .bind(Source::Evaluate.as_str())
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Recorded {
                input: decode_json("input", &r.input)?,
                output: decode_opt_json("output", r.output.as_deref())?,
                outcome: decode("outcome", &r.outcome, Outcome::parse)?,
                run_id: r.id,
                plugin_id: r.plugin_id,
                version: r.version,
                now_ms: r.now_ms,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn personal_fields_are_masked_by_key() {
        let customer = json!({
            "id": 7,
            "name": "张三",
            "phone-masked": "138****1234",
            "phone": "13812341234",
            "id_number": "11010519491231002X",
            "email": "zhangsan@example.com",
            "address": "北京市朝阳区建国路88号",
            "tier": "gold",
            "household": [{ "name": "欧阳娜娜", "mobile": 13912345678_i64 }],
        });
        assert_eq!(
            mask(&customer),
            json!({
                "id": 7,
                "name": "张*",
                "phone-masked": "138****1234",
                "phone": "138****1234",
                "id_number": "1101**********002X",
                "email": "z*******@example.com",
                "address": "北京市朝阳区******",
                "tier": "gold",
                "household": [{ "name": "欧***", "mobile": "139****5678" }],
            })
        );
    }

    #[test]
    fn numbers_in_free_text_are_masked_in_place() {
        let note = json!({
            "note": "李四来电 13912345678，身份证110105194912310021；回拨+8615012345678",
            "order_no": "20250101123",
            "count": 13912345678_i64,
        });
        assert_eq!(
            mask(&note),
            json!({
                "note": "李四来电 139****5678，身份证1101**********0021；回拨+86150****5678",
                "order_no": "20250101123",
                "count": 13912345678_i64,
            })
        );
        assert_eq!(
            mask_numbers("ID 11010519491231002x end"),
            "ID 1101**********002x end"
        );
        // Not mobile numbers: wrong second digit, or part of a longer run.
        assert_eq!(mask_numbers("12912345678"), "12912345678");
        assert_eq!(mask_numbers("139123456789"), "139123456789");
    }

    #[test]
    fn masking_is_idempotent() {
        let value = json!({
            "name": "王",
            "customer": { "name": "司马相如", "phone": "13812345678" },
            "text": "电话13812345678",
            "email": "a@b.cn",
        });
        let once = mask(&value);
        assert_eq!(once["name"], "*");
        assert_eq!(once["customer"]["name"], "司***");
        assert_eq!(once["email"], "*@b.cn");
        assert_eq!(mask(&once), once);
    }

    #[test]
    fn canonical_text_ignores_key_order() {
        let a = json!({ "b": 1, "a": { "y": [1, "二"], "x": null } });
        let b: Value = serde_json::from_str(r#"{"a":{"x":null,"y":[1,"二"]},"b":1}"#).unwrap();
        assert_eq!(canonical(&a), r#"{"a":{"x":null,"y":[1,"二"]},"b":1}"#);
        assert_eq!(input_digest(&a), input_digest(&b));
        assert_ne!(input_digest(&a), input_digest(&json!({ "b": 2 })));
    }

    #[test]
    fn outcomes_and_sources_round_trip() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
            assert_eq!(serde_json::to_value(o).unwrap(), json!(o.as_str()));
            assert_eq!(o.is_error(), o != Outcome::Ok);
        }
        for s in Source::ALL {
            assert_eq!(Source::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
    }
}
