//! The e-mail channel: messages sent as plain-text mail (UTF-8, base64) through the SMTP relay
//! the operator configures (`serve --smtp-url`: `smtp://relay:587?tls=required` for
//! STARTTLS, `?tls=opportunistic` for STARTTLS when offered, `smtps://relay:465` for implicit
//! TLS, plain `smtp://relay:25` for a relay on the local network; user and password in the
//! URL). Each address gets its own copy.

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox};
use lettre::transport::smtp::Error as SmtpError;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::delivery::{Outgoing, SendError, SendFuture, Sender};

/// Sends e-mail through one SMTP relay.
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Smtp {
    /// A sender through the relay at `url`, from `from` (`通知 <noreply@dealer.example.cn>`).
    pub fn new(url: &str, from: &str) -> Result<Smtp, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("the SMTP URL is not usable: {e}"))?
            .build();
        let from = from
            .parse()
            .map_err(|e| format!("`{from}` is not a sender address: {e}"))?;
        Ok(Smtp { transport, from })
    }
}

/// The subject of a message, in the staff's words, by its template.
fn subject(template: &str) -> String {
    match template {
        "ticket-sla-breach" => "工单超时提醒".to_owned(),
        "ticket-safety" | "safety-escalation" => "安全投诉升级".to_owned(),
        other => format!("通知：{other}"),
    }
}

/// The body: one line per value of the template, in the order given.
fn body(message: &Outgoing) -> String {
    let mut text = String::new();
    for (key, value) in &message.data {
        text.push_str(key);
        text.push_str(": ");
        text.push_str(value);
        text.push('\n');
    }
    text
}

fn failure(e: &SmtpError) -> SendError {
    if e.is_permanent() {
        SendError::Permanent(format!("the relay refused the mail: {e}"))
    } else {
        SendError::Retryable(format!("the relay did not take the mail: {e}"))
    }
}

impl Sender for Smtp {
    fn send<'a>(&'a self, message: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(async move {
            let mut answers = Vec::new();
            for to in &message.to {
                let mailbox: Mailbox = to.address.parse().map_err(|e| {
                    SendError::Permanent(format!("{} has no usable e-mail address: {e}", to.person))
                })?;
                let mail = lettre::Message::builder()
                    .from(self.from.clone())
                    .to(mailbox)
                    .subject(subject(&message.template))
                    .header(ContentType::TEXT_PLAIN)
                    .body(
                        Body::new_with_encoding(body(message), ContentTransferEncoding::Base64)
                            .map_err(|_| SendError::Permanent("cannot encode the mail".into()))?,
                    )
                    .map_err(|e| SendError::Permanent(format!("cannot build the mail: {e}")))?;
                let response = self.transport.send(mail).await.map_err(|e| failure(&e))?;
                answers.push(format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                ));
            }
            Ok(answers.join("; "))
        })
    }
}
