//! What goes wrong in a simulated episode, and the seeded generator that
//! decides when: the fault mix of an episode ([`Faults`], drawn from its
//! seed) and the one source of randomness ([`Rng`]), so that a seed
//! replays exactly.

use std::time::Duration;

/// A small deterministic generator (splitmix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn millis(&mut self, max: u64) -> Duration {
        Duration::from_millis(self.below(max + 1))
    }
}

/// How faulty an episode is (probabilities per store call or per step).
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    pub unsent: f64,
    pub answer_lost: f64,
    pub late: f64,
    pub resent: f64,
    /// A store call on which the agent crashes (stops mid-operation).
    pub crash_mid: f64,
    /// Per step and member: the agent crashes between ticks.
    pub crash: f64,
    pub server_crash: f64,
    pub unknown: f64,
    pub stop_fails: f64,
    pub rewind_fails: f64,
    pub fence_broken: f64,
    pub partition: f64,
    /// Per step and member: the fence runs but cannot signal the server.
    pub fence_fails: f64,
    /// Per step: the operator asks for a switchover (to a random member);
    /// a quarter of that: cancels the pending one.
    pub switchover: f64,
    /// How long every server's start (its crash recovery) and checkpoint
    /// take: past the lease's deadline, they must not cost the leader its
    /// lease ([`crate::cluster::during`]). Drawn apart from the rest
    /// ([`Faults::slow_drawn`]), so that the seeds drawn before it came
    /// draw the same mix.
    pub slow: Duration,
}

impl Faults {
    pub const NONE: Faults = Faults {
        unsent: 0.0,
        answer_lost: 0.0,
        late: 0.0,
        resent: 0.0,
        crash_mid: 0.0,
        crash: 0.0,
        server_crash: 0.0,
        unknown: 0.0,
        stop_fails: 0.0,
        rewind_fails: 0.0,
        fence_broken: 0.0,
        partition: 0.0,
        fence_fails: 0.0,
        switchover: 0.0,
        slow: Duration::ZERO,
    };

    /// A mix drawn from the seed: each kind on or off, at a rate that
    /// leaves time between faults.
    pub fn drawn(rng: &mut Rng) -> Faults {
        let mut on = |p: f64| if rng.chance(0.5) { p } else { 0.0 };
        Faults {
            unsent: on(0.02),
            answer_lost: on(0.02),
            late: on(0.02),
            resent: on(0.05),
            crash_mid: on(0.003),
            crash: on(0.001),
            server_crash: on(0.001),
            unknown: on(0.001),
            stop_fails: on(0.001),
            rewind_fails: on(0.002),
            fence_broken: on(0.001),
            partition: on(0.001),
            fence_fails: on(0.001),
            switchover: 0.01 + on(0.02),
            slow: Duration::ZERO,
        }
    }

    /// The mix of episode `seed` with its slow actions: a third of the
    /// episodes have starts and checkpoints of 1 to 8 s (the lease's
    /// deadline is 2 s), from a generator of their own.
    pub fn slow_drawn(self, seed: u64) -> Faults {
        let mut rng = Rng::new(seed.rotate_left(29) ^ 0x51_0a_c7_10);
        let slow = if rng.below(3) == 0 {
            Duration::from_millis(1000 + rng.below(7001))
        } else {
            Duration::ZERO
        };
        Faults { slow, ..self }
    }
}
