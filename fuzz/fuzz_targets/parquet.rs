//! Fuzzes Parquet ingest (`storage::parquet_rows::ParquetRows`, what `dataset put x.parquet`
//! reads): arbitrary bytes as a file give rows or an error, never a panic, and a hostile
//! footer (lengths, row groups, column chunks) cannot make the reader allocate much.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use meshml_models::io::CsvOptions;
use meshml_storage::parquet_rows::ParquetRows;
use meshml_storage::rows::RowSource;

fuzz_target!(
    init: {
        // libfuzzer-sys aborts on any panic, even one caught: ingest catches the Parquet
        // crate's panics on corrupt pages (an error for the user), so only a panic that
        // escapes the target counts (libfuzzer-sys still aborts on that one).
        drop(std::panic::take_hook());
    },
    |data: &[u8]| {
    let dir = std::env::temp_dir();
    let mut file = tempfile::Builder::new()
        .suffix(".parquet")
        .tempfile_in(dir)
        .expect("a temporary file");
    file.write_all(data).expect("written");
    let opts = CsvOptions {
        max_columns: 64,
        ..CsvOptions::default()
    };
    let Ok(mut rows) = ParquetRows::open(file.path(), "fuzz.parquet", &opts) else {
        return;
    };
    let n = rows.n_features();
    let mut x = Vec::new();
    // At most a few thousand rows: a valid file's rows are all read, a claim of billions
    // is not followed to the end.
    for _ in 0..4096 {
        x.clear();
        match rows.next_into(&mut x) {
            Ok(Some(_)) => assert_eq!(x.len(), n),
            Ok(None) | Err(_) => break,
        }
    }
    }
);
