//! What a dealer brings on day one: customers, vehicles and service history imported from a
//! DMS or Excel export (CSV or XLSX, Chinese headers), checked like the API's creates, with a
//! dry run that stores nothing, idempotent re-runs, resumption after an interruption, and the
//! job visible to its dealer's admins and HQ only.

use std::sync::Arc;
use std::time::Duration;

use dealer_host::audit::Actor;
use dealer_host::imports::{self, Kind, Mapping, NewImport, Pass};
use dealer_host::{AppState, workers};
use dealer_tests::{Backend, Reply, TestApp, call, on_both_backends, valid_vin};
use serde_json::{Value, json};

on_both_backends!(
    a_dry_run_reports_every_bad_row_by_line_field_and_code_and_stores_nothing,
    customers_vehicles_and_history_import_and_a_rerun_changes_nothing,
    an_interrupted_import_resumes_after_its_last_batch_without_duplicates,
    an_xlsx_export_imports_like_the_csv,
    a_mapping_names_the_columns_and_a_bad_one_or_an_unreadable_file_is_refused_at_once,
    imports_are_for_dealer_admins_and_hq_and_stay_in_their_dealer,
    the_imports_worker_finishes_a_job_whose_runner_died,
);

/// `POST /imports` with `file` as the body and `query` as the parameters.
async fn upload(app: &TestApp, key: &str, query: &[(&str, &str)], file: Vec<u8>) -> Reply {
    call(
        app.client
            .post(format!("{}/imports", app.base))
            .bearer_auth(key)
            .query(query)
            .body(file),
    )
    .await
}

/// The job `id` once it stopped running.
async fn finished(app: &TestApp, key: &str, id: i64) -> Value {
    for _ in 0..1200 {
        let job = app.read(key, &format!("/imports/{id}")).await;
        if job["status"] == "done" || job["status"] == "failed" {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("import {id} did not finish");
}

/// Uploads `file` as a dealer A admin and waits for the job to finish.
async fn import(app: &TestApp, query: &[(&str, &str)], file: Vec<u8>) -> Value {
    let reply = upload(app, &app.keys.a_admin, query, file).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let id = reply.body["id"].as_i64().expect("a job id");
    assert_eq!(
        reply.header("location"),
        Some(format!("/api/v1/imports/{id}").as_str())
    );
    let job = finished(app, &app.keys.a_admin, id).await;
    assert_eq!(job["status"], "done", "{job}");
    job
}

/// Every problem of job `id`, walking its pages: (line, field, code).
async fn problems(app: &TestApp, id: i64) -> Vec<(i64, String, String)> {
    let mut found = Vec::new();
    let mut path = format!("/imports/{id}/errors?limit=2");
    loop {
        let page = app.read(&app.keys.a_admin, &path).await;
        for e in page["items"].as_array().expect("a page") {
            found.push((
                e["line"].as_i64().expect("a line"),
                e["field"].as_str().expect("a field").to_owned(),
                e["code"].as_str().expect("a code").to_owned(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/imports/{id}/errors?limit=2&cursor={cursor}"),
            None => return found,
        }
    }
}

fn counts(job: &Value) -> (i64, i64, i64, i64) {
    (
        job["rows_total"].as_i64().unwrap_or(-1),
        job["rows_created"].as_i64().unwrap_or(-1),
        job["rows_unchanged"].as_i64().unwrap_or(-1),
        job["rows_failed"].as_i64().unwrap_or(-1),
    )
}

async fn customers_with_phone(app: &TestApp, phone: &str) -> Vec<Value> {
    app.read(&app.keys.a_admin, &format!("/customers?phone={phone}"))
        .await["items"]
        .as_array()
        .expect("a page")
        .clone()
}

async fn customers_of(app: &TestApp, dealer_id: i64) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM customers WHERE dealer_id = $1")
        .bind(dealer_id)
        .fetch_one(app.db.pool())
        .await
        .expect("a count");
    n
}

const CUSTOMERS: &str = "\u{feff}客户编号,姓名,手机,性别,生日,标签\n\
    C001,王芳,138 1234 0001,女,1988/5/12,家庭用户;价格敏感\n\
    C002,李强,+86 139-1234-0002,男,1979-11-03,科技爱好者\n";

async fn a_dry_run_reports_every_bad_row_by_line_field_and_code_and_stores_nothing(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let csv = "姓名,手机,性别,生日\n\
        王芳,13812340001,女,1988-05-12\n\
        李强,12345,男,\n\
        ,13812340003,,\n\
        \n\
        赵敏,13812340005,x,1988-13-01\n\
        \"周, 杰\",13812340007,男,\n";
    let reply = upload(
        &app,
        &app.keys.a_admin,
        &[
            ("kind", "customers"),
            ("format", "csv"),
            ("dry_run", "true"),
        ],
        csv.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(reply.body["dry_run"], true);
    let id = reply.body["id"].as_i64().expect("a job id");
    let job = finished(&app, &app.keys.a_admin, id).await;
    assert_eq!(job["status"], "done");
    assert_eq!(counts(&job), (5, 2, 0, 3), "{job}");
    assert_eq!(job["rows_done"], 5);
    let s = |v: &str| v.to_owned();
    assert_eq!(
        problems(&app, id).await,
        [
            (3, s("phone"), s("invalid_phone")),
            (4, s("name"), s("invalid_name")),
            (6, s("gender"), s("invalid_gender")),
            (6, s("birthday"), s("invalid_date")),
        ]
    );
    assert!(customers_with_phone(&app, "13812340001").await.is_empty());
    assert_eq!(customers_of(&app, app.units.dealer_a).await, 0);
}

async fn customers_vehicles_and_history_import_and_a_rerun_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customers = || CUSTOMERS.as_bytes().to_vec();
    let job = import(
        &app,
        &[("kind", "customers"), ("file_name", "客户.csv")],
        customers(),
    )
    .await;
    assert_eq!(counts(&job), (2, 2, 0, 0), "{job}");
    assert_eq!(job["mapping"]["external_id"], "客户编号");
    let wang = customers_with_phone(&app, "13812340001").await;
    assert_eq!(wang.len(), 1);
    assert_eq!(wang[0]["name"], "王芳");
    assert_eq!(wang[0]["gender"], "female");
    assert_eq!(wang[0]["birthday"], "1988-05-12");
    assert_eq!(wang[0]["tags"], json!(["价格敏感", "家庭用户"]));
    let li = customers_with_phone(&app, "13912340002").await;
    assert_eq!(li[0]["name"], "李强");

    let (vin1, vin2) = (valid_vin(501), valid_vin(502));
    let vehicles = format!(
        "VIN,车牌,品牌,车型,购车日期,客户编号,车主手机\n\
         {vin1},京A·12345,红旗,H5,2021-06-01,C001,\n\
         {vin2},粤BD12345,比亚迪,汉,2023-01-15,,13912340002\n"
    );
    let job = import(
        &app,
        &[("kind", "vehicles"), ("format", "csv")],
        vehicles.clone().into_bytes(),
    )
    .await;
    assert_eq!(counts(&job), (2, 2, 0, 0), "{job}");
    let found = app
        .read(&app.keys.a_admin, &format!("/vehicles?vin={vin1}"))
        .await;
    let vehicle = &found["items"][0];
    assert_eq!(vehicle["plate"], "京A·12345");
    assert_eq!(vehicle["brand"], "红旗");
    assert_eq!(vehicle["people"][0]["customer_id"], wang[0]["id"]);
    assert_eq!(vehicle["people"][0]["role"], "owner");
    let second = app
        .read(&app.keys.a_admin, &format!("/vehicles?vin={vin2}"))
        .await;
    assert_eq!(second["items"][0]["people"][0]["customer_id"], li[0]["id"]);

    let history = format!(
        "VIN,日期,里程,类型,金额,工单号,维修内容\n\
         {vin1},2022-06-10,5200,首保,0,RO-1,首次保养\n\
         {vin1},2023/6/20,15800,保养,\"1,280.50\",RO-2,更换机油机滤\n\
         {vin1},2024.01.05,21000,维修,380,RO-3,更换雨刮\n"
    );
    let job = import(
        &app,
        &[("kind", "service_history"), ("format", "csv")],
        history.clone().into_bytes(),
    )
    .await;
    assert_eq!(counts(&job), (3, 3, 0, 0), "{job}");
    let vehicle_id = vehicle["id"].as_i64().expect("an id");
    let orders = app
        .read(
            &app.keys.a_admin,
            &format!("/repair-orders?vehicle_id={vehicle_id}"),
        )
        .await;
    let orders = orders["items"].as_array().expect("a page");
    assert_eq!(orders.len(), 3);
    let second_service = orders
        .iter()
        .find(|o| o["mileage_km"] == 15800)
        .expect("the 2023 service");
    assert_eq!(second_service["status"], "paid");
    assert_eq!(second_service["complaint_code"], "maintenance");
    assert_eq!(second_service["total_fen"], 128_050);
    assert_eq!(second_service["outstanding_fen"], 0);
    assert_eq!(second_service["customer_id"], wang[0]["id"]);
    let mileage = app
        .read(
            &app.keys.a_admin,
            &format!("/vehicles/{vehicle_id}/mileage"),
        )
        .await;
    let km: Vec<&Value> = mileage["readings"]
        .as_array()
        .expect("readings")
        .iter()
        .map(|r| &r["km"])
        .collect();
    assert_eq!(km, [&json!(5200), &json!(15800), &json!(21000)]);

    // The same three files again: nothing new, every row unchanged.
    let again = import(
        &app,
        &[("kind", "customers"), ("format", "csv")],
        customers(),
    )
    .await;
    assert_eq!(counts(&again), (2, 0, 2, 0), "{again}");
    let again = import(
        &app,
        &[("kind", "vehicles"), ("format", "csv")],
        vehicles.into_bytes(),
    )
    .await;
    assert_eq!(counts(&again), (2, 0, 2, 0), "{again}");
    let again = import(
        &app,
        &[("kind", "service_history"), ("format", "csv")],
        history.into_bytes(),
    )
    .await;
    assert_eq!(counts(&again), (3, 0, 3, 0), "{again}");
    assert_eq!(customers_of(&app, app.units.dealer_a).await, 2);
    let orders = app
        .read(
            &app.keys.a_admin,
            &format!("/repair-orders?vehicle_id={vehicle_id}"),
        )
        .await;
    assert_eq!(orders["items"].as_array().expect("a page").len(), 3);

    // One audit entry per job, not one per row.
    let (entries,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'import' AND entity = 'import_job' AND dealer_id = $1",
    )
    .bind(app.units.dealer_a)
    .fetch_one(app.db.pool())
    .await
    .expect("a count");
    assert_eq!(entries, 6);
    let (per_row,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'create' AND entity IN ('customer', 'vehicle', 'repair_order')",
    )
    .fetch_one(app.db.pool())
    .await
    .expect("a count");
    assert_eq!(per_row, 0);
}

async fn an_interrupted_import_resumes_after_its_last_batch_without_duplicates(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rows = 2 * imports::BATCH_ROWS + 200;
    let mut csv = String::from("姓名,手机\n");
    for i in 0..rows {
        csv.push_str(&format!("客户{i},1381000{i:04}\n"));
    }
    let admin = app.caller(&app.keys.a_admin).await;
    let job = imports::create(
        &app.db,
        Actor::Staff(&admin),
        NewImport {
            dealer_id: app.units.dealer_a,
            kind: Kind::Customers,
            format: None,
            file_name: "客户.csv".into(),
            bytes: csv.into_bytes(),
            mapping: Mapping::new(),
            dry_run: false,
        },
    )
    .await
    .expect("a job");
    let stopped = imports::run(
        &app.db,
        Actor::Staff(&admin),
        job.id,
        Pass {
            max_batches: Some(1),
        },
        |_| {},
    )
    .await
    .expect("one batch");
    assert_eq!(stopped.rows_done, imports::BATCH_ROWS as i64);
    assert_eq!(stopped.last_line, imports::BATCH_ROWS as i64 + 1);
    assert_eq!(
        customers_of(&app, app.units.dealer_a).await,
        imports::BATCH_ROWS as i64
    );

    // The runner is killed: the job stays running, its lease held.
    let hold = |until: i64| {
        sqlx::query("UPDATE import_jobs SET status = 'running', runner = 'killed', lease_until = $1 WHERE id = $2")
            .bind(until)
            .bind(job.id)
    };
    let now = chrono::Utc::now().timestamp_millis();
    hold(now + 600_000)
        .execute(app.db.pool())
        .await
        .expect("held");
    let path = format!("/imports/{}/resume", job.id);
    let busy = call(app.post(&app.keys.a_admin, &path, &json!({}))).await;
    assert_eq!(busy.status, 409, "{}", busy.text);
    assert!(busy.has_code("import_running"));

    // Its lease runs out; resuming finishes the file from the next batch.
    hold(now - 1).execute(app.db.pool()).await.expect("expired");
    let resumed = call(app.post(&app.keys.a_admin, &path, &json!({}))).await;
    assert_eq!(resumed.status, 202, "{}", resumed.text);
    let done = finished(&app, &app.keys.a_admin, job.id).await;
    assert_eq!(done["status"], "done");
    assert_eq!(counts(&done), (rows as i64, rows as i64, 0, 0), "{done}");
    assert_eq!(done["rows_done"], rows as i64);
    assert_eq!(customers_of(&app, app.units.dealer_a).await, rows as i64);
    let (distinct,): (i64,) = sqlx::query_as(
        "SELECT COUNT(DISTINCT p.phone) FROM customer_phones p JOIN customers c ON c.id = p.customer_id WHERE c.dealer_id = $1",
    )
    .bind(app.units.dealer_a)
    .fetch_one(app.db.pool())
    .await
    .expect("a count");
    assert_eq!(distinct, rows as i64);

    // A finished job resumed again changes nothing.
    let again = call(app.post(&app.keys.a_admin, &path, &json!({}))).await;
    assert_eq!(again.status, 202);
    assert_eq!(again.body["status"], "done");
    assert_eq!(customers_of(&app, app.units.dealer_a).await, rows as i64);
}

/// The customers of [`CUSTOMERS`] as Excel saves them: the phone a number, the birthday a
/// date cell.
fn customers_xlsx() -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    let date = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
    for (col, title) in ["客户编号", "姓名", "手机", "性别", "生日", "标签"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, col as u16, *title).expect("a header");
    }
    let rows = [
        (
            "C001",
            "王芳",
            13812340001.0,
            "女",
            (1988, 5, 12),
            "家庭用户;价格敏感",
        ),
        (
            "C002",
            "李强",
            13912340002.0,
            "男",
            (1979, 11, 3),
            "科技爱好者",
        ),
    ];
    for (i, (id, name, phone, gender, (y, m, d), tags)) in rows.into_iter().enumerate() {
        let row = i as u32 + 1;
        sheet.write_string(row, 0, id).expect("an id");
        sheet.write_string(row, 1, name).expect("a name");
        sheet.write_number(row, 2, phone).expect("a phone");
        sheet.write_string(row, 3, gender).expect("a gender");
        let birthday = rust_xlsxwriter::ExcelDateTime::from_ymd(y, m, d).expect("a date");
        sheet
            .write_datetime_with_format(row, 4, &birthday, &date)
            .expect("a birthday");
        sheet.write_string(row, 5, tags).expect("tags");
    }
    book.save_to_buffer().expect("an xlsx")
}

async fn an_xlsx_export_imports_like_the_csv(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let job = import(
        &app,
        &[("kind", "customers"), ("file_name", "客户.xlsx")],
        customers_xlsx(),
    )
    .await;
    assert_eq!(job["format"], "xlsx");
    assert_eq!(counts(&job), (2, 2, 0, 0), "{job}");
    let wang = customers_with_phone(&app, "13812340001").await;
    assert_eq!(wang.len(), 1);
    assert_eq!(wang[0]["name"], "王芳");
    assert_eq!(wang[0]["birthday"], "1988-05-12");
    assert_eq!(wang[0]["tags"], json!(["价格敏感", "家庭用户"]));
    assert_eq!(
        customers_with_phone(&app, "13912340002").await[0]["gender"],
        "male"
    );

    // The CSV of the same customers finds them all there already.
    let csv = import(
        &app,
        &[("kind", "customers"), ("format", "csv")],
        CUSTOMERS.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(counts(&csv), (2, 0, 2, 0), "{csv}");
    assert_eq!(customers_of(&app, app.units.dealer_a).await, 2);
}

async fn a_mapping_names_the_columns_and_a_bad_one_or_an_unreadable_file_is_refused_at_once(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    // Columns no default knows, mapped by the caller; the file saved as GBK by Chinese Excel.
    let (gbk, _, _) = encoding_rs::GBK.encode("联系人,联系方式\n孙丽,13712340009\n");
    let mapping = json!({ "name": "联系人", "phone": "联系方式" }).to_string();
    let job = import(
        &app,
        &[
            ("kind", "customers"),
            ("format", "csv"),
            ("mapping", &mapping),
        ],
        gbk.into_owned(),
    )
    .await;
    assert_eq!(counts(&job), (1, 1, 0, 0), "{job}");
    assert_eq!(
        customers_with_phone(&app, "13712340009").await[0]["name"],
        "孙丽"
    );

    let bad = json!({ "name": "不存在", "colour": "颜色" }).to_string();
    let reply = upload(
        &app,
        &app.keys.a_admin,
        &[("kind", "customers"), ("format", "csv"), ("mapping", &bad)],
        "姓名,手机\n王芳,13812340001\n".as_bytes().to_vec(),
    )
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert!(reply.names_field("mapping.name") && reply.has_code("unknown_column"));
    assert!(reply.names_field("mapping.colour") && reply.has_code("unknown_field"));

    let not_xlsx = upload(
        &app,
        &app.keys.a_admin,
        &[("kind", "vehicles"), ("format", "xlsx")],
        b"VIN\n".to_vec(),
    )
    .await;
    assert_eq!(not_xlsx.status, 422, "{}", not_xlsx.text);
    assert!(not_xlsx.has_code("unreadable_xlsx"));
    let no_vin = upload(
        &app,
        &app.keys.a_admin,
        &[("kind", "vehicles"), ("format", "csv")],
        "车牌,品牌\n京A·12345,红旗\n".as_bytes().to_vec(),
    )
    .await;
    assert_eq!(no_vin.status, 422, "{}", no_vin.text);
    assert!(no_vin.names_field("mapping.vin") && no_vin.has_code("missing_column"));
    let (jobs,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM import_jobs")
        .fetch_one(app.db.pool())
        .await
        .expect("a count");
    assert_eq!(jobs, 1, "a refused file makes no job");
}

async fn imports_are_for_dealer_admins_and_hq_and_stay_in_their_dealer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let file = || CUSTOMERS.as_bytes().to_vec();
    let query = [("kind", "customers"), ("format", "csv")];
    for key in [&app.keys.a_sales, &app.keys.a_service, &app.keys.hq_analyst] {
        let refused = upload(&app, key, &query, file()).await;
        assert_eq!(refused.status, 403, "{}", refused.text);
    }
    assert_eq!(customers_of(&app, app.units.dealer_a).await, 0);

    let job = import(&app, &query, file()).await;
    let id = job["id"].as_i64().expect("an id");
    for path in [format!("/imports/{id}"), format!("/imports/{id}/errors")] {
        let other_dealer = call(app.get(&app.keys.b_admin, &path)).await;
        assert_eq!(other_dealer.status, 404, "{}", other_dealer.text);
        let sales = call(app.get(&app.keys.a_sales, &path)).await;
        assert_eq!(sales.status, 403, "{}", sales.text);
        let hq = call(app.get(&app.keys.hq_admin, &path)).await;
        assert_eq!(hq.status, 200, "{}", hq.text);
    }
    let resume = call(app.post(
        &app.keys.b_admin,
        &format!("/imports/{id}/resume"),
        &json!({}),
    ))
    .await;
    assert_eq!(resume.status, 404);

    // HQ imports for a dealer it names.
    let dealer_b = app.units.dealer_b.to_string();
    let reply = upload(
        &app,
        &app.keys.hq_admin,
        &[
            ("kind", "customers"),
            ("format", "csv"),
            ("dealer_id", &dealer_b),
        ],
        file(),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let hq_job = finished(
        &app,
        &app.keys.hq_admin,
        reply.body["id"].as_i64().expect("an id"),
    )
    .await;
    assert_eq!(hq_job["dealer_id"], app.units.dealer_b);
    assert_eq!(customers_of(&app, app.units.dealer_b).await, 2);
    let hidden = call(app.get(&app.keys.a_admin, &format!("/imports/{}", hq_job["id"]))).await;
    assert_eq!(hidden.status, 404);
}

async fn the_imports_worker_finishes_a_job_whose_runner_died(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rows = imports::BATCH_ROWS + 10;
    let mut csv = String::from("姓名,手机\n");
    for i in 0..rows {
        csv.push_str(&format!("车主{i},1391000{i:04}\n"));
    }
    let admin = app.caller(&app.keys.a_admin).await;
    let new = NewImport {
        dealer_id: app.units.dealer_a,
        kind: Kind::Customers,
        format: Some(imports::Format::Csv),
        file_name: "owners.csv".into(),
        bytes: csv.into_bytes(),
        mapping: Mapping::new(),
        dry_run: false,
    };
    let job = imports::create(&app.db, Actor::Staff(&admin), new)
        .await
        .expect("a job");
    let pass = Pass {
        max_batches: Some(1),
    };
    imports::run(&app.db, Actor::Staff(&admin), job.id, pass, |_| {})
        .await
        .expect("one batch");
    // Its runner died after the first batch; its lease has run out.
    sqlx::query("UPDATE import_jobs SET status = 'running', runner = 'killed', lease_until = 0 WHERE id = $1")
        .bind(job.id)
        .execute(app.db.pool())
        .await
        .expect("abandoned");

    let files = dealer_tests::scratch_dir("imports-worker");
    let state = AppState::with_runtime(app.db.clone(), dealer_tests::shared_runtime(), &files.path)
        .expect("a host's state");
    let intervals = workers::Intervals {
        outbox: None,
        scheduler: None,
        run_retention: None,
        imports: Some(Duration::from_millis(50)),
    };
    let running = workers::start(
        &state,
        Arc::new(dealer_host::outbox::Senders::log_only()),
        intervals,
    );
    let done = finished(&app, &app.keys.a_admin, job.id).await;
    running.stop().await;
    assert_eq!(done["status"], "done");
    assert_eq!(counts(&done), (rows as i64, rows as i64, 0, 0), "{done}");
    assert_eq!(customers_of(&app, app.units.dealer_a).await, rows as i64);
    let (worker,): (String,) =
        sqlx::query_as("SELECT detail FROM audit_log WHERE action = 'import' AND entity_id = $1")
            .bind(job.id)
            .fetch_one(app.db.pool())
            .await
            .expect("the job's audit entry");
    assert!(worker.contains("\"worker\":\"imports\""), "{worker}");
}
