//! Dealer-defined custom fields on sales orders, repair orders and trade-ins, as customers and
//! vehicles have them: values are validated against the dealer's definitions on create and on
//! PATCH (merged by key, `null` removes one), a bad value is a 422 naming
//! `custom_fields.<key>` with nothing stored, and every answer carries the values. Records the
//! host makes as a follow-up of another use case (the customer of a lead's order, the vehicle
//! made at delivery) are not held up by the dealer's required fields.

use dealer_tests::service::owner_with_car;
use dealer_tests::{Backend, Reply, TestApp, call, on_both_backends, valid_vin};
use serde_json::{Value, json};

use crate::sales_orders::{deliver, move_to};

on_both_backends!(
    order_custom_fields_are_validated_stored_and_merged,
    repair_order_custom_fields_are_validated_stored_and_merged,
    trade_in_custom_fields_are_validated_stored_and_merged,
    required_customer_and_vehicle_fields_do_not_block_an_order_from_a_lead_or_its_delivery,
    the_api_document_describes_the_custom_fields_of_the_three_records,
    fields_with_and_without_a_range_are_defined_in_any_order,
);

/// One kind of record and how the test makes a valid one of it.
#[derive(Clone, Copy)]
enum Record {
    Order,
    RepairOrder,
    TradeIn,
}

impl Record {
    /// The `entity` of its custom field definitions.
    fn entity(self) -> &'static str {
        match self {
            Record::Order => "order",
            Record::RepairOrder => "repair_order",
            Record::TradeIn => "trade_in",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Record::Order => "/orders",
            Record::RepairOrder => "/repair-orders",
            Record::TradeIn => "/trade-ins",
        }
    }

    fn table(self) -> &'static str {
        match self {
            Record::Order => "sales_orders",
            Record::RepairOrder => "repair_orders",
            Record::TradeIn => "trade_ins",
        }
    }

    /// Whether `GET <path>` lists these records.
    fn listed(self) -> bool {
        !matches!(self, Record::TradeIn)
    }

    /// The key of the staff member who writes these records.
    fn key(self, app: &TestApp) -> &str {
        match self {
            Record::RepairOrder => &app.keys.a_service,
            Record::Order | Record::TradeIn => &app.keys.a_sales,
        }
    }

    /// A valid body for a new record of dealer_a, without custom fields.
    async fn body(self, app: &TestApp) -> Value {
        match self {
            Record::Order => json!({
                "customer_id": customer(app, "13900139101").await, "brand": "红旗", "model": "H5",
                "trim": "智联旗畅版", "colour": "釉白", "list_price_fen": 20_000_000,
                "vehicle_cost_fen": 18_000_000,
            }),
            Record::RepairOrder => {
                let (customer, vehicle) = owner_with_car(app, self.key(app), 102, json!([])).await;
                json!({"customer_id": customer, "vehicle_id": vehicle, "complaint_code": "brake_noise",
                       "complaint": "刹车时有尖锐异响"})
            }
            Record::TradeIn => json!({
                "customer_id": customer(app, "13900139103").await, "vin": valid_vin(103),
                "plate": "京A·12345", "model": "大众 朗逸", "mileage_km": 86_000,
                "quote_fen": 4_000_000,
            }),
        }
    }
}

async fn customer(app: &TestApp, phone: &str) -> i64 {
    app.create(
        &app.keys.a_sales,
        "/customers",
        &json!({"name": "黄磊", "phones": [{"number": phone}]}),
    )
    .await["id"]
        .as_i64()
        .expect("a customer id")
}

async fn stored(app: &TestApp, record: Record) -> i64 {
    let (count,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {}", record.table()))
        .fetch_one(app.db.pool())
        .await
        .expect("a count");
    count
}

/// dealer_a's fields for `record`: a note of at most 10 characters, a rating from 1 to 5 and a
/// required source; dealer_b has a field of its own.
async fn define_fields(app: &TestApp, record: Record) {
    let entity = record.entity();
    for def in [
        json!({"entity": entity, "key": "note", "label": "备注", "type": "text", "max": 10}),
        json!({"entity": entity, "key": "rating", "label": "满意度", "type": "integer", "min": 1, "max": 5}),
        json!({"entity": entity, "key": "source", "label": "来源", "type": "choice",
               "choices": ["门店", "线上"], "required": true}),
    ] {
        app.create(&app.keys.a_admin, "/custom-fields", &def).await;
    }
    app.create(
        &app.keys.b_admin,
        "/custom-fields",
        &json!({"entity": entity, "key": "b_only", "label": "乙店字段", "type": "text"}),
    )
    .await;
}

fn with(body: &Value, fields: Option<Value>) -> Value {
    let mut body = body.clone();
    if let Some(fields) = fields {
        body["custom_fields"] = fields;
    }
    body
}

async fn patch(app: &TestApp, record: Record, at: &Value, fields: Value) -> Reply {
    call(
        app.patch(
            record.key(app),
            &format!("{}/{}", record.path(), at["id"]),
            &json!({"custom_fields": fields}),
        )
        .header("If-Match", format!("\"{}\"", at["version"])),
    )
    .await
}

fn assert_refused(reply: &Reply, what: &str, field: &str, code: &str) {
    assert_eq!(reply.status, 422, "{what}: {}", reply.text);
    assert!(
        reply.names_field(field),
        "{what}: expected {field} in {}",
        reply.text
    );
    assert!(
        reply.has_code(code),
        "{what}: expected code {code} in {}",
        reply.text
    );
}

/// The whole story for one kind of record: create refused for each bad value with nothing
/// stored, create with good values stored and read back (and listed), PATCH merging, `null`
/// removing, bad patches refused with nothing changed, and the version guarding the change.
async fn custom_fields_are_validated_stored_and_merged(backend: Backend, record: Record) {
    let app = TestApp::spawn(backend).await;
    define_fields(&app, record).await;
    let key = record.key(&app);
    let body = record.body(&app).await;
    let cases = [
        (
            Some(json!({"source": "门店", "note": "这台车的车主是一位老客户了"})),
            "custom_fields.note",
            "invalid_custom_field",
        ),
        (
            Some(json!({"source": "门店", "rating": 6})),
            "custom_fields.rating",
            "invalid_custom_field",
        ),
        (
            Some(json!({"source": "门店", "rating": "五"})),
            "custom_fields.rating",
            "invalid_custom_field",
        ),
        (
            Some(json!({"source": "电话"})),
            "custom_fields.source",
            "invalid_custom_field",
        ),
        (
            Some(json!({"rating": 3})),
            "custom_fields.source",
            "required",
        ),
        (None, "custom_fields.source", "required"),
        (
            Some(json!({"source": "门店", "b_only": "乙"})),
            "custom_fields.b_only",
            "unknown_custom_field",
        ),
    ];
    for (fields, field, code) in cases {
        let body = with(&body, fields);
        let reply = call(app.post(key, record.path(), &body)).await;
        assert_refused(&reply, &format!("POST {body}"), field, code);
    }
    assert_eq!(stored(&app, record).await, 0, "nothing refused is stored");

    let values = json!({"source": "门店", "note": "老客户转介绍", "rating": 5});
    let created = app
        .create(key, record.path(), &with(&body, Some(values.clone())))
        .await;
    assert_eq!(created["custom_fields"], values, "{created}");
    let path = format!("{}/{}", record.path(), created["id"]);
    let read = app.read(key, &path).await;
    assert_eq!(read["custom_fields"], values);
    if record.listed() {
        let page = app.read(key, record.path()).await;
        assert_eq!(page["items"][0]["id"], created["id"], "{page}");
        assert_eq!(page["items"][0]["custom_fields"], values, "{page}");
    }

    // A patch is validated as a create, on the values it leaves; a refused one changes nothing.
    for (fields, field, code) in [
        (
            json!({"rating": 0}),
            "custom_fields.rating",
            "invalid_custom_field",
        ),
        (json!({"source": null}), "custom_fields.source", "required"),
        (
            json!({"b_only": "乙"}),
            "custom_fields.b_only",
            "unknown_custom_field",
        ),
    ] {
        let reply = patch(&app, record, &read, fields.clone()).await;
        assert_refused(&reply, &format!("PATCH {fields}"), field, code);
    }
    let unchanged = app.read(key, &path).await;
    assert_eq!(unchanged["custom_fields"], values);
    assert_eq!(unchanged["version"], read["version"]);

    // Merged by key: a value replaced, one removed with null, the others kept.
    let reply = patch(&app, record, &read, json!({"rating": 4, "note": null})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let merged = json!({"source": "门店", "rating": 4});
    assert_eq!(reply.body["custom_fields"], merged, "{}", reply.text);
    let version = read["version"].as_i64().expect("a version");
    assert_eq!(reply.body["version"], version + 1);
    assert_eq!(
        reply.header("etag").map(str::to_owned),
        Some(format!("\"{}\"", version + 1))
    );
    assert_eq!(app.read(key, &path).await["custom_fields"], merged);

    // The change is guarded by the version like any other.
    let stale = patch(&app, record, &read, json!({"rating": 2})).await;
    assert_eq!(stale.status, 412, "{}", stale.text);
    let unguarded = call(app.patch(key, &path, &json!({"custom_fields": {"rating": 2}}))).await;
    assert_eq!(unguarded.status, 428, "{}", unguarded.text);
    assert_eq!(app.read(key, &path).await["custom_fields"], merged);
}

async fn order_custom_fields_are_validated_stored_and_merged(backend: Backend) {
    custom_fields_are_validated_stored_and_merged(backend, Record::Order).await;
}

async fn repair_order_custom_fields_are_validated_stored_and_merged(backend: Backend) {
    custom_fields_are_validated_stored_and_merged(backend, Record::RepairOrder).await;
}

async fn trade_in_custom_fields_are_validated_stored_and_merged(backend: Backend) {
    custom_fields_are_validated_stored_and_merged(backend, Record::TradeIn).await;
}

async fn required_customer_and_vehicle_fields_do_not_block_an_order_from_a_lead_or_its_delivery(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    for def in [
        json!({"entity": "customer", "key": "licence", "label": "驾照类型", "type": "choice",
               "choices": ["C1", "C2"], "required": true}),
        json!({"entity": "vehicle", "key": "battery_kwh", "label": "电池容量", "type": "decimal",
               "required": true}),
    ] {
        app.create(&app.keys.a_admin, "/custom-fields", &def).await;
    }
    let lead = app
        .create(
            &app.keys.a_sales,
            "/leads",
            &json!({"name": "何静", "phone": "13812345678", "channel": "walk_in",
                    "consultant_id": app.staff.a_sales, "interest": "红旗 H5"}),
        )
        .await;
    // The order makes the lead's customer, who has no licence on record yet.
    let order = app
        .create(
            &app.keys.a_sales,
            "/orders",
            &json!({"lead_id": lead["id"], "brand": "红旗", "model": "H5", "vin": valid_vin(110),
                    "list_price_fen": 20_000_000, "vehicle_cost_fen": 18_000_000}),
        )
        .await;
    let customer = format!("/customers/{}", order["customer_id"]);
    assert_eq!(
        app.read(&app.keys.a_sales, &customer).await["custom_fields"],
        json!({})
    );
    // Delivery makes the vehicle, without a battery capacity on record yet.
    let order = move_to(&app, &order, "confirmed").await;
    let order = move_to(&app, &order, "pdi_passed").await;
    let order = move_to(&app, &order, "ready").await;
    let delivered = deliver(&app, &order).await;
    let vehicle = format!("/vehicles/{}", delivered["vehicle_id"]);
    let car = app.read(&app.keys.a_sales, &vehicle).await;
    assert_eq!(car["custom_fields"], json!({}));

    // Staff writing those records give the required fields, as for any other.
    let reply = call(
        app.patch(&app.keys.a_sales, &vehicle, &json!({"color": "釉白"}))
            .header("If-Match", format!("\"{}\"", car["version"])),
    )
    .await;
    assert_refused(
        &reply,
        "a staff write of the delivered car",
        "custom_fields.battery_kwh",
        "required",
    );
    let person = app.read(&app.keys.a_sales, &customer).await;
    let reply = call(
        app.patch(
            &app.keys.a_sales,
            &customer,
            &json!({"custom_fields": {"licence": "C1"}}),
        )
        .header("If-Match", format!("\"{}\"", person["version"])),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["custom_fields"], json!({"licence": "C1"}));
}

async fn the_api_document_describes_the_custom_fields_of_the_three_records(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let doc = call(app.client.get(format!("{}/openapi.json", app.base))).await;
    assert_eq!(doc.status, 200, "{}", doc.text);
    let schemas = &doc.body["components"]["schemas"];
    for schema in [
        "Order",
        "NewOrder",
        "OrderPatch",
        "RepairOrder",
        "NewRepairOrder",
        "RepairOrderPatch",
        "TradeIn",
        "NewTradeIn",
        "TradeInPatch",
    ] {
        assert!(
            schemas[schema]["properties"]["custom_fields"].is_object(),
            "{schema} has custom_fields: {}",
            schemas[schema]
        );
    }
    for path in ["/orders/{id}", "/repair-orders/{id}", "/trade-ins/{id}"] {
        assert!(
            doc.body["paths"][path]["patch"].is_object(),
            "PATCH {path} is documented"
        );
    }
    let entities = schemas["Entity"]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("the entities: {}", schemas["Entity"]));
    assert!(entities.contains(&json!("trade_in")), "{entities:?}");
}

/// On PostgreSQL a definition without a `min` used to leave its connection unable to store the
/// next one with a `min` (a 500): a dealer defining trade-in fields one after the other.
async fn fields_with_and_without_a_range_are_defined_in_any_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for i in 0..4 {
        app.create(
            &app.keys.a_admin,
            "/custom-fields",
            &json!({"entity": "trade_in", "key": format!("remark_{i}"), "label": "备注", "type": "text",
                    "max": 200}),
        )
        .await;
        app.create(
            &app.keys.a_admin,
            "/custom-fields",
            &json!({"entity": "trade_in", "key": format!("score_{i}"), "label": "评分", "type": "decimal",
                    "min": 0.5, "max": 9.5}),
        )
        .await;
    }
    let defs = app
        .read(&app.keys.a_admin, "/custom-fields?entity=trade_in")
        .await;
    let defs = defs.as_array().unwrap_or_else(|| panic!("a list: {defs}"));
    assert_eq!(defs.len(), 8, "{defs:?}");
    for def in defs {
        let ranged = def["key"].as_str().is_some_and(|k| k.starts_with("score_"));
        let (min, max) = if ranged {
            (json!(0.5), json!(9.5))
        } else {
            (Value::Null, json!(200.0))
        };
        assert_eq!((&def["min"], &def["max"]), (&min, &max), "{def}");
    }

    // A range taken away and given back.
    let score = defs
        .iter()
        .find(|d| d["key"] == "score_0")
        .expect("score_0");
    let path = format!("/custom-fields/{}", score["id"]);
    for (version, body) in [(1, json!({"min": null})), (2, json!({"min": 1.5}))] {
        let reply = call(
            app.patch(&app.keys.a_admin, &path, &body)
                .header("If-Match", format!("\"{version}\"")),
        )
        .await;
        assert_eq!(reply.status, 200, "{body}: {}", reply.text);
        assert_eq!(reply.body["min"], body["min"], "{}", reply.text);
    }
}
