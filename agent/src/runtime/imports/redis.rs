//! `redis`: commands against the Redis targets the probe is granted.
//! Asking for a target not granted is refused and remembered (the run
//! ends as `denied`), as for `sql`. Replies are held here before they are
//! copied into the probe's memory, so they count against its cap.
//!
//! The `From` conversions below are the only link between the WIT's
//! `redis` types and the [`crate::redis`] module's own.

use crate::redis;
use crate::runtime::bindings::redis::{Error, Host, Node};
use crate::runtime::state::RunState;

impl From<redis::Node> for Node {
    fn from(node: redis::Node) -> Self {
        match node {
            redis::Node::Nil => Node::Nil,
            redis::Node::Int(i) => Node::Int(i),
            redis::Node::Double(d) => Node::Double(d),
            redis::Node::Boolean(b) => Node::Boolean(b),
            redis::Node::Bulk(b) => Node::Bulk(b),
            redis::Node::Simple(s) => Node::Simple(s),
            redis::Node::Error(s) => Node::Error(s),
            redis::Node::Array(n) => Node::Array(n),
            redis::Node::Map(n) => Node::Map(n),
            redis::Node::Set(n) => Node::Set(n),
        }
    }
}

impl From<redis::Error> for Error {
    fn from(error: redis::Error) -> Self {
        match error {
            redis::Error::NotGranted(m) => Error::NotGranted(m),
            redis::Error::NotAllowed(m) => Error::NotAllowed(m),
            redis::Error::Unreachable(m) => Error::Unreachable(m),
            redis::Error::Refused(m) => Error::Refused(m),
            redis::Error::Timeout(m) => Error::Timeout(m),
            redis::Error::Server(m) => Error::Server(m),
            redis::Error::TooLarge { message, .. } => Error::TooLarge(message),
            // The run ends `unknown` whatever the probe makes of it.
            redis::Error::Agent(m) => Error::Server(format!("agent error: {m}")),
        }
    }
}

impl RunState {
    /// Record what a failed call means for the run (see the `sql` one).
    fn settle_redis(&mut self, error: redis::Error) -> Error {
        match &error {
            redis::Error::Agent(m) if self.agent_fault.is_none() => {
                self.agent_fault = Some(m.clone());
            }
            redis::Error::TooLarge { asked, .. } if *asked >= self.limiter.headroom() => {
                self.limiter.host_exceeded(*asked);
            }
            _ => {}
        }
        Error::from(error)
    }

    /// What a reply may hold: what is left of the probe's cap, at most
    /// [`redis::MAX_REPLY_BYTES`].
    fn reply_budget(&self) -> usize {
        self.limiter.headroom().min(redis::MAX_REPLY_BYTES as u64) as usize
    }
}

impl Host for RunState {
    async fn targets(&mut self) -> Vec<String> {
        let redis = &self.services.redis;
        self.grants
            .targets
            .iter()
            .filter(|t| redis.contains(t))
            .cloned()
            .collect()
    }

    async fn ping(&mut self, target: String) -> Result<u64, Error> {
        self.grant(&target).map_err(not_granted)?;
        match self.services.redis.ping(&target, self.sql_deadline).await {
            Ok(took) => Ok(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX)),
            Err(error) => Err(self.settle_redis(error)),
        }
    }

    async fn info(
        &mut self,
        target: String,
        section: String,
    ) -> Result<Vec<(String, String)>, Error> {
        self.grant(&target).map_err(not_granted)?;
        let budget = self.reply_budget();
        match self
            .services
            .redis
            .info(&target, &section, self.sql_deadline, budget)
            .await
        {
            Ok(pairs) => Ok(pairs),
            Err(error) => Err(self.settle_redis(error)),
        }
    }

    async fn call(&mut self, target: String, args: Vec<Vec<u8>>) -> Result<Vec<Node>, Error> {
        self.grant(&target).map_err(not_granted)?;
        let budget = self.reply_budget();
        match self
            .services
            .redis
            .call(&target, &args, self.sql_deadline, budget)
            .await
        {
            Ok(nodes) => Ok(nodes.into_iter().map(Node::from).collect()),
            Err(error) => Err(self.settle_redis(error)),
        }
    }
}

/// The `sql` grant check's refusal as a `redis` error.
fn not_granted(error: crate::runtime::bindings::sql::Error) -> Error {
    match error {
        crate::runtime::bindings::sql::Error::NotGranted(m) => Error::NotGranted(m),
        other => Error::NotGranted(format!("{other:?}")),
    }
}
