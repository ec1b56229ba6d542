//! Ensembles: random forests, and the fitted models that meta-estimators assemble from
//! independently fitted members (one-vs-rest, averaging, voting).
//!
//! A forest's tree `i` depends only on the forest's seed and `i` (its bootstrap sample and
//! its feature draws), never on which task or thread grew it, so a forest grown in batches
//! on a mesh equals one grown in a loop.
//!
//! ```
//! use meshml_models::{ensemble::RandomForestParams, io::iris, Classifier, Fit, Params};
//!
//! let data = iris();
//! let mut p = RandomForestParams::default();
//! p.set_param("n_estimators", "20")?;
//! p.set_param("random_state", "0")?;
//! let forest = p.fit(&data)?;
//! assert!(forest.score(data.x(), data.class_target()?.0)? > 0.95);
//! # Ok::<(), meshml_models::ModelError>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{ModelError, Result};
use crate::matrix::Matrix;
use crate::rng::Rng;
use crate::traits::{
    argmax_rows, check_input_missing_ok, parse_bool, parse_value, Checked, Classifier, Fit, Member,
    Model, Params,
};
use crate::tree::{Criterion, DecisionTreeClassifierParams, FittedDecisionTree, MaxFeatures};

/// Hyperparameters of a random-forest classifier (scikit-learn's names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RandomForestParams {
    /// Number of trees.
    pub n_estimators: usize,
    /// Grow each tree on a bootstrap sample (as sample weights) of the training rows.
    pub bootstrap: bool,
    /// The trees' parameters; `max_features` defaults to `sqrt`, and `random_state` seeds
    /// the whole forest.
    pub tree: DecisionTreeClassifierParams,
}

impl Default for RandomForestParams {
    fn default() -> Self {
        Self {
            n_estimators: 100,
            bootstrap: true,
            tree: DecisionTreeClassifierParams::default().with_max_features(MaxFeatures::Sqrt),
        }
    }
}

impl Params for RandomForestParams {
    const NAME: &'static str = "random_forest";
    const ALIASES: &'static [&'static str] =
        &["random_forest_classifier", "RandomForestClassifier"];
    const DESCRIPTION: &'static str = "random forest of CART trees on bootstrap samples";
    const PARAM_NAMES: &'static [&'static str] = &[
        "n_estimators",
        "bootstrap",
        "criterion",
        "max_depth",
        "min_samples_split",
        "min_samples_leaf",
        "max_features",
        "min_impurity_decrease",
        "random_state",
    ];

    fn validate(&self) -> Result<()> {
        self.validate_forest(Self::NAME)?;
        self.tree.validate()
    }

    fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
        self.set_forest_param(Self::NAME, key, value)
    }

    fn seed_unset(&mut self, seed: u64) {
        self.tree.random_state.get_or_insert(seed);
    }
}

/// Hyperparameters of a random-forest regressor (scikit-learn's
/// `RandomForestRegressor`): a forest of `squared_error` trees over every feature, whose
/// predictions are averaged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct RandomForestRegressorParams {
    /// The forest; its trees' criterion is `squared_error`.
    pub forest: RandomForestParams,
}

impl Default for RandomForestRegressorParams {
    fn default() -> Self {
        Self {
            forest: RandomForestParams {
                tree: DecisionTreeClassifierParams::default()
                    .with_criterion(Criterion::SquaredError),
                ..RandomForestParams::default()
            },
        }
    }
}

impl Params for RandomForestRegressorParams {
    const NAME: &'static str = "random_forest_regressor";
    const ALIASES: &'static [&'static str] = &["RandomForestRegressor"];
    const DESCRIPTION: &'static str = "random forest of regression trees on bootstrap samples";
    const PARAM_NAMES: &'static [&'static str] = RandomForestParams::PARAM_NAMES;

    fn validate(&self) -> Result<()> {
        if self.forest.tree.criterion != Criterion::SquaredError {
            return Err(ModelError::param(
                Self::NAME,
                "criterion",
                "a regressor supports squared_error only",
            ));
        }
        self.forest.validate_forest(Self::NAME)
    }

    fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
        self.forest.set_forest_param(Self::NAME, key, value)
    }

    fn seed_unset(&mut self, seed: u64) {
        self.forest.tree.random_state.get_or_insert(seed);
    }
}

impl RandomForestParams {
    fn validate_forest(&self, name: &'static str) -> Result<()> {
        if self.n_estimators == 0 {
            return Err(ModelError::param(
                name,
                "n_estimators",
                "must be at least 1",
            ));
        }
        self.tree.validate_tree()
    }

    fn set_forest_param(&mut self, name: &'static str, key: &str, value: &str) -> Result<()> {
        match key {
            "n_estimators" => {
                self.n_estimators = parse_value(name, key, value, "a positive integer")?
            }
            "bootstrap" => self.bootstrap = parse_bool(name, key, value)?,
            k if DecisionTreeClassifierParams::PARAM_NAMES.contains(&k) => {
                self.tree.set_tree_param(name, key, value)?
            }
            _ => {
                return Err(ModelError::param(
                    name,
                    key,
                    format!("no such parameter; known: {}", Self::PARAM_NAMES.join(", ")),
                ))
            }
        }
        Ok(())
    }

    /// The seed the forest uses: `random_state`, or one drawn from the clock.
    fn seed(&self) -> u64 {
        crate::rng::seed_or_clock(self.tree.random_state)
    }

    /// Grows trees `from..to` of the forest (a batch; the whole forest is `0..n_estimators`).
    /// `random_state` must be set for batches grown apart to form one forest.
    ///
    /// This is the entry point of a forest task: it checks the forest's parameters but not
    /// the criterion's task (the trees of a regressor's forest use `squared_error`).
    pub fn fit_trees(&self, data: &Dataset, from: usize, to: usize) -> Result<Forest> {
        self.validate_forest(Self::NAME)?;
        crate::schema::check_model_input(data, Self::NAME, true)?;
        self.grow_trees(data, from, to)
    }

    /// Grows trees `from..to` from parameters already checked.
    fn grow_trees(&self, data: &Dataset, from: usize, to: usize) -> Result<Forest> {
        let n_classes = if self.tree.criterion == Criterion::SquaredError {
            0
        } else {
            data.class_target()?.1.len()
        };
        if from >= to || to > self.n_estimators {
            return Err(ModelError::param(
                Self::NAME,
                "n_estimators",
                format!(
                    "trees {from}..{to} are not a batch of {}",
                    self.n_estimators
                ),
            ));
        }
        let seed = self.seed();
        let n = data.n_samples();
        let mut members = Vec::with_capacity(to - from);
        for i in from..to {
            let mut tree = self.tree.clone();
            tree.random_state = Some(Rng::derive(seed, 2 * i as u64).next_u64());
            let weights = self.bootstrap.then(|| {
                let mut rng = Rng::derive(seed, 2 * i as u64 + 1);
                let mut w = vec![0.0f64; n];
                for _ in 0..n {
                    w[rng.below(n)] += 1.0;
                }
                w
            });
            let t: FittedDecisionTree = tree.grow(data, weights.as_deref())?;
            members.push(t);
        }
        Ok(FittedEnsemble {
            combine: Combine::Average,
            members,
            n_classes,
            n_features: data.n_features(),
        })
    }

    /// Grows the whole forest from parameters already checked.
    fn grow_forest(&self, data: &Dataset) -> Result<Forest> {
        let mut p = self.clone();
        p.tree.random_state = Some(self.seed());
        p.grow_trees(data, 0, self.n_estimators)
    }
}

/// Grows the whole forest.
impl Fit for Checked<RandomForestParams> {
    type Fitted = Forest;

    fn fit(&self, data: &Dataset) -> Result<Forest> {
        self.grow_forest(data)
    }
}

/// Grows the whole forest.
impl Fit for Checked<RandomForestRegressorParams> {
    type Fitted = Forest;

    fn fit(&self, data: &Dataset) -> Result<Forest> {
        self.forest.grow_forest(data)
    }
}

/// Every pair `(a, b)` of `n` classes with `a < b`, in scikit-learn's order.
pub fn class_pairs(n: usize) -> Vec<(u32, u32)> {
    let n = n as u32;
    (0..n)
        .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
        .collect()
}

/// How an ensemble combines its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// Mean of the members' probabilities (forests, bagging, soft voting).
    Average,
    /// Member `k` separates class `k` from the rest; probabilities are the members'
    /// positive-class probabilities normalised per row (scikit-learn's
    /// `OneVsRestClassifier`). With two classes there is one member, for class 1.
    OneVsRest,
    /// Each member's predicted class gets a vote; probabilities are vote shares, and ties
    /// go to the lowest class id (hard voting).
    Vote,
    /// Member `m` separates the `m`-th pair `(a, b)` of [`class_pairs`] (1 is
    /// `b`). Each pair votes for its predicted class; vote ties are broken by the summed
    /// confidences (the members' log-odds), squashed into (-1/3, 1/3) as scikit-learn's
    /// `OneVsOneClassifier` does. "Probabilities" are these decision values shifted by 1/3
    /// and normalised per row: a ranking, not calibrated probabilities.
    OneVsOne,
}

/// Independently fitted members combined into one model: a classifier, or a regressor
/// (`n_classes` 0) whose members' predictions are averaged. Generic over its members: a
/// forest's are trees ([`Forest`]); the model enum holds ensembles of any fitted model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedEnsemble<M> {
    /// How members are combined.
    pub combine: Combine,
    /// The members.
    pub members: Vec<M>,
    /// Classes of the whole problem; 0 for a regressor.
    pub n_classes: usize,
    /// Feature columns.
    pub n_features: usize,
}

/// A random forest as grown: an ensemble of trees.
pub type Forest = FittedEnsemble<FittedDecisionTree>;

impl<M> FittedEnsemble<M> {
    /// The same ensemble with each member turned into another type (a forest's trees into
    /// the model enum, say).
    pub fn map_members<N>(self, f: impl FnMut(M) -> N) -> FittedEnsemble<N> {
        FittedEnsemble {
            combine: self.combine,
            members: self.members.into_iter().map(f).collect(),
            n_classes: self.n_classes,
            n_features: self.n_features,
        }
    }
}

impl<M: Member> FittedEnsemble<M> {
    /// True for an ensemble of regressors.
    pub fn is_regressor(&self) -> bool {
        self.n_classes == 0
    }

    /// A regressor's prediction: the mean of its members'.
    pub fn predict_values(&self, x: &Matrix) -> Result<Vec<f32>> {
        check_input_missing_ok(x, self.n_features, "ensemble")?;
        if !self.is_regressor() {
            return Err(ModelError::data(
                "model",
                "a classifier predicts classes, not values",
            ));
        }
        let mut acc = vec![0.0f64; x.rows()];
        for m in &self.members {
            for (a, v) in acc.iter_mut().zip(m.predict_values(x)?) {
                *a += f64::from(v);
            }
        }
        let m = self.members.len().max(1) as f64;
        Ok(acc.into_iter().map(|a| (a / m) as f32).collect())
    }

    /// Joins batches of one ensemble (trees grown by different tasks), in order.
    pub fn concat(parts: Vec<Self>) -> Result<Self> {
        let mut it = parts.into_iter();
        let mut first = it
            .next()
            .ok_or_else(|| ModelError::data("ensemble", "no members"))?;
        for p in it {
            if p.combine != first.combine
                || p.n_classes != first.n_classes
                || p.n_features != first.n_features
            {
                return Err(ModelError::data(
                    "ensemble",
                    "batches disagree on their kind, classes or features",
                ));
            }
            first.members.extend(p.members);
        }
        Ok(first)
    }
}

impl<M: Member> Classifier for FittedEnsemble<M> {
    fn n_features(&self) -> usize {
        self.n_features
    }

    fn n_classes(&self) -> usize {
        self.n_classes
    }

    fn predict_proba(&self, x: &Matrix) -> Result<Matrix> {
        check_input_missing_ok(x, self.n_features, "ensemble")?;
        if self.is_regressor() {
            return Err(ModelError::data(
                "model",
                "a regressor has no class probabilities",
            ));
        }
        let (n, k) = (x.rows(), self.n_classes);
        let mut acc = vec![0.0f64; n * k];
        match self.combine {
            Combine::Average => {
                for m in &self.members {
                    m.add_proba(x, &mut acc)?;
                }
                let m = self.members.len().max(1) as f64;
                acc.iter_mut().for_each(|a| *a /= m);
            }
            Combine::OneVsRest => {
                if k == 2 && self.members.len() == 1 {
                    let p = self.members[0].predict_proba(x)?;
                    for (i, row) in p.data().chunks_exact(2).enumerate() {
                        acc[i * 2] = f64::from(row[0]);
                        acc[i * 2 + 1] = f64::from(row[1]);
                    }
                } else {
                    for (c, m) in self.members.iter().enumerate() {
                        let p = m.predict_proba(x)?;
                        for (i, row) in p.data().chunks_exact(2).enumerate() {
                            acc[i * k + c] = f64::from(row[1]);
                        }
                    }
                    for row in acc.chunks_exact_mut(k) {
                        let s: f64 = row.iter().sum();
                        if s > 0.0 {
                            row.iter_mut().for_each(|v| *v /= s);
                        }
                    }
                }
            }
            Combine::OneVsOne => {
                let pairs = class_pairs(k);
                if pairs.len() != self.members.len() {
                    return Err(ModelError::Shape(format!(
                        "{} one-vs-one members for {k} classes",
                        self.members.len()
                    )));
                }
                let mut conf = vec![0.0f64; n * k];
                for ((a, b), m) in pairs.into_iter().zip(&self.members) {
                    let p = m.predict_proba(x)?;
                    for (i, row) in p.data().chunks_exact(2).enumerate() {
                        let (p0, p1) = (f64::from(row[0]), f64::from(row[1]));
                        let winner = if p1 > p0 { b } else { a };
                        acc[i * k + winner as usize] += 1.0;
                        let c = p1.max(1e-12).ln() - p0.max(1e-12).ln();
                        conf[i * k + a as usize] -= c;
                        conf[i * k + b as usize] += c;
                    }
                }
                for (row, crow) in acc.chunks_exact_mut(k).zip(conf.chunks_exact(k)) {
                    for (v, c) in row.iter_mut().zip(crow) {
                        *v += c / (3.0 * (c.abs() + 1.0)) + 1.0 / 3.0;
                    }
                    let s: f64 = row.iter().sum();
                    if s > 0.0 {
                        row.iter_mut().for_each(|v| *v /= s);
                    }
                }
            }
            Combine::Vote => {
                for m in &self.members {
                    for (i, c) in m.predict(x)?.into_iter().enumerate() {
                        acc[i * k + c as usize] += 1.0;
                    }
                }
                let m = self.members.len().max(1) as f64;
                acc.iter_mut().for_each(|a| *a /= m);
            }
        }
        Matrix::from_vec(n, k, acc.into_iter().map(|v| v as f32).collect())
    }

    fn predict(&self, x: &Matrix) -> Result<Vec<u32>> {
        Ok(argmax_rows(&self.predict_proba(x)?))
    }
}

impl<M: Member> Model for FittedEnsemble<M> {
    fn as_classifier(&self) -> Result<&dyn Classifier> {
        Ok(self)
    }

    fn is_regressor(&self) -> bool {
        FittedEnsemble::<M>::is_regressor(self)
    }

    fn predict_values(&self, x: &Matrix) -> Result<Vec<f32>> {
        FittedEnsemble::<M>::predict_values(self, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::iris;

    #[test]
    fn batches_grown_apart_make_the_same_forest() {
        let data = iris();
        let mut p = RandomForestParams::default();
        p.set_param("n_estimators", "12").unwrap();
        p.set_param("random_state", "7").unwrap();
        let whole = p.fit(&data).unwrap();
        let parts = vec![
            p.fit_trees(&data, 0, 5).unwrap(),
            p.fit_trees(&data, 5, 6).unwrap(),
            p.fit_trees(&data, 6, 12).unwrap(),
        ];
        let joined = FittedEnsemble::concat(parts).unwrap();
        assert_eq!(joined, whole);
        // Different trees: the bootstrap samples and feature draws differ per tree.
        assert_ne!(whole.members[0], whole.members[1]);
        assert!(p.fit_trees(&data, 5, 13).is_err());
        assert!(p.fit_trees(&data, 5, 5).is_err());
    }

    #[test]
    fn forest_params_are_checked_and_routed() {
        let mut p = RandomForestParams::default();
        p.set_param("max_depth", "3").unwrap();
        p.set_param("bootstrap", "false").unwrap();
        assert_eq!(p.tree.max_depth, Some(3));
        assert!(!p.bootstrap);
        assert!(p.set_param("n_estimators", "0").is_ok());
        assert!(p.validate().is_err());
        assert!(p.set_param("C", "1").is_err());
    }

    #[test]
    fn a_forest_averages_exactly_what_its_trees_predict() {
        // 150 rows: the lane walk takes 8 rows at a time and the last 6 one by one.
        let data = iris();
        let mut p = RandomForestParams::default();
        p.set_param("n_estimators", "7").unwrap();
        p.set_param("random_state", "3").unwrap();
        let forest = p.fit(&data).unwrap();
        let mut want = vec![0.0f64; 150 * 3];
        for m in &forest.members {
            for (a, v) in want
                .iter_mut()
                .zip(m.predict_proba(data.x()).unwrap().data().iter())
            {
                *a += f64::from(*v);
            }
        }
        let want: Vec<f32> = want.iter().map(|v| (v / 7.0) as f32).collect();
        assert_eq!(forest.predict_proba(data.x()).unwrap().to_vec(), want);
    }

    #[test]
    fn votes_and_averages_combine_members() {
        let data = iris();
        let (y, _) = data.class_target().unwrap();
        let mut p = RandomForestParams::default();
        p.set_param("n_estimators", "5").unwrap();
        p.set_param("random_state", "1").unwrap();
        let forest = p.fit(&data).unwrap();
        let proba = forest.predict_proba(data.x()).unwrap();
        for row in proba.data().chunks_exact(3) {
            let s: f32 = row.iter().sum();
            assert!((s - 1.0).abs() < 1e-5);
        }
        let vote = FittedEnsemble {
            combine: Combine::Vote,
            ..forest.clone()
        };
        let v = vote.predict_proba(data.x()).unwrap();
        // Vote shares are multiples of 1/5.
        assert!(v
            .data()
            .iter()
            .all(|s| ((s * 5.0).round() - s * 5.0).abs() < 1e-5));
        assert!(vote.score(data.x(), y).unwrap() > 0.9);
    }
}
