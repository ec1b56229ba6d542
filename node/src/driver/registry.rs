//! Model registration, run by the driver when a job's plan is done: the model artifact is
//! built, stored here, copied to a second member, registered in the model registry, and
//! scored on the job's test dataset.

use meshml_models::metrics::{ConfusionMatrix, TestSums};
use meshml_models::plan::JobResult;
use meshml_models::{Estimator, FittedModel, ModelArtifact, Provenance};
use meshml_protocol::{ChunkId, JobId, Response};
use meshml_storage::raft::{ClusterCommand, ModelRecord};

use super::repair::{by_rank, replicate_to, MODEL_REPLICAS};
use crate::error::MeshError;
use crate::job::{JobRequest, JobSummary, TestReport};
use crate::services::chunks::Chunks;
use crate::services::datasets::Datasets;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Registers the job's model (if any), scores it on the test dataset, and summarises.
#[tracing::instrument(skip_all, fields(job_id = %job))]
pub async fn register(
    datasets: &Datasets,
    job: &JobId,
    request: &JobRequest,
    estimator: Estimator,
    result: JobResult,
) -> Result<JobSummary, MeshError> {
    let mut summary = JobSummary {
        tasks: result.tasks,
        cv: result.cv.clone(),
        model: None,
        test: None,
        end_ms: Default::default(),
        warnings: result.warnings.clone(),
        passes: None,
        losses: Vec::new(),
    };
    let Some(model) = result.model else {
        return Ok(summary);
    };
    let chunks = datasets.chunks();
    // The artifact needs the training data's schema (names, kinds, classes), not its rows:
    // a data-parallel fit's dataset is never loaded whole, here or anywhere.
    let (data, n_samples) = if request.data_parallel == Some(true) {
        let (manifest, _) = datasets.holders(&request.dataset)?;
        let schema = manifest
            .chunk_reader()
            .and_then(|r| r.finish())
            .map_err(|e| MeshError::internal(e.to_string()))?;
        (std::sync::Arc::new(schema), manifest.rows as usize)
    } else {
        let data = datasets.load(&request.dataset).await?;
        let n = data.n_samples();
        (data, n)
    };
    let provenance = Provenance {
        created_at_unix: now_ms() / 1000,
        meshml_version: env!("CARGO_PKG_VERSION").to_string(),
        dataset: Some(request.dataset.clone()),
        n_samples,
        seed: Some(request.job.seed),
        job: Some(job.to_string()),
    };
    // Building and encoding the artifact of a large ensemble takes a while: not on the
    // driver's thread.
    let started = std::time::Instant::now();
    let fitted = model.clone();
    let train_kinds = data.kinds();
    let (kind, bytes) = tokio::task::spawn_blocking(move || {
        let artifact = ModelArtifact::new(estimator, fitted, &data, provenance)?;
        Ok::<_, meshml_models::ModelError>((artifact.kind(), artifact.to_bytes()?))
    })
    .await
    .map_err(|e| MeshError::internal(e.to_string()))?
    .map_err(|e| MeshError::bad(e.to_string()))?;
    summary
        .end_ms
        .insert("artifact".into(), started.elapsed().as_millis() as u64);
    let started = std::time::Instant::now();
    let name = request.model_name();
    let owner = format!("model.{name}");
    let chunk = {
        let owner = owner.clone();
        chunks
            .with_store(move |s| s.put_pinned(&owner, &bytes))
            .await?
    };
    let locations = second_copies(chunks, &owner, chunk).await;
    let r = chunks
        .consensus()
        .propose(ClusterCommand::RegisterModel {
            name: name.clone(),
            record: ModelRecord {
                kind,
                artifact: chunk,
                locations,
            },
        })
        .await?;
    summary.model = Some(format!("{name}@{}", r.value.unwrap_or(0)));
    summary
        .end_ms
        .insert("store".into(), started.elapsed().as_millis() as u64);
    if let Some(test) = &request.test_dataset {
        let started = std::time::Instant::now();
        summary.test = Some(score_on(datasets, test, &model, train_kinds).await?);
        summary
            .end_ms
            .insert("test".into(), started.elapsed().as_millis() as u64);
    }
    Ok(summary)
}

/// Copies a new artifact (stored here) to other live members, by rendezvous rank, until it
/// has [`MODEL_REPLICAS`] copies; returns the holders, this node first. Done before the
/// model is registered and the job reported finished: a driver that crashed right after
/// would otherwise take the only copy with it (the simulator's driver-kill scenario lost a
/// model so). A member that fails is skipped; with none left the repair pass copies the
/// artifact later.
async fn second_copies(chunks: &Chunks, owner: &str, chunk: ChunkId) -> Vec<u64> {
    let me = chunks.consensus().id();
    let mut locations = vec![me];
    let mut others = chunks.consensus().live_ids().await;
    others.retain(|m| *m != me);
    let source = chunks.consensus().client().local_peer_id();
    for target in by_rank(&chunk, &others) {
        if locations.len() >= MODEL_REPLICAS {
            break;
        }
        match replicate_to(chunks, owner.to_string(), chunk, source, target).await {
            Response::Ack => locations.push(target),
            other => {
                tracing::info!(member = target, answer = ?other, "artifact copy failed; trying another member")
            }
        }
    }
    locations
}

/// Scores `model` on the mesh dataset `dataset`: accuracy and confusion matrix for a
/// classifier, R² for a regressor, the inertia of a clusterer, the mean score of a
/// multi-output model. `kinds` are the
/// training data's column kinds: the test data's categories are read in their codes.
async fn score_on(
    datasets: &Datasets,
    dataset: &str,
    model: &FittedModel,
    kinds: Vec<meshml_models::schema::ColumnKind>,
) -> Result<TestReport, MeshError> {
    let report = |metric: &str, score: f64| TestReport {
        dataset: dataset.to_string(),
        metric: metric.to_string(),
        score,
        labels: Vec::new(),
        counts: Vec::new(),
    };
    if let FittedModel::MultiOutput(m) = model {
        let data = datasets.load(dataset).await?;
        let m = m.clone();
        let (mean, _) = tokio::task::spawn_blocking(move || m.evaluate(&data))
            .await
            .map_err(|e| MeshError::internal(e.to_string()))?
            .map_err(|e| MeshError::bad(e.to_string()))?;
        return Ok(report("mean score", mean));
    }
    // One chunk at a time (fetched, decoded, predicted, dropped): the score is a sum, so a
    // test set larger than this node's memory is scored as well.
    let (manifest, holders) = datasets.holders(dataset)?;
    let reader = std::sync::Arc::new(
        manifest
            .chunk_reader()
            .map_err(|e| MeshError::internal(e.to_string()))?,
    );
    let (model, kinds) = (
        std::sync::Arc::new(model.clone()),
        std::sync::Arc::new(kinds),
    );
    let mut sums: Option<TestSums> = None;
    for (c, hs) in manifest.chunks.iter().zip(holders) {
        let id = c.id;
        let (bytes, _) = datasets.chunks().chunk_from(id, &hs).await.map_err(|why| {
            MeshError::unavailable(format!("chunk {id} of '{dataset}' is unreachable: {why}"))
        })?;
        let (reader, model, kinds) = (reader.clone(), model.clone(), kinds.clone());
        let part = tokio::task::spawn_blocking(move || -> Result<TestSums, String> {
            let data = reader.chunk(&id, &bytes).map_err(|e| e.to_string())?;
            drop(bytes);
            let data = if data.kinds() == *kinds {
                data
            } else {
                let x = meshml_models::schema::recode(
                    data.x().clone(),
                    &data.kinds(),
                    &kinds,
                    data.feature_names(),
                )
                .map_err(|e| e.to_string())?;
                let names = data.feature_names().to_vec();
                data.with_x_kinds(x, names, (*kinds).clone())
                    .map_err(|e| e.to_string())?
            };
            TestSums::of(&model, &data).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| MeshError::internal(e.to_string()))?
        .map_err(MeshError::bad)?;
        match &mut sums {
            None => sums = Some(part),
            Some(s) => s
                .merge(&part)
                .map_err(|e| MeshError::internal(e.to_string()))?,
        }
    }
    let Some(sums) = sums else {
        return Err(MeshError::bad(format!(
            "test dataset '{dataset}' has no rows"
        )));
    };
    Ok(match &sums {
        TestSums::Classes(counts) => {
            let labels = match &manifest.target {
                meshml_storage::TargetSchema::Classes { classes, .. } => classes.labels().to_vec(),
                meshml_storage::TargetSchema::Values => Vec::new(),
            };
            let cm = ConfusionMatrix::from_counts(&labels, counts.clone())
                .map_err(|e| MeshError::internal(e.to_string()))?;
            TestReport {
                labels,
                counts: cm.counts().to_vec(),
                ..report("accuracy", cm.accuracy())
            }
        }
        TestSums::Values { .. } => report("r2", sums.score()),
        TestSums::Inertia(sum) => report("inertia", *sum),
    })
}
