//! Who may use the status API. Every POST needs the token, always; reads
//! need it too when the token is configured (`[agent] api_token_env`),
//! except `/healthz` and the load-balancer checks (`/v1/role/*`). Without
//! `api_token_env`, the agent makes its own token at first start:
//! `state_dir/api-token`, 64 hex digits, mode 0600, created with
//! `O_EXCL|O_NOFOLLOW` (a planted file or symlink is refused, never
//! followed), which the command line (`watchpost pause`, ...) reads.
//!
//! The checks that keep a browser from being used against the agent: a
//! POST whose `Origin` is not the agent's own, or that carries a body that
//! is not `application/json`, is refused (a page elsewhere can send
//! neither without the browser stopping it), and on a loopback listener a
//! `Host` that is not a loopback name is refused (DNS rebinding). Tokens
//! are compared in constant time (`subtle`).

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;

/// The file of the generated token in `state_dir`.
pub const TOKEN_FILE: &str = "api-token";

/// Largest request body accepted (bytes); the endpoints take none.
pub const MAX_BODY: u64 = 64 * 1024;

/// The API's token and the rules that apply at the listener it guards.
pub struct ApiAuth {
    token: String,
    /// The token was configured (`api_token_env`): reads need it too.
    reads_need_token: bool,
    /// Where the token comes from, for messages.
    pub source: String,
    /// The listener is on loopback: `Host` must be a loopback name.
    loopback: bool,
}

impl ApiAuth {
    /// The token for an agent listening on `listen`: from the variable
    /// `token_env` names, else `state_dir/api-token` (made at first start).
    /// Errors name the variable or file and what to do.
    pub fn load(
        listen: SocketAddr,
        token_env: Option<&str>,
        state_dir: &Path,
    ) -> anyhow::Result<ApiAuth> {
        let (token, reads_need_token, source) = match token_env {
            Some(name) => {
                let token = std::env::var(name).ok().filter(|t| !t.trim().is_empty());
                let Some(token) = token else {
                    anyhow::bail!(
                        "[agent]: `api_token_env` = {name:?}, but the variable {name} is not set \
                         (or empty) in the agent's environment; set it to the API token"
                    );
                };
                (
                    token.trim().to_string(),
                    true,
                    format!("the variable {name}"),
                )
            }
            None => {
                let path = state_dir.join(TOKEN_FILE);
                (load_or_create(&path)?, false, path.display().to_string())
            }
        };
        Ok(ApiAuth {
            token,
            reads_need_token,
            source,
            loopback: listen.ip().is_loopback(),
        })
    }

    /// An `ApiAuth` for tests.
    #[cfg(test)]
    pub fn fixed(token: &str, reads_need_token: bool) -> ApiAuth {
        ApiAuth {
            token: token.into(),
            reads_need_token,
            source: "test".into(),
            loopback: true,
        }
    }

    fn token_matches(&self, given: &str) -> bool {
        given.as_bytes().ct_eq(self.token.as_bytes()).into()
    }

    /// The token sent as `Authorization: Bearer T` (or, for reads, as the
    /// password of `Basic`, which a browser can send for a page).
    fn authorized(&self, headers: &HeaderMap, basic_too: bool) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        if let Some(token) = value.strip_prefix("Bearer ") {
            return self.token_matches(token.trim());
        }
        if basic_too && let Some(encoded) = value.strip_prefix("Basic ") {
            use base64::Engine;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            if let Some((_, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
                return self.token_matches(password);
            }
        }
        false
    }

    /// `None` if the request may go on, else the refusal.
    pub fn check(&self, method: &Method, path: &str, headers: &HeaderMap) -> Option<Response> {
        if self.loopback && !loopback_host(headers) {
            return Some(refuse(
                StatusCode::FORBIDDEN,
                "this agent listens on loopback: the Host header must be a loopback name \
                 (localhost, 127.0.0.1, [::1])\n",
            ));
        }
        let read = method == Method::GET || method == Method::HEAD;
        if read {
            let public = path == "/healthz" || path.starts_with("/v1/role/");
            if public || !self.reads_need_token || self.authorized(headers, true) {
                return None;
            }
            let mut response = refuse(
                StatusCode::UNAUTHORIZED,
                "send the API token: `Authorization: Bearer TOKEN` (or as the password of Basic authentication)\n",
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Watchpost\", charset=\"UTF-8\""),
            );
            return Some(response);
        }
        if cross_origin(headers) {
            return Some(refuse(
                StatusCode::FORBIDDEN,
                "a control request from another origin is refused\n",
            ));
        }
        if let Some(refusal) = body_refusal(headers) {
            return Some(refusal);
        }
        if !self.authorized(headers, false) {
            return Some(refuse(
                StatusCode::UNAUTHORIZED,
                &format!(
                    "send `Authorization: Bearer TOKEN`, the token from {}\n",
                    self.public_source()
                ),
            ));
        }
        None
    }

    /// Where the token is, as told to a client that did not send it: the
    /// variable's name, or the file's name (not the whole path).
    fn public_source(&self) -> &str {
        if self.reads_need_token {
            "the agent's configured `api_token_env` variable"
        } else {
            "the file `api-token` in the agent's state_dir (the command line reads it)"
        }
    }

    /// The status page shows its operator buttons (a token always exists).
    pub fn operator_controls(&self) -> bool {
        !self.token.is_empty()
    }
}

fn refuse(code: StatusCode, text: &str) -> Response {
    (code, text.to_string()).into_response()
}

/// A POST may carry no body, or a JSON one of at most [`MAX_BODY`] bytes;
/// the content types a web form can send without the browser asking first
/// (`text/plain`, form encodings) are refused.
fn body_refusal(headers: &HeaderMap) -> Option<Response> {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if length.is_some_and(|n| n > MAX_BODY) {
        return Some(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("a request body may have at most {MAX_BODY} bytes\n"),
        ));
    }
    let has_body = length.is_some_and(|n| n > 0) || headers.contains_key(header::TRANSFER_ENCODING);
    match headers.get(header::CONTENT_TYPE).map(|v| v.to_str()) {
        None if !has_body => None,
        Some(Ok(ct))
            if ct
                .split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")) =>
        {
            None
        }
        _ => Some(refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a POST carries no body, or `Content-Type: application/json`\n",
        )),
    }
}

/// A browser request whose `Origin` is not this listener's own (`Host`).
/// Command-line clients send no `Origin`.
fn cross_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    host.is_none() || origin_host != host
}

/// No `Host` (HTTP/1.0 health checkers), or a loopback name with an
/// optional port.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST) else {
        return true;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    if name.eq_ignore_ascii_case("localhost") || name.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The token in `path`, made (64 random hex digits, mode 0600) if there is
/// none. An existing file must be a regular file (not a symlink) owned by
/// this user and not readable by others.
pub fn load_or_create(path: &Path) -> anyhow::Result<String> {
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path);
    match created {
        Ok(mut file) => {
            let token = new_token();
            file.write_all(format!("{token}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            tracing::info!(
                "generated the API token in {} (the command line reads it; send it as `Authorization: Bearer`)",
                path.display()
            );
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_token_file(path, true),
        Err(e) => Err(anyhow::anyhow!(
            "cannot create the API token file {}: {e}",
            path.display()
        )),
    }
}

/// Read the token in `path` (no symlink followed). With `strict`, the
/// file must be owned by this user and have no group/other permissions.
pub fn read_token_file(path: &Path, strict: bool) -> anyhow::Result<String> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                anyhow::anyhow!(
                    "{} is a symbolic link: refused; delete it (a new token is made at the next start)",
                    path.display()
                )
            } else if e.kind() == std::io::ErrorKind::PermissionDenied {
                let me = rustix::process::geteuid().as_raw();
                let owner = std::fs::symlink_metadata(path)
                    .map(|m| format!("uid {}", m.uid()))
                    .unwrap_or_else(|_| "another user".into());
                anyhow::anyhow!(
                    "cannot read the API token file {}: {e}; it belongs to {owner}, not to this \
                     agent's user (uid {me}): a run as another user (root?) left it. Give the \
                     state directory back to the agent's user (`chown -R watchpost:watchpost {}` \
                     for the packaged service; reinstalling the package does it too)",
                    path.display(),
                    path.parent().unwrap_or(path).display()
                )
            } else {
                anyhow::anyhow!("cannot read the API token file {}: {e}", path.display())
            }
        })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        anyhow::bail!(
            "{} is not a regular file: delete it (a new token is made at the next start)",
            path.display()
        );
    }
    if strict {
        // SAFETY: geteuid(2) has no preconditions.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            anyhow::bail!(
                "{} belongs to uid {}, not to the agent's user (uid {me}): delete it (a new token is made at the next start)",
                path.display(),
                meta.uid()
            );
        }
        if meta.mode() & 0o077 != 0 {
            anyhow::bail!(
                "{} has mode {:o}, open to other users: `chmod 600` it, or delete it for a new token",
                path.display(),
                meta.mode() & 0o777
            );
        }
    }
    let mut text = String::new();
    Read::by_ref(&mut file)
        .take(4096)
        .read_to_string(&mut text)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let token = text.trim().to_string();
    if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        anyhow::bail!(
            "{} does not hold a token (at least 16 characters, no spaces): delete it (a new one is made at the next start)",
            path.display()
        );
    }
    Ok(token)
}

/// 64 hex digits from the system's random source.
fn new_token() -> String {
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    format!("{}{}", a.simple(), b.simple())
}

/// Where the token of an agent with this `state_dir` is.
pub fn token_path(state_dir: &Path) -> PathBuf {
    state_dir.join(TOKEN_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn posts_need_the_token_reads_only_when_configured() {
        let generated = ApiAuth::fixed("0123456789abcdef0123", false);
        let host = ("host", "127.0.0.1:9464");
        assert!(
            generated
                .check(&Method::GET, "/v1/probes", &headers(&[host]))
                .is_none()
        );
        let refused = generated.check(&Method::POST, "/v1/pause", &headers(&[host]));
        assert_eq!(refused.unwrap().status(), StatusCode::UNAUTHORIZED);
        let ok = headers(&[host, ("authorization", "Bearer 0123456789abcdef0123")]);
        assert!(generated.check(&Method::POST, "/v1/pause", &ok).is_none());
        let wrong = headers(&[host, ("authorization", "Bearer 0123456789abcdef0124")]);
        assert!(
            generated
                .check(&Method::POST, "/v1/pause", &wrong)
                .is_some()
        );

        let configured = ApiAuth::fixed("0123456789abcdef0123", true);
        let code =
            |m: &Method, p: &str, h: &HeaderMap| configured.check(m, p, h).map(|r| r.status());
        assert_eq!(
            code(&Method::GET, "/v1/probes", &headers(&[host])),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(code(&Method::GET, "/healthz", &headers(&[host])), None);
        assert_eq!(
            code(&Method::GET, "/v1/role/primary", &headers(&[host])),
            None
        );
        assert_eq!(code(&Method::GET, "/metrics", &ok), None);
        // user:token as Basic, for a browser; not for a POST.
        let basic = headers(&[
            host,
            ("authorization", "Basic dTowMTIzNDU2Nzg5YWJjZGVmMDEyMw=="),
        ]);
        assert_eq!(code(&Method::GET, "/", &basic), None);
        assert_eq!(
            code(&Method::POST, "/v1/pause", &basic),
            Some(StatusCode::UNAUTHORIZED)
        );
    }

    #[test]
    fn a_browser_cannot_post_and_a_rebound_name_cannot_read() {
        let auth = ApiAuth::fixed("0123456789abcdef0123", false);
        let bearer = ("authorization", "Bearer 0123456789abcdef0123");
        let host = ("host", "127.0.0.1:9464");
        let code = |h: &[(&str, &str)]| {
            auth.check(&Method::POST, "/v1/pause", &headers(h))
                .map(|r| r.status())
        };
        assert_eq!(
            code(&[host, bearer, ("origin", "http://evil.example")]),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            code(&[host, bearer, ("origin", "null")]),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            code(&[host, bearer, ("origin", "http://127.0.0.1:9464")]),
            None
        );
        assert_eq!(
            code(&[
                host,
                bearer,
                ("content-type", "text/plain"),
                ("content-length", "3")
            ]),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        assert_eq!(
            code(&[
                host,
                bearer,
                ("content-type", "application/x-www-form-urlencoded")
            ]),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        assert_eq!(
            code(&[host, bearer, ("content-length", "5")]),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        assert_eq!(
            code(&[
                host,
                bearer,
                ("content-type", "application/json; charset=utf-8"),
                ("content-length", "2")
            ]),
            None
        );
        assert_eq!(
            code(&[
                host,
                bearer,
                ("content-type", "application/json"),
                ("content-length", "9999999")
            ]),
            Some(StatusCode::PAYLOAD_TOO_LARGE)
        );
        for good in ["localhost:1", "127.0.0.1", "[::1]:9464", "LOCALHOST"] {
            assert!(
                auth.check(&Method::GET, "/v1/probes", &headers(&[("host", good)]))
                    .is_none(),
                "{good}"
            );
        }
        for bad in ["evil.example:9464", "10.0.0.1:9464", "[2001:db8::1]:1"] {
            assert!(
                auth.check(&Method::GET, "/v1/probes", &headers(&[("host", bad)]))
                    .is_some(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_token_file_is_made_once_private_and_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join(TOKEN_FILE);
        let token = load_or_create(&path).unwrap();
        assert_eq!(token.len(), 64);
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_create(&path).unwrap(), token);
        assert_eq!(read_token_file(&path, false).unwrap(), token);
        // Open to others: refused.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let e = load_or_create(&path).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        // A planted symlink is neither followed nor written through.
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("linked");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = load_or_create(&link).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
