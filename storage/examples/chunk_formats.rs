//! The cost of Arrow chunks (format 2) against the row-major MessagePack chunks stored before
//! (format 1), on the same rows: encoded size, encode time, and the time to turn every chunk
//! into the dataset's row-major `f32` matrix (decode, then matrix building) with the
//! [`Assembler`](meshml_storage::catalog::Assembler) a worker loads a dataset with. The CSV is ingested once (format 2); each chunk is then also encoded in
//! format 1 in memory, and the two formats are timed in alternating rounds, all in memory (no
//! disk, no hashing). Prints one JSON line per measurement, then the medians and their ratio.
//!
//! `cargo run --release -p meshml-storage --example chunk_formats -- FILE.csv [ROUNDS]`

use std::time::Instant;

use meshml_storage::encoding::{read_batch, Chunk};
use meshml_storage::ingest::{ingest_file, IngestOptions};
use meshml_storage::Store;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(file) = args.first() else {
        return Err("usage: chunk_formats FILE.csv [ROUNDS]".into());
    };
    let rounds: usize = args.get(1).map_or(Ok(5), |r| r.parse())?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let t = Instant::now();
    let m = ingest_file(
        &store,
        std::path::Path::new(file),
        "data",
        &IngestOptions::default(),
        &mut |_| {},
    )?;
    let ingest_s = t.elapsed().as_secs_f64();
    let layout = m.layout()?;
    let arrow: Vec<Vec<u8>> = m
        .chunks
        .iter()
        .map(|c| store.chunks().get(&c.id))
        .collect::<Result<_, _>>()?;
    let decoded: Vec<Chunk> = m
        .chunks
        .iter()
        .zip(&arrow)
        .map(|(c, b)| layout.decode(&c.id, b))
        .collect::<Result<_, _>>()?;
    drop(store);
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    let bytes = |v: &[Vec<u8>]| v.iter().map(Vec::len).sum::<usize>();

    // Encoding, each format in turn.
    let (mut enc_rows, mut enc_arrow) = (Vec::new(), Vec::new());
    let mut rows_bytes = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        rows_bytes = decoded.iter().map(Chunk::encode_rows).collect();
        enc_rows.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let again: Vec<Vec<u8>> = decoded
            .iter()
            .map(|c| layout.encode(c))
            .collect::<Result<_, _>>()?;
        enc_arrow.push(t.elapsed().as_secs_f64());
        assert_eq!(again, arrow, "encoding is deterministic");
    }
    let mut old = m.clone();
    old.chunk_format = meshml_storage::encoding::ROWS_FORMAT;

    // Loading: every chunk decoded and assembled into the dataset's matrix.
    let (mut load_rows, mut load_arrow, mut ipc_only) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let t = Instant::now();
        let mut data = old.assembler()?;
        for (c, b) in m.chunks.iter().zip(&rows_bytes) {
            data.push(&c.id, b)?;
        }
        let a = data.finish()?;
        load_rows.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let mut data = m.assembler()?;
        for (c, b) in m.chunks.iter().zip(&arrow) {
            data.push(&c.id, b)?;
        }
        let b = data.finish()?;
        load_arrow.push(t.elapsed().as_secs_f64());
        if round == 0 {
            assert!(a
                .x()
                .to_vec()
                .iter()
                .zip(b.x().to_vec())
                .all(|(p, q)| p.to_bits() == q.to_bits()));
        }
        drop((a, b));
        // The IPC decode alone (record batches, no matrix).
        let t = Instant::now();
        for (c, b) in m.chunks.iter().zip(&arrow) {
            std::hint::black_box(read_batch(&c.id, b)?);
        }
        ipc_only.push(t.elapsed().as_secs_f64());
    }
    for (what, v) in [
        ("encode_rows", &enc_rows),
        ("encode_arrow", &enc_arrow),
        ("load_rows", &load_rows),
        ("load_arrow", &load_arrow),
        ("arrow_ipc_decode_only", &ipc_only),
    ] {
        writeln!(
            out,
            "{{\"bench\":\"chunk_formats\",\"what\":\"{what}\",\"seconds\":{:?}}}",
            v.iter()
                .map(|s| (s * 1e4).round() / 1e4)
                .collect::<Vec<_>>()
        )?;
    }
    let (lr, la) = (median(load_rows), median(load_arrow));
    let (er, ea) = (median(enc_rows), median(enc_arrow));
    writeln!(
        out,
        "{{\"bench\":\"chunk_formats\",\"file\":\"{file}\",\"rows\":{},\"features\":{},\"chunks\":{},\
         \"ingest_s\":{ingest_s:.2},\"bytes_rows\":{},\"bytes_arrow\":{},\
         \"encode_rows_s\":{er:.4},\"encode_arrow_s\":{ea:.4},\"encode_ratio\":{:.2},\
         \"load_rows_s\":{lr:.4},\"load_arrow_s\":{la:.4},\"load_ratio\":{:.2},\
         \"ipc_decode_only_s\":{:.4}}}",
        m.rows,
        m.n_features(),
        m.chunks.len(),
        bytes(&rows_bytes),
        bytes(&arrow),
        ea / er,
        la / lr,
        median(ipc_only)
    )?;
    Ok(())
}
