//! `cargo xtask <task>`: the project's tasks, in Rust rather than shell.
//!
//! - `build`: the agent (release) and every probe in `plugins/`, with the
//!   components copied to `target/probes/NAME.wasm`.
//! - `setup`: install what the tests need on a fresh Debian machine
//!   (idempotent: only what is missing), the probe kits' toolchains
//!   included.
//! - `test`: `setup`, the whole test suite compiled once
//!   (`cargo test --workspace --no-run`), the Debian package of that dev
//!   build (`dist --dev --no-build`, which the package test installs),
//!   then the suite run (`cargo test --workspace`).
//! - `dist [--dev] [--no-build]`: the Debian package in `target/debian/` (see [`dist`]).
//! - `bench [--quick] [--rounds N]`: the benchmark suite behind
//!   BENCHMARKS.md (see [`bench`]).
//! - `docs`: the operator's manual (`docs/`, an mdBook) in `target/book`,
//!   failing on a broken link (see [`docs`]).

mod apt;
mod bench;
mod dist;
mod docs;
mod kits;
mod setup;
mod tools;
mod valkey;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Every probe crate in `plugins/` (the SDK and build helper excluded).
use watchpost_probe_build::BUILTINS as PROBES;

fn root() -> PathBuf {
    watchpost_probe_build::workspace_root(Path::new(env!("CARGO_MANIFEST_DIR")))
}

/// `cargo` in the workspace's root, without the variables `cargo run`
/// set for xtask itself ([`plain_cargo`]).
fn cargo() -> Command {
    let mut command = plain_cargo();
    command.current_dir(root());
    command
}

/// `cargo`, without the variables `cargo run` set for xtask itself
/// (`CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR`, ...: see
/// [`watchpost_probe_build::without_cargo_run_env`]). A nested cargo that
/// kept them rebuilt ring and every crate above it, the agent included,
/// that a plain `cargo build` or `cargo test` had built, and the other
/// way round.
pub fn plain_cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    watchpost_probe_build::without_cargo_run_env(&mut command);
    command
}

/// Run a command, failing with its description if it does not succeed.
pub fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    eprintln!("xtask: {shown}");
    let status = command
        .status()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

fn build() -> Result<(), String> {
    run(cargo().args(["build", "--release", "-p", "watchpost"]))?;
    let root = root();
    let built = watchpost_probe_build::build(&root, PROBES)?;
    let out = root.join("target/probes");
    std::fs::create_dir_all(&out).map_err(|e| format!("create {}: {e}", out.display()))?;
    for (name, path) in PROBES.iter().zip(built) {
        let dest = out.join(format!("{name}.wasm"));
        std::fs::copy(&path, &dest)
            .map_err(|e| format!("copy {} to {}: {e}", path.display(), dest.display()))?;
        eprintln!("xtask: {}", dest.display());
    }
    eprintln!("xtask: the agent is target/release/watchpost; probes are in target/probes/");
    Ok(())
}

/// The environment variable that tells the end-to-end harness the
/// `watchpost` binary is already built (`watchpost_e2e::cli::binary`).
const E2E_BUILT: &str = "WATCHPOST_E2E_BUILT";

fn test(extra: &[String]) -> Result<(), String> {
    setup::install()?;
    // Everything is compiled once, with the workspace's feature set: a
    // `cargo build -p watchpost` here (or in the harness) would resolve
    // the shared dependencies with other features (the agent's tokio
    // without `test-util`, the tests' tonic without `server`) and compile
    // ~100 crates a second time, wasmtime's among them. The agent binary
    // this builds (the tests of its package need it) is the one the
    // package and the end-to-end tests use.
    run(cargo()
        .args(["test", "--workspace", "--no-run"])
        .args(extra))?;
    dist::dist(&["--dev".to_string(), "--no-build".to_string()])?;
    // One test thread per core (libtest's default). Three threads on 2
    // cores ran the suite in 598-676 s instead of ~1,000 s, but in one run
    // of three, three load-sensitive e2e tests failed: not worth a red CI.
    run(cargo()
        .args(["test", "--workspace"])
        .args(extra)
        .env(E2E_BUILT, "1"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build") => build(),
        Some("setup") => setup::install(),
        Some("test") => test(&args[1..]),
        Some("dist") => dist::dist(&args[1..]).map(|_| ()),
        Some("bench") => bench::bench(&args[1..]),
        Some("docs") => docs::docs(),
        _ => {
            eprintln!(
                "usage: cargo xtask build|setup|dist [--dev] [--no-build]|bench [--quick] [--rounds N]|docs|test [-- cargo test args]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}
