//! Work queues: tables of rows a background worker takes one by one (the outbox's messages,
//! the domain events), each claimed with a lease so that replicas share the work and none
//! runs a row another holds. The one claim and the one retry schedule both queues use.
//!
//! A queue's table has `id`, `status` (`pending` while it waits), `attempts`,
//! `next_attempt_at`, `locked_by` and `locked_until`. [`claim`] takes due rows whose lease is
//! free or ran out: on PostgreSQL with `FOR UPDATE SKIP LOCKED` inside the claim, so replicas
//! claim disjoint rows without waiting; on SQLite inside the single writer's transaction
//! (`BEGIN IMMEDIATE`), so claims follow one another. The queue's owner then settles each
//! row `WHERE id = $ AND locked_by = <worker>` (a lease lost is not settled twice) and
//! schedules a retry [`backoff`] later.

use std::time::Duration;

use sqlx::FromRow;
use sqlx::any::AnyRow;

use crate::db::{Param, Sql};
use crate::error::Result;
use crate::{Backend, Db};

/// Attempts before a row that keeps failing is given up.
pub const MAX_ATTEMPTS: i64 = 8;
/// The first retry's delay; each further one doubles it, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);

/// One queue: its table, what a claim returns, how long a claim holds, how many it takes.
pub struct Queue {
    pub table: &'static str,
    /// The columns a claimed row is read with.
    pub columns: &'static str,
    /// How long a worker may hold claimed rows before another may take them over.
    pub lease: Duration,
    /// Rows claimed at once.
    pub batch: i64,
}

/// Claims up to `queue.batch` rows due at `now` for `worker` until `now` + the lease, in id
/// order; with `only`, just those of these ids.
pub async fn claim<T>(
    db: &Db,
    queue: &Queue,
    worker: &str,
    now: i64,
    only: Option<&[i64]>,
) -> Result<Vec<T>>
where
    T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
{
    let table = queue.table;
    let mut sql = Sql::new(&format!("UPDATE {table} SET locked_by = "));
    sql.bind(Param::Text(worker.to_owned()))
        .push(", locked_until = ")
        .bind(Param::Int(now + queue.lease.as_millis() as i64))
        .push(&format!(
            " WHERE id IN (SELECT id FROM {table} WHERE status = 'pending' AND next_attempt_at <= "
        ))
        .bind(Param::Int(now))
        .push(" AND (locked_until IS NULL OR locked_until < ")
        .bind(Param::Int(now))
        .push(")");
    if let Some(ids) = only {
        sql.push(" AND id IN ")
            .push_list(ids.iter().copied().map(Param::Int));
    }
    sql.push(" ORDER BY id LIMIT ")
        .bind(Param::Int(queue.batch));
    if db.backend() == Backend::Postgres {
        sql.push(" FOR UPDATE SKIP LOCKED");
    }
    sql.push(&format!(") RETURNING {}", queue.columns));
    let mut tx = db.begin_write().await?;
    let rows = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows)
}

/// How long after failed attempt `attempt` (1 for the first) the next one is due, in ms.
pub fn backoff(attempt: i64) -> i64 {
    let attempt = u32::try_from(attempt).unwrap_or(0);
    i64::try_from(doubling(FIRST_BACKOFF, MAX_BACKOFF, attempt).as_millis()).unwrap_or(i64::MAX)
}

/// The wait before retry number `attempt` (1 for the first): `first`, doubled with each
/// further attempt, at most `ceiling`. The one backoff of the queues and the workers' loops.
pub fn doubling(first: Duration, ceiling: Duration, attempt: u32) -> Duration {
    let doublings = attempt.clamp(1, 32) - 1;
    first
        .saturating_mul(2_u32.saturating_pow(doublings))
        .min(ceiling)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        assert_eq!(backoff(1), 30_000);
        assert_eq!(backoff(2), 60_000);
        assert_eq!(backoff(4), 240_000);
        assert_eq!(backoff(20), MAX_BACKOFF.as_millis() as i64);
    }
}
