//! Integration partners and what dealers let them do. Owns `partner_grants`.
//!
//! A partner is an HQ key of role `partner`. It acts for a dealer (and the dealer's branches)
//! only on a purpose that dealer granted it and has not revoked: [`dealer_of_customer`] is the
//! check every partner-facing use case runs. Anything else is answered exactly like a customer
//! that does not exist, so a partner cannot learn which customer ids exist. A grant is the
//! dealer's consent: who granted it and when, and who revoked it and when, are kept, and both
//! acts are audited.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow};
use utoipa::ToSchema;

use crate::access::keys;
use crate::access::{self, Caller, Role};
use crate::audit::{self, Actor, Entry};
use crate::clock;
use crate::customers;
use crate::db::decode;
use crate::error::{Error, Result, is_unique_violation};

/// What a dealer may let a partner do for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = PartnerPurpose)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// Report EV charging sessions of the dealer's customers as loyalty events
    /// (`partner_activity`, `POST /customers/{id}/points/events`).
    ChargingSessions,
}

impl Purpose {
    pub const ALL: [Purpose; 1] = [Purpose::ChargingSessions];

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::ChargingSessions => "charging-sessions",
        }
    }

    pub fn parse(s: &str) -> Option<Purpose> {
        Purpose::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// A dealer's grant of one purpose to one partner: its consent, and its revocation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Grant {
    pub id: i64,
    /// The dealer (or branch) that granted it; the grant covers its subtree.
    pub dealer_id: i64,
    pub partner_key_id: i64,
    pub purpose: Purpose,
    /// The key of who granted it; `null` when the demo seed did.
    pub granted_by_key_id: Option<i64>,
    pub granted_at: DateTime<Utc>,
    pub revoked_by_key_id: Option<i64>,
    /// Set once the dealer revoked it; the partner no longer acts on it.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A partner the dealer may grant to, with what this dealer granted it now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Partner {
    pub key_id: i64,
    pub label: String,
    pub created_at: DateTime<Utc>,
    /// This dealer's grants to the partner that are not revoked.
    pub grants: Vec<Grant>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    /// The partner's key, as `GET /partners` lists it.
    pub partner_key_id: i64,
    pub purpose: Purpose,
}

#[derive(FromRow)]
struct GrantRow {
    id: i64,
    dealer_id: i64,
    partner_key_id: i64,
    purpose: String,
    granted_by_key_id: Option<i64>,
    granted_at: i64,
    revoked_by_key_id: Option<i64>,
    revoked_at: Option<i64>,
}

const COLUMNS: &str = "id, dealer_id, partner_key_id, purpose, granted_by_key_id, granted_at, \
                       revoked_by_key_id, revoked_at";

impl GrantRow {
    fn into_grant(self) -> Result<Grant> {
        Ok(Grant {
            id: self.id,
            dealer_id: self.dealer_id,
            partner_key_id: self.partner_key_id,
            purpose: decode("partner_grants", &self.purpose, Purpose::parse)?,
            granted_by_key_id: self.granted_by_key_id,
            granted_at: clock::to_datetime(self.granted_at),
            revoked_by_key_id: self.revoked_by_key_id,
            revoked_at: clock::opt_datetime(self.revoked_at),
        })
    }
}

/// The grants of the caller's unit (its dealer), newest first, revoked ones included.
pub async fn list_grants(conn: &mut AnyConnection, caller: &Caller) -> Result<Vec<Grant>> {
    let rows: Vec<GrantRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM partner_grants WHERE dealer_id = $1 ORDER BY id DESC"
    ))
    .bind(caller.org_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(GrantRow::into_grant).collect()
}

/// The partners (partner keys not revoked), each with the caller's unit's grants in force.
pub async fn list_partners(conn: &mut AnyConnection, caller: &Caller) -> Result<Vec<Partner>> {
    let grants = list_grants(conn, caller).await?;
    Ok(keys::active_partners(conn)
        .await?
        .into_iter()
        .map(|key| Partner {
            key_id: key.id,
            label: key.label,
            created_at: key.created_at,
            grants: grants
                .iter()
                .filter(|g| g.partner_key_id == key.id && g.revoked_at.is_none())
                .cloned()
                .collect(),
        })
        .collect())
}

/// Grants `new.purpose` to partner `new.partner_key_id` for `dealer_id`, as `actor` (a dealer
/// admin's key, or the demo seed), and audits it. A grant already in force is a conflict.
pub async fn grant(
    conn: &mut AnyConnection,
    actor: &Actor<'_>,
    dealer_id: i64,
    new: &NewGrant,
) -> Result<Grant> {
    let partner = keys::active_partners(conn)
        .await?
        .into_iter()
        .any(|k| k.id == new.partner_key_id);
    if !partner {
        return Err(Error::invalid(
            "partner_key_id",
            "unknown_partner",
            "no partner key with that id (GET /partners lists them)",
        ));
    }
    let row: GrantRow = sqlx::query_as(&format!(
        "INSERT INTO partner_grants (dealer_id, partner_key_id, purpose, granted_by_key_id, granted_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    ))
    .bind(dealer_id)
    .bind(new.partner_key_id)
    .bind(new.purpose.as_str())
    .bind(actor.key_id())
    .bind(clock::now_ms())
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            Error::Conflict {
                code: "already_granted",
                message: format!(
                    "the partner already holds {} for this dealer",
                    new.purpose.as_str()
                ),
            }
        } else {
            e.into()
        }
    })?;
    let grant = row.into_grant()?;
    audit::record_as(
        conn,
        actor,
        Entry::ok("grant_partner", "partner_grant", grant.id, dealer_id).with_detail(
            serde_json::json!({ "partner_key_id": grant.partner_key_id, "purpose": new.purpose.as_str() }),
        ),
    )
    .await?;
    Ok(grant)
}

/// Revokes grant `id` of the caller's dealer (another dealer's is not found) and audits it.
/// A grant revoked already is a conflict.
pub async fn revoke(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<Grant> {
    let found: Option<(i64, String)> = sqlx::query_as(
        "SELECT g.dealer_id, o.path FROM partner_grants g JOIN org_units o ON o.id = g.dealer_id \
         WHERE g.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let dealer_id = access::in_scope(caller, "partner grant", id, found)?;
    let row: Option<GrantRow> = sqlx::query_as(&format!(
        "UPDATE partner_grants SET revoked_at = $1, revoked_by_key_id = $2 \
         WHERE id = $3 AND revoked_at IS NULL RETURNING {COLUMNS}"
    ))
    .bind(clock::now_ms())
    .bind(caller.key_id)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Err(Error::Conflict {
            code: "grant_revoked",
            message: "this grant was revoked already".into(),
        });
    };
    let grant = row.into_grant()?;
    audit::record(
        conn,
        caller,
        Entry::ok("revoke_partner", "partner_grant", id, dealer_id).with_detail(
            serde_json::json!({ "partner_key_id": grant.partner_key_id, "purpose": grant.purpose.as_str() }),
        ),
    )
    .await?;
    Ok(grant)
}

/// The dealer of customer `customer_id` for `caller` acting on `purpose`: staff see the
/// customers of their scope; a partner only those of a dealer that granted it `purpose` and
/// has not revoked it. Anything else is not found, whether or not the customer exists (an
/// existing one is an audited [`Error::Denied`]).
pub async fn dealer_of_customer(
    conn: &mut AnyConnection,
    caller: &Caller,
    customer_id: i64,
    purpose: Purpose,
) -> Result<i64> {
    let dealer_id = customers::dealer_of(conn, caller, customer_id).await?;
    if caller.role != Role::Partner {
        return Ok(dealer_id);
    }
    let (grants,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM partner_grants g JOIN org_units granting ON granting.id = g.dealer_id \
         JOIN org_units d ON d.id = $1 \
         WHERE g.partner_key_id = $2 AND g.purpose = $3 AND g.revoked_at IS NULL \
           AND d.path LIKE granting.path || '%'",
    )
    .bind(dealer_id)
    .bind(caller.key_id)
    .bind(purpose.as_str())
    .fetch_one(&mut *conn)
    .await?;
    if grants == 0 {
        return Err(Error::denied(caller, "customer", customer_id, dealer_id));
    }
    Ok(dealer_id)
}
