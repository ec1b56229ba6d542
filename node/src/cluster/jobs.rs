//! The driver's job board: runs every job recorded in the replicated state.
//!
//! Each round (on the driver actor's tick) it
//! 1. tells the [`Scheduler`] which members are alive and how many slots they have (a
//!    member gone loses its running tasks back to the queue);
//! 2. picks up running jobs it does not run yet. A job is rebuilt from the replicated state
//!    alone: the plan is expanded again, the outputs of stages already finished are read
//!    back from the workers holding them, and in the current stage only tasks whose
//!    completion was never committed are queued. So a new driver finishes its
//!    predecessor's jobs without running a committed task twice;
//! 3. commits the workers' reports (a success records the output's address and holder; a
//!    failure is retried within the scheduler's bounds, or fails the job);
//! 4. advances jobs whose stage is complete (the next stage, or the result: the model
//!    registered in the model registry and the summary recorded with the job);
//! 5. sends the scheduler's assignments, each carrying the driver's term.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use meshml_models::metrics::ConfusionMatrix;
use meshml_models::plan::{DataSummary, JobResult, Planner, Step, Task, TaskOutput};
use meshml_models::{Classifier, FittedModel, ModelArtifact, Provenance};
use meshml_protocol::{ErrorCode, RemoteError, Request, Response, TaskState};
use meshml_storage::raft::{ClusterCommand, JobRecord, JobState, ModelRecord, TaskRecord};
use meshml_storage::TargetSchema;

use crate::job::{
    job_owner, parse_task_id, task_id, JobRequest, JobSummary, TaskDone, TaskSpec, TestReport,
};
use crate::mesh::{Mesh, MeshError};
use crate::scheduler::{Command, Scheduler, TaskKey};

/// How often the driver looks for chunks with too few copies.
pub const REPAIR_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Chunks re-replicated per repair round, at most.
pub const REPAIR_BATCH: usize = 64;

/// How long a member whose assignment could not be delivered gets no tasks.
pub const UNREACHABLE_FOR: std::time::Duration = std::time::Duration::from_secs(3);

/// Attempts a task gets before its job fails.
pub const MAX_ATTEMPTS: u32 = 4;

/// A worker's report, waiting for the next round.
#[derive(Debug, Clone)]
pub struct Report {
    /// Job id.
    pub job: String,
    /// Task id.
    pub task: String,
    /// The member that ran it.
    pub from: u64,
    /// The outcome.
    pub outcome: Result<TaskDone, RemoteError>,
    /// The assignment never reached the member (it is unreachable): the member, not the
    /// task, is at fault.
    pub unreachable: bool,
}

/// Where reports wait for the driver's next round, with a wake-up for it: a report starts a
/// round at once instead of waiting for the next tick (short tasks would otherwise run one
/// per tick and slot).
#[derive(Debug, Default)]
pub struct InboxQueue {
    reports: Mutex<Vec<Report>>,
    arrived: tokio::sync::Notify,
}

impl InboxQueue {
    /// Adds a report and wakes the driver.
    pub fn push(&self, r: Report) {
        self.reports.lock().expect("inbox").push(r);
        self.arrived.notify_one();
    }

    /// Takes every waiting report.
    pub fn take(&self) -> Vec<Report> {
        std::mem::take(&mut *self.reports.lock().expect("inbox"))
    }

    /// Resolves once a report has arrived since the last call.
    pub async fn arrived(&self) {
        self.arrived.notified().await;
    }
}

/// Where reports wait; shared with the request handler.
pub type Inbox = Arc<InboxQueue>;

/// One task of the current stage.
#[derive(Debug, Clone)]
enum Slot {
    Waiting,
    Done { done: TaskDone, holders: Vec<u64> },
}

struct Run {
    request: JobRequest,
    planner: Planner,
    stage: u32,
    tasks: Vec<Task>,
    slots: Vec<Slot>,
    prefer: Vec<u64>,
}

/// The board: owned by one driver (one term).
pub struct Board {
    mesh: Mesh,
    term: u64,
    scheduler: Scheduler,
    runs: BTreeMap<String, Run>,
    inbox: Inbox,
    local: Option<Arc<crate::worker::Worker>>,
    last_repair: Option<std::time::Instant>,
    requeued: std::collections::HashMap<TaskKey, u32>,
    unreachable: std::collections::HashMap<u64, std::time::Instant>,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board")
            .field("term", &self.term)
            .field("jobs", &self.runs.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Copies of a model artifact the driver keeps (capped by the live members).
const MODEL_REPLICAS: usize = 2;

/// The tasks of a finished stage whose outputs could not be read back, and why the last
/// one could not.
#[derive(Debug, Default)]
struct LostOutputs {
    tasks: Vec<usize>,
    why: String,
}

/// What a repaired chunk belongs to.
#[derive(Debug)]
enum Held {
    /// A dataset's chunk.
    Dataset(String),
    /// A model version's artifact.
    Model(String, u32),
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The data summary planning needs, from a manifest.
pub fn summary_of(m: &meshml_storage::DatasetManifest) -> Result<DataSummary, MeshError> {
    let labels = match &m.target {
        TargetSchema::Classes { classes, .. } => classes.labels().to_vec(),
        TargetSchema::Values => Vec::new(),
    };
    Ok(DataSummary {
        n_samples: m.rows as usize,
        n_classes: labels.len(),
        labels,
        features: m.feature_names.clone(),
        target: m.target_name.clone(),
    })
}

impl Board {
    /// A board for the driver of `term`; reports arrive in `inbox`; tasks placed on this
    /// node go straight to its `local` worker.
    pub fn new(
        mesh: Mesh,
        term: u64,
        inbox: Inbox,
        local: Option<Arc<crate::worker::Worker>>,
    ) -> Self {
        Self {
            mesh,
            term,
            scheduler: Scheduler::new(MAX_ATTEMPTS),
            runs: BTreeMap::new(),
            inbox,
            local,
            last_repair: None,
            requeued: Default::default(),
            unreachable: Default::default(),
        }
    }

    /// Jobs this board runs.
    pub fn jobs(&self) -> usize {
        self.runs.len()
    }

    /// One round (see the module docs).
    pub async fn round(&mut self) {
        self.sync_nodes().await;
        if self.last_repair.is_none_or(|t| t.elapsed() >= REPAIR_EVERY) {
            self.last_repair = Some(std::time::Instant::now());
            self.repair().await;
        }
        self.sync_jobs().await;
        let reports: Vec<Report> = self.inbox.take();
        // A reported success frees its slot at once: the worker is idle while its output
        // is copied and its completion committed, so it gets its next task first.
        for r in reports.iter().filter(|r| r.outcome.is_ok()) {
            self.scheduler.finished(&TaskKey {
                job: r.job.clone(),
                task: r.task.clone(),
            });
        }
        self.dispatch().await;
        for r in reports {
            self.apply(r).await;
        }
        let ready: Vec<String> = self
            .runs
            .iter()
            .filter(|(_, r)| r.slots.iter().all(|s| matches!(s, Slot::Done { .. })))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ready {
            self.advance(&id).await;
        }
        self.dispatch().await;
    }

    async fn dispatch(&mut self) {
        for cmd in self.scheduler.dispatch() {
            match cmd {
                Command::Assign { key, node, attempt } => self.send(key, node, attempt),
                Command::Abandon { key, error } => self.fail(&key.job, error).await,
            }
        }
    }

    /// A reported success that could not be copied or recorded: its slot was freed when
    /// the report came, so it is queued again (a bounded number of times).
    async fn requeue(&mut self, key: TaskKey, why: &str) {
        let n = self.requeued.entry(key.clone()).or_insert(0);
        *n += 1;
        if *n > MAX_ATTEMPTS {
            self.fail(
                &key.job,
                format!(
                    "task {}: {why} (gave up after {MAX_ATTEMPTS} tries)",
                    key.task
                ),
            )
            .await;
            return;
        }
        let prefer = self
            .runs
            .get(&key.job)
            .map(|r| r.prefer.clone())
            .unwrap_or_default();
        self.scheduler.submit(key, prefer);
    }

    /// Restores the copy count of chunks that lost holders (a member removed): each gets
    /// new holders by rendezvous rank among the live members, which fetch it from a live
    /// holder; the new location is recorded once stored. At most [`REPAIR_BATCH`] chunks
    /// per round.
    async fn repair(&mut self) {
        let live: Vec<u64> = self
            .mesh
            .live_members()
            .await
            .into_iter()
            .map(|m| m.0)
            .collect();
        // Dataset chunks short of their replica count, and model artifacts with fewer than
        // MODEL_REPLICAS copies.
        let short: Vec<(Held, meshml_protocol::ChunkId, Vec<u64>, usize)> =
            self.mesh.state().read(|s| {
                let mut out = Vec::new();
                for (name, m) in &s.datasets {
                    let want = s
                        .dataset_replicas
                        .get(name)
                        .copied()
                        .unwrap_or(1)
                        .min(live.len());
                    for c in &m.chunks {
                        let holders = s.chunk_locations.get(&c.id).cloned().unwrap_or_default();
                        if holders.len() < want && out.len() < REPAIR_BATCH {
                            out.push((Held::Dataset(name.clone()), c.id, holders, want));
                        }
                    }
                }
                let want = MODEL_REPLICAS.min(live.len());
                for (name, versions) in &s.models {
                    for (v, r) in versions {
                        if r.locations.len() < want && out.len() < REPAIR_BATCH {
                            out.push((
                                Held::Model(name.clone(), *v),
                                r.artifact,
                                r.locations.clone(),
                                want,
                            ));
                        }
                    }
                }
                out
            });
        for (what, chunk, holders, want) in short {
            let Some(source) = holders.iter().find(|h| live.contains(h)).copied() else {
                tracing::warn!(?what, %chunk, "no live copy left");
                continue;
            };
            let targets: Vec<u64> = by_rank(&chunk, &live)
                .into_iter()
                .filter(|n| !holders.contains(n))
                .take(want - holders.len())
                .collect();
            for target in targets {
                let Some(src) = self.mesh.peer_of(source) else {
                    continue;
                };
                let owner = match &what {
                    Held::Dataset(d) => crate::mesh::dataset_owner(d),
                    Held::Model(m, _) => format!("model.{m}"),
                };
                let stored = self.replicate_to(owner, chunk, src, target).await;
                if stored == Response::Ack {
                    let cmd = match &what {
                        Held::Dataset(_) => ClusterCommand::AddChunkLocation {
                            chunk,
                            member: target,
                        },
                        Held::Model(name, version) => ClusterCommand::AddModelLocation {
                            name: name.clone(),
                            version: *version,
                            member: target,
                        },
                    };
                    let r = self.mesh.propose(cmd).await;
                    tracing::info!(?what, %chunk, member = target, ok = ?r.map(|r| r.ok), "copy made");
                } else {
                    tracing::info!(?what, %chunk, member = target, answer = ?stored, "copy failed; will retry");
                }
            }
        }
    }

    async fn sync_nodes(&mut self) {
        self.unreachable
            .retain(|_, t| t.elapsed() < UNREACHABLE_FOR);
        let mut live = self.mesh.live_members().await;
        live.retain(|m| !self.unreachable.contains_key(&m.0));
        let up: BTreeSet<u64> = live.iter().map(|m| m.0).collect();
        for gone in self
            .scheduler
            .nodes()
            .into_iter()
            .filter(|n| !up.contains(n))
        {
            tracing::info!(node = gone, "member lost; its tasks go back to the queue");
            for cmd in self.scheduler.node_down(gone) {
                if let Command::Abandon { key, error } = cmd {
                    self.fail(&key.job, error).await;
                }
            }
        }
        for (id, _, cores) in live {
            self.scheduler.node_up(id, cores);
        }
    }

    async fn sync_jobs(&mut self) {
        let running: BTreeMap<String, JobRecord> = self.mesh.state().read(|s| {
            s.jobs
                .iter()
                .filter(|(_, j)| j.state == JobState::Running)
                .map(|(id, j)| (id.clone(), j.clone()))
                .collect()
        });
        let ended: Vec<String> = self
            .runs
            .keys()
            .filter(|id| !running.contains_key(*id))
            .cloned()
            .collect();
        for id in ended {
            self.scheduler.cancel_job(&id);
            self.runs.remove(&id);
        }
        for (id, record) in running {
            if !self.runs.contains_key(&id) {
                if let Err(e) = self.start(&id, &record).await {
                    if e.status == 503 {
                        tracing::debug!(job = %id, cause = %e, "job not resumed yet");
                    } else {
                        self.fail(&id, e.message).await;
                    }
                }
            }
        }
    }

    /// Rebuilds a job from its record and queues the tasks of its current stage that
    /// have not completed.
    async fn start(&mut self, id: &str, record: &JobRecord) -> Result<(), MeshError> {
        let request: JobRequest = rmp_serde::from_slice(&record.spec)
            .map_err(|e| MeshError::bad(format!("job {id}: unreadable specification: {e}")))?;
        let (manifest, prefer) = self
            .mesh
            .state()
            .read(|s| {
                let m = s.datasets.get(&request.dataset)?.clone();
                let mut held: BTreeMap<u64, usize> = BTreeMap::new();
                for c in &m.chunks {
                    for h in s.chunk_locations.get(&c.id).into_iter().flatten() {
                        *held.entry(*h).or_default() += 1;
                    }
                }
                let most = held.values().copied().max().unwrap_or(0);
                let prefer = held
                    .into_iter()
                    .filter(|(_, n)| *n == most)
                    .map(|(h, _)| h)
                    .collect::<Vec<_>>();
                Some((m, prefer))
            })
            .ok_or_else(|| MeshError::not_found(format!("no dataset '{}'", request.dataset)))?;
        let mut planner = Planner::new(request.job.clone(), summary_of(&manifest)?)
            .map_err(|e| MeshError::bad(e.to_string()))?;
        let mut stage = 0u32;
        loop {
            let step = planner.step().map_err(|e| MeshError::bad(e.to_string()))?;
            let tasks = match step {
                Step::Done(result) => {
                    // Every stage had finished when the previous driver stopped.
                    self.finish(id, &request, &planner, *result, &[]).await;
                    return Ok(());
                }
                Step::Run(tasks) => tasks,
            };
            let ids: Vec<String> = (0..tasks.len() as u32).map(|i| task_id(stage, i)).collect();
            let slots: Vec<Slot> = ids
                .iter()
                .zip(&tasks)
                .map(|(t, task)| match record.tasks.get(t) {
                    Some(TaskRecord {
                        state: TaskState::Succeeded,
                        output: Some(output),
                        holders,
                        score,
                        ..
                    }) => Slot::Done {
                        done: TaskDone {
                            output: *output,
                            score: *score,
                            has_payload: task_has_payload(task),
                            fit_ms: 0,
                        },
                        holders: holders.clone(),
                    },
                    _ => Slot::Waiting,
                })
                .collect();
            let mut slots = slots;
            if slots.iter().all(|s| matches!(s, Slot::Done { .. })) {
                match self.outputs(id, &tasks, &slots).await {
                    Ok(outputs) => {
                        planner
                            .complete(outputs)
                            .map_err(|e| MeshError::bad(e.to_string()))?;
                        stage += 1;
                        continue;
                    }
                    Err(lost) => {
                        // Outputs whose every copy is gone (their worker, or the previous
                        // driver that ran them, was lost): those tasks run again.
                        tracing::warn!(job = %id, stage, tasks = ?lost.tasks, cause = %lost.why, "stage outputs lost; running those tasks again");
                        for i in lost.tasks {
                            slots[i] = Slot::Waiting;
                        }
                    }
                }
            }
            self.queue_stage(id, stage, &slots, |t| record.tasks.contains_key(t), &prefer)
                .await?;
            self.runs.insert(
                id.to_string(),
                Run {
                    request,
                    planner,
                    stage,
                    tasks,
                    slots,
                    prefer,
                },
            );
            return Ok(());
        }
    }

    /// Records the tasks of a stage that the replicated state lacks (`recorded` says which
    /// it has), then queues those not done yet.
    async fn queue_stage(
        &mut self,
        id: &str,
        stage: u32,
        slots: &[Slot],
        recorded: impl Fn(&str) -> bool,
        prefer: &[u64],
    ) -> Result<(), MeshError> {
        let ids: Vec<String> = (0..slots.len() as u32).map(|i| task_id(stage, i)).collect();
        let missing: Vec<String> = ids.iter().filter(|t| !recorded(t)).cloned().collect();
        if !missing.is_empty() {
            let r = self
                .mesh
                .propose(ClusterCommand::AddTasks {
                    job: id.to_string(),
                    tasks: missing,
                })
                .await?;
            if !r.ok {
                return Err(MeshError::conflict(r.error.unwrap_or_default()));
            }
        }
        for (task, slot) in ids.into_iter().zip(slots) {
            if matches!(slot, Slot::Waiting) {
                self.scheduler.submit(
                    TaskKey {
                        job: id.to_string(),
                        task,
                    },
                    prefer.to_vec(),
                );
            }
        }
        tracing::info!(job = %id, stage, tasks = slots.len(), "stage queued");
        Ok(())
    }

    /// The outputs of a finished stage, in task order: scores from the records, models
    /// read back from the workers that hold them. When some cannot be read (every holder
    /// gone, or a copy unreadable) the error lists those tasks, to be run again.
    async fn outputs(
        &self,
        job: &str,
        tasks: &[Task],
        slots: &[Slot],
    ) -> Result<Vec<TaskOutput>, LostOutputs> {
        let mut out = Vec::with_capacity(slots.len());
        let mut lost = LostOutputs::default();
        for (i, (t, s)) in tasks.iter().zip(slots).enumerate() {
            let Slot::Done { done, holders } = s else {
                lost.tasks.push(i);
                lost.why = "stage not finished".into();
                continue;
            };
            if !task_has_payload(t) {
                out.push(TaskOutput {
                    score: done.score,
                    model: None,
                    fit_ms: done.fit_ms,
                    predictions: None,
                    labels: Vec::new(),
                });
                continue;
            }
            let bytes = match self.fetch_output(job, done.output, holders).await {
                Ok(b) => b,
                Err(e) => {
                    lost.tasks.push(i);
                    lost.why = e.message;
                    continue;
                }
            };
            // Decoding a batch of trees takes a while: not on the driver's thread.
            let decoded =
                tokio::task::spawn_blocking(move || rmp_serde::from_slice::<TaskOutput>(&bytes))
                    .await;
            match decoded {
                Ok(Ok(o)) => out.push(o),
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

    /// A task output from the first holder that has it (this node first).
    async fn fetch_output(
        &self,
        job: &str,
        id: meshml_protocol::ChunkId,
        holders: &[u64],
    ) -> Result<Vec<u8>, MeshError> {
        self.mesh
            .chunk_from(id, holders)
            .await
            .map(|(bytes, _)| bytes)
            .map_err(|why| {
                MeshError::unavailable(format!("an output of job {job} is unreachable: {why}"))
            })
    }

    async fn apply(&mut self, r: Report) {
        let key = TaskKey {
            job: r.job.clone(),
            task: r.task.clone(),
        };
        let Some((stage, index)) = parse_task_id(&r.task) else {
            return;
        };
        let Some(run) = self.runs.get_mut(&r.job) else {
            return;
        };
        if run.stage != stage || index as usize >= run.slots.len() {
            return;
        }
        if matches!(run.slots[index as usize], Slot::Done { .. }) {
            self.scheduler.finished(&key);
            return;
        }
        match r.outcome {
            Ok(done) => {
                // A model output gets a second copy here before it is recorded, so that
                // losing either its worker or this driver does not lose it.
                let me = self.mesh.id();
                let mut holders = vec![r.from];
                if done.has_payload && r.from != me {
                    match self.fetch_output(&r.job, done.output, &[r.from]).await {
                        Ok(bytes) => {
                            let owner = job_owner(&r.job);
                            if self
                                .mesh
                                .with_store(move |s| s.put_pinned(&owner, &bytes))
                                .await
                                .is_ok()
                            {
                                holders.push(me);
                            }
                        }
                        Err(e) => {
                            tracing::info!(job = %r.job, cause = %e, "output not copied; running the task again");
                            self.requeue(key, &e.message).await;
                            return;
                        }
                    }
                }
                let record = TaskRecord {
                    state: TaskState::Succeeded,
                    output: Some(done.output),
                    holders: holders.clone(),
                    score: done.score,
                    attempts: 1,
                    error: None,
                };
                let cmd = ClusterCommand::UpdateTask {
                    job: r.job.clone(),
                    task: r.task.clone(),
                    record,
                };
                match self.mesh.propose(cmd).await {
                    Ok(resp)
                        if resp.ok
                            || resp
                                .error
                                .as_deref()
                                .is_some_and(|e| e.contains("already finished")) =>
                    {
                        self.scheduler.finished(&key);
                        if let Some(run) = self.runs.get_mut(&r.job) {
                            run.slots[index as usize] = Slot::Done { done, holders };
                        }
                    }
                    Ok(resp) => {
                        tracing::warn!(job = %r.job, cause = ?resp.error, "task result not recorded")
                    }
                    Err(e) => {
                        tracing::warn!(job = %r.job, cause = %e, "task result not recorded; retrying the task");
                        self.requeue(key, &e.message).await;
                    }
                }
            }
            Err(e) if r.unreachable => {
                // Keep tasks off the member until membership decides about it; its tasks
                // (this one included) go back to the queue.
                tracing::info!(member = r.from, cause = %e.message, "member unreachable; its tasks go elsewhere");
                self.unreachable.insert(r.from, std::time::Instant::now());
                for cmd in self.scheduler.node_down(r.from) {
                    if let Command::Abandon { key, error } = cmd {
                        self.fail(&key.job, error).await;
                    }
                }
            }
            Err(e) => {
                tracing::info!(job = %r.job, task = %r.task, cause = %e.message, retryable = e.retryable, "task failed");
                if let Some(Command::Abandon { key, error }) =
                    self.scheduler.failed(&key, e.retryable, &e.message)
                {
                    self.fail(&key.job, format!("task {}: {error}", key.task))
                        .await;
                }
            }
        }
    }

    async fn advance(&mut self, id: &str) {
        let Some(run) = self.runs.get(id) else { return };
        let started = std::time::Instant::now();
        let outputs = match self.outputs(id, &run.tasks, &run.slots).await {
            Ok(o) => o,
            Err(lost) => {
                // Their holders are unreachable: run those tasks again elsewhere.
                tracing::warn!(job = %id, tasks = ?lost.tasks, cause = %lost.why, "stage outputs unavailable; running those tasks again");
                let Some(run) = self.runs.get_mut(id) else {
                    return;
                };
                for i in lost.tasks {
                    run.slots[i] = Slot::Waiting;
                }
                let (stage, slots, prefer) = (run.stage, run.slots.clone(), run.prefer.clone());
                if let Err(e) = self.queue_stage(id, stage, &slots, |_| true, &prefer).await {
                    tracing::warn!(job = %id, cause = %e, "stage not queued again; retrying");
                    self.runs.remove(id);
                }
                return;
            }
        };
        let outputs_ms = started.elapsed().as_millis() as u64;
        let Some(run) = self.runs.get_mut(id) else {
            return;
        };
        let started = std::time::Instant::now();
        let step = match run.planner.complete(outputs) {
            Ok(s) => s,
            Err(e) => {
                self.fail(id, e.to_string()).await;
                return;
            }
        };
        match step {
            Step::Done(result) => {
                let reduce_ms = started.elapsed().as_millis() as u64;
                if let Some(run) = self.runs.remove(id) {
                    let end = [("outputs", outputs_ms), ("reduce", reduce_ms)];
                    self.finish(id, &run.request, &run.planner, *result, &end)
                        .await;
                }
            }
            Step::Run(tasks) => {
                run.stage += 1;
                run.slots = vec![Slot::Waiting; tasks.len()];
                run.tasks = tasks;
                let (stage, slots, prefer) = (run.stage, run.slots.clone(), run.prefer.clone());
                if let Err(e) = self
                    .queue_stage(id, stage, &slots, |_| false, &prefer)
                    .await
                {
                    // The next driver round rebuilds the job from the replicated state.
                    tracing::warn!(job = %id, cause = %e, "next stage not recorded; retrying");
                    self.runs.remove(id);
                }
            }
        }
    }

    fn send(&mut self, key: TaskKey, node: u64, attempt: u32) {
        let Some(run) = self.runs.get(&key.job) else {
            self.scheduler.cancel_job(&key.job);
            return;
        };
        let Some((_, index)) = parse_task_id(&key.task) else {
            return;
        };
        let spec = TaskSpec {
            dataset: run.request.dataset.clone(),
            task: run.tasks[index as usize].clone(),
        };
        let request = Request::AssignTask {
            job: meshml_protocol::JobId::new(key.job.clone()),
            task: meshml_protocol::TaskId::new(key.task.clone()),
            term: self.term,
            spec: rmp_serde::to_vec_named(&spec).expect("tasks encode"),
        };
        let (mesh, inbox) = (self.mesh.clone(), self.inbox.clone());
        tracing::debug!(job = %key.job, task = %key.task, node, attempt, "assigning");
        let local = self.local.clone().filter(|_| node == self.mesh.id());
        actix_rt::spawn(async move {
            let answer = match (local, mesh.peer_of(node)) {
                (Some(worker), _) => {
                    let Request::AssignTask {
                        job,
                        task,
                        term,
                        spec,
                    } = request
                    else {
                        unreachable!("an assignment")
                    };
                    match worker.assign(job.to_string(), task.to_string(), term, &spec) {
                        Response::Ack => Ok(()),
                        Response::Error(e) => Err((format!("{:?}: {}", e.code, e.message), false)),
                        other => Err((format!("unexpected answer {other:?}"), false)),
                    }
                }
                (None, None) => Err((format!("member {node} has no address"), true)),
                (None, Some(peer)) => match mesh.client().request(peer, request).await {
                    Ok(Response::Ack) => Ok(()),
                    Ok(Response::Error(e)) => Err((format!("{:?}: {}", e.code, e.message), false)),
                    Ok(other) => Err((format!("unexpected answer {other:?}"), false)),
                    Err(e) => Err((e.to_string(), true)),
                },
            };
            if let Err((message, unreachable)) = answer {
                inbox.push(Report {
                    job: key.job,
                    task: key.task,
                    from: node,
                    outcome: Err(RemoteError {
                        code: ErrorCode::Unavailable,
                        message: format!("assignment to member {node} failed: {message}"),
                        retryable: true,
                    }),
                    unreachable,
                });
            }
        });
    }

    async fn fail(&mut self, id: &str, error: String) {
        tracing::warn!(job = %id, %error, "job failed");
        self.scheduler.cancel_job(id);
        self.runs.remove(id);
        let _ = self
            .mesh
            .propose(ClusterCommand::FinishJob {
                job: id.to_string(),
                state: JobState::Failed,
                at_ms: now_ms(),
                error: Some(error),
                result: Vec::new(),
            })
            .await;
    }

    /// Registers a finished job's result and records the job as succeeded (the caller has
    /// taken it off the board).
    async fn finish(
        &mut self,
        id: &str,
        request: &JobRequest,
        planner: &Planner,
        result: JobResult,
        end: &[(&str, u64)],
    ) {
        match self.register(id, request, planner, result).await {
            Ok(mut summary) => {
                for (phase, ms) in end {
                    summary.end_ms.insert(phase.to_string(), *ms);
                }
                tracing::info!(job = %id, end_ms = ?summary.end_ms, "job ending timed");
                let r = self
                    .mesh
                    .propose(ClusterCommand::FinishJob {
                        job: id.to_string(),
                        state: JobState::Succeeded,
                        at_ms: now_ms(),
                        error: None,
                        result: rmp_serde::to_vec_named(&summary).expect("summaries encode"),
                    })
                    .await;
                tracing::info!(job = %id, ok = ?r.map(|r| r.ok), "job finished");
                let owner = job_owner(id);
                let _ = self.mesh.with_store(move |s| s.unpin(&owner)).await;
            }
            Err(e) => self.fail(id, e.message).await,
        }
    }

    /// Copies a new artifact (stored here) to other live members, by rendezvous rank, until
    /// it has [`MODEL_REPLICAS`] copies; returns the holders, this node first. Done before
    /// the model is registered and the job reported finished: a driver that crashed right
    /// after would otherwise take the only copy with it (the simulator's driver-kill
    /// scenario lost a model so). A member that fails is skipped; with none left the repair
    /// loop copies the artifact later.
    async fn second_copies(&self, owner: &str, chunk: meshml_protocol::ChunkId) -> Vec<u64> {
        let me = self.mesh.id();
        let mut locations = vec![me];
        let others: Vec<u64> = self
            .mesh
            .live_members()
            .await
            .into_iter()
            .map(|m| m.0)
            .filter(|m| *m != me)
            .collect();
        let source = self.mesh.client().local_peer_id();
        for target in by_rank(&chunk, &others) {
            if locations.len() >= MODEL_REPLICAS {
                break;
            }
            match self
                .replicate_to(owner.to_string(), chunk, source, target)
                .await
            {
                Response::Ack => locations.push(target),
                other => {
                    tracing::info!(member = target, answer = ?other, "artifact copy failed; trying another member")
                }
            }
        }
        locations
    }

    /// Has member `target` fetch `chunk` from `source` and keep it for `owner` (this node
    /// fetches it itself); the member's answer, or why it could not be asked.
    async fn replicate_to(
        &self,
        owner: String,
        chunk: meshml_protocol::ChunkId,
        source: libp2p::PeerId,
        target: u64,
    ) -> Response {
        if target == self.mesh.id() {
            return self
                .mesh
                .serve_replicate(owner, vec![chunk], &source.to_string())
                .await;
        }
        let unavailable = |message: String| {
            Response::Error(RemoteError {
                code: ErrorCode::Unavailable,
                message,
                retryable: true,
            })
        };
        let Some(peer) = self.mesh.peer_of(target) else {
            return unavailable(format!("member {target} has no address"));
        };
        let req = Request::Replicate {
            owner,
            chunks: vec![chunk],
            source: source.to_string(),
        };
        self.mesh
            .client()
            .request(peer, req)
            .await
            .unwrap_or_else(|e| unavailable(e.to_string()))
    }

    /// Registers the job's model (if any), scores it on the test dataset, and summarises.
    async fn register(
        &self,
        id: &str,
        request: &JobRequest,
        planner: &Planner,
        result: JobResult,
    ) -> Result<JobSummary, MeshError> {
        let mut summary = JobSummary {
            tasks: result.tasks,
            cv: result.cv.clone(),
            model: None,
            test: None,
            end_ms: Default::default(),
        };
        let Some(model) = result.model else {
            return Ok(summary);
        };
        let data = self.mesh.load_dataset(&request.dataset).await?;
        let estimator = planner
            .final_estimator(result.cv.as_ref())
            .map_err(|e| MeshError::bad(e.to_string()))?;
        let provenance = Provenance {
            created_at_unix: now_ms() / 1000,
            meshml_version: env!("CARGO_PKG_VERSION").to_string(),
            dataset: Some(request.dataset.clone()),
            n_samples: data.n_samples(),
            seed: Some(request.job.seed),
            job: Some(id.to_string()),
        };
        // Building and encoding the artifact of a large ensemble takes a while: not on
        // the driver's thread.
        let started = std::time::Instant::now();
        let fitted = model.clone();
        let (kind, bytes) = tokio::task::spawn_blocking(move || {
            let artifact = ModelArtifact::new(estimator, fitted, &data, provenance)?;
            Ok::<_, meshml_models::ModelError>((artifact.kind(), artifact.to_bytes()?))
        })
        .await
        .map_err(|e| MeshError::internal(e.to_string()))?
        .map_err(|e| MeshError::bad(e.to_string()))?;
        summary
            .end_ms
            .insert("artifact".into(), started.elapsed().as_millis() as u64);
        let started = std::time::Instant::now();
        let name = request.model_name();
        let owner = format!("model.{name}");
        let chunk = {
            let owner = owner.clone();
            self.mesh
                .with_store(move |s| s.put_pinned(&owner, &bytes))
                .await?
        };
        let locations = self.second_copies(&owner, chunk).await;
        let r = self
            .mesh
            .propose(ClusterCommand::RegisterModel {
                name: name.clone(),
                record: ModelRecord {
                    kind,
                    artifact: chunk,
                    locations,
                },
            })
            .await?;
        summary.model = Some(format!("{name}@{}", r.value.unwrap_or(0)));
        summary
            .end_ms
            .insert("store".into(), started.elapsed().as_millis() as u64);
        if let Some(test) = &request.test_dataset {
            let started = std::time::Instant::now();
            summary.test = Some(score_on(&self.mesh, test, &model).await?);
            summary
                .end_ms
                .insert("test".into(), started.elapsed().as_millis() as u64);
        }
        Ok(summary)
    }
}

/// `members` in rendezvous order for `chunk` (the placement rule of every copy).
fn by_rank(chunk: &meshml_protocol::ChunkId, members: &[u64]) -> Vec<u64> {
    let names: Vec<meshml_protocol::NodeId> = members
        .iter()
        .map(|id| meshml_protocol::NodeId::new(id.to_string()))
        .collect();
    meshml_storage::placement::rank(chunk, &names)
        .into_iter()
        .filter_map(|n| n.as_str().parse::<u64>().ok())
        .collect()
}

async fn score_on(
    mesh: &Mesh,
    dataset: &str,
    model: &FittedModel,
) -> Result<TestReport, MeshError> {
    let data = mesh.load_dataset(dataset).await?;
    let model = model.clone();
    let name = dataset.to_string();
    tokio::task::spawn_blocking(move || -> Result<TestReport, String> {
        let report = |metric: &str, score: f64| TestReport {
            dataset: name.clone(),
            metric: metric.to_string(),
            score,
            labels: Vec::new(),
            counts: Vec::new(),
        };
        if let FittedModel::MultiOutput(m) = &model {
            let (mean, _) = m.evaluate(&data).map_err(|e| e.to_string())?;
            return Ok(report("mean score", mean));
        }
        if model.is_regressor() {
            return Ok(report(
                "r2",
                model.evaluate(&data).map_err(|e| e.to_string())?,
            ));
        }
        let (y, classes) = data.class_target().map_err(|e| e.to_string())?;
        let pred = model.predict(data.x()).map_err(|e| e.to_string())?;
        let cm = ConfusionMatrix::new(y, &pred, classes.labels()).map_err(|e| e.to_string())?;
        Ok(TestReport {
            labels: classes.labels().to_vec(),
            counts: cm.counts().to_vec(),
            ..report("accuracy", cm.accuracy())
        })
    })
    .await
    .map_err(|e| MeshError::internal(e.to_string()))?
    .map_err(MeshError::bad)
}

fn task_has_payload(t: &Task) -> bool {
    match &t.work {
        meshml_models::plan::Work::Fit {
            keep_model,
            predict_eval,
            ..
        } => *keep_model || *predict_eval,
        meshml_models::plan::Work::Trees { .. } | meshml_models::plan::Work::Stack { .. } => true,
    }
}
