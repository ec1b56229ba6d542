//! `meshml local ...`: fit and predict on one machine, no mesh.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use meshml_models::dataset::Target;
use meshml_models::estimator::{CLASSIFIERS, CLUSTERERS, REGRESSORS, TRANSFORMERS};
use meshml_models::io::{
    iris, load_csv, load_csv_like, CsvOptions, FeatureReader, TargetKind, IRIS_CSV,
};
use meshml_models::metrics::{classification_report, ConfusionMatrix};
use meshml_models::model_selection::{train_test_split, TestSize};
use meshml_models::{Classifier, Dataset, Estimator, Fit, Matrix, ModelArtifact, Provenance};
use meshml_storage::encoding::ChunkTargets;
use meshml_storage::{Store, TargetSchema};

use crate::cli::{FitArgs, LocalCommand, PredictArgs};
use crate::columns::{column_map, csv_line};
use crate::{w, NodeError};

/// Runs a `local` subcommand.
pub fn run(cmd: LocalCommand, out: &mut dyn Write) -> Result<(), NodeError> {
    match cmd {
        LocalCommand::Fit(a) => fit(&a, out).map(|_| ()),
        LocalCommand::Predict(a) => predict(&a, out),
        LocalCommand::Estimators => estimators(out),
    }
}

/// Parses `NAME=VALUE` settings into the estimator.
pub fn apply_settings(est: &mut Estimator, settings: &[String]) -> Result<(), NodeError> {
    for s in settings {
        let (k, v) = s.split_once('=').ok_or_else(|| {
            NodeError::Usage(format!("--set expects NAME=VALUE (e.g. C=0.5), got '{s}'"))
        })?;
        est.set_param(k.trim(), v.trim())?;
    }
    est.validate()?;
    Ok(())
}

fn load(
    data: Option<&Path>,
    target: Option<&str>,
    regression: bool,
    limits: &crate::cli::CsvLimits,
) -> Result<(Dataset, String), NodeError> {
    let mut opts = limits.apply(CsvOptions::default());
    if let Some(t) = target {
        opts = opts.with_target(t);
    }
    if regression {
        opts = opts.with_kind(TargetKind::Regression);
    }
    match data {
        None if target.is_none() && !regression => Ok((iris(), "iris".to_string())),
        None => Ok((
            meshml_models::io::read_csv(IRIS_CSV.as_bytes(), "iris.csv (bundled)", &opts)?,
            "iris".to_string(),
        )),
        Some(p) => {
            let stem = p
                .file_stem()
                .map_or_else(|| "model".to_string(), |s| s.to_string_lossy().into_owned());
            Ok((load_csv(p, &opts)?, stem))
        }
    }
}

/// The test file of a fixed split, read like the training data and put in its terms: the
/// same feature columns in the same order (taken by name), and for a classifier the
/// training data's class ids (a class the training data lacks is refused; a clusterer's
/// labels, which it does not read, stay as they are).
fn load_test(
    args: &FitArgs,
    path: &Path,
    train: &Dataset,
    clusterer: bool,
) -> Result<Dataset, NodeError> {
    let source = path.display().to_string();
    let mut opts = args.limits.apply(CsvOptions::default());
    opts = opts.with_target(train.target_name());
    if args.regression {
        opts = opts.with_kind(TargetKind::Regression);
    }
    let test = load_csv_like(path, &opts, train)?;
    let cols = crate::columns::column_map(train.feature_names(), test.feature_names(), &source)
        .map_err(|e| NodeError::Usage(e.to_string()))?;
    let x = test.x().select_cols(&cols)?;
    let target = match train.target() {
        Target::Classes { classes, .. } if !clusterer => {
            let (ids, theirs) = test.class_target()?;
            let mut unseen = Vec::new();
            let mapped: Vec<u32> = ids
                .iter()
                .map(|&c| {
                    let label = theirs.label(c);
                    classes.id_of(label).unwrap_or_else(|| {
                        if !unseen.iter().any(|u: &String| u == label) {
                            unseen.push(label.to_string());
                        }
                        0
                    })
                })
                .collect();
            if !unseen.is_empty() {
                return Err(NodeError::Usage(format!(
                    "{source}: class(es) {} are not in the training data (classes: {})",
                    unseen.join(", "),
                    classes.labels().join(", ")
                )));
            }
            Target::Classes {
                ids: mapped,
                classes: classes.clone(),
            }
        }
        _ => test.target().clone(),
    };
    Ok(Dataset::new(
        x,
        target,
        train.feature_names().to_vec(),
        train.target_name(),
    )?
    .with_kinds(train.kinds())?)
}

/// What `meshml local fit` produced.
#[derive(Debug)]
pub struct FitReport {
    /// Accuracy on the test rows (a classifier evaluated on some).
    pub test_accuracy: Option<f64>,
    /// R² on the test rows (a regressor evaluated on some).
    pub test_r2: Option<f64>,
    /// Where the model was saved.
    pub saved: PathBuf,
    /// Warnings the fit raised (a solver stopped at `max_iter`), as printed.
    pub warnings: Vec<String>,
}

/// `meshml local fit`: split (or read the test file), fit, evaluate on the test rows, save
/// an artifact.
pub fn fit(args: &FitArgs, out: &mut dyn Write) -> Result<FitReport, NodeError> {
    let mut est = Estimator::from_name(&args.model)?;
    apply_settings(&mut est, &args.set)?;
    est.seed_unset(args.seed);
    let started = Instant::now();
    let (data, stem) = load(
        args.data.as_deref(),
        args.target.as_deref(),
        args.regression,
        &args.limits,
    )?;
    let source = args.data.as_ref().map_or_else(
        || "iris.csv (bundled)".to_string(),
        |p| p.display().to_string(),
    );
    let regression = args.regression;
    let (train, test, split) = if let Some(path) = &args.test_data {
        let test = load_test(args, path, &data, est.is_clusterer())?;
        (
            data,
            Some(test),
            format!("test rows from {}", path.display()),
        )
    } else if args.test_size == 0.0 {
        (
            data,
            None,
            "every row trains, none tests (--test-size 0)".to_string(),
        )
    } else {
        // A clusterer reads no target: nothing to stratify by (it may be continuous).
        let stratify = if args.no_stratify || regression || est.is_clusterer() {
            None
        } else {
            Some(data.class_target()?.0)
        };
        let (train_idx, test_idx) = train_test_split(
            data.n_samples(),
            TestSize::Fraction(args.test_size),
            args.seed,
            stratify,
        )?;
        let how = if stratify.is_some() {
            "stratified"
        } else {
            "shuffled"
        };
        (
            data.select(&train_idx)?,
            Some(data.select(&test_idx)?),
            format!("{how}, seed {}", args.seed),
        )
    };
    let load_time = started.elapsed();
    let what = match train.classes() {
        Some(c) => format!("{} classes ({})", c.len(), c.labels().join(", ")),
        None => format!("target '{}' (values)", train.target_name()),
    };
    let rows = train.n_samples() + test.as_ref().map_or(0, Dataset::n_samples);
    // A table with text or missing cells says so: which steps it needs depends on it.
    let mut kinds = Vec::new();
    let categorical = (0..train.n_features())
        .filter(|&j| !train.kind(j).is_numeric())
        .count();
    if categorical > 0 {
        kinds.push(format!("{categorical} categorical"));
    }
    let missing: u64 = train.missing_counts().iter().sum::<u64>()
        + test
            .as_ref()
            .map_or(0, |t| t.missing_counts().iter().sum::<u64>());
    if missing > 0 {
        kinds.push(format!("{missing} missing cells"));
    }
    let kinds = if kinds.is_empty() {
        String::new()
    } else {
        format!(" ({})", kinds.join(", "))
    };
    w(
        out,
        format_args!(
            "data:      {source}: {rows} rows, {} features{kinds}, {what}\n",
            train.n_features(),
        ),
    )?;
    let params = serde_json::to_value(&est)
        .ok()
        .and_then(|v| v.get("params").map(ToString::to_string))
        .unwrap_or_default();
    w(out, format_args!("model:     {} {params}\n", est.name()))?;
    w(
        out,
        format_args!(
            "split:     {} train / {} test ({split})\n",
            train.n_samples(),
            test.as_ref().map_or(0, Dataset::n_samples),
        ),
    )?;

    let t = Instant::now();
    let (model, warnings) = meshml_models::warnings::catch(|| est.fit(&train));
    let model = model?;
    let fit_time = t.elapsed();
    w(
        out,
        format_args!(
            "timing:    load {:.1} ms, fit {:.1} ms\n",
            load_time.as_secs_f64() * 1e3,
            fit_time.as_secs_f64() * 1e3
        ),
    )?;
    for warning in &warnings {
        w(out, format_args!("warning:   {warning}\n"))?;
    }
    let mut metrics: Vec<(&str, f64)> = Vec::new();
    let (mut test_accuracy, mut test_r2) = (None, None);
    match (&test, regression) {
        (None, _) => {}
        (Some(test), _) if model.is_clusterer() => {
            let inertia = model.inertia(test.x())?;
            let mut sizes = vec![0usize; model.n_classes()];
            for c in model.predict(test.x())? {
                sizes[c as usize] += 1;
            }
            w(
                out,
                format_args!(
                    "inertia:   {inertia:.4} ({} test rows; scikit-learn's score is minus this)\n\
                     clusters:  {} test rows in each of clusters 0 to {}\n",
                    test.n_samples(),
                    sizes
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    sizes.len() - 1
                ),
            )?;
            metrics.push(("test_inertia", inertia));
        }
        (Some(test), false) => {
            let (y_test, classes) = test.class_target()?;
            let pred = model.predict(test.x())?;
            let acc = meshml_models::metrics::accuracy(y_test, &pred)?;
            let hits = pred.iter().zip(y_test).filter(|(a, b)| a == b).count();
            w(
                out,
                format_args!(
                    "accuracy:  {acc:.4} ({hits}/{} test rows)\n\n",
                    y_test.len()
                ),
            )?;
            let cm = ConfusionMatrix::new(y_test, &pred, classes.labels())?;
            w(
                out,
                format_args!(
                    "confusion matrix (rows: true class, columns: predicted class)\n{cm}\n"
                ),
            )?;
            w(
                out,
                format_args!(
                    "{}\n",
                    classification_report(y_test, &pred, classes.labels())?
                ),
            )?;
            metrics.push(("test_accuracy", acc));
            test_accuracy = Some(acc);
        }
        (Some(test), true) => {
            let y = test.value_target()?;
            let pred = model.predict_values(test.x())?;
            let r2 = meshml_models::metrics::r2_score(&y, &pred)?;
            let mae = meshml_models::metrics::mean_absolute_error(&y, &pred)?;
            w(
                out,
                format_args!(
                    "r2:        {r2:.4} ({} test rows)\nmae:       {mae:.4}\n",
                    y.len()
                ),
            )?;
            metrics.push(("test_r2", r2));
            metrics.push(("test_mae", mae));
            test_r2 = Some(r2);
        }
    }

    let mut art = ModelArtifact::new(
        est,
        model,
        &train,
        Provenance::now(Some(source), train.n_samples(), Some(args.seed)),
    )?;
    for (k, v) in metrics {
        art.metrics.insert(k.into(), v);
    }
    if art.model.is_clusterer() {
        art.metrics
            .insert("train_inertia".into(), art.model.inertia(train.x())?);
    } else if regression {
        let r2 = meshml_models::metrics::r2_score(
            &train.value_target()?,
            &art.model.predict_values(train.x())?,
        )?;
        art.metrics.insert("train_r2".into(), r2);
    } else {
        art.metrics.insert(
            "train_accuracy".into(),
            art.model.score(train.x(), train.class_target()?.0)?,
        );
    }
    let saved = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{stem}.mlm")));
    art.save(&saved)?;
    w(out, format_args!("saved:     {}\n", saved.display()))?;
    Ok(FitReport {
        test_accuracy,
        test_r2,
        saved,
        warnings,
    })
}

/// Rows of a file predicted at a time by `local predict`.
const PREDICT_BATCH_ROWS: usize = 8192;

/// `meshml local predict`: class names (and optionally probabilities) for every row, in
/// input order. Rows are predicted a chunk at a time, so a stored dataset of any size runs
/// in bounded memory. When the input has the model's target column, accuracy and a
/// confusion matrix follow (with `--out`).
pub fn predict(args: &PredictArgs, out: &mut dyn Write) -> Result<(), NodeError> {
    let art = ModelArtifact::load(&args.model)?;
    if matches!(art.model, meshml_models::FittedModel::MultiOutput(_)) {
        return Err(NodeError::Usage(format!(
            "{} is a multi-output model (one prediction per target); serve it from a node: \
             POST /v1/models/NAME/predict",
            args.model.display()
        )));
    }
    let regressor = art.model.is_regressor();
    // A clusterer predicts clusters: the data's target, if it has one, is not its truth.
    let clusterer = art.model.is_clusterer();
    if (regressor || clusterer) && args.proba {
        return Err(NodeError::Usage(format!(
            "{} is a {} ({}): it predicts {}, and --proba is for classifiers",
            args.model.display(),
            if regressor { "regressor" } else { "clusterer" },
            art.kind(),
            if regressor { "values" } else { "clusters" },
        )));
    }
    let k = art.classes.len();
    let mut tally = Tally {
        counts: vec![vec![0usize; k]; k],
        unknown: None,
        rows: 0,
        fit: Residuals::default(),
    };
    let mut has_truth;
    // Written whole or not at all: an error below drops it, and no partial file is left.
    let mut file = match &args.out {
        Some(p) => Some(meshml_client::output::OutputFile::create(p)?),
        None => None,
    };
    let dest: &mut dyn Write = match file.as_mut() {
        Some(f) => f,
        None => &mut *out,
    };
    let mut header = vec![art.prediction_column().to_string()];
    if args.proba {
        header.extend(art.classes.labels().iter().map(|l| format!("p_{l}")));
    }
    write_csv_row(dest, &header)?;
    if let Some(name) = &args.dataset {
        let store = Store::open(crate::dataset::data_dir(args.data_dir.clone())?)?;
        let m = store.dataset(name)?;
        let cols = column_map(&art.feature_names, &m.feature_names, name)
            .map_err(|e| NodeError::Usage(e.to_string()))?;
        if !args.ignore_extra_columns {
            crate::columns::refuse_extra(&art.feature_names, &m.feature_names, name)
                .map_err(|e| NodeError::Usage(e.to_string()))?;
        }
        // Categories in the model's codes (its training data may have had other ones).
        let stored = m.kinds();
        let from: Vec<_> = cols.iter().map(|&j| stored[j].clone()).collect();
        let to = art.feature_kinds();
        let same_target = m.target_name == art.target_name;
        // The model's class id of each stored label, when the dataset has the model's target.
        let label_ids: Option<Vec<Option<u32>>> = match &m.target {
            TargetSchema::Classes { label_table, .. }
                if same_target && !regressor && !clusterer =>
            {
                Some(label_table.iter().map(|l| art.classes.id_of(l)).collect())
            }
            _ => None,
        };
        // A regressor's truth: stored values, or labels that are all numbers.
        let label_values: Option<Vec<f64>> = match &m.target {
            TargetSchema::Classes { label_table, .. } if same_target && regressor => label_table
                .iter()
                .map(|l| l.trim().parse::<f64>().ok())
                .collect(),
            _ => None,
        };
        has_truth = label_ids.is_some()
            || label_values.is_some()
            || (regressor && same_target && matches!(m.target, TargetSchema::Values));
        let layout = m.layout()?;
        for i in 0..m.chunks.len() {
            let c = store.read_chunk(&m, &layout, i)?;
            let x = Matrix::from_vec(c.rows, c.cols, c.features)?.select_cols(&cols)?;
            let x = meshml_models::schema::recode(x, &from, &to, &art.feature_names)?;
            let pred = predict_rows(&art, &x, args.proba, dest)?;
            match (&pred, &c.targets) {
                (Predicted::Classes(p), ChunkTargets::Labels(l)) => {
                    if let Some(ids) = &label_ids {
                        for (row, (&v, &p)) in l.iter().zip(p).enumerate() {
                            tally.add(ids[v as usize], p, tally.rows + row);
                        }
                    }
                }
                (Predicted::Values(p), ChunkTargets::Labels(l)) => {
                    if let Some(vals) = &label_values {
                        for (&v, &p) in l.iter().zip(p) {
                            tally.fit.add(vals[v as usize], f64::from(p));
                        }
                    }
                }
                (Predicted::Values(p), ChunkTargets::Values(t)) if has_truth => {
                    for (&v, &p) in t.iter().zip(p) {
                        tally.fit.add(f64::from(v), f64::from(p));
                    }
                }
                _ => {}
            }
            tally.rows += pred.len();
        }
    } else {
        // A file is read a batch of rows at a time: memory stays bounded whatever its size.
        let limits = args.limits.apply(CsvOptions::default());
        let target = Some(art.target_name.as_str());
        let (input, source): (Box<dyn std::io::Read>, String) = match &args.data {
            None => (
                Box::new(IRIS_CSV.as_bytes()),
                "iris.csv (bundled)".to_string(),
            ),
            Some(p) => (
                Box::new(
                    std::fs::File::open(p)
                        .map_err(|e| NodeError::io(p.display().to_string(), e))?,
                ),
                p.display().to_string(),
            ),
        };
        let mut rows = FeatureReader::new(
            std::io::BufReader::with_capacity(256 << 10, input),
            &source,
            &art.feature_names,
            target,
            &limits,
            args.ignore_extra_columns,
        )?
        .with_kinds(&art.feature_kinds())?;
        has_truth = rows.has_target() && !clusterer;
        while let Some((x, truth)) = rows.next_batch(PREDICT_BATCH_ROWS)? {
            let pred = predict_rows(&art, &x, args.proba, dest)?;
            match (truth, &pred) {
                (Some(t), Predicted::Classes(p)) if has_truth => {
                    for (row, (label, &p)) in t.iter().zip(p).enumerate() {
                        tally.add(art.classes.id_of(label), p, tally.rows + row);
                    }
                }
                (Some(t), Predicted::Values(p)) if has_truth => {
                    let vals: Option<Vec<f64>> =
                        t.iter().map(|l| l.trim().parse::<f64>().ok()).collect();
                    match vals {
                        Some(v) => v
                            .iter()
                            .zip(p)
                            .for_each(|(&v, &p)| tally.fit.add(v, f64::from(p))),
                        None => has_truth = false,
                    }
                }
                _ => {}
            }
            tally.rows += pred.len();
        }
        if rows.rows() == 0 {
            return Err(NodeError::from(meshml_models::ModelError::data(
                source,
                "no data rows after the header line",
            )));
        }
    }
    dest.flush().map_err(|e| NodeError::io("predictions", e))?;
    if let Some(f) = file {
        f.commit()?;
    }
    if let Some(path) = &args.out {
        w(
            out,
            format_args!(
                "predicted: {} rows with {} -> {}\n",
                tally.rows,
                art.kind(),
                path.display()
            ),
        )?;
        if has_truth && regressor {
            w(
                out,
                format_args!(
                    "r2:        {:.4} against column '{}' (mean absolute error {:.4})\n",
                    tally.fit.r2(),
                    art.target_name,
                    tally.fit.mae()
                ),
            )?;
        } else if has_truth {
            match tally.unknown {
                Some(row) => w(
                    out,
                    format_args!(
                    "note:      row {} has a class the model does not know; no accuracy reported\n",
                    row + 1
                ),
                )?,
                None => {
                    let cm = ConfusionMatrix::from_counts(art.classes.labels(), tally.counts)?;
                    w(
                        out,
                        format_args!(
                            "accuracy:  {:.4} against column '{}'\n\n{cm}",
                            cm.accuracy(),
                            art.target_name
                        ),
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// Confusion counts (classifier) or fit figures (regressor) gathered while predicting.
struct Tally {
    counts: Vec<Vec<usize>>,
    /// First row whose true class the model does not know.
    unknown: Option<usize>,
    rows: usize,
    fit: Residuals,
}

impl Tally {
    fn add(&mut self, truth: Option<u32>, pred: u32, row: usize) {
        match truth {
            Some(t) => self.counts[t as usize][pred as usize] += 1,
            None => {
                self.unknown.get_or_insert(row);
            }
        }
    }
}

/// A regressor's R² and mean absolute error, in one pass (the truth's variance by
/// Welford's update).
#[derive(Debug, Default)]
struct Residuals {
    n: f64,
    mean: f64,
    /// Sum of squared deviations of the truth from its mean.
    m2: f64,
    squared_error: f64,
    absolute_error: f64,
}

impl Residuals {
    fn add(&mut self, truth: f64, pred: f64) {
        self.n += 1.0;
        let d = truth - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (truth - self.mean);
        self.squared_error += (truth - pred) * (truth - pred);
        self.absolute_error += (truth - pred).abs();
    }

    /// As `r2_score`: 1 - residual / total sum of squares; for a constant truth, 1 when
    /// predicted exactly, else 0.
    fn r2(&self) -> f64 {
        if self.m2 == 0.0 {
            return if self.squared_error == 0.0 { 1.0 } else { 0.0 };
        }
        1.0 - self.squared_error / self.m2
    }

    fn mae(&self) -> f64 {
        self.absolute_error / self.n.max(1.0)
    }
}

/// One chunk's predictions.
enum Predicted {
    Classes(Vec<u32>),
    Values(Vec<f32>),
}

impl Predicted {
    fn len(&self) -> usize {
        match self {
            Self::Classes(p) => p.len(),
            Self::Values(p) => p.len(),
        }
    }
}

/// Predicts `x`, writing one CSV row per prediction.
fn predict_rows(
    art: &ModelArtifact,
    x: &Matrix,
    proba: bool,
    dest: &mut dyn Write,
) -> Result<Predicted, NodeError> {
    if art.model.is_regressor() {
        let values = art.model.predict_values(x)?;
        for v in &values {
            writeln!(dest, "{v}").map_err(|e| NodeError::io("predictions", e))?;
        }
        return Ok(Predicted::Values(values));
    }
    let pred = art.model.predict(x)?;
    let p = if proba {
        Some(art.model.predict_proba(x)?.to_vec())
    } else {
        None
    };
    let k = art.classes.len();
    let mut fields = Vec::with_capacity(1 + k);
    for (i, &c) in pred.iter().enumerate() {
        fields.clear();
        fields.push(art.classes.label(c).to_string());
        if let Some(p) = &p {
            fields.extend(p[i * k..(i + 1) * k].iter().map(|v| format!("{v:.6}")));
        }
        write_csv_row(dest, &fields)?;
    }
    Ok(Predicted::Classes(pred))
}

fn write_csv_row(dest: &mut dyn Write, fields: &[String]) -> Result<(), NodeError> {
    let mut line = csv_line(fields);
    line.push('\n');
    dest.write_all(line.as_bytes())
        .map_err(|e| NodeError::io("predictions", e))
}

fn estimators(out: &mut dyn Write) -> Result<(), NodeError> {
    for (title, list) in [
        ("classifiers (--model NAME):", CLASSIFIERS),
        (
            "regressors (mesh jobs on a continuous or integer target):",
            REGRESSORS,
        ),
        (
            "clusterers (the target is not read; predict gives each row's cluster):",
            CLUSTERERS,
        ),
    ] {
        w(out, format_args!("{title}\n"))?;
        for (name, what) in list {
            let e = Estimator::from_name(name)?;
            let params = serde_json::to_value(&e)
                .ok()
                .and_then(|v| v.get("params").map(ToString::to_string))
                .unwrap_or_default();
            w(
                out,
                format_args!("  {name:<24} {what}\n  {:<24} defaults {params}\n", ""),
            )?;
        }
    }
    w(
        out,
        format_args!(
            "transformers (in a pipeline: --model standard_scaler+logistic_regression):\n"
        ),
    )?;
    for (name, what) in TRANSFORMERS {
        w(out, format_args!("  {name:<22} {what}\n"))?;
    }
    Ok(())
}
