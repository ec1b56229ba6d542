//! The mesh routes of the HTTP API: datasets, jobs and models.
//!
//! - `POST /v1/datasets?name=N&replicas=R[&chunk_rows=K][&target=T][&regression=true][&format=parquet]`
//!   with the file as the body: stored on `R` members (see [`crate::services::datasets`]); `201` with the
//!   placement. `GET /v1/datasets`, `GET /v1/datasets/{name}`; `DELETE /v1/datasets/{name}`
//!   (through Raft; every holder frees its copies); `GET /v1/datasets/{name}/rows?format=csv|parquet`
//!   (the rows as a file, streamed chunk by chunk from the holders in row order).
//! - `POST /v1/jobs` with a JSON [`JobRequest`]: checked against the dataset, recorded, `202`
//!   with the job id. `GET /v1/jobs`, `GET /v1/jobs/{id}` (progress, result),
//!   `POST /v1/jobs/{id}/cancel`.
//! - `GET /v1/models`: the registry (every version, its aliases, its holders, whether this
//!   node has it loaded).
//! - `POST /v1/models/{name}/predict` and `POST /v1/models/{name}/versions/{v}/predict`:
//!   online prediction (see [`crate::serving`]); `{name}` may be `NAME@VERSION` or
//!   `NAME@ALIAS`. JSON or MessagePack (`application/msgpack`) bodies; the answer comes as
//!   `Accept` asks (else in the body's format), and so do errors (else as JSON).
//! - `PUT /v1/models/{name}/aliases/{alias}` with `{"version": N}`: points an alias
//!   (`production`, `staging`) at a version on every node.
//! - `POST /v1/predictions` with a JSON [`crate::batch::BatchRequest`]: batch prediction
//!   of a dataset, chunk by chunk where the chunks are; `202` with its id.
//!   `GET /v1/predictions`, `GET /v1/predictions/{id}` (progress),
//!   `GET /v1/predictions/{id}/csv` (the predictions, in row order).
//! - `GET /v1/openapi.json`: the OpenAPI description of every route.
//!
//! Errors are JSON `{"error": "..."}` with a 4xx status for bad input.

use std::io::Write;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use meshml_models::plan::Planner;
use meshml_protocol::JobId;
use meshml_storage::export::TableFormat;
use meshml_storage::raft::{ClusterCommand, JobRecord, JobState};
use schemars::JsonSchema;
use serde::Deserialize;

use super::openapi::{
    ok, ok_with, refused, register, schema, Access, Answer, Body, Method, Operation,
};
use super::state::{authorized, error, ApiState};
use meshml_client::api::{
    AliasRequest, AliasSet, BatchRequest, BatchView, Cancelled, ChunkView, Created, DatasetDetail,
    DatasetRemoved, DatasetStored, Health, ModelView, PredictRequest, PredictResponse, StatusView,
};
pub use meshml_client::api::{DatasetView, JobView, TaskView};

use crate::error::MeshError;
use crate::job::{JobRequest, JobSummary};
use crate::mesh::Mesh;
use crate::services::consensus::{Consensus, REPLICA_LAG};
use crate::services::datasets::PutDatasetRequest;

/// Largest job request body.
const MAX_JOB_BYTES: usize = 1 << 20;

fn fail(e: MeshError) -> HttpResponse {
    error(
        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.to_string(),
    )
}

/// [`fail`] in the negotiated format.
fn fail_as(msgpack: bool, e: MeshError) -> HttpResponse {
    refuse_as(
        msgpack,
        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.to_string(),
    )
}

// The error is the response itself, built once per refused request.
#[allow(clippy::result_large_err)]
fn guard(req: &HttpRequest, state: &ApiState) -> Result<Mesh, HttpResponse> {
    if !authorized(req, state) {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        ));
    }
    state.mesh.clone().ok_or_else(|| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node does not run the mesh services",
        )
    })
}

/// Query of `POST /v1/datasets`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PutQuery {
    /// Dataset name.
    name: String,
    /// Copies of each chunk (capped by the live members).
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    replicas: usize,
    /// Rows per chunk (default: sized to about 8 MiB).
    #[serde(default)]
    #[schemars(range(min = 1))]
    chunk_rows: Option<usize>,
    /// Target column (default: the last).
    #[serde(default)]
    target: Option<String>,
    /// Treat the target as real values (a regression target).
    #[serde(default)]
    regression: bool,
    /// The body's format (default csv).
    #[serde(default)]
    #[schemars(extend("enum" = ["csv", "parquet"]))]
    format: Option<String>,
    /// What to call the uploaded file in error messages (its name); default `upload of
    /// 'NAME'`.
    #[serde(default)]
    source: Option<String>,
    /// Columns read as categorical whatever their cells, comma-separated.
    #[serde(default)]
    categorical: Option<String>,
    /// Columns read as numbers whatever their cells, comma-separated.
    #[serde(default)]
    numeric: Option<String>,
    /// Cells read as missing, comma-separated, instead of NA, NaN, nan, null and None (an
    /// empty cell always is).
    #[serde(default)]
    na_values: Option<String>,
    /// Most distinct categories of one column (default 100000).
    #[serde(default)]
    #[schemars(range(min = 1))]
    max_categories: Option<usize>,
}

fn comma_list(v: Option<&str>) -> Vec<String> {
    v.map(|s| {
        s.split(',')
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

fn one() -> usize {
    1
}

async fn put_dataset(
    req: HttpRequest,
    state: web::Data<ApiState>,
    query: web::Query<PutQuery>,
    mut body: web::Payload,
) -> HttpResponse {
    let mesh = match guard(&req, &state) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let q = query.into_inner();
    let format = q.format.unwrap_or_else(|| "csv".into());
    if format != "csv" && format != "parquet" {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("format '{format}': expected csv or parquet"),
        );
    }
    if let Err(e) = meshml_storage::error::check_name(&q.name) {
        return error(StatusCode::BAD_REQUEST, &e.to_string());
    }
    // The body goes to a file in the data directory, never all into memory.
    let incoming = mesh.chunks.dir().join("incoming");
    let path = incoming.join(format!("{}.upload-{}", q.name, std::process::id()));
    let mut file =
        match std::fs::create_dir_all(&incoming).and_then(|()| std::fs::File::create(&path)) {
            Ok(f) => std::io::BufWriter::new(f),
            Err(e) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("{}: {e}", path.display()),
                )
            }
        };
    let mut received = 0u64;
    while let Some(piece) = body.next().await {
        let written = piece.map_err(|e| e.to_string()).and_then(|b| {
            received += b.len() as u64;
            file.write_all(&b).map_err(|e| e.to_string())
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&path);
            return error(StatusCode::BAD_REQUEST, &format!("upload failed: {e}"));
        }
    }
    if let Err(e) = file.flush() {
        let _ = std::fs::remove_file(&path);
        return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
    }
    drop(file);
    if received == 0 {
        let _ = std::fs::remove_file(&path);
        return error(StatusCode::BAD_REQUEST, "empty upload");
    }
    let request = PutDatasetRequest {
        name: q.name,
        replicas: q.replicas,
        chunk_rows: q
            .chunk_rows
            .unwrap_or(meshml_storage::ingest::DEFAULT_CHUNK_ROWS),
        target: q.target,
        regression: q.regression,
        format,
        source: q.source,
        categorical: comma_list(q.categorical.as_deref()),
        numeric: comma_list(q.numeric.as_deref()),
        na_values: q
            .na_values
            .as_deref()
            .map(|s| s.split(',').map(str::to_string).collect()),
        max_categories: q.max_categories,
    };
    let result = mesh.datasets.put(path.clone(), request).await;
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(path.with_extension("parquet"));
    match result {
        Ok((m, placement)) => HttpResponse::Created().json(DatasetStored {
            features: m.n_features(),
            chunks: m.chunks.len(),
            bytes: m.bytes(),
            chunks_per_member: placement
                .iter()
                .map(|(id, n)| (id.to_string(), *n))
                .collect(),
            name: m.name,
            rows: m.rows,
        }),
        Err(e) => fail(e),
    }
}

fn dataset_views(mesh: &Mesh) -> Vec<DatasetView> {
    mesh.consensus.state().read(|s| {
        s.datasets
            .values()
            .map(|m| DatasetView {
                name: m.name.clone(),
                rows: m.rows,
                features: m.n_features(),
                chunks: m.chunks.len(),
                bytes: m.bytes(),
                min_replicas: m
                    .chunks
                    .iter()
                    .map(|c| s.chunk_locations.get(&c.id).map_or(0, Vec::len))
                    .min()
                    .unwrap_or(0),
                classes: match &m.target {
                    meshml_storage::TargetSchema::Classes { classes, .. } => {
                        classes.labels().to_vec()
                    }
                    meshml_storage::TargetSchema::Values => Vec::new(),
                },
            })
            .collect()
    })
}

async fn list_datasets(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    match guard(&req, &state) {
        Ok(mesh) => HttpResponse::Ok().json(dataset_views(&mesh)),
        Err(r) => r,
    }
}

async fn show_dataset(
    req: HttpRequest,
    state: web::Data<ApiState>,
    name: web::Path<String>,
) -> HttpResponse {
    let mesh = match guard(&req, &state) {
        Ok(m) => m,
        Err(r) => return r,
    };
    // A dataset stored a moment ago through another node may not be applied here yet.
    let _ = (mesh.consensus)
        .find_soon(REPLICA_LAG, |s| {
            s.datasets.contains_key(name.as_str()).then_some(())
        })
        .await;
    let holders = mesh.consensus.state().read(|s| {
        s.datasets.get(name.as_str()).map(|m| {
            m.chunks
                .iter()
                .map(|c| ChunkView {
                    id: c.id.to_string(),
                    rows: c.rows,
                    bytes: c.bytes,
                    holders: s.chunk_locations.get(&c.id).cloned().unwrap_or_default(),
                })
                .collect::<Vec<_>>()
        })
    });
    match (
        dataset_views(&mesh).into_iter().find(|d| d.name == *name),
        holders,
    ) {
        (Some(view), Some(chunks)) => {
            let (feature_names, target, replicas, source, columns) =
                mesh.consensus.state().read(|s| {
                    s.datasets
                        .get(name.as_str())
                        .map(|m| {
                            (
                                m.feature_names.clone(),
                                m.target_name.clone(),
                                s.dataset_replicas.get(&m.name).copied().unwrap_or(1),
                                m.source.clone(),
                                crate::dataset::column_views(m),
                            )
                        })
                        .unwrap_or_default()
                });
            HttpResponse::Ok().json(DatasetDetail {
                dataset: view,
                feature_names,
                target,
                replicas,
                source,
                columns,
                chunks,
            })
        }
        _ => error(
            StatusCode::NOT_FOUND,
            &format!("no dataset '{name}' on the mesh"),
        ),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn job_view(id: &str, j: &JobRecord) -> JobView {
    let (done, total) = j.progress();
    let result: Option<JobSummary> = if j.result.is_empty() {
        None
    } else {
        rmp_serde::from_slice(&j.result).ok()
    };
    // A data-parallel fit's passes: its result's once ended, else its last checkpoint's.
    let passes = result.as_ref().and_then(|r| r.passes.clone()).or_else(|| {
        j.checkpoint
            .as_ref()
            .map(|c| meshml_client::api::PassesView {
                passes: c.passes,
                stage: c.stage.clone(),
                loss: c.loss,
                gradient: c.gradient,
                wall_ms: None,
                compute_ms: None,
            })
    });
    JobView {
        id: id.to_string(),
        description: j.description.clone(),
        state: match j.state {
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
        .to_string(),
        done,
        total,
        elapsed_ms: j
            .finished_ms
            .unwrap_or_else(now_ms)
            .saturating_sub(j.submitted_ms),
        error: j.error.clone(),
        result,
        tasks: None,
        mode: rmp_serde::from_slice::<JobRequest>(&j.spec)
            .ok()
            .and_then(|r| r.mode),
        passes,
    }
}

fn task_views(j: &JobRecord) -> Vec<TaskView> {
    j.tasks
        .iter()
        .map(|(id, t)| TaskView {
            id: id.to_string(),
            state: format!("{:?}", t.state).to_lowercase(),
            holders: t.holders.clone(),
            score: t.score,
        })
        .collect()
}

/// Query of `GET /v1/jobs/{id}`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ShowQuery {
    /// Also list every task.
    #[serde(default)]
    tasks: bool,
}

#[tracing::instrument(skip_all, fields(job_id = tracing::field::Empty))]
async fn submit_job(
    req: HttpRequest,
    state: web::Data<ApiState>,
    payload: web::Payload,
) -> HttpResponse {
    let mesh = match guard(&req, &state) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let body = match read_body(payload, MAX_JOB_BYTES, "a job request is at most 1 MiB").await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let request: JobRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("not a job request: {e}")),
    };
    match submit(&mesh.consensus, request, mesh.train_memory).await {
        Ok((id, mode)) => {
            tracing::Span::current().record("job_id", id.as_str());
            tracing::info!(%mode, "job submitted");
            HttpResponse::Accepted().json(Created {
                id,
                mode: Some(mode),
            })
        }
        Err(e) => fail(e),
    }
}

/// Checks a job against the mesh's datasets, decides whether it runs data-parallel (asked
/// for, or its dataset larger than `train_memory` bytes) and records it; returns its id and
/// how it runs and why. A dataset stored a moment ago through another node is waited for
/// (up to [`REPLICA_LAG`]).
pub async fn submit(
    consensus: &Consensus,
    mut request: JobRequest,
    train_memory: u64,
) -> Result<(String, String), MeshError> {
    let manifest = consensus
        .find_soon(REPLICA_LAG, |s| s.datasets.get(&request.dataset).cloned())
        .await
        .ok_or_else(|| {
            MeshError::not_found(format!("no dataset '{}' on the mesh", request.dataset))
        })?;
    if let Some(t) = &request.test_dataset {
        let found = consensus
            .find_soon(REPLICA_LAG, |s| s.datasets.contains_key(t).then_some(()))
            .await;
        if found.is_none() {
            return Err(MeshError::not_found(format!(
                "no test dataset '{t}' on the mesh"
            )));
        }
    }
    let summary = crate::driver::board::summary_of(&manifest);
    Planner::new(request.job.clone(), summary).map_err(|e| MeshError::bad(e.to_string()))?;
    let mode = decide_mode(&mut request, &manifest, train_memory)?;
    meshml_storage::error::check_name(&request.model_name())
        .map_err(|e| MeshError::bad(format!("model name: {e}")))?;
    let at = now_ms();
    let salt = blake3::hash(format!("{}{at}{}", consensus.id(), std::process::id()).as_bytes());
    let id = JobId::new(format!("{at:x}-{}", &salt.to_hex()[..6]));
    let record = JobRecord {
        spec: rmp_serde::to_vec_named(&request).expect("requests encode"),
        description: format!("{} on {}", request.job.describe(), request.dataset),
        state: JobState::Running,
        submitted_ms: at,
        finished_ms: None,
        tasks: Default::default(),
        error: None,
        result: Vec::new(),
        checkpoint: None,
    };
    let r = consensus
        .propose(ClusterCommand::SubmitJob {
            id: id.clone(),
            record,
        })
        .await?;
    if !r.ok {
        return Err(MeshError::conflict(r.error.unwrap_or_default()));
    }
    consensus.wait_applied(|s| s.jobs.contains_key(&id)).await?;
    Ok((id.to_string(), mode))
}

/// Whether a job runs data-parallel, and why: as asked, else when its dataset's matrix
/// (4 bytes a cell, the target included) is larger than `train_memory`. A data-parallel
/// job's estimator is checked against the dataset's schema here, so that a job that cannot
/// run that way is refused at once, saying why.
fn decide_mode(
    request: &mut JobRequest,
    manifest: &meshml_storage::DatasetManifest,
    train_memory: u64,
) -> Result<String, MeshError> {
    use meshml_client::human_bytes;
    let bytes = manifest
        .rows
        .saturating_mul(manifest.n_features() as u64 + 1)
        .saturating_mul(4);
    let (parallel, why) = match request.data_parallel {
        Some(true) => (true, "asked for".to_string()),
        Some(false) => (false, "asked for".to_string()),
        None if bytes > train_memory => (
            true,
            format!(
                "the dataset takes {} in memory, more than this node's training memory ({}, --train-memory-mb)",
                human_bytes(bytes),
                human_bytes(train_memory)
            ),
        ),
        None => (
            false,
            format!(
                "the dataset takes {} in memory, within this node's training memory ({})",
                human_bytes(bytes),
                human_bytes(train_memory)
            ),
        ),
    };
    if parallel {
        let schema = manifest
            .chunk_reader()
            .and_then(|r| r.finish())
            .map_err(|e| MeshError::internal(e.to_string()))?;
        let fit =
            meshml_models::parallel::DataParallelJob::new(&request.job, &schema, manifest.rows)
                .map_err(|e| MeshError::bad(format!("data-parallel ({why}): {e}")))?;
        let limit = crate::driver::rounds::MAX_ANSWER_BYTES;
        let largest = fit
            .largest_partial_bytes()
            .map_err(|e| MeshError::bad(format!("data-parallel ({why}): {e}")))?;
        if largest > limit {
            return Err(MeshError::bad(format!(
                "data-parallel ({why}): {} on {} features: one chunk's partial result takes \
                 about {}, more than a member's answer may carry ({})",
                request.job.describe(),
                manifest.n_features(),
                human_bytes(largest as u64),
                human_bytes(limit as u64)
            )));
        }
    }
    request.data_parallel = Some(parallel);
    let mode = format!(
        "{}: {why}",
        if parallel {
            "data-parallel"
        } else {
            "in memory"
        }
    );
    request.mode = Some(mode.clone());
    Ok(mode)
}

async fn list_jobs(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    match guard(&req, &state) {
        Ok(mesh) => {
            let jobs: Vec<JobView> = mesh.consensus.state().read(|s| {
                s.jobs
                    .iter()
                    .map(|(id, j)| job_view(id.as_str(), j))
                    .collect()
            });
            HttpResponse::Ok().json(jobs)
        }
        Err(r) => r,
    }
}

#[tracing::instrument(skip_all, fields(job_id = %id))]
async fn show_job(
    req: HttpRequest,
    state: web::Data<ApiState>,
    id: web::Path<String>,
    query: web::Query<ShowQuery>,
) -> HttpResponse {
    let mesh = match guard(&req, &state) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let with_tasks = query.tasks;
    let view = mesh.consensus.state().read(|s| {
        s.jobs.get(id.as_str()).map(|j| {
            let mut v = job_view(&id, j);
            if with_tasks {
                v.tasks = Some(task_views(j));
            }
            v
        })
    });
    match view {
        Some(v) => HttpResponse::Ok().json(v),
        None => error(StatusCode::NOT_FOUND, &format!("no job '{id}'")),
    }
}

#[tracing::instrument(skip_all, fields(job_id = %id))]
async fn cancel_job(
    req: HttpRequest,
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> HttpResponse {
    let mesh = match guard(&req, &state) {
        Ok(m) => m,
        Err(r) => return r,
    };
    if !mesh
        .consensus
        .state()
        .read(|s| s.jobs.contains_key(id.as_str()))
    {
        return error(StatusCode::NOT_FOUND, &format!("no job '{id}'"));
    }
    let cmd = ClusterCommand::FinishJob {
        job: JobId::new(id.as_str()),
        state: JobState::Cancelled,
        at_ms: now_ms(),
        error: None,
        result: Vec::new(),
    };
    let ended = |s: &meshml_storage::raft::ClusterState| {
        s.jobs
            .get(id.as_str())
            .is_some_and(|j| j.state != JobState::Running)
    };
    match mesh.consensus.propose(cmd).await {
        Ok(r) if r.ok => match mesh.consensus.wait_applied(ended).await {
            Ok(()) => HttpResponse::Ok().json(Cancelled {
                id: id.to_string(),
                state: "cancelled".into(),
            }),
            Err(e) => fail(e),
        },
        Ok(r) => error(StatusCode::CONFLICT, &r.error.unwrap_or_default()),
        Err(e) => fail(e),
    }
}

async fn list_models(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    match guard(&req, &state) {
        Ok(mesh) => {
            let loaded = mesh.models.loaded();
            let loaded = &loaded;
            let models = mesh.consensus.state().read(|s| {
                s.models
                    .iter()
                    .flat_map(|(name, versions)| {
                        versions.iter().map(move |(v, r)| ModelView {
                            name: name.clone(),
                            version: *v,
                            kind: r.kind.clone(),
                            artifact: r.artifact.to_string(),
                            locations: r.locations.clone(),
                            aliases: s
                                .aliases
                                .get(name)
                                .map(|a| {
                                    a.iter()
                                        .filter(|(_, av)| *av == v)
                                        .map(|(k, _)| k.clone())
                                        .collect::<Vec<_>>()
                                })
                                .unwrap_or_default(),
                            loaded_here: loaded.iter().any(|(n, lv, _)| n == name && lv == v),
                        })
                    })
                    .collect::<Vec<_>>()
            });
            HttpResponse::Ok().json(models)
        }
        Err(r) => r,
    }
}

/// Reads a request body of at most `limit` bytes.
// The error is the response itself.
#[allow(clippy::result_large_err)]
/// Reads a request body of at most `limit` bytes; a longer one is refused (413, the JSON
/// error body) with `why` the limit is what it is.
async fn read_body(
    mut payload: web::Payload,
    limit: usize,
    why: &str,
) -> Result<Vec<u8>, HttpResponse> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is over this node's limit of {limit} bytes ({why})"),
        )
    };
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| error(StatusCode::BAD_REQUEST, &format!("reading the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn header_text<'a>(req: &'a HttpRequest, name: &str) -> &'a str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn is_msgpack(value: &str) -> bool {
    value.contains("application/msgpack") || value.contains("application/x-msgpack")
}

/// What `Accept` asks for: `Some(true)` MessagePack, `Some(false)` JSON, `None` neither or
/// both.
fn accepts_msgpack(req: &HttpRequest) -> Option<bool> {
    let accept = header_text(req, "accept");
    match (is_msgpack(accept), accept.contains("application/json")) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    }
}

/// An error answer in the negotiated format: `{"error": "..."}` as JSON or MessagePack.
fn refuse_as(msgpack: bool, status: StatusCode, message: &str) -> HttpResponse {
    if !msgpack {
        return error(status, message);
    }
    let body = meshml_client::api::ErrorBody {
        error: message.to_string(),
    };
    HttpResponse::build(status)
        .content_type("application/msgpack")
        .body(rmp_serde::to_vec_named(&body).expect("errors encode"))
}

/// Rows a request predicts inline on the HTTP thread; larger ones go to the blocking pool.
const INLINE_ROWS: usize = 256;

#[tracing::instrument(skip_all, fields(model = %spec))]
async fn serve_prediction(
    req: HttpRequest,
    spec: String,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> HttpResponse {
    let mesh = match guard(&req, &state) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let body = match read_body(payload, state.max_request_bytes, "--max-request-mb").await {
        Ok(b) => b,
        Err(r) => return r,
    };
    // Answers come as `Accept` asks, else in the request's format; errors as `Accept` asks,
    // else as JSON.
    let msgpack_in = is_msgpack(header_text(&req, "content-type"));
    let accepts = accepts_msgpack(&req);
    let msgpack_out = accepts.unwrap_or(msgpack_in);
    let msgpack_err = accepts.unwrap_or(false);
    let request: meshml_client::api::PredictRequest = if msgpack_in {
        match rmp_serde::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return refuse_as(
                    msgpack_err,
                    StatusCode::BAD_REQUEST,
                    &format!("invalid MessagePack body: {e}; expected {{\"instances\": [...]}}"),
                )
            }
        }
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return refuse_as(
                    msgpack_err,
                    StatusCode::BAD_REQUEST,
                    &format!("invalid JSON body: {e}; expected {{\"instances\": [...]}}"),
                )
            }
        }
    };
    let (name, version) = match mesh
        .consensus
        .state()
        .read(|s| crate::serving::resolve(s, &spec))
    {
        Ok(v) => v,
        Err(e) => return fail_as(msgpack_err, e),
    };
    let model = match mesh.models.model(&name, version).await {
        Ok(m) => m,
        Err(e) => return fail_as(msgpack_err, e),
    };
    let answer = if request.instances.len() <= INLINE_ROWS {
        crate::serving::predict(&model, &request)
    } else {
        match web::block(move || crate::serving::predict(&model, &request)).await {
            Ok(a) => a,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    };
    match answer {
        Ok(a) if msgpack_out => HttpResponse::Ok()
            .content_type("application/msgpack")
            .body(rmp_serde::to_vec_named(&a).expect("answers encode")),
        Ok(a) => HttpResponse::Ok().json(a),
        Err(m) => refuse_as(msgpack_err, StatusCode::BAD_REQUEST, &m.to_string()),
    }
}

async fn predict_model(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> HttpResponse {
    serve_prediction(req, path.into_inner(), payload, state).await
}

async fn predict_version(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> HttpResponse {
    let (name, version) = path.into_inner();
    if version.parse::<u32>().is_err() {
        return error(
            StatusCode::NOT_FOUND,
            &format!(
                "'{version}' is not a version number (aliases go in the name: {name}@{version})"
            ),
        );
    }
    serve_prediction(req, format!("{name}@{version}"), payload, state).await
}

/// `GET /v1/models/{name}/artifact`: the encoded artifact (what `meshml local predict`
/// reads) of `NAME`, `NAME@VERSION` or `NAME@ALIAS`, resolved as a prediction is; the
/// version goes in `x-meshml-model`.
async fn model_artifact(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<ApiState>,
) -> HttpResponse {
    let mesh = match guard(&req, &state) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let (name, version) = match mesh
        .consensus
        .state()
        .read(|s| crate::serving::resolve(s, &path))
    {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    match mesh.models.artifact_bytes(&name, version).await {
        Ok(bytes) => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .insert_header(("x-meshml-model", format!("{name}@{version}")))
            .body(bytes),
        Err(e) => fail(e),
    }
}

async fn set_alias(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> HttpResponse {
    let mesh = match guard(&req, &state) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let body = match read_body(payload, MAX_JOB_BYTES, "a request is at most 1 MiB").await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (name, alias) = path.into_inner();
    if alias.parse::<u32>().is_ok() {
        return error(
            StatusCode::BAD_REQUEST,
            "an alias cannot be a number (it would shadow a version)",
        );
    }
    if let Err(e) = meshml_storage::error::check_name(&alias) {
        return error(StatusCode::BAD_REQUEST, &format!("alias: {e}"));
    }
    let b: AliasRequest = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("invalid JSON body: {e}; expected {{\"version\": N}}"),
            )
        }
    };
    let cmd = ClusterCommand::SetAlias {
        name: name.clone(),
        alias: alias.clone(),
        version: b.version,
    };
    match mesh.consensus.propose(cmd).await {
        Ok(r) if r.ok => {}
        Ok(r) => return error(StatusCode::NOT_FOUND, &r.error.unwrap_or_default()),
        Err(e) => return fail(e),
    }
    let (n, a, v) = (name.clone(), alias.clone(), b.version);
    if let Err(e) = mesh
        .consensus
        .wait_applied(move |s| s.aliases.get(&n).and_then(|m| m.get(&a)) == Some(&v))
        .await
    {
        return fail(e);
    }
    // Load it here now rather than on the next request.
    let loaded = mesh.models.model(&name, b.version).await.is_ok();
    HttpResponse::Ok().json(AliasSet {
        model: name,
        alias,
        version: b.version,
        loaded_here: loaded,
    })
}

async fn start_batch(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> HttpResponse {
    let mesh = match guard(&req, &state) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let body = match read_body(payload, MAX_JOB_BYTES, "a request is at most 1 MiB").await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let b: BatchRequest = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("invalid JSON body: {e}; expected {{\"model\": ..., \"dataset\": ...}}"),
            )
        }
    };
    match mesh.batches.start(b).await {
        Ok(id) => HttpResponse::Accepted().json(Created { id, mode: None }),
        Err(e) => fail(e),
    }
}

async fn list_batches(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    match guard(&req, &state) {
        Ok(mesh) => HttpResponse::Ok().json(mesh.batches.list()),
        Err(r) => r,
    }
}

async fn show_batch(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<ApiState>,
) -> HttpResponse {
    let mesh = match guard(&req, &state) {
        Ok(m) => m,
        Err(r) => return r,
    };
    match mesh.batches.view(&path) {
        Some(v) => HttpResponse::Ok().json(v),
        None => error(
            StatusCode::NOT_FOUND,
            &format!("no batch '{path}' on this node (a batch lives on the node that ran it)"),
        ),
    }
}

async fn batch_csv(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<ApiState>,
) -> HttpResponse {
    let mesh = match guard(&req, &state) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Some(v) = mesh.batches.view(&path) else {
        return error(
            StatusCode::NOT_FOUND,
            &format!("no batch '{path}' on this node"),
        );
    };
    let Some(len) = v.csv_bytes.filter(|_| v.state == "succeeded") else {
        return error(
            StatusCode::CONFLICT,
            &format!(
                "batch '{path}' is {}{}",
                v.state,
                if v.into.is_some() {
                    " and went into a dataset"
                } else {
                    ""
                }
            ),
        );
    };
    let file = match std::fs::File::open(mesh.batches.csv_path(&path)) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::GONE, &format!("the predictions are gone: {e}")),
    };
    let stream = futures::stream::unfold(file, |mut f| async move {
        use std::io::Read;
        let mut buf = vec![0u8; 256 << 10];
        match f.read(&mut buf) {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(web::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    HttpResponse::Ok()
        .content_type("text/csv")
        .no_chunking(len)
        .streaming(stream)
}

/// `DELETE /v1/datasets/{name}`.
async fn remove_dataset(
    req: HttpRequest,
    state: web::Data<ApiState>,
    name: web::Path<String>,
) -> HttpResponse {
    let mesh = match guard(&req, &state) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let holders: Vec<u64> = match mesh.datasets.holders(&name) {
        Ok((_, hs)) => {
            let mut all: Vec<u64> = hs.into_iter().flatten().collect();
            all.sort_unstable();
            all.dedup();
            all
        }
        Err(e) => return fail(e),
    };
    match mesh.datasets.remove(&name).await {
        Ok(m) => HttpResponse::Ok().json(DatasetRemoved {
            name: m.name.clone(),
            rows: m.rows,
            chunks: m.chunks.len(),
            holders,
        }),
        Err(e) => fail(e),
    }
}

/// Query of `GET /v1/datasets/{name}/rows`.
#[derive(Debug, Deserialize, JsonSchema)]
struct RowsQuery {
    /// `csv` (the default) or `parquet`.
    #[serde(default)]
    #[schemars(extend("enum" = ["csv", "parquet"]))]
    format: Option<String>,
}

/// `GET /v1/datasets/{name}/rows?format=csv|parquet`: the dataset as a file, streamed
/// chunk by chunk in row order.
async fn dataset_rows(
    req: HttpRequest,
    state: web::Data<ApiState>,
    name: web::Path<String>,
    query: web::Query<RowsQuery>,
) -> HttpResponse {
    let mesh = match guard(&req, &state) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let format = match query.format.as_deref() {
        None => TableFormat::Csv,
        Some(f) => match TableFormat::parse(f) {
            Some(f) => f,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("unknown format '{f}'; use csv or parquet"),
                )
            }
        },
    };
    match mesh.datasets.export(&name, format).await {
        Ok((m, stream)) => HttpResponse::Ok()
            .content_type(format.content_type())
            .insert_header(("x-meshml-rows", m.rows.to_string()))
            .streaming(stream.map(|piece| piece.map(web::Bytes::from))),
        Err(e) => fail(e),
    }
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(super::openapi::served())
}

const MODEL_NAME: (&str, &str) = (
    "name",
    "model name (its production alias, else its newest version); NAME@VERSION or \
     NAME@ALIAS also accepted",
);
const BAD_INSTANCES: &str = "bad instances: wrong feature count, unknown or missing feature, \
    non-numeric, NaN or infinite value, no instances, probabilities of a regressor, malformed \
    body";

/// What both prediction routes answer.
const PREDICT_ANSWERS: &[Answer] = &[
    ok(
        200,
        "one prediction per instance",
        Body::Negotiated(schema::<PredictResponse>),
    ),
    refused(400, BAD_INSTANCES),
    refused(404, "no such model, version or alias"),
    refused(413, "body over the node's --max-request-mb"),
    refused(503, "the model's artifact is on no reachable member"),
];

/// Every route of the HTTP API: served from this table ([`configure`]) and described from
/// it ([`super::openapi`]), each body by the type its handler reads or writes.
pub const OPERATIONS: &[Operation] = &[
    Operation {
        id: "health",
        method: Method::Get,
        path: "/v1/health",
        summary: "liveness",
        access: Access::Token,
        path_params: &[],
        query: None,
        body: Body::Empty,
        answers: &[ok(200, "the node answers", Body::Json(schema::<Health>))],
        handler: |r| r.to(super::health),
    },
    Operation {
        id: "status",
        method: Method::Get,
        path: "/v1/status",
        summary: "the mesh as this node sees it: peers, driver, term, members, worker, \
                  scrubber, chunk store",
        access: Access::Token,
        path_params: &[],
        query: None,
        body: Body::Empty,
        answers: &[
            ok(200, "status", Body::Json(schema::<StatusView>)),
            refused(503, "membership unavailable"),
        ],
        handler: |r| r.to(super::status),
    },
    Operation {
        id: "openapi",
        method: Method::Get,
        path: "/v1/openapi.json",
        summary: "this document",
        access: Access::Open,
        path_params: &[],
        query: None,
        body: Body::Empty,
        answers: &[ok(200, "the OpenAPI 3.1 document", Body::AnyJson)],
        handler: |r| r.to(openapi),
    },
    Operation {
        id: "listDatasets",
        method: Method::Get,
        path: "/v1/datasets",
        summary: "datasets on the mesh",
        access: Access::Mesh,
        path_params: &[],
        query: None,
        body: Body::Empty,
        answers: &[ok(200, "datasets", Body::Json(schema::<Vec<DatasetView>>))],
        handler: |r| r.to(list_datasets),
    },
    Operation {
        id: "putDataset",
        method: Method::Post,
        path: "/v1/datasets",
        summary: "store a dataset (the body: a CSV or Parquet file) on `replicas` members, \
                  streamed chunk by chunk",
        access: Access::Mesh,
        path_params: &[],
        query: Some(schema::<PutQuery>),
        body: Body::File(&[
            "text/csv",
            "application/vnd.apache.parquet",
            "application/octet-stream",
        ]),
        answers: &[
            ok(
                201,
                "stored; where the chunks went",
                Body::Json(schema::<DatasetStored>),
            ),
            refused(400, "bad file or parameters"),
            refused(409, "a dataset of that name exists"),
            refused(503, "not enough members"),
        ],
        handler: |r| r.to(put_dataset),
    },
    Operation {
        id: "showDataset",
        method: Method::Get,
        path: "/v1/datasets/{name}",
        summary: "one dataset: columns, chunks and their holders",
        access: Access::Mesh,
        path_params: &[("name", "dataset name")],
        query: None,
        body: Body::Empty,
        answers: &[
            ok(200, "the dataset", Body::Json(schema::<DatasetDetail>)),
            refused(404, "no such dataset"),
        ],
        handler: |r| r.to(show_dataset),
    },
    Operation {
        id: "removeDataset",
        method: Method::Delete,
        path: "/v1/datasets/{name}",
        summary: "remove a dataset from the mesh (through Raft; every holder frees its copies \
                  within seconds; chunks another dataset shares stay)",
        access: Access::Mesh,
        path_params: &[("name", "dataset name")],
        query: None,
        body: Body::Empty,
        answers: &[
            ok(200, "removed", Body::Json(schema::<DatasetRemoved>)),
            refused(404, "no such dataset"),
            refused(409, "a running job reads it"),
            refused(
                503,
                "no driver elected, or the change has not reached this node",
            ),
        ],
        handler: |r| r.to(remove_dataset),
    },
    Operation {
        id: "datasetRows",
        method: Method::Get,
        path: "/v1/datasets/{name}/rows",
        summary: "the dataset's rows as a file, streamed chunk by chunk from its holders in \
                  row order (bounded memory)",
        access: Access::Mesh,
        path_params: &[("name", "dataset name")],
        query: Some(schema::<RowsQuery>),
        body: Body::Empty,
        answers: &[
            ok_with(
                200,
                "the rows: CSV with a header (features, then the target) or Parquet (FLOAT \
                 features; the target FLOAT or a UTF-8 label; a row group per chunk)",
                Body::File(&["text/csv", "application/vnd.apache.parquet"]),
                &[("x-meshml-rows", "the number of rows")],
            ),
            refused(400, "unknown format"),
            refused(404, "no such dataset"),
            refused(503, "a chunk has no live holder"),
        ],
        handler: |r| r.to(dataset_rows),
    },
    Operation {
        id: "listJobs",
        method: Method::Get,
        path: "/v1/jobs",
        summary: "every job with its progress",
        access: Access::Mesh,
        path_params: &[],
        query: None,
        body: Body::Empty,
        answers: &[ok(200, "jobs", Body::Json(schema::<Vec<JobView>>))],
        handler: |r| r.to(list_jobs),
    },
    Operation {
        id: "submitJob",
        method: Method::Post,
        path: "/v1/jobs",
        summary: "submit a job: its kind, estimators and parameters are checked against the \
                  dataset before it is recorded",
        access: Access::Mesh,
        path_params: &[],
        query: None,
        body: Body::Json(schema::<JobRequest>),
        answers: &[
            ok(202, "accepted; the job id", Body::Json(schema::<Created>)),
            refused(400, "a malformed job, or one that does not fit the dataset"),
            refused(404, "no such dataset"),
            refused(409, "a job with that id exists"),
            refused(413, "body over 1 MiB"),
        ],
        handler: |r| r.to(submit_job),
    },
    Operation {
        id: "showJob",
        method: Method::Get,
        path: "/v1/jobs/{id}",
        summary: "a job: state, progress, result",
        access: Access::Mesh,
        path_params: &[("id", "job id")],
        query: Some(schema::<ShowQuery>),
        body: Body::Empty,
        answers: &[
            ok(200, "the job", Body::Json(schema::<JobView>)),
            refused(404, "no such job"),
        ],
        handler: |r| r.to(show_job),
    },
    Operation {
        id: "cancelJob",
        method: Method::Post,
        path: "/v1/jobs/{id}/cancel",
        summary: "cancel a running job",
        access: Access::Mesh,
        path_params: &[("id", "job id")],
        query: None,
        body: Body::Empty,
        answers: &[
            ok(200, "cancelled", Body::Json(schema::<Cancelled>)),
            refused(404, "no such job"),
            refused(409, "the job has ended"),
        ],
        handler: |r| r.to(cancel_job),
    },
    Operation {
        id: "listModels",
        method: Method::Get,
        path: "/v1/models",
        summary: "the model registry",
        access: Access::Mesh,
        path_params: &[],
        query: None,
        body: Body::Empty,
        answers: &[ok(
            200,
            "every version of every model",
            Body::Json(schema::<Vec<ModelView>>),
        )],
        handler: |r| r.to(list_models),
    },
    Operation {
        id: "predict",
        method: Method::Post,
        path: "/v1/models/{name}/predict",
        summary: "predict with a model's production alias (else its newest version)",
        access: Access::Mesh,
        path_params: &[MODEL_NAME],
        query: None,
        body: Body::Negotiated(schema::<PredictRequest>),
        answers: PREDICT_ANSWERS,
        handler: |r| r.to(predict_model),
    },
    Operation {
        id: "modelArtifact",
        method: Method::Get,
        path: "/v1/models/{name}/artifact",
        summary: "download a model's artifact (the file `meshml local predict --model` reads)",
        access: Access::Mesh,
        path_params: &[MODEL_NAME],
        query: None,
        body: Body::Empty,
        answers: &[
            ok_with(
                200,
                "the encoded artifact",
                Body::File(&["application/octet-stream"]),
                &[("x-meshml-model", "the version sent, NAME@VERSION")],
            ),
            refused(404, "no such model, version or alias"),
            refused(503, "no member holding the artifact answered"),
        ],
        handler: |r| r.to(model_artifact),
    },
    Operation {
        id: "predictVersion",
        method: Method::Post,
        path: "/v1/models/{name}/versions/{version}/predict",
        summary: "predict with one version",
        access: Access::Mesh,
        path_params: &[("name", "model name"), ("version", "model version")],
        query: None,
        body: Body::Negotiated(schema::<PredictRequest>),
        answers: PREDICT_ANSWERS,
        handler: |r| r.to(predict_version),
    },
    Operation {
        id: "setAlias",
        method: Method::Put,
        path: "/v1/models/{name}/aliases/{alias}",
        summary: "point an alias (production, staging) at a version, on every node",
        access: Access::Mesh,
        path_params: &[("name", "model name"), ("alias", "alias name")],
        query: None,
        body: Body::Json(schema::<AliasRequest>),
        answers: &[
            ok(
                200,
                "the alias points at the version",
                Body::Json(schema::<AliasSet>),
            ),
            refused(400, "bad alias name or body"),
            refused(404, "no such model version"),
            refused(413, "body over 1 MiB"),
        ],
        handler: |r| r.to(set_alias),
    },
    Operation {
        id: "startBatch",
        method: Method::Post,
        path: "/v1/predictions",
        summary: "batch prediction of a dataset: each holder of a chunk predicts it; \
                  answered at once with the batch id",
        access: Access::Mesh,
        path_params: &[],
        query: None,
        body: Body::Json(schema::<BatchRequest>),
        answers: &[
            ok(202, "started", Body::Json(schema::<Created>)),
            refused(
                400,
                "bad body, a dataset without the model's features, probabilities of a \
                 regressor, a multi-output model",
            ),
            refused(404, "no such model or dataset"),
            refused(409, "the `into` dataset exists"),
            refused(413, "body over 1 MiB"),
            refused(503, "the model's artifact is unreachable"),
        ],
        handler: |r| r.to(start_batch),
    },
    Operation {
        id: "listBatches",
        method: Method::Get,
        path: "/v1/predictions",
        summary: "the batches this node ran",
        access: Access::Mesh,
        path_params: &[],
        query: None,
        body: Body::Empty,
        answers: &[ok(200, "batches", Body::Json(schema::<Vec<BatchView>>))],
        handler: |r| r.to(list_batches),
    },
    Operation {
        id: "showBatch",
        method: Method::Get,
        path: "/v1/predictions/{id}",
        summary: "a batch's progress",
        access: Access::Mesh,
        path_params: &[("id", "batch id")],
        query: None,
        body: Body::Empty,
        answers: &[
            ok(200, "the batch", Body::Json(schema::<BatchView>)),
            refused(404, "no such batch on this node"),
        ],
        handler: |r| r.to(show_batch),
    },
    Operation {
        id: "batchCsv",
        method: Method::Get,
        path: "/v1/predictions/{id}/csv",
        summary: "a finished batch's predictions, in the dataset's row order",
        access: Access::Mesh,
        path_params: &[("id", "batch id")],
        query: None,
        body: Body::Empty,
        answers: &[
            ok(
                200,
                "CSV: the prediction (named after the model's target), then p_<class> \
                 columns when asked",
                Body::File(&["text/csv"]),
            ),
            refused(404, "no such batch on this node"),
            refused(409, "the batch is running, failed, or went into a dataset"),
            refused(410, "the file is gone"),
        ],
        handler: |r| r.to(batch_csv),
    },
];

/// Adds every route of [`OPERATIONS`].
pub fn configure(cfg: &mut web::ServiceConfig) {
    register(OPERATIONS, cfg);
}
