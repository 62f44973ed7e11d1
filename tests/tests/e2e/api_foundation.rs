//! The foundation of the API: health, authentication, API keys, the network tree, staff, the
//! network policy and the audit log, through the real host.

use dealer_tests::{Backend, TestApp, call, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    health_needs_no_key_and_names_the_backend,
    a_request_without_a_key_is_a_401_problem,
    unknown_and_tampered_keys_are_401,
    me_names_the_role_and_unit_of_the_key,
    a_dealer_admin_creates_a_sales_key_whose_secret_is_shown_once,
    a_dealer_admin_cannot_create_hq_keys_or_keys_of_another_dealer,
    a_key_is_held_by_a_staff_member_of_its_own_unit,
    a_key_cannot_be_held_by_another_units_or_an_unknown_staff_member,
    a_revoked_key_is_refused_at_once,
    a_dealer_admin_cannot_revoke_another_dealers_key,
    sales_staff_cannot_manage_keys_staff_or_audit,
    only_hq_admin_changes_the_network,
    invalid_units_are_refused_with_field_errors,
    hq_admin_sets_the_network_policy,
    staff_are_created_in_scope_and_phones_masked_for_managers,
    the_audit_log_shows_a_dealer_admin_only_their_dealer,
    unknown_routes_are_404_problems,
);

fn ids(units: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = units
        .as_array()
        .expect("a list of units")
        .iter()
        .map(|u| u["id"].as_i64().expect("a unit id"))
        .collect();
    ids.sort_unstable();
    ids
}

async fn health_needs_no_key_and_names_the_backend(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reply = call(app.client.get(format!("{}/health", app.base))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["status"], "ok");
    assert_eq!(reply.body["database"], backend.name());
}

async fn a_request_without_a_key_is_a_401_problem(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in ["/me", "/network/units", "/customers", "/keys"] {
        let reply = call(app.client.get(format!("{}{path}", app.base))).await;
        assert_eq!(
            reply.status, 401,
            "GET {path} without a key: {}",
            reply.text
        );
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json"),
            "GET {path}"
        );
        assert_eq!(reply.body["code"], "unauthenticated");
        assert_eq!(reply.body["status"], 401);
        let detail = reply.body["detail"]
            .as_str()
            .expect("a detail for a person");
        assert!(!detail.is_empty());
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    }
}

async fn unknown_and_tampered_keys_are_401(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let real = &app.keys.a_admin;
    let mut tampered = real.clone();
    let last = tampered.pop().expect("a non-empty key");
    tampered.push(if last == '0' { '1' } else { '0' });
    let (prefix_part, _) = real.rsplit_once('_').expect("dk_<prefix>_<secret>");
    let other_secret = format!("{prefix_part}_{}", "ab".repeat(32));
    for key in [
        "garbage",
        "dk_00000000_deadbeef",
        tampered.as_str(),
        other_secret.as_str(),
    ] {
        let reply = call(app.get(key, "/me")).await;
        assert_eq!(reply.status, 401, "key {key:?}: {}", reply.text);
        assert_eq!(reply.body["code"], "unauthenticated");
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json")
        );
    }
    // The real key still works: refusals do not lock it.
    assert_eq!(call(app.get(real, "/me")).await.status, 200);
}

async fn me_names_the_role_and_unit_of_the_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.read(&app.keys.a_sales, "/me").await;
    assert_eq!(me["role"], "sales");
    assert_eq!(me["org_id"], app.units.dealer_a);
    let me = app.read(&app.keys.north_manager, "/me").await;
    assert_eq!(me["role"], "regional_manager");
    assert_eq!(me["org_id"], app.units.north);
    let me = app.read(&app.keys.hq_admin, "/me").await;
    assert_eq!(me["role"], "hq_admin");
    assert_eq!(me["org_id"], app.units.hq);
}

async fn a_dealer_admin_creates_a_sales_key_whose_secret_is_shown_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app
        .create(
            &app.keys.a_admin,
            "/keys",
            &json!({"role": "sales", "label": "王芳的平板"}),
        )
        .await;
    let secret = created["key"]
        .as_str()
        .expect("the secret in the create response")
        .to_owned();
    let prefix = created["prefix"].as_str().expect("a prefix").to_owned();
    assert!(
        secret.starts_with(&format!("dk_{prefix}_")),
        "{secret} / {prefix}"
    );
    assert_eq!(created["role"], "sales");
    assert_eq!(created["org_unit_id"], app.units.dealer_a);
    assert_eq!(created["label"], "王芳的平板");

    // The new key works and acts as sales at dealer_a.
    let me = app.read(&secret, "/me").await;
    assert_eq!(me["role"], "sales");
    assert_eq!(me["org_id"], app.units.dealer_a);

    // Listed by prefix, never with the secret, for the dealer admin and for HQ.
    for admin in [&app.keys.a_admin, &app.keys.hq_admin] {
        let reply = call(app.get(admin, "/keys")).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert!(
            !reply.text.contains(&secret),
            "GET /keys leaks the secret: {}",
            reply.text
        );
        let keys = reply.body.as_array().expect("a list of keys");
        let listed = keys
            .iter()
            .find(|k| k["prefix"] == prefix.as_str())
            .expect("the new key is listed");
        assert!(listed.get("key").is_none(), "{listed}");
        assert!(keys.iter().all(|k| k.get("secret_hash").is_none()));
    }
    // dealer_b's admin does not see dealer_a's keys.
    let b_keys = app.read(&app.keys.b_admin, "/keys").await;
    assert!(
        b_keys
            .as_array()
            .expect("a list")
            .iter()
            .all(|k| k["org_unit_id"] == app.units.dealer_b),
        "{b_keys}"
    );
}

async fn a_dealer_admin_cannot_create_hq_keys_or_keys_of_another_dealer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let before = app
        .read(&app.keys.hq_admin, "/keys")
        .await
        .as_array()
        .expect("a list")
        .len();
    let attempts = [
        json!({"role": "hq_admin", "label": "escalation"}),
        json!({"role": "hq_admin", "org_unit_id": app.units.hq, "label": "escalation"}),
        json!({"role": "regional_manager", "org_unit_id": app.units.north, "label": "x"}),
        json!({"role": "sales", "org_unit_id": app.units.dealer_b, "label": "neighbour"}),
        json!({"role": "dealer_admin", "org_unit_id": app.units.dealer_c, "label": "neighbour"}),
    ];
    for body in &attempts {
        let reply = call(app.post(&app.keys.a_admin, "/keys", body)).await;
        assert_eq!(reply.status, 403, "{body}: {}", reply.text);
        assert_eq!(reply.body["code"], "forbidden");
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json")
        );
    }
    let after = app
        .read(&app.keys.hq_admin, "/keys")
        .await
        .as_array()
        .expect("a list")
        .len();
    assert_eq!(before, after, "a refused request created a key");
}

async fn a_key_is_held_by_a_staff_member_of_its_own_unit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app
        .create(
            &app.keys.a_admin,
            "/keys",
            &json!({"role": "sales", "staff_id": app.staff.a_sales, "label": "王芳的手机"}),
        )
        .await;
    assert_eq!(created["staff_id"], app.staff.a_sales);
    let me = app.read(created["key"].as_str().unwrap(), "/me").await;
    assert_eq!(me["staff_id"], app.staff.a_sales);
    assert_eq!(me["org_id"], app.units.dealer_a);
}

async fn a_key_cannot_be_held_by_another_units_or_an_unknown_staff_member(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let count = || async {
        app.read(&app.keys.hq_admin, "/keys")
            .await
            .as_array()
            .expect("a list")
            .len()
    };
    let before = count().await;
    let attempts = [
        // dealer_b's admin, with a staff member of dealer_a.
        (
            &app.keys.b_admin,
            json!({"role": "dealer_admin", "staff_id": app.staff.a_gm, "label": "x"}),
        ),
        // HQ, for a key at dealer_b held by dealer_a's staff.
        (
            &app.keys.hq_admin,
            json!({"role": "sales", "org_unit_id": app.units.dealer_b,
                   "staff_id": app.staff.a_sales, "label": "x"}),
        ),
        // A staff member who does not exist.
        (
            &app.keys.a_admin,
            json!({"role": "sales", "staff_id": 987_654, "label": "x"}),
        ),
    ];
    for (key, body) in &attempts {
        let reply = call(app.post(key, "/keys", body)).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.text);
        assert!(reply.has_code("unknown_staff"), "{body}: {}", reply.text);
        assert!(reply.names_field("staff_id"), "{body}: {}", reply.text);
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json")
        );
    }
    assert_eq!(count().await, before, "a refused request created a key");
}

async fn a_revoked_key_is_refused_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let by_prefix = app
        .create(
            &app.keys.a_admin,
            "/keys",
            &json!({"role": "sales", "label": "a"}),
        )
        .await;
    let by_id = app
        .create(
            &app.keys.a_admin,
            "/keys",
            &json!({"role": "service", "label": "b"}),
        )
        .await;
    let (secret_1, secret_2) = (
        by_prefix["key"].as_str().unwrap(),
        by_id["key"].as_str().unwrap(),
    );
    assert_eq!(call(app.get(secret_1, "/me")).await.status, 200);
    assert_eq!(call(app.get(secret_2, "/me")).await.status, 200);

    let prefix = by_prefix["prefix"].as_str().unwrap();
    let revoked = call(app.delete(&app.keys.a_admin, &format!("/keys/{prefix}"))).await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert!(revoked.body["revoked_at"].is_string(), "{}", revoked.text);
    let refused = call(app.get(secret_1, "/me")).await;
    assert_eq!(refused.status, 401, "{}", refused.text);
    assert_eq!(refused.body["code"], "unauthenticated");

    let id = by_id["id"].as_i64().unwrap();
    assert_eq!(
        call(app.delete(&app.keys.hq_admin, &format!("/keys/{id}")))
            .await
            .status,
        200
    );
    assert_eq!(call(app.get(secret_2, "/network/units")).await.status, 401);

    // The listing shows them revoked; other keys are untouched.
    let keys = app.read(&app.keys.a_admin, "/keys").await;
    let revoked_ids: Vec<&Value> = keys
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["revoked_at"].is_string())
        .map(|k| &k["id"])
        .collect();
    assert_eq!(revoked_ids.len(), 2, "{keys}");
    assert_eq!(call(app.get(&app.keys.a_sales, "/me")).await.status, 200);

    // A revoked key cannot be used to revoke or create anything either.
    let reply = call(app.post(secret_1, "/keys", &json!({"role": "sales", "label": "c"}))).await;
    assert_eq!(reply.status, 401);
}

async fn a_dealer_admin_cannot_revoke_another_dealers_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app
        .create(
            &app.keys.a_admin,
            "/keys",
            &json!({"role": "sales", "label": "a"}),
        )
        .await;
    let secret = created["key"].as_str().unwrap();
    for target in [
        created["id"].to_string(),
        created["prefix"].as_str().unwrap().to_owned(),
    ] {
        let reply = call(app.delete(&app.keys.b_admin, &format!("/keys/{target}"))).await;
        assert_eq!(reply.status, 404, "{}", reply.text);
        assert_eq!(reply.body["code"], "not_found");
    }
    assert_eq!(
        call(app.get(secret, "/me")).await.status,
        200,
        "the key was revoked from outside"
    );
    let reply = call(app.delete(&app.keys.a_admin, "/keys/doesnotexist")).await;
    assert_eq!(reply.status, 404);
}

async fn sales_staff_cannot_manage_keys_staff_or_audit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.keys.a_sales;
    let refused = [
        call(app.get(key, "/keys")).await,
        call(app.post(key, "/keys", &json!({"role": "sales", "label": "x"}))).await,
        call(app.post(key, "/staff", &json!({"name": "张三", "role": "sales"}))).await,
        call(app.get(key, "/audit")).await,
        call(app.delete(key, "/keys/1")).await,
    ];
    for reply in refused {
        assert_eq!(reply.status, 403, "{}", reply.text);
        assert_eq!(reply.body["code"], "forbidden");
    }
    let staff = app.read(&app.keys.a_admin, "/staff").await;
    assert!(
        staff
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["name"] != "张三"),
        "the refused create added no one: {staff}"
    );
}

async fn only_hq_admin_changes_the_network(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let new_dealer = json!({
        "parent_id": app.units.south, "kind": "dealer", "dealer_type": "repair_shop",
        "code": "SZ-NS-RS", "name": "深圳南山快修店", "city": "深圳"
    });
    for key in [
        &app.keys.a_admin,
        &app.keys.hq_analyst,
        &app.keys.north_manager,
        &app.keys.partner,
    ] {
        let reply = call(app.post(key, "/network/units", &new_dealer)).await;
        assert_eq!(reply.status, 403, "{}", reply.text);
        assert_eq!(reply.body["code"], "forbidden");
    }
    assert_eq!(
        ids(&app.read(&app.keys.hq_admin, "/network/units").await).len(),
        6
    );

    let unit = app
        .create(&app.keys.hq_admin, "/network/units", &new_dealer)
        .await;
    let id = unit["id"].as_i64().unwrap();
    assert_eq!(unit["parent_id"], app.units.south);
    assert_eq!(unit["name"], "深圳南山快修店");
    assert_eq!(unit["dealer_type"], "repair_shop");
    assert!(ids(&app.read(&app.keys.hq_admin, "/network/units").await).contains(&id));
    assert!(!ids(&app.read(&app.keys.north_manager, "/network/units").await).contains(&id));
    assert!(!ids(&app.read(&app.keys.c_admin, "/network/units").await).contains(&id));

    // A key can be attached to the new dealer and sees just it.
    let key = app
        .create(
            &app.keys.hq_admin,
            "/keys",
            &json!({"role": "dealer_admin", "org_unit_id": id, "label": "sz"}),
        )
        .await;
    let units = app
        .read(key["key"].as_str().unwrap(), "/network/units")
        .await;
    assert_eq!(ids(&units), vec![id]);

    // The same code twice is a conflict.
    let reply = call(app.post(&app.keys.hq_admin, "/network/units", &new_dealer)).await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.body["code"], "already_exists");
}

async fn invalid_units_are_refused_with_field_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cases = [
        (
            json!({"parent_id": app.units.north, "kind": "dealer", "code": "X1", "name": "无类型"}),
            "dealer_type",
            "dealer_type_mismatch",
        ),
        (
            json!({"parent_id": app.units.dealer_a, "kind": "region", "code": "X2", "name": "错位大区"}),
            "parent_id",
            "invalid_parent",
        ),
        (
            json!({"parent_id": 999_999, "kind": "region", "code": "X3", "name": "孤儿"}),
            "parent_id",
            "unknown_org_unit",
        ),
        (
            json!({"kind": "hq", "code": "X4", "name": "第二总部"}),
            "kind",
            "hq_exists",
        ),
        (
            json!({"parent_id": app.units.hq, "kind": "region", "code": "X5", "name": "西部", "colour": "red"}),
            "colour",
            "unknown_field",
        ),
    ];
    for (body, field, code) in cases {
        let reply = call(app.post(&app.keys.hq_admin, "/network/units", &body)).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.text);
        assert_eq!(reply.body["code"], "validation_failed");
        let errors = reply.body["errors"].as_array().expect("field errors");
        assert!(
            errors
                .iter()
                .any(|e| e["code"] == code && e["field"].as_str().unwrap_or("").contains(field)),
            "{body}: expected {field}/{code} in {}",
            reply.text
        );
    }
    assert_eq!(
        ids(&app.read(&app.keys.hq_admin, "/network/units").await).len(),
        6,
        "nothing stored"
    );
}

async fn hq_admin_sets_the_network_policy(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let policy = app.read(&app.keys.a_sales, "/network/policy").await;
    assert_eq!(policy["share_history_across_dealers"], false);

    for key in [
        &app.keys.a_admin,
        &app.keys.hq_analyst,
        &app.keys.north_manager,
    ] {
        let reply = call(app.put(
            key,
            "/network/policy",
            &json!({"share_history_across_dealers": true}),
        ))
        .await;
        assert_eq!(reply.status, 403, "{}", reply.text);
    }
    assert_eq!(
        app.read(&app.keys.hq_admin, "/network/policy").await["share_history_across_dealers"],
        false
    );

    let reply = call(app.put(
        &app.keys.hq_admin,
        "/network/policy",
        &json!({"share_history_across_dealers": true}),
    ))
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["share_history_across_dealers"], true);
    assert_eq!(
        app.read(&app.keys.b_admin, "/network/policy").await["share_history_across_dealers"],
        true
    );

    let reply = call(app.put(
        &app.keys.hq_admin,
        "/network/policy",
        &json!({"share": true}),
    ))
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);

    let audit = app
        .read(&app.keys.hq_admin, "/audit?entity=network_policy")
        .await;
    let items = audit["items"].as_array().expect("a page of entries");
    assert_eq!(items.len(), 1, "{audit}");
    assert_eq!(items[0]["action"], "update");
    assert_eq!(items[0]["actor_role"], "hq_admin");
}

async fn staff_are_created_in_scope_and_phones_masked_for_managers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let staff = app
        .create(
            &app.keys.a_admin,
            "/staff",
            &json!({"name": "李娜", "role": "sales", "phone": "13800138000"}),
        )
        .await;
    assert_eq!(staff["org_unit_id"], app.units.dealer_a);
    assert_eq!(staff["name"], "李娜");
    assert_eq!(staff["active"], true);

    let reply = call(app.post(
        &app.keys.a_admin,
        "/staff",
        &json!({"name": "王强", "role": "sales", "org_unit_id": app.units.dealer_b}),
    ))
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(reply.names_field("org_unit_id"), "{}", reply.text);

    let reply = call(app.post(
        &app.keys.a_admin,
        "/staff",
        &json!({"name": "赵六", "role": "hq_admin"}),
    ))
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(reply.has_code("role_does_not_fit_unit"), "{}", reply.text);

    // The fixture's own staff of dealer A come first; the new member is the last.
    let a_list = app.read(&app.keys.a_admin, "/staff").await;
    let added: Vec<&serde_json::Value> = a_list
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == "李娜")
        .collect();
    assert_eq!(added.len(), 1, "{a_list}");
    assert_eq!(added[0]["phone"], "13800138000");
    assert!(
        app.read(&app.keys.b_admin, "/staff")
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        app.read(&app.keys.c_admin, "/staff")
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );
    let phone_of_new = |list: &serde_json::Value| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "李娜")
            .map(|s| s["phone"].clone())
    };
    let north = app.read(&app.keys.north_manager, "/staff").await;
    assert_eq!(phone_of_new(&north), Some(json!("138****8000")), "{north}");
    let hq = app.read(&app.keys.hq_analyst, "/staff").await;
    assert_eq!(phone_of_new(&hq), Some(json!("138****8000")), "{hq}");
}

async fn the_audit_log_shows_a_dealer_admin_only_their_dealer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app
        .create(
            &app.keys.a_admin,
            "/staff",
            &json!({"name": "甲", "role": "service"}),
        )
        .await;
    let b = app
        .create(
            &app.keys.b_admin,
            "/staff",
            &json!({"name": "乙", "role": "service"}),
        )
        .await;

    let entity_ids = |page: &Value| -> Vec<i64> {
        page["items"]
            .as_array()
            .expect("a page")
            .iter()
            .filter_map(|e| e["entity_id"].as_i64())
            .collect()
    };
    let a_view = app.read(&app.keys.a_admin, "/audit?entity=staff").await;
    assert_eq!(
        entity_ids(&a_view),
        vec![a["id"].as_i64().unwrap()],
        "{a_view}"
    );
    let hq_view = app.read(&app.keys.hq_admin, "/audit?entity=staff").await;
    let hq_ids = entity_ids(&hq_view);
    assert_eq!(hq_ids.len(), 2, "{hq_view}");
    assert!(hq_ids.contains(&b["id"].as_i64().unwrap()));
    let entry = &a_view["items"][0];
    assert_eq!(entry["action"], "create");
    assert_eq!(entry["outcome"], "ok");
    assert_eq!(entry["actor_role"], "dealer_admin");
    assert_eq!(entry["dealer_id"], app.units.dealer_a);
    // Entries hold ids, never the personal data itself.
    assert!(!a_view.to_string().contains('甲'), "{a_view}");
}

async fn unknown_routes_are_404_problems(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reply = call(app.get(&app.keys.hq_admin, "/no-such-thing")).await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(reply.body["code"], "not_found");
}
