//! Files that are not probes are refused with a message naming the file and
//! what is wrong, exit code 3, and no panic.

use std::path::Path;
use watchpost_e2e::cli::{Outcome, assert_no_panic, watchpost_run};
use watchpost_e2e::probes;

fn check_file(path: &Path) -> Outcome {
    let outcome = watchpost_run(["check".as_ref(), path.as_os_str()]);
    assert_no_panic(&outcome);
    assert_eq!(outcome.code, 3, "{}", outcome.all_output());
    assert!(
        outcome.stdout.starts_with("UNKNOWN") || outcome.stdout.contains(": UNKNOWN - "),
        "{}",
        outcome.stdout
    );
    assert!(
        outcome.all_output().contains(&path.display().to_string()),
        "the file is named:\n{}",
        outcome.all_output()
    );
    outcome
}

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn random_bytes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let outcome = check_file(&write(&dir, "random.wasm", &bytes));
    assert!(
        outcome.stdout.contains("not a WebAssembly file"),
        "{}",
        outcome.stdout
    );
}

#[test]
fn random_bytes_after_a_valid_header_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = b"\0asm\x0d\x00\x01\x00".to_vec();
    bytes.extend((0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 7) as u8));
    let outcome = check_file(&write(&dir, "garbage.wasm", &bytes));
    assert!(
        outcome.stdout.contains("not a valid component"),
        "{}",
        outcome.stdout
    );
}

#[test]
fn an_empty_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = check_file(&write(&dir, "empty.wasm", b""));
    assert!(
        outcome.stdout.contains("the file is empty"),
        "{}",
        outcome.stdout
    );
}

#[test]
fn a_core_module_is_refused_with_how_to_make_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let module =
        wat::parse_str(r#"(module (func (export "check") (result i32) i32.const 0))"#).unwrap();
    let outcome = check_file(&write(&dir, "core.wasm", &module));
    assert!(
        outcome
            .stdout
            .contains("core WebAssembly module, not a component"),
        "{}",
        outcome.stdout
    );
    assert!(
        outcome.stdout.contains("wasm32-wasip2"),
        "{}",
        outcome.stdout
    );
}

#[test]
fn a_component_of_another_world_is_refused() {
    let outcome = check_file(&probes::path("notaprobe"));
    assert!(
        outcome
            .stdout
            .contains("does not implement the watchpost:probe@0.1.0 world"),
        "{}",
        outcome.stdout
    );
}

#[test]
fn a_missing_file_is_refused() {
    let outcome = check_file(Path::new("/no/such/probe.wasm"));
    assert!(
        outcome.stdout.contains("cannot read the file"),
        "{}",
        outcome.stdout
    );
}

#[test]
fn bad_files_in_json_format_give_a_load_error_object() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "empty.wasm", b"");
    let outcome = watchpost_run([
        "check".as_ref(),
        path.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert_eq!(outcome.code, 3);
    let report = outcome.json();
    assert_eq!(report["status"], "unknown");
    assert_eq!(report["error"]["kind"], "load");
    assert_eq!(report["probe"], "empty");
}
