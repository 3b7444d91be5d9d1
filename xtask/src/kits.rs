//! The toolchains of the probe kits in `examples/probes/`, installed where
//! the kits' build commands look for them and at the versions they pin:
//! componentize-py in `python/.venv` (from `requirements.txt`),
//! componentize-js in `js/node_modules` (from `package-lock.json`), and
//! for the C kit `wit-bindgen` in `target/tools/bin` (its compiler and libc
//! are Debian packages, see `setup.rs`).

use super::apt::apt_install;
use super::run;
use std::path::Path;
use std::process::Command;

/// The version pinned by a `NAME==VERSION` line of `requirements.txt`.
fn pinned_requirement(requirements: &str, name: &str) -> Option<String> {
    requirements
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix(name)?.strip_prefix("=="))
        .map(|version| version.trim().to_string())
}

/// The version `componentize-py --version` reports, if it runs.
fn installed_componentize_py(tool: &Path) -> Option<String> {
    let output = Command::new(tool).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "componentize-py 0.25.1"
    text.split_whitespace().nth(1).map(str::to_string)
}

/// componentize-py, pinned, in a virtualenv of the Python kit.
pub fn python(kit: &Path) -> Result<(), String> {
    let requirements_path = kit.join("requirements.txt");
    let requirements = std::fs::read_to_string(&requirements_path)
        .map_err(|e| format!("cannot read {}: {e}", requirements_path.display()))?;
    let pinned = pinned_requirement(&requirements, "componentize-py").ok_or_else(|| {
        format!(
            "{} does not pin componentize-py==VERSION",
            requirements_path.display()
        )
    })?;
    let venv = kit.join(".venv");
    let tool = venv.join("bin/componentize-py");
    if installed_componentize_py(&tool).as_deref() == Some(pinned.as_str()) {
        return Ok(());
    }
    if Command::new("python3").arg("--version").output().is_err() {
        apt_install(&["python3", "python3-venv"])?;
    }
    let mut make_venv = Command::new("python3");
    make_venv.arg("-m").arg("venv").arg(&venv);
    if run(&mut make_venv).is_err() {
        // Debian's python3 ships venv (and ensurepip) separately.
        apt_install(&["python3-venv"])?;
        run(&mut make_venv)?;
    }
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&requirements_path))
}

/// componentize-js, at the versions of `package-lock.json`, in the
/// JavaScript kit's `node_modules`. A copy of the lock installed last is
/// kept in `node_modules/`, so a changed lock is installed again.
///
/// `npm ci`: exactly the locked versions, and the lock is never rewritten,
/// so a test run leaves the checkout clean. The lock lists the optional
/// packages of every platform (regenerate it with `npm install
/// --package-lock-only` after changing `package.json`).
pub fn js(kit: &Path) -> Result<(), String> {
    let lock_path = kit.join("package-lock.json");
    let lock = std::fs::read_to_string(&lock_path)
        .map_err(|e| format!("cannot read {}: {e}", lock_path.display()))?;
    let installed_lock = kit.join("node_modules/.xtask-installed-lock.json");
    if std::fs::read_to_string(&installed_lock).is_ok_and(|installed| installed == lock) {
        return Ok(());
    }
    if Command::new("npm").arg("--version").output().is_err() {
        apt_install(&["nodejs", "npm"])?;
    }
    run(Command::new("npm")
        .current_dir(kit)
        .args(["ci", "--no-audit", "--no-fund"]))?;
    std::fs::write(&installed_lock, lock)
        .map_err(|e| format!("cannot write {}: {e}", installed_lock.display()))
}

/// The wit-bindgen-cli the C kit's `build.sh` uses (the same version as the
/// workspace's `wit-bindgen` crate).
const WIT_BINDGEN_CLI: &str = "0.61.1";

/// `wit-bindgen` (for C bindings) in `root/bin`, from crates.io.
pub fn wit_bindgen(root: &Path) -> Result<(), String> {
    super::tools::cargo_install(root, "wit-bindgen-cli", "wit-bindgen", WIT_BINDGEN_CLI)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_read_from_requirements() {
        let text = "# comment\ncomponentize-py==0.25.1\nother==1\n";
        assert_eq!(
            pinned_requirement(text, "componentize-py").as_deref(),
            Some("0.25.1")
        );
        assert_eq!(
            pinned_requirement("componentize-py>=1", "componentize-py"),
            None
        );
    }
}
