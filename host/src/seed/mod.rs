//! Demo and benchmark data: the 远航汽车 (Yuanhang Motors) dealer network with its staff,
//! customers, vehicles and their histories, generated deterministically; many more generated
//! customers for load tests; and a fresh API key per role for trying the demo.

mod demo;
mod history;
mod make;
mod names;
mod plan;
mod scale;
mod scale_history;

use std::fmt;

use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::access::{Role, keys, logins};
use crate::audit::Actor;
use crate::clock;
use crate::db::{Db, Param, Sql};
use crate::error::{Error, Result};
use crate::network::{self, Position};

/// Bound parameters per statement on PostgreSQL, well below its limit of 65,535.
const MAX_PARAMS_POSTGRES: usize = 30_000;
/// Bound parameters per statement on SQLite. Its limit is 32,766, but sqlx looks up each
/// parameter by name in a list as long as the statement's parameters, so binding grows with the
/// square of their number: about 150 per statement was fastest (measured).
const MAX_PARAMS_SQLITE: usize = 150;

/// The label of the keys [`issue_demo_keys`] creates (and revokes on the next call).
pub const DEMO_KEY_LABEL: &str = "demo";

/// What the database holds after [`demo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoSummary {
    /// Whether this call loaded the demo network (false: something was there already).
    pub loaded: bool,
    pub hq: i64,
    pub regions: i64,
    pub groups: i64,
    pub dealers: i64,
    pub branches: i64,
    pub staff: i64,
    pub customers: i64,
    pub vehicles: i64,
    pub tickets: i64,
}

impl fmt::Display for DemoSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |count: i64, one: &str, many: &str| {
            format!("{count} {}", if count == 1 { one } else { many })
        };
        write!(
            f,
            "demo network {}: {} HQ, {}, {}, {}, {}, {}, {}, {}, {}",
            if self.loaded {
                "loaded"
            } else {
                "already present, nothing loaded"
            },
            self.hq,
            n(self.regions, "region", "regions"),
            n(self.groups, "dealer group", "dealer groups"),
            n(self.dealers, "dealer", "dealers"),
            n(self.branches, "branch", "branches"),
            n(self.staff, "staff member", "staff"),
            n(self.customers, "customer", "customers"),
            n(self.vehicles, "vehicle", "vehicles"),
            n(self.tickets, "ticket", "tickets"),
        )
    }
}

/// Loads the demo network if the database has no network yet; otherwise loads nothing. Either
/// way, reports what is there.
pub async fn demo(db: &Db) -> Result<DemoSummary> {
    let mut tx = db.begin_write().await?;
    let loaded = network_is_empty(&mut tx).await?;
    if loaded {
        demo::load(&mut tx).await?;
        create_demo_logins(&mut tx).await?;
    }
    let summary = summary(&mut tx, loaded).await?;
    tx.commit().await?;
    if loaded {
        tracing::info!(
            customers = summary.customers,
            vehicles = summary.vehicles,
            "demo network loaded"
        );
    }
    Ok(summary)
}

/// Adds `customers` generated customers, each with phones, tags, a car with its owner link,
/// odometer readings and an interaction, spread over the demo network's dealers (loading the
/// demo first if the database is empty). With `dealers`, the KPI benchmark's network: first
/// grows it to that many dealers, spreads the customers over all of them and gives each two
/// years of repair orders, appointments, tickets, surveys and leads. Returns how many
/// customers were added.
pub async fn scale(db: &Db, customers: u64, dealers: Option<u64>) -> Result<u64> {
    let empty = {
        let mut conn = db.pool().acquire().await?;
        network_is_empty(&mut conn).await?
    };
    if empty {
        demo(db).await?;
    }
    let added = scale::run(db, customers, dealers).await?;
    // The planner picks list and search plans from table statistics; a bulk load makes the
    // old ones wrong by orders of magnitude.
    sqlx::query("ANALYZE").execute(db.pool()).await?;
    Ok(added)
}

/// A key [`issue_demo_keys`] created. `key` is the secret, shown this once.
#[derive(Clone)]
pub struct IssuedKey {
    pub role: Role,
    /// The position of the staff member the key acts as, if any.
    pub position: Option<Position>,
    pub unit_name: String,
    pub key: String,
}

/// The role, network unit (by code) and staff position of each demo key, in the order they
/// are issued.
const DEMO_KEYS: [(Role, &str, Option<Position>); 10] = [
    (Role::HqAdmin, demo::HQ_CODE, None),
    (Role::HqAnalyst, demo::HQ_CODE, None),
    (Role::Partner, demo::HQ_CODE, None),
    (Role::RegionalManager, demo::NORTH_CODE, None),
    (
        Role::DealerAdmin,
        demo::FLAGSHIP_CODE,
        Some(Position::GeneralManager),
    ),
    (
        Role::Sales,
        demo::FLAGSHIP_CODE,
        Some(Position::SalesConsultant),
    ),
    (
        Role::Sales,
        demo::FLAGSHIP_CODE,
        Some(Position::SalesManager),
    ),
    (
        Role::Sales,
        demo::FLAGSHIP_CODE,
        Some(Position::FinanceDesk),
    ),
    (
        Role::Service,
        demo::FLAGSHIP_CODE,
        Some(Position::ServiceAdvisor),
    ),
    (
        Role::Service,
        demo::FLAGSHIP_CODE,
        Some(Position::Technician),
    ),
];

/// Revokes the earlier demo keys and creates new ones: HQ admin, HQ analyst and partner at
/// HQ (the partner granted `charging-sessions` by the 北京朝阳 4S store), regional manager of
/// 华北, and at the 北京朝阳 4S store the general manager (dealer admin), a sales consultant, the
/// sales manager, the finance desk, a service advisor and a technician, so every approval step can be tried. A key of a role staff hold acts as the
/// first staff member of the unit with that role (and position).
pub async fn issue_demo_keys(db: &Db) -> Result<Vec<IssuedKey>> {
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE label = $2 AND revoked_at IS NULL")
        .bind(clock::now_ms())
        .bind(DEMO_KEY_LABEL)
        .execute(&mut *tx)
        .await?;
    let mut issued = Vec::with_capacity(DEMO_KEYS.len());
    for (role, code, position) in DEMO_KEYS {
        let unit = demo_unit(&mut tx, code).await?;
        let staff = demo_staff(&mut tx, unit.id, role, position).await?;
        let created = keys::create(&mut tx, role, unit.id, staff, DEMO_KEY_LABEL).await?;
        if role == Role::Partner {
            demo::grant_partner(&mut tx, created.info.id).await?;
        }
        issued.push(IssuedKey {
            role,
            position,
            unit_name: unit.name,
            key: created.key,
        });
    }
    tx.commit().await?;
    Ok(issued)
}

/// A console login [`issue_demo_logins`] gave a fresh password. `password` is shown this once.
#[derive(Clone)]
pub struct IssuedLogin {
    pub role: Role,
    pub position: Option<Position>,
    pub unit_name: String,
    pub username: String,
    pub password: String,
}

/// The demo staff who get a console login: those the keys act as (not the partner, who has
/// no staff), and the general manager and a consultant of the 上海浦东 4S store (another
/// dealer, to try what is not shared). Their username is the unit's code and their position
/// (or role): `bj-cy-4s.technician`.
fn demo_logins() -> impl Iterator<Item = (Role, &'static str, Option<Position>)> {
    const OTHER_DEALER: [(Role, &str, Option<Position>); 2] = [
        (
            Role::DealerAdmin,
            demo::SHANGHAI_CODE,
            Some(Position::GeneralManager),
        ),
        (
            Role::Sales,
            demo::SHANGHAI_CODE,
            Some(Position::SalesConsultant),
        ),
    ];
    DEMO_KEYS
        .into_iter()
        .filter(|(role, ..)| *role != Role::Partner)
        .chain(OTHER_DEALER)
}

fn demo_username(code: &str, role: Role, position: Option<Position>) -> String {
    let job = position.map_or(role.as_str(), Position::as_str);
    format!("{}.{job}", code.to_lowercase())
}

/// The first active staff member of `unit` with `role` (and `position`).
async fn demo_staff(
    conn: &mut AnyConnection,
    unit: i64,
    role: Role,
    position: Option<Position>,
) -> Result<Option<i64>> {
    let mut sql = Sql::new("SELECT id FROM staff WHERE org_unit_id = ");
    sql.bind(Param::Int(unit))
        .push(" AND role = ")
        .bind(Param::Text(role.as_str().to_owned()))
        .push(" AND active = 1");
    if let Some(position) = position {
        sql.push(" AND position = ")
            .bind(Param::Text(position.as_str().to_owned()));
    }
    sql.push(" ORDER BY id LIMIT 1");
    let staff: Option<(i64,)> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(staff.map(|(id,)| id))
}

/// Gives the [`demo_logins`] staff their logins, without a password yet (no sign-in until
/// [`issue_demo_logins`] or `dealer-host staff set-password` sets one).
async fn create_demo_logins(conn: &mut AnyConnection) -> Result<()> {
    for (role, code, position) in demo_logins() {
        let unit = demo_unit(conn, code).await?;
        if let Some(staff) = demo_staff(conn, unit.id, role, position).await? {
            let username = demo_username(code, role, position);
            logins::set(conn, staff, role, unit.id, &username, None).await?;
        }
    }
    Ok(())
}

/// Sets a fresh random password on every demo login (ending their earlier sessions), to be
/// printed by `serve --demo` next to the demo keys.
pub async fn issue_demo_logins(db: &Db) -> Result<Vec<IssuedLogin>> {
    let mut issued = Vec::new();
    for (role, code, position) in demo_logins() {
        let password = {
            use rand::Rng;
            const LETTERS: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
            let mut rng = rand::thread_rng();
            (0..12)
                .map(|_| LETTERS[rng.gen_range(0..LETTERS.len())] as char)
                .collect::<String>()
        };
        let username = demo_username(code, role, position);
        let change = network::LoginChange::new(&username, Some(&password)).await?;
        let mut tx = db.begin_write().await?;
        let unit = demo_unit(&mut tx, code).await?;
        let Some(staff) = demo_staff(&mut tx, unit.id, role, position).await? else {
            continue;
        };
        network::set_login(&mut tx, Actor::COMMAND_LINE, staff, &change).await?;
        tx.commit().await?;
        issued.push(IssuedLogin {
            role,
            position,
            unit_name: unit.name,
            username,
            password,
        });
    }
    Ok(issued)
}

/// The demo network's unit `code`; refused if the demo network is not loaded.
async fn demo_unit(conn: &mut AnyConnection, code: &str) -> Result<network::OrgUnit> {
    network::find_by_code(conn, code)
        .await?
        .ok_or_else(|| Error::BadRequest {
            code: "demo_network_missing",
            message: format!(
                "there is no unit {code:?}; load the demo network first (dealer-host seed)"
            ),
        })
}

async fn network_is_empty(conn: &mut AnyConnection) -> Result<bool> {
    let (units,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM org_units")
        .fetch_one(&mut *conn)
        .await?;
    Ok(units == 0)
}

async fn summary(conn: &mut AnyConnection, loaded: bool) -> Result<DemoSummary> {
    let kind = |k: &str| format!("(SELECT COUNT(*) FROM org_units WHERE kind = '{k}')");
    let sql = format!(
        "SELECT {}, {}, {}, {}, {}, (SELECT COUNT(*) FROM staff), (SELECT COUNT(*) FROM customers), \
         (SELECT COUNT(*) FROM vehicles), (SELECT COUNT(*) FROM tickets)",
        kind("hq"),
        kind("region"),
        kind("group"),
        kind("dealer"),
        kind("branch"),
    );
    let (hq, regions, groups, dealers, branches, staff, customers, vehicles, tickets): (
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
    ) = sqlx::query_as(&sql).fetch_one(&mut *conn).await?;
    Ok(DemoSummary {
        loaded,
        hq,
        regions,
        groups,
        dealers,
        branches,
        staff,
        customers,
        vehicles,
        tickets,
    })
}

/// The columns a generated staff member is stored with.
const STAFF_COLUMNS: &[&str] = &[
    "org_unit_id",
    "name",
    "role",
    "position",
    "phone",
    "email",
    "active",
    "created_at",
];

/// Rows for one table, stored with as few multi-row `INSERT`s as the bound-parameter limits of
/// both backends allow.
struct Rows {
    table: &'static str,
    columns: &'static [&'static str],
    values: Vec<Param>,
}

impl Rows {
    fn new(table: &'static str, columns: &'static [&'static str]) -> Rows {
        Rows {
            table,
            columns,
            values: Vec::new(),
        }
    }

    fn push<const N: usize>(&mut self, row: [Param; N]) {
        debug_assert_eq!(
            N,
            self.columns.len(),
            "a row of {} has {} columns",
            self.table,
            self.columns.len()
        );
        self.values.extend(row);
    }

    fn len(&self) -> usize {
        self.values.len() / self.columns.len()
    }

    /// The statements, each with at most as many parameters as suit the backend.
    fn statements(self, conn: &AnyConnection, returning: Option<&str>) -> Vec<Sql> {
        let width = self.columns.len();
        let max_params = if conn.backend_name() == <sqlx::Sqlite as sqlx::Database>::NAME {
            MAX_PARAMS_SQLITE
        } else {
            MAX_PARAMS_POSTGRES
        };
        let per_statement = (max_params / width).max(1);
        let head = format!(
            "INSERT INTO {} ({}) VALUES ",
            self.table,
            self.columns.join(", ")
        );
        let mut rows_left = self.len();
        let mut values = self.values.into_iter();
        let mut out = Vec::new();
        while rows_left > 0 {
            let n = rows_left.min(per_statement);
            rows_left -= n;
            let mut sql = Sql::new(&head);
            for row in 0..n {
                sql.push(if row == 0 { "(" } else { ", (" });
                for (col, value) in values.by_ref().take(width).enumerate() {
                    if col > 0 {
                        sql.push(", ");
                    }
                    sql.bind(value);
                }
                sql.push(")");
            }
            if let Some(r) = returning {
                sql.push(" RETURNING ").push(r);
            }
            out.push(sql);
        }
        out
    }

    async fn execute(self, conn: &mut AnyConnection) -> Result<()> {
        for sql in self.statements(conn, None) {
            sqlx::query_with(sql.text(), sql.arguments())
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// Inserts and returns the `returning` columns of every row, in no particular order.
    async fn fetch<T>(self, conn: &mut AnyConnection, returning: &str) -> Result<Vec<T>>
    where
        T: for<'r> sqlx::FromRow<'r, AnyRow> + Send + Unpin,
    {
        let mut out = Vec::with_capacity(self.len());
        for sql in self.statements(conn, Some(returning)) {
            out.extend(
                sqlx::query_as_with::<_, T, _>(sql.text(), sql.arguments())
                    .fetch_all(&mut *conn)
                    .await?,
            );
        }
        Ok(out)
    }
}
