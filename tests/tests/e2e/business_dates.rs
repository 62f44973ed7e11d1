//! Business dates are the dealer's (China Standard Time unless it says otherwise): a car
//! delivered at 07:00 in Beijing on the 1st (23:00 UTC on the last day of the month before)
//! counts toward the 1st's month in the consultant's commission statement.

use chrono::{NaiveDate, TimeZone, Utc};
use dealer_tests::{Backend, TestApp, call, on_both_backends, valid_vin};
use serde_json::{Value, json};

on_both_backends!(a_delivery_at_seven_in_beijing_on_the_first_counts_in_that_month,);

async fn move_to(app: &TestApp, order: &Value, status: &str) -> Value {
    let reply = call(
        app.post(
            &app.keys.a_sales,
            &format!("/orders/{}/status", order["id"]),
            &json!({"status": status}),
        )
        .header("If-Match", format!("\"{}\"", order["version"])),
    )
    .await;
    assert_eq!(reply.status, 200, "to {status}: {}", reply.text);
    reply.body
}

async fn statement(app: &TestApp, month: &str) -> Value {
    let path = format!("/commission?staff_id={}&month={month}", app.staff.a_sales);
    app.read(&app.keys.a_admin, &path).await
}

async fn a_delivery_at_seven_in_beijing_on_the_first_counts_in_that_month(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer = app
        .create(
            &app.keys.a_sales,
            "/customers",
            &json!({"name": "黄磊", "phones": [{"number": "13800138031"}]}),
        )
        .await;
    let order = app
        .create(
            &app.keys.a_sales,
            "/orders",
            &json!({
                "customer_id": customer["id"], "consultant_id": app.staff.a_sales,
                "brand": "红旗", "model": "H5", "vin": valid_vin(31),
                "list_price_fen": 20_000_000, "vehicle_cost_fen": 18_000_000,
            }),
        )
        .await;
    let mut order = order;
    for status in ["confirmed", "pdi_passed", "ready"] {
        order = move_to(&app, &order, status).await;
    }

    // 2026-03-01 07:00 in Beijing is 2026-02-28 23:00 UTC.
    let seven_in_beijing = Utc.with_ymd_and_hms(2026, 2, 28, 23, 0, 0).unwrap();
    app.db
        .set_now_for_tests(seven_in_beijing.timestamp_millis());
    let reply = call(
        app.post(
            &app.keys.a_sales,
            &format!("/orders/{}/delivery", order["id"]),
            &json!({"mileage_km": 5}),
        )
        .header("If-Match", format!("\"{}\"", order["version"])),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let delivered = reply.body;
    assert!(
        delivered["delivered_at"]
            .as_str()
            .is_some_and(|t| t.starts_with("2026-02-28T23:")),
        "{delivered}"
    );
    let lines = delivered["commission"]
        .as_array()
        .expect("commission lines");
    assert!(!lines.is_empty(), "{delivered}");
    assert_eq!(lines[0]["month"], "2026-03", "{delivered}");

    let march = statement(&app, "2026-03").await;
    assert_eq!(march["lines"][0]["order_id"], order["id"], "{march}");
    let february = statement(&app, "2026-02").await;
    assert_eq!(february["lines"], json!([]), "{february}");

    // The car's purchase date is the Beijing date of its delivery.
    let vehicle = app
        .read(
            &app.keys.a_sales,
            &format!("/vehicles/{}", delivered["vehicle_id"]),
        )
        .await;
    assert_eq!(
        vehicle["purchase_date"],
        NaiveDate::from_ymd_opt(2026, 3, 1).unwrap().to_string(),
        "{vehicle}"
    );
}
