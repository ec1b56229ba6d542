//! A model's feature columns matched to a dataset's, and predictions written as CSV lines:
//! shared by `meshml local predict` and batch prediction on the mesh, which write the same
//! file.

/// Appends a CSV field, quoted when it must be.
pub fn push_csv_field(line: &mut String, f: &str) {
    if f.contains([',', '"', '\n']) {
        line.push('"');
        line.push_str(&f.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(f);
    }
}

/// A CSV line (without its newline), fields quoted when they must be.
pub fn csv_line(fields: &[String]) -> String {
    let mut line = String::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        push_csv_field(&mut line, f);
    }
    line
}

/// A dataset that lacks some of a model's feature columns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "dataset '{dataset}' lacks the model's feature column(s) {}; it has: {}",
    missing.join(", "),
    have.join(", ")
)]
pub struct MissingColumns {
    /// The dataset.
    pub dataset: String,
    /// The model's features it lacks.
    pub missing: Vec<String>,
    /// Its columns.
    pub have: Vec<String>,
}

/// A dataset with columns a model was not fitted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "dataset '{dataset}' has column(s) {} that the model was not fitted on (it reads {}); \
     to predict anyway, drop them with --ignore-extra-columns",
    extra.join(", "),
    model.join(", ")
)]
pub struct ExtraColumns {
    /// The dataset.
    pub dataset: String,
    /// Its columns the model does not read.
    pub extra: Vec<String>,
    /// The model's features.
    pub model: Vec<String>,
}

/// Refuses a dataset whose feature columns include some the model was not fitted on, as
/// scikit-learn refuses feature names that differ from those seen in fit.
pub fn refuse_extra(model: &[String], data: &[String], dataset: &str) -> Result<(), ExtraColumns> {
    let extra: Vec<String> = data
        .iter()
        .filter(|d| !model.contains(d))
        .cloned()
        .collect();
    if extra.is_empty() {
        return Ok(());
    }
    Err(ExtraColumns {
        dataset: dataset.to_string(),
        extra,
        model: model.to_vec(),
    })
}

/// The dataset column of each of the model's features, or which are missing.
pub fn column_map(
    model: &[String],
    data: &[String],
    dataset: &str,
) -> Result<Vec<usize>, MissingColumns> {
    let missing: Vec<String> = model
        .iter()
        .filter(|f| !data.contains(f))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(MissingColumns {
            dataset: dataset.to_string(),
            missing,
            have: data.to_vec(),
        });
    }
    Ok(model
        .iter()
        .map(|f| data.iter().position(|d| d == f).expect("checked"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_the_model_was_not_fitted_on_are_named() {
        let model = ["a", "b"].map(String::from);
        assert!(refuse_extra(&model, &["b", "a"].map(String::from), "d").is_ok());
        let e = refuse_extra(&model, &["a", "q", "b", "r"].map(String::from), "d").unwrap_err();
        assert_eq!(
            e.to_string(),
            "dataset 'd' has column(s) q, r that the model was not fitted on (it reads a, b); \
             to predict anyway, drop them with --ignore-extra-columns"
        );
    }

    #[test]
    fn features_are_found_by_name_and_fields_quoted() {
        let data = ["b", "a", "c"].map(String::from);
        assert_eq!(
            column_map(&["a".into(), "c".into()], &data, "d").unwrap(),
            vec![1, 2]
        );
        assert!(column_map(&["z".into(), "y".into()], &data, "d")
            .unwrap_err()
            .to_string()
            .contains("dataset 'd' lacks the model's feature column(s) z, y; it has: b, a, c"));
        let mut line = String::new();
        push_csv_field(&mut line, "a,b");
        line.push(',');
        push_csv_field(&mut line, "plain");
        push_csv_field(&mut line, "say \"hi\"");
        assert_eq!(line, "\"a,b\",plain\"say \"\"hi\"\"\"");
        assert_eq!(
            csv_line(&["p_a,b".into(), "digit".into()]),
            "\"p_a,b\",digit"
        );
    }
}
