//! What a plugin may import: the host side of the `imports` world.
//!
//! A plugin call owns one [`HostState`]. Nothing a plugin does takes effect during the run:
//! logs, events, notifications and store writes are collected in [`Effects`], which the caller
//! applies only when the run succeeded (and never for a replay). Records and plugin data come
//! from the embedding host through [`Records`] and [`PluginData`], each bound to the calling
//! dealer (and plugin): a look-up of another dealer's record answers `not-found`, exactly like
//! a missing one, and is reported as a [`Denial`] for the host to audit. WASI is linked so that
//! components from any toolchain instantiate, but grants nothing: no arguments, environment,
//! sockets or files, except a private directory when HQ granted one.
//!
//! What a guest hands the host is bounded per run: the host keeps at most [`MAX_HANDED_BYTES`]
//! of it (log lines as kept, event kinds and payloads, notifications, store keys and values,
//! partner requests), each hand-over read in place in the guest's memory and sized before
//! anything is copied or parsed ([`handover`]); one that does not fit ends the run
//! `invalid_output` ([`OverBudget`]). Record look-ups are capped at [`MAX_LOOKUPS`] per run.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{FixedOffset, TimeZone, Utc};
use serde::Serialize;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::Grants;
use crate::bindings::outbound::{CredentialPlacement, Method, Request, Response};
use crate::bindings::types::{Customer, HostError, Level, Notification, Order, Vehicle};
use crate::bindings::{clock, config, records, types};
use crate::deadline::{Budget, Cancel};

mod handover;
mod waits;
pub mod wasi_http;
pub use handover::add_to_linker;
pub(crate) use waits::{bound_poll, on_tick};
use wasi_http::HttpGate;

/// Per-run caps on what a plugin may ask of the host.
const MAX_LOG_LINES: usize = 200;
const MAX_LOG_LINE_BYTES: usize = 2048;
const MAX_EVENTS: usize = 100;
/// The longest payload of one event: an event is a notice for an integration, not a transfer.
const MAX_EVENT_PAYLOAD_BYTES: usize = 64 << 10;
/// The bytes the host keeps, in all, of what one run hands it (see the module's doc). It
/// bounds the host's memory per run, the effects a caller applies and what is recorded.
pub const MAX_HANDED_BYTES: usize = 4 << 20;
/// Record look-ups per run; past it a look-up answers `quota-exceeded` without asking the
/// host, so a run costs the database (and the audit log) at most this many reads.
pub const MAX_LOOKUPS: usize = 64;
const MAX_OUTBOUND_CALLS: usize = 16;
/// `signing` calls per run, and the most data one signs: a request's string to sign.
const MAX_SIGNATURES: usize = 64;
const MAX_SIGNED_BYTES: usize = 64 << 10;
const MAX_RESPONSE_BYTES: usize = 1 << 20;
const MAX_OUTBOUND_TIMEOUT: Duration = Duration::from_secs(10);
/// Per plugin and dealer, across runs.
pub const STORE_MAX_KEYS: i64 = 1000;
pub const STORE_MAX_BYTES: i64 = 1 << 20;
const STORE_MAX_KEY_BYTES: usize = 128;
const STORE_MAX_VALUE_BYTES: usize = 64 << 10;
/// China Standard Time, for `clock.today`.
const CST_SECONDS: i32 = 8 * 3600;

/// Whether the run's effects will be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A real call (or a dealer's evaluation): effects applied on success.
    Live,
    /// A replay of recorded inputs against a candidate: no partner calls, nothing applied.
    Replay,
}

/// Who is calling and with what: fixed for the duration of one run.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub dealer_id: i64,
    pub plugin_id: i64,
    pub plugin_name: String,
    pub version: String,
    pub config: serde_json::Value,
    pub grants: Grants,
    /// The clock the plugin sees, in ms since the epoch (recorded, so a replay sees it too).
    pub now_ms: i64,
    pub mode: Mode,
    /// The host directory behind the guest's `/data`, when HQ granted a private directory.
    pub private_dir: Option<PathBuf>,
}

/// What a host call waits for: an answer of the embedding host, bounded by the run's deadline.
pub type HostFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, LookupError>> + Send + 'a>>;

/// Why the embedding host could not answer a look-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// No such record.
    NotFound,
    /// The record belongs to another dealer: the guest is told `not-found`, and the attempt
    /// is kept in [`Effects::denials`] for the host to audit.
    Denied(Denial),
    /// The host could not answer (its own failure, logged by the host).
    Unavailable,
}

/// The calling dealer's records, as plugins see them, bound to one run's dealer. The host
/// implements it with its domain (scope, masking); an author's harness has none.
pub trait Records: Send + Sync {
    fn customer(&self, id: i64) -> HostFuture<'_, Customer>;
    fn vehicle(&self, id: i64) -> HostFuture<'_, Vehicle>;
    /// The customer's vehicles at the calling dealer.
    fn vehicles_of(&self, customer_id: i64) -> HostFuture<'_, Vec<Vehicle>>;
    fn order(&self, id: i64) -> HostFuture<'_, Order>;
}

/// The plugin's own data, bound to one run's dealer and plugin: its key-value store (read
/// here, written by the host after a successful run) and the dealer's secrets behind the
/// credential handles HQ granted.
pub trait PluginData: Send + Sync {
    fn store_get(&self, key: String) -> HostFuture<'_, Option<Vec<u8>>>;
    /// The keys and bytes the store holds now.
    fn store_usage(&self) -> HostFuture<'_, (i64, i64)>;
    /// The dealer's secret behind `handle`, if configured.
    fn secret(&self, handle: String) -> HostFuture<'_, Option<String>>;
}

/// What the host reaches for a plugin: records, plugin data and partners. `None` in a run
/// without them (a benchmark): look-ups and partner calls then answer `unavailable`.
#[derive(Clone)]
pub struct Services {
    /// Record look-ups; `None` (an author's local harness): they answer `unavailable`.
    pub records: Option<Arc<dyn Records>>,
    /// The store and the secrets; `None`: the store answers `unavailable`.
    pub data: Option<Arc<dyn PluginData>>,
    pub tokio: tokio::runtime::Handle,
    pub http: reqwest::Client,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct EmittedEvent {
    pub kind: String,
    /// The payload as the plugin wrote it, checked to be JSON but not expanded into a tree:
    /// a `serde_json::Value` takes tens of times the text's size.
    pub payload: Box<serde_json::value::RawValue>,
}

/// Why a run ended when the plugin handed the host more than [`MAX_HANDED_BYTES`]: raised by
/// the host call as a trap, classified `invalid_output` by the runtime.
#[derive(Debug, thiserror::Error)]
#[error(
    "the plugin handed the host more than {MAX_HANDED_BYTES} bytes in one run ({what} of {bytes} bytes did not fit)"
)]
pub struct OverBudget {
    pub what: &'static str,
    pub bytes: usize,
}

/// A record of another dealer the plugin asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Denial {
    pub entity: &'static str,
    pub id: i64,
    pub owner_dealer_id: i64,
}

/// One partner call, as logged (never with the secret).
#[derive(Debug, Clone, Serialize)]
pub struct OutboundCall {
    pub method: &'static str,
    pub url: String,
    pub credential: Option<String>,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

impl OutboundCall {
    /// Logs the call made by `plugin` for `dealer` through `interface` (`outbound` or
    /// `wasi:http`): one line per partner call, whichever way the plugin made it.
    pub(crate) fn log(&self, plugin: &str, dealer: i64, interface: &'static str) {
        tracing::info!(
            plugin,
            dealer,
            interface,
            method = self.method,
            url = %self.url,
            credential = ?self.credential,
            status = ?self.status,
            error = ?self.error,
            duration_ms = self.duration_ms,
            "partner call"
        );
    }
}

/// Everything a run asked the host to do, applied after it succeeds.
#[derive(Debug, Default, Serialize)]
pub struct Effects {
    pub logs: Vec<LogLine>,
    pub dropped_logs: usize,
    pub events: Vec<EmittedEvent>,
    pub notifications: Vec<Notification>,
    /// Key → new value (`None`: deleted).
    #[serde(skip)]
    pub store_writes: BTreeMap<String, Option<Vec<u8>>>,
    pub denials: Vec<Denial>,
    pub outbound: Vec<OutboundCall>,
}

/// Counts linear memory and refuses growth past the limit.
struct MemoryLimiter {
    max: usize,
    total: usize,
    peak: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total - current.min(self.total) + desired;
        if desired > self.max || total > self.max {
            self.hit = true;
            return Ok(false);
        }
        self.total = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    /// `wasi:http` requests, under the rules of the `outbound` interface.
    gate: HttpGate,
    limiter: MemoryLimiter,
    ctx: CallContext,
    services: Option<Services>,
    deadline: Instant,
    cancel: Cancel,
    effects: Effects,
    /// Bytes kept of what the guest handed over, against [`MAX_HANDED_BYTES`].
    handed: usize,
    /// Record look-ups asked of the host, against [`MAX_LOOKUPS`].
    lookups: usize,
    /// `signing` calls, against [`MAX_SIGNATURES`].
    signatures: usize,
    /// The store's keys and bytes when the run first wrote: the store does not change during
    /// a run (its writes are applied after it), so a run of writes reads it once.
    store_usage: std::cell::OnceCell<(i64, i64)>,
}

impl HostState {
    pub fn new(
        ctx: CallContext,
        services: Option<Services>,
        memory_bytes: usize,
        deadline: Instant,
        cancel: Cancel,
    ) -> std::io::Result<HostState> {
        let mut wasi = WasiCtxBuilder::new();
        let frozen = FrozenClock(ctx.now_ms);
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .wall_clock(frozen)
            .monotonic_clock(frozen)
            .secure_random(wasmtime_wasi::Deterministic::new(
                ctx.now_ms.to_le_bytes().to_vec(),
            ))
            .insecure_random_seed(ctx.now_ms as u128);
        if let Some(dir) = &ctx.private_dir {
            std::fs::create_dir_all(dir)?;
            wasi.preopened_dir(dir, "/data", wasmtime_wasi::FsPerms::ReadWrite)
                .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
        }
        let data = services
            .as_ref()
            .and_then(|s| Some((s.data.clone()?, s.tokio.clone())));
        let gate = HttpGate::new(
            ctx.grants.clone(),
            ctx.mode,
            ctx.plugin_name.clone(),
            ctx.dealer_id,
            deadline,
            data,
        );
        Ok(HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            gate,
            limiter: MemoryLimiter {
                max: memory_bytes,
                total: 0,
                peak: 0,
                hit: false,
            },
            ctx,
            services,
            deadline,
            cancel,
            effects: Effects::default(),
            handed: 0,
            lookups: 0,
            signatures: 0,
            store_usage: std::cell::OnceCell::new(),
        })
    }

    pub fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limiter
    }

    pub fn peak_memory(&self) -> usize {
        self.limiter.peak
    }

    pub fn hit_memory_limit(&self) -> bool {
        self.limiter.hit
    }

    pub fn into_effects(self) -> Effects {
        let mut effects = self.effects;
        effects.outbound.extend(self.gate.into_calls());
        effects
    }

    pub(crate) fn budget(&self) -> Budget {
        Budget {
            deadline: self.deadline,
            cancel: self.cancel.clone(),
        }
    }

    pub(crate) fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// Waits for the host's answer to a host call, at most until the run's deadline or its
    /// cancel (after which the next epoch tick ends the run).
    fn wait<T>(&self, answer: HostFuture<'_, T>) -> Result<Result<T, LookupError>, HostError> {
        let Some(services) = self.services.as_ref() else {
            return Err(HostError::Unavailable(
                "records are not available in this run".into(),
            ));
        };
        let budget = self.budget();
        services
            .tokio
            .block_on(budget.bound(answer))
            .map_err(|stopped| HostError::Unavailable(stopped.to_string()))
    }

    /// Whether `bytes` more of the guest's hand-overs fit in the run's budget; a trap
    /// ([`OverBudget`]) if not. Checked before the hand-over is copied, parsed or validated.
    fn fits(&self, bytes: usize, what: &'static str) -> wasmtime::Result<()> {
        if self.handed.saturating_add(bytes) > MAX_HANDED_BYTES {
            return Err(OverBudget { what, bytes }.into());
        }
        Ok(())
    }

    /// Counts `bytes` the host keeps against the budget ([`HostState::fits`] said they fit).
    fn keep(&mut self, bytes: usize) {
        self.handed += bytes;
    }

    /// Looks a record up through the host's [`Records`], noting denials for the audit log;
    /// past [`MAX_LOOKUPS`] in a run, `quota-exceeded` without asking.
    fn lookup<T>(
        &mut self,
        ask: impl FnOnce(&dyn Records) -> HostFuture<'_, T>,
    ) -> Result<T, HostError> {
        let Some(records) = self.services.as_ref().and_then(|s| s.records.clone()) else {
            return Err(HostError::Unavailable(
                "records are not available in this run".into(),
            ));
        };
        if self.lookups >= MAX_LOOKUPS {
            return Err(HostError::QuotaExceeded(format!(
                "a run looks up at most {MAX_LOOKUPS} records"
            )));
        }
        self.lookups += 1;
        match self.wait(ask(records.as_ref()))? {
            Ok(value) => Ok(value),
            Err(LookupError::Denied(denial)) => {
                self.effects.denials.push(denial);
                Err(HostError::NotFound)
            }
            Err(LookupError::NotFound) => Err(HostError::NotFound),
            Err(LookupError::Unavailable) => Err(HostError::Unavailable(
                "the host could not read the record".into(),
            )),
        }
    }

    /// Asks the host's [`PluginData`]; `None` when this run has none.
    fn data<T>(
        &self,
        ask: impl FnOnce(&dyn PluginData) -> HostFuture<'_, T>,
    ) -> Option<Result<Result<T, LookupError>, HostError>> {
        let data = self.services.as_ref()?.data.clone()?;
        Some(self.wait(ask(data.as_ref())))
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.gate,
        }
    }
}

/// A clock stopped at the run's start, so a replay sees the recorded time.
#[derive(Clone, Copy)]
struct FrozenClock(i64);

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        Duration::from_millis(self.0.max(0) as u64)
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }

    fn now(&self) -> u64 {
        0
    }
}

impl types::Host for HostState {}

impl HostState {
    /// Keeps a log line, `message` being the first [`MAX_LOG_LINE_BYTES`] bytes of the
    /// guest's text (`handover` copies no more), or only a count past [`MAX_LOG_LINES`].
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        if self.effects.logs.len() >= MAX_LOG_LINES {
            self.effects.dropped_logs += 1;
            return Ok(());
        }
        self.fits(message.len(), "a log line")?;
        self.keep(message.len());
        let level = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.effects.logs.push(LogLine { level, message });
        Ok(())
    }
}

impl config::Host for HostState {
    fn get(&mut self, key: String) -> Option<String> {
        self.ctx.config.get(&key).map(|value| value.to_string())
    }

    fn document(&mut self) -> String {
        self.ctx.config.to_string()
    }
}

impl HostState {
    fn store_get(&self, key: &str) -> Option<Vec<u8>> {
        if let Some(written) = self.effects.store_writes.get(key) {
            return written.clone();
        }
        if check_store_key(key).is_err() {
            return None;
        }
        let key = key.to_owned();
        self.data(|data| data.store_get(key))
            .and_then(Result::ok)
            .and_then(Result::ok)
            .flatten()
    }

    /// Checks a write of `value` under `key` (both borrowing the guest's memory) against the
    /// value limit, the store's quota and the run's budget, before either is copied.
    fn check_store_set(&self, key: &str, value: &[u8]) -> wasmtime::Result<Result<(), HostError>> {
        self.fits(key.len() + value.len(), "a store value")?;
        Ok(self.store_quota(key, value))
    }

    fn store_quota(&self, key: &str, value: &[u8]) -> Result<(), HostError> {
        check_store_key(key)?;
        if value.len() > STORE_MAX_VALUE_BYTES {
            return Err(HostError::QuotaExceeded(format!(
                "a value may hold {STORE_MAX_VALUE_BYTES} bytes"
            )));
        }
        let (keys, bytes) = match self.store_usage.get() {
            Some(usage) => *usage,
            None => {
                let usage = self
                    .data(|data| data.store_usage())
                    .unwrap_or_else(|| {
                        Err(HostError::Unavailable(
                            "records are not available in this run".into(),
                        ))
                    })?
                    .map_err(|_| HostError::Unavailable("the store could not be read".into()))?;
                *self.store_usage.get_or_init(|| usage)
            }
        };
        let pending: i64 = self
            .effects
            .store_writes
            .values()
            .map(|v| v.as_ref().map_or(0, |v| v.len() as i64))
            .sum();
        if keys + self.effects.store_writes.len() as i64 >= STORE_MAX_KEYS
            || bytes + pending + value.len() as i64 > STORE_MAX_BYTES
        {
            return Err(HostError::QuotaExceeded(format!(
                "the store holds at most {STORE_MAX_KEYS} keys and {STORE_MAX_BYTES} bytes"
            )));
        }
        Ok(())
    }

    /// Keeps a checked write; a value it replaces is no longer kept.
    fn store_set(&mut self, key: String, value: Option<Vec<u8>>) {
        let added = key.len() + value.as_ref().map_or(0, Vec::len);
        if let Some(Some(old)) = self.effects.store_writes.get(&key) {
            self.handed -= (key.len() + old.len()).min(self.handed);
        }
        self.keep(added);
        self.effects.store_writes.insert(key, value);
    }
}

fn check_store_key(key: &str) -> Result<(), HostError> {
    if key.is_empty() || key.len() > STORE_MAX_KEY_BYTES {
        return Err(HostError::Invalid(format!(
            "a key is 1 to {STORE_MAX_KEY_BYTES} bytes"
        )));
    }
    Ok(())
}

impl records::Host for HostState {
    fn customer(&mut self, id: i64) -> Result<Customer, HostError> {
        self.lookup(|records| records.customer(id))
    }

    fn vehicle(&mut self, id: i64) -> Result<Vehicle, HostError> {
        self.lookup(|records| records.vehicle(id))
    }

    fn vehicles_of(&mut self, customer_id: i64) -> Result<Vec<Vehicle>, HostError> {
        self.lookup(|records| records.vehicles_of(customer_id))
    }

    fn order(&mut self, id: i64) -> Result<Order, HostError> {
        self.lookup(|records| records.order(id))
    }
}

impl clock::Host for HostState {
    fn now(&mut self) -> i64 {
        self.ctx.now_ms
    }

    fn today(&mut self) -> String {
        let cst = FixedOffset::east_opt(CST_SECONDS).expect("a valid offset");
        Utc.timestamp_millis_opt(self.ctx.now_ms)
            .single()
            .unwrap_or_default()
            .with_timezone(&cst)
            .date_naive()
            .to_string()
    }
}

impl HostState {
    /// Checks an event (`kind` and `payload` borrow the guest's memory): the count, the
    /// budget, then the kind and the payload's size before it is parsed.
    fn check_emit(
        &self,
        kind: &str,
        payload: &str,
    ) -> wasmtime::Result<Result<EmittedEvent, HostError>> {
        if self.effects.events.len() >= MAX_EVENTS {
            return Ok(Err(HostError::QuotaExceeded(format!(
                "a run emits at most {MAX_EVENTS} events"
            ))));
        }
        self.fits(kind.len() + payload.len(), "an event")?;
        if kind.is_empty()
            || kind.len() > 64
            || !kind
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        {
            return Ok(Err(HostError::Invalid(
                "an event kind is 1 to 64 characters of a-z, 0-9, '-' and '.'".into(),
            )));
        }
        if payload.len() > MAX_EVENT_PAYLOAD_BYTES {
            return Ok(Err(HostError::Invalid(format!(
                "the payload is {} bytes; at most {MAX_EVENT_PAYLOAD_BYTES}",
                payload.len()
            ))));
        }
        Ok(serde_json::from_str(payload)
            .map(|payload| EmittedEvent {
                kind: kind.to_owned(),
                payload,
            })
            .map_err(|e| HostError::Invalid(format!("the payload is not JSON: {e}"))))
    }

    fn emit(&mut self, event: EmittedEvent) {
        self.keep(event.kind.len() + event.payload.get().len());
        self.effects.events.push(event);
    }

    /// Keeps a checked notification copied from the guest (see [`handover`]).
    fn notify(&mut self, notification: Notification, bytes: usize) {
        self.keep(bytes);
        self.effects.notifications.push(notification);
    }
}

/// The channels the host can deliver on.
pub const CHANNELS: [&str; 5] = ["sms", "wechat", "email", "app", "task"];

/// A notification the host can deliver: a known channel and a recipient it can resolve.
pub fn check_notification(n: &Notification) -> Result<(), String> {
    if !CHANNELS.contains(&n.channel.as_str()) {
        return Err(format!(
            "unknown channel `{}`; use one of {}",
            n.channel,
            CHANNELS.join(", ")
        ));
    }
    let recipient_ok = match n.recipient.split_once(':') {
        Some(("role", role)) => !role.is_empty() && role.len() <= 64,
        Some(("staff" | "customer", id)) => id.parse::<i64>().is_ok(),
        _ => false,
    };
    if !recipient_ok {
        return Err(format!(
            "recipient `{}` is not `role:<name>`, `staff:<id>` or `customer:<id>`",
            n.recipient
        ));
    }
    if n.template.is_empty() || n.template.len() > 128 {
        return Err("a template name is 1 to 128 bytes".into());
    }
    if n.data.len() > 32 {
        return Err(format!("{} data entries; at most 32", n.data.len()));
    }
    if n.data.iter().any(|(k, v)| k.len() > 64 || v.len() > 2000) {
        return Err("a data entry is a key of at most 64 bytes and a value of at most 2000".into());
    }
    Ok(())
}

impl HostState {
    /// Makes a partner call; `request` was sized in the guest's memory and fits the budget.
    fn send(&mut self, request: Request, bytes: usize) -> Result<Response, HostError> {
        self.keep(bytes);
        if self.ctx.mode == Mode::Replay {
            return Err(HostError::Unavailable(
                "partner calls are not made during a replay".into(),
            ));
        }
        if self.effects.outbound.len() >= MAX_OUTBOUND_CALLS {
            return Err(HostError::QuotaExceeded(format!(
                "a run makes at most {MAX_OUTBOUND_CALLS} partner calls"
            )));
        }
        let url = reqwest::Url::parse(&request.url)
            .map_err(|e| HostError::Invalid(format!("`{}` is not a URL: {e}", request.url)))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(HostError::Denied(format!(
                "only http and https are allowed, not {}",
                url.scheme()
            )));
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        let allowed = self
            .ctx
            .grants
            .outbound_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&host) || h.eq_ignore_ascii_case(&authority));
        if !allowed {
            return Err(HostError::Denied(format!(
                "{authority} is not on this plugin's outbound allowlist"
            )));
        }
        let secret = match &request.credential {
            Some(credential) => Some((
                credential.placement.clone(),
                self.secret(&credential.handle)?,
            )),
            None => None,
        };
        let Some(services) = self.services.clone() else {
            return Err(HostError::Unavailable(
                "partner calls are not available in this run".into(),
            ));
        };
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut builder = services
            .http
            .request(method.clone(), url.clone())
            .body(request.body);
        for (name, value) in &request.headers {
            if name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("host") {
                return Err(HostError::Invalid(format!(
                    "the {name} header is set by the host"
                )));
            }
            builder = builder.header(name, value);
        }
        builder = match secret {
            Some((CredentialPlacement::Bearer, secret)) => builder.bearer_auth(secret),
            Some((CredentialPlacement::Header(name), secret)) => builder.header(name, secret),
            None => builder,
        };
        let timeout = self
            .deadline
            .saturating_duration_since(Instant::now())
            .min(MAX_OUTBOUND_TIMEOUT);
        let started = Instant::now();
        let budget = self.budget();
        let result: Result<Response, String> = services.tokio.block_on(async {
            budget
                .bound(async {
                    let response = builder
                        .timeout(timeout)
                        .send()
                        .await
                        .map_err(|e| format!("{e}"))?;
                    let status = response.status().as_u16();
                    let headers = response
                        .headers()
                        .iter()
                        .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_owned())))
                        .collect();
                    let mut body = Vec::new();
                    let mut response = response;
                    while let Some(chunk) = response.chunk().await.map_err(|e| format!("{e}"))? {
                        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                            return Err(format!(
                                "the response is larger than {MAX_RESPONSE_BYTES} bytes"
                            ));
                        }
                        body.extend_from_slice(&chunk);
                    }
                    Ok(Response {
                        status,
                        headers,
                        body,
                    })
                })
                .await
                .unwrap_or_else(|stopped| Err(stopped.to_string()))
        });
        let call = OutboundCall {
            method: method_name(&method),
            url: format!("{}://{}{}", url.scheme(), authority, url.path()),
            credential: request.credential.as_ref().map(|c| c.handle.clone()),
            status: result.as_ref().ok().map(|r| r.status),
            error: result.as_ref().err().cloned(),
            duration_ms: started.elapsed().as_millis() as u64,
        };
        call.log(&self.ctx.plugin_name, self.ctx.dealer_id, "outbound");
        self.effects.outbound.push(call);
        result.map_err(HostError::Unavailable)
    }
}

impl HostState {
    /// The key `signing` signs `bytes` of data with: the secret behind `handle`, which never
    /// leaves the host. Counted against [`MAX_SIGNATURES`] whether or not it is granted.
    fn signing_key(&mut self, handle: &str, bytes: usize) -> Result<String, HostError> {
        if self.signatures >= MAX_SIGNATURES {
            return Err(HostError::QuotaExceeded(format!(
                "a run signs at most {MAX_SIGNATURES} times"
            )));
        }
        self.signatures += 1;
        if bytes > MAX_SIGNED_BYTES {
            return Err(HostError::Invalid(format!(
                "the data to sign is {bytes} bytes; at most {MAX_SIGNED_BYTES}"
            )));
        }
        self.secret(handle)
    }

    /// The dealer's secret behind a credential handle the plugin was granted.
    fn secret(&mut self, handle: &str) -> Result<String, HostError> {
        if !self.ctx.grants.credentials.iter().any(|h| h == handle) {
            return Err(HostError::Denied(format!(
                "this plugin was not granted the credential `{handle}`"
            )));
        }
        self.data(|data| data.secret(handle.to_owned()))
            .unwrap_or_else(|| {
                Err(HostError::Unavailable(
                    "records are not available in this run".into(),
                ))
            })?
            .map_err(|_| HostError::Unavailable("the credential could not be read".into()))?
            .ok_or_else(|| {
                HostError::Denied(format!(
                    "this dealer has not configured the credential `{handle}`"
                ))
            })
    }
}

/// A partner call's method as the run log names it (`OutboundCall::method`), for the
/// `outbound` interface and for `wasi:http` alike.
pub(crate) fn method_name(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
