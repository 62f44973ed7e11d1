//! Benchmark-scale data: many generated customers of the demo dealers, stored in large
//! transactions of multi-row inserts; for the KPI benchmark, hundreds more dealers in new
//! groups under the demo regions, and each generated customer's history ([`super::scale_history`]).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::AnyConnection;

use super::demo::{self, DEALERS, DealerDef};
use super::make::{self, DAY_MS, Gender, Today};
use super::names;
use super::plan::{self, DealerCtx, Shape};
use super::scale_history::{self, Batch, Ids, Owner};
use super::{Rows, STAFF_COLUMNS};
use crate::access::Role;
use crate::clock;
use crate::db::{Db, Param};
use crate::error::{Error, Result};
use crate::network::{self, DealerType, NewUnit, Position, UnitKind};

/// Customers per transaction.
const CHUNK: u64 = 10_000;
/// Earlier customers of each dealer that referred customers may name.
const REFERRERS: usize = 50;
/// Codes of the benchmark network's dealers and groups: `BENCH-D0001`, `BENCH-G001`.
const BENCH_DEALER: &str = "BENCH-D";
const BENCH_GROUP: &str = "BENCH-G";
/// Benchmark dealers per group.
const DEALERS_PER_GROUP: usize = 20;

const SHAPE: Shape = Shape {
    readings: (2, 4),
    with_id: 0.3,
    tags: (1, 2),
    contacts: (0, 0),
    service_visits: false,
};

/// Adds `customers` generated customers. With `dealers`, first grows the network to that many
/// dealers and spreads the customers over all of them, each with two years of history.
pub async fn run(db: &Db, customers: u64, network_dealers: Option<u64>) -> Result<u64> {
    let bench = network_dealers.is_some();
    if let Some(total) = network_dealers {
        add_dealers(db, total).await?;
    }
    if customers == 0 {
        return Ok(0);
    }
    let today = Today::now();
    let now = clock::now_ms();
    let (dealers, profiles, person_base, vehicle_base, mut referrers, mut ids) = {
        let mut conn = db.pool().acquire().await?;
        let (dealers, profiles) = load_dealers(&mut conn, bench).await?;
        let ids = match bench {
            true => Some(Ids::load(&mut conn).await?),
            false => None,
        };
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
            profiles,
            person_base.unsigned_abs(),
            vehicle_base.unsigned_abs(),
            referrers,
            ids,
        )
    };
    // Sequence numbers continue after every existing id, so phones and VINs never repeat.
    let mut rng = StdRng::seed_from_u64(0x5343_414c ^ person_base);
    let weights: Vec<(usize, u32)> = profiles
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
        let stored = plan::insert(&mut tx, &dealers, &mut plans).await?;
        if let Some(ids) = ids.as_mut() {
            let mut batch = Batch::new();
            for (i, p) in plans.iter().enumerate() {
                let owner = Owner {
                    dealer: &dealers[p.dealer],
                    customer_id: stored.customers[i],
                    vehicle_id: stored.vehicles[i].first().copied(),
                    name: &p.person.name,
                    phone: p.phones.first().map(|(phone, _)| phone.as_str()),
                    created_at: p.created_at,
                };
                scale_history::add(&mut rng, &mut batch, ids, &owner, now);
            }
            batch.insert(&mut tx).await?;
        }
        tx.commit().await?;
        for (p, id) in plans.iter().zip(stored.customers) {
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
    if ids.is_some() {
        let mut conn = db.pool().acquire().await?;
        scale_history::sync_sequences(&mut conn).await?;
    }
    Ok(customers)
}

/// The demo dealer whose profile (city, type, share of customers) benchmark dealer `n` copies:
/// the demo's dealers in turn, not its branch.
fn profile(n: usize) -> &'static DealerDef {
    let own: Vec<&'static DealerDef> = DEALERS.iter().filter(|d| !d.branch).collect();
    own[n % own.len()]
}

/// Grows the network to `total` dealers: new ones in groups of [`DEALERS_PER_GROUP`], the
/// groups spread over the demo's regions, each dealer with a general manager, four sales and
/// four service staff.
async fn add_dealers(db: &Db, total: u64) -> Result<()> {
    let mut tx = db.begin_write().await?;
    let (existing,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM org_units WHERE kind = 'dealer'")
            .fetch_one(&mut *tx)
            .await?;
    let (bench,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM org_units WHERE code LIKE $1")
        .bind(format!("{BENCH_DEALER}%"))
        .fetch_one(&mut *tx)
        .await?;
    let wanted = usize::try_from(total).unwrap_or(usize::MAX);
    let have = usize::try_from(existing).unwrap_or(0);
    if wanted <= have {
        tx.commit().await?;
        return Ok(());
    }
    let regions: Vec<(i64, Option<String>)> =
        sqlx::query_as("SELECT id, city FROM org_units WHERE kind = 'region' ORDER BY id")
            .fetch_all(&mut *tx)
            .await?;
    let first = usize::try_from(bench).unwrap_or(0);
    let mut group: Option<i64> = None;
    let mut staff = Rows::new("staff", STAFF_COLUMNS);
    let mut rng = StdRng::seed_from_u64(0x4245_4e43 ^ first as u64);
    let hired = make::at(Today::now().days_ago(3 * 365), 9 * 60);
    for n in first..first + (wanted - have) {
        if group.is_none() || n % DEALERS_PER_GROUP == 0 {
            let g = n / DEALERS_PER_GROUP;
            let (region, city) = &regions[g % regions.len()];
            let city = city.clone().unwrap_or_default();
            let unit = network::create_unit(
                &mut tx,
                &NewUnit {
                    parent_id: Some(*region),
                    kind: UnitKind::Group,
                    dealer_type: None,
                    code: format!("{BENCH_GROUP}{:03}", g + 1),
                    name: format!("{city}第{}经销商集团", g + 1),
                    city: Some(city),
                    phone: None,
                },
            )
            .await?;
            group = Some(unit.id);
        }
        let def = profile(n);
        let unit = network::create_unit(
            &mut tx,
            &NewUnit {
                parent_id: group,
                kind: UnitKind::Dealer,
                dealer_type: Some(def.dealer_type),
                code: format!("{BENCH_DEALER}{:04}", n + 1),
                name: format!(
                    "远航{}{}号{}",
                    def.city,
                    n + 1,
                    if def.dealer_type == DealerType::FourS {
                        "4S店"
                    } else {
                        "服务站"
                    }
                ),
                city: Some(def.city.to_owned()),
                phone: None,
            },
        )
        .await?;
        let positions = [
            (Role::DealerAdmin, Position::GeneralManager),
            (Role::Sales, Position::SalesManager),
            (Role::Sales, Position::FinanceDesk),
            (Role::Sales, Position::SalesConsultant),
            (Role::Sales, Position::SalesConsultant),
            (Role::Service, Position::ServiceAdvisor),
            (Role::Service, Position::ServiceAdvisor),
            (Role::Service, Position::Technician),
            (Role::Service, Position::Technician),
        ];
        for (i, (role, position)) in positions.into_iter().enumerate() {
            let seq = 100_000 + (n * positions.len() + i) as u64;
            let gender = Gender::random(&mut rng);
            staff.push([
                Param::Int(unit.id),
                Param::Text(make::full_name(&mut rng, gender)),
                Param::Text(role.as_str().to_owned()),
                Param::OptText(Some(position.as_str().to_owned())),
                Param::Text(make::mobile(names::STAFF_MOBILE_PREFIXES, seq, 3)),
                Param::OptText(None),
                Param::Int(1),
                Param::Int(hired),
            ]);
        }
    }
    staff.execute(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// The dealers generated customers go to, as the generators see them, and the demo dealer
/// each copies: the demo's, and with `bench` the benchmark network's.
async fn load_dealers(
    conn: &mut AnyConnection,
    bench: bool,
) -> Result<(Vec<DealerCtx>, Vec<&'static DealerDef>)> {
    let mut out = Vec::with_capacity(DEALERS.len());
    let mut profiles = Vec::with_capacity(DEALERS.len());
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
        profiles.push(def);
    }
    if bench {
        let units: Vec<(i64,)> =
            sqlx::query_as("SELECT id FROM org_units WHERE code LIKE $1 ORDER BY code")
                .bind(format!("{BENCH_DEALER}%"))
                .fetch_all(&mut *conn)
                .await?;
        let staff: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT s.id, s.org_unit_id, s.role FROM staff s JOIN org_units u ON u.id = s.org_unit_id \
             WHERE u.code LIKE $1 AND s.active = 1",
        )
        .bind(format!("{BENCH_DEALER}%"))
        .fetch_all(&mut *conn)
        .await?;
        for (n, (id,)) in units.into_iter().enumerate() {
            let def = profile(n);
            out.push(demo::dealer_ctx(def, id, &staff));
            profiles.push(def);
        }
    }
    Ok((out, profiles))
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
