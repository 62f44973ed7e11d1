//! The host's background loops, started with the server and stopped with it: the outbox
//! worker (runs due domain events, the follow-ups of committed changes, then delivers due
//! messages), the scheduler (plans reminders, expires points) and the
//! run-log retention (deletes old plugin runs, [`runs::prune`]). Each
//! runs one pass, then waits its interval; on shutdown the loop ends (the outbox pass under
//! way finishes first, a scheduler pass is dropped). Every replica runs them: the passes share
//! the work through leases and dedupe keys, never delivering or planning twice.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::AppState;
use crate::outbox::{self, Senders};
use crate::plugins::runs::{self, Retention};
use crate::{clock, domain_events, loyalty, reminders};

/// How often each loop runs; `None` turns a loop off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intervals {
    /// The outbox worker: due domain events, then due messages.
    pub outbox: Option<Duration>,
    pub scheduler: Option<Duration>,
    /// The run log's retention policy, applied every `Retention::every`.
    pub run_retention: Option<Retention>,
}

impl Default for Intervals {
    fn default() -> Intervals {
        Intervals {
            outbox: Some(Duration::from_secs(5)),
            scheduler: Some(Duration::from_secs(3600)),
            run_retention: Some(Retention::default()),
        }
    }
}

/// The running loops; [`Workers::stop`] ends them.
pub struct Workers {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

/// Starts the loops `intervals` turns on, delivering through `senders`.
pub fn start(state: &AppState, senders: Arc<Senders>, intervals: Intervals) -> Workers {
    let (stop, stopped) = watch::channel(false);
    let mut handles = Vec::new();
    let worker_id = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
    if let Some(every) = intervals.outbox {
        let (db, plugins) = (state.db.clone(), state.plugins.clone());
        let worker_id = worker_id.clone();
        handles.push(tokio::spawn(repeat(
            every,
            stopped.clone(),
            Finish::Pass,
            move || {
                let (db, plugins, senders, worker_id) = (
                    db.clone(),
                    plugins.clone(),
                    senders.clone(),
                    worker_id.clone(),
                );
                async move {
                    match domain_events::run_due(&db, &plugins, &worker_id, clock::now_ms()).await {
                        Ok(report) if report.claimed > 0 => {
                            tracing::info!(
                                claimed = report.claimed,
                                done = report.done,
                                retrying = report.retrying,
                                failed = report.failed,
                                "domain events pass"
                            );
                        }
                        Ok(_) => {}
                        Err(error) => tracing::error!(%error, "the domain events pass failed"),
                    }
                    match outbox::deliver_due(&db, &senders, &worker_id, clock::now_ms()).await {
                        Ok(report) if report.claimed > 0 => {
                            tracing::info!(
                                claimed = report.claimed,
                                sent = report.sent,
                                retrying = report.retrying,
                                failed = report.failed,
                                "outbox pass"
                            );
                        }
                        Ok(_) => {}
                        Err(error) => tracing::error!(%error, "the outbox pass failed"),
                    }
                }
            },
        )));
    }
    if let Some(retention) = intervals.run_retention {
        let db = state.db.clone();
        handles.push(tokio::spawn(repeat(
            retention.every,
            stopped.clone(),
            Finish::Pass,
            move || {
                let db = db.clone();
                async move {
                    match runs::prune(&db, &retention, clock::now_ms()).await {
                        Ok(0) => {}
                        Ok(deleted) => tracing::info!(deleted, "plugin runs pruned"),
                        Err(error) => tracing::error!(%error, "the run retention pass failed"),
                    }
                }
            },
        )));
    }
    if let Some(every) = intervals.scheduler {
        let (db, plugins) = (state.db.clone(), state.plugins.clone());
        handles.push(tokio::spawn(repeat(
            every,
            stopped,
            Finish::Now,
            move || {
                let (db, plugins) = (db.clone(), plugins.clone());
                async move {
                    let now = clock::now_ms();
                    match reminders::run_due(&db, &plugins, reminders::today_in_china(now), now)
                        .await
                    {
                        Ok(report) if report.vehicles + report.failed > 0 => {
                            tracing::info!(
                                vehicles = report.vehicles,
                                failed = report.failed,
                                sent = report.sent,
                                tasks = report.tasks,
                                "reminders pass"
                            );
                        }
                        Ok(_) => {}
                        Err(error) => tracing::error!(%error, "the reminders pass failed"),
                    }
                    match loyalty::expire_due(&db, now).await {
                        Ok(report) if report.lots > 0 => {
                            tracing::info!(
                                customers = report.customers,
                                lots = report.lots,
                                points = report.points,
                                "points expired"
                            );
                        }
                        Ok(_) => {}
                        Err(error) => tracing::error!(%error, "the points expiry pass failed"),
                    }
                }
            },
        )));
    }
    Workers { stop, handles }
}

impl Workers {
    /// Tells the loops to stop and waits until they have (an outbox pass under way finishes).
    pub async fn stop(self) {
        self.stop.send(true).ok();
        for handle in self.handles {
            handle.await.ok();
        }
    }
}

/// What a loop does with its pass under way when told to stop.
#[derive(Clone, Copy)]
enum Finish {
    /// Finish it: the outbox pass, so a message sent (a follow-up run) is also marked sent
    /// (done); an unmarked one would be sent (run) again once its lease ran out.
    Pass,
    /// Drop it: the scheduler pass, which may plan many vehicles; what it had not committed
    /// rolls back, and a vehicle it had leased is planned by the next pass after the lease.
    Now,
}

/// Runs `pass` now and then every `every`, until `stopped` turns true.
async fn repeat<F, Fut>(
    every: Duration,
    mut stopped: watch::Receiver<bool>,
    finish: Finish,
    pass: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        if *stopped.borrow() {
            return;
        }
        match finish {
            Finish::Pass => pass().await,
            Finish::Now => {
                tokio::select! {
                    () = pass() => {}
                    _ = stopped.changed() => return,
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopped.changed() => return,
        }
    }
}
