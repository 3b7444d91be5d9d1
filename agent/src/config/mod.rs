//! The agent config: TOML in, a validated [`Config`] out, or every error
//! found as `FILE:LINE:COL: message`.
//!
//! Reading goes through [`reader::Section`], which knows where each value
//! sits in the file and which keys were expected, so that a typo, a wrong
//! type or a bad value is reported at its place, naming the key and what
//! to write instead. A config with any error is rejected as a whole: the
//! agent never starts (or reloads) half-configured.

mod diagnostics;
pub mod keys;
mod model;
mod parse;
pub mod range;
mod reader;
pub mod reference;
pub mod units;

pub use diagnostics::{ConfigErrors, Diagnostic};
pub use model::*;
pub use parse::{
    default_concurrency, default_state_dir, redis_check_words, resolve_env, validate_dsn,
};

use std::path::Path;

/// The text of the embedded default config.
pub const DEFAULT_TEXT: &str = include_str!("default.toml");

/// Name of the embedded default in messages.
pub const DEFAULT_NAME: &str = "<embedded default>";

/// Parse config `text`; `file` names it in messages and relative paths are
/// resolved against `base_dir`.
pub fn parse_str(file: &str, text: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    let builtins = crate::builtin::names();
    parse::parse(&parse::Source {
        file,
        text,
        base_dir,
        builtins: &builtins,
    })
}

/// Read and parse the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors::whole_file(&file, format!("cannot read the config file: {e}"))
    })?;
    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base_dir = std::fs::canonicalize(base_dir).unwrap_or_else(|_| base_dir.to_path_buf());
    parse_str(&file, &text, &base_dir)
}

/// The embedded default config.
pub fn embedded_default() -> Config {
    match parse_str(DEFAULT_NAME, DEFAULT_TEXT, Path::new("/")) {
        Ok(config) => config,
        Err(errors) => unreachable!("the embedded default config is valid (tested): {errors}"),
    }
}

/// `path` or the embedded default.
pub fn load_or_default(path: Option<&Path>) -> Result<Config, ConfigErrors> {
    match path {
        Some(path) => load(path),
        None => Ok(embedded_default()),
    }
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod keys_tests;
#[cfg(test)]
mod tests;
