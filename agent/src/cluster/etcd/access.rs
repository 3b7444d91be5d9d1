//! How the agent reaches a closed etcd: an HTTP client that verifies
//! `https` endpoints against the configured CA alone and presents the
//! client certificate etcd's `--client-cert-auth` asks for; the token of
//! etcd's `auth enable` (`POST /v3/auth/authenticate`, sent back in the
//! `Authorization` header, fetched again when etcd says it is invalid);
//! and the errors that name what to fix — a certificate etcd refuses, a
//! CA that did not sign etcd's certificate, a wrong password, a role
//! without the scope's prefix — instead of a bare status line.

use super::EtcdError;
use crate::config::{ClusterSpec, EtcdAccess, Secret};
use crate::sql::tls::{load_certs, load_key, root_store};
use crate::sql::tls_alert::{certificate_alert, rustls_error};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::time::Duration;

/// The HTTP client for etcd, its TLS from `access`; errors name the file.
pub fn client(access: &EtcdAccess, timeout: Duration) -> Result<reqwest::Client, EtcdError> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let roots = match &access.ca {
        Some(ca) => root_store(Some(ca))
            .map_err(|e| EtcdError::Local(format!("[cluster] `etcd_ca`: {e}")))?,
        // The OS trust store (for an https endpoint without `etcd_ca`,
        // which `validate` warns about); none at all is fine for http.
        None => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            roots
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EtcdError::Local(format!("cannot set up TLS for etcd: {e}")))?
        .with_root_certificates(roots);
    let tls = match (&access.cert, &access.key) {
        (Some(cert), Some(key)) => {
            let certs = load_certs(cert)
                .map_err(|e| EtcdError::Local(format!("[cluster] `etcd_cert`: {e}")))?;
            let key = load_key(key)
                .map_err(|e| EtcdError::Local(format!("[cluster] `etcd_key`: {e}")))?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                EtcdError::Local(format!(
                    "[cluster]: the client certificate `etcd_cert` does not go with the key `etcd_key`: {e}"
                ))
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(timeout)
        .timeout(timeout)
        // A redirect could carry the token elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| EtcdError::Local(format!("cannot create the HTTP client for etcd: {e}")))
}

/// etcd's `auth enable` user, and its current token.
pub struct Auth {
    user: String,
    password: Secret,
    /// A client certificate is configured (for the TLS errors' advice).
    has_cert: bool,
    /// The token etcd gave last (`Some("")`: etcd said authentication is
    /// not enabled, so requests go without one).
    token: Mutex<Option<String>>,
}

/// Why no token could be had.
pub enum AuthFailure {
    /// The endpoint did not answer: the next one may.
    Unreachable(String),
    /// etcd answered no: a wrong user or password, said once.
    Refused(EtcdError),
}

impl Auth {
    pub fn new(access: &EtcdAccess) -> Option<Auth> {
        Some(Auth {
            user: access.user.clone()?,
            password: access.password.clone()?,
            has_cert: access.cert.is_some(),
            token: Mutex::new(None),
        })
    }

    /// The token to send (empty: none), from `base` when there is none yet.
    pub async fn token(
        &self,
        http: &reqwest::Client,
        base: &str,
        timeout: Duration,
    ) -> Result<String, AuthFailure> {
        if let Some(token) = self.token.lock().clone() {
            return Ok(token);
        }
        let url = format!("{base}/v3/auth/authenticate");
        let answer = http
            .post(&url)
            .timeout(timeout)
            .json(&json!({"name": self.user, "password": self.password.expose()}))
            .send()
            .await
            .map_err(|e| {
                AuthFailure::Unreachable(explain_transport(&url, &e, Some(self.has_cert)))
            })?;
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let message = match &body {
            Value::Null => format!("{status} {}", text.trim()),
            body => error_text(body),
        };
        let token = if status.is_success() {
            body["token"].as_str().unwrap_or_default().to_string()
        } else if message.contains("authentication is not enabled") {
            tracing::warn!(
                "cluster: etcd at {base} has authentication off: `etcd_user` is not used (run `etcdctl auth enable` so that only the agents' user can write the cluster's keys)"
            );
            String::new()
        } else if message.contains(GATEWAY_CN) {
            return Err(AuthFailure::Refused(EtcdError::Refused(format!(
                "{url}: {message}: {CN_FIX}"
            ))));
        } else if status.is_server_error() {
            return Err(AuthFailure::Unreachable(format!(
                "{url}: {status} {message}"
            )));
        } else {
            return Err(AuthFailure::Refused(EtcdError::Refused(format!(
                "etcd refused to authenticate user `{}` ({url}: {message}): check `etcd_user` and the password in `etcd_password_file` against `etcdctl user get {}`",
                self.user, self.user
            ))));
        };
        *self.token.lock() = Some(token.clone());
        Ok(token)
    }

    /// The etcd user's name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// etcd said the token is invalid (expired, or etcd restarted).
    pub fn forget(&self) {
        *self.token.lock() = None;
    }
}

/// etcd's gateway error text (`{"error": ..., "message": ..., "code": N}`;
/// a plain-text answer is a JSON string).
pub fn error_text(body: &Value) -> String {
    body["message"]
        .as_str()
        .or_else(|| body["error"].as_str())
        .or_else(|| body.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| body.to_string())
}

/// The gRPC status codes etcd's errors carry (`rpctypes`), of the cases
/// the agent acts on or names a fix for.
mod grpc {
    /// `invalid argument`: "user name is empty", "authentication failed"
    /// and many more.
    pub const INVALID_ARGUMENT: u64 = 3;
    /// `permission denied`, and nothing else.
    pub const PERMISSION_DENIED: u64 = 7;
    /// `database space exceeded` (the NOSPACE alarm), but also "too many
    /// requests".
    pub const RESOURCE_EXHAUSTED: u64 = 8;
    /// `failed precondition`: "user name not found", "authentication is
    /// not enabled" and many more.
    pub const FAILED_PRECONDITION: u64 = 9;
    /// `invalid auth token` (expired, or etcd restarted), and nothing
    /// else.
    pub const UNAUTHENTICATED: u64 = 16;
}

/// The gRPC status code of etcd's error answer: `code` in a call's
/// (`{"error": TEXT, "message": TEXT, "code": N}`), `grpc_code` in the
/// error object of a streamed call's 200 answer (etcd 3.4's gateway);
/// `None` without one (the gateway's plain-text refusals).
pub fn grpc_code(body: &Value) -> Option<u64> {
    body.get("code")
        .or_else(|| body.get("grpc_code"))
        .and_then(Value::as_u64)
}

/// What an error answer of etcd is, for what the agent does about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// An invalid or expired token: authenticate again and resend.
    InvalidToken,
    /// The user's role does not cover the key.
    PermissionDenied,
    /// etcd has authentication on and the request named no user it knows.
    NoUser,
    /// etcd is at its quota (the NOSPACE alarm) and refuses writes.
    NoSpace,
    /// [`GATEWAY_CN`].
    GatewayCn,
    Other,
}

/// Decided on the gRPC code ([`grpc_code`]) where the code tells the case
/// alone; on the text where it does not (a code several cases share, or
/// an answer without one).
fn refusal(body: &Value) -> Refusal {
    let text = error_text(body);
    let says = |words: &str| text.contains(words);
    let no_user = || says("user name is empty") || says("user name not found");
    match grpc_code(body) {
        Some(grpc::UNAUTHENTICATED) => Refusal::InvalidToken,
        Some(grpc::PERMISSION_DENIED) => Refusal::PermissionDenied,
        Some(grpc::RESOURCE_EXHAUSTED) if says("database space exceeded") => Refusal::NoSpace,
        Some(grpc::INVALID_ARGUMENT | grpc::FAILED_PRECONDITION) if no_user() => Refusal::NoUser,
        Some(_) => Refusal::Other,
        // A plain-text answer (the gateway's own refusal, before any gRPC
        // call), or a gateway that sends no code.
        None if says(GATEWAY_CN) => Refusal::GatewayCn,
        None if says("invalid auth token") || says("auth token is expired") => {
            Refusal::InvalidToken
        }
        None if says("permission denied") => Refusal::PermissionDenied,
        None if no_user() => Refusal::NoUser,
        None if says("database space exceeded") => Refusal::NoSpace,
        None => Refusal::Other,
    }
}

/// An invalid or expired token (etcd's error answer `body`, or a streamed
/// call's error object): authenticate again and resend.
pub fn token_expired(body: &Value) -> bool {
    refusal(body) == Refusal::InvalidToken
}

/// etcd's JSON gateway (the API the agent speaks) refuses every request
/// whose client certificate has a subject CommonName while
/// `--client-cert-auth` is on (etcd#10366, CVE-2018-16886): its answer
/// (plain text, without a gRPC code) starts with this.
const GATEWAY_CN: &str = "CommonName of client sending a request against gateway";

/// What to do about [`GATEWAY_CN`].
const CN_FIX: &str = "etcd's JSON gateway refuses client certificates that have a CommonName (etcd#10366): issue the agent's `etcd_cert` with an empty subject CN and authenticate the agent with `etcd_user` and its password";

/// What etcd's refusal (an HTTP error status, its answer `body`) means and
/// what to fix, for a request under `prefix` by `user`.
pub fn explain_refusal(body: &Value, user: Option<&str>, prefix: &str) -> String {
    let text = error_text(body);
    match refusal(body) {
        Refusal::GatewayCn => format!("{text}: {CN_FIX}"),
        Refusal::PermissionDenied => {
            let who = user.map_or("the etcd user".to_string(), |u| {
                format!("the etcd user `{u}`")
            });
            format!(
                "{text}: {who} has no permission on the cluster's keys; grant its role readwrite on the prefix: `etcdctl role grant-permission ROLE --prefix=true readwrite {prefix}`"
            )
        }
        Refusal::NoUser => format!(
            "{text}: etcd has authentication enabled: set `etcd_user` and `etcd_password_file` in [cluster]"
        ),
        Refusal::NoSpace => format!(
            "{text}: etcd is at its quota (NOSPACE alarm) and refuses writes: compact, defragment and disarm the alarm (see the cluster chapter, \"etcd's quota\")"
        ),
        Refusal::InvalidToken | Refusal::Other => text,
    }
}

/// What to fix when etcd asks for a client certificate.
const CERT_NEEDED: &str = "etcd asks for a client certificate (--client-cert-auth): set `etcd_cert` and `etcd_key` to one signed by the CA etcd trusts (--trusted-ca-file)";

/// A request that got no answer, with what to fix when TLS is why. `cert`
/// says whether a client certificate is configured.
pub fn explain_transport(url: &str, error: &reqwest::Error, cert: Option<bool>) -> String {
    let mut chain = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        chain.push_str(": ");
        chain.push_str(&e.to_string());
        source = e.source();
    }
    match transport_hint(error, url, cert) {
        Some(hint) => format!("{url}: {chain} ({hint})"),
        None => format!("{url}: {chain}"),
    }
}

/// What to fix for the failed request to `url` whose error is `error`,
/// decided on the TLS library's error in its chain ([`rustls_error`]
/// inside an I/O error), else on a connection closed after the handshake.
fn transport_hint(
    error: &(dyn std::error::Error + 'static),
    url: &str,
    cert: Option<bool>,
) -> Option<&'static str> {
    use rustls::AlertDescription as Alert;
    use rustls::CertificateError as Cert;
    use std::io::ErrorKind;
    let mut tls = None;
    let (mut closed, mut refused) = (false, false);
    let mut source = Some(error);
    while let Some(e) = source {
        let io = e.downcast_ref::<std::io::Error>();
        tls = tls.or_else(|| {
            e.downcast_ref::<rustls::Error>()
                .or_else(|| io.and_then(rustls_error))
        });
        match io.map(std::io::Error::kind) {
            Some(ErrorKind::ConnectionRefused) => refused = true,
            Some(
                ErrorKind::UnexpectedEof
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe,
            ) => closed = true,
            _ => {}
        }
        if let Some(http) = e.downcast_ref::<hyper::Error>() {
            // "connection was not ready" (canceled), "connection closed
            // before message completed".
            closed |= http.is_canceled() || http.is_incomplete_message() || http.is_closed();
        }
        // An I/O error's `source()` skips the error it wraps (hyper-rustls
        // wraps tokio-rustls's I/O error, which wraps the TLS error, in
        // another): go into it.
        source = match io.and_then(std::io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    match tls {
        Some(rustls::Error::InvalidCertificate(bad)) => match bad {
            Cert::NotValidForName | Cert::NotValidForNameContext { .. } => Some(
                "etcd's server certificate does not name the host of this endpoint: write the endpoint with a name or address its certificate lists",
            ),
            // Its text says it (expired, not yet valid, revoked).
            Cert::Expired
            | Cert::ExpiredContext { .. }
            | Cert::NotValidYet
            | Cert::NotValidYetContext { .. }
            | Cert::Revoked => None,
            _ => Some(
                "etcd's server certificate is not signed by the CA in `etcd_ca` (or, without `etcd_ca`, by one the OS trusts): name the CA that signed etcd's --cert-file",
            ),
        },
        Some(rustls::Error::AlertReceived(alert)) if certificate_alert(*alert) => Some(
            if cert == Some(false)
                || matches!(alert, Alert::CertificateRequired | Alert::HandshakeFailure)
            {
                CERT_NEEDED
            } else {
                "etcd refused the client certificate `etcd_cert`: it must be signed by the CA etcd trusts (--trusted-ca-file) and allow client authentication"
            },
        ),
        Some(_) => None,
        // Under TLS 1.3 etcd refuses a client certificate (or its
        // absence) after the handshake: the client may see only a closed
        // connection, or the alert, whichever comes first.
        None if closed && !refused && cert.is_some() && url.starts_with("https://") => {
            Some(if cert == Some(false) {
                "etcd closed the TLS connection; if it asks for a client certificate (--client-cert-auth), set `etcd_cert` and `etcd_key` to one signed by the CA etcd trusts (--trusted-ca-file)"
            } else {
                "etcd closed the TLS connection after the handshake, as it does under TLS 1.3 when it refuses the client certificate `etcd_cert`: it must be signed by the CA etcd trusts (--trusted-ca-file) and allow client authentication"
            })
        }
        None => None,
    }
}

/// The warnings `validate` prints about how etcd is reached: plain `http`
/// to an address that is not loopback (anyone on the path reads and
/// forges the cluster's keys), and `https` without a CA of its own.
pub fn warnings(spec: &ClusterSpec) -> Vec<String> {
    let mut warnings = Vec::new();
    for endpoint in &spec.etcd {
        let Ok(uri) = endpoint.parse::<http::Uri>() else {
            continue;
        };
        let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if uri.scheme_str() == Some("http") && !loopback {
            warnings.push(format!(
                "[cluster]: etcd endpoint {endpoint:?} is plain http to a non-loopback address: anyone who can reach it can delete the leader key or forge a member; run etcd with TLS and client certificates and write https:// with `etcd_ca`, `etcd_cert` and `etcd_key` (see the cluster chapter, \"Running etcd closed\")"
            ));
        }
    }
    let https = spec.etcd.iter().any(|e| e.starts_with("https://"));
    if https && spec.etcd_access.ca.is_none() {
        warnings.push("[cluster]: https etcd endpoints without `etcd_ca`: etcd's certificate is checked against the OS trust store, which holds every public CA; name the CA that signed etcd's certificates".to_string());
    }
    if spec.etcd_access.user.is_none() {
        warnings.push("[cluster]: no `etcd_user`: unless etcd checks client certificates, anyone who reaches it can change the cluster's keys; run etcd with `auth enable` and a role limited to this scope's prefix".to_string());
    }
    warnings
}

#[cfg(test)]
mod tests;
