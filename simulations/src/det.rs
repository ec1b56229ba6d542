//! Deterministic mode: meshml's own job board and scheduler, driven over a simulated network
//! in virtual time with Raft's election and commit rules, from one seed.
//!
//! Every node runs the pieces the real node runs, with no sockets and no wall clock:
//! - the driver: the production [`Board`] (with its [`meshml_node::driver::scheduler::Scheduler`]),
//!   created by each new leader and fed the same events the driver actor feeds it (ticks,
//!   live members, jobs recorded in the replicated state, workers' reports, the outcomes of
//!   its effects). Its effects are carried out here: assignments and output fetches travel
//!   as messages, proposals are appended to the leader's log and answered when committed;
//! - the replicated state: each node applies committed entries to the production
//!   [`ClusterState`]; a new leader picks jobs up only once it has applied an entry of its
//!   own term, as the real driver does, so its board resumes from every completion
//!   committed before it;
//! - election: Raft's leader election (terms, one vote per term, randomised timeouts, a
//!   vote only for a candidate whose log is at least as up to date, a leader steps down
//!   when it has not heard from a quorum for [`Timing::quorum_silence_us`], as the real
//!   driver stops driving). The real node gets this from openraft; here it is a model of
//!   its rules, so that thousands of seeded histories run in seconds;
//! - the workers: the production [`TermGuard`] refuses assignments from a deposed driver;
//!   tasks run the models crate's own `run_task` on bundled iris (outputs are memoised:
//!   a task's output depends on the task alone), keep outputs that carry a model in a store
//!   that survives a crash, and report to the node they know leads, again until acknowledged.
//!
//! The job is a grid search with 5-fold cross-validation and a refit of the best candidate
//! (two stages: the folds' scores, then the refit's model, which is copied to the driver
//! and read back at the end), or with [`DetConfig::data_parallel`] a data-parallel fit
//! (`standard_scaler+logistic_regression`) over iris in 10 chunks of 15 rows, each held by
//! two nodes: the driver runs the production [`meshml_node::driver::rounds::Rounds`] engine
//! inside its board, workers compute each chunk's partial with the models crate's own
//! `compute` and answer after 1-4 ms, and the board's checkpoints go through the log, so a
//! new driver resumes the fit from the last committed one; the final model must be the
//! fault-free run's, bit for bit. Faults (crashes, restarts, partitions, loss) come on a
//! timeline; [`run`] returns a [`DetReport`] with the timeline of events, the committed task
//! results and the invariants that were violated, if any. The same [`DetConfig`] gives the
//! same report.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use meshml_models::plan::{run_task, DataSummary, JobKind, JobSpec, Task, TaskOutput};
use meshml_models::{Dataset, Estimator};
use meshml_node::driver::board::{
    AssignFailure, Board, Effect, Event, JobData, LostOutputs, Member, PlantedBug, Report,
};
use meshml_node::driver::inbox::TermGuard;
use meshml_node::driver::rounds::{Answer, Refusal, Trained};
use meshml_node::driver::scheduler::TaskKey;
use meshml_node::job::{JobRequest, JobSummary, TaskDone, TaskSpec};
use meshml_protocol::{ChunkId, JobId, TaskState};
use meshml_storage::raft::{ClusterCommand, ClusterState, JobRecord, JobState};
use serde::Serialize;

use crate::net::{LinkConfig, SimNet};

/// Timers, in virtual microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Timing {
    /// A leader's heartbeat period.
    pub heartbeat_us: u64,
    /// Election timeouts are drawn from `[min, 2 * min)`.
    pub election_min_us: u64,
    /// A leader that has not heard from a quorum for this long steps down.
    pub quorum_silence_us: u64,
    /// A leader gives a node's tasks to others after not hearing from it for this long.
    pub node_timeout_us: u64,
    /// Task durations are drawn from `[min, 4 * min)`.
    pub task_min_us: u64,
    /// A request (an assignment, a fetch) not answered within this has failed.
    pub rpc_timeout_us: u64,
    /// A worker sends an unacknowledged report again after this.
    pub report_retry_us: u64,
    /// The driver's tick (live members, jobs in the replicated state).
    pub tick_us: u64,
}

impl Default for Timing {
    /// Heartbeat 50 ms, elections 150-300 ms, quorum silence 500 ms, node timeout 400 ms,
    /// tasks 5-20 ms, requests answered within 100 ms, reports sent again every 300 ms (as
    /// the real worker does), a 100 ms tick (as the real driver's).
    fn default() -> Self {
        Self {
            heartbeat_us: 50_000,
            election_min_us: 150_000,
            quorum_silence_us: 500_000,
            node_timeout_us: 400_000,
            task_min_us: 5_000,
            rpc_timeout_us: 100_000,
            report_retry_us: 300_000,
            tick_us: 100_000,
        }
    }
}

/// A fault, at a virtual time.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DetFault {
    /// The node stops (its running tasks and in-flight messages are lost; its Raft term,
    /// vote, log and stored outputs survive, as on disk).
    Crash(usize),
    /// Whichever node leads at that moment stops.
    CrashLeader,
    /// Whichever node leads at that moment is cut off from all others.
    IsolateLeader,
    /// A stopped node starts again.
    Restart(usize),
    /// The nodes listed are cut off from the others (both directions).
    Partition(Vec<usize>),
    /// Every link works again.
    Heal,
    /// Every link loses this share of messages from now on.
    Loss(f64),
}

/// One deterministic run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetConfig {
    /// Nodes.
    pub nodes: usize,
    /// Worker slots per node.
    pub slots: usize,
    /// Cross-validation tasks in the job (rounded up to a multiple of its 5 folds); the
    /// refit of the best candidate comes after them.
    pub tasks: usize,
    /// The seed of every random choice.
    pub seed: u64,
    /// Message delay and loss at the start.
    pub link: LinkConfig,
    /// Timers.
    pub timing: Timing,
    /// Attempts per task before the board fails the job.
    pub max_attempts: u32,
    /// Faults, by virtual time in microseconds.
    pub faults: Vec<(u64, DetFault)>,
    /// The run stops here even if the job has not finished.
    pub horizon_us: u64,
    /// Raft's vote rule (a vote only for a candidate whose log is at least as up to date).
    /// Turned off only to show that the checker catches what follows: committed entries
    /// missing from a later leader's log.
    pub vote_rule: bool,
    /// A bug planted in every leader's board, only to show that the checker catches it.
    pub planted: Option<PlantedBug>,
    /// The job is a data-parallel fit instead of a grid search (`tasks` is then unused).
    pub data_parallel: bool,
}

/// Folds of the simulated job's cross-validation.
const FOLDS: usize = 5;

impl DetConfig {
    /// `nodes` nodes with 2 slots each, a job of about `tasks` tasks, no faults, up to 20
    /// virtual seconds.
    pub fn new(nodes: usize, tasks: usize, seed: u64) -> Self {
        Self {
            nodes,
            slots: 2,
            tasks,
            seed,
            link: LinkConfig::default(),
            timing: Timing::default(),
            max_attempts: 20,
            faults: Vec::new(),
            horizon_us: 20_000_000,
            vote_rule: true,
            planted: None,
            data_parallel: false,
        }
    }

    /// `nodes` nodes running the data-parallel fit, no faults.
    pub fn data_parallel(nodes: usize, seed: u64) -> Self {
        Self {
            data_parallel: true,
            ..Self::new(nodes, 0, seed)
        }
    }

    /// Candidates of the grid search.
    fn candidates(&self) -> usize {
        self.tasks.div_ceil(FOLDS).max(1)
    }

    /// Every task of the job: the folds of every candidate, then the refit (none for a
    /// data-parallel fit, which runs passes, not tasks).
    pub fn total_tasks(&self) -> usize {
        if self.data_parallel {
            0
        } else {
            self.candidates() * FOLDS + 1
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetReport {
    /// Events in virtual time (microseconds): elections, faults, node losses, retries.
    pub events: Vec<(u64, String)>,
    /// The leader of each term.
    pub leaders: BTreeMap<u64, usize>,
    /// Committed task results: each task's score (the refit, which has none, as NaN's
    /// absence: `None`).
    pub results: BTreeMap<String, Option<f64>>,
    /// The job's cross-validation table, once it succeeded.
    pub cv: Option<String>,
    /// When the job's success was committed.
    pub finished_us: Option<u64>,
    /// Assignments beyond each task's first.
    pub retries: u64,
    /// Assignments refused by a worker as coming from a stale term.
    pub stale_refused: u64,
    /// Why the job failed, if it did.
    pub abandoned: Vec<String>,
    /// From each leader crash to the next leader's election.
    pub failovers_us: Vec<u64>,
    /// Messages lost to loss or cuts.
    pub dropped: u64,
    /// Broken invariants, empty when all held.
    pub violations: Vec<String>,
    /// A data-parallel fit: requests answered by members, and a hash of the registered
    /// model's MessagePack (the same hash is the same model, bit for bit).
    pub answers: u64,
    /// See `answers`.
    pub model: Option<u64>,
}

/// The job every run submits.
const JOB: &str = "det-job";

/// One entry of the replicated log: a change, or a new leader's no-op (`None`).
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    term: u64,
    cmd: Option<ClusterCommand>,
}

#[derive(Debug, Clone)]
enum Msg {
    Vote {
        term: u64,
        last_term: u64,
        len: usize,
    },
    VoteReply {
        term: u64,
        granted: bool,
    },
    Beat {
        term: u64,
        log: Vec<Entry>,
        commit: usize,
    },
    BeatReply {
        term: u64,
        len: usize,
    },
    Assign {
        term: u64,
        key: TaskKey,
        spec: Box<TaskSpec>,
    },
    Accepted {
        term: u64,
        key: TaskKey,
    },
    Refused {
        term: u64,
        key: TaskKey,
        error: String,
    },
    /// A worker's report.
    Done {
        key: TaskKey,
        done: TaskDone,
    },
    DoneAck {
        key: TaskKey,
    },
    Fetch {
        request: u64,
        chunk: ChunkId,
    },
    Fetched {
        request: u64,
        bytes: Option<Arc<Vec<u8>>>,
    },
    /// A data-parallel pass over chunks (the pass as MessagePack).
    Train {
        term: u64,
        job: JobId,
        request: u64,
        chunks: Vec<(u32, ChunkId)>,
        spec: Arc<Vec<u8>>,
    },
    Trained {
        term: u64,
        job: JobId,
        request: u64,
        outcome: Answer,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Follower,
    Candidate,
    Leader,
}

/// What a fetch in flight is for.
#[derive(Debug, Clone)]
enum Fetch {
    /// An output's second copy (from the worker that ran the task).
    Copy { key: TaskKey, chunk: ChunkId },
    /// An output a finished stage's reduce step reads.
    Read { job: JobId, stage: u32 },
}

/// A finished stage's outputs being read back, one after another, each from its holders in
/// turn.
struct Reading {
    items: Vec<(usize, ChunkId, Vec<u64>)>,
    /// The item being read, and the holders tried for it.
    at: usize,
    tried: usize,
    got: Vec<(usize, TaskOutput)>,
    lost: LostOutputs,
    started_us: u64,
}

/// The driver state of a leader.
struct Lead {
    board: Board,
    /// Log length each node has acknowledged in this term.
    matched: BTreeMap<usize, usize>,
    /// When each node last answered.
    heard: BTreeMap<usize, u64>,
    next_beat: u64,
    next_tick: u64,
    /// The log index (1-based) of this term's no-op: jobs are picked up once it is applied.
    noop: usize,
    /// Assignments waiting for their acknowledgement: deadline and node.
    pending: BTreeMap<TaskKey, (u64, usize)>,
    /// Proposals by the log length that commits them.
    proposals: BTreeMap<usize, u64>,
    /// Fetches in flight: deadline, holder asked, purpose.
    fetches: BTreeMap<u64, (u64, usize, Fetch)>,
    next_fetch: u64,
    readings: BTreeMap<(JobId, u32), Reading>,
    /// Events due later (registration).
    later: Vec<(u64, Event)>,
    /// Data-parallel requests in flight: deadline and member.
    trains: BTreeMap<(JobId, u64), (u64, usize)>,
}

impl Lead {
    fn wake(&self) -> u64 {
        let mut t = self.next_beat.min(self.next_tick);
        for (d, _) in self.pending.values() {
            t = t.min(*d);
        }
        for (d, ..) in self.fetches.values() {
            t = t.min(*d);
        }
        for (d, _) in &self.later {
            t = t.min(*d);
        }
        for (d, _) in self.trains.values() {
            t = t.min(*d);
        }
        t
    }
}

/// A task running on a worker: finish time, task, what to run, and the assigning term.
struct Work {
    finish: u64,
    key: TaskKey,
    spec: Box<TaskSpec>,
}

struct Node {
    up: bool,
    term: u64,
    voted: Option<usize>,
    role: Role,
    votes: BTreeSet<usize>,
    log: Vec<Entry>,
    commit: usize,
    /// Entries applied to `state`.
    applied: usize,
    state: ClusterState,
    /// The leader this node heard from last.
    leader: Option<usize>,
    deadline: u64,
    lead: Option<Lead>,
    guard: TermGuard,
    work: Vec<Work>,
    /// Finished tasks whose report is not acknowledged yet: (next send, task, outcome).
    reports: Vec<(u64, TaskKey, TaskDone)>,
    /// Outputs kept (they survive a crash, as on disk).
    store: BTreeMap<ChunkId, Arc<Vec<u8>>>,
    /// Restarts so far (the real node announces its start time).
    incarnation: u64,
    /// Answers to data-parallel passes, sent when computed: (when, to, answer).
    outbox: Vec<(u64, usize, Msg)>,
}

impl Node {
    fn last_term(&self) -> u64 {
        self.log.last().map_or(0, |e| e.term)
    }

    /// Applies the committed entries not applied yet; returns each one's index (1-based
    /// log length) and response.
    fn apply_committed(&mut self) -> Vec<(usize, meshml_storage::raft::ClusterResponse)> {
        let mut out = Vec::new();
        while self.applied < self.commit {
            let e = &self.log[self.applied];
            self.applied += 1;
            if let Some(cmd) = &e.cmd {
                out.push((self.applied, self.state.apply(cmd)));
            }
        }
        out
    }
}

/// Bundled iris, the job's data.
fn iris() -> &'static Dataset {
    static IRIS: OnceLock<Dataset> = OnceLock::new();
    IRIS.get_or_init(meshml_models::io::iris)
}

/// Task outputs by the task's encoding.
type OutputCache = Mutex<HashMap<Vec<u8>, Arc<Vec<u8>>>>;

/// A task's output (MessagePack), computed once per process: it depends on the task alone.
fn output_of(task: &Task) -> Arc<Vec<u8>> {
    static OUTPUTS: OnceLock<OutputCache> = OnceLock::new();
    let key = rmp_serde::to_vec_named(task).expect("tasks encode");
    let cache = OUTPUTS.get_or_init(Default::default);
    if let Some(o) = cache.lock().expect("output cache").get(&key) {
        return o.clone();
    }
    let out = match run_task(task, iris()) {
        // Fit times are wall-clock: left out, so the same task gives the same bytes.
        Ok(o) => TaskOutput { fit_ms: 0, ..o },
        Err(e) => panic!(
            "the simulated job's task {}.{} failed: {e}",
            task.stage, task.index
        ),
    };
    let bytes = Arc::new(rmp_serde::to_vec_named(&out).expect("outputs encode"));
    cache
        .lock()
        .expect("output cache")
        .insert(key, bytes.clone());
    bytes
}

/// Chunks of the data-parallel fit.
const DP_CHUNKS: usize = 10;

/// Iris in [`DP_CHUNKS`] chunks (row `i` in chunk `i % 10`, so each holds every class).
fn dp_chunks() -> &'static Vec<Dataset> {
    static CHUNKS: OnceLock<Vec<Dataset>> = OnceLock::new();
    CHUNKS.get_or_init(|| {
        (0..DP_CHUNKS)
            .map(|c| {
                let rows: Vec<usize> = (c..iris().n_samples()).step_by(DP_CHUNKS).collect();
                iris().select(&rows).expect("iris rows")
            })
            .collect()
    })
}

/// The estimator of the data-parallel fit.
fn dp_estimator() -> Estimator {
    Estimator::from_name("standard_scaler+logistic_regression").expect("a known estimator")
}

/// A worker's answer to a pass over `chunks`: each chunk's partial.
fn train(spec: &[u8], chunks: &[(u32, ChunkId)]) -> Answer {
    let pass: meshml_models::parallel::Pass =
        rmp_serde::from_slice(spec).map_err(|e| Refusal::Fatal(e.to_string()))?;
    let mut partials = Vec::with_capacity(chunks.len());
    for &(i, _) in chunks {
        let chunk = dp_chunks()
            .get(i as usize)
            .ok_or_else(|| Refusal::Fatal(format!("no chunk {i}")))?;
        let part = meshml_models::parallel::compute(&pass, chunk.clone())
            .map_err(|e| Refusal::Fatal(e.to_string()))?;
        partials.push((i, rmp_serde::to_vec_named(&part).expect("partials encode")));
    }
    Ok(Trained { partials, ms: 1 })
}

/// The job: a grid search of Gaussian naive Bayes over `var_smoothing` on iris (or the
/// data-parallel fit).
fn job_request(cfg: &DetConfig) -> JobRequest {
    if cfg.data_parallel {
        return JobRequest {
            dataset: "iris".into(),
            job: JobSpec {
                kind: JobKind::Fit {
                    estimator: dp_estimator(),
                },
                seed: 7,
            },
            name: Some("det".into()),
            test_dataset: None,
            data_parallel: Some(true),
            mode: None,
        };
    }
    let values = (0..cfg.candidates())
        .map(|i| format!("{}e-{}", 1 + i % 9, 1 + i / 9))
        .collect();
    JobRequest {
        dataset: "iris".into(),
        job: JobSpec {
            kind: JobKind::GridSearch {
                estimator: Estimator::from_name("gaussian_nb").expect("a known estimator"),
                grid: vec![("var_smoothing".into(), values)],
                cv: FOLDS as u32,
                refit: true,
            },
            seed: 7,
        },
        name: Some("det".into()),
        test_dataset: None,
        data_parallel: None,
        mode: None,
    }
}

struct Sim {
    cfg: DetConfig,
    net: SimNet<Msg>,
    nodes: Vec<Node>,
    report: DetReport,
    /// Committed entries by index (term), for the leader-completeness check.
    committed: BTreeMap<usize, u64>,
    /// The state the committed entries make, applied once each (the checker's truth).
    truth: ClusterState,
    truth_applied: usize,
    /// When the leader crashed, until a new one is elected.
    leaderless_since: Option<u64>,
    summary: DataSummary,
}

impl Sim {
    fn now(&self) -> u64 {
        self.net.now_us()
    }

    fn event(&mut self, what: String) {
        let t = self.now();
        self.report.events.push((t, what));
    }

    fn majority(&self) -> usize {
        self.cfg.nodes / 2 + 1
    }

    fn election_deadline(&mut self) -> u64 {
        let min = self.cfg.timing.election_min_us.max(1);
        self.now() + min + self.net.random() % min
    }

    fn send_all(&mut self, from: usize, msg: &Msg) {
        for to in (0..self.cfg.nodes).filter(|&to| to != from) {
            self.net.send(from, to, msg.clone());
        }
    }

    fn become_follower(&mut self, i: usize, term: u64) {
        let n = &mut self.nodes[i];
        if term > n.term {
            n.term = term;
            n.voted = None;
        }
        if n.role == Role::Leader {
            let t = n.term;
            self.event(format!("node {i} stops leading (term {t})"));
        }
        let n = &mut self.nodes[i];
        n.role = Role::Follower;
        n.lead = None;
    }

    fn start_election(&mut self, i: usize) {
        let deadline = self.election_deadline();
        let n = &mut self.nodes[i];
        n.term += 1;
        n.role = Role::Candidate;
        n.voted = Some(i);
        n.votes = BTreeSet::from([i]);
        n.lead = None;
        n.deadline = deadline;
        let msg = Msg::Vote {
            term: n.term,
            last_term: n.last_term(),
            len: n.log.len(),
        };
        if self.majority() == 1 {
            self.become_leader(i);
        } else {
            self.send_all(i, &msg);
        }
    }

    fn become_leader(&mut self, i: usize) {
        let now = self.now();
        let term = self.nodes[i].term;
        if let Some(&other) = self.report.leaders.get(&term) {
            if other != i {
                self.report
                    .violations
                    .push(format!("two leaders in term {term}: {other} and {i}"));
            }
        }
        self.report.leaders.insert(term, i);
        if let Some(since) = self.leaderless_since.take() {
            self.report.failovers_us.push(now - since);
        }
        // Leader completeness: every committed entry is in the new leader's log.
        for (&idx, &t) in &self.committed {
            if self.nodes[i].log.get(idx - 1).map(|e| e.term) != Some(t) {
                self.report.violations.push(format!(
                    "term {term} leader {i} lacks committed task log entry {idx}"
                ));
            }
        }
        let mut board = Board::new(term, i as u64).with_max_attempts(self.cfg.max_attempts);
        if let Some(bug) = self.cfg.planted {
            board.plant(bug);
        }
        let n = &mut self.nodes[i];
        n.role = Role::Leader;
        n.leader = Some(i);
        n.log.push(Entry { term, cmd: None });
        let noop = n.log.len();
        n.lead = Some(Lead {
            board,
            matched: BTreeMap::from([(i, n.log.len())]),
            heard: (0..self.cfg.nodes).map(|k| (k, now)).collect(),
            next_beat: now,
            next_tick: now,
            noop,
            pending: BTreeMap::new(),
            proposals: BTreeMap::new(),
            fetches: BTreeMap::new(),
            next_fetch: 1,
            readings: BTreeMap::new(),
            later: Vec::new(),
            trains: BTreeMap::new(),
        });
        let job = self.truth.jobs.get(JOB);
        let done = job.map_or(0, |j| j.progress().0);
        self.event(if self.cfg.data_parallel {
            // The committed checkpoint it will resume from, if any.
            let passes = job
                .and_then(|j| j.checkpoint.as_ref())
                .and_then(|c| {
                    rmp_serde::from_slice::<meshml_models::parallel::DataParallelJob>(&c.state).ok()
                })
                .map_or(0, |f| f.passes());
            format!("node {i} elected driver in term {term} (checkpoint after {passes} passes)")
        } else {
            format!(
                "node {i} elected driver in term {term} ({done} of {} tasks already done)",
                self.cfg.total_tasks()
            )
        });
        self.drive(i);
    }

    /// Hands `event` to leader `i`'s board and carries out what it asks.
    fn feed(&mut self, i: usize, event: Event) {
        let Some(lead) = self.nodes[i].lead.as_mut() else {
            return;
        };
        let now_ms = self.net.now_us() / 1000;
        let effects = lead.board.step(now_ms, event);
        for e in effects {
            self.carry_out(i, e);
        }
    }

    fn carry_out(&mut self, i: usize, effect: Effect) {
        let now = self.now();
        let term = self.nodes[i].term;
        match effect {
            Effect::Assign {
                key,
                node,
                attempt,
                spec,
            } => {
                self.check_not_rerun(i, &key);
                if attempt > 1 {
                    self.report.retries += 1;
                    self.event(format!(
                        "task {} retried on node {node} (attempt {attempt})",
                        key.task
                    ));
                }
                let deadline = now + self.cfg.timing.rpc_timeout_us;
                if let Some(lead) = self.nodes[i].lead.as_mut() {
                    lead.pending.insert(key.clone(), (deadline, node as usize));
                }
                let msg = Msg::Assign {
                    term,
                    key,
                    spec: Box::new(spec),
                };
                self.net.send(i, node as usize, msg);
            }
            Effect::Propose { proposal, command } => {
                let n = &mut self.nodes[i];
                n.log.push(Entry {
                    term,
                    cmd: Some(command),
                });
                let len = n.log.len();
                if let Some(lead) = n.lead.as_mut() {
                    lead.proposals.insert(len, proposal);
                    lead.matched.insert(i, len);
                }
                self.advance_commit(i);
                self.replicate(i);
            }
            Effect::CopyOutput { key, output, from } => {
                self.fetch(i, from as usize, Fetch::Copy { key, chunk: output });
            }
            Effect::ReadOutputs { job, stage, wanted } => {
                if let Some(lead) = self.nodes[i].lead.as_mut() {
                    lead.readings.insert(
                        (job.clone(), stage),
                        Reading {
                            items: wanted,
                            at: 0,
                            tried: 0,
                            got: Vec::new(),
                            lost: LostOutputs::default(),
                            started_us: now,
                        },
                    );
                }
                self.read_next(i, job, stage);
            }
            Effect::Register {
                job,
                request,
                result,
                ..
            } => {
                if let Some(model) = &result.model {
                    use std::hash::{Hash, Hasher};
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    rmp_serde::to_vec_named(model)
                        .expect("models encode")
                        .hash(&mut h);
                    self.report.model = Some(h.finish());
                }
                // Building and storing the artifact is the registry's I/O, not the board's:
                // here the summary comes back a moment later.
                let summary = JobSummary {
                    tasks: result.tasks,
                    cv: result.cv,
                    model: Some(format!("{}@1", request.model_name())),
                    test: None,
                    end_ms: BTreeMap::new(),
                    warnings: result.warnings,
                    passes: None,
                    losses: Vec::new(),
                };
                let at = now + 1_000;
                if let Some(lead) = self.nodes[i].lead.as_mut() {
                    lead.later.push((
                        at,
                        Event::Registered {
                            job,
                            outcome: Ok(Box::new(summary)),
                        },
                    ));
                }
            }
            Effect::Release { .. } => {}
            Effect::Train {
                job,
                node,
                request,
                chunks,
                spec,
                ..
            } => {
                let deadline = now + self.cfg.timing.rpc_timeout_us;
                if let Some(lead) = self.nodes[i].lead.as_mut() {
                    lead.trains
                        .insert((job.clone(), request), (deadline, node as usize));
                }
                let msg = Msg::Train {
                    term,
                    job,
                    request,
                    chunks,
                    spec,
                };
                self.net.send(i, node as usize, msg);
            }
        }
    }

    /// The invariant a resuming driver keeps: the driver of the newest term does not run a
    /// task whose success is committed again while its output can still be read (a task
    /// without payload needs none). A deposed driver that has not noticed yet may still
    /// assign work: workers that have seen the newer term refuse it, and nothing it does
    /// can commit.
    fn check_not_rerun(&mut self, i: usize, key: &TaskKey) {
        let term = self.nodes[i].term;
        if self.report.leaders.keys().next_back() != Some(&term) {
            return;
        }
        let Some(record) = self
            .truth
            .jobs
            .get(key.job.as_str())
            .and_then(|j| j.tasks.get(&key.task))
            .filter(|t| t.state == TaskState::Succeeded)
        else {
            return;
        };
        let payload = record.score.is_none();
        let readable = record.holders.iter().any(|&h| {
            let h = h as usize;
            h < self.nodes.len() && self.nodes[h].up && (h == i || !self.net.is_cut(h, i))
        });
        if !payload || readable {
            let v = format!(
                "task {} run again after its completion was committed (driver {i})",
                key.task
            );
            if !self.report.violations.contains(&v) {
                self.report.violations.push(v);
            }
        }
    }

    fn fetch(&mut self, i: usize, holder: usize, why: Fetch) {
        let chunk = match &why {
            Fetch::Copy { chunk, .. } => *chunk,
            Fetch::Read { job, stage } => {
                let Some(r) = self.nodes[i]
                    .lead
                    .as_ref()
                    .and_then(|l| l.readings.get(&(job.clone(), *stage)))
                else {
                    return;
                };
                r.items[r.at].1
            }
        };
        let deadline = self.now() + self.cfg.timing.rpc_timeout_us;
        let Some(lead) = self.nodes[i].lead.as_mut() else {
            return;
        };
        let request = lead.next_fetch;
        lead.next_fetch += 1;
        lead.fetches.insert(request, (deadline, holder, why));
        self.net.send(i, holder, Msg::Fetch { request, chunk });
    }

    /// Reads the next output of a stage: from this node's store, else from its holders in
    /// turn; once all are read (or lost) the board hears of it.
    fn read_next(&mut self, i: usize, job: JobId, stage: u32) {
        loop {
            let n = &mut self.nodes[i];
            let Some(lead) = n.lead.as_mut() else {
                return;
            };
            let Some(r) = lead.readings.get_mut(&(job.clone(), stage)) else {
                return;
            };
            if r.at >= r.items.len() {
                let r = lead
                    .readings
                    .remove(&(job.clone(), stage))
                    .expect("reading");
                let ms = (self.net.now_us() - r.started_us) / 1000;
                let outcome = if r.lost.tasks.is_empty() {
                    Ok(r.got)
                } else {
                    Err(r.lost)
                };
                self.feed(
                    i,
                    Event::OutputsRead {
                        job,
                        stage,
                        outcome,
                        ms,
                    },
                );
                return;
            }
            let (index, chunk, holders) = r.items[r.at].clone();
            if r.tried == 0 {
                if let Some(bytes) = n.store.get(&chunk) {
                    let r = n
                        .lead
                        .as_mut()
                        .and_then(|l| l.readings.get_mut(&(job.clone(), stage)))
                        .expect("reading");
                    match rmp_serde::from_slice::<TaskOutput>(bytes) {
                        Ok(o) => r.got.push((index, o)),
                        Err(e) => {
                            r.lost.tasks.push(index);
                            r.lost.why = e.to_string();
                        }
                    }
                    r.at += 1;
                    continue;
                }
            }
            let others: Vec<usize> = holders
                .iter()
                .map(|h| *h as usize)
                .filter(|h| *h != i && *h < self.cfg.nodes)
                .collect();
            if r.tried < others.len() {
                let holder = others[r.tried];
                r.tried += 1;
                self.fetch(
                    i,
                    holder,
                    Fetch::Read {
                        job: job.clone(),
                        stage,
                    },
                );
                return;
            }
            r.lost.tasks.push(index);
            r.lost.why = format!("no holder of the output of task {index} answered");
            r.at += 1;
            r.tried = 0;
        }
    }

    fn fetched(&mut self, i: usize, request: u64, bytes: Option<Arc<Vec<u8>>>) {
        let Some((_, _, why)) = self.nodes[i]
            .lead
            .as_mut()
            .and_then(|l| l.fetches.remove(&request))
        else {
            return;
        };
        match why {
            Fetch::Copy { key, chunk } => {
                let outcome = match bytes {
                    Some(b) => {
                        self.nodes[i].store.insert(chunk, b);
                        Ok(())
                    }
                    None => Err(meshml_node::error::MeshError::unavailable(
                        "the output could not be fetched",
                    )),
                };
                self.feed(i, Event::OutputCopied { key, outcome });
            }
            Fetch::Read { job, stage } => {
                let Some(r) = self.nodes[i]
                    .lead
                    .as_mut()
                    .and_then(|l| l.readings.get_mut(&(job.clone(), stage)))
                else {
                    return;
                };
                if let Some(b) = bytes {
                    let index = r.items[r.at].0;
                    match rmp_serde::from_slice::<TaskOutput>(&b) {
                        Ok(o) => r.got.push((index, o)),
                        Err(e) => {
                            r.lost.tasks.push(index);
                            r.lost.why = e.to_string();
                        }
                    }
                    r.at += 1;
                    r.tried = 0;
                }
                self.read_next(i, job, stage);
            }
        }
    }

    /// Sends the leader's log to every follower (Raft's append entries).
    fn replicate(&mut self, i: usize) {
        let n = &self.nodes[i];
        let msg = Msg::Beat {
            term: n.term,
            log: n.log.clone(),
            commit: n.commit,
        };
        self.send_all(i, &msg);
    }

    /// The leader's round: steps down after a quorum's silence, then time passes for its
    /// board (expired requests, the tick with members and jobs, events due), and heartbeats.
    fn drive(&mut self, i: usize) {
        let now = self.now();
        let (timing, nodes) = (self.cfg.timing, self.cfg.nodes);
        let Some(lead) = self.nodes[i].lead.as_mut() else {
            return;
        };
        let heard_recently = lead
            .heard
            .iter()
            .filter(|(&k, &t)| k == i || now.saturating_sub(t) < timing.quorum_silence_us)
            .count();
        if heard_recently < nodes / 2 + 1 {
            let term = self.nodes[i].term;
            self.event(format!(
                "node {i} has not heard from a quorum: stops driving"
            ));
            self.become_follower(i, term);
            let d = self.election_deadline();
            self.nodes[i].deadline = d;
            return;
        }
        // Assignments not acknowledged in time: the member could not be reached.
        let expired: Vec<(TaskKey, usize)> = lead
            .pending
            .iter()
            .filter(|(_, (t, _))| *t <= now)
            .map(|(k, (_, n))| (k.clone(), *n))
            .collect();
        for (key, _) in &expired {
            lead.pending.remove(key);
        }
        let lost_trains: Vec<(JobId, u64, usize)> = lead
            .trains
            .iter()
            .filter(|(_, (t, _))| *t <= now)
            .map(|((j, r), (_, n))| (j.clone(), *r, *n))
            .collect();
        for (j, r, _) in &lost_trains {
            lead.trains.remove(&(j.clone(), *r));
        }
        let timed_out: Vec<u64> = lead
            .fetches
            .iter()
            .filter(|(_, (t, ..))| *t <= now)
            .map(|(r, _)| *r)
            .collect();
        let due: Vec<Event> = {
            let (due, later): (Vec<_>, Vec<_>) = lead.later.drain(..).partition(|(t, _)| *t <= now);
            lead.later = later;
            due.into_iter().map(|(_, e)| e).collect()
        };
        let tick = now >= lead.next_tick;
        if tick {
            lead.next_tick = now + timing.tick_us;
        }
        let beat = now >= lead.next_beat;
        if beat {
            lead.next_beat = now + timing.heartbeat_us;
        }
        for (key, node) in expired {
            self.feed(
                i,
                Event::AssignFailed {
                    key,
                    node: node as u64,
                    error: "no answer in time".into(),
                    failure: AssignFailure::Unreachable,
                },
            );
        }
        for r in timed_out {
            self.fetched(i, r, None);
        }
        for (job, request, node) in lost_trains {
            self.feed(
                i,
                Event::Trained {
                    job,
                    node: node as u64,
                    request,
                    outcome: Err(Refusal::Retry("no answer in time".into())),
                },
            );
        }
        for e in due {
            self.feed(i, e);
        }
        if tick {
            for e in self.observe(i) {
                self.feed(i, e);
            }
        }
        if beat && self.nodes[i].lead.is_some() {
            self.replicate(i);
        }
    }

    /// What the driver's tick brings its board (as [`meshml_node::driver`] does).
    fn observe(&mut self, i: usize) -> Vec<Event> {
        let now = self.now();
        let timing = self.cfg.timing;
        let n = &self.nodes[i];
        let Some(lead) = n.lead.as_ref() else {
            return Vec::new();
        };
        let live: Vec<Member> = lead
            .heard
            .iter()
            .filter(|(&k, &t)| k == i || now.saturating_sub(t) < timing.node_timeout_us)
            .map(|(&k, _)| Member {
                node: k as u64,
                slots: self.cfg.slots,
                incarnation: self.nodes[k].incarnation + 1,
            })
            .collect();
        let mut events = vec![Event::Tick, Event::Members { live }];
        // Jobs are picked up once this term's no-op is applied.
        let caught_up = n.applied >= lead.noop;
        for (id, record) in &n.state.jobs {
            if caught_up && record.state == JobState::Running && !lead.board.knows(id) {
                events.push(Event::JobRecorded {
                    id: id.clone(),
                    record: Box::new(record.clone()),
                    data: Some(Box::new(self.job_data())),
                });
            }
        }
        for id in lead.board.jobs() {
            if n.state
                .jobs
                .get(id)
                .is_none_or(|j| j.state != JobState::Running)
            {
                events.push(Event::JobEnded { id: id.clone() });
            }
        }
        events
    }

    /// The job's data as the driver reads it from the catalogue: for a data-parallel fit,
    /// its chunks (chunk `c` on nodes `c` and `c + 1`, modulo the nodes) and schema.
    fn job_data(&self) -> JobData {
        let n = self.cfg.nodes as u64;
        let (chunks, schema) = if self.cfg.data_parallel {
            let chunks = (0..DP_CHUNKS as u64)
                .map(|c| {
                    let mut holders = vec![c % n, (c + 1) % n];
                    holders.dedup();
                    (ChunkId::from_bytes([c as u8; 32]), holders)
                })
                .collect();
            (chunks, Some(Box::new(iris().select(&[]).expect("iris"))))
        } else {
            (Vec::new(), None)
        };
        JobData {
            summary: self.summary.clone(),
            prefer: (0..n).collect(),
            chunks,
            schema,
        }
    }

    fn advance_commit(&mut self, i: usize) {
        let majority = self.majority();
        let n = &self.nodes[i];
        let Some(lead) = n.lead.as_ref() else {
            return;
        };
        let mut lens: Vec<usize> = lead.matched.values().copied().collect();
        lens.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&reach) = lens.get(majority - 1) else {
            return;
        };
        // Raft commits an earlier term's entries only through one of its own.
        if reach <= n.commit || n.log[reach - 1].term != n.term {
            return;
        }
        let from = n.commit;
        self.nodes[i].commit = reach;
        for idx in from + 1..=reach {
            let e = self.nodes[i].log[idx - 1].clone();
            match self.committed.insert(idx, e.term) {
                Some(t) if t != e.term => self.report.violations.push(format!(
                    "log entry {idx} committed in terms {t} and {}",
                    e.term
                )),
                _ => {}
            }
            if idx > self.truth_applied {
                self.truth_applied = idx;
                if let Some(cmd) = &e.cmd {
                    self.truth.apply(cmd);
                }
            }
        }
        self.check_finished();
        let applied = self.nodes[i].apply_committed();
        for (idx, response) in applied {
            let proposal = self.nodes[i]
                .lead
                .as_mut()
                .and_then(|l| l.proposals.remove(&idx));
            if let Some(proposal) = proposal {
                self.feed(
                    i,
                    Event::Committed {
                        proposal,
                        outcome: Ok(response),
                    },
                );
            }
        }
    }

    fn check_finished(&mut self) {
        if self.report.finished_us.is_some() || !self.report.abandoned.is_empty() {
            return;
        }
        let Some(job) = self.truth.jobs.get(JOB) else {
            return;
        };
        match job.state {
            JobState::Succeeded => {
                self.report.finished_us = Some(self.net.now_us());
                let summary: Option<JobSummary> = rmp_serde::from_slice(&job.result).ok();
                self.report.cv = summary.and_then(|s| s.cv).map(|cv| cv.table());
                self.event(if self.cfg.data_parallel {
                    format!("job succeeded: {} requests answered", self.report.answers)
                } else {
                    format!(
                        "job succeeded: all {} tasks committed",
                        self.cfg.total_tasks()
                    )
                });
            }
            JobState::Failed | JobState::Cancelled => {
                let why = job.error.clone().unwrap_or_default();
                self.event(format!("job failed: {why}"));
                self.report.abandoned.push(why);
            }
            JobState::Running => {}
        }
    }

    fn deliver(&mut self, from: usize, to: usize, msg: Msg) {
        if !self.nodes[to].up {
            return;
        }
        let term_of = |m: &Msg| match m {
            Msg::Vote { term, .. }
            | Msg::VoteReply { term, .. }
            | Msg::Beat { term, .. }
            | Msg::BeatReply { term, .. } => Some(*term),
            _ => None,
        };
        if let Some(t) = term_of(&msg) {
            if t > self.nodes[to].term {
                self.become_follower(to, t);
            }
        }
        let now = self.now();
        match msg {
            Msg::Vote {
                term,
                last_term,
                len,
            } => {
                let n = &self.nodes[to];
                let up_to_date =
                    !self.cfg.vote_rule || (last_term, len) >= (n.last_term(), n.log.len());
                let granted = term == n.term
                    && n.voted.is_none_or(|v| v == from)
                    && up_to_date
                    && n.role != Role::Leader;
                if granted {
                    let d = self.election_deadline();
                    let n = &mut self.nodes[to];
                    n.voted = Some(from);
                    n.deadline = d;
                }
                let term = self.nodes[to].term;
                self.net.send(to, from, Msg::VoteReply { term, granted });
            }
            Msg::VoteReply { term, granted } => {
                let n = &mut self.nodes[to];
                if granted && term == n.term && n.role == Role::Candidate {
                    n.votes.insert(from);
                    if n.votes.len() > self.cfg.nodes / 2 {
                        self.become_leader(to);
                    }
                }
            }
            Msg::Beat { term, log, commit } => {
                let d = self.election_deadline();
                let n = &mut self.nodes[to];
                if term < n.term {
                    let t = n.term;
                    self.net.send(to, from, Msg::BeatReply { term: t, len: 0 });
                    return;
                }
                if n.role != Role::Follower {
                    self.become_follower(to, term);
                }
                let n = &mut self.nodes[to];
                // Raft's append rule: entries that match the leader's stay (a delayed,
                // shorter copy of the leader's log truncates nothing); from the first
                // conflict on, the leader's entries replace the follower's. Entries applied
                // from a replaced suffix are applied again from scratch.
                let keep = n.log.iter().zip(&log).take_while(|(a, b)| a == b).count();
                let len = log.len();
                if keep < len {
                    if n.applied > keep {
                        n.state = ClusterState::default();
                        n.applied = 0;
                    }
                    n.log.truncate(keep);
                    n.log.extend(log.into_iter().skip(keep));
                }
                n.commit = n.commit.max(commit.min(len));
                n.leader = Some(from);
                n.deadline = d;
                let _ = n.guard.admit(term, n.term);
                n.apply_committed();
                self.net.send(to, from, Msg::BeatReply { term, len });
            }
            Msg::BeatReply { term, len } => {
                let n = &mut self.nodes[to];
                if term != n.term {
                    return;
                }
                if let Some(lead) = n.lead.as_mut() {
                    lead.heard.insert(from, now);
                    lead.matched.insert(from, len);
                    self.advance_commit(to);
                }
            }
            Msg::Train {
                term,
                job,
                request,
                chunks,
                spec,
            } => {
                let n = &self.nodes[to];
                let outcome = match n.guard.admit(term, n.term) {
                    Ok(()) => train(&spec, &chunks),
                    Err(_) => {
                        self.report.stale_refused += 1;
                        Err(Refusal::Deposed)
                    }
                };
                // Computing takes 1-4 ms.
                let min = (self.cfg.timing.task_min_us / 5).max(1);
                let at = now + min + self.net.random() % (3 * min);
                let answer = Msg::Trained {
                    term,
                    job,
                    request,
                    outcome,
                };
                self.nodes[to].outbox.push((at, from, answer));
            }
            Msg::Trained {
                term,
                job,
                request,
                outcome,
            } => {
                let n = &mut self.nodes[to];
                let Some(lead) = n.lead.as_mut().filter(|_| term == n.term) else {
                    return;
                };
                lead.heard.insert(from, now);
                if lead.trains.remove(&(job.clone(), request)).is_some() {
                    if outcome.is_ok() {
                        self.report.answers += 1;
                    }
                    self.feed(
                        to,
                        Event::Trained {
                            job,
                            node: from as u64,
                            request,
                            outcome,
                        },
                    );
                }
            }
            Msg::Assign { term, key, spec } => {
                let n = &self.nodes[to];
                match n.guard.admit(term, n.term) {
                    Ok(()) => {
                        let min = self.cfg.timing.task_min_us.max(1);
                        let finish = now + min + self.net.random() % (3 * min);
                        self.nodes[to].work.push(Work {
                            finish,
                            key: key.clone(),
                            spec,
                        });
                        self.net.send(to, from, Msg::Accepted { term, key });
                    }
                    Err(e) => {
                        self.report.stale_refused += 1;
                        self.event(format!(
                            "node {to} refused task {} from stale term {term}",
                            key.task
                        ));
                        let error = e.message;
                        self.net.send(to, from, Msg::Refused { term, key, error });
                    }
                }
            }
            Msg::Accepted { term, key } => {
                let n = &mut self.nodes[to];
                if let Some(lead) = n.lead.as_mut().filter(|_| term == n.term) {
                    lead.heard.insert(from, now);
                    lead.pending.remove(&key);
                }
            }
            Msg::Refused { term, key, error } => {
                let n = &mut self.nodes[to];
                if let Some(lead) = n.lead.as_mut().filter(|_| term == n.term) {
                    lead.pending.remove(&key);
                    self.feed(
                        to,
                        Event::AssignFailed {
                            key,
                            node: from as u64,
                            error,
                            failure: AssignFailure::Refused,
                        },
                    );
                }
            }
            Msg::Done { key, done } => {
                // Only a driver takes reports (the worker sends again to whoever leads).
                let n = &mut self.nodes[to];
                let Some(lead) = n.lead.as_mut() else {
                    return;
                };
                lead.heard.insert(from, now);
                lead.pending.remove(&key);
                self.net.send(to, from, Msg::DoneAck { key: key.clone() });
                self.feed(
                    to,
                    Event::TaskReported(Box::new(Report {
                        key,
                        from: from as u64,
                        outcome: Ok(done),
                    })),
                );
            }
            Msg::DoneAck { key } => {
                self.nodes[to].reports.retain(|r| r.1 != key);
            }
            Msg::Fetch { request, chunk } => {
                let bytes = self.nodes[to].store.get(&chunk).cloned();
                self.net.send(to, from, Msg::Fetched { request, bytes });
            }
            Msg::Fetched { request, bytes } => {
                if self.nodes[to].lead.is_some() {
                    self.fetched(to, request, bytes);
                }
            }
        }
    }

    /// A task finishes on worker `i`: its output is kept when it carries a payload, and
    /// the report goes out.
    fn finish_work(&mut self, i: usize, t: u64) {
        let n = &mut self.nodes[i];
        let Some(at) = n.work.iter().position(|w| w.finish == t) else {
            return;
        };
        let w = n.work.swap_remove(at);
        let bytes = output_of(&w.spec.task);
        let out: TaskOutput = rmp_serde::from_slice(&bytes).expect("outputs decode");
        let has_payload = out.model.is_some() || out.predictions.is_some();
        let output = meshml_storage::chunk_id(&bytes);
        if has_payload {
            n.store.insert(output, bytes);
        }
        let done = TaskDone {
            output,
            score: out.score,
            has_payload,
            fit_ms: 0,
            warnings: out.warnings.clone(),
        };
        n.reports.push((t, w.key, done));
        self.report_again(i, t);
    }

    /// Sends the answers computed by `t`.
    fn send_due(&mut self, i: usize, t: u64) {
        let n = &mut self.nodes[i];
        let (due, later): (Vec<_>, Vec<_>) = n.outbox.drain(..).partition(|o| o.0 <= t);
        n.outbox = later;
        for (_, to, msg) in due {
            self.net.send(i, to, msg);
        }
    }

    /// Sends the report due at `t` to the node this worker knows leads, and again later
    /// until it is acknowledged.
    fn report_again(&mut self, i: usize, t: u64) {
        let retry = self.cfg.timing.report_retry_us.max(1);
        let n = &mut self.nodes[i];
        let Some(at) = n.reports.iter().position(|r| r.0 == t) else {
            return;
        };
        n.reports[at].0 = t + retry;
        let (_, key, done) = n.reports[at].clone();
        if let Some(to) = n.leader {
            self.net.send(i, to, Msg::Done { key, done });
        }
    }

    fn fault(&mut self, f: DetFault) {
        match f {
            DetFault::Crash(i) => self.crash(i),
            DetFault::CrashLeader => match self.leader() {
                Some(i) => self.crash(i),
                None => self.event("no leader to crash".into()),
            },
            DetFault::IsolateLeader => match self.leader() {
                Some(i) => {
                    self.net.partition(&[i]);
                    self.event(format!("partition: driver {i} cut off from the rest"));
                }
                None => self.event("no leader to isolate".into()),
            },
            DetFault::Restart(i) if i < self.cfg.nodes && !self.nodes[i].up => {
                let d = self.election_deadline();
                let n = &mut self.nodes[i];
                n.up = true;
                n.role = Role::Follower;
                n.deadline = d;
                n.incarnation += 1;
                n.guard = TermGuard::default();
                n.leader = None;
                // The state machine is rebuilt from the log (openraft replays it).
                n.state = ClusterState::default();
                n.applied = 0;
                n.apply_committed();
                self.event(format!("node {i} restarts"));
            }
            DetFault::Restart(i) => self.event(format!("node {i} is not down")),
            DetFault::Partition(side) => {
                self.net.partition(&side);
                self.event(format!("partition: {side:?} cut off from the rest"));
            }
            DetFault::Heal => {
                self.net.heal();
                self.event("partition healed".into());
            }
            DetFault::Loss(rate) => {
                let link = LinkConfig {
                    drop_rate: rate,
                    ..self.net.link()
                };
                self.net.set_link(link);
                self.event(format!("links lose {:.0}% of messages", rate * 100.0));
            }
        }
    }

    fn leader(&self) -> Option<usize> {
        (0..self.cfg.nodes).find(|&i| self.nodes[i].up && self.nodes[i].role == Role::Leader)
    }

    fn crash(&mut self, i: usize) {
        if i >= self.cfg.nodes || !self.nodes[i].up {
            return;
        }
        if self.nodes[i].role == Role::Leader {
            self.leaderless_since.get_or_insert(self.now());
        }
        let n = &mut self.nodes[i];
        n.up = false;
        n.role = Role::Follower;
        n.lead = None;
        n.votes.clear();
        n.work.clear();
        n.reports.clear();
        n.outbox.clear();
        let term = n.term;
        self.event(format!("node {i} killed (term {term})"));
    }

    /// The next timer: (time, node, what) with what 0 = election, 1 = the driver's round,
    /// 2 = a task finishing, 3 = a report to send again.
    fn next_timer(&self) -> Option<(u64, usize, u8)> {
        let mut best: Option<(u64, usize, u8)> = None;
        let mut offer = |t: (u64, usize, u8)| {
            if best.is_none_or(|b| t < b) {
                best = Some(t);
            }
        };
        for (i, n) in self.nodes.iter().enumerate().filter(|(_, n)| n.up) {
            match &n.lead {
                Some(l) => offer((l.wake(), i, 1)),
                None => offer((n.deadline, i, 0)),
            }
            if let Some(t) = n.work.iter().map(|w| w.finish).min() {
                offer((t, i, 2));
            }
            if let Some(t) = n.reports.iter().map(|r| r.0).min() {
                offer((t, i, 3));
            }
            if let Some(t) = n.outbox.iter().map(|o| o.0).min() {
                offer((t, i, 4));
            }
        }
        best
    }
}

/// Runs one deterministic history.
pub fn run(cfg: &DetConfig) -> DetReport {
    assert!(cfg.nodes >= 1, "at least one node");
    let mut faults = cfg.faults.clone();
    faults.sort_by_key(|(t, _)| *t);
    let mut faults = std::collections::VecDeque::from(faults);
    // Every node starts with the job recorded (a committed first entry).
    let request = job_request(cfg);
    let submit = ClusterCommand::SubmitJob {
        id: JOB.into(),
        record: JobRecord {
            spec: rmp_serde::to_vec_named(&request).expect("requests encode"),
            description: request.job.describe(),
            state: JobState::Running,
            submitted_ms: 0,
            finished_ms: None,
            tasks: BTreeMap::new(),
            error: None,
            result: Vec::new(),
            checkpoint: None,
        },
    };
    let first = Entry {
        term: 0,
        cmd: Some(submit.clone()),
    };
    let mut truth = ClusterState::default();
    truth.apply(&submit);
    let mut sim = Sim {
        net: SimNet::new(cfg.nodes, cfg.seed, cfg.link),
        nodes: Vec::with_capacity(cfg.nodes),
        cfg: cfg.clone(),
        report: DetReport {
            events: Vec::new(),
            leaders: BTreeMap::new(),
            results: BTreeMap::new(),
            cv: None,
            finished_us: None,
            retries: 0,
            stale_refused: 0,
            abandoned: Vec::new(),
            failovers_us: Vec::new(),
            dropped: 0,
            violations: Vec::new(),
            answers: 0,
            model: None,
        },
        committed: BTreeMap::from([(1, 0)]),
        truth,
        truth_applied: 1,
        leaderless_since: None,
        summary: DataSummary::of(iris()).expect("iris summarises"),
    };
    for _ in 0..cfg.nodes {
        let deadline = sim.election_deadline();
        let mut node = Node {
            up: true,
            term: 0,
            voted: None,
            role: Role::Follower,
            votes: BTreeSet::new(),
            log: vec![first.clone()],
            commit: 1,
            applied: 0,
            state: ClusterState::default(),
            leader: None,
            deadline,
            lead: None,
            guard: TermGuard::default(),
            work: Vec::new(),
            reports: Vec::new(),
            store: BTreeMap::new(),
            incarnation: 0,
            outbox: Vec::new(),
        };
        node.apply_committed();
        sim.nodes.push(node);
    }
    // Bounded: every step handles one event at a strictly later or equal time, and the
    // horizon bounds time; the step cap guards against a livelock at one instant.
    let mut steps = 0u64;
    while sim.report.finished_us.is_none() && sim.report.abandoned.is_empty() && steps < 50_000_000
    {
        steps += 1;
        let fault_at = faults.front().map(|(t, _)| *t);
        let msg_at = sim.net.next_at();
        let timer = sim.next_timer();
        let next = [fault_at, msg_at, timer.map(|t| t.0)]
            .into_iter()
            .flatten()
            .min();
        let Some(at) = next else { break };
        if at > cfg.horizon_us {
            break;
        }
        if fault_at == Some(at) {
            sim.net.advance_to(at);
            let (_, f) = faults.pop_front().expect("peeked");
            sim.fault(f);
        } else if msg_at == Some(at) {
            if let Some(d) = sim.net.step() {
                sim.deliver(d.from, d.to, d.msg);
            }
        } else if let Some((t, i, what)) = timer {
            sim.net.advance_to(t);
            match what {
                0 => sim.start_election(i),
                1 => sim.drive(i),
                2 => sim.finish_work(i, t),
                3 => sim.report_again(i, t),
                _ => sim.send_due(i, t),
            }
        }
    }
    let mut report = sim.report;
    if let Some(job) = sim.truth.jobs.get(JOB) {
        report.results = job
            .tasks
            .iter()
            .filter(|(_, t)| t.state == TaskState::Succeeded)
            .map(|(id, t)| (id.to_string(), t.score))
            .collect();
    }
    report.dropped = sim.net.dropped();
    report
}

/// Runs `cfg` and the same seed without faults, and adds to the report the invariants a
/// faulty history must keep: at most one leader per term and no log entry committed twice
/// (checked as it runs), committed entries in every later leader's log (as it runs), no
/// committed task run again while its output is readable (as it runs), the job succeeding
/// with every task committed when the history ends with a quorum up and connected, and the
/// same task results and cross-validation table as the fault-free run.
pub fn run_checked(cfg: &DetConfig) -> DetReport {
    let mut report = run(cfg);
    let clean = run(&DetConfig {
        faults: Vec::new(),
        link: LinkConfig {
            drop_rate: 0.0,
            ..cfg.link
        },
        planted: None,
        ..cfg.clone()
    });
    let total = cfg.total_tasks();
    if clean.results.len() != total || clean.finished_us.is_none() {
        report.violations.push(format!(
            "the fault-free run committed {} of {total} tasks",
            clean.results.len()
        ));
    }
    if report.finished_us.is_none() {
        report.violations.push(format!(
            "tasks lost: {} of {total} committed by {} µs",
            report.results.len(),
            cfg.horizon_us
        ));
    }
    for (task, score) in &report.results {
        if clean.results.get(task) != Some(score) {
            report.violations.push(format!(
                "task {task}'s result differs from the fault-free run"
            ));
        }
    }
    if cfg.data_parallel && (clean.model.is_none() || report.model != clean.model) {
        report.violations.push(if clean.model.is_none() {
            "the fault-free run registered no model".to_string()
        } else {
            "the model differs from the fault-free run's".to_string()
        });
    }
    if report.finished_us.is_some() && report.cv != clean.cv {
        report
            .violations
            .push("the cross-validation table differs from the fault-free run".into());
    }
    if !report.abandoned.is_empty() {
        report
            .violations
            .push(format!("the job failed: {:?}", report.abandoned));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_replays_the_same_history() {
        let mut cfg = DetConfig::new(5, 40, 3);
        cfg.faults = vec![
            (400_000, DetFault::CrashLeader),
            (700_000, DetFault::Restart(0)),
        ];
        assert_eq!(run(&cfg), run(&cfg));
        let other = run(&DetConfig {
            seed: 4,
            ..cfg.clone()
        });
        assert_ne!(run(&cfg).events, other.events);
    }

    #[test]
    fn a_fault_free_run_commits_every_task_once_under_one_leader() {
        let cfg = DetConfig::new(3, 30, 1);
        let r = run_checked(&cfg);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!(r.leaders.len(), 1, "{:?}", r.events);
        assert_eq!(r.retries, 0);
        assert_eq!(r.results.len(), cfg.total_tasks());
        // The fold scores are the models crate's own: accuracies on iris.
        let scores: Vec<f64> = r.results.values().flatten().copied().collect();
        assert_eq!(scores.len(), 30);
        assert!(scores.iter().all(|s| (0.8..=1.0).contains(s)), "{scores:?}");
        assert!(r.cv.is_some());
    }

    #[test]
    fn a_lone_minority_cannot_finish_the_job() {
        let mut cfg = DetConfig::new(5, 200, 2);
        cfg.horizon_us = 3_000_000;
        // Three of five nodes gone for good: no quorum, so no commits after that.
        cfg.faults = vec![
            (300_000, DetFault::Crash(0)),
            (300_000, DetFault::Crash(1)),
            (300_000, DetFault::Crash(2)),
        ];
        let r = run_checked(&cfg);
        assert!(
            r.violations.iter().any(|v| v.starts_with("tasks lost")),
            "{:?}",
            r.violations
        );
        assert!(r.finished_us.is_none());
    }
}
