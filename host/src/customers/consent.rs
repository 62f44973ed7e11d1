//! An owner's marketing consent as messages need it: whether it is in force, the mobile
//! number a message goes to, and the owner's opt-out by link or by keyword, each recorded
//! with its time and channel. Owns `consent_events`; changes `customers.marketing_consent`.

use sqlx::AnyConnection;

use crate::clock;
use crate::error::Result;

/// How a consent was given or withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Staff edited the customer.
    Staff,
    /// The owner followed the opt-out link of a message.
    Link,
    /// The owner answered a message with an opt-out keyword.
    Keyword,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Staff => "staff",
            Via::Link => "link",
            Via::Keyword => "keyword",
        }
    }
}

/// The words that opt an owner out when they answer an SMS with one (trimmed, any case):
/// the Chinese operators' `T`/`TD` and the plain words for it.
pub const OPT_OUT_KEYWORDS: [&str; 6] = ["T", "TD", "N", "退订", "取消", "UNSUBSCRIBE"];

/// Whether `text`, an owner's answer, asks to stop marketing.
pub fn is_opt_out(text: &str) -> bool {
    let word = text.trim().to_uppercase();
    OPT_OUT_KEYWORDS.contains(&word.as_str())
}

/// Whether customer `customer_id` accepts marketing now.
pub async fn marketing_allowed(conn: &mut AnyConnection, customer_id: i64) -> Result<bool> {
    let consent: Option<(i64,)> =
        sqlx::query_as("SELECT marketing_consent FROM customers WHERE id = $1")
            .bind(customer_id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(consent.is_some_and(|(c,)| c != 0))
}

/// Records a consent given or withdrawn; the caller changes the customer (or did).
pub async fn record(
    conn: &mut AnyConnection,
    customer_id: i64,
    dealer_id: i64,
    granted: bool,
    channel: &str,
    via: Via,
    outbox_id: Option<i64>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO consent_events (customer_id, dealer_id, granted, channel, via, outbox_id, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(customer_id)
    .bind(dealer_id)
    .bind(i64::from(granted))
    .bind(channel)
    .bind(via.as_str())
    .bind(outbox_id)
    .bind(clock::now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Withdraws customer `customer_id`'s marketing consent, as the owner asked through `via` on
/// `channel`. Answers whether it was in force (an owner who opts out twice changes nothing
/// the second time, but both are recorded).
pub async fn opt_out(
    conn: &mut AnyConnection,
    customer_id: i64,
    dealer_id: i64,
    channel: &str,
    via: Via,
    outbox_id: Option<i64>,
) -> Result<bool> {
    let changed = sqlx::query(
        "UPDATE customers SET marketing_consent = 0, marketing_consent_at = NULL, \
         version = version + 1, updated_at = $1 WHERE id = $2 AND marketing_consent = 1",
    )
    .bind(clock::now_ms())
    .bind(customer_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    record(conn, customer_id, dealer_id, false, channel, via, outbox_id).await?;
    Ok(changed == 1)
}

/// The customers of the dealers under `path` who have mobile number `phone` (normalised), with
/// their dealer: whom an SMS answer from that number speaks for.
pub async fn by_phone(
    conn: &mut AnyConnection,
    path: &str,
    phone: &str,
) -> Result<Vec<(i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT c.id, c.dealer_id FROM customer_phones p JOIN customers c ON c.id = p.customer_id \
         JOIN org_units u ON u.id = c.dealer_id WHERE p.phone = $1 AND u.path LIKE $2 ORDER BY c.id",
    )
    .bind(phone)
    .bind(format!("{path}%"))
    .fetch_all(&mut *conn)
    .await?)
}

/// The mobile number a message to customer `customer_id` goes to: the first one listed.
pub async fn mobile(conn: &mut AnyConnection, customer_id: i64) -> Result<Option<String>> {
    let phone: Option<(String,)> = sqlx::query_as(
        "SELECT phone FROM customer_phones WHERE customer_id = $1 ORDER BY position LIMIT 1",
    )
    .bind(customer_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(phone.map(|(p,)| p))
}
