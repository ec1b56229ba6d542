//! Reads every chunk of a stored dataset (read, BLAKE3 check, decode) and reports MiB/s of
//! chunk bytes; then materialises the whole dataset once and reports that time.
//!
//! `cargo run --release -p meshml-storage --example read_chunks -- DATA_DIR DATASET [ROUNDS]`

use std::time::Instant;

use meshml_storage::Store;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        return Err("usage: read_chunks DATA_DIR DATASET [ROUNDS]".into());
    }
    let rounds: usize = args.get(2).map_or(Ok(3), |r| r.parse())?;
    let store = Store::open(&args[0])?;
    let m = store.dataset(&args[1])?;
    let layout = m.layout()?;
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    for round in 0..rounds {
        let t = Instant::now();
        let mut rows = 0;
        for i in 0..m.chunks.len() {
            rows += store.read_chunk(&m, &layout, i)?.rows;
        }
        let s = t.elapsed().as_secs_f64();
        writeln!(
            out,
            "{{\"bench\":\"chunk_read\",\"round\":{round},\"chunks\":{},\"rows\":{rows},\"bytes\":{},\"seconds\":{s:.4},\"mib_per_s\":{:.1}}}",
            m.chunks.len(),
            m.bytes(),
            m.bytes() as f64 / s / 1048576.0
        )?;
    }
    let t = Instant::now();
    let d = store.load_dataset(&args[1])?;
    writeln!(
        out,
        "{{\"bench\":\"load_dataset\",\"rows\":{},\"seconds\":{:.4}}}",
        d.n_samples(),
        t.elapsed().as_secs_f64()
    )?;
    Ok(())
}
