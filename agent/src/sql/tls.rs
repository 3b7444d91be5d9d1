//! TLS to PostgreSQL with rustls (through `tokio-postgres-rustls`), with
//! libpq's `sslmode` semantics:
//!
//! | sslmode | TLS | server certificate checked |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow` | only if plain text is refused | no |
//! | `prefer` (default) | tried first, plain text if that fails | no |
//! | `require` | always | only against `sslrootcert` when one is given (as libpq) |
//! | `verify-ca` | always | chain to `sslrootcert` (or the OS trust store) |
//! | `verify-full` | always | chain, and the host name |
//!
//! `sslrootcert=system`, or no `sslrootcert` under `verify-*`, means the
//! OS trust store (`rustls-native-certs`). `sslcert` + `sslkey` present a
//! client certificate; the key must be private (see [`super::secrets`]).
//! [`Connector`] opens every session of a target: pooled, ping and admin.

use super::guard::{Guard, GuardedTls, Socket, connect_socket};
use super::secrets::read_secret_file;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_postgres::config::SslMode as WireMode;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(text: &str) -> Result<SslMode, String> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "`sslmode` = {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                ));
            }
        })
    }
}

/// The certificate files a connection string names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub root_cert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// How the server's certificate is checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Certificates of a PEM file; the error names the file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read the certificate {}: {e}", path.display()))?;
    certs_from_pem(path, &bytes)
}

/// The certificates of PEM text `bytes`, read from `path` (named in
/// errors); at least one.
pub fn certs_from_pem(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let certs: Vec<_> = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{shown} is not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "{shown} holds no certificate (expected -----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(certs)
}

/// A private key from a PEM file that only the agent's user can read.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    key_from_pem(path, &read_secret_file(path)?)
}

/// The private key of PEM text `text`, read from `path` (named in
/// errors).
pub fn key_from_pem(path: &Path, text: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(|e| {
        format!(
            "{} is not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
            path.display()
        )
    })
}

/// Trust anchors: the `sslrootcert` file, or the OS trust store.
pub fn root_store(root_cert: Option<&Path>) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) if path != Path::new("system") => {
            for cert in load_certs(path)? {
                roots.add(cert).map_err(|e| {
                    format!(
                        "{}: a certificate is not usable as a CA: {e}",
                        path.display()
                    )
                })?;
            }
        }
        _ => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("the OS trust store has no certificates (install ca-certificates, or give `sslrootcert`)".into());
            }
        }
    }
    Ok(roots)
}

/// Check that the files a connection string names can be used (at config
/// load, so that `validate` reports them).
pub fn check_files(mode: SslMode, files: &TlsFiles) -> Result<(), String> {
    if mode == SslMode::Disable {
        return Ok(());
    }
    client_config(mode, files).map(|_| ())
}

/// The rustls client config for a mode and its files.
fn client_config(mode: SslMode, files: &TlsFiles) -> Result<rustls::ClientConfig, String> {
    let check = match mode {
        SslMode::VerifyFull => Check::ChainAndName,
        SslMode::VerifyCa => Check::Chain,
        // libpq: with a root certificate, `require` verifies as verify-ca.
        SslMode::Require if files.root_cert.is_some() => Check::Chain,
        _ => Check::Nothing,
    };
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match check {
        Check::Nothing => Arc::new(AcceptAny(provider.signature_verification_algorithms)),
        _ => {
            let roots = root_store(files.root_cert.as_deref())?;
            let webpki =
                WebPkiServerVerifier::builder_with_provider(roots.into(), provider.clone())
                    .build()
                    .map_err(|e| format!("cannot use the CA certificates: {e}"))?;
            if check == Check::Chain {
                Arc::new(IgnoreName(webpki))
            } else {
                webpki
            }
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| {
                format!(
                    "the client certificate {} does not go with the key {}: {e}",
                    cert.display(),
                    key.display()
                )
            }),
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// Opens a target's sessions with its `sslmode`: plain, TLS, or one then
/// the other (`prefer`, `allow`).
#[derive(Clone)]
pub struct Connector {
    /// The attempts, in order.
    attempts: Vec<Attempt>,
}

#[derive(Clone)]
enum Attempt {
    Plain,
    /// TLS, and whether a client certificate is presented (`sslcert`).
    Tls(MakeRustlsConnect, bool),
}

/// A session's client and the task that drives its connection (it ends
/// with the client).
pub type Session = (tokio_postgres::Client, tokio::task::JoinHandle<()>);

impl Connector {
    pub fn new(mode: SslMode, files: &TlsFiles) -> Result<Connector, String> {
        let client_cert = files.cert.is_some();
        let tls = || {
            client_config(mode, files).map(|c| Attempt::Tls(MakeRustlsConnect::new(c), client_cert))
        };
        let attempts = match mode {
            SslMode::Disable => vec![Attempt::Plain],
            SslMode::Allow => vec![Attempt::Plain, tls()?],
            SslMode::Prefer => vec![tls()?, Attempt::Plain],
            _ => vec![tls()?],
        };
        Ok(Connector { attempts })
    }

    /// Connect with `config`; with two attempts the second is made when
    /// the first fails, and its error is the one reported if both fail
    /// (as libpq reports the last).
    pub async fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> Result<Session, tokio_postgres::Error> {
        let mut last = None;
        for attempt in &self.attempts {
            match attempt.connect(config).await {
                Ok(session) => return Ok(session),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("a connector has at least one attempt"))
    }
}

impl Attempt {
    /// Open the socket ourselves (see [`super::guard`]) and start the
    /// session over it, with every message from the server bounded.
    async fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> Result<Session, tokio_postgres::Error> {
        let mut config = config.clone();
        let (socket, host) = connect_socket(&config).await;
        match self {
            Attempt::Plain => {
                config.ssl_mode(WireMode::Disable);
                let (client, connection) = config
                    .connect_raw(Guard::new(socket), tokio_postgres::NoTls)
                    .await?;
                Ok((
                    client,
                    tokio::spawn(async move {
                        let _ = connection.await;
                    }),
                ))
            }
            Attempt::Tls(make, client_cert) => {
                config.ssl_mode(WireMode::Require);
                let tls = MakeTlsConnect::<Socket>::make_tls_connect(&mut make.clone(), &host)
                    .map_err(|never| match never {})?;
                let (client, connection) = config
                    .connect_raw(socket, GuardedTls(tls, *client_cert))
                    .await?;
                Ok((
                    client,
                    tokio::spawn(async move {
                        let _ = connection.await;
                    }),
                ))
            }
        }
    }
}

impl deadpool_postgres::Connect for Connector {
    fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> futures_util::future::BoxFuture<'_, Result<Session, tokio_postgres::Error>> {
        let config = config.clone();
        Box::pin(async move { Connector::connect(self, &config).await })
    }
}

/// The server certificate is not checked (`prefer`, `allow`, `require`
/// without a root certificate), but the handshake's signatures are.
#[derive(Debug)]
struct AcceptAny(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// `verify-ca`: the chain is checked, the host name is not.
#[derive(Debug)]
struct IgnoreName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for IgnoreName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
