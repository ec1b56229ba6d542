//! Datasets on the mesh through any node's API: `meshml dataset put FILE --replicas R`
//! (the node chunks the file and places the copies), `dataset ls|show|export|rm --node URL`.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::api::{ColumnView, DatasetDetail, DatasetRemoved, DatasetStored, DatasetView};
use crate::node_api::NodeApi;
use crate::table::{render, Align};
use crate::{w, ClientError};

/// What `dataset put` through a node asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOptions {
    /// Dataset name (default: the file's name).
    pub name: Option<String>,
    /// Copies of each chunk.
    pub replicas: usize,
    /// Rows per chunk.
    pub chunk_rows: usize,
    /// Target column (default: the last).
    pub target: Option<String>,
    /// Read the target as real values.
    pub regression: bool,
    /// Columns read as categorical whatever their cells.
    pub categorical: Vec<String>,
    /// Columns read as numbers whatever their cells.
    pub numeric: Vec<String>,
    /// Cells read as missing instead of the default set.
    pub na_values: Option<Vec<String>>,
    /// Most distinct categories of one column.
    pub max_categories: Option<usize>,
}

/// The dataset name: the one given, else the file's stem.
pub fn dataset_name(name: Option<String>, file: &Path) -> Result<String, ClientError> {
    match name {
        Some(n) => Ok(n),
        None => file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .ok_or_else(|| {
                ClientError::Usage(format!("cannot name a dataset after {}", file.display()))
            }),
    }
}

/// `meshml dataset put FILE --replicas R [--node URL]`.
pub fn put(
    api: &NodeApi,
    file: &Path,
    opts: &PutOptions,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let name = dataset_name(opts.name.clone(), file)?;
    let mut query = format!(
        "name={}&replicas={}&chunk_rows={}",
        enc(&name),
        opts.replicas,
        opts.chunk_rows
    );
    if let Some(t) = &opts.target {
        query.push_str(&format!("&target={}", enc(t)));
    }
    // Errors in the file name it as the user knows it, not as the node stores the upload.
    if let Some(f) = file.file_name() {
        query.push_str(&format!("&source={}", enc(&f.to_string_lossy())));
    }
    if opts.regression {
        query.push_str("&regression=true");
    }
    for (key, list) in [
        ("categorical", &opts.categorical),
        ("numeric", &opts.numeric),
    ] {
        if !list.is_empty() {
            query.push_str(&format!("&{key}={}", enc(&list.join(","))));
        }
    }
    if let Some(na) = &opts.na_values {
        query.push_str(&format!("&na_values={}", enc(&na.join(","))));
    }
    if let Some(m) = opts.max_categories {
        query.push_str(&format!("&max_categories={m}"));
    }
    let is_parquet = file
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq"));
    if is_parquet {
        query.push_str("&format=parquet");
    }
    put_dataset(api, file, &query, out)
}

/// Stores `file` on the mesh through the node with the query of `POST /v1/datasets`
/// (`name=N&replicas=R...`); the upload streams from disk. Reports the placement.
pub fn put_dataset(
    api: &NodeApi,
    file: &Path,
    query: &str,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let f =
        std::fs::File::open(file).map_err(|e| ClientError::io(file.display().to_string(), e))?;
    let started = Instant::now();
    let v: DatasetStored = api.client()?.upload(
        &format!("/v1/datasets?{query}"),
        &f,
        "application/octet-stream",
        "answer to an upload",
        Duration::from_secs(3600),
    )?;
    w(
        out,
        format_args!(
            "stored '{}' on the mesh: {} rows, {} features, {} chunks ({}), in {:.1}s\n",
            v.name,
            v.rows,
            v.features,
            v.chunks,
            crate::human_bytes(v.bytes),
            started.elapsed().as_secs_f64()
        ),
    )?;
    for (member, n) in &v.chunks_per_member {
        w(out, format_args!("  member {member}: {n} chunks\n"))?;
    }
    Ok(())
}

fn enc(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `meshml dataset ls --node URL`: the mesh's datasets.
pub fn list(api: &NodeApi, out: &mut dyn Write) -> Result<(), ClientError> {
    let all: Vec<DatasetView> =
        api.client()?
            .get("/v1/datasets", "dataset list", Duration::from_secs(30))?;
    if all.is_empty() {
        return w(out, format_args!("no datasets on the mesh\n"));
    }
    use crate::table::{render, Align};
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                d.rows.to_string(),
                d.features.to_string(),
                d.chunks.to_string(),
                crate::human_bytes(d.bytes),
                d.min_replicas.to_string(),
                classes_summary(&d.classes),
            ]
        })
        .collect();
    let header = [
        ("NAME", Align::Left),
        ("ROWS", Align::Right),
        ("FEATURES", Align::Right),
        ("CHUNKS", Align::Right),
        ("SIZE", Align::Right),
        ("COPIES", Align::Right),
        ("target", Align::Left),
    ];
    w(out, format_args!("{}", render(&header, &rows, "")))
}

/// A target's classes as listings show them: `3 classes: a, b, c` (at most six named), or
/// `real values` when there are none.
pub fn classes_summary(classes: &[String]) -> String {
    if classes.is_empty() {
        return "real values".into();
    }
    let mut labels = classes
        .iter()
        .take(6)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if classes.len() > 6 {
        labels.push_str(", ...");
    }
    format!("{} classes: {labels}", classes.len())
}

/// The schema table `dataset show` prints: one line per feature column with its type,
/// missing cells, number of categories and the most frequent ones.
pub fn schema_table(columns: &[ColumnView]) -> String {
    let rows: Vec<Vec<String>> = columns
        .iter()
        .map(|c| {
            let top: Vec<String> = c.top.iter().map(|(v, n)| format!("{v} ({n})")).collect();
            vec![
                c.name.clone(),
                c.kind.clone(),
                c.missing.to_string(),
                if c.kind == "numeric" {
                    String::new()
                } else {
                    c.categories.to_string()
                },
                top.join(", "),
            ]
        })
        .collect();
    let header = [
        ("COLUMN", Align::Left),
        ("TYPE", Align::Left),
        ("MISSING", Align::Right),
        ("CATEGORIES", Align::Right),
        ("MOST FREQUENT", Align::Left),
    ];
    render(&header, &rows, "  ")
}

/// `meshml dataset show NAME --node URL`: a dataset's columns and its chunks' holders.
pub fn show(api: &NodeApi, name: &str, out: &mut dyn Write) -> Result<(), ClientError> {
    let d: DatasetDetail = api.client()?.get(
        &format!("/v1/datasets/{}", enc(name)),
        "dataset",
        Duration::from_secs(30),
    )?;
    let v = &d.dataset;
    w(
        out,
        format_args!(
            "name:      {}\nsource:    {}\nrows:      {}\nfeatures:  {} ({})\ntarget:    {} ({})\n",
            v.name,
            d.source,
            v.rows,
            v.features,
            d.feature_names.join(", "),
            d.target,
            classes_summary(&v.classes)
        ),
    )?;
    if !d.columns.is_empty() {
        w(out, format_args!("columns:\n{}", schema_table(&d.columns)))?;
    }
    w(
        out,
        format_args!(
            "chunks:    {} ({}), {} copies wanted, fewest now {}\n",
            v.chunks,
            crate::human_bytes(v.bytes),
            d.replicas,
            v.min_replicas
        ),
    )?;
    for (i, c) in d.chunks.iter().enumerate() {
        let holders: Vec<String> = c.holders.iter().map(u64::to_string).collect();
        w(
            out,
            format_args!(
                "  {i:>5}  {}  {:>8} rows  {:>10}  on {}\n",
                c.id,
                c.rows,
                crate::human_bytes(c.bytes),
                holders.join(", ")
            ),
        )?;
    }
    Ok(())
}

/// `meshml dataset export NAME --node URL [--out FILE] [--format csv|parquet]`: the rows
/// streamed from the holders in row order, written as they arrive (bounded memory). A file
/// appears only whole. `format` is `csv` or `parquet`.
pub fn export(
    api: &NodeApi,
    name: &str,
    format: &str,
    dest: Option<&Path>,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let path = format!("/v1/datasets/{}/rows?format={}", enc(name), enc(format));
    let client = api.client()?;
    let wait = Duration::from_secs(24 * 3600);
    let started = Instant::now();
    match dest {
        None => {
            client.download(&path, out, wait)?;
            Ok(())
        }
        Some(p) => {
            let mut file = crate::output::OutputFile::create(p)?;
            let n = client.download(&path, &mut file, wait)?;
            file.commit()?;
            w(
                out,
                format_args!(
                    "exported '{name}' from the mesh as {format}: {} -> {} in {:.1}s\n",
                    crate::human_bytes(n),
                    p.display(),
                    started.elapsed().as_secs_f64()
                ),
            )
        }
    }
}

/// `meshml dataset rm NAME --node URL`: the dataset leaves the mesh; every holder frees
/// its copies.
pub fn remove(api: &NodeApi, name: &str, out: &mut dyn Write) -> Result<(), ClientError> {
    let r: DatasetRemoved = api.client()?.delete(
        &format!("/v1/datasets/{}", enc(name)),
        "answer to a dataset removal",
        Duration::from_secs(60),
    )?;
    let holders: Vec<String> = r.holders.iter().map(u64::to_string).collect();
    w(
        out,
        format_args!(
            "removed dataset '{}' from the mesh: {} rows, {} chunks; members {} free their copies\n",
            r.name,
            r.rows,
            r.chunks,
            holders.join(", ")
        ),
    )
}
