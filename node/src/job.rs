//! Jobs on the mesh: what a user submits, what a task carries over the wire, and what a
//! finished job reports.

use meshml_models::plan::Task;
use meshml_protocol::ChunkId;
use serde::{Deserialize, Serialize};

pub use meshml_client::api::{JobRequest, JobSummary, TestReport};

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
    /// Warnings the fit raised (a solver stopped at `max_iter`).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// Owner under which a worker keeps a job's task outputs.
pub fn job_owner(job: &str) -> String {
    format!("job.{job}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshml_models::plan::JobSpec;

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
            data_parallel: None,
            mode: None,
        };
        let n = r.model_name();
        assert!(meshml_storage::error::check_name(&n).is_ok(), "{n}");
    }
}
