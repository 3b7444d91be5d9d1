//! TLS of a `rediss://` target: the client's rustls configuration (the
//! CA file or the OS trust store, a client certificate), and what a failed
//! handshake or a refused certificate says, naming the key to fix
//! (`tls_ca_file`, the `dsn` host, `tls_cert_file`).

use super::Error;
use crate::sql::tls_alert::{certificate_alert, rustls_error};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_rustls::rustls;

/// TLS files of a target: the CA to check the server against (None: the
/// OS trust store) and a client certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// A rustls client config with the ring provider, the CA file (or the OS
/// trust store) and the client certificate when one is given.
pub(super) fn client_config(files: &TlsFiles) -> Result<rustls::ClientConfig, String> {
    use crate::sql::tls::{load_certs, load_key, root_store};
    let roots = root_store(files.ca.as_deref())?;
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup: {e}"))?
    .with_root_certificates(roots);
    match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| format!("the client certificate and key do not fit together: {e}")),
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err("give both `tls_cert_file` and `tls_key_file`, or neither".into()),
    }
}

/// A failed TLS handshake, with what to fix: the server's certificate
/// (`tls_ca_file`, the host name in `dsn`) or the client's
/// (`tls_cert_file`, which a server refuses with an alert during a TLS
/// 1.2 handshake). A server that answered in TLS and refused is alive
/// (refusing); a connection that closed or broke without a TLS answer, or
/// an answer that is not TLS, is unreachable.
pub(super) fn handshake_error(error: io::Error, client_cert: bool) -> Error {
    use rustls::CertificateError as Cert;
    let text = error.to_string();
    let fix = match rustls_error(&error) {
        Some(rustls::Error::InvalidCertificate(cert)) => match cert {
            Cert::NotValidForName | Cert::NotValidForNameContext { .. } => {
                "the server's certificate does not name the host of `dsn`: connect by a name \
                 the certificate holds"
            }
            Cert::Expired
            | Cert::ExpiredContext { .. }
            | Cert::NotValidYet
            | Cert::NotValidYetContext { .. } => {
                "the server's certificate is outside its validity period: renew it (or check \
                 this host's clock)"
            }
            _ => {
                "the server's certificate is not trusted: set `tls_ca_file` to the CA that \
                  signed it"
            }
        },
        Some(rustls::Error::AlertReceived(alert)) if certificate_alert(*alert) => {
            refused_client_cert(client_cert)
        }
        // Bytes that are not TLS: a plain Redis port (its `-ERR` to the
        // ClientHello) or another service. No TLS server answered.
        Some(
            rustls::Error::InvalidMessage(_)
            | rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. },
        ) => {
            return Error::Unreachable(format!(
                "TLS handshake failed: {text}: the reply is not TLS: is this port the server's \
                 TLS port (tls-port)?"
            ));
        }
        Some(_) => "check the TLS versions and ciphers the server allows",
        None => {
            return Error::Unreachable(format!(
                "TLS handshake failed: {text} (is this port the server's TLS port, tls-port?)"
            ));
        }
    };
    Error::Refused(format!("TLS handshake failed: {text}: {fix}"))
}

/// What to fix when a TLS server refuses the client's certificate (or
/// its absence).
pub(super) fn refused_client_cert(client_cert: bool) -> &'static str {
    if client_cert {
        "the server refused the client certificate `tls_cert_file`: it must be signed by a CA \
         the server trusts (tls-ca-cert-file) and allow client authentication"
    } else {
        "the server asks for a client certificate (tls-auth-clients): set `tls_cert_file` and \
         `tls_key_file` to one signed by a CA it trusts (tls-ca-cert-file)"
    }
}
