//! `sql`: statements against the database targets the probe is granted.
//! Asking for any other target is refused and remembered, so that the run
//! ends as `denied` whatever the probe does with the error.

use crate::runtime::bindings::sql::{Error, Host, Rows, Value};
use crate::runtime::state::RunState;

impl RunState {
    /// Check the grant; record a refusal.
    fn grant(&mut self, target: &str) -> Result<(), Error> {
        if self.grants.targets.iter().any(|t| t == target) {
            return Ok(());
        }
        let granted = if self.grants.targets.is_empty() {
            "none".to_string()
        } else {
            self.grants.targets.join(", ")
        };
        let message = format!(
            "probe `{}` is not granted target `{target}` (granted: {granted}); add it to the \
             probe's `targets` in the config",
            self.grants.name
        );
        if self.denied.is_none() {
            self.denied = Some(message.clone());
        }
        Err(Error::NotGranted(message))
    }
}

impl Host for RunState {
    async fn ping(&mut self, target: String) -> Result<u64, Error> {
        self.grant(&target)?;
        let took = self.services.sql.ping(&target, self.sql_deadline).await?;
        Ok(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX))
    }

    async fn targets(&mut self) -> Vec<String> {
        self.grants.targets.clone()
    }

    async fn query(
        &mut self,
        target: String,
        statement: String,
        params: Vec<Value>,
    ) -> Result<Rows, Error> {
        self.grant(&target)?;
        self.services
            .sql
            .query(&target, &statement, &params, self.sql_deadline)
            .await
    }
}
