//! Sales orders end to end over the API: a walk-in lead becomes a customer, test-drives,
//! orders with a discount approved by the right roles, trades in the old car and takes
//! delivery, with commission lines naming what computed them; a dealer's own commission
//! plugin, re-pinned, computes the next delivery; rejected approvals, refused transitions and
//! scoping.

use dealer_tests::guests::wasm_bytes;
use dealer_tests::{Backend, Reply, TestApp, call, on_both_backends, valid_vin};
use serde_json::{Value, json};

on_both_backends!(
    a_walk_in_lead_is_delivered_with_approvals_a_trade_in_and_commission,
    the_dealer_pins_a_new_commission_plugin_version_and_the_next_delivery_uses_it,
    a_rejected_discount_blocks_the_order_until_it_is_revised,
    refused_transitions_name_the_allowed_states,
    another_dealer_cannot_see_or_move_an_order,
    a_delivery_through_any_caller_gets_its_points_care_plan_and_partner_event,
    a_delivered_car_keeps_the_policy_and_the_batches_the_order_sold,
    nobody_approves_the_discount_they_asked_for,
);

const LIST_PRICE: i64 = 20_000_000;
const VEHICLE_COST: i64 = 18_000_000;

fn etag(value: &Value) -> String {
    format!("\"{}\"", value["version"])
}

async fn patch_order(app: &TestApp, key: &str, order: &Value, body: Value) -> Reply {
    call(
        app.patch(key, &format!("/orders/{}", order["id"]), &body)
            .header("If-Match", etag(order)),
    )
    .await
}

async fn revise(app: &TestApp, order: &Value, body: Value) -> Value {
    let reply = patch_order(app, &app.keys.a_sales, order, body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

async fn try_move(app: &TestApp, order: &Value, status: &str) -> Reply {
    call(
        app.post(
            &app.keys.a_sales,
            &format!("/orders/{}/status", order["id"]),
            &json!({"status": status}),
        )
        .header("If-Match", etag(order)),
    )
    .await
}

pub(crate) async fn move_to(app: &TestApp, order: &Value, status: &str) -> Value {
    let reply = try_move(app, order, status).await;
    assert_eq!(reply.status, 200, "to {status}: {}", reply.text);
    assert_eq!(reply.body["status"], status);
    reply.body
}

async fn try_deliver(app: &TestApp, order: &Value, body: Value) -> Reply {
    call(
        app.post(
            &app.keys.a_sales,
            &format!("/orders/{}/delivery", order["id"]),
            &body,
        )
        .header("If-Match", etag(order)),
    )
    .await
}

pub(crate) async fn deliver(app: &TestApp, order: &Value) -> Value {
    let reply = try_deliver(app, order, json!({"mileage_km": 12})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["status"], "delivered");
    reply.body
}

async fn act(app: &TestApp, key: &str, request_id: &Value, verb: &str) -> Reply {
    call(app.post(key, &format!("/approvals/{request_id}/{verb}"), &json!({}))).await
}

fn current_request<'a>(order: &'a Value, column: &str) -> &'a Value {
    let id = &order[column];
    order["approvals"]
        .as_array()
        .expect("approvals")
        .iter()
        .find(|r| &r["id"] == id)
        .unwrap_or_else(|| panic!("no current {column}: {order}"))
}

fn kinds(order: &Value) -> Vec<&str> {
    order["timeline"]
        .as_array()
        .expect("a timeline")
        .iter()
        .map(|e| e["kind"].as_str().expect("a kind"))
        .collect()
}

pub(crate) async fn customer(app: &TestApp, phone: &str) -> i64 {
    app.create(
        &app.keys.a_sales,
        "/customers",
        &json!({"name": "黄磊", "phones": [{"number": phone}]}),
    )
    .await["id"]
        .as_i64()
        .expect("a customer id")
}

fn order_for_customer(customer_id: i64, consultant: i64, serial: u32) -> Value {
    json!({
        "customer_id": customer_id, "consultant_id": consultant, "brand": "红旗", "model": "H5",
        "trim": "智联旗畅版", "colour": "釉白", "vin": valid_vin(serial),
        "list_price_fen": LIST_PRICE, "vehicle_cost_fen": VEHICLE_COST,
    })
}

/// A draft order without discount, moved to `ready`.
pub(crate) async fn ready_order(app: &TestApp, customer_id: i64, serial: u32) -> Value {
    let order = app
        .create(
            &app.keys.a_sales,
            "/orders",
            &order_for_customer(customer_id, app.staff.a_sales, serial),
        )
        .await;
    let order = move_to(app, &order, "confirmed").await;
    let order = move_to(app, &order, "pdi_passed").await;
    move_to(app, &order, "ready").await
}

async fn a_walk_in_lead_is_delivered_with_approvals_a_trade_in_and_commission(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let consultant = app.staff.a_sales;
    let lead = app
        .create(
            &app.keys.a_sales,
            "/leads",
            &json!({"name": "何静", "phone": "13812345678", "channel": "walk_in",
                    "consultant_id": consultant, "interest": "红旗 H5"}),
        )
        .await;
    let demo = app
        .create(
            &app.keys.a_admin,
            "/demo-vehicles",
            &json!({"vin": valid_vin(100), "model": "红旗 H5"}),
        )
        .await;
    app.create(
        &app.keys.a_sales,
        "/test-drives",
        &json!({"lead_id": lead["id"], "demo_vehicle_id": demo["id"],
                "starts_at": "2030-06-01T10:00:00Z", "ends_at": "2030-06-01T10:30:00Z"}),
    )
    .await;

    // The order makes the lead a customer and moves it to negotiating.
    let order = app
        .create(
            &app.keys.a_sales,
            "/orders",
            &json!({"lead_id": lead["id"], "brand": "红旗", "model": "H5", "trim": "智联旗畅版",
                    "colour": "釉白", "list_price_fen": LIST_PRICE, "vehicle_cost_fen": VEHICLE_COST,
                    "lines": [{"kind": "accessory", "description": "全车脚垫", "amount_fen": 100_000,
                               "cost_fen": 30_000}]}),
        )
        .await;
    assert_eq!(order["status"], "draft");
    assert_eq!(order["next_statuses"], json!(["confirmed", "cancelled"]));
    assert_eq!(order["consultant_id"], consultant);
    let customer_id = order["customer_id"].as_i64().expect("a customer");
    let customer = app
        .read(&app.keys.a_sales, &format!("/customers/{customer_id}"))
        .await;
    assert_eq!(customer["name"], "何静");
    let read_lead = app
        .read(&app.keys.a_sales, &format!("/leads/{}", lead["id"]))
        .await;
    assert_eq!(read_lead["stage"], "negotiating");
    assert_eq!(read_lead["customer_id"], customer_id);

    // A 10% discount needs the sales manager, then the general manager.
    let order = revise(&app, &order, json!({"discount_fen": 2_000_000})).await;
    let request = current_request(&order, "discount_approval_id").clone();
    assert_eq!(request["status"], "pending", "{request}");
    assert_eq!(
        request["steps"].as_array().map(Vec::len),
        Some(2),
        "{request}"
    );
    let reply = try_move(&app, &order, "confirmed").await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.body["code"], "approval_pending");

    for wrong in [&app.keys.a_gm, &app.keys.a_sales] {
        let reply = act(&app, wrong, &request["id"], "approve").await;
        assert_eq!(reply.status, 403, "{}", reply.text);
    }
    let reply = act(&app, &app.keys.a_sales_manager, &request["id"], "approve").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = act(&app, &app.keys.a_sales_manager, &request["id"], "approve").await;
    assert_eq!(
        reply.status, 403,
        "the next step is the general manager's: {}",
        reply.text
    );
    let reply = act(&app, &app.keys.a_gm, &request["id"], "approve").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let order = app
        .read(&app.keys.a_sales, &format!("/orders/{}", order["id"]))
        .await;
    assert_eq!(
        current_request(&order, "discount_approval_id")["status"],
        "approved"
    );

    // The old car is evaluated, photographed and traded in against the order.
    let trade_in = app
        .create(
            &app.keys.a_sales,
            "/trade-ins",
            &json!({"customer_id": customer_id, "vin": valid_vin(200), "plate": "京A·12345",
                    "model": "大众 朗逸", "mileage_km": 86_000, "quote_fen": 4_000_000,
                    "checklist": [{"item": "漆面", "grade": "yellow", "note": "左后门划痕"},
                                  {"item": "发动机", "grade": "green"}]}),
        )
        .await;
    assert_eq!(trade_in["status"], "quoted");
    let png = [
        0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, b'I', b'H', b'D', b'R',
    ];
    let photo = call(
        app.client
            .post(format!("{}/trade-ins/{}/photos", app.base, trade_in["id"]))
            .bearer_auth(&app.keys.a_sales)
            .header("content-type", "image/png")
            .body(png.to_vec()),
    )
    .await;
    assert_eq!(photo.status, 201, "{}", photo.text);
    let read_trade_in = app
        .read(&app.keys.a_sales, &format!("/trade-ins/{}", trade_in["id"]))
        .await;
    assert_eq!(read_trade_in["photos"].as_array().map(Vec::len), Some(1));
    let accepted = call(app.post(
        &app.keys.a_sales,
        &format!("/trade-ins/{}/accept", trade_in["id"]),
        &json!({"order_id": order["id"]}),
    ))
    .await;
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    assert_eq!(accepted.body["trade_in"]["status"], "accepted");
    let order = accepted.body["order"].clone();
    let final_price = LIST_PRICE + 100_000 - 2_000_000;
    assert_eq!(order["final_price_fen"], final_price);
    assert_eq!(order["trade_in_fen"], -4_000_000);
    assert_eq!(order["amount_due_fen"], final_price - 4_000_000);
    assert!(
        order["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .any(|l| l["kind"] == "trade-in" && l["amount_fen"] == -4_000_000),
        "{order}"
    );

    // Confirm (the lead is won, the owner gets a link to follow the order), allocate the car,
    // PDI, ready, deliver.
    let order = move_to(&app, &order, "confirmed").await;
    let read_lead = app
        .read(&app.keys.a_sales, &format!("/leads/{}", lead["id"]))
        .await;
    assert_eq!(read_lead["stage"], "won");
    let (recipient, data): (String, String) = sqlx::query_as(
        "SELECT recipient, data FROM outbox WHERE dedupe_key = $1 AND template = 'order-confirmed'",
    )
    .bind(format!("order:{}:tracking", order["id"]))
    .fetch_one(app.db.pool())
    .await
    .expect("the owner's tracking SMS");
    assert_eq!(recipient, format!("customer:{customer_id}"));
    let data: Value = serde_json::from_str(&data).unwrap();
    let token = data["tracking-url"]
        .as_str()
        .and_then(|u| u.strip_prefix("/o/c/"))
        .unwrap_or_else(|| panic!("a tracking link: {data}"))
        .to_owned();
    let tracking = format!("{}/owner/orders/{token}", app.base);
    let waiting = call(app.client.get(&tracking)).await;
    assert_eq!(waiting.status, 200, "{}", waiting.text);
    assert_eq!(waiting.body["status"], "confirmed");
    assert_eq!(waiting.body["text"], "订单已确认，正在为您备车");
    assert_eq!(waiting.body["delivered"], false);
    assert!(
        waiting.body.get("lines").is_none() && waiting.body.get("approvals").is_none(),
        "the owner sees no lines or approvals: {}",
        waiting.body
    );
    let vin = valid_vin(300);
    let order = revise(&app, &order, json!({"vin": vin})).await;
    let order = move_to(&app, &order, "pdi_passed").await;
    let order = move_to(&app, &order, "ready").await;
    let reply = try_deliver(
        &app,
        &order,
        json!({"plate": "京A·D12345", "mileage_km": 12, "note": "客户满意"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let delivered = reply.body;
    assert_eq!(delivered["status"], "delivered");
    assert!(delivered["delivered_at"].is_string());
    let done = call(app.client.get(&tracking)).await;
    assert_eq!(done.body["delivered"], true, "{}", done.text);
    let steps: Vec<&str> = done.body["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["draft", "confirmed", "pdi_passed", "ready", "delivered"],
        "{}",
        done.text
    );
    let (survey,): (String,) = sqlx::query_as(
        "SELECT data FROM outbox WHERE template = 'satisfaction-survey' AND recipient = $1",
    )
    .bind(format!("customer:{customer_id}"))
    .fetch_one(app.db.pool())
    .await
    .expect("the delivery's survey");
    let survey: Value = serde_json::from_str(&survey).unwrap();
    assert_eq!(survey["subject-kind"], "sales_order", "{survey}");
    assert_eq!(survey["subject-id"], order["id"].to_string());

    let lines = delivered["commission"]
        .as_array()
        .expect("commission lines");
    assert_eq!(lines.len(), 1, "{delivered}");
    assert_eq!(lines[0]["staff_id"], consultant);
    assert_eq!(lines[0]["amount_fen"], final_price / 100);
    assert_eq!(lines[0]["plugin"], "built-in");
    assert!(lines[0]["plugin_version"].is_null());
    assert!(lines[0]["run_id"].is_i64(), "{delivered}");

    let vehicle_id = delivered["vehicle_id"].as_i64().expect("a vehicle");
    let vehicle = app
        .read(&app.keys.a_sales, &format!("/vehicles/{vehicle_id}"))
        .await;
    assert_eq!(vehicle["vin"], vin);
    assert_eq!(vehicle["model"], "H5");
    // Bought on the dealer's local date (Beijing, UTC+8) of the delivery, which is the next
    // UTC day from 16:00 UTC on.
    let delivered_at =
        chrono::DateTime::parse_from_rfc3339(lines[0]["created_at"].as_str().expect("a time"))
            .expect("an RFC 3339 time");
    let beijing = chrono::FixedOffset::east_opt(8 * 3600).expect("an offset");
    assert_eq!(
        vehicle["purchase_date"],
        delivered_at
            .with_timezone(&beijing)
            .date_naive()
            .to_string()
    );
    assert_eq!(vehicle["latest_mileage_km"], 12);
    assert!(
        vehicle["people"]
            .as_array()
            .expect("people")
            .iter()
            .any(|p| p["customer_id"] == customer_id && p["role"] == "owner"),
        "{vehicle}"
    );

    let read = app
        .read(&app.keys.a_sales, &format!("/orders/{}", order["id"]))
        .await;
    let timeline = kinds(&read);
    for kind in [
        "created",
        "approval_requested",
        "trade_in",
        "status",
        "delivered",
    ] {
        assert!(timeline.contains(&kind), "{kind} missing from {timeline:?}");
    }
    let audit = app
        .read(
            &app.keys.a_admin,
            &format!("/audit?entity=sales_order&entity_id={}", order["id"]),
        )
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .expect("audit entries")
        .iter()
        .map(|e| e["action"].as_str().expect("an action"))
        .collect();
    for action in ["create", "update", "deliver"] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    assert!(
        actions.iter().filter(|a| **a == "update").count() >= 5,
        "every revision and move is audited: {actions:?}"
    );
    let month = &lines[0]["month"];
    let statement = app
        .read(
            &app.keys.a_admin,
            &format!(
                "/commission?staff_id={consultant}&month={}",
                month.as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(statement["total_fen"], final_price / 100);
    assert_eq!(statement["lines"][0]["order_id"], order["id"]);

    // The delivery earned the owner points (the built-in rule: one per yuan of the final
    // price), started the car's care plan, and was handed to the partners' integration.
    let points = app
        .read(
            &app.keys.a_sales,
            &format!("/customers/{customer_id}/points"),
        )
        .await;
    assert_eq!(points["account"]["balance"], final_price / 100, "{points}");
    let earned = &points["ledger"]["items"][0];
    assert_eq!(earned["cause"]["kind"], "sales_order", "{points}");
    assert_eq!(earned["cause"]["id"], order["id"].to_string());
    let reminders = app
        .read(
            &app.keys.a_sales,
            &format!("/vehicles/{vehicle_id}/reminders"),
        )
        .await;
    let kinds: Vec<&str> = reminders
        .as_array()
        .expect("reminders")
        .iter()
        .map(|r| r["kind"].as_str().expect("a kind"))
        .collect();
    assert!(kinds.contains(&"maintenance"), "{reminders}");
    let events = app
        .read(
            &app.keys.a_sales,
            &format!("/integration-events?order_id={}", order["id"]),
        )
        .await;
    assert_eq!(events[0]["kind"], "vehicle-delivered", "{events}");
    assert_eq!(events[0]["payload"]["vin"], vin);

    // The customer's 360 view shows the purchase and the points with the car.
    let view = app
        .read(&app.keys.a_sales, &format!("/customers/{customer_id}/360"))
        .await;
    assert_eq!(view["orders"][0]["id"], order["id"], "{view}");
    assert_eq!(view["orders"][0]["status"], "delivered");
    assert_eq!(view["points"]["balance"], final_price / 100);
    assert_eq!(view["points_ledger"][0]["cause"]["kind"], "sales_order");
    assert!(
        view["vehicles"]
            .as_array()
            .expect("vehicles")
            .iter()
            .any(|v| v["id"] == vehicle_id),
        "{view}"
    );
}

async fn the_dealer_pins_a_new_commission_plugin_version_and_the_next_delivery_uses_it(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let a = app.units.dealer_a;
    let plugin = app
        .create(
            &app.keys.a_admin,
            "/plugins",
            &json!({"name": "our-commission", "hook": "commission"}),
        )
        .await;
    let id = plugin["id"].as_i64().expect("a plugin id");
    for (guest, version) in [
        ("guest-commission-flat", "1.0.0"),
        ("guest-commission-gross", "2.0.0"),
    ] {
        let reply = call(
            app.client
                .post(format!(
                    "{}/plugins/{id}/versions?version={version}",
                    app.base
                ))
                .bearer_auth(&app.keys.a_admin)
                .header("content-type", "application/wasm")
                .body(wasm_bytes(guest)),
        )
        .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    let reply = call(
        app.client
            .put(format!("{}/dealers/{a}/plugins/commission", app.base))
            .bearer_auth(&app.keys.a_admin)
            .json(&json!({"plugin_id": id, "pinned_version": "1.0.0", "config": {"percent": 2}})),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    app.enable_first_party("loyalty", "loyalty").await;

    let customer_id = customer(&app, "13711112222").await;
    let first = deliver(&app, &ready_order(&app, customer_id, 11).await).await;
    let line = &first["commission"][0];
    assert_eq!(line["plugin"], "our-commission", "{first}");
    assert_eq!(line["plugin_version"], "1.0.0");
    // The points name the loyalty plugin and version that awarded them.
    let points = app
        .read(
            &app.keys.a_sales,
            &format!("/customers/{customer_id}/points"),
        )
        .await;
    let earned = &points["ledger"]["items"][0];
    assert_eq!(earned["cause"]["id"], first["id"].to_string(), "{points}");
    assert_eq!(earned["decided_by"]["plugin"], "loyalty", "{points}");
    assert_eq!(earned["decided_by"]["version"], "0.1.0");
    assert!(earned["points"].as_i64().unwrap_or(0) > 0, "{points}");
    assert_eq!(line["amount_fen"], LIST_PRICE * 2 / 100);
    assert_eq!(line["reason"], "flat 2%");

    let bindings = app
        .read(&app.keys.a_admin, &format!("/dealers/{a}/plugins"))
        .await;
    let version = bindings["bindings"][0]["version"]
        .as_i64()
        .expect("a binding version");
    let pinned = call(
        app.patch(
            &app.keys.a_admin,
            &format!("/dealers/{a}/plugins/commission"),
            &json!({"pinned_version": "2.0.0", "config": {"share_bp": 1000}}),
        )
        .header("if-match", format!("\"{version}\"")),
    )
    .await;
    assert_eq!(pinned.status, 200, "{}", pinned.text);

    let second = deliver(&app, &ready_order(&app, customer_id, 12).await).await;
    let line = &second["commission"][0];
    assert_eq!(line["plugin"], "our-commission", "{second}");
    assert_eq!(line["plugin_version"], "2.0.0");
    assert_eq!(line["amount_fen"], (LIST_PRICE - VEHICLE_COST) / 10);
    assert_eq!(line["reason"], "gross 1000bp");
    // The first delivery keeps what computed it.
    let first = app
        .read(&app.keys.a_sales, &format!("/orders/{}", first["id"]))
        .await;
    assert_eq!(first["commission"][0]["plugin_version"], "1.0.0");
    assert!(line["run_id"].is_i64(), "{second}");
}

async fn a_rejected_discount_blocks_the_order_until_it_is_revised(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer_id = customer(&app, "13722223333").await;
    let order = app
        .create(
            &app.keys.a_sales,
            "/orders",
            &order_for_customer(customer_id, app.staff.a_sales, 21),
        )
        .await;
    // 5%: the sales manager alone.
    let order = revise(&app, &order, json!({"discount_fen": 1_000_000})).await;
    let first = current_request(&order, "discount_approval_id").clone();
    assert_eq!(first["steps"].as_array().map(Vec::len), Some(1), "{first}");
    let reply = act(&app, &app.keys.a_sales_manager, &first["id"], "reject").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let order = app
        .read(&app.keys.a_sales, &format!("/orders/{}", order["id"]))
        .await;
    let reply = try_move(&app, &order, "confirmed").await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.body["code"], "approval_rejected");

    // A smaller discount (2%) passes on its own and the order proceeds.
    let order = revise(&app, &order, json!({"discount_fen": 400_000})).await;
    let second = current_request(&order, "discount_approval_id");
    assert_ne!(second["id"], first["id"]);
    assert_eq!(second["status"], "approved", "{second}");
    assert_eq!(order["approvals"].as_array().map(Vec::len), Some(2));
    let order = move_to(&app, &order, "confirmed").await;
    // The terms of a confirmed order are fixed.
    let reply = patch_order(&app, &app.keys.a_sales, &order, json!({"discount_fen": 0})).await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.body["code"], "order_not_draft");
}

async fn refused_transitions_name_the_allowed_states(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer_id = customer(&app, "13733334444").await;
    let order = app
        .create(
            &app.keys.a_sales,
            "/orders",
            &order_for_customer(customer_id, app.staff.a_sales, 31),
        )
        .await;
    let reply = try_move(&app, &order, "ready").await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.body["code"], "invalid_transition");
    assert_eq!(reply.body["allowed"], json!(["confirmed", "cancelled"]));
    let reply = try_deliver(&app, &order, json!({})).await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.body["code"], "invalid_transition");

    // With a finance plan, PDI leads to finance approval (the finance desk approves the plan).
    let order = revise(
        &app,
        &order,
        json!({"finance_plan": "36期低息", "financed_fen": 10_000_000}),
    )
    .await;
    let request = current_request(&order, "finance_approval_id").clone();
    let reply = act(&app, &app.keys.a_sales_manager, &request["id"], "approve").await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    let reply = act(&app, &app.keys.a_finance, &request["id"], "approve").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let order = app
        .read(&app.keys.a_sales, &format!("/orders/{}", order["id"]))
        .await;
    let order = move_to(&app, &order, "confirmed").await;
    let order = move_to(&app, &order, "pdi_passed").await;
    let reply = try_move(&app, &order, "ready").await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(
        reply.body["allowed"],
        json!(["finance_approved", "cancelled"])
    );
    let order = move_to(&app, &order, "finance_approved").await;
    let order = move_to(&app, &order, "cancelled").await;
    let reply = try_move(&app, &order, "confirmed").await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.body["allowed"], json!([]));
    let read = app
        .read(&app.keys.a_sales, &format!("/orders/{}", order["id"]))
        .await;
    assert_eq!(read["status"], "cancelled");
    assert_eq!(
        read["version"], order["version"],
        "a refused move changes nothing"
    );
}

async fn another_dealer_cannot_see_or_move_an_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer_id = customer(&app, "13744445555").await;
    let order = app
        .create(
            &app.keys.a_sales,
            "/orders",
            &order_for_customer(customer_id, app.staff.a_sales, 41),
        )
        .await;
    let path = format!("/orders/{}", order["id"]);
    assert_eq!(call(app.get(&app.keys.b_admin, &path)).await.status, 404);
    let reply = patch_order(&app, &app.keys.b_admin, &order, json!({"discount_fen": 1})).await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    let reply = call(
        app.post(
            &app.keys.b_admin,
            &format!("{path}/status"),
            &json!({"status": "confirmed"}),
        )
        .header("If-Match", etag(&order)),
    )
    .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert_eq!(
        app.read(&app.keys.b_admin, "/orders").await["items"],
        json!([])
    );
    let reply = call(app.post(
        &app.keys.b_admin,
        "/orders",
        &order_for_customer(customer_id, app.staff.a_sales, 42),
    ))
    .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert_eq!(
        app.read(&app.keys.north_manager, &path).await["id"],
        order["id"]
    );
}

/// A delivery made by calling the domain directly (as the CLI, a worker or a console action
/// would), not through the HTTP handler, sets off the same follow-ups: the owner's points, the
/// car's care plan and the partners' `vehicle-delivered` event.
async fn a_delivery_through_any_caller_gets_its_points_care_plan_and_partner_event(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let customer_id = customer(&app, "13900139031").await;
    let order = ready_order(&app, customer_id, 31).await;
    let caller = app.caller(&app.keys.a_sales).await;
    let version = order["version"].as_i64().expect("a version");
    let delivered = dealer_host::sales::delivery::deliver(
        &app.state.db,
        &app.state.plugins,
        &caller,
        order["id"].as_i64().expect("an order id"),
        version,
        &dealer_host::sales::delivery::NewDelivery::default(),
    )
    .await
    .expect("the order is delivered");
    let vehicle_id = delivered.vehicle_id.expect("the car became a vehicle");

    let points = app
        .read(
            &app.keys.a_sales,
            &format!("/customers/{customer_id}/points"),
        )
        .await;
    assert_eq!(
        points["account"]["balance"],
        delivered.final_price_fen / 100,
        "{points}"
    );
    assert_eq!(points["ledger"]["items"][0]["cause"]["kind"], "sales_order");
    let reminders = app
        .read(
            &app.keys.a_sales,
            &format!("/vehicles/{vehicle_id}/reminders"),
        )
        .await;
    assert!(
        reminders
            .as_array()
            .expect("reminders")
            .iter()
            .any(|r| r["kind"] == "maintenance"),
        "{reminders}"
    );
    let events = app
        .read(
            &app.keys.a_sales,
            &format!("/integration-events?order_id={}", order["id"]),
        )
        .await;
    assert_eq!(events[0]["kind"], "vehicle-delivered", "{events}");
}

/// What the order sold goes with the car: the insurer and expiry of the policy sold with it
/// (so the advisor gets the renewal task) and the car's component batches (so a batch
/// campaign finds it). Bad values are refused, and a delivered order takes none.
async fn a_delivered_car_keeps_the_policy_and_the_batches_the_order_sold(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer_id = customer(&app, "13900139041").await;
    let order = ready_order(&app, customer_id, 41).await;
    let today = dealer_host::reminders::today_in_china(dealer_host::clock::now_ms());
    let expiry = (today + chrono::Days::new(30)).to_string();
    let batches = json!([{"component": "brake_caliper", "batch": "BC-2026-11"}]);

    let reply = patch_order(
        &app,
        &app.keys.a_sales,
        &order,
        json!({"components": [{"component": "brake_caliper", "batch": " "}]}),
    )
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(reply.has_code("invalid_component"), "{}", reply.text);
    let order = revise(
        &app,
        &order,
        json!({"insurer": "中国人保", "insurance_expiry": expiry, "components": batches}),
    )
    .await;
    assert_eq!(order["insurer"], "中国人保", "{order}");
    assert_eq!(order["insurance_expiry"], expiry);
    assert_eq!(order["components"], batches);

    let delivered = deliver(&app, &order).await;
    let vehicle_id = delivered["vehicle_id"].as_i64().expect("the car's vehicle");
    let vehicle = app
        .read(&app.keys.a_sales, &format!("/vehicles/{vehicle_id}"))
        .await;
    assert_eq!(vehicle["insurer"], "中国人保", "{vehicle}");
    assert_eq!(vehicle["insurance_expiry"], expiry);
    assert_eq!(vehicle["components"], batches);
    let tasks = app
        .read(
            &app.keys.a_service,
            &format!("/tasks?vehicle_id={vehicle_id}"),
        )
        .await;
    assert!(
        tasks["items"]
            .as_array()
            .expect("tasks")
            .iter()
            .any(|t| t["kind"] == "insurance_renewal" && t["customer_id"] == customer_id),
        "the renewal is the advisor's task: {tasks}"
    );
    let campaign = app
        .create(
            &app.keys.a_service,
            "/campaigns",
            &json!({"name": "前制动卡钳主动检查", "component": "brake_caliper",
                    "batch": "BC-2026-11", "min_km": 0, "max_km": 1_000}),
        )
        .await;
    let found = app
        .read(
            &app.keys.a_service,
            &format!("/campaigns/{}/vehicles", campaign["id"]),
        )
        .await;
    assert!(
        found
            .as_array()
            .expect("vehicles")
            .iter()
            .any(|v| v["vehicle_id"] == vehicle_id),
        "the campaign finds the car sold: {found}"
    );

    let reply = patch_order(
        &app,
        &app.keys.a_sales,
        &delivered,
        json!({"insurer": "太平洋保险"}),
    )
    .await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert!(reply.has_code("order_closed"), "{}", reply.text);
}

async fn nobody_approves_the_discount_they_asked_for(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let manager = &app.keys.a_sales_manager;
    let customer = app
        .create(
            manager,
            "/customers",
            &json!({"name": "钱多多", "phones": [{"number": "13812340000"}], "tags": []}),
        )
        .await;
    let order = app
        .create(
            manager,
            "/orders",
            &json!({"customer_id": customer["id"], "brand": "红旗", "model": "H5",
                    "list_price_fen": LIST_PRICE, "vehicle_cost_fen": VEHICLE_COST}),
        )
        .await;
    let reply = patch_order(&app, manager, &order, json!({"discount_fen": 2_000_000})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let request = current_request(&reply.body, "discount_approval_id").clone();
    assert_eq!(
        request["requested_by"], app.staff.a_sales_manager,
        "{request}"
    );

    let own = act(&app, manager, &request["id"], "approve").await;
    assert_eq!(own.status, 403, "{}", own.text);
    assert!(
        own.text.contains("you asked for this approval"),
        "{}",
        own.text
    );
    let still = app
        .read(manager, &format!("/approvals/{}", request["id"]))
        .await;
    assert_eq!(still["status"], "pending", "{still}");
    assert_eq!(still["steps"][0]["status"], "waiting", "{still}");
}
