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

#[test]
fn validate_refuses_out_of_range_durations_at_their_place_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watchpost.toml");
    std::fs::write(
        &path,
        "[[probe]]\nname = \"disk\"\nwasm = \"builtin:host-disk\"\n\
         every = \"0.001ms\"\ntimeout = \"200000000000000d\"\n\n\
         [[remediation]]\nname = \"r\"\non = { probe = \"disk\" }\n\
         action = { exec = [\"true\"] }\ncooldown = \"200000000000000d\"\n",
    )
    .unwrap();
    let file = path.display().to_string();
    let out = watchpost(&["validate", "-c", &file]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for expected in [
        format!(
            "{file}:4:9: [[probe]] \"disk\": `every` = \"0.001ms\" is out of range: write a duration from 10ms to 30d"
        ),
        format!(
            "{file}:5:11: [[probe]] \"disk\": `timeout` = \"200000000000000d\" is out of range"
        ),
        format!(
            "{file}:11:12: [[remediation]] \"r\": `cooldown` = \"200000000000000d\" is out of range: write a duration from 0s to 365d"
        ),
    ] {
        assert!(text.contains(&expected), "{expected:?} not in:\n{text}");
    }
    assert!(
        !text.contains("panicked") && !text.contains("internal error"),
        "{text}"
    );
    assert!(!text.contains("backtrace"), "{text}");
}

/// A config whose `[cluster]` names an etcd nobody listens on.
fn cluster_config(dir: &std::path::Path) -> String {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let path = dir.join("watchpost.toml");
    std::fs::write(
        &path,
        format!(
            "[targets.local]\ndsn = \"host=127.0.0.1 user=postgres\"\ndata_dir = \"/d\"\n\n\
             [cluster]\nscope = \"main\"\netcd = [\"http://127.0.0.1:{port}\"]\n\
             target = \"local\"\nconnect = \"10.9.9.9:5432\"\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn a_switchover_that_cannot_tell_exits_75_and_its_help_lists_the_codes() {
    let dir = tempfile::tempdir().unwrap();
    let config = cluster_config(dir.path());
    // etcd out of reach: whether a request is pending cannot be told
    // (75), not a refusal (2) nor any other error (3).
    for action in [&["--to", "node2"][..], &["--cancel"][..]] {
        let mut args = vec!["cluster", "switchover", "-c", &config];
        args.extend_from_slice(action);
        let out = watchpost(&args);
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(75), "{action:?}: {text}");
        assert!(text.contains("no etcd endpoint answered"), "{text}");
    }
    // Any other error stays 3.
    let out = watchpost(&[
        "cluster",
        "switchover",
        "-c",
        "/nonexistent/w.toml",
        "--cancel",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let out = watchpost(&["cluster", "switchover", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    for code in ["Exit codes:", "\n  2   refused", "\n  75  cannot tell"] {
        assert!(help.contains(code), "{code:?} not in:\n{help}");
    }
}
