//! A PostgreSQL server that takes TLS only: `ssl = on` with a server
//! certificate for `localhost` signed by a CA made by the test, and a
//! `pg_hba.conf` of `hostssl` lines (the role [`CERT_USER`] must present a
//! client certificate of that CA) and a `hostnossl ... reject` line.

use super::cluster::{Cluster, MONITOR_USER};
use super::command::hand_over;
use crate::pki::{Ca, Leaf};
use std::path::PathBuf;
use tempfile::TempDir;

/// The role that logs in with a client certificate (`cert` in pg_hba).
pub const CERT_USER: &str = "certuser";

pub struct TlsServer {
    pub cluster: Cluster,
    /// The CA that signed the server's and the client's certificates.
    pub ca: Ca,
    /// A client certificate for [`CERT_USER`], readable only by us.
    pub client: Leaf,
    /// Certificates and keys given to the agent (ours, not the server's).
    pub files: PathBuf,
    _dir: TempDir,
    _files: TempDir,
}

impl TlsServer {
    pub fn start() -> TlsServer {
        let dir = tempfile::Builder::new()
            .prefix("watchpost-pg-tls-")
            .tempdir()
            .expect("create a temporary directory");
        let files_dir = tempfile::Builder::new()
            .prefix("watchpost-pg-tls-files-")
            .tempdir()
            .expect("create a temporary directory");
        let files = files_dir.path().to_path_buf();
        let ca = Ca::new(&files, "test-ca");
        let server = ca.server("server", &["localhost"]);
        let client = ca.client("client", CERT_USER);
        let server_dir = dir.path().join("server-files");
        std::fs::create_dir(&server_dir).expect("create the server files directory");
        for (from, to) in [
            (&server.cert, "server.crt"),
            (&server.key, "server.key"),
            (&ca.cert, "ca.crt"),
        ] {
            std::fs::copy(from, server_dir.join(to)).expect("copy a server file");
        }
        // The server (its own OS user when we are root) must own the
        // directory and its key.
        hand_over(dir.path());
        let at = |f: &str| server_dir.join(f).display().to_string();
        let settings = vec![
            ("ssl".to_string(), "on".to_string()),
            ("ssl_cert_file".to_string(), at("server.crt")),
            ("ssl_key_file".to_string(), at("server.key")),
            ("ssl_ca_file".to_string(), at("ca.crt")),
        ];
        let mut cluster = Cluster::init(dir.path(), "tls", &settings);
        let hba = format!(
            "local all all trust\n\
             hostssl all {CERT_USER} 127.0.0.1/32 cert\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 reject\n"
        );
        std::fs::write(cluster.data_dir().join("pg_hba.conf"), hba).expect("write pg_hba.conf");
        cluster.start();
        cluster.execute(&format!(
            "CREATE ROLE {MONITOR_USER} LOGIN IN ROLE pg_monitor;
             CREATE ROLE {CERT_USER} LOGIN IN ROLE pg_monitor;"
        ));
        TlsServer {
            cluster,
            ca,
            client,
            files,
            _dir: dir,
            _files: files_dir,
        }
    }

    /// A DSN for `user` at host name `host` (the address is always
    /// 127.0.0.1), with `extra` keywords.
    pub fn dsn(&self, host: &str, user: &str, extra: &str) -> String {
        format!(
            "host={host} hostaddr=127.0.0.1 port={} user={user} dbname=postgres {extra}",
            self.cluster.port()
        )
    }
}
