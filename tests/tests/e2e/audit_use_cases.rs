//! A use case writes its own audit entry whoever calls it: the same entry as over HTTP when the
//! domain is called directly, and a `system` entry from the operator's command line.

use dealer_host::access::Role;
use dealer_host::audit::Actor;
use dealer_host::custom_fields::{self, Entity, FieldType, NewFieldDef};
use dealer_host::network;
use dealer_host::plugins::manage;
use dealer_tests::{Backend, TestApp, on_both_backends};

on_both_backends!(
    keys_made_on_the_command_line_are_audited_as_the_command_line,
    domain_calls_without_a_handler_are_audited_for_their_caller,
);

/// (action, actor_role, dealer_id, detail) of the entries about `entity` `id`, oldest first.
async fn entries(app: &TestApp, entity: &str, id: i64) -> Vec<(String, String, i64, String)> {
    let mut conn = app.db.pool().acquire().await.unwrap();
    sqlx::query_as(
        "SELECT action, actor_role, dealer_id, detail FROM audit_log \
         WHERE entity = $1 AND entity_id = $2 ORDER BY id",
    )
    .bind(entity)
    .bind(id)
    .fetch_all(&mut *conn)
    .await
    .unwrap()
}

async fn keys_made_on_the_command_line_are_audited_as_the_command_line(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut tx = app.db.begin_write().await.unwrap();
    let created = network::create_key(
        &mut tx,
        Actor::COMMAND_LINE,
        Role::Sales,
        app.units.dealer_a,
        None,
        "cli",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut tx = app.db.begin_write().await.unwrap();
    network::revoke_key(&mut tx, Actor::COMMAND_LINE, &created.info.prefix)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let log = entries(&app, "api_key", created.info.id).await;
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(
        (log[0].0.as_str(), log[0].1.as_str(), log[0].2),
        ("create", "system", app.units.dealer_a)
    );
    let detail: serde_json::Value = serde_json::from_str(&log[0].3).unwrap();
    assert_eq!(detail["worker"], "command-line");
    assert_eq!(detail["role"], "sales");
    assert_eq!(detail["prefix"], created.info.prefix.as_str());
    assert_eq!(
        (log[1].0.as_str(), log[1].1.as_str(), log[1].2),
        ("revoke", "system", app.units.dealer_a)
    );
}

async fn domain_calls_without_a_handler_are_audited_for_their_caller(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.caller(&app.keys.a_admin).await;
    let dealer = app.units.dealer_a;
    let mut tx = app.db.begin_write().await.unwrap();
    let def = custom_fields::create(
        &mut tx,
        &admin,
        dealer,
        NewFieldDef {
            dealer_id: None,
            entity: Entity::Customer,
            key: "hobby".into(),
            label: "Hobby".into(),
            field_type: FieldType::Text,
            required: false,
            choices: None,
            min: None,
            max: None,
        },
    )
    .await
    .unwrap();
    manage::set_dealer_killed(&mut tx, &admin, dealer, true, Some("audit"))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let log = entries(&app, "custom_field", def.id).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        (log[0].0.as_str(), log[0].1.as_str(), log[0].2),
        ("create", "dealer_admin", dealer)
    );
    let log = entries(&app, "dealer_plugins", dealer).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        (log[0].0.as_str(), log[0].1.as_str(), log[0].2),
        ("kill", "dealer_admin", dealer)
    );
}
