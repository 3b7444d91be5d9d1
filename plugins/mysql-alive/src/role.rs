//! The server's writability (`read_only`, MySQL's `super_read_only`) and
//! role (a replica has a replication source configured), each read on a
//! pooled session.

use crate::flag;
use watchpost_probe::{Findings, Result, measurement};

/// The read-only switches.
pub struct Flags {
    pub read_only: bool,
    /// `None` on servers without the variable (MariaDB).
    pub super_read_only: Option<bool>,
}

impl Flags {
    pub fn read(target: &str) -> Result<Flags> {
        let on = |name: &str| -> Result<Option<bool>> {
            Ok(mysql_common::variable(target, name)?
                .as_ref()
                .and_then(mysql_common::number)
                .map(|v| v != 0.0))
        };
        Ok(Flags {
            read_only: on("read_only")?.unwrap_or(false),
            super_read_only: on("super_read_only")?,
        })
    }

    pub fn measure(&self, findings: &mut Findings) {
        findings.push(measurement("mysql.read_only", flag(self.read_only), "1"));
        if let Some(on) = self.super_read_only {
            findings.push(measurement("mysql.super_read_only", flag(on), "1"));
        }
    }
}

/// True when `target` replicates from at least one source.
pub fn is_replica(target: &str) -> Result<bool> {
    Ok(!mysql_common::replica_status(target)?.is_empty())
}
