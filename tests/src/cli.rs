//! Running the real `watchpost` binary once and capturing what it did.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The `watchpost` binary of this workspace's build, brought up to date
/// once per test run (`cargo test -p watchpost-e2e` alone would not
/// rebuild it), unless `WATCHPOST_E2E_BUILT` is set: `cargo xtask test`
/// and `cargo xtask bench` set it, having built the binary themselves
/// (`cargo xtask test` with the whole workspace's features: `cargo build
/// -p watchpost` resolves the shared dependencies differently and would
/// compile them again).
pub fn binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        if std::env::var_os("WATCHPOST_E2E_BUILT").is_some() {
            return;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let mut build = Command::new(cargo);
        // Without the variables cargo set for this test or example: a
        // nested cargo with them rebuilds ring and the agent above it.
        watchpost_probe_build::without_cargo_run_env(&mut build);
        build
            .current_dir(root)
            .args(["build", "--quiet", "-p", "watchpost", "--bin", "watchpost"]);
        if !cfg!(debug_assertions) {
            build.arg("--release");
        }
        let status = build
            .status()
            .expect("run cargo build for the watchpost binary");
        assert!(status.success(), "building the watchpost binary failed");
    });
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/e2e-HASH -> target/<profile>/watchpost
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("watchpost"))
        .expect("test executable in target/<profile>/deps");
    assert!(
        path.exists(),
        "{} does not exist: build it first (`cargo build -p watchpost`; `cargo xtask test` does)",
        path.display()
    );
    path
}

/// The workspace's target directory, found from this test executable's
/// path (`target/<profile>/deps/e2e-HASH`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors()
        .nth(3)
        .map(std::path::Path::to_path_buf)
        .expect("test executable in target/<profile>/deps")
}

/// The state directory (and so the compile cache) of every run that does
/// not choose its own: `target/e2e-state`, kept between test runs so that
/// probes compiled once load from the cache afterwards, and never the
/// user's own state directory.
pub fn shared_state_dir() -> PathBuf {
    target_dir().join("e2e-state")
}

/// A fresh `watchpost` command.
pub fn watchpost() -> Command {
    let mut command = Command::new(binary());
    command
        .env_remove("WATCHPOST_LOG")
        .env("WATCHPOST_STATE_DIR", shared_state_dir());
    command
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Peak resident memory of the process, in KiB.
    pub max_rss_kib: i64,
}

impl Outcome {
    /// stdout parsed as one JSON value.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Everything the process printed.
    pub fn all_output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Run `command` to completion, measuring its peak RSS.
///
/// The command runs under the `peak_rss` helper of this crate (see
/// `src/bin/peak_rss.rs` for why a child of the test process cannot
/// measure its own peak), with the command's arguments, environment and
/// working directory.
pub fn run(command: Command) -> Outcome {
    let measured = tempfile::NamedTempFile::new().expect("a temporary file for the peak RSS");
    let mut wrapped = Command::new(helper("peak_rss"));
    wrapped
        .arg(measured.path())
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    let output = wrapped
        .stdin(Stdio::null())
        .output()
        .expect("spawn watchpost under peak_rss");
    let code = match output.status.code() {
        Some(code) => code,
        None => panic!("peak_rss itself was killed: {:?}", output.status),
    };
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let max_rss_kib = std::fs::read_to_string(measured.path())
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or_else(|| panic!("peak_rss wrote no measurement (exit {code}):\n{stderr}"));
    Outcome {
        code,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr,
        max_rss_kib,
    }
}

/// A binary of this crate (`src/bin/NAME.rs`), which cargo builds before
/// it runs the integration tests: `target/<profile>/NAME`.
fn helper(name: &str) -> PathBuf {
    let path = target_dir().join(profile()).join(name);
    assert!(
        path.exists(),
        "{} does not exist: `cargo test -p watchpost-e2e` builds it",
        path.display()
    );
    path
}

/// The cargo profile directory this test executable was built into.
fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// `watchpost ARGS...`, run to completion.
pub fn watchpost_run<I, S>(args: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = watchpost();
    command.args(args);
    run(command)
}

/// `watchpost check PROBE --format json EXTRA...`: the outcome, checked for
/// panics, and the report it printed.
pub fn check_json(probe: &std::path::Path, extra: &[&str]) -> (Outcome, serde_json::Value) {
    let mut command = watchpost();
    command
        .arg("check")
        .arg(probe)
        .args(["--format", "json"])
        .args(extra);
    let outcome = run(command);
    assert_no_panic(&outcome);
    let report = outcome.json();
    (outcome, report)
}

/// Fail with the full output if it shows a Rust panic or backtrace.
pub fn assert_no_panic(outcome: &Outcome) {
    let all = outcome.all_output();
    for marker in [
        "panicked at",
        "RUST_BACKTRACE",
        "stack backtrace",
        "internal error",
    ] {
        assert!(
            !all.contains(marker),
            "output shows a panic ({marker}):\n{all}"
        );
    }
}
