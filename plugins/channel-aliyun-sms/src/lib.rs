//! Channel plugin: an SMS through Alibaba Cloud SMS (`SendSms`, the RPC-style API of
//! `dysmsapi.aliyuncs.com`, version 2017-05-25), for WIT 0.2.0.
//!
//! The request is a signed `GET`: the parameters (AccessKeyId, Action, Format, PhoneNumbers,
//! SignName, TemplateCode, TemplateParam, SignatureMethod, SignatureNonce, SignatureVersion,
//! Timestamp, Version) percent-encoded (RFC 3986), sorted and joined into the canonicalized
//! query; the string to sign is `GET&%2F&` followed by it percent-encoded; the signature is
//! the base64 of its HMAC-SHA1 under `AccessKeySecret + "&"`. That key never enters the
//! plugin: the dealer stores it as the secret [`CREDENTIAL`] (the AccessKeySecret followed by
//! `&`) and the host signs (`dealer_sdk::signing::hmac_sha1`). The AccessKeyId, the
//! SignName, the TemplateCode of each template and the endpoint are the dealer's
//! configuration.
//!
//! The provider's answer: `Code` `OK` is a receipt per number holding the `BizId`; a
//! throttling code (`isv.BUSINESS_LIMIT_CONTROL`, `Throttling.*`), a used nonce, a provider
//! that did not answer or answered 5xx are worth retrying; every other code is not.
//!
//! Everything but the two host calls is a pure function, tested natively.

use std::collections::BTreeMap;

use base64::Engine;
use dealer_sdk::channel::{Failure, Guest, Message, Receipt};
use dealer_sdk::outbound::{self, Request};
use dealer_sdk::types::HostError;
use dealer_sdk::{clock, config, signing};
use serde::{Deserialize, Serialize};

/// The credential handle of the dealer's AccessKeySecret, stored followed by `&`.
pub const CREDENTIAL: &str = "aliyun-sms-secret";

/// Alibaba Cloud's SMS endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://dysmsapi.aliyuncs.com/";

/// The numbers one `SendSms` request may carry.
pub const MAX_NUMBERS: usize = 1000;

/// The dealer's configuration (`config.schema.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub access_key_id: String,
    pub sign_name: String,
    /// The platform's template name → the approved `TemplateCode`.
    pub templates: BTreeMap<String, String>,
    pub endpoint: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            access_key_id: String::new(),
            sign_name: String::new(),
            templates: BTreeMap::new(),
            endpoint: DEFAULT_ENDPOINT.to_owned(),
        }
    }
}

/// Percent-encodes `text` as Alibaba Cloud's signature does: RFC 3986, every byte but
/// `A-Z a-z 0-9 - _ . ~` as `%XX` (so a space is `%20`, `*` is `%2A`).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The canonicalized query: `key=value` pairs, each percent-encoded, sorted by key, joined by
/// `&`.
pub fn canonical_query(params: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .map(|(key, value)| (percent_encode(key), percent_encode(value)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// What is signed: `GET&%2F&` and the canonicalized query, percent-encoded.
pub fn string_to_sign(canonical_query: &str) -> String {
    format!("GET&%2F&{}", percent_encode(canonical_query))
}

/// `ms` since the epoch as ISO 8601 in UTC to the second: `2017-07-12T02:42:19Z`.
pub fn timestamp(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Days to the civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// A nonce unique to this message at this instant (a retry is later, so another nonce):
/// the time and an FNV-1a digest of the numbers, the template and its parameters.
pub fn nonce(message: &Message, now_ms: i64) -> String {
    let mut digest: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |text: &str| {
        for byte in text.bytes().chain([0]) {
            digest ^= u64::from(byte);
            digest = digest.wrapping_mul(0x0100_0000_01b3);
        }
    };
    message.to.iter().for_each(|to| eat(to));
    eat(&message.template);
    message.params.iter().for_each(|(key, value)| {
        eat(key);
        eat(value);
    });
    format!("{now_ms}-{digest:016x}")
}

/// The `SendSms` parameters of `message`, without the signature.
pub fn send_sms_params(
    config: &Config,
    message: &Message,
    now_ms: i64,
) -> Result<Vec<(String, String)>, Failure> {
    if message.channel != "sms" {
        return Err(Failure::permanent(format!(
            "this plugin sends SMS, not `{}`",
            message.channel
        )));
    }
    if message.to.is_empty() || message.to.len() > MAX_NUMBERS {
        return Err(Failure::permanent(format!(
            "an SMS goes to 1 to {MAX_NUMBERS} numbers, not {}",
            message.to.len()
        )));
    }
    if config.access_key_id.is_empty() || config.sign_name.is_empty() {
        return Err(Failure::permanent(
            "the configuration needs access_key_id and sign_name",
        ));
    }
    let Some(code) = config.templates.get(&message.template) else {
        return Err(Failure::permanent(format!(
            "the configuration has no TemplateCode for the template `{}`",
            message.template
        )));
    };
    let template_param: serde_json::Map<String, serde_json::Value> = message
        .params
        .iter()
        .map(|(key, value)| (key.clone(), serde_json::Value::String(value.clone())))
        .collect();
    let param = |key: &str, value: String| (key.to_owned(), value);
    Ok(vec![
        param("AccessKeyId", config.access_key_id.clone()),
        param("Action", "SendSms".to_owned()),
        param("Format", "JSON".to_owned()),
        param("PhoneNumbers", message.to.join(",")),
        param("SignName", config.sign_name.clone()),
        param("SignatureMethod", "HMAC-SHA1".to_owned()),
        param("SignatureNonce", nonce(message, now_ms)),
        param("SignatureVersion", "1.0".to_owned()),
        param("TemplateCode", code.clone()),
        param(
            "TemplateParam",
            serde_json::Value::Object(template_param).to_string(),
        ),
        param("Timestamp", timestamp(now_ms)),
        param("Version", "2017-05-25".to_owned()),
    ])
}

/// The request URL: the endpoint, the signature first, then the canonicalized query.
pub fn signed_url(endpoint: &str, canonical_query: &str, signature: &[u8]) -> String {
    let signature = base64::engine::general_purpose::STANDARD.encode(signature);
    format!(
        "{endpoint}?Signature={}&{canonical_query}",
        percent_encode(&signature)
    )
}

/// `SendSms`'s answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    biz_id: String,
}

/// Codes worth retrying: throttled, or a nonce already used (the next one differs).
fn is_retryable(code: &str) -> bool {
    code == "isv.BUSINESS_LIMIT_CONTROL"
        || code.starts_with("Throttling")
        || code == "SignatureNonceUsed"
}

/// The receipts, or why it failed, from the provider's answer (`status`, `body`).
pub fn read_answer(message: &Message, status: u16, body: &[u8]) -> Result<Vec<Receipt>, Failure> {
    let answer: Answer = match serde_json::from_slice(body) {
        Ok(answer) => answer,
        Err(_) if status >= 500 => {
            return Err(Failure::retryable(format!(
                "Alibaba Cloud answered {status}"
            )));
        }
        Err(error) => {
            return Err(Failure::permanent(format!(
                "Alibaba Cloud answered {status} with what is not a SendSms answer: {error}"
            )));
        }
    };
    if answer.code == "OK" {
        return Ok(message
            .to
            .iter()
            .map(|address| Receipt {
                address: address.clone(),
                answer: answer.biz_id.clone(),
            })
            .collect());
    }
    let text = format!(
        "Alibaba Cloud refused the SMS: {} {}",
        answer.code, answer.message
    );
    if is_retryable(&answer.code) || status >= 500 {
        return Err(Failure::retryable(text));
    }
    if answer.code.starts_with("SignatureDoesNotMatch") || answer.code.contains("AccessKey") {
        return Err(Failure::permanent(format!(
            "{text} (check the secret `{CREDENTIAL}`: the AccessKeySecret followed by `&`)"
        )));
    }
    Err(Failure::permanent(text))
}

/// A refused host call: a partner that could not be reached is worth retrying; a refused
/// grant, credential or URL is not.
fn host_failure(what: &str, error: HostError) -> Failure {
    let retryable = matches!(
        error,
        HostError::Unavailable(_) | HostError::QuotaExceeded(_)
    );
    let text = format!("{what}: {}", String::from(error));
    if retryable {
        Failure::retryable(text)
    } else {
        Failure::permanent(text)
    }
}

struct AliyunSms;

impl Guest for AliyunSms {
    fn send(message: Message) -> Result<Vec<Receipt>, Failure> {
        let config: Config = config::document().map_err(Failure::permanent)?;
        let params = send_sms_params(&config, &message, clock::now())?;
        let query = canonical_query(&params);
        let signature = signing::hmac_sha1(CREDENTIAL, string_to_sign(&query).as_bytes())
            .map_err(|error| host_failure("signing", error))?;
        let response = outbound::send(&Request::get(signed_url(
            &config.endpoint,
            &query,
            &signature,
        )))
        .map_err(|error| host_failure("calling Alibaba Cloud", error))?;
        read_answer(&message, response.status, &response.body)
    }
}

dealer_sdk::export_channel!(AliyunSms);

#[cfg(test)]
mod tests {
    use super::*;
    use dealer_sdk::channel::Purpose;
    use hmac::{Hmac, Mac};

    fn hmac_sha1(key: &str, data: &str) -> Vec<u8> {
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).expect("a key");
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn message() -> Message {
        Message {
            channel: "sms".to_owned(),
            to: vec!["13800000000".to_owned(), "13900000001".to_owned()],
            template: "maintenance-due".to_owned(),
            params: owned(&[("model", "汉 EV"), ("date", "2025-12-01")]),
            purpose: Purpose::Service,
        }
    }

    fn config() -> Config {
        Config {
            access_key_id: "LTAI-test".to_owned(),
            sign_name: "比亚迪4S店".to_owned(),
            templates: [("maintenance-due".to_owned(), "SMS_123456789".to_owned())].into(),
            ..Config::default()
        }
    }

    /// The example of Alibaba Cloud's SMS documentation (AccessKeyId `testId`, AccessKeySecret
    /// `testSecret`) signs to `zJDF+Lrzhj/ThnlvIToysFRq6t4=`.
    #[test]
    fn signs_alibaba_clouds_documented_example() {
        let params = owned(&[
            ("AccessKeyId", "testId"),
            ("Action", "SendSms"),
            ("Format", "XML"),
            ("OutId", "123"),
            ("PhoneNumbers", "15300000001"),
            ("RegionId", "cn-hangzhou"),
            ("SignName", "阿里云短信测试专用"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "45e25e9b-0a6f-4070-8c85-2956eda1b466"),
            ("SignatureVersion", "1.0"),
            ("TemplateCode", "SMS_71390007"),
            ("TemplateParam", "{\"customer\":\"test\"}"),
            ("Timestamp", "2017-07-12T02:42:19Z"),
            ("Version", "2017-05-25"),
        ]);
        let query = canonical_query(&params);
        assert!(query.starts_with("AccessKeyId=testId&Action=SendSms&Format=XML&OutId=123"));
        assert!(query.contains(
            "&SignName=%E9%98%BF%E9%87%8C%E4%BA%91%E7%9F%AD%E4%BF%A1%E6%B5%8B%E8%AF%95%E4%B8%93%E7%94%A8&"
        ));
        assert!(query.contains("&TemplateParam=%7B%22customer%22%3A%22test%22%7D&"));
        let signature = hmac_sha1("testSecret&", &string_to_sign(&query));
        let url = signed_url("https://dysmsapi.aliyuncs.com/", &query, &signature);
        assert!(
            url.starts_with("https://dysmsapi.aliyuncs.com/?Signature=zJDF%2BLrzhj%2FThnlvIToysFRq6t4%3D&AccessKeyId=testId&"),
            "{url}"
        );
    }

    #[test]
    fn percent_encoding_is_rfc_3986() {
        assert_eq!(percent_encode("a b*c~d-_.e"), "a%20b%2Ac~d-_.e");
        assert_eq!(percent_encode("汉"), "%E6%B1%89");
        assert_eq!(percent_encode("+/="), "%2B%2F%3D");
    }

    #[test]
    fn timestamps_are_iso_8601_utc() {
        assert_eq!(timestamp(1_499_827_339_000), "2017-07-12T02:42:19Z");
        assert_eq!(timestamp(1_763_900_000_999), "2025-11-23T12:13:20Z");
        assert_eq!(timestamp(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn a_message_becomes_the_send_sms_parameters() {
        let params = send_sms_params(&config(), &message(), 1_763_900_000_000).expect("params");
        let get = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("{key}"))
        };
        assert_eq!(get("PhoneNumbers"), "13800000000,13900000001");
        assert_eq!(get("TemplateCode"), "SMS_123456789");
        assert_eq!(
            get("TemplateParam"),
            r#"{"model":"汉 EV","date":"2025-12-01"}"#
        );
        assert_eq!(get("Timestamp"), "2025-11-23T12:13:20Z");
        assert_eq!(get("SignatureMethod"), "HMAC-SHA1");
        assert_ne!(
            get("SignatureNonce"),
            nonce(&message(), 1_763_900_000_001),
            "a retry signs with another nonce"
        );

        let mut wechat = message();
        wechat.channel = "wechat".to_owned();
        let unknown = Message {
            template: "birthday".to_owned(),
            ..message()
        };
        for refused in [wechat, unknown] {
            let failure = send_sms_params(&config(), &refused, 0).expect_err("refused");
            assert!(!failure.retryable, "{}", failure.message);
        }
        let failure = send_sms_params(&Config::default(), &message(), 0).expect_err("no config");
        assert!(failure.message.contains("access_key_id"));
    }

    #[test]
    fn the_providers_answer_is_a_receipt_per_number_or_a_failure() {
        let ok = br#"{"Message":"OK","RequestId":"F655A8D5","BizId":"900619746936498440^0","Code":"OK"}"#;
        let receipts = read_answer(&message(), 200, ok).expect("sent");
        assert_eq!(receipts.len(), 2);
        assert_eq!(receipts[1].address, "13900000001");
        assert_eq!(receipts[1].answer, "900619746936498440^0");

        for (code, retryable) in [
            ("isv.BUSINESS_LIMIT_CONTROL", true),
            ("Throttling.User", true),
            ("isv.MOBILE_NUMBER_ILLEGAL", false),
            ("isv.SMS_TEMPLATE_ILLEGAL", false),
            ("SignatureDoesNotMatch", false),
        ] {
            let body = format!(r#"{{"Message":"m","RequestId":"r","Code":"{code}"}}"#);
            let failure = read_answer(&message(), 400, body.as_bytes()).expect_err(code);
            assert_eq!(failure.retryable, retryable, "{code}");
            assert!(failure.message.contains(code));
        }
        assert!(
            read_answer(&message(), 503, b"busy")
                .expect_err("5xx")
                .retryable
        );
        assert!(
            !read_answer(&message(), 404, b"nope")
                .expect_err("4xx")
                .retryable
        );
    }
}
