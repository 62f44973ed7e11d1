//! Runs fixtures through a built component in the host's runtime, without a database (record
//! look-ups answer `unavailable`).
//!
//! A fixture is `{"config": {...}, "input": <hook input>, "expect": <hook output>}` in the
//! host's JSON format (the format of `POST /dealers/{id}/hooks/{hook}/evaluate`).
//!
//! A partner integration's fixture also declares the partner: `grants` (as HQ would grant
//! them), `secrets` (test values of the credential handles) and `partner`, the exchanges a
//! local stand-in of the partner's API answers:
//! `[{"request": {"method": "POST", "path": "/v1/quotes", "headers": {...}, "json": ...},
//!   "response": {"status": 200, "json": ...}}]`. Everywhere in the fixture, `{partner}` is
//! replaced by the stand-in's `127.0.0.1:<port>`. A fixture passes when its output is
//! `expect` and the plugin made exactly the declared requests, with the declared headers
//! (the host adds the credential) and bodies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use dealer_plugin_runtime::Grants;
use dealer_plugin_runtime::Hook;
use dealer_plugin_runtime::Outcome;
use dealer_plugin_runtime::hooks::{
    ApprovalHook, ChannelHook, CommissionHook, IntegrationHook, LoyaltyHook, RemindersHook,
    TicketRoutingHook,
};
use dealer_plugin_runtime::host_api::{
    CallContext, HostFuture, LookupError, Mode, PluginData, Services,
};
use dealer_plugin_runtime::runtime::{HookSpec, Loaded, Runtime};
use serde::Deserialize;
use serde_json::Value;

use crate::{build, partner};

/// The clock a fixture's run sees: 2025-11-23 12:13:20 UTC, in ms.
pub const FIXTURE_NOW_MS: i64 = 1_763_900_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    #[serde(default = "empty_object")]
    config: Value,
    input: Value,
    expect: Value,
    #[serde(default)]
    grants: Grants,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    #[serde(default)]
    partner: Vec<partner::Exchange>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// How one fixture went.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The output equals `expect`.
    Ok,
    /// The run succeeded with another output.
    Differs { expected: Value, actual: Value },
    /// The run did not succeed.
    Failed { outcome: Outcome, error: String },
    /// The plugin's partner calls were not the declared ones.
    Partner { problems: Vec<String> },
}

/// One fixture's run.
#[derive(Debug, Clone)]
pub struct FixtureResult {
    pub fixture: PathBuf,
    pub verdict: Verdict,
    pub fuel_used: u64,
    pub duration: Duration,
}

impl FixtureResult {
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Ok
    }
}

/// A loaded component, ready to run fixtures.
pub struct Harness {
    runtime: Runtime,
    loaded: Arc<Loaded>,
    /// Serves the partner stand-ins and the host's partner calls.
    io: Io,
}

/// The harness's own async runtime. It is shut down without waiting, so a harness may be
/// dropped anywhere, also inside an async test.
struct Io(Option<tokio::runtime::Runtime>);

impl Io {
    fn get(&self) -> &tokio::runtime::Runtime {
        self.0
            .as_ref()
            .expect("the runtime lives as long as the harness")
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl Harness {
    /// Loads and validates the component at `wasm`.
    pub fn new(wasm: &Path) -> Result<Harness> {
        let runtime = build::local_runtime()?;
        let loaded = build::load(&runtime, wasm)?;
        let io = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("cannot start the async runtime for partner stand-ins")?;
        Ok(Harness {
            runtime,
            loaded,
            io: Io(Some(io)),
        })
    }

    pub fn hook(&self) -> Hook {
        self.loaded.info.hook
    }

    /// Runs the fixture at `path`.
    pub fn run(&self, path: &Path) -> Result<FixtureResult> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the fixture {}", path.display()))?;
        let stand_in = if text.contains("\"partner\"") {
            Some(self.io.get().block_on(partner::StandIn::start())?)
        } else {
            None
        };
        let text = match &stand_in {
            Some(stand_in) => text.replace("{partner}", &stand_in.authority),
            None => text,
        };
        let fixture: Fixture = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a fixture: write {{\"config\": {{...}}, \"input\": ..., \"expect\": ...}}",
                path.display()
            )
        })?;
        if let Some(stand_in) = &stand_in {
            stand_in.expect(fixture.partner.clone());
        }
        let run = match self.hook() {
            Hook::Commission => self.invoke::<CommissionHook>(&fixture),
            Hook::Approval => self.invoke::<ApprovalHook>(&fixture),
            Hook::Loyalty => self.invoke::<LoyaltyHook>(&fixture),
            Hook::TicketRouting => self.invoke::<TicketRoutingHook>(&fixture),
            Hook::Reminders => self.invoke::<RemindersHook>(&fixture),
            Hook::Integration => self.invoke::<IntegrationHook>(&fixture),
            Hook::Channel => self.invoke::<ChannelHook>(&fixture),
        }
        .with_context(|| format!("fixture {}", path.display()))?;
        let problems = stand_in.map(|s| s.problems()).unwrap_or_default();
        let verdict = match (run.outcome, run.output) {
            (Outcome::Ok, Some(_)) if !problems.is_empty() => Verdict::Partner { problems },
            (Outcome::Ok, Some(actual)) if actual == run.expect => Verdict::Ok,
            (Outcome::Ok, Some(actual)) => Verdict::Differs {
                expected: run.expect,
                actual,
            },
            (outcome, _) => Verdict::Failed {
                outcome,
                error: run.error.unwrap_or_default(),
            },
        };
        Ok(FixtureResult {
            fixture: path.to_path_buf(),
            verdict,
            fuel_used: run.fuel_used,
            duration: run.duration,
        })
    }

    fn invoke<H: HookSpec>(&self, fixture: &Fixture) -> Result<Run> {
        let input: H::Input = serde_json::from_value(fixture.input.clone()).with_context(|| {
            format!(
                "`input` is not a {} input: write it as the host does (field names in \
                 snake_case, enum cases as in the WIT, e.g. \"discount\")",
                H::HOOK
            )
        })?;
        let ctx = CallContext {
            dealer_id: 1,
            plugin_id: 1,
            plugin_name: "fixture".to_owned(),
            version: "0.0.0".to_owned(),
            config: fixture.config.clone(),
            grants: fixture.grants.clone(),
            now_ms: FIXTURE_NOW_MS,
            mode: Mode::Live,
            private_dir: None,
        };
        let services = Services {
            records: None,
            data: Some(Arc::new(FixtureData {
                secrets: fixture.secrets.clone(),
            })),
            tokio: self.io.get().handle().clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .context("cannot build an HTTP client")?,
        };
        let report = self
            .runtime
            .invoke::<H>(&self.loaded, ctx, Some(services), &input);
        let output = report
            .output
            .map(serde_json::to_value)
            .transpose()
            .context("the output does not serialize: report this as a host bug")?;
        // `expect` read as the hook's output and written again, so that either spelling of a
        // case (`"urgent"`, or `"Urgent"` as fixtures were written before) compares equal.
        let expect = serde_json::from_value::<H::Output>(fixture.expect.clone())
            .ok()
            .and_then(|expect| serde_json::to_value(expect).ok())
            .unwrap_or_else(|| fixture.expect.clone());
        Ok(Run {
            outcome: report.outcome,
            output,
            expect,
            error: report.error,
            fuel_used: report.fuel_used,
            duration: report.duration,
        })
    }
}

/// A fixture's plugin data: no store (it answers `unavailable`, as there is no host), and the
/// fixture's test values of the credential handles.
struct FixtureData {
    secrets: BTreeMap<String, String>,
}

impl PluginData for FixtureData {
    fn store_get(&self, _key: String) -> HostFuture<'_, Option<Vec<u8>>> {
        Box::pin(async { Err(LookupError::Unavailable) })
    }

    fn store_usage(&self) -> HostFuture<'_, (i64, i64)> {
        Box::pin(async { Err(LookupError::Unavailable) })
    }

    fn secret(&self, handle: String) -> HostFuture<'_, Option<String>> {
        let secret = self.secrets.get(&handle).cloned();
        Box::pin(async move { Ok(secret) })
    }
}

struct Run {
    outcome: Outcome,
    output: Option<Value>,
    expect: Value,
    error: Option<String>,
    fuel_used: u64,
    duration: Duration,
}

/// Runs the fixture at `fixture` through the component at `wasm`; for a plugin's own
/// `cargo test` (several fixtures: load once with [`Harness::new`]).
pub fn run_fixture(wasm: &Path, fixture: &Path) -> Result<FixtureResult> {
    Harness::new(wasm)?.run(fixture)
}

/// The `*.json` files of `dir`, sorted.
pub fn fixtures(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!(
            "cannot read {}: pass --fixtures with the directory of your fixtures",
            dir.display()
        )
    })?;
    let mut found = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "json") {
            found.push(path);
        }
    }
    found.sort();
    if found.is_empty() {
        anyhow::bail!(
            "{} has no *.json fixtures: add one like fixtures/example.json of `dealer-plugin new`",
            dir.display()
        );
    }
    Ok(found)
}
