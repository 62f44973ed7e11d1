//! Whom a message reaches: a recipient reference (`customer:7`, `staff:42`,
//! `role:regional_service_manager`, `role:service_manager@BJ-CY-4S`) resolved, when the message
//! is sent, to the people it names and their address on the message's channel. A reference
//! that reaches nobody with such an address is undeliverable, with the reason in words.

use sqlx::AnyConnection;

use crate::access::Position;
use crate::customers::consent;
use crate::error::{Error, Result};
use crate::network::{self, Staff};

/// One person a message goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// `customer:<id>` or `staff:<id>`.
    pub person: String,
    /// What the channel delivers to: a mobile number, an e-mail address, the person reference
    /// itself for the app and the task list.
    pub address: String,
}

/// What a recipient reference resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    To(Vec<Address>),
    /// Nobody it names has an address on the channel (the reason, for the outbox's listing).
    Undeliverable(String),
}

/// Resolves `recipient` of a message of dealer `dealer_id` for `channel`.
pub async fn resolve(
    conn: &mut AnyConnection,
    dealer_id: i64,
    recipient: &str,
    channel: &str,
) -> Result<Resolved> {
    let Some((kind, rest)) = recipient.split_once(':') else {
        return Ok(Resolved::Undeliverable(format!(
            "`{recipient}` names no customer, staff member or position"
        )));
    };
    match kind {
        "customer" => {
            let Ok(id) = rest.parse::<i64>() else {
                return Ok(Resolved::Undeliverable(format!(
                    "`{recipient}` is no customer id"
                )));
            };
            customer(conn, id, channel).await
        }
        "staff" => {
            let Ok(id) = rest.parse::<i64>() else {
                return Ok(Resolved::Undeliverable(format!(
                    "`{recipient}` is no staff id"
                )));
            };
            match network::staff_member(conn, id).await {
                Ok(s) if s.active => Ok(people(&[s], channel, recipient)),
                Ok(_) => Ok(Resolved::Undeliverable(format!(
                    "{recipient} no longer works here"
                ))),
                Err(Error::NotFound { .. }) => Ok(Resolved::Undeliverable(format!(
                    "no staff member {recipient}"
                ))),
                Err(e) => Err(e),
            }
        }
        "role" => {
            let (name, unit) = match rest.split_once('@') {
                Some((name, code)) => match network::unit_by_code(conn, code).await? {
                    Some(unit) => (name, unit),
                    None => {
                        return Ok(Resolved::Undeliverable(format!(
                            "no unit with code `{code}`"
                        )));
                    }
                },
                None => (rest, dealer_id),
            };
            let Some(position) = Position::parse(name) else {
                return Ok(Resolved::Undeliverable(format!(
                    "`{name}` is no staff position"
                )));
            };
            let holders = network::holders(conn, unit, position).await?;
            if holders.is_empty() {
                return Ok(Resolved::Undeliverable(format!(
                    "nobody holds the position {} at unit {unit} or above it",
                    position.as_str()
                )));
            }
            Ok(people(&holders, channel, recipient))
        }
        _ => Ok(Resolved::Undeliverable(format!(
            "`{recipient}` names no customer, staff member or position"
        ))),
    }
}

async fn customer(conn: &mut AnyConnection, id: i64, channel: &str) -> Result<Resolved> {
    let person = format!("customer:{id}");
    let address = match channel {
        "sms" => consent::mobile(conn, id).await?,
        "app" => Some(person.clone()),
        "wechat" => {
            return Ok(Resolved::Undeliverable(format!(
                "{person} has not bound a WeChat account"
            )));
        }
        "email" => {
            return Ok(Resolved::Undeliverable(format!(
                "the host keeps no e-mail address for customers ({person})"
            )));
        }
        other => {
            return Ok(Resolved::Undeliverable(format!(
                "a {other} message goes to staff, not to {person}"
            )));
        }
    };
    Ok(match address {
        Some(address) => Resolved::To(vec![Address { person, address }]),
        None => Resolved::Undeliverable(format!("{person} has no mobile number")),
    })
}

/// The staff of `staff` reachable on `channel`, or why none is.
fn people(staff: &[Staff], channel: &str, recipient: &str) -> Resolved {
    let to: Vec<Address> = staff
        .iter()
        .filter_map(|s| {
            let person = format!("staff:{}", s.id);
            let address = match channel {
                "sms" => s.phone.clone(),
                "email" => s.email.clone(),
                "task" | "app" => Some(person.clone()),
                _ => None,
            }?;
            Some(Address { person, address })
        })
        .collect();
    if to.is_empty() {
        let what = match channel {
            "sms" => "a mobile number",
            "email" => "an e-mail address",
            _ => "an address on this channel",
        };
        return Resolved::Undeliverable(format!("nobody {recipient} reaches has {what}"));
    }
    Resolved::To(to)
}
