//! Simulated link faults between nodes of one process (the simulator's partitions, slow
//! and lossy links). Empty by default and absent from a normal node.
//!
//! A rule applies to messages from one node to another: every request this node sends
//! over the link, every request and announcement it receives over it.
//! - `cut`: a request fails at once, as to an unreachable host; one received is dropped
//!   unanswered (the sender sees the stream closed); announcements from that node are
//!   ignored, also when another node relays them (a partition of groups has no relay).
//! - `delay`: a request waits this long before it is sent.
//! - `loss`: a request is lost with this probability (it fails at once).
//!
//! Connections stay open underneath, so healing takes effect at once.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use libp2p::PeerId;
use meshml_models::rng::Rng;

/// What happens to messages over one directed link.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LinkRule {
    /// No message passes.
    pub cut: bool,
    /// Added before each request is sent.
    pub delay: Duration,
    /// Share of requests lost, in [0, 1].
    pub loss: f64,
}

/// The rules of every link, shared by the nodes of a simulation.
#[derive(Debug)]
pub struct LinkFaults {
    rules: RwLock<HashMap<(PeerId, PeerId), LinkRule>>,
    rng: Mutex<Rng>,
}

impl Default for LinkFaults {
    fn default() -> Self {
        Self {
            rules: RwLock::default(),
            rng: Mutex::new(Rng::seed_from_u64(0)),
        }
    }
}

impl LinkFaults {
    /// No rules: every link works.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the rule of the link `from -> to`.
    pub fn set(&self, from: PeerId, to: PeerId, rule: LinkRule) {
        let mut rules = self.rules.write().expect("link rules");
        if rule == LinkRule::default() {
            rules.remove(&(from, to));
        } else {
            rules.insert((from, to), rule);
        }
    }

    /// Cuts every link between `side` and `rest`, both ways.
    pub fn partition(&self, side: &[PeerId], rest: &[PeerId]) {
        for a in side {
            for b in rest {
                for (x, y) in [(a, b), (b, a)] {
                    let r = self.rule(x, y).unwrap_or_default();
                    self.set(*x, *y, LinkRule { cut: true, ..r });
                }
            }
        }
    }

    /// Removes every rule.
    pub fn heal(&self) {
        self.rules.write().expect("link rules").clear();
    }

    /// The rule of `from -> to`, if any.
    pub fn rule(&self, from: &PeerId, to: &PeerId) -> Option<LinkRule> {
        self.rules
            .read()
            .expect("link rules")
            .get(&(*from, *to))
            .copied()
    }

    /// Whether `from -> to` is cut.
    pub fn is_cut(&self, from: &PeerId, to: &PeerId) -> bool {
        self.rule(from, to).is_some_and(|r| r.cut)
    }

    /// What a request over `from -> to` meets: `Err` when it does not get through (cut or
    /// lost), else the delay before it is sent.
    pub fn outbound(&self, from: &PeerId, to: &PeerId) -> Result<Duration, &'static str> {
        let Some(r) = self.rule(from, to) else {
            return Ok(Duration::ZERO);
        };
        if r.cut {
            return Err("link cut (simulated partition)");
        }
        if r.loss > 0.0 && self.rng.lock().expect("link rng").next_f64() < r.loss {
            return Err("message lost (simulated loss)");
        }
        Ok(r.delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_cut_both_ways_and_heal() {
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let f = LinkFaults::new();
        assert_eq!(f.outbound(&a, &b), Ok(Duration::ZERO));
        f.partition(&[a], &[b, c]);
        assert!(f.is_cut(&a, &b) && f.is_cut(&c, &a) && !f.is_cut(&b, &c));
        assert!(f.outbound(&b, &a).is_err());
        f.heal();
        assert!(!f.is_cut(&a, &b));
    }

    #[test]
    fn slow_and_lossy_links() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let f = LinkFaults::new();
        let delay = Duration::from_millis(30);
        f.set(
            a,
            b,
            LinkRule {
                delay,
                loss: 0.25,
                ..LinkRule::default()
            },
        );
        let outcomes: Vec<_> = (0..4000).map(|_| f.outbound(&a, &b)).collect();
        let lost = outcomes.iter().filter(|o| o.is_err()).count();
        assert!((800..1200).contains(&lost), "{lost} of 4000 lost");
        assert!(outcomes.iter().flatten().all(|d| *d == delay));
        assert_eq!(f.outbound(&b, &a), Ok(Duration::ZERO), "one direction only");
        f.set(a, b, LinkRule::default());
        assert_eq!(f.rule(&a, &b), None);
    }
}
