//! The first-party plugins of `plugins/`, as HQ publishes them: each is uploaded to the
//! catalogue, enabled for a dealer with its default configuration, and decides through the real
//! host, on SQLite and PostgreSQL.

use dealer_tests::{Backend, TestApp, call, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(each_first_party_plugin_decides_through_the_host);

const OCCURRED_AT: i64 = 1_763_900_000_000;

/// The decision of dealer A's plugin for `hook`, which must come from `name`.
async fn decide(app: &TestApp, name: &str, hook: &str, input: Value) -> Value {
    let reply = call(app.post(
        &app.keys.a_admin,
        &format!("/dealers/{}/hooks/{hook}/evaluate", app.units.dealer_a),
        &json!({ "input": input }),
    ))
    .await;
    assert_eq!(reply.status, 200, "{name}: {}", reply.text);
    assert_eq!(reply.body["source"]["plugin"], name, "{}", reply.text);
    reply.body["output"].clone()
}

async fn each_first_party_plugin_decides_through_the_host(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.units.dealer_a;

    app.enable_first_party("commission", "commission").await;
    let lines = decide(
        &app,
        "commission",
        "commission",
        json!({
            "order_id": 1, "dealer_id": a, "customer_id": 7, "model": "汉 EV",
            "delivered_at": OCCURRED_AT, "list_price": 25_980_000, "discount": 800_000,
            "final_price": 25_180_000, "gross_profit": 1_900_000, "lines": [],
            "staff": [
                {"member": {"id": 7, "role": "sales"}, "units_this_month": 12},
                {"member": {"id": 8, "role": "finance"}, "units_this_month": 3},
            ],
        }),
    )
    .await;
    let paid = |staff: i64| -> i64 {
        lines
            .as_array()
            .expect("lines")
            .iter()
            .filter(|l| l["staff_id"] == staff)
            .map(|l| l["amount"].as_i64().expect("fen"))
            .sum()
    };
    // 12 units: the 150 bp tier of the final price, plus 500 bp of the gross profit.
    assert_eq!(
        paid(7),
        25_180_000 * 150 / 10_000 + 1_900_000 * 500 / 10_000,
        "{lines}"
    );
    // Finance supports the sale: 200 bp of the gross profit.
    assert_eq!(paid(8), 1_900_000 * 200 / 10_000, "{lines}");

    app.enable_first_party("approval", "approval").await;
    let decision = decide(
        &app,
        "approval",
        "approval",
        json!({
            "kind": "discount", "dealer_id": a, "requested_by": {"id": 7, "role": "sales"},
            "customer_id": 7, "order_id": 1, "repair_order_id": null,
            "amount": 2_500_000, "base_amount": 25_980_000, "description": "置换优惠",
            "attributes": [],
        }),
    )
    .await;
    let roles: Vec<&str> = decision["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("steps: {decision}"))
        .iter()
        .map(|s| s["role"].as_str().expect("a role"))
        .collect();
    assert_eq!(
        roles,
        ["sales-manager", "general-manager"],
        "9.6% off: {decision}"
    );

    app.enable_first_party("loyalty", "loyalty").await;
    let award = decide(
        &app,
        "loyalty",
        "loyalty",
        json!({
            "kind": "spend", "dealer_id": a, "customer_id": 7, "occurred_at": OCCURRED_AT,
            "amount": 128_800, "reference": "RO-42", "tier": null, "points_balance": 0,
            "lifetime_spend": 0, "attributes": [],
        }),
    )
    .await;
    assert_eq!(
        award["changes"][0]["points"], 1288,
        "1 point per yuan: {award}"
    );

    app.enable_first_party("ticket-routing", "ticket-routing")
        .await;
    let route = decide(
        &app,
        "ticket-routing",
        "ticket-routing",
        json!({
            "ticket_id": 1, "dealer_id": a, "channel": "hotline", "category": "complaint",
            "subject": "高速上刹车发软", "description": "", "customer_id": 7,
            "customer_tier": null, "customer_tags": [], "vehicle_id": null,
            "opened_at": OCCURRED_AT,
        }),
    )
    .await;
    assert_eq!(route["priority"], "urgent", "{route}");
    assert_eq!(route["safety"], true);
    assert_eq!(route["first_contact_due"], OCCURRED_AT + 30 * 60_000);

    app.enable_first_party("reminders", "reminders").await;
    let reminders = decide(
        &app,
        "reminders",
        "reminders",
        json!({
            "vehicle": {
                "id": 9, "dealer_id": a, "vin": "LGXCE4CB0N0123456", "plate": "京A·D12345",
                "brand": "比亚迪", "model": "汉 EV", "trim": null, "purchase_date": "2024-03-18",
                "insurer": "人保", "insurance_expiry": "2026-03-17", "mileage_km": 23_400,
                "daily_km_tenths": 412, "owner_id": 7,
            },
            "owner": null,
            "readings": [{"date": "2025-11-01", "km": 23_400}],
            "visits": [{"date": "2025-06-02", "mileage_km": 16_100, "kind": "maintenance"}],
            "today": "2025-11-23",
        }),
    )
    .await;
    let kinds: Vec<&str> = reminders
        .as_array()
        .expect("reminders")
        .iter()
        .map(|r| r["kind"].as_str().expect("a kind"))
        .collect();
    assert!(kinds.contains(&"maintenance"), "{reminders}");
    assert!(kinds.contains(&"insurance-renewal"), "{reminders}");
    let insurance = reminders
        .as_array()
        .expect("reminders")
        .iter()
        .find(|r| r["kind"] == "insurance-renewal")
        .expect("an insurance reminder");
    assert_eq!(insurance["due"], "2026-02-15", "30 days before expiry");
}
