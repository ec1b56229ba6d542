//! The driver's job board: a pure state machine that runs every job recorded in the
//! replicated state.
//!
//! [`Board::step`] takes one [`Event`] (and the time) and returns the [`Effect`]s it causes.
//! The board does no I/O, reads no clock, awaits nothing, takes no locks and holds no
//! handle on the mesh: the driver actor
//! ([`crate::driver`]) owns it, carries out its effects and feeds their outcomes back as
//! events, and the deterministic simulator (`meshml-sim det`) drives the same board over a
//! simulated network.
//!
//! What it does:
//! - **Jobs** ([`Event::JobRecorded`]): a running job is rebuilt from its record alone. The
//!   plan is expanded again; in each stage the tasks whose success is recorded count as
//!   done; when a whole stage is done its outputs are read back ([`Effect::ReadOutputs`])
//!   and the plan moves on. So a new driver finishes its predecessor's jobs without running
//!   a committed task twice, and outputs whose every copy is gone are run again. The same
//!   path runs a new job (whose record has no tasks yet) and every later stage.
//! - **Tasks**: the [`Scheduler`] places queued tasks on members' slots
//!   ([`Effect::Assign`]). A worker's report of success frees its slot at once and the
//!   next task is dispatched on that report; the output gets a second copy on the driver
//!   when it carries a model ([`Effect::CopyOutput`]), then its completion is recorded.
//!   Failures are retried within the scheduler's bounds, the one place attempts are
//!   counted; a task out of attempts fails its job.
//! - **Proposals**: every change to the replicated state goes through one queue with at
//!   most one proposal in flight ([`Effect::Propose`]); what accumulates while one is in
//!   flight goes out together as one [`ClusterCommand::Batch`], so completions that arrive
//!   together commit as one Raft entry.
//! - **Results**: a finished plan's model is registered and scored by the driver
//!   ([`Effect::Register`]); the board then records the job as succeeded.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use meshml_models::plan::{DataSummary, JobResult, Planner, Step, Task, TaskOutput, Work};
use meshml_models::Estimator;
use meshml_protocol::{ChunkId, JobId, RemoteError, TaskId, TaskState};
use meshml_storage::raft::{
    ClusterCommand, ClusterResponse, JobRecord, JobState, Rejection, TaskRecord,
};

use super::rounds::{Out, Rounds};
use super::scheduler::{self, Command, NodeId, Scheduler, TaskKey};
use crate::error::MeshError;
use crate::job::{JobRequest, JobSummary, TaskDone, TaskSpec};

/// Attempts a task gets before its job fails.
pub const MAX_ATTEMPTS: u32 = 4;

/// How long a member whose assignment could not be delivered gets no tasks, milliseconds.
pub const UNREACHABLE_FOR_MS: u64 = 3_000;

/// A task that failed waits this long before its second try (twice that before its third,
/// ...), milliseconds: a node still recovering from a restart fails a task at once.
pub const RETRY_BACKOFF_MS: u64 = 200;

/// Commands in one proposal, at most.
pub const MAX_BATCH: usize = 512;

/// Bytes of data-parallel checkpoint state in one proposal, at most (a checkpoint larger
/// than this, up to its own cap of 1 MiB, goes alone).
pub const MAX_BATCH_STATE_BYTES: usize = 1 << 20;

/// How long a proposal that failed waits before it goes out again, milliseconds.
pub const PROPOSE_RETRY_MS: u64 = 200;

/// A bug the deterministic simulator's mutation test plants in a board, to show that its
/// checker catches it. A board has none unless [`Board::plant`] is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlantedBug {
    /// Resuming a job ignores the task completions its record holds, so a new driver runs
    /// committed tasks again.
    ForgetRecordedTasks,
}

/// Why an assignment did not start its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignFailure {
    /// The member could not be reached at all: it, not the task, is at fault, and it gets
    /// no tasks for a while ([`UNREACHABLE_FOR_MS`]).
    Unreachable,
    /// The member's queue is full: the task goes elsewhere or waits, with no attempt used.
    Busy,
    /// The member refused the task (a stale term, a task it cannot read): an attempt.
    Refused,
}

/// A worker's report of a task it ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The task.
    pub key: TaskKey,
    /// The member that ran it.
    pub from: NodeId,
    /// What it produced, or why it failed.
    pub outcome: Result<TaskDone, RemoteError>,
}

/// A member alive now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Its node id.
    pub node: NodeId,
    /// Its worker slots.
    pub slots: usize,
    /// Which run of its process this is (its start time; 0 when not known): when it
    /// changes, the member restarted and lost the tasks it was running, which go back to
    /// the queue.
    pub incarnation: u64,
}

/// What planning a job needs from its dataset's manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct JobData {
    /// Rows, classes and feature names.
    pub summary: DataSummary,
    /// The members holding the most of its chunks (tasks prefer them).
    pub prefer: Vec<NodeId>,
    /// Its chunks in order, with their holders (a data-parallel fit reads them where they
    /// are).
    pub chunks: Vec<(ChunkId, Vec<NodeId>)>,
    /// Its schema, as a dataset of no rows (a data-parallel fit checks its estimator
    /// against it); `None` for a job that does not run data-parallel.
    pub schema: Option<Box<meshml_models::Dataset>>,
}

/// The outputs of a finished stage that could not be read back, and why.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LostOutputs {
    /// Their task indices in the stage.
    pub tasks: Vec<usize>,
    /// Why the last of them could not be read.
    pub why: String,
}

/// Everything that happens to the board.
#[derive(Debug, Clone)]
pub enum Event {
    /// The driver's tick: proposals that failed go out again.
    Tick,
    /// The members alive now, with their worker slots. Members gone, or restarted since
    /// the last time, lose their running tasks back to the queue.
    Members {
        /// The members, this node included.
        live: Vec<Member>,
    },
    /// A running job the board does not run yet, as the replicated state records it.
    JobRecorded {
        /// The job.
        id: JobId,
        /// Its record (specification and task records).
        record: Box<JobRecord>,
        /// Its dataset as planning needs it; `None` when the dataset is not on the mesh.
        data: Option<Box<JobData>>,
    },
    /// A job the board runs is no longer running in the replicated state (cancelled, or
    /// ended by an earlier driver): it leaves the board.
    JobEnded {
        /// The job.
        id: JobId,
    },
    /// A worker reported a task.
    TaskReported(Box<Report>),
    /// An assignment did not reach its member, or the member refused it.
    AssignFailed {
        /// The task.
        key: TaskKey,
        /// The member.
        node: NodeId,
        /// What went wrong, for people.
        error: String,
        /// What it means for the task and the member.
        failure: AssignFailure,
    },
    /// An output's second copy is stored on the driver, or could not be.
    OutputCopied {
        /// The task.
        key: TaskKey,
        /// Whether it is stored.
        outcome: Result<(), MeshError>,
    },
    /// A proposal was applied (the commit's response), or could not be committed.
    Committed {
        /// The proposal, as [`Effect::Propose`] numbered it.
        proposal: u64,
        /// The state machine's response.
        outcome: Result<ClusterResponse, MeshError>,
    },
    /// A finished stage's outputs were read back (those with a payload, by task index).
    OutputsRead {
        /// The job.
        job: JobId,
        /// The stage.
        stage: u32,
        /// The outputs, or the tasks whose outputs are lost.
        outcome: Result<Vec<(usize, TaskOutput)>, LostOutputs>,
        /// How long reading took, milliseconds.
        ms: u64,
    },
    /// A member answered a request of a data-parallel pass ([`Effect::Train`]).
    Trained {
        /// The job.
        job: JobId,
        /// The member.
        node: NodeId,
        /// The request's number.
        request: u64,
        /// The chunks' partial results, or why not.
        outcome: super::rounds::Answer,
    },
    /// A finished job's model was registered and scored, or could not be.
    Registered {
        /// The job.
        job: JobId,
        /// The job's summary.
        outcome: Result<Box<JobSummary>, MeshError>,
    },
}

/// What the board asks the driver to do.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Send a task to a member, carrying the driver's term; a failure to deliver comes
    /// back as [`Event::AssignFailed`].
    Assign {
        /// The task.
        key: TaskKey,
        /// The member.
        node: NodeId,
        /// Which try (from 1).
        attempt: u32,
        /// What to run.
        spec: TaskSpec,
    },
    /// Commit a change to the replicated state; the outcome comes back as
    /// [`Event::Committed`] with the same number.
    Propose {
        /// The proposal's number.
        proposal: u64,
        /// The change (a [`ClusterCommand::Batch`] when several go together).
        command: ClusterCommand,
    },
    /// Fetch a task's output from the member that ran it and keep a copy here; the outcome
    /// comes back as [`Event::OutputCopied`].
    CopyOutput {
        /// The task.
        key: TaskKey,
        /// The output's address.
        output: ChunkId,
        /// The member holding it.
        from: NodeId,
    },
    /// Read back and decode the outputs a finished stage's reduce step needs; they come
    /// back as [`Event::OutputsRead`].
    ReadOutputs {
        /// The job.
        job: JobId,
        /// The stage.
        stage: u32,
        /// (task index, output, members holding it).
        wanted: Vec<(usize, ChunkId, Vec<NodeId>)>,
    },
    /// Build the job's model artifact, keep copies, register it and score it on the test
    /// dataset; the summary comes back as [`Event::Registered`].
    Register {
        /// The job.
        job: JobId,
        /// What was submitted.
        request: Box<JobRequest>,
        /// The final estimator (with the best parameters of a search).
        estimator: Box<Estimator>,
        /// The plan's result.
        result: Box<JobResult>,
    },
    /// Run a data-parallel pass over chunks on a member, carrying the driver's term; the
    /// answer comes back as [`Event::Trained`].
    Train {
        /// The job.
        job: JobId,
        /// Its dataset.
        dataset: String,
        /// The member.
        node: NodeId,
        /// The request's number (for [`Event::Trained`]).
        request: u64,
        /// The pass.
        pass: u64,
        /// The chunks (index in the dataset, id).
        chunks: Vec<(u32, ChunkId)>,
        /// The pass (MessagePack).
        spec: std::sync::Arc<Vec<u8>>,
    },
    /// The job has ended: its task outputs need not be kept any more.
    Release {
        /// The job.
        job: JobId,
    },
}

/// One task of the current stage.
#[derive(Debug, Clone)]
enum Slot {
    /// Queued or running.
    Waiting,
    /// Reported done; its output is being copied to the driver.
    Copying { done: TaskDone, from: NodeId },
    /// Reported done; its completion is being recorded.
    Recording,
    /// Recorded.
    Done {
        done: TaskDone,
        holders: Vec<NodeId>,
    },
}

/// Where a job stands on the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Tasks of the current stage run.
    Running,
    /// The finished stage's outputs are being read.
    Reading,
    /// The result is being registered.
    Registering,
}

struct Run {
    request: JobRequest,
    planner: Planner,
    stage: u32,
    tasks: Vec<Task>,
    slots: Vec<Slot>,
    prefer: Vec<NodeId>,
    /// Task records of the replicated state when the board picked the job up: tasks a
    /// previous driver finished.
    recorded: BTreeMap<TaskId, TaskRecord>,
    phase: Phase,
    /// Milliseconds spent ending the job, by phase (`outputs`, `reduce`).
    end_ms: Vec<(&'static str, u64)>,
}

/// Why a change is proposed: what to do with its response.
#[derive(Debug, Clone)]
enum Purpose {
    /// A stage's tasks recorded.
    AddTasks(JobId),
    /// A task's success recorded.
    Record {
        key: TaskKey,
        done: TaskDone,
        holders: Vec<NodeId>,
    },
    /// A job ended.
    Finish { job: JobId, succeeded: bool },
    /// A data-parallel fit's state committed.
    Checkpoint(JobId),
}

/// The board: owned by one driver (one term).
pub struct Board {
    term: u64,
    me: NodeId,
    scheduler: Scheduler,
    runs: BTreeMap<JobId, Run>,
    /// Data-parallel fits, with what was submitted.
    fits: BTreeMap<JobId, (Rounds, Box<JobRequest>)>,
    /// The members alive, as last told.
    alive: BTreeSet<NodeId>,
    /// Jobs this board ended (their end may not be applied yet): never picked up again.
    ended: BTreeSet<JobId>,
    /// Changes waiting to be proposed.
    queue: VecDeque<(Purpose, ClusterCommand)>,
    /// The proposal in flight.
    in_flight: Option<(u64, Vec<Purpose>, Vec<ClusterCommand>)>,
    next_proposal: u64,
    /// No proposal goes out before this time (after a failed one).
    hold_until_ms: u64,
    /// Members that could not be reached, until when.
    unreachable: BTreeMap<NodeId, u64>,
    /// Each member's incarnation when last seen.
    incarnations: BTreeMap<NodeId, u64>,
    now_ms: u64,
    out: Vec<Effect>,
    planted: Option<PlantedBug>,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board")
            .field("term", &self.term)
            .field("jobs", &self.runs.keys().collect::<Vec<_>>())
            .field("queued", &self.scheduler.queued())
            .field("running", &self.scheduler.running())
            .finish()
    }
}

/// Whether a task's output carries what the plan's next step reads (a model, predictions),
/// so that it must be read back; else its score is all of it.
pub fn task_has_payload(t: &Task) -> bool {
    match &t.work {
        Work::Fit {
            keep_model,
            predict_eval,
            ..
        } => *keep_model || *predict_eval,
        Work::Trees { .. } | Work::Stack { .. } => true,
    }
}

/// The data summary planning needs, from a manifest.
pub fn summary_of(m: &meshml_storage::DatasetManifest) -> DataSummary {
    let labels = match &m.target {
        meshml_storage::TargetSchema::Classes { classes, .. } => classes.labels().to_vec(),
        meshml_storage::TargetSchema::Values => Vec::new(),
    };
    DataSummary {
        n_samples: m.rows as usize,
        n_classes: labels.len(),
        labels,
        features: m.feature_names.clone(),
        target: m.target_name.clone(),
    }
}

impl Board {
    /// A board for the driver of `term`, running on member `me`.
    pub fn new(term: u64, me: NodeId) -> Self {
        Self {
            term,
            me,
            scheduler: Scheduler::new(MAX_ATTEMPTS).with_backoff(RETRY_BACKOFF_MS),
            runs: BTreeMap::new(),
            fits: BTreeMap::new(),
            alive: BTreeSet::new(),
            ended: BTreeSet::new(),
            queue: VecDeque::new(),
            in_flight: None,
            next_proposal: 1,
            hold_until_ms: 0,
            unreachable: BTreeMap::new(),
            incarnations: BTreeMap::new(),
            now_ms: 0,
            out: Vec::new(),
            planted: None,
        }
    }

    /// The same board giving each task `n` attempts instead of [`MAX_ATTEMPTS`].
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.scheduler = Scheduler::new(n).with_backoff(RETRY_BACKOFF_MS);
        self
    }

    /// Plants `bug` (for the simulator's mutation test only).
    pub fn plant(&mut self, bug: PlantedBug) {
        self.planted = Some(bug);
    }

    /// The term this board drives in.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// The jobs on the board.
    pub fn jobs(&self) -> impl Iterator<Item = &JobId> {
        self.runs.keys().chain(self.fits.keys())
    }

    /// Whether `job` is on the board, or was ended by it.
    pub fn knows(&self, job: &JobId) -> bool {
        self.runs.contains_key(job) || self.fits.contains_key(job) || self.ended.contains(job)
    }

    /// Tasks waiting for a slot, and tasks running.
    pub fn load(&self) -> (usize, usize) {
        (self.scheduler.queued(), self.scheduler.running())
    }

    /// Whether a proposal is in flight or waiting.
    pub fn proposing(&self) -> bool {
        self.in_flight.is_some() || !self.queue.is_empty()
    }

    /// Handles one event, at `now_ms` (milliseconds since the Unix epoch, or virtual time
    /// in the simulator: the board reads no clock), and returns what the driver must do.
    pub fn step(&mut self, now_ms: u64, event: Event) -> Vec<Effect> {
        self.now_ms = self.now_ms.max(now_ms);
        self.scheduler.set_now(self.now_ms);
        match event {
            Event::Tick => {
                let jobs: Vec<JobId> = self.fits.keys().cloned().collect();
                for job in jobs {
                    let (fit, _) = self.fits.get_mut(&job).expect("listed");
                    let outs = fit.tick(self.now_ms);
                    self.carry(&job, outs);
                }
            }
            Event::Members { live } => self.members(live),
            Event::JobRecorded { id, record, data } => self.pick_up(id, *record, data),
            Event::JobEnded { id } => {
                if self.runs.remove(&id).is_some() || self.fits.remove(&id).is_some() {
                    tracing::info!(job_id = %id, "job ended; off the board");
                }
                self.scheduler.cancel_job(&id);
            }
            Event::TaskReported(report) => self.reported(*report),
            Event::AssignFailed {
                key,
                node,
                error,
                failure,
            } => self.assign_failed(key, node, error, failure),
            Event::OutputCopied { key, outcome } => self.copied(key, outcome),
            Event::Committed { proposal, outcome } => self.committed(proposal, outcome),
            Event::OutputsRead {
                job,
                stage,
                outcome,
                ms,
            } => self.outputs_read(job, stage, outcome, ms),
            Event::Trained {
                job,
                node,
                request,
                outcome,
            } => {
                if let Some((fit, _)) = self.fits.get_mut(&job) {
                    let outs = fit.trained(node, request, outcome, self.now_ms);
                    self.carry(&job, outs);
                }
            }
            Event::Registered { job, outcome } => match outcome {
                Ok(mut summary) => {
                    if let Some(run) = self.runs.remove(&job) {
                        for (phase, ms) in run.end_ms {
                            summary.end_ms.insert(phase.to_string(), ms);
                        }
                    }
                    if let Some((rounds, _)) = self.fits.get(&job) {
                        let fit = rounds.fit();
                        let times = rounds.times();
                        let last = fit.losses().last();
                        summary.passes = Some(meshml_client::api::PassesView {
                            passes: fit.passes(),
                            stage: fit.stage(),
                            loss: last.map(|l| l.0),
                            gradient: last.map(|l| l.1).filter(|g| g.is_finite()),
                            wall_ms: Some(times.wall_ms),
                            compute_ms: Some(times.compute_ms),
                        });
                        summary.losses = fit.losses().iter().map(|l| l.0).collect();
                    }
                    tracing::info!(job_id = %job, end_ms = ?summary.end_ms, "job result registered");
                    let result = rmp_serde::to_vec_named(&summary).expect("summaries encode");
                    self.end(job, JobState::Succeeded, None, result);
                }
                Err(e) => self.fail(&job, e.to_string()),
            },
        }
        self.dispatch();
        self.flush();
        std::mem::take(&mut self.out)
    }

    fn members(&mut self, live: Vec<Member>) {
        self.alive = live.iter().map(|m| m.node).collect();
        let jobs: Vec<JobId> = self.fits.keys().cloned().collect();
        for job in jobs {
            let (fit, _) = self.fits.get_mut(&job).expect("listed");
            let outs = fit.members(self.alive.clone(), self.now_ms);
            self.carry(&job, outs);
        }
        let now = self.now_ms;
        self.unreachable.retain(|_, until| *until > now);
        // An incarnation of 0 is not known yet (the member's announcement has not come).
        for m in live.iter().filter(|m| m.incarnation != 0) {
            let before = self.incarnations.insert(m.node, m.incarnation);
            if before.is_some_and(|b| b != m.incarnation) {
                tracing::info!(
                    node = m.node,
                    "member restarted; its tasks go back to the queue"
                );
                let cmds = self
                    .scheduler
                    .handle(scheduler::Event::NodeDown { node: m.node });
                self.abandon(cmds);
            }
        }
        let up: BTreeMap<NodeId, usize> = live
            .into_iter()
            .filter(|m| !self.unreachable.contains_key(&m.node))
            .map(|m| (m.node, m.slots))
            .collect();
        for gone in self
            .scheduler
            .nodes()
            .into_iter()
            .filter(|n| !up.contains_key(n))
        {
            tracing::info!(node = gone, "member lost; its tasks go back to the queue");
            let cmds = self
                .scheduler
                .handle(scheduler::Event::NodeDown { node: gone });
            self.abandon(cmds);
        }
        for (node, slots) in up {
            self.scheduler
                .handle(scheduler::Event::NodeUp { node, slots });
        }
    }

    /// Takes up a running job from its record (see the module docs).
    fn pick_up(&mut self, id: JobId, record: JobRecord, data: Option<Box<JobData>>) {
        if self.runs.contains_key(&id)
            || self.ended.contains(&id)
            || record.state != JobState::Running
        {
            return;
        }
        let request: JobRequest = match rmp_serde::from_slice(&record.spec) {
            Ok(r) => r,
            Err(e) => return self.fail(&id, format!("unreadable specification: {e}")),
        };
        let Some(data) = data else {
            let dataset = request.dataset.clone();
            return self.fail(&id, format!("no dataset '{dataset}' on the mesh"));
        };
        if request.data_parallel == Some(true) {
            return self.pick_up_fit(id, record, request, *data);
        }
        let JobData {
            summary, prefer, ..
        } = *data;
        let planner = match Planner::new(request.job.clone(), summary) {
            Ok(p) => p,
            Err(e) => return self.fail(&id, e.to_string()),
        };
        let step = match planner.step() {
            Ok(s) => s,
            Err(e) => return self.fail(&id, e.to_string()),
        };
        let resumed = record
            .tasks
            .values()
            .any(|t| t.state == TaskState::Succeeded);
        tracing::info!(job_id = %id, resumed, "job on the board");
        self.runs.insert(
            id.clone(),
            Run {
                request,
                planner,
                stage: 0,
                tasks: Vec::new(),
                slots: Vec::new(),
                prefer,
                recorded: match self.planted {
                    Some(PlantedBug::ForgetRecordedTasks) => BTreeMap::new(),
                    None => record.tasks,
                },
                phase: Phase::Running,
                end_ms: Vec::new(),
            },
        );
        self.enter(&id, step);
    }

    /// Takes up a data-parallel fit: from its last checkpoint, if it has one.
    fn pick_up_fit(&mut self, id: JobId, record: JobRecord, request: JobRequest, data: JobData) {
        // A checkpoint this version cannot read (written by an older one) starts the fit
        // again, as one too large to checkpoint does.
        let resumed = record.checkpoint.as_ref().and_then(|c| {
            rmp_serde::from_slice::<meshml_models::parallel::DataParallelJob>(&c.state)
                .map_err(|e| tracing::warn!(job_id = %id, "unreadable checkpoint, starting the fit again: {e}"))
                .ok()
        });
        let fit = match (resumed, &data.schema) {
            (Some(f), _) => Ok(f),
            (None, Some(schema)) => meshml_models::parallel::DataParallelJob::new(
                &request.job,
                schema,
                data.summary.n_samples as u64,
            )
            .map_err(|e| e.to_string()),
            (None, None) => Err("no schema for the dataset".to_string()),
        };
        let fit = match fit {
            Ok(f) => f,
            Err(e) => return self.fail(&id, e),
        };
        tracing::info!(job_id = %id, passes = fit.passes(), stage = %fit.stage(), "data-parallel fit on the board");
        let (chunks, holders): (Vec<ChunkId>, Vec<Vec<NodeId>>) = data.chunks.into_iter().unzip();
        let live = self.alive.clone();
        let (rounds, outs) = Rounds::start(fit, chunks, holders, live, self.now_ms);
        self.fits.insert(id.clone(), (rounds, Box::new(request)));
        self.carry(&id, outs);
    }

    /// Carries out what a data-parallel fit asks.
    fn carry(&mut self, job: &JobId, outs: Vec<Out>) {
        for out in outs {
            match out {
                Out::Train {
                    node,
                    request: number,
                    pass,
                    chunks,
                    spec,
                } => {
                    let Some((_, request)) = self.fits.get(job) else {
                        return;
                    };
                    self.out.push(Effect::Train {
                        job: job.clone(),
                        dataset: request.dataset.clone(),
                        node,
                        request: number,
                        pass,
                        chunks,
                        spec,
                    });
                }
                Out::Checkpoint(checkpoint) => self.propose(
                    Purpose::Checkpoint(job.clone()),
                    ClusterCommand::Checkpoint {
                        job: job.clone(),
                        checkpoint: *checkpoint,
                    },
                ),
                Out::Done {
                    model,
                    cv,
                    warnings,
                    passes,
                } => {
                    let Some((rounds, request)) = self.fits.get(job) else {
                        return;
                    };
                    let times = rounds.times();
                    tracing::info!(job_id = %job, passes, wall_ms = times.wall_ms, compute_ms = times.compute_ms, "data-parallel fit done");
                    // The estimator of the model: the fit's, or the search's best candidate.
                    let estimator = match (&request.job.kind, &cv) {
                        (meshml_models::plan::JobKind::Fit { estimator }, _) => estimator.clone(),
                        (
                            meshml_models::plan::JobKind::GridSearch { estimator, .. }
                            | meshml_models::plan::JobKind::RandomSearch { estimator, .. },
                            Some(cv),
                        ) => {
                            let mut e = estimator.clone();
                            for (k, v) in cv.best_params() {
                                if let Err(err) = e.set_param(k, v) {
                                    return self.fail(job, err.to_string());
                                }
                            }
                            e
                        }
                        _ => unreachable!("checked at pick-up"),
                    };
                    self.out.push(Effect::Register {
                        job: job.clone(),
                        request: request.clone(),
                        estimator: Box::new(estimator),
                        result: Box::new(JobResult {
                            model: model.map(|m| *m),
                            cv: cv.map(|c| *c),
                            tasks: 0,
                            warnings,
                        }),
                    });
                }
                Out::Failed(e) => return self.fail(job, e),
            }
        }
    }

    /// Moves a job to the plan's next step: its result, or a stage of tasks, of which those
    /// recorded as succeeded are done and the rest are recorded (where the state lacks
    /// them) and queued.
    fn enter(&mut self, id: &JobId, step: Step) {
        let Some(run) = self.runs.get_mut(id) else {
            return;
        };
        let tasks = match step {
            Step::Run(tasks) => tasks,
            Step::Done(result) => {
                let estimator = match run.planner.final_estimator(result.cv.as_ref()) {
                    Ok(e) => e,
                    Err(e) => return self.fail(id, e.to_string()),
                };
                run.phase = Phase::Registering;
                self.out.push(Effect::Register {
                    job: id.clone(),
                    request: Box::new(run.request.clone()),
                    estimator: Box::new(estimator),
                    result,
                });
                return;
            }
        };
        let stage = run.planner.stages_done() as u32;
        let ids: Vec<TaskId> = (0..tasks.len() as u32)
            .map(|i| TaskId::new(stage, i))
            .collect();
        run.slots = ids
            .iter()
            .zip(&tasks)
            .map(|(t, task)| match run.recorded.get(t) {
                Some(TaskRecord {
                    state: TaskState::Succeeded,
                    output: Some(output),
                    holders,
                    score,
                    warnings,
                    ..
                }) => Slot::Done {
                    done: TaskDone {
                        output: *output,
                        score: *score,
                        has_payload: task_has_payload(task),
                        fit_ms: 0,
                        warnings: warnings.clone(),
                    },
                    holders: holders.clone(),
                },
                _ => Slot::Waiting,
            })
            .collect();
        run.stage = stage;
        run.tasks = tasks;
        run.phase = Phase::Running;
        let missing: Vec<TaskId> = ids
            .iter()
            .filter(|t| !run.recorded.contains_key(t))
            .copied()
            .collect();
        let waiting: Vec<TaskId> = ids
            .iter()
            .zip(&run.slots)
            .filter(|(_, s)| matches!(s, Slot::Waiting))
            .map(|(t, _)| *t)
            .collect();
        let prefer = run.prefer.clone();
        tracing::info!(job_id = %id, stage, tasks = ids.len(), to_run = waiting.len(), "stage on the board");
        if !missing.is_empty() {
            self.propose(
                Purpose::AddTasks(id.clone()),
                ClusterCommand::AddTasks {
                    job: id.clone(),
                    tasks: missing,
                },
            );
        }
        for task in waiting {
            self.scheduler.handle(scheduler::Event::Submitted {
                key: TaskKey::new(id.clone(), task),
                prefer: prefer.clone(),
            });
        }
        self.maybe_advance(id);
    }

    /// When every task of the job's stage is recorded: its outputs are read back (or, when
    /// none carries a payload, the plan moves on at once).
    fn maybe_advance(&mut self, id: &JobId) {
        let Some(run) = self.runs.get_mut(id) else {
            return;
        };
        if run.phase != Phase::Running || !run.slots.iter().all(|s| matches!(s, Slot::Done { .. }))
        {
            return;
        }
        let wanted: Vec<(usize, ChunkId, Vec<NodeId>)> = run
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Slot::Done { done, holders } if done.has_payload => {
                    Some((i, done.output, holders.clone()))
                }
                _ => None,
            })
            .collect();
        run.phase = Phase::Reading;
        if wanted.is_empty() {
            let stage = run.stage;
            self.outputs_read(id.clone(), stage, Ok(Vec::new()), 0);
        } else {
            self.out.push(Effect::ReadOutputs {
                job: id.clone(),
                stage: run.stage,
                wanted,
            });
        }
    }

    fn outputs_read(
        &mut self,
        id: JobId,
        stage: u32,
        outcome: Result<Vec<(usize, TaskOutput)>, LostOutputs>,
        ms: u64,
    ) {
        let Some(run) = self.runs.get_mut(&id) else {
            return;
        };
        if run.stage != stage || run.phase != Phase::Reading {
            return;
        }
        let mut read: BTreeMap<usize, TaskOutput> = match outcome {
            Ok(read) => read.into_iter().collect(),
            Err(lost) => {
                // Every copy of these outputs is gone (their worker, or the driver that
                // copied them, was lost): those tasks run again.
                tracing::warn!(job_id = %id, stage, tasks = ?lost.tasks, cause = %lost.why, "stage outputs lost; running those tasks again");
                run.phase = Phase::Running;
                let prefer = run.prefer.clone();
                for i in lost.tasks {
                    if let Some(slot) = run.slots.get_mut(i) {
                        *slot = Slot::Waiting;
                        self.scheduler.handle(scheduler::Event::Submitted {
                            key: TaskKey::new(id.clone(), TaskId::new(stage, i as u32)),
                            prefer: prefer.clone(),
                        });
                    }
                }
                return;
            }
        };
        let mut outputs = Vec::with_capacity(run.slots.len());
        let mut missing = None;
        for (i, slot) in run.slots.iter().enumerate() {
            let Slot::Done { done, .. } = slot else {
                missing = Some(i);
                break;
            };
            match read.remove(&i) {
                Some(o) => outputs.push(o),
                None if !done.has_payload => outputs.push(TaskOutput {
                    score: done.score,
                    model: None,
                    fit_ms: done.fit_ms,
                    predictions: None,
                    labels: Vec::new(),
                    warnings: done.warnings.clone(),
                }),
                None => {
                    missing = Some(i);
                    break;
                }
            }
        }
        if let Some(i) = missing {
            return self.fail(&id, format!("the output of task {i} was not read back"));
        }
        let started = std::time::Instant::now();
        let step = run.planner.complete(outputs);
        run.end_ms = vec![
            ("outputs", ms),
            ("reduce", started.elapsed().as_millis() as u64),
        ];
        match step {
            Ok(step) => self.enter(&id, step),
            Err(e) => self.fail(&id, e.to_string()),
        }
    }

    fn reported(&mut self, r: Report) {
        let key = r.key;
        let run = self.runs.get_mut(&key.job);
        let waiting = run.as_ref().is_some_and(|run| {
            run.stage == key.task.stage
                && matches!(run.slots.get(key.task.index as usize), Some(Slot::Waiting))
        });
        if !waiting {
            // An unknown job's, an old stage's, or a second report of a task already done.
            self.scheduler.finished(&key);
            return;
        }
        let run = run.expect("a waiting slot has a run");
        match r.outcome {
            Ok(done) => {
                self.scheduler
                    .handle(scheduler::Event::Released { key: key.clone() });
                let slot = &mut run.slots[key.task.index as usize];
                if done.has_payload && r.from != self.me {
                    // A model output gets a second copy before it is recorded, so that
                    // losing either its worker or this driver does not lose it.
                    *slot = Slot::Copying {
                        done: done.clone(),
                        from: r.from,
                    };
                    self.out.push(Effect::CopyOutput {
                        key,
                        output: done.output,
                        from: r.from,
                    });
                } else {
                    *slot = Slot::Recording;
                    self.record(key, done, vec![r.from]);
                }
            }
            Err(e) => {
                tracing::info!(job_id = %key.job, task_id = %key.task, cause = %e.message, retryable = e.retryable, "task failed");
                let cmds = self.scheduler.handle(scheduler::Event::Failed {
                    key,
                    retryable: e.retryable,
                    error: e.message,
                });
                self.abandon(cmds);
            }
        }
    }

    fn record(&mut self, key: TaskKey, done: TaskDone, holders: Vec<NodeId>) {
        let cmd = ClusterCommand::UpdateTask {
            job: key.job.clone(),
            task: key.task,
            record: TaskRecord {
                state: TaskState::Succeeded,
                output: Some(done.output),
                holders: holders.clone(),
                score: done.score,
                attempts: 1,
                error: None,
                warnings: done.warnings.clone(),
            },
        };
        self.propose(Purpose::Record { key, done, holders }, cmd);
    }

    fn copied(&mut self, key: TaskKey, outcome: Result<(), MeshError>) {
        let Some(slot) = slot_of(&mut self.runs, &key) else {
            return;
        };
        let Slot::Copying { done, from } = slot.clone() else {
            return;
        };
        match outcome {
            Ok(()) => {
                *slot = Slot::Recording;
                self.record(key, done, vec![from, self.me]);
            }
            Err(e) => {
                tracing::info!(job_id = %key.job, task_id = %key.task, cause = %e, "output not copied; running the task again");
                *slot = Slot::Waiting;
                let cmds = self.scheduler.handle(scheduler::Event::Retry {
                    key,
                    error: format!("its output could not be copied: {e}"),
                });
                self.abandon(cmds);
            }
        }
    }

    fn assign_failed(&mut self, key: TaskKey, node: NodeId, error: String, failure: AssignFailure) {
        let cmds = match failure {
            AssignFailure::Unreachable => {
                // Keep tasks off the member until membership decides about it; its tasks
                // (this one included) go back to the queue.
                tracing::info!(member = node, cause = %error, "member unreachable; its tasks go elsewhere");
                self.unreachable
                    .insert(node, self.now_ms + UNREACHABLE_FOR_MS);
                self.scheduler.handle(scheduler::Event::NodeDown { node })
            }
            AssignFailure::Busy => {
                tracing::debug!(member = node, task_id = %key.task, "member busy; the task waits");
                self.scheduler.handle(scheduler::Event::Bounced { key })
            }
            AssignFailure::Refused => self.scheduler.handle(scheduler::Event::Failed {
                key,
                retryable: true,
                error: format!("assignment to member {node} failed: {error}"),
            }),
        };
        self.abandon(cmds);
    }

    fn committed(&mut self, proposal: u64, outcome: Result<ClusterResponse, MeshError>) {
        let Some((id, purposes, commands)) = self.in_flight.take() else {
            return;
        };
        if id != proposal {
            self.in_flight = Some((id, purposes, commands));
            return;
        }
        let response = match outcome {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(cause = %e, changes = commands.len(), "proposal not committed; trying again");
                for item in purposes.into_iter().zip(commands).rev() {
                    self.queue.push_front(item);
                }
                self.hold_until_ms = self.now_ms + PROPOSE_RETRY_MS;
                return;
            }
        };
        let responses = if purposes.len() == 1 {
            vec![response]
        } else {
            response.each
        };
        for (i, purpose) in purposes.into_iter().enumerate() {
            let r = responses.get(i).cloned().unwrap_or_default();
            self.applied(purpose, r);
        }
    }

    fn applied(&mut self, purpose: Purpose, r: ClusterResponse) {
        match purpose {
            Purpose::AddTasks(job) => {
                if !r.ok {
                    // The job is no longer running: it leaves the board.
                    tracing::info!(job_id = %job, cause = ?r.error, "stage not recorded; job off the board");
                    self.runs.remove(&job);
                    self.scheduler.cancel_job(&job);
                }
            }
            Purpose::Record { key, done, holders } => {
                if !(r.ok || r.rejection == Some(Rejection::TaskFinished)) {
                    tracing::info!(job_id = %key.job, task_id = %key.task, cause = ?r.error, "task result not recorded");
                    self.runs.remove(&key.job);
                    self.scheduler.cancel_job(&key.job);
                    return;
                }
                self.scheduler
                    .handle(scheduler::Event::Confirmed { key: key.clone() });
                let Some(slot) = slot_of(&mut self.runs, &key) else {
                    return;
                };
                *slot = Slot::Done { done, holders };
                self.maybe_advance(&key.job);
            }
            Purpose::Finish { job, succeeded } => {
                tracing::info!(job_id = %job, succeeded, ok = r.ok, "job ended");
                self.out.push(Effect::Release { job });
            }
            Purpose::Checkpoint(job) => {
                if !r.ok {
                    // The job ended, or a newer checkpoint is there (another driver).
                    tracing::info!(job_id = %job, cause = ?r.error, "checkpoint not recorded");
                }
            }
        }
    }

    fn propose(&mut self, purpose: Purpose, command: ClusterCommand) {
        // A fit's newer checkpoint replaces one still waiting to go out.
        if let Purpose::Checkpoint(job) = &purpose {
            self.queue
                .retain(|(p, _)| !matches!(p, Purpose::Checkpoint(j) if j == job));
        }
        self.queue.push_back((purpose, command));
    }

    /// Sends what waits as one proposal, unless one is in flight.
    fn flush(&mut self) {
        if self.in_flight.is_some() || self.queue.is_empty() || self.now_ms < self.hold_until_ms {
            return;
        }
        // At most MAX_BATCH commands, and checkpoints of at most MAX_BATCH_STATE_BYTES
        // together (one, whatever its size): a proposal is one Raft entry, and an entry
        // must fit one message to reach the followers.
        let (mut n, mut bytes) = (0, 0);
        for (_, c) in self.queue.iter().take(MAX_BATCH) {
            let b = match c {
                ClusterCommand::Checkpoint { checkpoint, .. } => checkpoint.state.len(),
                _ => 0,
            };
            if n > 0 && bytes + b > MAX_BATCH_STATE_BYTES {
                break;
            }
            (n, bytes) = (n + 1, bytes + b);
        }
        let (purposes, commands): (Vec<Purpose>, Vec<ClusterCommand>) =
            self.queue.drain(..n).unzip();
        let proposal = self.next_proposal;
        self.next_proposal += 1;
        let command = if commands.len() == 1 {
            commands[0].clone()
        } else {
            ClusterCommand::Batch {
                commands: commands.clone(),
            }
        };
        self.in_flight = Some((proposal, purposes, commands));
        self.out.push(Effect::Propose { proposal, command });
    }

    fn dispatch(&mut self) {
        for cmd in self.scheduler.dispatch() {
            match cmd {
                Command::Assign { key, node, attempt } => {
                    let Some(run) = self.runs.get(&key.job) else {
                        self.scheduler.cancel_job(&key.job);
                        continue;
                    };
                    let Some(task) = run
                        .tasks
                        .get(key.task.index as usize)
                        .filter(|_| run.stage == key.task.stage)
                    else {
                        self.scheduler.finished(&key);
                        continue;
                    };
                    tracing::debug!(job_id = %key.job, task_id = %key.task, node, attempt, "assigning");
                    let spec = TaskSpec {
                        dataset: run.request.dataset.clone(),
                        task: task.clone(),
                    };
                    self.out.push(Effect::Assign {
                        key,
                        node,
                        attempt,
                        spec,
                    });
                }
                Command::Abandon { key, error } => {
                    self.fail(&key.job, format!("task {}: {error}", key.task));
                }
            }
        }
    }

    fn abandon(&mut self, cmds: Vec<Command>) {
        for cmd in cmds {
            if let Command::Abandon { key, error } = cmd {
                self.fail(&key.job, format!("task {}: {error}", key.task));
            }
        }
    }

    /// The job fails with `error`.
    fn fail(&mut self, id: &JobId, error: String) {
        tracing::warn!(job_id = %id, %error, "job failed");
        self.runs.remove(id);
        self.fits.remove(id);
        self.end(id.clone(), JobState::Failed, Some(error), Vec::new());
    }

    fn end(&mut self, job: JobId, state: JobState, error: Option<String>, result: Vec<u8>) {
        self.scheduler.cancel_job(&job);
        self.runs.remove(&job);
        self.fits.remove(&job);
        self.ended.insert(job.clone());
        let cmd = ClusterCommand::FinishJob {
            job: job.clone(),
            state,
            at_ms: self.now_ms,
            error,
            result,
        };
        self.propose(
            Purpose::Finish {
                job,
                succeeded: state == JobState::Succeeded,
            },
            cmd,
        );
    }
}

/// The slot of a task of its job's current stage, if the job runs and is at that stage.
fn slot_of<'a>(runs: &'a mut BTreeMap<JobId, Run>, key: &TaskKey) -> Option<&'a mut Slot> {
    runs.get_mut(&key.job)
        .filter(|r| r.stage == key.task.stage)
        .and_then(|r| r.slots.get_mut(key.task.index as usize))
}

/// The members holding the most chunks of a dataset: tasks over it prefer them.
pub fn preferred_holders<'a>(holders: impl IntoIterator<Item = &'a [NodeId]>) -> Vec<NodeId> {
    let mut held: BTreeMap<NodeId, usize> = BTreeMap::new();
    for hs in holders {
        for h in hs {
            *held.entry(*h).or_default() += 1;
        }
    }
    let most = held.values().copied().max().unwrap_or(0);
    held.into_iter()
        .filter(|(_, n)| *n == most)
        .map(|(h, _)| h)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshml_storage::raft::Checkpoint;

    fn checkpoint(job: &str, passes: u64, bytes: usize) -> (Purpose, ClusterCommand) {
        (
            Purpose::Checkpoint(job.into()),
            ClusterCommand::Checkpoint {
                job: job.into(),
                checkpoint: Checkpoint {
                    state: vec![0; bytes],
                    passes,
                    stage: "lbfgs".into(),
                    loss: None,
                    gradient: None,
                    at_ms: 0,
                },
            },
        )
    }

    /// The commands of each proposal the board sends, committing each at once.
    fn proposals(b: &mut Board) -> Vec<Vec<ClusterCommand>> {
        let mut out = Vec::new();
        for _ in 0..100 {
            b.flush();
            let Some((proposal, _, commands)) = b.in_flight.clone() else {
                return out;
            };
            out.push(commands);
            let ok = ClusterResponse {
                ok: true,
                ..ClusterResponse::default()
            };
            b.committed(proposal, Ok(ok));
        }
        out
    }

    #[test]
    fn checkpoints_are_coalesced_per_fit_and_proposals_stay_within_one_message() {
        let mut b = Board::new(1, 1);
        // A fit's checkpoints waiting together: only the newest goes out.
        for passes in [10, 20, 30] {
            let (p, c) = checkpoint("a", passes, 100);
            b.propose(p, c);
        }
        let sent = proposals(&mut b);
        assert_eq!(sent.len(), 1);
        assert!(matches!(
            &sent[0][..],
            [ClusterCommand::Checkpoint { checkpoint, .. }] if checkpoint.passes == 30
        ));
        // Four fits' checkpoints of 900 KiB each: one a proposal.
        for job in ["a", "b", "c", "d"] {
            let (p, c) = checkpoint(job, 40, 900 << 10);
            b.propose(p, c);
        }
        let sent = proposals(&mut b);
        assert_eq!(
            sent.len(),
            4,
            "{:?}",
            sent.iter().map(Vec::len).collect::<Vec<_>>()
        );
        // Small ones share a proposal.
        for job in ["a", "b", "c"] {
            let (p, c) = checkpoint(job, 50, 1000);
            b.propose(p, c);
        }
        assert_eq!(proposals(&mut b).len(), 1);
    }
}
