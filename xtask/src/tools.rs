//! The command-line tools the tasks install from crates.io at pinned
//! versions into `target/tools/bin` (cargo-deb, mdBook and its link
//! checker, wit-bindgen): one installer, so that every tool is checked,
//! built and placed the same way.
//!
//! They are built with the dev profile (`cargo install --debug`) into one
//! shared target directory (`target/tools/build`): they run for seconds
//! (a package, a book, some C bindings), and a release build of the four
//! costs CI several minutes of both cores; the shared directory compiles
//! their common dependencies once.

use super::run;
use std::path::Path;
use std::process::Command;

/// `cargo install --locked NAME --version VERSION --root TOOLS`, unless
/// `TOOLS/bin/BIN --version` already names that version (`BIN` is the
/// installed program: `wit-bindgen` for the `wit-bindgen-cli` crate).
///
/// Errors: the install's failure, as `run` reports it.
pub fn cargo_install(tools: &Path, name: &str, bin: &str, version: &str) -> Result<(), String> {
    let installed = Command::new(tools.join("bin").join(bin))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    if names_version(&installed, version) {
        return Ok(());
    }
    run(crate::plain_cargo()
        .args(["install", "--quiet", "--locked", "--debug", name])
        .args(["--version", version])
        .arg("--root")
        .arg(tools)
        .arg("--target-dir")
        .arg(tools.join("build"))
        // Settings of an outer build must not leak into this one.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS"))
}

/// Whether a tool's `--version` output names `version`: "cargo-deb
/// 3.8.0", "mdbook v0.5.4", "wit-bindgen-cli 0.61.1".
fn names_version(output: &str, version: &str) -> bool {
    output
        .split_whitespace()
        .any(|word| word.trim_start_matches('v') == version)
}

#[cfg(test)]
mod tests {
    use super::names_version;

    #[test]
    fn versions_are_read_from_each_tools_output() {
        assert!(names_version("cargo-deb 3.8.0\n", "3.8.0"));
        assert!(names_version("mdbook v0.5.4\n", "0.5.4"));
        assert!(names_version("wit-bindgen-cli 0.61.1\n", "0.61.1"));
        assert!(!names_version("mdbook v0.5.3\n", "0.5.4"));
        assert!(!names_version("", "0.5.4"));
    }
}
