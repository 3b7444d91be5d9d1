//! Writes only on change: the agent publishes its member record and, as
//! the leader, its optime every loop, but etcd keeps every revision until
//! it is compacted and refuses writes at its quota. A put whose key, value
//! and lease are the ones this client last wrote successfully is skipped
//! (the lease keeps the key alive). Every read of the scope checks that
//! etcd still holds what was written; a key changed or gone there (a
//! restore, another writer, a lost lease) is written again on the next
//! loop. An idle three-node cluster then writes nothing but lease renewals,
//! which do not create revisions.

use super::{Etcd, EtcdError, Kv};
use std::collections::HashMap;

/// What this client last wrote successfully: key -> (value, lease).
#[derive(Default)]
pub struct Written(parking_lot::Mutex<HashMap<String, (String, i64)>>);

impl Etcd {
    /// Put `key` = `value` under `lease` (0: none) unless that is what this
    /// client last wrote there and etcd was last seen holding it. Whether a
    /// write was sent.
    pub async fn put_changed(&self, key: &str, value: &str, lease: i64) -> Result<bool, EtcdError> {
        let same = self
            .written
            .0
            .lock()
            .get(key)
            .is_some_and(|(v, l)| v == value && *l == lease);
        if same {
            return Ok(false);
        }
        // Unknown until etcd answers: forgotten first, so that a failed
        // or unanswered put is sent again.
        self.written.0.lock().remove(key);
        self.put(key, value, lease).await?;
        self.written
            .0
            .lock()
            .insert(key.to_string(), (value.to_string(), lease));
        Ok(true)
    }

    /// A read of the scope (`kvs`, every key under `prefix`): forget the
    /// writes under `prefix` that etcd no longer holds as written.
    pub fn check_written(&self, prefix: &str, kvs: &[Kv]) {
        self.written.0.lock().retain(|key, (value, lease)| {
            !key.starts_with(prefix)
                || kvs
                    .iter()
                    .any(|kv| &kv.key == key && &kv.value == value && kv.lease == *lease)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An endpoint that answers every request with `{}`, counting them.
    async fn counting() -> (String, Arc<AtomicUsize>) {
        let (at, count) = super::super::answering::counting("{}").await;
        (format!("http://{at}"), count)
    }

    fn kv(key: &str, value: &str, lease: i64) -> Kv {
        Kv {
            key: key.into(),
            value: value.into(),
            lease,
            revision: 1,
        }
    }

    #[tokio::test]
    async fn a_put_is_sent_only_when_the_value_the_lease_or_etcd_changed() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (url, count) = counting().await;
        let etcd = Etcd::new(vec![url], std::time::Duration::from_secs(2)).unwrap();
        let sent = || count.load(Ordering::SeqCst);
        assert!(etcd.put_changed("/s/members/a", "v1", 7).await.unwrap());
        assert!(!etcd.put_changed("/s/members/a", "v1", 7).await.unwrap());
        assert_eq!(sent(), 1);
        // A new value, a new lease: written.
        assert!(etcd.put_changed("/s/members/a", "v2", 7).await.unwrap());
        assert!(etcd.put_changed("/s/members/a", "v2", 8).await.unwrap());
        assert_eq!(sent(), 3);
        // etcd still holds it: nothing to write.
        etcd.check_written("/s/", &[kv("/s/members/a", "v2", 8)]);
        assert!(!etcd.put_changed("/s/members/a", "v2", 8).await.unwrap());
        // Gone from etcd (or changed by another writer): written again.
        etcd.check_written("/s/", &[kv("/s/members/a", "v1", 8)]);
        assert!(etcd.put_changed("/s/members/a", "v2", 8).await.unwrap());
        etcd.check_written("/s/", &[]);
        assert!(etcd.put_changed("/s/members/a", "v2", 8).await.unwrap());
        assert_eq!(sent(), 5);
    }
}
