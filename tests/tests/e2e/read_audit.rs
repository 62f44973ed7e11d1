//! Every read of personal data is audited, in batches and without the write lock, and a
//! technician, whose work is the car, sees customers' phones masked.

use dealer_tests::{Backend, TestApp, call, on_both_backends, valid_vin};
use serde_json::{Value, json};

on_both_backends!(
    reads_of_customers_and_vehicles_are_audited,
    the_360_view_is_read_while_a_write_holds_the_lock,
    a_technician_sees_phones_masked,
);

async fn customer(app: &TestApp, phone: &str) -> i64 {
    app.create(
        &app.keys.a_sales,
        "/customers",
        &json!({"name": "孙丽", "phones": [{"number": phone}]}),
    )
    .await["id"]
        .as_i64()
        .unwrap()
}

/// The `action`s of the audit entries about `entity` `id`, as the dealer's admin reads them.
async fn actions(app: &TestApp, entity: &str, id: i64) -> Vec<(String, i64)> {
    let audit = app
        .read(
            &app.keys.a_admin,
            &format!("/audit?entity={entity}&entity_id={id}&limit=200"),
        )
        .await;
    audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_owned(),
                e["actor_key_id"].as_i64().unwrap_or_default(),
            )
        })
        .collect()
}

fn reads(actions: &[(String, i64)], action: &str) -> usize {
    actions.iter().filter(|(a, _)| a == action).count()
}

async fn reads_of_customers_and_vehicles_are_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = customer(&app, "13800138000").await;
    assert_eq!(reads(&actions(&app, "customer", id).await, "read"), 0);

    app.read(&app.keys.a_service, &format!("/customers/{id}"))
        .await;
    app.read(&app.keys.a_service, "/customers?name=孙丽").await;
    app.read(&app.keys.a_service, &format!("/customers/{id}/360"))
        .await;
    let audited = actions(&app, "customer", id).await;
    assert_eq!(
        reads(&audited, "read"),
        2,
        "the record read and the search that listed it: {audited:?}"
    );
    assert_eq!(reads(&audited, "read_360"), 1, "{audited:?}");
    let service_key = app.caller(&app.keys.a_service).await.key_id;
    assert!(
        audited
            .iter()
            .filter(|(a, _)| a.starts_with("read"))
            .all(|(_, key)| *key == service_key),
        "each read names the key that read: {audited:?}"
    );

    let vehicle = app
        .create(
            &app.keys.a_sales,
            "/vehicles",
            &json!({"vin": valid_vin(7), "brand": "红旗", "model": "H5", "owner_id": id}),
        )
        .await;
    let vehicle_id = vehicle["id"].as_i64().unwrap();
    app.read(&app.keys.a_service, &format!("/vehicles/{vehicle_id}"))
        .await;
    app.read(
        &app.keys.a_service,
        &format!("/vehicles?vin={}", valid_vin(7)),
    )
    .await;
    assert_eq!(
        reads(&actions(&app, "vehicle", vehicle_id).await, "read"),
        2
    );
}

async fn the_360_view_is_read_while_a_write_holds_the_lock(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = customer(&app, "13800138001").await;
    // The key's first use is recorded (a write, once a minute at most); then a write
    // transaction is open (on SQLite it holds the database's write lock) for the whole read:
    // the view and its audit entry must not need it.
    app.read(&app.keys.a_service, "/vehicles?limit=1").await;
    let writing = app.state.db.begin_write().await.unwrap();
    let read = call(app.get(&app.keys.a_service, &format!("/customers/{id}"))).await;
    assert_eq!(read.status, 200, "{}", read.text);
    let view = call(app.get(&app.keys.a_service, &format!("/customers/{id}/360"))).await;
    assert_eq!(view.status, 200, "{}", view.text);
    writing.rollback().await.unwrap();
    let audited = actions(&app, "customer", id).await;
    assert_eq!(reads(&audited, "read_360"), 1, "{audited:?}");
    assert_eq!(reads(&audited, "read"), 1, "{audited:?}");
}

async fn a_technician_sees_phones_masked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = customer(&app, "13800138002").await;
    let phone = |record: &Value| record["phones"][0]["number"].clone();
    let advisor = app
        .read(&app.keys.a_service, &format!("/customers/{id}"))
        .await;
    assert_eq!(phone(&advisor), "13800138002", "{advisor}");
    let technician = app
        .read(&app.keys.a_technician, &format!("/customers/{id}"))
        .await;
    assert_eq!(phone(&technician), "138****8002", "{technician}");
    let listed = app
        .read(&app.keys.a_technician, "/customers?phone=13800138002")
        .await;
    assert_eq!(phone(&listed["items"][0]), "138****8002", "{listed}");
    let view = app
        .read(&app.keys.a_technician, &format!("/customers/{id}/360"))
        .await;
    assert_eq!(phone(&view["customer"]), "138****8002", "{view}");
}
