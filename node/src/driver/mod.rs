//! The driver: an actor that lives on the Raft leader for exactly one term, and what it
//! drives.
//!
//! [`supervise`] watches the local Raft node. When it becomes leader in term `t`, a
//! [`Driver`] actor starts with `t`; when it stops leading, or a new term begins, that actor
//! is stopped (and a new one started if the node leads again). Everything the driver sends
//! to workers carries its term, and workers refuse terms older than one they have seen
//! ([`inbox::TermGuard`]), so a deposed driver that has not noticed yet cannot assign work.
//!
//! The driver runs the [`crate::raft::autopilot`] each tick, and re-checks its term before every
//! round so that a driver whose term has ended does nothing more.
//!
//! With jobs (a node with mesh services), the driver owns the term's job [`Board`] outright
//! and runs it in one task: events come from a bounded inbox (workers' reports, outcomes
//! of effects) and from the tick (live members, jobs recorded or ended in the replicated
//! state); each event's [`Effect`]s are carried out on tasks of their own, whose outcomes
//! come back through the inbox. Chunk repair ([`self::repair`]) runs beside it.
//!
//! - [`board`]: the job board, a pure state machine (events in, effects out), and
//!   [`scheduler`], the task placement and retries it keeps;
//! - [`inbox`]: where workers' reports reach the driver, and the term guard;
//! - [`worker`]: the worker every node runs, which the driver assigns tasks to;
//! - [`registry`]: a finished job's model artifact stored, copied, registered and scored;
//! - [`repair`]: chunks and artifacts short of copies replicated again.

pub mod board;
pub mod inbox;
pub mod registry;
pub mod repair;
pub mod rounds;
pub mod scheduler;
pub mod worker;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::{Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message};
use meshml_client::api::DriverView;
use meshml_storage::raft::{MemberInfo, StateMachine};
use openraft::ServerState;

use self::board::{Board, Effect, Event, JobData, LostOutputs, Member};
use self::inbox::{Inbox, InboxSlot, INBOX_CAPACITY};
use crate::error::MeshError;
use crate::job::{job_owner, JobRequest};
use crate::raft::autopilot::{Autopilot, Round};
use crate::raft::{AlivePeers, ClusterRaft};
use crate::services::datasets::Datasets;

/// Where the supervisor publishes whether a driver runs here.
pub type DriverSlot = Arc<Mutex<Option<DriverView>>>;

/// What a driver with jobs starts with: the board of its term, its inbox, and what carries
/// out the board's effects.
struct Jobs {
    board: Board,
    inbox: tokio::sync::mpsc::Receiver<Event>,
    effects: Effects,
}

/// The driver actor of one term.
pub struct Driver {
    term: u64,
    raft: ClusterRaft,
    state: StateMachine,
    local: MemberInfo,
    alive: AlivePeers,
    autopilot: Autopilot,
    round: Arc<tokio::sync::Mutex<Round>>,
    /// The job board and its inbox, until the actor starts them.
    jobs: Option<Jobs>,
    /// The node's dataset service, and the chunks and consensus under it (jobs and repair
    /// run only with them).
    datasets: Option<Datasets>,
    /// Held while a repair pass runs.
    repairing: Arc<tokio::sync::Mutex<()>>,
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
        if let Some(jobs) = self.jobs.take() {
            ctx.spawn(actix::fut::wrap_future(drive(
                jobs.board,
                jobs.inbox,
                jobs.effects,
            )));
        }
        if let Some(chunks) = self.datasets.as_ref().map(|d| d.chunks().clone()) {
            let pass = move |this: &mut Self, ctx: &mut Context<Self>| {
                if !Self::still_leading(&this.raft, this.term) {
                    ctx.stop();
                    return;
                }
                let Ok(guard) = this.repairing.clone().try_lock_owned() else {
                    return;
                };
                let chunks = chunks.clone();
                actix::spawn(async move {
                    self::repair::repair(&chunks).await;
                    drop(guard);
                });
            };
            pass(self, ctx);
            ctx.run_interval(self::repair::REPAIR_EVERY, pass);
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
                    .map(|(p, info)| (crate::raft::node_id(&p), info))
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
    /// The node's dataset service, and the chunks and consensus under it (jobs run only
    /// when given).
    pub datasets: Option<Datasets>,
    /// Where the running driver's inbox is published.
    pub inbox: InboxSlot,
    /// This node's worker, for tasks the driver places here.
    pub worker: Option<Arc<self::worker::Worker>>,
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
                let jobs = config.datasets.clone().map(|datasets| {
                    let (tx, rx) = tokio::sync::mpsc::channel(INBOX_CAPACITY);
                    *config.inbox.lock().expect("inbox slot") = Some((term, tx.clone()));
                    Jobs {
                        board: Board::new(term, datasets.consensus().id()),
                        inbox: rx,
                        effects: Effects {
                            datasets,
                            worker: config.worker.clone(),
                            inbox: tx,
                            term,
                        },
                    }
                });
                let addr = Driver {
                    term,
                    raft: raft.clone(),
                    state: state.clone(),
                    local: config.local.clone(),
                    alive: config.alive.clone(),
                    autopilot: config.autopilot.clone(),
                    round: Arc::default(),
                    jobs,
                    datasets: config.datasets.clone(),
                    repairing: Arc::default(),
                    inbox_slot: config.inbox.clone(),
                }
                .start();
                running = Some((term, addr));
                *slot.lock().expect("driver slot") = Some(DriverView {
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

/// Runs the job board of one term until the driver stops: events from the inbox and the
/// tick in, effects out.
async fn drive(mut board: Board, mut inbox: tokio::sync::mpsc::Receiver<Event>, effects: Effects) {
    let mut tick = tokio::time::interval(JOB_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut changes = effects.consensus().state().subscribe();
    loop {
        tokio::select! {
            event = inbox.recv() => {
                let Some(event) = event else { break };
                effects.run(board.step(now_ms(), event));
            }
            // A change to the replicated state: a job submitted or cancelled is seen at
            // once, not on the next tick.
            Ok(()) = changes.changed() => {
                for event in effects.observe_jobs(&board) {
                    effects.run(board.step(now_ms(), event));
                }
            }
            _ = tick.tick() => {
                for event in effects.observe(&board).await {
                    effects.run(board.step(now_ms(), event));
                }
            }
        }
    }
}

/// Carries out the board's effects over the mesh; each outcome goes back to the inbox.
#[derive(Clone)]
struct Effects {
    datasets: Datasets,
    worker: Option<Arc<self::worker::Worker>>,
    inbox: Inbox,
    term: u64,
}

impl Effects {
    fn consensus(&self) -> &crate::services::consensus::Consensus {
        self.datasets.consensus()
    }

    fn run(&self, effects: Vec<Effect>) {
        for effect in effects {
            // An assignment to this node's own worker is a function call.
            if let Effect::Assign {
                key, node, spec, ..
            } = &effect
            {
                if let Some(worker) = self
                    .worker
                    .as_ref()
                    .filter(|_| *node == self.consensus().id())
                {
                    let answer = worker.assign_spec(key.clone(), self.term, spec.clone());
                    if let Some(event) = assign_outcome(key, *node, Ok(answer)) {
                        self.send(event);
                    }
                    continue;
                }
            }
            let this = self.clone();
            actix_rt::spawn(async move {
                if let Some(event) = this.carry_out(effect).await {
                    let _ = this.inbox.send(event).await;
                }
            });
        }
    }

    /// Sends an event from a synchronous context: at once when the inbox has room, else
    /// from a task of its own.
    fn send(&self, event: Event) {
        if let Err(tokio::sync::mpsc::error::TrySendError::Full(event)) = self.inbox.try_send(event)
        {
            let inbox = self.inbox.clone();
            actix_rt::spawn(async move {
                let _ = inbox.send(event).await;
            });
        }
    }

    async fn carry_out(&self, effect: Effect) -> Option<Event> {
        let (consensus, chunks) = (self.consensus(), self.datasets.chunks());
        match effect {
            Effect::Assign {
                key, node, spec, ..
            } => {
                let answer = match consensus.peer_of(node) {
                    None => Err((format!("member {node} has no address"), true)),
                    Some(peer) => {
                        let request = meshml_protocol::Request::AssignTask {
                            job: key.job.clone(),
                            task: key.task,
                            term: self.term,
                            spec: rmp_serde::to_vec_named(&spec).expect("tasks encode"),
                        };
                        consensus
                            .client()
                            .request(peer, request)
                            .await
                            .map_err(|e| (e.to_string(), true))
                    }
                };
                assign_outcome(&key, node, answer)
            }
            Effect::Propose { proposal, command } => Some(Event::Committed {
                proposal,
                outcome: consensus.propose(command).await,
            }),
            Effect::CopyOutput { key, output, from } => {
                let owner = job_owner(key.job.as_str());
                let outcome = match chunks.chunk_from(output, &[from]).await {
                    Ok((bytes, _)) => chunks
                        .with_store(move |s| s.put_pinned(&owner, &bytes))
                        .await
                        .map(|_| ()),
                    Err(why) => Err(MeshError::unavailable(format!(
                        "an output of job {} is unreachable: {why}",
                        key.job
                    ))),
                };
                Some(Event::OutputCopied { key, outcome })
            }
            Effect::ReadOutputs { job, stage, wanted } => {
                let started = std::time::Instant::now();
                let outcome = read_outputs(chunks, &job, wanted).await;
                Some(Event::OutputsRead {
                    job,
                    stage,
                    outcome,
                    ms: started.elapsed().as_millis() as u64,
                })
            }
            Effect::Register {
                job,
                request,
                estimator,
                result,
            } => {
                let outcome =
                    self::registry::register(&self.datasets, &job, &request, *estimator, *result)
                        .await
                        .map(Box::new);
                Some(Event::Registered { job, outcome })
            }
            Effect::Train {
                job,
                dataset,
                node,
                request: number,
                pass,
                chunks,
                spec,
            } => {
                let answer = match self.worker.as_ref().filter(|_| node == consensus.id()) {
                    // This node's own worker: a call, not a request to itself.
                    Some(worker) => Ok(worker
                        .train_chunks(self.term, &dataset, chunks, &spec)
                        .await),
                    None => match consensus.peer_of(node) {
                        None => Err(format!("member {node} has no address")),
                        Some(peer) => {
                            let request = meshml_protocol::Request::TrainChunks {
                                job: job.clone(),
                                term: self.term,
                                dataset,
                                pass,
                                chunks,
                                spec: spec.to_vec(),
                            };
                            (consensus.client().request(peer, request).await)
                                .map_err(|e| e.to_string())
                        }
                    },
                };
                use self::rounds::{Refusal, Trained};
                use meshml_protocol::{ErrorCode, Response};
                let outcome = match answer {
                    Ok(Response::Trained { partials, ms }) => Ok(Trained {
                        partials: partials
                            .into_iter()
                            .map(|(i, b)| (i, b.into_vec()))
                            .collect(),
                        ms,
                    }),
                    Ok(Response::Error(e)) if e.code == ErrorCode::StaleTerm => {
                        Err(Refusal::Deposed)
                    }
                    Ok(Response::Error(e)) if !e.retryable => Err(Refusal::Fatal(e.message)),
                    Ok(Response::Error(e)) => Err(Refusal::Retry(e.message)),
                    Ok(other) => Err(Refusal::Retry(format!("unexpected answer {other:?}"))),
                    Err(e) => Err(Refusal::Retry(e)),
                };
                Some(Event::Trained {
                    job,
                    node,
                    request: number,
                    outcome,
                })
            }
            Effect::Release { job } => {
                let owner = job_owner(job.as_str());
                let _ = chunks.with_store(move |s| s.unpin(&owner)).await;
                None
            }
        }
    }

    /// What the tick brings: the time, the live members, and the jobs recorded or ended in
    /// the replicated state since the board last looked.
    async fn observe(&self, board: &Board) -> Vec<Event> {
        let mut events = vec![Event::Tick];
        let live = self.consensus().live_members().await;
        events.push(Event::Members {
            live: live
                .into_iter()
                .map(|m| Member {
                    node: m.id,
                    slots: m.slots,
                    incarnation: m.started_ms,
                })
                .collect(),
        });
        events.extend(self.observe_jobs(board));
        events
    }

    /// The jobs recorded or ended in the replicated state since the board last looked.
    fn observe_jobs(&self, board: &Board) -> Vec<Event> {
        let mut events = Vec::new();
        // Jobs are picked up only once this node's state machine has applied an entry of
        // the driver's own term (the leader's first entry commits everything before it):
        // an older state would lack completions its predecessor committed, and their tasks
        // would run again.
        let caught_up = self
            .consensus()
            .raft()
            .metrics()
            .borrow()
            .last_applied
            .is_some_and(|l| l.leader_id.term >= board.term());
        self.consensus().state().read(|s| {
            for (id, record) in &s.jobs {
                if !caught_up
                    || record.state != meshml_storage::raft::JobState::Running
                    || board.knows(id)
                {
                    continue;
                }
                let data = rmp_serde::from_slice::<JobRequest>(&record.spec)
                    .ok()
                    .and_then(|r| {
                        let m = s.datasets.get(&r.dataset)?;
                        let holders: Vec<&[u64]> = m
                            .chunks
                            .iter()
                            .map(|c| s.chunk_locations.get(&c.id).map_or(&[][..], |h| &h[..]))
                            .collect();
                        // A data-parallel fit checks its estimator against the schema
                        // (a dataset of no rows) and reads the chunks where they are.
                        let schema = (r.data_parallel == Some(true))
                            .then(|| m.chunk_reader().and_then(|a| a.finish()).ok())
                            .flatten()
                            .map(Box::new);
                        Some(Box::new(JobData {
                            summary: self::board::summary_of(m),
                            chunks: m
                                .chunks
                                .iter()
                                .zip(&holders)
                                .map(|(c, h)| (c.id, h.to_vec()))
                                .collect(),
                            prefer: self::board::preferred_holders(holders),
                            schema,
                        }))
                    });
                events.push(Event::JobRecorded {
                    id: id.clone(),
                    record: Box::new(record.clone()),
                    data,
                });
            }
            for id in board.jobs() {
                if s.jobs
                    .get(id)
                    .is_none_or(|j| j.state != meshml_storage::raft::JobState::Running)
                {
                    events.push(Event::JobEnded { id: id.clone() });
                }
            }
        });
        events
    }
}

/// The event an assignment's answer makes: none when the member took it.
fn assign_outcome(
    key: &self::scheduler::TaskKey,
    node: u64,
    answer: Result<meshml_protocol::Response, (String, bool)>,
) -> Option<Event> {
    use self::board::AssignFailure;
    use meshml_protocol::{ErrorCode, Response};
    let (error, failure) = match answer {
        Ok(Response::Ack) => return None,
        Ok(Response::Error(e)) => {
            let failure = if e.code == ErrorCode::Unavailable && e.retryable {
                AssignFailure::Busy
            } else {
                AssignFailure::Refused
            };
            (format!("{:?}: {}", e.code, e.message), failure)
        }
        Ok(other) => (
            format!("unexpected answer {other:?}"),
            AssignFailure::Refused,
        ),
        Err((e, true)) => (e, AssignFailure::Unreachable),
        Err((e, false)) => (e, AssignFailure::Refused),
    };
    Some(Event::AssignFailed {
        key: key.clone(),
        node,
        error,
        failure,
    })
}

/// Reads back and decodes a finished stage's outputs; the tasks whose outputs cannot be
/// read (every holder gone, or a copy unreadable) are listed, to be run again.
async fn read_outputs(
    chunks: &crate::services::chunks::Chunks,
    job: &meshml_protocol::JobId,
    wanted: Vec<(usize, meshml_protocol::ChunkId, Vec<u64>)>,
) -> Result<Vec<(usize, meshml_models::plan::TaskOutput)>, LostOutputs> {
    let mut out = Vec::with_capacity(wanted.len());
    let mut lost = LostOutputs::default();
    for (i, id, holders) in wanted {
        let bytes = match chunks.chunk_from(id, &holders).await {
            Ok((b, _)) => b,
            Err(why) => {
                lost.tasks.push(i);
                lost.why = format!("an output of job {job} is unreachable: {why}");
                continue;
            }
        };
        // Decoding a batch of trees takes a while: not on the driver's thread.
        let decoded = tokio::task::spawn_blocking(move || {
            rmp_serde::from_slice::<meshml_models::plan::TaskOutput>(&bytes)
        })
        .await;
        match decoded {
            Ok(Ok(o)) => out.push((i, o)),
            Ok(Err(e)) => {
                lost.tasks.push(i);
                lost.why = format!("a task output is unreadable: {e}");
            }
            Err(e) => {
                lost.tasks.push(i);
                lost.why = e.to_string();
            }
        }
    }
    if lost.tasks.is_empty() {
        Ok(out)
    } else {
        Err(lost)
    }
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
