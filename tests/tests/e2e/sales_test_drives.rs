//! Test drives through the API: the demo fleet, booking a demo vehicle and a consultant for a
//! slot, refused double bookings (also between concurrent requests, where exactly one wins),
//! cancelling, and the lead moving to `test_drive`.

use dealer_tests::{Backend, TestApp, call, on_both_backends, valid_vin};
use serde_json::{Value, json};

on_both_backends!(
    booking_a_test_drive_moves_the_lead_and_overlaps_are_refused,
    concurrent_bookings_of_one_demo_car_for_one_slot_let_exactly_one_win,
    a_demo_vehicle_out_of_the_fleet_or_of_another_dealer_cannot_be_booked,
);

async fn lead(app: &TestApp, phone: &str, consultant: i64) -> Value {
    app.create(
        &app.keys.a_sales,
        "/leads",
        &json!({"name": "林峰", "phone": phone, "channel": "online_ad", "consultant_id": consultant}),
    )
    .await
}

async fn demo(app: &TestApp, serial: u32) -> i64 {
    app.create(
        &app.keys.a_admin,
        "/demo-vehicles",
        &json!({"vin": valid_vin(serial), "model": "红旗 H5 试驾车"}),
    )
    .await["id"]
        .as_i64()
        .expect("a demo vehicle id")
}

fn booking(lead: &Value, demo: i64, consultant: i64, from: &str, to: &str) -> Value {
    json!({
        "lead_id": lead["id"], "demo_vehicle_id": demo, "consultant_id": consultant,
        "starts_at": format!("2030-05-01T{from}:00Z"), "ends_at": format!("2030-05-01T{to}:00Z"),
    })
}

async fn book(app: &TestApp, body: &Value) -> dealer_tests::Reply {
    call(app.post(&app.keys.a_sales, "/test-drives", body)).await
}

async fn booking_a_test_drive_moves_the_lead_and_overlaps_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (s1, s2) = (app.staff.a_sales, app.staff.a_sales2);
    let first = lead(&app, "13900000001", s1).await;
    let second = lead(&app, "13900000002", s2).await;
    let (car, other_car) = (demo(&app, 1).await, demo(&app, 2).await);

    let reply = book(&app, &booking(&first, car, s1, "10:00", "11:00")).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let drive = reply.body;
    assert_eq!(drive["status"], "booked");
    assert_eq!(drive["consultant_id"], s1);
    let moved = app
        .read(&app.keys.a_sales, &format!("/leads/{}", first["id"]))
        .await;
    assert_eq!(moved["stage"], "test_drive");

    // The same car, overlapping: refused, whoever asks.
    let reply = book(&app, &booking(&second, car, s2, "10:30", "11:30")).await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.body["code"], "demo_vehicle_booked");
    // The same consultant in another car, overlapping: refused.
    let reply = book(&app, &booking(&second, other_car, s1, "10:45", "11:15")).await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.body["code"], "consultant_booked");
    // Back to back is no overlap.
    let reply = book(&app, &booking(&second, car, s2, "11:00", "11:30")).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    // Slots are quarter hours.
    let reply = book(&app, &booking(&second, other_car, s2, "12:10", "12:40")).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    let reply = book(&app, &booking(&second, other_car, s2, "13:00", "12:00")).await;
    assert_eq!(reply.status, 422, "{}", reply.text);

    // Cancelling frees the slot.
    let reply = call(app.post(
        &app.keys.a_sales,
        &format!("/test-drives/{}/cancel", drive["id"]),
        &json!({}),
    ))
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["status"], "cancelled");
    let reply = book(&app, &booking(&second, car, s2, "10:00", "11:00")).await;
    assert_eq!(reply.status, 201, "{}", reply.text);

    let listed = app
        .read(
            &app.keys.a_sales,
            &format!("/test-drives?demo_vehicle_id={car}"),
        )
        .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");
    // A calendar asks for its window: drives starting in [from, until).
    let window = app
        .read(
            &app.keys.a_sales,
            &format!(
                "/test-drives?demo_vehicle_id={car}&from=2030-05-01T10:30:00Z&until=2030-05-01T11:30:00Z"
            ),
        )
        .await;
    let starts: Vec<&str> = window
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["starts_at"].as_str().unwrap())
        .collect();
    assert_eq!(starts.len(), 1, "{window}");
    assert!(starts[0].starts_with("2030-05-01T11:00:00"), "{window}");
    assert_eq!(app.read(&app.keys.b_admin, "/test-drives").await, json!([]));
}

async fn concurrent_bookings_of_one_demo_car_for_one_slot_let_exactly_one_win(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (s1, s2) = (app.staff.a_sales, app.staff.a_sales2);
    let car = demo(&app, 7).await;
    for (round, hour) in ["09", "13", "16"].iter().enumerate() {
        let first = lead(&app, &format!("1370000{round}001"), s1).await;
        let second = lead(&app, &format!("1370000{round}002"), s2).await;
        let (a, b) = (
            booking(
                &first,
                car,
                s1,
                &format!("{hour}:00"),
                &format!("{hour}:45"),
            ),
            booking(
                &second,
                car,
                s2,
                &format!("{hour}:15"),
                &format!("{hour}:30"),
            ),
        );
        let (one, other) = tokio::join!(book(&app, &a), book(&app, &b));
        let mut statuses = [one.status, other.status];
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [201, 409],
            "round {round}: {} / {}",
            one.text,
            other.text
        );
        let loser = if one.status == 409 { &one } else { &other };
        assert_eq!(loser.body["code"], "demo_vehicle_booked", "{}", loser.text);
    }
    let listed = app
        .read(
            &app.keys.a_sales,
            &format!("/test-drives?demo_vehicle_id={car}"),
        )
        .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");
}

async fn a_demo_vehicle_out_of_the_fleet_or_of_another_dealer_cannot_be_booked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s1 = app.staff.a_sales;
    let l = lead(&app, "13900000009", s1).await;
    let car = demo(&app, 3).await;
    let reply = call(app.patch(
        &app.keys.a_admin,
        &format!("/demo-vehicles/{car}"),
        &json!({"active": false}),
    ))
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["active"], false);
    let reply = book(&app, &booking(&l, car, s1, "10:00", "11:00")).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(reply.has_code("inactive_demo_vehicle"), "{}", reply.text);

    let b_car = app
        .create(
            &app.keys.b_admin,
            "/demo-vehicles",
            &json!({"vin": valid_vin(4), "model": "红旗 HS5"}),
        )
        .await;
    let reply = book(
        &app,
        &booking(&l, b_car["id"].as_i64().unwrap(), s1, "10:00", "11:00"),
    )
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(reply.has_code("unknown_demo_vehicle"), "{}", reply.text);
    let reply = call(app.post(
        &app.keys.a_admin,
        "/demo-vehicles",
        &json!({"vin": valid_vin(3), "model": "重复"}),
    ))
    .await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    // Dealer B cannot book dealer A's lead.
    let reply = call(app.post(
        &app.keys.b_admin,
        "/test-drives",
        &booking(&l, b_car["id"].as_i64().unwrap(), s1, "10:00", "11:00"),
    ))
    .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
}
