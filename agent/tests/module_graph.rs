//! The agent's modules follow the data flow (`config -> schedule -> runtime
//! -> policy -> remediate + telemetry`, with the daemon and the API on top):
//! this test reads the sources and fails when a module imports one it may
//! not, so an import against the flow (or a cycle) cannot land unnoticed.
//! To change the layout on purpose, change [`ALLOWED`] and `src/lib.rs`'s
//! diagram together.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// For each top-level module of `agent/src`, the modules it may import
/// (`crate::NAME`). Leaves first; each module may use only modules above
/// it in this list.
const ALLOWED: &[(&str, &[&str])] = &[
    ("safefs", &[]),
    ("process", &[]),
    ("report", &[]),
    ("util", &[]),
    ("builtin", &[]),
    ("hostinfo", &[]),
    ("store", &["safefs"]),
    ("pgserver", &["safefs", "process"]),
    ("sql", &[]),
    ("redis", &["sql"]),
    ("config", &["builtin", "hostinfo", "redis", "report", "sql"]),
    ("schedule", &["util"]),
    (
        "runtime",
        &[
            "safefs", "builtin", "config", "hostinfo", "redis", "report", "sql", "util",
        ],
    ),
    (
        "drill",
        &["safefs", "config", "pgserver", "report", "runtime"],
    ),
    ("policy", &["config", "report"]),
    ("events", &["policy", "report"]),
    (
        "remediate",
        &[
            "safefs", "config", "events", "pgserver", "policy", "process", "redis", "report",
            "sql", "store", "util",
        ],
    ),
    (
        "cluster",
        &[
            "safefs",
            "config",
            "events",
            "pgserver",
            "process",
            "redis",
            "remediate",
            "report",
            "runtime",
            "sql",
            "store",
            "util",
        ],
    ),
    (
        "telemetry",
        &[
            "config", "events", "hostinfo", "report", "runtime", "store", "util",
        ],
    ),
    (
        "daemon",
        &[
            "safefs",
            "builtin",
            "cluster",
            "config",
            "drill",
            "events",
            "hostinfo",
            "policy",
            "redis",
            "remediate",
            "report",
            "runtime",
            "schedule",
            "sql",
            "store",
            "telemetry",
            "util",
        ],
    ),
    (
        "api",
        &[
            "safefs",
            "cluster",
            "config",
            "daemon",
            "events",
            "policy",
            "remediate",
            "report",
            "runtime",
            "sql",
            "store",
            "telemetry",
            "util",
        ],
    ),
    (
        "cli",
        &[
            "safefs",
            "api",
            "builtin",
            "cluster",
            "config",
            "daemon",
            "drill",
            "events",
            "hostinfo",
            "policy",
            "redis",
            "remediate",
            "report",
            "runtime",
            "schedule",
            "sql",
            "store",
            "telemetry",
            "util",
        ],
    ),
    ("logging", &["cli"]),
];

/// `crate::NAME` occurrences in Rust source text, comments included (a doc
/// link against the flow is a sign of a design leaning the wrong way too).
fn crate_imports(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
            .collect();
        let preceded_by_ident = rest[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        if !name.is_empty() && !preceded_by_ident {
            found.insert(name);
        }
        rest = after;
    }
    found
}

fn rust_files(path: &Path, into: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            rust_files(&entry.unwrap().path(), into);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        into.push(path.to_path_buf());
    }
}

/// The `crate::` imports of every top-level module of `agent/src`.
fn module_imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if name == "lib" || name == "main" {
            continue;
        }
        if path.is_file() && path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&path, &mut files);
        let mut imports = BTreeSet::new();
        for file in files {
            imports.extend(crate_imports(&std::fs::read_to_string(&file).unwrap()));
        }
        imports.remove(&name);
        graph.insert(name, imports);
    }
    graph
}

#[test]
fn every_module_imports_only_along_the_flow() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(m, deps)| (*m, deps.iter().copied().collect()))
        .collect();
    let graph = module_imports();
    let mut problems = Vec::new();
    for (module, imports) in &graph {
        let Some(may) = allowed.get(module.as_str()) else {
            problems.push(format!(
                "module `{module}` is not in ALLOWED: place it in the flow"
            ));
            continue;
        };
        for import in imports {
            if !may.contains(import.as_str()) {
                problems.push(format!(
                    "`{module}` imports `crate::{import}`, against the flow"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_allowed_list_is_itself_acyclic() {
    let order: Vec<&str> = ALLOWED.iter().map(|(m, _)| *m).collect();
    for (position, (module, deps)) in ALLOWED.iter().enumerate() {
        for dep in *deps {
            let at = order.iter().position(|m| m == dep);
            assert!(
                at.is_some_and(|at| at < position),
                "`{module}` may import `{dep}`, which is not listed before it"
            );
        }
    }
}

#[test]
fn the_reader_finds_imports_and_ignores_look_alikes() {
    let found =
        crate_imports("use crate::config::X;\nlet y = mycrate::policy; crate::report::Status");
    assert_eq!(found.into_iter().collect::<Vec<_>>(), ["config", "report"]);
}

/// The names the code of `text` (comments left out: a doc link is no
/// import) reaches through `prefix` (`super::` or `super::super::`):
/// `prefix NAME` and each name of `prefix {a, b::c}`.
fn names_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let text = code.as_str();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
            .collect()
    };
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let preceded = rest[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
        let mut after = &rest[at + prefix.len()..];
        if preceded || after.starts_with("super::") {
            // Another module's path (`x::super::`) or a deeper one.
            while let Some(deeper) = after.strip_prefix("super::") {
                after = deeper;
            }
            rest = after;
            continue;
        }
        rest = after;
        if let Some(group) = after.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for part in inner.split(',') {
                let name = ident(part.trim());
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name = ident(after);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// The import graph between the modules of folder `dir` (its files and
/// sub-folders, `mod.rs` excepted): `super::NAME` in `NAME.rs` or
/// `NAME/mod.rs`, `super::super::NAME` in the files of `NAME/`.
fn folder_graph(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut modules = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if (path.is_dir() || path.extension().is_some_and(|e| e == "rs"))
            && !["mod", "lib", "main", "tests"].contains(&name.as_str())
        {
            modules.insert(name);
        }
    }
    let mut graph = BTreeMap::new();
    for module in &modules {
        let mut imports = BTreeSet::new();
        let file = dir.join(format!("{module}.rs"));
        if file.is_file() {
            imports.extend(names_after(
                &std::fs::read_to_string(&file).unwrap(),
                "super::",
            ));
        }
        let sub = dir.join(module);
        if sub.is_dir() {
            for entry in std::fs::read_dir(&sub).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let prefix = if path.file_stem().is_some_and(|s| s == "mod") {
                    "super::"
                } else {
                    "super::super::"
                };
                imports.extend(names_after(&text, prefix));
            }
        }
        imports.retain(|i| modules.contains(i) && i != module);
        graph.insert(module.clone(), imports);
    }
    graph
}

/// A cycle of `graph`, as `a -> b -> a`, if it has one.
fn a_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<String> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<String> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle.join(" -> "));
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

fn folders(path: &Path, into: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        into.push(path.to_path_buf());
        for entry in std::fs::read_dir(path).unwrap() {
            folders(&entry.unwrap().path(), into);
        }
    }
}

/// Imports that still close a circle, to be removed (folder under
/// `agent/src`, importer, imported): the test leaves them out of the graph
/// and fails once one is gone, so that the list only shrinks.
const KNOWN_CIRCLE_EDGES: &[(&str, &str, &str)] = &[
    // `impl Ha` is spread over cluster/'s files, which import ha::Ha, while
    // ha.rs calls handover::pending and owner's election result.
    ("cluster", "ha", "handover"),
    ("cluster", "ha", "owner"),
    // cluster/server.rs (the Local server's trait) and local.rs import
    // each other (found after the merge of main on 2026-12-06).
    ("cluster", "server", "local"),
    // pgserver/postmaster.rs parses the pid file with pgdata's helpers
    // while pgdata.rs asks postmaster::is_zombie.
    ("pgserver", "postmaster", "pgdata"),
];

#[test]
fn no_folder_has_an_import_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = Vec::new();
    folders(&root.join("src"), &mut dirs);
    folders(&root.join("../xtask/src"), &mut dirs);
    let mut circles = Vec::new();
    for dir in &dirs {
        let mut graph = folder_graph(dir);
        for (folder, from, to) in KNOWN_CIRCLE_EDGES {
            if *dir == root.join("src").join(folder) {
                let edges = graph.get_mut(*from).expect("a module of the known circle");
                assert!(
                    edges.remove(*to),
                    "{folder}/{from} no longer imports {to}: remove it from KNOWN_CIRCLE_EDGES"
                );
            }
        }
        if let Some(c) = a_cycle(&graph) {
            circles.push(format!("{}: {c}", dir.display()));
        }
    }
    assert!(
        circles.is_empty(),
        "modules of a folder import each other in a circle (move what both need into a leaf file):\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_circle_finder_finds_one() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(a_cycle(&graph).as_deref(), Some("a -> b -> c -> a"));
    assert_eq!(
        names_after(
            "use super::{act, audit::X};\nsuper::super::y; x::super::z",
            "super::"
        ),
        ["act", "audit"].into_iter().map(String::from).collect()
    );
}

#[test]
fn lib_rs_draws_every_top_level_module() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let start = lib.find("```text").expect("lib.rs has a ```text drawing");
    let drawing = &lib[start..start + lib[start + 7..].find("```").unwrap() + 7];
    let words: BTreeSet<&str> = drawing
        .split(|c: char| !(c.is_ascii_lowercase() || c == '_'))
        .collect();
    let missing: Vec<String> = module_imports()
        .into_keys()
        .filter(|m| !words.contains(m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "lib.rs's drawing leaves out: {}",
        missing.join(", ")
    );
}
