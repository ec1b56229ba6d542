//! Jobs on the mesh: what a user submits, what a task carries over the wire, and what a
//! finished job reports.

use meshml_models::plan::{CvResults, JobSpec, Task};
use meshml_protocol::ChunkId;
use serde::{Deserialize, Serialize};

/// A job as submitted (`POST /v1/jobs`, `meshml fit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// What a worker is asked to run (the `spec` of `AssignTask`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The dataset the task's rows refer to.
    pub dataset: String,
    /// The task.
    pub task: Task,
}

/// What a worker reports for a finished task (the `result` of `TaskUpdate`): the output
/// stays on the worker, content-addressed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDone {
    /// The output (MessagePack of the models crate's task output) in the worker's store.
    pub output: ChunkId,
    /// Its score, for a scoring task.
    pub score: Option<f64>,
    /// Whether the output holds a model or predictions that the plan's next step reads
    /// (else the score is all of it).
    #[serde(alias = "has_model")]
    pub has_payload: bool,
    /// Fit time, milliseconds.
    pub fit_ms: u64,
}

/// Accuracy and confusion matrix of a model on a test dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestReport {
    /// The dataset.
    pub dataset: String,
    /// What `score` is: `accuracy` (a classifier), `r2` (a regressor), or `mean score`
    /// (a multi-output model: the mean over targets of each one's accuracy or R²).
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub end_ms: std::collections::BTreeMap<String, u64>,
}

/// Owner under which a worker keeps a job's task outputs.
pub fn job_owner(job: &str) -> String {
    format!("job.{job}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_model_names_are_store_names() {
        let r = JobRequest {
            dataset: "digits".into(),
            job: JobSpec {
                kind: meshml_models::plan::JobKind::Fit {
                    estimator: meshml_models::Estimator::from_name("standard_scaler+gaussian_nb")
                        .unwrap(),
                },
                seed: 0,
            },
            name: None,
            test_dataset: None,
        };
        let n = r.model_name();
        assert!(meshml_storage::error::check_name(&n).is_ok(), "{n}");
    }
}
