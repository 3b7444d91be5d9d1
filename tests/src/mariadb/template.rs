//! The template data directory every test server starts from: made once
//! per test run (`mariadb-install-db` takes seconds, a copy milliseconds),
//! with the tests' accounts already in it, and removed when the test
//! process exits.
//!
//! Accounts in the template (all over TCP from anywhere, no password unless
//! said): `root` (also over the private socket, which the tests use),
//! [`MONITOR_USER`] (what a probes' account needs: `PROCESS`,
//! `SLAVE MONITOR`, `BINLOG MONITOR`, `SELECT`), [`PASSWORD_USER`] (the same
//! grants, password [`PASSWORD`]) and [`ADMIN_USER`] (`ALL`, for the
//! privilege warnings).

use super::command::{is_root, program, run};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The probes' account: monitoring grants only.
pub const MONITOR_USER: &str = "watchpost";
/// A monitoring account that must give [`PASSWORD`].
pub const PASSWORD_USER: &str = "watchpost_pw";
/// The password of [`PASSWORD_USER`].
pub const PASSWORD: &str = "s3cret-pw";
/// An account with `ALL PRIVILEGES` (what a probes' account must not have).
pub const ADMIN_USER: &str = "wp_admin";

/// The SQL run once on the template.
fn accounts() -> String {
    let monitor = "PROCESS, SLAVE MONITOR, BINLOG MONITOR, SELECT";
    format!(
        "CREATE USER '{MONITOR_USER}'@'%';
         GRANT {monitor} ON *.* TO '{MONITOR_USER}'@'%';
         CREATE USER '{PASSWORD_USER}'@'%' IDENTIFIED BY '{PASSWORD}';
         GRANT {monitor} ON *.* TO '{PASSWORD_USER}'@'%';
         CREATE USER '{ADMIN_USER}'@'%';
         GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'%' WITH GRANT OPTION;
         CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
         GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
         CREATE DATABASE app;"
    )
}

static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();

/// The template data directory, made on first use.
pub fn path() -> &'static Path {
    TEMPLATE.get_or_init(make)
}

extern "C" fn remove_template() {
    if let Some(dir) = TEMPLATE.get() {
        let _ = std::fs::remove_dir_all(dir.parent().unwrap_or(dir));
    }
}

fn make() -> PathBuf {
    let root =
        std::env::temp_dir().join(format!("watchpost-mariadb-template-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("create the template's directory");
    // SAFETY: registers a plain function with no arguments; it only reads
    // the set-once TEMPLATE.
    unsafe { libc::atexit(remove_template) };
    let data = root.join("data");
    // The bootstrap server's own tmpdir (see `Server::tmp`).
    let tmp = root.join("tmp");
    std::fs::create_dir_all(&tmp).expect("create the template's tmpdir");
    let mut install = Command::new(program("mariadb-install-db"));
    install
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--tmpdir={}", tmp.display()))
        .args([
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ]);
    if is_root() {
        install.arg("--user=root");
    }
    run(install);
    // Add the accounts with the server itself, on its socket only.
    let mut server = super::Server::on(&data, &root, None);
    server.start();
    server.execute(&accounts());
    server.stop();
    data
}
