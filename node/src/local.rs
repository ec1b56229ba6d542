//! `meshml local ...`: fit and predict on one machine, no mesh.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use meshml_models::estimator::{CLASSIFIERS, TRANSFORMERS};
use meshml_models::io::{iris, load_csv, read_features, CsvOptions, IRIS_CSV};
use meshml_models::metrics::{classification_report, ConfusionMatrix};
use meshml_models::model_selection::{train_test_split, TestSize};
use meshml_models::{Classifier, Dataset, Estimator, Fit, ModelArtifact, Provenance};

use crate::cli::{FitArgs, LocalCommand, PredictArgs};
use crate::NodeError;

/// Runs a `local` subcommand.
pub fn run(cmd: LocalCommand, out: &mut dyn Write) -> Result<(), NodeError> {
    match cmd {
        LocalCommand::Fit(a) => fit(&a, out).map(|_| ()),
        LocalCommand::Predict(a) => predict(&a, out),
        LocalCommand::Estimators => estimators(out),
    }
}

fn w(out: &mut dyn Write, text: std::fmt::Arguments<'_>) -> Result<(), NodeError> {
    out.write_fmt(text).map_err(|e| NodeError::io("output", e))
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

fn load(data: Option<&Path>, target: Option<&str>) -> Result<(Dataset, String), NodeError> {
    let mut opts = CsvOptions::default();
    if let Some(t) = target {
        opts = opts.with_target(t);
    }
    match data {
        None if target.is_none() => Ok((iris(), "iris".to_string())),
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

/// What `meshml local fit` produced.
#[derive(Debug)]
pub struct FitReport {
    /// Accuracy on the held-out rows.
    pub test_accuracy: f64,
    /// Where the model was saved.
    pub saved: PathBuf,
}

/// `meshml local fit`: split, fit, evaluate on the held-out rows, save an artifact.
pub fn fit(args: &FitArgs, out: &mut dyn Write) -> Result<FitReport, NodeError> {
    let mut est = Estimator::from_name(&args.model)?;
    apply_settings(&mut est, &args.set)?;
    est.seed_unset(args.seed);
    let started = Instant::now();
    let (data, stem) = load(args.data.as_deref(), args.target.as_deref())?;
    let load_time = started.elapsed();
    let (ids, classes) = data.class_target()?;
    let stratify = (!args.no_stratify).then_some(ids);
    let (train_idx, test_idx) = train_test_split(
        data.n_samples(),
        TestSize::Fraction(args.test_size),
        args.seed,
        stratify,
    )?;
    let train = data.select(&train_idx)?;
    let test = data.select(&test_idx)?;
    let source = args.data.as_ref().map_or_else(
        || "iris.csv (bundled)".to_string(),
        |p| p.display().to_string(),
    );
    w(
        out,
        format_args!(
            "data:      {source}: {} rows, {} features, {} classes ({})\n",
            data.n_samples(),
            data.n_features(),
            classes.len(),
            classes.labels().join(", ")
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
            "split:     {} train / {} test ({}, seed {})\n",
            train.n_samples(),
            test.n_samples(),
            if args.no_stratify {
                "shuffled"
            } else {
                "stratified"
            },
            args.seed
        ),
    )?;

    let t = Instant::now();
    let model = est.fit(&train)?;
    let fit_time = t.elapsed();
    let y_test = test.class_target()?.0;
    let pred = model.predict(test.x())?;
    let acc = meshml_models::metrics::accuracy(y_test, &pred)?;
    let hits = pred.iter().zip(y_test).filter(|(a, b)| a == b).count();
    w(
        out,
        format_args!(
            "timing:    load {:.1} ms, fit {:.1} ms\n",
            load_time.as_secs_f64() * 1e3,
            fit_time.as_secs_f64() * 1e3
        ),
    )?;
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
        format_args!("confusion matrix (rows: true class, columns: predicted class)\n{cm}\n"),
    )?;
    w(
        out,
        format_args!(
            "{}\n",
            classification_report(y_test, &pred, classes.labels())?
        ),
    )?;

    let mut art = ModelArtifact::new(
        est,
        model,
        &train,
        Provenance::now(Some(source), train.n_samples(), Some(args.seed)),
    )?;
    art.metrics.insert("test_accuracy".into(), acc);
    art.metrics.insert(
        "train_accuracy".into(),
        art.model.score(train.x(), train.class_target()?.0)?,
    );
    let saved = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{stem}.mlm")));
    art.save(&saved)?;
    w(out, format_args!("saved:     {}\n", saved.display()))?;
    Ok(FitReport {
        test_accuracy: acc,
        saved,
    })
}

/// `meshml local predict`: class names (and optionally probabilities) for every row.
pub fn predict(args: &PredictArgs, out: &mut dyn Write) -> Result<(), NodeError> {
    let art = ModelArtifact::load(&args.model)?;
    let (x, truth) = match &args.data {
        None => read_features(
            IRIS_CSV.as_bytes(),
            "iris.csv (bundled)",
            &art.feature_names,
            Some(&art.target_name),
        )?,
        Some(p) => {
            let f =
                std::fs::File::open(p).map_err(|e| NodeError::io(p.display().to_string(), e))?;
            read_features(
                f,
                &p.display().to_string(),
                &art.feature_names,
                Some(&art.target_name),
            )?
        }
    };
    let pred = art.model.predict(&x)?;
    let proba = if args.proba {
        Some(art.model.predict_proba(&x)?)
    } else {
        None
    };
    let mut csv = String::with_capacity(pred.len() * 16);
    csv.push_str(&art.target_name);
    if args.proba {
        for l in art.classes.labels() {
            csv.push_str(&format!(",p_{l}"));
        }
    }
    csv.push('\n');
    let k = art.classes.len();
    let pdata = proba.as_ref().map(|p| p.to_vec());
    for (i, &c) in pred.iter().enumerate() {
        let label = art.classes.label(c);
        if label.contains([',', '"', '\n']) {
            csv.push_str(&format!("\"{}\"", label.replace('"', "\"\"")));
        } else {
            csv.push_str(label);
        }
        if let Some(p) = &pdata {
            for v in &p[i * k..(i + 1) * k] {
                csv.push_str(&format!(",{v:.6}"));
            }
        }
        csv.push('\n');
    }
    match &args.out {
        Some(path) => {
            std::fs::write(path, csv).map_err(|e| NodeError::io(path.display().to_string(), e))?;
            w(
                out,
                format_args!(
                    "predicted: {} rows with {} -> {}\n",
                    pred.len(),
                    art.kind(),
                    path.display()
                ),
            )?;
            if let Some(t) = truth {
                report_truth(&art, &t, &pred, out)?;
            }
        }
        None => {
            out.write_all(csv.as_bytes())
                .map_err(|e| NodeError::io("stdout", e))?;
        }
    }
    Ok(())
}

/// With a target column in the input, reports accuracy and the confusion matrix.
fn report_truth(
    art: &ModelArtifact,
    truth: &[String],
    pred: &[u32],
    out: &mut dyn Write,
) -> Result<(), NodeError> {
    let mut ids = Vec::with_capacity(truth.len());
    for (i, t) in truth.iter().enumerate() {
        match art.classes.id_of(t) {
            Some(c) => ids.push(c),
            None => {
                w(out, format_args!(
                    "note:      row {} has class '{t}', unknown to the model; no accuracy reported\n",
                    i + 1
                ))?;
                return Ok(());
            }
        }
    }
    let acc = meshml_models::metrics::accuracy(&ids, pred)?;
    let cm = ConfusionMatrix::new(&ids, pred, art.classes.labels())?;
    w(
        out,
        format_args!(
            "accuracy:  {acc:.4} against column '{}'\n\n{cm}",
            art.target_name
        ),
    )
}

fn estimators(out: &mut dyn Write) -> Result<(), NodeError> {
    w(out, format_args!("classifiers (--model NAME):\n"))?;
    for (name, what) in CLASSIFIERS {
        let e = Estimator::from_name(name)?;
        let params = serde_json::to_value(&e)
            .ok()
            .and_then(|v| v.get("params").map(ToString::to_string))
            .unwrap_or_default();
        w(
            out,
            format_args!("  {name:<22} {what}\n  {:<22} defaults {params}\n", ""),
        )?;
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
