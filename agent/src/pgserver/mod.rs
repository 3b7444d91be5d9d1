//! The PostgreSQL server as files and a process: what the agent reads and
//! writes in a data directory ([`pgdata`]) and whether its postmaster runs
//! ([`postmaster`], a three-valued answer). It sits below every layer that
//! acts on a server — restore drills' copies, remediation, cluster mode —
//! so that they share one reading of `postmaster.pid` and one rule that
//! "cannot read" is never "stopped". It depends only on [`crate::safefs`].

pub mod pgdata;
pub mod postmaster;
