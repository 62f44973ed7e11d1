//! Publishing plugin versions, whoever publishes: [`publish_version`] is the one place a
//! version is validated, stored and audited, for a key over the API (`api::plugins`) and for
//! the operator's command line. The command line also fills HQ's catalogue from built
//! components ([`publish`]; the demo does this for the first-party plugins) and enables a
//! dealer's hook ([`enable`]).

use std::sync::Arc;

use serde_json::Value;

use super::registry::{
    self, Binding, FailurePolicy, NewBinding, NewPlugin, NewVersion, Plugin, PluginVersion,
};
use super::runtime::Runtime;
use super::{Hook, config_schema, manage};
use crate::Db;
use crate::audit::{self, Actor, Entry};
use crate::error::{Error, Result};

/// A version of an existing plugin to publish.
pub struct NewRelease {
    pub version: semver::Version,
    pub notes: String,
    pub bytes: Vec<u8>,
}

/// Validates `release` (a component exporting `plugin`'s extension point at a supported WIT
/// version, importing only what the host provides: compiled and cached) and stores it as a
/// version of `plugin`, with its audit entry, in one transaction. A refused component is 422
/// and nothing is stored; so is one over the owner's quota, before it is compiled.
pub async fn publish_version(
    db: &Db,
    runtime: &Arc<Runtime>,
    publisher: Actor<'_>,
    plugin: &Plugin,
    release: NewRelease,
) -> Result<PluginVersion> {
    let mut conn = db.pool().acquire().await?;
    let sha256 = registry::digest(&release.bytes);
    registry::check_quota(&mut conn, plugin.owner_org_id, &sha256, release.bytes.len()).await?;
    drop(conn);
    let loaded = runtime.inspect_async(release.bytes.clone()).await?;
    if loaded.info.hook != plugin.hook {
        return Err(Error::invalid(
            "body",
            "wrong_hook",
            format!(
                "the component implements the {} extension point; plugin {} is for {}",
                loaded.info.hook, plugin.name, plugin.hook
            ),
        ));
    }
    let mut tx = db.begin_write().await?;
    let added = registry::add_version(
        &mut tx,
        plugin.id,
        &NewVersion {
            version: release.version,
            wit_version: loaded.info.wit_version.to_string(),
            sha256: loaded.info.sha256.clone(),
            bytes: &release.bytes,
            uploaded_by: publisher.key_id(),
            notes: release.notes,
        },
    )
    .await?;
    let entry = Entry::ok("upload", "plugin", plugin.id, plugin.owner_org_id)
        .with_detail(serde_json::json!({ "version": added.version, "sha256": added.sha256 }));
    audit::record_as(&mut tx, &publisher, entry).await?;
    tx.commit().await?;
    Ok(added)
}

/// A built component to publish into HQ's catalogue.
pub struct Publish<'a> {
    pub name: &'a str,
    pub version: semver::Version,
    pub description: &'a str,
    pub config_schema: Option<Value>,
    pub bytes: Vec<u8>,
}

/// What publishing did.
pub enum Published {
    /// The version was added (and the plugin registered, if it was new).
    Added(Plugin, Hook),
    /// The catalogue already holds this version with the same bytes.
    Unchanged(Plugin),
}

/// Validates the component and publishes it as `version` of catalogue plugin `name`,
/// registering the plugin on first publication. Publishing the same bytes again changes
/// nothing; other bytes under an existing version number are refused.
pub async fn publish(db: &Db, runtime: &Arc<Runtime>, new: Publish<'_>) -> Result<Published> {
    if let Some(schema) = &new.config_schema {
        config_schema::check_schema(schema)?;
    }
    let loaded = runtime.inspect_async(new.bytes.clone()).await?;
    let mut tx = db.begin_write().await?;
    let hq = *crate::network::hq_ids(&mut tx)
        .await?
        .first()
        .ok_or(Error::NotFound { entity: "HQ unit" })?;
    let plugin = match registry::plugin_by_name(&mut tx, hq, new.name).await? {
        Some(plugin) if plugin.hook != loaded.info.hook => {
            return Err(Error::invalid(
                "wasm",
                "wrong_hook",
                format!(
                    "the component implements {}; catalogue plugin {} is for {}",
                    loaded.info.hook, plugin.name, plugin.hook
                ),
            ));
        }
        Some(plugin) => plugin,
        None => {
            manage::create_plugin(
                &mut tx,
                Actor::COMMAND_LINE,
                &NewPlugin {
                    owner_org_id: hq,
                    name: new.name.to_owned(),
                    hook: loaded.info.hook,
                    description: new.description.to_owned(),
                    config_schema: new.config_schema.clone(),
                },
            )
            .await?
        }
    };
    let number = new.version.to_string();
    if let Some(existing) = registry::version(&mut tx, plugin.id, &number).await? {
        return if existing.sha256 == loaded.info.sha256 {
            Ok(Published::Unchanged(plugin))
        } else {
            Err(Error::Conflict {
                code: "version_exists",
                message: format!(
                    "{}@{number} is already published with other bytes; publish a new version",
                    plugin.name
                ),
            })
        };
    }
    let plugin = match new.config_schema {
        Some(schema) if plugin.config_schema.as_ref() != Some(&schema) => {
            registry::set_config_schema(&mut tx, plugin.id, Some(&schema)).await?
        }
        _ => plugin,
    };
    tx.commit().await?;
    let release = NewRelease {
        version: new.version,
        notes: String::new(),
        bytes: new.bytes,
    };
    publish_version(db, runtime, Actor::COMMAND_LINE, &plugin, release).await?;
    Ok(Published::Added(plugin, loaded.info.hook))
}

/// Enables catalogue plugin `name` for the dealer with code `dealer_code`, pinned to
/// `version` (default: the newest), with `config` checked against the plugin's schema.
pub async fn enable(
    db: &Db,
    dealer_code: &str,
    name: &str,
    version: Option<&str>,
    config: Value,
) -> Result<Binding> {
    let mut tx = db.begin_write().await?;
    let dealer = crate::network::find_by_code(&mut tx, dealer_code)
        .await?
        .filter(|unit| unit.kind == "dealer")
        .ok_or(Error::NotFound { entity: "dealer" })?;
    let hq = *crate::network::hq_ids(&mut tx)
        .await?
        .first()
        .ok_or(Error::NotFound { entity: "HQ unit" })?;
    let plugin = registry::plugin_by_name(&mut tx, hq, name)
        .await?
        .ok_or(Error::NotFound { entity: "plugin" })?;
    let pinned = match version {
        Some(version) => version.to_owned(),
        None => registry::versions(&mut tx, plugin.id)
            .await?
            .first()
            .map(|v| v.version.clone())
            .ok_or(Error::NotFound {
                entity: "plugin version",
            })?,
    };
    config_schema::check(plugin.config_schema.as_ref(), &config)?;
    let binding = manage::bind(
        &mut tx,
        Actor::COMMAND_LINE,
        dealer.id,
        plugin.hook,
        &NewBinding {
            plugin_id: plugin.id,
            pinned_version: pinned,
            config,
            failure_policy: FailurePolicy::Fallback,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(binding)
}
