//! Running one of the e2e crate's benchmark examples
//! (`tests/examples/*.rs`) in release mode and reading what it prints: one
//! JSON object a line (the other lines are progress). Every section that
//! measures through an example goes through [`json_lines`].

use crate::cargo;
use serde_json::Value;

/// Run `cargo run --release -p watchpost-e2e --example NAME -- ARGS`,
/// echo its output to stderr, and return its JSON lines in order. The
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
