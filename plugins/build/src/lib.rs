//! Build probe crates of this workspace into WebAssembly components.
//!
//! Used by `agent/build.rs` (to embed the built-in probes), `tests/build.rs`
//! (to build the probes the tests run, hostile ones included) and `xtask`.
//! It runs a nested `cargo build --target wasm32-wasip2 --profile probe` in
//! a target directory of its own, so it never waits on the outer build's
//! lock, and it installs the wasm32-wasip2 target with rustup when missing.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The built-in probes: the crates in `plugins/` that the agent embeds
/// (`wasm = "builtin:NAME"`), builds for `cargo xtask build` and the tests
/// run. The one list: add a probe crate here and it is embedded, built and
/// tested everywhere.
pub const BUILTINS: &[&str] = &[
    "host-cpu",
    "host-memory",
    "host-disk",
    "process",
    "pg-alive",
    "pg-replication",
    "pg-consistency",
    "pg-integrity",
    "pg-performance",
    "pg-archiving",
    "pg-backup",
    "mysql-alive",
    "mysql-replication",
    "mysql-performance",
    "mysql-integrity",
    "mysql-consistency",
    "mysql-backup",
    "redis-alive",
    "redis-replication",
    "redis-persistence",
    "redis-performance",
    "redis-consistency",
    "redis-backup",
];

/// The Rust target probes are built for: its `cdylib` output is a component.
pub const TARGET: &str = "wasm32-wasip2";

/// The workspace root (the directory holding the top `Cargo.toml`), given
/// the manifest directory of a crate one or two levels below it.
pub fn workspace_root(manifest_dir: &Path) -> PathBuf {
    manifest_dir
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .map(|text| text.contains("[workspace]"))
                .unwrap_or(false)
        })
        .unwrap_or(manifest_dir)
        .to_path_buf()
}

/// Where probe builds go: `<target>/wasm`, beside the normal build.
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                root.join(dir)
            }
        })
        .unwrap_or_else(|| root.join("target"))
        .join("wasm")
}

/// Install the wasm32-wasip2 standard library with rustup if it is missing.
pub fn ensure_target() -> Result<(), String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run {rustc}: {e}"))?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    if Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .exists()
    {
        return Ok(());
    }
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .map_err(|e| format!("the {TARGET} target is missing and rustup could not be run ({e}); install it with `rustup target add {TARGET}`"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`rustup target add {TARGET}` failed; run it by hand and build again"
        ))
    }
}

/// Remove from `command` the variables cargo sets for the program,
/// build script or test it runs that name that crate
/// (`CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR`, `OUT_DIR`, ...): build scripts
/// such as ring's rerun when they change
/// (`rerun-if-env-changed=CARGO_PKG_NAME`), and so does every crate above
/// them. `CARGO` (which cargo to run) and `CARGO_HOME` stay, and so do
/// the other variables a build script gets (`PROFILE`, `TARGET`,
/// `CARGO_CFG_*`, ...), which no dependency seen here reruns on.
pub fn without_cargo_run_env(command: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        let Some(name) = key.to_str() else { continue };
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || matches!(
                name,
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE" | "OUT_DIR"
            )
        {
            command.env_remove(&key);
        }
    }
    command
}

/// Build `packages` (crate names) of the workspace at `root` and return
/// the path of each component, in the same order.
pub fn build(root: &Path, packages: &[&str]) -> Result<Vec<PathBuf>, String> {
    ensure_target()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = target_dir(root);
    let mut command = Command::new(&cargo);
    without_cargo_run_env(&mut command)
        .current_dir(root)
        .args(["build", "--quiet", "--target", TARGET, "--profile", "probe"])
        .arg("--target-dir")
        .arg(&target_dir);
    for package in packages {
        command.args(["-p", package]);
    }
    // Settings of the outer build (host flags, its target dir) must not
    // leak into the probe build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        command.env_remove(var);
    }
    let status = command
        .status()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the probes {packages:?} for {TARGET} failed (see the errors above)"
        ));
    }
    Ok(packages
        .iter()
        .map(|p| component_path(&target_dir, p))
        .collect())
}

/// Path of the component built for `package` in `target_dir`.
pub fn component_path(target_dir: &Path, package: &str) -> PathBuf {
    target_dir
        .join(TARGET)
        .join("probe")
        .join(format!("{}.wasm", package.replace('-', "_")))
}
