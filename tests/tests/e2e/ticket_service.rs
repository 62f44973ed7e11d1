//! Complaints handled end to end: routing by the first-party plugin (a brake complaint is a
//! safety case), SLA breach and escalation (once, also when swept twice or concurrently),
//! hand-offs between departments, first-contact resolution, the owner's signed timeline link,
//! the satisfaction survey sent on closing, and the KPIs of a period.

use chrono::{DateTime, Duration, Utc};
use dealer_host::tickets::sla;
use dealer_tests::{Backend, TestApp, call, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    a_brake_complaint_is_routed_escalated_handed_off_closed_and_surveyed,
    a_breach_escalates_once_when_swept_twice_or_concurrently,
    first_contact_resolution_feeds_the_kpis,
    without_a_plugin_the_built_in_route_applies_and_the_caller_may_raise_it,
    hand_offs_are_checked_and_scoped,
    owner_links_are_checked,
    the_background_sweep_escalates_until_it_is_stopped,
);

async fn customer(app: &TestApp) -> i64 {
    app.create(
        &app.keys.a_sales,
        "/customers",
        &json!({"name": "吴磊", "phones": [{"number": "13800138000"}], "tags": []}),
    )
    .await["id"]
        .as_i64()
        .expect("a customer id")
}

fn brake_complaint(customer_id: i64) -> Value {
    json!({
        "customer_id": customer_id, "channel": "hotline", "category": "complaint",
        "subject": "刹车异响", "description": "踩刹车时前轮有金属摩擦声。"
    })
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .unwrap_or_else(|| panic!("a time: {value}"))
        .with_timezone(&Utc)
}

/// One message of the outbox.
#[derive(Debug)]
struct Message {
    recipient: String,
    data: Vec<(String, String)>,
}

impl Message {
    fn get(&self, key: &str) -> Option<&str> {
        self.data
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Dealer `dealer_id`'s outbox messages of `template`, oldest first.
async fn outbox(app: &TestApp, dealer_id: i64, template: &str) -> Vec<Message> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT recipient, data FROM outbox WHERE dealer_id = $1 AND template = $2 \
         ORDER BY id",
    )
    .bind(dealer_id)
    .bind(template)
    .fetch_all(app.db.pool())
    .await
    .expect("the outbox");
    rows.into_iter()
        .map(|(recipient, data)| Message {
            recipient,
            data: serde_json::from_str::<serde_json::Map<String, Value>>(&data)
                .expect("outbox data as a JSON object")
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
                .collect(),
        })
        .collect()
}

fn kinds(ticket: &Value) -> Vec<String> {
    ticket["events"]
        .as_array()
        .unwrap_or_else(|| panic!("a ticket with events: {ticket}"))
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn patch(app: &TestApp, path: &str, body: Value) -> Value {
    let version = app.read(&app.keys.a_service, path).await["version"].clone();
    let reply = call(
        app.patch(&app.keys.a_service, path, &body)
            .header("If-Match", format!("\"{version}\"")),
    )
    .await;
    assert_eq!(reply.status, 200, "{body}: {}", reply.text);
    reply.body
}

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {page}"))
        .iter()
        .map(|t| t["id"].as_i64().expect("an id"))
        .collect()
}

/// Today in the fixture dealer's time (China Standard Time), the days a period counts.
fn today() -> String {
    dealer_host::clock::today_cst().to_string()
}

async fn a_brake_complaint_is_routed_escalated_handed_off_closed_and_surveyed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.units.dealer_a;
    app.enable_first_party("ticket-routing", "ticket-routing")
        .await;
    let customer_id = customer(&app).await;

    // Routed by the plugin as a safety case.
    let ticket = app
        .create(
            &app.keys.a_service,
            "/tickets",
            &brake_complaint(customer_id),
        )
        .await;
    let id = ticket["id"].as_i64().expect("an id");
    let path = format!("/tickets/{id}");
    assert_eq!(ticket["priority"], "urgent", "{ticket}");
    assert_eq!(ticket["safety"], true);
    assert_eq!(ticket["team"], "safety");
    assert_eq!(ticket["routing"]["decided_by"], "ticket-routing");
    assert_eq!(ticket["routing"]["plugin_version"], "0.1.0");
    assert!(ticket["routing"]["run_id"].is_i64(), "{ticket}");
    assert!(
        ticket["routing"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("刹车")),
        "{ticket}"
    );
    let opened = time(&ticket["opened_at"]);
    let first_contact_due = time(&ticket["first_contact_due"]);
    assert_eq!(first_contact_due - opened, Duration::minutes(30));
    assert_eq!(
        time(&ticket["resolution_due"]) - opened,
        Duration::minutes(1440)
    );
    let notified = outbox(&app, a, "safety-ticket").await;
    assert!(
        notified
            .iter()
            .any(|m| m.recipient == "role:regional-service-manager"
                && m.get("ticket-id") == Some(&id.to_string())
                && m.get("keyword") == Some("刹车")),
        "{notified:?}"
    );
    let owner_token = ticket["owner_link"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("an owner link: {ticket}"))
        .to_owned();
    assert!(
        app.read(&app.keys.a_service, &path).await["owner_link"].is_null(),
        "the token is shown once"
    );

    // Time passes: the first contact is late; the breach escalates once.
    let late = first_contact_due + Duration::minutes(1);
    let report = sla::escalate_due(&app.db, late).await.expect("a sweep");
    assert_eq!(report.escalated.len(), 1, "{report:?}");
    assert_eq!(report.escalated[0].level, 1);
    let again = sla::escalate_due(&app.db, late).await.expect("a sweep");
    assert!(again.escalated.is_empty(), "{again:?}");
    let escalated = app.read(&app.keys.a_service, &path).await;
    assert_eq!(escalated["escalation_level"], 1, "{escalated}");
    assert!(escalated["first_contact_breached_at"].is_string());
    assert!(escalated["resolution_breached_at"].is_null());
    let breach = escalated["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["kind"] == "breach"))
        .unwrap_or_else(|| panic!("a breach event: {escalated}"));
    assert_eq!(breach["clock"], "first_contact");
    assert_eq!(breach["escalation_level"], 1);
    let tasks = outbox(&app, a, "ticket-sla-breach").await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0].recipient, "role:regional_service_manager");
    assert_eq!(tasks[0].get("clock"), Some("first_contact"));
    assert_eq!(
        ids(&app
            .read(&app.keys.a_service, "/tickets?breached=true")
            .await),
        [id]
    );
    assert!(
        ids(&app
            .read(&app.keys.a_service, "/tickets?breached=false")
            .await)
        .is_empty()
    );

    // Handed off to another department.
    let reply = call(app.post(
        &app.keys.a_service,
        &format!("{path}/handoffs"),
        &json!({"to_team": "售后技术部", "note": "需技师检查制动系统"}),
    ))
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["team"], "售后技术部");
    assert_eq!(reply.body["handoff_count"], 1);
    let handoff = reply.body["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["kind"] == "handoff"))
        .unwrap_or_else(|| panic!("a hand-off event: {}", reply.text));
    assert_eq!(handoff["from_team"], "safety");
    assert_eq!(handoff["to_team"], "售后技术部");
    assert!(handoff["actor_key_id"].is_i64(), "{handoff}");

    // Worked on, with a note for the owner and an internal one, then closed.
    patch(
        &app,
        &path,
        json!({"status": "in_progress", "note": "技师已联系您，明天上午到店检查。", "note_for_owner": true}),
    )
    .await;
    patch(&app, &path, json!({"note": "客户情绪激动，注意安抚"})).await;
    let closed = patch(&app, &path, json!({"status": "closed"})).await;
    assert_eq!(closed["first_contact_resolution"], false, "{closed}");
    assert_eq!(
        kinds(&closed),
        ["status", "breach", "handoff", "status", "status", "status"]
    );

    // The survey link went to the customer; the owner answers it once.
    let surveys = outbox(&app, a, "satisfaction-survey").await;
    assert_eq!(surveys.len(), 1, "{surveys:?}");
    assert_eq!(surveys[0].recipient, format!("customer:{customer_id}"));
    let token = surveys[0].get("token").expect("a survey token").to_owned();
    let survey_path = format!("{}/owner/surveys/{token}", app.base);
    let form = call(app.client.get(&survey_path)).await;
    assert_eq!(form.status, 200, "{}", form.text);
    let keys: Vec<&str> = form.body["questions"]
        .as_array()
        .expect("questions")
        .iter()
        .filter_map(|q| q["key"].as_str())
        .collect();
    assert_eq!(keys, ["nps", "csat", "comment"]);
    for bad in [json!({"nps": 11, "csat": 5}), json!({"nps": 9, "csat": 0})] {
        let reply = call(app.client.post(&survey_path).json(&bad)).await;
        assert_eq!(reply.status, 422, "{bad}: {}", reply.text);
    }
    let answer = json!({"nps": 9, "csat": 5, "comment": "处理及时，很满意"});
    let reply = call(app.client.post(&survey_path).json(&answer)).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let reply = call(app.client.post(&survey_path).json(&answer)).await;
    assert_eq!(reply.status, 410, "a second answer: {}", reply.text);
    let surveyed = app.read(&app.keys.a_service, &path).await;
    assert_eq!(surveyed["survey"]["nps"], 9, "{surveyed}");
    assert_eq!(surveyed["survey"]["csat"], 5);
    assert_eq!(surveyed["survey"]["comment"], "处理及时，很满意");
    // Answering earned the owner the loyalty rule's points for a survey, once.
    let points = app
        .read(
            &app.keys.a_service,
            &format!("/customers/{customer_id}/points"),
        )
        .await;
    assert_eq!(points["account"]["balance"], 50, "{points}");
    assert_eq!(points["ledger"]["items"][0]["cause"]["kind"], "survey");

    // The KPIs of today.
    let day = today();
    let kpis = app
        .read(
            &app.keys.a_admin,
            &format!("/tickets/kpis?from={day}&to={day}"),
        )
        .await;
    assert_eq!(kpis["fcr"]["closed"], 1, "{kpis}");
    assert_eq!(kpis["fcr"]["rate"], 0.0);
    assert!(kpis["aht"]["mean_seconds"].as_f64().is_some(), "{kpis}");
    assert_eq!(kpis["backlog"]["opened"], 1);
    assert_eq!(kpis["backlog"]["not_closed_within_sla"], 0);
    assert_eq!(kpis["csat"]["answers"], 1);
    assert_eq!(kpis["csat"]["mean"], 5.0);
    assert_eq!(kpis["csat"]["satisfied_share"], 1.0);
    assert_eq!(kpis["nps"]["score"], 100.0);
    let theirs = app
        .read(
            &app.keys.b_admin,
            &format!("/tickets/kpis?from={day}&to={day}"),
        )
        .await;
    assert_eq!(theirs["fcr"]["closed"], 0, "{theirs}");
    assert_eq!(theirs["csat"]["answers"], 0);
    assert!(theirs["nps"]["score"].is_null());

    // The owner follows the ticket without a key; no internal note, no staff data.
    let view = call(
        app.client
            .get(format!("{}/owner/tickets/{owner_token}", app.base)),
    )
    .await;
    assert_eq!(view.status, 200, "{}", view.text);
    assert_eq!(view.body["subject"], "刹车异响");
    assert_eq!(view.body["stage"], "closed");
    let stages: Vec<&str> = view.body["timeline"]
        .as_array()
        .expect("a timeline")
        .iter()
        .filter_map(|s| s["stage"].as_str())
        .collect();
    assert_eq!(stages, ["received", "received", "engineer_on_it", "closed"]);
    assert!(view.text.contains("技师已联系您"), "{}", view.text);
    for hidden in [
        "客户情绪激动",
        "需技师检查",
        "售后技术部",
        "safety",
        "actor",
        "key_id",
    ] {
        assert!(!view.text.contains(hidden), "{hidden} in {}", view.text);
    }

    // Dealer B sees none of it.
    assert_eq!(call(app.get(&app.keys.b_admin, &path)).await.status, 404);
    let reply = call(app.post(
        &app.keys.b_admin,
        &format!("{path}/handoffs"),
        &json!({"to_team": "service"}),
    ))
    .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
}

async fn a_breach_escalates_once_when_swept_twice_or_concurrently(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer_id = customer(&app).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let t = app
            .create(
                &app.keys.a_service,
                "/tickets",
                &brake_complaint(customer_id),
            )
            .await;
        ids.push(t["id"].as_i64().expect("an id"));
    }
    let read = app
        .read(&app.keys.a_service, &format!("/tickets/{}", ids[0]))
        .await;
    // Both clocks are past (built-in route: a complaint is normal, 4 h / 72 h).
    let late = time(&read["resolution_due"]) + Duration::minutes(5);
    let mut sweeps = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let db = app.db.clone();
        sweeps.spawn(async move { sla::escalate_due(&db, late).await });
    }
    let reports: Vec<sla::Report> = sweeps
        .join_all()
        .await
        .into_iter()
        .map(|r| r.expect("a sweep"))
        .collect();
    let escalated: Vec<(i64, String, i64)> = reports
        .iter()
        .flat_map(|r| r.escalated.iter())
        .map(|e| (e.ticket_id, e.clock.as_str().to_owned(), e.level))
        .collect();
    assert_eq!(
        escalated.len(),
        6,
        "two clocks of three tickets: {escalated:?}"
    );
    for id in &ids {
        let ticket = app
            .read(&app.keys.a_service, &format!("/tickets/{id}"))
            .await;
        assert_eq!(ticket["escalation_level"], 2, "{ticket}");
        assert_eq!(
            kinds(&ticket).iter().filter(|k| *k == "breach").count(),
            2,
            "{ticket}"
        );
    }
    let tasks = outbox(&app, app.units.dealer_a, "ticket-sla-breach").await;
    assert_eq!(tasks.len(), 6, "{tasks:?}");
    let to_regional = tasks
        .iter()
        .filter(|t| t.recipient == "role:regional_service_manager")
        .count();
    assert_eq!(to_regional, 3, "level 2 goes to the region: {tasks:?}");
    let later = sla::escalate_due(&app.db, late + Duration::hours(1))
        .await
        .expect("a sweep");
    assert!(later.escalated.is_empty(), "{later:?}");
}

async fn first_contact_resolution_feeds_the_kpis(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer_id = customer(&app).await;
    let mut paths = Vec::new();
    for _ in 0..3 {
        let t = app
            .create(
                &app.keys.a_service,
                "/tickets",
                &brake_complaint(customer_id),
            )
            .await;
        paths.push(format!("/tickets/{}", t["id"]));
    }
    // Resolved at the first contact.
    let first = patch(&app, &paths[0], json!({"status": "resolved"})).await;
    assert_eq!(first["first_contact_resolution"], true, "{first}");
    patch(&app, &paths[0], json!({"status": "closed"})).await;
    // Worked on first, then resolved: not at the first contact.
    patch(&app, &paths[1], json!({"status": "in_progress"})).await;
    let second = patch(&app, &paths[1], json!({"status": "resolved"})).await;
    assert_eq!(second["first_contact_resolution"], false);
    patch(&app, &paths[1], json!({"status": "closed"})).await;
    // Resolved at once, then reopened: no longer.
    patch(&app, &paths[2], json!({"status": "resolved"})).await;
    let reopened = patch(&app, &paths[2], json!({"status": "in_progress"})).await;
    assert_eq!(reopened["first_contact_resolution"], false);
    let open = app.read(&app.keys.a_service, &paths[2]).await;
    assert!(open["closed_at"].is_null());

    let day = today();
    let kpis = app
        .read(
            &app.keys.a_service,
            &format!("/tickets/kpis?from={day}&to={day}"),
        )
        .await;
    assert_eq!(kpis["fcr"]["closed"], 2, "{kpis}");
    assert_eq!(kpis["fcr"]["first_contact"], 1);
    assert_eq!(kpis["fcr"]["rate"], 0.5);
    assert_eq!(kpis["aht"]["closed"], 2);
    assert_eq!(kpis["backlog"]["opened"], 3);
    assert_eq!(kpis["backlog"]["not_closed_within_sla"], 1);
    assert!(
        (kpis["backlog"]["rate"].as_f64().expect("a rate") - 1.0 / 3.0).abs() < 1e-9,
        "{kpis}"
    );
    assert_eq!(kpis["csat"]["answers"], 0);
    assert!(kpis["csat"]["mean"].is_null());

    let reply = call(app.get(
        &app.keys.a_service,
        &format!("/tickets/kpis?from={day}&to=2000-01-01"),
    ))
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    let reply = call(app.get(&app.keys.a_service, "/tickets/kpis?from=soon&to=later")).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
}

async fn without_a_plugin_the_built_in_route_applies_and_the_caller_may_raise_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer_id = customer(&app).await;
    let mut body = brake_complaint(customer_id);
    body["category"] = json!("safety");
    let safety = app.create(&app.keys.a_service, "/tickets", &body).await;
    assert_eq!(safety["priority"], "urgent", "{safety}");
    assert_eq!(safety["safety"], true);
    assert_eq!(safety["routing"]["decided_by"], "built-in");
    assert!(safety["routing"]["plugin_version"].is_null());

    let mut body = brake_complaint(customer_id);
    body["category"] = json!("inquiry");
    body["priority"] = json!("low");
    let inquiry = app.create(&app.keys.a_service, "/tickets", &body).await;
    assert_eq!(
        inquiry["priority"], "normal",
        "the route's priority is a floor: {inquiry}"
    );
    assert_eq!(inquiry["team"], "service");
    assert_eq!(inquiry["safety"], false);

    body["priority"] = json!("high");
    body["team"] = json!("客户关怀");
    let raised = app.create(&app.keys.a_service, "/tickets", &body).await;
    assert_eq!(raised["priority"], "high", "{raised}");
    assert_eq!(raised["team"], "客户关怀");
}

async fn hand_offs_are_checked_and_scoped(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer_id = customer(&app).await;
    let ticket = app
        .create(
            &app.keys.a_service,
            "/tickets",
            &brake_complaint(customer_id),
        )
        .await;
    let path = format!("/tickets/{}", ticket["id"]);
    let handoffs = format!("{path}/handoffs");
    for (body, field) in [
        (json!({"to_team": "service"}), "to_team"),
        (json!({"to_team": "  "}), "to_team"),
        (
            json!({"to_team": "保险理赔", "note": "x".repeat(5001)}),
            "note",
        ),
    ] {
        let reply = call(app.post(&app.keys.a_service, &handoffs, &body)).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.text);
        assert!(reply.names_field(field), "{}", reply.text);
    }
    let reply = call(app.post(
        &app.keys.north_manager,
        &handoffs,
        &json!({"to_team": "保险理赔"}),
    ))
    .await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert_eq!(app.read(&app.keys.a_service, &path).await["version"], 1);

    // A team change by patch is a hand-off too.
    let moved = patch(&app, &path, json!({"team": "保险理赔"})).await;
    assert_eq!(moved["handoff_count"], 1, "{moved}");
    assert_eq!(kinds(&moved), ["status", "handoff"]);
    let closed = patch(&app, &path, json!({"status": "closed"})).await;
    assert_eq!(
        closed["first_contact_resolution"], false,
        "handed off: {closed}"
    );
    let reply = call(app.post(
        &app.keys.a_service,
        &handoffs,
        &json!({"to_team": "service"}),
    ))
    .await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.body["code"], "ticket_closed");
}

async fn owner_links_are_checked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer_id = customer(&app).await;
    let ticket = app
        .create(
            &app.keys.a_service,
            "/tickets",
            &brake_complaint(customer_id),
        )
        .await;
    let token = ticket["owner_link"]["token"].as_str().expect("a token");
    assert_eq!(
        ticket["owner_link"]["url"],
        format!("/o/t/{token}"),
        "the owner's page in the console"
    );
    let view = call(
        app.client
            .get(format!("{}/owner/tickets/{token}", app.base)),
    )
    .await;
    assert_eq!(view.status, 200, "{}", view.text);
    assert_eq!(view.body["stage"], "received");
    assert_eq!(view.body["stage_text"], "已受理");
    for unknown in [
        format!("{}/owner/tickets/not-a-token", app.base),
        format!("{}/owner/surveys/{token}", app.base),
    ] {
        let reply = call(app.client.get(&unknown)).await;
        assert_eq!(reply.status, 404, "{unknown}: {}", reply.text);
    }
}

async fn the_background_sweep_escalates_until_it_is_stopped(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer_id = customer(&app).await;
    let ticket = app
        .create(
            &app.keys.a_service,
            "/tickets",
            &brake_complaint(customer_id),
        )
        .await;
    let path = format!("/tickets/{}", ticket["id"]);
    sqlx::query("UPDATE tickets SET first_contact_due = $1 WHERE id = $2")
        .bind(Utc::now().timestamp_millis() - 60_000)
        .bind(ticket["id"].as_i64().expect("an id"))
        .execute(app.db.pool())
        .await
        .expect("a first contact already late");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sweep = sla::spawn(
        app.db.clone(),
        std::time::Duration::from_millis(50),
        stopped,
    );
    let escalated = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            let read = app.read(&app.keys.a_service, &path).await;
            if read["escalation_level"] == 1 {
                return read;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the sweep escalates the late ticket");
    assert!(escalated["first_contact_breached_at"].is_string());
    stop.send(true).expect("the sweep listens");
    tokio::time::timeout(std::time::Duration::from_secs(30), sweep)
        .await
        .expect("the sweep stops")
        .expect("the sweep ends cleanly");
    assert_eq!(
        app.read(&app.keys.a_service, &path).await["escalation_level"],
        1,
        "later sweeps do not escalate it again"
    );
}
