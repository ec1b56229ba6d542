//! Column types of a table: what each feature column holds, and how its cells are written
//! into the `f32` feature matrix every model reads.
//!
//! - **numeric**: the value; a missing cell is NaN.
//! - **categorical**: the index of the cell's category in the column's sorted category list
//!   (kept in the dataset's schema, so every chunk and every node agrees on the codes); a
//!   missing cell is NaN, and a category the schema does not know (only in data given to a
//!   fitted model) is [`UNKNOWN_CODE`]. Integer categories sort as numbers, text ones by
//!   code point, as scikit-learn's encoders sort them.
//! - **boolean**: 0 (false) or 1 (true); missing is NaN. Encoders treat it as the categories
//!   `False` and `True`, as scikit-learn does a pandas `bool` column.
//! - **indicator**: a 0/1 column an encoder or an imputer's `add_indicator` made. Numeric
//!   steps (scalers) leave it alone, as scikit-learn's `ColumnTransformer` would not scale
//!   a one-hot output.
//!
//! Estimators take numeric and indicator columns only, without missing cells (trees and
//! forests excepted); [`check_model_input`] refuses anything else before any work, naming
//! the columns and the step that would fix them.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::dataset::{Classes, Dataset, LabelKind};
use crate::error::{ModelError, Result};

/// The code of a category that the schema does not list (only in data given to a fitted
/// model: a fitted encoder applies its `handle_unknown` to it).
pub const UNKNOWN_CODE: f32 = -1.0;

/// Default cap on distinct categories of one column.
pub const DEFAULT_MAX_CATEGORIES: usize = 100_000;

/// The cells read as missing by default (pandas reads these, and more, as NaN).
pub const DEFAULT_NA_VALUES: &[&str] = &["", "NA", "NaN", "nan", "null", "None"];

/// The categories of a categorical column, sorted as scikit-learn's encoders sort them
/// (integers by value, text by code point). The same type as a classification target's
/// classes.
pub type Categories = Classes;

/// What a feature column holds (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ColumnKind {
    /// Numbers (`f32`).
    #[default]
    Numeric,
    /// Categories, stored as their index into `categories`.
    Categorical {
        /// The sorted categories.
        categories: Categories,
    },
    /// True or false, stored as 1 or 0.
    Boolean,
    /// A 0/1 column made by an encoder or a missing-value indicator.
    Indicator,
}

impl ColumnKind {
    /// The categories an encoder sees in this column: a categorical column's, `False` and
    /// `True` for a boolean one, none for numbers.
    pub fn categories(&self) -> Option<Cow<'_, Categories>> {
        match self {
            ColumnKind::Categorical { categories } => Some(Cow::Borrowed(categories)),
            ColumnKind::Boolean => Some(Cow::Owned(Classes::from_parts(
                vec!["False".into(), "True".into()],
                LabelKind::Text,
            ))),
            ColumnKind::Numeric | ColumnKind::Indicator => None,
        }
    }

    /// True for a column an estimator can take as it is (numbers or indicators).
    pub fn is_numeric(&self) -> bool {
        matches!(self, ColumnKind::Numeric | ColumnKind::Indicator)
    }

    /// The kind's name as `dataset show` prints it.
    pub fn type_name(&self) -> &'static str {
        match self {
            ColumnKind::Numeric => "numeric",
            ColumnKind::Categorical { .. } => "categorical",
            ColumnKind::Boolean => "boolean",
            ColumnKind::Indicator => "indicator",
        }
    }

    /// Writes one cell of this kind as text (what a prediction file or an error message
    /// shows): the number, the category, `True`/`False`, or an empty string for missing.
    pub fn format_cell(&self, v: f32) -> String {
        if v.is_nan() {
            return String::new();
        }
        match self {
            ColumnKind::Numeric | ColumnKind::Indicator => v.to_string(),
            ColumnKind::Categorical { categories } => {
                if v >= 0.0 && (v as usize) < categories.len() {
                    categories.labels()[v as usize].clone()
                } else {
                    "<unknown>".into()
                }
            }
            ColumnKind::Boolean => if v != 0.0 { "True" } else { "False" }.into(),
        }
    }

    /// Reads one cell of this kind from text: `None` for a missing cell (one of
    /// `na_values`), the code of a category ([`UNKNOWN_CODE`] for one not listed), 1 or 0
    /// for a boolean. A numeric cell that is not a number is an error message.
    pub fn parse_cell(&self, s: &str, na_values: &[String]) -> std::result::Result<f32, String> {
        if na_values.iter().any(|na| na == s) {
            return Ok(f32::NAN);
        }
        match self {
            ColumnKind::Numeric | ColumnKind::Indicator => {
                let v: f32 = s
                    .trim()
                    .parse()
                    .map_err(|_| format!("'{s}' is not a number"))?;
                if v.is_finite() {
                    Ok(v)
                } else {
                    Err(format!(
                        "'{s}': infinite values are not supported (write missing cells as an \
                         empty cell or NA)"
                    ))
                }
            }
            ColumnKind::Categorical { categories } => {
                Ok(categories.id_of(s).map_or(UNKNOWN_CODE, |c| c as f32))
            }
            ColumnKind::Boolean => parse_bool_cell(s)
                .map(|b| if b { 1.0 } else { 0.0 })
                .ok_or_else(|| format!("'{s}' is not a boolean (true or false)")),
        }
    }
}

/// `true`/`false` as pandas reads them (`True`, `TRUE`, `true`, ...).
pub fn parse_bool_cell(s: &str) -> Option<bool> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// One column of a table's schema: its name, kind and how many cells are missing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ColumnSchema {
    /// The column's name (its header).
    pub name: String,
    /// What it holds.
    #[serde(flatten)]
    pub kind: ColumnKind,
    /// Missing cells.
    pub missing: u64,
}

/// Refuses data an estimator cannot take: categorical or boolean columns (an encoder must
/// come first), and missing cells unless `allow_missing` (trees and forests). The error
/// names the columns and the step that fixes them.
pub fn check_model_input(data: &Dataset, estimator: &str, allow_missing: bool) -> Result<()> {
    check_model_input_kinds(data, estimator, allow_missing, false)
}

/// [`check_model_input`] for an estimator that may also take categorical and boolean
/// columns as they are (`allow_categories`: gradient boosting splits on categories).
pub fn check_model_input_kinds(
    data: &Dataset,
    estimator: &str,
    allow_missing: bool,
    allow_categories: bool,
) -> Result<()> {
    let names = data.feature_names();
    let text: Vec<&str> = (0..data.n_features())
        .filter(|&j| !data.kind(j).is_numeric())
        .map(|j| names[j].as_str())
        .collect();
    if !text.is_empty() && !allow_categories {
        return Err(ModelError::data(
            "training data",
            format!(
                "column(s) {} are categorical; {estimator} takes numbers only: encode them \
                 first, e.g. --model one_hot_encoder+{estimator} (or \
                 ordinal_encoder+{estimator})",
                list(&text)
            ),
        ));
    }
    if allow_missing {
        return Ok(());
    }
    let missing = data.missing_counts();
    let with_missing: Vec<String> = missing
        .iter()
        .enumerate()
        .filter(|(_, &m)| m > 0)
        .map(|(j, m)| format!("{} ({m} missing)", names[j]))
        .collect();
    if !with_missing.is_empty() {
        return Err(ModelError::data(
            "training data",
            format!(
                "column(s) {} have missing cells; {estimator} cannot take them: fill them \
                 first, e.g. --model simple_imputer+{estimator} (trees and forests take \
                 them as they are)",
                with_missing.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Re-expresses the cells of `x`, written in `from` kinds (a dataset's), in `to` kinds (a
/// model's input): a category becomes its code in `to`'s categories, [`UNKNOWN_CODE`] where
/// `to` lacks it; numbers read as categories by their text. Columns of equal kinds are left
/// as they are. `names` name the columns in errors.
pub fn recode(
    x: crate::matrix::Matrix,
    from: &[ColumnKind],
    to: &[ColumnKind],
    names: &[String],
) -> Result<crate::matrix::Matrix> {
    if from == to {
        return Ok(x);
    }
    if from.len() != x.cols() || to.len() != x.cols() {
        return Err(ModelError::Shape(format!(
            "{} and {} column kinds for {} columns",
            from.len(),
            to.len(),
            x.cols()
        )));
    }
    let maps: Vec<Option<Vec<f32>>> = from
        .iter()
        .zip(to)
        .enumerate()
        .map(|(j, (f, t))| {
            if f == t {
                return Ok(None);
            }
            match (f.categories(), t.categories()) {
                (Some(fc), Some(tc)) => Ok(Some(
                    fc.labels()
                        .iter()
                        .map(|l| tc.id_of(l).map_or(UNKNOWN_CODE, |c| c as f32))
                        .collect(),
                )),
                (None, Some(_)) => Ok(Some(Vec::new())), // numbers: looked up by their text
                (Some(_), None) => Err(ModelError::data(
                    format!("column '{}'", names.get(j).map_or("?", String::as_str)),
                    format!(
                        "holds categories, and the model reads it as {}",
                        t.type_name()
                    ),
                )),
                (None, None) => Ok(None),
            }
        })
        .collect::<Result<_>>()?;
    let d = x.cols();
    let (rows, mut data) = (x.rows(), x.to_vec());
    for row in data.chunks_exact_mut(d.max(1)) {
        for (j, v) in row.iter_mut().enumerate() {
            let Some(map) = &maps[j] else { continue };
            if v.is_nan() {
                continue;
            }
            *v = if map.is_empty() {
                let cats = to[j].categories().expect("a categorical target kind");
                cats.id_of(&v.to_string())
                    .map_or(UNKNOWN_CODE, |c| c as f32)
            } else if *v >= 0.0 && (*v as usize) < map.len() {
                map[*v as usize]
            } else {
                UNKNOWN_CODE
            };
        }
    }
    crate::matrix::Matrix::from_vec(rows, d, data)
}

fn list(names: &[&str]) -> String {
    const SHOWN: usize = 8;
    if names.len() <= SHOWN {
        names.join(", ")
    } else {
        format!(
            "{} and {} more",
            names[..SHOWN].join(", "),
            names.len() - SHOWN
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_parse_by_kind() {
        let na: Vec<String> = DEFAULT_NA_VALUES.iter().map(|s| s.to_string()).collect();
        let cat = ColumnKind::Categorical {
            categories: Classes::from_labels(&["b", "a", "c"]),
        };
        assert_eq!(cat.parse_cell("c", &na), Ok(2.0));
        assert_eq!(cat.parse_cell("zz", &na), Ok(UNKNOWN_CODE));
        assert!(cat.parse_cell("NA", &na).unwrap().is_nan());
        assert_eq!(cat.format_cell(1.0), "b");
        assert_eq!(cat.format_cell(UNKNOWN_CODE), "<unknown>");
        assert_eq!(ColumnKind::Numeric.parse_cell(" 2.5", &na), Ok(2.5));
        assert!(ColumnKind::Numeric.parse_cell("", &na).unwrap().is_nan());
        assert!(ColumnKind::Numeric
            .parse_cell("abc", &na)
            .unwrap_err()
            .contains("not a number"));
        assert!(ColumnKind::Numeric.parse_cell("inf", &na).is_err());
        assert_eq!(ColumnKind::Boolean.parse_cell("TRUE", &na), Ok(1.0));
        assert_eq!(ColumnKind::Boolean.parse_cell("false", &na), Ok(0.0));
        assert!(ColumnKind::Boolean.parse_cell("yes", &na).is_err());
        let ints = ColumnKind::Categorical {
            categories: Classes::from_labels(&["10", "9", "2"]),
        };
        assert_eq!(ints.parse_cell("9.0", &na), Ok(1.0));
        assert_eq!(
            ColumnKind::Boolean.categories().unwrap().labels(),
            ["False", "True"]
        );
    }

    #[test]
    fn recode_moves_codes_between_category_lists() {
        let from = ColumnKind::Categorical {
            categories: Classes::from_labels(&["a", "b", "c"]),
        };
        let to = ColumnKind::Categorical {
            categories: Classes::from_labels(&["b", "c", "d"]),
        };
        let x = crate::matrix::Matrix::from_vec(4, 1, vec![0., 1., 2., f32::NAN]).unwrap();
        let y = recode(x, std::slice::from_ref(&from), &[to], &["c".into()])
            .unwrap()
            .to_vec();
        assert_eq!(&y[..3], &[UNKNOWN_CODE, 0., 1.]);
        assert!(y[3].is_nan());
        let ints = ColumnKind::Categorical {
            categories: Classes::from_labels(&["3", "7"]),
        };
        let x = crate::matrix::Matrix::from_vec(2, 1, vec![7., 5.]).unwrap();
        let y = recode(x, &[ColumnKind::Numeric], &[ints], &["n".into()]).unwrap();
        assert_eq!(y.to_vec(), vec![1., UNKNOWN_CODE]);
        let x = crate::matrix::Matrix::from_vec(1, 1, vec![0.]).unwrap();
        let e = recode(x, &[from], &[ColumnKind::Numeric], &["c".into()]).unwrap_err();
        assert!(
            e.to_string().contains("column 'c': holds categories"),
            "{e}"
        );
    }

    #[test]
    fn kinds_serialise_with_a_type_tag() {
        let k = ColumnSchema {
            name: "sex".into(),
            kind: ColumnKind::Categorical {
                categories: Classes::from_labels(&["m", "f"]),
            },
            missing: 2,
        };
        let j = serde_json::to_value(&k).unwrap();
        assert_eq!(j["type"], "categorical");
        assert_eq!(j["categories"]["labels"][0], "f");
        let back: ColumnSchema = serde_json::from_value(j).unwrap();
        assert_eq!(back, k);
        let b = rmp_serde::to_vec_named(&k).unwrap();
        assert_eq!(rmp_serde::from_slice::<ColumnSchema>(&b).unwrap(), k);
    }
}
