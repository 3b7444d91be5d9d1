//! `cargo xtask docs`: the operator's manual (`docs/`, an mdBook) built
//! into `target/book`, failing on a broken link.
//!
//! mdBook and the `mdbook-linkcheck2` backend are installed from crates.io
//! at pinned versions into `target/tools/bin` (`cargo install --locked`).
//! The backend checks every link between chapters and to files of the
//! book; it does not check anchors, so this task then reads the built HTML
//! and checks every `#fragment` against the ids of the page it names, and
//! every link to a file of this repository
//! (`https://github.com/watchpost/watchpost/blob/main/PATH`) against the
//! checkout. The links of `README.md` and `BENCHMARKS.md` (relative paths
//! and their anchors, as GitHub renders them) are checked the same way.
//! External links are never fetched: CI has no internet.

mod links;

use super::{root, run};
use links::{check_html, check_markdown};
use std::path::Path;
use std::process::Command;

/// The mdBook version installed in `target/tools/bin`.
pub const MDBOOK: &str = "0.5.4";
/// The `mdbook-linkcheck2` version (its 0.13 line speaks mdBook 0.5).
pub const LINKCHECK: &str = "0.13.0";
/// Markdown files outside the book whose links are checked too.
const LOOSE_PAGES: [&str; 2] = ["README.md", "BENCHMARKS.md"];

/// `cargo xtask docs`: install the pinned tools, build, check the links.
pub fn docs() -> Result<(), String> {
    let root = root();
    let tools = root.join("target/tools");
    install(&tools, "mdbook", MDBOOK)?;
    install(&tools, "mdbook-linkcheck2", LINKCHECK)?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![tools.join("bin")];
    dirs.extend(std::env::split_paths(&path));
    let path = std::env::join_paths(dirs).map_err(|e| format!("PATH: {e}"))?;
    let book = root.join("target/book");
    if book.exists() {
        std::fs::remove_dir_all(&book)
            .map_err(|e| format!("cannot remove the old {}: {e}", book.display()))?;
    }
    run(Command::new(tools.join("bin/mdbook"))
        .arg("build")
        .arg(root.join("docs"))
        .env("PATH", path))?;
    let mut broken = check_html(&root, &book.join("html"))?;
    for page in LOOSE_PAGES {
        broken.extend(check_markdown(&root, &root.join(page))?);
    }
    if !broken.is_empty() {
        return Err(format!(
            "{} broken link(s):\n  {}",
            broken.len(),
            broken.join("\n  ")
        ));
    }
    eprintln!(
        "xtask: the manual is {}",
        book.join("html/index.html").display()
    );
    Ok(())
}

/// `cargo install --locked NAME --version VERSION --root TOOLS`, unless
/// `TOOLS/bin/NAME --version` already names that version.
fn install(tools: &Path, name: &str, version: &str) -> Result<(), String> {
    let installed = Command::new(tools.join("bin").join(name))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    // "mdbook v0.5.4", "mdbook-linkcheck2 0.13.0"
    if installed
        .split_whitespace()
        .any(|word| word.trim_start_matches('v') == version)
    {
        return Ok(());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo)
        .args(["install", "--quiet", "--locked", name, "--version", version])
        .arg("--root")
        .arg(tools)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS"))
}
