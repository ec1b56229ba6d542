//! Which columns a step acts on: by default the columns of its kinds (scikit-learn's
//! `make_column_selector` by dtype), or the columns named in `<step>__columns=a,b`.

use crate::dataset::Dataset;
use crate::error::{ModelError, Result};
use crate::matrix::Matrix;
use crate::schema::ColumnKind;

/// Parses a `columns` parameter: names separated by commas; `auto` (or empty) means the
/// step's default columns.
pub(crate) fn parse_columns(value: &str) -> Option<Vec<String>> {
    let v = value.trim();
    if v.is_empty() || v == "auto" || v == "None" {
        return None;
    }
    Some(
        v.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

/// The columns `step` acts on: the `named` ones (each must exist and be a kind `accepts`
/// takes, else an error naming it) or every column whose kind `default` picks.
pub(crate) fn select(
    data: &Dataset,
    named: Option<&[String]>,
    step: &'static str,
    default: impl Fn(&ColumnKind) -> bool,
    accepts: impl Fn(&ColumnKind) -> bool,
    takes: &str,
) -> Result<Vec<usize>> {
    let names = data.feature_names();
    let Some(named) = named else {
        return Ok((0..data.n_features())
            .filter(|&j| default(data.kind(j)))
            .collect());
    };
    let mut out = Vec::with_capacity(named.len());
    for n in named {
        let Some(j) = names.iter().position(|h| h == n) else {
            return Err(ModelError::param(
                step,
                "columns",
                format!("'{n}' is not a column; columns are: {}", names.join(", ")),
            ));
        };
        if !accepts(data.kind(j)) {
            return Err(ModelError::param(
                step,
                "columns",
                format!(
                    "column '{n}' is {}; {step} takes {takes}",
                    data.kind(j).type_name()
                ),
            ));
        }
        if !out.contains(&j) {
            out.push(j);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Checks that `x` has the `expected` columns a fitted step was fitted on (missing cells
/// and category codes are the step's business).
pub(crate) fn check_width(x: &Matrix, expected: usize, step: &str) -> Result<()> {
    if x.cols() != expected {
        return Err(ModelError::Shape(format!(
            "{step} was fitted on {expected} features, got {}",
            x.cols()
        )));
    }
    Ok(())
}
