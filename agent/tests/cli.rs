//! The binary's command line: help, version, usage errors. (This test also
//! makes `cargo test` build the `watchpost` binary that tests/ drives.)

use std::process::Command;

fn watchpost(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_watchpost"))
        .args(args)
        .output()
        .expect("run watchpost")
}

#[test]
fn help_lists_the_subcommands() {
    let out = watchpost(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for command in ["check", "validate"] {
        assert!(text.contains(command), "{command} missing from:\n{text}");
    }
}

#[test]
fn version_prints_the_crate_version() {
    let out = watchpost(&["--version"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn usage_errors_exit_unknown_without_a_panic() {
    let out = watchpost(&["check"]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("PROBE"), "{text}");
    assert!(!text.contains("panicked"));
}
