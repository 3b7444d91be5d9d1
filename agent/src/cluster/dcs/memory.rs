//! An in-memory consensus store for the HA loop's table tests and its
//! simulation: one [`Store`] shared by the members, each reaching it
//! through its own [`Memory`] client, whose answers a test may lose, delay
//! or resend ([`Fault`]). Time is tokio's clock, so a test with a paused
//! clock is deterministic.

use super::Dcs;
use crate::cluster::etcd::{EtcdError, Kv, Op};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The store: keys (with the lease and revision of their last change)
/// and leases (with their expiry).
#[derive(Debug, Default)]
pub struct Store {
    kvs: BTreeMap<String, Kv>,
    leases: HashMap<i64, (Duration, Instant)>,
    next_lease: i64,
    revision: i64,
    /// etcd's NOSPACE alarm is raised: puts, transactions with a put and
    /// lease grants are refused (etcd's capped applier); reads, deletes,
    /// revocations and keep-alives still work.
    pub nospace: bool,
}

/// etcd's refusal of a write while the NOSPACE alarm is raised.
pub const NO_SPACE: &str = "etcdserver: mvcc: database space exceeded";

impl Store {
    /// Drop the leases expired by now, and their keys.
    pub fn expire(&mut self, now: Instant) {
        let gone: Vec<i64> = self
            .leases
            .iter()
            .filter(|(_, (_, until))| *until <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.drop_lease(id);
        }
    }

    fn drop_lease(&mut self, id: i64) {
        self.leases.remove(&id);
        let before = self.kvs.len();
        self.kvs.retain(|_, kv| kv.lease != id);
        if self.kvs.len() != before {
            self.revision += 1;
        }
    }

    /// Grant a lease of `ttl` from now: its id.
    pub fn grant(&mut self, ttl: Duration) -> i64 {
        self.next_lease += 1;
        let ttl = ttl.max(Duration::from_secs(1));
        self.leases
            .insert(self.next_lease, (ttl, Instant::now() + ttl));
        self.next_lease
    }

    /// `key`, as stored now.
    pub fn get(&self, key: &str) -> Option<&Kv> {
        self.kvs.get(key)
    }

    /// When `lease` expires, if it exists.
    pub fn lease_expiry(&self, lease: i64) -> Option<Instant> {
        self.leases.get(&lease).map(|(_, until)| *until)
    }

    /// Put `key` = `value` under `lease` (0: none); a missing lease is an
    /// error, as in etcd.
    pub fn put(&mut self, key: &str, value: &str, lease: i64) -> Result<(), EtcdError> {
        if lease != 0 && !self.leases.contains_key(&lease) {
            return Err(EtcdError::Refused(
                "etcdserver: requested lease not found".into(),
            ));
        }
        self.revision += 1;
        self.kvs.insert(
            key.to_string(),
            Kv {
                key: key.to_string(),
                value: value.to_string(),
                lease,
                revision: self.revision,
            },
        );
        Ok(())
    }

    fn delete(&mut self, key: &str) {
        if self.kvs.remove(key).is_some() {
            self.revision += 1;
        }
    }

    fn holds(&self, key: &str, value: Option<&str>) -> bool {
        match (self.kvs.get(key), value) {
            (None, None) => true,
            (Some(kv), Some(value)) => kv.value == value,
            _ => false,
        }
    }

    fn apply(&mut self, call: &Call) -> Result<Answer, EtcdError> {
        let writes = match call {
            Call::Grant(_) | Call::Put(..) => true,
            Call::Txn(_, _, then) => then.iter().any(|op| matches!(op, Op::Put { .. })),
            _ => false,
        };
        if self.nospace && writes {
            return Err(EtcdError::Refused(NO_SPACE.into()));
        }
        Ok(match call {
            Call::Grant(ttl) => Answer::Lease(self.grant(*ttl)),
            Call::KeepAlive(id) => match self.leases.get_mut(id) {
                Some((ttl, until)) => {
                    *until = Instant::now() + *ttl;
                    Answer::Bool(true)
                }
                None => Answer::Bool(false),
            },
            Call::Revoke(id) => {
                self.drop_lease(*id);
                Answer::Unit
            }
            Call::Put(key, value, lease) => {
                self.put(key, value, *lease)?;
                Answer::Unit
            }
            Call::Scope(prefix) => Answer::Scope(
                self.kvs
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(prefix.as_str()))
                    .map(|(_, kv)| kv.clone())
                    .collect(),
                self.revision,
            ),
            Call::Get(key) => Answer::Kv(self.kvs.get(key).cloned()),
            Call::Txn(when, held, then) => {
                let leased = |(key, lease): &(String, i64)| {
                    self.kvs.get(key).is_some_and(|kv| kv.lease == *lease)
                };
                if !when.iter().all(|(k, v)| self.holds(k, v.as_deref()))
                    || !held.iter().all(leased)
                {
                    return Ok(Answer::Bool(false));
                }
                for op in then {
                    if let Op::Put { lease, .. } = op
                        && *lease != 0
                        && !self.leases.contains_key(lease)
                    {
                        return Err(EtcdError::Refused(
                            "etcdserver: requested lease not found".into(),
                        ));
                    }
                }
                for op in then {
                    match op {
                        Op::Put { key, value, lease } => self.put(key, value, *lease)?,
                        Op::Delete { key } => self.delete(key),
                    }
                }
                Answer::Bool(true)
            }
        })
    }
}

/// One call, as the store applies it.
#[derive(Clone, Debug)]
pub enum Call {
    Grant(Duration),
    KeepAlive(i64),
    Revoke(i64),
    Put(String, String, i64),
    Scope(String),
    Get(String),
    /// Compared values (`None`: absent), compared lease ids, operations.
    Txn(Vec<(String, Option<String>)>, Vec<(String, i64)>, Vec<Op>),
}

impl Call {
    /// Whether the call changes the store only once however often it is
    /// applied (a transaction does not: resending it is a fault).
    pub fn idempotent(&self) -> bool {
        !matches!(self, Call::Txn(..))
    }
}

#[derive(Clone, Debug)]
enum Answer {
    Unit,
    Bool(bool),
    Lease(i64),
    Kv(Option<Kv>),
    Scope(Vec<Kv>, i64),
}

/// What happens to one call on its way (chosen by the test).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Applied and answered at once.
    None,
    /// Never reaches the store: an error after `delay`.
    Unsent(Duration),
    /// Applied, but the answer is lost: an error after `delay`.
    AnswerLost(Duration),
    /// Applied, answered after `delay`.
    Late(Duration),
    /// Applied, then (its answer lost) sent again to another endpoint
    /// and applied a second time: the second answer is returned.
    Resent,
    /// The agent stops here (crashes): the call never returns.
    Hang,
}

/// Chooses the fault of each call.
pub type Chooser = Box<dyn FnMut(&Call) -> Fault + Send>;

/// One member's client of a shared [`Store`].
pub struct Memory {
    pub store: Arc<Mutex<Store>>,
    chooser: Mutex<Option<Chooser>>,
}

impl Memory {
    /// A client of a new store of its own.
    pub fn new() -> Memory {
        Memory::client(Arc::new(Mutex::new(Store::default())))
    }

    /// A client of `store`, without faults.
    pub fn client(store: Arc<Mutex<Store>>) -> Memory {
        Memory {
            store,
            chooser: Mutex::new(None),
        }
    }

    /// From now on, `chooser` decides each call's fault.
    pub fn with_faults(self, chooser: Chooser) -> Memory {
        *self.chooser.lock() = Some(chooser);
        self
    }

    fn call(&self, call: Call) -> impl Future<Output = Result<Answer, EtcdError>> + Send + use<> {
        let fault = match self.chooser.lock().as_mut() {
            Some(choose) => choose(&call),
            None => Fault::None,
        };
        let store = self.store.clone();
        async move {
            let apply = |store: &Arc<Mutex<Store>>| {
                let mut store = store.lock();
                store.expire(Instant::now());
                store.apply(&call)
            };
            let lost = |why: &str| EtcdError::AnswerLost(format!("no answer ({why})"));
            let unsent = || EtcdError::Unreachable("not sent".into());
            match fault {
                Fault::None => apply(&store),
                Fault::Unsent(delay) => {
                    tokio::time::sleep(delay).await;
                    Err(unsent())
                }
                Fault::AnswerLost(delay) => {
                    let _ = apply(&store);
                    tokio::time::sleep(delay).await;
                    Err(lost("answer lost"))
                }
                Fault::Late(delay) => {
                    let answer = apply(&store);
                    tokio::time::sleep(delay).await;
                    answer
                }
                Fault::Resent => {
                    let _ = apply(&store);
                    apply(&store)
                }
                Fault::Hang => std::future::pending().await,
            }
        }
    }
}

impl Default for Memory {
    fn default() -> Self {
        Memory::new()
    }
}

fn unexpected(answer: Answer) -> EtcdError {
    EtcdError::AnswerLost(format!("unexpected answer {answer:?}"))
}

impl Dcs for Memory {
    fn grant(&self, ttl: Duration) -> impl Future<Output = Result<i64, EtcdError>> + Send {
        let call = self.call(Call::Grant(ttl));
        async move {
            match call.await? {
                Answer::Lease(id) => Ok(id),
                other => Err(unexpected(other)),
            }
        }
    }

    fn keep_alive(&self, lease: i64) -> impl Future<Output = Result<bool, EtcdError>> + Send {
        boolean(self.call(Call::KeepAlive(lease)))
    }

    fn revoke(&self, lease: i64) -> impl Future<Output = Result<(), EtcdError>> + Send {
        unit(self.call(Call::Revoke(lease)))
    }

    fn put(
        &self,
        key: &str,
        value: &str,
        lease: i64,
    ) -> impl Future<Output = Result<(), EtcdError>> + Send {
        unit(self.call(Call::Put(key.into(), value.into(), lease)))
    }

    fn read_scope(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<(Vec<Kv>, i64), EtcdError>> + Send {
        let call = self.call(Call::Scope(prefix.into()));
        async move {
            match call.await? {
                Answer::Scope(kvs, revision) => Ok((kvs, revision)),
                other => Err(unexpected(other)),
            }
        }
    }

    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Kv>, EtcdError>> + Send {
        let call = self.call(Call::Get(key.into()));
        async move {
            match call.await? {
                Answer::Kv(kv) => Ok(kv),
                other => Err(unexpected(other)),
            }
        }
    }

    fn txn(
        &self,
        when: &[(&str, Option<&str>)],
        then: &[Op],
    ) -> impl Future<Output = Result<bool, EtcdError>> + Send {
        let when = when
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(String::from)))
            .collect();
        boolean(self.call(Call::Txn(when, Vec::new(), then.to_vec())))
    }

    fn txn_held(
        &self,
        when: &[(&str, Option<&str>)],
        held: (&str, i64),
        then: &[Op],
    ) -> impl Future<Output = Result<bool, EtcdError>> + Send {
        let when = when
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(String::from)))
            .collect();
        let held = vec![(held.0.to_string(), held.1)];
        boolean(self.call(Call::Txn(when, held, then.to_vec())))
    }

    fn replace_if(
        &self,
        key: &str,
        value: &str,
        lease: i64,
    ) -> impl Future<Output = Result<bool, EtcdError>> + Send {
        let op = Op::Put {
            key: key.into(),
            value: value.into(),
            lease,
        };
        let when = vec![(key.to_string(), Some(value.to_string()))];
        boolean(self.call(Call::Txn(when, Vec::new(), vec![op])))
    }

    fn delete_if(
        &self,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<bool, EtcdError>> + Send {
        let op = Op::Delete { key: key.into() };
        let when = vec![(key.to_string(), Some(value.to_string()))];
        boolean(self.call(Call::Txn(when, Vec::new(), vec![op])))
    }
}

async fn boolean(
    call: impl Future<Output = Result<Answer, EtcdError>> + Send,
) -> Result<bool, EtcdError> {
    match call.await? {
        Answer::Bool(b) => Ok(b),
        other => Err(unexpected(other)),
    }
}

async fn unit(
    call: impl Future<Output = Result<Answer, EtcdError>> + Send,
) -> Result<(), EtcdError> {
    match call.await? {
        Answer::Unit => Ok(()),
        other => Err(unexpected(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_lease_expires_with_its_keys_and_a_txn_compares() {
        let dcs = Memory::new();
        let lease = dcs.grant(Duration::from_secs(3)).await.unwrap();
        let ops = [Op::Put {
            key: "/l".into(),
            value: "a".into(),
            lease,
        }];
        assert!(dcs.txn(&[("/l", None)], &ops).await.unwrap());
        assert!(
            !dcs.txn(&[("/l", None)], &ops).await.unwrap(),
            "create-if-absent twice"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(dcs.keep_alive(lease).await.unwrap());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(dcs.get("/l").await.unwrap().unwrap().value, "a");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            dcs.get("/l").await.unwrap().is_none(),
            "expired with its lease"
        );
        assert!(!dcs.keep_alive(lease).await.unwrap());
        assert!(!dcs.delete_if("/l", "a").await.unwrap());
    }

    /// The errors imitate etcd's by kind (what the loop decides on), with
    /// their messages.
    #[tokio::test(start_paused = true)]
    async fn each_fault_fails_with_the_kind_of_etcds_error() {
        let faulty = |fault: Fault| {
            Memory::new().with_faults(Box::new(move |call: &Call| match call {
                Call::Put(..) | Call::Txn(..) => fault,
                _ => Fault::None,
            }))
        };
        let put = |dcs: Memory| async move { dcs.put("/k", "v", 0).await };
        let full = Memory::new();
        full.store.lock().nospace = true;
        let no_lease = Memory::new();
        let rows: Vec<(&str, Result<(), EtcdError>, &str)> = vec![
            (
                "not sent",
                put(faulty(Fault::Unsent(Duration::from_millis(5)))).await,
                "Unreachable",
            ),
            (
                "its answer lost",
                put(faulty(Fault::AnswerLost(Duration::from_millis(5)))).await,
                "AnswerLost",
            ),
            ("NOSPACE", put(full).await, "Refused"),
            (
                "no such lease",
                no_lease.put("/k", "v", 42).await,
                "Refused",
            ),
        ];
        for (what, got, want) in rows {
            let e = got.expect_err(what);
            let kind = match &e {
                EtcdError::Unreachable(_) => "Unreachable",
                EtcdError::Refused(_) => "Refused",
                EtcdError::AnswerLost(_) => "AnswerLost",
                EtcdError::Local(_) => "Local",
            };
            assert_eq!(kind, want, "{what}: {e}");
            assert_eq!(e.unreachable(), want == "Unreachable", "{what}");
        }
        // The messages of before: the real client's prefix when not sent.
        let unsent = put(faulty(Fault::Unsent(Duration::ZERO)))
            .await
            .unwrap_err();
        assert_eq!(unsent.to_string(), "no etcd endpoint answered: not sent");
        let lost = put(faulty(Fault::AnswerLost(Duration::ZERO)))
            .await
            .unwrap_err();
        assert_eq!(lost.to_string(), "no answer (answer lost)");
        let full = Memory::new();
        full.store.lock().nospace = true;
        assert_eq!(put(full).await.unwrap_err().to_string(), NO_SPACE);
    }
}
