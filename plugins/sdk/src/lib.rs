//! # watchpost-probe: write Watchpost health probes in Rust
//!
//! A probe is a WebAssembly component that implements the
//! `watchpost:probe` world (see `wit/` in the Watchpost repository). This
//! crate holds the generated bindings and the small helpers that make a
//! probe a short, obvious file:
//!
//! ```ignore
//! use watchpost_probe::{Info, Kind, Probe, Report, Result, Threshold, host, measurement};
//!
//! struct Load;
//!
//! impl Probe for Load {
//!     fn describe() -> Info {
//!         Info::new("load", Kind::Host, "1-minute load average per core")
//!             .measures("system.cpu.load_average.1m", "1", "load average over 1 minute")
//!     }
//!
//!     fn check() -> Result<Report> {
//!         let cpu = host::cpu();
//!         let per_core = cpu.load1 / f64::from(cpu.cores.max(1));
//!         let limit = Threshold::above(2.0, 4.0).configured("warning", "critical")?;
//!         Ok(Report::new(limit.status(per_core), format!("load {per_core:.2} per core"))
//!             .with(measurement("system.cpu.load_average.1m", cpu.load1, "1")))
//!     }
//! }
//!
//! watchpost_probe::export_probe!(Load);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (crate type
//! `cdylib`) and try it with `watchpost check target/.../load.wasm`.
//!
//! Modules follow the capabilities of the world: [`config`] (the probe's
//! settings), [`log`], [`host`] (machine metrics), [`sql`] (database
//! targets; [`sql::ident`] puts names from config into statements safely)
//! [`redis`] (Redis and Valkey targets: commands from a read-only
//! allowlist, replies as trees) and [`dirs`] (read-only directories, e.g.
//! backup repositories).
//! [`report`] builds what `check` returns: a [`Report`] directly, or
//! [`Findings`] (problems with their statuses, and notes) for probes that
//! check several things. A failed `sql` call met with `?` decides the
//! status itself when it is about the connection (unreachable or timed out:
//! `critical`; refused: `warning`).

#[doc(hidden)]
pub mod bindings;
pub mod config;
pub mod dirs;
mod error;
pub mod log;
pub mod redis;
pub mod report;
pub mod sql;

/// Host metrics: CPU, memory, filesystems, processes (the `host` import).
pub mod host {
    pub use crate::bindings::watchpost::probe::host::*;
}

pub use bindings::watchpost::probe::types::{
    Attribute, Info, Kind, Measurement, MeasurementInfo, Report, Status,
};
pub use error::{Error, Result};
pub use report::{Findings, Threshold, measurement};

/// What a probe implements. Export it with [`export_probe!`].
pub trait Probe {
    /// Static description: name, version, kind, measurements.
    fn describe() -> Info;
    /// One run of the check. Return `Err` only when the probe cannot decide
    /// a status at all; a detected problem is a `Report` with a bad status.
    /// (An error that carries a status, such as an unreachable database
    /// target met with `?`, becomes a report with that status.)
    fn check() -> Result<Report>;
}

/// Export a [`Probe`] implementation as the component's `describe` and
/// `check` functions. Use it once, at the crate root of a `cdylib`.
#[macro_export]
macro_rules! export_probe {
    ($probe:ty) => {
        #[doc(hidden)]
        pub struct __WatchpostProbeExport;

        impl $crate::bindings::Guest for __WatchpostProbeExport {
            fn describe() -> $crate::Info {
                <$probe as $crate::Probe>::describe()
            }

            fn check() -> ::core::result::Result<$crate::Report, ::std::string::String> {
                $crate::report::settle(<$probe as $crate::Probe>::check())
            }
        }

        $crate::bindings::__export_probe_world!(
            __WatchpostProbeExport with_types_in $crate::bindings
        );
    };
}

/// Return early from `check` with an error message, like `anyhow::bail!`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return ::core::result::Result::Err($crate::Error::msg(::std::format!($($arg)*)))
    };
}
