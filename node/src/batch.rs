//! Batch prediction over a dataset's chunks: the work goes to the data.
//!
//! The node that takes the request (any node) resolves the model, splits every chunk into
//! slices that fit a network frame, and asks a member holding each chunk to predict its
//! slice (`PredictChunk`); a holder loads the model once (fetching the artifact from a
//! replica if it lacks it) and reads the chunk from its own store. A bounded number of
//! slices are in flight; answers are written in the dataset's row order to a CSV file on
//! the requesting node (a slice whose holder fails goes to another holder). The result is
//! downloaded (`meshml predict --out`) or stored as a new replicated dataset (`--into`).
//!
//! A batch lives on the node that runs it: if that node stops, the batch is lost and is
//! submitted again (predictions have no side effects).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use meshml_models::{Classifier, FittedModel, Matrix};
use meshml_protocol::{ChunkId, ErrorCode, RemoteError, Request, Response};

use meshml_storage::encoding::{f32s_from_le, le_bytes_f32};

use crate::columns::{column_map, csv_line, push_csv_field, refuse_extra};
use crate::error::MeshError;
use crate::services::consensus::Consensus;
use crate::services::datasets::{Datasets, PutDatasetRequest};
use crate::serving::Models;

/// Largest answer a holder sends for one slice (a frame is 4 MiB).
const SLICE_BYTES: usize = 3 << 20;

/// Finished batches a node remembers (their files are deleted with them).
const KEEP_FINISHED: usize = 16;

pub use meshml_client::api::{BatchRequest, BatchView};

/// The batch-prediction service: the batches this node runs and the slices it predicts for
/// others. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Batches {
    models: Models,
    datasets: Datasets,
    runs: Arc<Mutex<BTreeMap<String, Arc<Mutex<BatchView>>>>>,
}

impl Batches {
    /// Batches predicted with `models` over `datasets` (where `--into` results go too).
    pub fn new(models: Models, datasets: Datasets) -> Self {
        Self {
            models,
            datasets,
            runs: Arc::default(),
        }
    }

    fn consensus(&self) -> &Consensus {
        self.datasets.consensus()
    }

    /// The CSV file of batch `id` under the node's directory.
    pub fn csv_path(&self, id: &str) -> PathBuf {
        self.datasets
            .chunks()
            .dir()
            .join("predictions")
            .join(format!("{id}.csv"))
    }

    /// A batch's view.
    pub fn view(&self, id: &str) -> Option<BatchView> {
        let runs = self.runs.lock().expect("batches");
        runs.get(id).map(|v| v.lock().expect("batch").clone())
    }

    /// Every batch, oldest first.
    pub fn list(&self) -> Vec<BatchView> {
        let runs = self.runs.lock().expect("batches");
        runs.values()
            .map(|v| v.lock().expect("batch").clone())
            .collect()
    }
}

/// One slice of one chunk.
#[derive(Debug, Clone)]
struct Slice {
    chunk: ChunkId,
    holders: Vec<u64>,
    offset: u32,
    rows: u32,
    /// Position in the dataset of its first row.
    first_row: u64,
}

/// Orders each slice's holders so that the first is the one it is meant for: the holder
/// with the fewest rows given so far, and at a tie the one holding fewer of the dataset's
/// chunks (else rendezvous rank). Every holder gets a share of the work, and a member that
/// holds few chunks is not left out behind its busier neighbours; the other holders stay
/// behind it, in rank order, for when it fails.
fn balance(slices: &mut [Slice]) {
    let mut held: BTreeMap<u64, usize> = BTreeMap::new();
    for s in slices.iter() {
        for h in &s.holders {
            *held.entry(*h).or_default() += 1;
        }
    }
    let mut given: BTreeMap<u64, u64> = BTreeMap::new();
    for s in slices.iter_mut() {
        let Some(best) = s
            .holders
            .iter()
            .enumerate()
            .min_by_key(|(rank, h)| (given.get(h).copied().unwrap_or(0), held[h], *rank))
            .map(|(rank, _)| rank)
        else {
            continue;
        };
        let chosen = s.holders.remove(best);
        *given.entry(chosen).or_default() += u64::from(s.rows);
        s.holders.insert(0, chosen);
    }
}

/// What a holder answered for a slice.
struct Answer {
    classes: Vec<u32>,
    values: Vec<f32>,
    proba: Vec<f32>,
}

fn refuse(code: ErrorCode, message: impl Into<String>, retryable: bool) -> Response {
    Response::Error(RemoteError {
        code,
        message: message.into(),
        retryable,
    })
}

impl Batches {
    /// Answers `PredictChunk`: rows of a chunk this node holds, predicted with the model
    /// (loaded once; fetched from a holder if this node lacks it).
    pub async fn serve_predict_chunk(
        &self,
        model: &str,
        version: u32,
        chunk: ChunkId,
        offset: u32,
        rows: u32,
        proba: bool,
    ) -> Response {
        let m = match self.models.model(model, version).await {
            Ok(m) => m,
            Err(e) => return refuse(ErrorCode::NotFound, e.to_string(), true),
        };
        let columns = self.consensus().state().read(|s| {
            s.datasets
                .values()
                .find(|d| d.chunks.iter().any(|c| c.id == chunk))
                .cloned()
        });
        // The layout is built outside the state's lock (it indexes the label table).
        let columns = columns.map(|d| {
            let layout = d.layout();
            (d.name.clone(), d.feature_names.clone(), d.kinds(), layout)
        });
        let Some((dataset, columns, kinds, layout)) = columns else {
            return refuse(
                ErrorCode::NotFound,
                format!("chunk {chunk} is in no dataset"),
                false,
            );
        };
        let bytes = match self
            .datasets
            .chunks()
            .with_store(move |s| s.chunk(&chunk))
            .await
        {
            Ok(b) => b,
            Err(e) => return refuse(ErrorCode::NotFound, e.to_string(), true),
        };
        let work = move || -> Result<Response, MeshError> {
            let c = layout?.decode(&chunk, &bytes)?;
            let (start, n) = (offset as usize, rows as usize);
            if start + n > c.rows {
                return Err(MeshError::bad(format!(
                    "rows {start}..{} of a chunk of {}",
                    start + n,
                    c.rows
                )));
            }
            let cols = column_map(&m.artifact.feature_names, &columns, &dataset)
                .map_err(|e| MeshError::bad(e.to_string()))?;
            let slice = c.features[start * c.cols..(start + n) * c.cols].to_vec();
            let identity = cols.len() == c.cols && cols.iter().enumerate().all(|(i, &j)| i == j);
            let x = Matrix::from_vec(n, c.cols, slice).and_then(|x| {
                if identity {
                    Ok(x)
                } else {
                    x.select_cols(&cols)
                }
            })?;
            // The dataset's category codes in the model's terms (its training data may have
            // had other categories).
            let from: Vec<_> = cols.iter().map(|&j| kinds[j].clone()).collect();
            let x = meshml_models::schema::recode(
                x,
                &from,
                &m.artifact.feature_kinds(),
                &m.artifact.feature_names,
            )?;
            let model = &m.artifact.model;
            Ok(if model.is_regressor() {
                Response::ChunkPredictions {
                    classes: Vec::new(),
                    values: le_bytes_f32(&model.predict_values(&x)?),
                    proba: Vec::new(),
                }
            } else if proba {
                let p = model.predict_proba(&x)?;
                Response::ChunkPredictions {
                    classes: meshml_models::traits::argmax_rows(&p),
                    values: Vec::new(),
                    proba: le_bytes_f32(&p.to_vec()),
                }
            } else {
                Response::ChunkPredictions {
                    classes: model.predict(&x)?,
                    values: Vec::new(),
                    proba: Vec::new(),
                }
            })
        };
        match tokio::task::spawn_blocking(work).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Response::Error(e.into()),
            Err(e) => refuse(ErrorCode::Internal, e.to_string(), true),
        }
    }

    /// Checks a batch request and starts it; returns its id.
    pub async fn start(&self, req: BatchRequest) -> Result<String, MeshError> {
        let (name, version) = self
            .consensus()
            .state()
            .read(|s| crate::serving::resolve(s, &req.model))?;
        let served = self.models.model(&name, version).await?;
        if matches!(served.artifact.model, FittedModel::MultiOutput(_)) {
            return Err(MeshError::bad(
                "batch prediction of a multi-output model is not supported; serve it online",
            ));
        }
        let regressor = served.artifact.model.is_regressor();
        if req.proba && (regressor || served.artifact.model.is_clusterer()) {
            return Err(MeshError::bad(format!(
                "a {} has no probabilities: drop --proba",
                if regressor { "regressor" } else { "clusterer" }
            )));
        }
        let (manifest, holders) = self.datasets.holders(&req.dataset)?;
        column_map(
            &served.artifact.feature_names,
            &manifest.feature_names,
            &req.dataset,
        )
        .map_err(|e| MeshError::bad(e.to_string()))?;
        if !req.ignore_extra_columns {
            refuse_extra(
                &served.artifact.feature_names,
                &manifest.feature_names,
                &req.dataset,
            )
            .map_err(|e| MeshError::bad(e.to_string()))?;
        }
        if let Some(into) = &req.into {
            meshml_storage::error::check_name(into)
                .map_err(|e| MeshError::bad(format!("--into: {e}")))?;
            if self
                .consensus()
                .state()
                .read(|s| s.datasets.contains_key(into))
            {
                return Err(MeshError::conflict(format!("a dataset '{into}' exists")));
            }
        }
        let k = served.artifact.classes.len();
        let per_row = 6 + if req.proba { 4 * k } else { 4 };
        let slice_rows = (SLICE_BYTES / per_row).max(1);
        let mut slices = Vec::new();
        let mut first_row = 0u64;
        for (c, hs) in manifest.chunks.iter().zip(holders) {
            let mut offset = 0usize;
            while offset < c.rows as usize {
                let rows = slice_rows.min(c.rows as usize - offset);
                slices.push(Slice {
                    chunk: c.id,
                    holders: hs.clone(),
                    offset: offset as u32,
                    rows: rows as u32,
                    first_row: first_row + offset as u64,
                });
                offset += rows;
            }
            first_row += u64::from(c.rows);
        }
        balance(&mut slices);
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let id = format!("p{at:x}-{:04x}", rand_suffix());
        let view = Arc::new(Mutex::new(BatchView {
            id: id.clone(),
            model: name.clone(),
            version,
            dataset: req.dataset.clone(),
            state: "running".into(),
            rows_done: 0,
            rows_total: manifest.rows,
            error: None,
            into: req.into.clone(),
            csv_bytes: None,
            elapsed_ms: 0,
        }));
        {
            let mut runs = self.runs.lock().expect("batches");
            // Forget the oldest finished batches (and their files).
            let finished: Vec<String> = runs
                .iter()
                .filter(|(_, v)| v.lock().expect("batch").state != "running")
                .map(|(k, _)| k.clone())
                .collect();
            for old in finished
                .iter()
                .take(finished.len().saturating_sub(KEEP_FINISHED - 1))
            {
                runs.remove(old);
                let _ = std::fs::remove_file(self.csv_path(old));
            }
            runs.insert(id.clone(), view.clone());
        }
        let mesh = self.clone();
        let job = Job {
            id: id.clone(),
            req,
            served,
            slices,
            view,
        };
        actix_rt::spawn(async move { mesh.run(job).await });
        Ok(id)
    }

    async fn run(self, job: Job) {
        let started = std::time::Instant::now();
        let outcome = self.predict_all(&job).await;
        let mut v = job.view.lock().expect("batch");
        v.elapsed_ms = started.elapsed().as_millis() as u64;
        match outcome {
            Ok(bytes) => {
                v.state = "succeeded".into();
                v.csv_bytes = bytes;
            }
            Err(e) => {
                tracing::warn!(batch = %job.id, cause = %e, "batch prediction failed");
                v.state = "failed".into();
                v.error = Some(e.to_string());
                let _ = std::fs::remove_file(self.csv_path(&job.id));
            }
        }
        tracing::info!(batch = %job.id, state = %v.state, ms = v.elapsed_ms, "batch prediction ended");
    }

    /// Predicts every slice (a bounded number at once, answers kept in row order) into
    /// the CSV; with `into`, stores that CSV as a dataset. Returns the CSV's size when it
    /// is kept for download.
    async fn predict_all(&self, job: &Job) -> Result<Option<u64>, MeshError> {
        let art = &job.served.artifact;
        let path = self.csv_path(&job.id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| MeshError::internal(format!("{}: {e}", dir.display())))?;
        }
        let file = std::fs::File::create(&path)
            .map_err(|e| MeshError::internal(format!("{}: {e}", path.display())))?;
        let mut out = std::io::BufWriter::new(file);
        let into = job.req.into.is_some();
        let labels = art.classes.labels();
        let mut header: Vec<String> = Vec::new();
        if into {
            header.push("row".into());
        }
        if job.req.proba {
            header.extend(labels.iter().map(|l| format!("p_{l}")));
        }
        let target = match art.prediction_column() {
            "row" if into => "prediction".to_string(),
            name => name.to_string(),
        };
        // For a download the prediction comes first (as `meshml local predict` writes it);
        // a dataset has its target last.
        if into {
            header.push(target);
        } else {
            header.insert(0, target);
        }
        let io = |e: std::io::Error| MeshError::internal(format!("{}: {e}", path.display()));
        writeln!(out, "{}", csv_line(&header)).map_err(io)?;
        let live = self.consensus().live_ids().await;
        let in_flight = (2 * live.len()).clamp(2, 16);
        let mut answers = futures::stream::iter(job.slices.iter().cloned())
            .map(|s| self.predict_slice(job, s, live.clone()))
            .buffered(in_flight);
        let k = labels.len();
        let mut line = String::new();
        while let Some(answer) = answers.next().await {
            let (slice, a) = answer?;
            let n = slice.rows as usize;
            for r in 0..n {
                line.clear();
                let mut pred = String::new();
                if a.classes.is_empty() {
                    pred.push_str(&a.values[r].to_string());
                } else {
                    push_csv_field(&mut pred, &labels[a.classes[r] as usize]);
                }
                if !into {
                    line.push_str(&pred);
                } else {
                    line.push_str(&(slice.first_row + r as u64).to_string());
                }
                if !a.proba.is_empty() {
                    for p in &a.proba[r * k..(r + 1) * k] {
                        line.push_str(&format!(",{p:.6}"));
                    }
                }
                if into {
                    line.push(',');
                    line.push_str(&pred);
                }
                line.push('\n');
                out.write_all(line.as_bytes()).map_err(io)?;
            }
            job.view.lock().expect("batch").rows_done += n as u64;
        }
        drop(answers);
        out.flush().map_err(io)?;
        drop(out);
        let Some(into) = &job.req.into else {
            let len = std::fs::metadata(&path).map_err(io)?.len();
            return Ok(Some(len));
        };
        let put = PutDatasetRequest {
            name: into.clone(),
            replicas: job.req.replicas.unwrap_or(1).max(1),
            chunk_rows: 65_536,
            target: None,
            regression: art.model.is_regressor(),
            format: "csv".into(),
            source: Some(format!("predictions of batch {}", job.id)),
            categorical: Vec::new(),
            numeric: Vec::new(),
            na_values: None,
            max_categories: None,
        };
        let result = self.datasets.put(path.clone(), put).await;
        let _ = std::fs::remove_file(&path);
        result.map(|_| None)
    }

    /// One slice from the first holder that answers (starting at a different holder per
    /// slice, to spread the work).
    async fn predict_slice(
        &self,
        job: &Job,
        s: Slice,
        live: Vec<u64>,
    ) -> Result<(Slice, Answer), MeshError> {
        let holders: Vec<u64> = s
            .holders
            .iter()
            .copied()
            .filter(|h| live.contains(h))
            .collect();
        if holders.is_empty() {
            return Err(MeshError::unavailable(format!(
                "chunk {} has no live holder",
                s.chunk
            )));
        }
        // `balance` put the holder this slice is meant for first; the others are fallbacks.
        let (name, version) = (job.served.name.clone(), job.served.version);
        let mut why = String::new();
        for h in holders {
            let answer = if h == self.consensus().id() {
                self.serve_predict_chunk(&name, version, s.chunk, s.offset, s.rows, job.req.proba)
                    .await
            } else {
                let Some(peer) = self.consensus().peer_of(h) else {
                    why = format!("member {h} has no address");
                    continue;
                };
                let req = Request::PredictChunk {
                    model: name.clone(),
                    version,
                    chunk: s.chunk,
                    offset: s.offset,
                    rows: s.rows,
                    proba: job.req.proba,
                };
                match self.consensus().client().request(peer, req).await {
                    Ok(r) => r,
                    Err(e) => {
                        why = e.to_string();
                        continue;
                    }
                }
            };
            match answer {
                Response::ChunkPredictions {
                    classes,
                    values,
                    proba,
                } => {
                    let a = Answer {
                        classes,
                        values: f32s_from_le(&values),
                        proba: f32s_from_le(&proba),
                    };
                    let n = s.rows as usize;
                    let k = job.served.artifact.classes.len();
                    let complete = (a.classes.len() == n || a.values.len() == n)
                        && (!job.req.proba || a.proba.len() == n * k)
                        && a.classes.iter().all(|c| (*c as usize) < k.max(1));
                    if complete {
                        return Ok((s, a));
                    }
                    why = format!("member {h} answered a slice of the wrong size");
                }
                Response::Error(e) if !e.retryable => {
                    return Err(MeshError::bad(format!("member {h}: {}", e.message)))
                }
                Response::Error(e) => why = e.message,
                other => why = format!("member {h} answered {other:?}"),
            }
        }
        Err(MeshError::unavailable(format!(
            "no holder of chunk {} predicted rows {}..{}: {why}",
            s.chunk,
            s.offset,
            s.offset + s.rows
        )))
    }
}

/// A running batch.
struct Job {
    id: String,
    req: BatchRequest,
    served: Arc<crate::serving::ServedModel>,
    slices: Vec<Slice>,
    view: Arc<Mutex<BatchView>>,
}

fn rand_suffix() -> u16 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (t ^ std::process::id()) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(i: u8, holders: &[u64]) -> Slice {
        Slice {
            chunk: ChunkId::from_bytes([i; 32]),
            holders: holders.to_vec(),
            offset: 0,
            rows: 100,
            first_row: u64::from(i) * 100,
        }
    }

    #[test]
    fn every_holder_gets_a_share_and_a_member_with_few_chunks_is_not_left_out() {
        // Member 3 holds two chunks, each ranked second: taking each chunk's first holder
        // (or alternating) would leave it out.
        let mut s = vec![
            slice(0, &[1, 2]),
            slice(1, &[1, 3]),
            slice(2, &[2, 1]),
            slice(3, &[2, 3]),
            slice(4, &[1, 2]),
            slice(5, &[2, 1]),
        ];
        balance(&mut s);
        let first: Vec<u64> = s.iter().map(|s| s.holders[0]).collect();
        assert_eq!(first, vec![1, 3, 2, 3, 1, 2]);
        // Every holder stays, the chosen first and the rest in rank order.
        assert_eq!(s[1].holders, vec![3, 1]);
        assert_eq!(s[2].holders, vec![2, 1]);
    }
}
