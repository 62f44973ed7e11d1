//! Who sees what: the network scope of each role, refusals, cross-dealer isolation (with its
//! audit trail), and the append-only audit log.

use dealer_tests::{Backend, TestApp, call, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    a_regional_manager_sees_only_their_region,
    a_dealer_admin_sees_only_their_dealer,
    hq_sees_every_unit,
    a_partner_cannot_read_customer_records,
    read_only_roles_cannot_write_records,
    another_dealers_customer_is_not_found_and_the_attempt_is_audited,
    another_dealers_customers_are_not_listed,
    the_audit_log_refuses_update_and_delete_in_the_database,
);

fn unit_ids(units: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = units
        .as_array()
        .expect("a list of units")
        .iter()
        .map(|u| u["id"].as_i64().expect("an id"))
        .collect();
    ids.sort_unstable();
    ids
}

fn sorted(mut ids: Vec<i64>) -> Vec<i64> {
    ids.sort_unstable();
    ids
}

fn customer(name: &str, phone: &str) -> Value {
    json!({"name": name, "phones": [{"number": phone}], "tags": []})
}

async fn a_regional_manager_sees_only_their_region(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let u = app.units;
    let units = app.read(&app.keys.north_manager, "/network/units").await;
    assert_eq!(
        unit_ids(&units),
        sorted(vec![u.north, u.dealer_a, u.dealer_b]),
        "{units}"
    );
    assert!(!units.to_string().contains("广州天河4S店"), "{units}");
    // Parents come before their children.
    assert_eq!(units[0]["id"], u.north);
}

async fn a_dealer_admin_sees_only_their_dealer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let units = app.read(&app.keys.a_admin, "/network/units").await;
    assert_eq!(unit_ids(&units), vec![app.units.dealer_a], "{units}");
    assert_eq!(units[0]["name"], "北京朝阳4S店");
    assert_eq!(units[0]["dealer_type"], "4s");
    let units = app.read(&app.keys.a_sales, "/network/units").await;
    assert_eq!(unit_ids(&units), vec![app.units.dealer_a], "{units}");
    let units = app.read(&app.keys.c_admin, "/network/units").await;
    assert_eq!(unit_ids(&units), vec![app.units.dealer_c], "{units}");
}

async fn hq_sees_every_unit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let u = app.units;
    let all = sorted(vec![
        u.hq, u.north, u.south, u.dealer_a, u.dealer_b, u.dealer_c,
    ]);
    for key in [&app.keys.hq_admin, &app.keys.hq_analyst] {
        let units = app.read(key, "/network/units").await;
        assert_eq!(unit_ids(&units), all, "{units}");
        assert_eq!(units[0]["kind"], "hq");
    }
}

async fn a_partner_cannot_read_customer_records(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app
        .create(
            &app.keys.a_sales,
            "/customers",
            &customer("张伟", "13800138000"),
        )
        .await;
    let id = created["id"].as_i64().unwrap();
    for path in [
        "/customers".to_owned(),
        "/customers?phone=13800138000".to_owned(),
        format!("/customers/{id}"),
        format!("/customers/{id}/360"),
    ] {
        let reply = call(app.get(&app.keys.partner, &path)).await;
        assert_eq!(reply.status, 403, "GET {path}: {}", reply.text);
        assert_eq!(reply.body["code"], "forbidden");
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json")
        );
        assert!(!reply.text.contains("张伟"), "{}", reply.text);
    }
}

async fn read_only_roles_cannot_write_records(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut body = customer("刘洋", "13900139000");
    body["dealer_id"] = json!(app.units.dealer_a);
    for key in [
        &app.keys.hq_analyst,
        &app.keys.north_manager,
        &app.keys.partner,
    ] {
        let reply = call(app.post(key, "/customers", &body)).await;
        assert_eq!(reply.status, 403, "{}", reply.text);
        assert_eq!(reply.body["code"], "forbidden");
    }
    let page = app.read(&app.keys.hq_admin, "/customers").await;
    assert!(
        page["items"].as_array().expect("a page").is_empty(),
        "{page}"
    );
}

async fn another_dealers_customer_is_not_found_and_the_attempt_is_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app
        .create(
            &app.keys.a_sales,
            "/customers",
            &customer("陈静", "13700137000"),
        )
        .await;
    let id = created["id"].as_i64().unwrap();

    let denied = call(app.get(&app.keys.b_admin, &format!("/customers/{id}"))).await;
    assert_eq!(denied.status, 404, "{}", denied.text);
    assert_eq!(denied.body["code"], "not_found");
    assert!(!denied.text.contains("陈静"));
    // Indistinguishable from a customer that does not exist at all.
    let missing = call(app.get(&app.keys.b_admin, "/customers/987654321")).await;
    assert_eq!(missing.status, 404);
    assert_eq!(denied.body["detail"], missing.body["detail"]);

    let patch = call(
        app.patch(
            &app.keys.b_admin,
            &format!("/customers/{id}"),
            &json!({"name": "篡改"}),
        )
        .header("If-Match", "\"1\""),
    )
    .await;
    assert_eq!(patch.status, 404, "{}", patch.text);
    let view = call(app.get(&app.keys.c_admin, &format!("/customers/{id}/360"))).await;
    assert_eq!(view.status, 404, "{}", view.text);
    assert_eq!(
        app.read(&app.keys.a_sales, &format!("/customers/{id}"))
            .await["name"],
        "陈静"
    );

    let audit = app
        .read(
            &app.keys.hq_admin,
            &format!("/audit?entity=customer&entity_id={id}"),
        )
        .await;
    let items = audit["items"].as_array().expect("a page of entries");
    let denied_by_b = items
        .iter()
        .find(|e| e["outcome"] == "denied" && e["actor_org_id"] == app.units.dealer_b)
        .unwrap_or_else(|| panic!("no denied entry for dealer_b's attempt: {audit}"));
    assert_eq!(denied_by_b["entity"], "customer");
    assert_eq!(denied_by_b["entity_id"], id);
    assert_eq!(denied_by_b["actor_role"], "dealer_admin");
    assert!(
        items
            .iter()
            .any(|e| e["outcome"] == "denied" && e["actor_org_id"] == app.units.dealer_c),
        "no denied entry for dealer_c's attempt: {audit}"
    );
    // dealer_a's admin sees the attempts on its own customer too.
    let a_audit = app
        .read(
            &app.keys.a_admin,
            &format!("/audit?entity_id={id}&outcome=denied"),
        )
        .await;
    assert!(
        a_audit["items"].as_array().is_some_and(|i| i.len() >= 2),
        "{a_audit}"
    );
}

async fn another_dealers_customers_are_not_listed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app
        .create(
            &app.keys.a_sales,
            "/customers",
            &customer("周杰", "13600136000"),
        )
        .await;
    let id = created["id"].clone();
    let listed = |page: &Value| {
        page["items"]
            .as_array()
            .expect("a page")
            .iter()
            .any(|c| c["id"] == id)
    };
    for key in [&app.keys.b_admin, &app.keys.c_admin] {
        assert!(!listed(&app.read(key, "/customers").await));
        assert!(!listed(
            &app.read(key, "/customers?phone=13600136000").await
        ));
        assert!(!listed(&app.read(key, "/customers?name=周").await));
    }
    for key in [
        &app.keys.a_admin,
        &app.keys.a_service,
        &app.keys.north_manager,
        &app.keys.hq_admin,
    ] {
        assert!(listed(&app.read(key, "/customers?phone=13600136000").await));
    }
}

async fn the_audit_log_refuses_update_and_delete_in_the_database(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Some audited acts, so that there are rows to change.
    let reply = call(app.put(
        &app.keys.hq_admin,
        "/network/policy",
        &json!({"share_history_across_dealers": true}),
    ))
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    app.create(
        &app.keys.a_admin,
        "/staff",
        &json!({"name": "审计员", "role": "service"}),
    )
    .await;

    let pool = app.db.pool();
    let count = || async {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_log")
            .fetch_one(pool)
            .await
            .unwrap();
        n
    };
    let before = count().await;
    assert!(before >= 2, "expected audit entries, found {before}");

    let update = sqlx::query("UPDATE audit_log SET action = 'x'")
        .execute(pool)
        .await;
    assert!(
        update.is_err(),
        "UPDATE audit_log succeeded on {}",
        backend.name()
    );
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = sqlx::query("DELETE FROM audit_log").execute(pool).await;
    assert!(
        delete.is_err(),
        "DELETE FROM audit_log succeeded on {}",
        backend.name()
    );
    let one = sqlx::query("DELETE FROM audit_log WHERE id = (SELECT MAX(id) FROM audit_log)")
        .execute(pool)
        .await;
    assert!(
        one.is_err(),
        "deleting one entry succeeded on {}",
        backend.name()
    );

    assert_eq!(count().await, before);
    let (changed,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_log WHERE action = 'x'")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(changed, 0);
    // Appending still works.
    let reply = call(app.put(
        &app.keys.hq_admin,
        "/network/policy",
        &json!({"share_history_across_dealers": false}),
    ))
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(count().await, before + 1);
}
