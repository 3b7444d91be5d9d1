//! The seeds that once broke an invariant of the simulation, each
//! replayed by name (a seed replays exactly: [`super::episode`]), so that
//! the fault each found stays fixed.

fn replay(seed: u64) {
    if let Err(failed) = super::episode(seed) {
        panic!("{failed}");
    }
}

/// A member on a reused timeline number begun at another point than the
/// last leader's term was judged on the number alone.
#[test]
fn seed_4768_a_reused_timeline_number_is_judged_with_where_it_began() {
    replay(4768);
}

/// A term whose promotion failed, and whose timeline could not be put
/// back (its answer lost), barred every member from the next election.
#[test]
fn seed_166_a_term_that_never_opened_is_put_back_until_it_is() {
    replay(166);
}

/// A leader whose own next term was written before a promotion that
/// never came (its node killed) was no longer the last leader: no member
/// was a candidate again.
#[test]
fn seed_416_a_former_leader_whose_next_term_never_opened_is_still_the_last() {
    replay(416);
}

/// A member took the key and wrote its term, then its node was killed
/// before it promoted; its restarted agent no longer knew the term, every
/// server was past its switch point, and no member was a candidate again
/// (the pending term is now recorded on disk: [`crate::cluster::pending`]).
#[test]
fn seed_7676_a_term_whose_node_was_killed_before_its_promotion_is_put_back() {
    replay(7676);
}

/// The same fault as seed 7676, met another way.
#[test]
fn seed_10327_a_term_whose_node_was_killed_before_its_promotion_is_put_back() {
    replay(10327);
}

/// A former leader whose term opened (its WAL diverged after it was cut
/// off) took the key again and failed to promote (its fence not running):
/// that failure cleared its former leader's marker. A later leader's
/// timeline got the same number from the same point, and when that leader
/// died the former one was a candidate again: its promotion dropped the
/// later leader's writes.
#[test]
fn seed_11967_a_failed_election_keeps_the_former_leaders_marker() {
    replay(11967);
}

/// A standby still on timeline 2, exactly where the last leader's term
/// (timeline 3) began, was elected while the standbys that had followed
/// that leader were cut off: its promotion began a second timeline 3 at
/// the same point, and a standby of the first one was later taken for
/// one of its history and promoted over its writes
/// ([`crate::cluster::member::reuses_the_term`]).
#[test]
fn seed_13817_a_promotion_never_repeats_the_last_terms_timeline() {
    replay(13817);
}

/// A member took the key and could not promote (its fence did not run)
/// nor stop its server: it kept the key, wrote its term again at every
/// pass, and its server received WAL past that term's switch point; once
/// its lease lapsed, the term (never opened) barred every member. Its
/// put-back had met its own lapsed key and was taken for "another term
/// since". Now a key whose promotion was never asked is given up without
/// a stop, and a failed compare is read back.
#[test]
fn seed_18864_a_term_that_could_never_open_does_not_bar_the_election() {
    replay(18864);
}

/// A member was elected, its promotion asked and done (its timeline began
/// one byte past the position its term guessed), and its agent crashed
/// before it published the real start. The restarted agent took its key
/// back and restarted the server in recovery; checked then against the
/// history as an elected standby is, its own timeline was taken for
/// another's (the same number, another start), and no member was a
/// candidate again. Only a key whose promotion was never asked is checked
/// so; the leader's own server restarted in recovery is on its own
/// promotion's timeline.
#[test]
fn seed_41252_a_leaders_own_timeline_is_not_judged_by_its_terms_guess() {
    replay(41252);
}
