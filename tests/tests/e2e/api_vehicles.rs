//! Vehicles through the API: VIN and plate validation, search, optimistic updates, the people
//! of a vehicle and its ownership history, mileage readings, and vehicle custom fields.

use dealer_tests::{Backend, TestApp, call, on_both_backends, valid_vin};
use serde_json::{Value, json};

on_both_backends!(
    a_vehicle_is_created_with_a_normalised_plate,
    a_vin_with_a_wrong_check_digit_or_a_forbidden_letter_is_refused,
    a_malformed_plate_is_refused,
    the_same_vin_twice_at_one_dealer_is_a_conflict,
    vehicles_are_found_by_vin_plate_and_customer,
    a_vehicle_update_needs_the_current_version,
    a_new_owner_closes_the_previous_ownership,
    mileage_readings_never_go_back_and_give_a_daily_estimate,
    another_dealers_vehicle_is_not_found,
    a_partner_cannot_read_vehicles,
    custom_field_values_are_validated_on_vehicles,
    a_backdated_reading_cannot_exceed_a_later_one,
    a_vehicle_cannot_be_given_another_dealers_customer_as_owner,
);

fn items(page: &Value) -> &Vec<Value> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page with items: {page}"))
}

fn ids(page: &Value) -> Vec<i64> {
    items(page)
        .iter()
        .map(|v| v["id"].as_i64().expect("an id"))
        .collect()
}

async fn vehicle_count(app: &TestApp) -> usize {
    items(&app.read(&app.keys.hq_admin, "/vehicles?limit=200").await).len()
}

fn hongqi(vin: &str) -> Value {
    json!({
        "vin": vin, "plate": "京a 12345", "brand": "红旗", "model": "H5", "trim": "智联旗畅版",
        "color": "天青蓝", "model_year": 2023, "purchase_date": "2023-05-20",
        "insurer": "中国人保", "insurance_expiry": "2025-05-19",
        "components": [{"component": "battery", "batch": "CATL-2305-B"}]
    })
}

async fn customer(app: &TestApp, key: &str, name: &str, phone: &str) -> i64 {
    app.create(
        key,
        "/customers",
        &json!({"name": name, "phones": [{"number": phone}], "tags": []}),
    )
    .await["id"]
        .as_i64()
        .unwrap()
}

/// Links a person to a vehicle; the answer is the people linked now.
async fn link(app: &TestApp, path: &str, body: Value) -> Vec<Value> {
    let reply = call(app.post(&app.keys.a_sales, path, &body)).await;
    assert_eq!(reply.status, 200, "POST {path} {body}: {}", reply.text);
    reply
        .body
        .as_array()
        .unwrap_or_else(|| panic!("the people linked now: {}", reply.text))
        .clone()
}

fn as_list(body: &Value) -> Vec<Value> {
    body.as_array()
        .unwrap_or_else(|| panic!("a list: {body}"))
        .clone()
}

async fn a_vehicle_is_created_with_a_normalised_plate(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let vin = valid_vin(1);
    let reply = call(app.post(&app.keys.a_sales, "/vehicles", &hongqi(&vin.to_lowercase()))).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.header("etag"), Some("\"1\""));
    let id = reply.body["id"].as_i64().expect("an id");
    assert!(
        reply
            .header("location")
            .is_some_and(|l| l.ends_with(&format!("/vehicles/{id}")))
    );
    let v = &reply.body;
    assert_eq!(v["vin"], vin, "the VIN is stored upper-case");
    assert_eq!(v["plate"], "京A·12345");
    assert_eq!(v["dealer_id"], app.units.dealer_a);
    assert_eq!(v["brand"], "红旗");
    assert_eq!(v["trim"], "智联旗畅版");
    assert_eq!(v["model_year"], 2023);
    assert_eq!(v["purchase_date"], "2023-05-20");
    assert_eq!(v["insurance_expiry"], "2025-05-19");
    assert_eq!(v["version"], 1);
    assert_eq!(
        v["components"],
        json!([{"component": "battery", "batch": "CATL-2305-B"}])
    );

    let read = call(app.get(&app.keys.a_service, &format!("/vehicles/{id}"))).await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.header("etag"), Some("\"1\""));
    assert_eq!(read.body["plate"], "京A·12345");
    assert_eq!(read.body["components"], v["components"]);
}

async fn a_vin_with_a_wrong_check_digit_or_a_forbidden_letter_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let good = valid_vin(7);
    let mut wrong_check: Vec<char> = good.chars().collect();
    wrong_check[8] = if wrong_check[8] == '1' { '2' } else { '1' };
    let wrong_check: String = wrong_check.into_iter().collect();
    let with_o = format!("{}O{}", &good[..11], &good[12..]);
    let with_i = format!("{}I{}", &good[..11], &good[12..]);
    for vin in [
        wrong_check.as_str(),
        with_o.as_str(),
        with_i.as_str(),
        &good[..16],
        "LSVAU2180N2*00007",
    ] {
        let reply = call(app.post(&app.keys.a_sales, "/vehicles", &hongqi(vin))).await;
        assert_eq!(reply.status, 422, "{vin}: {}", reply.text);
        assert_eq!(reply.body["code"], "validation_failed");
        assert_eq!(
            reply.body["errors"][0]["field"], "vin",
            "{vin}: {}",
            reply.text
        );
        assert_eq!(
            reply.body["errors"][0]["code"], "invalid_vin",
            "{vin}: {}",
            reply.text
        );
    }
    let reply = call(app.post(&app.keys.a_sales, "/vehicles", &hongqi(&with_o))).await;
    assert!(
        reply.body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains('O'),
        "{}",
        reply.text
    );
    assert_eq!(vehicle_count(&app).await, 0, "nothing stored");
}

async fn a_malformed_plate_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // The last three have eight characters but not the GA 36-2018 new-energy layout.
    for (i, plate) in [
        "XA12345",
        "京I12345",
        "京A123",
        "京A1234567",
        "京AO1234",
        "沪AF0236X",
        "京AX12345",
        "粤B1234DF",
    ]
    .into_iter()
    .enumerate()
    {
        let mut body = hongqi(&valid_vin(100 + u32::try_from(i).unwrap()));
        body["plate"] = json!(plate);
        let reply = call(app.post(&app.keys.a_sales, "/vehicles", &body)).await;
        assert_eq!(reply.status, 422, "{plate}: {}", reply.text);
        assert!(
            reply.body["errors"].as_array().is_some_and(|e| e
                .iter()
                .any(|e| e["field"] == "plate" && e["code"] == "invalid_plate")),
            "{plate}: {}",
            reply.text
        );
    }
    assert_eq!(vehicle_count(&app).await, 0, "nothing stored");
    // New-energy plates have six characters after the office letter; a vehicle may have none yet.
    let mut body = hongqi(&valid_vin(200));
    body["plate"] = json!("粤B·D12345");
    assert_eq!(
        app.create(&app.keys.a_sales, "/vehicles", &body).await["plate"],
        "粤B·D12345"
    );
    let mut body = hongqi(&valid_vin(201));
    body.as_object_mut().unwrap().remove("plate");
    assert!(app.create(&app.keys.a_sales, "/vehicles", &body).await["plate"].is_null());
}

async fn the_same_vin_twice_at_one_dealer_is_a_conflict(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let vin = valid_vin(3);
    app.create(&app.keys.a_sales, "/vehicles", &hongqi(&vin))
        .await;
    let reply = call(app.post(&app.keys.a_admin, "/vehicles", &hongqi(&vin))).await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.body["code"], "already_exists");
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(vehicle_count(&app).await, 1);
    // The same car serviced at another dealer is that dealer's own record.
    let at_b = app
        .create(&app.keys.b_admin, "/vehicles", &hongqi(&vin))
        .await;
    assert_eq!(at_b["dealer_id"], app.units.dealer_b);
    assert_eq!(vehicle_count(&app).await, 2);
}

async fn vehicles_are_found_by_vin_plate_and_customer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = customer(&app, &app.keys.a_sales, "张伟", "13800138000").await;
    let vin = valid_vin(4);
    let mut body = hongqi(&vin);
    body["owner_id"] = json!(owner);
    let mine = app.create(&app.keys.a_sales, "/vehicles", &body).await["id"]
        .as_i64()
        .unwrap();
    let mut other = hongqi(&valid_vin(5));
    other["plate"] = json!("京B·99999");
    let theirs = app.create(&app.keys.a_sales, "/vehicles", &other).await["id"]
        .as_i64()
        .unwrap();

    let key = &app.keys.a_sales;
    assert_eq!(
        ids(&app.read(key, &format!("/vehicles?vin={vin}")).await),
        vec![mine]
    );
    assert_eq!(
        ids(&app
            .read(key, &format!("/vehicles?vin={}", vin.to_lowercase()))
            .await),
        vec![mine]
    );
    // 京A·12345 and 京a12345
    assert_eq!(
        ids(&app.read(key, "/vehicles?plate=%E4%BA%ACA%C2%B712345").await),
        vec![mine]
    );
    assert_eq!(
        ids(&app.read(key, "/vehicles?plate=%E4%BA%ACa12345").await),
        vec![mine]
    );
    assert_eq!(
        ids(&app
            .read(key, &format!("/vehicles?customer_id={owner}"))
            .await),
        vec![mine]
    );
    let mut all = ids(&app.read(key, "/vehicles").await);
    all.sort_unstable();
    assert_eq!(all, vec![mine, theirs]);
    assert!(
        items(
            &app.read(&app.keys.b_admin, &format!("/vehicles?vin={vin}"))
                .await
        )
        .is_empty()
    );
}

async fn a_vehicle_update_needs_the_current_version(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app
        .create(&app.keys.a_sales, "/vehicles", &hongqi(&valid_vin(6)))
        .await;
    let path = format!("/vehicles/{}", created["id"]);
    let missing = call(app.patch(&app.keys.a_sales, &path, &json!({"color": "玄武黑"}))).await;
    assert_eq!(missing.status, 428, "{}", missing.text);
    assert_eq!(missing.body["code"], "if_match_required");

    let updated = call(
        app.patch(
            &app.keys.a_sales,
            &path,
            &json!({"color": "玄武黑", "plate": "京C·11111"}),
        )
        .header("If-Match", "\"1\""),
    )
    .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.body["version"], 2);
    assert_eq!(updated.header("etag"), Some("\"2\""));
    assert_eq!(updated.body["color"], "玄武黑");
    assert_eq!(updated.body["plate"], "京C·11111");
    assert_eq!(updated.body["brand"], "红旗", "fields not sent are kept");

    let stale = call(
        app.patch(&app.keys.a_sales, &path, &json!({"color": "白"}))
            .header("If-Match", "\"1\""),
    )
    .await;
    assert_eq!(stale.status, 412, "{}", stale.text);
    assert_eq!(stale.body["code"], "stale_version");
    assert_eq!(stale.body["current_version"], 2);

    let bad = call(
        app.patch(&app.keys.a_sales, &path, &json!({"plate": "京I00000"}))
            .header("If-Match", "\"2\""),
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    let read = app.read(&app.keys.a_sales, &path).await;
    assert_eq!(read["color"], "玄武黑");
    assert_eq!(read["plate"], "京C·11111");
    assert_eq!(read["version"], 2);
    // The new plate is searchable, the old one no longer.
    assert_eq!(
        items(
            &app.read(&app.keys.a_sales, "/vehicles?plate=%E4%BA%ACC11111")
                .await
        )
        .len(),
        1
    );
    assert!(
        items(
            &app.read(&app.keys.a_sales, "/vehicles?plate=%E4%BA%ACA12345")
                .await
        )
        .is_empty()
    );
}

async fn a_new_owner_closes_the_previous_ownership(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = customer(&app, &app.keys.a_sales, "张伟", "13800138000").await;
    let second = customer(&app, &app.keys.a_sales, "李娜", "13912345678").await;
    let driver = customer(&app, &app.keys.a_sales, "张小伟", "13700137000").await;
    let vehicle = app
        .create(&app.keys.a_sales, "/vehicles", &hongqi(&valid_vin(8)))
        .await;
    let people = format!("/vehicles/{}/people", vehicle["id"]);

    let now = link(
        &app,
        &people,
        json!({"customer_id": first, "role": "owner"}),
    )
    .await;
    assert!(
        now.iter()
            .any(|p| p["customer_id"] == first && p["role"] == "owner"),
        "{now:?}"
    );
    link(
        &app,
        &people,
        json!({"customer_id": driver, "role": "main_driver"}),
    )
    .await;
    let now = link(
        &app,
        &people,
        json!({"customer_id": second, "role": "owner"}),
    )
    .await;
    let current: Vec<(i64, &str)> = now
        .iter()
        .map(|p| {
            (
                p["customer_id"].as_i64().unwrap(),
                p["role"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(current.contains(&(second, "owner")), "{now:?}");
    assert!(current.contains(&(driver, "main_driver")), "{now:?}");
    assert!(
        !current.iter().any(|(c, _)| *c == first),
        "the previous owner is no longer linked: {now:?}"
    );

    let ownership = as_list(
        &app.read(
            &app.keys.a_sales,
            &format!("/vehicles/{}/ownership", vehicle["id"]),
        )
        .await,
    );
    let of = |id: i64| {
        ownership
            .iter()
            .find(|r| r["customer_id"] == id)
            .unwrap_or_else(|| panic!("customer {id} in the ownership history: {ownership:?}"))
    };
    assert!(
        of(first)["until"].is_string(),
        "the previous owner's link is closed: {ownership:?}"
    );
    assert!(
        of(second)["until"].is_null(),
        "the new owner is current: {ownership:?}"
    );
    assert!(
        ownership.iter().all(|r| r["customer_id"] != driver),
        "drivers are not owners: {ownership:?}"
    );

    // The vehicle is now listed for the new owner, not for the old one.
    let vehicle_id = vehicle["id"].as_i64().unwrap();
    assert_eq!(
        ids(&app
            .read(
                &app.keys.a_sales,
                &format!("/vehicles?customer_id={second}")
            )
            .await),
        vec![vehicle_id]
    );
    assert!(
        !ids(&app
            .read(&app.keys.a_sales, &format!("/vehicles?customer_id={first}"))
            .await)
        .contains(&vehicle_id)
    );

    let reply = call(app.post(
        &app.keys.a_sales,
        &people,
        &json!({"customer_id": first, "role": "mechanic"}),
    ))
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    // A customer of another dealer cannot be attached.
    let elsewhere = customer(&app, &app.keys.b_admin, "钱七", "13500135000").await;
    let reply = call(app.post(
        &app.keys.a_sales,
        &people,
        &json!({"customer_id": elsewhere, "role": "owner"}),
    ))
    .await;
    assert!(
        reply.status == 404 || reply.status == 422,
        "{} {}",
        reply.status,
        reply.text
    );
    let ownership = as_list(
        &app.read(
            &app.keys.a_sales,
            &format!("/vehicles/{vehicle_id}/ownership"),
        )
        .await,
    );
    assert!(
        ownership.iter().all(|r| r["customer_id"] != elsewhere),
        "{ownership:?}"
    );
}

async fn mileage_readings_never_go_back_and_give_a_daily_estimate(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let vehicle = app
        .create(&app.keys.a_service, "/vehicles", &hongqi(&valid_vin(9)))
        .await;
    let path = format!("/vehicles/{}/mileage", vehicle["id"]);
    app.create(
        &app.keys.a_service,
        &path,
        &json!({"km": 10_000, "read_at": "2024-01-01T00:00:00Z"}),
    )
    .await;
    let second = app
        .create(
            &app.keys.a_service,
            &path,
            &json!({"km": 15_000, "read_at": "2024-04-10T00:00:00Z"}),
        )
        .await;
    assert_eq!(second["km"], 15_000);

    let lower = call(app.post(
        &app.keys.a_service,
        &path,
        &json!({"km": 14_000, "read_at": "2024-05-01T00:00:00Z"}),
    ))
    .await;
    assert_eq!(lower.status, 422, "{}", lower.text);
    assert!(lower.has_code("mileage_decreased"), "{}", lower.text);
    let negative = call(app.post(&app.keys.a_service, &path, &json!({"km": -5}))).await;
    assert_eq!(negative.status, 422, "{}", negative.text);

    let series = app.read(&app.keys.a_service, &path).await;
    let readings = series["readings"].as_array().expect("readings");
    assert_eq!(
        readings.len(),
        2,
        "the refused readings were not stored: {series}"
    );
    let kms: Vec<i64> = readings.iter().map(|r| r["km"].as_i64().unwrap()).collect();
    assert!(kms.contains(&10_000) && kms.contains(&15_000), "{series}");
    // 5,000 km over the 100 days between the readings.
    let daily = series["estimated_daily_km"]
        .as_f64()
        .unwrap_or_else(|| panic!("an estimate: {series}"));
    assert!(
        (daily - 50.0).abs() < 1.0,
        "estimated_daily_km {daily}, expected about 50: {series}"
    );

    let b_reply = call(app.post(&app.keys.b_admin, &path, &json!({"km": 20_000}))).await;
    assert_eq!(b_reply.status, 404, "{}", b_reply.text);
}

async fn another_dealers_vehicle_is_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let vehicle = app
        .create(&app.keys.a_sales, "/vehicles", &hongqi(&valid_vin(10)))
        .await;
    let id = vehicle["id"].as_i64().unwrap();
    let reply = call(app.get(&app.keys.c_admin, &format!("/vehicles/{id}"))).await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert_eq!(reply.body["code"], "not_found");
    let reply = call(
        app.patch(
            &app.keys.b_admin,
            &format!("/vehicles/{id}"),
            &json!({"color": "红"}),
        )
        .header("If-Match", "\"1\""),
    )
    .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert_eq!(
        app.read(&app.keys.a_sales, &format!("/vehicles/{id}"))
            .await["color"],
        "天青蓝"
    );
    let audit = app
        .read(
            &app.keys.hq_admin,
            &format!("/audit?entity=vehicle&entity_id={id}&outcome=denied"),
        )
        .await;
    assert!(items(&audit).len() >= 2, "{audit}");
    // North's regional manager, whose region holds dealer_a, reads it.
    assert_eq!(
        app.read(&app.keys.north_manager, &format!("/vehicles/{id}"))
            .await["id"],
        id
    );
}

async fn a_partner_cannot_read_vehicles(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reply = call(app.get(&app.keys.partner, "/vehicles")).await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert_eq!(reply.body["code"], "forbidden");
}

async fn custom_field_values_are_validated_on_vehicles(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create(
        &app.keys.a_admin,
        "/custom-fields",
        &json!({"entity": "vehicle", "key": "battery_kwh", "label": "电池容量", "type": "decimal", "min": 0, "max": 200}),
    )
    .await;
    let mut body = hongqi(&valid_vin(12));
    body["custom_fields"] = json!({"battery_kwh": 500});
    let reply = call(app.post(&app.keys.a_sales, "/vehicles", &body)).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(
        reply.names_field("custom_fields.battery_kwh"),
        "{}",
        reply.text
    );
    body["custom_fields"] = json!({"battery_kwh": "lots"});
    let reply = call(app.post(&app.keys.a_sales, "/vehicles", &body)).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(
        reply.names_field("custom_fields.battery_kwh"),
        "{}",
        reply.text
    );
    assert_eq!(vehicle_count(&app).await, 0);

    body["custom_fields"] = json!({"battery_kwh": 75.5});
    let created = app.create(&app.keys.a_sales, "/vehicles", &body).await;
    assert_eq!(created["custom_fields"], json!({"battery_kwh": 75.5}));
    let read = app
        .read(&app.keys.a_sales, &format!("/vehicles/{}", created["id"]))
        .await;
    assert_eq!(read["custom_fields"]["battery_kwh"], 75.5);
}

async fn a_backdated_reading_cannot_exceed_a_later_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let vehicle = app
        .create(&app.keys.a_service, "/vehicles", &hongqi(&valid_vin(13)))
        .await;
    let path = format!("/vehicles/{}/mileage", vehicle["id"]);
    app.create(
        &app.keys.a_service,
        &path,
        &json!({"km": 10_000, "read_at": "2024-01-01T00:00:00Z"}),
    )
    .await;
    app.create(
        &app.keys.a_service,
        &path,
        &json!({"km": 15_000, "read_at": "2024-04-10T00:00:00Z"}),
    )
    .await;
    // Entered late, dated before the April reading, yet higher than it: the odometer would
    // have gone back between February and April.
    let reply = call(app.post(
        &app.keys.a_service,
        &path,
        &json!({"km": 20_000, "read_at": "2024-02-01T00:00:00Z"}),
    ))
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(reply.has_code("mileage_decreased"), "{}", reply.text);
    let series = app.read(&app.keys.a_service, &path).await;
    assert_eq!(
        series["readings"].as_array().map(Vec::len),
        Some(2),
        "{series}"
    );
}

async fn a_vehicle_cannot_be_given_another_dealers_customer_as_owner(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let elsewhere = customer(&app, &app.keys.b_admin, "钱七", "13500135000").await;
    let mut body = hongqi(&valid_vin(14));
    body["owner_id"] = json!(elsewhere);
    let reply = call(app.post(&app.keys.a_sales, "/vehicles", &body)).await;
    assert!(
        reply.status == 404 || reply.status == 422,
        "{} {}",
        reply.status,
        reply.text
    );
    assert!(!reply.text.contains("钱七"), "{}", reply.text);
    assert_eq!(vehicle_count(&app).await, 0, "nothing stored");
}
