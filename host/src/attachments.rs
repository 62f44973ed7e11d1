//! Files attached to records: check-in and repair photos, trade-in photos, documents. Owns
//! `attachments`; the bytes live in one directory opened as a cap-std [`Dir`], so no path in
//! a request can reach outside it (names are generated here, never taken from a request).
//!
//! An upload is checked before anything is written: not empty, at most [`MAX_BYTES`], and its
//! bytes really of the declared type (JPEG, PNG, WebP or PDF, by their magic numbers). The
//! file is written under a temporary name and renamed into place, and the row is inserted in
//! the caller's transaction; if that insert fails the file is removed, so a refused upload
//! leaves neither a row nor a file.

use std::io;
use std::path::Path;

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, FromRow};
use utoipa::ToSchema;

use crate::access::{Caller, Record};
use crate::clock;
use crate::error::{Error, Result};

/// Largest file accepted, in bytes.
pub const MAX_BYTES: usize = 8 * 1024 * 1024;

/// The types accepted, with the bytes each file of that type starts with.
const TYPES: [(&str, &[u8]); 4] = [
    ("image/jpeg", b"\xFF\xD8\xFF"),
    ("image/png", b"\x89PNG\r\n\x1A\n"),
    ("image/webp", b"RIFF"),
    ("application/pdf", b"%PDF-"),
];

/// The directory attachments are kept in.
pub struct Store {
    dir: Dir,
}

impl Store {
    /// Opens (creating it if needed) the directory at `path`.
    pub fn open(path: &Path) -> io::Result<Store> {
        std::fs::create_dir_all(path)?;
        Ok(Store {
            dir: Dir::open_ambient_dir(path, ambient_authority())?,
        })
    }

    fn write(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let temporary = format!("{name}.part");
        let written = self
            .dir
            .write(&temporary, bytes)
            .and_then(|()| self.dir.rename(&temporary, &self.dir, name));
        if written.is_err() {
            self.dir.remove_file(&temporary).ok();
        }
        written
    }

    fn remove(&self, name: &str) {
        if let Err(e) = self.dir.remove_file(name) {
            tracing::warn!(error = %e, file = name, "could not remove an attachment file");
        }
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        self.dir.read(name)
    }
}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Attachment {
    pub id: i64,
    pub dealer_id: i64,
    /// The kind of record it belongs to (`repair_order`, `trade_in`, ...).
    pub owner_kind: String,
    pub owner_id: i64,
    pub content_type: String,
    pub size_bytes: i64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    pub caption: Option<String>,
    /// The key that uploaded it.
    pub uploaded_by: Option<i64>,
    /// UTC milliseconds.
    pub created_at: i64,
}

const COLUMNS: &str = "id, dealer_id, owner_kind, owner_id, content_type, size_bytes, sha256, \
                       caption, uploaded_by, created_at";

/// Refuses what may not be stored, naming the fix.
fn check(content_type: &str, bytes: &[u8]) -> Result<&'static str> {
    if bytes.is_empty() {
        return Err(Error::invalid(
            "body",
            "empty_file",
            "the upload is empty; send the file's bytes as the request body",
        ));
    }
    if bytes.len() > MAX_BYTES {
        return Err(Error::PayloadTooLarge { limit: MAX_BYTES });
    }
    let declared = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let accepted = TYPES.map(|(t, _)| t).join(", ");
    let Some((kind, magic)) = TYPES.into_iter().find(|(t, _)| *t == declared) else {
        return Err(Error::UnsupportedUpload(format!(
            "files of type `{declared}` are not accepted; send one of {accepted} with its Content-Type"
        )));
    };
    let webp = kind != "image/webp" || bytes.get(8..12) == Some(b"WEBP");
    if !bytes.starts_with(magic) || !webp {
        return Err(Error::UnsupportedUpload(format!(
            "the bytes are not a {kind} file although the Content-Type says so; send one of {accepted}"
        )));
    }
    Ok(kind)
}

/// Stores `bytes` as an attachment of `owner_kind` record `owner_id` of `dealer_id`. The
/// caller has checked that it may change that record.
#[allow(clippy::too_many_arguments)]
pub async fn save(
    conn: &mut AnyConnection,
    store: &Store,
    dealer_id: i64,
    owner_kind: &str,
    owner_id: i64,
    content_type: &str,
    bytes: &[u8],
    caption: Option<&str>,
    caller: &Caller,
) -> Result<Attachment> {
    let kind = check(content_type, bytes)?;
    if caption.is_some_and(|c| c.chars().count() > 200) {
        return Err(Error::invalid(
            "caption",
            "too_long",
            "a caption has at most 200 characters",
        ));
    }
    let name = uuid::Uuid::new_v4().simple().to_string();
    store.write(&name, bytes).map_err(|e| {
        tracing::error!(error = %e, "could not write an attachment");
        Error::Conflict {
            code: "storage_unavailable",
            message: "the file could not be stored; nothing was kept, try again".to_owned(),
        }
    })?;
    let row: std::result::Result<Attachment, sqlx::Error> = sqlx::query_as(&format!(
        "INSERT INTO attachments (dealer_id, owner_kind, owner_id, content_type, size_bytes, \
         sha256, storage_name, caption, uploaded_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
    ))
    .bind(dealer_id)
    .bind(owner_kind)
    .bind(owner_id)
    .bind(kind)
    .bind(bytes.len() as i64)
    .bind(hex::encode(Sha256::digest(bytes)))
    .bind(&name)
    .bind(caption)
    .bind(caller.key_id)
    .bind(clock::now_ms())
    .fetch_one(&mut *conn)
    .await;
    row.map_err(|e| {
        store.remove(&name);
        e.into()
    })
}

/// The attachments of one record, oldest first.
pub async fn list(
    conn: &mut AnyConnection,
    owner_kind: &str,
    owner_id: i64,
) -> Result<Vec<Attachment>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM attachments WHERE owner_kind = $1 AND owner_id = $2 ORDER BY id"
    ))
    .bind(owner_kind)
    .bind(owner_id)
    .fetch_all(&mut *conn)
    .await?)
}

/// An attachment with its bytes, if the caller's scope holds its dealer.
pub async fn read(
    conn: &mut AnyConnection,
    store: &Store,
    caller: &Caller,
    id: i64,
) -> Result<(Attachment, Vec<u8>)> {
    crate::access::owning_dealer(conn, caller, Record::Attachment, id).await?;
    read_if(conn, store, id, |_| true).await
}

/// Attachment `id` with its bytes, if `belongs` says it is one of the record a caller reached
/// otherwise than by scope (an owner's link); any other is not found, and its file not read.
pub async fn read_if(
    conn: &mut AnyConnection,
    store: &Store,
    id: i64,
    belongs: impl FnOnce(&Attachment) -> bool,
) -> Result<(Attachment, Vec<u8>)> {
    #[derive(FromRow)]
    struct Stored {
        #[sqlx(flatten)]
        attachment: Attachment,
        storage_name: String,
    }
    let not_found = Error::NotFound {
        entity: "attachment",
    };
    let stored: Option<Stored> = sqlx::query_as(&format!(
        "SELECT {COLUMNS}, storage_name FROM attachments WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(Stored {
        attachment,
        storage_name: name,
    }) = stored.filter(|s| belongs(&s.attachment))
    else {
        return Err(not_found);
    };
    let bytes = store.read(&name).map_err(|e| {
        tracing::error!(error = %e, id, "an attachment's file is missing");
        not_found
    })?;
    Ok((attachment, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_whose_bytes_match_their_declared_type_pass() {
        assert_eq!(
            check("image/jpeg", b"\xFF\xD8\xFF\xE0rest").unwrap(),
            "image/jpeg"
        );
        assert_eq!(
            check("image/png; q=1", b"\x89PNG\r\n\x1A\nrest").unwrap(),
            "image/png"
        );
        assert_eq!(
            check("image/webp", b"RIFF\0\0\0\0WEBPVP8 ").unwrap(),
            "image/webp"
        );
        assert!(matches!(
            check("image/webp", b"RIFF\0\0\0\0WAVEfmt "),
            Err(Error::UnsupportedUpload(_))
        ));
        assert!(matches!(
            check("image/png", b"\xFF\xD8\xFF\xE0"),
            Err(Error::UnsupportedUpload(_))
        ));
        assert!(matches!(
            check("text/html", b"<html>"),
            Err(Error::UnsupportedUpload(_))
        ));
        assert!(matches!(check("image/jpeg", b""), Err(Error::Invalid(_))));
        let big = vec![0xFF; MAX_BYTES + 1];
        assert!(matches!(
            check("image/jpeg", &big),
            Err(Error::PayloadTooLarge { .. })
        ));
    }
}
