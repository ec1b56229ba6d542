//! A deterministic simulated network.
//!
//! Messages between numbered nodes are delivered in virtual-time order after a seeded
//! random delay; links can drop messages with a probability or be cut by a partition.
//! The same seed and the same sends give the same deliveries.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

/// Delay and loss of every link.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LinkConfig {
    /// Smallest delay in virtual microseconds.
    pub min_delay_us: u64,
    /// Largest delay in virtual microseconds.
    pub max_delay_us: u64,
    /// Probability in [0, 1] that a message is lost.
    pub drop_rate: f64,
}

impl Default for LinkConfig {
    /// 100-500 µs, no loss.
    fn default() -> Self {
        Self {
            min_delay_us: 100,
            max_delay_us: 500,
            drop_rate: 0.0,
        }
    }
}

/// A message handed to its destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery<M> {
    /// Virtual time of delivery in microseconds.
    pub at_us: u64,
    /// Sender.
    pub from: usize,
    /// Receiver.
    pub to: usize,
    /// The message.
    pub msg: M,
}

/// A simulated network of `n` nodes numbered `0..n`.
#[derive(Debug)]
pub struct SimNet<M> {
    n: usize,
    now_us: u64,
    link: LinkConfig,
    rng: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, usize, usize)>>,
    payloads: std::collections::HashMap<u64, M>,
    cut: BTreeSet<(usize, usize)>,
    dropped: u64,
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl<M> SimNet<M> {
    /// A network of `n` nodes whose randomness comes from `seed`.
    pub fn new(n: usize, seed: u64, link: LinkConfig) -> Self {
        Self {
            n,
            now_us: 0,
            link,
            rng: seed,
            seq: 0,
            queue: BinaryHeap::new(),
            payloads: std::collections::HashMap::new(),
            cut: BTreeSet::new(),
            dropped: 0,
        }
    }

    /// Current virtual time.
    pub fn now_us(&self) -> u64 {
        self.now_us
    }

    /// Messages lost to drops or partitions so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Messages in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// Virtual time of the next delivery, if a message is in flight.
    pub fn next_at(&self) -> Option<u64> {
        self.queue.peek().map(|Reverse((at, ..))| *at)
    }

    /// Moves the clock forward to `t` (never back): for timers between deliveries.
    pub fn advance_to(&mut self, t: u64) {
        self.now_us = self.now_us.max(t);
    }

    /// A number from the network's seeded stream (for timers that must replay too).
    pub fn random(&mut self) -> u64 {
        splitmix(&mut self.rng)
    }

    /// Changes every link's delay and loss from now on.
    pub fn set_link(&mut self, link: LinkConfig) {
        self.link = link;
    }

    /// The links' delay and loss.
    pub fn link(&self) -> LinkConfig {
        self.link
    }

    /// Cuts every link between `side` and the other nodes (both directions).
    pub fn partition(&mut self, side: &[usize]) {
        for &a in side {
            for b in (0..self.n).filter(|b| !side.contains(b)) {
                self.cut.insert((a, b));
                self.cut.insert((b, a));
            }
        }
    }

    /// Whether the link from `from` to `to` is cut.
    pub fn is_cut(&self, from: usize, to: usize) -> bool {
        self.cut.contains(&(from, to))
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Sends `msg`; it is delivered later, or lost.
    pub fn send(&mut self, from: usize, to: usize, msg: M) {
        assert!(from < self.n && to < self.n, "node out of range");
        let roll = (splitmix(&mut self.rng) >> 11) as f64 / (1u64 << 53) as f64;
        if self.cut.contains(&(from, to)) || roll < self.link.drop_rate {
            self.dropped += 1;
            return;
        }
        let span = self
            .link
            .max_delay_us
            .saturating_sub(self.link.min_delay_us)
            + 1;
        let delay = self.link.min_delay_us + splitmix(&mut self.rng) % span;
        self.seq += 1;
        self.queue
            .push(Reverse((self.now_us + delay, self.seq, from, to)));
        self.payloads.insert(self.seq, msg);
    }

    /// Delivers the next message (advancing the clock to it), if any. A message whose link
    /// was cut while it was in flight is lost.
    pub fn step(&mut self) -> Option<Delivery<M>> {
        while let Some(Reverse((at, seq, from, to))) = self.queue.pop() {
            self.now_us = self.now_us.max(at);
            let msg = self
                .payloads
                .remove(&seq)
                .expect("payload of queued message");
            if self.cut.contains(&(from, to)) {
                self.dropped += 1;
                continue;
            }
            return Some(Delivery {
                at_us: at,
                from,
                to,
                msg,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64, link: LinkConfig) -> (Vec<Delivery<u32>>, u64) {
        let mut net = SimNet::new(3, seed, link);
        for i in 0..100 {
            net.send(i as usize % 3, (i as usize + 1) % 3, i);
        }
        let mut out = Vec::new();
        while let Some(d) = net.step() {
            out.push(d);
        }
        (out, net.dropped())
    }

    #[test]
    fn same_seed_same_history_and_time_order() {
        let (a, _) = run(9, LinkConfig::default());
        let (b, _) = run(9, LinkConfig::default());
        let (c, _) = run(10, LinkConfig::default());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 100);
        assert!(a.windows(2).all(|w| w[0].at_us <= w[1].at_us));
        assert!(a.iter().all(|d| (100..=500).contains(&d.at_us)));
    }

    #[test]
    fn drop_rate_loses_about_that_share() {
        let (got, dropped) = run(
            1,
            LinkConfig {
                drop_rate: 0.3,
                ..LinkConfig::default()
            },
        );
        assert_eq!(got.len() as u64 + dropped, 100);
        assert!((15..45).contains(&dropped), "{dropped}");
    }

    #[test]
    fn partitions_cut_both_ways_until_healed() {
        let mut net = SimNet::new(3, 0, LinkConfig::default());
        net.send(0, 1, "in flight");
        net.partition(&[0]);
        net.send(0, 2, "a");
        net.send(2, 0, "b");
        net.send(1, 2, "c");
        let got: Vec<_> = std::iter::from_fn(|| net.step()).map(|d| d.msg).collect();
        assert_eq!(got, vec!["c"]);
        assert_eq!(net.dropped(), 3);
        net.heal();
        net.send(2, 0, "d");
        assert_eq!(net.step().unwrap().msg, "d");
    }
}
