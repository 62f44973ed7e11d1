//! `push`, `enable`, `pin` and `rollback`: the host's HTTP API (`/api/v1`).

use anyhow::{Context, Result, anyhow, bail};
use dealer_plugin_runtime::Hook;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, IF_MATCH};
use reqwest::{Method, RequestBuilder, Response};
use serde::Deserialize;
use serde_json::{Value, json};

/// The host's API with one key.
pub struct Client {
    base: String,
    key: String,
    http: reqwest::Client,
}

/// A plugin as `GET /plugins` lists it.
#[derive(Debug, Deserialize)]
pub struct Plugin {
    pub id: i64,
    pub name: String,
    pub hook: Hook,
}

/// A dealer's binding of a hook.
#[derive(Debug, Deserialize)]
pub struct Binding {
    pub hook: Hook,
    pub plugin_id: i64,
    pub plugin_name: String,
    pub pinned_version: String,
    pub previous_version: Option<String>,
    pub version: i64,
}

#[derive(Deserialize)]
struct DealerPlugins {
    bindings: Vec<Binding>,
}

impl Client {
    /// `host` is the server (`https://dealer.example`) or its API (`.../api/v1`).
    pub fn new(host: &str, key: &str) -> Result<Client> {
        let host = host.trim_end_matches('/');
        if !host.starts_with("http://") && !host.starts_with("https://") {
            bail!("--host `{host}` is not a URL: pass it as http(s)://host[:port]");
        }
        if key.trim().is_empty() {
            bail!("--key is empty: pass an API key (`dealer-host keys create` makes one)");
        }
        let base = if host.ends_with("/api/v1") {
            host.to_owned()
        } else {
            format!("{host}/api/v1")
        };
        Ok(Client {
            base,
            key: key.to_owned(),
            http: reqwest::Client::new(),
        })
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header(AUTHORIZATION, format!("Bearer {}", self.key))
    }

    /// Sends `request`; a failure carries the server's `detail` and `errors`.
    async fn send(&self, what: &str, request: RequestBuilder) -> Result<Response> {
        let response = request.send().await.with_context(|| {
            format!(
                "{what}: cannot reach {}: check --host and that the host is running",
                self.base
            )
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let problem: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let mut message = format!(
            "{what}: the host answered {status}: {}",
            problem["detail"].as_str().unwrap_or(&body)
        );
        for error in problem["errors"].as_array().into_iter().flatten() {
            message.push_str(&format!("\n  - {error}"));
        }
        message.push_str(match status.as_u16() {
            401 => "\nfix: pass a valid API key with --key",
            403 => "\nfix: use a key whose role may manage plugins for that dealer",
            404 => "\nfix: check --dealer and that the key's unit includes that dealer",
            409 => "\nfix: versions are immutable: pass --version with a new one, or raise the version in Cargo.toml",
            412 => "\nfix: the binding changed meanwhile; run the command again",
            413 | 415 | 422 => "\nfix: correct what the host names above and retry",
            _ => "",
        });
        Err(anyhow!(message))
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        request: RequestBuilder,
    ) -> Result<T> {
        self.send(what, request)
            .await?
            .json()
            .await
            .with_context(|| {
                format!("{what}: the host's answer is not what this CLI expects: update it")
            })
    }

    /// The plugins visible to the key.
    pub async fn plugins(&self) -> Result<Vec<Plugin>> {
        self.json("listing plugins", self.request(Method::GET, "/plugins"))
            .await
    }

    /// The plugin named `name` visible to the key.
    pub async fn plugin_named(&self, name: &str) -> Result<Option<Plugin>> {
        Ok(self
            .plugins()
            .await?
            .into_iter()
            .find(|plugin| plugin.name == name))
    }

    /// Creates the plugin `name` unless the key sees one, then uploads `wasm` as `version`;
    /// returns the plugin.
    pub async fn push(
        &self,
        name: &str,
        hook: Hook,
        description: &str,
        config_schema: Option<Value>,
        version: &str,
        wasm: Vec<u8>,
    ) -> Result<Plugin> {
        let plugin = match self.plugin_named(name).await? {
            Some(plugin) if plugin.hook != hook => bail!(
                "the plugin `{name}` (id {}) serves {}, this component {hook}: pass --name with another name",
                plugin.id,
                plugin.hook
            ),
            Some(plugin) => plugin,
            None => {
                let body = json!({
                    "name": name, "hook": hook, "description": description,
                    "config_schema": config_schema,
                });
                self.json(
                    "creating the plugin",
                    self.request(Method::POST, "/plugins").json(&body),
                )
                .await?
            }
        };
        self.send(
            &format!("uploading version {version}"),
            self.request(Method::POST, &format!("/plugins/{}/versions", plugin.id))
                .query(&[("version", version)])
                .header(CONTENT_TYPE, "application/wasm")
                .body(wasm),
        )
        .await?;
        Ok(plugin)
    }

    /// Binds the plugin `name` to the dealer's hook at `version`.
    pub async fn enable(
        &self,
        dealer: i64,
        name: &str,
        version: &str,
        config: Value,
        policy: &str,
    ) -> Result<Binding> {
        let plugin = self.plugin_named(name).await?.with_context(|| {
            format!(
                "no plugin `{name}` is visible to this key: push it first (`dealer-plugin push`)"
            )
        })?;
        let body = json!({
            "plugin_id": plugin.id, "pinned_version": version,
            "config": config, "failure_policy": policy,
        });
        self.json(
            "enabling the plugin",
            self.request(
                Method::PUT,
                &format!("/dealers/{dealer}/plugins/{}", plugin.hook),
            )
            .json(&body),
        )
        .await
    }

    /// The dealer's binding of `hook`.
    pub async fn binding(&self, dealer: i64, hook: Hook) -> Result<Binding> {
        let listed: DealerPlugins = self
            .json(
                "reading the dealer's plugins",
                self.request(Method::GET, &format!("/dealers/{dealer}/plugins")),
            )
            .await?;
        listed
            .bindings
            .into_iter()
            .find(|binding| binding.hook == hook)
            .with_context(|| {
                format!("dealer {dealer} has no plugin for {hook}: enable one first (`dealer-plugin enable`)")
            })
    }

    /// Re-pins the dealer's `hook` to `version`, with the binding's version as If-Match.
    pub async fn pin(&self, dealer: i64, hook: Hook, version: &str) -> Result<Binding> {
        let current = self.binding(dealer, hook).await?;
        self.json(
            &format!("pinning version {version}"),
            self.request(Method::PATCH, &format!("/dealers/{dealer}/plugins/{hook}"))
                .header(IF_MATCH, format!("\"{}\"", current.version))
                .json(&json!({"pinned_version": version})),
        )
        .await
    }

    /// Returns the dealer's `hook` to the version pinned before.
    pub async fn rollback(&self, dealer: i64, hook: Hook) -> Result<Binding> {
        self.json(
            "rolling back",
            self.request(
                Method::POST,
                &format!("/dealers/{dealer}/plugins/{hook}/rollback"),
            ),
        )
        .await
    }
}
