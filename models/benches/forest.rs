//! Random-forest prediction time (criterion): the walk behind batch prediction.
//!
//! - `forest_predict/synth200k`: 10 full-depth trees fitted on the 160k x 50 training part
//!   of ../shared/bench's synthetic set (`$PEERS_DATA/synth200k_train.csv`, default
//!   /tmp/peers/data), `predict_proba` of its 40k-row test part. Skipped with a message
//!   when the files are absent (generate them with ../shared/bench/make_data.py).
//! - `forest_predict/digits`: 100 trees on the bundled digits, predicting all 1797 rows.
//!
//! `cargo bench -p meshml-models --bench forest`. One thread, as scikit-learn's
//! single-process baseline (`bench_predict.py --tool sklearn`, n_jobs=1). The 2M-row batch
//! comparison is `tools/bench_batch.sh`; figures are in docs/BENCHMARKS.md.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meshml_models::ensemble::RandomForestParams;
use meshml_models::io::{load_csv, CsvOptions};
use meshml_models::{Classifier, Fit, Params};

fn forest_predict(c: &mut Criterion) {
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let mut group = c.benchmark_group("forest_predict");

    let digits = load_csv(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../data/digits.csv"),
        &CsvOptions::default(),
    )
    .expect("bundled digits");
    let mut p = RandomForestParams::default();
    p.set_param("random_state", "0").expect("param");
    let forest = p.fit(&digits).expect("fit");
    group.throughput(Throughput::Elements(digits.n_samples() as u64));
    group.bench_function("digits", |b| {
        b.iter(|| forest.predict_proba(digits.x()).expect("predict"))
    });

    let dir = std::env::var_os("PEERS_DATA")
        .map_or_else(|| PathBuf::from("/tmp/peers/data"), PathBuf::from);
    let (train, test) = (
        dir.join("synth200k_train.csv"),
        dir.join("synth200k_test.csv"),
    );
    if train.exists() && test.exists() {
        let train = load_csv(&train, &CsvOptions::default()).expect("synth200k train loads");
        let test = load_csv(&test, &CsvOptions::default()).expect("synth200k test loads");
        p.set_param("n_estimators", "10").expect("param");
        let forest = p.fit(&train).expect("fit");
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(15))
            .throughput(Throughput::Elements(test.n_samples() as u64));
        group.bench_function("synth200k", |b| {
            b.iter(|| forest.predict_proba(test.x()).expect("predict"))
        });
    } else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "forest_predict/synth200k skipped: synth200k_train.csv/test.csv not in {}",
            dir.display()
        );
    }
    group.finish();
}

criterion_group!(benches, forest_predict);
criterion_main!(benches);
