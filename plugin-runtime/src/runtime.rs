//! Compiling, caching and running plugin components.
//!
//! One [`Engine`] with the pooling allocator serves every plugin. A component is compiled
//! once per content hash: the native artifact is cached on disk under a directory named after
//! the engine's compatibility hash, so a restart deserialises (mmaps) instead of compiling.
//! Each loaded component is pre-instantiated against the one [`Linker`]; every call then gets
//! a fresh [`Store`] and instance, bounded by fuel (deterministic), a wall-clock deadline
//! (checked at every epoch tick and raced against every WASI wait, see [`crate::deadline`]),
//! a memory limit and an output-size limit, and stopped early if the host cancels it.
//!
//! Loaded components are kept in memory up to a budget ([`LOADED_BUDGET_BYTES`]), the least
//! recently used dropped first: an upload is validated without being kept, and a component
//! dropped from memory is mapped again from its cached artifact (no compilation) at its next
//! call. A running call holds its own reference, so dropping one never breaks a call.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::Digest;
use wasmtime::component::{Component, Linker, types::ComponentItem};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
};

use crate::deadline::{Cancel, Stopped};
pub use crate::hooks::HookSpec;
use crate::hooks::Prepared;
use crate::host_api::{CallContext, Effects, HostState, OverBudget, Services};
use crate::{Hook, Outcome};

/// What setting up the engine may fail with (wasmtime's error type).
pub type EngineResult<T> = wasmtime::Result<T>;

/// Resource limits of one plugin call.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock deadline, including host calls and WASI waits: checked against the clock at
    /// every epoch tick, so it does not stretch when a loaded machine delays the ticks.
    pub deadline: Duration,
    /// Deterministic instruction budget: a replay stops where the recorded run stopped.
    pub fuel: u64,
    /// Linear memory per instance.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // Fuel is the limit that binds in practice (a few hundred milliseconds of pure
        // computation), so what a plugin may do does not depend on the machine's load; the
        // deadline is the backstop for host calls and a starved machine.
        Limits {
            deadline: Duration::from_secs(1),
            fuel: 400_000_000,
            memory_bytes: 64 << 20,
        }
    }
}

/// The largest component the registry accepts. A Python component (componentize-py) carries
/// its interpreter and is some 18.5 MB; the owner's byte quota (the host's registry) is what
/// bounds the space plugins take.
pub const MAX_COMPONENT_BYTES: usize = 40 << 20;

/// The compiled code the runtime keeps mapped for loaded components, by default
/// ([`Runtime::with_loaded_budget`]). A component's cost is its compiled image; the budget
/// holds a few hundred small plugins or a dozen interpreters.
pub const LOADED_BUDGET_BYTES: usize = 256 << 20;

/// How often the epoch advances, so how often a computing plugin checks its deadline and
/// cancel handle.
const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Instances that may run at once; callers beyond it wait for a free slot.
const MAX_CONCURRENT_INSTANCES: u32 = 128;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("the component is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error(
        "this is a core WebAssembly module, not a component: build it for the wasm32-wasip2 target (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    #[error("this is not a WebAssembly component: {0}")]
    NotWasm(String),
    #[error("the component does not compile: {0}")]
    Compile(String),
    #[error(
        "the component exports no extension point; it must export one of: {}",
        Hook::ALL.map(|h| format!("{}@{}", h.export_interface(), h.since())).join(", ")
    )]
    NoHook,
    #[error("the component exports several extension points ({0}); a plugin serves exactly one")]
    SeveralHooks(String),
    #[error(
        "the component targets dealer:platform@{found}, which this host does not support (it implements {supported})"
    )]
    UnsupportedVersion { found: String, supported: String },
    #[error("the component imports what the host does not provide: {0}")]
    Link(String),
    #[error("the plugin cache could not be written: {0}")]
    Cache(#[from] std::io::Error),
}

/// What validation found in an uploaded component.
#[derive(Debug, Clone)]
pub struct ComponentInfo {
    pub hook: Hook,
    pub wit_version: semver::Version,
    pub sha256: String,
}

/// A compiled, pre-instantiated component, ready to be called.
pub struct Loaded {
    pub info: ComponentInfo,
    /// What keeping it loaded costs: the size of its compiled image.
    cost: usize,
    /// The hook's typed pre-instance (`H::Pre` for the component's hook).
    pre: Prepared,
}

/// What one call produced.
#[derive(Debug)]
pub struct RunReport<T> {
    pub outcome: Outcome,
    pub output: Option<T>,
    /// Set when the outcome is not `Ok`.
    pub error: Option<String>,
    pub duration: Duration,
    pub fuel_used: u64,
    /// The peak linear memory of the instance.
    pub memory_bytes: usize,
    /// Logs, events, notifications, store writes and denials, applied by the caller only if
    /// the run succeeded (denials are audited in any case).
    pub effects: Effects,
}

/// The components kept loaded, by content hash, with the order of their last use.
#[derive(Default)]
struct LoadedSet {
    entries: HashMap<String, Kept>,
    /// The sum of the entries' `cost`.
    bytes: usize,
    /// Ticks at each use; the entry with the oldest tick goes first.
    clock: u64,
}

struct Kept {
    loaded: Arc<Loaded>,
    cost: usize,
    used: u64,
}

impl LoadedSet {
    fn get(&mut self, sha256: &str) -> Option<Arc<Loaded>> {
        self.clock += 1;
        let kept = self.entries.get_mut(sha256)?;
        kept.used = self.clock;
        Some(kept.loaded.clone())
    }

    /// Keeps `loaded`, then drops the least recently used others while over `budget` (the
    /// newest stays even if it alone exceeds it: it is about to run).
    fn insert(&mut self, loaded: Arc<Loaded>, budget: usize) {
        self.clock += 1;
        let sha256 = loaded.info.sha256.clone();
        let cost = loaded.cost;
        if let Some(old) = self.entries.insert(
            sha256.clone(),
            Kept {
                loaded,
                cost,
                used: self.clock,
            },
        ) {
            self.bytes -= old.cost;
        }
        self.bytes += cost;
        while self.bytes > budget {
            let Some(oldest) = self
                .entries
                .iter()
                .filter(|(sha, _)| **sha != sha256)
                .min_by_key(|(_, kept)| kept.used)
                .map(|(sha, _)| sha.clone())
            else {
                break;
            };
            self.remove(&oldest);
        }
    }

    fn remove(&mut self, sha256: &str) {
        if let Some(kept) = self.entries.remove(sha256) {
            self.bytes -= kept.cost;
        }
    }
}

pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache_dir: Option<PathBuf>,
    loaded: Mutex<LoadedSet>,
    /// What [`LoadedSet`] may keep, in bytes of compiled code.
    loaded_budget: usize,
    slots: Arc<tokio::sync::Semaphore>,
    limits: Limits,
}

impl Runtime {
    /// A runtime caching compiled artifacts under `cache_dir` (none: compile on every load).
    pub fn new(cache_dir: Option<&Path>, limits: Limits) -> EngineResult<Runtime> {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(MAX_CONCURRENT_INSTANCES)
            .total_core_instances(MAX_CONCURRENT_INSTANCES * 8)
            .total_memories(MAX_CONCURRENT_INSTANCES * 2)
            .total_tables(MAX_CONCURRENT_INSTANCES * 4)
            .max_memory_size(limits.memory_bytes)
            // Reset the pages an instance dirtied by memset rather than madvise (found with
            // the PAGEMAP_SCAN ioctl where the kernel has it): a plugin touches little
            // memory, and keeping it resident spares the next instance its page faults.
            .pagemap_scan(Enabled::Auto)
            .linear_memory_keep_resident(2 << 20)
            .table_keep_resident(64 << 10)
            // What must still be decommitted is batched into fewer madvise calls.
            .decommit_batch_size(32);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(512 << 10)
            .parallel_compilation(true);
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)?;
        crate::host_api::bound_poll(&mut linker)?;
        crate::host_api::add_to_linker(&mut linker)?;
        spawn_epoch_ticker(&engine);
        let cache_dir = match cache_dir {
            Some(dir) => {
                let dir = dir.join(engine_fingerprint(&engine));
                std::fs::create_dir_all(&dir)?;
                Some(dir)
            }
            None => None,
        };
        Ok(Runtime {
            engine,
            linker,
            cache_dir,
            loaded: Mutex::new(LoadedSet::default()),
            loaded_budget: LOADED_BUDGET_BYTES,
            slots: Arc::new(tokio::sync::Semaphore::new(
                MAX_CONCURRENT_INSTANCES as usize,
            )),
            limits,
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    #[cfg(test)]
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    #[cfg(test)]
    pub(crate) fn linker(&self) -> &Linker<HostState> {
        &self.linker
    }

    /// Validates an uploaded component: size, a component (not a core module), compiles,
    /// exports exactly one extension point at a supported WIT version, and imports nothing
    /// the host does not provide. On success it is compiled and cached on disk, and returned
    /// ready to run, but not kept loaded: that is for [`Runtime::load`], when it is called.
    pub fn inspect(&self, bytes: &[u8]) -> Result<Arc<Loaded>, RuntimeError> {
        check_header(bytes)?;
        let sha256 = hex::encode(sha2::Sha256::digest(bytes));
        if let Some(loaded) = self.cached(&sha256) {
            return Ok(loaded);
        }
        // Compiled before (by this process, or one sharing the cache): validate the cached
        // artifact instead of compiling again.
        if let Some(loaded) = self.read_cached(&sha256)? {
            return Ok(Arc::new(loaded));
        }
        self.compile(bytes, sha256).map(Arc::new)
    }

    /// [`Runtime::inspect`] on a blocking thread: compiling takes milliseconds to seconds.
    pub async fn inspect_async(
        self: &Arc<Self>,
        bytes: Vec<u8>,
    ) -> Result<Arc<Loaded>, RuntimeError> {
        let runtime = self.clone();
        tokio::task::spawn_blocking(move || runtime.inspect(&bytes))
            .await
            .expect("component validation does not panic")
    }

    /// The component with content hash `sha256`, kept loaded for the next calls: from
    /// memory, else from the on-disk cache (no compilation), else compiled from `bytes` if
    /// given.
    pub fn load(
        &self,
        sha256: &str,
        bytes: Option<Vec<u8>>,
    ) -> Result<Option<Arc<Loaded>>, RuntimeError> {
        if let Some(loaded) = self.cached(sha256) {
            return Ok(Some(loaded));
        }
        let loaded = match (self.read_cached(sha256)?, bytes) {
            (Some(loaded), _) => loaded,
            (None, Some(bytes)) => {
                check_header(&bytes)?;
                let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
                self.compile(&bytes, sha256)?
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(self.remember(loaded)))
    }

    /// Bounds the compiled code kept loaded to `bytes` (default [`LOADED_BUDGET_BYTES`]).
    pub fn with_loaded_budget(mut self, bytes: usize) -> Runtime {
        self.loaded_budget = bytes;
        self
    }

    /// How many components are loaded, and the bytes of compiled code they keep.
    pub fn loaded_usage(&self) -> (usize, usize) {
        let set = self.loaded.lock().expect("plugin cache lock");
        (set.entries.len(), set.bytes)
    }

    /// Drops the component with content hash `sha256` from memory and from the on-disk cache:
    /// its bytes were deleted, so no version can run it any more.
    pub fn forget(&self, sha256: &str) -> Result<(), RuntimeError> {
        self.loaded
            .lock()
            .expect("plugin cache lock")
            .remove(sha256);
        if let Some(dir) = &self.cache_dir {
            match std::fs::remove_file(dir.join(format!("{sha256}.cwasm"))) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(error.into());
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The component with content hash `sha256` from the on-disk cache, not kept loaded. A
    /// damaged entry is removed (the component is compiled again from its bytes).
    fn read_cached(&self, sha256: &str) -> Result<Option<Loaded>, RuntimeError> {
        let Some(dir) = &self.cache_dir else {
            return Ok(None);
        };
        let path = dir.join(format!("{sha256}.cwasm"));
        if !path.exists() {
            return Ok(None);
        }
        // SAFETY: the file was written by `compile` into the host's own cache directory,
        // under the fingerprint of an engine configured exactly like this one.
        match unsafe { Component::deserialize_file(&self.engine, &path) } {
            Ok(component) => self.prepare(component, sha256.to_owned()).map(Some),
            Err(error) => {
                tracing::warn!(sha256, %error, "discarding an unreadable cached artifact");
                std::fs::remove_file(&path)?;
                Ok(None)
            }
        }
    }

    /// Compiles `bytes` (content hash `sha256`), writing the artifact to the on-disk cache.
    fn compile(&self, bytes: &[u8], sha256: String) -> Result<Loaded, RuntimeError> {
        let Some(dir) = &self.cache_dir else {
            let component = Component::new(&self.engine, bytes)
                .map_err(|e| RuntimeError::Compile(format!("{e:#}")))?;
            return self.prepare(component, sha256);
        };
        // Compile once, to the artifact the cache keeps, and load the component from it.
        let artifact = self
            .engine
            .precompile_component(bytes)
            .map_err(|e| RuntimeError::Compile(format!("{e:#}")))?;
        // SAFETY: `artifact` was produced just now by this engine from `bytes`.
        let component = unsafe { Component::deserialize(&self.engine, &artifact) }
            .map_err(|e| RuntimeError::Compile(format!("{e:#}")))?;
        let loaded = self.prepare(component, sha256.clone())?;
        // A cache that cannot be written costs a compilation at the next start, nothing more:
        // the component is valid and loaded.
        if let Err(error) = write_atomically(&dir.join(format!("{sha256}.cwasm")), &artifact) {
            tracing::warn!(sha256, %error, "cannot cache a compiled plugin");
        }
        Ok(loaded)
    }

    fn cached(&self, sha256: &str) -> Option<Arc<Loaded>> {
        self.loaded.lock().expect("plugin cache lock").get(sha256)
    }

    fn remember(&self, loaded: Loaded) -> Arc<Loaded> {
        let loaded = Arc::new(loaded);
        self.loaded
            .lock()
            .expect("plugin cache lock")
            .insert(loaded.clone(), self.loaded_budget);
        loaded
    }

    fn prepare(&self, component: Component, sha256: String) -> Result<Loaded, RuntimeError> {
        let (hook, wit_version) = exported_hook(&self.engine, &component)?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| RuntimeError::Link(format!("{e:#}")))?;
        let pre = crate::hooks::prepare(hook, &wit_version, instance_pre)
            .map_err(|e| RuntimeError::Link(format!("{e:#}")))?;
        let image = component.image_range();
        Ok(Loaded {
            info: ComponentInfo {
                hook,
                wit_version,
                sha256,
            },
            cost: image.end as usize - image.start as usize,
            pre,
        })
    }

    /// Waits for a free instance slot, so a burst of calls queues instead of failing.
    pub async fn slot(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .expect("the slot semaphore is never closed")
    }

    /// Runs hook `H` of `loaded` on `input` in a fresh instance. Blocking: call it from a
    /// blocking thread (it may wait on the database or a partner for host calls).
    pub fn invoke<H: HookSpec>(
        &self,
        loaded: &Loaded,
        ctx: CallContext,
        services: Option<Services>,
        input: &H::Input,
    ) -> RunReport<H::Output> {
        self.invoke_cancellable::<H>(loaded, ctx, services, input, &Cancel::new())
    }

    /// [`Runtime::invoke`], stopped (outcome `denied`) as soon as `cancel` is cancelled.
    pub fn invoke_cancellable<H: HookSpec>(
        &self,
        loaded: &Loaded,
        ctx: CallContext,
        services: Option<Services>,
        input: &H::Input,
        cancel: &Cancel,
    ) -> RunReport<H::Output> {
        let started = Instant::now();
        if let Some(reason) = cancel.reason() {
            return RunReport::not_run(Outcome::Denied, stopped_message(reason), started);
        }
        if loaded.info.hook != H::HOOK {
            return RunReport::not_run(
                Outcome::InvalidOutput,
                format!("the component serves {}, not {}", loaded.info.hook, H::HOOK),
                started,
            );
        }
        let deadline = started + self.limits.deadline;
        let state = match HostState::new(
            ctx,
            services,
            self.limits.memory_bytes,
            deadline,
            cancel.clone(),
        ) {
            Ok(state) => state,
            Err(error) => {
                return RunReport::not_run(Outcome::Denied, format!("{error:#}"), started);
            }
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| state.limiter());
        store
            .set_fuel(self.limits.fuel)
            .expect("fuel is enabled on the engine");
        store.epoch_deadline_callback(crate::host_api::on_tick);
        store.set_epoch_deadline(1);

        let result = crate::hooks::call::<H>(&loaded.pre, &mut store, input);
        let fuel_used = self.limits.fuel - store.get_fuel().unwrap_or(0);
        let duration = started.elapsed();
        let state = store.into_data();
        let memory_bytes = state.peak_memory();
        let hit_memory_limit = state.hit_memory_limit();
        let effects = state.into_effects();
        let (outcome, output, error) = match result {
            Ok(Ok(output)) => match H::check(input, &output) {
                Ok(()) => (Outcome::Ok, Some(output), None),
                Err(message) => (Outcome::InvalidOutput, None, Some(message)),
            },
            Ok(Err(message)) => (Outcome::PluginError, None, Some(truncated(message))),
            Err(error) => {
                let (outcome, message) = classify(&error, hit_memory_limit, &self.limits);
                (outcome, None, Some(message))
            }
        };
        RunReport {
            outcome,
            output,
            error,
            duration,
            fuel_used,
            memory_bytes,
            effects,
        }
    }
}

/// A plugin's own error message, cut to [`crate::hooks::MAX_ERROR`] bytes: a fresh string,
/// so the guest's (up to its whole memory) is freed rather than kept as spare capacity.
fn truncated(message: String) -> String {
    let max = crate::hooks::MAX_ERROR;
    if message.len() <= max {
        return message;
    }
    format!("{}…", &message[..message.floor_char_boundary(max)])
}

impl<T> RunReport<T> {
    /// The report of a call that ended (or never started) before the plugin ran: `outcome`
    /// and `error`, the time since `started`, nothing used and nothing to apply.
    pub fn not_run(outcome: Outcome, error: String, started: Instant) -> RunReport<T> {
        RunReport {
            outcome,
            output: None,
            error: Some(error),
            duration: started.elapsed(),
            fuel_used: 0,
            memory_bytes: 0,
            effects: Effects::default(),
        }
    }
}

fn stopped_message(reason: &str) -> String {
    Stopped::Cancelled(reason.to_owned()).to_string()
}

/// Outcome and message of a call that did not return.
fn classify(error: &wasmtime::Error, hit_memory_limit: bool, limits: &Limits) -> (Outcome, String) {
    if let Some(Stopped::Cancelled(reason)) = error.downcast_ref::<Stopped>() {
        return (Outcome::Denied, stopped_message(reason));
    }
    if let Some(over) = error.downcast_ref::<OverBudget>() {
        return (Outcome::InvalidOutput, over.to_string());
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => (
            Outcome::Timeout,
            format!(
                "the plugin used its whole budget of {} fuel units",
                limits.fuel
            ),
        ),
        _ if matches!(error.downcast_ref::<Stopped>(), Some(Stopped::Deadline)) => (
            Outcome::Timeout,
            format!(
                "the plugin ran past its deadline of {} ms",
                limits.deadline.as_millis()
            ),
        ),
        _ if hit_memory_limit => (
            Outcome::OutOfMemory,
            format!(
                "the plugin needed more than its {} MiB of memory ({error})",
                limits.memory_bytes >> 20
            ),
        ),
        Some(Trap::StackOverflow) => (Outcome::Trap, "the plugin overflowed its stack".into()),
        Some(trap) => (Outcome::Trap, format!("the plugin trapped: {trap}")),
        None => (Outcome::Trap, format!("{error:#}")),
    }
}

/// What is checked before compiling: the size, that it is a component, and that the host
/// provides everything it imports (compiling a large component takes seconds to a minute).
fn check_header(bytes: &[u8]) -> Result<(), RuntimeError> {
    if bytes.len() > MAX_COMPONENT_BYTES {
        return Err(RuntimeError::TooLarge {
            size: bytes.len(),
            limit: MAX_COMPONENT_BYTES,
        });
    }
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(RuntimeError::NotWasm(
            "it does not start with the WebAssembly magic number".into(),
        ));
    }
    match &bytes[4..8] {
        [0x0d, 0x00, 0x01, 0x00] => {}
        [0x01, 0x00, 0x00, 0x00] => return Err(RuntimeError::CoreModule),
        other => {
            return Err(RuntimeError::NotWasm(format!(
                "unknown binary version {other:02x?}"
            )));
        }
    }
    let missing = crate::linking::unprovided(bytes).map_err(RuntimeError::Compile)?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(RuntimeError::Link(crate::linking::explain(&missing)))
    }
}

/// The one hook interface the component exports, with the WIT version it targets: one of
/// [`crate::WIT_VERSIONS`] (same `0.minor`, a patch not newer), and not older than the hook.
fn exported_hook(
    engine: &Engine,
    component: &Component,
) -> Result<(Hook, semver::Version), RuntimeError> {
    let mut found = Vec::new();
    for (name, item) in component.component_type().exports(engine) {
        if !matches!(item.ty, ComponentItem::ComponentInstance(_)) {
            continue;
        }
        let Some((interface, version)) = name.split_once('@') else {
            continue;
        };
        let Some(hook) = Hook::ALL
            .into_iter()
            .find(|hook| hook.export_interface() == interface)
        else {
            continue;
        };
        let unsupported = || RuntimeError::UnsupportedVersion {
            found: version.to_owned(),
            supported: crate::WIT_VERSIONS.join(", "),
        };
        let version = semver::Version::parse(version).map_err(|_| unsupported())?;
        found.push((hook, version));
    }
    match found.as_slice() {
        [] => Err(RuntimeError::NoHook),
        [(hook, version)] => {
            // Within 0.x, the minor version is the compatibility boundary; a guest may not
            // target a newer patch than the host implements.
            let implemented = crate::WIT_VERSIONS.iter().any(|supported| {
                let supported = semver::Version::parse(supported).expect("a valid version");
                version.pre.is_empty()
                    && version.major == supported.major
                    && version.minor == supported.minor
                    && version.patch <= supported.patch
            });
            let since = semver::Version::parse(hook.since()).expect("a valid version");
            if !implemented || *version < since {
                return Err(RuntimeError::UnsupportedVersion {
                    found: version.to_string(),
                    supported: crate::WIT_VERSIONS.join(", "),
                });
            }
            Ok((*hook, version.clone()))
        }
        several => Err(RuntimeError::SeveralHooks(
            several
                .iter()
                .map(|(hook, _)| hook.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}

/// A directory name that changes whenever compiled artifacts would be incompatible.
fn engine_fingerprint(engine: &Engine) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("engine-{:016x}", hasher.finish())
}

/// Writes `bytes` to a temporary file of its own, then renames it over `path`, so a reader
/// (another thread or host process sharing the cache) never sees a partial artifact.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Advances the engine's epoch every tick until the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("plugin-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawn the epoch thread");
}
