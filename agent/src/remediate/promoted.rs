//! Whether a promote step that failed promoted after all. A promote
//! whose reply is lost or cut off by its time limit (`SET GLOBAL
//! read_only = 0` on MariaDB, `pg_promote()` on PostgreSQL) may well have
//! taken effect; counting it "not promoted" would leave a writable server
//! with no failover block and no rejoin watch. So after a failed promote
//! the target is read again: writable, or unreadable ("cannot tell"),
//! counts as promoted; only a target read back as still read-only (still
//! in recovery) counts as not promoted.

pub use super::step::PROMOTED;
use super::step::Step;
use crate::sql::Error;
use serde_json::{Value, json};

/// Whether `step` promoted its target: a `promote` step that succeeded,
/// or one that failed but counts as promoted ([`after_error`]).
pub fn counts_as_promoted(step: &Step) -> bool {
    step.counts_as_promoted()
}

/// The failed promote `step` with what reading the target back said:
/// `still_read_only` is `Ok(true)` when it is still read-only (still in
/// recovery), `Ok(false)` when it is writable, an error when it could not
/// be read. The step stays failed (the failover stops), but its detail's
/// `promoted` is true unless it was read back as still read-only, and its
/// message says so. A step already marked promoted stays so.
pub fn after_error(step: Step, still_read_only: Result<bool, Error>) -> Step {
    if step.ok || counts_as_promoted(&step) {
        return step;
    }
    let (promoted, read_back) = match &still_read_only {
        Ok(true) => (false, "still read-only: not promoted".to_string()),
        Ok(false) => (
            true,
            "read back writable: it was promoted after all".to_string(),
        ),
        Err(e) => (
            true,
            format!(
                "could not be read back ({e:?}): counted as promoted (the failover block holds and the old primary's rejoin is watched)"
            ),
        ),
    };
    let mut detail = match step.detail {
        Value::Object(map) => Value::Object(map),
        Value::Null => json!({}),
        other => json!({ "error_detail": other }),
    };
    detail[PROMOTED] = json!(promoted);
    detail["read_back"] = json!(read_back);
    Step::failed(
        step.name,
        format!("{}; the target {read_back}", step.message),
        detail,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost() -> Step {
        Step::failed("promote", "reply lost", Value::Null)
    }

    #[test]
    fn a_failed_promote_is_promoted_unless_read_back_read_only() {
        let cases: [(Result<bool, Error>, bool); 4] = [
            (Ok(true), false),
            (Ok(false), true),
            (Err(Error::Timeout("2 s".into())), true),
            (Err(Error::Unreachable("refused".into())), true),
        ];
        for (i, (read_back, promoted)) in cases.into_iter().enumerate() {
            let step = after_error(lost(), read_back);
            assert!(!step.ok, "case {i}");
            assert_eq!(counts_as_promoted(&step), promoted, "case {i}: {step:?}");
            assert_eq!(step.detail[PROMOTED], json!(promoted), "case {i}");
        }
    }

    #[test]
    fn only_promote_steps_count_and_a_marked_one_stays_marked() {
        assert!(counts_as_promoted(&Step::ok("promote", "", Value::Null)));
        assert!(!counts_as_promoted(&Step::ok("fence", "", Value::Null)));
        assert!(!counts_as_promoted(&lost()));
        let signalled = Step::failed("promote", "slow", json!({ PROMOTED: true }));
        let kept = after_error(signalled, Ok(true));
        assert!(counts_as_promoted(&kept), "{kept:?}");
        let limited = Step::failed("promote", "late", json!({"limit_ms": 10}));
        let read = after_error(limited, Ok(false));
        assert_eq!(read.detail["limit_ms"], 10);
        assert!(counts_as_promoted(&read));
    }
}
