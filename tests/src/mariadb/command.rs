//! Running MariaDB's programs for the tests: finding them, running one to
//! completion, and the root question (`mariadbd` refuses to run as root
//! unless told `--user=root`).

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The path of MariaDB program `name` (in /usr/sbin or /usr/bin), or a
/// panic saying how to install it.
pub fn program(name: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.exists())
        .unwrap_or_else(|| {
            panic!("{name} is missing: install mariadb-server (`cargo xtask setup` does)")
        })
}

/// Run `command`; panic with its output if it fails.
pub fn run(command: Command) -> String {
    let shown = format!("{command:?}");
    try_run(command).unwrap_or_else(|text| panic!("{shown} failed:\n{text}"))
}

/// Run `command`: its standard output, or its output and status on failure.
pub fn try_run(mut command: Command) -> Result<String, String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{}: {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
