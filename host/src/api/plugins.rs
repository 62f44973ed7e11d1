//! The plugin registry over HTTP: plugins and their versions (upload, validate), each dealer's
//! bindings (enable, pin, roll back, configure), kill switches, credentials, evaluation,
//! replay of recorded runs against a candidate, and the run log.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::AnyConnection;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::{self, IfMatch, Json, Path, Query};
use super::pagination::{Page, PageParams};
use super::problem::Problem;
use crate::access::{Caller, Permission, Role};
use crate::audit::Actor;
use crate::error::{Error, Result};
use crate::plugins::catalogue::{self, NewRelease};
use crate::plugins::dispatch::{DecisionSource, ReplayReport};
use crate::plugins::hooks::{
    ApprovalHook, ChannelHook, CommissionHook, IntegrationHook, LoyaltyHook, RemindersHook,
    TicketRoutingHook,
};
use crate::plugins::manage;
use crate::plugins::registry::{
    self, Active, Binding, BindingPatch, Grants, NewBinding, NewPlugin, Plugin, PluginVersion,
};
use crate::plugins::runs::{self, Outcome, Run, RunFilter, Source, Stats};
use crate::plugins::runtime::{HookSpec, MAX_COMPONENT_BYTES};
use crate::plugins::{Hook, config_schema};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_plugins, create_plugin))
        .routes(routes!(get_plugin))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(upload_version))
                .layer(DefaultBodyLimit::max(MAX_COMPONENT_BYTES)),
        )
        .routes(routes!(delete_version))
        .routes(routes!(set_grants))
        .routes(routes!(plugin_kill_switch))
        .routes(routes!(list_bindings))
        .routes(routes!(bind, update_binding, unbind))
        .routes(routes!(rollback))
        .routes(routes!(binding_kill_switch))
        .routes(routes!(dealer_kill_switch))
        .routes(routes!(evaluate))
        .routes(routes!(replay))
        .routes(routes!(list_secrets))
        .routes(routes!(put_secret, delete_secret))
        .routes(routes!(list_runs))
        .routes(routes!(run_stats))
}

/// The unit owning a plugin, and whether it is HQ (the catalogue).
struct Owner {
    catalogue: bool,
    path: String,
}

async fn owner(conn: &mut AnyConnection, plugin: &Plugin) -> Result<Owner> {
    let (kind, path) = crate::network::kind_and_path(conn, plugin.owner_org_id)
        .await?
        .ok_or(Error::NotFound { entity: "plugin" })?;
    Ok(Owner {
        catalogue: kind == "hq",
        path,
    })
}

/// A plugin the caller may see: the catalogue's, or one owned inside the caller's scope.
async fn visible_plugin(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: i64,
) -> Result<(Plugin, Owner)> {
    let plugin = registry::plugin(conn, id)
        .await?
        .ok_or(Error::NotFound { entity: "plugin" })?;
    let owner = owner(conn, &plugin).await?;
    if owner.catalogue || caller.sees_path(&owner.path) {
        Ok((plugin, owner))
    } else {
        Err(Error::NotFound { entity: "plugin" })
    }
}

/// A plugin the caller may change: HQ admins change any; a dealer admin their dealer's own.
async fn managed_plugin(conn: &mut AnyConnection, caller: &Caller, id: i64) -> Result<Plugin> {
    caller.require(Permission::ManagePlugins)?;
    let (plugin, owner) = visible_plugin(conn, caller, id).await?;
    if caller.role == Role::HqAdmin || (!owner.catalogue && plugin.owner_org_id == caller.org_id) {
        Ok(plugin)
    } else {
        Err(Error::Forbidden(
            "only HQ changes a catalogue plugin; a dealer changes its own plugins".into(),
        ))
    }
}

/// The dealer `dealer_id`, if the caller's scope includes it; with `write`, if the caller
/// may also manage its plugins (its dealer admin, or an HQ admin).
async fn dealer_in_scope(
    conn: &mut AnyConnection,
    caller: &Caller,
    dealer_id: i64,
    write: bool,
) -> Result<()> {
    let Some((kind, path)) = crate::network::kind_and_path(conn, dealer_id).await? else {
        return Err(Error::NotFound { entity: "dealer" });
    };
    if kind != "dealer" || !caller.sees_path(&path) {
        return Err(Error::NotFound { entity: "dealer" });
    }
    if write {
        caller.require(Permission::ManagePlugins)?;
        if caller.role != Role::HqAdmin && caller.org_id != dealer_id {
            return Err(Error::Forbidden(
                "a dealer admin manages the plugins of their own dealer only".into(),
            ));
        }
    }
    Ok(())
}

fn parse_hook(text: &str) -> Result<Hook> {
    Hook::parse(text).ok_or_else(|| Error::BadRequest {
        code: "unknown_hook",
        message: format!(
            "`{text}` is not an extension point; use one of {}",
            Hook::ALL.map(Hook::as_str).join(", ")
        ),
    })
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlugin {
    /// Lowercase letters, digits and `-`; unique for its owner.
    pub name: String,
    pub hook: Hook,
    #[serde(default)]
    pub description: String,
    /// HQ: leave out for the catalogue, or name a dealer. A dealer admin leaves it out.
    pub owner_org_id: Option<i64>,
    /// The schema every dealer configuration of it must satisfy (see the registry docs).
    pub config_schema: Option<Value>,
}

/// The catalogue and the plugins of the dealers in the caller's scope.
#[utoipa::path(get, path = "/plugins", tag = "plugins",
    responses((status = 200, body = Vec<Plugin>), (status = 401, body = Problem)))]
async fn list_plugins(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<Plugin>>> {
    caller.require(Permission::ReadPlugins)?;
    let mut conn = state.db.pool().acquire().await?;
    let mut owners: Vec<i64> = crate::network::list_units(&mut conn, &caller)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    owners.extend(crate::network::hq_ids(&mut conn).await?);
    owners.sort_unstable();
    owners.dedup();
    Ok(Json(registry::list_plugins(&mut conn, &owners).await?))
}

/// Registers a plugin (no version yet): HQ into the catalogue or for a dealer, a dealer
/// admin for their own dealer.
#[utoipa::path(post, path = "/plugins", tag = "plugins", request_body = CreatePlugin,
    responses((status = 201, body = Plugin), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_plugin(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<CreatePlugin>,
) -> Result<Response> {
    caller.require(Permission::ManagePlugins)?;
    if let Some(schema) = &new.config_schema {
        config_schema::check_schema(schema)?;
    }
    let mut tx = state.db.begin_write().await?;
    let owner_org_id = match (caller.role, new.owner_org_id) {
        (Role::HqAdmin, Some(dealer)) => {
            dealer_in_scope(&mut tx, &caller, dealer, true).await?;
            dealer
        }
        (Role::HqAdmin, None) => caller.org_id,
        (_, Some(other)) if other != caller.org_id => {
            return Err(Error::invalid(
                "owner_org_id",
                "not_your_dealer",
                "a dealer admin registers plugins for their own dealer; leave owner_org_id out",
            ));
        }
        _ => caller.org_id,
    };
    let plugin = manage::create_plugin(
        &mut tx,
        Actor::Staff(&caller),
        &NewPlugin {
            owner_org_id,
            name: new.name,
            hook: new.hook,
            description: new.description,
            config_schema: new.config_schema,
        },
    )
    .await?;
    tx.commit().await?;
    state.plugins.invalidate();
    Ok(created(format!("/api/v1/plugins/{}", plugin.id), &plugin))
}

fn created<T: Serialize>(location: String, body: &T) -> Response {
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(body),
    )
        .into_response()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PluginDetail {
    #[serde(flatten)]
    pub plugin: Plugin,
    /// Newest first.
    pub versions: Vec<PluginVersion>,
}

/// A plugin with its versions.
#[utoipa::path(get, path = "/plugins/{id}", tag = "plugins", params(("id" = i64, Path)),
    responses((status = 200, body = PluginDetail), (status = 404, body = Problem)))]
async fn get_plugin(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<PluginDetail>> {
    caller.require(Permission::ReadPlugins)?;
    let mut conn = state.db.pool().acquire().await?;
    let (plugin, _) = visible_plugin(&mut conn, &caller, id).await?;
    let versions = registry::versions(&mut conn, id).await?;
    Ok(Json(PluginDetail { plugin, versions }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// The semantic version of this build, e.g. `1.2.0`.
    pub version: String,
    #[serde(default)]
    pub notes: String,
}

/// Uploads a version: the body is the component (`application/wasm`, at most 40 MiB). It is
/// validated (a component, exporting this plugin's extension point at a supported WIT
/// version, importing only what the host provides, which is checked before compiling),
/// compiled and cached; anything else is refused with 422 and nothing is stored. The
/// plugins of one owner (HQ's catalogue, or a dealer) keep at most 50 versions and 256 MiB of
/// components: over that, 422 `plugin_quota` (delete versions no binding needs to make room).
#[utoipa::path(post, path = "/plugins/{id}/versions", tag = "plugins",
    params(("id" = i64, Path), UploadParams),
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 201, body = PluginVersion), (status = 409, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
async fn upload_version(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Query(params): Query<UploadParams>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !matches!(
        content_type,
        "application/wasm" | "application/octet-stream"
    ) {
        return Err(Error::BadRequest {
            code: "unsupported_media_type",
            message: "send the component as the body with Content-Type: application/wasm".into(),
        });
    }
    let version = semver::Version::parse(params.version.trim()).map_err(|e| {
        Error::invalid(
            "version",
            "invalid_version",
            format!(
                "`{}` is not a semantic version such as 1.2.0: {e}",
                params.version
            ),
        )
    })?;
    let mut conn = state.db.pool().acquire().await?;
    let plugin = managed_plugin(&mut conn, &caller, id).await?;
    drop(conn);
    let release = NewRelease {
        version,
        notes: params.notes,
        bytes: body.to_vec(),
    };
    let added = catalogue::publish_version(
        &state.db,
        state.plugins.runtime(),
        Actor::Staff(&caller),
        &plugin,
        release,
    )
    .await?;
    state.plugins.invalidate();
    Ok(created(
        format!("/api/v1/plugins/{id}/versions/{}", added.version),
        &added,
    ))
}

/// Deletes a version that no binding pins nor keeps as the version a rollback returns to
/// (409 `version_in_use` otherwise), with its component when no other version shares it,
/// freeing its room in the owner's quota. Who may upload a version may delete one.
#[utoipa::path(delete, path = "/plugins/{id}/versions/{version}", tag = "plugins",
    params(("id" = i64, Path), ("version" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
async fn delete_version(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, version)): Path<(i64, String)>,
) -> Result<StatusCode> {
    let mut tx = state.db.begin_write().await?;
    let plugin = managed_plugin(&mut tx, &caller, id).await?;
    let deleted = manage::delete_version(&mut tx, &caller, &plugin, &version).await?;
    tx.commit().await?;
    state.plugins.invalidate();
    if deleted.artifact_deleted {
        let runtime = state.plugins.runtime().clone();
        let sha256 = deleted.version.sha256;
        let forgotten = tokio::task::spawn_blocking(move || runtime.forget(&sha256))
            .await
            .expect("forgetting a component does not panic");
        if let Err(error) = forgotten {
            tracing::warn!(%error, "cannot remove a deleted plugin's cached artifact");
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Sets what the plugin may do beyond computing: a private directory, outbound HTTPS to
/// listed hosts, and the credential handles the host may attach. HQ only.
#[utoipa::path(put, path = "/plugins/{id}/grants", tag = "plugins", params(("id" = i64, Path)),
    request_body = Grants,
    responses((status = 200, body = Plugin), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn set_grants(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(grants): Json<Grants>,
) -> Result<Json<Plugin>> {
    if caller.role != Role::HqAdmin {
        return Err(Error::Forbidden(
            "only HQ grants a plugin files, network or credentials".into(),
        ));
    }
    let mut tx = state.db.begin_write().await?;
    visible_plugin(&mut tx, &caller, id).await?;
    let plugin = manage::set_grants(&mut tx, &caller, id, &grants).await?;
    tx.commit().await?;
    state.plugins.invalidate();
    Ok(Json(plugin))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KillSwitch {
    /// `true` stops it at once (the hook falls back to the built-in default); `false`
    /// revives it.
    pub killed: bool,
    pub reason: Option<String>,
}

/// The kill switch of a plugin everywhere: while on, every dealer's binding of it falls back.
#[utoipa::path(put, path = "/plugins/{id}/kill-switch", tag = "plugins", params(("id" = i64, Path)),
    request_body = KillSwitch,
    responses((status = 200, body = Plugin), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn plugin_kill_switch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(switch): Json<KillSwitch>,
) -> Result<Json<Plugin>> {
    let mut tx = state.db.begin_write().await?;
    managed_plugin(&mut tx, &caller, id).await?;
    let plugin = manage::set_plugin_killed(
        &mut tx,
        &caller,
        id,
        switch.killed,
        switch.reason.as_deref(),
    )
    .await?;
    tx.commit().await?;
    state.plugins.invalidate();
    Ok(Json(plugin))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DealerPlugins {
    pub dealer_id: i64,
    /// The dealer-wide kill switch: while on, every hook uses its built-in default.
    pub killed: bool,
    pub killed_reason: Option<String>,
    pub bindings: Vec<Binding>,
}

/// The dealer's plugins, one binding per extension point.
#[utoipa::path(get, path = "/dealers/{dealer_id}/plugins", tag = "plugins",
    params(("dealer_id" = i64, Path)),
    responses((status = 200, body = DealerPlugins), (status = 404, body = Problem)))]
async fn list_bindings(
    State(state): State<AppState>,
    caller: Caller,
    Path(dealer_id): Path<i64>,
) -> Result<Json<DealerPlugins>> {
    caller.require(Permission::ReadPlugins)?;
    let mut conn = state.db.pool().acquire().await?;
    dealer_in_scope(&mut conn, &caller, dealer_id, false).await?;
    let kill = registry::dealer_kill(&mut conn, dealer_id).await?;
    Ok(Json(DealerPlugins {
        dealer_id,
        killed: kill.is_some(),
        killed_reason: kill.filter(|r| !r.is_empty()),
        bindings: registry::bindings(&mut conn, dealer_id).await?,
    }))
}

/// Checks that the dealer may use the plugin (the catalogue's or its own) and that `config`
/// satisfies the plugin's schema.
async fn check_use(
    conn: &mut AnyConnection,
    caller: &Caller,
    dealer_id: i64,
    plugin_id: i64,
    config: Option<&Value>,
) -> Result<Plugin> {
    let (plugin, owner) = visible_plugin(conn, caller, plugin_id)
        .await
        .map_err(|_| Error::invalid("plugin_id", "unknown_plugin", "no such plugin"))?;
    if !owner.catalogue && plugin.owner_org_id != dealer_id {
        return Err(Error::invalid(
            "plugin_id",
            "unknown_plugin",
            "the plugin belongs to another dealer",
        ));
    }
    if let Some(config) = config {
        config_schema::check(plugin.config_schema.as_ref(), config)?;
    }
    Ok(plugin)
}

/// Enables a plugin for one of the dealer's extension points and pins a version (replacing
/// what was bound; a changed version becomes `previous_version`, for a rollback). The
/// configuration is checked against the plugin's schema before it is saved.
#[utoipa::path(put, path = "/dealers/{dealer_id}/plugins/{hook}", tag = "plugins",
    params(("dealer_id" = i64, Path), ("hook" = String, Path)), request_body = NewBinding,
    responses((status = 200, body = Binding), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn bind(
    State(state): State<AppState>,
    caller: Caller,
    Path((dealer_id, hook)): Path<(i64, String)>,
    Json(new): Json<NewBinding>,
) -> Result<Response> {
    let hook = parse_hook(&hook)?;
    let mut tx = state.db.begin_write().await?;
    dealer_in_scope(&mut tx, &caller, dealer_id, true).await?;
    check_use(
        &mut tx,
        &caller,
        dealer_id,
        new.plugin_id,
        Some(&new.config),
    )
    .await?;
    let binding = manage::bind(&mut tx, Actor::Staff(&caller), dealer_id, hook, &new).await?;
    tx.commit().await?;
    state.plugins.invalidate();
    Ok(extract::tagged(&binding))
}

/// Re-pins, reconfigures or changes the failure policy of a binding. Send the ETag you read.
#[utoipa::path(patch, path = "/dealers/{dealer_id}/plugins/{hook}", tag = "plugins",
    params(("dealer_id" = i64, Path), ("hook" = String, Path), ("If-Match" = String, Header)),
    request_body = BindingPatch,
    responses((status = 200, body = Binding), (status = 412, body = Problem), (status = 422, body = Problem), (status = 428, body = Problem)))]
async fn update_binding(
    State(state): State<AppState>,
    caller: Caller,
    Path((dealer_id, hook)): Path<(i64, String)>,
    IfMatch(expected): IfMatch,
    Json(patch): Json<BindingPatch>,
) -> Result<Response> {
    let hook = parse_hook(&hook)?;
    let mut tx = state.db.begin_write().await?;
    dealer_in_scope(&mut tx, &caller, dealer_id, true).await?;
    let current = registry::binding(&mut tx, dealer_id, hook)
        .await?
        .ok_or(Error::NotFound {
            entity: "plugin binding",
        })?;
    check_use(
        &mut tx,
        &caller,
        dealer_id,
        current.plugin_id,
        patch.config.as_ref(),
    )
    .await?;
    let binding =
        manage::update_binding(&mut tx, &caller, dealer_id, hook, expected, &patch).await?;
    tx.commit().await?;
    state.plugins.invalidate();
    Ok(extract::tagged(&binding))
}

/// Disables the dealer's plugin for the hook: the built-in default decides again.
#[utoipa::path(delete, path = "/dealers/{dealer_id}/plugins/{hook}", tag = "plugins",
    params(("dealer_id" = i64, Path), ("hook" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
async fn unbind(
    State(state): State<AppState>,
    caller: Caller,
    Path((dealer_id, hook)): Path<(i64, String)>,
) -> Result<StatusCode> {
    let hook = parse_hook(&hook)?;
    let mut tx = state.db.begin_write().await?;
    dealer_in_scope(&mut tx, &caller, dealer_id, true).await?;
    manage::unbind(&mut tx, &caller, dealer_id, hook).await?;
    tx.commit().await?;
    state.plugins.invalidate();
    Ok(StatusCode::NO_CONTENT)
}

/// Returns the binding to the version pinned before the current one, in one call.
#[utoipa::path(post, path = "/dealers/{dealer_id}/plugins/{hook}/rollback", tag = "plugins",
    params(("dealer_id" = i64, Path), ("hook" = String, Path)),
    responses((status = 200, body = Binding), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    Path((dealer_id, hook)): Path<(i64, String)>,
) -> Result<Response> {
    let hook = parse_hook(&hook)?;
    let mut tx = state.db.begin_write().await?;
    dealer_in_scope(&mut tx, &caller, dealer_id, true).await?;
    let binding = manage::rollback(&mut tx, &caller, dealer_id, hook).await?;
    tx.commit().await?;
    state.plugins.invalidate();
    Ok(extract::tagged(&binding))
}

/// The kill switch of one dealer's hook: while on, the hook uses the built-in default.
#[utoipa::path(put, path = "/dealers/{dealer_id}/plugins/{hook}/kill-switch", tag = "plugins",
    params(("dealer_id" = i64, Path), ("hook" = String, Path)), request_body = KillSwitch,
    responses((status = 200, body = Binding), (status = 404, body = Problem)))]
async fn binding_kill_switch(
    State(state): State<AppState>,
    caller: Caller,
    Path((dealer_id, hook)): Path<(i64, String)>,
    Json(switch): Json<KillSwitch>,
) -> Result<Response> {
    let hook = parse_hook(&hook)?;
    let mut tx = state.db.begin_write().await?;
    dealer_in_scope(&mut tx, &caller, dealer_id, true).await?;
    let binding = manage::set_binding_killed(
        &mut tx,
        &caller,
        dealer_id,
        hook,
        switch.killed,
        switch.reason.as_deref(),
    )
    .await?;
    tx.commit().await?;
    state.plugins.invalidate();
    Ok(extract::tagged(&binding))
}

/// The dealer-wide kill switch: while on, every hook of the dealer uses its built-in default.
#[utoipa::path(put, path = "/dealers/{dealer_id}/plugin-kill-switch", tag = "plugins",
    params(("dealer_id" = i64, Path)), request_body = KillSwitch,
    responses((status = 200, body = DealerPlugins), (status = 404, body = Problem)))]
async fn dealer_kill_switch(
    State(state): State<AppState>,
    caller: Caller,
    Path(dealer_id): Path<i64>,
    Json(switch): Json<KillSwitch>,
) -> Result<Json<DealerPlugins>> {
    let mut tx = state.db.begin_write().await?;
    dealer_in_scope(&mut tx, &caller, dealer_id, true).await?;
    manage::set_dealer_killed(
        &mut tx,
        &caller,
        dealer_id,
        switch.killed,
        switch.reason.as_deref(),
    )
    .await?;
    let bindings = registry::bindings(&mut tx, dealer_id).await?;
    tx.commit().await?;
    state.plugins.invalidate();
    Ok(Json(DealerPlugins {
        dealer_id,
        killed: switch.killed,
        killed_reason: switch.reason.filter(|_| switch.killed),
        bindings,
    }))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateRequest {
    /// The hook's input, as in the WIT record (field names in snake_case; enum cases and
    /// variants as the WIT spells them, e.g. `"finance-plan"`, `{"auto-approve": "..."}`; the
    /// Rust spelling of earlier versions, `"FinancePlan"`, is still read).
    pub input: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EvaluateResponse {
    /// The hook's output, cases spelled as the WIT spells them (`{"steps": [...]}`).
    pub output: Value,
    pub source: DecisionSource,
    pub run_id: Option<i64>,
    /// Logs, events, notifications and partner calls of the run.
    pub effects: Value,
}

/// Decides one input with the dealer's plugin for the hook, exactly as the domain would (the
/// built-in default when none is enabled); the run is recorded with source `evaluate`.
#[utoipa::path(post, path = "/dealers/{dealer_id}/hooks/{hook}/evaluate", tag = "plugins",
    params(("dealer_id" = i64, Path), ("hook" = String, Path)), request_body = EvaluateRequest,
    responses((status = 200, body = EvaluateResponse), (status = 422, body = Problem), (status = 424, body = Problem)))]
async fn evaluate(
    State(state): State<AppState>,
    caller: Caller,
    Path((dealer_id, hook)): Path<(i64, String)>,
    Json(request): Json<EvaluateRequest>,
) -> Result<Json<EvaluateResponse>> {
    let hook = parse_hook(&hook)?;
    let mut conn = state.db.pool().acquire().await?;
    dealer_in_scope(&mut conn, &caller, dealer_id, true).await?;
    drop(conn);
    let response = match hook {
        Hook::Commission => evaluate_hook::<CommissionHook>(&state, dealer_id, request.input).await,
        Hook::Approval => evaluate_hook::<ApprovalHook>(&state, dealer_id, request.input).await,
        Hook::Loyalty => evaluate_hook::<LoyaltyHook>(&state, dealer_id, request.input).await,
        Hook::TicketRouting => {
            evaluate_hook::<TicketRoutingHook>(&state, dealer_id, request.input).await
        }
        Hook::Reminders => evaluate_hook::<RemindersHook>(&state, dealer_id, request.input).await,
        Hook::Integration => {
            evaluate_hook::<IntegrationHook>(&state, dealer_id, request.input).await
        }
        Hook::Channel => evaluate_hook::<ChannelHook>(&state, dealer_id, request.input).await,
    }?;
    Ok(Json(response))
}

async fn evaluate_hook<H: HookSpec>(
    state: &AppState,
    dealer_id: i64,
    input: Value,
) -> Result<EvaluateResponse> {
    let input: H::Input = serde_json::from_value(input).map_err(|e| {
        Error::invalid(
            "input",
            "invalid_input",
            format!("not a {} input: {e}", H::HOOK),
        )
    })?;
    let decision = state
        .plugins
        .call::<H>(dealer_id, input, Source::Evaluate)
        .await?;
    Ok(EvaluateResponse {
        output: serde_json::to_value(&decision.output).unwrap_or_default(),
        source: decision.source,
        run_id: decision.run_id,
        effects: serde_json::to_value(&decision.effects).unwrap_or_default(),
    })
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// The candidate plugin; default: the plugin bound now.
    pub plugin_id: Option<i64>,
    /// The candidate version.
    pub version: String,
    /// The configuration to run it with; default: the binding's.
    pub config: Option<Value>,
    /// How many of the most recent recorded runs to replay, 1 to 200 (default 50).
    pub limit: Option<i64>,
}

/// Replays the dealer's most recent recorded inputs for the hook against a candidate version
/// and compares its decisions with those recorded, before the dealer pins it. Nothing is
/// applied and no partner is called.
#[utoipa::path(post, path = "/dealers/{dealer_id}/plugins/{hook}/replay", tag = "plugins",
    params(("dealer_id" = i64, Path), ("hook" = String, Path)), request_body = ReplayRequest,
    responses((status = 200, body = ReplayReport), (status = 422, body = Problem)))]
async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    Path((dealer_id, hook)): Path<(i64, String)>,
    Json(request): Json<ReplayRequest>,
) -> Result<Json<ReplayReport>> {
    let hook = parse_hook(&hook)?;
    let limit = request.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Error::invalid(
            "limit",
            "invalid_limit",
            "limit is 1 to 200",
        ));
    }
    let mut conn = state.db.pool().acquire().await?;
    dealer_in_scope(&mut conn, &caller, dealer_id, true).await?;
    let bound = registry::binding(&mut conn, dealer_id, hook).await?;
    let plugin_id = match (request.plugin_id, &bound) {
        (Some(id), _) => id,
        (None, Some(binding)) => binding.plugin_id,
        (None, None) => {
            return Err(Error::invalid(
                "plugin_id",
                "required",
                "no plugin is bound for this hook: name the candidate's plugin_id",
            ));
        }
    };
    let config = request
        .config
        .or_else(|| bound.as_ref().map(|b| b.config.clone()))
        .unwrap_or_else(|| Value::Object(Default::default()));
    let plugin = check_use(&mut conn, &caller, dealer_id, plugin_id, Some(&config)).await?;
    if plugin.hook != hook {
        return Err(Error::invalid(
            "plugin_id",
            "wrong_hook",
            format!("the plugin implements {}, not {hook}", plugin.hook),
        ));
    }
    let version = registry::version(&mut conn, plugin_id, &request.version)
        .await?
        .ok_or_else(|| {
            Error::invalid(
                "version",
                "unknown_version",
                format!("the plugin has no version {:?}", request.version),
            )
        })?;
    drop(conn);
    let candidate = Active {
        binding: Binding {
            id: 0,
            dealer_id,
            hook,
            plugin_id,
            plugin_name: plugin.name.clone(),
            pinned_version: version.version.clone(),
            previous_version: None,
            config,
            failure_policy: Default::default(),
            killed: false,
            killed_reason: None,
            version: 0,
            updated_at: chrono::Utc::now(),
            updated_by: Some(caller.key_id),
        },
        artifact_sha256: version.sha256,
        wit_version: version.wit_version,
        dealer_kill: None,
        plugin,
    };
    Ok(Json(
        state.plugins.replay(dealer_id, &candidate, limit).await?,
    ))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretValue {
    /// Never returned, never logged; the host attaches it to granted partner calls.
    pub secret: String,
}

/// The dealer's credential handles (never their secrets).
#[utoipa::path(get, path = "/dealers/{dealer_id}/plugin-secrets", tag = "plugins",
    params(("dealer_id" = i64, Path)),
    responses((status = 200, body = Vec<String>), (status = 404, body = Problem)))]
async fn list_secrets(
    State(state): State<AppState>,
    caller: Caller,
    Path(dealer_id): Path<i64>,
) -> Result<Json<Vec<String>>> {
    let mut conn = state.db.pool().acquire().await?;
    dealer_in_scope(&mut conn, &caller, dealer_id, true).await?;
    Ok(Json(registry::secret_handles(&mut conn, dealer_id).await?))
}

/// Stores (or replaces) the secret behind a credential handle, e.g. `insurer-api-key`.
#[utoipa::path(put, path = "/dealers/{dealer_id}/plugin-secrets/{handle}", tag = "plugins",
    params(("dealer_id" = i64, Path), ("handle" = String, Path)), request_body = SecretValue,
    responses((status = 204), (status = 422, body = Problem)))]
async fn put_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path((dealer_id, handle)): Path<(i64, String)>,
    Json(value): Json<SecretValue>,
) -> Result<StatusCode> {
    let mut tx = state.db.begin_write().await?;
    dealer_in_scope(&mut tx, &caller, dealer_id, true).await?;
    manage::put_secret(&mut tx, &caller, dealer_id, &handle, &value.secret).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a credential.
#[utoipa::path(delete, path = "/dealers/{dealer_id}/plugin-secrets/{handle}", tag = "plugins",
    params(("dealer_id" = i64, Path), ("handle" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path((dealer_id, handle)): Path<(i64, String)>,
) -> Result<StatusCode> {
    let mut tx = state.db.begin_write().await?;
    dealer_in_scope(&mut tx, &caller, dealer_id, true).await?;
    manage::delete_secret(&mut tx, &caller, dealer_id, &handle).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// One dealer; default: every dealer in the caller's scope.
    pub dealer_id: Option<i64>,
    pub plugin_id: Option<i64>,
    pub hook: Option<String>,
    pub outcome: Option<String>,
    /// `live`, `evaluate` or `replay`.
    pub source: Option<String>,
    /// RFC 3339 instants bounding `started_at`.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

/// The dealers whose runs the caller may read, narrowed to `dealer_id` when given.
async fn run_filter(conn: &mut AnyConnection, caller: &Caller, q: &RunQuery) -> Result<RunFilter> {
    caller.require(Permission::ReadPluginRuns)?;
    let dealer_ids = match q.dealer_id {
        Some(dealer) => {
            dealer_in_scope(conn, caller, dealer, false).await?;
            Some(vec![dealer])
        }
        None if caller.role == Role::HqAdmin || caller.role == Role::HqAnalyst => None,
        None => Some(
            crate::network::list_units(conn, caller)
                .await?
                .into_iter()
                .filter(|u| u.kind == "dealer")
                .map(|u| u.id)
                .collect(),
        ),
    };
    Ok(RunFilter {
        dealer_ids,
        plugin_id: q.plugin_id,
        hook: q.hook.as_deref().map(parse_hook).transpose()?,
        outcome: q
            .outcome
            .as_deref()
            .map(|o| {
                Outcome::parse(o).ok_or_else(|| Error::BadRequest {
                    code: "unknown_outcome",
                    message: format!("`{o}` is not a run outcome"),
                })
            })
            .transpose()?,
        source: q
            .source
            .as_deref()
            .map(|s| {
                Source::parse(s).ok_or_else(|| Error::BadRequest {
                    code: "unknown_source",
                    message: format!("`{s}` is not live, evaluate or replay"),
                })
            })
            .transpose()?,
        since: q.since,
        until: q.until,
    })
}

/// The plugin run log, newest first: every invocation with its outcome, duration, memory,
/// fuel, error, and (for recent runs) the masked input and the output.
#[utoipa::path(get, path = "/plugin-runs", tag = "plugins", params(RunQuery, PageParams),
    responses((status = 200, body = Page<Run>), (status = 400, body = Problem)))]
async fn list_runs(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<RunQuery>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Run>>> {
    let limit = page.limit()?;
    let mut conn = state.db.pool().acquire().await?;
    let filter = run_filter(&mut conn, &caller, &query).await?;
    let rows = runs::list(&mut conn, &filter, page.before_id()?, limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |r| r.id)))
}

/// Per plugin version and hook: run count, error rate, outcomes, p50/p99 duration, peak memory.
#[utoipa::path(get, path = "/plugin-runs/stats", tag = "plugins", params(RunQuery),
    responses((status = 200, body = Vec<Stats>), (status = 400, body = Problem)))]
async fn run_stats(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<RunQuery>,
) -> Result<Json<Vec<Stats>>> {
    let mut conn = state.db.pool().acquire().await?;
    let filter = run_filter(&mut conn, &caller, &query).await?;
    Ok(Json(runs::stats(&mut conn, &filter).await?))
}
