//! The plugins the tests run, built into wasm components once per test process: the test
//! guests of `tests/guests/`, the first-party plugins of `plugins/` and the partner examples
//! of `examples/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The crates of `tests/guests/`, `plugins/` and `examples/`.
pub const GUESTS: [&str; 13] = [
    "guest-hostile",
    "guest-commission-flat",
    "guest-commission-gross",
    "guest-routing-keywords",
    "plugin-approval",
    "plugin-channel-aliyun-sms",
    "plugin-commission",
    "plugin-loyalty",
    "plugin-reminders",
    "plugin-ticket-routing",
    "example-insurance",
    "example-ev-charging",
    "example-maintenance-records",
];

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "plugin";

/// The component built from plugin crate `crate_name` (e.g. `guest-hostile`, `plugin-commission`). The first call
/// in a process builds every guest; a failed build panics with cargo's output.
pub fn wasm(crate_name: &str) -> PathBuf {
    assert!(
        GUESTS.contains(&crate_name),
        "{crate_name:?} is not a plugin the tests build; they are {GUESTS:?}"
    );
    build_dir().join(format!("{}.wasm", crate_name.replace('-', "_")))
}

/// The bytes of [`wasm`]`(crate_name)`.
pub fn wasm_bytes(crate_name: &str) -> Vec<u8> {
    let path = wasm(crate_name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

/// Where the components are, after building them if this process has not yet.
fn build_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(build)
}

/// The workspace's root directory.
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the workspace")
}

/// The target directory the tests' builds use: `CARGO_TARGET_DIR` (relative to the workspace)
/// when set, else the workspace's `target`.
pub fn target_dir() -> PathBuf {
    let root = workspace_root();
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |dir| root.join(dir))
}

/// A `cargo` command (the cargo running the tests, when it is) in the workspace's root,
/// building into [`target_dir`].
pub fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", target_dir());
    command
}

/// `bytes` (a component) with a custom section `name` appended, padded to `size` bytes when
/// that is more: a distinct component (another content hash, any size) that behaves the same,
/// as another version or another plugin would.
pub fn with_custom_section(bytes: &[u8], name: &str, size: usize) -> Vec<u8> {
    let mut section = vec![u8::try_from(name.len()).expect("a name under 128 bytes")];
    section.extend_from_slice(name.as_bytes());
    if section.len() < size {
        section.resize(size, 0x2a);
    }
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    let mut len = section.len();
    loop {
        // The section's length in unsigned LEB128.
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(&section);
    out
}

/// Builds binary `bin` of workspace package `package` and returns its path, as cargo reports
/// it. The build names the e2e test binary too (fresh, so nothing is done for it): the
/// dependencies' features are then unified as for the tests, and the binary links the host
/// already built for them instead of a second build of it with other features.
/// (`CARGO_BIN_EXE_*` only exists in the tests of the crate that owns a binary.)
pub fn binary(package: &str, bin: &str) -> PathBuf {
    let output = cargo()
        .args([
            "build",
            "-p",
            package,
            "--bin",
            bin,
            "-p",
            "dealer-tests",
            "--test",
            "e2e",
            "--message-format=json-render-diagnostics",
        ])
        .output()
        .unwrap_or_else(|error| panic!("running cargo: {error}"));
    assert!(
        output.status.success(),
        "building {bin} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|message| {
            message["reason"] == "compiler-artifact"
                && message["target"]["name"] == bin
                && message["executable"].is_string()
        })
        .and_then(|artifact| artifact["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reports no {bin} executable"))
}

fn build() -> PathBuf {
    let mut command = cargo();
    command.args(["build", "--target", TARGET, "--profile", PROFILE]);
    for guest in GUESTS {
        command.args(["-p", guest]);
    }
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("running cargo: {error}"));
    assert!(
        output.status.success(),
        "building the plugins for {TARGET} failed ({}); if the target is missing, install \
         it with `rustup target add {TARGET}`. cargo said:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    target_dir().join(TARGET).join(PROFILE)
}
