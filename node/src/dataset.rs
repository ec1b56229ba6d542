//! `meshml dataset ...`: datasets in this node's data directory.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use meshml_models::io::{CsvOptions, TargetKind};
use meshml_storage::export::{export, TableFormat};
use meshml_storage::ingest::{ingest_file, IngestOptions, Progress};
use meshml_storage::{Store, TargetSchema};

use crate::cli::{DatasetArgs, DatasetCommand};
use crate::{w, NodeError};

/// The data directory: the flag, else `$MESHML_DATA_DIR`, else `~/.meshml`.
pub fn data_dir(flag: Option<PathBuf>) -> Result<PathBuf, NodeError> {
    if let Some(d) = flag {
        return Ok(d);
    }
    if let Some(d) = std::env::var_os("MESHML_DATA_DIR") {
        return Ok(PathBuf::from(d));
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".meshml"))
        .ok_or_else(|| NodeError::Usage("no --data-dir given and HOME is not set".into()))
}

pub use meshml_client::human_bytes;

fn dataset_name(name: Option<String>, file: &std::path::Path) -> Result<String, NodeError> {
    Ok(meshml_client::dataset::dataset_name(name, file)?)
}

/// Runs a `dataset` subcommand.
pub fn run(args: DatasetArgs, out: &mut dyn Write) -> Result<(), NodeError> {
    if let DatasetCommand::Put {
        file,
        name,
        chunk_rows,
        target,
        regression,
        replicas: Some(replicas),
        node,
        token_file,
        limits,
    } = &args.command
    {
        let api = meshml_client::NodeApi {
            node: node.clone(),
            token_file: token_file.clone(),
        };
        let opts = meshml_client::dataset::PutOptions {
            name: name.clone(),
            replicas: *replicas,
            chunk_rows: *chunk_rows,
            target: target.clone(),
            regression: *regression,
            categorical: limits.categorical.clone(),
            numeric: limits.numeric.clone(),
            na_values: limits.na_values.clone(),
            max_categories: Some(limits.max_categories),
        };
        return Ok(meshml_client::dataset::put(&api, file, &opts, out)?);
    }
    if let Some(done) = on_mesh(&args.command, out) {
        return done;
    }
    let dir = data_dir(args.data_dir)?;
    let mut store = Store::open(&dir).map_err(|e| match e {
        meshml_storage::StorageError::Locked(d) => NodeError::Usage(format!(
            "{} is in use (by a running `meshml node`?); {}",
            d.display(),
            through_node(&args.command)
        )),
        other => other.into(),
    })?;
    match args.command {
        DatasetCommand::Put {
            file,
            name,
            chunk_rows,
            target,
            regression,
            limits,
            ..
        } => {
            let name = dataset_name(name, &file)?;
            let mut csv = limits.apply(CsvOptions::default());
            if let Some(t) = target {
                csv = csv.with_target(t);
            }
            if regression {
                csv = csv.with_kind(TargetKind::Regression);
            }
            let total = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            let started = Instant::now();
            // Drawn on a terminal only (indicatif hides it otherwise), at most 20 times a second.
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(total),
                indicatif::ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "ingesting {prefix}: {binary_bytes} / {binary_total_bytes} ({percent}%), {msg}, {binary_bytes_per_sec}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_prefix(name.clone());
            bar.set_message("0 rows");
            let mut report = |p: Progress| {
                bar.set_position(p.bytes_read);
                bar.set_message(format!("{} rows", p.rows));
                tracing::debug!(
                    rows = p.rows,
                    chunks = p.chunks,
                    bytes = p.bytes_read,
                    "ingest progress"
                );
            };
            let opts = IngestOptions {
                chunk_rows,
                csv,
                source: None,
            };
            let result = ingest_file(&store, &file, &name, &opts, &mut report);
            bar.finish_and_clear();
            let m = result?;
            let secs = started.elapsed().as_secs_f64();
            store.maybe_compact()?;
            w(out, format_args!(
                "stored dataset '{}': {} rows, {} features, {}, {} chunks ({}) in {:.2} s ({:.1} MiB/s of input)\n",
                m.name,
                m.rows,
                m.n_features(),
                target_summary(&m.target),
                m.chunks.len(),
                human_bytes(m.bytes()),
                secs,
                total as f64 / secs.max(1e-9) / 1048576.0
            ))
        }
        DatasetCommand::Ls { .. } => {
            let all = store.datasets()?;
            if all.is_empty() {
                return w(out, format_args!("no datasets in {}\n", dir.display()));
            }
            use meshml_client::table::{render, Align};
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|m| {
                    vec![
                        m.name.clone(),
                        m.rows.to_string(),
                        m.n_features().to_string(),
                        m.chunks.len().to_string(),
                        human_bytes(m.bytes()),
                        target_summary(&m.target),
                    ]
                })
                .collect();
            let header = [
                ("NAME", Align::Left),
                ("ROWS", Align::Right),
                ("FEATURES", Align::Right),
                ("CHUNKS", Align::Right),
                ("SIZE", Align::Right),
                ("target", Align::Left),
            ];
            w(out, format_args!("{}", render(&header, &rows, "")))
        }
        DatasetCommand::Show { name, .. } => {
            let m = store.dataset(&name)?;
            w(
                out,
                format_args!(
                    "name:      {}\nsource:    {}\nrows:      {}\n",
                    m.name, m.source, m.rows
                ),
            )?;
            w(
                out,
                format_args!(
                    "features:  {} ({})\n",
                    m.n_features(),
                    m.feature_names.join(", ")
                ),
            )?;
            w(
                out,
                format_args!(
                    "target:    {} ({})\n",
                    m.target_name,
                    target_summary(&m.target)
                ),
            )?;
            w(
                out,
                format_args!(
                    "columns:\n{}",
                    meshml_client::dataset::schema_table(&column_views(&m))
                ),
            )?;
            w(
                out,
                format_args!(
                    "chunks:    {} ({})\n",
                    m.chunks.len(),
                    human_bytes(m.bytes())
                ),
            )?;
            for (i, c) in m.chunks.iter().enumerate() {
                w(
                    out,
                    format_args!(
                        "  {i:>5}  {}  {:>8} rows  {:>10}\n",
                        c.id,
                        c.rows,
                        human_bytes(c.bytes)
                    ),
                )?;
            }
            Ok(())
        }
        DatasetCommand::Export {
            name,
            out: path,
            format,
            ..
        } => {
            let format = export_format(format.as_deref(), path.as_deref());
            match path {
                Some(p) => {
                    let mut file = meshml_client::output::OutputFile::create(&p)?;
                    let m = export(&store, &name, format, &mut file)?;
                    file.commit()?;
                    w(
                        out,
                        format_args!(
                            "exported '{}' as {}: {} rows -> {}\n",
                            m.name,
                            format.name(),
                            m.rows,
                            p.display()
                        ),
                    )
                }
                None => {
                    export(&store, &name, format, &mut *out)?;
                    Ok(())
                }
            }
        }
        DatasetCommand::Rm { name, .. } => {
            let r = store.remove_dataset(&name)?;
            w(out, format_args!(
                "removed dataset '{name}': {} chunks deleted, {} kept (shared with other datasets)\n",
                r.chunks_removed, r.chunks_shared
            ))
        }
    }
}

/// The format of an export: `--format`, else the `--out` file's extension, else CSV.
fn export_format(flag: Option<&str>, out: Option<&std::path::Path>) -> TableFormat {
    flag.and_then(TableFormat::parse)
        .or_else(|| out.map(TableFormat::from_path))
        .unwrap_or_default()
}

/// Runs a dataset command given `--node` on the mesh; `None` when it is local.
fn on_mesh(cmd: &DatasetCommand, out: &mut dyn Write) -> Option<Result<(), NodeError>> {
    use meshml_client::dataset as remote;
    let mesh = match cmd {
        DatasetCommand::Put { .. } => return None,
        DatasetCommand::Ls { mesh }
        | DatasetCommand::Show { mesh, .. }
        | DatasetCommand::Export { mesh, .. }
        | DatasetCommand::Rm { mesh, .. } => mesh,
    };
    let api = meshml_client::NodeApi {
        node: mesh.node.clone()?,
        token_file: mesh.token_file.clone(),
    };
    let done = match cmd {
        DatasetCommand::Put { .. } => return None,
        DatasetCommand::Ls { .. } => remote::list(&api, out),
        DatasetCommand::Show { name, .. } => remote::show(&api, name, out),
        DatasetCommand::Export {
            name,
            out: path,
            format,
            ..
        } => {
            let format = export_format(format.as_deref(), path.as_deref());
            remote::export(&api, name, format.name(), path.as_deref(), out)
        }
        DatasetCommand::Rm { name, .. } => remote::remove(&api, name, out),
    };
    Some(done.map_err(NodeError::from))
}

/// What to run instead when a node holds the data directory.
fn through_node(cmd: &DatasetCommand) -> String {
    const NODE: &str = "http://127.0.0.1:7070";
    let form = match cmd {
        DatasetCommand::Put { .. } => {
            return "to store a dataset on the mesh through that node, add --replicas N (and --node URL)".into()
        }
        DatasetCommand::Ls { .. } => format!("meshml dataset ls --node {NODE}"),
        DatasetCommand::Show { name, .. } => format!("meshml dataset show {name} --node {NODE}"),
        DatasetCommand::Export { name, out, .. } => format!(
            "meshml dataset export {name} --node {NODE}{}",
            out.as_ref()
                .map(|p| format!(" --out {}", p.display()))
                .unwrap_or_default()
        ),
        DatasetCommand::Rm { name, .. } => format!("meshml dataset rm {name} --node {NODE}"),
    };
    format!("to reach the datasets through that node, run `{form}` (with its HTTP address)")
}

fn target_summary(t: &TargetSchema) -> String {
    match t {
        TargetSchema::Classes { classes, .. } => {
            meshml_client::dataset::classes_summary(classes.labels())
        }
        TargetSchema::Values => "real values".to_string(),
    }
}

/// A stored dataset's feature columns as `dataset show` and `GET /v1/datasets/{name}` give
/// them (a dataset stored before column kinds shows numeric columns without counts).
pub fn column_views(m: &meshml_storage::DatasetManifest) -> Vec<meshml_client::api::ColumnView> {
    let kinds = m.kinds();
    m.feature_names
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let summary = m.columns.get(j);
            meshml_client::api::ColumnView {
                name: name.clone(),
                kind: kinds[j].type_name().to_string(),
                missing: summary.map_or(0, |c| c.missing),
                categories: kinds[j].categories().map_or(0, |c| c.len()),
                top: summary.map_or_else(Vec::new, |c| c.top.clone()),
            }
        })
        .collect()
}
