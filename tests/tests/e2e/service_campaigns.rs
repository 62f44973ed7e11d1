//! Proactive service campaigns through the API: exactly the vehicles carrying the batch in the
//! mileage window within the caller's scope, invitations sent once, and who booked and came.

use dealer_host::clock;
use dealer_tests::service::{DAY_MS, act_ok, owner_with_car, slot};
use dealer_tests::{Backend, TestApp, call, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    a_campaign_finds_exactly_the_affected_vehicles,
    invitations_go_out_once_and_bookings_and_arrivals_are_counted,
);

const BATCH: &str = "BC-2023-07";

fn calipers(batch: &str) -> Value {
    json!([{"component": "brake_caliper", "batch": batch}, {"component": "battery", "batch": "CATL-2305-B"}])
}

/// Records an odometer reading `days_ago` days back.
async fn reading(app: &TestApp, key: &str, vehicle: i64, km: i64, days_ago: i64) {
    let read_at = clock::to_datetime(clock::now_ms() - days_ago * DAY_MS - 60_000).to_rfc3339();
    app.create(
        key,
        &format!("/vehicles/{vehicle}/mileage"),
        &json!({"km": km, "read_at": read_at, "source": "service"}),
    )
    .await;
}

async fn car(app: &TestApp, key: &str, serial: u32, batch: &str, readings: &[(i64, i64)]) -> i64 {
    let (_, vehicle) = owner_with_car(app, key, serial, calipers(batch)).await;
    for (km, days_ago) in readings {
        reading(app, key, vehicle, *km, *days_ago).await;
    }
    vehicle
}

fn campaign(org_unit_id: Option<i64>) -> Value {
    let mut c = json!({
        "name": "前制动卡钳主动检查", "component": "brake_caliper", "batch": BATCH,
        "min_km": 18_000, "max_km": 20_000,
    });
    if let Some(org) = org_unit_id {
        c["org_unit_id"] = json!(org);
    }
    c
}

fn vehicle_ids(list: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = list
        .as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .map(|v| v["vehicle_id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

async fn a_campaign_finds_exactly_the_affected_vehicles(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = &app.keys.a_service;
    let inside = car(&app, a, 21, BATCH, &[(19_000, 1)]).await;
    let too_far = car(&app, a, 22, BATCH, &[(25_000, 1)]).await;
    let other_batch = car(&app, a, 23, "BC-2024-01", &[(19_000, 1)]).await;
    // 40 km a day: 17,000 km fifty days ago is about 19,000 km today.
    let by_estimate = car(&app, a, 24, BATCH, &[(15_000, 100), (17_000, 50)]).await;
    let unknown_mileage = car(&app, a, 25, BATCH, &[]).await;
    let at_b = car(&app, &app.keys.b_admin, 26, BATCH, &[(19_500, 1)]).await;
    let _ = (too_far, other_batch, unknown_mileage);

    let created = app.create(a, "/campaigns", &campaign(None)).await;
    assert_eq!(created["org_unit_id"], app.units.dealer_a);
    let path = format!("/campaigns/{}", created["id"]);
    let found = app.read(a, &format!("{path}/vehicles")).await;
    assert_eq!(vehicle_ids(&found), vec![inside, by_estimate], "{found}");
    let estimated = found
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["vehicle_id"] == by_estimate)
        .unwrap()["estimated_km"]
        .as_i64()
        .unwrap();
    assert!((18_900..=19_100).contains(&estimated), "{found}");

    // HQ running it for the north region sees dealer B's car too.
    let regional = app
        .create(
            &app.keys.hq_admin,
            "/campaigns",
            &campaign(Some(app.units.north)),
        )
        .await;
    let found = app
        .read(
            &app.keys.hq_admin,
            &format!("/campaigns/{}/vehicles", regional["id"]),
        )
        .await;
    assert_eq!(
        vehicle_ids(&found),
        vec![inside, by_estimate, at_b],
        "{found}"
    );

    // Dealer B does not see dealer A's campaign, nor can A run one for the region.
    assert_eq!(call(app.get(&app.keys.b_admin, &path)).await.status, 404);
    assert_eq!(
        call(app.get(&app.keys.b_admin, &format!("{path}/vehicles")))
            .await
            .status,
        404
    );
    let reply = call(app.post(a, "/campaigns", &campaign(Some(app.units.north)))).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    let reply = call(app.post(
        a,
        "/campaigns",
        &json!({"name": "x", "batch": BATCH, "min_km": 5, "max_km": 4}),
    ))
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
}

async fn outbox_rows(app: &TestApp) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM outbox")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    n
}

async fn owner_of(app: &TestApp, vehicle: i64) -> i64 {
    app.read(&app.keys.a_service, &format!("/vehicles/{vehicle}"))
        .await["people"][0]["customer_id"]
        .as_i64()
        .unwrap()
}

async fn invitations_go_out_once_and_bookings_and_arrivals_are_counted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = &app.keys.a_service;
    let first = car(&app, a, 31, BATCH, &[(18_200, 1)]).await;
    let second = car(&app, a, 32, BATCH, &[(19_900, 1)]).await;
    car(&app, a, 33, BATCH, &[(30_000, 1)]).await;
    let created = app.create(a, "/campaigns", &campaign(None)).await;
    let path = format!("/campaigns/{}", created["id"]);

    let invited = call(app.post(a, &format!("{path}/invite"), &json!({}))).await;
    assert_eq!(invited.status, 200, "{}", invited.text);
    assert_eq!(invited.body["newly_invited"], 2);
    assert_eq!(invited.body["campaign"]["invited"], 2);
    assert_eq!(outbox_rows(&app).await, 2);
    let again = call(app.post(a, &format!("{path}/invite"), &json!({}))).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["newly_invited"], 0);
    assert_eq!(outbox_rows(&app).await, 2, "re-inviting enqueues nothing");

    let mut booked = Vec::new();
    for vehicle in [first, second] {
        let appointment = app
            .create(
                a,
                "/appointments",
                &json!({"customer_id": owner_of(&app, vehicle).await, "vehicle_id": vehicle, "channel": "online",
                        "service_type": "campaign", "campaign_id": created["id"], "slot_start": slot(3)}),
            )
            .await;
        booked.push(appointment["id"].as_i64().unwrap());
    }
    act_ok(
        &app,
        a,
        &format!("/appointments/{}", booked[0]),
        "/arrive",
        &json!({}),
    )
    .await;
    let counts = app.read(a, &path).await;
    assert_eq!(
        (
            counts["invited"].clone(),
            counts["booked"].clone(),
            counts["arrived"].clone()
        ),
        (json!(2), json!(2), json!(1)),
        "{counts}"
    );

    // A campaign of another dealer cannot be booked against.
    let b_campaign = app
        .create(&app.keys.b_admin, "/campaigns", &campaign(None))
        .await;
    let reply = call(app.post(
        a,
        "/appointments",
        &json!({"customer_id": owner_of(&app, first).await, "vehicle_id": first, "channel": "phone",
                "service_type": "campaign", "campaign_id": b_campaign["id"], "slot_start": slot(4)}),
    ))
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(reply.has_code("unknown_campaign"), "{}", reply.text);
}
