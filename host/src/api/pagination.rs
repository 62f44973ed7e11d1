//! Cursor pagination: `?limit=&cursor=`; the cursor is opaque to clients (it encodes the last
//! id seen), so pages stay stable while rows are added.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{Error, Result};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1 to 200, default 50.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    pub fn limit(&self) -> Result<i64> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(l) if (1..=MAX_LIMIT).contains(&l) => Ok(l),
            Some(_) => Err(Error::BadRequest {
                code: "invalid_limit",
                message: format!("limit must be between 1 and {MAX_LIMIT}"),
            }),
        }
    }

    /// The id to continue below (lists are newest first).
    pub fn before_id(&self) -> Result<Option<i64>> {
        self.cursor_id("before:")
    }

    /// The id to continue above, for the few lists kept in the order they were written
    /// ([`Page::from_rows_oldest_first`]).
    pub fn after_id(&self) -> Result<Option<i64>> {
        self.cursor_id("after:")
    }

    /// How many rows to skip, for the few lists ordered by something other than their id
    /// ([`Page::from_rows_at`]).
    pub fn offset(&self) -> Result<i64> {
        Ok(self.cursor_id("offset:")?.unwrap_or(0))
    }

    fn cursor_id(&self, prefix: &str) -> Result<Option<i64>> {
        let Some(cursor) = &self.cursor else {
            return Ok(None);
        };
        URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix(prefix).and_then(|n| n.parse().ok()))
            .map(Some)
            .ok_or(Error::BadRequest {
                code: "invalid_cursor",
                message: "the cursor is not one this server gave out".into(),
            })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// `rows` were fetched with `LIMIT limit + 1`, newest first; `id` gives a row's id.
    pub fn from_rows(rows: Vec<T>, limit: i64, id: impl Fn(&T) -> i64) -> Self {
        Page::cut(rows, limit, |last| format!("before:{}", id(last)))
    }

    /// `rows` were fetched with `LIMIT limit + 1`, oldest first (see [`PageParams::after_id`]).
    pub fn from_rows_oldest_first(rows: Vec<T>, limit: i64, id: impl Fn(&T) -> i64) -> Self {
        Page::cut(rows, limit, |last| format!("after:{}", id(last)))
    }

    /// `rows` were fetched with `LIMIT limit + 1 OFFSET offset` (see [`PageParams::offset`]).
    pub fn from_rows_at(rows: Vec<T>, limit: i64, offset: i64) -> Self {
        Page::cut(rows, limit, |_| format!("offset:{}", offset + limit))
    }

    fn cut(mut rows: Vec<T>, limit: i64, cursor: impl Fn(&T) -> String) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| URL_SAFE_NO_PAD.encode(cursor(last)))
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}
