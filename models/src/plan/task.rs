//! Tasks: the independent units of a plan ([`Task`], [`Work`]), what they produce
//! ([`TaskOutput`]), and [`run_task`], which computes an output from a task and the dataset
//! alone.

use serde::{Deserialize, Serialize};

use super::data::{relabel, Relabel, Rows, Side};
use crate::dataset::Dataset;
use crate::ensemble::RandomForestParams;
use crate::error::{ModelError, Result};
use crate::estimator::{Estimator, FittedModel};
use crate::meta::stack_width;
use crate::traits::{Classifier, Fit};

/// The work of one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Work {
    /// Fits `estimator` on the `train` rows (relabelled), scores it on the `eval` rows
    /// (accuracy), and returns the model when `keep_model`.
    Fit {
        /// What to fit.
        estimator: Estimator,
        /// Training rows.
        train: Rows,
        /// Target rewrite.
        relabel: Relabel,
        /// Rows to score on.
        eval: Option<Rows>,
        /// Return the fitted model.
        keep_model: bool,
        /// Also return the class probabilities of the `eval` rows (out-of-fold predictions
        /// for stacking).
        #[serde(default)]
        predict_eval: bool,
    },
    /// Fits a stacking ensemble's final estimator on the out-of-fold probabilities of its
    /// members (`oof[m * cv + i]`: member `m` on the test rows of fold `i`, row-major).
    Stack {
        /// The final estimator.
        estimator: Estimator,
        /// Folds the probabilities came from (stratified, unshuffled).
        cv: u32,
        /// Members stacked.
        members: u32,
        /// Out-of-fold probabilities, member-major then fold.
        oof: Vec<Vec<f32>>,
    },
    /// Grows trees `from..to` of a forest on every row.
    Trees {
        /// The forest (its `random_state` set).
        forest: RandomForestParams,
        /// First tree.
        from: u32,
        /// One past the last tree.
        to: u32,
    },
}

/// One independent unit of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Stage of the plan it belongs to.
    pub stage: u32,
    /// Position in its stage.
    pub index: u32,
    /// What to do.
    pub work: Work,
}

/// What a task produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskOutput {
    /// Accuracy on the evaluation rows, if any.
    pub score: Option<f64>,
    /// The fitted model, if kept.
    pub model: Option<FittedModel>,
    /// Wall time of the fit, milliseconds.
    pub fit_ms: u64,
    /// Class probabilities of the evaluation rows, row-major, when asked for.
    #[serde(default)]
    pub predictions: Option<Vec<f32>>,
    /// The class labels of a target the task made from a column (multi-output).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Warnings the fit raised (a solver stopped at `max_iter`), each once with a count.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// Runs one task on the dataset it refers to. Deterministic: the same task on the same
/// data gives the same output wherever it runs.
pub fn run_task(task: &Task, data: &Dataset) -> Result<TaskOutput> {
    let (output, warnings) = crate::warnings::catch(|| run_work(task, data));
    output.map(|o| TaskOutput { warnings, ..o })
}

fn run_work(task: &Task, data: &Dataset) -> Result<TaskOutput> {
    let started = std::time::Instant::now();
    let ms = || started.elapsed().as_millis() as u64;
    match &task.work {
        Work::Fit {
            estimator,
            train,
            relabel: how,
            eval,
            keep_model,
            predict_eval,
        } => {
            let train_data = relabel(train.select(data)?, how)?;
            let model = estimator.fit(&train_data)?;
            let fit_ms = ms();
            let (score, predictions) = match eval {
                None => (None, None),
                Some(rows) => {
                    let test = relabel(rows.select(data)?, how)?;
                    let p = if *predict_eval {
                        Some(model.predict_proba(test.x())?.to_vec())
                    } else {
                        None
                    };
                    (Some(model.evaluate(&test)?), p)
                }
            };
            let labels = match how {
                Relabel::Column { classes: true, .. } => train_data
                    .classes()
                    .map(|c| c.labels().to_vec())
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            Ok(TaskOutput {
                score,
                model: keep_model.then_some(model),
                fit_ms,
                predictions,
                labels,
                warnings: Vec::new(),
            })
        }
        Work::Trees { forest, from, to } => {
            let part = forest.fit_trees(data, *from as usize, *to as usize)?;
            Ok(TaskOutput {
                score: None,
                model: Some(FittedModel::from(part)),
                fit_ms: ms(),
                predictions: None,
                labels: Vec::new(),
                warnings: Vec::new(),
            })
        }
        Work::Stack {
            estimator,
            cv,
            members,
            oof,
        } => {
            let meta = stacked_features(data, *cv, *members as usize, oof)?;
            let model = estimator.fit(&meta)?;
            Ok(TaskOutput {
                score: None,
                model: Some(model),
                fit_ms: ms(),
                predictions: None,
                labels: Vec::new(),
                warnings: Vec::new(),
            })
        }
    }
}

/// Rebuilds the stacked training set: the out-of-fold probabilities of every member, in row
/// order (for two classes only the second column, as scikit-learn stacks them), with the
/// dataset's target.
fn stacked_features(data: &Dataset, cv: u32, members: usize, oof: &[Vec<f32>]) -> Result<Dataset> {
    let (_, classes) = data.class_target()?;
    let k = classes.len();
    let n = data.n_samples();
    let width = stack_width(k);
    if oof.len() != members * cv as usize {
        return Err(ModelError::data(
            "stacking",
            format!(
                "expected {} fold predictions, got {}",
                members * cv as usize,
                oof.len()
            ),
        ));
    }
    let mut x = vec![0.0f32; n * members * width];
    for m in 0..members {
        for i in 0..cv {
            let test = Rows::Fold {
                k: cv,
                i,
                stratified: true,
                shuffle: None,
                side: Side::Test,
            }
            .indices(data)?
            .unwrap_or_default();
            let p = &oof[m * cv as usize + i as usize];
            if p.len() != test.len() * k {
                return Err(ModelError::data(
                    "stacking",
                    format!(
                        "fold {i} of member {m} has {} probabilities for {} rows",
                        p.len(),
                        test.len()
                    ),
                ));
            }
            for (r, &row) in test.iter().enumerate() {
                let src = &p[r * k + (k - width)..(r + 1) * k];
                let dst = row * members * width + m * width;
                x[dst..dst + width].copy_from_slice(src);
            }
        }
    }
    let names = (0..members)
        .flat_map(|m| (0..width).map(move |c| format!("m{m}_p{c}")))
        .collect();
    Dataset::new(
        crate::matrix::Matrix::from_vec(n, members * width, x)?,
        data.target().clone(),
        names,
        data.target_name().to_string(),
    )
}
