//! Estimators by name: the serialisable specification of a model (kind and parameters),
//! pipelines of transformers ending in a classifier, and the matching fitted models.
//!
//! This is what crosses process boundaries: a job names an [`Estimator`], a worker fits it,
//! and the [`FittedModel`] goes into an artifact.

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::ensemble::{FittedEnsemble, RandomForestParams, RandomForestRegressorParams};
use crate::error::{ModelError, Result};
use crate::linear::{
    FittedLinearRegression, FittedLogisticRegression, LinearRegressionParams,
    LogisticRegressionParams, RidgeParams,
};
use crate::matrix::Matrix;
use crate::naive_bayes::{FittedGaussianNb, GaussianNbParams};
use crate::preprocessing::{
    FittedSelectFromModel, FittedStandardScaler, SelectFromModelParams, StandardScalerParams,
};
use crate::traits::{Classifier, Fit, Params, Transformer};
use crate::tree::{DecisionTreeClassifierParams, DecisionTreeRegressorParams, FittedDecisionTree};

/// Every classifier name with a one-line description, for help texts.
pub const CLASSIFIERS: &[(&str, &str)] = &[
    (
        "logistic_regression",
        "logistic regression (binary or multinomial): L2 by L-BFGS, or penalty=l1",
    ),
    ("gaussian_nb", "Gaussian naive Bayes"),
    ("decision_tree", "CART decision tree (gini or entropy)"),
    (
        "random_forest",
        "random forest of CART trees on bootstrap samples",
    ),
];

/// Every regressor name with a one-line description.
pub const REGRESSORS: &[(&str, &str)] = &[
    ("linear_regression", "ordinary least squares"),
    ("ridge", "least squares with an L2 penalty (alpha)"),
    (
        "decision_tree_regressor",
        "CART regression tree (squared error)",
    ),
    (
        "random_forest_regressor",
        "random forest of regression trees on bootstrap samples",
    ),
];

/// Every transformer name with a one-line description.
pub const TRANSFORMERS: &[(&str, &str)] = &[
    (
        "standard_scaler",
        "remove the mean and scale to unit variance",
    ),
    (
        "select_from_model",
        "keep the features an L1 logistic regression gives weight (threshold, C)",
    ),
];

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
    /// Ordinary least squares.
    LinearRegression(LinearRegressionParams),
    /// Ridge regression.
    Ridge(RidgeParams),
    /// Regression tree.
    DecisionTreeRegressor(DecisionTreeRegressorParams),
    /// Random-forest regressor.
    RandomForestRegressor(RandomForestRegressorParams),
    /// Transformers followed by an estimator.
    Pipeline(PipelineParams),
}

/// A transformer specification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "params", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TransformerSpec {
    /// Standard scaler.
    StandardScaler(StandardScalerParams),
    /// Model-based feature selection.
    SelectFromModel(SelectFromModelParams),
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
            "select_from_model" | "SelectFromModel" => {
                Ok(Self::SelectFromModel(SelectFromModelParams::default()))
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
            Self::SelectFromModel(_) => SelectFromModelParams::NAME,
        }
    }

    fn params_names(&self) -> &'static [&'static str] {
        match self {
            Self::StandardScaler(_) => StandardScalerParams::PARAM_NAMES,
            Self::SelectFromModel(_) => SelectFromModelParams::PARAM_NAMES,
        }
    }

    fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
        match self {
            Self::StandardScaler(p) => p.set_param(key, value),
            Self::SelectFromModel(p) => p.set_param(key, value),
        }
    }

    fn validate(&self) -> Result<()> {
        match self {
            Self::StandardScaler(p) => p.validate(),
            Self::SelectFromModel(p) => p.validate(),
        }
    }

    /// Fits the transformer on a dataset (a selector also reads the target).
    pub fn fit(&self, data: &Dataset) -> Result<FittedTransformer> {
        match self {
            Self::StandardScaler(p) => {
                Ok(FittedTransformer::StandardScaler(p.fit_matrix(data.x())?))
            }
            Self::SelectFromModel(p) => Ok(FittedTransformer::SelectFromModel(p.fit_data(data)?)),
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
            "linear_regression" | "LinearRegression" => {
                Self::LinearRegression(LinearRegressionParams::default())
            }
            "ridge" | "Ridge" => Self::Ridge(RidgeParams::default()),
            "decision_tree_regressor" | "DecisionTreeRegressor" => {
                Self::DecisionTreeRegressor(DecisionTreeRegressorParams::default())
            }
            "random_forest_regressor" | "RandomForestRegressor" => {
                Self::RandomForestRegressor(RandomForestRegressorParams::default())
            }
            t if TransformerSpec::from_name(t).is_ok() => {
                return Err(ModelError::UnknownEstimator(
                    t.to_string(),
                    format!(
                        "{}, {} ('{t}' is a transformer: put it in front of an estimator, e.g. {t}+logistic_regression)",
                        names(CLASSIFIERS),
                        names(REGRESSORS)
                    ),
                ))
            }
            other => {
                return Err(ModelError::UnknownEstimator(
                    other.to_string(),
                    format!("{}, {}", names(CLASSIFIERS), names(REGRESSORS)),
                ))
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
            Self::LinearRegression(_) => LinearRegressionParams::NAME.to_string(),
            Self::Ridge(_) => RidgeParams::NAME.to_string(),
            Self::DecisionTreeRegressor(_) => DecisionTreeRegressorParams::NAME.to_string(),
            Self::RandomForestRegressor(_) => RandomForestRegressorParams::NAME.to_string(),
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
            Self::LinearRegression(_) => LinearRegressionParams::PARAM_NAMES,
            Self::Ridge(_) => RidgeParams::PARAM_NAMES,
            Self::DecisionTreeRegressor(_) => DecisionTreeRegressorParams::PARAM_NAMES,
            Self::RandomForestRegressor(_) => RandomForestRegressorParams::PARAM_NAMES,
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
            Self::LinearRegression(p) => p.set_param(key, value),
            Self::Ridge(p) => p.set_param(key, value),
            Self::DecisionTreeRegressor(p) => p.set_param(key, value),
            Self::RandomForestRegressor(p) => p.set_param(key, value),
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
            Self::DecisionTreeRegressor(p) => {
                p.tree.random_state.get_or_insert(seed);
            }
            Self::RandomForestRegressor(p) => {
                p.forest.tree.random_state.get_or_insert(seed);
            }
            Self::Pipeline(p) => p.estimator.seed_unset(seed),
            Self::LogisticRegression(_)
            | Self::GaussianNb(_)
            | Self::LinearRegression(_)
            | Self::Ridge(_) => {}
        }
    }

    /// True for an estimator that predicts values rather than classes.
    pub fn is_regressor(&self) -> bool {
        match self {
            Self::LinearRegression(_)
            | Self::Ridge(_)
            | Self::DecisionTreeRegressor(_)
            | Self::RandomForestRegressor(_) => true,
            Self::Pipeline(p) => p.estimator.is_regressor(),
            Self::LogisticRegression(_)
            | Self::GaussianNb(_)
            | Self::DecisionTree(_)
            | Self::RandomForest(_) => false,
        }
    }

    /// Checks every parameter.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::LogisticRegression(p) => p.validate(),
            Self::GaussianNb(p) => p.validate(),
            Self::DecisionTree(p) => p.validate(),
            Self::RandomForest(p) => p.validate(),
            Self::LinearRegression(p) => p.validate(),
            Self::Ridge(p) => p.validate(),
            Self::DecisionTreeRegressor(p) => p.validate(),
            Self::RandomForestRegressor(p) => p.validate(),
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
            Self::LinearRegression(p) => FittedModel::LinearRegression(p.fit(data)?),
            Self::Ridge(p) => FittedModel::LinearRegression(p.fit(data)?),
            Self::DecisionTreeRegressor(p) => FittedModel::DecisionTree(p.fit(data)?),
            Self::RandomForestRegressor(p) => FittedModel::Ensemble(p.fit(data)?),
            Self::Pipeline(p) => {
                let mut steps = Vec::with_capacity(p.steps.len());
                let mut current = data.clone();
                for s in &p.steps {
                    let fitted = s.fit(&current)?;
                    let x = fitted.transform(current.x())?;
                    let names = fitted.feature_names_out(current.feature_names());
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
    /// A fitted feature selection.
    SelectFromModel(FittedSelectFromModel),
}

impl FittedTransformer {
    /// The names of the output columns, given the input's.
    pub fn feature_names_out(&self, names: &[String]) -> Vec<String> {
        match self {
            Self::StandardScaler(_) => names.to_vec(),
            Self::SelectFromModel(t) => t.support().iter().map(|&j| names[j].clone()).collect(),
        }
    }
}

impl Transformer for FittedTransformer {
    fn n_features_in(&self) -> usize {
        match self {
            Self::StandardScaler(t) => t.n_features_in(),
            Self::SelectFromModel(t) => t.n_features_in(),
        }
    }

    fn transform(&self, x: &Matrix) -> Result<Matrix> {
        match self {
            Self::StandardScaler(t) => t.transform(x),
            Self::SelectFromModel(t) => t.transform(x),
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
    /// Decision tree (a classifier, or a regressor).
    DecisionTree(FittedDecisionTree),
    /// Least squares (linear regression or ridge).
    LinearRegression(FittedLinearRegression),
    /// Pipeline.
    Pipeline(FittedPipeline),
    /// An ensemble: a forest, or members a meta-estimator fitted apart.
    Ensemble(FittedEnsemble),
    /// A stacking classifier.
    Stacking(crate::meta::FittedStacking),
    /// A two-step (cascade) classifier.
    Cascade(crate::meta::FittedCascade),
    /// One model per target column.
    MultiOutput(crate::meta::FittedMultiOutput),
}

impl FittedModel {
    fn as_classifier(&self) -> Result<&dyn Classifier> {
        Ok(match self {
            Self::LogisticRegression(m) => m,
            Self::GaussianNb(m) => m,
            Self::DecisionTree(m) => m,
            Self::Pipeline(p) => p,
            Self::Ensemble(e) => e,
            Self::Stacking(m) => m,
            Self::Cascade(m) => m,
            Self::LinearRegression(_) => {
                return Err(ModelError::data(
                    "model",
                    "a regressor predicts values, not classes",
                ))
            }
            Self::MultiOutput(_) => {
                return Err(ModelError::data(
                    "model",
                    "a multi-output model predicts several targets: use predict_outputs",
                ))
            }
        })
    }

    /// True for a model that predicts values rather than classes.
    pub fn is_regressor(&self) -> bool {
        match self {
            Self::LinearRegression(_) => true,
            Self::DecisionTree(t) => t.is_regressor(),
            Self::Ensemble(e) => e.is_regressor(),
            Self::Pipeline(p) => p.estimator.is_regressor(),
            Self::LogisticRegression(_)
            | Self::GaussianNb(_)
            | Self::Stacking(_)
            | Self::Cascade(_)
            | Self::MultiOutput(_) => false,
        }
    }

    /// A regressor's predictions.
    pub fn predict_values(&self, x: &Matrix) -> Result<Vec<f32>> {
        match self {
            Self::LinearRegression(m) => m.predict_values(x),
            Self::DecisionTree(t) => t.predict_values(x),
            Self::Ensemble(e) => e.predict_values(x),
            Self::Pipeline(p) => p.estimator.predict_values(&p.transform(x)?),
            Self::LogisticRegression(_)
            | Self::GaussianNb(_)
            | Self::Stacking(_)
            | Self::Cascade(_)
            | Self::MultiOutput(_) => Err(ModelError::data(
                "model",
                "a classifier predicts classes, not values",
            )),
        }
    }

    /// The default score on a dataset, as scikit-learn's `score`: accuracy for a
    /// classifier, R² for a regressor.
    pub fn evaluate(&self, data: &Dataset) -> Result<f64> {
        if let Self::MultiOutput(m) = self {
            return Ok(m.evaluate(data)?.0);
        }
        if self.is_regressor() {
            let y = data.value_target()?;
            crate::metrics::r2_score(&y, &self.predict_values(data.x())?)
        } else {
            self.score(data.x(), data.class_target()?.0)
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
        match self {
            Self::LinearRegression(m) => m.n_features(),
            Self::MultiOutput(m) => m.features.len(),
            m => m.as_classifier().map_or(0, |c| c.n_features()),
        }
    }

    /// Classes; 0 for a regressor.
    fn n_classes(&self) -> usize {
        self.as_classifier().map_or(0, |c| c.n_classes())
    }

    fn predict_proba(&self, x: &Matrix) -> Result<Matrix> {
        self.as_classifier()?.predict_proba(x)
    }

    fn predict(&self, x: &Matrix) -> Result<Vec<u32>> {
        self.as_classifier()?.predict(x)
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
        let TransformerSpec::StandardScaler(s) = &p.steps[0] else {
            panic!()
        };
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
