//! Secrets kept outside the config: a `*_file` key names a file that only
//! the agent's user can read (checked by [`crate::sql::secrets`]), a
//! `*_env` key names an environment variable. Both are read at load (and
//! at each reload), so that `validate` reports a missing or exposed
//! secret at the key that names it; the values are [`Secret`]s, which
//! never print.

use super::super::model::Secret;
use super::super::reader::{At, Section};
use super::Parser;
use crate::sql::secrets::{first_line, read_secret_file};
use std::collections::BTreeMap;
use std::path::PathBuf;

impl Parser<'_, '_> {
    /// A path key, relative paths resolved from the config's directory.
    pub(super) fn path_key(&mut self, s: &mut Section, key: &'static str) -> Option<At<PathBuf>> {
        s.string(&mut self.d, key)
            .map(|p| At::new(self.source.base_dir.join(&p.value), p.span))
    }

    /// The first line of the private file `key` names, if it is given.
    pub(super) fn secret_file(&mut self, s: &mut Section, key: &'static str) -> Option<At<Secret>> {
        let file = self.path_key(s, key)?;
        match read_secret_file(&file.value) {
            Ok(text) => Some(At::new(Secret::new(first_line(&text)), file.span)),
            Err(e) => {
                self.d.error(file.span, format!("{}: `{key}`: {e}", s.path));
                None
            }
        }
    }

    /// The secret of `file_key` (the file's first line) or `env_key` (the
    /// variable's value), if either is given; giving both is an error.
    pub(super) fn secret(
        &mut self,
        s: &mut Section,
        file_key: &'static str,
        env_key: &'static str,
    ) -> Option<At<Secret>> {
        let file = self.path_key(s, file_key);
        let env = s.string(&mut self.d, env_key);
        match (file, env) {
            (Some(_), Some(env)) => {
                self.d.error(
                    env.span,
                    format!("{}: give `{file_key}` or `{env_key}`, not both", s.path),
                );
                None
            }
            (Some(file), None) => match read_secret_file(&file.value) {
                Ok(text) => Some(At::new(Secret::new(first_line(&text)), file.span)),
                Err(e) => {
                    self.d
                        .error(file.span, format!("{}: `{file_key}`: {e}", s.path));
                    None
                }
            },
            (None, Some(env)) => match std::env::var(&env.value) {
                Ok(value) if !value.is_empty() => Some(At::new(Secret::new(value), env.span)),
                _ => {
                    self.d.error(
                        env.span,
                        format!(
                            "{}: `{env_key}` names the environment variable {}, which is not set \
                             (set it in the agent's environment, e.g. a systemd drop-in with Environment=)",
                            s.path, env.value
                        ),
                    );
                    None
                }
            },
            (None, None) => None,
        }
    }

    /// Headers from a private file of `Name: value` lines (`#` comments).
    pub(super) fn header_file(
        &mut self,
        s: &mut Section,
        key: &'static str,
    ) -> BTreeMap<String, Secret> {
        let mut headers = BTreeMap::new();
        let Some(file) = self.path_key(s, key) else {
            return headers;
        };
        let text = match read_secret_file(&file.value) {
            Ok(text) => text,
            Err(e) => {
                self.d.error(file.span, format!("{}: `{key}`: {e}", s.path));
                return headers;
            }
        };
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parsed = line
                .split_once(':')
                .or_else(|| line.split_once('='))
                .map(|(k, v)| (k.trim(), v.trim()))
                .filter(|(k, v)| {
                    http::HeaderName::from_bytes(k.as_bytes()).is_ok()
                        && http::HeaderValue::from_str(v).is_ok()
                });
            match parsed {
                Some((name, value)) => {
                    headers.insert(name.to_ascii_lowercase(), Secret::new(value));
                }
                None => self.d.error(
                    file.span.clone(),
                    format!(
                        "{}: `{key}`: line {} of {} is not `Name: value` with a valid header name and value",
                        s.path,
                        n + 1,
                        file.value.display()
                    ),
                ),
            }
        }
        headers
    }
}
