//! What a component imports, read from its binary before anything is compiled, against what
//! the host's linker provides. An upload that cannot link is refused in milliseconds instead
//! of after its compilation (40 CPU-seconds for a 12 MB JavaScript component).
//!
//! The linker itself cannot be asked what it defines, so what it provides is written down
//! here: the `dealer:platform` interfaces of the `imports` world, at every version of
//! [`crate::WIT_VERSIONS`] that has them, and the WASI 0.2 interfaces
//! that `wasmtime_wasi::p2::add_to_linker_sync` adds (the `wasi:cli/imports` world), with
//! `wasi:http`'s outgoing side, which [`crate::host_api::wasi_http`] holds to the outbound rules. A unit
//! test asks the runtime's linker about one export of each, so the list cannot claim what the
//! linker lacks; an interface missing from the list would be refused (and noticed) at once.
//! The linker stays the final word: a component that passes is still linked after compiling.

use wasmparser::{Chunk, Parser, Payload};

/// The `dealer:platform` interfaces a plugin may import, each with the version that
/// introduced it: the linker defines it at that version and every later one.
pub(crate) const PLATFORM: [(&str, &str); 9] = [
    ("dealer:platform/types", "0.1.0"),
    ("dealer:platform/log", "0.1.0"),
    ("dealer:platform/config", "0.1.0"),
    ("dealer:platform/store", "0.1.0"),
    ("dealer:platform/records", "0.1.0"),
    ("dealer:platform/clock", "0.1.0"),
    ("dealer:platform/events", "0.1.0"),
    ("dealer:platform/outbound", "0.1.0"),
    ("dealer:platform/signing", "0.2.0"),
];

/// Whether `version` (one of [`crate::WIT_VERSIONS`]) has the platform interface `interface`.
pub(crate) fn defines(version: &str, interface: &str) -> bool {
    let version = semver::Version::parse(version).expect("a valid version");
    PLATFORM.iter().any(|(name, since)| {
        *name == interface && version >= semver::Version::parse(since).expect("a valid version")
    })
}

/// The WASI 0.2 interfaces of the linker (the `wasi:cli/imports` world and `wasi:http`'s
/// outgoing side): linked, though they grant nothing the plugin was not given (see `host_api`
/// and `http`).
pub(crate) const WASI: [&str; 29] = [
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/ip-name-lookup",
    "wasi:http/types",
    "wasi:http/outgoing-handler",
];

/// The WASI track the linker implements: any `0.2.x`.
const WASI_TRACK: (u64, u64) = (0, 2);

/// Whether the linker satisfies an import named `name` (`interface@version`). Versions match
/// as the linker matches them: within a `0.x` minor, any patch; a prerelease only exactly, so
/// never here. A platform interface matches a version of [`crate::WIT_VERSIONS`] that has it.
pub(crate) fn provided(name: &str) -> bool {
    let Some((interface, version)) = name.split_once('@') else {
        return false;
    };
    let Ok(version) = semver::Version::parse(version) else {
        return false;
    };
    if !version.pre.is_empty() {
        return false;
    }
    if WASI.contains(&interface) {
        return (version.major, version.minor) == WASI_TRACK;
    }
    crate::WIT_VERSIONS.iter().any(|supported| {
        let track = semver::Version::parse(supported).expect("a valid version");
        (version.major, version.minor) == (track.major, track.minor)
            && defines(supported, interface)
    })
}

/// The names of the component's imports the host does not provide, in the order of the
/// binary; `Err` with the parser's message when it is not a well-formed component. Nested
/// modules and components are skipped, not parsed: their imports are the outer component's
/// business, and their code is what compiling would read.
pub(crate) fn unprovided(bytes: &[u8]) -> Result<Vec<String>, String> {
    let mut parser = Parser::new(0);
    let mut offset = 0;
    let mut missing = Vec::new();
    loop {
        let (consumed, payload) = match parser
            .parse(&bytes[offset..], true)
            .map_err(|e| e.to_string())?
        {
            Chunk::Parsed { consumed, payload } => (consumed, payload),
            Chunk::NeedMoreData(_) => return Err("the component ends too early".into()),
        };
        offset += consumed;
        match payload {
            Payload::ComponentImportSection(imports) => {
                for import in imports {
                    let name = import.map_err(|e| e.to_string())?.name.name;
                    if !provided(name) {
                        missing.push(name.to_owned());
                    }
                }
            }
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => {
                if unchecked_range.end > bytes.len() {
                    return Err("a nested module runs past the end of the component".into());
                }
                offset += unchecked_range.len();
            }
            Payload::End(_) => return Ok(missing),
            _ => {}
        }
    }
}

/// What to tell the author about `missing` imports.
pub(crate) fn explain(missing: &[String]) -> String {
    format!(
        "{}; a plugin may import dealer:platform's interfaces at {} and WASI 0.2's \
         cli, clocks, filesystem, io, random, sockets and http's outgoing handler (which \
         grant nothing unless HQ does)",
        missing.join(", "),
        crate::WIT_VERSIONS
            .map(|version| version.rsplit_once('.').map_or("", |(minor, _)| minor))
            .map(|minor| format!("{minor}.x"))
            .join(" or "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Limits, Runtime};

    /// One export of each interface said to be provided (a types-only interface has none).
    const EXPORTS: [(&str, &str); 38] = [
        ("dealer:platform/types", ""),
        ("dealer:platform/log", "log"),
        ("dealer:platform/config", "get"),
        ("dealer:platform/store", "get"),
        ("dealer:platform/records", "customer"),
        ("dealer:platform/clock", "now"),
        ("dealer:platform/events", "emit"),
        ("dealer:platform/outbound", "send"),
        ("dealer:platform/signing", "hmac-sha1"),
        ("wasi:cli/environment", "get-environment"),
        ("wasi:cli/exit", "exit"),
        ("wasi:cli/stdin", "get-stdin"),
        ("wasi:cli/stdout", "get-stdout"),
        ("wasi:cli/stderr", "get-stderr"),
        ("wasi:cli/terminal-input", "terminal-input"),
        ("wasi:cli/terminal-output", "terminal-output"),
        ("wasi:cli/terminal-stdin", "get-terminal-stdin"),
        ("wasi:cli/terminal-stdout", "get-terminal-stdout"),
        ("wasi:cli/terminal-stderr", "get-terminal-stderr"),
        ("wasi:clocks/monotonic-clock", "now"),
        ("wasi:clocks/wall-clock", "now"),
        ("wasi:filesystem/types", "descriptor"),
        ("wasi:filesystem/preopens", "get-directories"),
        ("wasi:io/error", "error"),
        ("wasi:io/poll", "pollable"),
        ("wasi:io/streams", "input-stream"),
        ("wasi:random/random", "get-random-bytes"),
        ("wasi:random/insecure", "get-insecure-random-bytes"),
        ("wasi:random/insecure-seed", "insecure-seed"),
        ("wasi:sockets/network", "network"),
        ("wasi:sockets/instance-network", "instance-network"),
        ("wasi:sockets/udp", "udp-socket"),
        ("wasi:sockets/udp-create-socket", "create-udp-socket"),
        ("wasi:sockets/tcp", "tcp-socket"),
        ("wasi:sockets/tcp-create-socket", "create-tcp-socket"),
        ("wasi:sockets/ip-name-lookup", "resolve-addresses"),
        ("wasi:http/types", "fields"),
        ("wasi:http/outgoing-handler", "handle"),
    ];

    /// A component importing `name`, an instance said to export `export` as a core module.
    /// The linker's answer tells a missing instance ("module implementation is missing")
    /// from one that defines `export` as something else ("expected module found func").
    fn importing(name: &str, export: &str) -> Vec<u8> {
        let mut instance = wasm_encoder::InstanceType::new();
        if !export.is_empty() {
            instance
                .core_type()
                .module(&wasm_encoder::ModuleType::new());
            instance.export(export, wasm_encoder::ComponentTypeRef::Module(0));
        }
        let mut types = wasm_encoder::ComponentTypeSection::new();
        types.instance(&instance);
        let mut imports = wasm_encoder::ComponentImportSection::new();
        imports.import(name, wasm_encoder::ComponentTypeRef::Instance(0));
        let mut component = wasm_encoder::Component::new();
        component.section(&types).section(&imports);
        component.finish()
    }

    /// What the runtime's linker answers to `importing(name, export)`.
    fn link(runtime: &Runtime, name: &str, export: &str) -> Result<(), String> {
        let component =
            wasmtime::component::Component::new(runtime.engine(), importing(name, export))
                .expect("it compiles");
        runtime
            .linker()
            .instantiate_pre(&component)
            .map(drop)
            .map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn every_interface_said_to_be_provided_is_in_the_linker() {
        let runtime = Runtime::new(None, Limits::default()).expect("a runtime");
        assert_eq!(EXPORTS.len(), PLATFORM.len() + WASI.len());
        for (interface, export) in EXPORTS {
            assert!(
                PLATFORM.iter().any(|(name, _)| *name == interface) || WASI.contains(&interface),
                "{interface}"
            );
            let versions: Vec<&str> = if interface.starts_with("wasi:") {
                vec!["0.2.0", "0.2.3"]
            } else {
                crate::WIT_VERSIONS
                    .into_iter()
                    .filter(|version| defines(version, interface))
                    .collect()
            };
            assert!(!versions.is_empty(), "{interface}");
            for version in versions {
                let name = format!("{interface}@{version}");
                assert!(provided(&name), "{name}");
                if export.is_empty() {
                    assert_eq!(link(&runtime, &name, export), Ok(()));
                    continue;
                }
                let answer = link(&runtime, &name, export).expect_err("a module is not linked");
                assert!(
                    answer.contains("expected module found"),
                    "{name} is not in the linker: {answer}"
                );
            }
        }
    }

    #[test]
    fn what_the_linker_lacks_is_named_without_compiling() {
        let runtime = Runtime::new(None, Limits::default()).expect("a runtime");
        let lacking = [
            ("wasi:keyvalue/store@0.2.0", "open"),
            ("wasi:http/incoming-handler@0.2.3", "handle"),
            ("wasi:io/streams@0.3.0", "input-stream"),
            ("wasi:io/streams@0.2.0-rc-2023-11-10", "input-stream"),
            ("wasi:io/streams", "input-stream"),
            ("wasi:clocks/timezone@0.2.0", "display"),
            ("wasi:cli/run@0.2.0", "run"),
            ("dealer:platform/log@0.3.0", "log"),
            ("dealer:platform/signing@0.1.0", "hmac-sha1"),
            ("dealer:platform/payroll@0.1.0", "pay"),
        ];
        for (name, export) in lacking {
            assert!(!provided(name), "{name}");
            let answer = link(&runtime, name, export).expect_err("not linked");
            assert!(
                answer.contains("module implementation is missing"),
                "{name} is in the linker: {answer}"
            );
        }
        assert!(!provided("env"));
        let mut component = wasm_encoder::Component::new();
        let mut types = wasm_encoder::ComponentTypeSection::new();
        types.instance(&wasm_encoder::InstanceType::new());
        let mut imports = wasm_encoder::ComponentImportSection::new();
        for (name, _) in [("wasi:io/streams@0.2.0", ""), lacking[0], lacking[1]] {
            imports.import(name, wasm_encoder::ComponentTypeRef::Instance(0));
        }
        component.section(&types).section(&imports);
        assert_eq!(
            unprovided(&component.finish()).expect("a component"),
            [lacking[0].0, lacking[1].0]
        );
        assert!(explain(&[lacking[0].0.to_owned()]).contains("wasi:keyvalue/store@0.2.0"));
    }
}
