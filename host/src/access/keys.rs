//! API keys: `dk_<prefix>_<secret>`. The prefix identifies the key (and is safe to log); only
//! a SHA-256 digest of the whole key is stored, and the key itself is shown once, at creation.
//!
//! SHA-256 rather than a password hash (argon2): the secret is 256 random bits, so there is
//! nothing to brute-force, and a slow hash would cost every request tens of milliseconds.

use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, FromRow};
use utoipa::ToSchema;

use super::{Caller, Position, Role};
use crate::clock;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyInfo {
    pub id: i64,
    /// Public part of the key, safe to show and log.
    pub prefix: String,
    pub role: Role,
    pub org_unit_id: i64,
    pub staff_id: Option<i64>,
    pub label: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A freshly created key: the only time `key` is ever available.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NewApiKey {
    #[serde(flatten)]
    pub info: ApiKeyInfo,
    /// The secret key. Store it now: it is not shown again.
    pub key: String,
}

#[derive(FromRow)]
struct KeyRow {
    id: i64,
    prefix: String,
    role: String,
    org_unit_id: i64,
    staff_id: Option<i64>,
    label: String,
    created_at: i64,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
}

impl KeyRow {
    fn into_info(self) -> ApiKeyInfo {
        ApiKeyInfo {
            id: self.id,
            prefix: self.prefix,
            role: Role::parse(&self.role).unwrap_or(Role::Partner),
            org_unit_id: self.org_unit_id,
            staff_id: self.staff_id,
            label: self.label,
            created_at: clock::to_datetime(self.created_at),
            revoked_at: clock::opt_datetime(self.revoked_at),
            last_used_at: clock::opt_datetime(self.last_used_at),
        }
    }
}

const KEY_COLUMNS: &str = "k.id, k.prefix, k.role, k.org_unit_id, k.staff_id, k.label, k.created_at, k.revoked_at, k.last_used_at";
/// The same columns, unqualified, for `RETURNING`.
const RETURNED: &str =
    "id, prefix, role, org_unit_id, staff_id, label, created_at, revoked_at, last_used_at";

/// The SHA-256 digest stored for a secret (a key, a session token).
pub(super) fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// `bytes` random bytes as hex.
pub(super) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Creates a key for `role` at network unit `org_unit_id`. The caller has checked permission.
pub async fn create(
    conn: &mut AnyConnection,
    role: Role,
    org_unit_id: i64,
    staff_id: Option<i64>,
    label: &str,
) -> Result<NewApiKey> {
    let kind: Option<(String,)> = sqlx::query_as("SELECT kind FROM org_units WHERE id = $1")
        .bind(org_unit_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some((kind,)) = kind else {
        return Err(Error::invalid(
            "org_unit_id",
            "unknown_org_unit",
            "no such network unit",
        ));
    };
    if !role.fits_unit(&kind) {
        return Err(Error::invalid(
            "role",
            "role_does_not_fit_unit",
            format!(
                "a {} key cannot be attached to a {kind} unit",
                role.as_str()
            ),
        ));
    }
    let prefix = random_hex(4);
    let key = format!("dk_{prefix}_{}", random_hex(32));
    let row: KeyRow = sqlx::query_as(&format!(
        "INSERT INTO api_keys (prefix, secret_hash, role, org_unit_id, staff_id, label, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {RETURNED}"
    ))
    .bind(&prefix)
    .bind(digest(&key))
    .bind(role.as_str())
    .bind(org_unit_id)
    .bind(staff_id)
    .bind(label)
    .bind(clock::now_ms())
    .fetch_one(&mut *conn)
    .await?;
    Ok(NewApiKey {
        info: row.into_info(),
        key,
    })
}

/// Keys attached anywhere in the caller's subtree.
pub async fn list(conn: &mut AnyConnection, caller: &Caller) -> Result<Vec<ApiKeyInfo>> {
    let rows: Vec<KeyRow> = sqlx::query_as(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys k JOIN org_units o ON o.id = k.org_unit_id \
         WHERE o.path LIKE $1 ORDER BY k.id"
    ))
    .bind(format!("{}%", caller.org_path))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(KeyRow::into_info).collect())
}

/// The partner keys that are not revoked (the partners dealers may grant to), oldest first.
pub async fn active_partners(conn: &mut AnyConnection) -> Result<Vec<ApiKeyInfo>> {
    let rows: Vec<KeyRow> = sqlx::query_as(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.role = $1 AND k.revoked_at IS NULL ORDER BY k.id"
    ))
    .bind(Role::Partner.as_str())
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(KeyRow::into_info).collect())
}

/// All keys, for the operator's command line.
pub async fn list_all(conn: &mut AnyConnection) -> Result<Vec<ApiKeyInfo>> {
    let rows: Vec<KeyRow> = sqlx::query_as(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys k ORDER BY k.id"
    ))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(KeyRow::into_info).collect())
}

/// Revokes a key by id or prefix. `within` limits it to a subtree (`None`: the operator's CLI).
pub async fn revoke(
    conn: &mut AnyConnection,
    id_or_prefix: &str,
    within: Option<&Caller>,
) -> Result<ApiKeyInfo> {
    let path = within
        .map(|c| format!("{}%", c.org_path))
        .unwrap_or_else(|| "%".into());
    let row: Option<KeyRow> = sqlx::query_as(&format!(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) \
         WHERE (CAST(id AS TEXT) = $2 OR prefix = $2) \
           AND org_unit_id IN (SELECT id FROM org_units WHERE path LIKE $3) \
         RETURNING {RETURNED}"
    ))
    .bind(clock::now_ms())
    .bind(id_or_prefix)
    .bind(path)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(KeyRow::into_info)
        .ok_or(Error::NotFound { entity: "api key" })
}

/// Resolves a presented key to its caller; revoked and unknown keys are refused alike.
pub async fn authenticate(conn: &mut AnyConnection, presented: &str) -> Result<Caller> {
    let refused = Error::Unauthenticated("the API key is unknown or revoked");
    let mut parts = presented.splitn(3, '_');
    let (Some("dk"), Some(prefix), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Error::Unauthenticated(
            "an API key looks like dk_<prefix>_<secret>",
        ));
    };
    #[derive(FromRow)]
    struct AuthRow {
        id: i64,
        secret_hash: String,
        role: String,
        org_unit_id: i64,
        staff_id: Option<i64>,
        last_used_at: Option<i64>,
        kind: String,
        path: String,
        position: Option<String>,
    }
    let row: Option<AuthRow> = sqlx::query_as(
        "SELECT k.id, k.secret_hash, k.role, k.org_unit_id, k.staff_id, k.last_used_at, o.kind, o.path, \
         s.position \
         FROM api_keys k JOIN org_units o ON o.id = k.org_unit_id \
         LEFT JOIN staff s ON s.id = k.staff_id \
         WHERE k.prefix = $1 AND k.revoked_at IS NULL",
    )
    .bind(prefix)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Err(refused) };
    if row.secret_hash != digest(presented) {
        return Err(refused);
    }
    let Some(role) = Role::parse(&row.role) else {
        return Err(refused);
    };
    let now = clock::now_ms();
    // Recorded at minute granularity: a write per request would serialise SQLite readers.
    if row.last_used_at.is_none_or(|t| now - t > 60_000) {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(row.id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(Caller {
        key_id: row.id,
        role,
        org_id: row.org_unit_id,
        org_kind: row.kind,
        org_path: row.path,
        staff_id: row.staff_id,
        position: row.position.as_deref().and_then(Position::parse),
    })
}
