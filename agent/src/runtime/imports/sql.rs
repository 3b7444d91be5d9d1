//! `sql`: statements against the database targets the probe is granted.
//! Asking for any other target is refused and remembered, so that the run
//! ends as `denied` whatever the probe does with the error.
//!
//! This is also where the WIT's `sql` types meet the [`crate::sql`]
//! module's own: the `From` conversions below are the only link between
//! them, so that `sql` does not depend on the runtime.

use crate::runtime::bindings::sql::{Error, Host, QueryError, Rows, Value};
use crate::runtime::state::RunState;
use crate::sql;

impl From<Value> for sql::Value {
    fn from(value: Value) -> Self {
        match value {
            Value::Null => sql::Value::Null,
            Value::Boolean(b) => sql::Value::Boolean(b),
            Value::Int(i) => sql::Value::Int(i),
            Value::Float(f) => sql::Value::Float(f),
            Value::Text(s) => sql::Value::Text(s),
            Value::Bytes(b) => sql::Value::Bytes(b),
        }
    }
}

impl From<sql::Value> for Value {
    fn from(value: sql::Value) -> Self {
        match value {
            sql::Value::Null => Value::Null,
            sql::Value::Boolean(b) => Value::Boolean(b),
            sql::Value::Int(i) => Value::Int(i),
            sql::Value::Float(f) => Value::Float(f),
            sql::Value::Text(s) => Value::Text(s),
            sql::Value::Bytes(b) => Value::Bytes(b),
        }
    }
}

impl From<sql::Rows> for Rows {
    fn from(rows: sql::Rows) -> Self {
        Rows {
            columns: rows.columns,
            rows: rows
                .rows
                .into_iter()
                .map(|row| row.into_iter().map(Value::from).collect())
                .collect(),
            affected: rows.affected,
        }
    }
}

impl From<sql::Error> for Error {
    fn from(error: sql::Error) -> Self {
        match error {
            sql::Error::NotGranted(m) => Error::NotGranted(m),
            sql::Error::Unreachable(m) => Error::Unreachable(m),
            sql::Error::Refused(m) => Error::Refused(m),
            sql::Error::Timeout(m) => Error::Timeout(m),
            sql::Error::Query(q) => Error::Query(QueryError {
                code: q.code,
                message: q.message,
            }),
            // The run ends `unknown` whatever the probe makes of these
            // (see `RunState::settle`); to the probe they are errors of
            // the agent's side (SQLSTATE class 58, system error) and of a
            // result over a limit (54000, program limit exceeded).
            sql::Error::Agent(m) => Error::Query(QueryError {
                code: "58000".into(),
                message: m,
            }),
            sql::Error::TooLarge { message, .. } => Error::Query(QueryError {
                code: "54000".into(),
                message,
            }),
        }
    }
}

impl RunState {
    /// Check the grant; record a refusal.
    pub(super) fn grant(&mut self, target: &str) -> Result<(), Error> {
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

impl RunState {
    /// Record what a failed call means for the run: a failure of the
    /// agent's own ends it as `agent`, a result larger than the probe's
    /// memory cap as `memory`.
    fn settle(&mut self, error: sql::Error) -> Error {
        self.sql_error_number = error.number();
        match &error {
            sql::Error::Agent(m) if self.agent_fault.is_none() => {
                self.agent_fault = Some(m.clone());
            }
            sql::Error::TooLarge { asked, .. } if *asked >= self.limiter.headroom() => {
                self.limiter.host_exceeded(*asked);
            }
            _ => {}
        }
        Error::from(error)
    }
}

impl Host for RunState {
    async fn ping(&mut self, target: String) -> Result<u64, Error> {
        self.grant(&target)?;
        match self.services.sql.ping(&target, self.sql_deadline).await {
            Ok(took) => {
                self.sql_error_number = None;
                Ok(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX))
            }
            Err(error) => Err(self.settle(error)),
        }
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
        let params: Vec<sql::Value> = params.into_iter().map(sql::Value::from).collect();
        // The result is held here before it is copied into the probe's
        // memory: it counts against the probe's cap.
        let budget = self.limiter.headroom().min(sql::MAX_RESULT_BYTES as u64) as usize;
        match self
            .services
            .sql
            .query(&target, &statement, &params, self.sql_deadline, budget)
            .await
        {
            Ok(rows) => {
                self.sql_error_number = None;
                Ok(Rows::from(rows))
            }
            Err(error) => Err(self.settle(error)),
        }
    }

    async fn engine(&mut self, target: String) -> Result<String, Error> {
        self.grant(&target)?;
        match self.services.sql.engine(&target, self.sql_deadline).await {
            Ok(engine) => {
                self.sql_error_number = None;
                Ok(engine.to_string())
            }
            Err(error) => Err(self.settle(error)),
        }
    }

    async fn error_number(&mut self) -> Option<u32> {
        self.sql_error_number
    }
}
