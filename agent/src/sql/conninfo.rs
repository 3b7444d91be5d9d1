//! A target's connection string, read as libpq reads it: the keywords
//! `tokio-postgres` understands go to its `Config`; the TLS and password
//! keywords it does not (`sslmode=verify-ca|verify-full|allow`,
//! `sslrootcert`, `sslcert`, `sslkey`, `passfile`) are taken out here and
//! handled by [`super::tls`] and [`super::passfile`]. Both forms work:
//! `host=... sslmode=verify-full` and `postgres://...?sslmode=verify-full`.

use super::tls::{SslMode, TlsFiles};
use std::path::PathBuf;
use std::str::FromStr;

/// A parsed connection string.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// Everything tokio-postgres understands (its `sslmode` is set per
    /// attempt by the connector).
    pub config: tokio_postgres::Config,
    pub ssl_mode: SslMode,
    pub files: TlsFiles,
    /// The `passfile` keyword.
    pub passfile: Option<PathBuf>,
}

/// The keywords handled here rather than by tokio-postgres.
const OURS: [&str; 5] = ["sslmode", "sslrootcert", "sslcert", "sslkey", "passfile"];
/// libpq keywords Watchpost does not implement: refused rather than
/// silently ignored, since each would weaken what the user asked for.
const UNSUPPORTED: [&str; 3] = ["sslcrl", "sslcrldir", "sslpassword"];

impl ConnInfo {
    /// Parse `dsn`. Errors say which keyword or value is wrong.
    pub fn parse(dsn: &str) -> Result<ConnInfo, String> {
        let trimmed = dsn.trim_start();
        let (rest, ours) =
            if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
                split_url(trimmed)?
            } else {
                split_keywords(dsn)?
            };
        let config = tokio_postgres::Config::from_str(&rest).map_err(|e| e.to_string())?;
        let mut info = ConnInfo {
            config,
            ssl_mode: SslMode::Prefer,
            files: TlsFiles::default(),
            passfile: None,
        };
        for (key, value) in ours {
            let path = || Some(PathBuf::from(&value));
            match key.as_str() {
                "sslmode" => info.ssl_mode = SslMode::parse(&value)?,
                "sslrootcert" => info.files.root_cert = path(),
                "sslcert" => info.files.cert = path(),
                "sslkey" => info.files.key = path(),
                "passfile" => info.passfile = path(),
                _ => unreachable!("only OURS are split off"),
            }
        }
        // The agent opens each host's socket itself (`super::guard`), and
        // that path does not check the session's role nor balance hosts:
        // a "read-write" DSN listing two nodes could land on the standby.
        if info.config.get_target_session_attrs() != tokio_postgres::config::TargetSessionAttrs::Any
        {
            return Err(
                "`target_session_attrs` is not supported by Watchpost; give each target one \
                 server (cluster mode and the role endpoints say which one is the primary)"
                    .into(),
            );
        }
        if info.config.get_load_balance_hosts() != tokio_postgres::config::LoadBalanceHosts::Disable
        {
            return Err("`load_balance_hosts` is not supported by Watchpost; remove it".into());
        }
        if info.files.cert.is_some() != info.files.key.is_some() {
            return Err(
                "give both `sslcert` and `sslkey` for a client certificate, or neither".into(),
            );
        }
        // libpq never uses TLS over a Unix socket.
        let all_unix = info
            .config
            .get_hosts()
            .iter()
            .all(|h| matches!(h, tokio_postgres::config::Host::Unix(_)));
        if all_unix && !info.config.get_hosts().is_empty() {
            info.ssl_mode = SslMode::Disable;
        }
        Ok(info)
    }
}

type Split = (String, Vec<(String, String)>);

fn check_keyword(key: &str) -> Result<bool, String> {
    if UNSUPPORTED.contains(&key) {
        return Err(format!(
            "`{key}` is not supported by Watchpost; remove it (see the manual's PostgreSQL chapter, \"TLS and passwords\": docs/src/engines/postgresql.md)"
        ));
    }
    Ok(OURS.contains(&key))
}

/// `key=value` pairs: ours taken out, the rest re-quoted for tokio-postgres.
fn split_keywords(dsn: &str) -> Result<Split, String> {
    let mut rest = Vec::new();
    let mut ours = Vec::new();
    for (key, value) in keyword_pairs(dsn)? {
        if check_keyword(&key)? {
            ours.push((key, value));
        } else {
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            rest.push(format!("{key}='{quoted}'"));
        }
    }
    Ok((rest.join(" "), ours))
}

/// The pairs of a libpq keyword/value string (`key = value`, values
/// optionally single-quoted, `\` escaping the next character).
fn keyword_pairs(dsn: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = dsn.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!("expected `=` after `{key}`"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(format!("the quoted value of `{key}` is not closed")),
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// A URL: our query parameters taken out, the rest kept as written.
fn split_url(url: &str) -> Result<Split, String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), Vec::new()));
    };
    let mut rest = Vec::new();
    let mut ours = Vec::new();
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        if check_keyword(key)? {
            ours.push((key.to_string(), percent_decode(value)?));
        } else {
            rest.push(param);
        }
    }
    let rest = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((rest, ours))
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-encoding in {text:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{text:?} does not decode to UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_that_choose_among_hosts_are_refused() {
        for dsn in [
            "host=a,b target_session_attrs=read-write",
            "host=a,b load_balance_hosts=random",
        ] {
            let err = ConnInfo::parse(dsn).err().unwrap();
            assert!(err.contains("not supported"), "{dsn}: {err}");
        }
        assert!(ConnInfo::parse("host=a,b target_session_attrs=any").is_ok());
    }

    #[test]
    fn tls_keywords_are_taken_out_of_both_forms() {
        let info = ConnInfo::parse(
            "host=db.example port = 5433 user=w sslmode=verify-full sslrootcert='/etc/a b/ca.pem' dbname=it\\'s",
        )
        .unwrap();
        assert_eq!(info.ssl_mode, SslMode::VerifyFull);
        assert_eq!(
            info.files.root_cert.as_deref(),
            Some(std::path::Path::new("/etc/a b/ca.pem"))
        );
        assert_eq!(info.config.get_dbname(), Some("it's"));
        assert_eq!(info.config.get_ports(), [5433]);

        let info = ConnInfo::parse(
            "postgresql://w@db:5432/app?sslmode=verify-ca&application_name=x&sslrootcert=%2Fca.pem",
        )
        .unwrap();
        assert_eq!(info.ssl_mode, SslMode::VerifyCa);
        assert_eq!(info.config.get_application_name(), Some("x"));
        assert_eq!(
            info.files.root_cert.as_deref(),
            Some(std::path::Path::new("/ca.pem"))
        );
    }

    #[test]
    fn mistakes_are_named() {
        let e = ConnInfo::parse("host=h sslmode=verify").unwrap_err();
        assert!(e.contains("sslmode"), "{e}");
        let e = ConnInfo::parse("host=h sslcert=/c.pem").unwrap_err();
        assert!(e.contains("sslkey"), "{e}");
        let e = ConnInfo::parse("host=h sslcrl=/x").unwrap_err();
        assert!(e.contains("sslcrl"), "{e}");
        assert!(ConnInfo::parse("host=h password='open").is_err());
    }

    #[test]
    fn unix_sockets_never_use_tls() {
        let info = ConnInfo::parse("host=/run/postgresql sslmode=require").unwrap();
        assert_eq!(info.ssl_mode, SslMode::Disable);
        let info = ConnInfo::parse("host=127.0.0.1").unwrap();
        assert_eq!(info.ssl_mode, SslMode::Prefer);
    }
}
