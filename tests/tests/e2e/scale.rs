//! What the indexes and queries for a million customers must keep answering: customer search
//! by part of the name (the trigram indexes, with `%` and `_` matched literally), by the last
//! digits of a phone, the name index following renames; the 360 timeline of a customer's own
//! and other dealers' records; and the run log's retention policy.

use dealer_host::clock;
use dealer_host::plugins::Hook;
use dealer_host::plugins::runs::{self, NewRun, Outcome, Retention, Source};
use dealer_tests::{Backend, TestApp, call, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    percent_and_underscore_in_a_name_search_match_literally,
    names_are_found_by_any_part_case_insensitively,
    the_name_index_follows_renames,
    phones_are_found_by_their_last_digits,
    the_timeline_shows_the_customers_interactions_newest_first,
    retention_deletes_old_runs_and_keeps_the_newest_per_dealer_and_hook,
);

fn ids(page: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = page["items"]
        .as_array()
        .expect("a page of items")
        .iter()
        .map(|c| c["id"].as_i64().expect("an id"))
        .collect();
    ids.sort_unstable();
    ids
}

async fn customer(app: &TestApp, name: &str, phone: &str) -> i64 {
    app.create(
        &app.keys.a_sales,
        "/customers",
        &json!({ "name": name, "phones": [{ "number": phone }] }),
    )
    .await["id"]
        .as_i64()
        .expect("the new customer's id")
}

/// The customers of dealer A whose name holds `part`, as the sales key finds them.
async fn by_name(app: &TestApp, part: &str) -> Vec<i64> {
    let query: String = part
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect::<Vec<_>>()
        .concat();
    ids(&app
        .read(&app.keys.a_sales, &format!("/customers?name={query}"))
        .await)
}

async fn percent_and_underscore_in_a_name_search_match_literally(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let underscore = customer(&app, "张_三", "13800000001").await;
    let _plain = customer(&app, "张三丰", "13800000002").await;
    let percent = customer(&app, "100%满意", "13800000003").await;
    let _digits = customer(&app, "1000满意", "13800000004").await;
    let backslash = customer(&app, "A\\B先生", "13800000005").await;
    let _ab = customer(&app, "AB先生", "13800000006").await;

    // Short parts (scanned) and long ones (the trigram index) alike.
    assert_eq!(by_name(&app, "张_").await, vec![underscore]);
    assert_eq!(by_name(&app, "_").await, vec![underscore]);
    assert_eq!(by_name(&app, "%").await, vec![percent]);
    assert_eq!(by_name(&app, "100%").await, vec![percent]);
    assert_eq!(by_name(&app, "0%满意").await, vec![percent]);
    assert_eq!(by_name(&app, "A\\B").await, vec![backslash]);
    assert!(by_name(&app, "%满意%").await.is_empty());
}

async fn names_are_found_by_any_part_case_insensitively(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ouyang = customer(&app, "欧阳娜娜", "13800000011").await;
    let latin = customer(&app, "Zhang Wei", "13800000012").await;
    let _other = customer(&app, "王秀英", "13800000013").await;

    assert_eq!(by_name(&app, "阳娜娜").await, vec![ouyang]);
    assert_eq!(by_name(&app, "欧阳").await, vec![ouyang]);
    assert_eq!(by_name(&app, "娜").await, vec![ouyang]);
    assert_eq!(by_name(&app, "ANG W").await, vec![latin]);
    assert_eq!(by_name(&app, "zhang wei").await, vec![latin]);
    assert!(by_name(&app, "欧阳娜娜娜").await.is_empty());
    // Dealer B's staff do not find dealer A's customers, by name or otherwise.
    let other_dealer = app
        .read(
            &app.keys.b_admin,
            "/customers?name=%E6%AC%A7%E9%98%B3%E5%A8%9C",
        )
        .await;
    assert!(ids(&other_dealer).is_empty(), "{other_dealer}");
}

async fn the_name_index_follows_renames(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = customer(&app, "李建国", "13800000021").await;
    assert_eq!(by_name(&app, "李建国").await, vec![id]);
    let reply = call(
        app.patch(
            &app.keys.a_sales,
            &format!("/customers/{id}"),
            &json!({ "name": "李建华" }),
        )
        .header("If-Match", "\"1\""),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(by_name(&app, "李建华").await, vec![id]);
    assert!(by_name(&app, "李建国").await.is_empty());
}

async fn phones_are_found_by_their_last_digits(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = customer(&app, "赵一", "13912341234").await;
    let second = customer(&app, "钱二", "13900005678").await;
    let landline = customer(&app, "孙三", "010-62345678").await;
    let key = &app.keys.a_sales;

    assert_eq!(
        ids(&app.read(key, "/customers?phone=1234").await),
        vec![first]
    );
    assert_eq!(
        ids(&app.read(key, "/customers?phone=41234").await),
        vec![first]
    );
    assert_eq!(
        ids(&app.read(key, "/customers?phone=5678").await),
        vec![second, landline]
    );
    assert_eq!(
        ids(&app.read(key, "/customers?phone=2345678").await),
        vec![landline]
    );
    assert!(ids(&app.read(key, "/customers?phone=91234").await).is_empty());
    let short = call(app.get(key, "/customers?phone=234")).await;
    assert_eq!(short.status, 400, "{}", short.text);
    assert!(short.has_code("invalid_phone"), "{}", short.text);
}

async fn the_timeline_shows_the_customers_interactions_newest_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.keys.a_sales;
    let id = customer(&app, "周四", "13800000031").await;
    let other = customer(&app, "吴五", "13800000032").await;
    for (who, summary, at) in [
        (id, "第一次来电", "2025-01-01T08:00:00Z"),
        (other, "别人的来电", "2025-01-02T08:00:00Z"),
        (id, "到店看车", "2025-01-03T08:00:00Z"),
    ] {
        app.create(
            key,
            &format!("/customers/{who}/interactions"),
            &json!({ "kind": "call", "summary": summary, "occurred_at": at }),
        )
        .await;
    }
    let view = app.read(key, &format!("/customers/{id}/360")).await;
    let summaries: Vec<&str> = view["interactions"]
        .as_array()
        .expect("the timeline")
        .iter()
        .map(|i| i["summary"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(summaries, vec!["到店看车", "第一次来电"], "{view}");
}

fn run(dealer_id: i64, hook: Hook, started_at: i64) -> NewRun {
    NewRun {
        dealer_id,
        plugin_id: None,
        plugin_name: None,
        version: None,
        hook,
        started_at: clock::to_datetime(started_at),
        duration_us: 100,
        outcome: Outcome::Ok,
        memory_bytes: 0,
        fuel_used: 0,
        error: None,
        input: json!({ "at": started_at }),
        output: None,
        effects: None,
        now_ms: started_at,
        replay_of: None,
        source: Source::Live,
    }
}

async fn run_ids(app: &TestApp, dealer_id: i64, hook: Hook) -> Vec<i64> {
    let ids: Vec<(i64,)> =
        sqlx::query_as("SELECT id FROM plugin_runs WHERE dealer_id = $1 AND hook = $2 ORDER BY id")
            .bind(dealer_id)
            .bind(hook.as_str())
            .fetch_all(app.db.pool())
            .await
            .expect("the runs");
    ids.into_iter().map(|(id,)| id).collect()
}

async fn retention_deletes_old_runs_and_keeps_the_newest_per_dealer_and_hook(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b) = (app.units.dealer_a, app.units.dealer_b);
    let day = 24 * 3600 * 1000;
    let now = clock::now_ms();
    let keep = runs::RECENT_INPUTS;
    let mut tx = app.db.begin_write().await.expect("a transaction");
    for days_ago in [100, 40, 31] {
        runs::record(&mut tx, &run(a, Hook::Commission, now - days_ago * day))
            .await
            .expect("an old run");
    }
    for i in 0..keep + 5 {
        runs::record(&mut tx, &run(a, Hook::Commission, now - day + i))
            .await
            .expect("a recent run");
    }
    for i in 0..3 {
        runs::record(&mut tx, &run(a, Hook::Approval, now - 40 * day + i))
            .await
            .expect("an old run of another hook");
        runs::record(&mut tx, &run(b, Hook::Commission, now - day + i))
            .await
            .expect("another dealer's run");
    }
    tx.commit().await.expect("commit");
    let commission_before = run_ids(&app, a, Hook::Commission).await;
    let others = run_ids(&app, b, Hook::Commission).await;

    let retention = Retention {
        max_days: 30,
        max_per_hook: keep,
        ..Retention::default()
    };
    let deleted = runs::prune(&app.db, &retention, now).await.expect("prune");
    assert_eq!(deleted, 3 + 5 + 3);
    assert_eq!(
        run_ids(&app, a, Hook::Commission).await,
        commission_before[commission_before.len() - keep as usize..],
        "the newest runs of the dealer's hook stay"
    );
    assert!(run_ids(&app, a, Hook::Approval).await.is_empty());
    assert_eq!(run_ids(&app, b, Hook::Commission).await, others);
    assert_eq!(
        runs::recorded(
            &mut app.db.pool().acquire().await.expect("a connection"),
            a,
            Hook::Commission,
            1000
        )
        .await
        .expect("the recorded runs")
        .len(),
        keep as usize,
        "every run kept for replay is still there"
    );
    assert_eq!(
        runs::prune(&app.db, &retention, now)
            .await
            .expect("prune again"),
        0
    );

    // A cap below the runs kept for replay keeps those.
    let tight = Retention {
        max_days: 30,
        max_per_hook: 1,
        ..Retention::default()
    };
    assert_eq!(runs::prune(&app.db, &tight, now).await.expect("prune"), 0);
}
