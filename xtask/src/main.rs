//! `cargo xtask <task>`: the project's tasks, in Rust rather than shell.
//!
//! - `build`: the agent (release) and every probe in `plugins/`, with the
//!   components copied to `target/probes/NAME.wasm`.
//! - `setup`: install what the tests need on a fresh Debian machine
//!   (idempotent: only what is missing), the probe kits' toolchains
//!   included.
//! - `test`: `setup`, the Debian package of the dev build (`dist --dev`,
//!   which the package test installs), then the whole test suite
//!   (`cargo test --workspace`).
//! - `dist [--dev]`: the Debian package in `target/debian/` (see [`dist`]).
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
mod valkey;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Every probe crate in `plugins/` (the SDK and build helper excluded).
use watchpost_probe_build::BUILTINS as PROBES;

fn root() -> PathBuf {
    watchpost_probe_build::workspace_root(Path::new(env!("CARGO_MANIFEST_DIR")))
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(root());
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

fn test(extra: &[String]) -> Result<(), String> {
    setup::install()?;
    run(cargo().args(["build", "-p", "watchpost"]))?;
    dist::dist(&["--dev".to_string()])?;
    run(cargo().args(["test", "--workspace"]).args(extra))
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
                "usage: cargo xtask build|setup|dist [--dev]|bench [--quick] [--rounds N]|docs|test [-- cargo test args]"
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
