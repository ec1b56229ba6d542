//! Estimators by name: the serialisable specification of a model (kind and parameters),
//! pipelines of transformers ending in a classifier, and the matching fitted models.
//!
//! This is what crosses process boundaries: a job names an [`Estimator`], a worker fits it,
//! and the [`FittedModel`] goes into an artifact.
//!
//! # The registry
//!
//! The list below is the one place that knows every estimator. The `registry!` macro
//! (in `estimator/registry.rs`) generates from it the [`Estimator`], [`TransformerSpec`],
//! [`FittedTransformer`] and [`FittedModel`] enums, their dispatch (names and aliases,
//! parameters, seeding, fitting, predicting) and the [`CLASSIFIERS`], [`REGRESSORS`] and
//! [`TRANSFORMERS`] tables. Adding an estimator is one line here; everything else about
//! it lives in its own module, behind the [`Params`], [`Fit`] and [`Model`] traits.

use serde::{Deserialize, Serialize};

use crate::boosting::{
    FittedHistGradientBoosting, HistGradientBoostingClassifierParams,
    HistGradientBoostingRegressorParams,
};
use crate::cluster::{FittedKMeans, KMeansParams};
use crate::dataset::Dataset;
use crate::decomposition::{FittedPca, PcaParams};
use crate::ensemble::{FittedEnsemble, Forest, RandomForestParams, RandomForestRegressorParams};
use crate::error::{ModelError, Result};
use crate::linear::{
    FittedLinearRegression, FittedLogisticRegression, FittedSgd, LinearRegressionParams,
    LogisticRegressionParams, RidgeParams, SgdClassifierParams, SgdRegressorParams,
};
use crate::matrix::Matrix;
use crate::meta::{FittedCascade, FittedMultiOutput, FittedStacking};
use crate::naive_bayes::{FittedGaussianNb, GaussianNbParams};
use crate::preprocessing::{
    FittedOneHotEncoder, FittedOrdinalEncoder, FittedSelectFromModel, FittedSimpleImputer,
    FittedStandardScaler, OneHotEncoderParams, OrdinalEncoderParams, SelectFromModelParams,
    SimpleImputerParams, StandardScalerParams,
};
use crate::traits::{Classifier, Fit, Member, Model, Params, Transformer};
use crate::tree::{DecisionTreeClassifierParams, DecisionTreeRegressorParams, FittedDecisionTree};

mod compose;
mod pipeline;
mod registry;

pub use compose::{
    ColumnPart, ColumnSelector, ColumnTransformerParams, FittedColumnTransformer, KindSelector,
    Remainder,
};
pub(crate) use pipeline::apply_step;
pub use pipeline::{FittedPipeline, PipelineParams};

registry::registry! {
    classifiers {
        /// Logistic regression.
        LogisticRegression(LogisticRegressionParams),
        /// Gaussian naive Bayes.
        GaussianNb(GaussianNbParams),
        /// Decision-tree classifier.
        DecisionTree(DecisionTreeClassifierParams),
        /// Random-forest classifier.
        RandomForest(RandomForestParams),
        /// Linear classifier by stochastic gradient descent.
        SgdClassifier(SgdClassifierParams),
        /// Gradient-boosted histogram trees.
        HistGradientBoostingClassifier(HistGradientBoostingClassifierParams),
    }
    regressors {
        /// Ordinary least squares.
        LinearRegression(LinearRegressionParams),
        /// Ridge regression.
        Ridge(RidgeParams),
        /// Regression tree.
        DecisionTreeRegressor(DecisionTreeRegressorParams),
        /// Random-forest regressor.
        RandomForestRegressor(RandomForestRegressorParams),
        /// Linear regressor by stochastic gradient descent.
        SgdRegressor(SgdRegressorParams),
        /// Gradient-boosted histogram trees.
        HistGradientBoostingRegressor(HistGradientBoostingRegressorParams),
    }
    clusterers {
        /// k-means clustering (predicts each row's cluster).
        Kmeans(KMeansParams),
    }
    transformers {
        /// Standard scaler.
        StandardScaler(StandardScalerParams => FittedStandardScaler),
        /// Model-based feature selection.
        SelectFromModel(SelectFromModelParams => FittedSelectFromModel),
        /// Missing-value imputation.
        SimpleImputer(SimpleImputerParams => FittedSimpleImputer),
        /// One-hot encoding of categorical columns.
        OneHotEncoder(OneHotEncoderParams => FittedOneHotEncoder),
        /// Ordinal encoding of categorical columns.
        OrdinalEncoder(OrdinalEncoderParams => FittedOrdinalEncoder),
        /// Per-column pipelines side by side.
        ColumnTransformer(ColumnTransformerParams => FittedColumnTransformer),
        /// Principal component analysis.
        Pca(PcaParams => FittedPca),
        /// k-means clustering (distances to the centres).
        Kmeans(KMeansParams => FittedKMeans),
    }
    fitted {
        /// Logistic regression.
        LogisticRegression(FittedLogisticRegression),
        /// Gaussian naive Bayes.
        GaussianNb(FittedGaussianNb),
        /// Decision tree (a classifier, or a regressor).
        DecisionTree(FittedDecisionTree),
        /// Least squares (linear regression or ridge).
        LinearRegression(FittedLinearRegression),
        /// A linear model fitted by SGD (a classifier or a regressor).
        Sgd(FittedSgd),
        /// k-means on its own (in a pipeline, a step's distances are a transformer).
        Kmeans(FittedKMeans),
        /// Gradient-boosted trees (a classifier or a regressor).
        HistGradientBoosting(FittedHistGradientBoosting),
        /// Pipeline.
        Pipeline(FittedPipeline),
        /// An ensemble: a forest, or members a meta-estimator fitted apart.
        Ensemble(FittedEnsemble<FittedModel>),
        /// A stacking classifier.
        Stacking(FittedStacking<FittedModel>),
        /// A two-step (cascade) classifier.
        Cascade(FittedCascade<FittedModel>),
        /// One model per target column.
        MultiOutput(FittedMultiOutput<FittedModel>),
    }
}

fn names(list: &[(&str, &str)]) -> String {
    list.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

impl Estimator {
    /// True for an estimator that splits categorical (and boolean) columns as they are:
    /// gradient boosting (scikit-learn's `categorical_features="from_dtype"`). The others
    /// refuse them, naming an encoder as the fix.
    pub fn takes_categories(&self) -> bool {
        matches!(
            self,
            Estimator::HistGradientBoostingClassifier(_)
                | Estimator::HistGradientBoostingRegressor(_)
        )
    }

    /// True for an estimator that fits on missing cells as they are: trees, forests and
    /// gradient boosting (scikit-learn's rule since 1.3: a split sends missing cells to the
    /// side that lowers impurity most). The others refuse them before any work (see
    /// [`crate::schema::check_model_input`]), naming `simple_imputer` as the fix.
    pub fn takes_missing(&self) -> bool {
        matches!(
            self,
            Estimator::DecisionTree(_)
                | Estimator::DecisionTreeRegressor(_)
                | Estimator::RandomForest(_)
                | Estimator::RandomForestRegressor(_)
                | Estimator::HistGradientBoostingClassifier(_)
                | Estimator::HistGradientBoostingRegressor(_)
        )
    }

    /// An estimator with default parameters from its name. `a+b+c` builds a pipeline of
    /// transformers `a`, `b` ending in classifier `c` (e.g. `standard_scaler+logistic_regression`).
    pub fn from_name(name: &str) -> Result<Self> {
        let parts: Vec<&str> = name.split('+').map(str::trim).collect();
        if parts.len() > 1 {
            let (last, first) = parts
                .split_last()
                .expect("a split of len > 1 has a last part");
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
        if let Some(e) = Self::registered(name) {
            return Ok(e);
        }
        let known = format!(
            "{}, {}, {}",
            names(CLASSIFIERS),
            names(REGRESSORS),
            names(CLUSTERERS)
        );
        if TransformerSpec::from_name(name).is_ok() {
            return Err(ModelError::UnknownEstimator(
                name.to_string(),
                format!(
                    "{known} ('{name}' is a transformer: put it in front of an estimator, e.g. {name}+logistic_regression)"
                ),
            ));
        }
        Err(ModelError::UnknownEstimator(name.to_string(), known))
    }
}

impl FittedTransformer {
    /// The names of the output columns, given the input's.
    pub fn feature_names_out(&self, names: &[String]) -> Vec<String> {
        self.inner().feature_names_out(names)
    }
}

impl Transformer for FittedTransformer {
    fn n_features_in(&self) -> usize {
        self.inner().n_features_in()
    }

    fn transform(&self, x: &Matrix) -> Result<Matrix> {
        self.inner().transform(x)
    }

    fn feature_names_out(&self, names: &[String]) -> Vec<String> {
        self.inner().feature_names_out(names)
    }

    fn kinds_out(&self, kinds: &[crate::schema::ColumnKind]) -> Vec<crate::schema::ColumnKind> {
        self.inner().kinds_out(kinds)
    }
}

impl FittedModel {
    /// True for a model that predicts values rather than classes.
    pub fn is_regressor(&self) -> bool {
        self.inner().is_regressor()
    }

    /// True for a model that predicts clusters (its classes are the clusters `0..k`).
    pub fn is_clusterer(&self) -> bool {
        self.inner().is_clusterer()
    }

    /// A regressor's predictions.
    pub fn predict_values(&self, x: &Matrix) -> Result<Vec<f32>> {
        self.inner().predict_values(x)
    }

    /// A clusterer's sum of squared distances of the rows to their nearest centre.
    pub fn inertia(&self, x: &Matrix) -> Result<f64> {
        self.inner().inertia(x)
    }

    /// The default score on a dataset, as scikit-learn's `score`: accuracy for a
    /// classifier, R² for a regressor, minus the inertia for a clusterer.
    pub fn evaluate(&self, data: &Dataset) -> Result<f64> {
        self.inner().evaluate(data)
    }
}

/// A forest as the model enum holds it: an ensemble whose members are trees (the serialised
/// form of each member names its kind).
impl From<Forest> for FittedModel {
    fn from(forest: Forest) -> Self {
        FittedModel::Ensemble(forest.map_members(FittedModel::DecisionTree))
    }
}

/// Any model can be a member of an ensemble or a meta-estimator; a tree adds its
/// probabilities straight into an averaging ensemble's sum.
impl Member for FittedModel {
    fn add_proba(&self, x: &Matrix, acc: &mut [f64]) -> Result<()> {
        match self {
            FittedModel::DecisionTree(t) => Member::add_proba(t, x, acc),
            m => crate::traits::add_predicted_proba(m, x, acc),
        }
    }
}

impl Model for FittedModel {
    fn as_classifier(&self) -> Result<&dyn Classifier> {
        self.inner().as_classifier()
    }

    fn n_inputs(&self) -> usize {
        self.inner().n_inputs()
    }

    fn is_regressor(&self) -> bool {
        self.inner().is_regressor()
    }

    fn is_clusterer(&self) -> bool {
        self.inner().is_clusterer()
    }

    fn inertia(&self, x: &Matrix) -> Result<f64> {
        self.inner().inertia(x)
    }

    fn predict_values(&self, x: &Matrix) -> Result<Vec<f32>> {
        self.inner().predict_values(x)
    }

    fn evaluate(&self, data: &Dataset) -> Result<f64> {
        self.inner().evaluate(data)
    }
}

impl Classifier for FittedModel {
    fn n_features(&self) -> usize {
        self.inner().n_inputs()
    }

    /// Classes; 0 for a regressor.
    fn n_classes(&self) -> usize {
        self.inner().as_classifier().map_or(0, |c| c.n_classes())
    }

    fn predict_proba(&self, x: &Matrix) -> Result<Matrix> {
        self.inner().as_classifier()?.predict_proba(x)
    }

    fn predict(&self, x: &Matrix) -> Result<Vec<u32>> {
        self.inner().as_classifier()?.predict(x)
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
    fn every_registered_name_and_alias_builds_its_kind() {
        for (list, regressor, clusterer) in [
            (CLASSIFIERS, false, false),
            (REGRESSORS, true, false),
            (CLUSTERERS, false, true),
        ] {
            for (name, description) in list {
                let e = Estimator::from_name(name).unwrap();
                assert_eq!(e.name(), *name);
                assert_eq!(e.is_regressor(), regressor, "{name}");
                assert_eq!(e.is_clusterer(), clusterer, "{name}");
                assert!(!description.is_empty(), "{name}");
                e.validate().unwrap();
            }
        }
        for (name, _) in TRANSFORMERS {
            assert_eq!(TransformerSpec::from_name(name).unwrap().name(), *name);
        }
        for (alias, name) in [
            ("LogisticRegression", "logistic_regression"),
            ("lr", "logistic_regression"),
            ("GaussianNB", "gaussian_nb"),
            ("naive_bayes", "gaussian_nb"),
            ("DecisionTreeClassifier", "decision_tree"),
            ("random_forest_classifier", "random_forest"),
            ("RandomForestRegressor", "random_forest_regressor"),
            ("Ridge", "ridge"),
        ] {
            assert_eq!(Estimator::from_name(alias).unwrap().name(), name);
        }
        assert_eq!(
            TransformerSpec::from_name("StandardScaler").unwrap().name(),
            "standard_scaler"
        );
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

    #[test]
    fn a_forest_predicts_the_same_as_a_tree_ensemble_and_as_a_model() {
        // The trees add their probabilities straight into the sum (Member for a tree), and
        // in the model enum through Member for FittedModel: both are the average of what
        // each tree predicts.
        let data = crate::io::iris();
        let mut p = RandomForestParams::default();
        p.set_param("n_estimators", "6").unwrap();
        p.set_param("random_state", "4").unwrap();
        let forest = p.fit(&data).unwrap();
        let want = forest.predict_proba(data.x()).unwrap();
        let model = FittedModel::from(forest.clone());
        assert_eq!(model.predict_proba(data.x()).unwrap(), want);
        let mut sum = vec![0.0f64; want.data().len()];
        for t in &forest.members {
            for (s, v) in sum
                .iter_mut()
                .zip(t.predict_proba(data.x()).unwrap().data().iter())
            {
                *s += f64::from(*v);
            }
        }
        let mean: Vec<f32> = sum.iter().map(|s| (s / 6.0) as f32).collect();
        assert_eq!(want.to_vec(), mean);
        // A regression tree in a classifier's sum is refused, whatever the rows.
        let reg = DecisionTreeRegressorParams::default();
        let values = Dataset::new(
            data.x().clone(),
            crate::dataset::Target::Values((0..data.n_samples()).map(|i| i as f32).collect()),
            data.feature_names().to_vec(),
            "v",
        )
        .unwrap();
        let t = reg.fit(&values).unwrap();
        let none = Matrix::from_vec(0, 4, Vec::new()).unwrap();
        assert!(Member::add_proba(&t, &none, &mut []).is_err());
        assert!(Member::add_proba(&t, data.x(), &mut []).is_err());
    }
}
