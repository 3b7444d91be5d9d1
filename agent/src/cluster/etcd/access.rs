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

/// etcd's gateway error text (`{"error": ..., "message": ..., "code": N}`).
pub fn error_text(body: &Value) -> String {
    body["message"]
        .as_str()
        .or_else(|| body["error"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| body.to_string())
}

/// An invalid or expired token: authenticate again and resend.
pub fn token_expired(text: &str) -> bool {
    text.contains("invalid auth token") || text.contains("auth token is expired")
}

/// etcd's JSON gateway (the API the agent speaks) refuses every request
/// whose client certificate has a subject CommonName while
/// `--client-cert-auth` is on (etcd#10366, CVE-2018-16886): its answer
/// starts with this.
const GATEWAY_CN: &str = "CommonName of client sending a request against gateway";

/// What to do about [`GATEWAY_CN`].
const CN_FIX: &str = "etcd's JSON gateway refuses client certificates that have a CommonName (etcd#10366): issue the agent's `etcd_cert` with an empty subject CN and authenticate the agent with `etcd_user` and its password";

/// What etcd's refusal (an HTTP error status, its `text`) means and what
/// to fix, for a request under `prefix` by `user`.
pub fn explain_refusal(text: &str, user: Option<&str>, prefix: &str) -> String {
    if text.contains(GATEWAY_CN) {
        return format!("{text}: {CN_FIX}");
    }
    if text.contains("permission denied") {
        let who = user.map_or("the etcd user".to_string(), |u| {
            format!("the etcd user `{u}`")
        });
        return format!(
            "{text}: {who} has no permission on the cluster's keys; grant its role readwrite on the prefix: `etcdctl role grant-permission ROLE --prefix=true readwrite {prefix}`"
        );
    }
    if text.contains("user name is empty") || text.contains("user name not found") {
        return format!(
            "{text}: etcd has authentication enabled: set `etcd_user` and `etcd_password_file` in [cluster]"
        );
    }
    if text.contains("database space exceeded") {
        return format!(
            "{text}: etcd is at its quota (NOSPACE alarm) and refuses writes: compact, defragment and disarm the alarm (see the cluster chapter, \"etcd's quota\")"
        );
    }
    text.to_string()
}

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
    let hint = if chain.contains("UnknownIssuer") || chain.contains("invalid peer certificate") {
        Some(
            "etcd's server certificate is not signed by the CA in `etcd_ca` (or, without `etcd_ca`, by one the OS trusts): name the CA that signed etcd's --cert-file",
        )
    } else if chain.contains("NotValidForName") {
        Some(
            "etcd's server certificate does not name the host of this endpoint: write the endpoint with a name or address its certificate lists",
        )
    } else if chain.contains("CertificateRequired") || chain.contains("HandshakeFailure") {
        Some(
            "etcd asks for a client certificate (--client-cert-auth): set `etcd_cert` and `etcd_key` to one signed by the CA etcd trusts (--trusted-ca-file)",
        )
    } else if chain.contains("BadCertificate")
        || chain.contains("UnknownCA")
        || chain.contains("DecryptError")
    {
        Some(if cert == Some(false) {
            "etcd asks for a client certificate (--client-cert-auth): set `etcd_cert` and `etcd_key` to one signed by the CA etcd trusts (--trusted-ca-file)"
        } else {
            "etcd refused the client certificate `etcd_cert`: it must be signed by the CA etcd trusts (--trusted-ca-file) and allow client authentication"
        })
    } else if cert.is_some()
        && url.starts_with("https://")
        && !chain.contains("Connection refused")
        && [
            "connection was not ready",
            "Canceled",
            "connection closed",
            "unexpected EOF",
            "reset by peer",
        ]
        .iter()
        .any(|closed| chain.contains(closed))
    {
        // Under TLS 1.3 etcd refuses a client certificate (or its
        // absence) after the handshake: the client may see only a closed
        // connection, or the alert, whichever comes first.
        Some(if cert == Some(false) {
            "etcd closed the TLS connection; if it asks for a client certificate (--client-cert-auth), set `etcd_cert` and `etcd_key` to one signed by the CA etcd trusts (--trusted-ca-file)"
        } else {
            "etcd closed the TLS connection after the handshake, as it does under TLS 1.3 when it refuses the client certificate `etcd_cert`: it must be signed by the CA etcd trusts (--trusted-ca-file) and allow client authentication"
        })
    } else {
        None
    };
    match hint {
        Some(hint) => format!("{url}: {chain} ({hint})"),
        None => format!("{url}: {chain}"),
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
mod tests {
    use super::*;

    fn spec(etcd: &[&str], access: EtcdAccess) -> ClusterSpec {
        let text = "[targets.local]\ndsn = \"host=127.0.0.1 user=postgres\"\ndata_dir = \"/d\"\n\n[cluster]\nscope = \"main\"\netcd = [\"http://127.0.0.1:2379\"]\ntarget = \"local\"\nconnect = \"10.9.9.9:5432\"\n";
        let mut spec = crate::config::parse_str("w.toml", text, std::path::Path::new("/"))
            .unwrap()
            .cluster
            .unwrap();
        spec.etcd = etcd.iter().map(|e| e.to_string()).collect();
        spec.etcd_access = access;
        spec
    }

    #[test]
    fn validate_warns_on_plain_http_off_loopback_only() {
        let closed = EtcdAccess {
            user: Some("agent".into()),
            password: Some(Secret::new("x")),
            ca: Some("/ca.pem".into()),
            ..EtcdAccess::default()
        };
        for quiet in [
            "http://127.0.0.1:2379",
            "http://localhost:2379",
            "http://[::1]:2379",
            "https://10.0.0.1:2379",
        ] {
            assert!(
                warnings(&spec(&[quiet], closed.clone())).is_empty(),
                "{quiet}"
            );
        }
        let open = warnings(&spec(&["http://10.0.0.1:2379"], closed.clone()));
        assert!(open[0].contains("plain http to a non-loopback"), "{open:?}");
        let no_ca = warnings(&spec(
            &["https://10.0.0.1:2379"],
            EtcdAccess { ca: None, ..closed },
        ));
        assert!(no_ca[0].contains("`etcd_ca`"), "{no_ca:?}");
        let no_user = warnings(&spec(&["https://10.0.0.1:2379"], EtcdAccess::default()));
        assert!(
            no_user.iter().any(|w| w.contains("`etcd_user`")),
            "{no_user:?}"
        );
    }

    #[test]
    fn refusals_name_the_fix() {
        let denied = explain_refusal(
            "etcdserver: permission denied",
            Some("agent"),
            "/watchpost/main/",
        );
        assert!(denied.contains("etcd user `agent`"), "{denied}");
        assert!(denied.contains("readwrite /watchpost/main/"), "{denied}");
        assert!(
            explain_refusal("etcdserver: user name is empty", None, "/p/").contains("etcd_user")
        );
        assert!(token_expired("etcdserver: invalid auth token"));
        assert!(!token_expired("etcdserver: permission denied"));
    }
}
