//! Host sampling cannot hang: a FUSE mount whose daemon is stopped (as a
//! stalled NFS server would) is named as unknown by `host-disk`, the other
//! filesystems are still measured, `host-cpu` and `host-memory` keep
//! reporting, and every `watchpost check` exits by its deadline.
//!
//! The mount lives in a private mount namespace (`unshare -m`), so nothing
//! else on the machine sees it; `bindfs` is installed by `cargo xtask setup`.

use std::process::Command;
use std::time::{Duration, Instant};
use watchpost_e2e::cli::binary;

/// One `watchpost check` run inside the namespace: (exit code, ms, JSON).
fn runs(output: &str) -> Vec<(i32, u64, serde_json::Value)> {
    output
        .lines()
        .filter_map(|line| line.strip_prefix("RUN "))
        .map(|line| {
            let mut parts = line.splitn(3, ' ');
            let code = parts.next().unwrap().parse().unwrap();
            let ms = parts.next().unwrap().parse().unwrap();
            let json = serde_json::from_str(parts.next().unwrap()).unwrap_or_else(|e| {
                panic!("not JSON ({e}): {line}");
            });
            (code, ms, json)
        })
        .collect()
}

#[test]
fn a_stopped_fuse_daemon_is_named_and_nothing_else_stops() {
    if Command::new("bindfs").arg("--version").output().is_err() {
        panic!("bindfs is not installed: run `cargo xtask setup`");
    }
    let dir = tempfile::tempdir().unwrap();
    let (src, mnt) = (dir.path().join("src"), dir.path().join("mnt"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&mnt).unwrap();
    let watchpost = binary();
    // Each check prints `RUN CODE MS JSON`; `timeout 30` only guards
    // the test itself against a hang (it would fail the time assertion).
    let script = format!(
        r#"
run() {{
  start=$(date +%s%N)
  out=$(timeout -s KILL 30 {watchpost} check "$@" --format json)
  code=$?
  end=$(date +%s%N)
  echo "RUN $code $(( (end - start) / 1000000 )) $out"
}}
bindfs -f {src} {mnt} &
daemon=$!
for i in $(seq 50); do mountpoint -q {mnt} && break; sleep 0.1; done
mountpoint -q {mnt} || {{ echo "bindfs did not mount"; exit 1; }}
kill -STOP $daemon
run builtin:host-disk --set mounts=/,{mnt} --set warning=100 --set critical=100
run builtin:host-disk --set remote=true --set warning=100 --set critical=100
run builtin:host-disk --set warning=100 --set critical=100
run builtin:host-cpu
run builtin:host-memory
kill -CONT $daemon
kill $daemon
wait $daemon
"#,
        watchpost = watchpost.display(),
        src = src.display(),
        mnt = mnt.display()
    );
    let started = Instant::now();
    let output = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("run unshare");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let runs = runs(&stdout);
    assert_eq!(runs.len(), 5, "{stdout}\n{stderr}");
    let mnt = mnt.display().to_string();
    for (code, ms, report) in &runs {
        // The default probe timeout is 10 s; statvfs waits 1.5 s at most.
        assert!(*ms < 8000, "took {ms} ms: {report:#}");
        assert_ne!(*code, 137, "killed by the guard: {report:#}");
    }
    // Listed or opted in: the hung mount is unknown by name, / is measured.
    for (code, _, report) in &runs[..2] {
        assert_eq!(*code, 3, "{report:#}");
        let message = report["message"].as_str().unwrap();
        assert!(
            message.contains(&mnt) && message.contains("did not answer"),
            "{report:#}"
        );
        let measured: Vec<&str> = report["measurements"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["name"] == "system.filesystem.utilization")
            .map(|m| m["attributes"]["mountpoint"].as_str().unwrap())
            .collect();
        assert!(measured.contains(&"/"), "{report:#}");
        assert!(!measured.contains(&mnt.as_str()), "{report:#}");
    }
    // By default a FUSE filesystem is not checked at all.
    let (code, _, report) = &runs[2];
    assert!(
        !report["message"].as_str().unwrap().contains(&mnt),
        "{report:#}"
    );
    assert_ne!(*code, 3, "{report:#}");
    for (code, _, report) in &runs[3..] {
        assert!(report["error"].is_null(), "{report:#}");
        assert!(*code < 3, "{report:#}");
        assert!(
            !report["measurements"].as_array().unwrap().is_empty(),
            "{report:#}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(60));
}
