//! The use cases that change the plugin registry — plugins, grants, kill switches, a dealer's
//! bindings and secrets — each writing its audit entry on the connection it is given (the
//! caller's transaction), whoever calls it: the API (`api::plugins`) or the operator's command
//! line ([`super::catalogue`]). [`super::registry`] stores; it does not audit. Who may do what
//! (scope, role) is checked by the caller before.

use sqlx::AnyConnection;

use super::Hook;
use super::registry::{
    self, Binding, BindingPatch, DeletedVersion, Grants, NewBinding, NewPlugin, Plugin,
};
use crate::access::Caller;
use crate::audit::{self, Actor, Entry};
use crate::error::{Error, Result};

/// The audit action of a kill switch turned on or off.
fn kill_action(killed: bool) -> &'static str {
    if killed { "kill" } else { "revive" }
}

/// Registers a plugin (no version yet).
pub async fn create_plugin(
    conn: &mut AnyConnection,
    by: Actor<'_>,
    new: &NewPlugin,
) -> Result<Plugin> {
    let plugin = registry::create_plugin(conn, new).await?;
    audit::record_as(
        conn,
        &by,
        Entry::ok("create", "plugin", plugin.id, new.owner_org_id),
    )
    .await?;
    Ok(plugin)
}

/// Replaces what the plugin may do beyond computing.
pub async fn set_grants(
    conn: &mut AnyConnection,
    caller: &Caller,
    plugin_id: i64,
    grants: &Grants,
) -> Result<Plugin> {
    let plugin = registry::set_grants(conn, plugin_id, grants).await?;
    audit::record(
        conn,
        caller,
        Entry::ok("grant", "plugin", plugin_id, plugin.owner_org_id)
            .with_detail(serde_json::to_value(grants).unwrap_or_default()),
    )
    .await?;
    Ok(plugin)
}

/// Turns the plugin's kill switch (everywhere) on, with a reason, or off.
pub async fn set_plugin_killed(
    conn: &mut AnyConnection,
    caller: &Caller,
    plugin_id: i64,
    killed: bool,
    reason: Option<&str>,
) -> Result<Plugin> {
    let plugin = registry::set_plugin_killed(conn, plugin_id, killed, reason).await?;
    audit::record(
        conn,
        caller,
        Entry::ok(
            kill_action(killed),
            "plugin",
            plugin_id,
            plugin.owner_org_id,
        ),
    )
    .await?;
    Ok(plugin)
}

/// Deletes a version of the plugin that no binding pins or keeps for a rollback (see
/// [`registry::delete_version`]), freeing its room in the owner's quota.
pub async fn delete_version(
    conn: &mut AnyConnection,
    caller: &Caller,
    plugin: &Plugin,
    version: &str,
) -> Result<DeletedVersion> {
    let deleted = registry::delete_version(conn, plugin.id, version).await?;
    audit::record(
        conn,
        caller,
        Entry::ok("delete_version", "plugin", plugin.id, plugin.owner_org_id).with_detail(
            serde_json::json!({
                "version": deleted.version.version, "sha256": deleted.version.sha256,
                "artifact_deleted": deleted.artifact_deleted,
            }),
        ),
    )
    .await?;
    Ok(deleted)
}

async fn record_binding(
    conn: &mut AnyConnection,
    by: Actor<'_>,
    binding: &Binding,
    action: &str,
) -> Result<()> {
    audit::record_as(
        conn,
        &by,
        Entry::ok(action, "plugin_binding", binding.id, binding.dealer_id).with_detail(
            serde_json::json!({
                "hook": binding.hook, "plugin_id": binding.plugin_id,
                "pinned_version": binding.pinned_version, "killed": binding.killed,
            }),
        ),
    )
    .await
}

/// Enables a plugin for the dealer's `hook` at a pinned version (see [`registry::bind`]).
pub async fn bind(
    conn: &mut AnyConnection,
    by: Actor<'_>,
    dealer_id: i64,
    hook: Hook,
    new: &NewBinding,
) -> Result<Binding> {
    let binding = registry::bind(conn, dealer_id, hook, new, by.key_id()).await?;
    record_binding(conn, by, &binding, "bind").await?;
    Ok(binding)
}

/// Applies `patch` to the dealer's binding for `hook` if it is still at version `expected`.
pub async fn update_binding(
    conn: &mut AnyConnection,
    caller: &Caller,
    dealer_id: i64,
    hook: Hook,
    expected: i64,
    patch: &BindingPatch,
) -> Result<Binding> {
    let binding =
        registry::update_binding(conn, dealer_id, hook, expected, patch, Some(caller.key_id))
            .await?;
    record_binding(conn, Actor::Staff(caller), &binding, "update").await?;
    Ok(binding)
}

/// Removes the dealer's binding for `hook` (404 if there is none).
pub async fn unbind(
    conn: &mut AnyConnection,
    caller: &Caller,
    dealer_id: i64,
    hook: Hook,
) -> Result<()> {
    let binding = registry::binding(conn, dealer_id, hook)
        .await?
        .ok_or(Error::NotFound {
            entity: "plugin binding",
        })?;
    registry::unbind(conn, dealer_id, hook).await?;
    record_binding(conn, Actor::Staff(caller), &binding, "unbind").await
}

/// Returns the dealer's binding for `hook` to the version pinned before the current one.
pub async fn rollback(
    conn: &mut AnyConnection,
    caller: &Caller,
    dealer_id: i64,
    hook: Hook,
) -> Result<Binding> {
    let binding = registry::rollback(conn, dealer_id, hook, Some(caller.key_id)).await?;
    record_binding(conn, Actor::Staff(caller), &binding, "rollback").await?;
    Ok(binding)
}

/// Turns the kill switch of the dealer's binding for `hook` on, with a reason, or off.
pub async fn set_binding_killed(
    conn: &mut AnyConnection,
    caller: &Caller,
    dealer_id: i64,
    hook: Hook,
    killed: bool,
    reason: Option<&str>,
) -> Result<Binding> {
    let binding =
        registry::set_binding_killed(conn, dealer_id, hook, killed, reason, Some(caller.key_id))
            .await?;
    record_binding(conn, Actor::Staff(caller), &binding, kill_action(killed)).await?;
    Ok(binding)
}

/// Turns the dealer-wide kill switch on, with a reason, or off.
pub async fn set_dealer_killed(
    conn: &mut AnyConnection,
    caller: &Caller,
    dealer_id: i64,
    killed: bool,
    reason: Option<&str>,
) -> Result<()> {
    registry::set_dealer_killed(conn, dealer_id, killed, reason).await?;
    audit::record(
        conn,
        caller,
        Entry::ok(kill_action(killed), "dealer_plugins", dealer_id, dealer_id),
    )
    .await
}

/// Stores (or replaces) the dealer's secret under `handle`; the entry names the handle only.
pub async fn put_secret(
    conn: &mut AnyConnection,
    caller: &Caller,
    dealer_id: i64,
    handle: &str,
    secret: &str,
) -> Result<()> {
    registry::put_secret(conn, dealer_id, handle, secret).await?;
    audit::record(
        conn,
        caller,
        Entry::ok("set_secret", "plugin_secret", dealer_id, dealer_id)
            .with_detail(serde_json::json!({ "handle": handle })),
    )
    .await
}

/// Deletes the dealer's secret under `handle` (404 if there is none).
pub async fn delete_secret(
    conn: &mut AnyConnection,
    caller: &Caller,
    dealer_id: i64,
    handle: &str,
) -> Result<()> {
    if !registry::delete_secret(conn, dealer_id, handle).await? {
        return Err(Error::NotFound { entity: "secret" });
    }
    audit::record(
        conn,
        caller,
        Entry::ok("delete_secret", "plugin_secret", dealer_id, dealer_id)
            .with_detail(serde_json::json!({ "handle": handle })),
    )
    .await
}
