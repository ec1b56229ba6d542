//! Estimators by name: the serialisable specification of a model (kind and parameters),
//! pipelines of transformers ending in a classifier, and the matching fitted models.
//!
//! This is what crosses process boundaries: a job names an [`Estimator`], a worker fits it,
//! and the [`FittedModel`] goes into an artifact.

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::ensemble::{FittedEnsemble, RandomForestParams};
use crate::error::{ModelError, Result};
use crate::linear::{FittedLogisticRegression, LogisticRegressionParams};
use crate::matrix::Matrix;
use crate::naive_bayes::{FittedGaussianNb, GaussianNbParams};
use crate::preprocessing::{FittedStandardScaler, StandardScalerParams};
use crate::traits::{Classifier, Fit, Params, Transformer};
use crate::tree::{DecisionTreeClassifierParams, FittedDecisionTree};

/// Every classifier name with a one-line description, for help texts.
pub const CLASSIFIERS: &[(&str, &str)] = &[
    (
        "logistic_regression",
        "L2 logistic regression (binary or multinomial), L-BFGS",
    ),
    ("gaussian_nb", "Gaussian naive Bayes"),
    ("decision_tree", "CART decision tree (gini or entropy)"),
    (
        "random_forest",
        "random forest of CART trees on bootstrap samples",
    ),
];

/// Every transformer name with a one-line description.
pub const TRANSFORMERS: &[(&str, &str)] = &[(
    "standard_scaler",
    "remove the mean and scale to unit variance",
)];

/// A classifier specification: which algorithm, with which parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "params", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Estimator {
    /// Logistic regression.
    LogisticRegression(LogisticRegressionParams),
    /// Gaussian naive Bayes.
    GaussianNb(GaussianNbParams),
    /// Decision-tree classifier.
    DecisionTree(DecisionTreeClassifierParams),
    /// Random-forest classifier.
    RandomForest(RandomForestParams),
    /// Transformers followed by a classifier.
    Pipeline(PipelineParams),
}

/// A transformer specification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "params", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TransformerSpec {
    /// Standard scaler.
    StandardScaler(StandardScalerParams),
}

/// A pipeline: each transformer is fitted on the output of the previous one, and the final
/// classifier on the output of the last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineParams {
    /// The transformers, in order.
    pub steps: Vec<TransformerSpec>,
    /// The final classifier (never itself a pipeline).
    pub estimator: Box<Estimator>,
}

fn names(list: &[(&str, &str)]) -> String {
    list.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

impl TransformerSpec {
    /// A transformer with default parameters by name.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "standard_scaler" | "StandardScaler" => {
                Ok(Self::StandardScaler(StandardScalerParams::default()))
            }
            _ => Err(ModelError::UnknownEstimator(
                name.to_string(),
                names(TRANSFORMERS),
            )),
        }
    }

    /// The transformer's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::StandardScaler(_) => StandardScalerParams::NAME,
        }
    }

    fn params_names(&self) -> &'static [&'static str] {
        match self {
            Self::StandardScaler(_) => StandardScalerParams::PARAM_NAMES,
        }
    }

    fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
        match self {
            Self::StandardScaler(p) => p.set_param(key, value),
        }
    }

    fn validate(&self) -> Result<()> {
        match self {
            Self::StandardScaler(p) => p.validate(),
        }
    }

    /// Fits the transformer on a feature matrix.
    pub fn fit(&self, x: &Matrix) -> Result<FittedTransformer> {
        match self {
            Self::StandardScaler(p) => Ok(FittedTransformer::StandardScaler(p.fit_matrix(x)?)),
        }
    }
}

impl Estimator {
    /// An estimator with default parameters from its name. `a+b+c` builds a pipeline of
    /// transformers `a`, `b` ending in classifier `c` (e.g. `standard_scaler+logistic_regression`).
    pub fn from_name(name: &str) -> Result<Self> {
        let parts: Vec<&str> = name.split('+').map(str::trim).collect();
        if parts.len() > 1 {
            let (last, first) = parts.split_last().expect("len > 1");
            let steps = first
                .iter()
                .map(|p| TransformerSpec::from_name(p))
                .collect::<Result<Vec<_>>>()?;
            let estimator = Self::single(last)?;
            return Ok(Self::Pipeline(PipelineParams {
                steps,
                estimator: Box::new(estimator),
            }));
        }
        Self::single(name)
    }

    fn single(name: &str) -> Result<Self> {
        Ok(match name {
            "logistic_regression" | "LogisticRegression" | "lr" => {
                Self::LogisticRegression(LogisticRegressionParams::default())
            }
            "gaussian_nb" | "GaussianNB" | "naive_bayes" => Self::GaussianNb(GaussianNbParams::default()),
            "decision_tree" | "decision_tree_classifier" | "DecisionTreeClassifier" => {
                Self::DecisionTree(DecisionTreeClassifierParams::default())
            }
            "random_forest" | "random_forest_classifier" | "RandomForestClassifier" => {
                Self::RandomForest(RandomForestParams::default())
            }
            t if TransformerSpec::from_name(t).is_ok() => {
                return Err(ModelError::UnknownEstimator(
                    t.to_string(),
                    format!(
                        "{} ('{t}' is a transformer: put it in front of a classifier, e.g. {t}+logistic_regression)",
                        names(CLASSIFIERS)
                    ),
                ))
            }
            other => {
                return Err(ModelError::UnknownEstimator(other.to_string(), names(CLASSIFIERS)))
            }
        })
    }

    /// The estimator's name (`standard_scaler+logistic_regression` for a pipeline).
    pub fn name(&self) -> String {
        match self {
            Self::LogisticRegression(_) => LogisticRegressionParams::NAME.to_string(),
            Self::GaussianNb(_) => GaussianNbParams::NAME.to_string(),
            Self::DecisionTree(_) => DecisionTreeClassifierParams::NAME.to_string(),
            Self::RandomForest(_) => RandomForestParams::NAME.to_string(),
            Self::Pipeline(p) => {
                let mut parts: Vec<String> = p.steps.iter().map(|s| s.name().to_string()).collect();
                parts.push(p.estimator.name());
                parts.join("+")
            }
        }
    }

    fn params_names(&self) -> &'static [&'static str] {
        match self {
            Self::LogisticRegression(_) => LogisticRegressionParams::PARAM_NAMES,
            Self::GaussianNb(_) => GaussianNbParams::PARAM_NAMES,
            Self::DecisionTree(_) => DecisionTreeClassifierParams::PARAM_NAMES,
            Self::RandomForest(_) => RandomForestParams::PARAM_NAMES,
            Self::Pipeline(_) => &[],
        }
    }

    /// Sets a parameter from text. In a pipeline, `step__param` (scikit-learn's syntax)
    /// addresses one step; a bare name goes to the one step that has it.
    pub fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
        match self {
            Self::LogisticRegression(p) => p.set_param(key, value),
            Self::GaussianNb(p) => p.set_param(key, value),
            Self::DecisionTree(p) => p.set_param(key, value),
            Self::RandomForest(p) => p.set_param(key, value),
            Self::Pipeline(pipe) => {
                if let Some((step, param)) = key.split_once("__") {
                    if step == pipe.estimator.name() {
                        return pipe.estimator.set_param(param, value);
                    }
                    if let Some(t) = pipe.steps.iter_mut().find(|t| t.name() == step) {
                        return t.set_param(param, value);
                    }
                    return Err(ModelError::param(
                        "pipeline",
                        key,
                        format!("no step named '{step}'"),
                    ));
                }
                let mut owners = Vec::new();
                if pipe.estimator.params_names().contains(&key) {
                    owners.push(pipe.estimator.name());
                }
                owners.extend(
                    pipe.steps
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
                    1 if owners[0] == pipe.estimator.name() => pipe.estimator.set_param(key, value),
                    1 => {
                        let name = owners[0].clone();
                        pipe.steps
                            .iter_mut()
                            .find(|t| t.name() == name)
                            .expect("owner exists")
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
        }
    }

    /// Gives randomised estimators that have no `random_state` this seed, so a run is
    /// reproducible from the seed it reports.
    pub fn seed_unset(&mut self, seed: u64) {
        match self {
            Self::DecisionTree(p) => {
                p.random_state.get_or_insert(seed);
            }
            Self::RandomForest(p) => {
                p.tree.random_state.get_or_insert(seed);
            }
            Self::Pipeline(p) => p.estimator.seed_unset(seed),
            Self::LogisticRegression(_) | Self::GaussianNb(_) => {}
        }
    }

    /// Checks every parameter.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::LogisticRegression(p) => p.validate(),
            Self::GaussianNb(p) => p.validate(),
            Self::DecisionTree(p) => p.validate(),
            Self::RandomForest(p) => p.validate(),
            Self::Pipeline(p) => {
                if matches!(*p.estimator, Self::Pipeline(_)) {
                    return Err(ModelError::param(
                        "pipeline",
                        "estimator",
                        "cannot be a pipeline",
                    ));
                }
                p.steps.iter().try_for_each(TransformerSpec::validate)?;
                p.estimator.validate()
            }
        }
    }
}

impl Fit for Estimator {
    type Fitted = FittedModel;

    fn fit(&self, data: &Dataset) -> Result<FittedModel> {
        self.validate()?;
        Ok(match self {
            Self::LogisticRegression(p) => FittedModel::LogisticRegression(p.fit(data)?),
            Self::GaussianNb(p) => FittedModel::GaussianNb(p.fit(data)?),
            Self::DecisionTree(p) => FittedModel::DecisionTree(p.fit(data)?),
            Self::RandomForest(p) => FittedModel::Ensemble(p.fit(data)?),
            Self::Pipeline(p) => {
                let mut steps = Vec::with_capacity(p.steps.len());
                let mut current = data.clone();
                for s in &p.steps {
                    let fitted = s.fit(current.x())?;
                    let x = fitted.transform(current.x())?;
                    let names = current.feature_names().to_vec();
                    current = current.with_x(x, names)?;
                    steps.push(fitted);
                }
                let estimator = Box::new(p.estimator.fit(&current)?);
                FittedModel::Pipeline(FittedPipeline { steps, estimator })
            }
        })
    }
}

/// A fitted transformer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum FittedTransformer {
    /// A fitted standard scaler.
    StandardScaler(FittedStandardScaler),
}

impl Transformer for FittedTransformer {
    fn n_features_in(&self) -> usize {
        match self {
            Self::StandardScaler(t) => t.n_features_in(),
        }
    }

    fn transform(&self, x: &Matrix) -> Result<Matrix> {
        match self {
            Self::StandardScaler(t) => t.transform(x),
        }
    }
}

/// A fitted pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedPipeline {
    /// Fitted transformers, in order.
    pub steps: Vec<FittedTransformer>,
    /// The fitted final classifier.
    pub estimator: Box<FittedModel>,
}

/// A fitted classifier of any kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum FittedModel {
    /// Logistic regression.
    LogisticRegression(FittedLogisticRegression),
    /// Gaussian naive Bayes.
    GaussianNb(FittedGaussianNb),
    /// Decision tree.
    DecisionTree(FittedDecisionTree),
    /// Pipeline.
    Pipeline(FittedPipeline),
    /// An ensemble: a forest, or members a meta-estimator fitted apart.
    Ensemble(FittedEnsemble),
}

impl FittedModel {
    fn as_classifier(&self) -> &dyn Classifier {
        match self {
            Self::LogisticRegression(m) => m,
            Self::GaussianNb(m) => m,
            Self::DecisionTree(m) => m,
            Self::Pipeline(p) => p,
            Self::Ensemble(e) => e,
        }
    }
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

impl Classifier for FittedModel {
    fn n_features(&self) -> usize {
        self.as_classifier().n_features()
    }

    fn n_classes(&self) -> usize {
        self.as_classifier().n_classes()
    }

    fn predict_proba(&self, x: &Matrix) -> Result<Matrix> {
        self.as_classifier().predict_proba(x)
    }

    fn predict(&self, x: &Matrix) -> Result<Vec<u32>> {
        self.as_classifier().predict(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_round_trip() {
        for n in [
            "logistic_regression",
            "gaussian_nb",
            "decision_tree",
            "standard_scaler+gaussian_nb",
        ] {
            assert_eq!(Estimator::from_name(n).unwrap().name(), n);
        }
        let e = Estimator::from_name("svm").unwrap_err().to_string();
        assert!(
            e.contains("unknown estimator 'svm'") && e.contains("gaussian_nb"),
            "{e}"
        );
        let e = Estimator::from_name("standard_scaler")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a transformer"), "{e}");
    }

    #[test]
    fn pipeline_params_are_routed() {
        let mut e = Estimator::from_name("standard_scaler+logistic_regression").unwrap();
        e.set_param("C", "0.5").unwrap();
        e.set_param("standard_scaler__with_mean", "false").unwrap();
        e.set_param("logistic_regression__max_iter", "300").unwrap();
        let Estimator::Pipeline(p) = &e else { panic!() };
        let Estimator::LogisticRegression(lr) = &*p.estimator else {
            panic!()
        };
        assert_eq!((lr.c, lr.max_iter), (0.5, 300));
        let TransformerSpec::StandardScaler(s) = &p.steps[0];
        assert!(!s.with_mean);
        assert!(e.set_param("gamma", "1").is_err());
        assert!(e.set_param("svm__C", "1").is_err());
    }

    #[test]
    fn specs_and_fitted_models_survive_messagepack() {
        let data = crate::io::iris();
        let mut e = Estimator::from_name("standard_scaler+decision_tree").unwrap();
        e.set_param("random_state", "0").unwrap();
        let bytes = rmp_serde::to_vec_named(&e).unwrap();
        let back: Estimator = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, e);
        let m = e.fit(&data).unwrap();
        let bytes = rmp_serde::to_vec_named(&m).unwrap();
        let back: FittedModel = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(
            back.predict_proba(data.x()).unwrap(),
            m.predict_proba(data.x()).unwrap()
        );
    }
}
