//! Insurance quotes (partner example, integration): when a vehicle is delivered or its policy
//! is about to expire, ask the insurer for a quote and have an insurance advisor follow it up.
//!
//! - Events of kind `vehicle-delivered` or `insurance-expiring` become one `POST` of a JSON
//!   [`QuoteRequest`] to the dealer's `quote_url`, with the credential `credential` (default
//!   `insurer-api-key`) sent by the host as `Authorization: Bearer <secret>`. The plugin never
//!   sees the secret.
//! - The insurer answers `{"quote_id": "...", "premium_fen": 123}`; the quote id is recorded as
//!   the reference `insurance-quote-id`, and a task for `insurance-advisor` is due two days
//!   after the event.
//! - An answer other than 2xx, or one that is not such a quote, fails the run with a message
//!   naming the status or the problem.
//! - Other events: no call, no actions.
//!
//! The request and the reading of the answer are pure functions ([`quote_request`],
//! [`actions`]); the exported hook reads the configuration and makes the one partner call.

use dealer_sdk::dates::DAY;
use dealer_sdk::integration::{Action, Event, Guest, Reference, Task};
use dealer_sdk::money;
use dealer_sdk::outbound::{self, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The event kinds that ask for a quote.
pub const QUOTED_KINDS: [&str; 2] = ["vehicle-delivered", "insurance-expiring"];
/// The key of the recorded quote id.
pub const REFERENCE_KEY: &str = "insurance-quote-id";
/// The role the follow-up task is for.
pub const ADVISOR_ROLE: &str = "insurance-advisor";
/// The credential handle when the configuration names none.
pub const DEFAULT_CREDENTIAL: &str = "insurer-api-key";
/// How long after the event the follow-up is due.
pub const FOLLOW_UP: i64 = 2 * DAY;
/// How much of an error answer's body a failure message quotes.
const QUOTED_BODY_CHARS: usize = 200;

/// The dealer's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The insurer's quote endpoint, e.g. `https://api.insurer.example/v1/quotes`. Required.
    pub quote_url: String,
    /// The credential handle the host sends as a bearer token.
    pub credential: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            quote_url: String::new(),
            credential: DEFAULT_CREDENTIAL.to_owned(),
        }
    }
}

impl Config {
    /// Refuses what the schema cannot: the first problem, naming its key.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.quote_url.starts_with("https://") || self.quote_url.starts_with("http://")) {
            return Err(format!(
                "config `quote_url`: {:?} is not an http(s) URL",
                self.quote_url
            ));
        }
        if self.credential.trim().is_empty() {
            return Err("config `credential`: a blank handle".to_owned());
        }
        Ok(())
    }
}

/// The body the insurer receives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuoteRequest {
    /// The event's id, for the insurer to ignore duplicates.
    pub event_id: String,
    pub event_kind: String,
    pub dealer_id: i64,
    pub occurred_at: i64,
    pub customer_id: Option<i64>,
    pub vehicle_id: Option<i64>,
    /// The event's payload as it came (JSON).
    pub payload: Value,
}

/// The insurer's answer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Quote {
    pub quote_id: String,
    pub premium_fen: i64,
}

/// Whether `event` asks for a quote.
pub fn wants_quote(event: &Event) -> bool {
    QUOTED_KINDS.contains(&event.kind.as_str())
}

/// The quote request for `event` under a validated `config`; fails when the payload is not
/// JSON.
pub fn quote_request(event: &Event, config: &Config) -> Result<Request, String> {
    let payload: Value = serde_json::from_str(&event.payload)
        .map_err(|error| format!("the {} event's payload is not JSON: {error}", event.kind))?;
    let body = QuoteRequest {
        event_id: event.id.clone(),
        event_kind: event.kind.clone(),
        dealer_id: event.dealer_id,
        occurred_at: event.occurred_at,
        customer_id: event.customer_id,
        vehicle_id: event.vehicle_id,
        payload,
    };
    let body = serde_json::to_vec(&body).map_err(|error| error.to_string())?;
    Ok(Request::post(config.quote_url.as_str(), body)
        .header("content-type", "application/json")
        .bearer(config.credential.as_str()))
}

/// The actions for `event` once the insurer answered `response`.
pub fn actions(event: &Event, response: &Response) -> Result<Vec<Action>, String> {
    if !response.is_success() {
        let text = response.text();
        let quoted: String = text.chars().take(QUOTED_BODY_CHARS).collect();
        return Err(format!(
            "the insurer answered {} to the quote request for event {}: {quoted}",
            response.status, event.id
        ));
    }
    let quote: Quote = serde_json::from_slice(&response.body)
        .map_err(|error| format!("the insurer's answer is not a quote: {error}"))?;
    if quote.quote_id.trim().is_empty() {
        return Err("the insurer's answer has a blank quote_id".to_owned());
    }
    Ok(vec![
        Action::RecordReference(Reference {
            key: REFERENCE_KEY.to_owned(),
            value: quote.quote_id.clone(),
        }),
        Action::CreateTask(Task {
            assignee_role: ADVISOR_ROLE.to_owned(),
            title: format!(
                "跟进保险报价 {}（保费 ¥{}）",
                quote.quote_id,
                money::format_yuan(quote.premium_fen)
            ),
            due: Some(event.occurred_at.saturating_add(FOLLOW_UP)),
        }),
    ])
}

/// Reads the calling dealer's configuration (one host call) and validates it.
fn load_config() -> Result<Config, String> {
    let config: Config = dealer_sdk::config::document()?;
    config.validate()?;
    Ok(config)
}

struct Insurance;

impl Guest for Insurance {
    fn handle(event: Event) -> Result<Vec<Action>, String> {
        if !wants_quote(&event) {
            return Ok(Vec::new());
        }
        let request = quote_request(&event, &load_config()?)?;
        let response = outbound::send(&request)?;
        actions(&event, &response)
    }
}

dealer_sdk::export_integration!(Insurance);

#[cfg(test)]
mod tests {
    use dealer_sdk::outbound::{Credential, CredentialPlacement, Method};
    use serde_json::json;

    use super::*;

    const AT: i64 = 1_763_900_000_000;

    fn event(kind: &str) -> Event {
        Event {
            kind: kind.to_owned(),
            id: "evt-1".to_owned(),
            dealer_id: 7,
            occurred_at: AT,
            customer_id: Some(9),
            vehicle_id: Some(3),
            order_id: Some(11),
            repair_order_id: None,
            payload: r#"{"model": "红旗 H5", "plate": "京A·12345"}"#.to_owned(),
        }
    }

    fn config() -> Config {
        Config {
            quote_url: "https://api.insurer.example/v1/quotes".to_owned(),
            ..Config::default()
        }
    }

    fn answer(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn only_deliveries_and_expiring_policies_ask_for_a_quote() {
        assert!(wants_quote(&event("vehicle-delivered")));
        assert!(wants_quote(&event("insurance-expiring")));
        assert!(!wants_quote(&event("repair-settled")));
        assert!(!wants_quote(&event("charging-session")));
    }

    #[test]
    fn the_request_posts_the_ids_and_payload_with_the_bearer_credential() {
        let request = quote_request(&event("vehicle-delivered"), &config()).unwrap();
        assert_eq!(request.method, Method::Post);
        assert_eq!(request.url, "https://api.insurer.example/v1/quotes");
        assert_eq!(
            request.headers,
            vec![("content-type".to_owned(), "application/json".to_owned())]
        );
        assert_eq!(
            request.credential,
            Some(Credential {
                handle: "insurer-api-key".to_owned(),
                placement: CredentialPlacement::Bearer,
            })
        );
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            body,
            json!({
                "event_id": "evt-1", "event_kind": "vehicle-delivered", "dealer_id": 7,
                "occurred_at": AT, "customer_id": 9, "vehicle_id": 3,
                "payload": {"model": "红旗 H5", "plate": "京A·12345"},
            })
        );
    }

    #[test]
    fn the_configured_credential_handle_is_used() {
        let config = Config {
            credential: "pingan-key".to_owned(),
            ..config()
        };
        let request = quote_request(&event("insurance-expiring"), &config).unwrap();
        assert_eq!(request.credential.unwrap().handle, "pingan-key");
    }

    #[test]
    fn a_payload_that_is_not_json_is_refused() {
        let mut broken = event("vehicle-delivered");
        broken.payload = "model=H5".to_owned();
        let error = quote_request(&broken, &config()).unwrap_err();
        assert!(
            error.starts_with("the vehicle-delivered event's payload is not JSON"),
            "{error}"
        );
    }

    #[test]
    fn a_quote_becomes_a_reference_and_a_task_due_in_two_days() {
        let actions = actions(
            &event("vehicle-delivered"),
            &answer(200, r#"{"quote_id": "Q-2026-0042", "premium_fen": 456789}"#),
        )
        .unwrap();
        assert_eq!(
            actions,
            vec![
                Action::RecordReference(Reference {
                    key: "insurance-quote-id".to_owned(),
                    value: "Q-2026-0042".to_owned(),
                }),
                Action::CreateTask(Task {
                    assignee_role: "insurance-advisor".to_owned(),
                    title: "跟进保险报价 Q-2026-0042（保费 ¥4567.89）".to_owned(),
                    due: Some(AT + 2 * DAY),
                }),
            ]
        );
    }

    #[test]
    fn a_partner_error_fails_with_its_status_and_body() {
        let error = actions(
            &event("insurance-expiring"),
            &answer(503, "maintenance window"),
        )
        .unwrap_err();
        assert_eq!(
            error,
            "the insurer answered 503 to the quote request for event evt-1: maintenance window"
        );
        let long = "x".repeat(1_000);
        let error = actions(&event("insurance-expiring"), &answer(500, &long)).unwrap_err();
        assert!(error.len() < 300, "{error}");
    }

    #[test]
    fn an_answer_that_is_not_a_quote_fails() {
        for body in [
            "<html>ok</html>",
            r#"{"quote_id": "Q-1"}"#,
            r#"{"quote_id": " ", "premium_fen": 1}"#,
        ] {
            assert!(
                actions(&event("vehicle-delivered"), &answer(200, body)).is_err(),
                "{body}"
            );
        }
    }

    #[test]
    fn the_due_date_saturates() {
        let mut late = event("vehicle-delivered");
        late.occurred_at = i64::MAX - 1;
        let actions = actions(
            &late,
            &answer(201, r#"{"quote_id": "Q", "premium_fen": 0}"#),
        )
        .unwrap();
        assert!(matches!(&actions[1], Action::CreateTask(task) if task.due == Some(i64::MAX)));
    }

    #[test]
    fn the_configuration_needs_a_url_and_a_handle() {
        assert_eq!(config().validate(), Ok(()));
        assert_eq!(
            Config::default().validate(),
            Err("config `quote_url`: \"\" is not an http(s) URL".to_owned())
        );
        let blank = Config {
            credential: " ".to_owned(),
            ..config()
        };
        assert_eq!(
            blank.validate(),
            Err("config `credential`: a blank handle".to_owned())
        );
        assert!(serde_json::from_str::<Config>(r#"{"quote_url": "x", "other": 1}"#).is_err());
    }

    #[test]
    fn the_schema_names_every_setting() {
        let schema: Value = serde_json::from_str(include_str!("../config.schema.json")).unwrap();
        let mut keys: Vec<&String> = schema["fields"].as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["credential", "quote_url"]);
        assert_eq!(schema["fields"]["quote_url"]["required"], true);
    }
}
