//! Repair orders through the API: the whole visit from booking to payment with check-in
//! photos, dispatch, progress, extra work the owner approves through a single-use link, the
//! quality check, settlement and payment; refused moves, comebacks and first-time-fix, bad
//! uploads and scope.

use dealer_tests::service::{DAY_MS, act, act_ok, day, jpeg, owner_with_car, png, slot, upload};
use dealer_tests::{Backend, Reply, TestApp, call, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    an_owner_books_and_the_repair_runs_to_payment,
    an_expired_link_is_gone_and_the_work_resumes_without_the_items,
    a_declined_proposal_adds_nothing,
    refused_moves_name_the_allowed_states,
    a_comeback_within_30_days_is_flagged_and_lowers_first_time_fix,
    bad_uploads_leave_nothing_behind,
    two_answers_through_one_link_at_once_record_one,
    above_the_threshold_the_service_advisor_confirms_after_the_owner,
    another_dealer_cannot_see_a_repair_order,
    the_owner_follows_the_repair_through_the_link_given_at_opening,
);

fn owner_url(app: &TestApp, token: &str) -> String {
    format!("{}/owner/extra-work/{token}", app.base)
}

async fn owner_get(app: &TestApp, token: &str) -> Reply {
    call(app.client.get(owner_url(app, token))).await
}

async fn owner_post(app: &TestApp, token: &str, body: &Value) -> Reply {
    call(app.client.post(owner_url(app, token)).json(body)).await
}

fn kinds(order: &Value) -> Vec<String> {
    order["events"]
        .as_array()
        .unwrap_or_else(|| panic!("events: {order}"))
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// Opens a repair order for the car (no appointment) and returns its path.
async fn open_order(app: &TestApp, key: &str, customer: i64, vehicle: i64, code: &str) -> String {
    let order = app
        .create(
            key,
            "/repair-orders",
            &json!({"customer_id": customer, "vehicle_id": vehicle, "complaint_code": code}),
        )
        .await;
    format!("/repair-orders/{}", order["id"])
}

/// Drives an open order through check-in and dispatch to `in_progress`.
async fn start_work(app: &TestApp, ro: &str, km: i64) {
    let key = &app.keys.a_service;
    act_ok(
        app,
        key,
        ro,
        "/check-in",
        &json!({"mileage_km": km, "items": []}),
    )
    .await;
    act_ok(
        app,
        key,
        ro,
        "/dispatch",
        &json!({"technician_staff_id": app.staff.a_technician}),
    )
    .await;
}

/// Drives an order in progress through the quality check and settles it.
async fn finish(app: &TestApp, ro: &str) -> Value {
    let key = &app.keys.a_service;
    act_ok(app, key, ro, "/status", &json!({"status": "quality_check"})).await;
    act_ok(app, key, ro, "/quality-check", &json!({"passed": true})).await;
    act_ok(app, key, ro, "/settle", &json!({})).await
}

/// Proposes extra work and returns the answer (proposal, owner link, repair order).
async fn propose(app: &TestApp, ro: &str, items: Value) -> Value {
    act_ok(
        app,
        &app.keys.a_service,
        ro,
        "/extra-work",
        &json!({"items": items}),
    )
    .await
}

async fn an_owner_books_and_the_repair_runs_to_payment(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.keys.a_service;
    let (customer, vehicle) = owner_with_car(&app, key, 11, json!([])).await;

    // The owner books by phone and comes.
    let booked = app
        .create(
            key,
            "/appointments",
            &json!({"customer_id": customer, "vehicle_id": vehicle, "channel": "phone",
                    "service_type": "repair", "slot_start": slot(1)}),
        )
        .await;
    act_ok(
        &app,
        key,
        &format!("/appointments/{}", booked["id"]),
        "/arrive",
        &json!({}),
    )
    .await;
    let order = app
        .create(
            key,
            "/repair-orders",
            &json!({"appointment_id": booked["id"], "complaint_code": "brake_noise", "complaint": "刹车时有尖锐异响"}),
        )
        .await;
    let ro = format!("/repair-orders/{}", order["id"]);

    // Check-in: odometer into the car's mileage, graded items, a photo.
    let inspected = act_ok(
        &app,
        key,
        &ro,
        "/check-in",
        &json!({"mileage_km": 18_500, "items": [
            {"item": "前刹车片", "grade": "red", "note": "剩余 2mm"},
            {"item": "轮胎", "grade": "yellow"},
            {"item": "灯光", "grade": "green"},
        ]}),
    )
    .await;
    assert_eq!(inspected["status"], "inspected");
    assert_eq!(
        inspected["next_statuses"],
        json!(["in_progress", "cancelled"]),
        "the moves a client may offer"
    );
    assert_eq!(inspected["mileage_km"], 18_500);
    let grades: Vec<&str> = inspected["inspection"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["grade"].as_str().unwrap())
        .collect();
    assert_eq!(grades, ["red", "yellow", "green"]);
    let mileage = app.read(key, &format!("/vehicles/{vehicle}/mileage")).await;
    assert_eq!(mileage["readings"][0]["km"], 18_500, "{mileage}");
    assert_eq!(mileage["readings"][0]["source"], "check_in");
    let photo = upload(
        &app,
        key,
        &format!("{ro}/inspection/photos"),
        "image/png",
        png(),
    )
    .await;
    assert_eq!(photo.status, 201, "{}", photo.text);

    // The technician is dispatched and reports progress with a photo.
    let dispatched = act_ok(
        &app,
        key,
        &ro,
        "/dispatch",
        &json!({"technician_staff_id": app.staff.a_technician}),
    )
    .await;
    assert_eq!(dispatched["status"], "in_progress");
    assert_eq!(dispatched["technician_staff_id"], app.staff.a_technician);
    let progressed = call(app.post(
        &app.keys.a_technician,
        &format!("{ro}/progress"),
        &json!({"note": "拆检发现前刹车片磨损到极限，刹车盘有划痕"}),
    ))
    .await;
    assert_eq!(progressed.status, 200, "{}", progressed.text);
    let event = progressed.body["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["id"]
        .clone();
    let photo = upload(
        &app,
        &app.keys.a_technician,
        &format!("{ro}/progress/{event}/photos"),
        "image/jpeg",
        jpeg(),
    )
    .await;
    assert_eq!(photo.status, 201, "{}", photo.text);

    // Labour and parts.
    act_ok(&app, key, &ro, "/lines", &json!({"kind": "labour", "description": "刹车系统检查", "quantity": 1.5, "unit_price_fen": 20_000})).await;
    let lined = act_ok(
        &app,
        key,
        &ro,
        "/lines",
        &json!({"kind": "part", "description": "刹车油", "quantity": 1, "unit_price_fen": 8_800}),
    )
    .await;
    assert_eq!(lined["lines"][0]["amount_fen"], 30_000);
    assert_eq!(lined["total_fen"], 38_800);

    // The advisor proposes extra work; the owner gets a link.
    let proposed = propose(
        &app,
        &ro,
        json!([
            {"kind": "part", "description": "更换前刹车片", "amount_fen": 36_000},
            {"kind": "labour", "description": "刹车盘光盘", "amount_fen": 12_000},
        ]),
    )
    .await;
    assert_eq!(proposed["repair_order"]["status"], "waiting_approval");
    assert_eq!(proposed["proposal"]["status"], "pending");
    assert_eq!(proposed["proposal"]["total_fen"], 48_000);
    let token = proposed["owner_link"]["token"]
        .as_str()
        .expect("a link token")
        .to_owned();
    let items: Vec<i64> = proposed["proposal"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();

    // The owner reads it without a key, and approves the brake pads only.
    let view = owner_get(&app, &token).await;
    assert_eq!(view.status, 200, "{}", view.text);
    assert_eq!(view.body["dealer_name"], "北京朝阳4S店");
    assert_eq!(view.body["vehicle"]["plate"], "京A·12345");
    assert_eq!(view.body["total_fen"], 48_000);
    assert_eq!(view.body["items"][0]["description"], "更换前刹车片");
    let decided = owner_post(&app, &token, &json!({"approve": true, "items": [items[0]]})).await;
    assert_eq!(decided.status, 200, "{}", decided.text);
    assert_eq!(decided.body["status"], "partially_approved");
    assert_eq!(decided.body["decided_by"], "owner");
    assert_eq!(decided.body["decision_channel"], "link");
    assert_eq!(decided.body["approved_fen"], 36_000);
    assert!(decided.body["decided_at"].is_string());
    assert_eq!(decided.body["items"][0]["approved"], true);
    assert_eq!(decided.body["items"][1]["approved"], false);

    // The link worked once.
    let again = owner_post(&app, &token, &json!({"approve": true})).await;
    assert_eq!(again.status, 410, "{}", again.text);
    assert_eq!(owner_get(&app, &token).await.status, 410);

    let resumed = app.read(key, &ro).await;
    assert_eq!(resumed["status"], "in_progress", "{resumed}");
    let last_line = resumed["lines"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last_line["extra_work_item_id"], items[0]);
    assert_eq!(last_line["amount_fen"], 36_000);
    assert_eq!(resumed["total_fen"], 74_800);
    let decision = resumed["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "owner_decision")
        .expect("the owner's decision on the timeline")
        .clone();
    assert!(decision["actor_key_id"].is_null());
    assert!(decision["owner_link_id"].is_i64());

    // The quality check fails once, then passes.
    act_ok(
        &app,
        key,
        &ro,
        "/status",
        &json!({"status": "quality_check"}),
    )
    .await;
    let failed = act_ok(
        &app,
        key,
        &ro,
        "/quality-check",
        &json!({"passed": false, "note": "异响仍在"}),
    )
    .await;
    assert_eq!(failed["status"], "in_progress");
    act_ok(
        &app,
        key,
        &ro,
        "/status",
        &json!({"status": "quality_check"}),
    )
    .await;
    let ready = act_ok(&app, key, &ro, "/quality-check", &json!({"passed": true})).await;
    assert_eq!(ready["status"], "ready");

    // Settlement from the lines, then payment.
    let settled = act_ok(&app, key, &ro, "/settle", &json!({})).await;
    assert_eq!(settled["status"], "settled");
    assert_eq!(settled["labour_fen"], 30_000);
    assert_eq!(settled["parts_fen"], 44_800);
    assert_eq!(settled["total_fen"], 74_800);
    assert!(settled["settled_at"].is_string());
    // What the owner spent earned points (the built-in rule: one per yuan), once.
    let points = app
        .read(key, &format!("/customers/{customer}/points"))
        .await;
    assert_eq!(points["account"]["balance"], 748, "{points}");
    assert_eq!(
        points["ledger"]["items"][0]["cause"]["kind"],
        "repair_order"
    );
    let part = act_ok(
        &app,
        key,
        &ro,
        "/payments",
        &json!({"method": "wechat_pay", "amount_fen": 4_800}),
    )
    .await;
    assert_eq!(part["status"], "settled");
    assert_eq!(part["outstanding_fen"], 70_000);
    let over = act(
        &app,
        key,
        &ro,
        "/payments",
        &json!({"method": "card", "amount_fen": 70_001}),
    )
    .await;
    assert_eq!(over.status, 422, "{}", over.text);
    let paid = act_ok(
        &app,
        key,
        &ro,
        "/payments",
        &json!({"method": "card", "amount_fen": 70_000}),
    )
    .await;
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["outstanding_fen"], 0);
    assert!(paid["paid_at"].is_string());
    for kind in [
        "created",
        "check_in",
        "dispatch",
        "progress",
        "line",
        "extra_work",
        "owner_decision",
        "quality_check",
        "settlement",
        "payment",
    ] {
        assert!(
            kinds(&paid).iter().any(|k| k == kind),
            "{kind} on the timeline: {paid}"
        );
    }
    assert_eq!(paid["photos"].as_array().map(Vec::len), Some(2), "{paid}");
}

async fn an_expired_link_is_gone_and_the_work_resumes_without_the_items(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.keys.a_service;
    let (customer, vehicle) = owner_with_car(&app, key, 12, json!([])).await;
    let ro = open_order(&app, key, customer, vehicle, "ac_cooling").await;
    start_work(&app, &ro, 9_000).await;
    let proposed = propose(
        &app,
        &ro,
        json!([{"description": "更换空调滤芯", "amount_fen": 15_000}]),
    )
    .await;
    let token = proposed["owner_link"]["token"].as_str().unwrap().to_owned();
    let early = act(&app, key, &ro, "/status", &json!({"status": "in_progress"})).await;
    assert_eq!(early.status, 409, "{}", early.text);
    assert_eq!(early.body["code"], "approval_pending");

    // Three days pass: the link's expiry is behind us.
    sqlx::query("UPDATE owner_links SET expires_at = $1")
        .bind(dealer_host::clock::now_ms() - 1_000)
        .execute(app.db.pool())
        .await
        .unwrap();
    let view = owner_get(&app, &token).await;
    assert_eq!(view.status, 410, "{}", view.text);
    assert_eq!(view.body["code"], "link_expired");
    let decide = owner_post(&app, &token, &json!({"approve": true})).await;
    assert_eq!(decide.status, 410, "{}", decide.text);

    let resumed = act_ok(&app, key, &ro, "/status", &json!({"status": "in_progress"})).await;
    assert_eq!(resumed["status"], "in_progress");
    assert!(resumed["lines"].as_array().unwrap().is_empty(), "{resumed}");
    let proposals = app.read(key, &format!("{ro}/extra-work")).await;
    assert_eq!(proposals[0]["status"], "expired", "{proposals}");
}

async fn a_declined_proposal_adds_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.keys.a_service;
    let (customer, vehicle) = owner_with_car(&app, key, 13, json!([])).await;
    let ro = open_order(&app, key, customer, vehicle, "oil_leak").await;
    start_work(&app, &ro, 30_000).await;
    let proposed = propose(
        &app,
        &ro,
        json!([{"kind": "part", "description": "更换油底壳垫", "amount_fen": 25_000}]),
    )
    .await;
    let token = proposed["owner_link"]["token"].as_str().unwrap().to_owned();
    let unknown = owner_post(&app, &token, &json!({"approve": true, "items": [999_999]})).await;
    assert_eq!(unknown.status, 422, "{}", unknown.text);
    let declined = owner_post(&app, &token, &json!({"approve": false})).await;
    assert_eq!(declined.status, 200, "{}", declined.text);
    assert_eq!(declined.body["status"], "declined");
    assert_eq!(declined.body["approved_fen"], 0);
    let order = app.read(key, &ro).await;
    assert_eq!(order["status"], "in_progress");
    assert!(order["lines"].as_array().unwrap().is_empty(), "{order}");
    assert_eq!(
        call(app.client.get(owner_url(&app, "no-such-token")))
            .await
            .status,
        404
    );
}

async fn refused_moves_name_the_allowed_states(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.keys.a_service;
    let (customer, vehicle) = owner_with_car(&app, key, 14, json!([])).await;
    let ro = open_order(&app, key, customer, vehicle, "engine_light").await;
    let settle = act(&app, key, &ro, "/settle", &json!({})).await;
    assert_eq!(settle.status, 409, "{}", settle.text);
    assert_eq!(settle.body["code"], "invalid_transition");
    assert_eq!(settle.body["allowed"], json!(["inspected", "cancelled"]));
    let qc = act(&app, key, &ro, "/quality-check", &json!({"passed": true})).await;
    assert_eq!(qc.status, 409, "{}", qc.text);

    start_work(&app, &ro, 5_000).await;
    let skip = act(&app, key, &ro, "/status", &json!({"status": "ready"})).await;
    assert_eq!(skip.status, 409, "{}", skip.text);
    assert_eq!(
        skip.body["allowed"],
        json!(["waiting_approval", "quality_check"])
    );
    let stale = call(
        app.post(
            key,
            &format!("{ro}/status"),
            &json!({"status": "quality_check"}),
        )
        .header("If-Match", "\"1\""),
    )
    .await;
    assert_eq!(stale.status, 412, "{}", stale.text);

    let no_technician = act(
        &app,
        key,
        &ro,
        "/dispatch",
        &json!({"technician_staff_id": app.staff.a_sales}),
    )
    .await;
    assert_eq!(no_technician.status, 422, "{}", no_technician.text);
    let back = act(&app, key, &ro, "/check-in", &json!({"mileage_km": 6_000})).await;
    assert_eq!(back.status, 409, "{}", back.text);
}

async fn a_comeback_within_30_days_is_flagged_and_lowers_first_time_fix(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.keys.a_service;
    let (customer, vehicle) = owner_with_car(&app, key, 15, json!([])).await;
    let first = open_order(&app, key, customer, vehicle, "brake_noise").await;
    start_work(&app, &first, 10_000).await;
    act_ok(&app, key, &first, "/lines", &json!({"kind": "labour", "description": "刹车调整", "quantity": 1, "unit_price_fen": 15_000})).await;
    let settled = finish(&app, &first).await;
    let first_id = settled["id"].as_i64().unwrap();

    let other_issue = open_order(&app, key, customer, vehicle, "ac_cooling").await;
    assert!(app.read(key, &other_issue).await["comeback_of_id"].is_null());
    start_work(&app, &other_issue, 10_500).await;
    finish(&app, &other_issue).await;

    let comeback = app
        .create(key, "/repair-orders", &json!({"customer_id": customer, "vehicle_id": vehicle, "complaint_code": "brake_noise"}))
        .await;
    assert_eq!(comeback["comeback_of_id"], first_id);
    let listed = app.read(key, "/repair-orders?comeback=true").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["items"][0]["id"], comeback["id"]);

    let today = app
        .read(
            key,
            &format!(
                "/repair-orders/first-time-fix?from={}&to={}",
                day(0),
                day(0)
            ),
        )
        .await;
    assert_eq!(today["settled"], 2, "{today}");
    assert_eq!(today["with_comeback"], 1);
    assert_eq!(today["rate"], 0.5);

    // Settled 31 days ago: a new order for the same issue is no comeback.
    let (customer2, vehicle2) = owner_with_car(&app, key, 16, json!([])).await;
    let old = open_order(&app, key, customer2, vehicle2, "brake_noise").await;
    start_work(&app, &old, 20_000).await;
    let old_id = finish(&app, &old).await["id"].as_i64().unwrap();
    sqlx::query("UPDATE repair_orders SET settled_at = settled_at - $1 WHERE id = $2")
        .bind(31 * DAY_MS)
        .bind(old_id)
        .execute(app.db.pool())
        .await
        .unwrap();
    let late = app
        .create(key, "/repair-orders", &json!({"customer_id": customer2, "vehicle_id": vehicle2, "complaint_code": "brake_noise"}))
        .await;
    assert!(late["comeback_of_id"].is_null(), "{late}");
    let then = app
        .read(
            key,
            &format!(
                "/repair-orders/first-time-fix?from={}&to={}",
                day(-32),
                day(-30)
            ),
        )
        .await;
    assert_eq!(then["settled"], 1, "{then}");
    assert_eq!(then["rate"], 1.0);
    let b_view = app
        .read(
            &app.keys.b_admin,
            &format!(
                "/repair-orders/first-time-fix?from={}&to={}",
                day(0),
                day(0)
            ),
        )
        .await;
    assert_eq!(b_view["settled"], 0);
}

async fn bad_uploads_leave_nothing_behind(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.keys.a_service;
    let (customer, vehicle) = owner_with_car(&app, key, 17, json!([])).await;
    let ro = open_order(&app, key, customer, vehicle, "scratch").await;
    let path = format!("{ro}/inspection/photos");
    let text = upload(&app, key, &path, "text/plain", b"not a photo".to_vec()).await;
    assert_eq!(text.status, 415, "{}", text.text);
    let disguised = upload(
        &app,
        key,
        &path,
        "image/png",
        b"not a photo at all".to_vec(),
    )
    .await;
    assert_eq!(disguised.status, 415, "{}", disguised.text);
    let empty = upload(&app, key, &path, "image/png", Vec::new()).await;
    assert_eq!(empty.status, 422, "{}", empty.text);
    let (status, _, body) = app
        .announce_body(
            key,
            &path,
            "image/png",
            dealer_host::attachments::MAX_BYTES + 1,
        )
        .await;
    assert_eq!(status, 413, "{body}");

    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM attachments")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    assert_eq!(rows, 0, "no attachment row");
    assert!(
        app.read(key, &ro).await["photos"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let files = std::fs::read_dir(app.attachments_dir()).map_or(0, |d| d.count());
    assert_eq!(files, 0, "no file written");
}

async fn another_dealer_cannot_see_a_repair_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.keys.a_service;
    let (customer, vehicle) = owner_with_car(&app, key, 18, json!([])).await;
    let ro = open_order(&app, key, customer, vehicle, "brake_noise").await;
    let b = &app.keys.b_admin;
    assert_eq!(call(app.get(b, &ro)).await.status, 404);
    let check_in = call(
        app.post(b, &format!("{ro}/check-in"), &json!({"mileage_km": 1_000}))
            .header("If-Match", "\"1\""),
    )
    .await;
    assert_eq!(check_in.status, 404, "{}", check_in.text);
    let photo = upload(
        &app,
        b,
        &format!("{ro}/inspection/photos"),
        "image/png",
        png(),
    )
    .await;
    assert_eq!(photo.status, 404, "{}", photo.text);
    assert!(
        app.read(b, "/repair-orders").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(app.read(&app.keys.a_admin, &ro).await["status"], "open");
}

async fn two_answers_through_one_link_at_once_record_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.keys.a_service;
    let (customer, vehicle) = owner_with_car(&app, key, 19, json!([])).await;
    let ro = open_order(&app, key, customer, vehicle, "wiper").await;
    start_work(&app, &ro, 12_000).await;
    let proposed = propose(
        &app,
        &ro,
        json!([{"kind": "part", "description": "更换雨刮片", "amount_fen": 9_000}]),
    )
    .await;
    let token = proposed["owner_link"]["token"].as_str().unwrap().to_owned();
    let (approve, decline) = (json!({"approve": true}), json!({"approve": false}));
    let (yes, no) = tokio::join!(
        owner_post(&app, &token, &approve),
        owner_post(&app, &token, &decline),
    );
    let mut statuses = [yes.status, no.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 410], "{} / {}", yes.text, no.text);
    let approved = yes.status == 200;
    let order = app.read(key, &ro).await;
    assert_eq!(order["status"], "in_progress");
    assert_eq!(
        order["lines"].as_array().unwrap().len(),
        usize::from(approved),
        "{order}"
    );
    assert_eq!(
        kinds(&order)
            .iter()
            .filter(|k| *k == "owner_decision")
            .count(),
        1
    );
}

async fn above_the_threshold_the_service_advisor_confirms_after_the_owner(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.enable_first_party("approval", "approval").await;
    let key = &app.keys.a_service;
    let (customer, vehicle) = owner_with_car(&app, key, 20, json!([])).await;
    let ro = open_order(&app, key, customer, vehicle, "gearbox").await;
    start_work(&app, &ro, 60_000).await;
    let proposed = propose(
        &app,
        &ro,
        json!([{"kind": "part", "description": "更换变速箱阀体", "amount_fen": 250_000}]),
    )
    .await;
    let request = proposed["proposal"]["approval_request_id"]
        .as_i64()
        .unwrap();
    let token = proposed["owner_link"]["token"].as_str().unwrap().to_owned();
    let decided = owner_post(&app, &token, &json!({"approve": true})).await;
    assert_eq!(decided.status, 200, "{}", decided.text);
    assert_eq!(decided.body["status"], "approved");
    assert!(decided.body["applied_at"].is_null(), "{}", decided.text);
    assert_eq!(app.read(key, &ro).await["status"], "waiting_approval");
    let early = act(&app, key, &ro, "/status", &json!({"status": "in_progress"})).await;
    assert_eq!(early.status, 409, "{}", early.text);
    assert_eq!(early.body["code"], "approval_pending");

    let approval = app.read(key, &format!("/approvals/{request}")).await;
    let roles: Vec<&str> = approval["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["owner", "service-advisor"], "{approval}");
    let confirmed = call(app.post(
        key,
        &format!("/approvals/{request}/approve"),
        &json!({"comment": "同意"}),
    ))
    .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    assert_eq!(confirmed.body["status"], "approved");

    let resumed = act_ok(&app, key, &ro, "/status", &json!({"status": "in_progress"})).await;
    assert_eq!(resumed["lines"][0]["amount_fen"], 250_000, "{resumed}");
    let proposals = app.read(key, &format!("{ro}/extra-work")).await;
    assert!(proposals[0]["applied_at"].is_string(), "{proposals}");
}

/// The answer that opens a repair order carries the owner's link; through it, without a key,
/// the owner follows the repair in their own words and sees the amount once settled, and
/// nothing else of the order.
async fn the_owner_follows_the_repair_through_the_link_given_at_opening(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.keys.a_service;
    let (customer, vehicle) = owner_with_car(&app, key, 16, json!([])).await;
    let opened = app
        .create(
            key,
            "/repair-orders",
            &json!({"customer_id": customer, "vehicle_id": vehicle, "complaint_code": "noise",
                    "complaint": "底盘异响，内部备注：客户较急"}),
        )
        .await;
    let token = opened["owner_link"]["token"]
        .as_str()
        .expect("the owner's link in the opening answer")
        .to_owned();
    let ro = format!("/repair-orders/{}", opened["id"]);
    let read = app.read(key, &ro).await;
    assert!(
        read.get("owner_link").is_none(),
        "the link is shown once: {read}"
    );
    let url = format!("{}/owner/repairs/{token}", app.base);

    let first = call(app.client.get(&url)).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["status"], "open");
    assert_eq!(first.body["text"], "已接车");
    assert_eq!(first.body["vehicle"], "红旗 H5 京A·12345");
    assert_eq!(first.body["total_fen"], Value::Null);

    start_work(&app, &ro, 20_100).await;
    act_ok(&app, key, &ro, "/lines", &json!({"kind": "labour", "description": "底盘检查", "quantity": 1, "unit_price_fen": 30_000})).await;
    finish(&app, &ro).await;
    let done = call(app.client.get(&url)).await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.body["status"], "settled");
    assert_eq!(done.body["total_fen"], 30_000);
    let steps: Vec<&str> = done.body["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["status"].as_str().expect("a status"))
        .collect();
    assert_eq!(
        steps,
        [
            "open",
            "inspected",
            "in_progress",
            "quality_check",
            "ready",
            "settled"
        ]
    );
    assert!(
        !done.text.contains("内部备注") && !done.text.contains("technician"),
        "no complaint text, notes or staff: {}",
        done.text
    );

    let surveys: Vec<(String, String)> =
        sqlx::query_as("SELECT recipient, data FROM outbox WHERE template = 'satisfaction-survey'")
            .fetch_all(app.db.pool())
            .await
            .unwrap();
    let [(recipient, data)] = &surveys[..] else {
        panic!("the settlement sent one survey: {surveys:?}");
    };
    assert_eq!(recipient, &format!("customer:{customer}"));
    let data: Value = serde_json::from_str(data).unwrap();
    assert_eq!(data["subject-kind"], "repair_order");
    assert_eq!(data["subject-id"], opened["id"].to_string());
    let survey_token = data["survey-url"]
        .as_str()
        .and_then(|u| u.strip_prefix("/o/s/"))
        .expect("the owner's survey page");
    let form = call(
        app.client
            .get(format!("{}/owner/surveys/{survey_token}", app.base)),
    )
    .await;
    assert_eq!(form.status, 200, "{}", form.text);

    let bogus = call(
        app.client
            .get(format!("{}/owner/repairs/{}", app.base, "0".repeat(64))),
    )
    .await;
    assert_eq!(bogus.status, 404);
    assert_eq!(bogus.body["code"], "link_not_found");
}
