//! Explicit per-column pipelines, as scikit-learn's `ColumnTransformer`: each part fits its
//! steps on its own columns (named, or every column of a kind), the parts' outputs are
//! laid side by side, and the columns no part names are dropped or passed through after
//! them (`remainder`). Output names are scikit-learn's verbose ones: `num__weight`,
//! `cat__airbag_none`, `remainder__x`.

use serde::{Deserialize, Serialize};

use super::{FittedTransformer, TransformerSpec};
use crate::dataset::Dataset;
use crate::error::{ModelError, Result};
use crate::matrix::Matrix;
use crate::schema::ColumnKind;
use crate::traits::{unknown_param, Checked, Fit, Params, Transformer};

/// What a column transformer does with the columns no part names.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Remainder {
    /// Leave them out (scikit-learn's default).
    #[default]
    Drop,
    /// Keep them, after the parts' outputs.
    Passthrough,
}

/// The columns of kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KindSelector {
    /// Numeric columns (`make_column_selector(dtype_include="number")`).
    Numeric,
    /// Categorical and boolean columns (`dtype_exclude="number"`).
    Categorical,
}

/// The columns a part takes: by name, or every column of a kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ColumnSelector {
    /// These columns, by name.
    Names(Vec<String>),
    /// Every column of this kind.
    Kind(KindSelector),
}

/// One part of a column transformer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ColumnPart {
    /// The part's name: the prefix of its output names (`num` gives `num__weight`).
    pub name: String,
    /// The steps, fitted one after the other on the part's columns; none passes them
    /// through.
    #[serde(default)]
    pub steps: Vec<TransformerSpec>,
    /// The part's columns.
    pub columns: ColumnSelector,
}

/// Hyperparameters of a column transformer (given in a job file: the parts are lists).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ColumnTransformerParams {
    /// The parts, in output order.
    #[serde(default)]
    pub transformers: Vec<ColumnPart>,
    /// The columns no part names. Default drop.
    #[serde(default)]
    pub remainder: Remainder,
}

impl Params for ColumnTransformerParams {
    const NAME: &'static str = "column_transformer";
    const ALIASES: &'static [&'static str] = &["ColumnTransformer"];
    const DESCRIPTION: &'static str =
        "per-column pipelines side by side (parts given in a job file; remainder drop or passthrough)";
    const PARAM_NAMES: &'static [&'static str] = &["remainder"];

    fn validate(&self) -> Result<()> {
        if self.transformers.is_empty() {
            return Err(ModelError::param(
                Self::NAME,
                "transformers",
                "needs at least one part (name, steps, columns); give them in a job file",
            ));
        }
        for (i, p) in self.transformers.iter().enumerate() {
            if p.name.is_empty() || p.name.contains("__") || p.name == "remainder" {
                return Err(ModelError::param(
                    Self::NAME,
                    "transformers",
                    format!(
                        "part name '{}' must be non-empty, without '__', and not 'remainder'",
                        p.name
                    ),
                ));
            }
            if self.transformers[..i].iter().any(|q| q.name == p.name) {
                return Err(ModelError::param(
                    Self::NAME,
                    "transformers",
                    format!("part name '{}' appears twice", p.name),
                ));
            }
            p.steps.iter().try_for_each(TransformerSpec::validate)?;
        }
        Ok(())
    }

    /// Seeds the parts' randomised steps (k-means).
    fn seed_unset(&mut self, seed: u64) {
        for part in &mut self.transformers {
            part.steps.iter_mut().for_each(|s| s.seed_unset(seed));
        }
    }

    /// `remainder`, or `PART__STEP__PARAM` for a step of a part.
    fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
        if key == "remainder" {
            self.remainder = match value.trim() {
                "drop" => Remainder::Drop,
                "passthrough" => Remainder::Passthrough,
                v => {
                    return Err(ModelError::param(
                        Self::NAME,
                        key,
                        format!("'{v}' is not drop or passthrough"),
                    ))
                }
            };
            return Ok(());
        }
        let mut it = key.splitn(3, "__");
        let (Some(part), Some(step), Some(param)) = (it.next(), it.next(), it.next()) else {
            return Err(unknown_param::<Self>(key));
        };
        let Some(p) = self.transformers.iter_mut().find(|p| p.name == part) else {
            return Err(ModelError::param(
                Self::NAME,
                key,
                format!("no part named '{part}'"),
            ));
        };
        let Some(s) = p.steps.iter_mut().find(|s| s.name() == step) else {
            return Err(ModelError::param(
                Self::NAME,
                key,
                format!("part '{part}' has no step '{step}'"),
            ));
        };
        s.set_param(param, value)
    }
}

/// One fitted part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FittedPart {
    name: String,
    /// Its input columns.
    cols: Vec<usize>,
    steps: Vec<FittedTransformer>,
    /// Its output names (before the part's prefix) and kinds.
    names: Vec<String>,
    kinds: Vec<ColumnKind>,
}

/// A fitted column transformer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedColumnTransformer {
    n_in: usize,
    parts: Vec<FittedPart>,
    /// Columns passed through after the parts.
    remainder: Vec<usize>,
    /// Input names and kinds (for the remainder's names and kinds).
    names_in: Vec<String>,
    kinds_in: Vec<ColumnKind>,
}

/// The columns of `data` that `sel` picks.
fn resolve(data: &Dataset, sel: &ColumnSelector, part: &str) -> Result<Vec<usize>> {
    let names = data.feature_names();
    Ok(match sel {
        ColumnSelector::Names(list) => list
            .iter()
            .map(|n| {
                names.iter().position(|h| h == n).ok_or_else(|| {
                    ModelError::param(
                        ColumnTransformerParams::NAME,
                        "transformers",
                        format!(
                            "part '{part}': '{n}' is not a column; columns are: {}",
                            names.join(", ")
                        ),
                    )
                })
            })
            .collect::<Result<_>>()?,
        ColumnSelector::Kind(k) => (0..data.n_features())
            .filter(|&j| match k {
                KindSelector::Numeric => data.kind(j).is_numeric(),
                KindSelector::Categorical => !data.kind(j).is_numeric(),
            })
            .collect(),
    })
}

/// The columns `cols` of `data` as a dataset of their own (names and kinds kept).
fn columns_of(data: &Dataset, cols: &[usize]) -> Result<Dataset> {
    data.with_x_kinds(
        data.x().select_cols(cols)?,
        cols.iter()
            .map(|&j| data.feature_names()[j].clone())
            .collect(),
        cols.iter().map(|&j| data.kind(j).clone()).collect(),
    )
}

impl Fit for Checked<ColumnTransformerParams> {
    type Fitted = FittedColumnTransformer;

    fn fit(&self, data: &Dataset) -> Result<FittedColumnTransformer> {
        let d = data.n_features();
        let mut used = vec![false; d];
        let mut parts = Vec::with_capacity(self.transformers.len());
        for p in &self.transformers {
            let cols = resolve(data, &p.columns, &p.name)?;
            cols.iter().for_each(|&j| used[j] = true);
            // A part that selects no column is skipped, as scikit-learn skips it.
            let steps_to_fit = if cols.is_empty() {
                &[][..]
            } else {
                &p.steps[..]
            };
            let (steps, current) =
                super::pipeline::fit_steps(steps_to_fit, columns_of(data, &cols)?)?;
            parts.push(FittedPart {
                name: p.name.clone(),
                cols,
                steps,
                names: current.feature_names().to_vec(),
                kinds: current.kinds(),
            });
        }
        let remainder = match self.remainder {
            Remainder::Drop => Vec::new(),
            Remainder::Passthrough => (0..d).filter(|&j| !used[j]).collect(),
        };
        Ok(FittedColumnTransformer {
            n_in: d,
            parts,
            remainder,
            names_in: data.feature_names().to_vec(),
            kinds_in: data.kinds(),
        })
    }
}

impl Transformer for FittedColumnTransformer {
    fn n_features_in(&self) -> usize {
        self.n_in
    }

    fn transform(&self, x: &Matrix) -> Result<Matrix> {
        if x.cols() != self.n_in {
            return Err(ModelError::Shape(format!(
                "{} was fitted on {} features, got {}",
                ColumnTransformerParams::NAME,
                self.n_in,
                x.cols()
            )));
        }
        let mut blocks = Vec::with_capacity(self.parts.len() + 1);
        for p in self.parts.iter().filter(|p| !p.cols.is_empty()) {
            let mut cur = x.select_cols(&p.cols)?;
            for s in &p.steps {
                cur = s.transform(&cur)?;
            }
            blocks.push(cur);
        }
        if !self.remainder.is_empty() {
            blocks.push(x.select_cols(&self.remainder)?);
        }
        let width: usize = blocks.iter().map(Matrix::cols).sum();
        let n = x.rows();
        let data: Vec<Vec<f32>> = blocks.iter().map(Matrix::to_vec).collect();
        let mut out = Vec::with_capacity(n * width);
        for i in 0..n {
            for (b, block) in blocks.iter().enumerate() {
                let c = block.cols();
                out.extend_from_slice(&data[b][i * c..(i + 1) * c]);
            }
        }
        Matrix::from_vec(n, width, out)
    }

    fn feature_names_out(&self, _names: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.parts {
            out.extend(p.names.iter().map(|n| format!("{}__{n}", p.name)));
        }
        out.extend(
            self.remainder
                .iter()
                .map(|&j| format!("remainder__{}", self.names_in[j])),
        );
        out
    }

    fn kinds_out(&self, _kinds: &[ColumnKind]) -> Vec<ColumnKind> {
        let mut out: Vec<ColumnKind> = self.parts.iter().flat_map(|p| p.kinds.clone()).collect();
        out.extend(self.remainder.iter().map(|&j| self.kinds_in[j].clone()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{Classes, Target};

    #[test]
    fn parts_side_by_side_and_an_empty_part_is_skipped() {
        let x = Matrix::from_vec(3, 2, vec![0., 1., 1., 2., 0., 3.]).unwrap();
        let d = Dataset::new(
            x,
            Target::Values(vec![0.; 3]),
            vec!["c".into(), "n".into()],
            "y",
        )
        .unwrap()
        .with_kinds(vec![
            ColumnKind::Categorical {
                categories: Classes::from_labels(&["p", "q"]),
            },
            ColumnKind::Numeric,
        ])
        .unwrap();
        let part = |name: &str, columns: ColumnSelector, step: &str| ColumnPart {
            name: name.into(),
            steps: vec![TransformerSpec::from_name(step).unwrap()],
            columns,
        };
        let p = ColumnTransformerParams {
            transformers: vec![
                part(
                    "cat",
                    ColumnSelector::Kind(KindSelector::Categorical),
                    "one_hot_encoder",
                ),
                part("none", ColumnSelector::Names(Vec::new()), "standard_scaler"),
            ],
            remainder: Remainder::Passthrough,
        };
        let f = p.fit(&d).unwrap();
        assert_eq!(
            f.feature_names_out(&[]),
            ["cat__c_p", "cat__c_q", "remainder__n"]
        );
        assert_eq!(
            f.transform(d.x()).unwrap().to_vec(),
            vec![1., 0., 1., 0., 1., 2., 1., 0., 3.]
        );
        assert_eq!(
            f.kinds_out(&[]),
            [
                ColumnKind::Indicator,
                ColumnKind::Indicator,
                ColumnKind::Numeric
            ]
        );
    }
}
