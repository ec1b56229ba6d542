//! Pipelines: transformers fitted one after the other, then an estimator on their output.

use serde::{Deserialize, Serialize};

use super::{Estimator, FittedModel, FittedTransformer, TransformerSpec};
use crate::dataset::Dataset;
use crate::error::{ModelError, Result};
use crate::matrix::Matrix;
use crate::traits::{Classifier, Fit, Model, Params, Transformer};

/// A pipeline: each transformer is fitted on the output of the previous one, and the final
/// classifier on the output of the last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PipelineParams {
    /// The transformers, in order.
    pub steps: Vec<TransformerSpec>,
    /// The final classifier (never itself a pipeline).
    pub estimator: Box<Estimator>,
}

impl PipelineParams {
    /// The steps' names joined by `+` (`standard_scaler+logistic_regression`).
    pub fn name(&self) -> String {
        let mut parts: Vec<String> = self.steps.iter().map(|s| s.name().to_string()).collect();
        parts.push(self.estimator.name());
        parts.join("+")
    }

    /// Sets `step__param` on one step, or a bare `param` on the one step that has it.
    pub fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
        if let Some((step, param)) = key.split_once("__") {
            if step == self.estimator.name() {
                return self.estimator.set_param(param, value);
            }
            if let Some(t) = self.steps.iter_mut().find(|t| t.name() == step) {
                return t.set_param(param, value);
            }
            return Err(ModelError::param(
                "pipeline",
                key,
                format!("no step named '{step}'"),
            ));
        }
        let mut owners = Vec::new();
        if self.estimator.params_names().contains(&key) {
            owners.push(self.estimator.name());
        }
        owners.extend(
            self.steps
                .iter()
                .filter(|t| t.params_names().contains(&key))
                .map(|t| t.name().to_string()),
        );
        match owners.len() {
            0 => Err(ModelError::param(
                "pipeline",
                key,
                "no step has this parameter",
            )),
            1 if owners[0] == self.estimator.name() => self.estimator.set_param(key, value),
            1 => {
                let name = owners[0].clone();
                self.steps
                    .iter_mut()
                    .find(|t| t.name() == name)
                    .expect("the owner was found among the steps")
                    .set_param(key, value)
            }
            _ => Err(ModelError::param(
                "pipeline",
                key,
                format!(
                    "ambiguous: steps {} all have it; write step__{key}",
                    owners.join(", ")
                ),
            )),
        }
    }

    /// Checks every step and the final estimator, which cannot be a pipeline.
    pub fn validate(&self) -> Result<()> {
        if matches!(*self.estimator, Estimator::Pipeline(_)) {
            return Err(ModelError::param(
                "pipeline",
                "estimator",
                "cannot be a pipeline",
            ));
        }
        self.steps.iter().try_for_each(TransformerSpec::validate)?;
        self.estimator.validate()
    }

    /// Fits each step on the previous step's output, then the estimator. Every part is
    /// validated before the first step is fitted.
    pub fn fit(&self, data: &Dataset) -> Result<FittedPipeline> {
        self.validate()?;
        let (steps, current) = fit_steps(&self.steps, data.clone())?;
        let estimator = Box::new(match &*self.estimator {
            // Its starts sampled by the rows given here, as in `fit_steps`.
            Estimator::Kmeans(p) if !steps.is_empty() => p
                .check_ref()?
                .fit_step(&current, &crate::cluster::row_keys(data.x()))?
                .into(),
            e => e.fit(&current)?,
        });
        Ok(FittedPipeline { steps, estimator })
    }
}

/// `data` through a fitted step, its column names and kinds carried along.
pub(crate) fn apply_step(step: &FittedTransformer, data: Dataset) -> Result<Dataset> {
    let x = step.transform(data.x())?;
    let names = step.feature_names_out(data.feature_names());
    let kinds = step.kinds_out(&data.kinds());
    data.with_x_kinds(x, names, kinds)
}

/// Fits `steps` one after the other, each on the previous one's output (names and column
/// kinds carried along); returns the fitted steps and the last output. A pipeline and each
/// part of a column transformer fit their steps this way.
pub(super) fn fit_steps(
    steps: &[TransformerSpec],
    data: Dataset,
) -> Result<(Vec<FittedTransformer>, Dataset)> {
    let mut fitted_steps = Vec::with_capacity(steps.len());
    // A k-means step after others samples its starts by the rows given here, as a fit over
    // chunks does (see `Checked<KMeansParams>::fit_step`).
    let keys = steps[1.min(steps.len())..]
        .iter()
        .any(|s| matches!(s, TransformerSpec::Kmeans(_)))
        .then(|| crate::cluster::row_keys(data.x()));
    let mut current = data;
    for s in steps {
        let fitted = match (s, &keys) {
            (TransformerSpec::Kmeans(p), Some(keys)) => {
                FittedTransformer::Kmeans(p.check_ref()?.fit_step(&current, keys)?)
            }
            _ => s.fit(&current)?,
        };
        current = apply_step(&fitted, current)?;
        fitted_steps.push(fitted);
    }
    Ok((fitted_steps, current))
}

/// A fitted pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedPipeline {
    /// Fitted transformers, in order.
    pub steps: Vec<FittedTransformer>,
    /// The fitted final classifier.
    pub estimator: Box<FittedModel>,
}

impl FittedPipeline {
    fn transform(&self, x: &Matrix) -> Result<Matrix> {
        let mut cur = x.clone();
        for s in &self.steps {
            cur = s.transform(&cur)?;
        }
        Ok(cur)
    }
}

impl Classifier for FittedPipeline {
    fn n_features(&self) -> usize {
        self.steps
            .first()
            .map_or_else(|| self.estimator.n_features(), Transformer::n_features_in)
    }

    fn n_classes(&self) -> usize {
        self.estimator.n_classes()
    }

    fn predict_proba(&self, x: &Matrix) -> Result<Matrix> {
        self.estimator.predict_proba(&self.transform(x)?)
    }

    fn predict(&self, x: &Matrix) -> Result<Vec<u32>> {
        self.estimator.predict(&self.transform(x)?)
    }
}

impl Model for FittedPipeline {
    fn as_classifier(&self) -> Result<&dyn Classifier> {
        Ok(self)
    }

    fn is_regressor(&self) -> bool {
        self.estimator.is_regressor()
    }

    fn is_clusterer(&self) -> bool {
        self.estimator.is_clusterer()
    }

    fn inertia(&self, x: &Matrix) -> Result<f64> {
        self.estimator.inertia(&self.transform(x)?)
    }

    fn predict_values(&self, x: &Matrix) -> Result<Vec<f32>> {
        self.estimator.predict_values(&self.transform(x)?)
    }
}
