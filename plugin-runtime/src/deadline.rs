//! What ends a run on time: its wall-clock deadline and the host's [`Cancel`] handle. The
//! store's epoch callback and the bounded `wasi:io/poll` that check them against a run's
//! `HostState` are in `host_api::waits`.
//!
//! Both are checked at every epoch tick while the plugin computes (the store's epoch
//! callback compares `Instant::now()` with the deadline, so the deadline does not stretch when
//! a loaded machine delays the ticks), and raced against every wait of `wasi:io/poll`: a guest
//! that sleeps or polls a clock subscription is woken at the deadline (or at the cancel) and
//! stopped there, instead of holding its slot for as long as it asked to sleep. The guest's
//! monotonic clock is frozen for replays, so a `subscribe-instant` reads as "that long from
//! now": the bound on the wait is what keeps it short, not the clock.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Lets the host stop a running call: the run ends `denied` with the reason given, at the
/// plugin's next epoch tick or at once if it is waiting in `wasi:io/poll`. Cloning shares the
/// handle; the first reason given is kept.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<CancelInner>);

#[derive(Debug, Default)]
struct CancelInner {
    reason: OnceLock<String>,
    woken: tokio::sync::Notify,
}

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Stops the call (or the next one started with this handle) for `reason`.
    pub fn cancel(&self, reason: impl Into<String>) {
        let _ = self.0.reason.set(reason.into());
        self.0.woken.notify_waiters();
    }

    /// Why the call was stopped, once it was.
    pub fn reason(&self) -> Option<&str> {
        self.0.reason.get().map(String::as_str)
    }

    async fn cancelled(&self) {
        loop {
            let woken = self.0.woken.notified();
            tokio::pin!(woken);
            // Registered before the check, so a cancel between the two is not missed.
            woken.as_mut().enable();
            if self.reason().is_some() {
                return;
            }
            woken.await;
        }
    }
}

/// Why a run was stopped from outside the guest's own code.
#[derive(Debug, thiserror::Error)]
pub enum Stopped {
    #[error("the run's deadline passed")]
    Deadline,
    #[error("the plugin was stopped: {0}")]
    Cancelled(String),
}

/// The run's deadline and cancel handle.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    pub(crate) deadline: Instant,
    pub(crate) cancel: Cancel,
}

impl Budget {
    /// Whether the run may go on.
    pub(crate) fn check(&self) -> Result<(), Stopped> {
        if let Some(reason) = self.cancel.reason() {
            return Err(Stopped::Cancelled(reason.to_owned()));
        }
        if Instant::now() >= self.deadline {
            return Err(Stopped::Deadline);
        }
        Ok(())
    }

    /// `wait`, unless the deadline passes or the call is cancelled first.
    pub(crate) async fn bound<T>(&self, wait: impl Future<Output = T>) -> Result<T, Stopped> {
        self.check()?;
        tokio::select! {
            done = wait => Ok(done),
            () = tokio::time::sleep_until(self.deadline.into()) => Err(Stopped::Deadline),
            () = self.cancel.cancelled() => Err(self.check().expect_err("cancelled")),
        }
    }
}
