//! Leads through the API: capture and round-robin assignment, de-duplication by phone, the
//! stage machine with its timeline, winning into a customer, CSV import with a per-row error
//! report, follow-up tasks, the funnel, and scoping.

use dealer_tests::{Backend, TestApp, call, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    leads_without_a_consultant_take_turns_among_the_sales_consultants,
    a_customers_phone_links_the_lead_and_a_second_open_lead_is_refused,
    a_lost_lead_needs_a_reason_and_stays_lost,
    winning_a_walk_in_lead_makes_the_customer,
    a_csv_import_stores_good_rows_and_reports_bad_ones,
    overdue_follow_up_tasks_are_listed_until_done,
    the_funnel_counts_stages_reached_and_conversions_per_group,
    another_dealer_cannot_see_or_change_a_lead,
);

/// Runs the requests concurrently and returns their replies in order.
async fn futures_join(
    requests: impl Iterator<
        Item = impl std::future::Future<Output = dealer_tests::Reply> + Send + 'static,
    >,
) -> Vec<dealer_tests::Reply> {
    let handles: Vec<_> = requests.map(tokio::spawn).collect();
    let mut replies = Vec::new();
    for handle in handles {
        replies.push(handle.await.expect("a request task"));
    }
    replies
}

fn lead(name: &str, phone: &str, channel: &str) -> Value {
    json!({"name": name, "phone": phone, "channel": channel, "tags": ["SUV"], "score": 60})
}

async fn new_lead(app: &TestApp, name: &str, phone: &str, channel: &str) -> Value {
    app.create(&app.keys.a_sales, "/leads", &lead(name, phone, channel))
        .await
}

/// Moves a lead with the ETag it has and returns the reply.
async fn patch_lead(app: &TestApp, lead: &Value, body: Value) -> dealer_tests::Reply {
    call(
        app.patch(&app.keys.a_sales, &format!("/leads/{}", lead["id"]), &body)
            .header("If-Match", format!("\"{}\"", lead["version"])),
    )
    .await
}

async fn move_lead(app: &TestApp, lead: &Value, stage: &str) -> Value {
    let reply = patch_lead(app, lead, json!({"stage": stage})).await;
    assert_eq!(reply.status, 200, "to {stage}: {}", reply.text);
    assert_eq!(reply.body["stage"], stage);
    reply.body
}

fn stages(lead: &Value) -> Vec<&str> {
    lead["stages"]
        .as_array()
        .unwrap_or_else(|| panic!("a lead with stages: {lead}"))
        .iter()
        .map(|e| e["to_stage"].as_str().expect("a stage"))
        .collect()
}

async fn leads_without_a_consultant_take_turns_among_the_sales_consultants(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut assigned = Vec::new();
    for (i, channel) in ["online_ad", "auto_show", "app", "referral"]
        .iter()
        .enumerate()
    {
        let l = new_lead(&app, "周杰", &format!("1391234000{i}"), channel).await;
        assert_eq!(l["stage"], "new");
        assert_eq!(l["channel"], *channel);
        assert_eq!(stages(&l), ["new"]);
        assigned.push(l["consultant_id"].as_i64().expect("a consultant"));
    }
    let consultants = [app.staff.a_sales, app.staff.a_sales2];
    assert!(consultants.contains(&assigned[0]), "{assigned:?}");
    assert_ne!(assigned[0], assigned[1], "{assigned:?}");
    assert!(consultants.contains(&assigned[1]), "{assigned:?}");
    assert_eq!(assigned[2], assigned[0], "{assigned:?}");
    assert_eq!(assigned[3], assigned[1], "{assigned:?}");

    // Captured at once, four more leads still take turns: two each.
    let captures = (0..4).map(|i| {
        call(app.post(
            &app.keys.a_sales,
            "/leads",
            &lead("并发", &format!("1391234010{i}"), "app"),
        ))
    });
    let replies = futures_join(captures).await;
    let mut per_consultant = [0, 0];
    for reply in &replies {
        assert_eq!(reply.status, 201, "{}", reply.text);
        let c = reply.body["consultant_id"].as_i64().expect("a consultant");
        per_consultant[usize::from(c == app.staff.a_sales2)] += 1;
    }
    assert_eq!(per_consultant, [2, 2], "{replies:?}");

    let mut explicit = lead("钱多多", "13912340099", "walk_in");
    explicit["consultant_id"] = json!(app.staff.a_sales2);
    let l = app.create(&app.keys.a_sales, "/leads", &explicit).await;
    assert_eq!(l["consultant_id"], app.staff.a_sales2);
    let mut foreign = lead("钱少少", "13912340098", "walk_in");
    foreign["consultant_id"] = json!(999_999);
    let reply = call(app.post(&app.keys.a_sales, "/leads", &foreign)).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(reply.names_field("consultant_id"));
}

async fn a_customers_phone_links_the_lead_and_a_second_open_lead_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer = app
        .create(
            &app.keys.a_sales,
            "/customers",
            &json!({"name": "吴磊", "phones": [{"number": "13800138000"}]}),
        )
        .await;
    let first = new_lead(&app, "吴磊", "138-0013-8000", "app").await;
    assert_eq!(first["customer_id"], customer["id"], "{first}");
    assert_eq!(first["phone"], "13800138000");

    let reply = call(app.post(
        &app.keys.a_sales,
        "/leads",
        &lead("吴先生", "+86 138 0013 8000", "walk_in"),
    ))
    .await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.body["code"], "duplicate_open_lead");
    assert!(
        reply.text.contains(&first["id"].to_string()),
        "{}",
        reply.text
    );

    // Another dealer may hold its own lead for the same person.
    let mut at_b = lead("吴磊", "13800138000", "app");
    at_b["consultant_id"] = Value::Null;
    let b = app.create(&app.keys.b_admin, "/leads", &at_b).await;
    assert!(b["customer_id"].is_null(), "{b}");

    // Once the first is lost, the phone may come back as a new lead.
    let reply = patch_lead(
        &app,
        &first,
        json!({"stage": "lost", "lost_reason": "买了别的品牌"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let again = new_lead(&app, "吴磊", "13800138000", "referral").await;
    assert_eq!(again["customer_id"], customer["id"]);
}

async fn a_lost_lead_needs_a_reason_and_stays_lost(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let l = new_lead(&app, "孙丽", "13700001111", "online_ad").await;
    let contacted = move_lead(&app, &l, "contacted").await;
    assert_eq!(contacted["version"], 2);

    let reply = patch_lead(&app, &contacted, json!({"stage": "lost"})).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(reply.names_field("lost_reason"), "{}", reply.text);

    let stale = patch_lead(&app, &l, json!({"stage": "negotiating"})).await;
    assert_eq!(stale.status, 412, "{}", stale.text);

    let back = patch_lead(&app, &contacted, json!({"stage": "new"})).await;
    assert_eq!(back.status, 409, "{}", back.text);
    assert_eq!(back.body["code"], "invalid_transition");
    assert_eq!(
        back.body["allowed"],
        json!(["test_drive", "negotiating", "won", "lost"])
    );

    let reply = patch_lead(
        &app,
        &contacted,
        json!({"stage": "lost", "lost_reason": "预算不足", "note": "下次车展再联系"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let lost = reply.body;
    assert_eq!(lost["lost_reason"], "预算不足");
    assert_eq!(stages(&lost), ["new", "contacted", "lost"]);
    assert!(lost["stages"][2]["at"].is_string());
    assert_eq!(lost["stages"][2]["note"], "下次车展再联系");

    let reply = patch_lead(&app, &lost, json!({"stage": "contacted"})).await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.body["allowed"], json!([]));
}

async fn winning_a_walk_in_lead_makes_the_customer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let l = new_lead(&app, "郑爽", "13611112222", "walk_in").await;
    assert!(l["customer_id"].is_null());
    let won = move_lead(&app, &l, "won").await;
    let customer_id = won["customer_id"].as_i64().expect("a customer was made");
    let customer = app
        .read(&app.keys.a_sales, &format!("/customers/{customer_id}"))
        .await;
    assert_eq!(customer["name"], "郑爽");
    assert_eq!(customer["phones"][0]["number"], "13611112222");
    assert_eq!(customer["source_channel"], "walk_in");
    assert_eq!(customer["dealer_id"], app.units.dealer_a);
}

async fn a_csv_import_stores_good_rows_and_reports_bad_ones(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let csv = "name,phone,channel,tags,score\n\
               张三,13800000001,online_ad,SUV;新能源,70\n\
               李四,12345,auto_show,,\n\
               王五,13800000003,carrier_pigeon,,\n\
               \"赵, 六\",13800000001,app,,\n\
               ,13800000005,referral,,abc\n\
               钱七,13800000006,walk_in,,\n";
    let reply = call(
        app.client
            .post(format!("{}/leads/import", app.base))
            .bearer_auth(&app.keys.a_sales)
            .header("content-type", "text/csv")
            .body(csv),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let report = &reply.body;
    assert_eq!(report["rows"], 6);
    assert_eq!(
        report["created"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );
    let errors: Vec<(i64, &str, &str)> = report["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["row"].as_i64().expect("a row"),
                e["field"].as_str().expect("a field"),
                e["code"].as_str().expect("a code"),
            )
        })
        .collect();
    assert!(
        errors.contains(&(3, "phone", "invalid_phone")),
        "{errors:?}"
    );
    assert!(
        errors.contains(&(4, "channel", "invalid_channel")),
        "{errors:?}"
    );
    assert!(
        errors.contains(&(5, "phone", "duplicate_open_lead")),
        "{errors:?}"
    );
    assert!(errors.contains(&(6, "name", "required")), "{errors:?}");
    assert!(errors.contains(&(6, "score", "not_a_number")), "{errors:?}");
    assert!(errors.iter().all(|(row, ..)| (3..=6).contains(row)));

    let leads = app.read(&app.keys.a_sales, "/leads").await;
    let names: Vec<&str> = leads["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|l| l["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(names, ["钱七", "张三"]);
    assert_eq!(leads["items"][1]["tags"], json!(["SUV", "新能源"]));
    assert_eq!(leads["items"][1]["score"], 70);

    let reply = call(
        app.client
            .post(format!("{}/leads/import", app.base))
            .bearer_auth(&app.keys.a_sales)
            .header("content-type", "text/csv")
            .body("name,mobile\n张三,13800000001\n"),
    )
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
}

async fn overdue_follow_up_tasks_are_listed_until_done(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let l = new_lead(&app, "冯刚", "13500005555", "auto_show").await;
    let path = format!("/leads/{}/tasks", l["id"]);
    let overdue = app
        .create(
            &app.keys.a_sales,
            &path,
            &json!({"title": "回访试驾意向", "due_at": "2020-01-01T09:00:00Z"}),
        )
        .await;
    assert_eq!(overdue["assignee_id"], l["consultant_id"]);
    app.create(
        &app.keys.a_sales,
        &path,
        &json!({"title": "发送报价", "due_at": "2999-01-01T09:00:00Z"}),
    )
    .await;
    let listed = app.read(&app.keys.a_sales, "/lead-tasks/overdue").await;
    let ids: Vec<&Value> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|t| &t["id"])
        .collect();
    assert_eq!(ids, [&overdue["id"]]);
    assert!(app.read(&app.keys.b_admin, "/lead-tasks/overdue").await == json!([]));
    let done = call(app.post(
        &app.keys.a_sales,
        &format!("/lead-tasks/{}/done", overdue["id"]),
        &json!({}),
    ))
    .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert!(done.body["done_at"].is_string());
    assert_eq!(
        app.read(&app.keys.a_sales, "/lead-tasks/overdue").await,
        json!([])
    );
}

fn group<'a>(funnel: &'a Value, key: &str) -> &'a Value {
    funnel["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["key"] == key)
        .unwrap_or_else(|| panic!("no group {key}: {funnel}"))
}

fn reached(group: &Value) -> Vec<i64> {
    group["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| s["reached"].as_i64().expect("a count"))
        .collect()
}

async fn the_funnel_counts_stages_reached_and_conversions_per_group(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ad1 = new_lead(&app, "甲", "13300000001", "online_ad").await;
    new_lead(&app, "乙", "13300000002", "online_ad").await;
    let walk = new_lead(&app, "丙", "13300000003", "walk_in").await;
    let ad1 = move_lead(&app, &ad1, "contacted").await;
    move_lead(&app, &ad1, "test_drive").await;
    move_lead(&app, &walk, "won").await;
    app.create(
        &app.keys.b_admin,
        "/leads",
        &lead("丁", "13300000004", "app"),
    )
    .await;

    let today = chrono_today();
    let path = format!("/funnel?from={today}&to={today}&group_by=channel");
    let funnel = app.read(&app.keys.a_admin, &path).await;
    let ads = group(&funnel, "online_ad");
    assert_eq!(reached(ads), [2, 1, 1, 0, 0], "{funnel}");
    assert_eq!(ads["conversions"][0]["from"], "new");
    assert_eq!(ads["conversions"][0]["to"], "contacted");
    assert_eq!(ads["conversions"][0]["rate"], 0.5);
    assert_eq!(ads["conversions"][1]["rate"], 1.0);
    assert_eq!(ads["conversions"][2]["rate"], 0.0);
    assert!(ads["conversions"][3]["rate"].is_null());
    assert_eq!(reached(group(&funnel, "walk_in")), [1, 1, 1, 1, 1]);
    assert_eq!(reached(&funnel["total"]), [3, 2, 2, 1, 1]);
    assert_eq!(
        funnel["groups"].as_array().map(Vec::len),
        Some(2),
        "{funnel}"
    );

    let by_consultant = app
        .read(
            &app.keys.a_admin,
            &format!("/funnel?from={today}&to={today}&group_by=consultant"),
        )
        .await;
    let total: i64 = by_consultant["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["leads"].as_i64().expect("leads"))
        .sum();
    assert_eq!(total, 3, "{by_consultant}");

    // HQ and the region see both dealers, the south dealer none.
    let hq = app.read(&app.keys.hq_admin, &path).await;
    assert_eq!(hq["total"]["leads"], 4);
    let north = app.read(&app.keys.north_manager, &path).await;
    assert_eq!(north["total"]["leads"], 4);
    let south = app.read(&app.keys.c_admin, &path).await;
    assert_eq!(south["total"]["leads"], 0);
    let earlier = app
        .read(&app.keys.hq_admin, "/funnel?from=2020-01-01&to=2020-01-31")
        .await;
    assert_eq!(earlier["total"]["leads"], 0);
}

/// Today in the fixture dealer's time (China Standard Time, UTC+8), the days a funnel counts.
fn chrono_today() -> String {
    let days = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs()
        + 8 * 3600)
        / 86_400;
    civil_date(i64::try_from(days).expect("a day count"))
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

async fn another_dealer_cannot_see_or_change_a_lead(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let l = new_lead(&app, "陈晨", "13200002222", "app").await;
    let path = format!("/leads/{}", l["id"]);
    assert_eq!(call(app.get(&app.keys.b_admin, &path)).await.status, 404);
    let reply = call(
        app.patch(&app.keys.b_admin, &path, &json!({"stage": "contacted"}))
            .header("If-Match", "\"1\""),
    )
    .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    let listed = app.read(&app.keys.b_admin, "/leads").await;
    assert_eq!(listed["items"], json!([]));
    assert_eq!(
        app.read(&app.keys.north_manager, &path).await["phone"],
        "132****2222",
        "a regional manager sees the phone masked"
    );
    assert_eq!(call(app.get(&app.keys.partner, "/leads")).await.status, 403);
    let reply = call(app.post(
        &app.keys.b_admin,
        &format!("{path}/tasks"),
        &json!({"title": "x", "due_at": "2030-01-01T00:00:00Z"}),
    ))
    .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
}
