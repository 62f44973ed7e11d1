//! `dealer-plugin new`: a plugin crate that builds on its own, with a working hook, its
//! configuration schema, a fixture and a README.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use dealer_plugin_runtime::Hook;
use serde_json::Value;

use crate::templates::template;

/// The SDK of the repository this CLI was built in.
pub fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}

/// Checks a plugin name the way the registry does: lowercase letters, digits and `-`, 2 to 63
/// characters, starting with a letter.
pub fn check_name(name: &str) -> Result<()> {
    let valid = (2..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        bail!(
            "`{name}` is not a plugin name: use 2 to 63 lowercase letters, digits and `-`, \
             starting with a letter and not ending with `-` (e.g. `two-percent`)"
        );
    }
    Ok(())
}

/// Parses `--hook`, naming the choices when it is not an extension point.
pub fn parse_hook(text: &str) -> Result<Hook> {
    Hook::parse(text).with_context(|| {
        format!(
            "`{text}` is not an extension point: pass --hook with one of {}",
            Hook::ALL.map(Hook::as_str).join(", ")
        )
    })
}

/// Writes the plugin crate `name` under `parent`; returns its directory.
pub fn new_plugin(name: &str, hook: Hook, parent: &Path, sdk: &Path) -> Result<PathBuf> {
    check_name(name)?;
    let template = template(hook);
    let sdk = sdk.canonicalize().with_context(|| {
        format!(
            "the SDK is not at {}: pass --sdk with the path of the `sdk` directory of the \
             platform repository",
            sdk.display()
        )
    })?;
    if !sdk.join("Cargo.toml").is_file() {
        bail!(
            "{} has no Cargo.toml: pass --sdk with the path of the `sdk` directory of the \
             platform repository",
            sdk.display()
        );
    }
    let dir = parent.join(name);
    if dir.exists() {
        bail!(
            "{} already exists: choose another name, or pass --dir with another parent directory",
            dir.display()
        );
    }
    let files = [
        ("Cargo.toml", cargo_toml(name, &sdk)),
        (".cargo/config.toml", CARGO_CONFIG.to_owned()),
        (".gitignore", "/target\n".to_owned()),
        ("src/lib.rs", template.lib.to_owned()),
        ("config.schema.json", pretty(&template.schema)?),
        ("fixtures/example.json", pretty(&template.fixture)?),
        ("README.md", readme(name, hook)),
    ];
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(folder) = path.parent() {
            fs::create_dir_all(folder).with_context(|| {
                format!("cannot create {}: check its permissions", folder.display())
            })?;
        }
        fs::write(&path, text)
            .with_context(|| format!("cannot write {}: check its permissions", path.display()))?;
    }
    Ok(dir)
}

fn pretty(value: &Value) -> Result<String> {
    Ok(serde_json::to_string_pretty(value)? + "\n")
}

fn cargo_toml(name: &str, sdk: &Path) -> String {
    let sdk = sdk.display().to_string().replace('\\', "/");
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
dealer-sdk = {{ path = "{sdk}" }}

# A workspace of its own, so the plugin builds wherever it lives.
[workspace]

# Small over fast; a panic traps.
[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
debug = false
strip = true
panic = "abort"
"#
    )
}

const CARGO_CONFIG: &str = r#"[build]
target = "wasm32-wasip2"

# A 64 KiB shadow stack instead of Rust's default 1 MiB: the plugin's linear memory stays a few
# pages, which the host resets between calls quickly.
[target.wasm32-wasip2]
rustflags = ["-C", "link-arg=-zstack-size=65536"]
"#;

fn readme(name: &str, hook: Hook) -> String {
    format!(
        r#"# {name}

A dealer platform plugin for the `{hook}` extension point, built with `dealer-sdk`.

- `src/lib.rs`: the decision as a pure function, exported with `dealer_sdk::export_{world}!`.
- `config.schema.json`: the settings a dealer may give it (checked by the host on enable).
- `fixtures/*.json`: `{{"config": ..., "input": ..., "expect": ...}}`, the hook's input and the
  output expected, in the host's JSON format.

```sh
dealer-plugin build                 # -> the component, validated like the host does
dealer-plugin test                  # runs every fixture through the component
dealer-plugin push --host https://dealer.example --key dk_...
dealer-plugin enable --host ... --key ... --dealer <id> --name {name}
```

From Rust tests: `dealer_plugin::harness::run_fixture(wasm, fixture)`.
"#,
        world = hook.as_str().replace('-', "_"),
    )
}
