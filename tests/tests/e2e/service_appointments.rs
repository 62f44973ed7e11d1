//! Service appointments through the API: booking, arrival into a repair order, cancellation,
//! no-shows, conversion over a period, refused bookings and scope.

use dealer_tests::service::{DAY_MS, act, act_ok, day, owner_with_car, slot};
use dealer_tests::{Backend, TestApp, call, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    an_arrived_appointment_becomes_one_repair_order,
    a_passed_booking_is_a_no_show_and_conversion_counts_arrivals,
    bookings_in_the_past_or_without_their_campaign_are_refused,
    an_arrived_appointment_cannot_be_cancelled,
    another_dealer_cannot_see_an_appointment,
);

fn booking(customer: i64, vehicle: i64, channel: &str, days: i64) -> Value {
    json!({
        "customer_id": customer, "vehicle_id": vehicle, "channel": channel,
        "service_type": "maintenance", "slot_start": slot(days), "note": "首保，顺便检查空调",
    })
}

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {page}"))
        .iter()
        .map(|a| a["id"].as_i64().expect("an id"))
        .collect()
}

async fn an_arrived_appointment_becomes_one_repair_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.keys.a_service;
    let (customer, vehicle) = owner_with_car(&app, key, 1, json!([])).await;
    let booked = app
        .create(
            key,
            "/appointments",
            &booking(customer, vehicle, "online", 1),
        )
        .await;
    assert_eq!(booked["status"], "booked");
    assert_eq!(booked["channel"], "online");
    assert_eq!(booked["dealer_id"], app.units.dealer_a);
    let path = format!("/appointments/{}", booked["id"]);

    let early = call(app.post(
        key,
        "/repair-orders",
        &json!({"appointment_id": booked["id"], "complaint_code": "maintenance"}),
    ))
    .await;
    assert_eq!(early.status, 409, "{}", early.text);
    assert_eq!(early.body["code"], "appointment_not_arrived");

    let arrived = act_ok(&app, key, &path, "/arrive", &json!({})).await;
    assert_eq!(arrived["status"], "arrived");
    assert!(arrived["arrived_at"].is_string(), "{arrived}");

    let order = app
        .create(
            key,
            "/repair-orders",
            &json!({"appointment_id": booked["id"], "complaint_code": "maintenance", "complaint": "首保"}),
        )
        .await;
    assert_eq!(order["status"], "open");
    assert_eq!(order["customer_id"], customer);
    assert_eq!(order["vehicle_id"], vehicle);
    assert_eq!(order["appointment_id"], booked["id"]);
    assert_eq!(app.read(key, &path).await["repair_order_id"], order["id"]);

    let again = call(app.post(
        key,
        "/repair-orders",
        &json!({"appointment_id": booked["id"], "complaint_code": "maintenance"}),
    ))
    .await;
    assert_eq!(again.status, 409, "{}", again.text);
    assert_eq!(again.body["code"], "appointment_converted");
}

async fn a_passed_booking_is_a_no_show_and_conversion_counts_arrivals(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.keys.a_service;
    let (customer, vehicle) = owner_with_car(&app, key, 2, json!([])).await;
    let mut ids_made = Vec::new();
    for channel in ["online", "phone", "phone", "online"] {
        let a = app
            .create(
                key,
                "/appointments",
                &booking(customer, vehicle, channel, 1),
            )
            .await;
        ids_made.push(a["id"].as_i64().unwrap());
    }
    let [missed, came, cancelled, ahead] = ids_made[..] else {
        unreachable!()
    };
    // The first booking's slot passes without the car: yesterday 09:00-10:00.
    let start = dealer_host::clock::now_ms() - DAY_MS;
    sqlx::query("UPDATE appointments SET slot_start = $1, slot_end = $2 WHERE id = $3")
        .bind(start)
        .bind(start + 3_600_000)
        .bind(missed)
        .execute(app.db.pool())
        .await
        .unwrap();
    act_ok(
        &app,
        key,
        &format!("/appointments/{came}"),
        "/arrive",
        &json!({}),
    )
    .await;
    act_ok(
        &app,
        key,
        &format!("/appointments/{cancelled}"),
        "/cancel",
        &json!({}),
    )
    .await;

    let no_shows = app.read(key, "/appointments?status=no_show").await;
    assert_eq!(ids(&no_shows), vec![missed]);
    assert_eq!(no_shows["items"][0]["status"], "no_show");
    assert_eq!(
        ids(&app.read(key, "/appointments?status=booked").await),
        vec![ahead]
    );
    assert_eq!(
        ids(&app.read(key, "/appointments?status=arrived").await),
        vec![came]
    );

    let conversion = app
        .read(
            key,
            &format!("/appointments/conversion?from={}&to={}", day(-2), day(2)),
        )
        .await;
    assert_eq!(conversion["made"], 4, "{conversion}");
    assert_eq!(conversion["arrived"], 1);
    assert_eq!(conversion["cancelled"], 1);
    assert_eq!(conversion["no_show"], 1);
    assert_eq!(conversion["rate"], 0.25);

    let later = app
        .read(
            key,
            &format!("/appointments/conversion?from={}&to={}", day(5), day(6)),
        )
        .await;
    assert_eq!(later["made"], 0);
    assert!(later["rate"].is_null(), "{later}");
    let backwards = call(app.get(
        key,
        &format!("/appointments/conversion?from={}&to={}", day(2), day(1)),
    ))
    .await;
    assert_eq!(backwards.status, 422, "{}", backwards.text);
}

async fn bookings_in_the_past_or_without_their_campaign_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.keys.a_service;
    let (customer, vehicle) = owner_with_car(&app, key, 3, json!([])).await;
    let past = call(app.post(
        key,
        "/appointments",
        &booking(customer, vehicle, "phone", -1),
    ))
    .await;
    assert_eq!(past.status, 422, "{}", past.text);
    assert!(past.has_code("slot_passed"), "{}", past.text);

    let mut campaign = booking(customer, vehicle, "phone", 1);
    campaign["service_type"] = json!("campaign");
    let reply = call(app.post(key, "/appointments", &campaign)).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(reply.names_field("campaign_id"), "{}", reply.text);

    let (other_customer, _) = owner_with_car(&app, key, 4, json!([])).await;
    let reply = call(app.post(
        key,
        "/appointments",
        &booking(other_customer, vehicle, "phone", 1),
    ))
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(reply.has_code("not_linked_to_vehicle"), "{}", reply.text);

    let (b_customer, b_vehicle) = owner_with_car(&app, &app.keys.b_admin, 5, json!([])).await;
    let reply = call(app.post(
        key,
        "/appointments",
        &booking(b_customer, b_vehicle, "phone", 1),
    ))
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(reply.has_code("unknown_vehicle"), "{}", reply.text);

    let listed = app.read(&app.keys.a_admin, "/appointments").await;
    assert!(ids(&listed).is_empty(), "nothing stored: {listed}");
}

async fn an_arrived_appointment_cannot_be_cancelled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.keys.a_service;
    let (customer, vehicle) = owner_with_car(&app, key, 6, json!([])).await;
    let a = app
        .create(
            key,
            "/appointments",
            &booking(customer, vehicle, "phone", 2),
        )
        .await;
    let path = format!("/appointments/{}", a["id"]);
    act_ok(&app, key, &path, "/arrive", &json!({})).await;
    let reply = act(&app, key, &path, "/cancel", &json!({})).await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.body["code"], "invalid_transition");
    assert_eq!(reply.body["allowed"], json!([]));

    let stale = call(
        app.post(key, &format!("{path}/arrive"), &json!({}))
            .header("If-Match", "\"1\""),
    )
    .await;
    assert_eq!(stale.status, 412, "{}", stale.text);
}

async fn another_dealer_cannot_see_an_appointment(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (customer, vehicle) = owner_with_car(&app, &app.keys.a_service, 7, json!([])).await;
    let a = app
        .create(
            &app.keys.a_service,
            "/appointments",
            &booking(customer, vehicle, "online", 1),
        )
        .await;
    let path = format!("/appointments/{}", a["id"]);
    assert_eq!(call(app.get(&app.keys.b_admin, &path)).await.status, 404);
    let arrive = call(
        app.post(&app.keys.b_admin, &format!("{path}/arrive"), &json!({}))
            .header("If-Match", "\"1\""),
    )
    .await;
    assert_eq!(arrive.status, 404, "{}", arrive.text);
    assert!(ids(&app.read(&app.keys.b_admin, "/appointments").await).is_empty());
    assert_eq!(
        app.read(&app.keys.north_manager, &path).await["id"],
        a["id"]
    );

    // A calendar asks for its window: slots starting in [from, until).
    let later = app
        .create(
            &app.keys.a_service,
            "/appointments",
            &booking(customer, vehicle, "phone", 3),
        )
        .await;
    let window = |from: &str, until: &str| format!("/appointments?from={from}&until={until}");
    let first_day = app
        .read(&app.keys.a_service, &window(&slot(1), &slot(2)))
        .await;
    assert_eq!(
        ids(&first_day),
        vec![a["id"].as_i64().unwrap()],
        "{first_day}"
    );
    let both = app
        .read(&app.keys.a_service, &window(&slot(0), &slot(4)))
        .await;
    assert_eq!(ids(&both).len(), 2, "{both}");
    let third_day = app
        .read(&app.keys.a_service, &window(&slot(3), &slot(4)))
        .await;
    assert_eq!(ids(&third_day), vec![later["id"].as_i64().unwrap()]);
}
