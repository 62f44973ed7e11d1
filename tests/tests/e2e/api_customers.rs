//! Customers through the API: create, search, read, update with optimistic concurrency,
//! idempotent retries, refusals of bad input, masking, pagination, the 360 view with its
//! interactions and cross-dealer history, and dealer-defined custom fields.

use std::collections::HashSet;

use dealer_tests::{Backend, Reply, TestApp, call, on_both_backends, valid_vin};
use serde_json::{Value, json};

on_both_backends!(
    a_created_customer_has_an_etag_a_location_and_normalised_phones,
    hq_must_name_the_dealer_of_a_new_customer,
    customers_are_found_by_phone_name_and_tag,
    customers_are_found_by_the_plate_or_vin_of_their_vehicle,
    an_update_needs_the_current_version,
    a_retried_create_with_the_same_idempotency_key_stores_one_customer,
    an_idempotency_key_reused_for_another_body_is_refused,
    an_unknown_field_is_refused_and_nothing_stored,
    malformed_json_is_refused_and_nothing_stored,
    a_huge_body_is_refused_and_nothing_stored,
    bad_phones_and_id_numbers_are_refused_with_the_field_named,
    phones_are_masked_for_analysts_and_managers_only,
    pages_walk_every_customer_once,
    chinese_names_round_trip,
    the_360_view_gathers_vehicles_interactions_and_tickets_and_is_audited,
    interactions_are_validated_and_appear_in_the_timeline,
    network_history_follows_the_hq_policy,
    dealer_admins_define_custom_fields_and_sales_cannot,
    custom_field_values_are_validated_on_customers,
    concurrent_updates_from_one_version_let_exactly_one_win,
    concurrent_retries_with_one_idempotency_key_store_one_customer,
    id_numbers_are_masked_for_roles_that_do_not_need_them,
    household_and_referrer_must_be_customers_of_the_same_dealer,
    a_phone_search_accepts_the_number_as_typed,
    changed_phones_change_what_search_finds,
    hq_writes_are_validated_against_the_dealers_custom_fields,
    pages_stay_stable_while_customers_are_added,
    a_body_that_is_not_json_is_refused,
    marketing_consent_records_when_it_was_given,
);

async fn count(app: &TestApp) -> usize {
    app.read(&app.keys.hq_admin, "/customers?limit=200").await["items"]
        .as_array()
        .expect("a page")
        .len()
}

fn items(page: &Value) -> &Vec<Value> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page with items: {page}"))
}

fn ids(page: &Value) -> Vec<i64> {
    items(page)
        .iter()
        .map(|c| c["id"].as_i64().expect("an id"))
        .collect()
}

fn zhang() -> Value {
    json!({
        "name": "张伟",
        "phones": [{"number": "+86 138-0013-8000", "label": "mobile"}],
        "tags": ["VIP", "科技爱好者"],
        "gender": "male",
        "birthday": "1985-06-15",
        "source_channel": "walk_in",
        "marketing_consent": true
    })
}

async fn a_created_customer_has_an_etag_a_location_and_normalised_phones(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reply = call(app.post(&app.keys.a_sales, "/customers", &zhang())).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.header("etag"), Some("\"1\""));
    let body = &reply.body;
    let id = body["id"].as_i64().expect("an id");
    let location = reply.header("location").expect("a Location header");
    assert!(
        location.ends_with(&format!("/customers/{id}")),
        "{location}"
    );
    assert_eq!(body["dealer_id"], app.units.dealer_a);
    assert_eq!(body["name"], "张伟");
    assert_eq!(
        body["phones"],
        json!([{"number": "13800138000", "label": "mobile"}])
    );
    let tags: HashSet<&str> = body["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(tags, HashSet::from(["VIP", "科技爱好者"]));
    assert_eq!(body["version"], 1);
    assert_eq!(body["birthday"], "1985-06-15");
    assert_eq!(body["marketing_consent"], true);

    let read = call(app.get(&app.keys.a_admin, &format!("/customers/{id}"))).await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.header("etag"), Some("\"1\""));
    assert_eq!(read.body["phones"], body["phones"]);
    assert_eq!(read.body["name"], "张伟");
    // The Location header leads to the record (it may be absolute or relative to the host).
    let path = location.split("/api/v1").last().unwrap();
    assert_eq!(app.read(&app.keys.a_admin, path).await["id"], id);
}

async fn hq_must_name_the_dealer_of_a_new_customer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reply = call(app.post(&app.keys.hq_admin, "/customers", &zhang())).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(reply.names_field("dealer_id"), "{}", reply.text);
    assert_eq!(count(&app).await, 0);

    let mut body = zhang();
    body["dealer_id"] = json!(app.units.dealer_b);
    let created = app.create(&app.keys.hq_admin, "/customers", &body).await;
    assert_eq!(created["dealer_id"], app.units.dealer_b);
    // dealer_b sees it, dealer_a does not.
    let id = created["id"].as_i64().unwrap();
    assert_eq!(
        app.read(&app.keys.b_admin, &format!("/customers/{id}"))
            .await["name"],
        "张伟"
    );
    assert_eq!(
        call(app.get(&app.keys.a_admin, &format!("/customers/{id}")))
            .await
            .status,
        404
    );

    // A dealer naming another dealer is refused, not silently moved.
    let mut body = zhang();
    body["dealer_id"] = json!(app.units.dealer_b);
    let reply = call(app.post(&app.keys.a_sales, "/customers", &body)).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(reply.names_field("dealer_id"), "{}", reply.text);
    assert_eq!(count(&app).await, 1);
}

async fn customers_are_found_by_phone_name_and_tag(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let zhang = app.create(&app.keys.a_sales, "/customers", &zhang()).await;
    let li = app
        .create(
            &app.keys.a_sales,
            "/customers",
            &json!({"name": "李娜", "phones": [{"number": "13912345678"}], "tags": ["价格敏感"]}),
        )
        .await;
    let zhang_min = app
        .create(
            &app.keys.a_sales,
            "/customers",
            &json!({"name": "张敏", "phones": [{"number": "13700001111"}], "tags": ["VIP"]}),
        )
        .await;
    let key = &app.keys.a_sales;
    let found = app.read(key, "/customers?phone=13800138000").await;
    assert_eq!(ids(&found), vec![zhang["id"].as_i64().unwrap()], "{found}");
    assert!(
        found.get("next_cursor").is_some(),
        "a page has next_cursor: {found}"
    );
    assert!(found["next_cursor"].is_null());

    let by_name = app.read(key, "/customers?name=%E5%BC%A0").await; // 张
    let mut expected = vec![
        zhang["id"].as_i64().unwrap(),
        zhang_min["id"].as_i64().unwrap(),
    ];
    expected.sort_unstable();
    let mut got = ids(&by_name);
    got.sort_unstable();
    assert_eq!(got, expected, "{by_name}");

    let by_tag = app.read(key, "/customers?tag=VIP").await;
    let mut got = ids(&by_tag);
    got.sort_unstable();
    assert_eq!(got, expected, "{by_tag}");

    let by_tag = app
        .read(
            key,
            &format!("/customers?tag={}", "%E4%BB%B7%E6%A0%BC%E6%95%8F%E6%84%9F"),
        )
        .await;
    assert_eq!(ids(&by_tag), vec![li["id"].as_i64().unwrap()], "{by_tag}");

    assert!(items(&app.read(key, "/customers?phone=13000000000").await).is_empty());
    assert!(items(&app.read(key, "/customers?tag=nobody").await).is_empty());
}

async fn customers_are_found_by_the_plate_or_vin_of_their_vehicle(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create(&app.keys.a_sales, "/customers", &zhang()).await;
    let other = app
        .create(
            &app.keys.a_sales,
            "/customers",
            &json!({"name": "王五", "phones": [{"number": "13911112222"}], "tags": []}),
        )
        .await;
    let vin = valid_vin(1);
    app.create(
        &app.keys.a_sales,
        "/vehicles",
        &json!({"vin": vin, "plate": "京A·12345", "brand": "红旗", "model": "H5", "owner_id": owner["id"]}),
    )
    .await;
    app.create(
        &app.keys.a_sales,
        "/vehicles",
        &json!({"vin": valid_vin(2), "plate": "京B·54321", "brand": "红旗", "model": "H9", "owner_id": other["id"]}),
    )
    .await;
    let key = &app.keys.a_sales;
    let owner_id = owner["id"].as_i64().unwrap();
    for plate in ["%E4%BA%ACA%C2%B712345", "%E4%BA%ACa12345"] {
        // 京A·12345 and 京a12345
        let page = app.read(key, &format!("/customers?plate={plate}")).await;
        assert_eq!(ids(&page), vec![owner_id], "plate {plate}: {page}");
    }
    let page = app.read(key, &format!("/customers?vin={vin}")).await;
    assert_eq!(ids(&page), vec![owner_id], "{page}");
    let page = app
        .read(key, &format!("/customers?vin={}", vin.to_lowercase()))
        .await;
    assert_eq!(ids(&page), vec![owner_id], "a lower-case VIN: {page}");
    assert!(
        items(
            &app.read(key, &format!("/customers?vin={}", valid_vin(3)))
                .await
        )
        .is_empty()
    );
    // Another dealer does not find the owner by the plate.
    assert!(
        items(
            &app.read(&app.keys.b_admin, "/customers?plate=%E4%BA%ACa12345")
                .await
        )
        .is_empty()
    );
}

async fn an_update_needs_the_current_version(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app.create(&app.keys.a_sales, "/customers", &zhang()).await;
    let path = format!("/customers/{}", created["id"]);

    let missing = call(app.patch(&app.keys.a_sales, &path, &json!({"name": "张伟强"}))).await;
    assert_eq!(missing.status, 428, "{}", missing.text);
    assert_eq!(missing.body["code"], "if_match_required");

    let updated = call(
        app.patch(
            &app.keys.a_sales,
            &path,
            &json!({"name": "张伟强", "tags": ["VIP", "老客户"]}),
        )
        .header("If-Match", "\"1\""),
    )
    .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.body["version"], 2);
    assert_eq!(updated.header("etag"), Some("\"2\""));
    assert_eq!(updated.body["name"], "张伟强");
    // Fields not sent are kept.
    assert_eq!(updated.body["phones"][0]["number"], "13800138000");
    assert_eq!(updated.body["birthday"], "1985-06-15");

    let stale = call(
        app.patch(&app.keys.a_admin, &path, &json!({"name": "覆盖者"}))
            .header("If-Match", "\"1\""),
    )
    .await;
    assert_eq!(stale.status, 412, "{}", stale.text);
    assert_eq!(stale.body["code"], "stale_version");
    assert_eq!(stale.body["current_version"], 2);

    let read = call(app.get(&app.keys.a_sales, &path)).await;
    assert_eq!(
        read.body["name"], "张伟强",
        "the stale update was not applied"
    );
    assert_eq!(read.header("etag"), Some("\"2\""));
    let tags: HashSet<&str> = read.body["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(tags, HashSet::from(["VIP", "老客户"]));

    let audit = app
        .read(
            &app.keys.a_admin,
            &format!("/audit?entity=customer&entity_id={}", created["id"]),
        )
        .await;
    let actions: Vec<&str> = items(&audit)
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"create") && actions.contains(&"update"),
        "{audit}"
    );
}

async fn a_retried_create_with_the_same_idempotency_key_stores_one_customer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let send = || {
        call(
            app.post(&app.keys.a_sales, "/customers", &zhang())
                .header("Idempotency-Key", "visit-42"),
        )
    };
    let first = send().await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert!(first.header("idempotent-replayed").is_none());
    let second = send().await;
    assert_eq!(second.status, 201, "{}", second.text);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(second.body["id"], first.body["id"]);
    assert_eq!(second.header("etag"), Some("\"1\""));
    assert_eq!(count(&app).await, 1);

    // The key belongs to the API key that used it: another caller's same key is a new create.
    let other = call(
        app.post(&app.keys.a_admin, "/customers", &zhang())
            .header("Idempotency-Key", "visit-42"),
    )
    .await;
    assert_eq!(other.status, 201, "{}", other.text);
    assert_ne!(other.body["id"], first.body["id"]);
    assert_eq!(count(&app).await, 2);
}

async fn an_idempotency_key_reused_for_another_body_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = call(
        app.post(&app.keys.a_sales, "/customers", &zhang())
            .header("Idempotency-Key", "k-1"),
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let mut changed = zhang();
    changed["name"] = json!("张三");
    let reused = call(
        app.post(&app.keys.a_sales, "/customers", &changed)
            .header("Idempotency-Key", "k-1"),
    )
    .await;
    assert_eq!(reused.status, 422, "{}", reused.text);
    assert_eq!(reused.body["code"], "idempotency_key_reused");
    assert_eq!(count(&app).await, 1);
}

async fn an_unknown_field_is_refused_and_nothing_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut body = zhang();
    body["nickname"] = json!("小张");
    let reply = call(app.post(&app.keys.a_sales, "/customers", &body)).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(reply.body["code"], "validation_failed");
    assert_eq!(
        reply.body["errors"][0]["code"], "unknown_field",
        "{}",
        reply.text
    );
    assert!(
        reply.body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("nickname"),
        "{}",
        reply.text
    );
    assert_eq!(count(&app).await, 0);
}

async fn malformed_json_is_refused_and_nothing_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reply = call(
        app.client
            .post(format!("{}/customers", app.base))
            .bearer_auth(&app.keys.a_sales)
            .header("content-type", "application/json")
            .body(r#"{"name": "张伟", "phones": [{"number": "13800138000"}"#),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.body["code"], "malformed_json");
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(count(&app).await, 0);
}

async fn a_huge_body_is_refused_and_nothing_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, head, body) = app
        .announce_body(
            &app.keys.a_sales,
            "/customers",
            "application/json",
            10 * 1024 * 1024,
        )
        .await;
    assert_eq!(status, 413, "{head}\n{body}");
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    assert_eq!(body["code"], "body_too_large");
    assert_eq!(count(&app).await, 0);
}

async fn bad_phones_and_id_numbers_are_refused_with_the_field_named(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cases = [
        (
            json!({"name": "甲", "phones": [{"number": "12345"}], "tags": []}),
            "phones[0].number",
        ),
        (
            json!({"name": "乙", "phones": [{"number": "13800138000"}, {"number": "138abc45678"}], "tags": []}),
            "phones[1].number",
        ),
        (
            json!({"name": "丙", "phones": [{"number": "13800138000"}], "tags": [], "id_number": "110105194912310021"}),
            "id_number",
        ),
        (
            json!({"name": "丁", "phones": [{"number": "13800138000"}], "tags": [], "id_number": "12345"}),
            "id_number",
        ),
        (
            json!({"name": " ", "phones": [{"number": "13800138000"}], "tags": []}),
            "name",
        ),
    ];
    for (body, field) in cases {
        let reply: Reply = call(app.post(&app.keys.a_sales, "/customers", &body)).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.text);
        assert_eq!(reply.body["code"], "validation_failed");
        assert!(
            reply.names_field(field),
            "{body}: expected field {field} in {}",
            reply.text
        );
        let message = reply.body["errors"][0]["message"].as_str().unwrap_or("");
        assert!(
            !message.is_empty(),
            "a message for a person: {}",
            reply.text
        );
    }
    assert_eq!(count(&app).await, 0);

    // A valid ID number is accepted (and stored upper-case).
    let body = json!({"name": "戊", "phones": [{"number": "13800138000"}], "tags": [], "id_number": "11010519491231002x"});
    let created = app.create(&app.keys.a_sales, "/customers", &body).await;
    assert_eq!(created["id_number"], "11010519491231002X");
}

async fn phones_are_masked_for_analysts_and_managers_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app.create(&app.keys.a_sales, "/customers", &zhang()).await;
    let path = format!("/customers/{}", created["id"]);
    for key in [&app.keys.hq_analyst, &app.keys.north_manager] {
        let read = app.read(key, &path).await;
        assert_eq!(read["phones"][0]["number"], "138****8000", "{read}");
        let listed = app.read(key, "/customers").await;
        assert_eq!(
            listed["items"][0]["phones"][0]["number"], "138****8000",
            "{listed}"
        );
        assert!(!listed.to_string().contains("13800138000"), "{listed}");
        let view = app.read(key, &format!("{path}/360")).await;
        assert!(
            !view.to_string().contains("13800138000"),
            "the 360 view leaks the number: {view}"
        );
    }
    for key in [&app.keys.a_sales, &app.keys.a_admin, &app.keys.hq_admin] {
        assert_eq!(
            app.read(key, &path).await["phones"][0]["number"],
            "13800138000"
        );
    }
}

async fn pages_walk_every_customer_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut created = HashSet::new();
    for i in 0..5 {
        let body = json!({"name": format!("客户{i}"), "phones": [{"number": format!("1380013800{i}")}], "tags": []});
        created.insert(
            app.create(&app.keys.a_sales, "/customers", &body).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/customers?limit=2&cursor={c}"),
            None => "/customers?limit=2".to_owned(),
        };
        let page = app.read(&app.keys.a_sales, &path).await;
        sizes.push(items(&page).len());
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(sizes.len() < 10, "the pages do not end");
    }
    assert_eq!(sizes, vec![2, 2, 1]);
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), created);

    let bad = call(app.get(&app.keys.a_sales, "/customers?limit=0")).await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    let bad = call(app.get(&app.keys.a_sales, "/customers?cursor=not-a-cursor")).await;
    assert_eq!(bad.status, 400, "{}", bad.text);
}

async fn chinese_names_round_trip(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for name in ["欧阳娜娜", "司马懿", "艾力·买买提", "𠮷野家"] {
        let body = json!({"name": name, "phones": [{"number": "13800138000", "label": "家庭"}], "tags": ["老客户"]});
        let created = app.create(&app.keys.a_sales, "/customers", &body).await;
        assert_eq!(created["name"], name);
        let read = app
            .read(&app.keys.a_sales, &format!("/customers/{}", created["id"]))
            .await;
        assert_eq!(read["name"], name);
        assert_eq!(read["phones"][0]["label"], "家庭");
        assert_eq!(read["tags"], json!(["老客户"]));
    }
    let page = app
        .read(&app.keys.a_sales, "/customers?name=%E6%AC%A7%E9%98%B3")
        .await; // 欧阳
    assert_eq!(items(&page).len(), 1, "{page}");
    assert_eq!(page["items"][0]["name"], "欧阳娜娜");
}

async fn the_360_view_gathers_vehicles_interactions_and_tickets_and_is_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer = app.create(&app.keys.a_sales, "/customers", &zhang()).await;
    let id = customer["id"].as_i64().unwrap();
    let vin = valid_vin(11);
    app.create(
        &app.keys.a_sales,
        "/vehicles",
        &json!({"vin": vin, "plate": "京A·12345", "brand": "红旗", "model": "H5", "owner_id": id}),
    )
    .await;
    app.create(
        &app.keys.a_sales,
        &format!("/customers/{id}/interactions"),
        &json!({"kind": "visit", "summary": "到店看车", "channel": "walk_in"}),
    )
    .await;
    app.create(
        &app.keys.a_service,
        "/tickets",
        &json!({"customer_id": id, "channel": "hotline", "category": "complaint", "subject": "空调异响"}),
    )
    .await;

    let view = app
        .read(&app.keys.a_service, &format!("/customers/{id}/360"))
        .await;
    assert_eq!(view["customer"]["id"], id, "{view}");
    assert_eq!(view["customer"]["name"], "张伟");
    let vehicles = view["vehicles"].as_array().expect("vehicles");
    assert_eq!(vehicles.len(), 1, "{view}");
    assert!(vehicles[0].to_string().contains(&vin), "{view}");
    let interactions = view["interactions"].as_array().expect("interactions");
    assert!(
        interactions
            .iter()
            .any(|i| i["summary"] == "到店看车" && i["kind"] == "visit"),
        "{view}"
    );
    let tickets = view["tickets"].as_array().expect("tickets");
    assert!(tickets.iter().any(|t| t["subject"] == "空调异响"), "{view}");
    assert_eq!(view["network_history"], json!([]), "{view}");

    let audit = app
        .read(
            &app.keys.a_admin,
            &format!("/audit?action=read_360&entity_id={id}"),
        )
        .await;
    let entries = items(&audit);
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["entity"], "customer");
    assert_eq!(entries[0]["actor_role"], "service");
    assert_eq!(entries[0]["outcome"], "ok");
}

async fn interactions_are_validated_and_appear_in_the_timeline(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer = app.create(&app.keys.a_sales, "/customers", &zhang()).await;
    let id = customer["id"].as_i64().unwrap();
    let path = format!("/customers/{id}/interactions");
    let created = app
        .create(
            &app.keys.a_sales,
            &path,
            &json!({"kind": "call", "summary": "询问保养价格", "channel": "phone", "occurred_at": "2024-03-01T09:30:00Z"}),
        )
        .await;
    assert_eq!(created["kind"], "call");
    assert_eq!(created["summary"], "询问保养价格");
    app.create(
        &app.keys.a_sales,
        &path,
        &json!({"kind": "note", "summary": "偏好周末到店"}),
    )
    .await;

    for body in [
        json!({"kind": "fax", "summary": "x"}),
        json!({"kind": "call"}),
        json!({"kind": "call", "summary": "x", "vehicle_id": 999_999}),
    ] {
        let reply = call(app.post(&app.keys.a_sales, &path, &body)).await;
        assert!(
            reply.status == 422 || reply.status == 404,
            "{body}: {} {}",
            reply.status,
            reply.text
        );
    }
    let reply = call(app.post(
        &app.keys.b_admin,
        &path,
        &json!({"kind": "note", "summary": "越权"}),
    ))
    .await;
    assert_eq!(reply.status, 404, "{}", reply.text);

    let view = app
        .read(&app.keys.a_sales, &format!("/customers/{id}/360"))
        .await;
    let summaries: Vec<&str> = view["interactions"]
        .as_array()
        .expect("interactions")
        .iter()
        .filter_map(|i| i["summary"].as_str())
        .collect();
    assert_eq!(summaries.len(), 2, "{view}");
    assert!(
        summaries.contains(&"询问保养价格") && summaries.contains(&"偏好周末到店"),
        "{view}"
    );
    assert!(!view.to_string().contains("越权"));
}

async fn network_history_follows_the_hq_policy(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let phone = "13900139000";
    let at_a = app
        .create(
            &app.keys.a_sales,
            "/customers",
            &json!({"name": "孙丽", "phones": [{"number": phone}], "tags": []}),
        )
        .await;
    let vin = valid_vin(21);
    app.create(
        &app.keys.a_sales,
        "/vehicles",
        &json!({"vin": vin, "plate": "京A·88888", "brand": "红旗", "model": "H7", "owner_id": at_a["id"]}),
    )
    .await;
    let at_b = app
        .create(
            &app.keys.b_admin,
            "/customers",
            &json!({"name": "孙丽", "phones": [{"number": phone}], "tags": []}),
        )
        .await;
    let path = format!("/customers/{}/360", at_b["id"]);

    let off = app.read(&app.keys.b_admin, &path).await;
    assert_eq!(off["network_history"], json!([]), "policy off: {off}");
    assert!(
        !off.to_string().contains(&vin),
        "policy off leaks dealer_a's vehicle: {off}"
    );

    let reply = call(app.put(
        &app.keys.hq_admin,
        "/network/policy",
        &json!({"share_history_across_dealers": true}),
    ))
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    // The same phone alone links to nobody (`shared_history`); the customer's consent does.
    let reply = call(app.put(
        &app.keys.b_admin,
        &format!("/customers/{}/share-consent", at_b["id"]),
        &json!({"consent": true}),
    ))
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let on = app.read(&app.keys.b_admin, &path).await;
    let history = on["network_history"].as_array().expect("network_history");
    assert!(!history.is_empty(), "policy on: {on}");
    assert!(
        on["network_history"].to_string().contains(&vin),
        "dealer_a's vehicle is in the history: {on}"
    );
    // The history is extra information; dealer_b's own record is unchanged.
    assert_eq!(on["vehicles"], json!([]), "{on}");
    assert_eq!(on["customer"]["dealer_id"], app.units.dealer_b);

    let reply = call(app.put(
        &app.keys.hq_admin,
        "/network/policy",
        &json!({"share_history_across_dealers": false}),
    ))
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        app.read(&app.keys.b_admin, &path).await["network_history"],
        json!([])
    );
}

async fn dealer_admins_define_custom_fields_and_sales_cannot(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let def = json!({"entity": "customer", "key": "children_count", "label": "子女数量", "type": "integer", "min": 0, "max": 10});
    let reply = call(app.post(&app.keys.a_sales, "/custom-fields", &def)).await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert_eq!(reply.body["code"], "forbidden");

    let created = app.create(&app.keys.a_admin, "/custom-fields", &def).await;
    assert_eq!(created["key"], "children_count");
    assert_eq!(created["type"], "integer");
    assert_eq!(created["label"], "子女数量");

    let listed = app
        .read(&app.keys.a_sales, "/custom-fields?entity=customer")
        .await;
    let text = listed.to_string();
    assert!(text.contains("children_count"), "{listed}");
    assert!(
        !app.read(&app.keys.a_sales, "/custom-fields?entity=vehicle")
            .await
            .to_string()
            .contains("children_count")
    );
    assert!(
        !app.read(&app.keys.b_admin, "/custom-fields?entity=customer")
            .await
            .to_string()
            .contains("children_count")
    );

    let reply = call(app.post(&app.keys.a_admin, "/custom-fields", &def)).await;
    assert_eq!(reply.status, 409, "the same key twice: {}", reply.text);
    let bad = json!({"entity": "customer", "key": "x", "label": "x", "type": "colour"});
    assert_eq!(
        call(app.post(&app.keys.a_admin, "/custom-fields", &bad))
            .await
            .status,
        422
    );
    let no_choices = json!({"entity": "customer", "key": "y", "label": "y", "type": "choice"});
    assert_eq!(
        call(app.post(&app.keys.a_admin, "/custom-fields", &no_choices))
            .await
            .status,
        422
    );
}

async fn custom_field_values_are_validated_on_customers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for def in [
        json!({"entity": "customer", "key": "children_count", "label": "子女数量", "type": "integer", "min": 0, "max": 10}),
        json!({"entity": "customer", "key": "licence", "label": "驾照类型", "type": "choice", "choices": ["C1", "C2"], "required": true}),
    ] {
        app.create(&app.keys.a_admin, "/custom-fields", &def).await;
    }
    let with = |fields: Value| json!({"name": "郑爽", "phones": [{"number": "13800138000"}], "tags": [], "custom_fields": fields});
    let cases = [
        (
            with(json!({"licence": "C1", "children_count": "two"})),
            "custom_fields.children_count",
            None,
        ),
        (
            with(json!({"licence": "C1", "children_count": 11})),
            "custom_fields.children_count",
            None,
        ),
        (
            with(json!({"licence": "A1"})),
            "custom_fields.licence",
            None,
        ),
        (
            with(json!({"licence": "C1", "shoe_size": 42})),
            "custom_fields.shoe_size",
            Some("unknown_custom_field"),
        ),
        (
            with(json!({"children_count": 1})),
            "custom_fields.licence",
            Some("required"),
        ),
        (
            json!({"name": "郑爽", "phones": [{"number": "13800138000"}], "tags": []}),
            "custom_fields.licence",
            Some("required"),
        ),
    ];
    for (body, field, code) in cases {
        let reply = call(app.post(&app.keys.a_sales, "/customers", &body)).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.text);
        assert!(
            reply.names_field(field),
            "{body}: expected {field} in {}",
            reply.text
        );
        if let Some(code) = code {
            assert!(
                reply.has_code(code),
                "{body}: expected code {code} in {}",
                reply.text
            );
        }
    }
    assert_eq!(count(&app).await, 0);

    let created = app
        .create(
            &app.keys.a_sales,
            "/customers",
            &with(json!({"licence": "C2", "children_count": 2})),
        )
        .await;
    assert_eq!(
        created["custom_fields"],
        json!({"licence": "C2", "children_count": 2})
    );
    let read = app
        .read(&app.keys.a_sales, &format!("/customers/{}", created["id"]))
        .await;
    assert_eq!(
        read["custom_fields"],
        json!({"licence": "C2", "children_count": 2})
    );

    // A PATCH is validated the same way.
    let path = format!("/customers/{}", created["id"]);
    let reply = call(
        app.patch(
            &app.keys.a_sales,
            &path,
            &json!({"custom_fields": {"licence": "C2", "children_count": -1}}),
        )
        .header("If-Match", "\"1\""),
    )
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(
        reply.names_field("custom_fields.children_count"),
        "{}",
        reply.text
    );
    assert_eq!(app.read(&app.keys.a_sales, &path).await["version"], 1);

    // Definitions are per dealer: dealer_b has none, so nothing is required there.
    let at_b = app
        .create(
            &app.keys.b_admin,
            "/customers",
            &json!({"name": "郑爽", "phones": [{"number": "13800138000"}], "tags": []}),
        )
        .await;
    assert_eq!(at_b["custom_fields"], json!({}));
}

async fn concurrent_updates_from_one_version_let_exactly_one_win(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app.create(&app.keys.a_sales, "/customers", &zhang()).await;
    let path = format!("/customers/{}", created["id"]);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6 {
        let request = app
            .patch(
                &app.keys.a_sales,
                &path,
                &json!({"name": format!("并发{i}")}),
            )
            .header("If-Match", "\"1\"");
        tasks.spawn(call(request));
    }
    let replies = tasks.join_all().await;
    let winners: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    assert_eq!(
        winners.len(),
        1,
        "{:?}",
        replies
            .iter()
            .map(|r| (r.status, &r.text))
            .collect::<Vec<_>>()
    );
    for loser in replies.iter().filter(|r| r.status != 200) {
        assert_eq!(loser.status, 412, "{}", loser.text);
        assert_eq!(loser.body["code"], "stale_version");
    }
    let read = app.read(&app.keys.a_sales, &path).await;
    assert_eq!(read["version"], 2);
    assert_eq!(
        read["name"], winners[0].body["name"],
        "the stored name is the winner's"
    );
}

async fn concurrent_retries_with_one_idempotency_key_store_one_customer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let request = app
            .post(&app.keys.a_sales, "/customers", &zhang())
            .header("Idempotency-Key", "retry-storm");
        tasks.spawn(call(request));
    }
    let replies = tasks.join_all().await;
    for reply in &replies {
        assert_eq!(reply.status, 201, "{}", reply.text);
        assert_eq!(reply.body["id"], replies[0].body["id"]);
    }
    let fresh = replies
        .iter()
        .filter(|r| r.header("idempotent-replayed").is_none())
        .count();
    assert_eq!(fresh, 1, "exactly one request created the customer");
    assert_eq!(count(&app).await, 1);
}

async fn id_numbers_are_masked_for_roles_that_do_not_need_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut body = zhang();
    body["id_number"] = json!("11010519491231002X");
    let created = app.create(&app.keys.a_sales, "/customers", &body).await;
    let path = format!("/customers/{}", created["id"]);
    for key in [
        &app.keys.hq_analyst,
        &app.keys.north_manager,
        &app.keys.a_service,
    ] {
        let read = app.read(key, &path).await;
        assert_eq!(read["id_number"], "1101**********002X", "{read}");
        let view = app.read(key, &format!("{path}/360")).await;
        assert!(
            !view.to_string().contains("11010519491231002X"),
            "the 360 view leaks the ID number: {view}"
        );
        let listed = app.read(key, "/customers").await;
        assert!(
            !listed.to_string().contains("11010519491231002X"),
            "the list leaks the ID number: {listed}"
        );
    }
    for key in [&app.keys.a_sales, &app.keys.a_admin, &app.keys.hq_admin] {
        assert_eq!(
            app.read(key, &path).await["id_number"],
            "11010519491231002X"
        );
    }
}

async fn household_and_referrer_must_be_customers_of_the_same_dealer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let elsewhere = app
        .create(
            &app.keys.b_admin,
            "/customers",
            &json!({"name": "外店客户", "phones": [{"number": "13500135000"}], "tags": []}),
        )
        .await;
    let spouse = app
        .create(
            &app.keys.a_sales,
            "/customers",
            &json!({"name": "王芳", "phones": [{"number": "13600136000"}], "tags": []}),
        )
        .await;
    let mut refer_elsewhere = zhang();
    refer_elsewhere["referrer_id"] = elsewhere["id"].clone();
    let mut household_elsewhere = zhang();
    household_elsewhere["household"] =
        json!([{"member_id": elsewhere["id"], "relation": "spouse"}]);
    for body in [refer_elsewhere, household_elsewhere] {
        let reply = call(app.post(&app.keys.a_sales, "/customers", &body)).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.text);
        assert!(
            !reply.text.contains("外店客户"),
            "the refusal leaks the other dealer's customer: {}",
            reply.text
        );
    }
    assert_eq!(count(&app).await, 2, "nothing stored");

    let mut body = zhang();
    body["referrer_id"] = spouse["id"].clone();
    body["household"] = json!([{"member_id": spouse["id"], "relation": "spouse"}]);
    let created = app.create(&app.keys.a_sales, "/customers", &body).await;
    assert_eq!(created["referrer_id"], spouse["id"]);
    assert_eq!(
        created["household"],
        json!([{"member_id": spouse["id"], "relation": "spouse", "name": "王芳"}])
    );
    let read = app
        .read(&app.keys.a_sales, &format!("/customers/{}", created["id"]))
        .await;
    assert_eq!(read["household"], created["household"]);

    // A PATCH cannot link to another dealer's customer either.
    let reply = call(
        app.patch(
            &app.keys.a_sales,
            &format!("/customers/{}", created["id"]),
            &json!({"household": [{"member_id": elsewhere["id"], "relation": "sibling"}]}),
        )
        .header("If-Match", "\"1\""),
    )
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(
        app.read(&app.keys.a_sales, &format!("/customers/{}", created["id"]))
            .await["version"],
        1
    );
}

async fn a_phone_search_accepts_the_number_as_typed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app.create(&app.keys.a_sales, "/customers", &zhang()).await;
    let id = created["id"].as_i64().unwrap();
    // "+86 138-0013-8000" and "138 0013 8000", URL-encoded.
    for typed in ["%2B86%20138-0013-8000", "138%200013%208000", "8000"] {
        let page = app
            .read(&app.keys.a_sales, &format!("/customers?phone={typed}"))
            .await;
        assert_eq!(ids(&page), vec![id], "phone={typed}: {page}");
    }
}

async fn changed_phones_change_what_search_finds(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app.create(&app.keys.a_sales, "/customers", &zhang()).await;
    let id = created["id"].as_i64().unwrap();
    let reply = call(
        app.patch(
            &app.keys.a_sales,
            &format!("/customers/{id}"),
            &json!({"phones": [{"number": "139 0000 1111", "label": "work"}]}),
        )
        .header("If-Match", "\"1\""),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body["phones"],
        json!([{"number": "13900001111", "label": "work"}])
    );
    assert_eq!(
        ids(&app
            .read(&app.keys.a_sales, "/customers?phone=13900001111")
            .await),
        vec![id]
    );
    assert!(
        items(
            &app.read(&app.keys.a_sales, "/customers?phone=13800138000")
                .await
        )
        .is_empty()
    );

    let bad = call(
        app.patch(
            &app.keys.a_sales,
            &format!("/customers/{id}"),
            &json!({"phones": [{"number": "999"}]}),
        )
        .header("If-Match", "\"2\""),
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert!(bad.names_field("phones[0].number"), "{}", bad.text);
    let read = app
        .read(&app.keys.a_sales, &format!("/customers/{id}"))
        .await;
    assert_eq!(read["version"], 2);
    assert_eq!(read["phones"][0]["number"], "13900001111");
}

async fn hq_writes_are_validated_against_the_dealers_custom_fields(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create(
        &app.keys.a_admin,
        "/custom-fields",
        &json!({"entity": "customer", "key": "licence", "label": "驾照类型", "type": "choice", "choices": ["C1", "C2"], "required": true}),
    )
    .await;
    let mut body = zhang();
    body["dealer_id"] = json!(app.units.dealer_a);
    let reply = call(app.post(&app.keys.hq_admin, "/customers", &body)).await;
    assert_eq!(
        reply.status, 422,
        "dealer_a's required field applies to HQ's writes: {}",
        reply.text
    );
    assert!(reply.names_field("custom_fields.licence"), "{}", reply.text);
    body["custom_fields"] = json!({"licence": "C1"});
    let created = app.create(&app.keys.hq_admin, "/customers", &body).await;
    assert_eq!(created["custom_fields"], json!({"licence": "C1"}));
    // The same body for dealer_c (no definitions) names a field dealer_c does not have.
    body["dealer_id"] = json!(app.units.dealer_c);
    let reply = call(app.post(&app.keys.hq_admin, "/customers", &body)).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(reply.has_code("unknown_custom_field"), "{}", reply.text);
}

async fn pages_stay_stable_while_customers_are_added(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut first_five = HashSet::new();
    for i in 0..5 {
        let body = json!({"name": format!("老客户{i}"), "phones": [{"number": format!("1370013700{i}")}], "tags": []});
        first_five.insert(
            app.create(&app.keys.a_sales, "/customers", &body).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let page = app.read(&app.keys.a_sales, "/customers?limit=2").await;
    let mut seen = ids(&page);
    let mut cursor = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    for i in 0..3 {
        let body = json!({"name": format!("新客户{i}"), "phones": [{"number": format!("1360013600{i}")}], "tags": []});
        app.create(&app.keys.a_sales, "/customers", &body).await;
    }
    loop {
        let page = app
            .read(
                &app.keys.a_sales,
                &format!("/customers?limit=2&cursor={cursor}"),
            )
            .await;
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), first_five);
}

async fn a_body_that_is_not_json_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reply = call(
        app.client
            .post(format!("{}/customers", app.base))
            .bearer_auth(&app.keys.a_sales)
            .header("content-type", "text/plain")
            .body("name=张伟"),
    )
    .await;
    assert_eq!(reply.status, 415, "{}", reply.text);
    assert_eq!(reply.body["code"], "unsupported_media_type");
    let reply = call(app.get(&app.keys.a_sales, "/customers?limit=many")).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(count(&app).await, 0);
}

async fn marketing_consent_records_when_it_was_given(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let consented = app.create(&app.keys.a_sales, "/customers", &zhang()).await;
    assert!(consented["marketing_consent_at"].is_string(), "{consented}");
    let mut body = zhang();
    body["marketing_consent"] = json!(false);
    let declined = app.create(&app.keys.a_sales, "/customers", &body).await;
    assert_eq!(declined["marketing_consent"], false);
    assert!(declined["marketing_consent_at"].is_null(), "{declined}");

    let path = format!("/customers/{}", consented["id"]);
    let withdrawn = call(
        app.patch(
            &app.keys.a_sales,
            &path,
            &json!({"marketing_consent": false}),
        )
        .header("If-Match", "\"1\""),
    )
    .await;
    assert_eq!(withdrawn.status, 200, "{}", withdrawn.text);
    assert_eq!(withdrawn.body["marketing_consent"], false);
    let marketable = app.read(&app.keys.a_sales, &path).await;
    assert_eq!(marketable["marketing_consent"], false);
}
