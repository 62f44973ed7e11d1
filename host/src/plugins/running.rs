//! The plugin calls running on this host now, each with its cancel handle, so that a kill
//! switch stops the calls already running and not only the next ones.
//!
//! The dispatcher registers a live call for as long as it runs ([`Running::start`]); after
//! every registry change, on this replica or announced by another, it re-reads the running
//! calls' bindings ([`Running::recheck`]) and cancels those a kill switch (dealer, plugin or
//! binding) now covers. A cancelled run ends `denied` with the switch named in its error.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::Hook;
use super::registry::{self, Active};
use crate::Db;
use crate::error::Result;
use dealer_plugin_runtime::deadline::Cancel;

#[derive(Clone, Default)]
pub struct Running {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    next: AtomicU64,
    calls: Mutex<HashMap<u64, Call>>,
}

/// A running call: what it runs for, and how to stop it.
#[derive(Clone)]
struct Call {
    dealer_id: i64,
    hook: Hook,
    binding_id: i64,
    plugin_id: i64,
    cancel: Cancel,
}

/// A call's registration, dropped when the call ends.
pub struct Registered {
    id: u64,
    cancel: Cancel,
    running: Running,
}

impl Registered {
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.running.calls().remove(&self.id);
    }
}

impl Running {
    fn calls(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Call>> {
        self.inner.calls.lock().expect("running calls lock")
    }

    /// Registers a call of `active` for `dealer_id`.
    pub fn start(&self, dealer_id: i64, active: &Active) -> Registered {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let cancel = Cancel::new();
        self.calls().insert(
            id,
            Call {
                dealer_id,
                hook: active.binding.hook,
                binding_id: active.binding.id,
                plugin_id: active.plugin.id,
                cancel: cancel.clone(),
            },
        );
        Registered {
            id,
            cancel,
            running: self.clone(),
        }
    }

    /// How many calls run now.
    pub fn len(&self) -> usize {
        self.calls().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Re-reads the bindings of the running calls and cancels those a kill switch now covers.
    pub async fn recheck(&self, db: &Db) -> Result<()> {
        let calls: Vec<Call> = self.calls().values().cloned().collect();
        let bindings: HashSet<(i64, Hook)> = calls.iter().map(|c| (c.dealer_id, c.hook)).collect();
        if bindings.is_empty() {
            return Ok(());
        }
        let mut conn = db.pool().acquire().await?;
        for (dealer_id, hook) in bindings {
            let active = registry::active(&mut conn, dealer_id, hook).await?;
            let Some(active) = active else {
                continue;
            };
            let Some(switch) = kill_switch(&active) else {
                continue;
            };
            for call in &calls {
                if call.dealer_id == dealer_id
                    && call.hook == hook
                    && call.binding_id == active.binding.id
                    && call.plugin_id == active.plugin.id
                {
                    call.cancel.cancel(switch.clone());
                }
            }
        }
        Ok(())
    }
}

/// The kill switch that is on for `active`, as a run's error names it.
fn kill_switch(active: &Active) -> Option<String> {
    let named = |switch: &str, reason: Option<&str>| match reason.filter(|r| !r.is_empty()) {
        Some(reason) => format!("the {switch} kill switch was turned on ({reason})"),
        None => format!("the {switch} kill switch was turned on"),
    };
    if let Some(reason) = &active.dealer_kill {
        return Some(named("dealer's", Some(reason)));
    }
    if active.plugin.killed {
        return Some(named("plugin's", active.plugin.killed_reason.as_deref()));
    }
    if active.binding.killed {
        return Some(named("binding's", active.binding.killed_reason.as_deref()));
    }
    None
}
