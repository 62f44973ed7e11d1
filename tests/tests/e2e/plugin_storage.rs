//! Plugin storage on both backends: the registry (plugins, versions, artifacts, bindings, kill
//! switches, secrets, stores) and the run log (masking, bounded inputs, statistics, listing,
//! recorded inputs for replay).

use std::time::Duration;

use dealer_host::clock;
use dealer_host::error::Error;
use dealer_host::network::{self, DealerType, NewUnit, UnitKind};
use dealer_host::plugins::Hook;
use dealer_host::plugins::registry::{
    self, BindingPatch, FailurePolicy, Grants, NewBinding, NewPlugin, NewVersion, Plugin,
};
use dealer_host::plugins::runs::{self, NewRun, Outcome, RECENT_INPUTS, RunFilter, Source};
use dealer_tests::{Backend, TestDb, on_both_backends};
use serde_json::{Value, json};
use sqlx::AnyConnection;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgListener;

/// HQ and two dealers in its north region.
struct Fixture {
    t: TestDb,
    hq: i64,
    dealer_a: i64,
    dealer_b: i64,
}

impl Fixture {
    async fn new(backend: Backend) -> Fixture {
        let t = TestDb::new(backend).await;
        let mut conn = t.db.pool().acquire().await.unwrap();
        let hq = unit(&mut conn, None, UnitKind::Hq, "HQ", "品牌总部").await;
        let north = unit(&mut conn, Some(hq), UnitKind::Region, "NORTH", "华北大区").await;
        let dealer_a = unit(
            &mut conn,
            Some(north),
            UnitKind::Dealer,
            "BJ-CY-4S",
            "北京朝阳4S店",
        )
        .await;
        let dealer_b = unit(
            &mut conn,
            Some(north),
            UnitKind::Dealer,
            "TJ-HX-4S",
            "天津河西4S店",
        )
        .await;
        Fixture {
            t,
            hq,
            dealer_a,
            dealer_b,
        }
    }

    async fn conn(&self) -> PoolConnection<sqlx::Any> {
        self.t.db.pool().acquire().await.unwrap()
    }

    async fn count(&self, sql: &str) -> i64 {
        let (n,): (i64,) = sqlx::query_as(sql)
            .fetch_one(self.t.db.pool())
            .await
            .unwrap();
        n
    }
}

async fn unit(
    conn: &mut AnyConnection,
    parent_id: Option<i64>,
    kind: UnitKind,
    code: &str,
    name: &str,
) -> i64 {
    let dealer_type = (kind == UnitKind::Dealer).then_some(DealerType::FourS);
    let new = NewUnit {
        parent_id,
        kind,
        dealer_type,
        code: code.to_owned(),
        name: name.to_owned(),
        city: None,
        phone: None,
    };
    network::create_unit(conn, &new).await.unwrap().id
}

fn new_plugin(owner_org_id: i64, name: &str, hook: Hook) -> NewPlugin {
    NewPlugin {
        owner_org_id,
        name: name.to_owned(),
        hook,
        description: "标准佣金：按车型和金融方案计提".to_owned(),
        config_schema: Some(
            json!({ "type": "object", "properties": { "rate": { "type": "number" } } }),
        ),
    }
}

async fn create(conn: &mut AnyConnection, owner: i64, name: &str, hook: Hook) -> Plugin {
    registry::create_plugin(conn, &new_plugin(owner, name, hook))
        .await
        .unwrap()
}

/// Adds `version` with `bytes` as its component.
async fn add(
    conn: &mut AnyConnection,
    plugin_id: i64,
    version: &str,
    bytes: &[u8],
) -> registry::PluginVersion {
    registry::add_version(conn, plugin_id, &version_of(version, bytes))
        .await
        .unwrap_or_else(|e| panic!("add version {version}: {e:?}"))
}

fn version_of<'a>(version: &str, bytes: &'a [u8]) -> NewVersion<'a> {
    NewVersion {
        version: version.parse().unwrap(),
        wit_version: "0.1.0".to_owned(),
        sha256: registry::digest(bytes),
        bytes,
        uploaded_by: Some(7),
        notes: format!("版本 {version}：修正提成上限"),
    }
}

fn binding_to(plugin_id: i64, version: &str, config: Value) -> NewBinding {
    NewBinding {
        plugin_id,
        pinned_version: version.to_owned(),
        config,
        failure_policy: FailurePolicy::Fallback,
    }
}

fn conflict_code(e: Error) -> &'static str {
    match e {
        Error::Conflict { code, .. } => code,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

/// The `(field, code)` pairs of an `Error::Invalid`.
fn invalid(e: Error) -> Vec<(String, String)> {
    match e {
        Error::Invalid(errors) => errors.into_iter().map(|e| (e.field, e.code)).collect(),
        other => panic!("expected invalid fields, got {other:?}"),
    }
}

fn pair(field: &str, code: &str) -> Vec<(String, String)> {
    vec![(field.to_owned(), code.to_owned())]
}

async fn plugins_are_unique_per_owner(backend: Backend) {
    let f = Fixture::new(backend).await;
    let mut conn = f.conn().await;
    let c = &mut *conn;
    let created = create(c, f.hq, "commission-standard", Hook::Commission).await;
    assert_eq!(created.owner_org_id, f.hq);
    assert_eq!(created.hook, Hook::Commission);
    assert_eq!(created.description, "标准佣金：按车型和金融方案计提");
    assert_eq!(created.grants, Grants::default());
    assert!(!created.killed && created.killed_at.is_none());
    assert_eq!(
        created.config_schema.as_ref().unwrap()["properties"]["rate"]["type"],
        "number"
    );

    let again = new_plugin(f.hq, "commission-standard", Hook::Loyalty);
    let e = registry::create_plugin(c, &again).await.unwrap_err();
    assert_eq!(conflict_code(e), "plugin_exists");
    // The same name is free for another owner.
    let own = create(c, f.dealer_a, "commission-standard", Hook::Commission).await;
    assert_ne!(own.id, created.id);

    for bad in ["Commission", "a", "-lead", "佣金规则", "with space"] {
        let e = registry::create_plugin(c, &new_plugin(f.hq, bad, Hook::Commission))
            .await
            .unwrap_err();
        assert_eq!(invalid(e), pair("name", "invalid_name"), "{bad:?}");
    }
    let mut long = new_plugin(f.hq, "long-description", Hook::Commission);
    long.description = "长".repeat(registry::DESCRIPTION_MAX + 1);
    let e = registry::create_plugin(c, &long).await.unwrap_err();
    assert_eq!(invalid(e), pair("description", "too_long"));
    assert_eq!(f.count("SELECT COUNT(*) FROM plugins").await, 2);

    assert_eq!(
        registry::plugin(c, created.id).await.unwrap().as_ref(),
        Some(&created)
    );
    assert_eq!(registry::plugin(c, created.id + 1000).await.unwrap(), None);
    let by_name = registry::plugin_by_name(c, f.dealer_a, "commission-standard").await;
    assert_eq!(by_name.unwrap().map(|p| p.id), Some(own.id));
    assert_eq!(
        registry::plugin_by_name(c, f.dealer_b, "commission-standard")
            .await
            .unwrap(),
        None
    );

    let loyalty = create(c, f.hq, "loyalty-points", Hook::Loyalty).await;
    let ids = |plugins: Vec<Plugin>| plugins.into_iter().map(|p| p.id).collect::<Vec<_>>();
    let visible = registry::list_plugins(c, &[f.hq, f.dealer_a])
        .await
        .unwrap();
    assert_eq!(ids(visible), [created.id, own.id, loyalty.id]);
    let catalogue = registry::list_plugins(c, &[f.hq, f.dealer_b])
        .await
        .unwrap();
    assert_eq!(ids(catalogue), [created.id, loyalty.id]);
    assert!(registry::list_plugins(c, &[]).await.unwrap().is_empty());
}

async fn versions_are_unique_and_ordered_by_semver(backend: Backend) {
    let f = Fixture::new(backend).await;
    let mut conn = f.conn().await;
    let c = &mut *conn;
    let p = create(c, f.hq, "commission-standard", Hook::Commission).await;
    let same_bytes = b"\0asm same component".as_slice();
    let v19 = add(c, p.id, "1.9.0", same_bytes).await;
    let v110 = add(c, p.id, "1.10.0", same_bytes).await;
    // A back-port after a newer version is allowed.
    add(c, p.id, "1.2.0", b"\0asm older line").await;
    add(c, p.id, "2.0.0-rc.1", b"\0asm next").await;
    assert_eq!(v19.sha256, registry::digest(same_bytes));
    assert_eq!(v19.sha256, v110.sha256);
    assert_eq!(v110.size, same_bytes.len() as i64);
    assert_eq!(v110.uploaded_by, Some(7));
    assert_eq!(v110.notes, "版本 1.10.0：修正提成上限");
    assert_eq!(f.count("SELECT COUNT(*) FROM plugin_artifacts").await, 3);

    let order: Vec<String> = registry::versions(c, p.id)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(order, ["2.0.0-rc.1", "1.10.0", "1.9.0", "1.2.0"]);

    let e = registry::add_version(c, p.id, &version_of("1.9.0", b"other bytes"))
        .await
        .unwrap_err();
    assert_eq!(conflict_code(e), "version_exists");
    let mut wrong_digest = version_of("3.0.0", b"bytes");
    wrong_digest.sha256 = registry::digest(b"other bytes");
    let e = registry::add_version(c, p.id, &wrong_digest)
        .await
        .unwrap_err();
    assert_eq!(invalid(e), pair("sha256", "digest_mismatch"));
    let mut wrong_wit = version_of("3.0.0", b"bytes");
    wrong_wit.wit_version = "latest".to_owned();
    let e = registry::add_version(c, p.id, &wrong_wit)
        .await
        .unwrap_err();
    assert_eq!(invalid(e), pair("wit_version", "invalid_version"));
    let e = registry::add_version(c, p.id + 1000, &version_of("1.0.0", b"x"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { entity: "plugin" }), "{e:?}");
    assert_eq!(f.count("SELECT COUNT(*) FROM plugin_versions").await, 4);
    assert_eq!(f.count("SELECT COUNT(*) FROM plugin_artifacts").await, 3);

    let found = registry::version(c, p.id, "1.10.0").await.unwrap();
    assert_eq!(found, Some(v110.clone()));
    assert_eq!(registry::version(c, p.id, "1.10").await.unwrap(), None);
    assert_eq!(
        registry::artifact(c, &v110.sha256)
            .await
            .unwrap()
            .as_deref(),
        Some(same_bytes)
    );
    assert_eq!(
        registry::artifact(c, &registry::digest(b"never stored"))
            .await
            .unwrap(),
        None
    );
    assert!(registry::versions(c, p.id + 1000).await.unwrap().is_empty());
}

async fn bindings_repin_and_roll_back(backend: Backend) {
    let f = Fixture::new(backend).await;
    let mut conn = f.conn().await;
    let c = &mut *conn;
    let p = create(c, f.hq, "commission-standard", Hook::Commission).await;
    for (v, bytes) in [
        ("1.0.0", b"one".as_slice()),
        ("1.1.0", b"two"),
        ("1.2.0", b"three"),
    ] {
        add(c, p.id, v, bytes).await;
    }
    let config = json!({ "rate": 0.02, "区域": "华北", "上限": 5000 });
    let bound = registry::bind(
        c,
        f.dealer_a,
        Hook::Commission,
        &binding_to(p.id, "1.0.0", config.clone()),
        Some(3),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            bound.version,
            bound.pinned_version.as_str(),
            bound.previous_version.as_deref()
        ),
        (1, "1.0.0", None)
    );
    assert_eq!(bound.config, config);
    assert_eq!(bound.plugin_name, "commission-standard");
    assert_eq!(bound.hook, Hook::Commission);
    assert_eq!(bound.failure_policy, FailurePolicy::Fallback);
    assert_eq!(bound.updated_by, Some(3));
    let e = registry::rollback(c, f.dealer_a, Hook::Commission, None)
        .await
        .unwrap_err();
    assert_eq!(conflict_code(e), "nothing_to_roll_back");

    let mut repin = binding_to(p.id, "1.1.0", config.clone());
    repin.failure_policy = FailurePolicy::FailClosed;
    let repinned = registry::bind(c, f.dealer_a, Hook::Commission, &repin, Some(4))
        .await
        .unwrap();
    assert_eq!(repinned.id, bound.id);
    assert_eq!(
        (
            repinned.version,
            repinned.pinned_version.as_str(),
            repinned.previous_version.as_deref()
        ),
        (2, "1.1.0", Some("1.0.0"))
    );
    assert_eq!(repinned.failure_policy, FailurePolicy::FailClosed);
    // Binding the same version again keeps what a rollback returns to.
    let same = registry::bind(c, f.dealer_a, Hook::Commission, &repin, None)
        .await
        .unwrap();
    assert_eq!(
        (same.version, same.previous_version.as_deref()),
        (3, Some("1.0.0"))
    );

    let back = registry::rollback(c, f.dealer_a, Hook::Commission, Some(5))
        .await
        .unwrap();
    assert_eq!(
        (
            back.version,
            back.pinned_version.as_str(),
            back.previous_version.as_deref()
        ),
        (4, "1.0.0", Some("1.1.0"))
    );
    assert_eq!(back.updated_by, Some(5));
    let forth = registry::rollback(c, f.dealer_a, Hook::Commission, None)
        .await
        .unwrap();
    assert_eq!(
        (
            forth.pinned_version.as_str(),
            forth.previous_version.as_deref()
        ),
        ("1.1.0", Some("1.0.0"))
    );
    let patch = BindingPatch {
        pinned_version: Some("1.2.0".to_owned()),
        ..BindingPatch::default()
    };
    let patched =
        registry::update_binding(c, f.dealer_a, Hook::Commission, forth.version, &patch, None)
            .await
            .unwrap();
    assert_eq!(
        (
            patched.pinned_version.as_str(),
            patched.previous_version.as_deref()
        ),
        ("1.2.0", Some("1.1.0"))
    );
    let e = registry::rollback(c, f.dealer_b, Hook::Commission, None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");

    // Switching to another plugin forgets the previous version, which was the other plugin's.
    let other = create(c, f.dealer_a, "commission-own", Hook::Commission).await;
    add(c, other.id, "0.1.0", b"own").await;
    let switched = registry::bind(
        c,
        f.dealer_a,
        Hook::Commission,
        &binding_to(other.id, "0.1.0", json!({})),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        (
            switched.plugin_id,
            switched.plugin_name.as_str(),
            switched.previous_version
        ),
        (other.id, "commission-own", None)
    );

    // Refused bindings change nothing.
    let unknown_version = binding_to(p.id, "9.9.9", json!({}));
    let e = registry::bind(c, f.dealer_b, Hook::Commission, &unknown_version, None).await;
    assert_eq!(
        invalid(e.unwrap_err()),
        pair("pinned_version", "unknown_version")
    );
    let e = registry::bind(
        c,
        f.dealer_b,
        Hook::Loyalty,
        &binding_to(p.id, "1.0.0", json!({})),
        None,
    )
    .await;
    assert_eq!(invalid(e.unwrap_err()), pair("plugin_id", "wrong_hook"));
    let e = registry::bind(
        c,
        f.dealer_b,
        Hook::Commission,
        &binding_to(p.id + 1000, "1.0.0", json!({})),
        None,
    )
    .await;
    assert_eq!(invalid(e.unwrap_err()), pair("plugin_id", "unknown_plugin"));
    let e = registry::bind(
        c,
        f.dealer_b,
        Hook::Commission,
        &binding_to(p.id, "1.0.0", json!([1, 2])),
        None,
    )
    .await;
    assert_eq!(invalid(e.unwrap_err()), pair("config", "not_an_object"));
    assert_eq!(
        registry::binding(c, f.dealer_b, Hook::Commission)
            .await
            .unwrap(),
        None
    );

    registry::bind(
        c,
        f.dealer_b,
        Hook::Commission,
        &binding_to(p.id, "1.0.0", json!({})),
        None,
    )
    .await
    .unwrap();
    let hooks: Vec<Hook> = registry::bindings(c, f.dealer_a)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.hook)
        .collect();
    assert_eq!(hooks, [Hook::Commission]);
    assert!(
        registry::unbind(c, f.dealer_a, Hook::Commission)
            .await
            .unwrap()
    );
    assert!(
        !registry::unbind(c, f.dealer_a, Hook::Commission)
            .await
            .unwrap()
    );
    assert_eq!(
        registry::binding(c, f.dealer_a, Hook::Commission)
            .await
            .unwrap(),
        None
    );
    assert!(
        registry::binding(c, f.dealer_b, Hook::Commission)
            .await
            .unwrap()
            .is_some()
    );
}

async fn stale_binding_updates_are_refused(backend: Backend) {
    let f = Fixture::new(backend).await;
    let mut conn = f.conn().await;
    let c = &mut *conn;
    let p = create(c, f.hq, "commission-standard", Hook::Commission).await;
    add(c, p.id, "1.0.0", b"one").await;
    add(c, p.id, "1.1.0", b"two").await;
    let first = registry::bind(
        c,
        f.dealer_a,
        Hook::Commission,
        &binding_to(p.id, "1.0.0", json!({})),
        None,
    )
    .await
    .unwrap();
    let second = registry::bind(
        c,
        f.dealer_a,
        Hook::Commission,
        &binding_to(p.id, "1.1.0", json!({})),
        None,
    )
    .await
    .unwrap();
    assert_eq!(second.version, 2);

    let patch = BindingPatch {
        config: Some(json!({ "备注": "双十一活动" })),
        ..BindingPatch::default()
    };
    let e = registry::update_binding(c, f.dealer_a, Hook::Commission, first.version, &patch, None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::StaleVersion { current: 2 }), "{e:?}");
    assert_eq!(
        registry::binding(c, f.dealer_a, Hook::Commission)
            .await
            .unwrap(),
        Some(second.clone())
    );

    let updated = registry::update_binding(c, f.dealer_a, Hook::Commission, 2, &patch, Some(9))
        .await
        .unwrap();
    assert_eq!(
        (updated.version, updated.config.clone()),
        (3, json!({ "备注": "双十一活动" }))
    );
    assert_eq!(updated.pinned_version, "1.1.0");
    // A patch that changes nothing changes nothing, version included.
    let unchanged = registry::update_binding(c, f.dealer_a, Hook::Commission, 3, &patch, None)
        .await
        .unwrap();
    assert_eq!(unchanged, updated);
    let policy = BindingPatch {
        failure_policy: Some(FailurePolicy::FailClosed),
        ..BindingPatch::default()
    };
    let closed = registry::update_binding(c, f.dealer_a, Hook::Commission, 3, &policy, None)
        .await
        .unwrap();
    assert_eq!(
        (closed.version, closed.failure_policy),
        (4, FailurePolicy::FailClosed)
    );

    let bad = BindingPatch {
        pinned_version: Some("2.0.0".to_owned()),
        config: Some(json!("not an object")),
        failure_policy: None,
    };
    let e = registry::update_binding(c, f.dealer_a, Hook::Commission, 4, &bad, None)
        .await
        .unwrap_err();
    assert_eq!(
        invalid(e),
        [
            pair("pinned_version", "unknown_version"),
            pair("config", "not_an_object")
        ]
        .concat()
    );
    assert_eq!(
        registry::binding(c, f.dealer_a, Hook::Commission)
            .await
            .unwrap(),
        Some(closed)
    );
    let e = registry::update_binding(c, f.dealer_b, Hook::Commission, 1, &patch, None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
}

async fn kill_switches_stop_plugin_binding_and_dealer(backend: Backend) {
    let f = Fixture::new(backend).await;
    let mut conn = f.conn().await;
    let c = &mut *conn;
    let p = create(c, f.hq, "commission-standard", Hook::Commission).await;
    add(c, p.id, "1.0.0", b"one").await;
    registry::bind(
        c,
        f.dealer_a,
        Hook::Commission,
        &binding_to(p.id, "1.0.0", json!({})),
        None,
    )
    .await
    .unwrap();

    let killed = registry::set_plugin_killed(c, p.id, true, Some("佣金算错，紧急下线"))
        .await
        .unwrap();
    assert!(killed.killed && killed.killed_at.is_some());
    assert_eq!(killed.killed_reason.as_deref(), Some("佣金算错，紧急下线"));
    let active = registry::active(c, f.dealer_a, Hook::Commission)
        .await
        .unwrap()
        .unwrap();
    assert!(active.plugin.killed && !active.binding.killed);
    assert_eq!(active.dealer_kill, None);
    let revived = registry::set_plugin_killed(c, p.id, false, Some("ignored"))
        .await
        .unwrap();
    assert!(!revived.killed);
    assert_eq!((revived.killed_reason, revived.killed_at), (None, None));
    let e = registry::set_plugin_killed(c, p.id + 1000, true, None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { entity: "plugin" }), "{e:?}");

    let binding = registry::set_binding_killed(
        c,
        f.dealer_a,
        Hook::Commission,
        true,
        Some("门店投诉"),
        Some(2),
    )
    .await
    .unwrap();
    assert!(binding.killed);
    assert_eq!(
        (binding.killed_reason.as_deref(), binding.version),
        (Some("门店投诉"), 2)
    );
    let active = registry::active(c, f.dealer_a, Hook::Commission)
        .await
        .unwrap()
        .unwrap();
    assert!(active.binding.killed && !active.plugin.killed);
    let binding = registry::set_binding_killed(c, f.dealer_a, Hook::Commission, false, None, None)
        .await
        .unwrap();
    assert!(!binding.killed && binding.killed_reason.is_none());
    let e = registry::set_binding_killed(c, f.dealer_a, Hook::Loyalty, true, None, None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");

    assert_eq!(registry::dealer_kill(c, f.dealer_a).await.unwrap(), None);
    registry::set_dealer_killed(c, f.dealer_a, true, Some("门店停业整顿"))
        .await
        .unwrap();
    assert_eq!(
        registry::dealer_kill(c, f.dealer_a)
            .await
            .unwrap()
            .as_deref(),
        Some("门店停业整顿")
    );
    assert_eq!(registry::dealer_kill(c, f.dealer_b).await.unwrap(), None);
    let active = registry::active(c, f.dealer_a, Hook::Commission)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(active.dealer_kill.as_deref(), Some("门店停业整顿"));
    registry::set_dealer_killed(c, f.dealer_a, true, None)
        .await
        .unwrap();
    assert_eq!(
        registry::dealer_kill(c, f.dealer_a)
            .await
            .unwrap()
            .as_deref(),
        Some("")
    );
    registry::set_dealer_killed(c, f.dealer_a, false, Some("ignored"))
        .await
        .unwrap();
    assert_eq!(registry::dealer_kill(c, f.dealer_a).await.unwrap(), None);
    let active = registry::active(c, f.dealer_a, Hook::Commission)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(active.dealer_kill, None);
}

async fn active_joins_the_pinned_version(backend: Backend) {
    let f = Fixture::new(backend).await;
    let mut conn = f.conn().await;
    let c = &mut *conn;
    assert_eq!(
        registry::active(c, f.dealer_a, Hook::Commission)
            .await
            .unwrap(),
        None
    );
    let p = create(c, f.hq, "commission-standard", Hook::Commission).await;
    let v1 = add(c, p.id, "1.0.0", b"\0asm one").await;
    let v2 = add(c, p.id, "2.0.0", b"\0asm two").await;
    let grants = Grants {
        private_dir: true,
        outbound_hosts: vec!["api.insurer.example".to_owned()],
        credentials: vec!["insurer-api-key".to_owned()],
    };
    let granted = registry::set_grants(c, p.id, &grants).await.unwrap();
    assert_eq!(granted.grants, grants);
    let schema = json!({ "type": "object", "required": ["rate"] });
    let schemed = registry::set_config_schema(c, p.id, Some(&schema))
        .await
        .unwrap();
    assert_eq!(schemed.config_schema, Some(schema));
    let bad = Grants {
        outbound_hosts: vec![
            "https://api.insurer.example/v1".to_owned(),
            "ok.example".to_owned(),
        ],
        credentials: vec!["Bad Handle".to_owned()],
        private_dir: false,
    };
    let e = registry::set_grants(c, p.id, &bad).await.unwrap_err();
    assert_eq!(
        invalid(e),
        [
            pair("outbound_hosts[0]", "invalid_host"),
            pair("credentials[0]", "invalid_handle")
        ]
        .concat()
    );
    let e = registry::set_grants(c, p.id + 1000, &grants)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { entity: "plugin" }), "{e:?}");

    let config = json!({ "rate": 0.03, "团队": "销售一部" });
    registry::bind(
        c,
        f.dealer_a,
        Hook::Commission,
        &binding_to(p.id, "1.0.0", config.clone()),
        None,
    )
    .await
    .unwrap();
    let active = registry::active(c, f.dealer_a, Hook::Commission)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(active.artifact_sha256, v1.sha256);
    assert_eq!(active.wit_version, "0.1.0");
    assert_eq!(
        active.plugin,
        registry::plugin(c, p.id).await.unwrap().unwrap()
    );
    assert_eq!(active.plugin.grants, grants);
    assert_eq!(active.binding.config, config);
    assert_eq!(active.binding.pinned_version, "1.0.0");

    registry::bind(
        c,
        f.dealer_a,
        Hook::Commission,
        &binding_to(p.id, "2.0.0", config),
        None,
    )
    .await
    .unwrap();
    let active = registry::active(c, f.dealer_a, Hook::Commission)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(active.artifact_sha256, v2.sha256);
    assert_eq!(
        registry::artifact(c, &active.artifact_sha256)
            .await
            .unwrap()
            .as_deref(),
        Some(b"\0asm two".as_slice())
    );
    assert_eq!(
        registry::active(c, f.dealer_a, Hook::Loyalty)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        registry::active(c, f.dealer_b, Hook::Commission)
            .await
            .unwrap(),
        None
    );
}

async fn secrets_are_write_only(backend: Backend) {
    let f = Fixture::new(backend).await;
    let mut conn = f.conn().await;
    let c = &mut *conn;
    registry::put_secret(c, f.dealer_a, "insurer-api-key", "密钥-α-123")
        .await
        .unwrap();
    registry::put_secret(c, f.dealer_a, "crm.token", "t0k3n")
        .await
        .unwrap();
    assert_eq!(
        registry::secret(c, f.dealer_a, "insurer-api-key")
            .await
            .unwrap()
            .as_deref(),
        Some("密钥-α-123")
    );
    assert_eq!(
        registry::secret_handles(c, f.dealer_a).await.unwrap(),
        ["crm.token", "insurer-api-key"]
    );
    assert_eq!(
        registry::secret(c, f.dealer_b, "insurer-api-key")
            .await
            .unwrap(),
        None
    );
    assert!(
        registry::secret_handles(c, f.dealer_b)
            .await
            .unwrap()
            .is_empty()
    );

    registry::put_secret(c, f.dealer_a, "insurer-api-key", "rotated")
        .await
        .unwrap();
    assert_eq!(
        registry::secret(c, f.dealer_a, "insurer-api-key")
            .await
            .unwrap()
            .as_deref(),
        Some("rotated")
    );
    assert_eq!(
        f.count("SELECT COUNT(*) FROM plugin_secrets").await,
        2,
        "a replaced secret is one row"
    );

    let e = registry::put_secret(c, f.dealer_a, "Insurer Key", "")
        .await
        .unwrap_err();
    assert_eq!(
        invalid(e),
        [pair("handle", "invalid_handle"), pair("secret", "required")].concat()
    );
    assert!(
        registry::delete_secret(c, f.dealer_a, "crm.token")
            .await
            .unwrap()
    );
    assert!(
        !registry::delete_secret(c, f.dealer_a, "crm.token")
            .await
            .unwrap()
    );
    assert_eq!(
        registry::secret(c, f.dealer_a, "crm.token").await.unwrap(),
        None
    );
    assert_eq!(
        registry::secret_handles(c, f.dealer_a).await.unwrap(),
        ["insurer-api-key"]
    );
}

async fn stores_are_private_per_dealer_and_plugin(backend: Backend) {
    let f = Fixture::new(backend).await;
    let mut conn = f.conn().await;
    let c = &mut *conn;
    let p = create(c, f.hq, "loyalty-points", Hook::Loyalty).await;
    let q = create(c, f.hq, "loyalty-tiers", Hook::Loyalty).await;
    // Not UTF-8: 0xff never occurs in it, 0xc3 0x28 is a broken sequence.
    let binary = [0xff_u8, 0x00, 0xfe, 0x80, 0xc3, 0x28];
    assert_eq!(
        registry::store_usage(c, f.dealer_a, p.id).await.unwrap(),
        (0, 0)
    );

    registry::store_put(c, f.dealer_a, p.id, "state", &binary)
        .await
        .unwrap();
    registry::store_put(c, f.dealer_a, p.id, "计数:张", "四十二".as_bytes())
        .await
        .unwrap();
    assert_eq!(
        registry::store_get(c, f.dealer_a, p.id, "state")
            .await
            .unwrap()
            .as_deref(),
        Some(binary.as_slice())
    );
    assert_eq!(
        registry::store_get(c, f.dealer_a, p.id, "计数:张")
            .await
            .unwrap()
            .as_deref(),
        Some("四十二".as_bytes())
    );
    assert_eq!(
        registry::store_usage(c, f.dealer_a, p.id).await.unwrap(),
        (2, 6 + 9)
    );
    // Another dealer, another plugin: other stores.
    assert_eq!(
        registry::store_get(c, f.dealer_b, p.id, "state")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        registry::store_get(c, f.dealer_a, q.id, "state")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        registry::store_usage(c, f.dealer_b, p.id).await.unwrap(),
        (0, 0)
    );

    registry::store_put(c, f.dealer_a, p.id, "state", &[])
        .await
        .unwrap();
    assert_eq!(
        registry::store_get(c, f.dealer_a, p.id, "state")
            .await
            .unwrap(),
        Some(Vec::new())
    );
    assert_eq!(
        registry::store_usage(c, f.dealer_a, p.id).await.unwrap(),
        (2, 9)
    );
    assert!(
        registry::store_delete(c, f.dealer_a, p.id, "计数:张")
            .await
            .unwrap()
    );
    assert!(
        !registry::store_delete(c, f.dealer_a, p.id, "计数:张")
            .await
            .unwrap()
    );
    assert_eq!(
        registry::store_get(c, f.dealer_a, p.id, "计数:张")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        registry::store_usage(c, f.dealer_a, p.id).await.unwrap(),
        (1, 0)
    );
}

/// A run of `plugin` (or of the default) at `version` for dealer and hook.
fn run(dealer_id: i64, plugin: Option<&Plugin>, version: &str, hook: Hook) -> NewRun {
    NewRun {
        dealer_id,
        plugin_id: plugin.map(|p| p.id),
        plugin_name: plugin.map(|p| p.name.clone()),
        version: plugin.map(|_| version.to_owned()),
        hook,
        started_at: clock::to_datetime(at(0)),
        duration_us: 100,
        outcome: Outcome::Ok,
        memory_bytes: 1 << 20,
        fuel_used: 1000,
        error: None,
        input: json!({ "order": { "id": 1, "final_price": 19_990_000 } }),
        output: Some(json!({ "amount": 39_980 })),
        effects: Some(json!({ "logs": [{ "level": "info", "message": "客户 13812345678" }] })),
        now_ms: at(0),
        replay_of: None,
        source: Source::Live,
    }
}

/// 2025-06-01 00:00 UTC plus `minutes`, in ms.
fn at(minutes: i64) -> i64 {
    1_748_736_000_000 + minutes * 60_000
}

async fn runs_are_recorded_masked(backend: Backend) {
    let f = Fixture::new(backend).await;
    let mut conn = f.conn().await;
    let c = &mut *conn;
    let p = create(c, f.hq, "ticket-router", Hook::TicketRouting).await;
    let input = json!({
        "ticket": { "subject": "刹车异响，车主张三电话13812345678", "channel": "hotline" },
        "customer": { "id": 42, "name": "张三", "phone-masked": "138****5678", "tier": "金卡" },
    });
    let mut new = run(f.dealer_a, Some(&p), "1.0.0", Hook::TicketRouting);
    new.input = input.clone();
    new.output = Some(json!({ "team": "售后一组", "reason": "回访 13812345678" }));
    new.outcome = Outcome::PluginError;
    new.error = Some("无法识别的渠道".to_owned());
    new.started_at = clock::to_datetime(at(5));
    new.now_ms = 1_748_736_300_000;
    let id = runs::record(c, &new).await.unwrap();

    let listed = runs::list(c, &RunFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let stored = &listed[0];
    assert_eq!(stored.id, id);
    assert_eq!(
        stored.input,
        Some(json!({
            "ticket": { "subject": "刹车异响，车主张三电话138****5678", "channel": "hotline" },
            "customer": { "id": 42, "name": "张*", "phone-masked": "138****5678", "tier": "金卡" },
        }))
    );
    assert_eq!(
        stored.output,
        Some(json!({ "team": "售后一组", "reason": "回访 138****5678" }))
    );
    assert_eq!(stored.input_digest, runs::input_digest(&input));
    assert_ne!(
        stored.input_digest,
        runs::input_digest(stored.input.as_ref().unwrap())
    );
    assert_eq!(
        (stored.outcome, stored.source, stored.hook),
        (Outcome::PluginError, Source::Live, Hook::TicketRouting)
    );
    assert_eq!(stored.error.as_deref(), Some("无法识别的渠道"));
    assert_eq!(stored.started_at.timestamp_millis(), at(5));
    assert_eq!(stored.now_ms, 1_748_736_300_000);
    assert_eq!(
        (
            stored.plugin_id,
            stored.plugin_name.as_deref(),
            stored.version.as_deref()
        ),
        (Some(p.id), Some("ticket-router"), Some("1.0.0"))
    );
    assert_eq!(
        (stored.duration_us, stored.memory_bytes, stored.fuel_used),
        (100, 1 << 20, 1000)
    );

    let raw: (String, String, String) =
        sqlx::query_as("SELECT input, output, effects FROM plugin_runs")
            .fetch_one(f.t.db.pool())
            .await
            .unwrap();
    assert!(raw.2.contains("客户 138****5678"), "{}", raw.2);
    for text in [&raw.0, &raw.1, &raw.2] {
        assert!(
            !text.contains("13812345678") && !text.contains("\"张三\""),
            "{text}"
        );
    }

    // A built-in default run has no plugin.
    let default = run(f.dealer_a, None, "", Hook::TicketRouting);
    let default_id = runs::record(c, &default).await.unwrap();
    let listed = runs::list(c, &RunFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(listed[0].id, default_id);
    assert_eq!(
        (
            listed[0].plugin_id,
            listed[0].plugin_name.as_deref(),
            listed[0].version.as_deref()
        ),
        (None, None, None)
    );
}

async fn run_inputs_are_kept_for_recent_runs_only(backend: Backend) {
    let f = Fixture::new(backend).await;
    let p = {
        let mut conn = f.conn().await;
        create(&mut conn, f.hq, "commission-standard", Hook::Commission).await
    };
    let extra = 5;
    let mut tx = f.t.db.begin_write().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..RECENT_INPUTS + extra {
        let mut new = run(f.dealer_a, Some(&p), "1.0.0", Hook::Commission);
        new.input = json!({ "seq": i });
        ids.push(runs::record(&mut tx, &new).await.unwrap());
    }
    // Replaying the recorded runs keeps inputs of its own and does not push the live ones out.
    for id in &ids[ids.len() - 10..] {
        let mut replay = run(f.dealer_a, Some(&p), "1.1.0", Hook::Commission);
        replay.source = Source::Replay;
        replay.replay_of = Some(*id);
        runs::record(&mut tx, &replay).await.unwrap();
    }
    for _ in 0..3 {
        runs::record(&mut tx, &run(f.dealer_a, Some(&p), "1.0.0", Hook::Loyalty))
            .await
            .unwrap();
        runs::record(
            &mut tx,
            &run(f.dealer_b, Some(&p), "1.0.0", Hook::Commission),
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let kept = |dealer: i64, hook: &str, source: &str| {
        format!(
            "SELECT COUNT(*) FROM plugin_runs WHERE dealer_id = {dealer} AND hook = '{hook}' \
             AND source = '{source}' AND input IS NOT NULL AND output IS NOT NULL"
        )
    };
    assert_eq!(
        f.count(&kept(f.dealer_a, "commission", "live")).await,
        RECENT_INPUTS
    );
    assert_eq!(f.count(&kept(f.dealer_a, "commission", "replay")).await, 10);
    assert_eq!(f.count(&kept(f.dealer_a, "loyalty", "live")).await, 3);
    assert_eq!(f.count(&kept(f.dealer_b, "commission", "live")).await, 3);
    let trimmed = f
        .count(&format!(
            "SELECT COUNT(*) FROM plugin_runs WHERE input IS NULL AND output IS NULL \
             AND id <= {} AND input_digest <> ''",
            ids[extra as usize - 1]
        ))
        .await;
    assert_eq!(
        trimmed, extra,
        "the oldest runs lost their input, not their digest"
    );

    let mut conn = f.conn().await;
    let recorded = runs::recorded(&mut conn, f.dealer_a, Hook::Commission, 1000)
        .await
        .unwrap();
    assert_eq!(recorded.len(), RECENT_INPUTS as usize);
    assert_eq!(recorded[0].run_id, *ids.last().unwrap());
    assert_eq!(
        recorded[0].input,
        json!({ "seq": RECENT_INPUTS + extra - 1 })
    );
    assert_eq!(recorded.last().unwrap().input, json!({ "seq": extra }));
}

async fn stats_give_error_rates_and_percentiles(backend: Backend) {
    let f = Fixture::new(backend).await;
    let mut conn = f.conn().await;
    let c = &mut *conn;
    let p = create(c, f.hq, "commission-standard", Hook::Commission).await;
    let mut tx = f.t.db.begin_write().await.unwrap();
    for d in 1..=100 {
        let mut new = run(f.dealer_a, Some(&p), "1.0.0", Hook::Commission);
        // Recorded out of order: the percentiles must not depend on it.
        new.duration_us = (d * 37) % 101;
        new.outcome = match d % 20 {
            0 => Outcome::Trap,
            10 => Outcome::Timeout,
            _ => Outcome::Ok,
        };
        new.memory_bytes = d * 1000;
        runs::record(&mut tx, &new).await.unwrap();
    }
    for d in [5, 1, 9] {
        let mut new = run(f.dealer_a, Some(&p), "1.1.0", Hook::Commission);
        new.duration_us = d;
        runs::record(&mut tx, &new).await.unwrap();
        let mut default = run(f.dealer_b, None, "", Hook::Commission);
        default.duration_us = d * 10;
        runs::record(&mut tx, &default).await.unwrap();
    }
    tx.commit().await.unwrap();

    let filter = RunFilter {
        plugin_id: Some(p.id),
        ..RunFilter::default()
    };
    let stats = runs::stats(c, &filter).await.unwrap();
    assert_eq!(stats.len(), 2);
    let v1 = &stats[0];
    assert_eq!(
        (
            v1.plugin_id,
            v1.plugin_name.as_deref(),
            v1.version.as_deref(),
            v1.hook
        ),
        (
            Some(p.id),
            Some("commission-standard"),
            Some("1.0.0"),
            Hook::Commission
        )
    );
    assert_eq!((v1.count, v1.errors), (100, 10));
    assert!((v1.error_rate - 0.1).abs() < 1e-9, "{}", v1.error_rate);
    assert_eq!((v1.p50_us, v1.p99_us), (50, 99));
    assert_eq!(v1.max_memory_bytes, 100_000);
    let by_outcome: Vec<(&str, i64)> = v1
        .by_outcome
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(by_outcome, [("ok", 90), ("timeout", 5), ("trap", 5)]);
    let v11 = &stats[1];
    assert_eq!(
        (v11.version.as_deref(), v11.count, v11.errors),
        (Some("1.1.0"), 3, 0)
    );
    assert_eq!((v11.p50_us, v11.p99_us, v11.error_rate), (5, 9, 0.0));

    let all = runs::stats(c, &RunFilter::default()).await.unwrap();
    assert_eq!(all.len(), 3);
    let default = &all[0];
    assert_eq!(
        (default.plugin_id, default.version.as_deref(), default.count),
        (None, None, 3)
    );
    assert_eq!((default.p50_us, default.p99_us), (50, 90));

    let only_b = RunFilter {
        dealer_ids: Some(vec![f.dealer_b]),
        ..RunFilter::default()
    };
    assert_eq!(runs::stats(c, &only_b).await.unwrap().len(), 1);
    let nobody = RunFilter {
        dealer_ids: Some(Vec::new()),
        ..RunFilter::default()
    };
    assert!(runs::stats(c, &nobody).await.unwrap().is_empty());
    let errors_only = RunFilter {
        outcome: Some(Outcome::Trap),
        ..RunFilter::default()
    };
    let traps = runs::stats(c, &errors_only).await.unwrap();
    assert_eq!(
        (traps.len(), traps[0].count, traps[0].error_rate),
        (1, 5, 1.0)
    );
}

/// What a recorded run was, to compute which runs a filter should return.
struct Recorded {
    id: i64,
    run: NewRun,
}

impl Recorded {
    fn matches(&self, filter: &RunFilter) -> bool {
        let run = &self.run;
        let started = run.started_at.timestamp_millis();
        filter
            .dealer_ids
            .as_ref()
            .is_none_or(|d| d.contains(&run.dealer_id))
            && filter.plugin_id.is_none_or(|p| Some(p) == run.plugin_id)
            && filter.hook.is_none_or(|h| h == run.hook)
            && filter.outcome.is_none_or(|o| o == run.outcome)
            && filter.source.is_none_or(|s| s == run.source)
            && filter.since.is_none_or(|s| started >= s.timestamp_millis())
            && filter.until.is_none_or(|u| started < u.timestamp_millis())
    }
}

async fn lists_filter_and_page_newest_first(backend: Backend) {
    let f = Fixture::new(backend).await;
    let mut conn = f.conn().await;
    let c = &mut *conn;
    let p = create(c, f.hq, "commission-standard", Hook::Commission).await;
    let q = create(c, f.hq, "loyalty-points", Hook::Loyalty).await;
    let mut recorded = Vec::new();
    for i in 0..12_i64 {
        let (dealer, plugin, hook) = match i % 3 {
            0 => (f.dealer_a, &p, Hook::Commission),
            1 => (f.dealer_a, &q, Hook::Loyalty),
            _ => (f.dealer_b, &p, Hook::Commission),
        };
        let mut run = run(dealer, Some(plugin), "1.0.0", hook);
        run.started_at = clock::to_datetime(at(i));
        run.outcome = if i % 4 == 0 {
            Outcome::Timeout
        } else {
            Outcome::Ok
        };
        run.source = if i % 5 == 0 {
            Source::Evaluate
        } else {
            Source::Live
        };
        let id = runs::record(c, &run).await.unwrap();
        recorded.push(Recorded { id, run });
    }
    let filters = [
        RunFilter::default(),
        RunFilter {
            dealer_ids: Some(vec![f.dealer_a]),
            ..RunFilter::default()
        },
        RunFilter {
            dealer_ids: Some(vec![f.dealer_a, f.dealer_b]),
            hook: Some(Hook::Commission),
            ..RunFilter::default()
        },
        RunFilter {
            plugin_id: Some(q.id),
            ..RunFilter::default()
        },
        RunFilter {
            outcome: Some(Outcome::Timeout),
            ..RunFilter::default()
        },
        RunFilter {
            source: Some(Source::Evaluate),
            ..RunFilter::default()
        },
        RunFilter {
            since: Some(clock::to_datetime(at(3))),
            until: Some(clock::to_datetime(at(7))),
            ..RunFilter::default()
        },
        RunFilter {
            dealer_ids: Some(vec![f.dealer_b]),
            outcome: Some(Outcome::Timeout),
            ..RunFilter::default()
        },
    ];
    for filter in &filters {
        let want: Vec<i64> = recorded
            .iter()
            .rev()
            .filter(|r| r.matches(filter))
            .map(|r| r.id)
            .collect();
        assert!(!want.is_empty(), "{filter:?} should match some runs");
        let got: Vec<i64> = runs::list(c, filter, None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(got, want, "{filter:?}");

        // Pages of 2, each fetched with one extra row that tells there is a next page.
        let mut paged = Vec::new();
        let mut before = None;
        loop {
            let mut page: Vec<i64> = runs::list(c, filter, before, 2)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect();
            assert!(page.len() <= 3, "{page:?}");
            let more = page.len() > 2;
            page.truncate(2);
            before = page.last().copied();
            paged.extend(page);
            if !more {
                break;
            }
        }
        assert_eq!(paged, want, "paged {filter:?}");
    }
    let nobody = RunFilter {
        dealer_ids: Some(Vec::new()),
        ..RunFilter::default()
    };
    assert!(runs::list(c, &nobody, None, 100).await.unwrap().is_empty());
    let unknown = RunFilter {
        plugin_id: Some(q.id + 1000),
        ..RunFilter::default()
    };
    assert!(runs::list(c, &unknown, None, 100).await.unwrap().is_empty());
}

async fn recorded_inputs_are_recent_live_and_evaluated_runs(backend: Backend) {
    let f = Fixture::new(backend).await;
    let mut conn = f.conn().await;
    let c = &mut *conn;
    let p = create(c, f.hq, "approval-discount", Hook::Approval).await;
    let mut live = Vec::new();
    for i in 0..4_i64 {
        let mut new = run(f.dealer_a, Some(&p), "1.0.0", Hook::Approval);
        new.input = json!({ "discount": i * 1000, "销售": { "name": "李雷" } });
        new.output = (i != 2).then(|| json!({ "decision": "approve" }));
        new.outcome = if i == 2 { Outcome::Trap } else { Outcome::Ok };
        new.now_ms = 1_000 + i;
        let id = runs::record(c, &new).await.unwrap();
        live.push(id);
        let mut replay = run(f.dealer_a, Some(&p), "1.1.0", Hook::Approval);
        replay.source = Source::Replay;
        replay.replay_of = Some(id);
        let replay_id = runs::record(c, &replay).await.unwrap();
        let listed = runs::list(c, &RunFilter::default(), None, 1).await.unwrap();
        assert_eq!((listed[0].id, listed[0].replay_of), (replay_id, Some(id)));
        // A dealer's evaluation is a real decision too, so it is recorded for replay.
        let mut evaluate = new.clone();
        evaluate.source = Source::Evaluate;
        live.push(runs::record(c, &evaluate).await.unwrap());
    }
    runs::record(c, &run(f.dealer_b, Some(&p), "1.0.0", Hook::Approval))
        .await
        .unwrap();
    runs::record(c, &run(f.dealer_a, Some(&p), "1.0.0", Hook::Commission))
        .await
        .unwrap();

    let recorded = runs::recorded(c, f.dealer_a, Hook::Approval, 10)
        .await
        .unwrap();
    let ids: Vec<i64> = recorded.iter().map(|r| r.run_id).collect();
    assert_eq!(ids, live.iter().rev().copied().collect::<Vec<_>>());
    let newest = &recorded[0];
    assert_eq!(
        newest.input,
        json!({ "discount": 3000, "销售": { "name": "李*" } })
    );
    assert_eq!(newest.output, Some(json!({ "decision": "approve" })));
    assert_eq!((newest.outcome, newest.now_ms), (Outcome::Ok, 1_003));
    assert_eq!(
        (newest.plugin_id, newest.version.as_deref()),
        (Some(p.id), Some("1.0.0"))
    );
    // Newest first, each live run followed by its evaluation: the third entry is run 2's.
    let trapped = &recorded[2];
    assert_eq!(
        (trapped.outcome, trapped.output.clone()),
        (Outcome::Trap, None)
    );

    let two = runs::recorded(c, f.dealer_a, Hook::Approval, 2)
        .await
        .unwrap();
    assert_eq!(two.iter().map(|r| r.run_id).collect::<Vec<_>>(), ids[..2]);
    assert!(
        runs::recorded(c, f.dealer_b, Hook::Loyalty, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The URL of the test's own PostgreSQL database: the admin URL the tests use
/// (`DEALER_TEST_PG_URL`, as in the support crate) with the database name replaced.
async fn pg_url(f: &Fixture) -> String {
    let (name,): (String,) = sqlx::query_as("SELECT CAST(current_database() AS TEXT)")
        .fetch_one(f.t.db.pool())
        .await
        .unwrap();
    let admin = std::env::var("DEALER_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let (base, query) = admin.split_once('?').unwrap_or((&admin, ""));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{server}/{name}{query}")
}

async fn changes_are_announced_on_commit(backend: Backend) {
    let f = Fixture::new(backend).await;
    let mut listener = match backend {
        Backend::Postgres => {
            let mut listener = PgListener::connect(&pg_url(&f).await).await.unwrap();
            listener.listen(registry::CHANGE_CHANNEL).await.unwrap();
            Some(listener)
        }
        Backend::Sqlite => None,
    };
    let quiet = Duration::from_millis(300);

    // Rolled back: nothing is announced.
    let mut tx = f.t.db.begin_write().await.unwrap();
    create(&mut tx, f.hq, "commission-draft", Hook::Commission).await;
    tx.rollback().await.unwrap();
    if let Some(listener) = listener.as_mut() {
        let heard = tokio::time::timeout(quiet, listener.recv()).await;
        assert!(heard.is_err(), "a rolled-back change was announced");
    }

    // Announced inside the transaction, delivered on commit.
    let mut tx = f.t.db.begin_write().await.unwrap();
    let p = create(&mut tx, f.hq, "commission-standard", Hook::Commission).await;
    add(&mut tx, p.id, "1.0.0", b"one").await;
    if let Some(listener) = listener.as_mut() {
        let heard = tokio::time::timeout(quiet, listener.recv()).await;
        assert!(heard.is_err(), "announced before the commit");
    }
    tx.commit().await.unwrap();
    if let Some(listener) = listener.as_mut() {
        let heard = tokio::time::timeout(Duration::from_secs(5), listener.recv())
            .await
            .expect("announced on commit")
            .unwrap();
        assert_eq!(heard.channel(), registry::CHANGE_CHANNEL);
        // Notifications of one transaction with the same payload are folded into one.
        let again = tokio::time::timeout(quiet, listener.recv()).await;
        assert!(again.is_err(), "one commit, one notification");
    }

    // Each kind of mutation announces.
    let mut conn = f.conn().await;
    let c = &mut *conn;
    registry::bind(
        c,
        f.dealer_a,
        Hook::Commission,
        &binding_to(p.id, "1.0.0", json!({})),
        None,
    )
    .await
    .unwrap();
    registry::set_grants(c, p.id, &Grants::default())
        .await
        .unwrap();
    registry::set_plugin_killed(c, p.id, true, Some("停用"))
        .await
        .unwrap();
    registry::set_binding_killed(c, f.dealer_a, Hook::Commission, true, None, None)
        .await
        .unwrap();
    registry::set_dealer_killed(c, f.dealer_a, true, None)
        .await
        .unwrap();
    registry::unbind(c, f.dealer_a, Hook::Commission)
        .await
        .unwrap();
    registry::announce_change(c).await.unwrap();
    if let Some(listener) = listener.as_mut() {
        for i in 0..7 {
            tokio::time::timeout(Duration::from_secs(5), listener.recv())
                .await
                .unwrap_or_else(|_| panic!("notification {i} of 7"))
                .unwrap();
        }
    }
}

on_both_backends!(
    plugins_are_unique_per_owner,
    versions_are_unique_and_ordered_by_semver,
    bindings_repin_and_roll_back,
    stale_binding_updates_are_refused,
    kill_switches_stop_plugin_binding_and_dealer,
    active_joins_the_pinned_version,
    secrets_are_write_only,
    stores_are_private_per_dealer_and_plugin,
    runs_are_recorded_masked,
    run_inputs_are_kept_for_recent_runs_only,
    stats_give_error_rates_and_percentiles,
    lists_filter_and_page_newest_first,
    recorded_inputs_are_recent_live_and_evaluated_runs,
    changes_are_announced_on_commit,
);
