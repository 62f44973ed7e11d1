//! The host's background loops, started with the server and stopped with it: the outbox
//! worker (runs due domain events, the follow-ups of committed changes, then delivers due
//! messages), the scheduler (plans reminders, expires points), the run-log retention
//! (deletes old plugin runs, [`runs::prune`]) and the imports worker (finishes imports whose
//! runner died, [`imports::resume_abandoned`]). Each runs one pass, then waits its interval,
//! or less after a failed pass (a database outage): 15 s, doubling with each failure in a row,
//! up to 5 minutes ([`next_wait`]); on shutdown the loop ends (the outbox pass under way
//! finishes first, a scheduler pass is dropped). Every replica runs them: the passes share the
//! work through leases and dedupe keys, never delivering or planning twice.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::AppState;
use crate::outbox::{self, Senders};
use crate::plugins::runs::{self, Retention};
use crate::{clock, domain_events, imports, loyalty, queue, reminders};

/// How often each loop runs; `None` turns a loop off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intervals {
    /// The outbox worker: due domain events, then due messages.
    pub outbox: Option<Duration>,
    pub scheduler: Option<Duration>,
    /// The run log's retention policy, applied every `Retention::every`.
    pub run_retention: Option<Retention>,
    /// Resuming imports whose runner died (`imports::resume_abandoned`).
    pub imports: Option<Duration>,
}

impl Default for Intervals {
    fn default() -> Intervals {
        Intervals {
            outbox: Some(Duration::from_secs(5)),
            scheduler: Some(Duration::from_secs(3600)),
            run_retention: Some(Retention::default()),
            imports: Some(Duration::from_secs(60)),
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
                    let events =
                        domain_events::run_due(&db, &plugins, &worker_id, clock::now_ms()).await;
                    let events = ran(events, "domain events", |report| {
                        if report.claimed > 0 {
                            tracing::info!(
                                claimed = report.claimed,
                                done = report.done,
                                retrying = report.retrying,
                                failed = report.failed,
                                "domain events pass"
                            );
                        }
                    });
                    let delivered =
                        outbox::deliver_due(&db, &senders, &worker_id, clock::now_ms()).await;
                    let messages = ran(delivered, "outbox", |report| {
                        if report.claimed > 0 {
                            tracing::info!(
                                claimed = report.claimed,
                                sent = report.sent,
                                retrying = report.retrying,
                                failed = report.failed,
                                "outbox pass"
                            );
                        }
                    });
                    events.and(messages)
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
                    let pruned = runs::prune(&db, &retention, clock::now_ms()).await;
                    ran(pruned, "run retention", |deleted| {
                        if deleted > 0 {
                            tracing::info!(deleted, "plugin runs pruned");
                        }
                    })
                }
            },
        )));
    }
    if let Some(every) = intervals.imports {
        let db = state.db.clone();
        handles.push(tokio::spawn(repeat(
            every,
            stopped.clone(),
            Finish::Now,
            move || {
                let db = db.clone();
                async move {
                    let resumed = imports::resume_abandoned(&db).await;
                    ran(resumed, "imports", |finished| {
                        if finished > 0 {
                            tracing::info!(finished, "abandoned imports resumed");
                        }
                    })
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
                    let planned =
                        reminders::run_due(&db, &plugins, reminders::today_in_china(now), now)
                            .await;
                    let reminders = ran(planned, "reminders", |report| {
                        if report.vehicles + report.failed > 0 {
                            tracing::info!(
                                vehicles = report.vehicles,
                                failed = report.failed,
                                sent = report.sent,
                                tasks = report.tasks,
                                "reminders pass"
                            );
                        }
                    });
                    let expired = loyalty::expire_due(&db, now).await;
                    let expiry = ran(expired, "points expiry", |report| {
                        if report.lots > 0 {
                            tracing::info!(
                                customers = report.customers,
                                lots = report.lots,
                                points = report.points,
                                "points expired"
                            );
                        }
                    });
                    reminders.and(expiry)
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

/// How a pass ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ran {
    Ok,
    /// Its work (or part of it) is not done: it runs again soon ([`next_wait`]).
    Failed,
}

impl Ran {
    /// Both parts of a pass done, or not.
    fn and(self, other: Ran) -> Ran {
        if self == Ran::Ok { other } else { Ran::Failed }
    }
}

/// How the part `what` of a pass ended: `done` logs what it did, or its error is logged.
fn ran<T>(result: crate::error::Result<T>, what: &str, done: impl FnOnce(T)) -> Ran {
    match result {
        Ok(report) => {
            done(report);
            Ran::Ok
        }
        Err(error) => {
            tracing::error!(%error, "the {what} pass failed");
            Ran::Failed
        }
    }
}

/// The first wait after a failed pass; it doubles with each failure in a row.
const RETRY_FIRST: Duration = Duration::from_secs(15);
/// The longest wait after failed passes.
const RETRY_MAX: Duration = Duration::from_secs(300);

/// The wait before the next pass of a loop that runs every `every`, after `failures` failed
/// passes in a row (0: the last one did its work): `every`, or after a failure 15 s, doubling
/// up to 5 minutes, but never longer than `every`.
fn next_wait(every: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return every;
    }
    queue::doubling(RETRY_FIRST, RETRY_MAX, failures).min(every)
}

/// Runs `pass` now and then every `every` (sooner after a failed pass, [`next_wait`]), until
/// `stopped` turns true.
async fn repeat<F, Fut>(
    every: Duration,
    mut stopped: watch::Receiver<bool>,
    finish: Finish,
    pass: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Ran>,
{
    let mut failures = 0_u32;
    loop {
        if *stopped.borrow() {
            return;
        }
        let ran = match finish {
            Finish::Pass => pass().await,
            Finish::Now => {
                tokio::select! {
                    ran = pass() => ran,
                    _ = stopped.changed() => return,
                }
            }
        };
        failures = match ran {
            Ran::Ok => 0,
            Ran::Failed => failures.saturating_add(1),
        };
        let wait = next_wait(every, failures);
        if failures > 0 {
            tracing::info!(
                failures,
                retry_in_s = wait.as_secs(),
                "the pass runs again soon"
            );
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_pass_that_did_its_work_waits_its_interval() {
        assert_eq!(next_wait(HOUR, 0), HOUR);
        assert_eq!(next_wait(Duration::from_secs(5), 0), Duration::from_secs(5));
    }

    #[test]
    fn failed_passes_run_again_after_15_s_doubling_up_to_5_minutes() {
        let waits: Vec<u64> = (1..=8).map(|n| next_wait(HOUR, n).as_secs()).collect();
        assert_eq!(waits, [15, 30, 60, 120, 240, 300, 300, 300]);
        assert_eq!(next_wait(HOUR, u32::MAX), RETRY_MAX);
    }

    #[test]
    fn a_retry_never_waits_longer_than_the_interval() {
        let every = Duration::from_secs(5);
        assert_eq!(next_wait(every, 1), every);
        assert_eq!(
            next_wait(Duration::from_secs(40), 3),
            Duration::from_secs(40)
        );
    }

    #[test]
    fn a_pass_fails_when_either_part_failed() {
        assert_eq!(Ran::Ok.and(Ran::Ok), Ran::Ok);
        assert_eq!(Ran::Ok.and(Ran::Failed), Ran::Failed);
        assert_eq!(Ran::Failed.and(Ran::Ok), Ran::Failed);
    }
}
