//! Running one of the e2e crate's benchmark examples
//! (`tests/examples/*.rs`) in release mode and reading what it prints: one
//! JSON object a line (the other lines are progress). Every section that
//! measures through an example goes through [`json_lines`].

use crate::cargo;
use serde_json::Value;

/// Run `cargo run --release -p watchpost-e2e --example NAME -- ARGS`
/// (with the agent already built: `WATCHPOST_E2E_BUILT`), echo its output to stderr, and return its JSON lines in order. The
/// error names the benchmark (`what`) and carries its output when it
/// fails.
pub fn json_lines(what: &str, example: &str, args: &[String]) -> Result<Vec<Value>, String> {
    let output = cargo()
        .args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "watchpost-e2e",
            "--example",
            example,
            "--",
        ])
        .args(args)
        // The release agent is built (`build` in mod.rs, before every
        // section): the harness must not build it again inside a timed
        // section (it did, with other features: 3 minutes, and the first
        // round of mysql-consistency read 175-208 s instead of ~10).
        .env(crate::E2E_BUILT, "1")
        .output()
        .map_err(|e| format!("cannot run the {what} benchmark: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "the {what} benchmark failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(stdout
        .lines()
        .inspect(|line| eprintln!("xtask: {line}"))
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .collect())
}
