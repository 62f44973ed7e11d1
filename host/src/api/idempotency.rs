//! Creates that may be retried safely. The key is claimed in the same transaction as the
//! create, so either both are stored or neither; a concurrent retry with the same key waits
//! for the first to finish (unique index) and then replays its answer.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;

use super::extract::{IdempotencyKey, etag};
use crate::access::Caller;
use crate::clock;
use crate::db::{Db, Tx};
use crate::error::{Error, Result};
use crate::model::Versioned;

/// The write transaction of a create, with the idempotency key it claimed (if any).
pub struct Create {
    tx: Tx,
    claim: Option<(i64, String)>,
}

pub enum Begun {
    Fresh(Create),
    /// The same request was already answered: here is that answer again.
    Replayed(Response),
}

impl Create {
    /// Starts a create. `request` is the parsed body; the same key with a different body is
    /// refused rather than silently answered with another record.
    pub async fn begin(
        db: &Db,
        caller: &Caller,
        route: &str,
        IdempotencyKey(key): IdempotencyKey,
        request: &impl Serialize,
    ) -> Result<Begun> {
        let mut tx = db.begin_write().await?;
        let Some(key) = key else {
            return Ok(Begun::Fresh(Create { tx, claim: None }));
        };
        let mut hasher = Sha256::new();
        hasher.update(route.as_bytes());
        hasher.update(serde_json::to_vec(request).unwrap_or_default());
        let hash = hex::encode(hasher.finalize());
        let claimed = sqlx::query(
            "INSERT INTO idempotency_keys (api_key_id, idem_key, request_hash, status, response, created_at) \
             VALUES ($1, $2, $3, 0, '', $4) ON CONFLICT (api_key_id, idem_key) DO NOTHING",
        )
        .bind(caller.key_id)
        .bind(&key)
        .bind(&hash)
        .bind(clock::now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 1 {
            return Ok(Begun::Fresh(Create {
                tx,
                claim: Some((caller.key_id, key)),
            }));
        }
        let (stored_hash, status, response): (String, i64, String) = sqlx::query_as(
            "SELECT request_hash, status, response FROM idempotency_keys WHERE api_key_id = $1 AND idem_key = $2",
        )
        .bind(caller.key_id)
        .bind(&key)
        .fetch_one(&mut *tx)
        .await?;
        tx.rollback().await?;
        if stored_hash != hash {
            return Err(Error::IdempotencyKeyReused);
        }
        let body: serde_json::Value = serde_json::from_str(&response).unwrap_or_default();
        let mut headers = HeaderMap::new();
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
        if let Some(v) = body.get("version").and_then(|v| v.as_i64()) {
            headers.insert(header::ETAG, etag(v));
        }
        let status = u16::try_from(status)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok());
        Ok(Begun::Replayed(
            (
                status.unwrap_or(StatusCode::CREATED),
                headers,
                axum::Json(body),
            )
                .into_response(),
        ))
    }

    pub fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    /// Stores the answer with the key, commits, and answers 201 with Location and ETag.
    pub async fn created<T: Serialize + Versioned>(
        mut self,
        location: String,
        record: &T,
    ) -> Result<Response> {
        let body = serde_json::to_string(record).unwrap_or_default();
        if let Some((key_id, key)) = &self.claim {
            sqlx::query("UPDATE idempotency_keys SET status = 201, response = $1 WHERE api_key_id = $2 AND idem_key = $3")
                .bind(&body)
                .bind(key_id)
                .bind(key)
                .execute(&mut *self.tx)
                .await?;
        }
        self.tx.commit().await?;
        let mut headers = HeaderMap::new();
        headers.insert(header::ETAG, etag(record.version()));
        if let Ok(v) = HeaderValue::from_str(&location) {
            headers.insert(header::LOCATION, v);
        }
        Ok((StatusCode::CREATED, headers, axum::Json(record)).into_response())
    }
}
