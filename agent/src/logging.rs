//! Log setup: human-readable lines on stderr, filtered by `WATCHPOST_LOG`
//! (same syntax as `RUST_LOG`). One-shot commands log only warnings (and
//! the probe's own lines) so that their stdout stays clean.

use crate::cli::Command;
use tracing_subscriber::EnvFilter;

pub fn init(command: &Command) {
    let default = match command {
        Command::Check(_) | Command::Validate(_) | Command::New(_) => "warn,probe=info",
    };
    let filter =
        EnvFilter::try_from_env("WATCHPOST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not in files and pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
