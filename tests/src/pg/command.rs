//! Running PostgreSQL's server programs. `initdb` and `postgres` refuse to
//! run as root, so when the tests run as root the programs run as the
//! `postgres` OS user (through `setpriv`, which execs the program in its
//! own process: `runuser` forks it and waits, so killing the `Child` a
//! test holds left the program running) and the directories they use are
//! handed to that user; otherwise they run as the current user.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's PostgreSQL 15 server programs live.
pub const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// The OS user that owns the clusters when the tests run as root.
const SERVER_USER: &str = "postgres";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The path of server program `name`, or a panic saying how to install it.
pub fn program(name: &str) -> PathBuf {
    let path = Path::new(BIN_DIR).join(name);
    assert!(
        path.exists(),
        "{} is missing: install PostgreSQL 15 (`cargo xtask setup` does)",
        path.display()
    );
    path
}

/// A command running server program `name`, as the server's OS user.
pub fn server_command(name: &str, cwd: &Path) -> Command {
    let mut command = if is_root() {
        let mut command = Command::new("setpriv");
        command.args(as_server_user()).arg(program(name));
        with_server_user_env(&mut command);
        command
    } else {
        Command::new(program(name))
    };
    // The programs must be able to enter their working directory.
    command.current_dir(cwd);
    command
}

/// [`server_command`] run in network namespace `netns` (`ip netns exec`,
/// which execs the program: the server it starts lives in the namespace).
pub fn server_command_in(name: &str, cwd: &Path, netns: Option<&str>) -> Command {
    let Some(ns) = netns else {
        return server_command(name, cwd);
    };
    let mut command = Command::new("ip");
    command.args(["netns", "exec", ns]);
    if is_root() {
        command.arg("setpriv").args(as_server_user());
        with_server_user_env(&mut command);
    }
    command.arg(program(name)).current_dir(cwd);
    command
}

/// `setpriv`'s arguments that switch to the server's OS user (its groups
/// too) and exec the program that follows in the same process.
fn as_server_user() -> [String; 4] {
    [
        format!("--reuid={SERVER_USER}"),
        format!("--regid={SERVER_USER}"),
        "--init-groups".into(),
        "--".into(),
    ]
}

/// The environment `runuser -u` gives the user (`setpriv` changes none).
fn with_server_user_env(command: &mut Command) {
    command
        .env("HOME", "/var/lib/postgresql")
        .env("USER", SERVER_USER)
        .env("LOGNAME", SERVER_USER);
}

/// Run `command`; panic with its output if it fails.
pub fn run(mut command: Command) -> String {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{shown} failed ({}):\n{text}",
        output.status
    );
    text
}

/// Make `dir` usable by the server's OS user (when running as root).
pub fn hand_over(dir: &Path) {
    if is_root() {
        let mut chown = Command::new("chown");
        chown.arg("-R").arg(format!("{SERVER_USER}:")).arg(dir);
        run(chown);
    }
}
