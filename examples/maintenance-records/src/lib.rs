//! Maintenance records (partner example, integration): the regulatory upload of every settled
//! repair to the provincial automotive maintenance platform, in the style of JT/T 1132
//! (汽车维修电子健康档案).
//!
//! - An event of kind `repair-settled` whose payload describes the repair order
//!   ([`RepairOrder`]) becomes one `POST` of a [`MaintenanceRecord`] to the dealer's
//!   `platform_url`, with the credential `credential` (default `maintenance-platform-key`) sent
//!   by the host as the header `X-Api-Key`. The plugin never sees the secret.
//! - The platform answers `{"recordId": "..."}`; the id is recorded as the reference
//!   `maintenance-record-id`.
//! - A payload without a VIN or a settlement date, or with a malformed one, is refused before
//!   any call; an answer other than 2xx, or without a record id, fails the run.
//! - Other events: no call, no actions.
//!
//! The record and the reading of the answer are pure functions ([`record_for`],
//! [`upload_request`], [`actions`]); the exported hook reads the configuration and makes the
//! one partner call.

use dealer_sdk::dates::Date;
use dealer_sdk::integration::{Action, Event, Guest, Reference};
use dealer_sdk::outbound::{self, Request, Response};
use serde::{Deserialize, Serialize};

/// The event kind this plugin uploads.
pub const SETTLED_KIND: &str = "repair-settled";
/// The key of the recorded platform id.
pub const REFERENCE_KEY: &str = "maintenance-record-id";
/// The credential handle when the configuration names none.
pub const DEFAULT_CREDENTIAL: &str = "maintenance-platform-key";
/// The header the platform expects the key in.
pub const API_KEY_HEADER: &str = "X-Api-Key";
/// How much of an error answer's body a failure message quotes.
const QUOTED_BODY_CHARS: usize = 200;

/// The dealer's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The provincial platform's upload endpoint. Required.
    pub platform_url: String,
    /// The dealer's company code on the platform (维修企业编码). Required.
    pub company_code: String,
    /// The credential handle the host sends as `X-Api-Key`.
    pub credential: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            platform_url: String::new(),
            company_code: String::new(),
            credential: DEFAULT_CREDENTIAL.to_owned(),
        }
    }
}

impl Config {
    /// Refuses what the schema cannot: the first problem, naming its key.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.platform_url.starts_with("https://") || self.platform_url.starts_with("http://"))
        {
            return Err(format!(
                "config `platform_url`: {:?} is not an http(s) URL",
                self.platform_url
            ));
        }
        if self.company_code.trim().is_empty() {
            return Err("config `company_code`: a blank company code".to_owned());
        }
        if self.credential.trim().is_empty() {
            return Err("config `credential`: a blank handle".to_owned());
        }
        Ok(())
    }
}

/// A settled repair order, as the `repair-settled` event's payload describes it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct RepairOrder {
    /// Required: 17 characters, digits and capital letters other than I, O and Q.
    pub vin: Option<String>,
    pub plate: Option<String>,
    /// When the repair was made, `YYYY-MM-DD`; the settlement date when missing.
    pub repair_date: Option<String>,
    /// Required: when the repair order was settled, `YYYY-MM-DD`.
    pub settled_date: Option<String>,
    /// The odometer when the vehicle came in.
    pub mileage_km: Option<i64>,
    #[serde(default)]
    pub fault_description: String,
    /// The work done.
    #[serde(default)]
    pub items: Vec<RepairItem>,
    /// The parts used.
    #[serde(default)]
    pub parts: Vec<Part>,
}

/// One line of work on the repair order.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct RepairItem {
    pub name: String,
    pub code: Option<String>,
    pub hours: Option<f64>,
}

/// One part used on the repair order.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Part {
    pub name: String,
    pub code: Option<String>,
    pub quantity: f64,
}

/// The record the platform receives, with the field names of the JT/T 1132 upload.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceRecord {
    pub company_code: String,
    pub vin: String,
    pub plate_number: String,
    pub repair_date: String,
    pub repair_mileage: Option<i64>,
    pub fault_description: String,
    pub repair_project_list: Vec<RepairProject>,
    pub parts_list: Vec<PartsLine>,
    pub settlement_date: String,
    /// The settlement's number (结算清单编号): the host's repair order id.
    pub cost_list_code: Option<String>,
}

/// A line of `repairProjectList`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepairProject {
    pub project_name: String,
    pub project_code: Option<String>,
    pub working_hours: Option<f64>,
}

/// A line of `partsList`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartsLine {
    pub parts_name: String,
    pub parts_code: Option<String>,
    pub parts_quantity: f64,
}

/// The platform's answer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    pub record_id: String,
}

/// Whether `vin` is a well-formed VIN: 17 digits and capital letters other than I, O and Q.
pub fn is_vin(vin: &str) -> bool {
    vin.len() == 17
        && vin
            .chars()
            .all(|c| c.is_ascii_digit() || (c.is_ascii_uppercase() && !"IOQ".contains(c)))
}

/// The record for a `repair-settled` `event` under a validated `config`; refuses a payload
/// that is not a repair order, or lacks a well-formed VIN or settlement date.
pub fn record_for(event: &Event, config: &Config) -> Result<MaintenanceRecord, String> {
    let refuse = |why: String| format!("repair order of event {}: {why}", event.id);
    let order: RepairOrder = serde_json::from_str(&event.payload)
        .map_err(|error| refuse(format!("the payload is not a repair order: {error}")))?;
    let vin = order
        .vin
        .filter(|vin| !vin.trim().is_empty())
        .ok_or_else(|| refuse("no VIN".to_owned()))?;
    if !is_vin(&vin) {
        return Err(refuse(format!("{vin:?} is not a VIN")));
    }
    let date = |what: &str, text: String| {
        Date::parse(&text)
            .map(|date| date.to_string())
            .map_err(|error| refuse(format!("the {what} {text:?}: {error}")))
    };
    let settlement_date = date(
        "settlement date",
        order
            .settled_date
            .filter(|date| !date.trim().is_empty())
            .ok_or_else(|| refuse("no settlement date".to_owned()))?,
    )?;
    let repair_date = match order.repair_date {
        Some(text) => date("repair date", text)?,
        None => settlement_date.clone(),
    };
    Ok(MaintenanceRecord {
        company_code: config.company_code.clone(),
        vin,
        plate_number: order.plate.unwrap_or_default(),
        repair_date,
        repair_mileage: order.mileage_km,
        fault_description: order.fault_description,
        repair_project_list: order
            .items
            .into_iter()
            .map(|item| RepairProject {
                project_name: item.name,
                project_code: item.code,
                working_hours: item.hours,
            })
            .collect(),
        parts_list: order
            .parts
            .into_iter()
            .map(|part| PartsLine {
                parts_name: part.name,
                parts_code: part.code,
                parts_quantity: part.quantity,
            })
            .collect(),
        settlement_date,
        cost_list_code: event.repair_order_id.map(|id| id.to_string()),
    })
}

/// The upload of `record` under a validated `config`.
pub fn upload_request(record: &MaintenanceRecord, config: &Config) -> Result<Request, String> {
    let body = serde_json::to_vec(record).map_err(|error| error.to_string())?;
    Ok(Request::post(config.platform_url.as_str(), body)
        .header("content-type", "application/json")
        .credential_header(config.credential.as_str(), API_KEY_HEADER))
}

/// The actions for `event` once the platform answered `response`.
pub fn actions(event: &Event, response: &Response) -> Result<Vec<Action>, String> {
    if !response.is_success() {
        let text = response.text();
        let quoted: String = text.chars().take(QUOTED_BODY_CHARS).collect();
        return Err(format!(
            "the maintenance platform answered {} to the record of event {}: {quoted}",
            response.status, event.id
        ));
    }
    let receipt: Receipt = serde_json::from_slice(&response.body)
        .map_err(|error| format!("the maintenance platform's answer has no record id: {error}"))?;
    if receipt.record_id.trim().is_empty() {
        return Err("the maintenance platform's answer has a blank recordId".to_owned());
    }
    Ok(vec![Action::RecordReference(Reference {
        key: REFERENCE_KEY.to_owned(),
        value: receipt.record_id,
    })])
}

/// Reads the calling dealer's configuration (one host call) and validates it.
fn load_config() -> Result<Config, String> {
    let config: Config = dealer_sdk::config::document()?;
    config.validate()?;
    Ok(config)
}

struct MaintenanceRecords;

impl Guest for MaintenanceRecords {
    fn handle(event: Event) -> Result<Vec<Action>, String> {
        if event.kind != SETTLED_KIND {
            return Ok(Vec::new());
        }
        let config = load_config()?;
        let record = record_for(&event, &config)?;
        let response = outbound::send(&upload_request(&record, &config)?)?;
        actions(&event, &response)
    }
}

dealer_sdk::export_integration!(MaintenanceRecords);

#[cfg(test)]
mod tests {
    use dealer_sdk::outbound::{Credential, CredentialPlacement, Method};
    use serde_json::{Value, json};

    use super::*;

    const VIN: &str = "LSVAU2180N2183294";

    fn settled(payload: Value) -> Event {
        Event {
            kind: SETTLED_KIND.to_owned(),
            id: "evt-5".to_owned(),
            dealer_id: 7,
            occurred_at: 1_763_900_000_000,
            customer_id: Some(9),
            vehicle_id: Some(3),
            order_id: None,
            repair_order_id: Some(501),
            payload: payload.to_string(),
        }
    }

    fn repair() -> Value {
        json!({
            "vin": VIN, "plate": "京A·12345", "repair_date": "2026-11-20",
            "settled_date": "2026-11-21", "mileage_km": 45_210,
            "fault_description": "发动机异响",
            "items": [{"name": "更换正时皮带", "code": "W-101", "hours": 2.5}],
            "parts": [{"name": "正时皮带", "code": "P-2001", "quantity": 1}],
        })
    }

    fn config() -> Config {
        Config {
            platform_url: "https://jtt1132.example.gov.cn/api/records".to_owned(),
            company_code: "110105000123".to_owned(),
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
    fn a_settled_repair_becomes_a_jtt_1132_record() {
        let record = record_for(&settled(repair()), &config()).unwrap();
        assert_eq!(
            serde_json::to_value(&record).unwrap(),
            json!({
                "companyCode": "110105000123", "vin": VIN, "plateNumber": "京A·12345",
                "repairDate": "2026-11-20", "repairMileage": 45_210,
                "faultDescription": "发动机异响",
                "repairProjectList": [
                    {"projectName": "更换正时皮带", "projectCode": "W-101", "workingHours": 2.5}
                ],
                "partsList": [
                    {"partsName": "正时皮带", "partsCode": "P-2001", "partsQuantity": 1.0}
                ],
                "settlementDate": "2026-11-21", "costListCode": "501",
            })
        );
    }

    #[test]
    fn the_upload_posts_json_with_the_key_in_x_api_key() {
        let record = record_for(&settled(repair()), &config()).unwrap();
        let request = upload_request(&record, &config()).unwrap();
        assert_eq!(request.method, Method::Post);
        assert_eq!(request.url, "https://jtt1132.example.gov.cn/api/records");
        assert_eq!(
            request.headers,
            vec![("content-type".to_owned(), "application/json".to_owned())]
        );
        assert_eq!(
            request.credential,
            Some(Credential {
                handle: "maintenance-platform-key".to_owned(),
                placement: CredentialPlacement::Header("X-Api-Key".to_owned()),
            })
        );
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["vin"], VIN);
        assert_eq!(body["companyCode"], "110105000123");
    }

    #[test]
    fn a_minimal_order_repairs_on_its_settlement_date() {
        let record = record_for(
            &settled(json!({"vin": VIN, "settled_date": "2026-11-21"})),
            &config(),
        )
        .unwrap();
        assert_eq!(record.repair_date, "2026-11-21");
        assert_eq!(record.plate_number, "");
        assert_eq!(record.repair_mileage, None);
        assert!(record.repair_project_list.is_empty() && record.parts_list.is_empty());
    }

    #[test]
    fn a_payload_missing_the_vin_or_the_settlement_date_is_refused() {
        let without = |key: &str| {
            let mut payload = repair();
            payload.as_object_mut().unwrap().remove(key);
            record_for(&settled(payload), &config()).unwrap_err()
        };
        assert_eq!(without("vin"), "repair order of event evt-5: no VIN");
        assert_eq!(
            without("settled_date"),
            "repair order of event evt-5: no settlement date"
        );
        let mut blank = repair();
        blank["vin"] = json!(" ");
        assert_eq!(
            record_for(&settled(blank), &config()).unwrap_err(),
            "repair order of event evt-5: no VIN"
        );
    }

    #[test]
    fn malformed_vins_dates_and_payloads_are_refused() {
        let with = |key: &str, value: Value| {
            let mut payload = repair();
            payload[key] = value;
            record_for(&settled(payload), &config()).unwrap_err()
        };
        assert_eq!(
            with("vin", json!("LSVAU2180N218329")),
            "repair order of event evt-5: \"LSVAU2180N218329\" is not a VIN"
        );
        assert!(with("vin", json!("LSVAU2180N218329O")).ends_with("is not a VIN"));
        assert!(
            with("settled_date", json!("2026-02-30"))
                .starts_with("repair order of event evt-5: the settlement date \"2026-02-30\"")
        );
        assert!(
            with("repair_date", json!("21/11/2026"))
                .starts_with("repair order of event evt-5: the repair date")
        );
        let error = record_for(&settled(json!([1, 2])), &config()).unwrap_err();
        assert!(
            error.contains("the payload is not a repair order"),
            "{error}"
        );
    }

    #[test]
    fn the_answer_becomes_the_record_reference() {
        let actions = actions(
            &settled(repair()),
            &answer(200, r#"{"recordId": "MR-330100-0001", "code": 0}"#),
        )
        .unwrap();
        assert_eq!(
            actions,
            vec![Action::RecordReference(Reference {
                key: "maintenance-record-id".to_owned(),
                value: "MR-330100-0001".to_owned(),
            })]
        );
    }

    #[test]
    fn platform_errors_and_answers_without_an_id_fail() {
        assert_eq!(
            actions(&settled(repair()), &answer(500, "internal error")).unwrap_err(),
            "the maintenance platform answered 500 to the record of event evt-5: internal error"
        );
        for body in ["{}", r#"{"recordId": ""}"#, "ok"] {
            assert!(
                actions(&settled(repair()), &answer(200, body)).is_err(),
                "{body}"
            );
        }
    }

    #[test]
    fn vins_are_checked_for_length_and_letters() {
        assert!(is_vin(VIN));
        assert!(!is_vin("lsvau2180n2183294"));
        assert!(!is_vin("LSVAU2180N2183I94"));
        assert!(!is_vin("LSVAU2180N21832945"));
    }

    #[test]
    fn the_configuration_needs_a_url_a_company_and_a_handle() {
        assert_eq!(config().validate(), Ok(()));
        assert_eq!(
            Config::default().validate(),
            Err("config `platform_url`: \"\" is not an http(s) URL".to_owned())
        );
        let no_company = Config {
            company_code: String::new(),
            ..config()
        };
        assert_eq!(
            no_company.validate(),
            Err("config `company_code`: a blank company code".to_owned())
        );
        let no_handle = Config {
            credential: String::new(),
            ..config()
        };
        assert_eq!(
            no_handle.validate(),
            Err("config `credential`: a blank handle".to_owned())
        );
    }

    #[test]
    fn the_schema_names_every_setting() {
        let schema: Value = serde_json::from_str(include_str!("../config.schema.json")).unwrap();
        let fields = schema["fields"].as_object().unwrap();
        let mut keys: Vec<&String> = fields.keys().collect();
        keys.sort();
        assert_eq!(keys, ["company_code", "credential", "platform_url"]);
        assert_eq!(fields["platform_url"]["required"], true);
        assert_eq!(fields["company_code"]["required"], true);
    }
}
