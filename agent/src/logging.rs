//! Log setup: human-readable lines on stderr, filtered by `WATCHPOST_LOG`
//! (same syntax as `RUST_LOG`). One-shot commands log only warnings (and
//! the probe's own lines) so that their stdout stays clean. Colours only
//! on a terminal (the journal gets plain lines); `WATCHPOST_LOG_FORMAT=json`
//! gives one JSON object per line for log shippers.

use crate::cli::Command;
use tracing_subscriber::EnvFilter;

pub fn init(command: &Command) {
    let default = match command {
        Command::Run(_) => "info",
        _ => "warn,probe=info",
    };
    let filter =
        EnvFilter::try_from_env("WATCHPOST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi);
    let _ = match std::env::var("WATCHPOST_LOG_FORMAT").as_deref() {
        Ok("json") => builder.json().try_init(),
        _ => builder.try_init(),
    };
}
