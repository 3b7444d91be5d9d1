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
//!
//! The book is built from a staging copy of `docs/` (`target/book-src`)
//! to which a page per built-in probe is added, generated from the code
//! (see [`probes`]), and the config reference (`watchpost config
//! reference`, from the parser's key tables) replaces the stub
//! `docs/src/config-reference.md`; the agent is built (dev profile) for both.

mod links;
mod probes;

use super::{PROBES, cargo, root, run};
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
    let staging = root.join("target/book-src");
    for old in [&book, &staging] {
        if old.exists() {
            std::fs::remove_dir_all(old)
                .map_err(|e| format!("cannot remove the old {}: {e}", old.display()))?;
        }
    }
    copy_dir(&root.join("docs"), &staging)?;
    // The agent as `cargo xtask test` builds it (with the workspace's
    // feature set: see `test` in main.rs): `cargo build -p watchpost`
    // would resolve the shared dependencies with other features and
    // compile ~100 crates, wasmtime's among them, once more for the
    // tests that CI runs next.
    run(cargo().args(["test", "--workspace", "--no-run"]))?;
    let agent = root.join("target/debug/watchpost");
    probes::generate(&root, &staging, &agent, PROBES)?;
    config_reference(&staging, &agent)?;
    run(Command::new(tools.join("bin/mdbook"))
        .arg("build")
        .arg(&staging)
        .arg("--dest-dir")
        .arg(&book)
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

/// The page of the book that `watchpost config reference` prints, from
/// the parser's own key tables, written over the stub in `docs/`.
const CONFIG_REFERENCE: &str = "src/config-reference.md";

/// Write `watchpost config reference` into the staging copy `book`.
fn config_reference(book: &Path, agent: &Path) -> Result<(), String> {
    let output = Command::new(agent)
        .args(["config", "reference"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", agent.display()))?;
    if !output.status.success() || output.stdout.is_empty() {
        return Err(format!(
            "watchpost config reference failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let page = book.join(CONFIG_REFERENCE);
    if !page.exists() {
        return Err(format!(
            "docs/{CONFIG_REFERENCE} is missing: it is the stub the generated reference replaces (and SUMMARY.md links it)"
        ));
    }
    std::fs::write(&page, &output.stdout)
        .map_err(|e| format!("cannot write {}: {e}", page.display()))
}

/// `NAME` at `VERSION` in `TOOLS/bin`, unless it is there already.
fn install(tools: &Path, name: &str, version: &str) -> Result<(), String> {
    crate::tools::cargo_install(tools, name, name, version)
}

/// Copy a directory tree (files and directories only).
fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("create {}: {e}", to.display()))?;
    let entries =
        std::fs::read_dir(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        let (source, dest) = (entry.path(), to.join(entry.file_name()));
        if entry
            .file_type()
            .map_err(|e| format!("{}: {e}", source.display()))?
            .is_dir()
        {
            copy_dir(&source, &dest)?;
        } else {
            std::fs::copy(&source, &dest)
                .map_err(|e| format!("copy {} to {}: {e}", source.display(), dest.display()))?;
        }
    }
    Ok(())
}
