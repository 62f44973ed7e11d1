//! Tickets and complaints through the API: creation, the status workflow with its timeline,
//! first-contact time, refused transitions, optimistic concurrency, listing and scoping.

use dealer_tests::{Backend, TestApp, call, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    a_new_ticket_is_open_with_its_first_event,
    the_first_move_to_in_progress_records_the_first_contact,
    a_closed_ticket_cannot_go_back_to_resolved,
    a_ticket_update_needs_the_current_version,
    tickets_are_listed_by_status,
    invalid_tickets_are_refused_and_nothing_stored,
    tickets_are_scoped_to_the_dealer_of_their_customer,
    concurrent_moves_from_one_version_let_exactly_one_win,
);

async fn customer(app: &TestApp, key: &str) -> i64 {
    app.create(
        key,
        "/customers",
        &json!({"name": "吴磊", "phones": [{"number": "13800138000"}], "tags": []}),
    )
    .await["id"]
        .as_i64()
        .unwrap()
}

fn complaint(customer_id: i64) -> Value {
    json!({
        "customer_id": customer_id, "channel": "hotline", "category": "complaint",
        "subject": "保养后发动机异响", "description": "上周五保养后，冷启动时有明显异响。", "priority": "high"
    })
}

fn items(page: &Value) -> &Vec<Value> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page with items: {page}"))
}

fn statuses(ticket: &Value) -> Vec<String> {
    ticket["events"]
        .as_array()
        .unwrap_or_else(|| panic!("a ticket with events: {ticket}"))
        .iter()
        .map(|e| {
            e["to_status"]
                .as_str()
                .unwrap_or_else(|| panic!("an event with to_status: {e}"))
                .to_owned()
        })
        .collect()
}

async fn move_to(app: &TestApp, path: &str, status: &str, version: i64) -> Value {
    let reply = call(
        app.patch(&app.keys.a_service, path, &json!({"status": status}))
            .header("If-Match", format!("\"{version}\"")),
    )
    .await;
    assert_eq!(reply.status, 200, "to {status}: {}", reply.text);
    assert_eq!(reply.body["status"], status);
    assert_eq!(reply.body["version"], version + 1);
    reply.body
}

async fn a_new_ticket_is_open_with_its_first_event(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer_id = customer(&app, &app.keys.a_sales).await;
    let reply = call(app.post(&app.keys.a_service, "/tickets", &complaint(customer_id))).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.header("etag"), Some("\"1\""));
    let t = &reply.body;
    let id = t["id"].as_i64().expect("an id");
    assert!(
        reply
            .header("location")
            .is_some_and(|l| l.ends_with(&format!("/tickets/{id}")))
    );
    assert_eq!(t["status"], "open");
    assert_eq!(t["customer_id"], customer_id);
    assert_eq!(t["dealer_id"], app.units.dealer_a);
    assert_eq!(t["channel"], "hotline");
    assert_eq!(t["subject"], "保养后发动机异响");
    assert_eq!(t["priority"], "high");
    assert_eq!(t["version"], 1);
    assert!(t["first_contact_at"].is_null(), "{t}");
    assert_eq!(statuses(t), vec!["open"]);

    let read = call(app.get(&app.keys.a_admin, &format!("/tickets/{id}"))).await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.header("etag"), Some("\"1\""));
    assert_eq!(
        read.body["description"],
        "上周五保养后，冷启动时有明显异响。"
    );
}

async fn the_first_move_to_in_progress_records_the_first_contact(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer_id = customer(&app, &app.keys.a_sales).await;
    let created = app
        .create(&app.keys.a_service, "/tickets", &complaint(customer_id))
        .await;
    let path = format!("/tickets/{}", created["id"]);
    let updated = move_to(&app, &path, "in_progress", 1).await;
    let first_contact = updated["first_contact_at"].clone();
    assert!(
        first_contact.is_string(),
        "first_contact_at is set: {updated}"
    );
    assert_eq!(statuses(&updated), vec!["open", "in_progress"]);
    let read = app.read(&app.keys.a_service, &path).await;
    assert_eq!(read["first_contact_at"], first_contact);
    assert_eq!(read["status"], "in_progress");
}

async fn a_closed_ticket_cannot_go_back_to_resolved(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer_id = customer(&app, &app.keys.a_sales).await;
    let created = app
        .create(&app.keys.a_service, "/tickets", &complaint(customer_id))
        .await;
    let path = format!("/tickets/{}", created["id"]);
    move_to(&app, &path, "in_progress", 1).await;
    let resolved = move_to(&app, &path, "resolved", 2).await;
    assert!(resolved["resolved_at"].is_string(), "{resolved}");
    let closed = move_to(&app, &path, "closed", 3).await;
    assert!(closed["closed_at"].is_string(), "{closed}");
    assert_eq!(
        statuses(&closed),
        vec!["open", "in_progress", "resolved", "closed"]
    );

    let reply = call(
        app.patch(&app.keys.a_service, &path, &json!({"status": "resolved"}))
            .header("If-Match", "\"4\""),
    )
    .await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.body["code"], "invalid_transition");
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    let allowed = reply.body["allowed"]
        .as_array()
        .unwrap_or_else(|| panic!("an allowed list: {}", reply.text));
    assert!(!allowed.contains(&json!("resolved")), "{}", reply.text);
    let read = app.read(&app.keys.a_service, &path).await;
    assert_eq!(read["status"], "closed");
    assert_eq!(read["version"], 4);
    assert_eq!(
        statuses(&read).len(),
        4,
        "the refused move left no event: {read}"
    );
}

async fn a_ticket_update_needs_the_current_version(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer_id = customer(&app, &app.keys.a_sales).await;
    let created = app
        .create(&app.keys.a_service, "/tickets", &complaint(customer_id))
        .await;
    let path = format!("/tickets/{}", created["id"]);
    let missing = call(app.patch(
        &app.keys.a_service,
        &path,
        &json!({"status": "in_progress"}),
    ))
    .await;
    assert_eq!(missing.status, 428, "{}", missing.text);
    assert_eq!(missing.body["code"], "if_match_required");
    move_to(&app, &path, "in_progress", 1).await;
    let stale = call(
        app.patch(&app.keys.a_admin, &path, &json!({"status": "resolved"}))
            .header("If-Match", "\"1\""),
    )
    .await;
    assert_eq!(stale.status, 412, "{}", stale.text);
    assert_eq!(stale.body["code"], "stale_version");
    assert_eq!(stale.body["current_version"], 2);
    assert_eq!(
        app.read(&app.keys.a_service, &path).await["status"],
        "in_progress"
    );
}

async fn tickets_are_listed_by_status(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer_id = customer(&app, &app.keys.a_sales).await;
    let first = app
        .create(&app.keys.a_service, "/tickets", &complaint(customer_id))
        .await;
    let second = app
        .create(&app.keys.a_service, "/tickets", &complaint(customer_id))
        .await;
    move_to(
        &app,
        &format!("/tickets/{}", second["id"]),
        "in_progress",
        1,
    )
    .await;

    let open = app.read(&app.keys.a_service, "/tickets?status=open").await;
    let open_ids: Vec<&Value> = items(&open).iter().map(|t| &t["id"]).collect();
    assert_eq!(open_ids, vec![&first["id"]], "{open}");
    assert!(items(&open).iter().all(|t| t["status"] == "open"));
    let working = app
        .read(&app.keys.a_service, "/tickets?status=in_progress")
        .await;
    assert_eq!(items(&working).len(), 1, "{working}");
    assert_eq!(working["items"][0]["id"], second["id"]);
    assert_eq!(
        items(&app.read(&app.keys.a_service, "/tickets").await).len(),
        2
    );
}

async fn invalid_tickets_are_refused_and_nothing_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer_id = customer(&app, &app.keys.a_sales).await;
    let mut bad_channel = complaint(customer_id);
    bad_channel["channel"] = json!("carrier_pigeon");
    let mut no_subject = complaint(customer_id);
    no_subject["subject"] = json!("  ");
    let mut bad_priority = complaint(customer_id);
    bad_priority["priority"] = json!("whenever");
    let mut extra = complaint(customer_id);
    extra["owner_mood"] = json!("angry");
    for body in [bad_channel, no_subject, bad_priority, extra] {
        let reply = call(app.post(&app.keys.a_service, "/tickets", &body)).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.text);
        assert_eq!(reply.body["code"], "validation_failed");
    }
    let reply = call(app.post(&app.keys.a_service, "/tickets", &complaint(999_999))).await;
    assert!(
        reply.status == 404 || reply.status == 422,
        "an unknown customer: {} {}",
        reply.status,
        reply.text
    );
    assert!(items(&app.read(&app.keys.hq_admin, "/tickets").await).is_empty());
}

async fn tickets_are_scoped_to_the_dealer_of_their_customer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer_id = customer(&app, &app.keys.a_sales).await;
    // dealer_b cannot open a ticket on dealer_a's customer.
    let reply = call(app.post(&app.keys.b_admin, "/tickets", &complaint(customer_id))).await;
    assert!(
        reply.status == 404 || reply.status == 422,
        "{} {}",
        reply.status,
        reply.text
    );
    assert!(items(&app.read(&app.keys.hq_admin, "/tickets").await).is_empty());

    let created = app
        .create(&app.keys.a_service, "/tickets", &complaint(customer_id))
        .await;
    let path = format!("/tickets/{}", created["id"]);
    assert_eq!(call(app.get(&app.keys.b_admin, &path)).await.status, 404);
    let reply = call(
        app.patch(&app.keys.c_admin, &path, &json!({"status": "in_progress"}))
            .header("If-Match", "\"1\""),
    )
    .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert!(items(&app.read(&app.keys.b_admin, "/tickets").await).is_empty());
    assert_eq!(
        items(&app.read(&app.keys.north_manager, "/tickets").await).len(),
        1
    );
    assert_eq!(
        call(app.get(&app.keys.partner, "/tickets")).await.status,
        403
    );
    let reply = call(app.post(&app.keys.north_manager, "/tickets", &complaint(customer_id))).await;
    assert_eq!(
        reply.status, 403,
        "a regional manager reads but does not open tickets: {}",
        reply.text
    );
}

async fn concurrent_moves_from_one_version_let_exactly_one_win(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer_id = customer(&app, &app.keys.a_sales).await;
    let created = app
        .create(&app.keys.a_service, "/tickets", &complaint(customer_id))
        .await;
    let path = format!("/tickets/{}", created["id"]);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let request = app
            .patch(
                &app.keys.a_service,
                &path,
                &json!({"status": "in_progress"}),
            )
            .header("If-Match", "\"1\"");
        tasks.spawn(call(request));
    }
    let replies = tasks.join_all().await;
    let statuses_seen: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses_seen.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses_seen:?}"
    );
    assert!(
        statuses_seen.iter().all(|s| *s == 200 || *s == 412),
        "{statuses_seen:?}"
    );
    let read = app.read(&app.keys.a_service, &path).await;
    assert_eq!(read["version"], 2);
    assert_eq!(
        statuses(&read),
        vec!["open", "in_progress"],
        "one event for one move: {read}"
    );
}
