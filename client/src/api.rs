//! The typed HTTP API: every request and response body a node's HTTP API takes or returns,
//! defined once for the daemon (which builds them) and the client (which reads them).
//!
//! The JSON field names are the wire format, pinned by the node's tests. The node's OpenAPI
//! document is generated from these types (their `JsonSchema` derives; doc comments become
//! its descriptions): a change here is a change of the API.

use std::collections::BTreeMap;

use meshml_models::plan::{CvResults, JobSpec};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The body of every refused request: `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
}

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// The node's peer id.
    pub node: String,
}

// ---------------------------------------------------------------------------------------
// Jobs

/// A job as submitted (`POST /v1/jobs`, `meshml fit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobRequest {
    /// The training dataset (on the mesh).
    pub dataset: String,
    /// What to do.
    pub job: JobSpec,
    /// Register the final model under this name (default `DATASET-KIND`).
    #[serde(default)]
    pub name: Option<String>,
    /// A dataset to score the final model on (accuracy and confusion matrix).
    #[serde(default)]
    pub test_dataset: Option<String>,
    /// Fit data-parallel: in passes over the dataset's chunks where they are stored, no
    /// node holding more than one chunk at a time (`true`), in memory on one node
    /// (`false`), or as the node that takes the job decides (unset): data-parallel when
    /// the dataset is larger than its training memory (`--train-memory-mb`).
    #[serde(default)]
    pub data_parallel: Option<bool>,
    /// Why the job runs the way it does, as the node that took it decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

impl JobRequest {
    /// The model name the result is registered under.
    pub fn model_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let kind: String = self
                .job
                .describe()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            format!("{}-{}", self.dataset, kind.trim_end_matches('-'))
        })
    }
}

/// The answer to `POST /v1/jobs` and `POST /v1/predictions`: the new job's or batch's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Created {
    /// Its id.
    pub id: String,
    /// How a job runs and why (`data-parallel: ...`, `in memory: ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// The answer to `POST /v1/jobs/{id}/cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Cancelled {
    /// The job.
    pub id: String,
    /// Always `cancelled`.
    pub state: String,
}

/// Accuracy and confusion matrix of a model on a test dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TestReport {
    /// The dataset.
    pub dataset: String,
    /// What `score` is: `accuracy` (a classifier), `r2` (a regressor), `inertia` (a
    /// clusterer: the test rows' sum of squared distances to their nearest centre, which a
    /// search's cross-validation table counts negative, as scikit-learn's `KMeans.score`),
    /// or `mean score` (a multi-output model: the mean over targets of each one's accuracy
    /// or R²).
    #[serde(default = "accuracy")]
    pub metric: String,
    /// The score.
    #[serde(alias = "accuracy")]
    pub score: f64,
    /// Class labels (a classifier).
    pub labels: Vec<String>,
    /// `counts[true][predicted]` (a classifier).
    pub counts: Vec<Vec<usize>>,
}

fn accuracy() -> String {
    "accuracy".into()
}

/// What a finished job reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobSummary {
    /// Tasks the plan ran (each once, however many attempts it took).
    pub tasks: usize,
    /// A search's cross-validation table.
    pub cv: Option<CvResults>,
    /// The registered model, `name@version`.
    pub model: Option<String>,
    /// The model on the test dataset.
    pub test: Option<TestReport>,
    /// Milliseconds the driver spent ending the job, by phase: `outputs` (the last
    /// stage's outputs fetched and decoded), `reduce` (the plan's reduce step),
    /// `artifact` (the model artifact built and encoded), `store` (written, fsynced and
    /// registered), `test` (scored on the test dataset).
    #[serde(default)]
    pub end_ms: BTreeMap<String, u64>,
    /// Warnings the job's fits raised, as scikit-learn's `ConvergenceWarning` (a solver
    /// that stopped at `max_iter`), each once with a count. Empty when none.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// A data-parallel fit's passes over the data, with their timing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passes: Option<PassesView>,
    /// A data-parallel fit's objective after each evaluation (logistic regression's
    /// penalised mean log-loss), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub losses: Vec<f64>,
}

/// A job as the API shows it (`GET /v1/jobs`, `GET /v1/jobs/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct JobView {
    /// Id.
    pub id: String,
    /// What it does.
    pub description: String,
    /// running, succeeded, failed or cancelled.
    pub state: String,
    /// Tasks done.
    pub done: usize,
    /// Tasks known (later stages add theirs when they start).
    pub total: usize,
    /// Milliseconds since submission (until the end, once ended).
    pub elapsed_ms: u64,
    /// Why it failed.
    pub error: Option<String>,
    /// The result, once succeeded.
    pub result: Option<JobSummary>,
    /// Every task (with `?tasks=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<TaskView>>,
    /// How it runs and why (`data-parallel: ...`, `in memory: ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// A data-parallel fit's progress, as its driver last checkpointed it (its result's,
    /// once it has ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passes: Option<PassesView>,
}

/// A data-parallel fit's progress (`JobView::passes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PassesView {
    /// Passes over the data done.
    pub passes: u64,
    /// What the fit was doing (`lbfgs iteration 12`).
    pub stage: String,
    /// The objective after the last pass, where there is one.
    pub loss: Option<f64>,
    /// Its gradient's largest component.
    pub gradient: Option<f64>,
    /// Wall time of the passes, summed, milliseconds (in a finished job's result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_ms: Option<u64>,
    /// The slowest member's compute time of each pass, summed, milliseconds: the rest of
    /// the wall time is the passes' overhead (messages, merging, the driver's step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_ms: Option<u64>,
}

/// A task as `GET /v1/jobs/{id}?tasks=true` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TaskView {
    /// Task id.
    pub id: String,
    /// queued, running, succeeded, failed or cancelled.
    pub state: String,
    /// Members holding its output.
    pub holders: Vec<u64>,
    /// Its score, if any.
    pub score: Option<f64>,
}

// ---------------------------------------------------------------------------------------
// Datasets

/// How `dataset put` through a node is asked for (the query of `POST /v1/datasets`, and
/// what the node passes on to the mesh).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PutDatasetRequest {
    /// Dataset name.
    pub name: String,
    /// Copies of each chunk (capped by the live members).
    pub replicas: usize,
    /// Rows per chunk.
    pub chunk_rows: usize,
    /// Target column (default: the last).
    pub target: Option<String>,
    /// Treat the target as real values.
    pub regression: bool,
    /// `csv` or `parquet`.
    pub format: String,
    /// What to call the input in error messages (the uploaded file's name); by default
    /// `upload of 'NAME'`.
    #[serde(default)]
    pub source: Option<String>,
    /// Columns read as categorical whatever their cells.
    #[serde(default)]
    pub categorical: Vec<String>,
    /// Columns read as numbers whatever their cells.
    #[serde(default)]
    pub numeric: Vec<String>,
    /// Cells read as missing instead of the default set (an empty cell always is).
    #[serde(default)]
    pub na_values: Option<Vec<String>>,
    /// Most distinct categories of one column.
    #[serde(default)]
    pub max_categories: Option<usize>,
}

/// The answer to `POST /v1/datasets`: the stored dataset and where its chunks went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DatasetStored {
    /// Name.
    pub name: String,
    /// Rows.
    pub rows: u64,
    /// Feature columns.
    pub features: usize,
    /// Chunks.
    pub chunks: usize,
    /// Encoded bytes.
    pub bytes: u64,
    /// Chunks placed on each member (by member id).
    pub chunks_per_member: BTreeMap<String, usize>,
}

/// A dataset as listed (`GET /v1/datasets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DatasetView {
    /// Name.
    pub name: String,
    /// Rows.
    pub rows: u64,
    /// Feature columns.
    pub features: usize,
    /// Chunks.
    pub chunks: usize,
    /// Encoded bytes.
    pub bytes: u64,
    /// Fewest copies any chunk has.
    pub min_replicas: usize,
    /// Classes (empty for a continuous target).
    pub classes: Vec<String>,
}

/// One chunk of a dataset and its holders (`GET /v1/datasets/{name}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChunkView {
    /// Content address.
    pub id: String,
    /// Rows.
    pub rows: u32,
    /// Encoded bytes.
    pub bytes: u64,
    /// Members holding a copy.
    pub holders: Vec<u64>,
}

/// `GET /v1/datasets/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DatasetDetail {
    /// The dataset.
    pub dataset: DatasetView,
    /// Feature column names, in order.
    #[serde(default)]
    pub feature_names: Vec<String>,
    /// Target column name.
    #[serde(default)]
    pub target: String,
    /// Copies each chunk should have.
    #[serde(default)]
    pub replicas: usize,
    /// Where the rows came from (the file name given at upload).
    #[serde(default)]
    pub source: String,
    /// Its feature columns: kinds, missing cells, categories.
    #[serde(default)]
    pub columns: Vec<ColumnView>,
    /// Its chunks, in row order.
    pub chunks: Vec<ChunkView>,
}

/// One feature column of a dataset (`GET /v1/datasets/{name}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ColumnView {
    /// The column's name.
    pub name: String,
    /// `numeric`, `categorical` or `boolean`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Missing cells.
    pub missing: u64,
    /// Distinct categories (0 for numbers).
    pub categories: usize,
    /// The most frequent categories with their counts, most frequent first.
    pub top: Vec<(String, u64)>,
}

/// `DELETE /v1/datasets/{name}`: what was removed. Every holder frees its copies within a
/// second or two of the answer (chunks another dataset shares stay).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DatasetRemoved {
    /// Name.
    pub name: String,
    /// Rows it had.
    pub rows: u64,
    /// Chunks it had.
    pub chunks: usize,
    /// Members that held copies.
    pub holders: Vec<u64>,
}

/// What a node's chunk store keeps (`/v1/status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StoreView {
    /// Chunks stored.
    pub chunks: u64,
    /// What keeps them: each owner (`dataset.NAME`, `model.NAME`, `job.ID`) with its
    /// chunk count.
    pub owners: std::collections::BTreeMap<String, u64>,
}

// ---------------------------------------------------------------------------------------
// Models and online prediction

/// One version of a registered model (`GET /v1/models`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ModelView {
    /// Model name.
    pub name: String,
    /// Version.
    pub version: u32,
    /// Estimator kind.
    pub kind: String,
    /// Content address of the artifact.
    pub artifact: String,
    /// Members holding a copy.
    pub locations: Vec<u64>,
    /// Aliases pointing at this version.
    pub aliases: Vec<String>,
    /// Whether the answering node has it loaded.
    pub loaded_here: bool,
}

/// Body of `PUT /v1/models/{name}/aliases/{alias}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AliasRequest {
    /// The version the alias points at.
    pub version: u32,
}

/// The answer to `PUT /v1/models/{name}/aliases/{alias}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AliasSet {
    /// Model name.
    pub model: String,
    /// The alias.
    pub alias: String,
    /// The version it points at now.
    pub version: u32,
    /// Whether the answering node loaded that version.
    pub loaded_here: bool,
}

/// A feature value as sent: a number, or anything else (refused with its text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Cell {
    /// A number.
    Number(f64),
    /// Anything that is not a number.
    Other(serde_json::Value),
}

/// One instance: values in the model's feature order, or values by feature name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Instance {
    /// Values in feature order.
    Row(Vec<Cell>),
    /// Values by feature name.
    Named(BTreeMap<String, Cell>),
    /// Neither (refused).
    Other(serde_json::Value),
}

/// The body of a prediction request (JSON or MessagePack), `POST
/// /v1/models/{name}/predict`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// The rows to predict.
    pub instances: Vec<Instance>,
    /// Also return class probabilities.
    #[serde(default)]
    pub probabilities: bool,
}

/// One prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Prediction {
    /// A class label.
    Label(String),
    /// A regressor's value.
    Value(f32),
    /// A multi-output model's prediction for every target.
    Outputs(BTreeMap<String, Prediction>),
}

/// The answer to a prediction request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PredictResponse {
    /// Model name.
    pub model: String,
    /// The version that answered.
    pub version: u32,
    /// One prediction per instance.
    pub predictions: Vec<Prediction>,
    /// Class labels, the columns of `probabilities` (classifiers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// Class probabilities per instance, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<Vec<Vec<f32>>>,
}

// ---------------------------------------------------------------------------------------
// Batch prediction

/// A batch prediction request (`POST /v1/predictions`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// `NAME`, `NAME@VERSION` or `NAME@ALIAS`.
    pub model: String,
    /// The dataset to predict.
    pub dataset: String,
    /// Also write class probabilities.
    #[serde(default)]
    pub proba: bool,
    /// Store the predictions as this new dataset instead of keeping a CSV to download.
    #[serde(default)]
    pub into: Option<String>,
    /// Copies of each chunk of the `into` dataset.
    #[serde(default)]
    pub replicas: Option<usize>,
    /// Predict even though the dataset has feature columns the model was not fitted on
    /// (they are dropped); refused otherwise.
    #[serde(default)]
    pub ignore_extra_columns: bool,
}

/// A batch's progress and outcome (`GET /v1/predictions/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BatchView {
    /// Batch id.
    pub id: String,
    /// Model name.
    pub model: String,
    /// The version predicting.
    pub version: u32,
    /// The dataset.
    pub dataset: String,
    /// `running`, `succeeded` or `failed`.
    pub state: String,
    /// Rows predicted so far.
    pub rows_done: u64,
    /// Rows of the dataset.
    pub rows_total: u64,
    /// Why it failed.
    pub error: Option<String>,
    /// The dataset the predictions went into, if asked.
    pub into: Option<String>,
    /// Size of the CSV to download, once succeeded (without `into`).
    pub csv_bytes: Option<u64>,
    /// Milliseconds from start to end.
    pub elapsed_ms: u64,
}

// ---------------------------------------------------------------------------------------
// Status

/// `GET /v1/status`: the mesh as one node sees it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StatusView {
    /// This node.
    pub node: String,
    /// Cluster name.
    pub cluster: String,
    /// Wire protocol version.
    pub protocol_version: u32,
    /// meshml version.
    pub version: String,
    /// Where it listens.
    pub listen: Vec<String>,
    /// Its peer table.
    pub peers: Vec<PeerView>,
    /// The Raft group (driver, term, members) as this node sees it.
    pub raft: Option<RaftView>,
    /// The worker: its slots and the tasks it has started.
    #[serde(default)]
    pub worker: Option<WorkerView>,
    /// The scrubber: copies checked, repaired, and damaged ones not replaced yet.
    #[serde(default)]
    pub scrub: Option<ScrubView>,
    /// The chunk store: chunks kept and by whom.
    #[serde(default)]
    pub store: Option<StoreView>,
}

/// Whether a peer is heard from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PeerState {
    /// Heard from within the timeout.
    Alive,
    /// Not heard from within the timeout, or announced that it left.
    Gone,
}

/// One row of the peer table, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PeerView {
    /// Peer id.
    pub id: String,
    /// State.
    pub state: PeerState,
    /// Whether a connection is open now.
    pub connected: bool,
    /// Milliseconds since last heard from.
    pub last_seen_ms: u64,
    /// Known listen addresses.
    pub addrs: Vec<String>,
    /// Worker slots it offers (0 if unknown yet).
    pub cores: u32,
    /// Memory it offers, bytes.
    pub memory_bytes: u64,
    /// Free disk, bytes.
    pub free_disk_bytes: u64,
    /// When its process started (milliseconds since the Unix epoch; 0 if unknown).
    #[serde(default)]
    pub started_ms: u64,
    /// Its cluster name.
    pub cluster: String,
}

/// The cluster (Raft group) as one node sees it: the `raft` part of `/v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RaftView {
    /// This node's Raft id.
    #[serde(default)]
    pub node_id: u64,
    /// leader, follower, candidate or learner.
    pub role: String,
    /// Current Raft term.
    pub term: u64,
    /// The driver (Raft leader): its peer id, if known.
    pub driver: Option<String>,
    /// Voting members: peer ids.
    pub voters: Vec<String>,
    /// Learners: peer ids.
    pub learners: Vec<String>,
    /// Last log index applied here.
    #[serde(default)]
    pub applied: Option<u64>,
    /// Last log index appended here (committed or not).
    #[serde(default)]
    pub last_log: Option<u64>,
    /// Members and what they offer, from the replicated state.
    #[serde(default)]
    pub members: Vec<MemberView>,
    /// The driver actor running on this node, if any.
    #[serde(default)]
    pub driving: Option<DriverView>,
}

/// A member of the cluster and what it offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MemberView {
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Addresses it listens on.
    #[serde(default)]
    pub addrs: Vec<String>,
    /// Worker slots.
    pub cores: u32,
    /// Memory, bytes.
    pub memory_bytes: u64,
    /// Free disk, bytes.
    #[serde(default)]
    pub free_disk_bytes: u64,
}

/// The driver actor running on the answering node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DriverView {
    /// The term it drives in.
    pub term: u64,
    /// When it started (milliseconds since the Unix epoch).
    pub since_ms: u64,
}

/// The worker part of `/v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WorkerView {
    /// Concurrent tasks.
    pub slots: usize,
    /// Tasks started here and how often.
    pub executed: Vec<ExecutionView>,
}

/// A task a worker has run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExecutionView {
    /// Job id.
    pub job: String,
    /// Task id.
    pub task: String,
    /// How many times this node started it.
    pub runs: u32,
}

/// The scrubber part of `/v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ScrubView {
    /// Full passes finished.
    pub passes: u64,
    /// Copies read and checked, over all passes.
    pub checked: u64,
    /// Bytes read, over all passes.
    pub bytes: u64,
    /// Damaged copies replaced from another holder.
    pub repaired: u64,
    /// Damaged copies still waiting for a good copy (content addresses).
    pub damaged: Vec<String>,
    /// How long the last full pass took, milliseconds.
    pub last_pass_ms: u64,
}
