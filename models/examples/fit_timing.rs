//! Times one estimator's fit on a train CSV and scores it on a test CSV; prints one JSON
//! line per repetition in the format of the peer-benchmark harness
//! (`bench`, `tool`, `dataset`, `fit_s`, `accuracy`).
//!
//! ```text
//! cargo run --release -p meshml-models --example fit_timing -- \
//!     TRAIN.csv TEST.csv DATASET_NAME [MODEL] [REPEATS] [NAME=VALUE ...]
//! ```

use std::time::Instant;

use meshml_models::io::{load_csv, CsvOptions};
use meshml_models::{Classifier, Estimator, Fit};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One thread per fit, like scikit-learn with its BLAS pinned to one thread.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        return Err(
            "usage: fit_timing TRAIN.csv TEST.csv DATASET [MODEL] [REPEATS] [NAME=VALUE ...]"
                .into(),
        );
    }
    let model = args.get(3).map_or("logistic_regression", String::as_str);
    let repeats: usize = args.get(4).map_or(Ok(1), |r| r.parse())?;
    let mut est = Estimator::from_name(model)?;
    for kv in args.iter().skip(5) {
        let (k, v) = kv.split_once('=').ok_or("settings are NAME=VALUE")?;
        est.set_param(k, v)?;
    }
    let t = Instant::now();
    let train = load_csv(&args[0], &CsvOptions::default())?;
    let test = load_csv(&args[1], &CsvOptions::default())?;
    let load_s = t.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    for _ in 0..repeats {
        let t = Instant::now();
        let fitted = est.fit(&train)?;
        let fit_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let pred = fitted.predict(test.x())?;
        let predict_s = t.elapsed().as_secs_f64();
        let acc = meshml_models::metrics::accuracy(test.class_target()?.0, &pred)?;
        let n_iter = match &fitted {
            meshml_models::FittedModel::LogisticRegression(m) => m.n_iter() as i64,
            meshml_models::FittedModel::HistGradientBoosting(m) => m.n_iter() as i64,
            _ => -1,
        };
        use std::io::Write;
        writeln!(
            out,
            "{{\"bench\":\"fit\",\"tool\":\"meshml\",\"dataset\":\"{}\",\"model\":\"{}\",\"fit_s\":{fit_s:.6},\"predict_s\":{predict_s:.6},\"accuracy\":{acc:.6},\"n_iter\":{n_iter},\"load_s\":{load_s:.3}}}",
            args[2],
            est.name()
        )?;
    }
    Ok(())
}
