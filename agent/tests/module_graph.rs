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
    ("report", &[]),
    ("util", &[]),
    ("builtin", &[]),
    ("hostinfo", &[]),
    ("store", &["safefs"]),
    ("pgserver", &["safefs"]),
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
            "safefs", "config", "events", "pgserver", "policy", "report", "sql", "store", "util",
        ],
    ),
    (
        "cluster",
        &[
            "safefs",
            "config",
            "events",
            "pgserver",
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
