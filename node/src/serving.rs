//! Online prediction: registered models loaded once per node and kept in memory under a
//! cap, and the prediction request and response formats.
//!
//! A request names a model as `NAME` (its `production` alias if set, else its newest
//! version), `NAME@VERSION` or `NAME@ALIAS`. The version is resolved when the request
//! starts and the loaded model is shared (`Arc`), so promoting another version never
//! disturbs a request in flight: it finishes on the model it started with, and the next
//! one gets the new version.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use meshml_models::meta::Output;
use meshml_models::schema::ColumnKind;
use meshml_models::{Classifier, FittedModel, Matrix, ModelArtifact};
use meshml_storage::raft::ClusterState;

use crate::error::MeshError;
use crate::lru::Lru;
use crate::services::chunks::Chunks;

/// The alias a bare model name resolves to when it is set.
pub const DEFAULT_ALIAS: &str = "production";

/// A model loaded for serving.
#[derive(Debug)]
pub struct ServedModel {
    /// Model name.
    pub name: String,
    /// Version.
    pub version: u32,
    /// The artifact.
    pub artifact: ModelArtifact,
    /// Encoded size, what the cache counts.
    pub bytes: u64,
}

/// The loaded models of a node, least recently used evicted past the cap.
#[derive(Debug)]
struct ModelCache {
    inner: Mutex<Lru<(String, u32), Arc<ServedModel>>>,
    loading: tokio::sync::Mutex<()>,
}

impl ModelCache {
    /// An empty cache holding at most `cap` bytes of artifacts (always at least one).
    fn new(cap: u64) -> Self {
        Self {
            inner: Mutex::new(Lru::new(cap)),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    fn get(&self, name: &str, version: u32) -> Option<Arc<ServedModel>> {
        let mut lru = self.inner.lock().expect("model cache");
        lru.get(&(name.to_string(), version))
    }

    fn put(&self, m: Arc<ServedModel>) {
        let key = (m.name.clone(), m.version);
        let bytes = m.bytes;
        let gone = self.inner.lock().expect("model cache").put(key, m, bytes);
        for g in gone {
            tracing::info!(model = %g.name, version = g.version, "model unloaded (cache full)");
        }
    }

    /// Loaded models as `(name, version, bytes)`.
    fn loaded(&self) -> Vec<(String, u32, u64)> {
        let lru = self.inner.lock().expect("model cache");
        let mut v: Vec<_> = lru
            .values()
            .map(|m| (m.name.clone(), m.version, m.bytes))
            .collect();
        v.sort();
        v
    }
}

/// Resolves `NAME`, `NAME@VERSION` or `NAME@ALIAS` against the registry.
pub fn resolve(state: &ClusterState, spec: &str) -> Result<(String, u32), MeshError> {
    let (name, which) = match spec.split_once('@') {
        Some((n, w)) => (n, Some(w)),
        None => (spec, None),
    };
    let versions = state
        .models
        .get(name)
        .ok_or_else(|| MeshError::not_found(format!("no model '{name}' in the registry")))?;
    let aliases = state.aliases.get(name);
    let version = match which {
        None => aliases
            .and_then(|a| a.get(DEFAULT_ALIAS).copied())
            .or_else(|| versions.keys().next_back().copied()),
        Some(w) => match w.parse::<u32>() {
            Ok(v) => versions.contains_key(&v).then_some(v),
            Err(_) => aliases.and_then(|a| a.get(w).copied()),
        },
    };
    version.map(|v| (name.to_string(), v)).ok_or_else(|| {
        MeshError::not_found(format!(
            "model '{name}' has no version or alias '{}'; versions: {}",
            which.unwrap_or(""),
            versions
                .keys()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// The serving service: registered models, loaded on demand and kept under a memory cap.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Models {
    chunks: Chunks,
    cache: Arc<ModelCache>,
}

impl Models {
    /// Models whose artifacts come from `chunks`, at most `cap` bytes of them loaded.
    pub fn new(chunks: Chunks, cap: u64) -> Self {
        Self {
            chunks,
            cache: Arc::new(ModelCache::new(cap)),
        }
    }

    /// Loaded models as `(name, version, bytes)`.
    pub fn loaded(&self) -> Vec<(String, u32, u64)> {
        self.cache.loaded()
    }

    /// The encoded artifact of `name@version`: from this node's store, else from a holder,
    /// in which case this node keeps a copy and becomes a holder.
    pub async fn artifact_bytes(&self, name: &str, version: u32) -> Result<Vec<u8>, MeshError> {
        let consensus = self.chunks.consensus();
        let record = consensus
            .state()
            .read(|s| s.models.get(name).and_then(|v| v.get(&version)).cloned())
            .ok_or_else(|| MeshError::not_found(format!("no model {name}@{version}")))?;
        let id = record.artifact;
        let (bytes, fetched) = self
            .chunks
            .chunk_from(id, &record.locations)
            .await
            .map_err(|why| {
                MeshError::unavailable(format!(
                    "the artifact of {name}@{version} is unreachable: {why}"
                ))
            })?;
        if fetched {
            // Keep a copy: this node becomes a holder.
            let (owner, copy) = (format!("model.{name}"), bytes.clone());
            self.chunks
                .with_store(move |s| s.put_pinned(&owner, &copy))
                .await?;
            let _ = consensus
                .propose(meshml_storage::raft::ClusterCommand::AddModelLocation {
                    name: name.to_string(),
                    version,
                    member: consensus.id(),
                })
                .await;
        }
        Ok(bytes)
    }

    /// The model `name@version`, loaded: from the cache, else from this node's store,
    /// else fetched from a member that holds it (this node then keeps a copy and is
    /// recorded as a holder).
    pub async fn model(&self, name: &str, version: u32) -> Result<Arc<ServedModel>, MeshError> {
        let cache = &self.cache;
        if let Some(m) = cache.get(name, version) {
            return Ok(m);
        }
        let _one_at_a_time = cache.loading.lock().await;
        if let Some(m) = cache.get(name, version) {
            return Ok(m);
        }
        let bytes = self.artifact_bytes(name, version).await?;
        let size = bytes.len() as u64;
        let origin = std::path::PathBuf::from(format!("{name}@{version}"));
        let artifact =
            tokio::task::spawn_blocking(move || ModelArtifact::from_bytes(&bytes, &origin))
                .await
                .map_err(|e| MeshError::internal(e.to_string()))?
                .map_err(|e| MeshError::internal(e.to_string()))?;
        let m = Arc::new(ServedModel {
            name: name.to_string(),
            version,
            artifact,
            bytes: size,
        });
        cache.put(m.clone());
        tracing::info!(model = name, version, bytes = size, "model loaded");
        Ok(m)
    }

    /// Keeps the models that aliases point at loaded: after a promotion, the first request
    /// to the new version does not wait for its artifact. Runs until the node stops.
    pub async fn preload_aliases(self) {
        let mut seen: BTreeMap<(String, String), u32> = BTreeMap::new();
        loop {
            let now: BTreeMap<(String, String), u32> = self.chunks.consensus().state().read(|s| {
                s.aliases
                    .iter()
                    .flat_map(|(n, a)| a.iter().map(move |(k, v)| ((n.clone(), k.clone()), *v)))
                    .collect()
            });
            for ((name, alias), v) in &now {
                if seen.get(&(name.clone(), alias.clone())) != Some(v) {
                    if let Err(e) = self.model(name, *v).await {
                        tracing::warn!(model = %name, version = v, alias = %alias, cause = %e, "alias target not preloaded");
                        continue;
                    }
                    seen.insert((name.clone(), alias.clone()), *v);
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

pub use meshml_client::api::{Cell, Instance, PredictRequest, PredictResponse, Prediction};

/// Instances a model cannot read, and why (the client's mistake: a 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadInstances(pub String);

impl From<String> for BadInstances {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for BadInstances {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl From<meshml_models::ModelError> for BadInstances {
    fn from(e: meshml_models::ModelError) -> Self {
        Self(e.to_string())
    }
}

/// One cell in the model's terms: a number for a numeric column, a category's code (by its
/// text; [`UNKNOWN_CODE`] for one the model never saw) for a categorical one, 1 or 0 for a
/// boolean; `null` (MessagePack nil) is a missing cell (NaN) in any column.
///
/// [`UNKNOWN_CODE`]: meshml_models::schema::UNKNOWN_CODE
fn cell_value(
    cell: &Cell,
    kind: &ColumnKind,
    at: impl Fn() -> String,
) -> Result<f32, BadInstances> {
    use serde_json::Value;
    match (cell, kind) {
        (Cell::Other(Value::Null), _) => Ok(f32::NAN),
        (Cell::Number(v), _) if !v.is_finite() => {
            Err(format!("{}: {v} is not a finite number", at()).into())
        }
        (Cell::Number(v), ColumnKind::Numeric | ColumnKind::Indicator) => Ok(*v as f32),
        (Cell::Number(v), ColumnKind::Boolean) if *v == 0.0 || *v == 1.0 => Ok(*v as f32),
        (Cell::Other(Value::Bool(b)), ColumnKind::Boolean) => Ok(f32::from(u8::from(*b))),
        (Cell::Other(Value::String(s)), ColumnKind::Boolean) => {
            match meshml_models::schema::parse_bool_cell(s) {
                Some(b) => Ok(f32::from(u8::from(b))),
                None => Err(format!("{}: '{s}' is not true or false", at()).into()),
            }
        }
        (Cell::Number(v), ColumnKind::Categorical { categories }) => {
            let text = if v.fract() == 0.0 && v.abs() < 9.0e15 {
                format!("{}", *v as i64)
            } else {
                v.to_string()
            };
            Ok(categories
                .id_of(&text)
                .map_or(meshml_models::schema::UNKNOWN_CODE, |c| c as f32))
        }
        (Cell::Other(Value::String(s)), ColumnKind::Categorical { categories }) => Ok(categories
            .id_of(s)
            .map_or(meshml_models::schema::UNKNOWN_CODE, |c| c as f32)),
        (Cell::Other(Value::String(s)), _) => {
            Err(format!("{}: '{s}' is not a number", at()).into())
        }
        (Cell::Other(v), k) => Err(format!(
            "{}: {v} is not a {}",
            at(),
            match k {
                ColumnKind::Categorical { .. } => "category (a string)",
                ColumnKind::Boolean => "boolean",
                _ => "number",
            }
        )
        .into()),
        (Cell::Number(v), _) => Err(format!("{}: {v} is not true or false", at()).into()),
    }
}

/// The feature matrix of the instances, in the model's feature order; the error says
/// which instance and feature is wrong.
pub fn features(
    instances: &[Instance],
    names: &[String],
    kinds: &[ColumnKind],
) -> Result<Matrix, BadInstances> {
    if instances.is_empty() {
        return Err("no instances: send {\"instances\": [[...], ...]}".into());
    }
    let d = names.len();
    let mut x = Vec::with_capacity(instances.len() * d);
    for (i, inst) in instances.iter().enumerate() {
        match inst {
            Instance::Row(values) => {
                if values.len() != d {
                    return Err(format!(
                        "instance {i} has {} values; the model reads {d} features ({})",
                        values.len(),
                        names.join(", ")
                    )
                    .into());
                }
                for (j, c) in values.iter().enumerate() {
                    x.push(cell_value(c, &kinds[j], || {
                        format!("instance {i}, feature '{}'", names[j])
                    })?);
                }
            }
            Instance::Named(map) => {
                if let Some(unknown) = map.keys().find(|k| !names.contains(k)) {
                    return Err(format!(
                        "instance {i}: unknown feature '{unknown}'; the model reads {}",
                        names.join(", ")
                    )
                    .into());
                }
                for (name, kind) in names.iter().zip(kinds) {
                    let c = map.get(name).ok_or_else(|| {
                        BadInstances(format!("instance {i} lacks feature '{name}'"))
                    })?;
                    x.push(cell_value(c, kind, || {
                        format!("instance {i}, feature '{name}'")
                    })?);
                }
            }
            Instance::Other(v) => {
                return Err(format!(
                    "instance {i} is neither a list of values nor an object of named values: {v}"
                )
                .into())
            }
        }
    }
    Ok(Matrix::from_vec(instances.len(), d, x)?)
}

/// Predicts the instances with a loaded model. Errors are the client's (400).
pub fn predict(
    model: &ServedModel,
    request: &PredictRequest,
) -> Result<PredictResponse, BadInstances> {
    let art = &model.artifact;
    let x = features(&request.instances, &art.feature_names, &art.feature_kinds())?;
    let mut response = PredictResponse {
        model: model.name.clone(),
        version: model.version,
        predictions: Vec::new(),
        classes: Vec::new(),
        probabilities: None,
    };
    match &art.model {
        FittedModel::MultiOutput(m) => {
            if request.probabilities {
                return Err("a multi-output model returns no probabilities".into());
            }
            let outputs = m.predict_outputs(&x)?;
            response.predictions = (0..x.rows())
                .map(|r| {
                    Prediction::Outputs(
                        m.targets
                            .iter()
                            .zip(&outputs)
                            .map(|(t, o)| {
                                let p = match o {
                                    Output::Labels(l) => Prediction::Label(l[r].clone()),
                                    Output::Values(v) => Prediction::Value(v[r]),
                                };
                                (t.clone(), p)
                            })
                            .collect(),
                    )
                })
                .collect();
        }
        m if m.is_clusterer() => {
            if request.probabilities {
                return Err("a clusterer returns no probabilities: it predicts clusters".into());
            }
            response.predictions = m
                .predict(&x)?
                .into_iter()
                .map(|c| Prediction::Label(art.classes.label(c).to_string()))
                .collect();
            response.classes = art.classes.labels().to_vec();
        }
        m if m.is_regressor() => {
            if request.probabilities {
                return Err("a regressor returns no probabilities".into());
            }
            response.predictions = m
                .predict_values(&x)?
                .into_iter()
                .map(Prediction::Value)
                .collect();
        }
        m => {
            let proba = m.predict_proba(&x)?;
            let k = proba.cols();
            let data = proba.data();
            response.predictions = meshml_models::traits::argmax_rows(&proba)
                .into_iter()
                .map(|c| Prediction::Label(art.classes.label(c).to_string()))
                .collect();
            response.classes = art.classes.labels().to_vec();
            if request.probabilities {
                response.probabilities = Some(data.chunks_exact(k).map(<[f32]>::to_vec).collect());
            }
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> PredictRequest {
        serde_json::from_str(json).unwrap()
    }

    fn numeric() -> Vec<ColumnKind> {
        vec![ColumnKind::Numeric; 2]
    }

    fn names() -> Vec<String> {
        ["a", "b"].map(String::from).to_vec()
    }

    #[test]
    fn instances_by_position_and_by_name_give_the_same_matrix() {
        let r = request(r#"{"instances": [[1, 2.5], {"b": 4, "a": 3}]}"#);
        let x = features(&r.instances, &names(), &numeric()).unwrap();
        assert_eq!(x.to_vec(), vec![1.0, 2.5, 3.0, 4.0]);
        assert!(!r.probabilities);
    }

    #[test]
    fn text_cells_become_category_codes_and_null_is_missing() {
        let kinds = vec![
            ColumnKind::Categorical {
                categories: meshml_models::Classes::from_labels(&["f", "m"]),
            },
            ColumnKind::Boolean,
        ];
        let r = request(r#"{"instances": [["m", true], {"a": null, "b": "False"}, ["x", 0]]}"#);
        let x = features(&r.instances, &names(), &kinds).unwrap().to_vec();
        assert_eq!((x[0], x[1], x[3]), (1.0, 1.0, 0.0));
        assert!(x[2].is_nan(), "null is missing");
        assert_eq!(
            x[4],
            meshml_models::schema::UNKNOWN_CODE,
            "an unseen category"
        );
        let e = features(
            &request(r#"{"instances": [["m", "maybe"]]}"#).instances,
            &names(),
            &kinds,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("feature 'b': 'maybe' is not true or false"),
            "{e}"
        );
    }

    #[test]
    fn bad_instances_say_what_is_wrong() {
        let err = |json: &str| {
            features(&request(json).instances, &names(), &numeric())
                .unwrap_err()
                .to_string()
        };
        assert!(err(r#"{"instances": []}"#).contains("no instances"));
        assert!(err(r#"{"instances": [[1]]}"#).contains("has 1 values; the model reads 2"));
        assert!(err(r#"{"instances": [[1, "x"]]}"#).contains("feature 'b': 'x' is not a number"));
        assert!(err(r#"{"instances": [{"a": 1, "c": 2}]}"#).contains("unknown feature 'c'"));
        assert!(err(r#"{"instances": [{"a": 1}]}"#).contains("lacks feature 'b'"));
        assert!(err(r#"{"instances": [7]}"#).contains("neither a list"));
        assert!(serde_json::from_str::<PredictRequest>(r#"{"instance": [[1, 2]]}"#).is_err());
        // MessagePack can carry NaN and infinity; JSON cannot.
        let body =
            rmp_serde::to_vec_named(&serde_json::json!({"instances": [[1.0, 0.0]]})).unwrap();
        let mut r: PredictRequest = rmp_serde::from_slice(&body).unwrap();
        r.instances = vec![Instance::Row(vec![
            Cell::Number(1.0),
            Cell::Number(f64::NAN),
        ])];
        assert!(features(&r.instances, &names(), &numeric())
            .unwrap_err()
            .to_string()
            .contains("NaN is not a finite number"));
    }

    #[test]
    fn names_resolve_to_the_production_alias_else_the_newest_version() {
        use meshml_storage::raft::{ClusterCommand, ModelRecord};
        let mut s = ClusterState::default();
        for _ in 0..3 {
            s.apply(&ClusterCommand::RegisterModel {
                name: "m".into(),
                record: ModelRecord {
                    kind: "k".into(),
                    artifact: meshml_protocol::ChunkId::from_bytes([1; 32]),
                    locations: vec![1],
                },
            });
        }
        assert_eq!(resolve(&s, "m").unwrap(), ("m".into(), 3));
        assert_eq!(resolve(&s, "m@2").unwrap(), ("m".into(), 2));
        s.apply(&ClusterCommand::SetAlias {
            name: "m".into(),
            alias: "production".into(),
            version: 1,
        });
        assert_eq!(resolve(&s, "m").unwrap(), ("m".into(), 1));
        assert_eq!(resolve(&s, "m@production").unwrap(), ("m".into(), 1));
        assert_eq!(resolve(&s, "m@9").unwrap_err().status(), 404);
        assert_eq!(resolve(&s, "m@staging").unwrap_err().status(), 404);
        assert!(resolve(&s, "x")
            .unwrap_err()
            .to_string()
            .contains("no model 'x'"));
    }
}
