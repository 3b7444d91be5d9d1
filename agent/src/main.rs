//! The `watchpost` binary: parse the command line, set up logging and the
//! async runtime, run the subcommand, and turn any error into one clear
//! line on stderr (never a panic message or a backtrace).

use clap::Parser;
use std::process::ExitCode;
use watchpost::cli::{Cli, dispatch};

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".into());
        eprintln!(
            "watchpost: internal error{location}: {message} (this is a bug; please report it)"
        );
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Usage errors are UNKNOWN (3) in the Nagios convention.
            return ExitCode::from(if e.use_stderr() { 3 } else { 0 });
        }
    };
    watchpost::logging::init(&cli.command);
    raise_open_files_limit();
    // TLS for webhooks and the OTLP HTTP exporter uses rustls with ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("watchpost: error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("watchpost: error: {e:#}");
            ExitCode::from(watchpost::cli::exit_code(&e))
        }
    }
}

/// Raise the soft limit on open files to the hard limit: the agent holds
/// sockets for its API, database pools and exporters, and a soft limit of
/// 1024 is easy to reach. (Running out is still reported as the agent's
/// own failure, never as a database being down.)
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `limit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
