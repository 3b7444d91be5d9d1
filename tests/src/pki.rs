//! A certificate authority made by a test (`rcgen`): its certificate in a
//! PEM file, and leaf certificates it signs for servers (by host name)
//! and for clients (by common name), each with a private key file of
//! mode 0600, as the agent requires of secrets.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub struct Ca {
    /// The CA certificate (PEM).
    pub cert: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    dir: PathBuf,
}

/// A leaf certificate and its key, as files.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Ca {
    /// A new CA named `name`, its files in `dir`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        let key = KeyPair::generate().expect("generate a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("self-sign the CA");
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, cert.pem()).expect("write the CA certificate");
        Ca {
            cert: path,
            issuer: Issuer::new(params, key),
            dir: dir.to_path_buf(),
        }
    }

    /// A server certificate for `hosts` (DNS names or IP addresses).
    pub fn server(&self, file: &str, hosts: &[&str]) -> Leaf {
        let names: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("server params");
        params.distinguished_name.push(
            DnType::CommonName,
            hosts.first().copied().unwrap_or("server"),
        );
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(file, params)
    }

    /// A server certificate for `hosts` that may also authenticate as a
    /// client (etcd's gateway dials etcd's own gRPC with it).
    pub fn server_and_client(&self, file: &str, hosts: &[&str]) -> Leaf {
        let names: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("server params");
        params.distinguished_name.push(
            DnType::CommonName,
            hosts.first().copied().unwrap_or("server"),
        );
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.sign(file, params)
    }

    /// A client certificate whose common name is `user`.
    pub fn client(&self, file: &str, user: &str) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, user);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(file, params)
    }

    /// A client certificate with an empty subject, as etcd's JSON gateway
    /// requires under `--client-cert-auth` (it refuses one with a
    /// CommonName: etcd#10366).
    pub fn anonymous_client(&self, file: &str) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(file, params)
    }

    fn sign(&self, file: &str, params: CertificateParams) -> Leaf {
        let key = KeyPair::generate().expect("generate a key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let leaf = Leaf {
            cert: self.dir.join(format!("{file}.crt")),
            key: self.dir.join(format!("{file}.key")),
        };
        std::fs::write(&leaf.cert, cert.pem()).expect("write a certificate");
        std::fs::write(&leaf.key, key.serialize_pem()).expect("write a key");
        std::fs::set_permissions(&leaf.key, std::fs::Permissions::from_mode(0o600))
            .expect("chmod a key");
        leaf
    }
}
