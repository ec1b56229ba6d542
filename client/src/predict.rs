//! `meshml predict`: batch prediction of a dataset on the mesh, through a node's API.
//!
//! ```console
//! $ meshml predict --model digits-lr --dataset digits --out preds.csv --proba
//! $ meshml predict --model digits-lr@production --dataset big --into big-preds --replicas 2
//! ```
//!
//! Each holder of a chunk predicts it (the node's `batch` module); a progress bar shows the rows
//! done until the batch ends. The predictions come back in the dataset's row order: to a
//! file (`--out`), to standard output, or into a new replicated dataset (`--into`).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::api::{AliasRequest, AliasSet, BatchRequest, BatchView, Created, ModelView};
use crate::node_api::NodeApi;
use crate::table::{self, Align};
use crate::{w, ClientError};

/// `meshml predict ...`
#[derive(Debug, Args)]
pub struct PredictCmd {
    /// The model: `NAME` (its production alias, else its newest version),
    /// `NAME@VERSION` or `NAME@ALIAS`.
    #[arg(long)]
    pub model: String,
    /// The dataset on the mesh.
    #[arg(long)]
    pub dataset: String,
    /// Write the predictions (CSV, in row order) to this file instead of standard output.
    #[arg(long, value_name = "FILE", conflicts_with = "into")]
    pub out: Option<PathBuf>,
    /// Store the predictions as a new dataset on the mesh instead.
    #[arg(long, value_name = "DATASET")]
    pub into: Option<String>,
    /// Copies of each chunk of the `--into` dataset.
    #[arg(long, requires = "into")]
    pub replicas: Option<usize>,
    /// Also write class probabilities (`p_<class>` columns).
    #[arg(long)]
    pub proba: bool,
    /// Predict even though the dataset has feature columns the model was not fitted on
    /// (they are dropped); refused otherwise.
    #[arg(long)]
    pub ignore_extra_columns: bool,
    /// The node.
    #[command(flatten)]
    pub api: NodeApi,
}

/// Runs `meshml predict`; the summary goes to `out` (and the CSV too, without `--out` or
/// `--into`).
pub fn predict(cmd: PredictCmd, out: &mut dyn Write) -> Result<(), ClientError> {
    let req = BatchRequest {
        model: cmd.model.clone(),
        dataset: cmd.dataset.clone(),
        proba: cmd.proba,
        into: cmd.into.clone(),
        replicas: cmd.replicas,
        ignore_extra_columns: cmd.ignore_extra_columns,
    };
    let client = cmd.api.client()?;
    let created: Created = client.send_json(
        "POST",
        "/v1/predictions",
        &req,
        "answer to a batch request",
        Duration::from_secs(60),
    )?;
    let id = created.id;
    let view: BatchView = crate::progress::follow_with(
        "rows",
        || {
            client.get(
                &format!("/v1/predictions/{id}"),
                "batch document",
                Duration::from_secs(30),
            )
        },
        |v: &BatchView| {
            (
                v.rows_done as usize,
                v.rows_total as usize,
                v.state == "running",
            )
        },
    )?;
    if view.state != "succeeded" {
        return Err(ClientError::Usage(format!(
            "batch {id} failed: {}",
            view.error.unwrap_or_default()
        )));
    }
    let what = format!(
        "predicted {} rows of '{}' with {}@{} in {:.2} s",
        view.rows_done,
        view.dataset,
        view.model,
        view.version,
        view.elapsed_ms as f64 / 1000.0
    );
    if let Some(into) = &view.into {
        return w(out, format_args!("{what} -> dataset '{into}'\n"));
    }
    let path = format!("/v1/predictions/{id}/csv");
    let wait = Duration::from_secs(600);
    let n = match &cmd.out {
        Some(p) => {
            let mut f = crate::output::OutputFile::create(p)?;
            let n = client.download(&path, &mut f, wait)?;
            f.commit()?;
            n
        }
        None => client.download(&path, out, wait)?,
    };
    match &cmd.out {
        Some(p) => w(out, format_args!("{what} -> {} ({n} bytes)\n", p.display())),
        None => {
            let mut err = std::io::stderr();
            let _ = writeln!(err, "{what}");
            Ok(())
        }
    }
}

/// `meshml models`
#[derive(Debug, Args)]
pub struct ModelsCmd {
    /// The node.
    #[command(flatten)]
    pub api: NodeApi,
}

/// `meshml model ...`
#[derive(Debug, Args)]
pub struct ModelCmd {
    /// What to do.
    #[command(subcommand)]
    pub action: ModelAction,
    /// The node.
    #[command(flatten)]
    pub api: NodeApi,
}

/// Model actions.
#[derive(Debug, clap::Subcommand)]
pub enum ModelAction {
    /// Point an alias (`production`, `staging`) at a version, on every node: requests to
    /// `NAME` (production) or `NAME@ALIAS` move to it; requests in flight finish on the
    /// version they started with.
    Alias {
        /// Model name.
        name: String,
        /// The alias.
        alias: String,
        /// The version.
        version: u32,
    },
    /// Download a model's artifact, for `meshml local predict --model FILE` without a mesh.
    Get {
        /// `NAME` (its production alias, else its newest version), `NAME@VERSION` or
        /// `NAME@ALIAS`.
        model: String,
        /// Where to write it (default: the model with `@` as `-`, plus `.mlm`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs `meshml models`: every version of every model, with its aliases and holders.
pub fn models(cmd: ModelsCmd, out: &mut dyn Write) -> Result<(), ClientError> {
    let list: Vec<ModelView> =
        cmd.api
            .client()?
            .get("/v1/models", "model list", Duration::from_secs(30))?;
    if list.is_empty() {
        return w(
            out,
            format_args!("no models yet: a finished job registers one\n"),
        );
    }
    let rows: Vec<Vec<String>> = list
        .into_iter()
        .map(|m| {
            vec![
                m.name,
                m.version.to_string(),
                m.kind,
                m.aliases.join(","),
                m.locations.len().to_string(),
            ]
        })
        .collect();
    let header = [
        ("MODEL", Align::Left),
        ("VERSION", Align::Right),
        ("KIND", Align::Left),
        ("ALIASES", Align::Left),
        ("COPIES", Align::Right),
    ];
    w(out, format_args!("{}", table::render(&header, &rows, "")))
}

/// Runs `meshml model ...`.
pub fn model(cmd: ModelCmd, out: &mut dyn Write) -> Result<(), ClientError> {
    match cmd.action {
        ModelAction::Alias {
            name,
            alias,
            version,
        } => {
            let _: AliasSet = cmd.api.client()?.send_json(
                "PUT",
                &format!("/v1/models/{name}/aliases/{alias}"),
                &AliasRequest { version },
                "answer to an alias change",
                Duration::from_secs(60),
            )?;
            w(out, format_args!("{name}@{alias} -> version {version}\n"))
        }
        ModelAction::Get { model, out: path } => {
            let path =
                path.unwrap_or_else(|| PathBuf::from(format!("{}.mlm", model.replace('@', "-"))));
            // Written beside the destination and renamed once whole and readable.
            let part = path.with_extension("mlm.part");
            let fail = |e| ClientError::io(part.display().to_string(), e);
            let mut f = std::io::BufWriter::new(std::fs::File::create(&part).map_err(fail)?);
            let got = cmd.api.client().and_then(|c| {
                c.download(
                    &format!("/v1/models/{model}/artifact"),
                    &mut f,
                    Duration::from_secs(600),
                )
            });
            let n = match got.and_then(|n| f.flush().map(|()| n).map_err(fail)) {
                Ok(n) => n,
                Err(e) => {
                    drop(f);
                    let _ = std::fs::remove_file(&part);
                    return Err(e);
                }
            };
            drop(f);
            let art = match meshml_models::ModelArtifact::load(&part) {
                Ok(a) => a,
                Err(e) => {
                    let _ = std::fs::remove_file(&part);
                    return Err(e.into());
                }
            };
            std::fs::rename(&part, &path)
                .map_err(|e| ClientError::io(path.display().to_string(), e))?;
            w(
                out,
                format_args!(
                    "{model}: {} ({n} bytes) -> {}\n",
                    art.kind(),
                    path.display()
                ),
            )
        }
    }
}
