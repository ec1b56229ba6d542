//! Missing-value imputation, as scikit-learn's `SimpleImputer`, over a mixed table in one
//! step: `mean` and `median` fill numeric columns and fall back to the most frequent
//! category on categorical and boolean columns; `most_frequent` takes the most frequent
//! value (the smallest of ties); `constant` writes `fill_value` (default 0 in numeric
//! columns, `missing_value` in the others, which then gain that category). A column with
//! no value at all in fit is dropped, unless the strategy is `constant`
//! (`keep_empty_features=False`). `add_indicator` appends a 0/1 column
//! `missingindicator_<name>` for every column that had missing cells in fit.

use serde::{Deserialize, Serialize};

use super::columns::{check_width, parse_columns, select};
use super::stats::ColumnStats;
use crate::dataset::{Classes, Dataset};
use crate::error::{ModelError, Result};
use crate::matrix::Matrix;
use crate::schema::ColumnKind;
use crate::traits::{parse_bool, unknown_param, Checked, Fit, Params, Transformer};

/// How missing cells are filled.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ImputeStrategy {
    /// The column mean (numeric columns; the others take their most frequent value).
    #[default]
    Mean,
    /// The column median (numeric columns; the others take their most frequent value).
    Median,
    /// The most frequent value; the smallest of ties.
    MostFrequent,
    /// `fill_value`.
    Constant,
}

/// Hyperparameters of the simple imputer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SimpleImputerParams {
    /// How to fill. Default mean.
    pub strategy: ImputeStrategy,
    /// The value `constant` writes; `None` means 0 in numeric columns and
    /// `missing_value` in the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill_value: Option<String>,
    /// Append a missing-value indicator column for every column with missing cells in fit.
    #[serde(default)]
    pub add_indicator: bool,
    /// The columns to impute; `None` means every column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
}

impl Params for SimpleImputerParams {
    const NAME: &'static str = "simple_imputer";
    const ALIASES: &'static [&'static str] = &["SimpleImputer"];
    const DESCRIPTION: &'static str =
        "fill missing cells (mean, median, most_frequent or constant; text columns take their most frequent value)";
    const PARAM_NAMES: &'static [&'static str] =
        &["strategy", "fill_value", "add_indicator", "columns"];

    fn validate(&self) -> Result<()> {
        Ok(())
    }

    fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "strategy" => {
                self.strategy = match value.trim() {
                    "mean" => ImputeStrategy::Mean,
                    "median" => ImputeStrategy::Median,
                    "most_frequent" => ImputeStrategy::MostFrequent,
                    "constant" => ImputeStrategy::Constant,
                    v => {
                        return Err(ModelError::param(
                            Self::NAME,
                            key,
                            format!("'{v}' is not one of mean, median, most_frequent, constant"),
                        ))
                    }
                }
            }
            "fill_value" => {
                self.fill_value = match value.trim() {
                    "None" => None,
                    v => Some(v.to_string()),
                }
            }
            "add_indicator" => self.add_indicator = parse_bool(Self::NAME, key, value)?,
            "columns" => self.columns = parse_columns(value),
            _ => return Err(unknown_param::<Self>(key)),
        }
        Ok(())
    }
}

/// What happens to one input column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Fill {
    /// Not imputed: copied.
    Copy,
    /// Missing cells take `value`.
    Value(f32),
    /// A categorical column that gained the fill category: codes move to `map[code]`,
    /// missing cells take `value`.
    Recode { value: f32, map: Vec<f32> },
    /// No value in fit: the column is dropped.
    Drop,
}

/// A fitted simple imputer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedSimpleImputer {
    fills: Vec<Fill>,
    /// Input columns that get an indicator, in order.
    indicators: Vec<usize>,
    /// Kinds of the output columns.
    kinds_out: Vec<ColumnKind>,
    /// The fill of each imputed column in the column's own terms (scikit-learn's
    /// `statistics_`): a number, or a category.
    statistics: Vec<Option<String>>,
}

impl Fit for Checked<SimpleImputerParams> {
    type Fitted = FittedSimpleImputer;

    fn fit(&self, data: &Dataset) -> Result<FittedSimpleImputer> {
        let (n, d) = (data.n_samples(), data.n_features());
        let x = data.x().data();
        let values = |j: usize| -> Vec<f32> {
            (0..n)
                .map(|i| x[i * d + j])
                .filter(|v| !v.is_nan())
                .collect()
        };
        self.fit_stats(data, &ColumnStats::of(data), Some(&values))
    }
}

impl Checked<SimpleImputerParams> {
    /// Refuses what a data-parallel fit cannot learn from sums and counts: the median, or
    /// the most frequent value, of a numeric column this imputer acts on in `schema`.
    pub(crate) fn check_parallel(&self, schema: &Dataset) -> Result<()> {
        let name = SimpleImputerParams::NAME;
        if !matches!(
            self.strategy,
            ImputeStrategy::Median | ImputeStrategy::MostFrequent
        ) {
            return Ok(());
        }
        let cols = self.imputed(schema)?;
        match cols
            .iter()
            .find(|&&j| schema.kind(j).categories().is_none())
        {
            Some(&j) => Err(ModelError::data(
                name,
                format!(
                    "the {} of numeric column '{}' needs every value, not sums: it does not \
                     run data-parallel (strategy=mean does; most_frequent does on categorical \
                     columns)",
                    if self.strategy == ImputeStrategy::Median {
                        "median"
                    } else {
                        "most frequent value"
                    },
                    schema.feature_names()[j]
                ),
            )),
            None => Ok(()),
        }
    }

    /// The columns the imputer acts on: those named in `columns`, else every one but the
    /// indicators.
    fn imputed(&self, data: &Dataset) -> Result<Vec<usize>> {
        select(
            data,
            self.columns.as_deref(),
            SimpleImputerParams::NAME,
            |k| *k != ColumnKind::Indicator,
            |_| true,
            "any column",
        )
    }

    /// The imputer from the columns' statistics (`data` gives the schema: its rows are not
    /// read), and `values` (a column's present cells) for the median or the most frequent
    /// value of a numeric column; without them such a column is refused.
    pub(crate) fn fit_stats(
        &self,
        data: &Dataset,
        stats: &ColumnStats,
        values: Option<&dyn Fn(usize) -> Vec<f32>>,
    ) -> Result<FittedSimpleImputer> {
        let name = SimpleImputerParams::NAME;
        let cols = self.imputed(data)?;
        let (n, d) = (stats.n, data.n_features());
        if n == 0 {
            return Err(ModelError::data("training data", "no rows"));
        }
        let mut fills = vec![Fill::Copy; d];
        let mut statistics = vec![None; d];
        let mut kinds_out = Vec::with_capacity(d);
        let mut indicators = Vec::new();
        for j in 0..d {
            let kind = data.kind(j);
            if !cols.contains(&j) {
                kinds_out.push(kind.clone());
                continue;
            }
            let present = stats.present(j);
            if present < n {
                indicators.push(j);
            }
            let categories = kind.categories();
            let (fill, out_kind) = if self.strategy == ImputeStrategy::Constant {
                constant(
                    kind,
                    categories.as_deref(),
                    self.fill_value.as_deref(),
                    &data.feature_names()[j],
                )?
            } else if present == 0 {
                (Fill::Drop, kind.clone())
            } else {
                let v = match (self.strategy, categories.is_some()) {
                    (ImputeStrategy::Mean, false) => (stats.sum[j] / present as f64) as f32,
                    // The most frequent category: the smallest code of the most rows.
                    (_, true) => {
                        let s = stats.seen(j);
                        if s.codes.is_empty() {
                            return Err(ModelError::data(
                                name,
                                format!(
                                    "column '{}' has present cells but no category counted",
                                    data.feature_names()[j]
                                ),
                            ));
                        }
                        let mut best = 0;
                        for (k, &c) in s.counts.iter().enumerate() {
                            if c > s.counts[best] {
                                best = k;
                            }
                        }
                        s.codes[best] as f32
                    }
                    (strategy, false) => {
                        let Some(values) = values else {
                            return Err(ModelError::data(
                                name,
                                format!(
                                    "strategy={} on numeric column '{}' needs every value, not \
                                     sums: it does not run data-parallel (mean does)",
                                    if strategy == ImputeStrategy::Median {
                                        "median"
                                    } else {
                                        "most_frequent"
                                    },
                                    data.feature_names()[j]
                                ),
                            ));
                        };
                        let mut values = values(j);
                        if strategy == ImputeStrategy::Median {
                            median(&mut values)
                        } else {
                            most_frequent(&mut values)
                        }
                    }
                };
                (Fill::Value(v), kind.clone())
            };
            statistics[j] = match &fill {
                Fill::Value(v) | Fill::Recode { value: v, .. } => Some(out_kind.format_cell(*v)),
                _ => None,
            };
            if fill != Fill::Drop {
                kinds_out.push(out_kind);
            }
            fills[j] = fill;
        }
        if !self.add_indicator {
            indicators.clear();
        }
        kinds_out.extend(indicators.iter().map(|_| ColumnKind::Indicator));
        Ok(FittedSimpleImputer {
            fills,
            indicators,
            kinds_out,
            statistics,
        })
    }
}

/// The fill of `constant` for a column of `kind`.
fn constant(
    kind: &ColumnKind,
    categories: Option<&Classes>,
    fill_value: Option<&str>,
    name: &str,
) -> Result<(Fill, ColumnKind)> {
    let Some(categories) = categories else {
        let text = fill_value.unwrap_or("0");
        let v: f32 = text
            .trim()
            .parse()
            .ok()
            .filter(|v: &f32| v.is_finite())
            .ok_or_else(|| {
                ModelError::param(
                    SimpleImputerParams::NAME,
                    "fill_value",
                    format!("'{text}' is not a number, and column '{name}' is numeric"),
                )
            })?;
        return Ok((Fill::Value(v), kind.clone()));
    };
    let text = fill_value.unwrap_or("missing_value");
    if let Some(code) = categories.id_of(text) {
        return Ok((Fill::Value(code as f32), kind.clone()));
    }
    let mut labels = categories.labels().to_vec();
    labels.push(text.to_string());
    let grown = Classes::from_labels(&labels);
    let map = categories
        .labels()
        .iter()
        .map(|l| grown.id_of(l).expect("kept") as f32)
        .collect();
    let value = grown.id_of(text).expect("added") as f32;
    Ok((
        Fill::Recode { value, map },
        ColumnKind::Categorical { categories: grown },
    ))
}

/// The median of non-empty values (the mean of the middle two for an even count), as
/// numpy's `nanmedian`.
fn median(values: &mut [f32]) -> f32 {
    values.sort_unstable_by(f32::total_cmp);
    let m = values.len() / 2;
    if values.len() % 2 == 1 {
        values[m]
    } else {
        ((values[m - 1] as f64 + values[m] as f64) / 2.0) as f32
    }
}

/// The most frequent of non-empty values; the smallest of ties.
fn most_frequent(values: &mut [f32]) -> f32 {
    values.sort_unstable_by(f32::total_cmp);
    let (mut best, mut best_n) = (values[0], 0usize);
    let mut i = 0;
    while i < values.len() {
        let mut k = i;
        while k < values.len() && values[k] == values[i] {
            k += 1;
        }
        if k - i > best_n {
            best = values[i];
            best_n = k - i;
        }
        i = k;
    }
    best
}

impl FittedSimpleImputer {
    /// The fill of each input column (scikit-learn's `statistics_`) as text: a number or
    /// a category; `None` for a column not imputed or dropped.
    pub fn statistics(&self) -> &[Option<String>] {
        &self.statistics
    }
}

impl Transformer for FittedSimpleImputer {
    fn n_features_in(&self) -> usize {
        self.fills.len()
    }

    fn transform(&self, x: &Matrix) -> Result<Matrix> {
        let d = self.fills.len();
        check_width(x, d, SimpleImputerParams::NAME)?;
        let width = self.kinds_out.len();
        let mut out = Vec::with_capacity(x.rows() * width);
        for row in x.data().chunks_exact(d.max(1)) {
            for (v, fill) in row.iter().zip(&self.fills) {
                match fill {
                    Fill::Copy => out.push(*v),
                    Fill::Drop => {}
                    Fill::Value(f) => out.push(if v.is_nan() { *f } else { *v }),
                    Fill::Recode { value, map } => out.push(if v.is_nan() {
                        *value
                    } else if *v >= 0.0 && (*v as usize) < map.len() {
                        map[*v as usize]
                    } else {
                        *v // an unknown category stays unknown
                    }),
                }
            }
            out.extend(
                self.indicators
                    .iter()
                    .map(|&j| if row[j].is_nan() { 1.0 } else { 0.0 }),
            );
        }
        Matrix::from_vec(x.rows(), width, out)
    }

    fn feature_names_out(&self, names: &[String]) -> Vec<String> {
        names
            .iter()
            .zip(&self.fills)
            .filter(|(_, f)| **f != Fill::Drop)
            .map(|(n, _)| n.clone())
            .chain(
                self.indicators
                    .iter()
                    .map(|&j| format!("missingindicator_{}", names[j])),
            )
            .collect()
    }

    fn kinds_out(&self, _kinds: &[ColumnKind]) -> Vec<ColumnKind> {
        self.kinds_out.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Target;

    fn table() -> Dataset {
        // a: numeric with a hole; c: categories [x, y] with a hole; b: all missing.
        let nan = f32::NAN;
        let x = Matrix::from_vec(
            4,
            3,
            vec![1., 0., nan, 2., nan, nan, nan, 1., nan, 6., 1., nan],
        )
        .unwrap();
        Dataset::new(
            x,
            Target::Values(vec![0.; 4]),
            vec!["a".into(), "c".into(), "b".into()],
            "y",
        )
        .unwrap()
        .with_kinds(vec![
            ColumnKind::Numeric,
            ColumnKind::Categorical {
                categories: Classes::from_labels(&["x", "y"]),
            },
            ColumnKind::Numeric,
        ])
        .unwrap()
    }

    fn fit(params: &[(&str, &str)]) -> (FittedSimpleImputer, Vec<f32>) {
        let mut p = SimpleImputerParams::default();
        for (k, v) in params {
            p.set_param(k, v).unwrap();
        }
        let d = table();
        let f = p.fit(&d).unwrap();
        let t = f.transform(d.x()).unwrap().to_vec();
        (f, t)
    }

    #[test]
    fn mean_median_and_most_frequent_fill_by_kind_and_drop_empty_columns() {
        let (f, t) = fit(&[]);
        // a's mean is 3; c's most frequent is y (two y, one x); b has no value: dropped.
        assert_eq!(t, vec![1., 0., 2., 1., 3., 1., 6., 1.]);
        assert_eq!(
            f.statistics(),
            [Some("3".to_string()), Some("y".to_string()), None]
        );
        assert_eq!(
            f.feature_names_out(&["a".into(), "c".into(), "b".into()]),
            ["a", "c"]
        );
        let (_, t) = fit(&[("strategy", "median")]);
        assert_eq!(t[4], 2.0);
        let (_, t) = fit(&[("strategy", "most_frequent")]);
        assert_eq!(t[4], 1.0, "ties take the smallest value");
    }

    #[test]
    fn constant_adds_the_fill_category_and_indicators_follow() {
        let (f, t) = fit(&[("strategy", "constant"), ("add_indicator", "true")]);
        // c gains missing_value between x and y: x=0, missing_value=1, y=2.
        let ColumnKind::Categorical { categories } = &f.kinds_out(&[])[1] else {
            panic!("c stays categorical")
        };
        assert_eq!(categories.labels(), ["missing_value", "x", "y"]);
        assert_eq!(
            t,
            vec![
                1., 1., 0., 0., 0., 1., //
                2., 0., 0., 0., 1., 1., //
                0., 2., 0., 1., 0., 1., //
                6., 2., 0., 0., 0., 1.
            ]
        );
        assert_eq!(
            f.feature_names_out(&["a".into(), "c".into(), "b".into()]),
            [
                "a",
                "c",
                "b",
                "missingindicator_a",
                "missingindicator_c",
                "missingindicator_b"
            ]
        );
        let mut p = SimpleImputerParams::default();
        p.set_param("strategy", "constant").unwrap();
        p.set_param("fill_value", "none?").unwrap();
        let e = p.fit(&table()).unwrap_err().to_string();
        assert!(
            e.contains("'none?' is not a number, and column 'a' is numeric"),
            "{e}"
        );
    }
}
