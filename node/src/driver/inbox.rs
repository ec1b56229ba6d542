//! How workers reach the driver of the current term, and how they refuse an older one.
//!
//! The running driver publishes its term and a bounded inbox in an [`InboxSlot`]; a
//! worker's report goes there when the driver runs on its own node (else over the network
//! to the driver's node, which puts it there). Every assignment carries the driver's term,
//! and a worker's [`TermGuard`] refuses terms older than one it has seen.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use meshml_protocol::{ErrorCode, RemoteError};

use super::board::Event;

/// Where the running driver takes events (workers' reports, outcomes of its effects). Bounded:
/// a report that finds it full is refused as retryable, and the worker sends it again.
pub type Inbox = tokio::sync::mpsc::Sender<Event>;

/// Events the driver's inbox holds at most.
pub const INBOX_CAPACITY: usize = 4096;

/// Where the running driver takes workers' reports: its term and inbox.
pub type InboxSlot = Arc<Mutex<Option<(u64, Inbox)>>>;

/// A worker's memory of the newest driver term it has seen: assignments from older terms
/// are refused.
#[derive(Debug, Default)]
pub struct TermGuard {
    highest: AtomicU64,
}

impl TermGuard {
    /// Admits a command from a driver of `term`, given the local Raft node's current term.
    /// Refuses it when either is newer: a newer term means that driver has been replaced.
    pub fn admit(&self, term: u64, local_term: u64) -> Result<(), RemoteError> {
        let seen = self
            .highest
            .fetch_max(term, Ordering::SeqCst)
            .max(local_term);
        if term < seen {
            return Err(RemoteError {
                code: ErrorCode::StaleTerm,
                message: format!("term {term} is stale: this node has seen term {seen}"),
                retryable: false,
            });
        }
        Ok(())
    }

    /// The newest term admitted so far.
    pub fn highest(&self) -> u64 {
        self.highest.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_terms_are_refused_and_newer_ones_raise_the_bar() {
        let g = TermGuard::default();
        assert!(g.admit(3, 3).is_ok());
        assert!(g.admit(3, 3).is_ok(), "the same term again is fine");
        let e = g.admit(2, 3).unwrap_err();
        assert_eq!(e.code, ErrorCode::StaleTerm);
        assert!(!e.retryable);
        assert!(e.message.contains("term 2"), "{}", e.message);
        // The local Raft node has moved on to term 5 (an election it heard of).
        assert_eq!(g.admit(4, 5).unwrap_err().code, ErrorCode::StaleTerm);
        // A driver of term 6 is admitted, after which 5 is stale even though Raft says 5.
        assert!(g.admit(6, 5).is_ok());
        assert_eq!(g.highest(), 6);
        assert_eq!(g.admit(5, 5).unwrap_err().code, ErrorCode::StaleTerm);
    }
}
