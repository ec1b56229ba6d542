//! The node's local store: one sled database in the data directory holding dataset
//! chunks, dataset manifests and model artifacts, each in their own trees.
//!
//! Crash safety comes from ordering, not transactions: a dataset's chunks are written and
//! flushed before its manifest, and its manifest is removed (and flushed) before its
//! chunks. A dataset therefore exists exactly when its manifest does, and anything a crash
//! leaves behind is unreferenced and collected when the store is next opened.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use meshml_models::{Classes, Dataset, Matrix, ModelArtifact, Target};
use meshml_protocol::ChunkId;
use serde::{Deserialize, Serialize};

use crate::encoding::{Chunk, ChunkTargets};
use crate::error::{check_name, Result, StorageError};
use crate::store::{ChunkStore, SledStore};

/// sled's page cache; small, so that streaming a large file keeps memory bounded.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// One chunk of a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// Content address.
    pub id: ChunkId,
    /// Rows in the chunk.
    pub rows: u32,
    /// Encoded size in bytes.
    pub bytes: u64,
}

/// What the target column holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetSchema {
    /// Class labels. Chunks store each row's index into `label_table` (labels as written,
    /// in order of first appearance); `class_of_label` maps those to sorted class ids.
    Classes {
        /// Labels as written in the source, first-appearance order.
        label_table: Vec<String>,
        /// The dataset's classes (sorted as scikit-learn sorts them).
        classes: Classes,
        /// Class id of each `label_table` entry.
        class_of_label: Vec<u32>,
    },
    /// Real values.
    Values,
}

/// A dataset's description: everything but the rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetManifest {
    /// Dataset name.
    pub name: String,
    /// Feature column names.
    pub feature_names: Vec<String>,
    /// Target column name.
    pub target_name: String,
    /// Target kind and classes.
    pub target: TargetSchema,
    /// Total rows.
    pub rows: u64,
    /// The chunks, in row order.
    pub chunks: Vec<ChunkRef>,
    /// Seconds since the Unix epoch at ingest.
    pub created_at_unix: u64,
    /// Where the rows came from (a path).
    pub source: String,
}

impl DatasetManifest {
    /// Encoded size of all chunks.
    pub fn bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.bytes).sum()
    }

    /// Number of feature columns.
    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }

    /// Converts decoded chunks' targets to the dataset's target.
    fn target_of(&self, targets: Vec<ChunkTargets>) -> Result<Target> {
        match &self.target {
            TargetSchema::Classes {
                classes,
                class_of_label,
                ..
            } => {
                let mut ids = Vec::with_capacity(self.rows as usize);
                for t in targets {
                    let ChunkTargets::Labels(l) = t else {
                        return Err(self.corrupt("a chunk holds values where labels belong"));
                    };
                    for v in l {
                        ids.push(*class_of_label.get(v as usize).ok_or_else(|| {
                            self.corrupt(&format!("label id {v} outside the label table"))
                        })?);
                    }
                }
                Ok(Target::Classes {
                    ids,
                    classes: classes.clone(),
                })
            }
            TargetSchema::Values => {
                let mut vals = Vec::with_capacity(self.rows as usize);
                for t in targets {
                    let ChunkTargets::Values(v) = t else {
                        return Err(self.corrupt("a chunk holds labels where values belong"));
                    };
                    vals.extend(v);
                }
                Ok(Target::Values(vals))
            }
        }
    }

    fn corrupt(&self, message: &str) -> StorageError {
        StorageError::Record {
            what: format!("dataset '{}'", self.name),
            message: message.to_string(),
        }
    }

    /// Builds a [`Dataset`] from decoded chunks (all of them, or a contiguous subset).
    pub fn assemble(&self, chunks: Vec<Chunk>) -> Result<Dataset> {
        let d = self.n_features();
        let rows: usize = chunks.iter().map(|c| c.rows).sum();
        let mut x = Vec::with_capacity(rows * d);
        let mut targets = Vec::with_capacity(chunks.len());
        for c in chunks {
            if c.cols != d {
                return Err(self.corrupt(&format!("a chunk has {} columns, not {d}", c.cols)));
            }
            x.extend_from_slice(&c.features);
            targets.push(c.targets);
        }
        let target = self.target_of(targets)?;
        Ok(Dataset::new(
            Matrix::from_vec(rows, d, x)?,
            target,
            self.feature_names.clone(),
            self.target_name.clone(),
        )?)
    }
}

/// A stored model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// Model name.
    pub name: String,
    /// Version (1, 2, ...).
    pub version: u32,
    /// Estimator kind.
    pub kind: String,
    /// The artifact's content address.
    pub artifact: ChunkId,
    /// Artifact size in bytes.
    pub bytes: u64,
    /// Seconds since the Unix epoch when stored.
    pub created_at_unix: u64,
}

/// What removing a dataset did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removal {
    /// Chunks deleted.
    pub chunks_removed: usize,
    /// Chunks kept because another dataset uses them.
    pub chunks_shared: usize,
}

/// A data directory's store.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    db: sled::Db,
    chunks: SledStore,
    blobs: SledStore,
    datasets: sled::Tree,
    models: sled::Tree,
    meta: sled::Tree,
}

/// File beside the database holding the number of acknowledged changes.
const COMMITTED_FILE: &str = "COMMITTED";
const SEQ_KEY: &[u8] = b"commit_seq";

pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn decode_record<T: for<'de> Deserialize<'de>>(what: String, bytes: &[u8]) -> Result<T> {
    rmp_serde::from_slice(bytes).map_err(|e| StorageError::Record {
        what,
        message: e.to_string(),
    })
}

fn model_key(name: &str, version: u32) -> Vec<u8> {
    let mut k = name.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

impl Store {
    /// Opens (creating if needed) the store in `dir`, then removes what an interrupted
    /// write or removal left behind.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| StorageError::io(&dir, e))?;
        let db = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("lock") =>
                {
                    StorageError::Locked(dir.clone())
                }
                other => StorageError::from(other),
            })?;
        let store = Self {
            chunks: SledStore::open(&db, "chunks")?,
            blobs: SledStore::open(&db, "blobs")?,
            datasets: db.open_tree("datasets")?,
            models: db.open_tree("models")?,
            meta: db.open_tree("meta")?,
            db,
            dir,
        };
        store.check_committed()?;
        store.collect_garbage()?;
        Ok(store)
    }

    fn seq(&self) -> Result<u64> {
        Ok(self.meta.get(SEQ_KEY)?.map_or(0, |v| {
            u64::from_le_bytes(v.as_ref().try_into().unwrap_or([0; 8]))
        }))
    }

    fn committed_on_file(&self) -> Result<u64> {
        let p = self.dir.join(COMMITTED_FILE);
        match std::fs::read_to_string(&p) {
            Ok(t) => t.trim().parse().map_err(|_| StorageError::Record {
                what: p.display().to_string(),
                message: format!("'{}' is not a number", t.trim()),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(StorageError::io(p, e)),
        }
    }

    /// sled treats a damaged log record as the end of the log and silently drops it and
    /// everything after it. Every acknowledged change bumps a counter both inside the
    /// database and in a file beside it, so such a loss shows up as a database behind its
    /// file, and is reported instead of serving a store with datasets missing.
    fn check_committed(&self) -> Result<()> {
        let (in_db, on_file) = (self.seq()?, self.committed_on_file()?);
        if in_db < on_file {
            return Err(StorageError::Record {
                what: format!("database in {}", self.dir.display()),
                message: format!(
                    "it holds {in_db} of {on_file} acknowledged changes: sled discarded damaged \
                     log data; restore this node's data from a replica"
                ),
            });
        }
        if in_db > on_file {
            // A crash between the database flush and the file update: the file catches up.
            self.write_committed(in_db)?;
        }
        Ok(())
    }

    fn write_committed(&self, seq: u64) -> Result<()> {
        let p = self.dir.join(COMMITTED_FILE);
        let tmp = self.dir.join(format!("{COMMITTED_FILE}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, format!("{seq}\n").as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &p)?;
            std::fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| StorageError::io(&p, e))
    }

    /// Bumps the change counter, flushes the database, then records the counter on file:
    /// the change is acknowledged when this returns.
    fn commit(&self) -> Result<()> {
        let next = self.seq()? + 1;
        self.meta.insert(SEQ_KEY, &next.to_le_bytes())?;
        self.flush()?;
        self.write_committed(next)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The chunk store.
    pub fn chunks(&self) -> &SledStore {
        &self.chunks
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }

    /// Makes every earlier write durable.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    /// Removes chunks no manifest references, artifacts no model entry references, and
    /// stray pages. Returns the number of chunks and artifacts removed.
    pub fn collect_garbage(&self) -> Result<usize> {
        let live: HashSet<ChunkId> = self
            .datasets()?
            .iter()
            .flat_map(|m| m.chunks.iter().map(|c| c.id))
            .collect();
        let mut removed = 0;
        for id in self.chunks.ids()? {
            if !live.contains(&id) {
                self.chunks.remove(&id)?;
                removed += 1;
            }
        }
        let live_models: HashSet<ChunkId> = self.models()?.iter().map(|m| m.artifact).collect();
        for id in self.blobs.ids()? {
            if !live_models.contains(&id) {
                self.blobs.remove(&id)?;
                removed += 1;
            }
        }
        let pages = self.chunks.sweep_pages()? + self.blobs.sweep_pages()?;
        if removed + pages > 0 {
            tracing::info!(removed, pages, "collected unreferenced data");
            self.flush()?;
        }
        Ok(removed)
    }

    /// Records a dataset whose chunks are already stored; refuses an existing name.
    /// Durable when it returns.
    pub fn put_manifest(&self, m: &DatasetManifest) -> Result<()> {
        check_name(&m.name)?;
        for c in &m.chunks {
            if !self.chunks.contains(&c.id)? {
                return Err(StorageError::Missing(c.id));
            }
        }
        self.chunks.flush()?;
        let bytes = rmp_serde::to_vec_named(m).expect("manifests encode");
        let prev = self.datasets.compare_and_swap(
            m.name.as_bytes(),
            None as Option<&[u8]>,
            Some(bytes),
        )?;
        if prev.is_err() {
            return Err(StorageError::DatasetExists(m.name.clone()));
        }
        self.commit()
    }

    /// Whether a dataset exists.
    pub fn has_dataset(&self, name: &str) -> Result<bool> {
        Ok(self.datasets.contains_key(name.as_bytes())?)
    }

    /// A dataset's manifest.
    pub fn dataset(&self, name: &str) -> Result<DatasetManifest> {
        let bytes = self
            .datasets
            .get(name.as_bytes())?
            .ok_or_else(|| StorageError::DatasetNotFound(name.to_string()))?;
        decode_record(format!("dataset manifest '{name}'"), &bytes)
    }

    /// Every dataset's manifest, by name.
    pub fn datasets(&self) -> Result<Vec<DatasetManifest>> {
        self.datasets
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode_record(
                    format!("dataset manifest '{}'", String::from_utf8_lossy(&k)),
                    &v,
                )
            })
            .collect()
    }

    /// Reads and decodes chunk `i` of a dataset.
    pub fn read_chunk(&self, m: &DatasetManifest, i: usize) -> Result<Chunk> {
        let c = &m.chunks[i];
        let bytes = self.chunks.get(&c.id)?;
        Chunk::decode(&c.id, &bytes)
    }

    /// Materialises a whole dataset in memory.
    pub fn load_dataset(&self, name: &str) -> Result<Dataset> {
        let m = self.dataset(name)?;
        let chunks = (0..m.chunks.len())
            .map(|i| self.read_chunk(&m, i))
            .collect::<Result<Vec<_>>>()?;
        m.assemble(chunks)
    }

    /// Removes a dataset; its chunks go unless another dataset shares them.
    pub fn remove_dataset(&self, name: &str) -> Result<Removal> {
        let m = self.dataset(name)?;
        self.datasets.remove(name.as_bytes())?;
        self.commit()?;
        let still_used: HashSet<ChunkId> = self
            .datasets()?
            .iter()
            .flat_map(|d| d.chunks.iter().map(|c| c.id))
            .collect();
        let mut r = Removal {
            chunks_removed: 0,
            chunks_shared: 0,
        };
        let mut seen = HashSet::new();
        for c in &m.chunks {
            if !seen.insert(c.id) {
                continue;
            }
            if still_used.contains(&c.id) {
                r.chunks_shared += 1;
            } else if self.chunks.remove(&c.id)? {
                r.chunks_removed += 1;
            }
        }
        self.flush()?;
        Ok(r)
    }

    /// Stores a model artifact as the next version of `name`; returns the version.
    pub fn put_model(&self, name: &str, artifact: &ModelArtifact) -> Result<u32> {
        check_name(name)?;
        let bytes = artifact.to_bytes()?;
        let id = self.blobs.put(&bytes)?;
        loop {
            let version = self
                .model_versions(name)?
                .last()
                .map_or(1, |e| e.version + 1);
            let entry = ModelEntry {
                name: name.to_string(),
                version,
                kind: artifact.kind(),
                artifact: id,
                bytes: bytes.len() as u64,
                created_at_unix: now_unix(),
            };
            let rec = rmp_serde::to_vec_named(&entry).expect("entries encode");
            let swapped = self.models.compare_and_swap(
                model_key(name, version),
                None as Option<&[u8]>,
                Some(rec),
            )?;
            if swapped.is_ok() {
                self.commit()?;
                return Ok(version);
            }
        }
    }

    fn model_versions(&self, name: &str) -> Result<Vec<ModelEntry>> {
        let mut prefix = name.as_bytes().to_vec();
        prefix.push(0);
        self.models
            .scan_prefix(prefix)
            .values()
            .map(|v| decode_record(format!("model entry '{name}'"), &v?))
            .collect()
    }

    /// Every stored model version.
    pub fn models(&self) -> Result<Vec<ModelEntry>> {
        self.models
            .iter()
            .values()
            .map(|v| decode_record("model entry".into(), &v?))
            .collect()
    }

    /// A model's artifact: the given version, or the latest.
    pub fn model(&self, name: &str, version: Option<u32>) -> Result<(ModelEntry, ModelArtifact)> {
        let versions = self.model_versions(name)?;
        let entry = match version {
            None => versions.last().cloned(),
            Some(v) => versions.into_iter().find(|e| e.version == v),
        }
        .ok_or_else(|| {
            StorageError::ModelNotFound(match version {
                Some(v) => format!("{name}@{v}"),
                None => name.to_string(),
            })
        })?;
        let bytes = self.blobs.get(&entry.artifact)?;
        let art =
            ModelArtifact::from_bytes(&bytes, Path::new(&format!("{name}@{}", entry.version)))?;
        Ok((entry, art))
    }

    /// Removes one version of a model, or all of them; returns how many went.
    pub fn remove_model(&self, name: &str, version: Option<u32>) -> Result<usize> {
        let versions = self.model_versions(name)?;
        let doomed: Vec<&ModelEntry> = versions
            .iter()
            .filter(|e| version.is_none_or(|v| e.version == v))
            .collect();
        if doomed.is_empty() {
            return Err(StorageError::ModelNotFound(name.to_string()));
        }
        for e in &doomed {
            self.models.remove(model_key(name, e.version))?;
        }
        self.commit()?;
        let live: HashSet<ChunkId> = self.models()?.iter().map(|m| m.artifact).collect();
        for e in &doomed {
            if !live.contains(&e.artifact) {
                self.blobs.remove(&e.artifact)?;
            }
        }
        self.flush()?;
        Ok(doomed.len())
    }
}
