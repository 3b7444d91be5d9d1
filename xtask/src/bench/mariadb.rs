//! A private MariaDB server for the per-run comparison of `mysql-alive`
//! with `check_mysql` and `mysqladmin ping`: a data directory made with
//! `mariadb-install-db` under the bench directory, `mariadbd` on a free
//! loopback port and a private socket, and a monitoring account
//! (`watchpost`, no password, loopback only). The machine's own server is
//! left alone. Dropping it stops the server.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where check_mysql lives (Debian's monitoring-plugins-standard).
pub const CHECK_MYSQL: &str = "/usr/lib/nagios/plugins/check_mysql";

/// Debian packages the comparison needs, if missing.
pub fn missing_packages() -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !Path::new(CHECK_MYSQL).exists() {
        missing.push("monitoring-plugins-standard");
    }
    if !Path::new("/usr/sbin/mariadbd").exists() {
        missing.push("mariadb-server");
    }
    missing
}

pub struct Server {
    child: Child,
    pub port: u16,
}

/// True when this process runs as root (`mariadbd` then needs `--user`).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Run the `mariadb` client as root on `socket`.
fn client(socket: &Path, sql: &str) -> Result<(), String> {
    let output = Command::new("mariadb")
        .arg("--no-defaults")
        .arg(format!("--socket={}", socket.display()))
        .args(["-uroot", "--connect-timeout=2", "-e", sql])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run mariadb: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

impl Server {
    /// Make a data directory in `dir` (replacing an old one) and start a
    /// server on it; ready when it returns.
    pub fn start(dir: &Path) -> Result<Server, String> {
        let root: PathBuf = dir.join("mariadb");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).map_err(|e| format!("create {}: {e}", root.display()))?;
        let data = root.join("data");
        // Its own tmpdir, never the shared /tmp: a starting mariadbd deletes
        // every `#sql*` file in its tmpdir (MariaDB's `mysql_rm_tmp_tables`),
        // the temporary tables of other servers on that directory included.
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| format!("create {}: {e}", tmp.display()))?;
        let mut install = Command::new("mariadb-install-db");
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .stdout(Stdio::null());
        if is_root() {
            install.arg("--user=root");
        }
        crate::run(&mut install)?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("no free port: {e}"))?;
        let socket = root.join("mysqld.sock");
        let mut mariadbd = Command::new("mariadbd");
        mariadbd
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--log-error={}", root.join("mysqld.log").display()))
            .arg(format!("--port={port}"))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=32M",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if is_root() {
            mariadbd.arg("--user=root");
        }
        let child = mariadbd
            .spawn()
            .map_err(|e| format!("cannot start mariadbd: {e}"))?;
        let server = Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while client(&socket, "SELECT 1").is_err() {
            if Instant::now() > deadline {
                return Err("mariadbd did not start within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        client(
            &socket,
            "CREATE USER 'watchpost'@'127.0.0.1'; \
             GRANT SELECT, PROCESS, SLAVE MONITOR, BINLOG MONITOR ON *.* TO 'watchpost'@'127.0.0.1'",
        )?;
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
