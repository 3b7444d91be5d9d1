//! The files of a new probe project, embedded in the binary so that
//! `watchpost new` works anywhere: the probe contract (`wit/`, the very
//! files this agent was built against) and one starter project per
//! language from `agent/templates/`.
//!
//! Templates hold `{{placeholder}}`s, filled in by [`render`].

use super::Lang;

/// Pinned tool versions; the same as the example kits in
/// `examples/probes/` (a unit test keeps them in step).
pub const COMPONENTIZE_PY: &str = "0.25.1";
pub const COMPONENTIZE_JS: &str = "0.23.0";
/// componentize-js imports it at run time but does not depend on it.
pub const PREVIEW2_SHIM: &str = "0.25.0";

/// One file of a project: where it goes, its template, and whether it is
/// a script to run.
pub struct Template {
    pub path: &'static str,
    pub text: &'static str,
    pub executable: bool,
}

const fn file(path: &'static str, text: &'static str) -> Template {
    Template {
        path,
        text,
        executable: false,
    }
}

/// The probe contract, copied into every project.
const WIT: &[Template] = &[
    file("wit/world.wit", include_str!("../../../../wit/world.wit")),
    file("wit/types.wit", include_str!("../../../../wit/types.wit")),
    file("wit/log.wit", include_str!("../../../../wit/log.wit")),
    file("wit/config.wit", include_str!("../../../../wit/config.wit")),
    file("wit/host.wit", include_str!("../../../../wit/host.wit")),
    file("wit/sql.wit", include_str!("../../../../wit/sql.wit")),
    file("wit/dirs.wit", include_str!("../../../../wit/dirs.wit")),
    file("wit/redis.wit", include_str!("../../../../wit/redis.wit")),
];

const RUST: &[Template] = &[
    file(
        "Cargo.toml",
        include_str!("../../../templates/rust/Cargo.toml"),
    ),
    file(
        ".cargo/config.toml",
        include_str!("../../../templates/rust/cargo-config.toml"),
    ),
    file(
        "src/lib.rs",
        include_str!("../../../templates/rust/src/lib.rs"),
    ),
    file(
        "README.md",
        include_str!("../../../templates/rust/README.md"),
    ),
    file(
        ".gitignore",
        include_str!("../../../templates/rust/gitignore"),
    ),
];

const PYTHON: &[Template] = &[
    file(
        "probe.py",
        include_str!("../../../templates/python/probe.py"),
    ),
    file(
        "requirements.txt",
        include_str!("../../../templates/python/requirements.txt"),
    ),
    Template {
        path: "build.sh",
        text: include_str!("../../../templates/python/build.sh"),
        executable: true,
    },
    file(
        "README.md",
        include_str!("../../../templates/python/README.md"),
    ),
    file(
        ".gitignore",
        include_str!("../../../templates/python/gitignore"),
    ),
];

const JS: &[Template] = &[
    file("probe.js", include_str!("../../../templates/js/probe.js")),
    file(
        "package.json",
        include_str!("../../../templates/js/package.json"),
    ),
    file("build.mjs", include_str!("../../../templates/js/build.mjs")),
    file("README.md", include_str!("../../../templates/js/README.md")),
    file(
        ".gitignore",
        include_str!("../../../templates/js/gitignore"),
    ),
];

/// Every file of a `lang` project.
pub fn files(lang: Lang) -> impl Iterator<Item = &'static Template> {
    let own = match lang {
        Lang::Rust => RUST,
        Lang::Python => PYTHON,
        Lang::Js => JS,
    };
    own.iter().chain(WIT)
}

/// `text` with the placeholders filled in for probe `name`.
pub fn render(text: &str, name: &str) -> String {
    text.replace("{{name}}", name)
        .replace("{{crate}}", &name.replace('-', "_"))
        .replace("{{componentize_py}}", COMPONENTIZE_PY)
        .replace("{{componentize_js}}", COMPONENTIZE_JS)
        .replace("{{preview2_shim}}", PREVIEW2_SHIM)
}

/// Where a project's built component ends up, relative to its directory.
pub fn component_path(lang: Lang, name: &str) -> String {
    match lang {
        Lang::Rust => format!(
            "target/wasm32-wasip2/release/{}.wasm",
            name.replace('-', "_")
        ),
        Lang::Python | Lang::Js => format!("build/{name}.wasm"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_the_probe_contract_is_copied() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".wit") {
                let path = format!("wit/{name}");
                assert!(
                    WIT.iter().any(|t| t.path == path),
                    "{path} is not in templates::WIT: a new project would not build"
                );
            }
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            for template in files(lang) {
                let text = render(template.text, "pg-check");
                assert!(!text.contains("{{"), "{}: {text}", template.path);
            }
        }
    }

    #[test]
    fn pinned_tools_match_the_example_kits() {
        let requirements = include_str!("../../../../examples/probes/python/requirements.txt");
        assert!(
            requirements.contains(&format!("componentize-py=={COMPONENTIZE_PY}\n")),
            "{requirements}"
        );
        let package = include_str!("../../../../examples/probes/js/package.json");
        for (name, version) in [
            ("componentize-js", COMPONENTIZE_JS),
            ("preview2-shim", PREVIEW2_SHIM),
        ] {
            let pin = format!("\"@bytecodealliance/{name}\": \"{version}\"");
            assert!(package.contains(&pin), "{pin} in {package}");
        }
    }

    #[test]
    fn rust_names_become_crate_names() {
        assert_eq!(render("{{crate}}", "pg-check"), "pg_check");
        assert_eq!(
            component_path(Lang::Rust, "pg-check"),
            "target/wasm32-wasip2/release/pg_check.wasm"
        );
    }
}
