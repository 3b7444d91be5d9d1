//! A TLS front for a plain-text test server (the OTLP receiver): it
//! terminates TLS with a server certificate made by the test (ALPN `h2`
//! and `http/1.1`, so gRPC and HTTP clients both get what they ask for),
//! optionally requires a client certificate signed by a given CA (mTLS),
//! and copies the bytes to the server on `backend`. Connections whose
//! handshake fails are counted.

use crate::pki::Leaf;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct TlsProxy {
    pub port: u16,
    /// Handshakes that failed (no or a wrong client certificate, ...).
    pub failed_handshakes: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

impl TlsProxy {
    /// Serve TLS with `server` on a free port, forwarding to `backend`;
    /// with `client_ca`, only clients with a certificate it signed.
    pub fn start(backend: u16, server: &Leaf, client_ca: Option<&Path>) -> TlsProxy {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in certs(ca) {
                    roots.add(cert).unwrap();
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    roots.into(),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let key = PrivateKeyDer::from_pem_file(&server.key).unwrap();
        let mut config = builder.with_single_cert(certs(&server.cert), key).unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let failed_handshakes = Arc::new(AtomicUsize::new(0));
        let failed = failed_handshakes.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let failed = failed.clone();
                tokio::spawn(async move {
                    let mut tls = match acceptor.accept(stream).await {
                        Ok(tls) => tls,
                        Err(_) => {
                            failed.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                    };
                    let Ok(mut plain) =
                        tokio::net::TcpStream::connect(("127.0.0.1", backend)).await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsProxy {
            port,
            failed_handshakes,
            _runtime: runtime,
        }
    }
}
