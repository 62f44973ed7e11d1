//! Integration partners act only for the dealers that granted them a purpose: a dealer admin
//! lists the partners, grants (`charging-sessions`) and revokes, each recorded with who and when
//! and audited; without a grant in force a partner's call is answered 404 whether or not the
//! customer exists; the demo's partner is granted by the flagship store.

use dealer_host::access::keys;
use dealer_host::loyalty::{self, EventKind, ReportedEvent};
use dealer_host::seed;
use dealer_tests::{Backend, Reply, TestApp, TestDb, call, on_both_backends};
use serde_json::{Value, json};
use sqlx::AnyConnection;

on_both_backends!(
    a_partner_without_a_grant_is_told_nothing_about_any_customer,
    a_grant_lets_the_partner_report_for_that_dealer_until_it_is_revoked,
    grants_are_validated_and_only_the_dealer_admin_manages_them,
    the_demo_partner_is_granted_by_the_flagship_store,
);

fn session(id: &str) -> Value {
    json!({"kind": "partner_activity", "cause": {"kind": "partner", "id": id}, "attributes": {"kwh": "30"}})
}

async fn customer(app: &TestApp, key: &str) -> i64 {
    app.create(
        key,
        "/customers",
        &json!({"name": "陈晨", "phones": [{"number": "13800138000"}]}),
    )
    .await["id"]
        .as_i64()
        .expect("a customer id")
}

async fn report(app: &TestApp, customer_id: i64, event: &Value) -> Reply {
    call(app.post(
        &app.keys.partner,
        &format!("/customers/{customer_id}/points/events"),
        event,
    ))
    .await
}

/// The fixture's partner key id, as `GET /partners` lists it to dealer A's admin.
async fn partner_key_id(app: &TestApp) -> i64 {
    let partners = app.read(&app.keys.a_admin, "/partners").await;
    partners
        .as_array()
        .expect("a list")
        .iter()
        .find(|p| p["label"] == "partner")
        .unwrap_or_else(|| panic!("the fixture's partner is listed: {partners}"))["key_id"]
        .as_i64()
        .expect("a key id")
}

/// What a 404 says, without anything that may differ between two requests.
fn not_found(reply: &Reply) -> (u16, Value, Value) {
    (
        reply.status,
        reply.body["code"].clone(),
        reply.body["detail"].clone(),
    )
}

async fn a_partner_without_a_grant_is_told_nothing_about_any_customer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let existing = customer(&app, &app.keys.a_sales).await;

    let refused = report(&app, existing, &session("s-1")).await;
    assert_eq!(refused.status, 404, "{}", refused.text);
    let missing = report(&app, 999_999, &session("s-2")).await;
    assert_eq!(
        not_found(&refused),
        not_found(&missing),
        "an existing customer is answered like a missing one"
    );
    let denied = app
        .read(&app.keys.a_admin, "/audit?outcome=denied&entity=customer")
        .await;
    assert_eq!(
        denied["items"][0]["actor_role"], "partner",
        "the attempt is audited: {denied}"
    );
}

async fn a_grant_lets_the_partner_report_for_that_dealer_until_it_is_revoked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let at_a = customer(&app, &app.keys.a_sales).await;
    let at_b = customer(&app, &app.keys.b_admin).await;
    let partner = partner_key_id(&app).await;

    let grant = app
        .create(
            &app.keys.a_admin,
            "/partners/grants",
            &json!({"partner_key_id": partner, "purpose": "charging-sessions"}),
        )
        .await;
    let a_admin = app.caller(&app.keys.a_admin).await;
    assert_eq!(grant["dealer_id"], app.units.dealer_a);
    assert_eq!(grant["granted_by_key_id"], a_admin.key_id);
    assert!(grant["granted_at"].is_string(), "{grant}");
    assert!(grant["revoked_at"].is_null(), "{grant}");
    let listed = app.read(&app.keys.a_admin, "/partners").await;
    let listed = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["key_id"] == partner)
        .expect("the partner");
    assert_eq!(listed["grants"][0]["id"], grant["id"], "{listed}");

    let reply = report(&app, at_a, &session("s-1")).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["duplicate"], false, "{}", reply.text);
    let reply = report(&app, at_b, &session("s-2")).await;
    assert_eq!(
        reply.status, 404,
        "dealer B granted nothing: {}",
        reply.text
    );
    let reply = report(
        &app,
        at_a,
        &json!({"kind": "spend", "amount_fen": 10_000_000, "cause": {"kind": "partner", "id": "s-3"}}),
    )
    .await;
    assert_eq!(reply.status, 403, "outside the purpose: {}", reply.text);

    let path = format!("/partners/grants/{}", grant["id"]);
    let reply = call(app.delete(&app.keys.b_admin, &path)).await;
    assert_eq!(reply.status, 404, "another dealer's grant: {}", reply.text);
    let reply = call(app.delete(&app.keys.a_admin, &path)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["revoked_by_key_id"], a_admin.key_id);
    assert!(reply.body["revoked_at"].is_string(), "{}", reply.text);
    let again = call(app.delete(&app.keys.a_admin, &path)).await;
    assert_eq!(
        (again.status, &again.body["code"]),
        (409, &json!("grant_revoked"))
    );

    let reply = report(&app, at_a, &session("s-4")).await;
    assert_eq!(reply.status, 404, "revoked: {}", reply.text);
    let grants = app.read(&app.keys.a_admin, "/partners/grants").await;
    assert_eq!(
        grants.as_array().unwrap().len(),
        1,
        "the consent is kept: {grants}"
    );
    assert!(grants[0]["revoked_at"].is_string());
    for action in ["grant_partner", "revoke_partner"] {
        let audit = app
            .read(&app.keys.a_admin, &format!("/audit?action={action}"))
            .await;
        let entry = &audit["items"][0];
        assert_eq!(entry["entity_id"], grant["id"], "{action}: {audit}");
        assert_eq!(
            entry["detail"],
            json!({"partner_key_id": partner, "purpose": "charging-sessions"})
        );
    }
}

async fn grants_are_validated_and_only_the_dealer_admin_manages_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let partner = partner_key_id(&app).await;
    let hq_admin = app.caller(&app.keys.hq_admin).await;
    for (body, code) in [
        (
            json!({"partner_key_id": hq_admin.key_id, "purpose": "charging-sessions"}),
            "unknown_partner",
        ),
        (
            json!({"partner_key_id": partner, "purpose": "everything"}),
            "invalid_value",
        ),
        (json!({"partner_key_id": partner}), "invalid_value"),
    ] {
        let reply = call(app.post(&app.keys.a_admin, "/partners/grants", &body)).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.text);
        assert!(reply.has_code(code), "{body}: {}", reply.text);
    }
    let body = json!({"partner_key_id": partner, "purpose": "charging-sessions"});
    for key in [&app.keys.a_sales, &app.keys.hq_admin, &app.keys.partner] {
        let reply = call(app.post(key, "/partners/grants", &body)).await;
        assert_eq!(reply.status, 403, "{}", reply.text);
        assert_eq!(call(app.get(key, "/partners")).await.status, 403);
    }
    app.create(&app.keys.a_admin, "/partners/grants", &body)
        .await;
    let twice = call(app.post(&app.keys.a_admin, "/partners/grants", &body)).await;
    assert_eq!(
        (twice.status, &twice.body["code"]),
        (409, &json!("already_granted"))
    );
    assert_eq!(
        app.read(&app.keys.a_admin, "/partners/grants")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.read(&app.keys.b_admin, "/partners/grants").await,
        json!([]),
        "dealer B sees none of dealer A's grants"
    );
}

/// A customer of the dealer with `code` in the demo network.
async fn demo_customer(conn: &mut AnyConnection, code: &str) -> i64 {
    let (id,): (i64,) = sqlx::query_as(
        "SELECT c.id FROM customers c JOIN org_units o ON o.id = c.dealer_id WHERE o.code = $1 \
         ORDER BY c.id LIMIT 1",
    )
    .bind(code)
    .fetch_one(&mut *conn)
    .await
    .expect("a demo customer");
    id
}

async fn the_demo_partner_is_granted_by_the_flagship_store(backend: Backend) {
    let t = TestDb::new(backend).await;
    seed::demo(&t.db).await.unwrap();
    // Keys are issued afresh at each demo start; the new partner key is granted each time.
    seed::issue_demo_keys(&t.db).await.unwrap();
    let issued = seed::issue_demo_keys(&t.db).await.unwrap();
    let key = issued
        .iter()
        .find(|k| k.role.as_str() == "partner")
        .expect("a demo partner key");
    let mut conn = t.db.pool().acquire().await.unwrap();
    let partner = keys::authenticate(&mut conn, &key.key).await.unwrap();
    let event = ReportedEvent {
        kind: EventKind::PartnerActivity,
        amount_fen: 0,
        cause: loyalty::Cause::new("partner", "demo-session"),
        attributes: Default::default(),
    };
    let flagship = demo_customer(&mut conn, "BJ-CY-4S").await;
    let reported = loyalty::reported(&mut conn, &partner, flagship, event.clone()).await;
    assert!(reported.is_ok(), "{reported:?}");
    let elsewhere = demo_customer(&mut conn, "SH-PD-4S").await;
    let refused = loyalty::reported(&mut conn, &partner, elsewhere, event).await;
    assert!(
        matches!(refused, Err(dealer_host::error::Error::Denied(_))),
        "{refused:?}"
    );
}
