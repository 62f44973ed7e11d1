//! The plugin runtime without a server: compiled artifacts are cached on disk so that a host
//! restarting with many plugins compiles nothing, and a damaged cache entry is not trusted.

use dealer_host::plugins::Hook;
use dealer_host::plugins::runtime::{Limits, Runtime};
use dealer_tests::guests::{wasm_bytes, with_custom_section};
use dealer_tests::scratch_dir;

#[test]
fn a_restarted_runtime_loads_every_plugin_from_its_cache_without_the_bytes() {
    let cache = scratch_dir("restart-cache");
    let original = wasm_bytes("guest-routing-keywords");
    let mut hashes = Vec::new();
    {
        let runtime = Runtime::new(Some(&cache.path), Limits::default()).expect("a runtime");
        for n in 0..50 {
            let loaded = runtime
                .inspect(&with_custom_section(&original, &format!("variant-{n}"), 0))
                .expect("a valid component");
            assert_eq!(loaded.info.hook, Hook::TicketRouting);
            hashes.push(loaded.info.sha256.clone());
        }
    }
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), 50, "fifty distinct components");

    // A new runtime (a restarted host) is given no bytes: each comes from the disk cache.
    let restarted = Runtime::new(Some(&cache.path), Limits::default()).expect("a runtime");
    for sha in &hashes {
        let loaded = restarted
            .load(sha, None)
            .expect("a readable cache")
            .expect("found in the cache, so nothing to compile");
        assert_eq!(&loaded.info.sha256, sha);
    }
}

#[test]
fn a_damaged_cache_entry_is_discarded_and_the_component_recompiled() {
    let cache = scratch_dir("damaged-cache");
    let bytes = wasm_bytes("guest-commission-flat");
    let sha = {
        let runtime = Runtime::new(Some(&cache.path), Limits::default()).expect("a runtime");
        runtime.inspect(&bytes).expect("valid").info.sha256.clone()
    };
    let entry = std::fs::read_dir(&cache.path)
        .expect("the cache directory")
        .flatten()
        .next()
        .expect("an engine directory")
        .path()
        .join(format!("{sha}.cwasm"));
    std::fs::write(&entry, b"not a compiled artifact").expect("damage the entry");

    let restarted = Runtime::new(Some(&cache.path), Limits::default()).expect("a runtime");
    assert!(
        restarted.load(&sha, None).expect("no error").is_none(),
        "a damaged entry is not used"
    );
    assert!(!entry.exists() || std::fs::read(&entry).expect("read") != b"not a compiled artifact");
    let loaded = restarted
        .load(&sha, Some(bytes))
        .expect("recompiled")
        .expect("loaded");
    assert_eq!(loaded.info.hook, Hook::Commission);
    assert!(entry.exists(), "the cache entry is written again");
}
