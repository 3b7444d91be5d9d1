//! What a TLS failure says, for every database client of the agent
//! (PostgreSQL, MariaDB/MySQL, Redis): the TLS library's error found
//! inside the `io::Error` a TLS stream reports, and whether a server's
//! alert is about the client's certificate. A leaf: the session guard
//! and the clients both read it.

/// The TLS library's own error inside an I/O error, if it is one (a
/// TLS stream reports it as an `io::Error` whose `source()` skips it:
/// only `get_ref` reaches it).
pub fn rustls_error(error: &std::io::Error) -> Option<&rustls::Error> {
    error.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Whether a TLS alert from a server is about the client's certificate
/// (or its absence: `HandshakeFailure` under TLS 1.2, `CertificateRequired`
/// under 1.3; `UnknownCA`, `BadCertificate` and the like for one it does
/// not trust). Under TLS 1.3 a server checks the client certificate after
/// the handshake: the client meets the alert at its first read.
pub fn certificate_alert(alert: rustls::AlertDescription) -> bool {
    use rustls::AlertDescription as A;
    matches!(
        alert,
        A::HandshakeFailure
            | A::NoCertificate
            | A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::AccessDenied
            | A::DecryptError
            | A::CertificateRequired
    )
}
