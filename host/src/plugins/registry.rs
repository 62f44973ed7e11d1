//! The plugin registry: plugins, their versions and artifacts, each dealer's bindings and kill
//! switches, the secrets plugins name by handle, and the plugins' private stores. Owns
//! `plugins`, `plugin_artifacts`, `plugin_versions`, `plugin_bindings`,
//! `plugin_dealer_switches`, `plugin_secrets` and `plugin_store`.
//!
//! A plugin belongs to an org unit: HQ's plugins are the catalogue, a dealer's are its own. A
//! version's component is stored once per SHA-256, however many versions share it. A dealer
//! enables a plugin for a hook with a binding pinned to one version; re-pinning remembers the
//! version before, so [`rollback`] can return to it. The versions of one owner's plugins are
//! bounded ([`MAX_VERSIONS_PER_OWNER`], [`MAX_BYTES_PER_OWNER`]); a version no binding pins
//! nor keeps for a rollback can be deleted ([`delete_version`]) to make room. Three kill switches stop a plugin from
//! running (the hook falls back to its built-in default): the plugin's, a binding's, and the
//! dealer-wide one.
//!
//! Every mutation that changes what runs calls [`announce_change`], so replicas sharing a
//! PostgreSQL database drop their cached view of the registry when the change commits.
//!
//! Who may call what (the catalogue, a dealer's own plugins, its bindings) is decided by the
//! caller; these functions take the ids they are given.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, FromRow};
use utoipa::ToSchema;

use dealer_plugin_runtime::host_api::{HostFuture, LookupError, PluginData};

use super::Hook;
use crate::clock;
use crate::db::{Db, Param, Sql, decode};
use crate::error::{Error, FieldError, Result};

/// The PostgreSQL channel [`announce_change`] notifies when the registry changes.
pub const CHANGE_CHANNEL: &str = "dealer_plugin_registry";

/// Longest plugin `description`, in characters.
pub const DESCRIPTION_MAX: usize = 2000;
/// Longest secret or credential handle, in characters.
pub const HANDLE_MAX: usize = 64;

/// Versions one owner (HQ's catalogue, or a dealer) may keep over all its plugins.
pub const MAX_VERSIONS_PER_OWNER: i64 = 50;
/// Bytes of components one owner may keep over all its plugins, each stored component
/// counted once however many of its versions share it.
pub const MAX_BYTES_PER_OWNER: i64 = 256 << 20;

pub use dealer_plugin_runtime::Grants;

/// What a hook does when the dealer's plugin fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Run the built-in default instead.
    #[default]
    Fallback,
    /// Refuse the operation.
    FailClosed,
}

impl FailurePolicy {
    pub const ALL: [FailurePolicy; 2] = [FailurePolicy::Fallback, FailurePolicy::FailClosed];

    pub fn as_str(self) -> &'static str {
        match self {
            FailurePolicy::Fallback => "fallback",
            FailurePolicy::FailClosed => "fail_closed",
        }
    }

    pub fn parse(s: &str) -> Option<FailurePolicy> {
        FailurePolicy::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Plugin {
    pub id: i64,
    /// HQ for a catalogue plugin, the dealer for a dealer's own.
    pub owner_org_id: i64,
    /// Unique for its owner: lowercase letters, digits and `-`, 2 to 63 characters.
    pub name: String,
    pub hook: Hook,
    pub description: String,
    /// The JSON Schema a binding's `config` must satisfy.
    pub config_schema: Option<Value>,
    pub grants: Grants,
    /// While killed, the plugin runs nowhere: every binding of it falls back.
    pub killed: bool,
    pub killed_reason: Option<String>,
    pub killed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A plugin to create; validated by [`create_plugin`].
#[derive(Debug, Clone, Deserialize)]
pub struct NewPlugin {
    pub owner_org_id: i64,
    pub name: String,
    pub hook: Hook,
    #[serde(default)]
    pub description: String,
    pub config_schema: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PluginVersion {
    pub id: i64,
    pub plugin_id: i64,
    /// Semver, e.g. `1.10.0`.
    pub version: String,
    /// The version of the WIT contract the component targets.
    pub wit_version: String,
    /// SHA-256 of the component, hex.
    pub sha256: String,
    /// Size of the component in bytes.
    pub size: i64,
    /// The API key that uploaded it.
    pub uploaded_by: Option<i64>,
    pub notes: String,
    pub created_at: DateTime<Utc>,
}

/// A version to add; see [`add_version`].
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    pub version: semver::Version,
    pub wit_version: String,
    /// SHA-256 of `bytes`, hex; checked.
    pub sha256: String,
    /// The component.
    pub bytes: &'a [u8],
    pub uploaded_by: Option<i64>,
    pub notes: String,
}

/// A dealer's plugin for a hook.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Binding {
    pub id: i64,
    pub dealer_id: i64,
    pub hook: Hook,
    pub plugin_id: i64,
    pub plugin_name: String,
    /// The version that runs.
    pub pinned_version: String,
    /// The version pinned before, which a rollback returns to.
    pub previous_version: Option<String>,
    /// The dealer's configuration of the plugin, a JSON object.
    pub config: Value,
    pub failure_policy: FailurePolicy,
    /// While killed, this dealer's hook falls back to its default.
    pub killed: bool,
    pub killed_reason: Option<String>,
    /// Optimistic concurrency: send it back with a change.
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    /// The API key of the last change.
    pub updated_by: Option<i64>,
}

impl crate::model::Versioned for Binding {
    fn version(&self) -> i64 {
        self.version
    }
}

/// A binding to create or replace with [`bind`].
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBinding {
    /// A plugin for the same hook.
    pub plugin_id: i64,
    /// One of the plugin's versions.
    pub pinned_version: String,
    /// A JSON object; default `{}`.
    #[serde(default = "empty_object")]
    pub config: Value,
    #[serde(default)]
    pub failure_policy: FailurePolicy,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// Changes to a binding. Absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindingPatch {
    /// Re-pins the binding; the version pinned until now becomes `previous_version`.
    pub pinned_version: Option<String>,
    /// Replaces the whole configuration (a JSON object).
    pub config: Option<Value>,
    pub failure_policy: Option<FailurePolicy>,
}

/// What runs for a dealer's hook: the binding, its plugin and the pinned version's artifact.
#[derive(Debug, Clone, PartialEq)]
pub struct Active {
    pub binding: Binding,
    pub plugin: Plugin,
    pub artifact_sha256: String,
    pub wit_version: String,
    /// The reason, when the dealer-wide kill switch is on ([`dealer_kill`], read by the
    /// same query).
    pub dealer_kill: Option<String>,
}

#[derive(FromRow)]
struct PluginRow {
    #[sqlx(rename = "p_id")]
    id: i64,
    #[sqlx(rename = "p_owner_org_id")]
    owner_org_id: i64,
    #[sqlx(rename = "p_name")]
    name: String,
    #[sqlx(rename = "p_hook")]
    hook: String,
    #[sqlx(rename = "p_description")]
    description: String,
    #[sqlx(rename = "p_config_schema")]
    config_schema: Option<String>,
    #[sqlx(rename = "p_grants")]
    grants: String,
    #[sqlx(rename = "p_killed")]
    killed: i64,
    #[sqlx(rename = "p_killed_reason")]
    killed_reason: Option<String>,
    #[sqlx(rename = "p_killed_at")]
    killed_at: Option<i64>,
    #[sqlx(rename = "p_created_at")]
    created_at: i64,
    #[sqlx(rename = "p_updated_at")]
    updated_at: i64,
}

/// The columns of [`PluginRow`], from `plugins p`.
const PLUGIN_COLUMNS: &str = "p.id AS p_id, p.owner_org_id AS p_owner_org_id, p.name AS p_name, \
     p.hook AS p_hook, p.description AS p_description, p.config_schema AS p_config_schema, \
     p.grants AS p_grants, p.killed AS p_killed, p.killed_reason AS p_killed_reason, \
     p.killed_at AS p_killed_at, p.created_at AS p_created_at, p.updated_at AS p_updated_at";

#[derive(FromRow)]
struct VersionRow {
    id: i64,
    plugin_id: i64,
    version: String,
    wit_version: String,
    sha256: String,
    size: i64,
    uploaded_by: Option<i64>,
    notes: String,
    created_at: i64,
}

const VERSION_COLUMNS: &str =
    "id, plugin_id, version, wit_version, sha256, size, uploaded_by, notes, created_at";

#[derive(FromRow)]
struct BindingRow {
    id: i64,
    dealer_id: i64,
    hook: String,
    plugin_id: i64,
    plugin_name: String,
    pinned_version: String,
    previous_version: Option<String>,
    config: String,
    failure_policy: String,
    killed: i64,
    killed_reason: Option<String>,
    version: i64,
    updated_at: i64,
    updated_by: Option<i64>,
}

/// The columns of [`BindingRow`], from `plugin_bindings b JOIN plugins p`.
const BINDING_COLUMNS: &str = "b.id, b.dealer_id, b.hook, b.plugin_id, p.name AS plugin_name, \
     b.pinned_version, b.previous_version, b.config, b.failure_policy, b.killed, b.killed_reason, \
     b.version, b.updated_at, b.updated_by";

#[derive(FromRow)]
struct ActiveRow {
    #[sqlx(flatten)]
    binding: BindingRow,
    #[sqlx(flatten)]
    plugin: PluginRow,
    artifact_sha256: String,
    wit_version: String,
    dealer_killed: Option<i64>,
    dealer_kill_reason: Option<String>,
}

/// A stored value this module wrote itself but cannot read back: a bug or a hand edit.
fn corrupt(column: &str, value: &str) -> Error {
    Error::Database(sqlx::Error::Decode(
        format!("plugin registry: bad {column} {value:?}").into(),
    ))
}

fn decode_json<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|_| corrupt(column, text))
}

impl PluginRow {
    fn into_plugin(self) -> Result<Plugin> {
        Ok(Plugin {
            hook: decode("hook", &self.hook, Hook::parse)?,
            config_schema: self
                .config_schema
                .as_deref()
                .map(|s| decode_json("config_schema", s))
                .transpose()?,
            grants: decode_json("grants", &self.grants)?,
            id: self.id,
            owner_org_id: self.owner_org_id,
            name: self.name,
            description: self.description,
            killed: self.killed != 0,
            killed_reason: self.killed_reason,
            killed_at: clock::opt_datetime(self.killed_at),
            created_at: clock::to_datetime(self.created_at),
            updated_at: clock::to_datetime(self.updated_at),
        })
    }
}

impl VersionRow {
    fn into_version(self) -> PluginVersion {
        PluginVersion {
            id: self.id,
            plugin_id: self.plugin_id,
            version: self.version,
            wit_version: self.wit_version,
            sha256: self.sha256,
            size: self.size,
            uploaded_by: self.uploaded_by,
            notes: self.notes,
            created_at: clock::to_datetime(self.created_at),
        }
    }
}

impl BindingRow {
    fn into_binding(self) -> Result<Binding> {
        Ok(Binding {
            hook: decode("hook", &self.hook, Hook::parse)?,
            config: decode_json("config", &self.config)?,
            failure_policy: decode("failure_policy", &self.failure_policy, FailurePolicy::parse)?,
            id: self.id,
            dealer_id: self.dealer_id,
            plugin_id: self.plugin_id,
            plugin_name: self.plugin_name,
            pinned_version: self.pinned_version,
            previous_version: self.previous_version,
            killed: self.killed != 0,
            killed_reason: self.killed_reason,
            version: self.version,
            updated_at: clock::to_datetime(self.updated_at),
            updated_by: self.updated_by,
        })
    }
}

fn lower_or_digit(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Whether `name` is a plugin name: `[a-z0-9][a-z0-9-]{1,62}`.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (2..=63).contains(&bytes.len())
        && lower_or_digit(bytes[0])
        && bytes.iter().all(|&b| lower_or_digit(b) || b == b'-')
}

/// Whether `handle` names a secret: 1 to 64 of `[a-z0-9._-]`, starting with a letter or digit.
pub fn is_valid_handle(handle: &str) -> bool {
    let bytes = handle.as_bytes();
    (1..=HANDLE_MAX).contains(&bytes.len())
        && lower_or_digit(bytes[0])
        && bytes
            .iter()
            .all(|&b| lower_or_digit(b) || matches!(b, b'-' | b'_' | b'.'))
}

/// The SHA-256 of a component, hex: the key its artifact is stored under.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Tells other replicas that the registry changed. On PostgreSQL this is a `NOTIFY` on
/// [`CHANGE_CHANNEL`], delivered when the caller's transaction commits (and never if it rolls
/// back); on SQLite, where one process owns the database, it does nothing.
pub async fn announce_change(conn: &mut AnyConnection) -> Result<()> {
    if conn.backend_name() == <sqlx::Postgres as sqlx::Database>::NAME {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANGE_CHANNEL)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

fn not_found(entity: &'static str) -> Error {
    Error::NotFound { entity }
}

/// Creates a plugin with no versions and no grants.
pub async fn create_plugin(conn: &mut AnyConnection, new: &NewPlugin) -> Result<Plugin> {
    let mut errors = Vec::new();
    if !is_valid_name(&new.name) {
        errors.push(FieldError::new(
            "name",
            "invalid_name",
            "2 to 63 lowercase letters, digits and '-', not starting with '-'",
        ));
    }
    if new.description.chars().count() > DESCRIPTION_MAX {
        errors.push(FieldError::new(
            "description",
            "too_long",
            format!("description is at most {DESCRIPTION_MAX} characters"),
        ));
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    if plugin_by_name(conn, new.owner_org_id, &new.name)
        .await?
        .is_some()
    {
        return Err(Error::Conflict {
            code: "plugin_exists",
            message: format!("a plugin named {:?} already exists", new.name),
        });
    }
    let now = clock::now_ms();
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO plugins (owner_org_id, name, hook, description, config_schema, grants, \
         killed, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, '{}', 0, $6, $6) RETURNING id",
    )
    .bind(new.owner_org_id)
    .bind(&new.name)
    .bind(new.hook.as_str())
    .bind(&new.description)
    .bind(new.config_schema.as_ref().map(Value::to_string))
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    announce_change(conn).await?;
    fetch_plugin(conn, id).await
}

pub async fn plugin(conn: &mut AnyConnection, id: i64) -> Result<Option<Plugin>> {
    let row: Option<PluginRow> = sqlx::query_as(&format!(
        "SELECT {PLUGIN_COLUMNS} FROM plugins p WHERE p.id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(PluginRow::into_plugin).transpose()
}

async fn fetch_plugin(conn: &mut AnyConnection, id: i64) -> Result<Plugin> {
    plugin(conn, id).await?.ok_or(not_found("plugin"))
}

pub async fn plugin_by_name(
    conn: &mut AnyConnection,
    owner_org_id: i64,
    name: &str,
) -> Result<Option<Plugin>> {
    let row: Option<PluginRow> = sqlx::query_as(&format!(
        "SELECT {PLUGIN_COLUMNS} FROM plugins p WHERE p.owner_org_id = $1 AND p.name = $2"
    ))
    .bind(owner_org_id)
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(PluginRow::into_plugin).transpose()
}

/// The plugins of `owner_org_ids` (typically HQ's catalogue and the caller's dealer), by name.
pub async fn list_plugins(conn: &mut AnyConnection, owner_org_ids: &[i64]) -> Result<Vec<Plugin>> {
    if owner_org_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = Sql::in_list(
        &format!("SELECT {PLUGIN_COLUMNS} FROM plugins p WHERE p.owner_org_id IN "),
        owner_org_ids,
        " ORDER BY p.name, p.owner_org_id",
    );
    let rows: Vec<PluginRow> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    rows.into_iter().map(PluginRow::into_plugin).collect()
}

/// Runs `UPDATE plugins SET <set>, updated_at = now WHERE id = plugin_id` and returns the plugin.
async fn update_plugin(conn: &mut AnyConnection, plugin_id: i64, mut sql: Sql) -> Result<Plugin> {
    sql.push(", updated_at = ")
        .bind(Param::Int(clock::now_ms()))
        .push(" WHERE id = ")
        .bind(Param::Int(plugin_id));
    let updated = sqlx::query_with(sql.text(), sql.arguments())
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if updated == 0 {
        return Err(not_found("plugin"));
    }
    announce_change(conn).await?;
    fetch_plugin(conn, plugin_id).await
}

/// Replaces the plugin's grants. Hosts are host names with an optional port (no scheme, path
/// or spaces);
/// credentials are secret handles.
pub async fn set_grants(
    conn: &mut AnyConnection,
    plugin_id: i64,
    grants: &Grants,
) -> Result<Plugin> {
    let mut errors = Vec::new();
    for (i, host) in grants.outbound_hosts.iter().enumerate() {
        let (name, port) = match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host.as_str(), None),
        };
        let bare = !name.is_empty()
            && !name.contains(['/', ':', '@', '?', '#'])
            && !name.chars().any(char::is_whitespace)
            && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
        if !bare {
            errors.push(FieldError::new(
                format!("outbound_hosts[{i}]"),
                "invalid_host",
                "a host name such as api.example.com, optionally with a port (api.example.com:8443), without scheme or path",
            ));
        }
    }
    for (i, handle) in grants.credentials.iter().enumerate() {
        if !is_valid_handle(handle) {
            errors.push(FieldError::new(
                format!("credentials[{i}]"),
                "invalid_handle",
                "1 to 64 lowercase letters, digits, '.', '_' and '-'",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let mut sql = Sql::new("UPDATE plugins SET grants = ");
    sql.bind(Param::Text(
        serde_json::to_string(grants).expect("grants serialise"),
    ));
    update_plugin(conn, plugin_id, sql).await
}

/// Replaces (or with `None` removes) the JSON Schema of the plugin's configuration.
pub async fn set_config_schema(
    conn: &mut AnyConnection,
    plugin_id: i64,
    schema: Option<&Value>,
) -> Result<Plugin> {
    let mut sql = Sql::new("UPDATE plugins SET config_schema = ");
    sql.bind(Param::OptText(schema.map(Value::to_string)));
    update_plugin(conn, plugin_id, sql).await
}

/// Turns the plugin's kill switch on (with a reason) or off.
pub async fn set_plugin_killed(
    conn: &mut AnyConnection,
    plugin_id: i64,
    killed: bool,
    reason: Option<&str>,
) -> Result<Plugin> {
    let mut sql = Sql::new("UPDATE plugins SET killed = ");
    sql.bind(Param::Int(i64::from(killed)))
        .push(", killed_reason = ")
        .bind(Param::OptText(reason.filter(|_| killed).map(str::to_owned)))
        .push(", killed_at = ")
        .bind(Param::OptInt(killed.then(clock::now_ms)));
    update_plugin(conn, plugin_id, sql).await
}

/// Adds a version to a plugin, storing its artifact unless the same bytes are already stored.
/// Version numbers are unique per plugin but need not grow (a back-port may follow a newer one).
pub async fn add_version(
    conn: &mut AnyConnection,
    plugin_id: i64,
    new: &NewVersion<'_>,
) -> Result<PluginVersion> {
    let sha256 = digest(new.bytes);
    if !new.sha256.eq_ignore_ascii_case(&sha256) {
        return Err(Error::invalid(
            "sha256",
            "digest_mismatch",
            "the SHA-256 of the component is not the one given",
        ));
    }
    if semver::Version::parse(&new.wit_version).is_err() {
        return Err(Error::invalid(
            "wit_version",
            "invalid_version",
            "the WIT version must be a semantic version such as 0.1.0",
        ));
    }
    let plugin = fetch_plugin(conn, plugin_id).await?;
    let number = new.version.to_string();
    if version(conn, plugin_id, &number).await?.is_some() {
        return Err(Error::Conflict {
            code: "version_exists",
            message: format!("version {number} of this plugin already exists"),
        });
    }
    // Two uploads of one owner at once must not both fit the quota's last room: on
    // PostgreSQL the owner's row is locked until this transaction ends, so the second checks
    // after the first stored its version. SQLite's single writer already serialises them.
    if conn.backend_name() == <sqlx::Postgres as sqlx::Database>::NAME {
        sqlx::query("SELECT id FROM org_units WHERE id = $1 FOR UPDATE")
            .bind(plugin.owner_org_id)
            .execute(&mut *conn)
            .await?;
    }
    check_quota(conn, plugin.owner_org_id, &sha256, new.bytes.len()).await?;
    let now = clock::now_ms();
    let size = i64::try_from(new.bytes.len()).expect("a component smaller than 2^63 bytes");
    sqlx::query(
        "INSERT INTO plugin_artifacts (sha256, bytes, size, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (sha256) DO NOTHING",
    )
    .bind(&sha256)
    .bind(new.bytes.to_vec())
    .bind(size)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let row: VersionRow = sqlx::query_as(&format!(
        "INSERT INTO plugin_versions (plugin_id, version, wit_version, sha256, size, uploaded_by, \
         notes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {VERSION_COLUMNS}"
    ))
    .bind(plugin_id)
    .bind(&number)
    .bind(&new.wit_version)
    .bind(&sha256)
    .bind(size)
    .bind(new.uploaded_by)
    .bind(&new.notes)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    announce_change(conn).await?;
    Ok(row.into_version())
}

/// What the versions of one owner's plugins take: their number, and the bytes of their
/// components (each stored component once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerUsage {
    pub versions: i64,
    pub bytes: i64,
}

pub async fn owner_usage(conn: &mut AnyConnection, owner_org_id: i64) -> Result<OwnerUsage> {
    let (versions, bytes): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM plugin_versions v JOIN plugins p ON p.id = v.plugin_id \
         WHERE p.owner_org_id = $1), \
         (SELECT CAST(COALESCE(SUM(a.size), 0) AS BIGINT) FROM plugin_artifacts a \
         WHERE a.sha256 IN (SELECT v.sha256 FROM plugin_versions v \
         JOIN plugins p ON p.id = v.plugin_id WHERE p.owner_org_id = $2))",
    )
    .bind(owner_org_id)
    .bind(owner_org_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(OwnerUsage { versions, bytes })
}

/// Refuses one more version for the owner, of a component with content hash `sha256` and
/// `size` bytes, when it would take the owner past [`MAX_VERSIONS_PER_OWNER`] or
/// [`MAX_BYTES_PER_OWNER`] (a component the owner stores already takes no more bytes).
pub async fn check_quota(
    conn: &mut AnyConnection,
    owner_org_id: i64,
    sha256: &str,
    size: usize,
) -> Result<()> {
    let usage = owner_usage(conn, owner_org_id).await?;
    let free = "delete versions that no binding pins nor keeps for a rollback to make room";
    if usage.versions >= MAX_VERSIONS_PER_OWNER {
        return Err(Error::QuotaExceeded {
            code: "plugin_quota",
            message: format!(
                "the plugins of this owner have {} versions, the most allowed is \
                 {MAX_VERSIONS_PER_OWNER}; {free}",
                usage.versions
            ),
        });
    }
    let stored: Option<(i64,)> = sqlx::query_as(
        "SELECT 1 FROM plugin_versions v JOIN plugins p ON p.id = v.plugin_id \
         WHERE p.owner_org_id = $1 AND v.sha256 = $2 LIMIT 1",
    )
    .bind(owner_org_id)
    .bind(sha256.to_ascii_lowercase())
    .fetch_optional(&mut *conn)
    .await?;
    let added = if stored.is_some() {
        0
    } else {
        i64::try_from(size).expect("a component smaller than 2^63 bytes")
    };
    if usage.bytes + added > MAX_BYTES_PER_OWNER {
        return Err(Error::QuotaExceeded {
            code: "plugin_quota",
            message: format!(
                "the plugins of this owner store {} bytes of components and this one is {added} \
                 bytes, over the {MAX_BYTES_PER_OWNER} bytes allowed ({} MiB); {free}",
                usage.bytes,
                MAX_BYTES_PER_OWNER >> 20
            ),
        });
    }
    Ok(())
}

/// A deleted version, and whether its component went with it (no other version shared it).
#[derive(Debug, Clone)]
pub struct DeletedVersion {
    pub version: PluginVersion,
    pub artifact_deleted: bool,
}

/// Deletes version `number` of the plugin, and its component when no other version shares
/// it. A version a binding pins, or keeps as the one a rollback returns to, is a conflict.
pub async fn delete_version(
    conn: &mut AnyConnection,
    plugin_id: i64,
    number: &str,
) -> Result<DeletedVersion> {
    let version = version(conn, plugin_id, number)
        .await?
        .ok_or(not_found("plugin version"))?;
    let users: Vec<(i64, String)> = sqlx::query_as(
        "SELECT dealer_id, pinned_version FROM plugin_bindings \
         WHERE plugin_id = $1 AND (pinned_version = $2 OR previous_version = $3) \
         ORDER BY dealer_id",
    )
    .bind(plugin_id)
    .bind(number)
    .bind(number)
    .fetch_all(&mut *conn)
    .await?;
    if !users.is_empty() {
        let pinning: Vec<String> = users
            .iter()
            .filter(|(_, pinned)| pinned == number)
            .map(|(dealer, _)| dealer.to_string())
            .collect();
        let keeping: Vec<String> = users
            .iter()
            .filter(|(_, pinned)| pinned != number)
            .map(|(dealer, _)| dealer.to_string())
            .collect();
        let mut why = Vec::new();
        if !pinning.is_empty() {
            why.push(format!("pinned by dealer {}", pinning.join(", ")));
        }
        if !keeping.is_empty() {
            why.push(format!(
                "kept for a rollback by dealer {}",
                keeping.join(", ")
            ));
        }
        return Err(Error::Conflict {
            code: "version_in_use",
            message: format!(
                "version {number} is {}; pin another version or unbind it first",
                why.join(" and ")
            ),
        });
    }
    sqlx::query("DELETE FROM plugin_versions WHERE id = $1")
        .bind(version.id)
        .execute(&mut *conn)
        .await?;
    let artifact_deleted = sqlx::query(
        "DELETE FROM plugin_artifacts WHERE sha256 = $1 \
         AND NOT EXISTS (SELECT 1 FROM plugin_versions WHERE sha256 = $2)",
    )
    .bind(&version.sha256)
    .bind(&version.sha256)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        > 0;
    announce_change(conn).await?;
    Ok(DeletedVersion {
        version,
        artifact_deleted,
    })
}

/// The plugin's versions, newest (by semver precedence) first.
pub async fn versions(conn: &mut AnyConnection, plugin_id: i64) -> Result<Vec<PluginVersion>> {
    let rows: Vec<VersionRow> = sqlx::query_as(&format!(
        "SELECT {VERSION_COLUMNS} FROM plugin_versions WHERE plugin_id = $1"
    ))
    .bind(plugin_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut keyed = rows
        .into_iter()
        .map(|r| {
            let key =
                semver::Version::parse(&r.version).map_err(|_| corrupt("version", &r.version))?;
            Ok((key, r.into_version()))
        })
        .collect::<Result<Vec<_>>>()?;
    keyed.sort_by(|a, b| b.0.cmp(&a.0));
    Ok(keyed.into_iter().map(|(_, v)| v).collect())
}

pub async fn version(
    conn: &mut AnyConnection,
    plugin_id: i64,
    version: &str,
) -> Result<Option<PluginVersion>> {
    let row: Option<VersionRow> = sqlx::query_as(&format!(
        "SELECT {VERSION_COLUMNS} FROM plugin_versions WHERE plugin_id = $1 AND version = $2"
    ))
    .bind(plugin_id)
    .bind(version)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(VersionRow::into_version))
}

/// The component stored under `sha256` (hex).
pub async fn artifact(conn: &mut AnyConnection, sha256: &str) -> Result<Option<Vec<u8>>> {
    let row: Option<(Vec<u8>,)> =
        sqlx::query_as("SELECT bytes FROM plugin_artifacts WHERE sha256 = $1")
            .bind(sha256.to_ascii_lowercase())
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.map(|(bytes,)| bytes))
}

/// The checks of a binding's plugin, version and configuration that need the database.
async fn check_binding(
    conn: &mut AnyConnection,
    hook: Hook,
    plugin_id: i64,
    pinned_version: &str,
    config: &Value,
) -> Result<()> {
    let mut errors = Vec::new();
    match plugin(conn, plugin_id).await? {
        None => errors.push(FieldError::new(
            "plugin_id",
            "unknown_plugin",
            "no plugin with that id",
        )),
        Some(p) if p.hook != hook => errors.push(FieldError::new(
            "plugin_id",
            "wrong_hook",
            format!("the plugin implements {}, not {hook}", p.hook),
        )),
        Some(_) => {
            if version(conn, plugin_id, pinned_version).await?.is_none() {
                errors.push(FieldError::new(
                    "pinned_version",
                    "unknown_version",
                    format!("the plugin has no version {pinned_version:?}"),
                ));
            }
        }
    }
    if !config.is_object() {
        errors.push(FieldError::new(
            "config",
            "not_an_object",
            "the configuration must be a JSON object",
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(errors))
    }
}

/// Enables `new.plugin_id` for the dealer's `hook`, or replaces the plugin, version,
/// configuration and policy of the existing binding (bumping its `version`). Re-pinning the
/// same plugin remembers the version pinned until now as `previous_version`; switching to
/// another plugin forgets it. A killed binding stays killed.
pub async fn bind(
    conn: &mut AnyConnection,
    dealer_id: i64,
    hook: Hook,
    new: &NewBinding,
    by: Option<i64>,
) -> Result<Binding> {
    check_binding(conn, hook, new.plugin_id, &new.pinned_version, &new.config).await?;
    let now = clock::now_ms();
    match binding(conn, dealer_id, hook).await? {
        None => {
            sqlx::query(
                "INSERT INTO plugin_bindings (dealer_id, hook, plugin_id, pinned_version, config, \
                 failure_policy, killed, version, updated_at, updated_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, 0, 1, $7, $8)",
            )
            .bind(dealer_id)
            .bind(hook.as_str())
            .bind(new.plugin_id)
            .bind(&new.pinned_version)
            .bind(new.config.to_string())
            .bind(new.failure_policy.as_str())
            .bind(now)
            .bind(by)
            .execute(&mut *conn)
            .await?;
        }
        Some(current) => {
            let previous = if current.plugin_id != new.plugin_id {
                None
            } else if current.pinned_version != new.pinned_version {
                Some(current.pinned_version)
            } else {
                current.previous_version
            };
            sqlx::query(
                "UPDATE plugin_bindings SET plugin_id = $1, pinned_version = $2, \
                 previous_version = $3, config = $4, failure_policy = $5, version = version + 1, \
                 updated_at = $6, updated_by = $7 WHERE id = $8",
            )
            .bind(new.plugin_id)
            .bind(&new.pinned_version)
            .bind(previous)
            .bind(new.config.to_string())
            .bind(new.failure_policy.as_str())
            .bind(now)
            .bind(by)
            .bind(current.id)
            .execute(&mut *conn)
            .await?;
        }
    }
    announce_change(conn).await?;
    fetch_binding(conn, dealer_id, hook).await
}

pub async fn binding(
    conn: &mut AnyConnection,
    dealer_id: i64,
    hook: Hook,
) -> Result<Option<Binding>> {
    let row: Option<BindingRow> = sqlx::query_as(&format!(
        "SELECT {BINDING_COLUMNS} FROM plugin_bindings b JOIN plugins p ON p.id = b.plugin_id \
         WHERE b.dealer_id = $1 AND b.hook = $2"
    ))
    .bind(dealer_id)
    .bind(hook.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(BindingRow::into_binding).transpose()
}

async fn fetch_binding(conn: &mut AnyConnection, dealer_id: i64, hook: Hook) -> Result<Binding> {
    binding(conn, dealer_id, hook)
        .await?
        .ok_or(not_found("plugin binding"))
}

/// The dealer's bindings, by hook.
pub async fn bindings(conn: &mut AnyConnection, dealer_id: i64) -> Result<Vec<Binding>> {
    let rows: Vec<BindingRow> = sqlx::query_as(&format!(
        "SELECT {BINDING_COLUMNS} FROM plugin_bindings b JOIN plugins p ON p.id = b.plugin_id \
         WHERE b.dealer_id = $1 ORDER BY b.hook"
    ))
    .bind(dealer_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(BindingRow::into_binding).collect()
}

/// Applies `patch` to the dealer's binding for `hook` if it is still at version `expected`. A
/// patch that changes nothing changes nothing, version included.
pub async fn update_binding(
    conn: &mut AnyConnection,
    dealer_id: i64,
    hook: Hook,
    expected: i64,
    patch: &BindingPatch,
    by: Option<i64>,
) -> Result<Binding> {
    let current = fetch_binding(conn, dealer_id, hook).await?;
    if current.version != expected {
        return Err(Error::StaleVersion {
            current: current.version,
        });
    }
    let repin = patch
        .pinned_version
        .as_ref()
        .filter(|v| **v != current.pinned_version);
    let config = patch.config.as_ref().filter(|c| **c != current.config);
    let policy = patch
        .failure_policy
        .filter(|p| *p != current.failure_policy);
    if repin.is_none() && config.is_none() && policy.is_none() {
        return Ok(current);
    }
    check_binding(
        conn,
        hook,
        current.plugin_id,
        repin.unwrap_or(&current.pinned_version),
        config.unwrap_or(&current.config),
    )
    .await?;

    let mut sql = Sql::new("UPDATE plugin_bindings SET version = version + 1, updated_at = ");
    sql.bind(Param::Int(clock::now_ms()))
        .push(", updated_by = ")
        .bind(Param::OptInt(by));
    if let Some(v) = repin {
        sql.push(", pinned_version = ")
            .bind(Param::Text(v.clone()))
            .push(", previous_version = ")
            .bind(Param::Text(current.pinned_version.clone()));
    }
    if let Some(c) = config {
        sql.push(", config = ").bind(Param::Text(c.to_string()));
    }
    if let Some(p) = policy {
        sql.push(", failure_policy = ")
            .bind(Param::Text(p.as_str().to_owned()));
    }
    sql.push(" WHERE id = ")
        .bind(Param::Int(current.id))
        .push(" AND version = ")
        .bind(Param::Int(expected));
    let updated = sqlx::query_with(sql.text(), sql.arguments())
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if updated == 0 {
        let now = fetch_binding(conn, dealer_id, hook).await?;
        return Err(Error::StaleVersion {
            current: now.version,
        });
    }
    announce_change(conn).await?;
    fetch_binding(conn, dealer_id, hook).await
}

/// Swaps the pinned and the previous version of the dealer's binding for `hook` (so a second
/// rollback undoes the first).
pub async fn rollback(
    conn: &mut AnyConnection,
    dealer_id: i64,
    hook: Hook,
    by: Option<i64>,
) -> Result<Binding> {
    let current = fetch_binding(conn, dealer_id, hook).await?;
    let Some(previous) = current.previous_version else {
        return Err(Error::Conflict {
            code: "nothing_to_roll_back",
            message: format!("the {hook} binding has no previous version"),
        });
    };
    sqlx::query(
        "UPDATE plugin_bindings SET pinned_version = $1, previous_version = $2, \
         version = version + 1, updated_at = $3, updated_by = $4 WHERE id = $5",
    )
    .bind(&previous)
    .bind(&current.pinned_version)
    .bind(clock::now_ms())
    .bind(by)
    .bind(current.id)
    .execute(&mut *conn)
    .await?;
    announce_change(conn).await?;
    fetch_binding(conn, dealer_id, hook).await
}

/// Turns the kill switch of the dealer's binding for `hook` on (with a reason) or off.
pub async fn set_binding_killed(
    conn: &mut AnyConnection,
    dealer_id: i64,
    hook: Hook,
    killed: bool,
    reason: Option<&str>,
    by: Option<i64>,
) -> Result<Binding> {
    let updated = sqlx::query(
        "UPDATE plugin_bindings SET killed = $1, killed_reason = $2, version = version + 1, \
         updated_at = $3, updated_by = $4 WHERE dealer_id = $5 AND hook = $6",
    )
    .bind(i64::from(killed))
    .bind(reason.filter(|_| killed))
    .bind(clock::now_ms())
    .bind(by)
    .bind(dealer_id)
    .bind(hook.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(not_found("plugin binding"));
    }
    announce_change(conn).await?;
    fetch_binding(conn, dealer_id, hook).await
}

/// Removes the dealer's binding for `hook`; whether there was one.
pub async fn unbind(conn: &mut AnyConnection, dealer_id: i64, hook: Hook) -> Result<bool> {
    let deleted = sqlx::query("DELETE FROM plugin_bindings WHERE dealer_id = $1 AND hook = $2")
        .bind(dealer_id)
        .bind(hook.as_str())
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if deleted > 0 {
        announce_change(conn).await?;
    }
    Ok(deleted > 0)
}

/// Turns the dealer-wide kill switch on (with a reason) or off.
pub async fn set_dealer_killed(
    conn: &mut AnyConnection,
    dealer_id: i64,
    killed: bool,
    reason: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO plugin_dealer_switches (dealer_id, killed, reason, updated_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (dealer_id) DO UPDATE \
         SET killed = excluded.killed, reason = excluded.reason, updated_at = excluded.updated_at",
    )
    .bind(dealer_id)
    .bind(i64::from(killed))
    .bind(reason.filter(|_| killed))
    .bind(clock::now_ms())
    .execute(&mut *conn)
    .await?;
    announce_change(conn).await
}

/// The reason (empty if none was given) when the dealer-wide kill switch is on.
pub async fn dealer_kill(conn: &mut AnyConnection, dealer_id: i64) -> Result<Option<String>> {
    let row: Option<(Option<String>,)> = sqlx::query_as(
        "SELECT reason FROM plugin_dealer_switches WHERE dealer_id = $1 AND killed = 1",
    )
    .bind(dealer_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|(reason,)| reason.unwrap_or_default()))
}

/// What runs for the dealer's `hook`, kill switches included, in one query: the binding, its
/// plugin, the pinned version's artifact and the dealer-wide switch. `None` when the dealer
/// has no plugin for the hook.
pub async fn active(
    conn: &mut AnyConnection,
    dealer_id: i64,
    hook: Hook,
) -> Result<Option<Active>> {
    let row: Option<ActiveRow> = sqlx::query_as(&format!(
        "SELECT {BINDING_COLUMNS}, {PLUGIN_COLUMNS}, v.sha256 AS artifact_sha256, v.wit_version, \
         s.killed AS dealer_killed, s.reason AS dealer_kill_reason \
         FROM plugin_bindings b \
         JOIN plugins p ON p.id = b.plugin_id \
         JOIN plugin_versions v ON v.plugin_id = b.plugin_id AND v.version = b.pinned_version \
         LEFT JOIN plugin_dealer_switches s ON s.dealer_id = b.dealer_id \
         WHERE b.dealer_id = $1 AND b.hook = $2"
    ))
    .bind(dealer_id)
    .bind(hook.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| {
        Ok(Active {
            binding: r.binding.into_binding()?,
            plugin: r.plugin.into_plugin()?,
            artifact_sha256: r.artifact_sha256,
            wit_version: r.wit_version,
            dealer_kill: (r.dealer_killed == Some(1))
                .then(|| r.dealer_kill_reason.unwrap_or_default()),
        })
    })
    .transpose()
}

/// Stores (or replaces) the dealer's secret under `handle`. It is never read back through the
/// API: only [`secret`], for the runtime to attach it to an outbound request.
pub async fn put_secret(
    conn: &mut AnyConnection,
    dealer_id: i64,
    handle: &str,
    secret: &str,
) -> Result<()> {
    let mut errors = Vec::new();
    if !is_valid_handle(handle) {
        errors.push(FieldError::new(
            "handle",
            "invalid_handle",
            "1 to 64 lowercase letters, digits, '.', '_' and '-'",
        ));
    }
    if secret.is_empty() {
        errors.push(FieldError::new(
            "secret",
            "required",
            "secret must not be empty",
        ));
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    sqlx::query(
        "INSERT INTO plugin_secrets (dealer_id, handle, secret, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4) ON CONFLICT (dealer_id, handle) DO UPDATE \
         SET secret = excluded.secret, updated_at = excluded.updated_at",
    )
    .bind(dealer_id)
    .bind(handle)
    .bind(secret)
    .bind(clock::now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The dealer's secret under `handle`, for the runtime only.
pub async fn secret(
    conn: &mut AnyConnection,
    dealer_id: i64,
    handle: &str,
) -> Result<Option<String>> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT secret FROM plugin_secrets WHERE dealer_id = $1 AND handle = $2")
            .bind(dealer_id)
            .bind(handle)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.map(|(s,)| s))
}

/// The handles of the dealer's secrets, sorted.
pub async fn secret_handles(conn: &mut AnyConnection, dealer_id: i64) -> Result<Vec<String>> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT handle FROM plugin_secrets WHERE dealer_id = $1 ORDER BY handle")
            .bind(dealer_id)
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows.into_iter().map(|(h,)| h).collect())
}

/// Removes the dealer's secret under `handle`; whether there was one.
pub async fn delete_secret(conn: &mut AnyConnection, dealer_id: i64, handle: &str) -> Result<bool> {
    let deleted = sqlx::query("DELETE FROM plugin_secrets WHERE dealer_id = $1 AND handle = $2")
        .bind(dealer_id)
        .bind(handle)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(deleted > 0)
}

/// The value under `key` in the plugin's store for the dealer.
pub async fn store_get(
    conn: &mut AnyConnection,
    dealer_id: i64,
    plugin_id: i64,
    key: &str,
) -> Result<Option<Vec<u8>>> {
    let row: Option<(Vec<u8>,)> = sqlx::query_as(
        "SELECT value FROM plugin_store WHERE dealer_id = $1 AND plugin_id = $2 AND key = $3",
    )
    .bind(dealer_id)
    .bind(plugin_id)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|(v,)| v))
}

/// Sets `key` in the plugin's store for the dealer. Quotas are the caller's (see
/// [`store_usage`]).
pub async fn store_put(
    conn: &mut AnyConnection,
    dealer_id: i64,
    plugin_id: i64,
    key: &str,
    value: &[u8],
) -> Result<()> {
    sqlx::query(
        "INSERT INTO plugin_store (dealer_id, plugin_id, key, value, updated_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (dealer_id, plugin_id, key) DO UPDATE \
         SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(dealer_id)
    .bind(plugin_id)
    .bind(key)
    .bind(value.to_vec())
    .bind(clock::now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Removes `key` from the plugin's store for the dealer; whether it was there.
pub async fn store_delete(
    conn: &mut AnyConnection,
    dealer_id: i64,
    plugin_id: i64,
    key: &str,
) -> Result<bool> {
    let deleted = sqlx::query(
        "DELETE FROM plugin_store WHERE dealer_id = $1 AND plugin_id = $2 AND key = $3",
    )
    .bind(dealer_id)
    .bind(plugin_id)
    .bind(key)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(deleted > 0)
}

/// The number of keys in the plugin's store for the dealer and the bytes of their values.
pub async fn store_usage(
    conn: &mut AnyConnection,
    dealer_id: i64,
    plugin_id: i64,
) -> Result<(i64, i64)> {
    let usage: (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(LENGTH(value)), 0) FROM plugin_store \
         WHERE dealer_id = $1 AND plugin_id = $2",
    )
    .bind(dealer_id)
    .bind(plugin_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(usage)
}

/// A plugin's own data in one dealer's runs, for the runtime: its store and the dealer's
/// secrets, read from the tables this module owns.
pub struct StoredData {
    db: Db,
    dealer_id: i64,
    plugin_id: i64,
}

impl StoredData {
    pub fn new(db: Db, dealer_id: i64, plugin_id: i64) -> StoredData {
        StoredData {
            db,
            dealer_id,
            plugin_id,
        }
    }

    async fn read<T>(
        &self,
        what: &str,
        work: impl AsyncFnOnce(&mut AnyConnection) -> Result<T>,
    ) -> Result<T, LookupError> {
        let read = async {
            let mut conn = self.db.pool().acquire().await?;
            work(&mut conn).await
        };
        read.await.map_err(|error| {
            tracing::warn!(%error, dealer = self.dealer_id, plugin = self.plugin_id, "cannot read a plugin's {what}");
            LookupError::Unavailable
        })
    }
}

impl PluginData for StoredData {
    fn store_get(&self, key: String) -> HostFuture<'_, Option<Vec<u8>>> {
        Box::pin(self.read("store", async move |conn| {
            store_get(conn, self.dealer_id, self.plugin_id, &key).await
        }))
    }

    fn store_usage(&self) -> HostFuture<'_, (i64, i64)> {
        Box::pin(self.read("store", async |conn| {
            store_usage(conn, self.dealer_id, self.plugin_id).await
        }))
    }

    fn secret(&self, handle: String) -> HostFuture<'_, Option<String>> {
        Box::pin(self.read("secret", async move |conn| {
            secret(conn, self.dealer_id, &handle).await
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_lowercase_hex_sha256() {
        assert_eq!(
            digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn plugin_names_are_lowercase_slugs() {
        for good in ["ab", "commission-2025", "0x", &"a".repeat(63)] {
            assert!(is_valid_name(good), "{good:?}");
        }
        for bad in ["a", "-ab", "Ab", "a_b", "a b", "佣金", "", &"a".repeat(64)] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn handles_allow_dots_and_underscores() {
        assert!(is_valid_handle("insurer-api_key.v2"));
        assert!(is_valid_handle("k"));
        assert!(!is_valid_handle(".hidden"));
        assert!(!is_valid_handle("Key"));
        assert!(!is_valid_handle(&"k".repeat(HANDLE_MAX + 1)));
    }

    #[test]
    fn grants_default_missing_fields_and_refuse_unknown_ones() {
        let grants: Grants =
            serde_json::from_value(serde_json::json!({ "outbound_hosts": ["a.example"] })).unwrap();
        assert_eq!(
            grants,
            Grants {
                outbound_hosts: vec!["a.example".to_owned()],
                ..Grants::default()
            }
        );
        assert!(serde_json::from_value::<Grants>(serde_json::json!({ "root": true })).is_err());
    }

    #[test]
    fn failure_policies_round_trip_through_text_and_json() {
        for p in FailurePolicy::ALL {
            assert_eq!(FailurePolicy::parse(p.as_str()), Some(p));
            assert_eq!(
                serde_json::to_value(p).unwrap(),
                serde_json::json!(p.as_str())
            );
        }
        assert_eq!(FailurePolicy::parse("fail-closed"), None);
    }
}
