//! The PostgreSQL server as files and a process: what the agent reads and
//! writes in a data directory ([`pgdata`]) and whether its postmaster runs
//! ([`postmaster`], a three-valued answer). It sits below every layer that
//! acts on a server — restore drills' copies, remediation, cluster mode —
//! so that they share one reading of `postmaster.pid` and one rule that
//! "cannot read" is never "stopped". It depends only on [`crate::safefs`].

pub mod pgdata;
pub mod postmaster;

/// The environment under which a PostgreSQL program whose output the agent
/// parses must run: `LC_ALL=C`. PostgreSQL's programs translate their
/// output (gettext) under the agent's locale: with `LANG=C.UTF-8` and
/// `LANGUAGE=de`, `pg_controldata` prints `Position des letzten
/// Checkpoints:` for `Latest checkpoint location:`, and `pg_checksums`
/// its "data checksums are not enabled" in German. In the `C` locale
/// gettext ignores `LANGUAGE` (glibc's rule), so the text is the source's.
pub const UNTRANSLATED: (&str, &str) = ("LC_ALL", "C");
