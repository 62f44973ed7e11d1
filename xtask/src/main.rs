//! Project automation, so that the README's two commands work on a fresh machine:
//! `cargo xtask demo` runs the product on its embedded default, `cargo xtask test` runs
//! every test on SQLite and on PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Run the demo or the whole test suite")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the host (release) and serve the demo network on a SQLite file under ./data.
    Demo {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
    },
    /// Check formatting and lints, then run every test on SQLite and PostgreSQL.
    Test {
        /// Skip `cargo fmt --check` and clippy.
        #[arg(long)]
        no_lint: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let root = workspace_root();
    match Cli::parse().command {
        Task::Demo { listen } => {
            setup()?;
            run(
                cargo(&root).args(["build", "--release", "-p", "dealer-host"]),
                "build the host",
            )?;
            let binary = target_dir(&root).join("release").join("dealer-host");
            run(
                Command::new(binary)
                    .current_dir(&root)
                    .args(["serve", "--demo", "--listen", &listen]),
                "serve the demo",
            )
        }
        Task::Test { no_lint } => {
            setup()?;
            if !no_lint {
                run(
                    cargo(&root).args(["fmt", "--all", "--", "--check"]),
                    "check formatting (run `cargo fmt`)",
                )?;
                run(
                    cargo(&root).args([
                        "clippy",
                        "--workspace",
                        "--all-targets",
                        "--",
                        "-D",
                        "warnings",
                    ]),
                    "lint (fix the clippy findings above)",
                )?;
            }
            run(cargo(&root).args(["test", "--workspace"]), "run the tests")
        }
    }
}

/// One-time set-up a fresh machine needs: the wasm target the plugins build for.
fn setup() -> anyhow::Result<()> {
    run(
        Command::new("rustup").args(["target", "add", "wasm32-wasip2"]),
        "add the wasm32-wasip2 target",
    )
}

fn cargo(root: &Path) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root);
    c
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_owned()
}

fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot start the command to {what}"))?;
    if !status.success() {
        bail!("failed to {what} ({status})");
    }
    Ok(())
}
