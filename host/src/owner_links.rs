//! Links for vehicle owners, who have no account: follow a ticket or a repair, approve extra
//! work, answer a survey. Owns `owner_links`.
//!
//! A link carries a 128-bit random token (32 hex digits, so the whole link fits an SMS); only its SHA-256 digest is stored, so the table
//! cannot be turned back into working links. A link serves one purpose for one record, until
//! it expires; a single-use link is consumed atomically, so two clicks at once act once.

use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, FromRow};
use utoipa::ToSchema;

use crate::clock;
use crate::error::{Error, Result};
use crate::network;

/// What a link lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = OwnerLinkPurpose)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Approve or decline extra repair work (`subject_id`: the approval request).
    ExtraWork,
    /// Follow a repair order (`subject_id`: the repair order).
    RepairProgress,
    /// Follow a ticket (`subject_id`: the ticket).
    TicketStatus,
    /// Answer a survey (`subject_id`: the survey).
    Survey,
    /// Stop marketing (`subject_id`: the message that carried the link).
    OptOut,
    /// Follow a car order until delivery (`subject_id`: the sales order).
    OrderTracking,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::ExtraWork => "extra_work",
            Purpose::RepairProgress => "repair_progress",
            Purpose::TicketStatus => "ticket_status",
            Purpose::Survey => "survey",
            Purpose::OptOut => "opt_out",
            Purpose::OrderTracking => "order_tracking",
        }
    }
}

/// The path of the owner's page for a link: short, since an SMS carries it, and made absolute
/// from the host's public address when a message is sent (`/o/r/…` a repair, `/o/w/…` extra
/// work, `/o/t/…` a ticket, `/o/s/…` a survey, `/o/u/…` an opt-out, `/o/c/…` a car order).
pub fn page(purpose: Purpose, token: &str) -> String {
    let letter = match purpose {
        Purpose::RepairProgress => "r",
        Purpose::ExtraWork => "w",
        Purpose::TicketStatus => "t",
        Purpose::Survey => "s",
        Purpose::OptOut => "u",
        Purpose::OrderTracking => "c",
    };
    format!("/o/{letter}/{token}")
}

/// A link just made: the token is shown here once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Issued {
    pub id: i64,
    pub token: String,
    /// UTC milliseconds.
    pub expires_at: i64,
}

/// A link found by its token.
#[derive(Debug, Clone, FromRow)]
pub struct Link {
    pub id: i64,
    pub dealer_id: i64,
    pub subject_id: i64,
    pub expires_at: i64,
    pub single_use: i64,
    pub used_at: Option<i64>,
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Makes a link for `subject_id`, valid for `ttl_ms` from now.
pub async fn issue(
    conn: &mut AnyConnection,
    dealer_id: i64,
    purpose: Purpose,
    subject_id: i64,
    ttl_ms: i64,
    single_use: bool,
) -> Result<Issued> {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let now = clock::now_ms();
    let expires_at = now.saturating_add(ttl_ms);
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO owner_links (dealer_id, purpose, subject_id, token_hash, expires_at, \
         single_use, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(dealer_id)
    .bind(purpose.as_str())
    .bind(subject_id)
    .bind(digest(&token))
    .bind(expires_at)
    .bind(i64::from(single_use))
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Issued {
        id,
        token,
        expires_at,
    })
}

const USED: &str = "this link was already used; it works once";
const EXPIRED: &str = "this link has expired; ask the dealer for a new one";

/// `code` (410) for a link of `dealer_id`, naming the dealer and its phone number so the owner
/// knows whom to ask for a new one.
pub async fn gone(
    conn: &mut AnyConnection,
    dealer_id: i64,
    code: &'static str,
    message: &str,
) -> Result<Error> {
    let dealer = network::contact(conn, dealer_id).await?;
    Ok(Error::Gone {
        code,
        message: message.to_owned(),
        dealer_name: Some(dealer.name),
        dealer_phone: dealer.phone,
    })
}

/// `link_used` (410) for `link`, with its dealer's contact.
pub async fn used(conn: &mut AnyConnection, link: &Link) -> Result<Error> {
    gone(conn, link.dealer_id, "link_used", USED).await
}

/// The live link for `token`. An unknown token, or one made for another purpose, is
/// `link_not_found` (404); an expired one `link_expired` (410); a used single-use one
/// `link_used` (410); both 410s name the dealer and its phone number.
pub async fn resolve(conn: &mut AnyConnection, purpose: Purpose, token: &str) -> Result<Link> {
    let link: Option<Link> = sqlx::query_as(
        "SELECT id, dealer_id, subject_id, expires_at, single_use, used_at FROM owner_links \
         WHERE token_hash = $1 AND purpose = $2",
    )
    .bind(digest(token.trim()))
    .bind(purpose.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(link) = link else {
        return Err(Error::LinkNotFound);
    };
    if link.single_use != 0 && link.used_at.is_some() {
        return Err(used(conn, &link).await?);
    }
    if link.expires_at <= clock::now_ms() {
        return Err(gone(conn, link.dealer_id, "link_expired", EXPIRED).await?);
    }
    Ok(link)
}

/// Uses a single-use link up. Of two uses at once exactly one succeeds; the other is
/// `link_used` (410). Call it in the transaction that records what the owner did.
pub async fn consume(conn: &mut AnyConnection, link: &Link) -> Result<()> {
    if link.single_use == 0 {
        return Ok(());
    }
    let now = clock::now_ms();
    let done = sqlx::query(
        "UPDATE owner_links SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(link.id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(used(conn, link).await?)
    }
}
