//! Shared steps of the after-sales service tests: an owner with a car, actions sent with the
//! ETag just read, and small valid photos.

use dealer_host::clock;
use serde_json::{Value, json};

use crate::{Reply, TestApp, call, valid_vin};

/// A customer of the key's dealer owning a new vehicle (VIN from `serial`) with `components`;
/// returns `(customer_id, vehicle_id)`.
pub async fn owner_with_car(
    app: &TestApp,
    key: &str,
    serial: u32,
    components: Value,
) -> (i64, i64) {
    let customer = app
        .create(
            key,
            "/customers",
            &json!({"name": "王建国", "phones": [{"number": format!("1390000{serial:04}")}], "tags": []}),
        )
        .await["id"]
        .as_i64()
        .expect("a customer id");
    let vehicle = app
        .create(
            key,
            "/vehicles",
            &json!({
                "vin": valid_vin(serial), "plate": "京A·12345", "brand": "红旗", "model": "H5",
                "purchase_date": "2024-01-10", "owner_id": customer, "components": components,
            }),
        )
        .await["id"]
        .as_i64()
        .expect("a vehicle id");
    (customer, vehicle)
}

/// Reads `record` for its ETag, then POSTs `body` to `record + action` with `If-Match`.
pub async fn act(app: &TestApp, key: &str, record: &str, action: &str, body: &Value) -> Reply {
    let read = call(app.get(key, record)).await;
    assert_eq!(read.status, 200, "GET {record}: {}", read.text);
    let etag = read.header("etag").expect("an ETag").to_owned();
    call(
        app.post(key, &format!("{record}{action}"), body)
            .header("If-Match", etag),
    )
    .await
}

/// [`act`] that must answer 200; returns the record.
pub async fn act_ok(app: &TestApp, key: &str, record: &str, action: &str, body: &Value) -> Value {
    let reply = act(app, key, record, action, body).await;
    assert_eq!(
        reply.status, 200,
        "POST {record}{action} {body}: {}",
        reply.text
    );
    reply.body
}

/// A tiny PNG (signature, header chunk, and some data).
pub fn png() -> Vec<u8> {
    let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    bytes.extend_from_slice(&[0, 0, 0, 13, b'I', b'H', b'D', b'R']);
    bytes.extend_from_slice(&[
        0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1F, 0x15, 0xC4, 0x89,
    ]);
    bytes
}

/// A tiny JPEG (start-of-image marker and some data).
pub fn jpeg() -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0];
    bytes.extend_from_slice(&[1, 1, 0, 0, 1, 0, 1, 0, 0, 0xFF, 0xD9]);
    bytes
}

/// Uploads `bytes` as `content_type` to `path` with `key`.
pub async fn upload(
    app: &TestApp,
    key: &str,
    path: &str,
    content_type: &str,
    bytes: Vec<u8>,
) -> Reply {
    call(
        app.client
            .post(format!("{}{path}", app.base))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(bytes),
    )
    .await
}

/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// Today's date in UTC, `YYYY-MM-DD`, shifted by `days`.
pub fn day(days: i64) -> String {
    // Reporting periods are days in the dealer's time (China Standard Time in the fixture).
    clock::business_date(clock::now_ms() + days * DAY_MS, clock::CST_MINUTES)
        .format("%Y-%m-%d")
        .to_string()
}

/// A slot start `days` from now, at 09:00 UTC (tomorrow or later is always in the future).
pub fn slot(days: i64) -> String {
    format!("{}T09:00:00Z", day(days))
}
