//! LogisticRegression fit time (criterion).
//!
//! - `lr_fit/digits`: the bundled digits data (1797 x 64), C=1, max_iter=1000.
//! - `lr_fit/synth200k`: the 160k x 50 training part of ../shared/bench's synthetic set,
//!   read from `$PEERS_DATA/synth200k_train.csv` (default /tmp/peers/data); skipped with a
//!   message when the file is absent (generate it with ../shared/bench/make_data.py).
//!
//! `cargo bench -p meshml-models --bench logistic`. One thread (RAYON_NUM_THREADS=1), as
//! scikit-learn's single-threaded baseline. The side-by-side comparison with scikit-learn
//! is `tools/bench_lr.sh`; figures are in docs/BENCHMARKS.md.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use meshml_models::io::{load_csv, CsvOptions};
use meshml_models::linear::LogisticRegressionParams;
use meshml_models::Fit;

fn lr_fit(c: &mut Criterion) {
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let params = LogisticRegressionParams::default().with_max_iter(1000);
    let mut group = c.benchmark_group("lr_fit");

    let digits = load_csv(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../data/digits.csv"),
        &CsvOptions::default(),
    )
    .expect("bundled digits");
    group.bench_function("digits", |b| b.iter(|| params.fit(&digits).expect("fit")));

    let dir = std::env::var_os("PEERS_DATA")
        .map_or_else(|| PathBuf::from("/tmp/peers/data"), PathBuf::from);
    let synth = dir.join("synth200k_train.csv");
    if synth.exists() {
        let data = load_csv(&synth, &CsvOptions::default()).expect("synth200k loads");
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(20));
        group.bench_function("synth200k", |b| b.iter(|| params.fit(&data).expect("fit")));
    } else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "lr_fit/synth200k skipped: {} not found (run ../shared/bench/make_data.py)",
            synth.display()
        );
    }
    group.finish();
}

criterion_group!(benches, lr_fit);
criterion_main!(benches);
