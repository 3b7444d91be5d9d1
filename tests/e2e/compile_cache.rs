//! The compile cache seen from the command line: a probe is compiled on
//! its first load and taken from `state_dir/cache` afterwards; an entry
//! that is corrupt, truncated or made by another engine is refused and
//! recompiled; `--no-cache`, `-c` and an unusable directory behave as the
//! manual says (docs/src/probes/compile-cache.md). What happened is read from the debug log lines
//! (`WATCHPOST_LOG=watchpost=debug`), not from timings.

use std::path::{Path, PathBuf};
use watchpost_e2e::cli::{Outcome, assert_no_panic, run, watchpost};
use watchpost_e2e::kits::{Kit, probe};
use watchpost_e2e::probes;

const HIT: &str = "compile cache hit";
const MISS: &str = "compile cache miss";

/// `watchpost check PROBE EXTRA...` with its state in `state_dir` and
/// debug logs on.
fn check_in(state_dir: &Path, probe: &Path, extra: &[&str]) -> Outcome {
    let mut command = watchpost();
    command
        .env("WATCHPOST_STATE_DIR", state_dir)
        .env("WATCHPOST_LOG", "watchpost=debug")
        .arg("check")
        .arg(probe)
        .args(extra);
    let outcome = run(command);
    assert_no_panic(&outcome);
    outcome
}

fn entries(cache: &Path) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(cache) else {
        return Vec::new();
    };
    dir.map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect()
}

fn assert_logged(outcome: &Outcome, present: &str, absent: &str) {
    assert!(
        outcome.stderr.contains(present) && !outcome.stderr.contains(absent),
        "expected `{present}` and no `{absent}` in:\n{}",
        outcome.stderr
    );
}

#[test]
fn a_python_probe_is_compiled_once_then_loaded_from_the_cache() {
    let state = tempfile::tempdir().unwrap();
    let pg_node = probe(Kit::Python, "pg-node");
    let args = ["--set", "process=watchpost", "--format", "json"];

    let first = check_in(state.path(), &pg_node, &args);
    assert_logged(&first, MISS, HIT);
    assert_eq!(entries(&state.path().join("cache")).len(), 1);

    let second = check_in(state.path(), &pg_node, &args);
    assert_logged(&second, HIT, MISS);
    assert_eq!(second.code, first.code, "{}", second.all_output());
    assert_eq!(second.json()["probe"], "pg-node");
    assert_eq!(second.json()["status"], first.json()["status"]);
}

/// Damage the one cache entry of the trivial probe with `damage`; the next
/// load must refuse it (saying `why`), recompile, and leave a good entry.
fn refused_and_recompiled(damage: impl FnOnce(&Path), why: &str) {
    let state = tempfile::tempdir().unwrap();
    let trivial = probes::path("trivial");
    check_in(state.path(), &trivial, &[]);
    let cache = state.path().join("cache");
    let entry = entries(&cache)
        .pop()
        .expect("an entry after the first load");
    damage(&entry);

    let damaged = check_in(state.path(), &trivial, &[]);
    assert_eq!(damaged.code, 0, "{}", damaged.all_output());
    assert_logged(&damaged, MISS, HIT);
    assert!(
        damaged.stderr.contains("compile cache entry refused") && damaged.stderr.contains(why),
        "expected a refusal saying `{why}`:\n{}",
        damaged.stderr
    );

    let after = check_in(state.path(), &trivial, &[]);
    assert_logged(&after, HIT, MISS);
}

#[test]
fn a_corrupt_entry_is_recompiled() {
    refused_and_recompiled(
        |entry| {
            let mut data = std::fs::read(entry).unwrap();
            let middle = data.len() / 2;
            data[middle] ^= 0xff;
            std::fs::write(entry, data).unwrap();
        },
        "corrupt",
    );
}

#[test]
fn a_truncated_entry_is_recompiled() {
    refused_and_recompiled(
        |entry| {
            let data = std::fs::read(entry).unwrap();
            std::fs::write(entry, &data[..data.len() - 4096]).unwrap();
        },
        "truncated",
    );
}

#[test]
fn an_entry_written_by_another_engine_configuration_is_not_used() {
    // The entry header records the engine fingerprint (bytes 16..48): an
    // entry of another wasmtime version or engine configuration, put under
    // this engine's file name, is refused by it.
    refused_and_recompiled(
        |entry| {
            let mut data = std::fs::read(entry).unwrap();
            data[16..48].copy_from_slice(&[0xab; 32]);
            std::fs::write(entry, data).unwrap();
        },
        "different wasmtime version or engine configuration",
    );
}

#[test]
fn no_cache_neither_reads_nor_writes_the_cache() {
    let state = tempfile::tempdir().unwrap();
    let outcome = check_in(state.path(), &probes::path("trivial"), &["--no-cache"]);
    assert_eq!(outcome.code, 0, "{}", outcome.all_output());
    assert!(
        !outcome.stderr.contains("compile cache"),
        "{}",
        outcome.stderr
    );
    assert!(!state.path().join("cache").exists());
}

#[test]
fn the_config_state_dir_and_cache_size_are_used() {
    let dir = tempfile::tempdir().unwrap();
    let configured = dir.path().join("configured");
    let ignored = dir.path().join("from-the-environment");
    let config = dir.path().join("watchpost.toml");
    let write_config = |cache_size: &str| {
        std::fs::write(
            &config,
            format!(
                "[agent]\nstate_dir = {:?}\ncache_size = {cache_size:?}\n",
                configured.display().to_string()
            ),
        )
        .unwrap();
    };
    let trivial = probes::path("trivial");
    let config_arg = config.display().to_string();

    write_config("1GiB");
    let outcome = check_in(&ignored, &trivial, &["-c", &config_arg]);
    assert_eq!(outcome.code, 0, "{}", outcome.all_output());
    assert_eq!(entries(&configured.join("cache")).len(), 1);
    assert!(!ignored.exists());

    // A cache too small for the probe keeps nothing and still loads it.
    let small = dir.path().join("small");
    std::fs::rename(&configured, &small).unwrap();
    write_config("1KiB");
    let outcome = check_in(&ignored, &trivial, &["-c", &config_arg]);
    assert_eq!(outcome.code, 0, "{}", outcome.all_output());
    assert!(entries(&configured.join("cache")).is_empty());
}

#[test]
fn an_unusable_state_dir_warns_and_still_runs_the_probe() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, "").unwrap();
    let mut command = watchpost();
    command
        .env("WATCHPOST_STATE_DIR", &not_a_dir)
        .arg("check")
        .arg(probes::path("trivial"));
    let outcome = run(command);
    assert_no_panic(&outcome);
    assert_eq!(outcome.code, 0, "{}", outcome.all_output());
    assert!(
        outcome.stderr.contains("compile cache disabled") && outcome.stderr.contains("--no-cache"),
        "{}",
        outcome.stderr
    );
}
