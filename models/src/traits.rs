//! The estimator traits.
//!
//! Hyperparameters are plain serde structs named like scikit-learn's parameters (they
//! travel in job files and over the wire, so they are not trusted). [`Params::check`]
//! validates them once and returns a [`Checked`] value, which nothing else can make; an
//! algorithm implements [`Fit`] for `Checked<ItsParams>`, so it only ever sees valid
//! parameters and never validates again. Fitting the plain parameters checks them first,
//! through a blanket implementation (linfa's `ParamGuard`). Fitting turns parameters into
//! a separate fitted type that predicts.
//!
//! ```
//! use meshml_models::{io::iris, linear::LogisticRegressionParams, Fit, Params};
//!
//! // Checked once, fitted as often as needed.
//! let checked = LogisticRegressionParams::default().with_c(0.5).check()?;
//! let model = checked.fit(&iris())?;
//! // Invalid parameters never reach the algorithm.
//! let err = LogisticRegressionParams::default().with_c(-1.0).fit(&iris()).unwrap_err();
//! assert!(err.to_string().contains("must be a finite number > 0"));
//! # let _ = model;
//! # Ok::<(), meshml_models::ModelError>(())
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::dataset::Dataset;
use crate::error::{ModelError, Result};
use crate::matrix::Matrix;

/// Hyperparameters of one estimator.
pub trait Params: Clone + std::fmt::Debug + Serialize + DeserializeOwned + Send + Sync {
    /// The estimator's name on the command line and in artifacts (`logistic_regression`).
    const NAME: &'static str;

    /// The parameter names accepted by [`Params::set_param`].
    const PARAM_NAMES: &'static [&'static str];

    /// Other names [`Estimator::from_name`](crate::Estimator::from_name) accepts, such as
    /// scikit-learn's class name (`LogisticRegression`).
    const ALIASES: &'static [&'static str] = &[];

    /// A one-line description for help texts and listings.
    const DESCRIPTION: &'static str;

    /// Checks every value; the error names the parameter and the allowed range.
    fn validate(&self) -> Result<()>;

    /// Sets one parameter from its text form (`C=0.5` on the command line arrives as
    /// `("C", "0.5")`). The result is validated by the caller.
    fn set_param(&mut self, key: &str, value: &str) -> Result<()>;

    /// Gives a randomised estimator that has no `random_state` this seed, so a run is
    /// reproducible from the seed it reports. Does nothing for a deterministic one.
    fn seed_unset(&mut self, _seed: u64) {}

    /// Validates the parameters, once: the [`Checked`] result is what algorithms fit from.
    fn check(self) -> Result<Checked<Self>> {
        self.validate()?;
        Ok(Checked(self))
    }

    /// [`Params::check`] on a copy.
    fn check_ref(&self) -> Result<Checked<Self>> {
        self.clone().check()
    }

    /// True when `name` is [`Params::NAME`] or one of [`Params::ALIASES`].
    fn is_named(name: &str) -> bool {
        name == Self::NAME || Self::ALIASES.contains(&name)
    }
}

/// Parameters that passed [`Params::validate`]. Its field is private, so
/// [`Params::check`] is the only way to make one: an algorithm that fits from
/// `Checked<P>` knows its parameters are valid. It reads them through `Deref`.
///
/// ```compile_fail
/// use meshml_models::{linear::LogisticRegressionParams, Checked};
///
/// // The field is private: unvalidated parameters cannot pass as checked ones.
/// let unchecked = Checked(LogisticRegressionParams::default().with_c(-1.0));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Checked<P>(P);

impl<P> Checked<P> {
    /// The parameters.
    pub fn params(&self) -> &P {
        &self.0
    }

    /// The parameters, unwrapped (to change them, and check them again).
    pub fn into_inner(self) -> P {
        self.0
    }
}

impl<P> std::ops::Deref for Checked<P> {
    type Target = P;

    fn deref(&self) -> &P {
        &self.0
    }
}

/// Learns from a dataset.
pub trait Fit {
    /// The fitted model.
    type Fitted;

    /// Fits (unchecked parameters are validated first).
    fn fit(&self, data: &Dataset) -> Result<Self::Fitted>;
}

/// Plain parameters fit by checking themselves, then fitting the checked value: an
/// estimator implements [`Fit`] for `Checked<ItsParams>` only.
impl<P: Params> Fit for P
where
    Checked<P>: Fit,
{
    type Fitted = <Checked<P> as Fit>::Fitted;

    fn fit(&self, data: &Dataset) -> Result<Self::Fitted> {
        self.check_ref()?.fit(data)
    }
}

/// A fitted classifier.
pub trait Classifier {
    /// Number of feature columns it expects.
    fn n_features(&self) -> usize;

    /// Number of classes it distinguishes (columns of [`Classifier::predict_proba`]).
    fn n_classes(&self) -> usize;

    /// Class probabilities, one row per sample, one column per class id.
    fn predict_proba(&self, x: &Matrix) -> Result<Matrix>;

    /// The most probable class id of every row.
    fn predict(&self, x: &Matrix) -> Result<Vec<u32>> {
        let p = self.predict_proba(x)?;
        Ok(argmax_rows(&p))
    }

    /// Mean accuracy on `x` against class ids `y`.
    fn score(&self, x: &Matrix, y: &[u32]) -> Result<f64> {
        let pred = self.predict(x)?;
        crate::metrics::accuracy(y, &pred)
    }
}

/// A fitted feature transformer.
pub trait Transformer {
    /// Number of input columns it expects.
    fn n_features_in(&self) -> usize;

    /// Transforms a feature matrix.
    fn transform(&self, x: &Matrix) -> Result<Matrix>;

    /// The names of the output columns, given the input's (by default, the same).
    fn feature_names_out(&self, names: &[String]) -> Vec<String> {
        names.to_vec()
    }

    /// The kinds of the output columns, given the input's (by default, the same).
    fn kinds_out(&self, kinds: &[crate::schema::ColumnKind]) -> Vec<crate::schema::ColumnKind> {
        kinds.to_vec()
    }
}

/// A fitted model that an ensemble or a meta-estimator holds as a member: it predicts
/// class probabilities or values. [`FittedModel`](crate::FittedModel) is one, and so is a
/// bare tree. Ensembles and meta-estimators are generic over their members, so that they
/// need not name the enum of every model that in turn contains them.
pub trait Member: Classifier + Model {
    /// Adds this member's class probabilities for `x` into `acc` (`x.rows()` rows of the
    /// ensemble's classes, row major), as an averaging ensemble sums them.
    fn add_proba(&self, x: &Matrix, acc: &mut [f64]) -> Result<()> {
        add_predicted_proba(self, x, acc)
    }
}

/// [`Member::add_proba`] by way of [`Classifier::predict_proba`].
pub(crate) fn add_predicted_proba<C: Classifier + ?Sized>(
    member: &C,
    x: &Matrix,
    acc: &mut [f64],
) -> Result<()> {
    let p = member.predict_proba(x)?;
    for (a, v) in acc.iter_mut().zip(p.data().iter()) {
        *a += f64::from(*v);
    }
    Ok(())
}

/// A fitted model of any kind, as [`FittedModel`](crate::FittedModel) dispatches to it:
/// a classifier, a regressor, or a model that predicts several targets.
pub trait Model {
    /// The model as a classifier, or an error saying what it predicts instead.
    fn as_classifier(&self) -> Result<&dyn Classifier>;

    /// Number of feature columns it reads (by default, the classifier's).
    fn n_inputs(&self) -> usize {
        self.as_classifier().map_or(0, |c| c.n_features())
    }

    /// True for a model that predicts values rather than classes.
    fn is_regressor(&self) -> bool {
        false
    }

    /// True for a model that predicts clusters: its "classes" are the clusters `0..k`,
    /// not the target's, and its score is scikit-learn's minus the inertia.
    fn is_clusterer(&self) -> bool {
        false
    }

    /// A regressor's predictions.
    fn predict_values(&self, _x: &Matrix) -> Result<Vec<f32>> {
        Err(ModelError::data(
            "model",
            "a classifier predicts classes, not values",
        ))
    }

    /// A clusterer's sum of squared distances of the rows to their nearest centre.
    fn inertia(&self, _x: &Matrix) -> Result<f64> {
        Err(ModelError::data("model", "only a clusterer has an inertia"))
    }

    /// The default score on a dataset, as scikit-learn's `score`: accuracy for a
    /// classifier, R² for a regressor, minus the inertia for a clusterer (the target is
    /// not read).
    fn evaluate(&self, data: &Dataset) -> Result<f64> {
        if self.is_clusterer() {
            Ok(-self.inertia(data.x())?)
        } else if self.is_regressor() {
            let y = data.value_target()?;
            crate::metrics::r2_score(&y, &self.predict_values(data.x())?)
        } else {
            self.as_classifier()?
                .score(data.x(), data.class_target()?.0)
        }
    }
}

/// Index of the largest value in each row (the first on ties, as numpy's `argmax`).
pub fn argmax_rows(p: &Matrix) -> Vec<u32> {
    let k = p.cols().max(1);
    p.data()
        .chunks_exact(k)
        .map(|row| {
            let mut best = 0;
            for (j, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = j;
                }
            }
            best as u32
        })
        .collect()
}

/// Checks that `x` has the column count a model that takes missing cells expects (a tree,
/// a forest, an ensemble whose members check for themselves), and no infinite value.
pub fn check_input_missing_ok(x: &Matrix, expected: usize, model: &str) -> Result<()> {
    check_width(x, expected, model)?;
    x.check_no_infinity("input")
}

/// Checks that `x` has the column count a fitted model expects and finite values.
pub fn check_input(x: &Matrix, expected: usize, model: &str) -> Result<()> {
    check_width(x, expected, model)?;
    x.check_finite("input")
}

fn check_width(x: &Matrix, expected: usize, model: &str) -> Result<()> {
    if x.cols() != expected {
        return Err(ModelError::Shape(format!(
            "{model} was fitted on {expected} features, got {}",
            x.cols()
        )));
    }
    Ok(())
}

/// The classes seen in a training set, mapped to and from the dataset's class ids.
///
/// A training subset (a CV fold, a bootstrap sample) may lack some classes; models fit on
/// the classes present and report zero probability for the rest, so probability columns
/// always line up with the dataset's class ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ClassMap {
    /// Dataset class ids present in training, ascending.
    pub present: Vec<u32>,
    /// Number of classes of the dataset.
    pub n_classes: usize,
}

impl ClassMap {
    /// The present classes of `y` among `n_classes`; fails with fewer than two.
    pub fn from_targets(y: &[u32], n_classes: usize, model: &'static str) -> Result<Self> {
        let mut counts = vec![0u64; n_classes];
        for &c in y {
            counts[c as usize] += 1;
        }
        Self::from_counts(&counts, model)
    }

    /// The classes with rows among `counts` (rows per class id); fails with fewer than two.
    pub fn from_counts(counts: &[u64], model: &str) -> Result<Self> {
        let n_classes = counts.len();
        let present: Vec<u32> = (0..n_classes as u32)
            .filter(|&c| counts[c as usize] > 0)
            .collect();
        if present.len() < 2 {
            return Err(ModelError::data(
                "training data",
                format!(
                    "{model} needs at least two classes in the training data, found {}",
                    present.len()
                ),
            ));
        }
        Ok(Self { present, n_classes })
    }

    /// Local (0..present.len()) index of every target.
    pub fn encode(&self, y: &[u32]) -> Vec<u32> {
        let mut local = vec![u32::MAX; self.n_classes];
        for (i, &c) in self.present.iter().enumerate() {
            local[c as usize] = i as u32;
        }
        y.iter().map(|&c| local[c as usize]).collect()
    }

    /// Expands an `n x present.len()` probability table to `n x n_classes`.
    pub fn expand(&self, local: Vec<f32>, n: usize) -> Result<Matrix> {
        let k = self.present.len();
        if k == self.n_classes {
            return Matrix::from_vec(n, k, local);
        }
        let mut out = vec![0.0f32; n * self.n_classes];
        for i in 0..n {
            for (j, &c) in self.present.iter().enumerate() {
                out[i * self.n_classes + c as usize] = local[i * k + j];
            }
        }
        Matrix::from_vec(n, self.n_classes, out)
    }
}

/// Parses a parameter value, with an error naming the estimator, the parameter and the
/// expected type.
pub fn parse_value<T: std::str::FromStr>(
    estimator: &'static str,
    key: &str,
    value: &str,
    expected: &str,
) -> Result<T> {
    value
        .trim()
        .parse()
        .map_err(|_| ModelError::param(estimator, key, format!("'{value}' is not {expected}")))
}

/// Parses an optional integer where `None`/`null` means unlimited.
pub fn parse_opt_usize(estimator: &'static str, key: &str, value: &str) -> Result<Option<usize>> {
    match value.trim() {
        "None" | "none" | "null" => Ok(None),
        v => parse_value(estimator, key, v, "a non-negative integer or None").map(Some),
    }
}

/// Parses a boolean (`true/false`, `True/False`, `1/0`).
pub fn parse_bool(estimator: &'static str, key: &str, value: &str) -> Result<bool> {
    match value.trim() {
        "true" | "True" | "1" => Ok(true),
        "false" | "False" | "0" => Ok(false),
        v => Err(ModelError::param(
            estimator,
            key,
            format!("'{v}' is not true or false"),
        )),
    }
}

/// The error for a parameter name an estimator does not have.
pub fn unknown_param<P: Params>(key: &str) -> ModelError {
    ModelError::param(
        P::NAME,
        key,
        format!("no such parameter; known: {}", P::PARAM_NAMES.join(", ")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_checked_once_with_the_validation_error() {
        use crate::linear::LogisticRegressionParams;
        let err = LogisticRegressionParams::default()
            .with_max_iter(0)
            .check()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("max_iter") && err.contains("must be >= 1"),
            "{err}"
        );
        let checked = LogisticRegressionParams::default()
            .with_c(0.5)
            .check()
            .unwrap();
        assert_eq!(checked.c, 0.5);
        assert_eq!(checked.into_inner().c, 0.5);
    }

    #[test]
    fn argmax_takes_the_first_of_ties() {
        let p = Matrix::from_vec(2, 3, vec![0.2, 0.4, 0.4, 0.5, 0.1, 0.4]).unwrap();
        assert_eq!(argmax_rows(&p), vec![1, 0]);
    }

    #[test]
    fn class_map_expands_missing_classes_with_zeros() {
        let m = ClassMap::from_targets(&[0, 2, 2], 3, "t").unwrap();
        assert_eq!(m.present, vec![0, 2]);
        assert_eq!(m.encode(&[2, 0]), vec![1, 0]);
        let p = m.expand(vec![0.25, 0.75], 1).unwrap();
        assert_eq!(p.to_vec(), vec![0.25, 0.0, 0.75]);
        assert!(ClassMap::from_targets(&[1, 1], 3, "t").is_err());
    }
}
