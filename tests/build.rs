//! Builds every probe the tests run — the built-in ones, the PostgreSQL
//! ones and the hostile test probes in `tests/probes` — and records their
//! paths for the harness.

use std::path::PathBuf;

/// The hostile and helper probes of `tests/probes`; the built-in ones
/// come from [`watchpost_probe_build::BUILTINS`].
const TEST_PROBES: &[&str] = &[
    "spin",
    "membomb",
    "panics",
    "bigoutput",
    "sleepy",
    "sneaky",
    "trivial",
    "badimport",
    "notaprobe",
    "flip",
    "sqlrun",
    "readfile",
    "clashing",
    "redisrun",
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = watchpost_probe_build::workspace_root(&manifest);
    for dir in ["plugins", "wit", "tests/probes"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let probes: Vec<&str> = watchpost_probe_build::BUILTINS
        .iter()
        .chain(TEST_PROBES)
        .copied()
        .collect();
    let paths = match watchpost_probe_build::build(&root, &probes) {
        Ok(paths) => paths,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::exit(1);
        }
    };
    let mut table = String::from("&[\n");
    for (name, path) in probes.iter().zip(paths) {
        table.push_str(&format!(
            "    ({name:?}, {:?}),\n",
            path.display().to_string()
        ));
    }
    table.push_str("]\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    std::fs::write(out.join("probes.rs"), table).expect("write probes.rs");
}
