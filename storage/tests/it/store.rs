//! The store on real sled files in temporary directories.

use std::path::{Path, PathBuf};

use meshml_models::io::{load_csv, read_csv, CsvOptions, TargetKind};
use meshml_storage::export::export_csv;
use meshml_storage::ingest::{ingest_csv, ingest_csv_file, IngestOptions};
use meshml_storage::{Backend, StorageError, Store, StoreOptions};

fn data(name: &str) -> PathBuf {
    PathBuf::from(format!("{}/../data/{name}", env!("CARGO_MANIFEST_DIR")))
}

fn opts(chunk_rows: usize) -> IngestOptions {
    IngestOptions {
        chunk_rows,
        ..IngestOptions::default()
    }
}

fn put(
    store: &Store,
    file: &str,
    name: &str,
    chunk_rows: usize,
) -> meshml_storage::DatasetManifest {
    ingest_csv_file(store, &data(file), name, &opts(chunk_rows), &mut |_| {}).unwrap()
}

#[test]
fn ingest_then_load_equals_the_csv_exactly() {
    for backend in [Backend::Files, Backend::Sled] {
        round_trip(backend);
    }
}

fn round_trip(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        StoreOptions {
            backend,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    for (file, chunk_rows, chunks) in [("iris.csv", 7, 22), ("digits.csv", 500, 4)] {
        let name = file.trim_end_matches(".csv");
        let m = put(&store, file, name, chunk_rows);
        assert_eq!(m.chunks.len(), chunks);
        let original = load_csv(data(file), &CsvOptions::default()).unwrap();
        assert_eq!(m.rows as usize, original.n_samples());
        assert_eq!(store.load_dataset(name).unwrap(), original, "{file}");
    }
    // Survives closing and reopening (with the backend it was created with).
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.backend(), backend);
    let names: Vec<String> = store
        .datasets()
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["digits", "iris"]);
    assert_eq!(
        store.load_dataset("iris").unwrap(),
        load_csv(data("iris.csv"), &CsvOptions::default()).unwrap()
    );
}

#[test]
fn export_round_trips_values_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    put(&store, "digits.csv", "digits", 333);
    let mut out = Vec::new();
    export_csv(&store, "digits", &mut out).unwrap();
    // Integer-valued features print exactly as the source wrote them.
    assert_eq!(
        String::from_utf8(out).unwrap(),
        std::fs::read_to_string(data("digits.csv")).unwrap()
    );

    put(&store, "iris.csv", "iris", 40);
    let mut out = Vec::new();
    export_csv(&store, "iris", &mut out).unwrap();
    let back = read_csv(out.as_slice(), "export", &CsvOptions::default()).unwrap();
    assert_eq!(
        back,
        load_csv(data("iris.csv"), &CsvOptions::default()).unwrap()
    );
    assert!(String::from_utf8(out).unwrap().starts_with(
        "sepal_length,sepal_width,petal_length,petal_width,species\n5.1,3.5,1.4,0.2,setosa\n"
    ));
}

#[test]
fn shared_chunks_stay_until_the_last_dataset_goes() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let a = put(&store, "iris.csv", "a", 50);
    let b = put(&store, "iris.csv", "b", 50);
    assert_eq!(a.chunks, b.chunks, "same rows, same chunk ids");
    let c = put(&store, "digits.csv", "c", 1000);
    assert_eq!(store.chunks().ids().unwrap().len(), 3 + 2);

    let r = store.remove_dataset("a").unwrap();
    assert_eq!((r.chunks_removed, r.chunks_shared), (0, 3));
    assert!(store.load_dataset("b").is_ok());
    let r = store.remove_dataset("b").unwrap();
    assert_eq!((r.chunks_removed, r.chunks_shared), (3, 0));
    let left = store.chunks().ids().unwrap();
    assert_eq!(left.len(), 2);
    assert!(c.chunks.iter().all(|r| left.contains(&r.id)));
    assert!(matches!(
        store.remove_dataset("b"),
        Err(StorageError::DatasetNotFound(_))
    ));
}

#[test]
fn pinned_chunks_survive_reopening_and_go_with_their_last_owner() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y, shared);
    {
        let store = Store::open(dir.path()).unwrap();
        let m = put(&store, "iris.csv", "local", 50);
        x = store
            .put_pinned("dataset.remote", b"replica bytes")
            .unwrap();
        y = store.put_pinned("job.7", b"task output").unwrap();
        shared = m.chunks[0].id;
        store.pin("job.7", &[(shared, m.chunks[0].bytes)]).unwrap();
        assert_eq!(store.pinned("job.7").unwrap().len(), 2);
        assert!(matches!(
            store.pin(
                "job.7",
                &[(meshml_protocol::ChunkId::from_bytes([9; 32]), 1)]
            ),
            Err(StorageError::Missing(_))
        ));
        assert!(store.pin("bad/owner", &[(x, 1)]).is_err());
    }
    // Garbage collection at open keeps pinned chunks.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.chunk(&x).unwrap(), b"replica bytes");
    assert_eq!(store.chunk(&y).unwrap(), b"task output");
    // Unpinning removes what nothing else keeps: the output goes, the dataset's chunk stays.
    assert_eq!(store.unpin("job.7").unwrap(), 1);
    assert!(!store.has_chunk(&y).unwrap());
    assert!(store.has_chunk(&shared).unwrap());
    assert!(store.load_dataset("local").is_ok());
    assert!(store.pinned("job.7").unwrap().is_empty());
    assert!(store.has_chunk(&x).unwrap());
}

#[test]
fn a_failed_ingest_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // A regression target is read while the chunks are written: the bad value on the last
    // line fails the ingest after 50 chunks.
    let mut csv = String::from("a,b,y\n");
    for i in 0..5000 {
        csv.push_str(&format!("{i},{},{}\n", i * 2, i % 3));
    }
    csv.push_str("1,2,oops\n");
    let mut o = opts(100);
    o.csv = o.csv.with_kind(TargetKind::Regression);
    let e = ingest_csv(&store, csv.as_bytes(), "bad.csv", "bad", &o, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert_eq!(e, "bad.csv:5002, column 'y' (3): 'oops' is not a number");
    assert!(!store.has_dataset("bad").unwrap());
    assert!(
        store.chunks().ids().unwrap().is_empty(),
        "50 chunks were written, then dropped"
    );

    // A continuous target is only recognised at the end: still nothing left behind.
    let e = ingest_csv(
        &store,
        "a,y\n1,0\n2,1\n3,2.5\n".as_bytes(),
        "t.csv",
        "t",
        &opts(1),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("t.csv:4, column 'y' (2): target value '2.5'"),
        "{e}"
    );
    assert!(store.chunks().ids().unwrap().is_empty());
    assert!(store.datasets().unwrap().is_empty());
}

#[test]
fn names_and_duplicates_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    put(&store, "iris.csv", "iris", 100);
    let e =
        ingest_csv_file(&store, &data("iris.csv"), "iris", &opts(100), &mut |_| {}).unwrap_err();
    assert_eq!(
        e.to_string(),
        "a dataset named 'iris' exists already; remove it first (meshml dataset rm iris)"
    );
    for bad in ["", "../x", "a b", ".hidden"] {
        let e =
            ingest_csv_file(&store, &data("iris.csv"), bad, &opts(100), &mut |_| {}).unwrap_err();
        assert!(matches!(e, StorageError::InvalidName(_)), "{bad}: {e}");
    }
    assert!(ingest_csv_file(&store, &data("iris.csv"), "z", &opts(0), &mut |_| {}).is_err());
}

#[test]
fn regression_targets_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let o = IngestOptions {
        chunk_rows: 2,
        csv: CsvOptions::default()
            .with_kind(TargetKind::Regression)
            .with_target("price"),
        source: None,
    };
    let csv = "price,size\n1.5,10\n2.25,20\n3,30\n";
    ingest_csv(&store, csv.as_bytes(), "r.csv", "r", &o, &mut |_| {}).unwrap();
    let d = store.load_dataset("r").unwrap();
    assert_eq!(d, read_csv(csv.as_bytes(), "r.csv", &o.csv).unwrap());
    let mut out = Vec::new();
    export_csv(&store, "r", &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "size,price\n10,1.5\n20,2.25\n30,3\n"
    );
}

#[test]
fn parquet_exports_read_back_as_the_same_dataset() {
    use meshml_storage::export::{export, TableFormat};
    use meshml_storage::ingest::ingest_file;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Classes: labels as strings, one row group per chunk (4 of them).
    put(&store, "iris.csv", "iris", 40);
    let pq = dir.path().join("iris.parquet");
    export(
        &store,
        "iris",
        TableFormat::Parquet,
        std::fs::File::create(&pq).unwrap(),
    )
    .unwrap();
    let opts = IngestOptions {
        chunk_rows: 64,
        csv: CsvOptions::default(),
        source: None,
    };
    let m = ingest_file(&store, &pq, "back", &opts, &mut |_| {}).unwrap();
    assert_eq!(m.rows, 150);
    assert_eq!(
        store.load_dataset("back").unwrap(),
        store.load_dataset("iris").unwrap()
    );
    let (mut a, mut b) = (Vec::new(), Vec::new());
    export(&store, "iris", TableFormat::Csv, &mut a).unwrap();
    export(&store, "back", TableFormat::Csv, &mut b).unwrap();
    assert_eq!(a, b);

    // Real values: the target column stays a float column.
    let o = IngestOptions {
        chunk_rows: 2,
        csv: CsvOptions::default()
            .with_kind(TargetKind::Regression)
            .with_target("price"),
        source: None,
    };
    let csv = "price,size\n1.5,10\n2.25,20\n3,30\n";
    ingest_csv(&store, csv.as_bytes(), "r.csv", "r", &o, &mut |_| {}).unwrap();
    let rq = dir.path().join("r.parquet");
    export(
        &store,
        "r",
        TableFormat::Parquet,
        std::fs::File::create(&rq).unwrap(),
    )
    .unwrap();
    ingest_file(&store, &rq, "r2", &o, &mut |_| {}).unwrap();
    let mut out = Vec::new();
    export(&store, "r2", TableFormat::Csv, &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "size,price\n10,1.5\n20,2.25\n30,3\n"
    );
}

#[test]
fn model_artifacts_are_versioned() {
    use meshml_models::{Estimator, Fit, ModelArtifact, Provenance};
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let iris = meshml_models::io::iris();
    let make = |name: &str| {
        let e = Estimator::from_name(name).unwrap();
        let m = e.fit(&iris).unwrap();
        ModelArtifact::new(e, m, &iris, Provenance::now(None, 150, None)).unwrap()
    };
    let (nb, lr) = (make("gaussian_nb"), make("logistic_regression"));
    assert_eq!(store.put_model("iris", &nb).unwrap(), 1);
    assert_eq!(store.put_model("iris", &lr).unwrap(), 2);
    let (e, latest) = store.model("iris", None).unwrap();
    assert_eq!(
        (e.version, latest.kind().as_str()),
        (2, "logistic_regression")
    );
    assert_eq!(store.model("iris", Some(1)).unwrap().1, nb);
    assert!(matches!(
        store.model("iris", Some(3)),
        Err(StorageError::ModelNotFound(_))
    ));
    assert_eq!(store.remove_model("iris", Some(2)).unwrap(), 1);
    assert_eq!(store.model("iris", None).unwrap().0.version, 1);
    assert_eq!(store.remove_model("iris", None).unwrap(), 1);
    assert!(store.models().unwrap().is_empty());
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _store = Store::open(dir.path()).unwrap();
    let e = Store::open(dir.path()).unwrap_err();
    assert!(matches!(e, StorageError::Locked(_)), "{e}");
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_flipped_byte_on_disk_is_a_clear_corruption_error() {
    for backend in [Backend::Files, Backend::Sled] {
        flipped_byte(backend);
    }
}

fn flipped_byte(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    // A distinctive feature value, so its bytes can be found in sled's files.
    let marker = 12345.678f32.to_le_bytes();
    let mut csv = String::from("a,b,y\n");
    for i in 0..2000 {
        csv.push_str(&format!("12345.678,{i},{}\n", i % 2));
    }
    {
        let store = Store::open(dir.path()).unwrap();
        ingest_csv(
            &store,
            csv.as_bytes(),
            "m.csv",
            "m",
            &opts(2000),
            &mut |_| {},
        )
        .unwrap();
    }
    let mut flipped = false;
    for f in files(dir.path()) {
        let mut bytes = std::fs::read(&f).unwrap();
        if let Some(pos) = bytes.windows(4).position(|w| w == marker) {
            bytes[pos + 1] ^= 0x5a;
            std::fs::write(&f, bytes).unwrap();
            flipped = true;
            break;
        }
    }
    assert!(flipped, "the chunk's bytes are somewhere in the files");
    // Either sled notices on open (its own checksums) or our hash check notices on read;
    // both must say "corrupt", and never hand back wrong rows.
    let outcome = Store::open(dir.path()).and_then(|s| s.load_dataset("m"));
    match outcome {
        Ok(d) => panic!(
            "{backend:?}: corrupted data was returned: {} rows",
            d.n_samples()
        ),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("corrupt"), "{backend:?}: {msg}");
        }
    }
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
}

#[test]
fn parquet_ingest_equals_the_csv() {
    use meshml_storage::ingest::ingest_file;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Written by tools/make_fixtures.py: iris as float64 columns and a string target, in
    // four row groups.
    let m = ingest_file(
        &store,
        &fixture("iris.parquet"),
        "iris",
        &opts(64),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!((m.rows, m.chunks.len()), (150, 3));
    assert_eq!(
        store.load_dataset("iris").unwrap(),
        load_csv(data("iris.csv"), &CsvOptions::default()).unwrap()
    );

    // A null is a missing cell (NaN), counted in the manifest.
    let m = ingest_file(
        &store,
        &fixture("iris_null.parquet"),
        "n",
        &opts(64),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(m.columns[3].missing, 1);
    assert!(store.load_dataset("n").unwrap().x().row(76)[3].is_nan());
    // Numbers read as categories: past the cap, the ingest fails naming the column and
    // leaves nothing behind.
    let o = IngestOptions {
        chunk_rows: 64,
        csv: CsvOptions {
            categorical: vec!["sepal_length".into()],
            max_categories: 10,
            ..CsvOptions::default()
        },
        source: None,
    };
    let before = store.chunks().ids().unwrap().len();
    let e = ingest_file(&store, &fixture("iris.parquet"), "c", &o, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("column 'sepal_length': has more than 10 distinct categories"),
        "{e}"
    );
    assert!(!store.has_dataset("c").unwrap());
    assert_eq!(
        store.chunks().ids().unwrap().len(),
        before,
        "the failed ingest's chunks are gone"
    );

    let o = IngestOptions {
        chunk_rows: 10,
        csv: CsvOptions::default().with_target("nope"),
        source: None,
    };
    let e = ingest_file(&store, &fixture("iris.parquet"), "x", &o, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("target column 'nope' is not in the file"), "{e}");
    std::fs::write(dir.path().join("fake.parquet"), b"not parquet at all").unwrap();
    let e = ingest_file(
        &store,
        &dir.path().join("fake.parquet"),
        "y",
        &opts(10),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("not a Parquet file (no PAR1 magic at its end)"),
        "{e}"
    );
}

#[test]
fn a_hostile_parquet_footer_is_refused_before_it_is_read() {
    use meshml_storage::ingest::ingest_file;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let opts = |cols: usize| IngestOptions {
        chunk_rows: 10,
        csv: CsvOptions {
            max_columns: cols,
            ..CsvOptions::default()
        },
        source: None,
    };
    let refused = |path: &Path, cols: usize| {
        ingest_file(&store, path, "x", &opts(cols), &mut |_| {})
            .unwrap_err()
            .to_string()
    };
    // A sparse 3 GiB file whose footer claims 2.9 GiB of metadata: refused from its last
    // 8 bytes, without reading (or allocating) the claim.
    let big = dir.path().join("big.parquet");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::create(&big).unwrap();
        f.write_all(b"PAR1").unwrap();
        f.seek(SeekFrom::Start((3u64 << 30) - 8)).unwrap();
        f.write_all(&(2_900_000_000u32).to_le_bytes()).unwrap();
        f.write_all(b"PAR1").unwrap();
    }
    let e = refused(&big, 65_536);
    assert!(
        e.contains("the Parquet footer is 2900000000 bytes; at most 67108864 are read"),
        "{e}"
    );
    // A footer longer than the file.
    let short = dir.path().join("short.parquet");
    let mut bytes = b"PAR1xxxx".to_vec();
    bytes.extend_from_slice(&1000u32.to_le_bytes());
    bytes.extend_from_slice(b"PAR1");
    std::fs::write(&short, &bytes).unwrap();
    let e = refused(&short, 65_536);
    assert!(
        e.contains("the Parquet footer claims 1000 bytes of metadata in a file of 16"),
        "{e}"
    );
    // More columns than --max-columns.
    let e = refused(&fixture("iris.parquet"), 3);
    assert!(
        e.contains("the file has 5 columns; at most 3 are read"),
        "{e}"
    );
    // Found by the Parquet fuzz target: a column chunk whose footer offset is negative
    // made the Parquet crate panic ("column start and length should not be negative").
    let e = refused(&fixture("fuzz_negative_column_start.parquet"), 65_536);
    assert!(e.contains("the footer places it outside the file"), "{e}");
    // Also found by fuzzing: a corrupt page on which the Parquet crate's RLE decoder
    // panics ("Num of bytes exceed MAX_VLQ_BYTE_LEN"); an error, not a crash.
    // (The page header scan now refuses it before the decoder runs.)
    let e = refused(&fixture("fuzz_corrupt_rle_page.parquet"), 65_536);
    assert!(e.contains("the file is corrupt"), "{e}");
    // Also found by fuzzing: a page header whose compressed size has the wrong Thrift
    // type; the Parquet crate read on into garbage and allocated a dictionary of 1 GiB.
    // Every page header is read (and checked) before the crate sees the file now.
    let e = refused(&fixture("fuzz_dictionary_values.parquet"), 65_536);
    assert!(
        e.contains("row group 1, column 'sepal_width': the file is corrupt: the page header at byte 971 is unreadable"),
        "{e}"
    );
    // A dictionary page listing more values than its bytes hold (63 doubles in 104
    // bytes: iris.parquet with one byte of its first page header changed).
    let mut bytes = std::fs::read(fixture("iris.parquet")).unwrap();
    assert_eq!(
        bytes[14], 0x1a,
        "num_values 13 of the first dictionary page"
    );
    bytes[14] = 0x7e;
    let patched = dir.path().join("dictionary.parquet");
    std::fs::write(&patched, &bytes).unwrap();
    let e = refused(&patched, 65_536);
    assert!(
        e.contains("row group 0, column 'sepal_length': the page at byte 4 is a dictionary of 63 values in 104 bytes: the file is corrupt"),
        "{e}"
    );
}

#[test]
fn a_damaged_copy_is_reported_then_repaired_from_a_good_one() {
    for backend in [Backend::Sled, Backend::Files] {
        let dir = tempfile::tempdir().unwrap();
        let good: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let other = vec![9u8; 1000];
        let id = {
            let s = Store::open_with(
                dir.path(),
                StoreOptions {
                    backend,
                    ..StoreOptions::default()
                },
            )
            .unwrap();
            s.put_pinned("job.a", &other).unwrap();
            s.put_pinned("job.a", &good).unwrap()
        };
        // The store is closed: one byte of that chunk flips on disk.
        assert_eq!(
            meshml_storage::damage_chunk(dir.path(), Some(id)).unwrap(),
            id
        );
        let s = Store::open(dir.path()).unwrap();
        let e = s.chunk(&id).unwrap_err().to_string();
        assert!(
            e.contains(&format!("chunk {id} is corrupt")),
            "{backend:?}: {e}"
        );
        // Bytes that are not the chunk are refused; the good copy replaces the bad one.
        assert!(s.repair_chunk(&id, &other).is_err());
        s.repair_chunk(&id, &good).unwrap();
        assert_eq!(s.chunk(&id).unwrap(), good);
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.chunk(&id).unwrap(), good, "{backend:?}: repaired on disk");
        assert_eq!(s.pinned("job.a").unwrap().len(), 2, "still pinned");
    }
}

/// The same rows, kinds and missing cells (NaN compared as NaN).
fn assert_same_table(a: &meshml_models::Dataset, b: &meshml_models::Dataset) {
    assert_eq!(a.feature_names(), b.feature_names());
    assert_eq!(a.kinds(), b.kinds());
    assert_eq!(a.target(), b.target());
    let (x, y) = (a.x().to_vec(), b.x().to_vec());
    assert_eq!(x.len(), y.len());
    for (i, (p, q)) in x.iter().zip(&y).enumerate() {
        assert!(p == q || (p.is_nan() && q.is_nan()), "cell {i}: {p} vs {q}");
    }
}

/// The bundled nassCDS table's CSV text.
fn nass_csv() -> Vec<u8> {
    use std::io::Read;
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(data("tables/nassCDS.csv.gz")).unwrap())
        .read_to_end(&mut text)
        .unwrap();
    text
}

/// nassCDS stored as `nass`, in chunks of 5,000 rows.
fn put_nass(store: &Store, text: &[u8]) -> meshml_storage::DatasetManifest {
    ingest_csv(store, text, "nassCDS.csv", "nass", &opts(5000), &mut |_| {}).unwrap()
}

#[test]
fn a_mixed_table_keeps_its_kinds_through_ingest_and_both_exports() {
    use meshml_models::schema::ColumnKind;
    use meshml_storage::export::{export, TableFormat};
    use meshml_storage::ingest::ingest_file;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let text = nass_csv();
    let here = read_csv(text.as_slice(), "nassCDS.csv", &CsvOptions::default()).unwrap();
    let m = put_nass(&store, &text);
    // The schema: kinds, missing cells, the most frequent categories.
    assert_eq!(m.kinds(), here.kinds());
    let col = |name: &str| &m.columns[m.feature_names.iter().position(|f| f == name).unwrap()];
    assert_eq!(col("injSeverity").missing, 153);
    assert_eq!(col("yearVeh").missing, 1);
    assert_eq!(
        col("sex").top,
        vec![("m".to_string(), 13969), ("f".to_string(), 12248)]
    );
    assert!(matches!(col("dvcat").kind, ColumnKind::Categorical { .. }));
    assert_same_table(&store.load_dataset("nass").unwrap(), &here);
    // Exported as CSV (categories as text, missing cells empty) and as Parquet (strings,
    // optional columns with nulls), each reads back as the same table.
    for (format, file) in [
        (TableFormat::Csv, "back.csv"),
        (TableFormat::Parquet, "back.parquet"),
    ] {
        let path = dir.path().join(file);
        export(
            &store,
            "nass",
            format,
            std::fs::File::create(&path).unwrap(),
        )
        .unwrap();
        let name = format!("back-{}", format.name());
        let back = ingest_file(&store, &path, &name, &opts(5000), &mut |_| {}).unwrap();
        assert_eq!(back.columns, m.columns, "{file}");
        assert_same_table(&store.load_dataset(&name).unwrap(), &here);
    }
}

#[test]
fn chunks_are_arrow_batches_and_format_one_datasets_still_read() {
    use arrow_array::cast::AsArray;
    use arrow_schema::DataType;
    use meshml_storage::encoding::{read_batch, ARROW_FORMAT, ROWS_FORMAT};
    use meshml_storage::export::{export, TableFormat};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let text = nass_csv();
    let m = put_nass(&store, &text);
    assert_eq!(m.chunk_format, ARROW_FORMAT);
    // Each chunk is one record batch any Arrow reader takes: typed, nullable, text as
    // dictionary-encoded strings, the target last.
    let (mut rows, mut missing_severity) = (0, 0);
    for c in &m.chunks {
        let b = read_batch(&c.id, &store.chunks().get(&c.id).unwrap()).unwrap();
        assert_eq!(b.num_rows(), c.rows as usize);
        assert_eq!(b.num_columns(), m.n_features() + 1);
        let schema = b.schema();
        let (j, field) = schema.column_with_name("injSeverity").unwrap();
        assert_eq!(field.data_type(), &DataType::Float32);
        missing_severity += b.column(j).null_count();
        let (j, field) = schema.column_with_name("dvcat").unwrap();
        assert_eq!(
            field.data_type(),
            &DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8))
        );
        let dvcat = b.column(j).as_dictionary::<arrow_array::types::Int8Type>();
        assert!(dvcat
            .values()
            .as_string::<i32>()
            .iter()
            .flatten()
            .all(|s| ["1-9km/h", "10-24", "25-39", "40-54", "55+"].contains(&s)));
        assert_eq!(schema.field(m.n_features()).name(), &m.target_name);
        rows += b.num_rows();
    }
    assert_eq!((rows as u64, missing_severity), (m.rows, 153));

    // A dataset stored in format 1 (row-major MessagePack chunks) still loads and exports
    // as the same table.
    let layout = m.layout().unwrap();
    let mut old = m.clone();
    old.name = "old".into();
    old.chunk_format = ROWS_FORMAT;
    for (i, c) in old.chunks.iter_mut().enumerate() {
        let bytes = store.read_chunk(&m, &layout, i).unwrap().encode_rows();
        c.id = store.chunks().write(&bytes).unwrap();
        c.bytes = bytes.len() as u64;
    }
    store.put_manifest(&old).unwrap();
    let now = store.load_dataset("nass").unwrap();
    assert_same_table(&store.load_dataset("old").unwrap(), &now);
    let csv = |name: &str| {
        let mut out = Vec::new();
        export(&store, name, TableFormat::Csv, &mut out).unwrap();
        out
    };
    assert_eq!(csv("old"), csv("nass"));
    // A manifest written before the field existed is format 1.
    let mut json = serde_json::to_value(&old).unwrap();
    json.as_object_mut().unwrap().remove("chunk_format");
    let back: meshml_storage::DatasetManifest = serde_json::from_value(json).unwrap();
    assert_eq!(back, old);
    // A format this build does not know says what to do.
    let mut future = m.clone();
    future.name = "future".into();
    future.chunk_format = 3;
    store.put_manifest(&future).unwrap();
    let e = store.load_dataset("future").unwrap_err().to_string();
    assert!(
        e.contains("format 3") && e.contains("store the dataset again"),
        "{e}"
    );
}
