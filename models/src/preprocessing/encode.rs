//! Categorical encoders with scikit-learn's names and semantics: `OneHotEncoder` and
//! `OrdinalEncoder`. By default they act on the categorical and boolean columns; the other
//! columns pass through in place, and each encoded column is replaced where it stood (by
//! its indicator columns, or its ordinal code).
//!
//! An encoder's categories are those its training rows hold (`categories_`), in the
//! schema's sorted order, with `nan` last when training rows had missing cells (scikit-learn
//! then treats missing as a category of its own). A cell whose category fit did not see,
//! including one the schema does not list, is unknown: `handle_unknown` decides.

use serde::{Deserialize, Serialize};

use super::columns::{check_width, parse_columns, select};
use super::stats::{ColumnStats, Seen};
use crate::dataset::Dataset;
use crate::error::{ModelError, Result};
use crate::matrix::Matrix;
use crate::schema::ColumnKind;
use crate::traits::{parse_value, unknown_param, Checked, Fit, Params, Transformer};

fn is_categorical(k: &ColumnKind) -> bool {
    matches!(k, ColumnKind::Categorical { .. } | ColumnKind::Boolean)
}

const TAKES: &str = "categorical or boolean columns (declare a column of integer codes \
                     categorical at ingest with --categorical NAME)";

/// Where an input cell of an encoded column goes.
const UNKNOWN: i32 = -1;

/// One encoded column: its seen categories and where each input code goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EncodedColumn {
    /// The input column.
    input: usize,
    /// The categories fit saw (`categories_`), `nan` last if missing cells were seen.
    categories: Vec<String>,
    /// For each schema code, its slot (output column within the block, or ordinal value)
    /// or [`UNKNOWN`].
    slot_of_code: Vec<i32>,
    /// The slot of a missing cell, or [`UNKNOWN`] when fit saw none.
    nan_slot: i32,
    /// The names of the block's output columns (one-hot) after the column's name.
    suffixes: Vec<String>,
    /// One-hot: the slot of the infrequent column, if there is one.
    infrequent_slot: Option<u32>,
    /// One-hot: the slot dropped (`drop`), if any.
    dropped: Option<u32>,
    /// One-hot: the categories grouped as infrequent.
    #[serde(default)]
    infrequent: Vec<String>,
}

impl EncodedColumn {
    fn slot(&self, v: f32) -> i32 {
        if v.is_nan() {
            self.nan_slot
        } else if v >= 0.0 && (v as usize) < self.slot_of_code.len() {
            self.slot_of_code[v as usize]
        } else {
            UNKNOWN
        }
    }
}

/// The labels of the seen categories of column `j` (and `nan` when missing was seen).
fn seen_labels(kind: &ColumnKind, s: &Seen) -> Vec<String> {
    let cats = kind.categories().expect("an encoded column has categories");
    let mut labels: Vec<String> = s.codes.iter().map(|&c| cats.label(c).to_string()).collect();
    if s.missing > 0 {
        labels.push("nan".into());
    }
    labels
}

fn unknown_error(step: &str, name: &str, kind: &ColumnKind, v: f32, fix: &str) -> ModelError {
    let what = if v.is_nan() {
        "a missing cell, which fit did not see".to_string()
    } else {
        match kind.format_cell(v).as_str() {
            "<unknown>" => "a category fit did not see".to_string(),
            c => format!("category '{c}', which fit did not see"),
        }
    };
    ModelError::data(
        format!("{step}, column '{name}'"),
        format!("{what} (handle_unknown=error); {fix}"),
    )
}

// ---------------------------------------------------------------------------------------
// One-hot

/// What a one-hot encoder does with a category fit did not see.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum HandleUnknown {
    /// Refuse the input.
    #[default]
    Error,
    /// Encode it as all zeros.
    Ignore,
    /// Encode it as the infrequent category where the column has one, else all zeros.
    InfrequentIfExist,
}

/// Which category's column a one-hot encoder drops.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Drop {
    /// Keep every column.
    #[default]
    None,
    /// Drop the first category's column in every column.
    First,
    /// Drop the first category's column in columns with exactly two.
    IfBinary,
}

/// Hyperparameters of the one-hot encoder (scikit-learn's `OneHotEncoder`, dense output).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OneHotEncoderParams {
    /// What to do with a category fit did not see. Default error.
    #[serde(default)]
    pub handle_unknown: HandleUnknown,
    /// Drop a column per feature. Default none.
    #[serde(default)]
    pub drop: Drop,
    /// Categories rarer than this are grouped as infrequent: a count when >= 1, a fraction
    /// of the training rows when below 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_frequency: Option<f64>,
    /// At most this many output columns per feature, the infrequent one included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_categories: Option<usize>,
    /// The columns to encode; `None` means the categorical and boolean ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
}

impl Params for OneHotEncoderParams {
    const NAME: &'static str = "one_hot_encoder";
    const ALIASES: &'static [&'static str] = &["OneHotEncoder"];
    const DESCRIPTION: &'static str =
        "one 0/1 column per category of each categorical column (handle_unknown, drop, min_frequency, max_categories)";
    const PARAM_NAMES: &'static [&'static str] = &[
        "handle_unknown",
        "drop",
        "min_frequency",
        "max_categories",
        "columns",
    ];

    fn validate(&self) -> Result<()> {
        if let Some(m) = self.min_frequency {
            if !(m.is_finite() && m > 0.0 && (m < 1.0 || m.fract() == 0.0)) {
                return Err(ModelError::param(
                    Self::NAME,
                    "min_frequency",
                    format!("must be an integer >= 1 or a fraction in (0, 1), got {m}"),
                ));
            }
        }
        if self.max_categories == Some(0) {
            return Err(ModelError::param(
                Self::NAME,
                "max_categories",
                "must be >= 1, got 0",
            ));
        }
        Ok(())
    }

    fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
        let none = matches!(value.trim(), "None" | "none" | "null");
        match key {
            "handle_unknown" => {
                self.handle_unknown = match value.trim() {
                    "error" => HandleUnknown::Error,
                    "ignore" => HandleUnknown::Ignore,
                    "infrequent_if_exist" => HandleUnknown::InfrequentIfExist,
                    v => {
                        return Err(ModelError::param(
                            Self::NAME,
                            key,
                            format!("'{v}' is not one of error, ignore, infrequent_if_exist"),
                        ))
                    }
                }
            }
            "drop" => {
                self.drop = match value.trim() {
                    "None" | "none" | "null" => Drop::None,
                    "first" => Drop::First,
                    "if_binary" => Drop::IfBinary,
                    v => {
                        return Err(ModelError::param(
                            Self::NAME,
                            key,
                            format!("'{v}' is not one of None, first, if_binary"),
                        ))
                    }
                }
            }
            "min_frequency" => {
                self.min_frequency = if none {
                    None
                } else {
                    Some(parse_value(Self::NAME, key, value, "a number")?)
                }
            }
            "max_categories" => {
                self.max_categories = if none {
                    None
                } else {
                    Some(parse_value(Self::NAME, key, value, "an integer >= 1")?)
                }
            }
            "columns" => self.columns = parse_columns(value),
            _ => return Err(unknown_param::<Self>(key)),
        }
        Ok(())
    }
}

/// A fitted one-hot encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedOneHotEncoder {
    n_in: usize,
    columns: Vec<EncodedColumn>,
    /// Per input column: its index in `columns`, if encoded.
    encoded: Vec<Option<usize>>,
    handle_unknown: HandleUnknown,
    kinds_out: Vec<ColumnKind>,
    /// Input column names, for messages.
    names: Vec<String>,
    /// Input column kinds, for messages.
    kinds_in: Vec<ColumnKind>,
}

/// scikit-learn's infrequent categories: those rarer than `min_frequency`, then the rarest
/// until `max_categories` (the infrequent column included) is met; ties keep the later
/// category (a stable sort by count). Returns a mask over `counts`.
fn infrequent(
    counts: &[u64],
    n: usize,
    min_frequency: Option<f64>,
    max: Option<usize>,
) -> Vec<bool> {
    let mut mask: Vec<bool> = match min_frequency {
        Some(m) if m >= 1.0 => counts.iter().map(|&c| (c as f64) < m).collect(),
        Some(m) => counts.iter().map(|&c| (c as f64) < m * n as f64).collect(),
        None => vec![false; counts.len()],
    };
    let current = counts.len() - mask.iter().filter(|&&m| m).count() + 1;
    if let Some(max) = max {
        if max < current {
            let frequent = max - 1;
            if frequent == 0 {
                mask.iter_mut().for_each(|m| *m = true);
            } else {
                let mut order: Vec<usize> = (0..counts.len()).collect();
                order.sort_by_key(|&i| counts[i]); // stable
                for &i in &order[..counts.len().saturating_sub(frequent)] {
                    mask[i] = true;
                }
            }
        }
    }
    mask
}

impl Fit for Checked<OneHotEncoderParams> {
    type Fitted = FittedOneHotEncoder;

    fn fit(&self, data: &Dataset) -> Result<FittedOneHotEncoder> {
        self.fit_stats(data, &ColumnStats::of(data))
    }
}

impl Checked<OneHotEncoderParams> {
    /// The encoder from the columns' category counts (`data` gives the schema: its rows are
    /// not read).
    pub(crate) fn fit_stats(
        &self,
        data: &Dataset,
        stats: &ColumnStats,
    ) -> Result<FittedOneHotEncoder> {
        let step = OneHotEncoderParams::NAME;
        let cols = select(
            data,
            self.columns.as_deref(),
            step,
            is_categorical,
            is_categorical,
            TAKES,
        )?;
        let (n, d) = (stats.n as usize, data.n_features());
        let mut columns = Vec::with_capacity(cols.len());
        let mut encoded = vec![None; d];
        let mut kinds_out = Vec::new();
        for j in 0..d {
            if !cols.contains(&j) {
                kinds_out.push(data.kind(j).clone());
                continue;
            }
            let kind = data.kind(j);
            let n_cats = kind.categories().map_or(0, |c| c.len());
            let s = stats.seen(j);
            let labels = seen_labels(kind, &s);
            let mut counts = s.counts.clone();
            if s.missing > 0 {
                counts.push(s.missing);
            }
            let mask = infrequent(&counts, n, self.min_frequency, self.max_categories);
            // Slots: frequent categories in order, then the infrequent column.
            let n_frequent = mask.iter().filter(|&&m| !m).count();
            let has_infrequent = n_frequent < counts.len();
            let mut slot_of_seen = Vec::with_capacity(counts.len());
            let mut next = 0;
            for &m in &mask {
                if m {
                    slot_of_seen.push(n_frequent as i32);
                } else {
                    slot_of_seen.push(next);
                    next += 1;
                }
            }
            let mut suffixes: Vec<String> = labels
                .iter()
                .zip(&mask)
                .filter(|(_, &m)| !m)
                .map(|(l, _)| l.clone())
                .collect();
            if has_infrequent {
                suffixes.push("infrequent_sklearn".into());
            }
            let width = suffixes.len();
            // scikit-learn drops the first column after grouping: the first frequent
            // category, or the infrequent column when every category is infrequent.
            let dropped = match self.drop {
                Drop::First => Some(0),
                Drop::IfBinary if width == 2 => Some(0),
                _ => None,
            };
            let mut slot_of_code = vec![UNKNOWN; n_cats];
            for (k, &c) in s.codes.iter().enumerate() {
                slot_of_code[c as usize] = slot_of_seen[k];
            }
            let nan_slot = if s.missing > 0 {
                slot_of_seen[s.codes.len()]
            } else {
                UNKNOWN
            };
            let kept = width - usize::from(dropped.is_some());
            kinds_out.extend(std::iter::repeat_n(ColumnKind::Indicator, kept));
            encoded[j] = Some(columns.len());
            columns.push(EncodedColumn {
                input: j,
                categories: labels.clone(),
                slot_of_code,
                nan_slot,
                suffixes,
                infrequent_slot: has_infrequent.then_some(n_frequent as u32),
                dropped,
                infrequent: labels
                    .iter()
                    .zip(&mask)
                    .filter(|(_, &m)| m)
                    .map(|(l, _)| l.clone())
                    .collect(),
            });
        }
        Ok(FittedOneHotEncoder {
            n_in: d,
            columns,
            encoded,
            handle_unknown: self.handle_unknown,
            kinds_out,
            names: data.feature_names().to_vec(),
            kinds_in: data.kinds(),
        })
    }
}

impl FittedOneHotEncoder {
    /// The categories fit saw in each encoded column (scikit-learn's `categories_`).
    pub fn categories(&self) -> Vec<&[String]> {
        self.columns
            .iter()
            .map(|c| c.categories.as_slice())
            .collect()
    }

    /// The infrequent categories of each encoded column (`infrequent_categories_`).
    pub fn infrequent_categories(&self) -> Vec<Option<&[String]>> {
        self.columns
            .iter()
            .map(|c| c.infrequent_slot.map(|_| c.infrequent.as_slice()))
            .collect()
    }
}

impl Transformer for FittedOneHotEncoder {
    fn n_features_in(&self) -> usize {
        self.n_in
    }

    fn transform(&self, x: &Matrix) -> Result<Matrix> {
        let step = OneHotEncoderParams::NAME;
        check_width(x, self.n_in, step)?;
        let width = self.kinds_out.len();
        let mut out = Vec::with_capacity(x.rows() * width);
        for row in x.data().chunks_exact(self.n_in.max(1)) {
            for (j, &v) in row.iter().enumerate() {
                let Some(c) = self.encoded[j] else {
                    out.push(v);
                    continue;
                };
                let col = &self.columns[c];
                let mut slot = col.slot(v);
                if slot == UNKNOWN {
                    match self.handle_unknown {
                        HandleUnknown::Error => {
                            return Err(unknown_error(
                                step,
                                &self.names[j],
                                &self.kinds_in[j],
                                v,
                                "set one_hot_encoder__handle_unknown=ignore to encode it as zeros",
                            ))
                        }
                        HandleUnknown::Ignore => {}
                        HandleUnknown::InfrequentIfExist => {
                            slot = col.infrequent_slot.map_or(UNKNOWN, |s| s as i32)
                        }
                    }
                }
                for s in 0..col.suffixes.len() as u32 {
                    if Some(s) != col.dropped {
                        out.push(if s as i32 == slot { 1.0 } else { 0.0 });
                    }
                }
            }
        }
        Matrix::from_vec(x.rows(), width, out)
    }

    fn feature_names_out(&self, names: &[String]) -> Vec<String> {
        let mut out = Vec::with_capacity(self.kinds_out.len());
        for (j, name) in names.iter().enumerate() {
            match self.encoded.get(j).copied().flatten() {
                None => out.push(name.clone()),
                Some(c) => {
                    let col = &self.columns[c];
                    for (s, suffix) in col.suffixes.iter().enumerate() {
                        if Some(s as u32) != col.dropped {
                            out.push(format!("{name}_{suffix}"));
                        }
                    }
                }
            }
        }
        out
    }

    fn kinds_out(&self, _kinds: &[ColumnKind]) -> Vec<ColumnKind> {
        self.kinds_out.clone()
    }
}

// ---------------------------------------------------------------------------------------
// Ordinal

/// What an ordinal encoder does with a category fit did not see.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OrdinalUnknown {
    /// Refuse the input.
    #[default]
    Error,
    /// Write `unknown_value`.
    UseEncodedValue,
}

/// Hyperparameters of the ordinal encoder (scikit-learn's `OrdinalEncoder`): each category
/// becomes its index among the categories fit saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrdinalEncoderParams {
    /// What to do with a category fit did not see. Default error.
    #[serde(default)]
    pub handle_unknown: OrdinalUnknown,
    /// The value of an unknown category with `use_encoded_value` (an integer, or NaN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_value: Option<Encoded>,
    /// The value of a missing cell. Default NaN.
    #[serde(default)]
    pub encoded_missing_value: Encoded,
    /// The columns to encode; `None` means the categorical and boolean ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
}

/// A value an encoder writes: an integer, or NaN (written `"nan"` in job files, where JSON
/// has no NaN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Encoded {
    /// An integer.
    Code(i64),
    /// NaN.
    Nan(NanWord),
}

/// The word `nan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NanWord {
    /// NaN.
    Nan,
}

impl Default for Encoded {
    fn default() -> Self {
        Encoded::Nan(NanWord::Nan)
    }
}

impl Encoded {
    fn value(self) -> f32 {
        match self {
            Encoded::Code(c) => c as f32,
            Encoded::Nan(_) => f32::NAN,
        }
    }
}

impl Default for OrdinalEncoderParams {
    fn default() -> Self {
        Self {
            handle_unknown: OrdinalUnknown::Error,
            unknown_value: None,
            encoded_missing_value: Encoded::default(),
            columns: None,
        }
    }
}

fn parse_encoded(step: &'static str, key: &str, value: &str) -> Result<Encoded> {
    match value.trim() {
        "nan" | "NaN" | "np.nan" => Ok(Encoded::Nan(NanWord::Nan)),
        v => parse_value(step, key, v, "an integer or nan").map(Encoded::Code),
    }
}

impl Params for OrdinalEncoderParams {
    const NAME: &'static str = "ordinal_encoder";
    const ALIASES: &'static [&'static str] = &["OrdinalEncoder"];
    const DESCRIPTION: &'static str =
        "each category as its index among the sorted categories (handle_unknown, unknown_value, encoded_missing_value)";
    const PARAM_NAMES: &'static [&'static str] = &[
        "handle_unknown",
        "unknown_value",
        "encoded_missing_value",
        "columns",
    ];

    fn validate(&self) -> Result<()> {
        match (self.handle_unknown, self.unknown_value) {
            (OrdinalUnknown::UseEncodedValue, None) => Err(ModelError::param(
                Self::NAME,
                "unknown_value",
                "must be set (an integer, or nan) when handle_unknown=use_encoded_value",
            )),
            (OrdinalUnknown::Error, Some(_)) => Err(ModelError::param(
                Self::NAME,
                "unknown_value",
                "is only used when handle_unknown=use_encoded_value",
            )),
            _ => Ok(()),
        }
    }

    fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "handle_unknown" => {
                self.handle_unknown = match value.trim() {
                    "error" => OrdinalUnknown::Error,
                    "use_encoded_value" => OrdinalUnknown::UseEncodedValue,
                    v => {
                        return Err(ModelError::param(
                            Self::NAME,
                            key,
                            format!("'{v}' is not one of error, use_encoded_value"),
                        ))
                    }
                }
            }
            "unknown_value" => {
                self.unknown_value = match value.trim() {
                    "None" | "none" | "null" => None,
                    v => Some(parse_encoded(Self::NAME, key, v)?),
                }
            }
            "encoded_missing_value" => {
                self.encoded_missing_value = parse_encoded(Self::NAME, key, value)?
            }
            "columns" => self.columns = parse_columns(value),
            _ => return Err(unknown_param::<Self>(key)),
        }
        Ok(())
    }
}

/// A fitted ordinal encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedOrdinalEncoder {
    n_in: usize,
    columns: Vec<EncodedColumn>,
    encoded: Vec<Option<usize>>,
    unknown_value: Option<f32>,
    encoded_missing_value: f32,
    names: Vec<String>,
    kinds_in: Vec<ColumnKind>,
}

impl Fit for Checked<OrdinalEncoderParams> {
    type Fitted = FittedOrdinalEncoder;

    fn fit(&self, data: &Dataset) -> Result<FittedOrdinalEncoder> {
        self.fit_stats(data, &ColumnStats::of(data))
    }
}

impl Checked<OrdinalEncoderParams> {
    /// The encoder from the columns' category counts (`data` gives the schema: its rows are
    /// not read).
    pub(crate) fn fit_stats(
        &self,
        data: &Dataset,
        stats: &ColumnStats,
    ) -> Result<FittedOrdinalEncoder> {
        let step = OrdinalEncoderParams::NAME;
        let cols = select(
            data,
            self.columns.as_deref(),
            step,
            is_categorical,
            is_categorical,
            TAKES,
        )?;
        let d = data.n_features();
        let mut columns = Vec::new();
        let mut encoded = vec![None; d];
        for &j in &cols {
            let kind = data.kind(j);
            let n_cats = kind.categories().map_or(0, |c| c.len());
            let s = stats.seen(j);
            // A code given for unknown or missing cells must not be a category's.
            let taken = |param: &str, v: i64| {
                if v >= 0 && (v as usize) < s.codes.len() {
                    return Err(ModelError::param(
                        step,
                        param,
                        format!(
                            "{v} is already the code of a category of column '{}'",
                            data.feature_names()[j]
                        ),
                    ));
                }
                Ok(())
            };
            if let Some(Encoded::Code(u)) = self.unknown_value {
                taken("unknown_value", u)?;
            }
            if let Encoded::Code(m) = self.encoded_missing_value {
                if s.missing > 0 {
                    taken("encoded_missing_value", m)?;
                }
            }
            let mut slot_of_code = vec![UNKNOWN; n_cats];
            for (k, &c) in s.codes.iter().enumerate() {
                slot_of_code[c as usize] = k as i32;
            }
            let labels = seen_labels(kind, &s);
            encoded[j] = Some(columns.len());
            columns.push(EncodedColumn {
                input: j,
                categories: labels,
                slot_of_code,
                // Missing is encoded_missing_value whether or not fit saw it.
                nan_slot: i32::MAX,
                suffixes: Vec::new(),
                infrequent_slot: None,
                dropped: None,
                infrequent: Vec::new(),
            });
        }
        Ok(FittedOrdinalEncoder {
            n_in: d,
            columns,
            encoded,
            unknown_value: self.unknown_value.map(Encoded::value),
            encoded_missing_value: self.encoded_missing_value.value(),
            names: data.feature_names().to_vec(),
            kinds_in: data.kinds(),
        })
    }
}

impl FittedOrdinalEncoder {
    /// The categories fit saw in each encoded column (scikit-learn's `categories_`).
    pub fn categories(&self) -> Vec<&[String]> {
        self.columns
            .iter()
            .map(|c| c.categories.as_slice())
            .collect()
    }
}

impl Transformer for FittedOrdinalEncoder {
    fn n_features_in(&self) -> usize {
        self.n_in
    }

    fn transform(&self, x: &Matrix) -> Result<Matrix> {
        let step = OrdinalEncoderParams::NAME;
        check_width(x, self.n_in, step)?;
        let mut out = x.to_vec();
        for row in out.chunks_exact_mut(self.n_in.max(1)) {
            for (j, v) in row.iter_mut().enumerate() {
                let Some(c) = self.encoded[j] else { continue };
                if v.is_nan() {
                    *v = self.encoded_missing_value;
                    continue;
                }
                let slot = self.columns[c].slot(*v);
                *v = if slot != UNKNOWN {
                    slot as f32
                } else if let Some(u) = self.unknown_value {
                    u
                } else {
                    return Err(unknown_error(
                        step,
                        &self.names[j],
                        &self.kinds_in[j],
                        *v,
                        "set ordinal_encoder__handle_unknown=use_encoded_value and \
                         ordinal_encoder__unknown_value=-1 to encode it",
                    ));
                };
            }
        }
        Matrix::from_vec(x.rows(), self.n_in, out)
    }

    fn kinds_out(&self, kinds: &[ColumnKind]) -> Vec<ColumnKind> {
        kinds
            .iter()
            .enumerate()
            .map(|(j, k)| {
                if self.encoded.get(j).copied().flatten().is_some() {
                    ColumnKind::Numeric
                } else {
                    k.clone()
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{Classes, Target};
    use crate::schema::UNKNOWN_CODE;

    /// color: [blue, green, red] codes; size: numeric.
    fn table(codes: &[f32]) -> Dataset {
        let x: Vec<f32> = codes.iter().flat_map(|&c| [c, 1.5]).collect();
        Dataset::new(
            Matrix::from_vec(codes.len(), 2, x).unwrap(),
            Target::Values(vec![0.; codes.len()]),
            vec!["color".into(), "size".into()],
            "y",
        )
        .unwrap()
        .with_kinds(vec![
            ColumnKind::Categorical {
                categories: Classes::from_labels(&["red", "green", "blue"]),
            },
            ColumnKind::Numeric,
        ])
        .unwrap()
    }

    fn one_hot(params: &[(&str, &str)], codes: &[f32]) -> FittedOneHotEncoder {
        let mut p = OneHotEncoderParams::default();
        for (k, v) in params {
            p.set_param(k, v).unwrap();
        }
        p.fit(&table(codes)).unwrap()
    }

    #[test]
    fn one_hot_replaces_the_column_in_place_with_seen_categories() {
        // blue=0 unseen in fit: only green and red get columns.
        let f = one_hot(&[], &[1., 2., 2.]);
        let names = f.feature_names_out(&["color".into(), "size".into()]);
        assert_eq!(names, ["color_green", "color_red", "size"]);
        let t = f.transform(table(&[2., 1.]).x()).unwrap().to_vec();
        assert_eq!(t, vec![0., 1., 1.5, 1., 0., 1.5]);
        let e = f.transform(table(&[0.]).x()).unwrap_err().to_string();
        assert!(e.contains("category 'blue', which fit did not see"), "{e}");
        let e = f
            .transform(table(&[UNKNOWN_CODE]).x())
            .unwrap_err()
            .to_string();
        assert!(e.contains("a category fit did not see"), "{e}");
        let g = one_hot(&[("handle_unknown", "ignore")], &[1., 2., 2.]);
        assert_eq!(
            g.transform(table(&[0.]).x()).unwrap().to_vec(),
            vec![0., 0., 1.5]
        );
    }

    #[test]
    fn infrequent_categories_group_and_catch_unknowns() {
        let f = one_hot(
            &[
                ("min_frequency", "2"),
                ("handle_unknown", "infrequent_if_exist"),
            ],
            &[0., 1., 1., 2., 2., 2.],
        );
        assert_eq!(
            f.feature_names_out(&["color".into(), "size".into()]),
            [
                "color_green",
                "color_red",
                "color_infrequent_sklearn",
                "size"
            ]
        );
        assert_eq!(
            f.infrequent_categories(),
            vec![Some(&["blue".to_string()][..])]
        );
        let t = f
            .transform(table(&[0., UNKNOWN_CODE]).x())
            .unwrap()
            .to_vec();
        assert_eq!(t, vec![0., 0., 1., 1.5, 0., 0., 1., 1.5]);
        // max_categories=2: the rarest two become infrequent.
        let f = one_hot(&[("max_categories", "2")], &[0., 1., 1., 2., 2., 2.]);
        assert_eq!(
            f.feature_names_out(&["color".into(), "size".into()]),
            ["color_red", "color_infrequent_sklearn", "size"]
        );
    }

    #[test]
    fn drop_takes_the_first_column_after_grouping() {
        // blue is infrequent: scikit-learn drops green (the first frequent), not the
        // infrequent column.
        let f = one_hot(
            &[("min_frequency", "2"), ("drop", "first")],
            &[0., 1., 1., 2., 2., 2.],
        );
        assert_eq!(
            f.feature_names_out(&["color".into(), "size".into()]),
            ["color_red", "color_infrequent_sklearn", "size"]
        );
    }

    #[test]
    fn drop_first_and_if_binary() {
        let f = one_hot(&[("drop", "first")], &[0., 1., 2.]);
        assert_eq!(
            f.feature_names_out(&["color".into(), "size".into()]),
            ["color_green", "color_red", "size"]
        );
        assert_eq!(
            f.transform(table(&[0.]).x()).unwrap().to_vec(),
            vec![0., 0., 1.5]
        );
        let f = one_hot(&[("drop", "if_binary")], &[0., 1., 2.]);
        assert_eq!(
            f.kinds_out(&[]).len(),
            4,
            "three categories: nothing dropped"
        );
        let f = one_hot(&[("drop", "if_binary")], &[0., 2.]);
        assert_eq!(
            f.feature_names_out(&["color".into(), "size".into()]),
            ["color_red", "size"]
        );
    }

    #[test]
    fn missing_is_a_category_of_its_own() {
        let f = one_hot(&[], &[1., f32::NAN]);
        assert_eq!(
            f.feature_names_out(&["color".into(), "size".into()]),
            ["color_green", "color_nan", "size"]
        );
        assert_eq!(
            f.transform(table(&[f32::NAN]).x()).unwrap().to_vec(),
            vec![0., 1., 1.5]
        );
    }

    #[test]
    fn ordinal_codes_count_seen_categories_and_handle_unknowns() {
        let d = table(&[1., 2., f32::NAN]);
        let f = OrdinalEncoderParams::default().fit(&d).unwrap();
        assert_eq!(
            f.categories(),
            vec![&["green".to_string(), "red".into(), "nan".into()][..]]
        );
        let t = f.transform(d.x()).unwrap().to_vec();
        assert_eq!(&t[..4], &[0., 1.5, 1., 1.5]);
        assert!(t[4].is_nan());
        assert_eq!(
            f.kinds_out(&d.kinds()),
            [ColumnKind::Numeric, ColumnKind::Numeric]
        );
        assert!(f.transform(table(&[0.]).x()).is_err());
        let mut p = OrdinalEncoderParams::default();
        p.set_param("handle_unknown", "use_encoded_value").unwrap();
        assert!(p.validate().is_err(), "unknown_value is required");
        p.set_param("unknown_value", "-1").unwrap();
        p.set_param("encoded_missing_value", "-2").unwrap();
        let f = p.fit(&d).unwrap();
        let t = f.transform(table(&[0., f32::NAN]).x()).unwrap().to_vec();
        assert_eq!(t, vec![-1., 1.5, -2., 1.5]);
        p.set_param("unknown_value", "1").unwrap();
        assert!(p.fit(&d).is_err(), "1 is a category's code");
        // NaN travels in job files as the word nan.
        let json = serde_json::to_string(&OrdinalEncoderParams::default()).unwrap();
        assert_eq!(
            json,
            r#"{"handle_unknown":"error","encoded_missing_value":"nan"}"#
        );
        let back: OrdinalEncoderParams = serde_json::from_str(&json).unwrap();
        assert_eq!(back, OrdinalEncoderParams::default());
        p.set_param("unknown_value", "nan").unwrap();
        let back: OrdinalEncoderParams =
            serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
