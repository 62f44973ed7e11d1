//! Configuration: command-line flags, then environment variables, then an optional TOML file
//! (`--config`), then defaults. `DATABASE_URL` picks the backend: SQLite (the default, a file
//! under the data directory) or PostgreSQL.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::plugins::runs::Retention;
use crate::workers::Intervals;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a config file may set; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub database_url: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub log_format: Option<LogFormat>,
    /// Seconds between outbox passes (due domain events, then due messages); 0 turns them off.
    pub outbox_interval_secs: Option<u64>,
    /// Seconds between scheduler passes (reminders, points expiry); 0 turns it off.
    pub scheduler_interval_secs: Option<u64>,
    /// Plugin runs older than this many days are deleted (default 90).
    pub run_retention_days: Option<u32>,
    /// At most this many runs of each dealer and hook are kept, the newest (default 100000).
    pub run_retention_max_per_hook: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The resolved settings the host runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub log_format: LogFormat,
    /// How often the background loops run.
    pub workers: Intervals,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Values given on the command line or in the environment (already merged by clap).
#[derive(Debug, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub database_url: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub log_format: Option<LogFormat>,
    pub outbox_interval_secs: Option<u64>,
    pub scheduler_interval_secs: Option<u64>,
}

/// An interval in seconds, 0 meaning off, else `default`.
fn interval(secs: Option<u64>, default: Option<Duration>) -> Option<Duration> {
    match secs {
        Some(0) => None,
        Some(secs) => Some(Duration::from_secs(secs)),
        None => default,
    }
}

impl Settings {
    pub fn resolve(overrides: Overrides) -> Result<Settings, ConfigError> {
        let file = match &overrides.config_file {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let retention = Retention::default();
        let data_dir = overrides
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("data"));
        let database_url = match overrides.database_url.or(file.database_url) {
            Some(url) => url,
            None => {
                std::fs::create_dir_all(&data_dir).map_err(|source| ConfigError::DataDir {
                    path: data_dir.clone(),
                    source,
                })?;
                format!("sqlite://{}?mode=rwc", data_dir.join("dealer.db").display())
            }
        };
        Ok(Settings {
            database_url,
            data_dir,
            listen: overrides
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("a valid default address")),
            log_format: overrides.log_format.or(file.log_format).unwrap_or_default(),
            workers: Intervals {
                outbox: interval(
                    overrides.outbox_interval_secs.or(file.outbox_interval_secs),
                    Intervals::default().outbox,
                ),
                scheduler: interval(
                    overrides
                        .scheduler_interval_secs
                        .or(file.scheduler_interval_secs),
                    Intervals::default().scheduler,
                ),
                imports: Intervals::default().imports,
                run_retention: Some(Retention {
                    max_days: file.run_retention_days.unwrap_or(retention.max_days),
                    max_per_hook: file
                        .run_retention_max_per_hook
                        .unwrap_or(retention.max_per_hook),
                    ..retention
                }),
            },
        })
    }
}

fn read_file(path: &Path) -> Result<FileSettings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = std::env::temp_dir().join(format!("dealer-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("host.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:9000\"\ndatabase_url = \"postgres://file/db\"\n",
        )
        .unwrap();
        let settings = Settings::resolve(Overrides {
            config_file: Some(file.clone()),
            database_url: Some("sqlite://flag.db".into()),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(settings.database_url, "sqlite://flag.db");
        assert_eq!(settings.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(settings.log_format, LogFormat::Pretty);
        assert_eq!(settings.workers, Intervals::default());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_worker_interval_of_zero_turns_the_loop_off() {
        let dir =
            std::env::temp_dir().join(format!("dealer-config-workers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("host.toml");
        std::fs::write(
            &file,
            "outbox_interval_secs = 0\nscheduler_interval_secs = 60\n",
        )
        .unwrap();
        let settings = Settings::resolve(Overrides {
            config_file: Some(file),
            database_url: Some("sqlite://flag.db".into()),
            outbox_interval_secs: Some(2),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(settings.workers.outbox, Some(Duration::from_secs(2)));
        assert_eq!(settings.workers.scheduler, Some(Duration::from_secs(60)));
        let off = Settings::resolve(Overrides {
            database_url: Some("sqlite://flag.db".into()),
            outbox_interval_secs: Some(0),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(off.workers.outbox, None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unknown_key_in_the_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("dealer-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("host.toml");
        std::fs::write(&file, "listne = \"0.0.0.0:9000\"\n").unwrap();
        let err = Settings::resolve(Overrides {
            config_file: Some(file),
            ..Overrides::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("listne"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
