//! Support for the end-to-end tests: a fresh, migrated database per test (a SQLite file or a
//! PostgreSQL database of its own, removed on drop), and the real host serving a fixture
//! network on a random local port, with one API key per role.
//!
//! Tests are written once as `async fn name(backend: Backend)` and run on both backends with
//! [`on_both_backends!`]. PostgreSQL is expected at `postgres://postgres@127.0.0.1:5432/test`
//! (override with `DEALER_TEST_PG_URL`); when it is unreachable the tests fail, never skip.

pub mod contract;
pub mod guests;
pub mod history;
pub mod service;
pub mod smtp;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dealer_host::access::Role;
use dealer_host::access::keys;
use dealer_host::network::{self, DealerType, NewUnit, Position, UnitKind};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use dealer_host::Backend;
use dealer_host::plugins::runtime::{Limits, Runtime};
use dealer_host::{AppState, Db};

/// The PostgreSQL database the tests connect to in order to create and drop their own.
const DEFAULT_PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// How long cleanup waits for the pool to close before removing the database anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

fn pg_admin_url() -> String {
    std::env::var("DEALER_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_ADMIN_URL.to_owned())
}

/// `admin` with its database name replaced by `database` (query string kept).
fn with_database(admin: &str, database: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{server}/{database}{query}")
}

enum Location {
    SqliteFile(PathBuf),
    PgDatabase { admin_url: String, name: String },
}

/// A migrated, empty database of its own; dropping it removes it.
pub struct TestDb {
    pub db: Db,
    location: Location,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let (url, location) = match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("dealer_test_{unique}.db"));
                (
                    format!("sqlite://{}?mode=rwc", path.display()),
                    Location::SqliteFile(path),
                )
            }
            Backend::Postgres => {
                let admin_url = pg_admin_url();
                let name = format!("dealer_test_{unique}");
                let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
                    panic!(
                        "the end-to-end tests need PostgreSQL at {admin_url} (set DEALER_TEST_PG_URL \
                         to another admin URL): {e}"
                    )
                });
                sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .await
                    .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
                admin.close().await.ok();
                (
                    with_database(&admin_url, &name),
                    Location::PgDatabase { admin_url, name },
                )
            }
        };
        // From here on, a failure still removes what was created (Drop).
        let db = Db::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
        let test_db = TestDb { db, location };
        test_db
            .db
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("migrations failed on {url}: {e}"));
        test_db
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let db = self.db.clone();
        let location = match &self.location {
            Location::SqliteFile(path) => Location::SqliteFile(path.clone()),
            Location::PgDatabase { admin_url, name } => Location::PgDatabase {
                admin_url: admin_url.clone(),
                name: name.clone(),
            },
        };
        // Tests run on a tokio runtime, where blocking on a future is not allowed: clean up on a
        // thread with a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for test cleanup");
            runtime.block_on(async move {
                tokio::time::timeout(CLOSE_GRACE, db.close()).await.ok();
                match location {
                    Location::SqliteFile(path) => {
                        for suffix in ["", "-wal", "-shm"] {
                            let mut file = path.clone().into_os_string();
                            file.push(suffix);
                            std::fs::remove_file(file).ok();
                        }
                    }
                    Location::PgDatabase { admin_url, name } => {
                        if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                            let dropped = sqlx::raw_sql(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .execute(&mut admin)
                            .await;
                            if let Err(e) = dropped {
                                eprintln!("could not drop test database {name}: {e}");
                            }
                            admin.close().await.ok();
                        }
                    }
                }
            });
        });
        cleanup.join().ok();
    }
}

/// Ids of the fixture network: HQ; region north (dealer_a, dealer_b); region south (dealer_c).
#[derive(Debug, Clone, Copy)]
pub struct Units {
    pub hq: i64,
    pub north: i64,
    pub south: i64,
    pub dealer_a: i64,
    pub dealer_b: i64,
    pub dealer_c: i64,
}

/// Staff ids of the fixture's people at dealer_a, each with the key of the same name.
#[derive(Debug, Clone, Copy)]
pub struct Staff {
    pub a_sales: i64,
    pub a_sales2: i64,
    pub a_sales_manager: i64,
    pub a_gm: i64,
    pub a_finance: i64,
    pub a_service: i64,
    pub a_technician: i64,
}

/// One API key per fixture role.
#[derive(Debug, Clone)]
pub struct Keys {
    /// hq_admin at HQ.
    pub hq_admin: String,
    /// hq_analyst at HQ.
    pub hq_analyst: String,
    /// regional_manager at north.
    pub north_manager: String,
    /// partner at HQ.
    pub partner: String,
    /// dealer_admin at dealer_a.
    pub a_admin: String,
    /// sales at dealer_a, staff `a_sales` (a sales consultant).
    pub a_sales: String,
    /// sales at dealer_a, staff `a_sales2` (another sales consultant).
    pub a_sales2: String,
    /// sales at dealer_a, staff `a_sales_manager`.
    pub a_sales_manager: String,
    /// dealer_admin at dealer_a, staff `a_gm` (the general manager).
    pub a_gm: String,
    /// sales at dealer_a, staff `a_finance` (the finance desk).
    pub a_finance: String,
    /// service at dealer_a, staff `a_service` (a service advisor).
    pub a_service: String,
    /// service at dealer_a, staff `a_technician`.
    pub a_technician: String,
    /// dealer_admin at dealer_b.
    pub b_admin: String,
    /// dealer_admin at dealer_c.
    pub c_admin: String,
}

/// The real host on `127.0.0.1:<random port>` over a fresh database holding the fixture
/// network. Dropping it stops the server and removes the database.
pub struct TestApp {
    /// `http://127.0.0.1:<port>/api/v1`
    pub base: String,
    pub db: Db,
    pub client: reqwest::Client,
    pub units: Units,
    pub keys: Keys,
    pub staff: Staff,
    /// The server's state, for calling domain functions and background jobs directly.
    pub state: AppState,
    files: ScratchDir,
    _server: Replica,
    // Declared last: dropped after the server has been told to stop.
    _test_db: TestDb,
}

/// One running host; dropping it stops it.
pub struct Replica {
    /// `http://127.0.0.1:<port>/api/v1`
    pub base: String,
    /// The replica's state, for running its background jobs directly.
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Replica {
    async fn spawn(state: AppState) -> Replica {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local port");
        let port = listener.local_addr().expect("the bound address").port();
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(dealer_host::serve(listener, state.clone(), async move {
            stopped.await.ok();
        }));
        Replica {
            base: format!("http://127.0.0.1:{port}/api/v1"),
            state,
            shutdown: Some(shutdown),
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            shutdown.send(()).ok();
        }
    }
}

/// One plugin runtime for every host of a test process: an engine reserves address space
/// for its instance pool, so the hosts share one. Its artifact cache is shared by the test
/// processes (entries are written atomically and named by content hash).
pub fn shared_runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let cache = std::env::temp_dir().join("dealer-test-plugin-cache");
            Arc::new(
                Runtime::new(Some(&cache), Limits::default()).expect("the shared plugin runtime"),
            )
        })
        .clone()
}

/// A directory of its own under the system's temporary directory, removed on drop.
pub struct ScratchDir {
    pub path: PathBuf,
}

pub fn scratch_dir(purpose: &str) -> ScratchDir {
    let path = std::env::temp_dir().join(format!(
        "dealer-test-{purpose}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&path).expect("create a scratch directory");
    ScratchDir { path }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.path).ok();
    }
}

async fn unit(
    conn: &mut sqlx::AnyConnection,
    parent_id: Option<i64>,
    kind: UnitKind,
    dealer_type: Option<DealerType>,
    code: &str,
    name: &str,
    city: Option<&str>,
) -> i64 {
    let new = NewUnit {
        parent_id,
        kind,
        dealer_type,
        code: code.to_owned(),
        name: name.to_owned(),
        city: city.map(str::to_owned),
        phone: (kind == UnitKind::Dealer).then(|| "400-810-8888".to_owned()),
    };
    network::create_unit(conn, &new)
        .await
        .unwrap_or_else(|e| panic!("fixture unit {code}: {e}"))
        .id
}

async fn key(conn: &mut sqlx::AnyConnection, role: Role, unit: i64, label: &str) -> String {
    keys::create(conn, role, unit, None, label)
        .await
        .unwrap_or_else(|e| panic!("fixture key {label}: {e}"))
        .key
}

/// A staff member of `unit` holding `position`, and a key of `role` acting as them.
async fn staff_key(
    conn: &mut sqlx::AnyConnection,
    role: Role,
    unit: i64,
    name: &str,
    position: Position,
) -> (i64, String) {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO staff (org_unit_id, name, role, position, created_at) \
         VALUES ($1, $2, $3, $4, 0) RETURNING id",
    )
    .bind(unit)
    .bind(name)
    .bind(role.as_str())
    .bind(position.as_str())
    .fetch_one(&mut *conn)
    .await
    .unwrap_or_else(|e| panic!("fixture staff {name}: {e}"));
    let key = keys::create(conn, role, unit, Some(id), name)
        .await
        .unwrap_or_else(|e| panic!("fixture key {name}: {e}"))
        .key;
    (id, key)
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        let test_db = TestDb::new(backend).await;
        let db = test_db.db.clone();
        let mut conn = db
            .pool()
            .acquire()
            .await
            .expect("a connection for the fixture");
        let c = &mut *conn;
        let hq = unit(c, None, UnitKind::Hq, None, "HQ", "品牌总部", Some("北京")).await;
        let north = unit(
            c,
            Some(hq),
            UnitKind::Region,
            None,
            "NORTH",
            "华北大区",
            None,
        )
        .await;
        let south = unit(
            c,
            Some(hq),
            UnitKind::Region,
            None,
            "SOUTH",
            "华南大区",
            None,
        )
        .await;
        let dealer_a = unit(
            c,
            Some(north),
            UnitKind::Dealer,
            Some(DealerType::FourS),
            "BJ-CY-4S",
            "北京朝阳4S店",
            Some("北京"),
        )
        .await;
        let dealer_b = unit(
            c,
            Some(north),
            UnitKind::Dealer,
            Some(DealerType::ServiceStation),
            "TJ-HX-SS",
            "天津河西服务站",
            Some("天津"),
        )
        .await;
        let dealer_c = unit(
            c,
            Some(south),
            UnitKind::Dealer,
            Some(DealerType::FourS),
            "GZ-TH-4S",
            "广州天河4S店",
            Some("广州"),
        )
        .await;
        let a = dealer_a;
        let (s_sales, a_sales) =
            staff_key(c, Role::Sales, a, "王芳", Position::SalesConsultant).await;
        let (s_sales2, a_sales2) =
            staff_key(c, Role::Sales, a, "李强", Position::SalesConsultant).await;
        let (s_manager, a_sales_manager) =
            staff_key(c, Role::Sales, a, "赵敏", Position::SalesManager).await;
        let (s_gm, a_gm) =
            staff_key(c, Role::DealerAdmin, a, "陈刚", Position::GeneralManager).await;
        let (s_finance, a_finance) =
            staff_key(c, Role::Sales, a, "孙丽", Position::FinanceDesk).await;
        let (s_service, a_service) =
            staff_key(c, Role::Service, a, "周杰", Position::ServiceAdvisor).await;
        let (s_technician, a_technician) =
            staff_key(c, Role::Service, a, "吴军", Position::Technician).await;
        let staff = Staff {
            a_sales: s_sales,
            a_sales2: s_sales2,
            a_sales_manager: s_manager,
            a_gm: s_gm,
            a_finance: s_finance,
            a_service: s_service,
            a_technician: s_technician,
        };
        let keys = Keys {
            hq_admin: key(c, Role::HqAdmin, hq, "hq admin").await,
            hq_analyst: key(c, Role::HqAnalyst, hq, "hq analyst").await,
            north_manager: key(c, Role::RegionalManager, north, "north manager").await,
            partner: key(c, Role::Partner, hq, "partner").await,
            a_admin: key(c, Role::DealerAdmin, dealer_a, "dealer a admin").await,
            a_sales,
            a_sales2,
            a_sales_manager,
            a_gm,
            a_finance,
            a_service,
            a_technician,
            b_admin: key(c, Role::DealerAdmin, dealer_b, "dealer b admin").await,
            c_admin: key(c, Role::DealerAdmin, dealer_c, "dealer c admin").await,
        };
        drop(conn);

        let files = scratch_dir("files");
        let state = AppState::with_runtime(db.clone(), shared_runtime(), &files.path)
            .expect("the host's state");
        let replica = Replica::spawn(state.clone()).await;
        TestApp {
            base: replica.base.clone(),
            db,
            client: reqwest::Client::new(),
            units: Units {
                hq,
                north,
                south,
                dealer_a,
                dealer_b,
                dealer_c,
            },
            keys,
            staff,
            state,
            files,
            _server: replica,
            _test_db: test_db,
        }
    }

    /// A second host on the same database, with a plugin runtime and caches of its own, as
    /// another replica behind a load balancer would be.
    pub async fn replica(&self) -> Replica {
        self.replica_with(Limits::default(), "replica").await
    }

    /// [`TestApp::replica`] with a plugin runtime of `limits` (e.g. a longer deadline, so a
    /// test can act while a call runs), its files under `name`.
    pub async fn replica_with(&self, limits: Limits, name: &str) -> Replica {
        let runtime = Arc::new(
            Runtime::new(Some(&self.files.path.join(format!("{name}-cache"))), limits)
                .expect("a plugin runtime for the replica"),
        );
        Replica::spawn(
            AppState::with_runtime(self.db.clone(), runtime, &self.files.path.join(name))
                .expect("the replica's state"),
        )
        .await
    }

    /// The URL of `path` on another host (a replica).
    pub fn on(&self, replica: &Replica, path: &str) -> String {
        format!("{}{path}", replica.base)
    }

    /// Sends only the head of `POST <base><path>` announcing a body of `length` bytes, and
    /// reads the answer: (status, lowercased head, JSON body).
    ///
    /// The body itself is not sent: the host must refuse on the announced length alone, and a
    /// client that keeps writing after the refusal races the host's close of the connection
    /// (reqwest then reports a broken pipe instead of the answer).
    pub async fn announce_body(
        &self,
        key: &str,
        path: &str,
        content_type: &str,
        length: usize,
    ) -> (u16, String, serde_json::Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let authority = self
            .base
            .trim_start_matches("http://")
            .split('/')
            .next()
            .expect("an authority")
            .to_owned();
        let mut stream = tokio::net::TcpStream::connect(&authority)
            .await
            .expect("connect to the host");
        let head = format!(
            "POST /api/v1{path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: {content_type}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n",
        );
        stream
            .write_all(head.as_bytes())
            .await
            .expect("send the request head");
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .await
            .expect("read the answer");
        let answer = String::from_utf8(answer).expect("a UTF-8 answer");
        let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        (
            status,
            head.to_lowercase(),
            serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Where this host keeps granted plugin directories.
    /// Publishes the first-party plugin `plugins/<name>` for `hook` to HQ's catalogue, with its
    /// configuration schema, as version 0.1.0, and enables it for dealer A with its default
    /// configuration (refusing, rather than falling back, if it fails).
    pub async fn enable_first_party(&self, name: &str, hook: &str) {
        let schema: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/../plugins/{name}/config.schema.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .expect("the plugin's schema"),
        )
        .expect("a JSON schema");
        let plugin = self
            .create(
                &self.keys.hq_admin,
                "/plugins",
                &serde_json::json!({"name": name, "hook": hook, "config_schema": schema}),
            )
            .await;
        let id = plugin["id"].as_i64().expect("a plugin id");
        let reply = call(
            self.client
                .post(format!("{}/plugins/{id}/versions?version=0.1.0", self.base))
                .bearer_auth(&self.keys.hq_admin)
                .header("content-type", "application/wasm")
                .body(guests::wasm_bytes(&format!("plugin-{name}"))),
        )
        .await;
        assert_eq!(reply.status, 201, "{name}: {}", reply.text);
        let reply = call(self.put(
            &self.keys.a_admin,
            &format!("/dealers/{}/plugins/{hook}", self.units.dealer_a),
            &serde_json::json!({"plugin_id": id, "pinned_version": "0.1.0", "config": {},
                                "failure_policy": "fail_closed"}),
        ))
        .await;
        assert_eq!(reply.status, 200, "{name}: {}", reply.text);
    }

    pub fn attachments_dir(&self) -> PathBuf {
        self.files.path.join("attachments")
    }

    /// The caller a fixture key authenticates as, for calling domain functions directly.
    pub async fn caller(&self, key: &str) -> dealer_host::access::Caller {
        let mut conn = self.db.pool().acquire().await.expect("a connection");
        keys::authenticate(&mut conn, key)
            .await
            .expect("a fixture key")
    }

    /// Where this host keeps the plugins' private directories.
    pub fn files_dir(&self) -> PathBuf {
        self.files.path.join("plugin-files")
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET <base><path>` with `Authorization: Bearer <key>`.
    pub fn get(&self, key: &str, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(key)
    }

    pub fn post(&self, key: &str, path: &str, body: &serde_json::Value) -> reqwest::RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(key).json(body)
    }

    pub fn patch(
        &self,
        key: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::RequestBuilder {
        self.client
            .patch(self.url(path))
            .bearer_auth(key)
            .json(body)
    }

    pub fn put(&self, key: &str, path: &str, body: &serde_json::Value) -> reqwest::RequestBuilder {
        self.client.put(self.url(path)).bearer_auth(key).json(body)
    }

    pub fn delete(&self, key: &str, path: &str) -> reqwest::RequestBuilder {
        self.client.delete(self.url(path)).bearer_auth(key)
    }
}

/// A response read whole: status, headers and the body (JSON when it parses, else `Null`;
/// as text; and as the bytes sent, for a file).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
    pub text: String,
    pub bytes: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the problem's `code`, or the `code` of one of its field `errors`, is `code`.
    pub fn has_code(&self, code: &str) -> bool {
        self.body["code"] == code
            || self.body["errors"]
                .as_array()
                .is_some_and(|errors| errors.iter().any(|e| e["code"] == code))
    }

    /// Whether one of the problem's field `errors` names `field`.
    pub fn names_field(&self, field: &str) -> bool {
        self.body["errors"]
            .as_array()
            .is_some_and(|errors| errors.iter().any(|e| e["field"] == field))
    }
}

/// Sends `request` and reads the whole response, which must be what the API's OpenAPI
/// document promises for it (see [`contract`]).
pub async fn call(request: reqwest::RequestBuilder) -> Reply {
    let (client, request) = request.build_split();
    let request = request.expect("a well-formed request");
    let method = request.method().to_string();
    let path = request.url().path().to_owned();
    let response = client
        .execute(request)
        .await
        .expect("the request reaches the host");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("the response body").to_vec();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if let Err(broken) = contract::contract().check(&method, &path, status, content_type, &text) {
        panic!("the answer breaks the API's OpenAPI document: {broken}");
    }
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
        bytes,
    }
}

impl TestApp {
    /// POSTs `body` to `path` and returns the created record; panics unless the answer is 201.
    pub async fn create(
        &self,
        key: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> serde_json::Value {
        let reply = call(self.post(key, path, body)).await;
        assert_eq!(
            reply.status, 201,
            "POST {path} {body} answered {}: {}",
            reply.status, reply.text
        );
        reply.body
    }

    /// GETs `path`; panics unless the answer is 200.
    pub async fn read(&self, key: &str, path: &str) -> serde_json::Value {
        let reply = call(self.get(key, path)).await;
        assert_eq!(
            reply.status, 200,
            "GET {path} answered {}: {}",
            reply.status, reply.text
        );
        reply.body
    }
}

/// A valid 17-character VIN (ISO 3779 check digit in position 9), distinct for each `serial`.
/// Computed here independently of the host, so the host's validation is checked against it.
pub fn valid_vin(serial: u32) -> String {
    let mut chars: Vec<char> = format!("LSVAU2180N2{:06}", serial % 1_000_000)
        .chars()
        .collect();
    chars[8] = vin_check_digit(&chars);
    chars.into_iter().collect()
}

fn vin_check_digit(chars: &[char]) -> char {
    const WEIGHTS: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
    let value = |c: char| match c {
        '0'..='9' => c as u32 - '0' as u32,
        'A'..='H' => c as u32 - 'A' as u32 + 1,
        'J'..='N' => c as u32 - 'J' as u32 + 1,
        'P' => 7,
        'R' => 9,
        'S'..='Z' => c as u32 - 'S' as u32 + 2,
        other => panic!("{other:?} is not a VIN character"),
    };
    let sum: u32 = chars.iter().zip(WEIGHTS).map(|(c, w)| value(*c) * w).sum();
    match sum % 11 {
        10 => 'X',
        d => char::from_digit(d, 10).expect("a digit below 10"),
    }
}

/// Runs each listed `async fn name(backend: Backend)` as a test on both backends:
/// `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Postgres).await
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_textbook_vin_gets_its_check_digit() {
        let chars: Vec<char> = "1M8GDM9AXKP042788".chars().collect();
        assert_eq!(vin_check_digit(&chars), 'X');
    }

    #[test]
    fn generated_vins_are_distinct_and_well_formed() {
        let (a, b) = (valid_vin(1), valid_vin(2));
        assert_ne!(a, b);
        assert_eq!(a.len(), 17);
        let chars: Vec<char> = a.chars().collect();
        assert_eq!(chars[8], vin_check_digit(&chars));
    }

    #[test]
    fn the_database_name_is_replaced_in_an_admin_url() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/test?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }
}
