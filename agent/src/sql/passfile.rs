//! libpq's password file (`passfile` keyword, `PGPASSFILE`, `~/.pgpass`):
//! lines of `hostname:port:database:username:password`, `*` matching
//! anything, `\:` and `\\` escaping, `#` starting a comment; the first
//! matching line wins. Unlike libpq, which ignores a file others can read
//! with a warning, such a file is refused with the fix named (see
//! [`super::secrets`]): a password must not silently stop working, nor be
//! silently exposed.

use super::secrets::read_secret_file;
use std::path::{Path, PathBuf};
use tokio_postgres::config::Host;

/// Where to look: the `passfile` keyword, else `PGPASSFILE`, else
/// `~/.pgpass` if it exists. `None` when there is no file to read.
pub fn locate(keyword: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(path) = keyword {
        return Some(path.to_path_buf());
    }
    if let Some(path) = env("PGPASSFILE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let default = PathBuf::from(env("HOME")?).join(".pgpass");
    default.exists().then_some(default)
}

/// The password `file` gives for `config`'s first host, port, database
/// and user, if any line matches.
pub fn lookup(file: &Path, config: &tokio_postgres::Config) -> Result<Option<String>, String> {
    let text = read_secret_file(file)?;
    let Some(user) = config.get_user() else {
        return Ok(None);
    };
    let hosts: Vec<String> = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => vec![host.clone()],
        // libpq matches a socket by "localhost" (the default directory)
        // or by its directory.
        Some(Host::Unix(dir)) => vec!["localhost".into(), dir.display().to_string()],
        None => vec!["localhost".into()],
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let dbname = config.get_dbname().unwrap_or(user);
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_fields(line);
        let [h, p, d, u, password] = fields.as_slice() else {
            continue;
        };
        let matches = |field: &String, value: &str| field == "*" || field == value;
        if hosts.iter().any(|host| matches(h, host))
            && matches(p, &port)
            && matches(d, dbname)
            && matches(u, user)
        {
            return Ok(Some(password.clone()));
        }
    }
    Ok(None)
}

/// The five fields of a line; the last takes the rest of the line.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut().unwrap().extend(chars.next()),
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::str::FromStr;

    #[test]
    fn the_first_matching_line_wins_and_escapes_work() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(
            &file,
            "# comment\nother:5432:*:w:no\n127.0.0.1:5433:app:w:it\\:s\n*:*:*:w:fallback\n",
        )
        .unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config =
            tokio_postgres::Config::from_str("host=127.0.0.1 port=5433 user=w dbname=app").unwrap();
        assert_eq!(lookup(&file, &config).unwrap().as_deref(), Some("it:s"));
        let config = tokio_postgres::Config::from_str("host=h user=w").unwrap();
        assert_eq!(lookup(&file, &config).unwrap().as_deref(), Some("fallback"));
        let config = tokio_postgres::Config::from_str("host=h user=x").unwrap();
        assert_eq!(lookup(&file, &config).unwrap(), None);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(lookup(&file, &config).unwrap_err().contains("chmod 0600"));
    }

    #[test]
    fn the_keyword_wins_over_the_environment() {
        let env = |name: &str| (name == "PGPASSFILE").then(|| "/env/pgpass".to_string());
        assert_eq!(
            locate(Some(Path::new("/kw")), env),
            Some(PathBuf::from("/kw"))
        );
        assert_eq!(locate(None, env), Some(PathBuf::from("/env/pgpass")));
        assert_eq!(locate(None, |_| None), None);
    }
}
