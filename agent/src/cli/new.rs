//! `watchpost new NAME --lang rust|python|js [--dir DIR]`: start a probe
//! project that builds and passes `watchpost check` as it is, so that a
//! probe author begins from something that works and edits one function.
//!
//! The project holds the probe contract (`wit/`), a starter probe (host
//! memory use with configurable thresholds), its build command and a
//! README. Everything comes from templates embedded in the binary
//! ([`templates`]); nothing assumes this repository is on disk.

mod templates;

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The language of a new probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust with wit-bindgen; `cargo build --release`.
    Rust,
    /// Python with componentize-py; `sh build.sh`.
    Python,
    /// JavaScript with componentize-js; `npm install && npm run build`.
    Js,
}

#[derive(clap::Args, Debug)]
pub struct NewArgs {
    /// The probe's name: lowercase letters, digits and `-`, starting with a
    /// letter (e.g. `pg-bloat`).
    pub name: String,
    /// The language to write it in.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// The project directory to create (default: ./NAME). It must not exist
    /// or be empty.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub async fn run(args: NewArgs) -> Result<ExitCode> {
    check_name(&args.name)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    check_empty(&dir)?;
    for template in templates::files(args.lang) {
        let path = dir.join(template.path);
        write(
            &path,
            &templates::render(template.text, &args.name),
            template.executable,
        )
        .with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("{}", next_steps(args.lang, &args.name, &dir));
    Ok(ExitCode::SUCCESS)
}

impl Lang {
    fn label(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
        }
    }
}

/// Probe names become crate, package and file names: keep them plain.
fn check_name(name: &str) -> Result<()> {
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--");
    if valid {
        Ok(())
    } else {
        bail!(
            "probe name {name:?} is not valid: use at most 64 lowercase letters, digits and \
             single `-`, starting with a letter (e.g. `pg-bloat`)"
        )
    }
}

/// Refuse to write into a directory that holds anything.
fn check_empty(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} already exists and is not empty; choose another --dir or remove it",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            bail!(
                "{} exists and is not a directory; choose another --dir",
                dir.display()
            )
        }
        Err(e) => bail!("cannot use {}: {e}", dir.display()),
    }
}

fn write(path: &Path, text: &str, executable: bool) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)?;
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// What to type next.
fn next_steps(lang: Lang, name: &str, dir: &Path) -> String {
    let build = match lang {
        Lang::Rust => "rustup target add wasm32-wasip2   # once\n  cargo build --release",
        Lang::Python => {
            "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt   # once\n  \
             sh build.sh"
        }
        Lang::Js => "npm install   # once\n  npm run build",
    };
    format!(
        "created {lang} probe `{name}` in {dir}\n\nnext:\n  cd {dir}\n  {build}\n  \
         watchpost check {component}",
        lang = lang.label(),
        dir = dir.display(),
        component = templates::component_path(lang, name),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["pg-bloat", "a", "probe2", "x-1-y"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "", "Pg", "1probe", "pg_bloat", "pg bloat", "-pg", "pg-", "a--b", "../x",
        ] {
            let error = check_name(bad).unwrap_err().to_string();
            assert!(error.contains("is not valid"), "{bad}: {error}");
        }
        assert!(check_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn a_non_empty_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_empty(dir.path()).is_ok());
        assert!(check_empty(&dir.path().join("new")).is_ok());
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let error = check_empty(dir.path()).unwrap_err().to_string();
        assert!(error.contains("already exists and is not empty"), "{error}");
        let error = check_empty(&dir.path().join("keep.txt"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("is not a directory"), "{error}");
    }
}
