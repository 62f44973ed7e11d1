//! What the owner's phone pages read through their links, without a key: the progress photos of
//! a repair (each served only through its own order's link), the dealer named on a link that
//! expired or was used, and the owner's reply on a ticket, which the staff read on its timeline.

use dealer_tests::service::{act_ok, jpeg, owner_with_car, png, upload};
use dealer_tests::{Backend, Reply, TestApp, call, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    a_progress_photo_is_served_only_through_its_own_repair_orders_link,
    a_used_or_expired_link_names_the_dealer_and_its_phone,
    an_owner_reply_shows_on_the_owners_page_and_the_staff_timeline,
    an_empty_or_invisible_reply_is_refused,
);

const DEALER_A: &str = "北京朝阳4S店";
const DEALER_A_PHONE: &str = "400-810-8888";

async fn owner_get(app: &TestApp, path: &str) -> Reply {
    call(app.client.get(format!("{}/owner/{path}", app.base))).await
}

/// Opens a repair order for a new owner's car and takes it to `in_progress`; returns its path
/// and the owner's token.
async fn repair_under_way(app: &TestApp, serial: u32) -> (String, String) {
    let key = &app.keys.a_service;
    let (customer, vehicle) = owner_with_car(app, key, serial, json!([])).await;
    let opened = app
        .create(
            key,
            "/repair-orders",
            &json!({"customer_id": customer, "vehicle_id": vehicle, "complaint_code": "brake"}),
        )
        .await;
    let token = opened["owner_link"]["token"]
        .as_str()
        .expect("the owner's link")
        .to_owned();
    let ro = format!("/repair-orders/{}", opened["id"]);
    act_ok(
        app,
        key,
        &ro,
        "/check-in",
        &json!({"mileage_km": 20_000, "items": []}),
    )
    .await;
    act_ok(
        app,
        key,
        &ro,
        "/dispatch",
        &json!({"technician_staff_id": app.staff.a_technician}),
    )
    .await;
    (ro, token)
}

/// Reports progress with `note` and one photo; returns the photo's attachment id.
async fn progress_photo(app: &TestApp, ro: &str, note: &str, bytes: Vec<u8>) -> i64 {
    let progressed = call(app.post(
        &app.keys.a_technician,
        &format!("{ro}/progress"),
        &json!({ "note": note }),
    ))
    .await;
    assert_eq!(progressed.status, 200, "{}", progressed.text);
    let event = progressed.body["events"]
        .as_array()
        .and_then(|events| events.last())
        .map(|e| e["id"].clone())
        .expect("the progress entry");
    let photo = upload(
        app,
        &app.keys.a_technician,
        &format!("{ro}/progress/{event}/photos"),
        "image/jpeg",
        bytes,
    )
    .await;
    assert_eq!(photo.status, 201, "{}", photo.text);
    photo.body["id"].as_i64().expect("an attachment id")
}

async fn a_progress_photo_is_served_only_through_its_own_repair_orders_link(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ro, token) = repair_under_way(&app, 41).await;
    let inspection = upload(
        &app,
        &app.keys.a_service,
        &format!("{ro}/inspection/photos"),
        "image/png",
        png(),
    )
    .await;
    assert_eq!(inspection.status, 201, "{}", inspection.text);
    let inspection = inspection.body["id"].as_i64().expect("an attachment id");
    let mine = progress_photo(&app, &ro, "前刹车片已磨到极限，需要更换", jpeg()).await;
    let (other_ro, _) = repair_under_way(&app, 42).await;
    let theirs = progress_photo(&app, &other_ro, "空调滤芯很脏", jpeg()).await;

    let view = owner_get(&app, &format!("repairs/{token}")).await;
    assert_eq!(view.status, 200, "{}", view.text);
    assert_eq!(view.body["dealer"], DEALER_A);
    assert_eq!(view.body["dealer_phone"], DEALER_A_PHONE);
    let steps = view.body["steps"].as_array().expect("steps");
    let working = steps
        .iter()
        .find(|s| s["status"] == "in_progress")
        .unwrap_or_else(|| panic!("an in-progress step: {}", view.text));
    assert_eq!(
        working["photos"],
        json!([{"at": working["photos"][0]["at"], "explanation": "前刹车片已磨到极限，需要更换",
                "attachment_ids": [mine]}]),
        "{}",
        view.text
    );
    assert!(
        steps
            .iter()
            .filter(|s| s["status"] != "in_progress")
            .all(|s| s["photos"] == json!([])),
        "photos only where they were taken: {}",
        view.text
    );

    let photo = owner_get(&app, &format!("repairs/{token}/photos/{mine}")).await;
    assert_eq!(photo.status, 200, "{}", photo.text);
    assert_eq!(photo.header("content-type"), Some("image/jpeg"));
    assert_eq!(photo.bytes, jpeg());
    for other in [theirs, inspection, 999_999] {
        let refused = owner_get(&app, &format!("repairs/{token}/photos/{other}")).await;
        assert_eq!(refused.status, 404, "attachment {other}: {}", refused.text);
        assert_eq!(refused.body["code"], "not_found");
    }
    let bogus = owner_get(&app, &format!("repairs/{}/photos/{mine}", "0".repeat(64))).await;
    assert_eq!(bogus.status, 404);
    assert_eq!(bogus.body["code"], "link_not_found");
}

async fn a_used_or_expired_link_names_the_dealer_and_its_phone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ro, repair_token) = repair_under_way(&app, 43).await;
    let proposed = act_ok(
        &app,
        &app.keys.a_service,
        &ro,
        "/extra-work",
        &json!({"items": [{"kind": "part", "description": "前刹车片", "amount_fen": 48_000}]}),
    )
    .await;
    let token = proposed["owner_link"]["token"]
        .as_str()
        .expect("the extra-work link")
        .to_owned();
    let view = owner_get(&app, &format!("extra-work/{token}")).await;
    assert_eq!(view.status, 200, "{}", view.text);
    assert_eq!(view.body["dealer_name"], DEALER_A);
    assert_eq!(view.body["dealer_phone"], DEALER_A_PHONE);
    let decided = call(
        app.client
            .post(format!("{}/owner/extra-work/{token}", app.base))
            .json(&json!({"approve": true})),
    )
    .await;
    assert_eq!(decided.status, 200, "{}", decided.text);

    let used = owner_get(&app, &format!("extra-work/{token}")).await;
    assert_eq!(used.status, 410, "{}", used.text);
    assert_eq!(used.body["code"], "link_used");
    assert_eq!(used.body["dealer_name"], DEALER_A);
    assert_eq!(used.body["dealer_phone"], DEALER_A_PHONE);

    sqlx::query("UPDATE owner_links SET expires_at = $1 WHERE purpose = 'repair_progress'")
        .bind(1_i64)
        .execute(app.db.pool())
        .await
        .expect("the links expire");
    let expired = owner_get(&app, &format!("repairs/{repair_token}")).await;
    assert_eq!(expired.status, 410, "{}", expired.text);
    assert_eq!(expired.body["code"], "link_expired");
    assert_eq!(expired.body["dealer_name"], DEALER_A);
    assert_eq!(expired.body["dealer_phone"], DEALER_A_PHONE);

    let unknown = owner_get(&app, &format!("extra-work/{}", "0".repeat(64))).await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert_eq!(unknown.body["code"], "link_not_found");
    assert!(
        unknown.body.get("dealer_name").is_none() && unknown.body.get("dealer_phone").is_none(),
        "an unknown link names no dealer: {}",
        unknown.text
    );
}

/// Opens a ticket for a new customer; returns its id and the owner's token.
async fn ticket(app: &TestApp) -> (i64, String) {
    let customer = app
        .create(
            &app.keys.a_sales,
            "/customers",
            &json!({"name": "吴磊", "phones": [{"number": "13800138000"}], "tags": []}),
        )
        .await["id"]
        .clone();
    let ticket = app
        .create(
            &app.keys.a_service,
            "/tickets",
            &json!({"customer_id": customer, "channel": "hotline", "category": "complaint",
                    "subject": "刹车异响", "description": "踩刹车时前轮有金属摩擦声。"}),
        )
        .await;
    let token = ticket["owner_link"]["token"]
        .as_str()
        .expect("the ticket's link")
        .to_owned();
    (ticket["id"].as_i64().expect("an id"), token)
}

async fn reply(app: &TestApp, token: &str, text: &str) -> Reply {
    call(
        app.client
            .post(format!("{}/owner/tickets/{token}/replies", app.base))
            .json(&json!({ "text": text })),
    )
    .await
}

async fn an_owner_reply_shows_on_the_owners_page_and_the_staff_timeline(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, token) = ticket(&app).await;
    let before = owner_get(&app, &format!("tickets/{token}")).await;
    assert_eq!(before.status, 200, "{}", before.text);
    assert_eq!(before.body["dealer"], DEALER_A);
    assert_eq!(before.body["dealer_phone"], DEALER_A_PHONE);

    let replied = reply(&app, &token, "  明天上午十点前可以到店，请先来电  ").await;
    assert_eq!(replied.status, 201, "{}", replied.text);
    let last = replied.body["timeline"]
        .as_array()
        .and_then(|t| t.last())
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(last["kind"], "owner_reply", "{}", replied.text);
    assert_eq!(last["message"], "明天上午十点前可以到店，请先来电");
    assert_eq!(last["text"], "您的留言");
    assert_eq!(
        owner_get(&app, &format!("tickets/{token}")).await.body["timeline"],
        replied.body["timeline"]
    );

    let staff = app
        .read(&app.keys.a_service, &format!("/tickets/{id}"))
        .await;
    let entry = staff["events"]
        .as_array()
        .and_then(|e| e.last())
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(entry["kind"], "owner_reply", "{staff}");
    assert_eq!(entry["note"], "明天上午十点前可以到店，请先来电");
    assert_eq!(entry["owner_visible"], true);
    assert_eq!(entry["actor_key_id"], Value::Null);

    let audited: Vec<(String, String)> = sqlx::query_as(
        "SELECT actor_role, detail FROM audit_log WHERE action = 'owner_reply' AND entity_id = $1",
    )
    .bind(id)
    .fetch_all(app.db.pool())
    .await
    .expect("the audit log");
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert_eq!(audited[0].0, "owner");
    assert!(audited[0].1.contains("link_id"), "{audited:?}");
    assert!(
        !audited[0].1.contains("明天"),
        "no personal text in the audit: {audited:?}"
    );
}

async fn an_empty_or_invisible_reply_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, token) = ticket(&app).await;
    let long = "好".repeat(1001);
    for (text, code) in [
        ("", "required"),
        ("   ", "required"),
        ("\u{200B}\u{3000}\u{200B}", "invisible_text"),
        (long.as_str(), "too_long"),
    ] {
        let refused = reply(&app, &token, text).await;
        assert_eq!(refused.status, 422, "{text:?}: {}", refused.text);
        assert!(refused.has_code(code), "{text:?}: {}", refused.text);
        assert!(refused.names_field("text"), "{}", refused.text);
    }
    let staff = app
        .read(&app.keys.a_service, &format!("/tickets/{id}"))
        .await;
    assert!(
        staff["events"]
            .as_array()
            .is_some_and(|e| e.iter().all(|e| e["kind"] != "owner_reply")),
        "nothing was added: {staff}"
    );
    let unknown = reply(&app, &"0".repeat(64), "你好").await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert_eq!(unknown.body["code"], "link_not_found");
}
