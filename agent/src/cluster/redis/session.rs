//! The agent's own connection to the local Redis server of a cluster
//! member: the cluster target's `admin_dsn` (else its `dsn`) with its
//! password from a file, never a probe's connection and never through
//! the probes' allowlist (the HA loop promotes, demotes and repoints).
//! Every call is bounded in time and in reply size.

use crate::config::Target;
use crate::redis::Error;
use crate::redis::conn::Endpoint;
use crate::redis::tls::TlsFiles;
use ::redis::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Most bytes one reply may take (INFO, CONFIG GET).
const REPLY_BYTES: i64 = 1 << 20;

/// How the agent reaches its local server.
#[derive(Clone)]
pub struct Local {
    endpoint: Endpoint,
}

impl Local {
    /// The admin login of the cluster's target: `admin_dsn` and its
    /// password, else `dsn` and its password, with the target's TLS
    /// files. Errors name the key to fix.
    pub fn new(name: &str, target: &Target) -> Result<Local, String> {
        let options = target.redis.clone().unwrap_or_default();
        let files = TlsFiles {
            ca: options.tls_ca_file,
            cert: options.tls_cert_file,
            key: options.tls_key_file,
        };
        let (url, password, key) = match &target.admin_dsn {
            Some(url) => (url, target.admin_password.as_ref(), "admin_dsn"),
            None => (&target.dsn, target.password.as_ref(), "dsn"),
        };
        let endpoint = Endpoint::new(url, password.map(|p| p.expose()), &files)
            .map_err(|e| format!("[targets.{name}] `{key}`: {e}"))?;
        Ok(Local { endpoint })
    }

    /// Run `commands` on one new connection, all within `within`: each
    /// reply, or the first error.
    pub async fn run(&self, commands: &[&[&str]], within: Duration) -> Result<Vec<Value>, Error> {
        let until = tokio::time::Instant::now() + within;
        let work = async {
            let (mut connection, allowance) = self.endpoint.open(until).await?;
            let mut replies = Vec::new();
            for args in commands {
                allowance.reset(REPLY_BYTES);
                let mut cmd = ::redis::Cmd::new();
                for arg in *args {
                    cmd.arg(*arg);
                }
                let reply = cmd
                    .query_async::<Value>(&mut connection)
                    .await
                    .map_err(|e| allowance.classify(e, replies.is_empty()))?;
                replies.push(reply);
            }
            Ok(replies)
        };
        tokio::time::timeout_at(until, work).await.map_err(|_| {
            Error::Timeout(format!("the local server did not answer within {within:?}"))
        })?
    }

    /// One command's reply within `within`.
    pub async fn call(&self, args: &[&str], within: Duration) -> Result<Value, Error> {
        let mut replies = self.run(&[args], within).await?;
        replies
            .pop()
            .ok_or_else(|| Error::Server("no reply".into()))
    }

    /// `INFO replication` and `GET key` in one session within `within`:
    /// the fields, and the key's value (`Some(None)`: absent; `None`: the
    /// server would not serve it, e.g. a replica with
    /// `replica-serve-stale-data no`).
    pub async fn replication(&self, key: &str, within: Duration) -> Result<Info, Error> {
        let until = tokio::time::Instant::now() + within;
        let work = async {
            let (mut connection, allowance) = self.endpoint.open(until).await?;
            allowance.reset(REPLY_BYTES);
            // As bytes: a conversion error is the client's `Parse`, which
            // reads as "not Redis's protocol" (another service).
            let info: Vec<u8> = ::redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut connection)
                .await
                .map_err(|e| allowance.classify(e, true))?;
            let info = String::from_utf8_lossy(&info).into_owned();
            allowance.reset(REPLY_BYTES);
            let value: Option<Option<String>> = ::redis::cmd("GET")
                .arg(key)
                .query_async(&mut connection)
                .await
                .ok();
            Ok((
                crate::redis::reply::info_pairs(&info).into_iter().collect(),
                value,
            ))
        };
        tokio::time::timeout_at(until, work).await.map_err(|_| {
            Error::Timeout(format!("the local server did not answer within {within:?}"))
        })?
    }
}

/// `INFO replication`'s fields and the term key's value as read.
pub type Info = (BTreeMap<String, String>, Option<Option<String>>);

/// A reply as text (status, bulk string or integer).
pub fn text(value: &Value) -> String {
    match value {
        Value::SimpleString(s) => s.clone(),
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Int(i) => i.to_string(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(" "),
        other => format!("{other:?}"),
    }
}
