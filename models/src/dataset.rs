//! Datasets: a feature matrix with names, and a target (class labels or values).

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::matrix::Matrix;
use crate::schema::{ColumnKind, ColumnSchema};

/// How class labels were written in the source data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LabelKind {
    /// Every label is an integer (`0`, `1`, `7`); ordered numerically.
    Integer,
    /// Labels are text (`setosa`); ordered by code point, as numpy's `unique` orders them.
    Text,
    /// Numbers, some not integers (a float column read as categories): ordered by value
    /// and written as Rust writes the value (`2.5`), as scikit-learn orders a float column.
    Decimal,
}

/// The ordered set of class labels of a classification target. Class id `i` is `labels[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Classes {
    labels: Vec<String>,
    kind: LabelKind,
}

impl Classes {
    /// Builds the class set from raw labels, sorted the way scikit-learn sorts them and
    /// deduplicated. Integer labels are normalised (`"01"` and `"1"` are the same class).
    pub fn from_labels<S: AsRef<str>>(raw: &[S]) -> Self {
        let all_int = !raw.is_empty() && raw.iter().all(|s| parse_int(s.as_ref()).is_some());
        if all_int {
            let mut v: Vec<i64> = raw
                .iter()
                .map(|s| parse_int(s.as_ref()).expect("checked"))
                .collect();
            v.sort_unstable();
            v.dedup();
            Self {
                labels: v.into_iter().map(|i| i.to_string()).collect(),
                kind: LabelKind::Integer,
            }
        } else if let Some(mut v) = raw
            .iter()
            .map(|s| parse_decimal(s.as_ref()))
            .collect::<Option<Vec<f64>>>()
            .filter(|v| !v.is_empty())
        {
            v.sort_unstable_by(f64::total_cmp);
            v.dedup();
            Self {
                labels: v.into_iter().map(|x| x.to_string()).collect(),
                kind: LabelKind::Decimal,
            }
        } else {
            let mut v: Vec<String> = raw.iter().map(|s| s.as_ref().to_string()).collect();
            v.sort_unstable();
            v.dedup();
            Self {
                labels: v,
                kind: LabelKind::Text,
            }
        }
    }

    /// Labels already sorted the way [`Classes::from_labels`] sorts them (integers
    /// normalised and by value, text by code point), without duplicates.
    pub fn from_parts(labels: Vec<String>, kind: LabelKind) -> Self {
        Self { labels, kind }
    }

    /// Class labels `0..n` as integers.
    pub fn range(n: usize) -> Self {
        Self {
            labels: (0..n).map(|i| i.to_string()).collect(),
            kind: LabelKind::Integer,
        }
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no classes.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The labels, in class-id order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The label of class `id`.
    pub fn label(&self, id: u32) -> &str {
        &self.labels[id as usize]
    }

    /// How the labels were written.
    pub fn kind(&self) -> LabelKind {
        self.kind
    }

    /// The class id of a raw label, if it is one of the classes.
    pub fn id_of(&self, raw: &str) -> Option<u32> {
        match self.kind {
            LabelKind::Integer => {
                let key = parse_int(raw)?;
                self.labels
                    .binary_search_by_key(&key, |l| l.parse::<i64>().unwrap_or(i64::MIN))
                    .ok()
                    .map(|i| i as u32)
            }
            LabelKind::Decimal => {
                let key = parse_decimal(raw)?;
                self.labels
                    .binary_search_by(|l| l.parse::<f64>().unwrap_or(f64::NAN).total_cmp(&key))
                    .ok()
                    .map(|i| i as u32)
            }
            LabelKind::Text => self
                .labels
                .binary_search_by(|l| l.as_str().cmp(raw))
                .ok()
                .map(|i| i as u32),
        }
    }
}

/// Parses a finite number label (`"2.50"` is 2.5).
fn parse_decimal(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Parses an integer label; `"3"`, `"3.0"` and `" 3 "` are all 3.
pub(crate) fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(i) = s.parse::<i64>() {
        return Some(i);
    }
    let f: f64 = s.parse().ok()?;
    (f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

/// What is being predicted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Classification: one class id per row, into `classes`.
    Classes {
        /// Class id of each row.
        ids: Vec<u32>,
        /// The label of each class id.
        classes: Classes,
    },
    /// Regression: one value per row.
    Values(Vec<f32>),
}

impl Target {
    fn len(&self) -> usize {
        match self {
            Target::Classes { ids, .. } => ids.len(),
            Target::Values(v) => v.len(),
        }
    }

    fn select(&self, idx: &[usize]) -> Target {
        match self {
            Target::Classes { ids, classes } => Target::Classes {
                ids: idx.iter().map(|&i| ids[i]).collect(),
                classes: classes.clone(),
            },
            Target::Values(v) => Target::Values(idx.iter().map(|&i| v[i]).collect()),
        }
    }
}

/// Features, feature names, and a target; and what each feature column holds (numbers,
/// category codes, booleans: see [`crate::schema`]), all numbers when not said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    x: Matrix,
    target: Target,
    feature_names: Vec<String>,
    target_name: String,
    /// One kind per feature column; empty means every column is numeric (and is how a
    /// dataset written before kinds existed reads).
    #[serde(default)]
    kinds: Vec<ColumnKind>,
}

static NUMERIC: ColumnKind = ColumnKind::Numeric;

impl Dataset {
    /// Assembles a dataset, checking that the pieces agree.
    pub fn new(
        x: Matrix,
        target: Target,
        feature_names: Vec<String>,
        target_name: impl Into<String>,
    ) -> Result<Self> {
        if feature_names.len() != x.cols() {
            return Err(ModelError::Shape(format!(
                "{} feature names for {} columns",
                feature_names.len(),
                x.cols()
            )));
        }
        if target.len() != x.rows() {
            return Err(ModelError::Shape(format!(
                "{} targets for {} rows",
                target.len(),
                x.rows()
            )));
        }
        if let Target::Classes { ids, classes } = &target {
            if let Some(bad) = ids.iter().find(|&&c| c as usize >= classes.len()) {
                return Err(ModelError::Shape(format!(
                    "class id {bad} out of range for {} classes",
                    classes.len()
                )));
            }
        }
        Ok(Self {
            x,
            target,
            feature_names,
            target_name: target_name.into(),
            kinds: Vec::new(),
        })
    }

    /// The same dataset with the given column kinds (one per feature column).
    pub fn with_kinds(mut self, kinds: Vec<ColumnKind>) -> Result<Self> {
        if kinds.len() != self.x.cols() {
            return Err(ModelError::Shape(format!(
                "{} column kinds for {} columns",
                kinds.len(),
                self.x.cols()
            )));
        }
        self.kinds = if kinds.iter().all(|k| *k == ColumnKind::Numeric) {
            Vec::new()
        } else {
            kinds
        };
        Ok(self)
    }

    /// What feature column `j` holds.
    pub fn kind(&self, j: usize) -> &ColumnKind {
        self.kinds.get(j).unwrap_or(&NUMERIC)
    }

    /// The kinds of every feature column.
    pub fn kinds(&self) -> Vec<ColumnKind> {
        (0..self.n_features())
            .map(|j| self.kind(j).clone())
            .collect()
    }

    /// True when every feature column is numeric.
    pub fn is_all_numeric(&self) -> bool {
        self.kinds.iter().all(|k| *k == ColumnKind::Numeric)
    }

    /// Missing (NaN) cells of each feature column.
    pub fn missing_counts(&self) -> Vec<u64> {
        let d = self.n_features();
        let mut m = vec![0u64; d];
        if d == 0 {
            return m;
        }
        for row in self.x.data().chunks_exact(d) {
            for (c, v) in m.iter_mut().zip(row) {
                *c += u64::from(v.is_nan());
            }
        }
        m
    }

    /// The schema of the feature columns: names, kinds and missing cells.
    pub fn schema(&self) -> Vec<ColumnSchema> {
        let missing = self.missing_counts();
        (0..self.n_features())
            .map(|j| ColumnSchema {
                name: self.feature_names[j].clone(),
                kind: self.kind(j).clone(),
                missing: missing[j],
            })
            .collect()
    }

    /// A classification dataset with integer classes `0..k` and generated names
    /// (`x0, x1, ...`, target `y`). Handy for tests and synthetic data.
    pub fn from_classes(x: Matrix, ids: Vec<u32>) -> Result<Self> {
        let k = ids.iter().copied().max().map_or(0, |m| m as usize + 1);
        let names = (0..x.cols()).map(|j| format!("x{j}")).collect();
        Self::new(
            x,
            Target::Classes {
                ids,
                classes: Classes::range(k),
            },
            names,
            "y",
        )
    }

    /// Number of rows.
    pub fn n_samples(&self) -> usize {
        self.x.rows()
    }

    /// Number of feature columns.
    pub fn n_features(&self) -> usize {
        self.x.cols()
    }

    /// The feature matrix.
    pub fn x(&self) -> &Matrix {
        &self.x
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Feature column names.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Target column name.
    pub fn target_name(&self) -> &str {
        &self.target_name
    }

    /// Class ids and classes, or an error for a regression target.
    pub fn class_target(&self) -> Result<(&[u32], &Classes)> {
        match &self.target {
            Target::Classes { ids, classes } => Ok((ids, classes)),
            Target::Values(_) => Err(ModelError::data(
                format!("target '{}'", self.target_name),
                "is continuous; a classifier needs class labels",
            )),
        }
    }

    /// The target as numbers, for a regressor: the values of a regression target, or the
    /// labels of a classification target whose labels are all integers.
    pub fn value_target(&self) -> Result<std::borrow::Cow<'_, [f32]>> {
        match &self.target {
            Target::Values(v) => Ok(std::borrow::Cow::Borrowed(v)),
            Target::Classes { ids, classes } if classes.kind() == LabelKind::Integer => {
                let numbers: Vec<f32> = classes
                    .labels()
                    .iter()
                    .map(|l| l.parse::<f32>().unwrap_or(f32::NAN))
                    .collect();
                Ok(std::borrow::Cow::Owned(
                    ids.iter().map(|&c| numbers[c as usize]).collect(),
                ))
            }
            Target::Classes { .. } => Err(ModelError::data(
                format!("target '{}'", self.target_name),
                "has text labels; a regressor needs numbers",
            )),
        }
    }

    /// The classes, for a classification target.
    pub fn classes(&self) -> Option<&Classes> {
        match &self.target {
            Target::Classes { classes, .. } => Some(classes),
            Target::Values(_) => None,
        }
    }

    /// The rows at `idx` (in that order; repeats allowed, as in a bootstrap sample).
    pub fn select(&self, idx: &[usize]) -> Result<Self> {
        Ok(Self {
            x: self.x.select_rows(idx)?,
            target: self.target.select(idx),
            feature_names: self.feature_names.clone(),
            target_name: self.target_name.clone(),
            kinds: self.kinds.clone(),
        })
    }

    /// The same rows and target with new features and their kinds (after a transformer).
    pub fn with_x_kinds(
        &self,
        x: Matrix,
        feature_names: Vec<String>,
        kinds: Vec<ColumnKind>,
    ) -> Result<Self> {
        self.with_x(x, feature_names)?.with_kinds(kinds)
    }

    /// The same rows and target with new, numeric features.
    pub fn with_x(&self, x: Matrix, feature_names: Vec<String>) -> Result<Self> {
        Self::new(
            x,
            self.target.clone(),
            feature_names,
            self.target_name.clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_sort_like_numpy_unique() {
        let c = Classes::from_labels(&["virginica", "setosa", "versicolor", "setosa"]);
        assert_eq!(c.labels(), ["setosa", "versicolor", "virginica"]);
        assert_eq!(c.kind(), LabelKind::Text);
        assert_eq!(c.id_of("virginica"), Some(2));
        assert_eq!(c.id_of("rose"), None);

        let f = Classes::from_labels(&["10.5", "2.5", "2.50", "-1"]);
        assert_eq!(f.labels(), ["-1", "2.5", "10.5"]);
        assert_eq!(f.kind(), LabelKind::Decimal);
        assert_eq!(f.id_of("10.50"), Some(2));
        assert_eq!(f.id_of("x"), None);

        let n = Classes::from_labels(&["10", "9", "2.0", "9"]);
        assert_eq!(n.labels(), ["2", "9", "10"]);
        assert_eq!(n.kind(), LabelKind::Integer);
        assert_eq!(n.id_of("10.0"), Some(2));
    }

    #[test]
    fn select_keeps_names_and_classes() {
        let x = Matrix::from_vec(3, 1, vec![0., 1., 2.]).unwrap();
        let d = Dataset::from_classes(x, vec![0, 1, 1]).unwrap();
        let s = d.select(&[2, 0]).unwrap();
        assert_eq!(s.x().to_vec(), vec![2., 0.]);
        assert_eq!(s.class_target().unwrap().0, &[1, 0]);
        assert_eq!(s.classes().unwrap().len(), 2);
        assert_eq!(s.feature_names(), ["x0"]);
    }

    #[test]
    fn inconsistent_pieces_are_rejected() {
        let x = Matrix::from_vec(2, 1, vec![0., 1.]).unwrap();
        assert!(Dataset::from_classes(x.clone(), vec![0]).is_err());
        let t = Target::Classes {
            ids: vec![0, 5],
            classes: Classes::range(2),
        };
        assert!(Dataset::new(x, t, vec!["a".into()], "y").is_err());
    }
}
