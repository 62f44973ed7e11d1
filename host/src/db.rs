//! The storage handle: one portable query set over `sqlx::Any`, on SQLite (embedded default)
//! or PostgreSQL (scale-out). Conventions every table follows are at the top of the migrations.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyArguments, AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyPool, Arguments, Executor, Transaction};

/// Which database a [`Db`] talks to; the few statements that differ switch on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Self, sqlx::Error> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(sqlx::Error::Configuration(
                format!("DATABASE_URL must start with sqlite: or postgres:, got {url:?}").into(),
            ))
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// The connection URL, for connections outside the pool (PostgreSQL LISTEN). It may hold
    /// a password: never log it.
    url: std::sync::Arc<str>,
    /// Milliseconds added to [`clock::now_ms`](crate::clock::now_ms) by [`Db::now_ms`]: 0 but
    /// in a test that set this database's clock ([`Db::set_now_for_tests`]).
    clock_shift_ms: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// Set only by a test simulating a crash right after a commit
    /// ([`Db::crash_after_commit_for_tests`]): the request leaves its follow-ups unrun.
    crash_after_commit: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

pub type Tx = Transaction<'static, Any>;

/// A stored enum read back: `parse` of what column `column` holds. A value the host wrote
/// itself but cannot read is a bug or a hand edit: a decode error, never a guess.
pub fn decode<T>(
    column: &str,
    value: &str,
    parse: fn(&str) -> Option<T>,
) -> crate::error::Result<T> {
    parse(value).ok_or_else(|| {
        crate::error::Error::Database(sqlx::Error::Decode(
            format!(
                "bad {column} {value:?} for {}",
                std::any::type_name::<T>().rsplit("::").next().unwrap_or("")
            )
            .into(),
        ))
    })
}

impl Db {
    pub async fn connect(url: &str) -> Result<Db, sqlx::Error> {
        install_default_drivers();
        let backend = Backend::from_url(url)?;
        // No request holds a connection while it waits for another (nor across a plugin run),
        // so a wait this long means an outage: answered 503, not after a long hang.
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(5));
        let pool = match backend {
            Backend::Sqlite => {
                let pool = options
                    .max_connections(8)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(
                                "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                                 PRAGMA synchronous = NORMAL;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?;
                // Once per process, not per connection: both may need the write lock, and a
                // connection opened while a write transaction runs must not wait for it.
                pool.execute("PRAGMA journal_mode = WAL; PRAGMA optimize = 0x10002;")
                    .await?;
                pool
            }
            Backend::Postgres => options.max_connections(16).connect(url).await?,
        };
        Ok(Db {
            pool,
            backend,
            url: url.into(),
            clock_shift_ms: std::sync::Arc::default(),
            crash_after_commit: std::sync::Arc::default(),
        })
    }

    /// Now, in UTC ms, as the records of this database see it: the system clock, unless a
    /// test set this database's clock. Domain code that dates a record by a business date
    /// (a delivery's commission month) reads it here.
    pub fn now_ms(&self) -> i64 {
        crate::clock::now_ms().saturating_add(
            self.clock_shift_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Sets this database's clock ([`Db::now_ms`], shared by its clones) to `at_ms`; it keeps
    /// running from there. For end-to-end tests that need a delivery at a given hour; the
    /// host never calls it.
    #[doc(hidden)]
    pub fn set_now_for_tests(&self, at_ms: i64) {
        self.clock_shift_ms.store(
            at_ms - crate::clock::now_ms(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// From now on, a change's follow-ups ([`crate::domain_events`]) are left to the worker,
    /// as if the host crashed right after each commit. For end-to-end tests of that crash (on
    /// this database and its clones); the host never calls it.
    #[doc(hidden)]
    pub fn crash_after_commit_for_tests(&self) {
        self.crash_after_commit
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a test simulates a crash after each commit ([`Db::crash_after_commit_for_tests`]).
    pub fn crashes_after_commit(&self) -> bool {
        self.crash_after_commit
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&self.pool).await,
            Backend::Postgres => {
                sqlx::migrate!("./migrations/postgres")
                    .run(&self.pool)
                    .await
            }
        }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so a read-then-write transaction waits for its turn instead of
    /// failing with SQLITE_BUSY when another writer commits in between.
    pub async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A value bound into a [`Sql`] statement.
#[derive(Clone, Debug)]
pub enum Param {
    Int(i64),
    OptInt(Option<i64>),
    Text(String),
    OptText(Option<String>),
}

/// A statement built piece by piece with `$n` placeholders, which both SQLite and PostgreSQL
/// accept (sqlx's `QueryBuilder<Any>` writes `?`, which PostgreSQL rejects).
#[derive(Debug, Default)]
pub struct Sql {
    text: String,
    params: Vec<Param>,
}

impl Sql {
    pub fn new(text: &str) -> Self {
        Sql {
            text: text.to_owned(),
            params: Vec::new(),
        }
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `param`.
    pub fn bind(&mut self, param: Param) -> &mut Self {
        self.params.push(param);
        self.text.push('$');
        self.text.push_str(&self.params.len().to_string());
        self
    }

    /// `prefix ($a, $b, ...) suffix` with one placeholder per id.
    pub fn in_list(prefix: &str, ids: &[i64], suffix: &str) -> Sql {
        let mut sql = Sql::new(prefix);
        sql.push_list(ids.iter().copied().map(Param::Int))
            .push(suffix);
        sql
    }

    /// Appends `($a, $b, ...)` with one placeholder per parameter.
    pub fn push_list(&mut self, params: impl IntoIterator<Item = Param>) -> &mut Self {
        self.text.push('(');
        for (i, p) in params.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(p);
        }
        self.text.push(')');
        self
    }

    /// Appends ` AND (column IN (...) OR ...)` over the `(column, values)` pairs with values,
    /// or ` AND 1 = 0` when none has any.
    pub fn push_in_any(&mut self, lists: Vec<(&str, Vec<Param>)>) -> &mut Self {
        let mut any = false;
        for (column, values) in lists.into_iter().filter(|(_, v)| !v.is_empty()) {
            self.push(if any { " OR " } else { " AND (" })
                .push(column)
                .push(" IN ")
                .push_list(values);
            any = true;
        }
        self.push(if any { ")" } else { " AND 1 = 0" })
    }

    /// `ids` as parameters, for [`Sql::push_in_any`].
    pub fn ints(ids: &[i64]) -> Vec<Param> {
        ids.iter().copied().map(Param::Int).collect()
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn arguments(&self) -> AnyArguments<'_> {
        let mut args = AnyArguments::default();
        for p in &self.params {
            // Adding a plain value to AnyArguments cannot fail.
            let _ = match p {
                Param::Int(v) => args.add(*v),
                Param::OptInt(v) => args.add(*v),
                Param::Text(v) => args.add(v.as_str()),
                Param::OptText(v) => args.add(v.as_deref()),
            };
        }
        args
    }
}

/// Parses a backend name given on a command line or in a test matrix.
impl FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            other => Err(format!("unknown backend {other:?} (sqlite or postgres)")),
        }
    }
}
