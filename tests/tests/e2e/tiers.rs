//! One tier vocabulary: the demo's customers, a new customer and the loyalty account use the
//! tiers the first-party plugins' rules name (银卡, 金卡, 铂金), so those rules match them.

use dealer_host::seed;
use dealer_tests::{Backend, TestApp, TestDb, call, on_both_backends};
use serde_json::json;

on_both_backends!(
    the_demo_customers_are_in_tiers_the_loyalty_plugin_knows,
    a_new_customer_starts_in_the_entry_tier,
);

async fn the_demo_customers_are_in_tiers_the_loyalty_plugin_knows(backend: Backend) {
    let demo = TestDb::new(backend).await;
    seed::demo(&demo.db).await.unwrap();
    let tiers: Vec<(String,)> =
        sqlx::query_as("SELECT DISTINCT member_tier FROM customers ORDER BY member_tier")
            .fetch_all(demo.db.pool())
            .await
            .unwrap();
    assert_eq!(tiers.len(), 3, "the demo uses every tier: {tiers:?}");

    let app = TestApp::spawn(backend).await;
    app.enable_first_party("loyalty", "loyalty").await;
    for (n, (tier,)) in tiers.iter().enumerate() {
        let customer = app
            .create(
                &app.keys.a_sales,
                "/customers",
                &json!({"name": "赵敏", "phones": [{"number": format!("1390013900{n}")}],
                        "member_tier": tier}),
            )
            .await;
        let id = customer["id"].as_i64().unwrap();
        let reply = call(app.post(
            &app.keys.a_service,
            &format!("/customers/{id}/points/events"),
            &json!({"kind": "spend", "amount_fen": 10_000,
                    "cause": {"kind": "repair_order", "id": format!("tier-{n}")}}),
        ))
        .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let reason = reply.body["entries"][0]["reason"]
            .as_str()
            .unwrap_or_default();
        assert!(
            reason.contains(&format!("，{tier} ")),
            "the loyalty plugin applies its {tier} multiplier to a demo {tier} customer: {reason}"
        );
    }
}

async fn a_new_customer_starts_in_the_entry_tier(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer = app
        .create(
            &app.keys.a_sales,
            "/customers",
            &json!({"name": "钱多多", "phones": [{"number": "13900139000"}]}),
        )
        .await;
    assert_eq!(customer["member_tier"], "银卡", "{customer}");
    let id = customer["id"].as_i64().unwrap();
    let points = app
        .read(&app.keys.a_service, &format!("/customers/{id}/points"))
        .await;
    assert_eq!(points["account"]["tier"], "银卡", "{points}");
}
