//! Ownership of the leader key is read back, never inferred. A
//! create-if-absent or replace transaction whose answer is lost (a
//! timeout, a proxy that drops it, a connection cut after sending) may
//! have been applied: etcd may hold the key for this node under its lease
//! although no answer said so. Then the key is read (its value and lease
//! id) to learn whether this node holds it, and a key found to be this
//! node's always leads to the same office as a won election: a deadline,
//! an armed watchdog and an `acquired` record — never a writable server
//! without a fence, and `/v1/role/primary` follows the key.

use super::etcd::EtcdError;
use super::ha::Ha;
use crate::cluster::dcs::Dcs;
use crate::cluster::server::Server;
use crate::events::Decision;

/// What a transaction meant to give this node the leader key did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Won {
    /// The key is this node's under its lease.
    Yes,
    /// It is not (another member was faster, or the compare failed).
    No,
    /// Neither the answer nor a read-back came: unknown for now (the next
    /// loop reads the key with the scope).
    Unknown(String),
}

/// The decision on a transaction's answer and, when it was lost, on the
/// key read back afterwards (`(value, lease)` of the leader key, `None`
/// when absent).
pub fn decide(
    answer: &Result<bool, EtcdError>,
    read_back: Option<&Result<Option<(String, i64)>, EtcdError>>,
    me: &str,
    lease: i64,
) -> Won {
    match (answer, read_back) {
        (Ok(true), _) => Won::Yes,
        (Ok(false), _) => Won::No,
        (Err(e), None) => Won::Unknown(format!("{e}; the key was not read back")),
        (Err(_), Some(Ok(Some((value, held))))) if value == me && *held == lease => Won::Yes,
        (Err(_), Some(Ok(_))) => Won::No,
        (Err(e), Some(Err(read))) => Won::Unknown(format!("{e}; reading the key back: {read}")),
    }
}

impl<D: Dcs, S: Server> Ha<D, S> {
    /// The outcome of a transaction meant to give this node the leader
    /// key under `lease`: its answer, or, when the answer was lost, what
    /// the key says read back.
    pub(super) async fn won_key(&self, answer: Result<bool, EtcdError>, lease: i64) -> Won {
        let read_back = match &answer {
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(
                    "cluster: the answer to taking the leader key was lost ({e}): reading the key back"
                );
                Some(
                    self.etcd
                        .get(&self.keys.leader)
                        .await
                        .map(|kv| kv.map(|kv| (kv.value, kv.lease))),
                )
            }
        };
        decide(&answer, read_back.as_ref(), &self.local.spec().name, lease)
    }

    /// The scope shows the leader key as this node's under its lease, but
    /// this node is not in office (the answer to its transaction was lost
    /// and could not be read back then): take office now — deadline,
    /// watchdog, record — before anything else.
    pub(super) fn found_key_ours(&mut self) {
        self.take_office();
        self.record(
            Decision::Acquired,
            "the leader key is this node's under its lease (the answer to taking it was lost): took office with its deadline and watchdog".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost() -> Result<bool, EtcdError> {
        Err(EtcdError::AnswerLost("no answer within 1s".into()))
    }

    #[test]
    fn ownership_comes_from_the_answer_or_the_key_read_back() {
        type ReadBack = Result<Option<(String, i64)>, EtcdError>;
        let me = "node2";
        let mine: ReadBack = Ok(Some(("node2".to_string(), 7)));
        let old_lease: ReadBack = Ok(Some(("node2".to_string(), 6)));
        let theirs: ReadBack = Ok(Some(("node3".to_string(), 9)));
        let absent: ReadBack = Ok(None);
        let unreadable: ReadBack = Err(EtcdError::Unreachable("connection refused".into()));
        type Row<'a> = (Result<bool, EtcdError>, Option<&'a ReadBack>, Won);
        let table: [Row; 8] = [
            (Ok(true), None, Won::Yes),
            (Ok(false), None, Won::No),
            // The answer lost: the key decides, value and lease id.
            (lost(), Some(&mine), Won::Yes),
            (lost(), Some(&old_lease), Won::No),
            (lost(), Some(&theirs), Won::No),
            (lost(), Some(&absent), Won::No),
            (lost(), Some(&unreadable), Won::Unknown(String::new())),
            (lost(), None, Won::Unknown(String::new())),
        ];
        for (answer, read_back, want) in table {
            let got = decide(&answer, read_back, me, 7);
            match want {
                Won::Unknown(_) => assert!(
                    matches!(got, Won::Unknown(_)),
                    "{answer:?} {read_back:?}: {got:?}"
                ),
                want => assert_eq!(got, want, "{answer:?} {read_back:?}"),
            }
        }
    }
}
