//! Staff sign-in for the console: logins (username or mobile number, an argon2id password
//! hash), server-side sessions and the throttling of failed attempts. Owns `staff_logins`,
//! `sessions` and `login_failures`.
//!
//! A login acts through an API key of its own, made with it and never shown, so a session's
//! [`Caller`] is the same as a key's for that person: same role, position, scope, audit trail
//! and idempotency keys. Revoking that key, disabling the login or changing its password ends
//! every session of it.
//!
//! Passwords are hashed on a blocking thread (argon2id is slow on purpose) and never logged;
//! a session's token is 256 random bits stored as a SHA-256 digest, like a key.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, Params};
use rand::RngCore;
use serde::Serialize;
use sqlx::{AnyConnection, FromRow};
use utoipa::ToSchema;

use super::keys::{self, digest, random_hex};
use super::{Caller, Position, Role};
use crate::clock;
use crate::db::Db;
use crate::error::{Error, Result};

/// Consecutive wrong passwords after which a login is locked.
pub const MAX_FAILURES: i64 = 5;
/// How long a locked login (or address) stays locked.
pub const LOCK_MS: i64 = 15 * 60 * 1000;
/// Failed sign-ins from one address, over [`LOCK_MS`], after which it is refused.
pub const MAX_ADDRESS_FAILURES: i64 = 20;
/// A session unused this long has ended.
pub const IDLE_MS: i64 = 2 * 60 * 60 * 1000;
/// A session ends this long after sign-in, however busy.
pub const LIFETIME_MS: i64 = 12 * 60 * 60 * 1000;
/// The extra wait of a failed attempt per earlier consecutive failure (at most four).
const SLOWDOWN_MS: u64 = 250;

/// The console's view of a login.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StaffLogin {
    pub staff_id: i64,
    pub username: String,
    /// Whether a password is set (a login without one cannot sign in).
    pub has_password: bool,
    pub disabled_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Set while the login is locked after repeated wrong passwords.
    pub locked_until: Option<chrono::DateTime<chrono::Utc>>,
    pub last_login_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(FromRow)]
struct LoginRow {
    staff_id: i64,
    username: String,
    password_hash: String,
    disabled_at: Option<i64>,
    locked_until: Option<i64>,
    last_login_at: Option<i64>,
    created_at: i64,
}

impl LoginRow {
    fn into_login(self) -> StaffLogin {
        let now = clock::now_ms();
        StaffLogin {
            staff_id: self.staff_id,
            username: self.username,
            has_password: !self.password_hash.is_empty(),
            disabled_at: clock::opt_datetime(self.disabled_at),
            locked_until: clock::opt_datetime(self.locked_until.filter(|t| *t > now)),
            last_login_at: clock::opt_datetime(self.last_login_at),
            created_at: clock::to_datetime(self.created_at),
        }
    }
}

const LOGIN_COLUMNS: &str =
    "staff_id, username, password_hash, disabled_at, locked_until, last_login_at, created_at";

/// A username is 3 to 64 of `a-z 0-9 . _ -`, stored lower-case.
pub fn check_username(username: &str) -> Result<String> {
    let name = username.trim().to_lowercase();
    let fits = (3..=64).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if fits {
        Ok(name)
    } else {
        Err(Error::invalid(
            "username",
            "invalid_username",
            "a username is 3 to 64 letters, digits, dots, dashes or underscores",
        ))
    }
}

/// A password is 8 to 128 characters and not the username.
pub fn check_password(password: &str, username: &str) -> Result<()> {
    let length = password.chars().count();
    if !(8..=128).contains(&length) {
        return Err(Error::invalid(
            "password",
            "weak_password",
            "a password is 8 to 128 characters",
        ));
    }
    if password.eq_ignore_ascii_case(username) {
        return Err(Error::invalid(
            "password",
            "weak_password",
            "the password must not be the username",
        ));
    }
    Ok(())
}

fn argon2() -> Argon2<'static> {
    Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        Params::default(),
    )
}

/// The argon2id hash (PHC string) of `password`, computed on a blocking thread.
pub async fn hash_password(password: &str) -> String {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).expect("16 bytes make a valid salt");
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .expect("argon2id hashes any password of at most 128 characters")
    })
    .await
    .expect("hashing does not panic")
}

/// Whether `password` matches `hash` (false for an empty or malformed hash), on a blocking
/// thread. An unknown login is checked against a throw-away hash, so its answer takes as long.
async fn verify_password(hash: Option<String>, password: &str) -> bool {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let hash = hash.filter(|h| !h.is_empty());
        let stand_in;
        let presented = match &hash {
            Some(h) => h.as_str(),
            None => {
                stand_in = argon2()
                    .hash_password(b"no such login", &SaltString::encode_b64(&[0; 16]).ok()?)
                    .ok()?
                    .to_string();
                stand_in.as_str()
            }
        };
        let parsed = PasswordHash::new(presented).ok()?;
        let matches = argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Some(matches && hash.is_some())
    })
    .await
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// The login of staff member `staff_id`, if one was made.
pub async fn find(conn: &mut AnyConnection, staff_id: i64) -> Result<Option<StaffLogin>> {
    let row: Option<LoginRow> = sqlx::query_as(&format!(
        "SELECT {LOGIN_COLUMNS} FROM staff_logins WHERE staff_id = $1"
    ))
    .bind(staff_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(LoginRow::into_login))
}

/// Creates or changes the login of `staff_id` (of `role` at `org_unit_id`): its username, and
/// its password hash when one is given (`None` keeps the current one, or none for a new login).
/// A new password, or a login taken back from disabled, unlocks it and ends its sessions.
/// The caller has checked who may and audits it.
pub async fn set(
    conn: &mut AnyConnection,
    staff_id: i64,
    role: Role,
    org_unit_id: i64,
    username: &str,
    password_hash: Option<&str>,
) -> Result<StaffLogin> {
    let taken: Option<(i64,)> =
        sqlx::query_as("SELECT staff_id FROM staff_logins WHERE username = $1 AND staff_id <> $2")
            .bind(username)
            .bind(staff_id)
            .fetch_optional(&mut *conn)
            .await?;
    if taken.is_some() {
        return Err(Error::Conflict {
            code: "username_taken",
            message: format!("the username {username} belongs to another login"),
        });
    }
    let now = clock::now_ms();
    let existing = find(conn, staff_id).await?;
    if existing.is_none() {
        let key = keys::create(conn, role, org_unit_id, Some(staff_id), "console sign-in").await?;
        sqlx::query(
            "INSERT INTO staff_logins (staff_id, username, password_hash, api_key_id, created_at) \
             VALUES ($1, $2, '', $3, $4)",
        )
        .bind(staff_id)
        .bind(username)
        .bind(key.info.id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("UPDATE staff_logins SET username = $1, disabled_at = NULL WHERE staff_id = $2")
        .bind(username)
        .bind(staff_id)
        .execute(&mut *conn)
        .await?;
    if let Some(hash) = password_hash {
        sqlx::query(
            "UPDATE staff_logins SET password_hash = $1, password_changed_at = $2, \
             failed_count = 0, locked_until = NULL WHERE staff_id = $3",
        )
        .bind(hash)
        .bind(now)
        .bind(staff_id)
        .execute(&mut *conn)
        .await?;
        end_sessions(conn, staff_id, None).await?;
    }
    find(conn, staff_id)
        .await?
        .ok_or(Error::NotFound { entity: "login" })
}

/// Disables the login of `staff_id` and ends its sessions.
pub async fn disable(conn: &mut AnyConnection, staff_id: i64) -> Result<StaffLogin> {
    let done = sqlx::query(
        "UPDATE staff_logins SET disabled_at = COALESCE(disabled_at, $1) WHERE staff_id = $2",
    )
    .bind(clock::now_ms())
    .bind(staff_id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound { entity: "login" });
    }
    end_sessions(conn, staff_id, None).await?;
    find(conn, staff_id)
        .await?
        .ok_or(Error::NotFound { entity: "login" })
}

/// Ends every session of `staff_id` but `keep` (the one changing its own password).
async fn end_sessions(conn: &mut AnyConnection, staff_id: i64, keep: Option<i64>) -> Result<()> {
    sqlx::query(
        "UPDATE sessions SET revoked_at = $1 WHERE staff_id = $2 AND revoked_at IS NULL \
         AND id <> $3",
    )
    .bind(clock::now_ms())
    .bind(staff_id)
    .bind(keep.unwrap_or(0))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A session just opened: the only time its token is available.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub csrf_token: String,
    pub expires_at: i64,
    pub staff_id: i64,
}

#[derive(FromRow)]
struct Candidate {
    staff_id: i64,
    password_hash: String,
    failed_count: i64,
    locked_until: Option<i64>,
    /// Not disabled, the staff member active, the login's key not revoked.
    usable: i64,
}

/// Signs in with a username or the staff member's mobile number. Wrong credentials are
/// [`Error::SignInFailed`], the same for an unknown login, a disabled one and a wrong
/// password, answered slower after each consecutive failure; after [`MAX_FAILURES`] of them
/// the login is locked for [`LOCK_MS`] ([`Error::SignInLocked`], even with the right
/// password), and so is an address after [`MAX_ADDRESS_FAILURES`]. No connection is held
/// while the password is checked or a failure waits.
pub async fn sign_in(db: &Db, login: &str, password: &str, address: &str) -> Result<NewSession> {
    let now = clock::now_ms();
    let name = login.trim().to_lowercase();
    let candidate = {
        let mut conn = db.pool().acquire().await?;
        let (address_failures, first): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(at) FROM login_failures WHERE address = $1 AND at > $2",
        )
        .bind(address)
        .bind(now - LOCK_MS)
        .fetch_one(&mut *conn)
        .await?;
        if address_failures >= MAX_ADDRESS_FAILURES {
            let until = first.unwrap_or(now) + LOCK_MS;
            return Err(Error::SignInLocked {
                retry_after_seconds: seconds_until(until, now),
            });
        }
        let candidate: Option<Candidate> = sqlx::query_as(
            "SELECT l.staff_id, l.password_hash, l.failed_count, l.locked_until, \
             CAST(CASE WHEN l.disabled_at IS NULL AND s.active = 1 AND k.revoked_at IS NULL \
             THEN 1 ELSE 0 END AS BIGINT) AS usable \
             FROM staff_logins l JOIN staff s ON s.id = l.staff_id \
             JOIN api_keys k ON k.id = l.api_key_id \
             WHERE l.username = $1 OR s.phone = $1 \
             ORDER BY CASE WHEN l.username = $1 THEN 0 ELSE 1 END LIMIT 1",
        )
        .bind(&name)
        .fetch_optional(&mut *conn)
        .await?;
        candidate
    };
    if let Some(until) = candidate
        .as_ref()
        .and_then(|c| c.locked_until)
        .filter(|t| *t > now)
    {
        return Err(Error::SignInLocked {
            retry_after_seconds: seconds_until(until, now),
        });
    }
    let hash = candidate
        .as_ref()
        .filter(|c| c.usable == 1)
        .map(|c| c.password_hash.clone());
    let matches = verify_password(hash, password).await;
    let mut tx = db.begin_write().await?;
    let candidate = match candidate {
        Some(candidate) if matches => candidate,
        other => {
            let (error, wait) = fail(&mut tx, other.as_ref(), address, now).await?;
            tx.commit().await?;
            tokio::time::sleep(wait).await;
            return Err(error);
        }
    };
    sqlx::query(
        "UPDATE staff_logins SET failed_count = 0, locked_until = NULL, last_login_at = $1 \
         WHERE staff_id = $2",
    )
    .bind(now)
    .bind(candidate.staff_id)
    .execute(&mut *tx)
    .await?;
    let session = NewSession {
        token: format!("ds_{}", random_hex(32)),
        csrf_token: random_hex(32),
        expires_at: now + LIFETIME_MS,
        staff_id: candidate.staff_id,
    };
    sqlx::query(
        "INSERT INTO sessions (token_hash, csrf_token, staff_id, address, created_at, last_seen_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $5, $6)",
    )
    .bind(digest(&session.token))
    .bind(&session.csrf_token)
    .bind(session.staff_id)
    .bind(address)
    .bind(now)
    .bind(session.expires_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(session)
}

/// Counts a failed attempt against the login (if there is one) and the address; answers the
/// error to give and how long to wait before giving it.
async fn fail(
    conn: &mut AnyConnection,
    login: Option<&Candidate>,
    address: &str,
    now: i64,
) -> Result<(Error, std::time::Duration)> {
    sqlx::query("DELETE FROM login_failures WHERE at < $1")
        .bind(now - LOCK_MS)
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO login_failures (address, at) VALUES ($1, $2)")
        .bind(address)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    let earlier = login.map_or(0, |c| c.failed_count);
    if let Some(login) = login {
        let failed = login.failed_count + 1;
        let locked_until = (failed >= MAX_FAILURES).then_some(now + LOCK_MS);
        sqlx::query(
            "UPDATE staff_logins SET failed_count = $1, locked_until = $2 WHERE staff_id = $3",
        )
        .bind(if locked_until.is_some() { 0 } else { failed })
        .bind(locked_until)
        .bind(login.staff_id)
        .execute(&mut *conn)
        .await?;
        if let Some(until) = locked_until {
            let error = Error::SignInLocked {
                retry_after_seconds: seconds_until(until, now),
            };
            return Ok((error, std::time::Duration::ZERO));
        }
    }
    let wait = SLOWDOWN_MS * u64::try_from(earlier.clamp(0, 4)).unwrap_or(0);
    Ok((Error::SignInFailed, std::time::Duration::from_millis(wait)))
}

fn seconds_until(until: i64, now: i64) -> u64 {
    u64::try_from((until - now + 999) / 1000)
        .unwrap_or(1)
        .max(1)
}

/// A signed-in caller: who they are and what their writes must carry.
#[derive(Debug, Clone)]
pub struct SessionCaller {
    pub caller: Caller,
    pub session_id: i64,
    pub csrf_token: String,
    pub expires_at: i64,
}

/// Resolves a session token to its caller; an unknown, ended, idle or revoked session, a
/// disabled login or a revoked login key are refused alike.
pub async fn authenticate(conn: &mut AnyConnection, token: &str) -> Result<SessionCaller> {
    #[derive(FromRow)]
    struct SessionRow {
        id: i64,
        csrf_token: String,
        expires_at: i64,
        last_seen_at: i64,
        key_id: i64,
        role: String,
        org_unit_id: i64,
        staff_id: i64,
        kind: String,
        path: String,
        position: Option<String>,
    }
    let now = clock::now_ms();
    let row: Option<SessionRow> = sqlx::query_as(
        "SELECT se.id, se.csrf_token, se.expires_at, se.last_seen_at, k.id AS key_id, s.role, \
         s.org_unit_id, s.id AS staff_id, o.kind, o.path, s.position \
         FROM sessions se JOIN staff_logins l ON l.staff_id = se.staff_id \
         JOIN staff s ON s.id = se.staff_id JOIN api_keys k ON k.id = l.api_key_id \
         JOIN org_units o ON o.id = s.org_unit_id \
         WHERE se.token_hash = $1 AND se.revoked_at IS NULL AND se.expires_at > $2 \
           AND se.last_seen_at > $3 AND l.disabled_at IS NULL AND k.revoked_at IS NULL \
           AND s.active = 1",
    )
    .bind(digest(token))
    .bind(now)
    .bind(now - IDLE_MS)
    .fetch_optional(&mut *conn)
    .await?;
    let refused = Error::Unauthenticated("your session has ended; sign in again");
    let Some(row) = row else { return Err(refused) };
    let Some(role) = Role::parse(&row.role) else {
        return Err(refused);
    };
    // Recorded at minute granularity, as a key's last use is.
    if now - row.last_seen_at > 60_000 {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
            .bind(now)
            .bind(row.id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(SessionCaller {
        caller: Caller {
            key_id: row.key_id,
            role,
            org_id: row.org_unit_id,
            org_kind: row.kind,
            org_path: row.path,
            staff_id: Some(row.staff_id),
            position: row.position.as_deref().and_then(Position::parse),
        },
        session_id: row.id,
        csrf_token: row.csrf_token,
        expires_at: row.expires_at,
    })
}

/// Ends the session of `token` (logout); an already ended one is no error.
pub async fn sign_out(conn: &mut AnyConnection, token: &str) -> Result<()> {
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL")
        .bind(clock::now_ms())
        .bind(digest(token))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Checks `password` against the stored hash of `staff_id`'s login.
pub async fn check_current(db: &Db, staff_id: i64, password: &str) -> Result<()> {
    let hash: Option<(String,)> = {
        let mut conn = db.pool().acquire().await?;
        sqlx::query_as("SELECT password_hash FROM staff_logins WHERE staff_id = $1")
            .bind(staff_id)
            .fetch_optional(&mut *conn)
            .await?
    };
    if verify_password(hash.map(|(h,)| h), password).await {
        Ok(())
    } else {
        Err(Error::invalid(
            "current_password",
            "wrong_password",
            "the current password is wrong",
        ))
    }
}

/// Stores the signed-in person's new password hash; every other session of theirs ends, this
/// one goes on.
pub async fn store_own_password(
    conn: &mut AnyConnection,
    session: &SessionCaller,
    new_hash: &str,
) -> Result<()> {
    let staff_id = session.caller.staff_id.unwrap_or_default();
    sqlx::query(
        "UPDATE staff_logins SET password_hash = $1, password_changed_at = $2 WHERE staff_id = $3",
    )
    .bind(new_hash)
    .bind(clock::now_ms())
    .bind(staff_id)
    .execute(&mut *conn)
    .await?;
    end_sessions(conn, staff_id, Some(session.session_id)).await
}

/// The staff id holding username `username`, for the operator's command line.
pub async fn staff_of_username(conn: &mut AnyConnection, username: &str) -> Result<Option<i64>> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT staff_id FROM staff_logins WHERE username = $1")
            .bind(username.trim().to_lowercase())
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.map(|(s,)| s))
}
