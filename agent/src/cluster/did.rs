//! What one pass of the HA loop did ([`super::ha::Ha::tick`]'s answer):
//! the decisions it recorded, in order, or the steady state it kept. The
//! table tests and the simulation read it; the audit log gets the same.

use crate::events::Decision;

/// One thing a pass of the loop did (the `String`s say why, as recorded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Did {
    /// Took the leader key (won an election, found it ours, took it over).
    Acquired(String),
    /// Leads, with a primary and a renewed lease: nothing to decide.
    Renewed,
    /// Follows the leader (or streams from it): nothing to decide.
    Following,
    /// Pointed the local server at the leader or started streaming.
    Followed(String),
    /// Lost the lease (renewal refused, deadline passed, key gone).
    LostLease(String),
    /// Stopped the local server or made it a standby.
    Demoted(String),
    /// Gave the leader key up.
    Released(String),
    /// Promoted the local server.
    Promoted(String),
    /// Restarted the leader's crashed server in place.
    Restarted(String),
    /// Rewound the local server against the leader.
    Rewound(String),
    /// No leader, and this member may not take over.
    NoCandidate(String),
    /// An action failed, or a fault was found.
    Failed(String),
    /// Waiting: no leader to follow yet, etcd out of reach, or nothing
    /// this member can do.
    Waiting,
    /// Any other recorded decision (synchronous set, switchover steps,
    /// maintenance mode).
    Other(Decision, String),
}

impl Did {
    /// A recorded decision as what the loop did.
    pub fn from_record(decision: Decision, why: String) -> Did {
        match decision {
            Decision::Acquired => Did::Acquired(why),
            Decision::LostLease => Did::LostLease(why),
            Decision::Demoted => Did::Demoted(why),
            Decision::Released => Did::Released(why),
            Decision::Promoted => Did::Promoted(why),
            Decision::Restarted => Did::Restarted(why),
            Decision::Rewound => Did::Rewound(why),
            Decision::Following => Did::Followed(why),
            Decision::NoCandidate => Did::NoCandidate(why),
            Decision::Failed => Did::Failed(why),
            other => Did::Other(other, why),
        }
    }

    /// Why, as recorded (empty for the steady states).
    pub fn why(&self) -> &str {
        match self {
            Did::Acquired(w)
            | Did::Followed(w)
            | Did::LostLease(w)
            | Did::Demoted(w)
            | Did::Released(w)
            | Did::Promoted(w)
            | Did::Restarted(w)
            | Did::Rewound(w)
            | Did::NoCandidate(w)
            | Did::Failed(w)
            | Did::Other(_, w) => w,
            Did::Renewed | Did::Following | Did::Waiting => "",
        }
    }
}
