//! `sqlx::migrate!` embeds the migrations at compile time: rebuild when one is added.
//!
//! The console's build (`console/dist`, made by `npm run build`) is embedded too: this writes
//! `$OUT_DIR/console_assets.rs`, one `include_bytes!` per file with its path.
//! Without a build the list is empty and the host serves a page saying how to make one.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let console = manifest.join("../console");
    let dist = console.join("dist");
    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        println!("cargo:rerun-if-changed={}", dist.display());
        collect(&dist, &dist, &mut files);
    } else if console.is_dir() {
        // Not built yet: run again once `npm run build` has made `dist` in there.
        println!("cargo:rerun-if-changed={}", console.display());
    }
    files.sort();
    let mut code = String::from("&[\n");
    for (path, file) in &files {
        code.push_str(&format!(
            "    ({path:?}, include_bytes!({:?})),\n",
            file.display().to_string()
        ));
    }
    code.push(']');
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    std::fs::write(out.join("console_assets.rs"), code).expect("OUT_DIR is writable");
}

/// Every file under `dir`, as (its path from `root` with `/`, its absolute path).
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if let Ok(relative) = path.strip_prefix(root) {
            let name = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let absolute = path.canonicalize().unwrap_or(path);
            files.push((name, absolute));
        }
    }
}
