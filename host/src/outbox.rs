//! The outbox: messages to send (SMS, WeChat, e-mail, app pushes, staff tasks), written in the
//! transaction of the change that causes them, so a message exists exactly when its cause
//! committed. Owns `outbox`.
//!
//! A message may carry a dedupe key, unique across the table: enqueueing the same key again
//! stores nothing, which is what makes a reminder or an escalation go out once however often
//! (and on however many replicas) the job that finds it runs.

use serde::Serialize;
use sqlx::AnyConnection;
use utoipa::ToSchema;

use crate::clock;
use crate::error::Result;
use crate::plugins::bindings::types::Notification;

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Message {
    /// `sms`, `wechat`, `email`, `app`, `task`.
    pub channel: String,
    /// A role (`role:regional_service_manager`), a staff member (`staff:42`) or a customer
    /// (`customer:7`).
    pub recipient: String,
    pub template: String,
    pub data: Vec<(String, String)>,
}

impl From<&Notification> for Message {
    fn from(n: &Notification) -> Message {
        Message {
            channel: n.channel.clone(),
            recipient: n.recipient.clone(),
            template: n.template.clone(),
            data: n.data.clone(),
        }
    }
}

/// Adds a message for `dealer_id`, due now. With a `dedupe_key` already enqueued, nothing is
/// added and the answer is `None`; otherwise it is the new message's id.
pub async fn enqueue(
    conn: &mut AnyConnection,
    dealer_id: i64,
    message: &Message,
    dedupe_key: Option<&str>,
) -> Result<Option<i64>> {
    let data: serde_json::Map<String, serde_json::Value> = message
        .data
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let now = clock::now_ms();
    let id: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO outbox (dealer_id, channel, recipient, template, data, dedupe_key, \
         next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
         ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
    )
    .bind(dealer_id)
    .bind(&message.channel)
    .bind(&message.recipient)
    .bind(&message.template)
    .bind(serde_json::Value::Object(data).to_string())
    .bind(dedupe_key)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(id.map(|(id,)| id))
}
