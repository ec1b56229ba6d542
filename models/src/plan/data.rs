//! What a task reads: a summary of the dataset for planning, a deterministic selection of
//! its rows ([`Rows`]), and how the target is rewritten before fitting ([`Relabel`]).

use serde::{Deserialize, Serialize};

use crate::dataset::{Classes, Dataset, Target};
use crate::error::{ModelError, Result};
use crate::model_selection::{KFold, StratifiedKFold};
use crate::rng::Rng;

/// What planning needs to know of a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataSummary {
    /// Rows.
    pub n_samples: usize,
    /// Classes of the target (0 for a continuous target).
    pub n_classes: usize,
    /// The class labels, in class-id order (empty for a continuous target).
    pub labels: Vec<String>,
    /// Feature column names.
    pub features: Vec<String>,
    /// Target column name.
    pub target: String,
}

impl DataSummary {
    /// The summary of a dataset.
    pub fn of(data: &Dataset) -> Result<Self> {
        let labels = data
            .classes()
            .map(|c| c.labels().to_vec())
            .unwrap_or_default();
        Ok(Self {
            n_samples: data.n_samples(),
            n_classes: labels.len(),
            labels,
            features: data.feature_names().to_vec(),
            target: data.target_name().to_string(),
        })
    }

    pub(crate) fn class_id(&self, label: &str) -> Result<u32> {
        self.labels
            .iter()
            .position(|l| l == label)
            .map(|i| i as u32)
            .ok_or_else(|| {
                ModelError::data(
                    "cascade",
                    format!(
                        "'{label}' is not a class of the target; classes: {}",
                        self.labels.join(", ")
                    ),
                )
            })
    }
}

/// Which side of a fold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Every row outside the fold.
    Train,
    /// The fold's rows.
    Test,
}

/// A deterministic selection of a dataset's rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rows {
    /// Every row.
    All,
    /// One side of fold `i` of `k` (stratified by class, as scikit-learn's `cv=k` is for
    /// classifiers), optionally shuffled with a seed.
    Fold {
        /// Number of folds.
        k: u32,
        /// Which fold.
        i: u32,
        /// Keep each class's share in every fold.
        stratified: bool,
        /// Shuffle seed, if shuffled.
        shuffle: Option<u64>,
        /// Which side.
        side: Side,
    },
    /// `n` rows drawn with replacement, `n` the number of rows.
    Bootstrap {
        /// The draw's seed.
        seed: u64,
    },
}

impl Rows {
    /// The row indices (`None` for every row).
    pub fn indices(&self, data: &Dataset) -> Result<Option<Vec<usize>>> {
        match *self {
            Rows::All => Ok(None),
            Rows::Fold {
                k,
                i,
                stratified,
                shuffle,
                side,
            } => {
                let folds = if stratified {
                    let mut s = StratifiedKFold::new(k as usize);
                    if let Some(seed) = shuffle {
                        s = s.shuffled(seed);
                    }
                    s.split(data.class_target()?.0)?
                } else {
                    let mut s = KFold::new(k as usize);
                    if let Some(seed) = shuffle {
                        s = s.shuffled(seed);
                    }
                    s.split(data.n_samples())?
                };
                let (train, test) = folds
                    .into_iter()
                    .nth(i as usize)
                    .ok_or_else(|| ModelError::data("task", format!("no fold {i} of {k}")))?;
                Ok(Some(match side {
                    Side::Train => train,
                    Side::Test => test,
                }))
            }
            Rows::Bootstrap { seed } => {
                let n = data.n_samples();
                let mut rng = Rng::seed_from_u64(seed);
                let mut idx: Vec<usize> = (0..n).map(|_| rng.below(n.max(1))).collect();
                idx.sort_unstable();
                Ok(Some(idx))
            }
        }
    }

    pub(crate) fn select(&self, data: &Dataset) -> Result<Dataset> {
        match self.indices(data)? {
            None => Ok(data.clone()),
            Some(idx) => data.select(&idx),
        }
    }
}

/// How a task rewrites the target before fitting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relabel {
    /// As it is.
    None,
    /// Class `class` becomes 1, every other class 0.
    OneVsRest {
        /// The positive class.
        class: u32,
    },
    /// Only rows of classes `a` and `b`: `b` becomes 1, `a` 0.
    Pair {
        /// The class that becomes 0.
        a: u32,
        /// The class that becomes 1.
        b: u32,
    },
    /// Class `c` becomes class `groups[c]` (a cascade's first step).
    Group {
        /// The group of every class id.
        groups: Vec<u32>,
    },
    /// Only rows of these classes, which become `0..len` in this order (a cascade's
    /// second step within one group).
    Within {
        /// The classes kept.
        classes: Vec<u32>,
    },
    /// Column `target` becomes the target (class labels for a classifier, values for a
    /// regressor); the features are every feature column not named in `exclude`.
    Column {
        /// The column to predict (a feature column, or the dataset's target).
        target: String,
        /// Feature columns that are not features (all of a multi-output job's targets).
        exclude: Vec<String>,
        /// Turn the column into class labels.
        classes: bool,
    },
}

pub(crate) fn relabel(data: Dataset, how: &Relabel) -> Result<Dataset> {
    // The features keep their kinds (categories, booleans) whatever the new target.
    let kinds = data.kinds();
    match how {
        Relabel::None => Ok(data),
        Relabel::Column { .. } => relabel_target(data, how),
        _ => relabel_target(data, how)?.with_kinds(kinds),
    }
}

fn relabel_target(data: Dataset, how: &Relabel) -> Result<Dataset> {
    let classes_of = |data: &Dataset, ids: Vec<u32>, classes: Classes, rows: Option<&[usize]>| {
        let x = match rows {
            Some(r) => data.x().select_rows(r)?,
            None => data.x().clone(),
        };
        Dataset::new(
            x,
            Target::Classes { ids, classes },
            data.feature_names().to_vec(),
            data.target_name().to_string(),
        )
    };
    match how {
        Relabel::None => Ok(data),
        Relabel::OneVsRest { class } => {
            let class = *class;
            let (ids, _) = data.class_target()?;
            let ids = ids.iter().map(|&c| u32::from(c == class)).collect();
            Dataset::new(
                data.x().clone(),
                Target::Classes {
                    ids,
                    classes: Classes::range(2),
                },
                data.feature_names().to_vec(),
                data.target_name().to_string(),
            )
        }
        Relabel::Pair { a, b } => {
            let (a, b) = (*a, *b);
            let (ids, _) = data.class_target()?;
            let rows: Vec<usize> = (0..ids.len())
                .filter(|&i| ids[i] == a || ids[i] == b)
                .collect();
            let ids: Vec<u32> = rows.iter().map(|&i| u32::from(ids[i] == b)).collect();
            let x = data.x().select_rows(&rows)?;
            Dataset::new(
                x,
                Target::Classes {
                    ids,
                    classes: Classes::range(2),
                },
                data.feature_names().to_vec(),
                data.target_name().to_string(),
            )
        }
        Relabel::Group { groups } => {
            let (ids, _) = data.class_target()?;
            let k = groups.iter().max().map_or(0, |m| *m as usize + 1);
            let ids = ids.iter().map(|&c| groups[c as usize]).collect();
            classes_of(&data, ids, Classes::range(k), None)
        }
        Relabel::Within { classes } => {
            let (ids, _) = data.class_target()?;
            let rows: Vec<usize> = (0..ids.len())
                .filter(|&i| classes.contains(&ids[i]))
                .collect();
            let local: Vec<u32> = rows
                .iter()
                .map(|&i| classes.iter().position(|&c| c == ids[i]).expect("kept") as u32)
                .collect();
            classes_of(&data, local, Classes::range(classes.len()), Some(&rows))
        }
        Relabel::Column {
            target,
            exclude,
            classes,
        } => column_target(&data, target, exclude, *classes),
    }
}

/// The dataset with column `target` as its target and the columns in `exclude` dropped.
pub(crate) fn column_target(
    data: &Dataset,
    target: &str,
    exclude: &[String],
    classes: bool,
) -> Result<Dataset> {
    let names = data.feature_names();
    let keep: Vec<usize> = (0..names.len())
        .filter(|&j| !exclude.contains(&names[j]))
        .collect();
    let x = data.x().select_cols(&keep)?;
    let kept: Vec<String> = keep.iter().map(|&j| names[j].clone()).collect();
    let kept_kinds: Vec<_> = keep.iter().map(|&j| data.kind(j).clone()).collect();
    let new_target = if target == data.target_name() {
        if classes {
            data.target().clone()
        } else {
            Target::Values(data.value_target()?.into_owned())
        }
    } else {
        let j = names.iter().position(|n| n == target).ok_or_else(|| {
            ModelError::data(
                "multi_output",
                format!("the dataset has no column '{target}'"),
            )
        })?;
        let col: Vec<f32> = data
            .x()
            .data()
            .chunks_exact(names.len())
            .map(|r| r[j])
            .collect();
        if let (true, Some(cats)) = (classes, data.kind(j).categories()) {
            // A categorical column's labels are its categories (a missing cell is refused).
            if col.iter().any(|v| v.is_nan()) {
                return Err(ModelError::data(
                    "multi_output",
                    format!("column '{target}' has missing cells: a target cannot"),
                ));
            }
            let present: Vec<String> = col
                .iter()
                .map(|&v| cats.label(v as u32).to_string())
                .collect();
            let c = Classes::from_labels(&present);
            let ids = present
                .iter()
                .map(|l| c.id_of(l).expect("a label of the column"))
                .collect();
            return Dataset::new(
                x,
                Target::Classes { ids, classes: c },
                kept,
                target.to_string(),
            )?
            .with_kinds(kept_kinds);
        }
        if classes {
            if let Some(v) = col.iter().find(|v| v.fract() != 0.0 || v.is_nan()) {
                return Err(ModelError::data(
                    "multi_output",
                    format!(
                        "column '{target}' has non-integer values ({v}): a classifier needs labels; use a regressor"
                    ),
                ));
            }
            let labels: Vec<String> = col.iter().map(|v| v.to_string()).collect();
            let c = Classes::from_labels(&labels);
            let ids = labels
                .iter()
                .map(|l| c.id_of(l).expect("a label of the column"))
                .collect();
            Target::Classes { ids, classes: c }
        } else {
            Target::Values(col)
        }
    };
    Dataset::new(x, new_target, kept, target.to_string())?.with_kinds(kept_kinds)
}
