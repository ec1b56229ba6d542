//! The driver: an actor that lives on the Raft leader for exactly one term.
//!
//! [`supervise`] watches the local Raft node. When it becomes leader in term `t`, a
//! [`Driver`] actor starts with `t`; when it stops leading, or a new term begins, that actor
//! is stopped (and a new one started if the node leads again). Everything the driver sends
//! to workers carries its term, and workers refuse terms older than one they have seen
//! ([`TermGuard`]), so a deposed driver that has not noticed yet cannot assign work.
//!
//! The driver runs the [`super::autopilot`] each tick, and re-checks its term before every
//! round so that a driver whose term has ended does nothing more.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::{Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message};
use libp2p::PeerId;
use meshml_protocol::{ErrorCode, RemoteError};
use meshml_storage::raft::{MemberInfo, StateMachine};
use openraft::ServerState;
use serde::Serialize;

use super::autopilot::{Autopilot, Round};
use super::ClusterRaft;

/// Lists the live peers with what they offer.
pub type AlivePeers =
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, Vec<(PeerId, MemberInfo)>> + Send + Sync>;

/// The local driver as `/v1/status` reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DriverInfo {
    /// The term it drives in.
    pub term: u64,
    /// When it started (milliseconds since the Unix epoch).
    pub since_ms: u64,
}

/// Where the supervisor publishes whether a driver runs here.
pub type DriverSlot = Arc<Mutex<Option<DriverInfo>>>;

/// Where the running driver takes workers' reports: its term and inbox.
pub type InboxSlot = Arc<Mutex<Option<(u64, super::jobs::Inbox)>>>;

/// The driver actor of one term.
pub struct Driver {
    term: u64,
    raft: ClusterRaft,
    state: StateMachine,
    local: MemberInfo,
    alive: AlivePeers,
    autopilot: Autopilot,
    round: Arc<tokio::sync::Mutex<Round>>,
    board: Option<Arc<tokio::sync::Mutex<super::jobs::Board>>>,
    /// The board's inbox, whose reports start a round at once.
    inbox: Option<super::jobs::Inbox>,
    inbox_slot: InboxSlot,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").field("term", &self.term).finish()
    }
}

/// How often the driver runs a round of its job board.
pub const JOB_TICK: Duration = Duration::from_millis(100);

/// A leader that has not heard from a quorum for this long stops driving: it is probably
/// cut off, and the other side may already have elected a new driver.
pub const QUORUM_SILENCE: Duration = Duration::from_millis(2000);

/// The term in which the local node should drive: it leads, and a quorum has acknowledged
/// it recently (or it was elected so recently that none has had to yet).
pub fn driving_term(m: &openraft::RaftMetrics<u64, openraft::BasicNode>) -> Option<u64> {
    let fresh = m
        .millis_since_quorum_ack
        .is_none_or(|ms| ms < QUORUM_SILENCE.as_millis() as u64);
    (m.state == ServerState::Leader && fresh).then_some(m.current_term)
}

impl Driver {
    /// Whether the local Raft node still drives in this driver's term.
    fn still_leading(raft: &ClusterRaft, term: u64) -> bool {
        driving_term(&raft.metrics().borrow()) == Some(term)
    }
}

impl Actor for Driver {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(term = self.term, "driver started");
        if let Some(board) = &self.board {
            ctx.run_interval(JOB_TICK, {
                let board = board.clone();
                move |this, ctx| {
                    if !Self::still_leading(&this.raft, this.term) {
                        ctx.stop();
                        return;
                    }
                    let Ok(mut board) = board.clone().try_lock_owned() else {
                        return;
                    };
                    actix::spawn(async move { board.round().await });
                }
            });
            if let Some(inbox) = self.inbox.clone() {
                let (board, raft, term) = (board.clone(), self.raft.clone(), self.term);
                ctx.spawn(actix::fut::wrap_future(async move {
                    loop {
                        inbox.arrived().await;
                        if !Self::still_leading(&raft, term) {
                            break;
                        }
                        board.clone().lock_owned().await.round().await;
                    }
                }));
            }
        }
        ctx.run_interval(self.autopilot.tick, |this, ctx| {
            if !Self::still_leading(&this.raft, this.term) {
                ctx.stop();
                return;
            }
            // One round at a time: a round that waits on a commit delays the next.
            let Ok(mut round) = this.round.clone().try_lock_owned() else {
                return;
            };
            let (raft, state, local, alive, autopilot, term) = (
                this.raft.clone(),
                this.state.clone(),
                this.local.clone(),
                this.alive.clone(),
                this.autopilot.clone(),
                this.term,
            );
            actix::spawn(async move {
                let peers = alive()
                    .await
                    .into_iter()
                    .map(|(p, info)| (super::node_id(&p), info))
                    .collect();
                if Self::still_leading(&raft, term) {
                    autopilot
                        .round(&mut round, &raft, &state, &local, peers)
                        .await;
                }
            });
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        let mut slot = self.inbox_slot.lock().expect("inbox slot");
        if slot.as_ref().is_some_and(|(t, _)| *t == self.term) {
            *slot = None;
        }
        tracing::info!(term = self.term, "driver stopped");
    }
}

/// Asks a driver for its term.
#[derive(Debug, Message)]
#[rtype(result = "u64")]
pub struct Term;

impl Handler<Term> for Driver {
    type Result = u64;
    fn handle(&mut self, _: Term, _: &mut Self::Context) -> u64 {
        self.term
    }
}

/// What the supervisor needs to start drivers.
#[derive(Clone)]
pub struct DriverConfig {
    /// This node's own record.
    pub local: MemberInfo,
    /// Live peers.
    pub alive: AlivePeers,
    /// Autopilot settings.
    pub autopilot: Autopilot,
    /// The node's mesh services (jobs run only when given).
    pub mesh: Option<crate::mesh::Mesh>,
    /// Where the running driver's inbox is published.
    pub inbox: InboxSlot,
    /// This node's worker, for tasks the driver places here.
    pub worker: Option<Arc<crate::worker::Worker>>,
}

impl std::fmt::Debug for DriverConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverConfig")
            .field("local", &self.local.peer_id)
            .field("autopilot", &self.autopilot)
            .finish()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs for the life of the node: starts a [`Driver`] whenever the local Raft node leads
/// (one per term) and stops it as soon as it no longer does, or has not heard from a quorum
/// for [`QUORUM_SILENCE`]. Publishes the running driver
/// in `slot`. Must run on an actix arbiter.
pub async fn supervise(
    raft: ClusterRaft,
    state: StateMachine,
    config: DriverConfig,
    slot: DriverSlot,
) {
    let mut metrics = raft.metrics();
    let mut running: Option<(u64, Addr<Driver>)> = None;
    loop {
        let drive = driving_term(&metrics.borrow_and_update());
        let keep = running
            .as_ref()
            .is_some_and(|(t, a)| drive == Some(*t) && a.connected());
        if !keep {
            if let Some((_, addr)) = running.take() {
                addr.do_send(Stop);
                *slot.lock().expect("driver slot") = None;
            }
            if let Some(term) = drive {
                let inbox = config.mesh.as_ref().map(|_| super::jobs::Inbox::default());
                let board = config.mesh.clone().zip(inbox.clone()).map(|(mesh, inbox)| {
                    *config.inbox.lock().expect("inbox slot") = Some((term, inbox.clone()));
                    Arc::new(tokio::sync::Mutex::new(super::jobs::Board::new(
                        mesh,
                        term,
                        inbox,
                        config.worker.clone(),
                    )))
                });
                let addr = Driver {
                    term,
                    raft: raft.clone(),
                    state: state.clone(),
                    local: config.local.clone(),
                    alive: config.alive.clone(),
                    autopilot: config.autopilot.clone(),
                    round: Arc::default(),
                    board,
                    inbox,
                    inbox_slot: config.inbox.clone(),
                }
                .start();
                running = Some((term, addr));
                *slot.lock().expect("driver slot") = Some(DriverInfo {
                    term,
                    since_ms: now_ms(),
                });
            }
        }
        // Wake on metrics changes (Raft publishes them on every turn of its loop, so at
        // most every 50 ms here), and at least once a second so that a driver that stopped
        // itself is noticed.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let changed = tokio::time::timeout(Duration::from_secs(1), metrics.changed()).await;
        if let Ok(Err(_)) = changed {
            break; // Raft shut down.
        }
    }
    if let Some((_, addr)) = running.take() {
        addr.do_send(Stop);
    }
    *slot.lock().expect("driver slot") = None;
}

/// Stops a driver.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Stop;

impl Handler<Stop> for Driver {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

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
