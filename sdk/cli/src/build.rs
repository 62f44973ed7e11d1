//! `dealer-plugin build`: the plugin compiled into a component and validated like the host
//! validates an upload.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use dealer_plugin_runtime::runtime::{Limits, Loaded, Runtime};
use serde::Deserialize;

/// The target every plugin is built for.
pub const TARGET: &str = "wasm32-wasip2";

/// The plugin crate in a directory, as `cargo metadata` describes it.
#[derive(Debug, Clone)]
pub struct Crate {
    pub dir: PathBuf,
    pub name: String,
    pub version: String,
    /// Where `cargo build --release --target wasm32-wasip2` puts the component.
    pub wasm: PathBuf,
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    target_directory: PathBuf,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: String,
    manifest_path: PathBuf,
}

/// Reads the plugin crate in `dir`.
pub fn plugin_crate(dir: &Path) -> Result<Crate> {
    let dir = dir.canonicalize().with_context(|| {
        format!(
            "{} does not exist: pass --dir with the plugin's directory",
            dir.display()
        )
    })?;
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "{} has no Cargo.toml: pass --dir with the plugin's directory (made by `dealer-plugin new`)",
            dir.display()
        );
    }
    let output = Command::new("cargo")
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(&dir)
        .output()
        .context("cannot run cargo: install Rust with rustup (https://rustup.rs)")?;
    if !output.status.success() {
        bail!(
            "cargo cannot read {}: fix it and retry\n{}",
            manifest.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: Metadata = serde_json::from_slice(&output.stdout).context(
        "cargo metadata answered something unexpected: update Rust with `rustup update`",
    )?;
    let package = metadata
        .packages
        .into_iter()
        .find(|package| package.manifest_path == manifest)
        .with_context(|| {
            format!(
                "{} is a workspace, not a plugin: pass --dir with the plugin's own directory",
                manifest.display()
            )
        })?;
    let wasm = metadata
        .target_directory
        .join(TARGET)
        .join("release")
        .join(format!("{}.wasm", package.name.replace('-', "_")));
    Ok(Crate {
        dir,
        name: package.name,
        version: package.version,
        wasm,
    })
}

/// Adds the wasm target with rustup unless it is installed.
pub fn ensure_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context(
            "rustup is not installed: install it (https://rustup.rs) or add the \
             wasm32-wasip2 target to your Rust toolchain yourself",
        )?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|line| line.trim() == TARGET)
    {
        return Ok(());
    }
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .context("cannot run rustup: run `rustup target add wasm32-wasip2` yourself")?;
    if !status.success() {
        bail!("`rustup target add {TARGET}` failed: run it yourself and read its error");
    }
    Ok(())
}

/// Builds the plugin in `dir` in release mode for the wasm target; returns the crate.
pub fn cargo_build(dir: &Path) -> Result<Crate> {
    let plugin = plugin_crate(dir)?;
    ensure_target()?;
    let status = Command::new("cargo")
        .args(["build", "--release", "--target", TARGET])
        .current_dir(&plugin.dir)
        .status()
        .context("cannot run cargo: install Rust with rustup (https://rustup.rs)")?;
    if !status.success() {
        bail!("the plugin does not compile: fix the errors cargo printed above");
    }
    Ok(plugin)
}

/// A runtime like the host's, without a cache or a database.
pub fn local_runtime() -> Result<Runtime> {
    Runtime::new(None, Limits::default())
        .map_err(|e| anyhow::anyhow!("cannot start the wasm runtime: {e:#}"))
}

/// Loads and validates the component at `wasm` the way the host validates an upload.
pub fn load(runtime: &Runtime, wasm: &Path) -> Result<Arc<Loaded>> {
    let bytes = std::fs::read(wasm).with_context(|| {
        format!(
            "cannot read {}: run `dealer-plugin build` first",
            wasm.display()
        )
    })?;
    runtime
        .inspect(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: the host would refuse it: {e}", wasm.display()))
}
