//! Fuzzes the CSV reader (`models::io::read_csv`, what `local fit`, `local predict` and
//! `dataset put` read files with): arbitrary bytes give a dataset or an error naming the
//! input, never a panic, and a small cap on records and columns holds whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshml_models::io::{read_csv, CsvOptions, TargetKind};

fuzz_target!(|data: &[u8]| {
    for kind in [TargetKind::Classification, TargetKind::Regression] {
        let opts = CsvOptions {
            max_line_bytes: 1024,
            max_columns: 32,
            ..CsvOptions::default().with_kind(kind)
        };
        match read_csv(data, "fuzz.csv", &opts) {
            Ok(d) => {
                assert!(d.n_features() >= 1 && d.n_features() <= 31);
                assert_eq!(d.x().data().len(), d.n_samples() * d.n_features());
                assert_eq!(d.feature_names().len(), d.n_features());
            }
            Err(e) => assert!(e.to_string().contains("fuzz.csv"), "{e}"),
        }
    }
});
