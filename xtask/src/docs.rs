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

use super::{root, run};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// The mdBook version installed in `target/tools/bin`.
pub const MDBOOK: &str = "0.5.4";
/// The `mdbook-linkcheck2` version (its 0.13 line speaks mdBook 0.5).
pub const LINKCHECK: &str = "0.13.0";
/// Links to files of the repository, as the manual writes them.
const REPO_PREFIXES: [&str; 2] = [
    "https://github.com/watchpost/watchpost/blob/main/",
    "https://github.com/watchpost/watchpost/tree/main/",
];
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

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Every value of `attribute="..."` in an HTML text.
fn attribute_values<'a>(html: &'a str, attribute: &str) -> Vec<&'a str> {
    let needle = format!(" {attribute}=\"");
    html.match_indices(&needle)
        .filter_map(|(at, _)| {
            let rest = &html[at + needle.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

/// `a/b/../c` without touching the file system; None if it leaves the root.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

/// A link to a file of this repository: the path inside it.
fn repo_path(link: &str) -> Option<&str> {
    REPO_PREFIXES
        .iter()
        .find_map(|prefix| link.strip_prefix(prefix))
        .map(|rest| rest.split('#').next().unwrap_or(rest))
}

/// Whether a link is left alone: another site, mail, or a script.
fn is_external(link: &str) -> bool {
    link.contains("://") || link.starts_with("mailto:") || link.starts_with("javascript:")
}

/// The broken links of the built book: missing pages, missing anchors,
/// missing repository files. `html` is mdBook's HTML output directory.
pub fn check_html(root: &Path, html: &Path) -> Result<Vec<String>, String> {
    let mut pages = BTreeMap::new();
    collect_pages(html, html, &mut pages)?;
    let ids: BTreeMap<&PathBuf, BTreeSet<&str>> = pages
        .iter()
        .map(|(path, text)| (path, attribute_values(text, "id").into_iter().collect()))
        .collect();
    let mut broken = Vec::new();
    for (page, text) in &pages {
        let name = page.to_string_lossy();
        // The print page repeats every chapter with rewritten links, and
        // the 404 page is served from anywhere: mdBook's own.
        if name == "print.html" || name == "404.html" || name == "toc.html" {
            continue;
        }
        for link in attribute_values(text, "href") {
            if let Some(file) = repo_path(link) {
                if !root.join(file).exists() {
                    broken.push(format!("{name}: {link}: no {file} in the repository"));
                } else if let Some((_, fragment)) = link.split_once('#')
                    && file.ends_with(".md")
                    && !markdown_anchors(&read(&root.join(file))?).contains(fragment)
                {
                    broken.push(format!(
                        "{name}: {link}: no heading for #{fragment} in {file}"
                    ));
                }
                continue;
            }
            if is_external(link) {
                continue;
            }
            let (file, fragment) = match link.split_once('#') {
                Some((file, fragment)) => (file, Some(fragment)),
                None => (link, None),
            };
            let target = if file.is_empty() {
                Some(page.clone())
            } else {
                let dir = page.parent().unwrap_or(Path::new(""));
                normalize(&dir.join(file)).map(|t| {
                    if file.ends_with('/') {
                        t.join("index.html")
                    } else {
                        t
                    }
                })
            };
            let Some(target) = target else {
                broken.push(format!("{name}: {link}: leaves the book"));
                continue;
            };
            if !html.join(&target).exists() {
                broken.push(format!("{name}: {link}: no page {}", target.display()));
                continue;
            }
            if let Some(fragment) = fragment.filter(|f| !f.is_empty())
                && let Some(known) = ids.get(&target)
                && !known.contains(fragment)
            {
                broken.push(format!(
                    "{name}: {link}: no anchor #{fragment} in {}",
                    target.display()
                ));
            }
        }
    }
    Ok(broken)
}

/// Every `.html` file under `dir`, by its path relative to `base`.
fn collect_pages(
    base: &Path,
    dir: &Path,
    pages: &mut BTreeMap<PathBuf, String>,
) -> Result<(), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            collect_pages(base, &path, pages)?;
        } else if path.extension().is_some_and(|e| e == "html") {
            let text = read(&path)?;
            let relative = path.strip_prefix(base).unwrap_or(&path).to_path_buf();
            pages.insert(relative, text);
        }
    }
    Ok(())
}

/// The anchor GitHub gives a heading: lower case, punctuation dropped
/// (letters, digits, `-` and `_` kept), spaces as `-`.
pub fn github_slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown text's headings (outside code blocks).
fn markdown_anchors(text: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut anchors = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            anchors.insert(github_slug(line.trim_start_matches('#')));
        }
    }
    anchors
}

/// Every `](target)` of a Markdown text (outside code blocks).
fn markdown_links(text: &str) -> Vec<&str> {
    let mut in_code = false;
    let mut links = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        for (at, _) in line.match_indices("](") {
            let rest = &line[at + 2..];
            if let Some(end) = rest.find(')') {
                links.push(&rest[..end]);
            }
        }
    }
    links
}

/// The broken links of one Markdown file read as GitHub renders it:
/// relative paths must exist in the repository, and an anchor into a
/// Markdown file must name one of its headings.
pub fn check_markdown(root: &Path, file: &Path) -> Result<Vec<String>, String> {
    let text = read(file)?;
    let name = file
        .strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string();
    let dir = file.parent().unwrap_or(root);
    let mut broken = Vec::new();
    for link in markdown_links(&text) {
        if is_external(link) && repo_path(link).is_none() {
            continue;
        }
        let (path, fragment) = match link.split_once('#') {
            Some((path, fragment)) => (path, Some(fragment)),
            None => (link, None),
        };
        let target = match repo_path(link) {
            Some(inside) => root.join(inside),
            None if path.is_empty() => file.to_path_buf(),
            None => dir.join(path),
        };
        if !target.exists() {
            broken.push(format!("{name}: {link}: no {}", target.display()));
            continue;
        }
        if let Some(fragment) = fragment.filter(|f| !f.is_empty())
            && target.extension().is_some_and(|e| e == "md")
            && !markdown_anchors(&read(&target)?).contains(fragment)
        {
            broken.push(format!(
                "{name}: {link}: no heading for #{fragment} in {}",
                target.display()
            ));
        }
    }
    Ok(broken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_githubs() {
        assert_eq!(
            github_slug(" What does one probe run cost?"),
            "what-does-one-probe-run-cost"
        );
        assert_eq!(
            github_slug("Timing: etcd's failover must fit"),
            "timing-etcds-failover-must-fit"
        );
        assert_eq!(github_slug("`sql` and _io_"), "sql-and-_io_");
    }

    #[test]
    fn a_missing_anchor_or_page_is_broken_and_a_good_link_is_not() {
        let dir = std::env::temp_dir().join(format!("xtask-docs-{}", std::process::id()));
        let html = dir.join("html");
        std::fs::create_dir_all(html.join("sub")).unwrap();
        std::fs::write(
            html.join("a.html"),
            r##"<h2 id="here">x</h2><a href="sub/b.html#there">ok</a> <a href="sub/b.html#nowhere">bad</a>
<a href="#here">self</a> <a href="gone.html">missing</a> <a href="https://example.com/x#y">external</a>
<a href="https://github.com/watchpost/watchpost/blob/main/no/such/file.toml">repo</a>"##,
        )
        .unwrap();
        std::fs::write(
            html.join("sub/b.html"),
            r#"<p id="there"></p><a href="../a.html#here">back</a>"#,
        )
        .unwrap();
        let broken = check_html(&dir, &html).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(broken.len(), 3, "{broken:?}");
        assert!(broken[0].contains("#nowhere"), "{broken:?}");
        assert!(broken[1].contains("gone.html"), "{broken:?}");
        assert!(broken[2].contains("no/such/file.toml"), "{broken:?}");
    }

    #[test]
    fn markdown_anchors_are_checked_against_headings() {
        let dir = std::env::temp_dir().join(format!("xtask-docs-md-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("B.md"),
            "# Top\n\n## How fast is it?\n```\n# not a heading\n```\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("A.md"),
            "[ok](B.md#how-fast-is-it) [bad](B.md#not-a-heading) [gone](C.md) [web](https://example.com)\n",
        )
        .unwrap();
        let broken = check_markdown(&dir, &dir.join("A.md")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(broken.len(), 2, "{broken:?}");
        assert!(broken[0].contains("#not-a-heading"), "{broken:?}");
        assert!(broken[1].contains("C.md"), "{broken:?}");
    }
}
