//! `meshml dataset put` killed with SIGKILL at points spread over the ingest: on reopen,
//! every dataset is either complete and verified, or absent, and nothing unreferenced
//! stays on disk.

// Tests report their measurements on stdout (shown with --nocapture).
#![allow(clippy::print_stdout)]

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::Instant;

use meshml_models::io::{load_csv, CsvOptions};
use meshml_storage::Store;

fn put(
    dir: &std::path::Path,
    file: &std::path::Path,
    name: &str,
    chunk_rows: usize,
) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_meshml"))
        .args(["dataset", "--data-dir"])
        .arg(dir)
        .arg("put")
        .arg(file)
        .args(["--name", name, "--chunk-rows", &chunk_rows.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("meshml starts")
}

#[test]
fn sigkill_during_ingest_leaves_complete_datasets_or_none() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("big.csv");
    let mut text = String::from("f0,f1,f2,f3,f4,f5,f6,f7,f8,f9,label\n");
    let mut x: u64 = 42;
    for _ in 0..150_000 {
        for _ in 0..10 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            text.push_str(&format!("{},", (x >> 44) as f32 / 64.0));
        }
        text.push_str(["a\n", "b\n", "c\n"][(x >> 61) as usize % 3]);
    }
    std::fs::write(&csv, &text).unwrap();
    let expected = load_csv(&csv, &CsvOptions::default()).unwrap();
    let data = tmp.path().join("store");

    // One complete ingest, timed; later ingests with the same chunk size share its chunks.
    let t = Instant::now();
    assert!(put(&data, &csv, "full", 5000).wait().unwrap().success());
    let full = t.elapsed();

    let runs = 10;
    let (mut interrupted, mut completed) = (0, 0);
    for i in 0..runs {
        // Kill points spread from early in the ingest to just after it would end.
        let delay = full.mul_f64(0.05 + 1.6 * i as f64 / runs as f64);
        let mut child = put(
            &data,
            &csv,
            &format!("k{i}"),
            if i % 2 == 0 { 5000 } else { 7000 },
        );
        std::thread::sleep(delay);
        match child.try_wait().unwrap() {
            Some(_) => completed += 1,
            None => {
                child.kill().unwrap(); // SIGKILL
                interrupted += 1;
            }
        }
        child.wait().unwrap();

        let store = Store::open(&data).unwrap();
        let mut referenced = HashSet::new();
        let names: Vec<String> = store
            .datasets()
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert!(
            names.contains(&"full".to_string()),
            "run {i}: the complete dataset survives"
        );
        for name in &names {
            let m = store.dataset(name).unwrap();
            referenced.extend(m.chunks.iter().map(|c| c.id));
            let d = store.load_dataset(name).unwrap();
            assert_eq!(
                d, expected,
                "run {i}: dataset {name} is complete and verifies"
            );
        }
        let on_disk: HashSet<_> = store.chunks().ids().unwrap().into_iter().collect();
        assert_eq!(
            on_disk, referenced,
            "run {i}: no unreferenced chunks after reopening"
        );
    }
    println!(
        "ingest took {full:?}; {interrupted} runs killed mid-ingest, {completed} completed first"
    );
    assert!(interrupted >= 3, "kills must land inside the ingest");
}
