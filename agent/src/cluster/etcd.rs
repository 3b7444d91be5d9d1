//! The few etcd v3 calls the cluster mode needs — leases, a range over the
//! scope, a put under a lease, create-if-absent and delete-if-ours
//! transactions — spoken through etcd's own JSON gateway (`/v3/...`, the
//! documented gRPC gateway of etcd 3.4+) over the agent's HTTP client.
//!
//! Why not the `etcd-client` crate: it generates its gRPC code with
//! `protoc` at build time, so every build of the agent, the README's
//! first command on a fresh machine included, would need a protobuf
//! compiler installed. The gateway is the same API, served by etcd itself.
//!
//! Every call is bounded (`timeout` per request) and tries the endpoints
//! in turn, starting with the one that answered last. A transaction is
//! not idempotent: it is sent to the next endpoint only when the previous
//! one could not be reached at all (the request never left); once sent,
//! a lost or late answer is an error saying so, and the caller reads the
//! key back ([`super::owner`]) rather than resending it blindly. A
//! refusal (a 4xx answer: permission denied, NOSPACE, a bad request) is
//! definite: nothing was applied.
//!
//! A closed etcd (TLS with client certificates, `auth enable`) is reached
//! with [`access`]: the CA, the client certificate and the user's token.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub mod access;
#[cfg(test)]
mod answering;
pub mod health;
mod written;

/// A failed call, by what a caller decides on: whether etcd was reached,
/// answered no, or may have applied what it was sent. Its text (Display)
/// says what went wrong, for logs and records; callers decide on the
/// variant, never on the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EtcdError {
    /// No endpoint answered (each endpoint's error, joined): other calls
    /// of the same loop would fail the same way. Its text begins with
    /// [`UNREACHABLE`].
    #[error("{UNREACHABLE}: {0}")]
    Unreachable(String),
    /// etcd answered with an error (a 4xx refusal: permission denied,
    /// NOSPACE, a bad request, a wrong password; a renewal or grant
    /// answered without a lease; a compare that says the key is held):
    /// definite, nothing was applied.
    #[error("{0}")]
    Refused(String),
    /// Sent, but no usable answer came back (lost, late past a deadline,
    /// unreadable): it may or may not have been applied; the caller reads
    /// back ([`super::owner`]) rather than resending blindly.
    #[error("{0}")]
    AnswerLost(String),
    /// Not sent, for a reason on the agent's side: its client could not
    /// be set up (a TLS file), or it has no lease to write under.
    #[error("{0}")]
    Local(String),
}

/// How the error of a call that reached no endpoint begins.
pub const UNREACHABLE: &str = "no etcd endpoint answered";

impl EtcdError {
    /// No endpoint answered (as opposed to a refusal, such as NOSPACE or
    /// a permission denied, or a lost answer): other calls of the same
    /// loop would fail the same way.
    pub fn unreachable(&self) -> bool {
        matches!(self, EtcdError::Unreachable(_))
    }
}

/// One key and its value, as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Kv {
    pub key: String,
    pub value: String,
    /// The lease the key is attached to (0: none).
    pub lease: i64,
    /// The store revision of its last change (etcd's `mod_revision`).
    pub revision: i64,
}

impl Kv {
    fn read(kv: &Value) -> Kv {
        Kv {
            key: unb64(&kv["key"]),
            value: unb64(&kv["value"]),
            lease: int(&kv["lease"]),
            revision: int(&kv["mod_revision"]),
        }
    }
}

/// One operation of a transaction ([`Etcd::txn`]).
#[derive(Debug, Clone)]
pub enum Op {
    /// Put `key` = `value` under `lease` (0: none).
    Put {
        key: String,
        value: String,
        lease: i64,
    },
    Delete {
        key: String,
    },
}

/// When a call may go to the next endpoint after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resend {
    /// Reads, renewals, puts: the same effect however often applied.
    Always,
    /// Transactions: only when the request could not be sent.
    UnsentOnly,
}

/// A transaction that was sent but not answered: it may have been applied.
fn maybe_applied(errors: &[String]) -> EtcdError {
    EtcdError::AnswerLost(format!(
        "the transaction was sent but its answer was lost (it may have been applied; not resent): {}",
        errors.join("; ")
    ))
}

/// An etcd cluster, by its client URLs.
pub struct Etcd {
    endpoints: Vec<String>,
    http: reqwest::Client,
    timeout: Duration,
    /// The endpoint that answered last.
    current: AtomicUsize,
    /// etcd's `auth enable` user and its token.
    auth: Option<access::Auth>,
    /// A client certificate is configured (for the TLS errors' advice).
    has_cert: bool,
    /// The scope's prefix, for the advice on a permission refused.
    prefix: String,
    /// The failure [`Etcd::note`] logs while it lasts.
    noted: parking_lot::Mutex<super::quiet::Faults>,
    /// What [`Etcd::put_changed`] last wrote.
    written: written::Written,
}

fn b64(text: &str) -> String {
    B64.encode(text.as_bytes())
}

fn unb64(value: &Value) -> String {
    value
        .as_str()
        .and_then(|s| B64.decode(s).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// etcd's JSON gateway writes 64-bit integers as strings.
fn int(value: &Value) -> i64 {
    match value {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// etcd's unsigned 64-bit fields (member ids, the Raft term): a member id
/// is a random `uint64`, half of them above `i64::MAX`, so [`int`] would
/// read them as 0 (no leader).
fn uint(value: &Value) -> u64 {
    match value {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

/// The end of a prefix range: the prefix with its last byte incremented.
fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last += 1;
    }
    B64.encode(bytes)
}

impl Etcd {
    /// A client of `endpoints`, each request bounded by `timeout`.
    pub fn new(endpoints: Vec<String>, timeout: Duration) -> Result<Etcd, EtcdError> {
        Etcd::with_access(
            endpoints,
            timeout,
            &crate::config::EtcdAccess::default(),
            "/watchpost/",
        )
    }

    /// The client of a `[cluster]` section: its endpoints, TLS and user.
    pub fn for_cluster(
        spec: &crate::config::ClusterSpec,
        timeout: Duration,
    ) -> Result<Etcd, EtcdError> {
        let prefix = super::Keys::new(&spec.scope).root;
        Etcd::with_access(spec.etcd.clone(), timeout, &spec.etcd_access, &prefix)
    }

    /// A client of `endpoints` reached as `access` says; `prefix` is the
    /// key prefix its user needs (named in a permission error).
    pub fn with_access(
        endpoints: Vec<String>,
        timeout: Duration,
        access: &crate::config::EtcdAccess,
        prefix: &str,
    ) -> Result<Etcd, EtcdError> {
        Ok(Etcd {
            endpoints,
            http: access::client(access, timeout)?,
            timeout,
            current: AtomicUsize::new(0),
            auth: access::Auth::new(access),
            has_cert: access.cert.is_some(),
            prefix: prefix.to_string(),
            noted: Default::default(),
            written: written::Written::default(),
        })
    }

    /// Log a failed call of the loop (a refusal, a certificate problem,
    /// etcd out of reach) once while it lasts ([`super::quiet`]: again when
    /// it changes, in a summary, and when it ends); `None`: calls work.
    pub fn note(&self, outcome: Option<&EtcdError>) {
        const WHAT: &str = "read or write the scope in etcd";
        let mut noted = self.noted.lock();
        match outcome {
            Some(e) => noted.failed(super::quiet::Level::Error, WHAT, &e.to_string()),
            None => noted.worked(WHAT),
        }
    }

    /// Send one POST to `url`, with the token (if any) from `base`.
    async fn send(
        &self,
        base: &str,
        url: &str,
        body: &Value,
    ) -> Result<Result<reqwest::Response, reqwest::Error>, access::AuthFailure> {
        let mut request = self.http.post(url).timeout(self.timeout).json(body);
        if let Some(auth) = &self.auth {
            let token = auth.token(&self.http, base, self.timeout).await?;
            if !token.is_empty() {
                let mut value = reqwest::header::HeaderValue::from_str(&token).map_err(|_| {
                    access::AuthFailure::Refused(EtcdError::Refused(
                        "etcd gave a token that is not a valid header value".into(),
                    ))
                })?;
                value.set_sensitive(true);
                request = request.header(reqwest::header::AUTHORIZATION, value);
            }
        }
        Ok(request.send().await)
    }

    /// POST `body` to `path` on the first endpoint that answers.
    async fn call(&self, path: &str, body: Value) -> Result<Value, EtcdError> {
        self.call_as(path, body, Resend::Always).await
    }

    /// POST a transaction: resent to another endpoint only when no
    /// connection could be made (see the module's documentation).
    async fn call_txn(&self, body: Value) -> Result<Value, EtcdError> {
        self.call_as("/v3/kv/txn", body, Resend::UnsentOnly).await
    }

    async fn call_as(&self, path: &str, body: Value, resend: Resend) -> Result<Value, EtcdError> {
        let start = self.current.load(Ordering::Relaxed);
        let mut errors = Vec::new();
        for i in 0..self.endpoints.len() {
            let at = (start + i) % self.endpoints.len();
            let base = &self.endpoints[at];
            let url = format!("{base}{path}");
            // Sent again once when etcd says the token expired (nothing
            // was applied).
            let mut retried = false;
            let sent = loop {
                let sent = match self.send(base, &url, &body).await {
                    Ok(sent) => sent,
                    Err(access::AuthFailure::Refused(e)) => return Err(e),
                    Err(access::AuthFailure::Unreachable(e)) => break Err(e),
                };
                match sent {
                    Ok(response) if response.status().is_success() => {
                        let answer = response.json::<Value>().await.map_err(|e| {
                            EtcdError::AnswerLost(format!("{url}: unreadable answer: {e}"))
                        })?;
                        // A streamed call (the lease keep-alive) carries its
                        // error in a 200 answer's body.
                        let streamed = &answer["error"];
                        if let Some(auth) = &self.auth
                            && streamed.is_object()
                            && access::token_expired(streamed)
                            && !retried
                        {
                            auth.forget();
                            retried = true;
                            continue;
                        }
                        self.current.store(at, Ordering::Relaxed);
                        return Ok(answer);
                    }
                    Ok(response) if response.status().is_client_error() => {
                        // A refusal is etcd's answer (nothing applied), the
                        // same from every endpoint.
                        let status = response.status();
                        // JSON with a gRPC code; the gateway's own
                        // refusals are plain text.
                        let text = response.text().await.unwrap_or_default();
                        let answer = serde_json::from_str::<Value>(&text)
                            .unwrap_or_else(|_| Value::String(text.trim().to_string()));
                        if let Some(auth) = &self.auth
                            && access::token_expired(&answer)
                            && !retried
                        {
                            auth.forget();
                            retried = true;
                            continue;
                        }
                        let user = self.auth.as_ref().map(access::Auth::user);
                        let why = format!(
                            "{url}: {status} {}",
                            access::explain_refusal(&answer, user, &self.prefix)
                        );
                        // A cancelled or timed-out call (the gateway's 408
                        // or 499, "request cancelled") may have been
                        // applied: only etcd's known refusals are definite.
                        return Err(if definite_refusal(status.as_u16()) {
                            EtcdError::Refused(why)
                        } else {
                            EtcdError::AnswerLost(format!("{why} (it may have been applied)"))
                        });
                    }
                    other => break Ok(other),
                }
            };
            let sent = match sent {
                Ok(sent) => sent,
                Err(unreachable) => {
                    errors.push(unreachable);
                    continue;
                }
            };
            match sent {
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    errors.push(format!("{url}: {status} {}", text.trim()));
                    if resend == Resend::UnsentOnly {
                        return Err(maybe_applied(&errors));
                    }
                }
                Err(e) => {
                    errors.push(access::explain_transport(&url, &e, Some(self.has_cert)));
                    if resend == Resend::UnsentOnly && !e.is_connect() {
                        return Err(maybe_applied(&errors));
                    }
                }
            }
        }
        Err(EtcdError::Unreachable(errors.join("; ")))
    }

    /// A new lease of `ttl` seconds: its id.
    pub async fn grant(&self, ttl: Duration) -> Result<i64, EtcdError> {
        let answer = self
            // Rounded up: the agent's own deadline is computed from `ttl`.
            .call(
                "/v3/lease/grant",
                json!({"TTL": ttl.as_secs_f64().ceil().max(1.0) as u64}),
            )
            .await?;
        match int(&answer["ID"]) {
            0 => Err(EtcdError::Refused(format!(
                "etcd granted no lease: {answer}"
            ))),
            id => Ok(id),
        }
    }

    /// Renew a lease: `Ok(false)` if it has expired (it is gone for good).
    pub async fn keep_alive(&self, lease: i64) -> Result<bool, EtcdError> {
        let answer = self
            .call("/v3/lease/keepalive", json!({"ID": lease.to_string()}))
            .await?;
        // An answer without a result is an error (an etcd election, say),
        // not the lease's end; a result without a TTL is the lease's end.
        if answer.get("result").is_none() {
            let user = self.auth.as_ref().map(access::Auth::user);
            let why = access::explain_refusal(&answer["error"], user, &self.prefix);
            return Err(EtcdError::Refused(format!(
                "etcd did not renew the lease: {why}"
            )));
        }
        Ok(int(&answer["result"]["TTL"]) > 0)
    }

    /// Revoke a lease: every key under it goes at once.
    pub async fn revoke(&self, lease: i64) -> Result<(), EtcdError> {
        self.call("/v3/lease/revoke", json!({"ID": lease.to_string()}))
            .await
            .map(|_| ())
    }

    /// Put `key` = `value`, under `lease` (0: none).
    pub async fn put(&self, key: &str, value: &str, lease: i64) -> Result<(), EtcdError> {
        let mut body = json!({"key": b64(key), "value": b64(value)});
        if lease != 0 {
            body["lease"] = json!(lease.to_string());
        }
        self.call("/v3/kv/put", body).await.map(|_| ())
    }

    /// Every key under `prefix`.
    pub async fn prefix(&self, prefix: &str) -> Result<Vec<Kv>, EtcdError> {
        self.prefix_at(prefix).await.map(|(kvs, _)| kvs)
    }

    /// Every key under `prefix`, and the store revision the read saw
    /// (etcd's response `header.revision`): a later change of any key has
    /// a higher revision.
    pub async fn prefix_at(&self, prefix: &str) -> Result<(Vec<Kv>, i64), EtcdError> {
        let answer = self
            .call(
                "/v3/kv/range",
                json!({"key": b64(prefix), "range_end": prefix_end(prefix)}),
            )
            .await?;
        let kvs = answer["kvs"]
            .as_array()
            .map(|kvs| kvs.iter().map(Kv::read).collect())
            .unwrap_or_default();
        Ok((kvs, int(&answer["header"]["revision"])))
    }

    /// Create `key` = `value` under `lease` only if it does not exist, in
    /// one transaction: whether this call created it.
    pub async fn create(&self, key: &str, value: &str, lease: i64) -> Result<bool, EtcdError> {
        let answer = self
            .call_txn(
                json!({
                    "compare": [{"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
                    "success": [{"request_put": {"key": b64(key), "value": b64(value), "lease": lease.to_string()}}],
                }),
            )
            .await?;
        Ok(answer["succeeded"].as_bool().unwrap_or(false))
    }

    /// Put `key` = `value` under `lease` only if its value is already
    /// `value` (take over one's own key from an expired lease), in one
    /// transaction: whether it was replaced.
    pub async fn replace_if(&self, key: &str, value: &str, lease: i64) -> Result<bool, EtcdError> {
        let answer = self
            .call_txn(
                json!({
                    "compare": [{"key": b64(key), "target": "VALUE", "result": "EQUAL", "value": b64(value)}],
                    "success": [{"request_put": {"key": b64(key), "value": b64(value), "lease": lease.to_string()}}],
                }),
            )
            .await?;
        Ok(answer["succeeded"].as_bool().unwrap_or(false))
    }

    /// Delete `key` only if its value is `value`, in one transaction:
    /// whether it was deleted.
    pub async fn delete_if(&self, key: &str, value: &str) -> Result<bool, EtcdError> {
        let answer = self
            .call_txn(
                json!({
                    "compare": [{"key": b64(key), "target": "VALUE", "result": "EQUAL", "value": b64(value)}],
                    "success": [{"request_delete_range": {"key": b64(key)}}],
                }),
            )
            .await?;
        Ok(answer["succeeded"].as_bool().unwrap_or(false))
    }

    /// One transaction: if every `(key, value)` of `when` holds (a key
    /// compared with `None` must not exist), apply `then`. Whether it did.
    pub async fn txn(&self, when: &[(&str, Option<&str>)], then: &[Op]) -> Result<bool, EtcdError> {
        self.txn_compared(when, None, then).await
    }

    /// [`Etcd::txn`], and only while key `held.0` is under lease `held.1`
    /// (a `LEASE` compare): whether it applied `then`.
    pub async fn txn_held(
        &self,
        when: &[(&str, Option<&str>)],
        held: (&str, i64),
        then: &[Op],
    ) -> Result<bool, EtcdError> {
        self.txn_compared(when, Some(held), then).await
    }

    async fn txn_compared(
        &self,
        when: &[(&str, Option<&str>)],
        held: Option<(&str, i64)>,
        then: &[Op],
    ) -> Result<bool, EtcdError> {
        let mut compare: Vec<Value> = when
            .iter()
            .map(|(key, value)| match value {
                Some(v) => json!({"key": b64(key), "target": "VALUE", "result": "EQUAL", "value": b64(v)}),
                None => json!({"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}),
            })
            .collect();
        if let Some((key, lease)) = held {
            compare.push(json!({"key": b64(key), "target": "LEASE", "result": "EQUAL", "lease": lease.to_string()}));
        }
        let success: Vec<Value> = then
            .iter()
            .map(|op| match op {
                Op::Put { key, value, lease } => {
                    let mut put = json!({"key": b64(key), "value": b64(value)});
                    if *lease != 0 {
                        put["lease"] = json!(lease.to_string());
                    }
                    json!({ "request_put": put })
                }
                Op::Delete { key } => json!({"request_delete_range": {"key": b64(key)}}),
            })
            .collect();
        let answer = self
            .call_txn(json!({"compare": compare, "success": success}))
            .await?;
        Ok(answer["succeeded"].as_bool().unwrap_or(false))
    }

    /// One key, if it exists.
    pub async fn get(&self, key: &str) -> Result<Option<Kv>, EtcdError> {
        let answer = self.call("/v3/kv/range", json!({"key": b64(key)})).await?;
        Ok(answer["kvs"]
            .as_array()
            .and_then(|kvs| kvs.first())
            .map(Kv::read))
    }

    /// Delete `key`.
    pub async fn delete(&self, key: &str) -> Result<(), EtcdError> {
        self.call("/v3/kv/deleterange", json!({"key": b64(key)}))
            .await
            .map(|_| ())
    }
}

/// Whether an HTTP status from etcd's JSON gateway says the request was
/// refused and nothing applied: bad request, unauthenticated, permission
/// denied, not found, failed precondition, too many requests (etcd's gRPC
/// codes as the gateway maps them). Any other 4xx (408 and 499 for a
/// cancelled or timed-out call) leaves the outcome unknown.
fn definite_refusal(status: u16) -> bool {
    matches!(status, 400 | 401 | 403 | 404 | 409 | 412 | 429)
}

#[cfg(test)]
mod tests;
