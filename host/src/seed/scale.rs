//! Benchmark-scale data: many generated customers of the demo dealers, stored in large
//! transactions of multi-row inserts.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::AnyConnection;

use super::demo::{self, DEALERS};
use super::make::{self, DAY_MS, Gender, Today};
use super::plan::{self, DealerCtx, Shape};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::network;

/// Customers per transaction.
const CHUNK: u64 = 10_000;
/// Earlier customers of each dealer that referred customers may name.
const REFERRERS: usize = 50;

const SHAPE: Shape = Shape {
    readings: (2, 4),
    with_id: 0.3,
    tags: (1, 2),
    contacts: (0, 0),
    service_visits: false,
};

pub async fn run(db: &Db, customers: u64) -> Result<u64> {
    if customers == 0 {
        return Ok(0);
    }
    let today = Today::now();
    let (dealers, person_base, vehicle_base, mut referrers) = {
        let mut conn = db.pool().acquire().await?;
        let dealers = load_dealers(&mut conn).await?;
        let (person_base,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(id), 0) FROM customers")
            .fetch_one(&mut *conn)
            .await?;
        let (vehicle_base,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(id), 0) FROM vehicles")
            .fetch_one(&mut *conn)
            .await?;
        let mut referrers = Vec::with_capacity(dealers.len());
        for d in &dealers {
            let ids: Vec<(i64,)> = sqlx::query_as(
                "SELECT id FROM customers WHERE dealer_id = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(d.id)
            .bind(REFERRERS as i64)
            .fetch_all(&mut *conn)
            .await?;
            referrers.push(ids.into_iter().map(|(id,)| id).collect::<Vec<i64>>());
        }
        (
            dealers,
            person_base.unsigned_abs(),
            vehicle_base.unsigned_abs(),
            referrers,
        )
    };
    // Sequence numbers continue after every existing id, so phones and VINs never repeat.
    let mut rng = StdRng::seed_from_u64(0x5343_414c ^ person_base);
    let weights: Vec<(usize, u32)> = DEALERS
        .iter()
        .enumerate()
        .map(|(i, d)| (i, u32::try_from(d.customers).unwrap_or(1)))
        .collect();
    let window_start = make::at(today.days_ago(5 * 365 - 1), 0);
    let window = today.end_ms - 2 * DAY_MS - window_start;
    let spacing = (window / i64::try_from(customers).unwrap_or(i64::MAX)).max(1);
    let mut next_vehicle = vehicle_base + 1;
    let mut progress = Progress::new(customers);
    let mut done = 0;
    while done < customers {
        let n = (customers - done).min(CHUNK);
        let mut plans = Vec::with_capacity(n as usize);
        for i in done..done + n {
            let dealer = make::weighted(&mut rng, &weights);
            let created = window_start + i as i64 * spacing + rng.gen_range(0..spacing);
            let with_id = rng.gen_bool(SHAPE.with_id);
            let gender = Gender::random(&mut rng);
            let person = make::person(
                &mut rng,
                today,
                dealers[dealer].city,
                None,
                gender,
                (22, 68),
                with_id,
            );
            let seq = person_base + i + 1;
            let mut plan = plan::customer(
                &mut rng,
                today,
                &dealers,
                dealer,
                person,
                seq,
                created,
                1,
                &mut next_vehicle,
                &SHAPE,
            );
            if plan.channel == "referral" && !referrers[dealer].is_empty() {
                plan.referrer_id = Some(make::pick(&mut rng, &referrers[dealer]));
            }
            plans.push(plan);
        }
        let mut tx = db.begin_write().await?;
        let ids = plan::insert(&mut tx, &dealers, &mut plans).await?;
        tx.commit().await?;
        for (p, id) in plans.iter().zip(ids.customers) {
            let pool = &mut referrers[p.dealer];
            if pool.len() >= REFERRERS {
                pool.remove(0);
            }
            pool.push(id);
        }
        done += n;
        progress.advance(done);
    }
    progress.finish();
    Ok(customers)
}

async fn load_dealers(conn: &mut AnyConnection) -> Result<Vec<DealerCtx>> {
    let mut out = Vec::with_capacity(DEALERS.len());
    for def in &DEALERS {
        let Some(unit) = network::find_by_code(conn, def.code).await? else {
            return Err(Error::BadRequest {
                code: "demo_network_missing",
                message: format!(
                    "generated customers go to the demo dealers, but there is no unit {:?}; \
                     seed an empty database",
                    def.code
                ),
            });
        };
        let staff: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT id, org_unit_id, role FROM staff WHERE org_unit_id = $1 AND active = 1",
        )
        .bind(unit.id)
        .fetch_all(&mut *conn)
        .await?;
        out.push(demo::dealer_ctx(def, unit.id, &staff));
    }
    Ok(out)
}

/// A progress bar on a terminal, a log line every 10% otherwise.
enum Progress {
    Bar(ProgressBar),
    Log { total: u64, next_tenth: u64 },
}

impl Progress {
    fn new(total: u64) -> Progress {
        if std::io::stderr().is_terminal() {
            let style = ProgressStyle::with_template(
                "{spinner} adding customers {bar:40} {human_pos}/{human_len} ({per_sec}, {eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            Progress::Bar(ProgressBar::new(total).with_style(style))
        } else {
            tracing::info!(total, "adding generated customers");
            Progress::Log {
                total,
                next_tenth: 1,
            }
        }
    }

    fn advance(&mut self, done: u64) {
        match self {
            Progress::Bar(bar) => bar.set_position(done),
            Progress::Log { total, next_tenth } => {
                if done * 10 >= *total * *next_tenth {
                    tracing::info!(
                        done,
                        total = *total,
                        "{}% of generated customers added",
                        done * 100 / *total
                    );
                    *next_tenth = done * 10 / *total + 1;
                }
            }
        }
    }

    fn finish(self) {
        if let Progress::Bar(bar) = self {
            bar.finish();
        }
    }
}
