//! The consensus store the HA loop needs, as an interface (`Dcs`), so that
//! the loop's decisions do not depend on etcd: etcd ([`super::etcd::Etcd`])
//! is the backend in production, [`memory::Memory`] the one of the table
//! tests and the simulation. Each operation says the consistency it needs
//! (as Patroni's `AbstractDCS` does); a backend that cannot give it must
//! fail the call rather than answer from a stale copy.

pub mod memory;

use super::etcd::{Etcd, EtcdError, Kv, Op};
use std::future::Future;
use std::time::Duration;

/// The consensus store of one cluster: keys with values, leases that
/// expire unless renewed, and transactions comparing values.
///
/// Errors are [`EtcdError`]: its variant says whether the store was
/// reached, refused, or may have applied the call; its text is for logs
/// and records. A call that fails may still have been applied unless the
/// method or the variant says otherwise: the caller reads back
/// ([`super::owner`]) instead of inferring.
pub trait Dcs: Send + Sync + 'static {
    /// Grant a new lease of `ttl` (whole seconds, at least 1): its id.
    /// Linearizable: the lease exists in the store when this returns.
    fn grant(&self, ttl: Duration) -> impl Future<Output = Result<i64, EtcdError>> + Send;

    /// Renew `lease` (the leader's renewal: its deadline counts from
    /// before this call was sent). `Ok(false)`: the lease is gone (expired
    /// or revoked) and every key under it with it. Idempotent: may be
    /// resent to another endpoint.
    fn keep_alive(&self, lease: i64) -> impl Future<Output = Result<bool, EtcdError>> + Send;

    /// Revoke `lease` and delete every key under it (release, after the
    /// server is known stopped). Idempotent.
    fn revoke(&self, lease: i64) -> impl Future<Output = Result<(), EtcdError>> + Send;

    /// Publish `key` = `value` under `lease` (0: none): a member's view or
    /// the leader's optime. Idempotent (last writer wins).
    fn put(
        &self,
        key: &str,
        value: &str,
        lease: i64,
    ) -> impl Future<Output = Result<(), EtcdError>> + Send;

    /// Publish like [`Dcs::put`], but a backend may skip the write when it
    /// last wrote the same value under the same lease and the store was
    /// last seen holding it (the write rate: an idle cluster writes
    /// nothing but lease renewals). Whether a write was sent.
    fn put_changed(
        &self,
        key: &str,
        value: &str,
        lease: i64,
    ) -> impl Future<Output = Result<bool, EtcdError>> + Send {
        async move { self.put(key, value, lease).await.map(|()| true) }
    }

    /// A read of the scope (`kvs`, every key under `prefix`): a backend
    /// that skips unchanged writes forgets those the store no longer holds
    /// as written, so that they are written again.
    fn check_written(&self, _prefix: &str, _kvs: &[Kv]) {}

    /// The outcome of the loop's scope read (`Some`: the error), for a
    /// backend that logs the store's reachability when it changes.
    fn note(&self, _outcome: Option<&EtcdError>) {}

    /// Read every key under `prefix` (the scope) and the store revision of
    /// the read, in one linearizable read: an owned snapshot that every
    /// decision of one loop is made on.
    fn read_scope(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<(Vec<Kv>, i64), EtcdError>> + Send;

    /// One key (linearizable), if it exists: the leader key read back
    /// after a lost answer, a switchover request.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Kv>, EtcdError>> + Send;

    /// Compare-and-set, atomically: if every `(key, value)` of `when`
    /// holds (`None`: the key must not exist), apply `then`; whether it
    /// did. Acquiring the leader is create-if-absent of the leader key
    /// under the candidate's lease (with the term's synchronous set);
    /// the synchronous set and the switchover request are changed this way
    /// too. Not idempotent: never resent once sent; an error may mean it
    /// was applied.
    fn txn(
        &self,
        when: &[(&str, Option<&str>)],
        then: &[Op],
    ) -> impl Future<Output = Result<bool, EtcdError>> + Send;

    /// Compare-and-set like [`Dcs::txn`], and only while key `held.0`
    /// exists under lease `held.1`: its lease id is compared too, not only
    /// its value, so that a key taken over under another lease since (a
    /// restarted agent of the same member) fails the compare. Not
    /// idempotent, as [`Dcs::txn`].
    fn txn_held(
        &self,
        when: &[(&str, Option<&str>)],
        held: (&str, i64),
        then: &[Op],
    ) -> impl Future<Output = Result<bool, EtcdError>> + Send;

    /// Put `key` = `value` under `lease` only if its value is `value`
    /// already (take over one's own leader key from an earlier lease).
    /// Not idempotent in effect on the lease: read back after an error.
    fn replace_if(
        &self,
        key: &str,
        value: &str,
        lease: i64,
    ) -> impl Future<Output = Result<bool, EtcdError>> + Send;

    /// Delete `key` only if its value is `value` (release the leader key
    /// only if ours): whether it was deleted. Safe to resend.
    fn delete_if(
        &self,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<bool, EtcdError>> + Send;
}

impl Dcs for Etcd {
    fn grant(&self, ttl: Duration) -> impl Future<Output = Result<i64, EtcdError>> + Send {
        Etcd::grant(self, ttl)
    }
    fn keep_alive(&self, lease: i64) -> impl Future<Output = Result<bool, EtcdError>> + Send {
        Etcd::keep_alive(self, lease)
    }
    fn revoke(&self, lease: i64) -> impl Future<Output = Result<(), EtcdError>> + Send {
        Etcd::revoke(self, lease)
    }
    fn put(
        &self,
        key: &str,
        value: &str,
        lease: i64,
    ) -> impl Future<Output = Result<(), EtcdError>> + Send {
        Etcd::put(self, key, value, lease)
    }
    fn put_changed(
        &self,
        key: &str,
        value: &str,
        lease: i64,
    ) -> impl Future<Output = Result<bool, EtcdError>> + Send {
        Etcd::put_changed(self, key, value, lease)
    }
    fn check_written(&self, prefix: &str, kvs: &[Kv]) {
        Etcd::check_written(self, prefix, kvs)
    }
    fn note(&self, outcome: Option<&EtcdError>) {
        Etcd::note(self, outcome)
    }
    fn read_scope(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<(Vec<Kv>, i64), EtcdError>> + Send {
        Etcd::prefix_at(self, prefix)
    }
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Kv>, EtcdError>> + Send {
        Etcd::get(self, key)
    }
    fn txn(
        &self,
        when: &[(&str, Option<&str>)],
        then: &[Op],
    ) -> impl Future<Output = Result<bool, EtcdError>> + Send {
        Etcd::txn(self, when, then)
    }
    fn txn_held(
        &self,
        when: &[(&str, Option<&str>)],
        held: (&str, i64),
        then: &[Op],
    ) -> impl Future<Output = Result<bool, EtcdError>> + Send {
        Etcd::txn_held(self, when, held, then)
    }
    fn replace_if(
        &self,
        key: &str,
        value: &str,
        lease: i64,
    ) -> impl Future<Output = Result<bool, EtcdError>> + Send {
        Etcd::replace_if(self, key, value, lease)
    }
    fn delete_if(
        &self,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<bool, EtcdError>> + Send {
        Etcd::delete_if(self, key, value)
    }
}
