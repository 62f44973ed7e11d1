//! What the domain calls: "decide this with the dealer's plugin for this hook".
//!
//! [`Plugins::call`] finds the dealer's binding (cached; the cache is dropped on every registry
//! change, announced across replicas by PostgreSQL NOTIFY), honours the kill switches, runs the
//! pinned version in the runtime, records the run, applies its effects if it succeeded, and
//! otherwise follows the binding's failure policy: fall back to the built-in default, or refuse
//! with [`Error::PluginFailed`]. A dealer runs at most as many calls at once as the machine has
//! cores, so one dealer's load cannot take the CPU from the others; a call that finds no free
//! slot in [`SLOT_WAIT`] is recorded as a run that did not start and takes the failure policy
//! at once. A kill switch turned on stops the calls already running ([`super::running`]). [`Plugins::replay`] runs a candidate version on recorded inputs
//! and compares its decisions with the recorded ones. [`Plugins::send_message`] is the
//! channel hook as a sender needs it: a message out through the dealer's channel plugin.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::Hook;
use super::hooks::{
    ApprovalHook, ChannelHook, CommissionHook, IntegrationHook, LoyaltyHook, RemindersHook,
    TicketRoutingHook, channel,
};
use super::host_api::{CallContext, Effects, Mode, Records, Services};
use super::registry::{self, Active, FailurePolicy};
use super::running::Running;
use super::runs::{self, NewRun, Outcome, Source};
use super::runtime::{HookSpec, Loaded, RunReport, Runtime};
use crate::error::{Error, Result};
use crate::{Backend, Db};
use dealer_plugin_runtime::deadline::Cancel;

/// Where a decision came from.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DecisionSource {
    Plugin {
        plugin_id: i64,
        plugin: String,
        version: String,
    },
    /// The host's built-in rule.
    Default {
        /// `no_plugin`, `dealer_killed`, `plugin_killed`, `binding_killed`, or `fallback`
        /// (the plugin failed and the dealer's policy is to fall back).
        reason: String,
        /// The failed plugin, its outcome and error, for a fallback.
        #[serde(skip_serializing_if = "Option::is_none")]
        failed: Option<FailedRun>,
    },
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FailedRun {
    pub plugin: String,
    pub version: String,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub run_id: i64,
}

/// A hook's decision, with what made it.
#[derive(Debug, Serialize)]
pub struct Decision<T> {
    pub output: T,
    pub source: DecisionSource,
    /// The run-log entry of the decision (built-in decisions are recorded too).
    pub run_id: Option<i64>,
    /// Events and notifications the plugin asked for, to be delivered by the caller.
    pub effects: Effects,
}

/// The dealer's binding for a hook as the dispatcher needs it, cached.
#[derive(Clone)]
struct Resolved {
    dealer_path: String,
    active: Option<Arc<Active>>,
    /// The cache generation it was read at.
    generation: u64,
}

#[derive(Default)]
struct Cache {
    generation: u64,
    entries: HashMap<(i64, Hook), Resolved>,
}

/// Makes the record look-ups of one run: dealer id, the dealer's path in the network tree,
/// plugin name. The domain implements them ([`crate::lookups`]); the host hands them over when
/// it starts ([`crate::state::AppState`]).
pub type RecordsFor = Arc<dyn Fn(i64, &str, &str) -> Arc<dyn Records> + Send + Sync>;

pub struct Plugins {
    runtime: Arc<Runtime>,
    db: Db,
    records: RecordsFor,
    http: reqwest::Client,
    /// Where granted private directories live: `<files>/dealer-<id>/plugin-<id>`.
    files_dir: Option<PathBuf>,
    cache: Mutex<Cache>,
    /// Each dealer's share of the runtime's instance slots and of the CPU
    /// ([`slots_per_dealer`]), so one dealer's slow, looping or sleeping plugin can neither hold
    /// every slot nor slow the other dealers' calls down more than a little.
    dealer_slots: Mutex<HashMap<i64, Arc<tokio::sync::Semaphore>>>,
    slots_per_dealer: usize,
    /// The live calls running now, to stop when a kill switch is turned on.
    running: Running,
}

/// How long a call waits for a free slot (its dealer's, then the runtime's) before it takes
/// the binding's failure policy: shorter than a run's deadline, so a dealer whose plugin hangs
/// gets its fallback quickly instead of a queue that grows by a second per call.
pub const SLOT_WAIT: Duration = Duration::from_millis(500);

/// How long a replayed run waits for its slots: a replay is a person comparing a candidate
/// with recorded decisions, not a request on the dealer's critical path, and a run that did
/// not start would count as a difference that is none.
pub const REPLAY_SLOT_WAIT: Duration = Duration::from_secs(30);

/// Plugin calls one dealer may have running at once: the machine's cores, at least 2. More
/// would only share the same cores among one dealer's calls, while taking them from others.
fn slots_per_dealer() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

impl Plugins {
    pub fn new(
        runtime: Arc<Runtime>,
        db: Db,
        records: RecordsFor,
        files_dir: Option<PathBuf>,
    ) -> Plugins {
        Plugins {
            runtime,
            db,
            records,
            // Redirects are not followed: a redirect from an allowlisted host to one off the
            // list would bypass the allowlist. The plugin sees the 3xx and decides.
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client without redirects"),
            files_dir,
            cache: Mutex::new(Cache::default()),
            dealer_slots: Mutex::new(HashMap::new()),
            slots_per_dealer: slots_per_dealer(),
            running: Running::default(),
        }
    }

    /// Plugin calls one dealer may have running at once on this host.
    pub fn slots_per_dealer(&self) -> usize {
        self.slots_per_dealer
    }

    /// Live plugin calls running on this host now.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Forgets every cached binding, and stops the running calls a kill switch now covers.
    /// Called after each registry change on this replica, and on every change notification
    /// from the others.
    pub fn invalidate(&self) {
        {
            let mut cache = self.cache.lock().expect("binding cache lock");
            cache.generation += 1;
            cache.entries.clear();
        }
        if !self.running.is_empty() {
            let (running, db) = (self.running.clone(), self.db.clone());
            tokio::spawn(async move {
                if let Err(error) = running.recheck(&db).await {
                    tracing::warn!(%error, "cannot check the running plugin calls' kill switches");
                }
            });
        }
    }

    fn generation(&self) -> u64 {
        self.cache.lock().expect("binding cache lock").generation
    }

    /// On PostgreSQL, listens for registry changes made through other replicas and drops the
    /// cache on each; reconnects (dropping the cache, since notifications may have been missed)
    /// after a failure. On SQLite there is one process, which invalidates directly.
    pub fn listen_for_changes(self: &Arc<Self>) {
        if self.db.backend() != Backend::Postgres {
            return;
        }
        let plugins = Arc::downgrade(self);
        let url = self.db.url().to_owned();
        tokio::spawn(async move {
            loop {
                let mut listener = match sqlx::postgres::PgListener::connect(&url).await {
                    Ok(listener) => listener,
                    Err(error) => {
                        tracing::warn!(%error, "cannot listen for plugin registry changes; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if let Err(error) = listener.listen(registry::CHANGE_CHANNEL).await {
                    tracing::warn!(%error, "cannot LISTEN for plugin registry changes; retrying");
                    continue;
                }
                let Some(this) = plugins.upgrade() else {
                    return;
                };
                this.invalidate();
                drop(this);
                loop {
                    let received = listener.recv().await;
                    let Some(this) = plugins.upgrade() else {
                        return;
                    };
                    this.invalidate();
                    if let Err(error) = received {
                        tracing::warn!(%error, "lost the plugin registry listener; reconnecting");
                        break;
                    }
                }
            }
        });
    }

    async fn resolve(&self, dealer_id: i64, hook: Hook) -> Result<Resolved> {
        let generation = {
            let cache = self.cache.lock().expect("binding cache lock");
            if let Some(entry) = cache.entries.get(&(dealer_id, hook)) {
                return Ok(entry.clone());
            }
            cache.generation
        };
        let mut conn = self.db.pool().acquire().await?;
        let (_, dealer_path) = crate::network::kind_and_path(&mut conn, dealer_id)
            .await?
            .ok_or(Error::NotFound { entity: "dealer" })?;
        let resolved = Resolved {
            dealer_path,
            active: registry::active(&mut conn, dealer_id, hook)
                .await?
                .map(Arc::new),
            generation,
        };
        let mut cache = self.cache.lock().expect("binding cache lock");
        // A change that landed while we read must not be overwritten by what we read.
        if cache.generation == generation {
            cache.entries.insert((dealer_id, hook), resolved.clone());
        }
        Ok(resolved)
    }

    /// The compiled component with content hash `sha256`, from memory, the disk cache or the
    /// database, in that order.
    pub async fn load(&self, sha256: &str) -> Result<Arc<Loaded>> {
        let runtime = self.runtime.clone();
        let sha = sha256.to_owned();
        let cached = tokio::task::spawn_blocking(move || runtime.load(&sha, None))
            .await
            .expect("the plugin loader does not panic")
            .map_err(|e| Error::PluginUnavailable(e.to_string()))?;
        if let Some(loaded) = cached {
            return Ok(loaded);
        }
        let mut conn = self.db.pool().acquire().await?;
        let bytes = registry::artifact(&mut conn, sha256)
            .await?
            .ok_or_else(|| {
                Error::PluginUnavailable(format!("artifact {sha256} is missing from the registry"))
            })?;
        drop(conn);
        let runtime = self.runtime.clone();
        let sha = sha256.to_owned();
        tokio::task::spawn_blocking(move || runtime.load(&sha, Some(bytes)))
            .await
            .expect("the plugin loader does not panic")
            .map_err(|e| Error::PluginUnavailable(e.to_string()))?
            .ok_or_else(|| Error::PluginUnavailable(format!("artifact {sha256} did not load")))
    }

    /// Decides `input` for `dealer_id` with the dealer's plugin for hook `H`, or the built-in
    /// default when none is enabled, a kill switch is on, or the plugin failed and the
    /// binding's policy is to fall back.
    pub async fn call<H: HookSpec>(
        &self,
        dealer_id: i64,
        input: H::Input,
        source: Source,
    ) -> Result<Decision<H::Output>> {
        let resolved = self.resolve(dealer_id, H::HOOK).await?;
        let reason = match &resolved.active {
            None => Some("no_plugin"),
            Some(active) if active.dealer_kill.is_some() => Some("dealer_killed"),
            Some(active) if active.plugin.killed => Some("plugin_killed"),
            Some(active) if active.binding.killed => Some("binding_killed"),
            Some(_) => None,
        };
        let (Some(active), None) = (resolved.active.clone(), reason) else {
            let reason = reason.unwrap_or("no_plugin");
            return self.built_in::<H>(dealer_id, input, source, reason).await;
        };
        let now_ms = Utc::now().timestamp_millis();
        let registered = self.running.start(dealer_id, &active);
        // A kill switch turned on since the binding was read found no such call running: look
        // again now that it is registered.
        if self.generation() != resolved.generation {
            self.running.recheck(&self.db).await?;
        }
        let (report, run_id) = self
            .run::<H>(
                &active,
                &resolved.dealer_path,
                dealer_id,
                &input,
                now_ms,
                Mode::Live,
                source,
                None,
                registered.cancel(),
            )
            .await?;
        drop(registered);
        self.apply(&active, dealer_id, &report).await?;
        let RunReport {
            outcome,
            output,
            error,
            effects,
            ..
        } = report;
        match output {
            Some(output) => Ok(Decision {
                output,
                source: DecisionSource::Plugin {
                    plugin_id: active.plugin.id,
                    plugin: active.plugin.name.clone(),
                    version: active.binding.pinned_version.clone(),
                },
                run_id: Some(run_id),
                effects,
            }),
            None if active.binding.failure_policy == FailurePolicy::Fallback => Ok(Decision {
                output: H::default(&input),
                source: DecisionSource::Default {
                    reason: "fallback".into(),
                    failed: Some(FailedRun {
                        plugin: active.plugin.name.clone(),
                        version: active.binding.pinned_version.clone(),
                        outcome,
                        error,
                        run_id,
                    }),
                },
                run_id: Some(run_id),
                effects: Effects::default(),
            }),
            None => Err(Error::PluginFailed {
                hook: H::HOOK.as_str(),
                plugin: active.plugin.name.clone(),
                version: active.binding.pinned_version.clone(),
                outcome,
                message: error.unwrap_or_default(),
                run_id,
            }),
        }
    }

    /// The built-in decision, recorded like a plugin's (without a plugin), so that a candidate
    /// can be replayed against what the dealer decides today before its first plugin is
    /// enabled.
    async fn built_in<H: HookSpec>(
        &self,
        dealer_id: i64,
        input: H::Input,
        source: Source,
        reason: &str,
    ) -> Result<Decision<H::Output>> {
        let started_at = Utc::now();
        let started = std::time::Instant::now();
        let output = H::default(&input);
        let run = NewRun {
            dealer_id,
            plugin_id: None,
            plugin_name: None,
            version: None,
            hook: H::HOOK,
            started_at,
            duration_us: started.elapsed().as_micros() as i64,
            outcome: Outcome::Ok,
            memory_bytes: 0,
            fuel_used: 0,
            error: None,
            input: serde_json::to_value(&input).unwrap_or(Value::Null),
            output: serde_json::to_value(&output).ok(),
            effects: None,
            now_ms: started_at.timestamp_millis(),
            replay_of: None,
            source,
        };
        let mut conn = self.db.pool().acquire().await?;
        let run_id = runs::record(&mut conn, &run).await?;
        Ok(Decision {
            output,
            source: DecisionSource::Default {
                reason: reason.into(),
                failed: None,
            },
            run_id: Some(run_id),
            effects: Effects::default(),
        })
    }

    /// Runs the plugin of `active` once and records the run.
    #[allow(clippy::too_many_arguments)]
    async fn run<H: HookSpec>(
        &self,
        active: &Active,
        dealer_path: &str,
        dealer_id: i64,
        input: &H::Input,
        now_ms: i64,
        mode: Mode,
        source: Source,
        replay_of: Option<i64>,
        cancel: &Cancel,
    ) -> Result<(RunReport<H::Output>, i64)> {
        let loaded = self.load(&active.artifact_sha256).await?;
        let ctx = CallContext {
            dealer_id,
            plugin_id: active.plugin.id,
            plugin_name: active.plugin.name.clone(),
            version: active.binding.pinned_version.clone(),
            config: active.binding.config.clone(),
            grants: active.plugin.grants.clone(),
            now_ms,
            mode,
            private_dir: self.private_dir(dealer_id, active),
        };
        let services = Services {
            records: Some((self.records)(dealer_id, dealer_path, &active.plugin.name)),
            data: Some(Arc::new(registry::StoredData::new(
                self.db.clone(),
                dealer_id,
                active.plugin.id,
            ))),
            tokio: tokio::runtime::Handle::current(),
            http: self.http.clone(),
        };
        let started_at = Utc::now();
        let wait = match mode {
            Mode::Live => SLOT_WAIT,
            Mode::Replay => REPLAY_SLOT_WAIT,
        };
        let report = match self.slots(dealer_id, wait).await {
            Ok(permits) => {
                let runtime = self.runtime.clone();
                let call_input = input.clone();
                let cancel = cancel.clone();
                tokio::task::spawn_blocking(move || {
                    let report = runtime.invoke_cancellable::<H>(
                        &loaded,
                        ctx,
                        Some(services),
                        &call_input,
                        &cancel,
                    );
                    drop(permits);
                    report
                })
                .await
                .expect("a plugin call does not panic the host")
            }
            Err(not_started) => not_started,
        };
        let run = NewRun {
            dealer_id,
            plugin_id: Some(active.plugin.id),
            plugin_name: Some(active.plugin.name.clone()),
            version: Some(active.binding.pinned_version.clone()),
            hook: H::HOOK,
            started_at,
            duration_us: report.duration.as_micros() as i64,
            outcome: report.outcome,
            memory_bytes: report.memory_bytes as i64,
            fuel_used: report.fuel_used as i64,
            error: report.error.clone(),
            input: serde_json::to_value(input).unwrap_or(Value::Null),
            output: report.output.as_ref().and_then(runs::recordable),
            effects: runs::recordable(&report.effects),
            now_ms,
            replay_of,
            source,
        };
        let mut conn = self.db.pool().acquire().await?;
        let run_id = runs::record(&mut conn, &run).await?;
        if report.outcome != Outcome::Ok {
            tracing::warn!(
                dealer = dealer_id,
                plugin = %active.plugin.name,
                version = %active.binding.pinned_version,
                hook = %H::HOOK,
                outcome = report.outcome.as_str(),
                error = ?report.error,
                "plugin run failed"
            );
        }
        Ok((report, run_id))
    }

    /// A slot of the dealer's and one of the runtime's, waiting at most `wait` for both;
    /// else the report of a run that did not start.
    async fn slots<T>(
        &self,
        dealer_id: i64,
        wait: Duration,
    ) -> std::result::Result<Permits, RunReport<T>> {
        let started = Instant::now();
        let dealer_slots = self
            .dealer_slots
            .lock()
            .expect("dealer slots lock")
            .entry(dealer_id)
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.slots_per_dealer)))
            .clone();
        let not_started = |error: String| RunReport::not_run(Outcome::Timeout, error, started);
        let Ok(dealer) = tokio::time::timeout(wait, dealer_slots.acquire_owned()).await else {
            return Err(not_started(format!(
                "no free plugin slot for this dealer within {} ms: it runs {} plugin calls at once",
                wait.as_millis(),
                self.slots_per_dealer
            )));
        };
        let dealer = dealer.expect("a dealer's slots are never closed");
        let remaining = wait.saturating_sub(started.elapsed());
        let Ok(runtime) = tokio::time::timeout(remaining, self.runtime.slot()).await else {
            return Err(not_started(format!(
                "no free plugin slot on this host within {} ms",
                wait.as_millis()
            )));
        };
        Ok((runtime, dealer))
    }

    fn private_dir(&self, dealer_id: i64, active: &Active) -> Option<PathBuf> {
        let files = self.files_dir.as_ref()?;
        active.plugin.grants.private_dir.then(|| {
            files
                .join(format!("dealer-{dealer_id}"))
                .join(format!("plugin-{}", active.plugin.id))
        })
    }

    /// Persists a live run's store writes (only if it succeeded) and audits its denials, as
    /// one entry for the run.
    async fn apply<T>(&self, active: &Active, dealer_id: i64, report: &RunReport<T>) -> Result<()> {
        let writes = &report.effects.store_writes;
        let denials = &report.effects.denials;
        if denials.is_empty() && (report.outcome != Outcome::Ok || writes.is_empty()) {
            return Ok(());
        }
        let mut tx = self.db.begin_write().await?;
        if report.outcome == Outcome::Ok {
            for (key, value) in writes {
                match value {
                    Some(value) => {
                        registry::store_put(&mut tx, dealer_id, active.plugin.id, key, value)
                            .await?
                    }
                    None => {
                        registry::store_delete(&mut tx, dealer_id, active.plugin.id, key).await?;
                    }
                }
            }
        }
        crate::audit::record_plugin_denials(&mut tx, &active.plugin.name, dealer_id, denials)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Runs `candidate` (a version of the plugin bound, or to be bound, for `hook`) on the
    /// dealer's most recent recorded inputs for that hook, and compares its decisions with
    /// the recorded ones. Nothing is applied and no partner is called.
    pub async fn replay(
        &self,
        dealer_id: i64,
        candidate: &Active,
        limit: i64,
    ) -> Result<ReplayReport> {
        match candidate.plugin.hook {
            Hook::Commission => {
                self.replay_hook::<CommissionHook>(dealer_id, candidate, limit)
                    .await
            }
            Hook::Approval => {
                self.replay_hook::<ApprovalHook>(dealer_id, candidate, limit)
                    .await
            }
            Hook::Loyalty => {
                self.replay_hook::<LoyaltyHook>(dealer_id, candidate, limit)
                    .await
            }
            Hook::TicketRouting => {
                self.replay_hook::<TicketRoutingHook>(dealer_id, candidate, limit)
                    .await
            }
            Hook::Reminders => {
                self.replay_hook::<RemindersHook>(dealer_id, candidate, limit)
                    .await
            }
            Hook::Integration => {
                self.replay_hook::<IntegrationHook>(dealer_id, candidate, limit)
                    .await
            }
            Hook::Channel => {
                self.replay_hook::<ChannelHook>(dealer_id, candidate, limit)
                    .await
            }
        }
    }

    /// Sends a message through the dealer's channel plugin ([`ChannelHook`], called like every
    /// hook: the dealer's binding, its kill switches and failure policy, the run recorded with
    /// its input masked). `Ok`: the provider's answer (its message id) for each address, in
    /// the order of `to`. `Err`: why it was not sent, and whether sending it again later may
    /// succeed:
    ///
    /// - the plugin's own answer (throttled: retryable; a refused template: not);
    /// - no channel plugin enabled, or a kill switch on: the built-in default, not retryable;
    /// - the plugin failed (a trap, an invalid answer: not retryable; out of time or without a
    ///   free slot: retryable), whether the binding falls back or refuses;
    /// - the host could not run it (its database unavailable): retryable.
    pub async fn send_message(
        &self,
        dealer_id: i64,
        message: channel::Message,
    ) -> std::result::Result<Vec<String>, ChannelFailure> {
        let decision = match self
            .call::<ChannelHook>(dealer_id, message, Source::Live)
            .await
        {
            Ok(decision) => decision,
            Err(Error::PluginFailed {
                plugin,
                outcome,
                message,
                ..
            }) => {
                return Err(ChannelFailure {
                    retryable: outcome == Outcome::Timeout,
                    not_enabled: false,
                    message: format!(
                        "the channel plugin {plugin} failed ({}): {message}",
                        outcome.as_str()
                    ),
                });
            }
            Err(error) => {
                return Err(ChannelFailure {
                    retryable: true,
                    not_enabled: false,
                    message: format!("the channel plugin could not run: {error}"),
                });
            }
        };
        match (decision.output, decision.source) {
            (Ok(receipts), _) => Ok(receipts.into_iter().map(|r| r.answer).collect()),
            (
                Err(_),
                DecisionSource::Default {
                    failed: Some(failed),
                    ..
                },
            ) => Err(ChannelFailure {
                retryable: failed.outcome == Outcome::Timeout,
                not_enabled: false,
                message: format!(
                    "the channel plugin {} failed ({}): {}",
                    failed.plugin,
                    failed.outcome.as_str(),
                    failed.error.unwrap_or_default()
                ),
            }),
            (Err(failure), source) => Err(ChannelFailure {
                retryable: failure.retryable,
                not_enabled: matches!(source, DecisionSource::Default { reason, .. } if reason == "no_plugin"),
                message: failure.message,
            }),
        }
    }

    async fn replay_hook<H: HookSpec>(
        &self,
        dealer_id: i64,
        candidate: &Active,
        limit: i64,
    ) -> Result<ReplayReport> {
        let mut conn = self.db.pool().acquire().await?;
        let recorded = runs::recorded(&mut conn, dealer_id, H::HOOK, limit).await?;
        let (_, dealer_path) = crate::network::kind_and_path(&mut conn, dealer_id)
            .await?
            .ok_or(Error::NotFound { entity: "dealer" })?;
        drop(conn);
        let mut report = ReplayReport {
            candidate_version: candidate.binding.pinned_version.clone(),
            total: 0,
            same: 0,
            different: 0,
            candidate_failed: 0,
            skipped: 0,
            runs: Vec::new(),
        };
        for run in recorded {
            let Ok(input) = serde_json::from_value::<H::Input>(run.input.clone()) else {
                report.skipped += 1;
                continue;
            };
            let (candidate_report, candidate_run_id) = self
                .run::<H>(
                    candidate,
                    &dealer_path,
                    dealer_id,
                    &input,
                    run.now_ms,
                    Mode::Replay,
                    Source::Replay,
                    Some(run.run_id),
                    &Cancel::new(),
                )
                .await?;
            // Recorded outputs are masked; mask the candidate's the same way to compare.
            let candidate_output = candidate_report
                .output
                .as_ref()
                .and_then(|o| serde_json::to_value(o).ok())
                .map(|o| runs::mask(&o));
            let same = candidate_report.outcome == run.outcome && candidate_output == run.output;
            report.total += 1;
            if candidate_report.outcome != Outcome::Ok {
                report.candidate_failed += 1;
            }
            if same {
                report.same += 1;
            } else {
                report.different += 1;
            }
            report.runs.push(ReplayedRun {
                run_id: run.run_id,
                candidate_run_id,
                recorded_version: run.version,
                recorded_outcome: run.outcome,
                recorded_output: run.output,
                candidate_outcome: candidate_report.outcome,
                candidate_output,
                candidate_error: candidate_report.error,
                same,
            });
        }
        Ok(report)
    }
}

/// Why [`Plugins::send_message`] did not send a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ChannelFailure {
    /// Whether sending it again later may succeed.
    pub retryable: bool,
    /// The dealer enabled no channel plugin for the hook (the built-in default answered).
    pub not_enabled: bool,
    pub message: String,
}

/// The instance slot and the dealer's slot a call holds while it runs.
type Permits = (
    tokio::sync::OwnedSemaphorePermit,
    tokio::sync::OwnedSemaphorePermit,
);

/// How a candidate version decided the recorded inputs, compared with what was recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayReport {
    pub candidate_version: String,
    pub total: usize,
    pub same: usize,
    pub different: usize,
    pub candidate_failed: usize,
    /// Recorded inputs that no longer read as this hook's input (recorded under an older
    /// contract), so were not replayed.
    pub skipped: usize,
    pub runs: Vec<ReplayedRun>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayedRun {
    /// The recorded run.
    pub run_id: i64,
    pub candidate_run_id: i64,
    /// The version that made the recorded decision (none: the built-in default).
    pub recorded_version: Option<String>,
    pub recorded_outcome: Outcome,
    pub recorded_output: Option<Value>,
    pub candidate_outcome: Outcome,
    pub candidate_output: Option<Value>,
    pub candidate_error: Option<String>,
    pub same: bool,
}
