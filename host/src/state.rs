//! The host's application state: the database, the plugin dispatcher (with the domain's
//! record look-ups wired in) and the attachment store, built once when the host starts and
//! shared by the API, the background workers and the command line.

use std::sync::Arc;

use crate::attachments::Store;
use crate::audit::ReadLog;
use crate::db::Db;
use crate::lookups::DealerRecords;
use crate::plugins::dispatch::{Plugins, RecordsFor};
use crate::plugins::runtime::{EngineResult, Limits, Runtime};

/// Everything a use case needs beyond its input, cloned cheaply (into each request, each
/// worker).
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub plugins: Arc<Plugins>,
    /// Where uploaded photos and documents are kept.
    pub attachments: Arc<Store>,
    /// The batched audit of reads of personal data.
    pub reads: ReadLog,
    /// Time between two SLA sweeps of a serving host ([`crate::tickets::sla`]).
    pub sla_interval: std::time::Duration,
    /// Whether the session cookie is marked `Secure` (the host serves HTTPS).
    pub secure_cookies: bool,
    /// Serve the console from this directory rather than the build embedded in the binary.
    pub console_dir: Option<std::path::PathBuf>,
}

impl AppState {
    /// The state of a host keeping its files under `data_dir`: compiled plugin artifacts in
    /// `plugin-cache/` (so a restart compiles nothing), plugins' granted private directories
    /// in `plugin-files/`, uploads in `attachments/`.
    pub fn new(db: Db, data_dir: &std::path::Path) -> EngineResult<AppState> {
        let runtime = Arc::new(Runtime::new(
            Some(&data_dir.join("plugin-cache")),
            Limits::default(),
        )?);
        AppState::with_runtime(db, runtime, data_dir)
    }

    /// The state of a host sharing an existing plugin runtime (tests run many hosts in one
    /// process), with its files under `data_dir`. Starts the read audit's writer, so it is
    /// called on a tokio runtime.
    pub fn with_runtime(
        db: Db,
        runtime: Arc<Runtime>,
        data_dir: &std::path::Path,
    ) -> EngineResult<AppState> {
        let plugins = Arc::new(plugins(
            db.clone(),
            runtime,
            Some(data_dir.join("plugin-files")),
        ));
        let attachments = Arc::new(Store::open(&data_dir.join("attachments"))?);
        Ok(AppState {
            reads: ReadLog::spawn(db.clone()),
            db,
            plugins,
            attachments,
            sla_interval: crate::tickets::sla::DEFAULT_INTERVAL,
            secure_cookies: false,
            console_dir: None,
        })
    }
}

/// The plugin dispatcher of a host on `db`, its runs reading records through the domain's
/// look-ups ([`DealerRecords`]); plugins' private directories under `files_dir`.
pub fn plugins(db: Db, runtime: Arc<Runtime>, files_dir: Option<std::path::PathBuf>) -> Plugins {
    let records_db = db.clone();
    let records: RecordsFor = Arc::new(move |dealer_id, dealer_path, plugin| {
        Arc::new(DealerRecords::new(
            records_db.clone(),
            dealer_id,
            dealer_path,
            plugin,
        ))
    });
    Plugins::new(runtime, db, records, files_dir)
}
