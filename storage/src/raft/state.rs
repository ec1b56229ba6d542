//! The replicated cluster state and the commands that change it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::DatasetManifest;
use meshml_protocol::{ChunkId, JobId, TaskId, TaskState};

/// A member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Addresses it listens on.
    pub addrs: Vec<String>,
    /// Worker slots.
    pub cores: u32,
    /// Memory, bytes.
    pub memory_bytes: u64,
    /// Free disk, bytes.
    pub free_disk_bytes: u64,
    /// When its process started (milliseconds since the Unix epoch; 0 if unknown): a new
    /// value means it restarted.
    #[serde(default)]
    pub started_ms: u64,
}

/// A registered model version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// Estimator kind.
    pub kind: String,
    /// Content address of the artifact.
    pub artifact: ChunkId,
    /// Members holding a copy.
    pub locations: Vec<u64>,
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepted and not finished.
    Running,
    /// Finished with a result.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Cancelled by a user.
    Cancelled,
}

/// One task of a job as the cluster records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Its state.
    pub state: TaskState,
    /// Content address of its output (a chunk on each of `holders`), once succeeded.
    pub output: Option<ChunkId>,
    /// The members holding the output.
    pub holders: Vec<u64>,
    /// Its score, for a scoring task.
    pub score: Option<f64>,
    /// Attempts so far.
    pub attempts: u32,
    /// The last failure.
    pub error: Option<String>,
    /// Warnings its fit raised (a solver stopped at `max_iter`), kept for a scoring task
    /// whose record is all of its output.
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl TaskRecord {
    /// A task waiting for a slot.
    pub fn queued() -> Self {
        Self {
            state: TaskState::Queued,
            output: None,
            holders: Vec::new(),
            score: None,
            attempts: 0,
            error: None,
            warnings: Vec::new(),
        }
    }
}

/// A job: its specification, where it stands, and its tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job specification (MessagePack of the node's job request).
    #[serde(with = "serde_bytes")]
    pub spec: Vec<u8>,
    /// A short description for listings.
    pub description: String,
    /// Where it stands.
    pub state: JobState,
    /// Milliseconds since the Unix epoch at submission.
    pub submitted_ms: u64,
    /// ... and when it finished.
    pub finished_ms: Option<u64>,
    /// Tasks by id (in plan order).
    pub tasks: BTreeMap<TaskId, TaskRecord>,
    /// Why it failed.
    pub error: Option<String>,
    /// Its result summary (MessagePack), once succeeded.
    #[serde(with = "serde_bytes", default)]
    pub result: Vec<u8>,
    /// The last checkpoint of a data-parallel fit: a new driver resumes from it.
    #[serde(default)]
    pub checkpoint: Option<Checkpoint>,
}

/// The largest checkpoint state the replicated state keeps, bytes: a Raft entry must fit a
/// message with room to spare.
pub const MAX_CHECKPOINT_BYTES: usize = 1 << 20;

/// A data-parallel fit's state between two passes over its data, as its driver last
/// committed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The fit's state (MessagePack of the models crate's data-parallel fit).
    #[serde(with = "serde_bytes")]
    pub state: Vec<u8>,
    /// Passes over the data done.
    pub passes: u64,
    /// What the fit is doing, for people (`lbfgs iteration 12`).
    pub stage: String,
    /// The objective after the last pass, where there is one.
    pub loss: Option<f64>,
    /// Its gradient's largest component.
    pub gradient: Option<f64>,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
}

impl JobRecord {
    /// Tasks finished so far, and tasks known.
    pub fn progress(&self) -> (usize, usize) {
        let done = self
            .tasks
            .values()
            .filter(|t| t.state == TaskState::Succeeded)
            .count();
        (done, self.tasks.len())
    }
}

/// How many dataset removals the state remembers (see [`ClusterState::removed_datasets`]).
pub const REMEMBERED_REMOVALS: usize = 256;

/// A dataset removed from the mesh: its holders free the copies they keep for its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedDataset {
    /// Which removal this is (they are numbered from 1 in the order applied).
    pub id: u64,
    /// Its name.
    pub name: String,
    /// The owner its holders kept its copies for (see [`ClusterState::dataset_owners`]).
    pub owner: String,
    /// Its chunks.
    pub chunks: Vec<ChunkId>,
}

/// The owner a holder keeps a dataset's copies for when the state does not record one (a
/// dataset stored before owners were recorded).
pub fn legacy_dataset_owner(name: &str) -> String {
    format!("dataset.{name}")
}

/// Everything the cluster agrees on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Members by Raft node id.
    pub members: BTreeMap<u64, MemberInfo>,
    /// Dataset manifests by name.
    pub datasets: BTreeMap<String, DatasetManifest>,
    /// Which members hold each chunk.
    pub chunk_locations: BTreeMap<ChunkId, Vec<u64>>,
    /// Copies each dataset's chunks should have.
    #[serde(default)]
    pub dataset_replicas: BTreeMap<String, usize>,
    /// Models by name, then version.
    pub models: BTreeMap<String, BTreeMap<u32, ModelRecord>>,
    /// Aliases (`production`) per model, naming a version.
    pub aliases: BTreeMap<String, BTreeMap<String, u32>>,
    /// Jobs by id.
    pub jobs: BTreeMap<JobId, JobRecord>,
    /// The last [`REMEMBERED_REMOVALS`] datasets removed, oldest first, so that every
    /// holder frees its copies, however briefly the dataset lived and even if the holder
    /// was down when it was removed. Storing a dataset of the same name again forgets it.
    #[serde(default)]
    pub removed_datasets: Vec<RemovedDataset>,
    /// Removals applied so far (numbers them).
    #[serde(default)]
    pub removals: u64,
    /// The owner under which each dataset's holders keep its copies: unique to each time a
    /// dataset is stored, so that removing one never touches the copies of another stored
    /// later under the same name.
    #[serde(default)]
    pub dataset_owners: BTreeMap<String, String>,
}

impl ClusterState {
    /// The owner of dataset `name`'s copies on its holders.
    pub fn dataset_owner(&self, name: &str) -> String {
        self.dataset_owners
            .get(name)
            .cloned()
            .unwrap_or_else(|| legacy_dataset_owner(name))
    }
}

/// A change to the cluster state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ClusterCommand {
    /// Adds or updates a member.
    PutMember {
        /// Raft node id.
        id: u64,
        /// What it is.
        info: MemberInfo,
    },
    /// Removes a member (and its chunk and model locations).
    RemoveMember {
        /// Raft node id.
        id: u64,
    },
    /// Records a dataset; fails if the name is taken.
    /// Records a dataset with the members holding each chunk; fails if the name is
    /// taken.
    PutDataset {
        /// The manifest.
        manifest: DatasetManifest,
        /// Holders of each chunk.
        locations: Vec<(ChunkId, Vec<u64>)>,
        /// Copies each chunk should have (the driver restores them after a member leaves).
        replicas: usize,
        /// The owner its holders keep the copies for (absent: `dataset.NAME`).
        #[serde(default)]
        owner: Option<String>,
    },
    /// Removes a dataset.
    RemoveDataset {
        /// Its name.
        name: String,
    },
    /// Records that `member` holds `chunk`.
    AddChunkLocation {
        /// The chunk.
        chunk: ChunkId,
        /// The member.
        member: u64,
    },
    /// Registers the next version of a model; the response carries the version.
    RegisterModel {
        /// Model name.
        name: String,
        /// The record.
        record: ModelRecord,
    },
    /// Records that `member` holds a copy of a model version's artifact.
    AddModelLocation {
        /// Model name.
        name: String,
        /// Version.
        version: u32,
        /// The member.
        member: u64,
    },
    /// Points an alias at a version.
    SetAlias {
        /// Model name.
        name: String,
        /// Alias (`production`).
        alias: String,
        /// Version.
        version: u32,
    },
    /// Records a job.
    SubmitJob {
        /// Job id.
        id: JobId,
        /// The record.
        record: JobRecord,
    },
    /// Adds tasks to a running job (a stage of its plan), queued.
    AddTasks {
        /// Job id.
        job: JobId,
        /// Task ids.
        tasks: Vec<TaskId>,
    },
    /// Changes one task's record. A finished task cannot be changed again, so a task whose
    /// completion was committed is never run twice.
    UpdateTask {
        /// Job id.
        job: JobId,
        /// Task id.
        task: TaskId,
        /// The new record.
        record: TaskRecord,
    },
    /// Ends a running job.
    FinishJob {
        /// Job id.
        job: JobId,
        /// Succeeded, Failed or Cancelled.
        state: JobState,
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// Why it failed.
        error: Option<String>,
        /// Result summary (MessagePack).
        #[serde(with = "serde_bytes")]
        result: Vec<u8>,
    },
    /// Keeps a running data-parallel fit's state (replacing the previous one).
    Checkpoint {
        /// Job id.
        job: JobId,
        /// The state.
        checkpoint: Checkpoint,
    },
    /// Several commands in one log entry, applied in order, each on its own (one that is
    /// refused does not stop the others): the driver commits the task completions that
    /// arrive together in one entry.
    Batch {
        /// The commands.
        commands: Vec<ClusterCommand>,
    },
}

/// Why a command was not applied, for callers to act on (the text in
/// [`ClusterResponse::error`] is for people).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// What the command names does not exist (member, dataset, model, job, task).
    NotFound,
    /// The name is taken.
    Exists,
    /// The task has finished; its record stays as it is.
    TaskFinished,
    /// The job has ended; nothing in it changes any more.
    JobEnded,
    /// The command itself is not valid (a job finishing as running).
    Invalid,
}

/// The outcome of a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ClusterResponse {
    /// Whether it was applied.
    pub ok: bool,
    /// Why not, when not.
    pub error: Option<String>,
    /// A number the command produced (a model version).
    pub value: Option<u64>,
    /// Why not, as a kind, when not.
    #[serde(default)]
    pub rejection: Option<Rejection>,
    /// The outcome of each command of a [`ClusterCommand::Batch`], in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub each: Vec<ClusterResponse>,
}

impl ClusterResponse {
    fn ok() -> Self {
        Self {
            ok: true,
            ..Self::default()
        }
    }

    fn fail(rejection: Rejection, msg: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(msg.into()),
            rejection: Some(rejection),
            ..Self::default()
        }
    }
}

fn finished(s: TaskState) -> bool {
    matches!(
        s,
        TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled
    )
}

impl ClusterState {
    /// Applies a command. Deterministic: every replica reaches the same state.
    pub fn apply(&mut self, cmd: &ClusterCommand) -> ClusterResponse {
        match cmd {
            ClusterCommand::PutMember { id, info } => {
                self.members.insert(*id, info.clone());
                ClusterResponse::ok()
            }
            ClusterCommand::RemoveMember { id } => {
                if self.members.remove(id).is_none() {
                    return ClusterResponse::fail(Rejection::NotFound, format!("no member {id}"));
                }
                for holders in self.chunk_locations.values_mut() {
                    holders.retain(|m| m != id);
                }
                for versions in self.models.values_mut() {
                    for r in versions.values_mut() {
                        r.locations.retain(|m| m != id);
                    }
                }
                ClusterResponse::ok()
            }
            ClusterCommand::PutDataset {
                manifest,
                locations,
                replicas,
                owner,
            } => {
                if self.datasets.contains_key(&manifest.name) {
                    return ClusterResponse::fail(
                        Rejection::Exists,
                        format!("dataset '{}' exists", manifest.name),
                    );
                }
                for (chunk, members) in locations {
                    let holders = self.chunk_locations.entry(*chunk).or_default();
                    for m in members {
                        if !holders.contains(m) {
                            holders.push(*m);
                        }
                    }
                    holders.sort_unstable();
                }
                if let Some(o) = owner {
                    self.dataset_owners.insert(manifest.name.clone(), o.clone());
                }
                self.datasets
                    .insert(manifest.name.clone(), manifest.clone());
                self.dataset_replicas
                    .insert(manifest.name.clone(), *replicas);
                ClusterResponse::ok()
            }
            ClusterCommand::RemoveDataset { name } => {
                let Some(m) = self.datasets.remove(name) else {
                    return ClusterResponse::fail(
                        Rejection::NotFound,
                        format!("no dataset '{name}'"),
                    );
                };
                self.dataset_replicas.remove(name);
                let owner = self
                    .dataset_owners
                    .remove(name)
                    .unwrap_or_else(|| legacy_dataset_owner(name));
                self.removals += 1;
                self.removed_datasets.push(RemovedDataset {
                    id: self.removals,
                    name: name.clone(),
                    owner,
                    chunks: m.chunks.iter().map(|c| c.id).collect(),
                });
                if self.removed_datasets.len() > REMEMBERED_REMOVALS {
                    let extra = self.removed_datasets.len() - REMEMBERED_REMOVALS;
                    self.removed_datasets.drain(..extra);
                }
                let still: std::collections::BTreeSet<ChunkId> = self
                    .datasets
                    .values()
                    .flat_map(|d| d.chunks.iter().map(|c| c.id))
                    .collect();
                for c in m.chunks {
                    if !still.contains(&c.id) {
                        self.chunk_locations.remove(&c.id);
                    }
                }
                ClusterResponse::ok()
            }
            ClusterCommand::AddChunkLocation { chunk, member } => {
                let holders = self.chunk_locations.entry(*chunk).or_default();
                if !holders.contains(member) {
                    holders.push(*member);
                    holders.sort_unstable();
                }
                ClusterResponse::ok()
            }
            ClusterCommand::RegisterModel { name, record } => {
                let versions = self.models.entry(name.clone()).or_default();
                let v = versions.keys().next_back().map_or(1, |v| v + 1);
                versions.insert(v, record.clone());
                ClusterResponse {
                    value: Some(u64::from(v)),
                    ..ClusterResponse::ok()
                }
            }
            ClusterCommand::AddModelLocation {
                name,
                version,
                member,
            } => {
                let Some(r) = self.models.get_mut(name).and_then(|v| v.get_mut(version)) else {
                    return ClusterResponse::fail(
                        Rejection::NotFound,
                        format!("no model {name}@{version}"),
                    );
                };
                if !r.locations.contains(member) {
                    r.locations.push(*member);
                    r.locations.sort_unstable();
                }
                ClusterResponse::ok()
            }
            ClusterCommand::SetAlias {
                name,
                alias,
                version,
            } => {
                if !self
                    .models
                    .get(name)
                    .is_some_and(|v| v.contains_key(version))
                {
                    return ClusterResponse::fail(
                        Rejection::NotFound,
                        format!("no model {name}@{version}"),
                    );
                }
                self.aliases
                    .entry(name.clone())
                    .or_default()
                    .insert(alias.clone(), *version);
                ClusterResponse::ok()
            }
            ClusterCommand::SubmitJob { id, record } => {
                if self.jobs.contains_key(id) {
                    return ClusterResponse::fail(Rejection::Exists, format!("job {id} exists"));
                }
                self.jobs.insert(id.clone(), record.clone());
                ClusterResponse::ok()
            }
            ClusterCommand::AddTasks { job, tasks } => {
                let Some(j) = self.jobs.get_mut(job) else {
                    return ClusterResponse::fail(Rejection::NotFound, format!("no job {job}"));
                };
                if j.state != JobState::Running {
                    return ClusterResponse::fail(
                        Rejection::JobEnded,
                        format!("job {job} is {:?}", j.state),
                    );
                }
                for t in tasks {
                    j.tasks.entry(*t).or_insert_with(TaskRecord::queued);
                }
                ClusterResponse::ok()
            }
            ClusterCommand::UpdateTask { job, task, record } => {
                let Some(j) = self.jobs.get_mut(job) else {
                    return ClusterResponse::fail(Rejection::NotFound, format!("no job {job}"));
                };
                if j.state != JobState::Running {
                    return ClusterResponse::fail(
                        Rejection::JobEnded,
                        format!("job {job} is {:?}", j.state),
                    );
                }
                let Some(cur) = j.tasks.get_mut(task) else {
                    return ClusterResponse::fail(
                        Rejection::NotFound,
                        format!("no task {task} in job {job}"),
                    );
                };
                // A finished task stays finished, except that a success may be replaced by
                // another: a task run again because every copy of its output was lost
                // records the new output and its holders.
                let rerun =
                    cur.state == TaskState::Succeeded && record.state == TaskState::Succeeded;
                if finished(cur.state) && !rerun {
                    return ClusterResponse::fail(
                        Rejection::TaskFinished,
                        format!("task {task} already finished ({:?})", cur.state),
                    );
                }
                *cur = record.clone();
                ClusterResponse::ok()
            }
            ClusterCommand::FinishJob {
                job,
                state,
                at_ms,
                error,
                result,
            } => {
                let Some(j) = self.jobs.get_mut(job) else {
                    return ClusterResponse::fail(Rejection::NotFound, format!("no job {job}"));
                };
                if j.state != JobState::Running {
                    return ClusterResponse::fail(
                        Rejection::JobEnded,
                        format!("job {job} already ended ({:?})", j.state),
                    );
                }
                if *state == JobState::Running {
                    return ClusterResponse::fail(
                        Rejection::Invalid,
                        "a job cannot finish as running",
                    );
                }
                j.state = *state;
                j.finished_ms = Some(*at_ms);
                j.error.clone_from(error);
                j.result.clone_from(result);
                // A finished fit resumes no more: its state leaves the replicated state.
                j.checkpoint = None;
                ClusterResponse::ok()
            }
            ClusterCommand::Checkpoint { job, checkpoint } => {
                if checkpoint.state.len() > MAX_CHECKPOINT_BYTES {
                    return ClusterResponse::fail(
                        Rejection::Invalid,
                        format!(
                            "a checkpoint of {} bytes (at most {MAX_CHECKPOINT_BYTES})",
                            checkpoint.state.len()
                        ),
                    );
                }
                let Some(j) = self.jobs.get_mut(job) else {
                    return ClusterResponse::fail(Rejection::NotFound, format!("no job {job}"));
                };
                if j.state != JobState::Running {
                    return ClusterResponse::fail(
                        Rejection::JobEnded,
                        format!("job {job} already ended ({:?})", j.state),
                    );
                }
                // A stale driver's late checkpoint never replaces a newer one.
                if j.checkpoint
                    .as_ref()
                    .is_some_and(|c| c.passes > checkpoint.passes)
                {
                    return ClusterResponse::fail(
                        Rejection::Invalid,
                        format!("job {job} has a later checkpoint"),
                    );
                }
                j.checkpoint = Some(checkpoint.clone());
                ClusterResponse::ok()
            }
            ClusterCommand::Batch { commands } => {
                let each: Vec<ClusterResponse> = commands.iter().map(|c| self.apply(c)).collect();
                ClusterResponse {
                    each,
                    ..ClusterResponse::ok()
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(p: &str) -> MemberInfo {
        MemberInfo {
            peer_id: p.into(),
            addrs: vec![],
            cores: 2,
            memory_bytes: 1,
            free_disk_bytes: 1,
            started_ms: 0,
        }
    }

    #[test]
    fn commands_change_state_deterministically() {
        let cmds = vec![
            ClusterCommand::PutMember {
                id: 1,
                info: member("a"),
            },
            ClusterCommand::PutMember {
                id: 2,
                info: member("b"),
            },
            ClusterCommand::AddChunkLocation {
                chunk: ChunkId::from_bytes([1; 32]),
                member: 2,
            },
            ClusterCommand::AddChunkLocation {
                chunk: ChunkId::from_bytes([1; 32]),
                member: 1,
            },
            ClusterCommand::RegisterModel {
                name: "m".into(),
                record: ModelRecord {
                    kind: "gaussian_nb".into(),
                    artifact: ChunkId::from_bytes([2; 32]),
                    locations: vec![1, 2],
                },
            },
            ClusterCommand::SetAlias {
                name: "m".into(),
                alias: "production".into(),
                version: 1,
            },
            ClusterCommand::RemoveMember { id: 2 },
        ];
        let (mut a, mut b) = (ClusterState::default(), ClusterState::default());
        for c in &cmds {
            assert!(a.apply(c).ok, "{c:?}");
            b.apply(c);
        }
        assert_eq!(a, b);
        assert_eq!(a.chunk_locations[&ChunkId::from_bytes([1; 32])], vec![1]);
        assert_eq!(a.models["m"][&1].locations, vec![1]);
        let r = a.apply(&ClusterCommand::RegisterModel {
            name: "m".into(),
            record: ModelRecord {
                kind: "x".into(),
                artifact: ChunkId::from_bytes([3; 32]),
                locations: vec![],
            },
        });
        assert_eq!(r.value, Some(2));
        let add = |a: &mut ClusterState, version| {
            a.apply(&ClusterCommand::AddModelLocation {
                name: "m".into(),
                version,
                member: 4,
            })
            .ok
        };
        assert!(add(&mut a, 2) && add(&mut a, 2));
        assert_eq!(a.models["m"][&2].locations, vec![4]);
        assert!(!add(&mut a, 7));
        assert!(
            !a.apply(&ClusterCommand::SetAlias {
                name: "m".into(),
                alias: "x".into(),
                version: 9
            })
            .ok
        );
    }

    fn manifest(name: &str, chunk: u8) -> DatasetManifest {
        DatasetManifest {
            name: name.into(),
            feature_names: vec!["x".into()],
            target_name: "y".into(),
            target: crate::catalog::TargetSchema::Values,
            rows: 1,
            chunks: vec![crate::catalog::ChunkRef {
                id: ChunkId::from_bytes([chunk; 32]),
                rows: 1,
                bytes: 10,
            }],
            created_at_unix: 0,
            source: "t".into(),
            columns: Vec::new(),
            chunk_format: crate::encoding::ARROW_FORMAT,
        }
    }

    #[test]
    fn removed_datasets_are_remembered_for_their_holders() {
        let mut s = ClusterState::default();
        let put = |s: &mut ClusterState, name: &str, chunk| {
            s.apply(&ClusterCommand::PutDataset {
                manifest: manifest(name, chunk),
                locations: vec![(ChunkId::from_bytes([chunk; 32]), vec![1, 2])],
                replicas: 2,
                owner: Some(format!("dataset.{name}.{chunk}")),
            })
            .ok
        };
        let rm = |s: &mut ClusterState, name: &str| {
            s.apply(&ClusterCommand::RemoveDataset { name: name.into() })
        };
        assert!(put(&mut s, "a", 1));
        assert_eq!(s.dataset_owner("a"), "dataset.a.1");
        assert_eq!(
            s.dataset_owner("old"),
            "dataset.old",
            "stored before owners were"
        );
        assert!(rm(&mut s, "a").ok);
        assert_eq!(
            s.removed_datasets,
            vec![RemovedDataset {
                id: 1,
                name: "a".into(),
                owner: "dataset.a.1".into(),
                chunks: vec![ChunkId::from_bytes([1; 32])]
            }]
        );
        assert!(s.chunk_locations.is_empty() && s.dataset_owners.is_empty());
        assert_eq!(rm(&mut s, "a").rejection, Some(Rejection::NotFound));
        // Stored again and removed again: a second removal, with its own number; the copies
        // of the second put have an owner of their own (the removal of the first cannot
        // touch them).
        assert!(put(&mut s, "a", 1));
        assert_eq!(s.removed_datasets.len(), 1);
        assert!(rm(&mut s, "a").ok);
        assert_eq!(s.removed_datasets[1].id, 2);
        s.removed_datasets.clear();
        // At most REMEMBERED_REMOVALS, the oldest forgotten first.
        for i in 0..REMEMBERED_REMOVALS + 3 {
            let name = format!("d{i}");
            assert!(put(&mut s, &name, 2));
            assert!(rm(&mut s, &name).ok);
        }
        assert_eq!(s.removed_datasets.len(), REMEMBERED_REMOVALS);
        assert_eq!(s.removed_datasets[0].name, "d3");
        assert_eq!(s.removals, 2 + REMEMBERED_REMOVALS as u64 + 3);
    }

    #[test]
    fn a_finished_task_is_never_reopened() {
        let mut s = ClusterState::default();
        let record = JobRecord {
            spec: vec![],
            description: "fit".into(),
            state: JobState::Running,
            submitted_ms: 1,
            finished_ms: None,
            tasks: BTreeMap::new(),
            error: None,
            result: vec![],
            checkpoint: None,
        };
        assert!(
            s.apply(&ClusterCommand::SubmitJob {
                id: "j".into(),
                record: record.clone()
            })
            .ok
        );
        // Checkpoints replace each other in order; an older one is refused.
        let cp = |passes| ClusterCommand::Checkpoint {
            job: "j".into(),
            checkpoint: Checkpoint {
                state: vec![passes as u8],
                passes,
                stage: "lbfgs".into(),
                loss: Some(0.5),
                gradient: None,
                at_ms: 2,
            },
        };
        assert!(s.apply(&cp(3)).ok);
        assert!(s.apply(&cp(5)).ok);
        let r = s.apply(&cp(4));
        assert_eq!(r.rejection, Some(Rejection::Invalid));
        assert_eq!(s.jobs["j"].checkpoint.as_ref().unwrap().state, vec![5]);
        assert_eq!(
            s.apply(&ClusterCommand::Checkpoint {
                job: "nope".into(),
                checkpoint: s.jobs["j"].checkpoint.clone().unwrap()
            })
            .rejection,
            Some(Rejection::NotFound)
        );
        assert!(
            !s.apply(&ClusterCommand::SubmitJob {
                id: "j".into(),
                record
            })
            .ok
        );
        assert!(
            s.apply(&ClusterCommand::AddTasks {
                job: "j".into(),
                tasks: vec![TaskId::new(0, 0), TaskId::new(0, 1)]
            })
            .ok
        );
        let up = |state| ClusterCommand::UpdateTask {
            job: "j".into(),
            task: TaskId::new(0, 0),
            record: TaskRecord {
                state,
                ..TaskRecord::queued()
            },
        };
        assert!(s.apply(&up(TaskState::Running)).ok);
        assert!(s.apply(&up(TaskState::Succeeded)).ok);
        let r = s.apply(&up(TaskState::Running));
        assert_eq!(r.rejection, Some(Rejection::TaskFinished));
        assert!(!r.ok && r.error.unwrap().contains("already finished"));
        // A task run again after its output was lost records the new output.
        let again = ClusterCommand::UpdateTask {
            job: "j".into(),
            task: TaskId::new(0, 0),
            record: TaskRecord {
                state: TaskState::Succeeded,
                holders: vec![7],
                ..TaskRecord::queued()
            },
        };
        assert!(s.apply(&again).ok);
        assert_eq!(s.jobs["j"].tasks[&TaskId::new(0, 0)].holders, vec![7]);
        assert!(
            !s.apply(&up(TaskState::Failed)).ok,
            "a success is not undone"
        );
        assert_eq!(s.jobs["j"].progress(), (1, 2));
        let finish = |state| ClusterCommand::FinishJob {
            job: "j".into(),
            state,
            at_ms: 5,
            error: None,
            result: vec![1],
        };
        assert!(!s.apply(&finish(JobState::Running)).ok);
        assert!(s.apply(&finish(JobState::Cancelled)).ok);
        assert!(!s.apply(&finish(JobState::Succeeded)).ok, "a job ends once");
        // Nothing changes in an ended job.
        assert!(!s.apply(&up(TaskState::Queued)).ok);
        let t1 = ClusterCommand::UpdateTask {
            job: "j".into(),
            task: TaskId::new(0, 1),
            record: TaskRecord::queued(),
        };
        assert!(!s.apply(&t1).ok);
        assert_eq!(s.jobs["j"].state, JobState::Cancelled);
    }

    #[test]
    fn a_batch_applies_each_command_on_its_own() {
        let mut s = ClusterState::default();
        let submit = ClusterCommand::SubmitJob {
            id: "j".into(),
            record: JobRecord {
                spec: vec![],
                description: "fit".into(),
                state: JobState::Running,
                submitted_ms: 1,
                finished_ms: None,
                tasks: BTreeMap::new(),
                error: None,
                result: vec![],
                checkpoint: None,
            },
        };
        let done = |i| ClusterCommand::UpdateTask {
            job: "j".into(),
            task: TaskId::new(0, i),
            record: TaskRecord {
                state: TaskState::Succeeded,
                ..TaskRecord::queued()
            },
        };
        let r = s.apply(&ClusterCommand::Batch {
            commands: vec![
                submit,
                ClusterCommand::AddTasks {
                    job: "j".into(),
                    tasks: vec![TaskId::new(0, 0), TaskId::new(0, 1)],
                },
                done(0),
                done(7),
                done(1),
            ],
        });
        assert!(r.ok);
        let each: Vec<Option<Rejection>> = r.each.iter().map(|e| e.rejection).collect();
        assert_eq!(each, [None, None, None, Some(Rejection::NotFound), None]);
        assert_eq!(s.jobs["j"].progress(), (2, 2));
        // A batch's encoding round-trips, as the Raft log stores it.
        let again = s.apply(&ClusterCommand::Batch {
            commands: vec![done(0)],
        });
        let bytes = rmp_serde::to_vec_named(&again).unwrap();
        assert_eq!(
            rmp_serde::from_slice::<ClusterResponse>(&bytes).unwrap(),
            again
        );
    }
}
