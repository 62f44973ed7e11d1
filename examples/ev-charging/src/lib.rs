//! EV charging points (partner example, integration): a charging operator reports a session
//! and the customer earns loyalty points for the energy charged.
//!
//! - An event of kind `charging-session` with the payload
//!   `{"kwh": 35.5, "session_id": "S-1", "operator": "特来电"}` becomes one points grant to the
//!   event's customer: `floor(kwh × points_per_kwh)` points (configuration, default 2), with
//!   the reason `充电 35.5 kWh (会话 S-1，特来电)`. A session worth less than one point grants
//!   nothing.
//! - A session without a customer, or whose payload is not such a session, fails the run.
//! - Other events: no actions. The plugin makes no partner call.
//!
//! The decision is the pure function [`points_for`]; the exported hook only reads the
//! dealer's [`Config`].

use dealer_sdk::integration::{Action, Event, Guest, PointsGrant};
use serde::{Deserialize, Serialize};

/// The event kind this plugin handles.
pub const SESSION_KIND: &str = "charging-session";
/// Points per kWh when the configuration sets none.
pub const DEFAULT_POINTS_PER_KWH: f64 = 2.0;
/// The most energy one session may report; more is a bad report.
pub const MAX_KWH: f64 = 1_000.0;
/// The highest rate a dealer may configure.
pub const MAX_POINTS_PER_KWH: f64 = 1_000.0;

/// The dealer's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Points per kWh charged, from 0 to [`MAX_POINTS_PER_KWH`].
    pub points_per_kwh: f64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            points_per_kwh: DEFAULT_POINTS_PER_KWH,
        }
    }
}

impl Config {
    /// Refuses what the schema cannot: the first problem, naming its key.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=MAX_POINTS_PER_KWH).contains(&self.points_per_kwh) {
            return Err(format!(
                "config `points_per_kwh`: {} is not between 0 and {MAX_POINTS_PER_KWH}",
                self.points_per_kwh
            ));
        }
        Ok(())
    }
}

/// A charging session as the operator reports it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    pub kwh: f64,
    pub session_id: String,
    pub operator: String,
}

impl Session {
    /// The session in `event`'s payload; fails when it is not one, or not a plausible one.
    pub fn from_event(event: &Event) -> Result<Session, String> {
        let session: Session = serde_json::from_str(&event.payload).map_err(|error| {
            format!(
                "event {}: the payload is not a charging session: {error}",
                event.id
            )
        })?;
        if !(session.kwh > 0.0 && session.kwh <= MAX_KWH) {
            return Err(format!(
                "event {}: {} kWh is not between 0 (excluded) and {MAX_KWH}",
                event.id, session.kwh
            ));
        }
        if session.session_id.trim().is_empty() {
            return Err(format!("event {}: a blank session_id", event.id));
        }
        Ok(session)
    }
}

/// The actions for `event` under a validated `config`. No host calls.
pub fn points_for(event: &Event, config: &Config) -> Result<Vec<Action>, String> {
    if event.kind != SESSION_KIND {
        return Ok(Vec::new());
    }
    let customer_id = event
        .customer_id
        .ok_or_else(|| format!("event {}: a charging session without a customer", event.id))?;
    let session = Session::from_event(event)?;
    // Both factors are bounded, so the product fits an i64 exactly.
    let points = (session.kwh * config.points_per_kwh).floor() as i64;
    if points == 0 {
        return Ok(Vec::new());
    }
    Ok(vec![Action::AwardPoints(PointsGrant {
        customer_id,
        points,
        reason: format!(
            "充电 {} kWh (会话 {}，{})",
            session.kwh, session.session_id, session.operator
        ),
    })])
}

/// Reads the calling dealer's configuration (one host call) and validates it.
fn load_config() -> Result<Config, String> {
    let config: Config = dealer_sdk::config::document()?;
    config.validate()?;
    Ok(config)
}

struct EvCharging;

impl Guest for EvCharging {
    fn handle(event: Event) -> Result<Vec<Action>, String> {
        if event.kind != SESSION_KIND {
            return Ok(Vec::new());
        }
        points_for(&event, &load_config()?)
    }
}

dealer_sdk::export_integration!(EvCharging);

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn session(payload: &str) -> Event {
        Event {
            kind: SESSION_KIND.to_owned(),
            id: "evt-9".to_owned(),
            dealer_id: 7,
            occurred_at: 1_763_900_000_000,
            customer_id: Some(42),
            vehicle_id: Some(3),
            order_id: None,
            repair_order_id: None,
            payload: payload.to_owned(),
        }
    }

    fn grant(actions: &[Action]) -> &PointsGrant {
        match actions {
            [Action::AwardPoints(grant)] => grant,
            other => panic!("expected one points grant, got {other:?}"),
        }
    }

    #[test]
    fn a_session_earns_floor_kwh_times_two_by_default() {
        let actions = points_for(
            &session(r#"{"kwh": 35.5, "session_id": "S-1", "operator": "特来电"}"#),
            &Config::default(),
        )
        .unwrap();
        assert_eq!(
            actions,
            vec![Action::AwardPoints(PointsGrant {
                customer_id: 42,
                points: 71,
                reason: "充电 35.5 kWh (会话 S-1，特来电)".to_owned(),
            })]
        );
    }

    #[test]
    fn the_configured_rate_applies_and_is_floored() {
        let config = Config {
            points_per_kwh: 1.5,
        };
        let actions = points_for(
            &session(r#"{"kwh": 35.5, "session_id": "S-2", "operator": "星星充电"}"#),
            &config,
        )
        .unwrap();
        assert_eq!(grant(&actions).points, 53);
        let actions = points_for(
            &session(r#"{"kwh": 40, "session_id": "S-3", "operator": "星星充电"}"#),
            &config,
        )
        .unwrap();
        assert_eq!(grant(&actions).points, 60);
        assert_eq!(grant(&actions).reason, "充电 40 kWh (会话 S-3，星星充电)");
    }

    #[test]
    fn less_than_a_point_grants_nothing() {
        let small = session(r#"{"kwh": 0.4, "session_id": "S-4", "operator": "特来电"}"#);
        assert_eq!(points_for(&small, &Config::default()), Ok(Vec::new()));
        let free = Config {
            points_per_kwh: 0.0,
        };
        let big = session(r#"{"kwh": 80, "session_id": "S-5", "operator": "特来电"}"#);
        assert_eq!(points_for(&big, &free), Ok(Vec::new()));
    }

    #[test]
    fn other_events_are_ignored() {
        let mut other = session("not even JSON");
        other.kind = "vehicle-delivered".to_owned();
        other.customer_id = None;
        assert_eq!(points_for(&other, &Config::default()), Ok(Vec::new()));
    }

    #[test]
    fn a_session_without_a_customer_fails() {
        let mut anonymous = session(r#"{"kwh": 35.5, "session_id": "S-1", "operator": "特来电"}"#);
        anonymous.customer_id = None;
        assert_eq!(
            points_for(&anonymous, &Config::default()),
            Err("event evt-9: a charging session without a customer".to_owned())
        );
    }

    #[test]
    fn bad_payloads_fail_naming_the_event() {
        for payload in [
            "",
            "[]",
            r#"{"kwh": "35.5", "session_id": "S-1", "operator": "特来电"}"#,
            r#"{"session_id": "S-1", "operator": "特来电"}"#,
            r#"{"kwh": 35.5, "operator": "特来电"}"#,
            r#"{"kwh": 35.5, "session_id": "S-1", "operator": "特来电", "extra": 1}"#,
            r#"{"kwh": 0, "session_id": "S-1", "operator": "特来电"}"#,
            r#"{"kwh": -3, "session_id": "S-1", "operator": "特来电"}"#,
            r#"{"kwh": 1000.5, "session_id": "S-1", "operator": "特来电"}"#,
            r#"{"kwh": 35.5, "session_id": " ", "operator": "特来电"}"#,
        ] {
            let error = points_for(&session(payload), &Config::default()).unwrap_err();
            assert!(error.starts_with("event evt-9: "), "{payload}: {error}");
        }
    }

    #[test]
    fn the_rate_is_bounded() {
        assert_eq!(Config::default().validate(), Ok(()));
        for rate in [-1.0, 1_000.5, f64::NAN] {
            assert!(
                Config {
                    points_per_kwh: rate
                }
                .validate()
                .is_err(),
                "{rate}"
            );
        }
        assert_eq!(
            serde_json::from_str::<Config>(r#"{"points_per_kwh": 3}"#).unwrap(),
            Config {
                points_per_kwh: 3.0
            }
        );
        assert_eq!(
            serde_json::from_str::<Config>("{}").unwrap(),
            Config::default()
        );
    }

    #[test]
    fn the_schema_names_every_setting_and_admits_the_default() {
        let schema: Value = serde_json::from_str(include_str!("../config.schema.json")).unwrap();
        let fields = schema["fields"].as_object().unwrap();
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["points_per_kwh"]);
        let field = &fields["points_per_kwh"];
        assert_eq!(field["type"], "number");
        assert_eq!(field["min"], 0);
        assert_eq!(field["max"].as_f64(), Some(MAX_POINTS_PER_KWH));
    }
}
