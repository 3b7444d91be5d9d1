//! A `mysql` target's connection string: a URL as MySQL's own tools
//! write it, `mysql://USER[:PASSWORD]@HOST[:PORT][/DATABASE][?ssl-mode=
//! MODE&ssl-ca=FILE&ssl-cert=FILE&ssl-key=FILE]` (`mariadb://` works
//! too), read into the driver's options. `ssl-mode` follows the `mysql`
//! client's: `DISABLED` (the default here, as no certificate can be
//! checked without a CA), `REQUIRED` (encrypted, certificate not
//! checked), `VERIFY_CA` (signed by `ssl-ca`) and `VERIFY_IDENTITY` (also
//! for the host name). `ssl-cert` and `ssl-key` present a client
//! certificate (an account `REQUIRE X509` or `REQUIRE SUBJECT`), read
//! when the DSN is, the key from a file only the agent's user can read
//! (as the `mysql` client's options of the same names). A password not in the
//! URL comes from the target's `password_file` or `password_env`.

use mysql_async::{ClientIdentity, Opts, OptsBuilder, SslOpts};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How a session is encrypted (the client's `--ssl-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disabled,
    Required,
    VerifyCa,
    VerifyIdentity,
}

/// A parsed connection string.
#[derive(Clone, Debug)]
pub struct Dsn {
    pub opts: Opts,
    pub ssl_mode: SslMode,
}

/// The URL parameters of `dsn` (after `?`), each key as the `mysql`
/// client spells it (lower case, `-` for `_`: `ssl_ca` is `ssl-ca`), with
/// its value.
pub fn params(dsn: &str) -> impl Iterator<Item = (String, &str)> {
    let query = dsn.split_once('?').map_or("", |(_, query)| query);
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key.to_ascii_lowercase().replace('_', "-"), value)
    })
}

/// Read `dsn`, with `password` when it has none. Errors say what to fix.
pub fn parse(dsn: &str, password: Option<&str>) -> Result<Dsn, String> {
    let (scheme, rest) = dsn
        .split_once("://")
        .ok_or("expected a URL such as mysql://watchpost@127.0.0.1:3306/")?;
    if !scheme.eq_ignore_ascii_case("mysql") && !scheme.eq_ignore_ascii_case("mariadb") {
        return Err(format!(
            "the scheme `{scheme}://` is not a MySQL one; write mysql://"
        ));
    }
    let base = rest.split_once('?').map_or(rest, |(base, _)| base);
    let mut ssl_mode = SslMode::Disabled;
    let mut ca = None;
    let mut cert = None;
    let mut private_key = None;
    for (key, value) in params(dsn) {
        match key.as_str() {
            "ssl-mode" | "sslmode" => {
                ssl_mode = match value.to_ascii_uppercase().as_str() {
                    "DISABLED" => SslMode::Disabled,
                    "REQUIRED" => SslMode::Required,
                    "VERIFY_CA" => SslMode::VerifyCa,
                    "VERIFY_IDENTITY" => SslMode::VerifyIdentity,
                    other => {
                        return Err(format!(
                            "ssl-mode `{other}` is not one of DISABLED, REQUIRED, VERIFY_CA, \
                             VERIFY_IDENTITY"
                        ));
                    }
                }
            }
            "ssl-ca" => ca = Some(PathBuf::from(value)),
            "ssl-cert" => cert = Some(PathBuf::from(value)),
            "ssl-key" => private_key = Some(PathBuf::from(value)),
            other => {
                return Err(format!(
                    "unknown URL parameter `{other}`; known: ssl-mode, ssl-ca, ssl-cert, ssl-key"
                ));
            }
        }
    }
    if matches!(ssl_mode, SslMode::VerifyCa | SslMode::VerifyIdentity) && ca.is_none() {
        return Err(
            "ssl-mode VERIFY_CA and VERIFY_IDENTITY need ssl-ca=FILE (the CA's certificate)".into(),
        );
    }
    if (cert.is_some() || private_key.is_some()) && ssl_mode == SslMode::Disabled {
        return Err(
            "ssl-cert and ssl-key present a certificate over TLS: add ssl-mode=VERIFY_IDENTITY \
             (or VERIFY_CA, REQUIRED)"
                .into(),
        );
    }
    let identity = client_identity(cert.as_deref(), private_key.as_deref())?;
    let opts = Opts::from_url(&format!("mysql://{base}")).map_err(|e| e.to_string())?;
    if opts.user().is_none() {
        return Err("the URL names no user (mysql://USER@HOST/)".into());
    }
    let mut builder = OptsBuilder::from_opts(opts.clone())
        // Keep to the address given: the driver would otherwise switch a
        // loopback session to the server's unix socket.
        .prefer_socket(false)
        .tcp_keepalive(Some(Duration::from_secs(5)));
    if opts.pass().is_none()
        && let Some(password) = password
    {
        builder = builder.pass(Some(password));
    }
    let ssl = match ssl_mode {
        SslMode::Disabled => None,
        SslMode::Required => Some(
            SslOpts::default()
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
        ),
        SslMode::VerifyCa | SslMode::VerifyIdentity => {
            let ca = ca.unwrap_or_default();
            if !ca.is_file() {
                return Err(format!("ssl-ca `{}` is not a readable file", ca.display()));
            }
            Some(
                SslOpts::default()
                    .with_root_certs(vec![ca.into()])
                    .with_disable_built_in_roots(true)
                    .with_danger_skip_domain_validation(ssl_mode == SslMode::VerifyCa),
            )
        }
    };
    builder = builder.ssl_opts(ssl.map(|ssl| ssl.with_client_identity(identity)));
    Ok(Dsn {
        opts: builder.into(),
        ssl_mode,
    })
}

/// The client certificate of `ssl-cert` and `ssl-key`, both or neither,
/// each file read once, checked (a PEM certificate; a PEM key in a file
/// only the agent's user can read) and handed to the driver as read. A
/// DSN is read for each admin session, so a renewed certificate is used
/// from the next one.
fn client_identity(
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<Option<ClientIdentity>, String> {
    use super::super::tls::{certs_from_pem, key_from_pem};
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        _ => return Err("give both ssl-cert and ssl-key, or neither".into()),
    };
    let cert_pem =
        std::fs::read(cert).map_err(|e| format!("cannot read ssl-cert {}: {e}", cert.display()))?;
    certs_from_pem(cert, &cert_pem)?;
    let key_pem = super::super::secrets::read_secret_file(key)?;
    key_from_pem(key, &key_pem)?;
    Ok(Some(ClientIdentity::new(
        cert_pem.into(),
        key_pem.into_bytes().into(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_and_mistakes_named() {
        let dsn = parse("mysql://watchpost@127.0.0.1:3307/app", Some("pw")).unwrap();
        assert_eq!(dsn.opts.tcp_port(), 3307);
        assert_eq!(dsn.opts.user(), Some("watchpost"));
        assert_eq!(dsn.opts.pass(), Some("pw"));
        assert_eq!(dsn.opts.db_name(), Some("app"));
        assert!(!dsn.opts.prefer_socket());
        assert_eq!(dsn.ssl_mode, SslMode::Disabled);
        // A password in the URL wins over the file's.
        let inline = parse("mariadb://w:inline@db/", Some("file")).unwrap();
        assert_eq!(inline.opts.pass(), Some("inline"));
        let required = parse("mysql://w@db/?ssl-mode=REQUIRED", None).unwrap();
        assert!(required.opts.ssl_opts().is_some());
        for (bad, says) in [
            ("host=db user=w", "expected a URL"),
            ("postgres://w@db/", "not a MySQL one"),
            ("mysql://db/", "names no user"),
            ("mysql://w@db/?ssl-mode=MAYBE", "not one of"),
            ("mysql://w@db/?ssl-mode=VERIFY_IDENTITY", "need ssl-ca"),
            (
                "mysql://w@db/?compress=true",
                "unknown URL parameter `compress`",
            ),
            (
                "mysql://w@db/?ssl-mode=REQUIRED&ssl-cert=/c.pem",
                "both ssl-cert and ssl-key",
            ),
            (
                "mysql://w@db/?ssl-mode=REQUIRED&ssl-cert=/nonexistent/c.pem&ssl-key=/k.pem",
                "/nonexistent/c.pem",
            ),
        ] {
            let error = parse(bad, None).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
