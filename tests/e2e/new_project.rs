//! `watchpost new NAME --lang rust|python|js`: each project builds with its
//! own build command, unchanged, and its probe passes `watchpost check`.

use std::path::{Path, PathBuf};
use std::process::Command;
use watchpost_e2e::cli::{assert_no_panic, target_dir, watchpost_run};
use watchpost_e2e::kits::{Kit, componentize_py};
use watchpost_e2e::report::value_where;

/// `watchpost new NAME --lang LANG --dir TEMP/NAME`.
fn new_project(name: &str, lang: &str) -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join(name);
    let outcome = watchpost_run([
        "new".as_ref(),
        name.as_ref(),
        "--lang".as_ref(),
        lang.as_ref(),
        "--dir".as_ref(),
        dir.as_os_str(),
    ]);
    assert_no_panic(&outcome);
    assert_eq!(outcome.code, 0, "{}", outcome.all_output());
    assert!(outcome.stdout.contains("next:"), "{}", outcome.stdout);
    for wit in ["world", "types", "log", "config", "host", "sql", "dirs"] {
        assert!(dir.join(format!("wit/{wit}.wit")).exists(), "wit/{wit}.wit");
    }
    (temp, dir)
}

fn run_ok(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The probe at `component` runs, ok, with the starter's measurement.
fn assert_checks_ok(component: &Path, name: &str) {
    let outcome = watchpost_run([
        "check".as_ref(),
        component.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert_no_panic(&outcome);
    assert_eq!(outcome.code, 0, "{}", outcome.all_output());
    let report = outcome.json();
    assert_eq!(report["probe"], name);
    let host = report["measurements"][0]["attributes"]["host"]
        .as_str()
        .expect("a host attribute")
        .to_string();
    let used = value_where(&report, "system.memory.utilization", "host", &host);
    assert!(used > 0.0 && used < 1.0, "{report:#}");
}

#[test]
fn a_new_rust_probe_builds_and_checks_ok() {
    let (_temp, dir) = new_project("rust-starter", "rust");
    // A target directory kept between runs, so that wit-bindgen is
    // compiled once, not on every test run.
    let target = target_dir().join("e2e-new-rust");
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .current_dir(&dir)
        .args(["build", "--release", "--quiet"])
        .env("CARGO_TARGET_DIR", &target);
    // The outer build's settings must not leak into the project's.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        build.env_remove(var);
    }
    run_ok(&mut build, "cargo build of the new Rust probe");
    assert_checks_ok(
        &target.join("wasm32-wasip2/release/rust_starter.wasm"),
        "rust-starter",
    );
}

#[test]
fn a_new_python_probe_builds_and_checks_ok() {
    let (_temp, dir) = new_project("python-starter", "python");
    // The pinned componentize-py of the Python kit: the same version the
    // project's requirements.txt pins (a unit test of the templates checks).
    run_ok(
        Command::new("sh")
            .arg("build.sh")
            .current_dir(&dir)
            .env("COMPONENTIZE_PY", componentize_py()),
        "build.sh of the new Python probe",
    );
    assert_checks_ok(&dir.join("build/python-starter.wasm"), "python-starter");
}

#[test]
fn a_new_javascript_probe_builds_and_checks_ok() {
    let (_temp, dir) = new_project("js-starter", "js");
    // The kit's install proves the registry and cache work; the project's
    // own install then takes the same packages.
    assert!(
        Kit::Js.dir().join("node_modules").exists(),
        "run `cargo xtask setup`"
    );
    run_ok(
        Command::new("npm")
            .args(["install", "--prefer-offline", "--no-audit", "--no-fund"])
            .current_dir(&dir),
        "npm install in the new JavaScript probe",
    );
    run_ok(
        Command::new("npm").args(["run", "build"]).current_dir(&dir),
        "npm run build of the new JavaScript probe",
    );
    assert_checks_ok(&dir.join("build/js-starter.wasm"), "js-starter");
}

#[test]
fn bad_names_and_occupied_directories_are_refused_clearly() {
    let temp = tempfile::tempdir().unwrap();
    let outcome = watchpost_run(["new", "Bad Name", "--lang", "rust"]);
    assert_no_panic(&outcome);
    assert_eq!(outcome.code, 3);
    assert!(
        outcome
            .stderr
            .contains("probe name \"Bad Name\" is not valid"),
        "{}",
        outcome.stderr
    );

    std::fs::write(temp.path().join("mine.txt"), "keep me").unwrap();
    let outcome = watchpost_run([
        "new".as_ref(),
        "fine".as_ref(),
        "--lang".as_ref(),
        "python".as_ref(),
        "--dir".as_ref(),
        temp.path().as_os_str(),
    ]);
    assert_eq!(outcome.code, 3);
    assert!(
        outcome.stderr.contains("already exists and is not empty"),
        "{}",
        outcome.stderr
    );
    assert_eq!(
        std::fs::read_to_string(temp.path().join("mine.txt")).unwrap(),
        "keep me"
    );
}
