//! What a plugin may import: the host side of the `imports` world.
//!
//! A plugin call owns one [`HostState`]. Nothing a plugin does takes effect during the run:
//! logs, events, notifications and store writes are collected in [`Effects`], which the caller
//! applies only when the run succeeded (and never for a replay). Look-ups see only the calling
//! dealer's records; a look-up of another dealer's record answers `not-found`, exactly like a
//! missing one, and is audited as a denial. WASI is linked so that components from any
//! toolchain instantiate, but grants nothing: no arguments, environment, sockets or files,
//! except a private directory when HQ granted one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{FixedOffset, TimeZone, Utc};
use serde::Serialize;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::outbound::{CredentialPlacement, Method, Request, Response};
use super::bindings::types::{Customer, HostError, Level, Notification, Order, Vehicle};
use super::bindings::{clock, config, events, log, outbound, records, store, types};
use super::registry::{self, Grants};
use super::runtime::Limits;
use crate::Db;
use crate::access::{Caller, Role};

/// Per-run caps on what a plugin may ask of the host.
const MAX_LOG_LINES: usize = 200;
const MAX_LOG_LINE_BYTES: usize = 2048;
const MAX_EVENTS: usize = 100;
const MAX_OUTBOUND_CALLS: usize = 16;
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
    /// The dealer's materialised path in the network tree.
    pub dealer_path: String,
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

/// What the host reaches for a plugin: the database and partners. `None` in a run without
/// them (a benchmark): look-ups and partner calls then answer `unavailable`.
#[derive(Clone)]
pub struct Services {
    /// The database, for record look-ups, the store and the dealer's secrets. `None` in an
    /// author's local harness, where look-ups answer `unavailable` and secrets come from
    /// `secrets`.
    pub db: Option<Db>,
    pub tokio: tokio::runtime::Handle,
    pub http: reqwest::Client,
    /// Secrets by handle when there is no database (a fixture's test secrets).
    pub secrets: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct EmittedEvent {
    pub kind: String,
    pub payload: serde_json::Value,
}

/// A record of another dealer the plugin asked for.
#[derive(Debug, Clone, Serialize)]
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
    limiter: MemoryLimiter,
    ctx: CallContext,
    services: Option<Services>,
    deadline: Instant,
    effects: Effects,
}

impl HostState {
    pub fn new(
        ctx: CallContext,
        services: Option<Services>,
        limits: &Limits,
        deadline: Instant,
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
        Ok(HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                max: limits.memory_bytes,
                total: 0,
                peak: 0,
                hit: false,
            },
            ctx,
            services,
            deadline,
            effects: Effects::default(),
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
        self.effects
    }

    /// Runs a database query for a host call, bounded by the run's deadline.
    fn query<T>(
        &self,
        work: impl AsyncFnOnce(&Db) -> crate::error::Result<T>,
    ) -> Result<crate::error::Result<T>, HostError> {
        let Some((services, db)) = self
            .services
            .as_ref()
            .and_then(|s| Some((s, s.db.as_ref()?)))
        else {
            return Err(HostError::Unavailable(
                "records are not available in this run".into(),
            ));
        };
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        services
            .tokio
            .block_on(async { tokio::time::timeout(remaining, work(db)).await })
            .map_err(|_| HostError::Unavailable("the run's deadline passed".into()))
    }

    /// The plugin, as a caller of the domain layer: the dealer's scope, phones masked.
    fn caller(&self) -> Caller {
        Caller {
            key_id: 0,
            role: Role::Partner,
            org_id: self.ctx.dealer_id,
            org_kind: "dealer".into(),
            org_path: self.ctx.dealer_path.clone(),
            staff_id: None,
        }
    }

    /// Maps a domain error to what the guest sees, noting denials for the audit log.
    fn host_error(&mut self, error: crate::error::Error) -> HostError {
        match error {
            crate::error::Error::Denied(denial) => {
                self.effects.denials.push(Denial {
                    entity: denial.entity,
                    id: denial.id,
                    owner_dealer_id: denial.dealer_id,
                });
                HostError::NotFound
            }
            crate::error::Error::NotFound { .. } => HostError::NotFound,
            other => {
                tracing::warn!(error = %other, plugin = %self.ctx.plugin_name, "a plugin look-up failed");
                HostError::Unavailable("the host could not read the record".into())
            }
        }
    }

    fn lookup<T>(
        &mut self,
        work: impl AsyncFnOnce(&Db, &Caller) -> crate::error::Result<T>,
    ) -> Result<T, HostError> {
        let caller = self.caller();
        match self.query(async |db| work(db, &caller).await)? {
            Ok(value) => Ok(value),
            Err(error) => Err(self.host_error(error)),
        }
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

impl log::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        if self.effects.logs.len() >= MAX_LOG_LINES {
            self.effects.dropped_logs += 1;
            return;
        }
        let mut message = message;
        if message.len() > MAX_LOG_LINE_BYTES {
            let mut end = MAX_LOG_LINE_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        let level = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.effects.logs.push(LogLine { level, message });
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

impl store::Host for HostState {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        if let Some(written) = self.effects.store_writes.get(&key) {
            return written.clone();
        }
        let (dealer, plugin) = (self.ctx.dealer_id, self.ctx.plugin_id);
        self.query(async |db| {
            let mut conn = db.pool().acquire().await?;
            registry::store_get(&mut conn, dealer, plugin, &key).await
        })
        .ok()
        .and_then(Result::ok)
        .flatten()
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), HostError> {
        check_store_key(&key)?;
        if value.len() > STORE_MAX_VALUE_BYTES {
            return Err(HostError::QuotaExceeded(format!(
                "a value may hold {STORE_MAX_VALUE_BYTES} bytes"
            )));
        }
        let (dealer, plugin) = (self.ctx.dealer_id, self.ctx.plugin_id);
        let (keys, bytes) = self
            .query(async |db| {
                let mut conn = db.pool().acquire().await?;
                registry::store_usage(&mut conn, dealer, plugin).await
            })?
            .map_err(|_| HostError::Unavailable("the store could not be read".into()))?;
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
        self.effects.store_writes.insert(key, Some(value));
        Ok(())
    }

    fn delete(&mut self, key: String) -> Result<(), HostError> {
        check_store_key(&key)?;
        self.effects.store_writes.insert(key, None);
        Ok(())
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
        let customer = self.lookup(async |db, caller| {
            let mut conn = db.pool().acquire().await?;
            crate::customers::get(&mut conn, caller, id).await
        })?;
        Ok(customer_view(customer))
    }

    fn vehicle(&mut self, id: i64) -> Result<Vehicle, HostError> {
        let vehicle = self.lookup(async |db, caller| {
            let mut conn = db.pool().acquire().await?;
            crate::vehicles::get(&mut conn, caller, id).await
        })?;
        Ok(vehicle_view(vehicle))
    }

    fn vehicles_of(&mut self, customer_id: i64) -> Result<Vec<Vehicle>, HostError> {
        let dealer = self.ctx.dealer_id;
        let vehicles = self.lookup(async |db, caller| {
            let mut conn = db.pool().acquire().await?;
            crate::customers::dealer_of(&mut conn, caller, customer_id).await?;
            crate::vehicles::for_customers(&mut conn, &[customer_id]).await
        })?;
        Ok(vehicles
            .into_iter()
            .filter(|v| v.dealer_id == dealer)
            .map(vehicle_view)
            .collect())
    }

    fn order(&mut self, id: i64) -> Result<Order, HostError> {
        let order = self.lookup(async |db, caller| {
            let mut conn = db.pool().acquire().await?;
            crate::sales::orders::get(&mut conn, caller, id).await
        })?;
        Ok(order_view(order))
    }
}

fn order_view(o: crate::sales::orders::Order) -> Order {
    Order {
        id: o.id,
        dealer_id: o.dealer_id,
        customer_id: o.customer_id,
        consultant_id: o.consultant_id,
        model: o.model,
        status: o.status.as_str().to_owned(),
        list_price: o.list_price_fen,
        discount: o.discount_fen,
        final_price: o.final_price_fen,
        finance_plan: o.finance_plan,
        lines: crate::sales::orders::contract_lines(&o.lines),
        created_at: o.created_at.timestamp_millis(),
        delivered_at: o.delivered_at.map(|t| t.timestamp_millis()),
    }
}

/// A customer as plugins see it (phone masked when the reading caller masks it).
pub(crate) fn customer_view(c: crate::customers::Customer) -> Customer {
    Customer {
        id: c.id,
        dealer_id: c.dealer_id,
        name: c.name,
        phone_masked: c.phones.first().map(|p| p.number.clone()),
        tier: Some(c.member_tier),
        tags: c.tags,
        birthday: c.birthday.map(|d| d.to_string()),
        source_channel: c
            .source_channel
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|v| v.as_str().map(str::to_owned)),
        referrer_id: c.referrer_id,
        marketing_consent: c.marketing_consent,
    }
}

/// A vehicle as plugins see it, with its current owner, latest mileage and daily mileage.
pub(crate) fn vehicle_view(v: crate::vehicles::Vehicle) -> Vehicle {
    let owner_id = v
        .people
        .iter()
        .find(|p| p.until.is_none() && matches!(p.role, crate::vehicles::PersonRole::Owner))
        .map(|p| p.customer_id);
    Vehicle {
        id: v.id,
        dealer_id: v.dealer_id,
        vin: v.vin,
        plate: v.plate,
        brand: v.brand,
        model: v.model,
        trim: v.trim,
        purchase_date: v.purchase_date.map(|d| d.to_string()),
        insurer: v.insurer,
        insurance_expiry: v.insurance_expiry.map(|d| d.to_string()),
        mileage_km: v.latest_mileage_km,
        daily_km_tenths: v.estimated_daily_km.map(|km| (km * 10.0).round() as i64),
        owner_id,
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

impl events::Host for HostState {
    fn emit(&mut self, kind: String, payload: String) -> Result<(), HostError> {
        if self.effects.events.len() >= MAX_EVENTS {
            return Err(HostError::QuotaExceeded(format!(
                "a run emits at most {MAX_EVENTS} events"
            )));
        }
        if kind.is_empty()
            || kind.len() > 64
            || !kind
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        {
            return Err(HostError::Invalid(
                "an event kind is 1 to 64 characters of a-z, 0-9, '-' and '.'".into(),
            ));
        }
        let payload = serde_json::from_str(&payload)
            .map_err(|e| HostError::Invalid(format!("the payload is not JSON: {e}")))?;
        self.effects.events.push(EmittedEvent { kind, payload });
        Ok(())
    }

    fn notify(&mut self, notification: Notification) -> Result<(), HostError> {
        if self.effects.notifications.len() >= MAX_EVENTS {
            return Err(HostError::QuotaExceeded(format!(
                "a run sends at most {MAX_EVENTS} notifications"
            )));
        }
        check_notification(&notification).map_err(HostError::Invalid)?;
        self.effects.notifications.push(notification);
        Ok(())
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

impl outbound::Host for HostState {
    fn send(&mut self, request: Request) -> Result<Response, HostError> {
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
        let result: Result<Response, String> = services.tokio.block_on(async {
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
        });
        let call = OutboundCall {
            method: method_name(&method),
            url: format!("{}://{}{}", url.scheme(), authority, url.path()),
            credential: request.credential.as_ref().map(|c| c.handle.clone()),
            status: result.as_ref().ok().map(|r| r.status),
            error: result.as_ref().err().cloned(),
            duration_ms: started.elapsed().as_millis() as u64,
        };
        tracing::info!(
            plugin = %self.ctx.plugin_name,
            dealer = self.ctx.dealer_id,
            method = call.method,
            url = %call.url,
            credential = ?call.credential,
            status = ?call.status,
            error = ?call.error,
            duration_ms = call.duration_ms,
            "partner call"
        );
        self.effects.outbound.push(call);
        result.map_err(HostError::Unavailable)
    }
}

impl HostState {
    /// The dealer's secret behind a credential handle the plugin was granted.
    fn secret(&mut self, handle: &str) -> Result<String, HostError> {
        if !self.ctx.grants.credentials.iter().any(|h| h == handle) {
            return Err(HostError::Denied(format!(
                "this plugin was not granted the credential `{handle}`"
            )));
        }
        if let Some(services) = self.services.as_ref().filter(|s| s.db.is_none()) {
            return services.secrets.get(handle).cloned().ok_or_else(|| {
                HostError::Denied(format!(
                    "the fixture gives no secret for the credential `{handle}`"
                ))
            });
        }
        let dealer = self.ctx.dealer_id;
        let handle_owned = handle.to_owned();
        self.query(async |db| {
            let mut conn = db.pool().acquire().await?;
            registry::secret(&mut conn, dealer, &handle_owned).await
        })?
        .map_err(|_| HostError::Unavailable("the credential could not be read".into()))?
        .ok_or_else(|| {
            HostError::Denied(format!(
                "this dealer has not configured the credential `{handle}`"
            ))
        })
    }
}

fn method_name(method: &reqwest::Method) -> &'static str {
    match *method {
        reqwest::Method::GET => "GET",
        reqwest::Method::POST => "POST",
        reqwest::Method::PUT => "PUT",
        reqwest::Method::PATCH => "PATCH",
        _ => "DELETE",
    }
}
