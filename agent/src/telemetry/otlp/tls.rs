//! TLS to an `https://` collector: the CA bundle (else the OS trust
//! store) and an optional client certificate for mTLS, for both wires —
//! a tonic `ClientTlsConfig` for gRPC, a reqwest client on a rustls
//! config for http/protobuf. The files were checked when the config was
//! loaded; reading them again here reports one that changed since.

use super::settings::TlsSettings;
use anyhow::Context;
use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read the OTLP {what} {}", path.display()))
}

/// The client certificate and key, if both are given.
fn identity_files(tls: &TlsSettings) -> Option<(&Path, &Path)> {
    Some((
        tls.client_certificate.as_deref()?,
        tls.client_key.as_deref()?,
    ))
}

/// The gRPC TLS settings, or `None` for a plain-text endpoint.
pub fn grpc(tls: &TlsSettings) -> anyhow::Result<Option<ClientTlsConfig>> {
    if !tls.https {
        return Ok(None);
    }
    let mut config = ClientTlsConfig::new();
    config = match &tls.certificate {
        Some(ca) => config.ca_certificate(Certificate::from_pem(read(ca, "CA bundle")?)),
        None => config.with_native_roots(),
    };
    if let Some((cert, key)) = identity_files(tls) {
        config = config.identity(Identity::from_pem(
            read(cert, "client certificate")?,
            read(key, "client key")?,
        ));
    }
    Ok(Some(config))
}

/// A reqwest client for http/protobuf (over TLS when the endpoint is
/// https). Neither follows redirects: a redirect could send the exported
/// data and its headers (tokens) elsewhere.
pub fn http(tls: &TlsSettings, timeout: Duration) -> anyhow::Result<Option<reqwest::Client>> {
    if !tls.https {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot build the OTLP HTTP client")?;
        return Ok(Some(client));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    match &tls.certificate {
        Some(ca) => {
            for cert in CertificateDer::pem_slice_iter(&read(ca, "CA bundle")?) {
                let cert = cert.with_context(|| format!("{} is not PEM", ca.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("{}: not a usable CA certificate", ca.display()))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match identity_files(tls) {
        Some((cert, key)) => {
            let certs = CertificateDer::pem_slice_iter(&read(cert, "client certificate")?)
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("{} is not PEM", cert.display()))?;
            let key = PrivateKeyDer::from_pem_slice(&read(key, "client key")?)
                .with_context(|| format!("{} is not a PEM private key", key.display()))?;
            builder
                .with_client_auth_cert(certs, key)
                .context("the OTLP client certificate does not go with its key")?
        }
        None => builder.with_no_client_auth(),
    };
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot build the OTLP HTTP client")?;
    Ok(Some(client))
}
