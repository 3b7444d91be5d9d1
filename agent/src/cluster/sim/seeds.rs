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
