//! An operator's fence command (`fence = [...]`), the same for every
//! engine's failover: an argv without a shell, run by [`crate::process`]
//! within [`FENCE_TIMEOUT`].

use crate::process::{self, CommandSpec};
use std::time::Duration;

/// How long an operator's fence command may run, in every failover.
pub const FENCE_TIMEOUT: Duration = Duration::from_secs(30);

/// Run an operator's fence command `argv` (no shell) within
/// [`FENCE_TIMEOUT`]: `Ok` with a summary of what it printed when it
/// exits 0, else `Err` naming how it failed.
pub async fn fence(argv: &[String]) -> Result<String, String> {
    let spec = CommandSpec {
        argv: argv.to_vec(),
        timeout: FENCE_TIMEOUT,
        ..CommandSpec::default()
    };
    match process::run(&spec).await {
        Ok(out) if out.success() => Ok(format!("fence command succeeded ({})", out.summary())),
        Ok(out) => Err(format!("fence command failed: {}", out.summary())),
        Err(e) => Err(e),
    }
}
