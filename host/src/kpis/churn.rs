//! What a store does about the owners the churn warning lists
//! (`GET /kpis/records?kpi=churn&counted=true`): an advisor task to call each one, or a
//! retention offer by message, sent only to owners who gave marketing consent.

use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa::ToSchema;

use crate::access::Caller;
use crate::audit::{self, Entry};
use crate::clock;
use crate::db::Sql;
use crate::error::{Error, FieldError, Result};
use crate::outbox;
use crate::tasks::{self, NewTask};
use crate::text;

/// The most owners one action takes.
const MAX_OWNERS: usize = 500;
const OFFER_MAX: usize = 200;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChurnTasks {
    /// Owners from the churn-warning list, 1 to 500.
    pub customer_ids: Vec<i64>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionOffer {
    /// Owners from the churn-warning list, 1 to 500.
    pub customer_ids: Vec<i64>,
    /// What the message offers (1 to 200 characters), e.g. `到店保养工时费八折`.
    pub offer: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChurnTasksCreated {
    /// New advisor tasks; an owner who has one open for today already gets no second.
    pub created: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OffersSent {
    /// Messages put in the outbox.
    pub invited: i64,
    /// Owners left out: they gave no marketing consent.
    pub refused_no_consent: i64,
}

/// `(customer id, dealer id, name, marketing consent)` of the owners asked for, all in the
/// caller's scope (one that is not is refused, as if it did not exist).
async fn owners(
    conn: &mut AnyConnection,
    caller: &Caller,
    ids: &[i64],
) -> Result<Vec<(i64, i64, String, i64)>> {
    if ids.is_empty() || ids.len() > MAX_OWNERS {
        return Err(Error::invalid(
            "customer_ids",
            "out_of_range",
            format!("name 1 to {MAX_OWNERS} owners"),
        ));
    }
    let mut sql =
        Sql::new("SELECT id, dealer_id, name, marketing_consent FROM customers WHERE 1 = 1");
    caller.scope(&mut sql, "dealer_id");
    sql.push(" AND id IN ").push_list(Sql::ints(ids));
    let rows: Vec<(i64, i64, String, i64)> = sqlx::query_as_with(sql.text(), sql.arguments())
        .fetch_all(&mut *conn)
        .await?;
    let mut wanted: Vec<i64> = ids.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    if rows.len() != wanted.len() {
        return Err(Error::NotFound { entity: "customer" });
    }
    Ok(rows)
}

/// An advisor task per owner to call them back, due today (the dealer's local date).
pub async fn create_tasks(
    conn: &mut AnyConnection,
    caller: &Caller,
    asked: &ChurnTasks,
) -> Result<ChurnTasksCreated> {
    let now = clock::now_ms();
    let mut created = 0;
    for (customer, dealer, name, _) in owners(conn, caller, &asked.customer_ids).await? {
        let offset = crate::network::utc_offset_minutes(conn, dealer).await?;
        let due = clock::business_date(now, offset).to_string();
        let title = format!("流失预警回访：{name}");
        let key = format!("churn:{customer}:{due}");
        let task = NewTask {
            dealer_id: dealer,
            vehicle_id: None,
            customer_id: Some(customer),
            kind: "churn_risk",
            title: &title,
            due: &due,
            dedupe_key: &key,
        };
        if let Some(id) = tasks::create_once(conn, &task, now).await? {
            created += 1;
            audit::record(conn, caller, Entry::ok("create", "task", id, dealer)).await?;
        }
    }
    Ok(ChurnTasksCreated { created })
}

/// A retention offer by SMS to each owner who gave marketing consent; the others are counted,
/// not messaged.
pub async fn send_offers(
    conn: &mut AnyConnection,
    caller: &Caller,
    asked: &RetentionOffer,
) -> Result<OffersSent> {
    let mut errors: Vec<FieldError> = Vec::new();
    let offer = text::required(&mut errors, "offer", &asked.offer, OFFER_MAX);
    let Some(offer) = offer.filter(|_| errors.is_empty()) else {
        return Err(Error::Invalid(errors));
    };
    let day = clock::today_cst();
    let (mut invited, mut refused) = (0, 0);
    for (customer, dealer, _, consent) in owners(conn, caller, &asked.customer_ids).await? {
        if consent != 1 {
            refused += 1;
            continue;
        }
        let message = outbox::Message {
            channel: "sms".into(),
            recipient: format!("customer:{customer}"),
            template: "retention_offer".into(),
            data: vec![("offer".into(), offer.clone())],
            purpose: outbox::Purpose::Marketing,
        };
        let key = format!("retention:{customer}:{day}");
        if outbox::enqueue(conn, dealer, &message, Some(&key))
            .await?
            .is_some()
        {
            invited += 1;
        }
    }
    audit::record(
        conn,
        caller,
        Entry::ok("send_retention_offer", "customer", 0, caller.org_id)
            .with_detail(serde_json::json!({ "invited": invited, "refused_no_consent": refused })),
    )
    .await?;
    Ok(OffersSent {
        invited,
        refused_no_consent: refused,
    })
}
