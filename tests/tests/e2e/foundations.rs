//! What the sales and service lifecycles share: approval requests acted on by the right
//! people, owners' links, attachments and the outbox.

use dealer_host::approvals::{self, NewRequest, RequestKind, Subject};
use dealer_host::attachments;
use dealer_host::outbox::{self, Message};
use dealer_host::owner_links::{self, Purpose};
use dealer_tests::{Backend, TestApp, call, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    a_large_discount_needs_the_sales_manager_then_the_general_manager,
    a_rejected_step_rejects_the_request_and_skips_the_rest,
    a_small_discount_is_approved_at_once_by_the_built_in_rule,
    an_owner_step_is_only_approved_through_the_owner,
    approvals_are_scoped_to_the_dealer,
    a_single_use_link_works_once_and_only_for_its_purpose,
    an_expired_link_is_gone,
    an_attachment_is_stored_and_downloaded_in_scope,
    a_refused_upload_leaves_no_row_and_no_file,
    a_dedupe_key_enqueues_a_message_once,
);

/// Stores a request for dealer A as its sales consultant would, through the approval hook.
async fn request(app: &TestApp, kind: RequestKind, amount: i64, base: i64) -> Value {
    let caller = app.caller(&app.keys.a_sales).await;
    let new = NewRequest {
        dealer_id: app.units.dealer_a,
        subject: Subject::SalesOrder(41),
        kind,
        requested_by: Some(app.staff.a_sales),
        customer_id: None,
        amount_fen: amount,
        base_amount_fen: base,
        description: "优惠申请".into(),
        attributes: vec![],
    };
    let mut conn = app.db.pool().acquire().await.unwrap();
    let question = approvals::question(&mut conn, &new)
        .await
        .expect("a question");
    drop(conn);
    let decided = approvals::decide(&app.state.plugins, question)
        .await
        .expect("a decision");
    let mut tx = app.db.begin_write().await.unwrap();
    let stored = approvals::store(&mut tx, &new, decided, &caller)
        .await
        .expect("stored");
    tx.commit().await.unwrap();
    serde_json::to_value(stored).unwrap()
}

async fn act(app: &TestApp, key: &str, id: i64, verb: &str) -> dealer_tests::Reply {
    call(app.post(
        key,
        &format!("/approvals/{id}/{verb}"),
        &json!({"comment": "同意"}),
    ))
    .await
}

async fn a_large_discount_needs_the_sales_manager_then_the_general_manager(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // 10% of the list price: above the built-in 8%.
    let r = request(&app, RequestKind::Discount, 2_000_000, 20_000_000).await;
    assert_eq!(r["status"], "pending");
    let roles: Vec<&str> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["sales-manager", "general-manager"]);
    assert_eq!(r["decided_by"]["kind"], "default");
    let id = r["id"].as_i64().unwrap();

    let mine = app
        .read(&app.keys.a_sales_manager, "/approvals?mine=true")
        .await;
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    let not_mine = app.read(&app.keys.a_gm, "/approvals?mine=true").await;
    assert!(
        not_mine.as_array().unwrap().is_empty(),
        "the GM's step is not reached yet"
    );

    let wrong = act(&app, &app.keys.a_sales, id, "approve").await;
    assert_eq!(wrong.status, 403, "{}", wrong.text);
    assert!(wrong.text.contains("sales-manager"), "{}", wrong.text);
    let too_early = act(&app, &app.keys.a_gm, id, "approve").await;
    assert_eq!(
        too_early.status, 403,
        "the GM cannot skip the sales manager"
    );

    let first = act(&app, &app.keys.a_sales_manager, id, "approve").await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["status"], "pending");
    assert_eq!(
        first.body["steps"][0]["acted_by_staff"],
        app.staff.a_sales_manager
    );
    let second = act(&app, &app.keys.a_gm, id, "approve").await;
    assert_eq!(second.body["status"], "approved", "{}", second.text);
    assert!(second.body["closed_at"].is_i64());

    let again = act(&app, &app.keys.a_gm, id, "approve").await;
    assert_eq!(again.status, 409);
    assert!(again.has_code("approval_closed"));
}

async fn a_rejected_step_rejects_the_request_and_skips_the_rest(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = request(&app, RequestKind::Discount, 2_000_000, 20_000_000).await;
    let id = r["id"].as_i64().unwrap();
    let rejected = act(&app, &app.keys.a_sales_manager, id, "reject").await;
    assert_eq!(rejected.status, 200, "{}", rejected.text);
    assert_eq!(rejected.body["status"], "rejected");
    assert_eq!(rejected.body["steps"][0]["status"], "rejected");
    assert_eq!(rejected.body["steps"][1]["status"], "skipped");
    let stored = app
        .read(&app.keys.a_admin, &format!("/approvals/{id}"))
        .await;
    assert_eq!(stored["status"], "rejected");
}

async fn a_small_discount_is_approved_at_once_by_the_built_in_rule(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = request(&app, RequestKind::Discount, 200_000, 20_000_000).await;
    assert_eq!(r["status"], "approved");
    assert!(r["steps"].as_array().unwrap().is_empty());
    assert!(r["reason"].as_str().unwrap().contains("3%"));
}

async fn an_owner_step_is_only_approved_through_the_owner(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = request(&app, RequestKind::ExtraRepairWork, 80_000, 300_000).await;
    assert_eq!(r["steps"][0]["role"], "owner");
    let id = r["id"].as_i64().unwrap();
    let staff = act(&app, &app.keys.a_gm, id, "approve").await;
    assert_eq!(staff.status, 403);
    assert!(staff.text.contains("owner"), "{}", staff.text);

    let mut tx = app.db.begin_write().await.unwrap();
    let link = owner_links::issue(
        &mut tx,
        app.units.dealer_a,
        Purpose::ExtraWork,
        id,
        60_000,
        true,
    )
    .await
    .unwrap();
    let done = approvals::act_as_owner(&mut tx, id, true, "link", link.id)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(done.steps[0].status, "approved");
    assert_eq!(done.steps[0].acted_by_link, Some(link.id));
    assert_eq!(done.steps[0].channel.as_deref(), Some("link"));
    let audit = app
        .read(
            &app.keys.a_admin,
            &format!("/audit?entity=approval_request&entity_id={id}"),
        )
        .await;
    let owner_entry = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["actor_role"] == "owner" && e["action"] == "approve");
    assert!(owner_entry, "the owner's approval is audited: {audit}");
}

async fn approvals_are_scoped_to_the_dealer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = request(&app, RequestKind::Discount, 2_000_000, 20_000_000).await;
    let id = r["id"].as_i64().unwrap();
    let other = call(app.get(&app.keys.b_admin, &format!("/approvals/{id}"))).await;
    assert_eq!(other.status, 404);
    let acted = act(&app, &app.keys.b_admin, id, "approve").await;
    assert_eq!(acted.status, 404);
    let listed = app.read(&app.keys.b_admin, "/approvals").await;
    assert!(listed.as_array().unwrap().is_empty());
    let hq = app
        .read(&app.keys.hq_admin, "/approvals?status=pending")
        .await;
    assert_eq!(hq.as_array().unwrap().len(), 1);
}

async fn a_single_use_link_works_once_and_only_for_its_purpose(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut conn = app.db.pool().acquire().await.unwrap();
    let issued = owner_links::issue(
        &mut conn,
        app.units.dealer_a,
        Purpose::Survey,
        7,
        60_000,
        true,
    )
    .await
    .unwrap();
    assert_eq!(
        issued.token.len(),
        32,
        "128 bits in hex: short enough for an SMS"
    );
    let wrong = owner_links::resolve(&mut conn, Purpose::TicketStatus, &issued.token).await;
    assert!(matches!(
        wrong,
        Err(dealer_host::error::Error::LinkNotFound)
    ));
    let link = owner_links::resolve(&mut conn, Purpose::Survey, &issued.token)
        .await
        .unwrap();
    assert_eq!((link.subject_id, link.dealer_id), (7, app.units.dealer_a));
    owner_links::consume(&mut conn, &link).await.unwrap();
    let twice = owner_links::consume(&mut conn, &link).await;
    assert!(matches!(
        twice,
        Err(dealer_host::error::Error::Gone {
            code: "link_used",
            ..
        })
    ));
    let after = owner_links::resolve(&mut conn, Purpose::Survey, &issued.token).await;
    assert!(matches!(
        after,
        Err(dealer_host::error::Error::Gone {
            code: "link_used",
            ..
        })
    ));
    let stored: (String,) = sqlx::query_as("SELECT token_hash FROM owner_links WHERE id = $1")
        .bind(issued.id)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_ne!(
        stored.0, issued.token,
        "only a digest of the token is stored"
    );
}

async fn an_expired_link_is_gone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut conn = app.db.pool().acquire().await.unwrap();
    let issued = owner_links::issue(
        &mut conn,
        app.units.dealer_a,
        Purpose::TicketStatus,
        3,
        -1,
        false,
    )
    .await
    .unwrap();
    let expired = owner_links::resolve(&mut conn, Purpose::TicketStatus, &issued.token).await;
    assert!(matches!(
        expired,
        Err(dealer_host::error::Error::Gone {
            code: "link_expired",
            ..
        })
    ));
}

const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xFF\xD9";

async fn an_attachment_is_stored_and_downloaded_in_scope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let caller = app.caller(&app.keys.a_service).await;
    let mut tx = app.db.begin_write().await.unwrap();
    let saved = attachments::save(
        &mut tx,
        &app.state.attachments,
        app.units.dealer_a,
        "repair_order",
        5,
        "image/jpeg",
        JPEG,
        Some("左前轮"),
        &caller,
    )
    .await
    .expect("a photo is stored");
    tx.commit().await.unwrap();
    assert_eq!(saved.size_bytes, JPEG.len() as i64);

    let reply = app
        .client
        .get(format!("{}/attachments/{}", app.base, saved.id))
        .bearer_auth(&app.keys.a_service)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["content-type"], "image/jpeg");
    assert_eq!(&reply.bytes().await.unwrap()[..], JPEG);

    let other = call(app.get(&app.keys.b_admin, &format!("/attachments/{}", saved.id))).await;
    assert_eq!(other.status, 404);
    let mut conn = app.db.pool().acquire().await.unwrap();
    let listed = attachments::list(&mut conn, "repair_order", 5)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
}

async fn a_refused_upload_leaves_no_row_and_no_file(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let caller = app.caller(&app.keys.a_service).await;
    let store = &app.state.attachments;
    let mut conn = app.db.pool().acquire().await.unwrap();
    for (content_type, bytes) in [
        ("image/png", JPEG),
        ("text/html", b"<script>".as_slice()),
        ("image/jpeg", b"".as_slice()),
    ] {
        let refused = attachments::save(
            &mut conn,
            store,
            app.units.dealer_a,
            "repair_order",
            5,
            content_type,
            bytes,
            None,
            &caller,
        )
        .await;
        assert!(
            refused.is_err(),
            "{content_type} with {} bytes is refused",
            bytes.len()
        );
    }
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM attachments")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    let files = std::fs::read_dir(app.attachments_dir()).unwrap().count();
    assert_eq!(files, 0, "no file, not even a partial one");
}

async fn a_dedupe_key_enqueues_a_message_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let message = Message {
        channel: "sms".into(),
        recipient: "customer:9".into(),
        template: "maintenance_due".into(),
        data: vec![("plate".into(), "京A·12345".into())],
        purpose: outbox::Purpose::Service,
    };
    let mut conn = app.db.pool().acquire().await.unwrap();
    let first = outbox::enqueue(
        &mut conn,
        app.units.dealer_a,
        &message,
        Some("v9:maintenance:2026-12"),
    )
    .await
    .unwrap();
    let again = outbox::enqueue(
        &mut conn,
        app.units.dealer_a,
        &message,
        Some("v9:maintenance:2026-12"),
    )
    .await
    .unwrap();
    let undeduped = outbox::enqueue(&mut conn, app.units.dealer_a, &message, None)
        .await
        .unwrap();
    assert!(first.is_some());
    assert_eq!(again, None);
    assert!(undeduped.is_some());
    let (rows, data): (i64, String) =
        sqlx::query_as("SELECT COUNT(*), MIN(data) FROM outbox WHERE recipient = 'customer:9'")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(rows, 2);
    assert!(data.contains("京A·12345"));
}
