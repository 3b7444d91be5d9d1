//! The link checks of `cargo xtask docs` that mdbook-linkcheck2 does not
//! make: `#fragment`s against the ids of the built HTML page they name,
//! links to files of this repository against the checkout, and the links
//! of loose Markdown files (README.md, BENCHMARKS.md) with their anchors as
//! GitHub renders them. Each check returns the broken links, one line each.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

/// Links to files of the repository, as the manual writes them.
const REPO_PREFIXES: [&str; 2] = [
    "https://github.com/watchpost/watchpost/blob/main/",
    "https://github.com/watchpost/watchpost/tree/main/",
];

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
