//! kefu: intent-and-answer engine for enterprise customer service.
//!
//! Modules are layered, lowest first as [`LAYERS`] lists them: each may use
//! only the modules before it, so nothing depends on the HTTP API and the
//! model knows nothing of tickets. A unit test reads every `crate::` path in
//! src/ and fails on a use that points up or sideways.

pub mod access;
pub mod analytics;
pub mod answer;
pub mod api;
pub mod channels;
pub mod config;
pub mod connectors;
pub mod corpus;
pub mod encoder;
pub mod engine;
pub mod eval;
pub mod index;
pub mod learning;
pub mod nlu;
pub mod overdue;
pub mod policy;
pub mod privacy;
pub mod profile;
pub mod service;
pub mod store;
pub mod support;
pub mod telemetry;
pub mod tickets;

/// The module order, lowest first: a module may use only those before it.
/// - helpers without domain words: support, privacy; the metrics every layer records: telemetry;
/// - the deployment's data and the model: corpus, encoder, index, nlu;
/// - outside systems: connectors (the enterprise's), channels (messaging platforms);
/// - pure business rules: tickets, policy, profile, analytics (the weekly figures);
/// - persistence: store;
/// - the engine and what runs it: answer, engine, eval, learning (retrain, gate, versions);
/// - use cases and delivery: overdue (SLA pushes), service, api (HTTP);
/// - the composition root, which maps the settings onto every module's own: config.
pub const LAYERS: &[&str] = &[
    "support",
    "privacy",
    "telemetry",
    "corpus",
    "encoder",
    "index",
    "nlu",
    "connectors",
    "channels",
    "tickets",
    "access",
    "policy",
    "profile",
    "analytics",
    "store",
    "answer",
    "engine",
    "eval",
    "learning",
    "overdue",
    "service",
    "api",
    "config",
];

#[cfg(test)]
mod layering {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use super::LAYERS;

    /// The modules a source text names as `crate::module`, with the line of
    /// each first use; code from the first `#[cfg(test)]` on is a test's.
    fn crate_paths(text: &str) -> Vec<(usize, String)> {
        let production = text.split("#[cfg(test)]").next().unwrap_or_default();
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (n, line) in production.lines().enumerate() {
            let line = line.split("//").next().unwrap_or_default();
            for (at, _) in line.match_indices("crate::") {
                let rest = &line[at + "crate::".len()..];
                let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                    // `use crate::{a::X, b}`: each top-level name of the group.
                    let group = group.split('}').next().unwrap_or_default();
                    group.split(',').map(|part| part.trim().split("::").next().unwrap_or_default()).collect()
                } else {
                    vec![rest.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or_default()]
                };
                for name in names.into_iter().filter(|n| !n.is_empty()) {
                    if seen.insert(name.to_string()) {
                        out.push((n + 1, name.to_string()));
                    }
                }
            }
        }
        out
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Every use in `src/` that breaks the order, as "file:line: a uses b".
    fn violations(src: &Path, layers: &[&str]) -> Vec<String> {
        let mut files = Vec::new();
        rust_files(src, &mut files);
        files.sort();
        let mut out = Vec::new();
        for file in files {
            let relative = file.strip_prefix(src).unwrap();
            let module =
                relative.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
            // The binary (main and its private modules) is the top; lib.rs is the map itself.
            if matches!(module.as_str(), "main" | "lib" | "loadtest" | "access_cli" | "practice")
                || relative.file_name().is_some_and(|f| f == "tests.rs")
            {
                continue;
            }
            let Some(rank) = layers.iter().position(|l| *l == module) else {
                out.push(format!("{}: module {module:?} is not in LAYERS", relative.display()));
                continue;
            };
            for (line, used) in crate_paths(&std::fs::read_to_string(&file).unwrap()) {
                match layers.iter().position(|l| *l == used) {
                    Some(r) if r < rank || used == module => {}
                    Some(_) => {
                        out.push(format!("{}:{line}: {module} uses {used}, which is not below it", relative.display()))
                    }
                    None => {
                        out.push(format!("{}:{line}: {module} uses {used}, which is not in LAYERS", relative.display()))
                    }
                }
            }
        }
        out
    }

    #[test]
    fn modules_depend_only_downward() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let found = violations(&src, LAYERS);
        assert!(found.is_empty(), "uses against the layer order of src/lib.rs:\n{}", found.join("\n"));
    }

    #[test]
    fn the_scan_sees_grouped_inline_and_upward_uses() {
        let text =
            "use crate::corpus::Lang;\nuse crate::{policy::Action, store};\nfn f() { crate::api::x(); } // crate::engine\n#[cfg(test)]\nuse crate::learning;";
        let names: Vec<String> = crate_paths(text).into_iter().map(|(_, n)| n).collect();
        assert_eq!(names, ["corpus", "policy", "store", "api"]);
        // The real tree read against a reversed order breaks it at once.
        let reversed: Vec<&str> = LAYERS.iter().rev().copied().collect();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        assert!(!violations(&src, &reversed).is_empty());
    }
}
