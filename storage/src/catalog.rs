//! The node's local store: one sled database in the data directory holding dataset
//! chunks, dataset manifests and model artifacts, each in their own trees.
//!
//! Crash safety comes from ordering, not transactions: a dataset's chunks are written and
//! flushed before its manifest, and its manifest is removed (and flushed) before its
//! chunks. A dataset therefore exists exactly when its manifest does, and anything a crash
//! leaves behind is unreferenced and collected when the store is next opened.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use meshml_models::schema::ColumnKind;
use meshml_models::{Classes, Dataset, Matrix, ModelArtifact, Target};
use meshml_protocol::ChunkId;
use serde::{Deserialize, Serialize};

use crate::encoding::{Chunk, ChunkLayout, ChunkTargets};
use crate::error::{check_name, Result, StorageError};
use crate::store::{ChunkStore, FileStore, SledStore};

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

/// What a feature column holds, as ingest found it: its kind (categories included), its
/// missing cells, and its most frequent categories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnSummary {
    /// The column's kind; chunks store categories as their codes into its categories.
    pub kind: ColumnKind,
    /// Missing cells (NaN in the chunks).
    pub missing: u64,
    /// The most frequent categories and their counts, most frequent first (at most
    /// [`TOP_CATEGORIES`]); empty for numbers.
    pub top: Vec<(String, u64)>,
}

/// How many of a column's most frequent categories a manifest keeps.
pub const TOP_CATEGORIES: usize = 5;

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
    /// One summary per feature column; empty in a dataset stored before column kinds
    /// existed, whose columns are all numeric.
    #[serde(default)]
    pub columns: Vec<ColumnSummary>,
    /// The chunks' format ([`crate::encoding::ARROW_FORMAT`]); a manifest written before
    /// the field existed is [`crate::encoding::ROWS_FORMAT`].
    #[serde(default = "rows_format")]
    pub chunk_format: u8,
}

fn rows_format() -> u8 {
    crate::encoding::ROWS_FORMAT
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

    /// The kind of each feature column.
    pub fn kinds(&self) -> Vec<ColumnKind> {
        if self.columns.len() == self.n_features() {
            self.columns.iter().map(|c| c.kind.clone()).collect()
        } else {
            vec![ColumnKind::Numeric; self.n_features()]
        }
    }

    /// The layout that decodes the dataset's chunks. A format this build does not know (a
    /// newer meshml's) is refused with what to do.
    pub fn layout(&self) -> Result<ChunkLayout> {
        use crate::encoding::{ARROW_FORMAT, ROWS_FORMAT};
        if !(ROWS_FORMAT..=ARROW_FORMAT).contains(&self.chunk_format) {
            return Err(StorageError::Model(meshml_models::ModelError::data(
                format!("dataset '{}'", self.name),
                format!(
                    "its chunks are in format {}, and this meshml reads formats \
                     {ROWS_FORMAT} to {ARROW_FORMAT}: upgrade meshml, or store the dataset \
                     again from its source with `meshml dataset put`",
                    self.chunk_format
                ),
            )));
        }
        let labels = match &self.target {
            TargetSchema::Classes { label_table, .. } => {
                Some(meshml_models::io::LabelTable::from_labels(label_table))
            }
            TargetSchema::Values => None,
        };
        Ok(ChunkLayout::new(
            &self.feature_names,
            &self.kinds(),
            &self.target_name,
            labels,
        )
        .in_format(self.chunk_format))
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

    /// An [`Assembler`] for this dataset's chunks.
    pub fn assembler(&self) -> Result<Assembler> {
        let rows: usize = self.chunks.iter().map(|c| c.rows as usize).sum();
        // Reserved as the manifest says, up to 1 GiB; past that the matrix grows as chunks
        // arrive (a manifest's counts are not a reason to allocate).
        let cells = rows.saturating_mul(self.n_features()).min(1 << 28);
        self.assembler_with(cells)
    }

    /// An assembler that reserves nothing: for [`Assembler::chunk`], one chunk at a time,
    /// or for the dataset's schema alone (`finish` with no chunk pushed: no rows).
    pub fn chunk_reader(&self) -> Result<Assembler> {
        self.assembler_with(0)
    }

    fn dataset(&self, rows: usize, x: Vec<f32>, targets: Vec<ChunkTargets>) -> Result<Dataset> {
        Ok(Dataset::new(
            Matrix::from_vec(rows, self.n_features(), x)?,
            self.target_of(targets)?,
            self.feature_names.clone(),
            self.target_name.clone(),
        )?
        .with_kinds(self.kinds())?)
    }

    fn assembler_with(&self, cells: usize) -> Result<Assembler> {
        Ok(Assembler {
            layout: self.layout()?,
            x: Vec::with_capacity(cells),
            rows: 0,
            targets: Vec::with_capacity(self.chunks.len()),
            manifest: self.clone(),
        })
    }
}

/// Builds a dataset's [`Dataset`] chunk by chunk: each chunk's rows are decoded straight
/// into the one row-major matrix, so loading holds the matrix and one chunk, not every
/// decoded chunk and then a copy.
#[derive(Debug)]
pub struct Assembler {
    manifest: DatasetManifest,
    layout: ChunkLayout,
    x: Vec<f32>,
    rows: usize,
    targets: Vec<ChunkTargets>,
}

impl Assembler {
    /// Appends the rows of chunk `id` (its bytes, hash-checked), in the dataset's order.
    pub fn push(&mut self, id: &ChunkId, bytes: &[u8]) -> Result<()> {
        let (rows, targets) = self.layout.decode_into(id, bytes, &mut self.x)?;
        self.rows += rows;
        self.targets.push(targets);
        Ok(())
    }

    /// The dataset of the rows pushed.
    pub fn finish(self) -> Result<Dataset> {
        self.manifest.dataset(self.rows, self.x, self.targets)
    }

    /// The rows of chunk `id` alone, as a dataset with the whole dataset's schema (a
    /// data-parallel pass reads one chunk at a time); nothing is kept here.
    pub fn chunk(&self, id: &ChunkId, bytes: &[u8]) -> Result<Dataset> {
        let mut x = Vec::new();
        let (rows, targets) = self.layout.decode_into(id, bytes, &mut x)?;
        self.manifest.dataset(rows, x, vec![targets])
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
///
/// Owns the directory: a lock file keeps other processes out, and [`Store::compact`]
/// swaps the database for a rewritten copy, so the store is not `Clone`; share it by
/// reference (a node's store service owns it).
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    backend: Backend,
    auto_compact: bool,
    /// Held (locked) for the store's lifetime.
    _lock: std::fs::File,
    inner: Option<Inner>,
}

/// Where chunk and artifact bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// One fsynced file per chunk (the default: no space overhead).
    #[default]
    Files,
    /// Pages in the sled database (several times the live data on disk; see
    /// docs/BENCHMARKS.md).
    Sled,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Files => "files",
            Backend::Sled => "sled",
        }
    }
}

/// How to open a store.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// Backend for a new store; an existing store keeps the one it was created with.
    pub backend: Backend,
    /// Compact automatically on open and after removals (default true).
    pub auto_compact: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            backend: Backend::default(),
            auto_compact: true,
        }
    }
}

/// A chunk store of either backend.
#[derive(Debug)]
enum Bytes {
    Files(FileStore),
    Sled(SledStore),
}

impl Bytes {
    fn store(&self) -> &dyn ChunkStore {
        match self {
            Bytes::Files(s) => s,
            Bytes::Sled(s) => s,
        }
    }

    /// Removes unreachable pieces (sled pages without a chunk); returns how many.
    fn sweep(&self) -> Result<usize> {
        match self {
            Bytes::Files(_) => Ok(0),
            Bytes::Sled(s) => s.sweep_pages(),
        }
    }
}

#[derive(Debug)]
struct Inner {
    db: sled::Db,
    chunks: Bytes,
    blobs: Bytes,
    datasets: sled::Tree,
    models: sled::Tree,
    meta: sled::Tree,
    /// owner NUL chunk-id -> chunk size (u64 LE): chunks kept for the mesh (replicas of
    /// datasets recorded in the cluster state, task outputs) without a local manifest.
    pins: sled::Tree,
}

impl Inner {
    fn open(dir: &Path, backend: Backend) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(CACHE_BYTES)
            .open()?;
        let (chunks, blobs) = match backend {
            Backend::Files => (
                Bytes::Files(FileStore::open(dir.join("chunks"))?),
                Bytes::Files(FileStore::open(dir.join("artifacts"))?),
            ),
            Backend::Sled => (
                Bytes::Sled(SledStore::open(&db, "chunks")?),
                Bytes::Sled(SledStore::open(&db, "blobs")?),
            ),
        };
        Ok(Self {
            chunks,
            blobs,
            datasets: db.open_tree("datasets")?,
            models: db.open_tree("models")?,
            meta: db.open_tree("meta")?,
            pins: db.open_tree("pins")?,
            db,
        })
    }
}

/// Reads the backend recorded in `dir`, recording `wanted` for a new store.
fn backend_of(dir: &Path, wanted: Backend) -> Result<Backend> {
    let p = dir.join("BACKEND");
    match std::fs::read_to_string(&p) {
        Ok(t) => match t.trim() {
            "files" => Ok(Backend::Files),
            "sled" => Ok(Backend::Sled),
            other => Err(StorageError::Record {
                what: p.display().to_string(),
                message: format!("unknown backend '{other}'"),
            }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(&p, format!("{}\n", wanted.name()))
                .map_err(|e| StorageError::io(&p, e))?;
            Ok(wanted)
        }
        Err(e) => Err(StorageError::io(p, e)),
    }
}

/// Flips one byte of a chunk kept by the store in `dir` (which must be closed): the chunk
/// `id`, or the first one found. Disk corruption on purpose, for the simulator's fault
/// injection and tests; the store reports the copy as corrupt when it next reads it.
/// Returns the chunk's id.
pub fn damage_chunk(dir: &Path, id: Option<ChunkId>) -> Result<ChunkId> {
    let damaged = match backend_of(dir, Backend::Sled)? {
        Backend::Sled => {
            let db = sled::Config::new().path(dir.join("db")).open()?;
            SledStore::open(&db, "chunks")?.damage(id)?
        }
        Backend::Files => FileStore::open(dir.join("chunks"))?.damage(id)?,
    };
    damaged.ok_or_else(|| StorageError::Record {
        what: dir.display().to_string(),
        message: match id {
            Some(id) => format!("no chunk to damage: {id} is not stored"),
            None => "no chunk to damage: the store is empty".into(),
        },
    })
}

/// Compact when the files exceed this multiple of the live data (plus [`COMPACT_SLACK`]).
pub const COMPACT_RATIO: f64 = 1.5;
/// Bytes of database overhead never worth a compaction.
pub const COMPACT_SLACK: u64 = 256 * 1024;

/// Bytes of all files under `p`.
fn dir_bytes(p: &Path) -> u64 {
    std::fs::read_dir(p).map_or(0, |rd| {
        rd.filter_map(std::result::Result::ok)
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    /// Database bytes on disk before.
    pub before: u64,
    /// Database bytes on disk after.
    pub after: u64,
}

/// File beside the database holding the number of acknowledged changes.
const COMMITTED_FILE: &str = "COMMITTED";
const SEQ_KEY: &[u8] = b"commit_seq";

pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

const COMPLETE_MARKER: &str = "COMPACTION_COMPLETE";

fn compaction_paths(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (dir.join("db"), dir.join("db.compact"), dir.join("db.old"))
}

fn remove_dir_if_exists(p: &Path) -> Result<()> {
    match std::fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(p, e)),
    }
}

fn sync_dir(p: &Path) -> Result<()> {
    std::fs::File::open(p)
        .and_then(|f| f.sync_all())
        .map_err(|e| StorageError::io(p, e))
}

/// Finishes a compaction whose copy was complete, or discards one that was not.
fn recover_compaction(dir: &Path) -> Result<()> {
    let (db, new, old) = compaction_paths(dir);
    let complete = new.join(COMPLETE_MARKER).exists();
    if !db.exists() && complete {
        std::fs::rename(&new, &db).map_err(|e| StorageError::io(&new, e))?;
        sync_dir(dir)?;
    }
    remove_dir_if_exists(&new)?;
    if db.exists() {
        remove_dir_if_exists(&old)?;
    } else if old.exists() {
        // Renamed aside but the copy never completed: the old database is the truth.
        std::fs::rename(&old, &db).map_err(|e| StorageError::io(&old, e))?;
    }
    Ok(())
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
    /// Opens (creating if needed) the store in `dir`, finishes or discards an interrupted
    /// compaction, removes what an interrupted write or removal left behind, and compacts
    /// the database if it has grown past [`COMPACT_RATIO`] of the live data.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, StoreOptions::default())
    }

    /// [`Store::open`] with options.
    pub fn open_with(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| StorageError::io(&dir, e))?;
        let lock_path = dir.join("LOCK");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StorageError::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(StorageError::Locked(dir)),
            Err(std::fs::TryLockError::Error(e)) => return Err(StorageError::io(&lock_path, e)),
        }
        recover_compaction(&dir)?;
        let backend = backend_of(&dir, options.backend)?;
        let mut store = Self {
            inner: Some(Inner::open(&dir, backend)?),
            backend,
            auto_compact: options.auto_compact,
            _lock: lock,
            dir,
        };
        store.check_committed()?;
        store.collect_garbage()?;
        store.maybe_compact()?;
        Ok(store)
    }

    fn i(&self) -> &Inner {
        self.inner.as_ref().expect(
            "the store's database is open (a failed compaction closes it; reopen the store)",
        )
    }

    /// Bytes of the live data: every dataset's chunks and every stored model artifact.
    pub fn live_bytes(&self) -> Result<u64> {
        let mut seen = HashSet::new();
        let mut total = 0;
        for m in self.datasets()? {
            for c in m.chunks {
                if seen.insert(c.id) {
                    total += c.bytes;
                }
            }
        }
        for e in self.models()? {
            if seen.insert(e.artifact) {
                total += e.bytes;
            }
        }
        for kv in self.i().pins.iter() {
            let (k, v) = kv?;
            if let Some(id) = pin_chunk(&k) {
                if seen.insert(id) {
                    total += u64::from_le_bytes(v.as_ref().try_into().unwrap_or([0; 8]));
                }
            }
        }
        Ok(total)
    }

    /// Bytes of all the store's files on disk (database, chunks, artifacts).
    pub fn disk_bytes(&self) -> u64 {
        dir_bytes(&self.dir)
    }

    /// The backend holding chunk and artifact bytes.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Compacts if the files exceed [`COMPACT_RATIO`] times the live data plus
    /// [`COMPACT_SLACK`] (unless the store was opened without `auto_compact`). sled reuses space poorly after deletes (several times the live
    /// data), so removals and ingests call this.
    pub fn maybe_compact(&mut self) -> Result<Option<Compaction>> {
        if !self.auto_compact {
            return Ok(None);
        }
        let (disk, live) = (self.disk_bytes(), self.live_bytes()?);
        if (disk as f64) > COMPACT_RATIO * live as f64 + COMPACT_SLACK as f64 {
            return self.compact().map(Some);
        }
        Ok(None)
    }

    /// Rewrites the database into a fresh one holding only live records, then swaps it in.
    ///
    /// Crash-safe: the copy is complete (flushed, marked) before `db` is renamed aside, and
    /// [`Store::open`] finishes or discards a swap that was interrupted.
    pub fn compact(&mut self) -> Result<Compaction> {
        let before = self.disk_bytes();
        let (db_path, new_path, old_path) = compaction_paths(&self.dir);
        remove_dir_if_exists(&new_path)?;
        {
            let fresh = sled::Config::new()
                .path(&new_path)
                .cache_capacity(CACHE_BYTES)
                .open()?;
            let db = &self.i().db;
            for name in db.tree_names() {
                let src = db.open_tree(&name)?;
                let dst = fresh.open_tree(&name)?;
                for kv in src.iter() {
                    let (k, v) = kv?;
                    dst.insert(k, v)?;
                }
            }
            fresh.flush()?;
        }
        let marker = new_path.join(COMPLETE_MARKER);
        std::fs::write(&marker, b"complete\n").map_err(|e| StorageError::io(&marker, e))?;
        sync_dir(&new_path)?;
        // Close the old database, then swap directories.
        self.inner = None;
        std::fs::rename(&db_path, &old_path).map_err(|e| StorageError::io(&db_path, e))?;
        std::fs::rename(&new_path, &db_path).map_err(|e| StorageError::io(&new_path, e))?;
        sync_dir(&self.dir)?;
        remove_dir_if_exists(&old_path)?;
        self.inner = Some(Inner::open(&self.dir, self.backend)?);
        let after = self.disk_bytes();
        tracing::info!(before, after, "store compacted");
        Ok(Compaction { before, after })
    }

    fn seq(&self) -> Result<u64> {
        Ok(self.i().meta.get(SEQ_KEY)?.map_or(0, |v| {
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
        self.i().meta.insert(SEQ_KEY, &next.to_le_bytes())?;
        self.flush()?;
        self.write_committed(next)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The chunk store.
    pub fn chunks(&self) -> &dyn ChunkStore {
        self.i().chunks.store()
    }

    fn blobs(&self) -> &dyn ChunkStore {
        self.i().blobs.store()
    }

    /// Bytes the database occupies on disk.
    /// Makes every earlier write durable.
    pub fn flush(&self) -> Result<()> {
        self.i().db.flush()?;
        Ok(())
    }

    /// Every chunk id some dataset references or some owner has pinned.
    pub fn referenced_chunks(&self) -> Result<HashSet<ChunkId>> {
        let mut live: HashSet<ChunkId> = self
            .datasets()?
            .iter()
            .flat_map(|m| m.chunks.iter().map(|c| c.id))
            .collect();
        for k in self.i().pins.iter().keys() {
            if let Some(id) = pin_chunk(&k?) {
                live.insert(id);
            }
        }
        Ok(live)
    }

    /// Stores `bytes` as a chunk kept for `owner` (a mesh dataset, a job), whether or not
    /// a local manifest references it. Durable when it returns; returns the chunk's id.
    pub fn put_pinned(&self, owner: &str, bytes: &[u8]) -> Result<ChunkId> {
        let id = self.chunks().put(bytes)?;
        self.pin(owner, &[(id, bytes.len() as u64)])?;
        Ok(id)
    }

    /// Keeps chunks already in the store for `owner` (one durable commit for all).
    pub fn pin(&self, owner: &str, chunks: &[(ChunkId, u64)]) -> Result<()> {
        check_name(owner)?;
        for (id, _) in chunks {
            if !self.chunks().contains(id)? {
                return Err(StorageError::Missing(*id));
            }
        }
        let mut batch = sled::Batch::default();
        for (id, len) in chunks {
            batch.insert(pin_key(owner, id), &len.to_le_bytes());
        }
        self.i().pins.apply_batch(batch)?;
        self.commit()
    }

    /// The chunks pinned for `owner`.
    pub fn pinned(&self, owner: &str) -> Result<Vec<ChunkId>> {
        let mut prefix = owner.as_bytes().to_vec();
        prefix.push(0);
        self.i()
            .pins
            .scan_prefix(prefix)
            .keys()
            .map(|k| Ok(pin_chunk(&k?)))
            .filter_map(|r| r.transpose())
            .collect()
    }

    /// Every owner that keeps chunks here, with how many chunks and bytes it keeps.
    pub fn owners(&self) -> Result<std::collections::BTreeMap<String, (u64, u64)>> {
        let mut out = std::collections::BTreeMap::<String, (u64, u64)>::new();
        for kv in self.i().pins.iter() {
            let (k, v) = kv?;
            let Some(at) = k.iter().position(|&b| b == 0) else {
                continue;
            };
            let owner = String::from_utf8_lossy(&k[..at]).into_owned();
            let len = v.as_ref().try_into().map(u64::from_le_bytes).unwrap_or(0);
            let e = out.entry(owner).or_default();
            e.0 += 1;
            e.1 += len;
        }
        Ok(out)
    }

    /// Drops `owner`'s pins of `chunks`, and those of them nothing else keeps; returns how
    /// many chunks were removed.
    pub fn unpin_chunks(&self, owner: &str, chunks: &[ChunkId]) -> Result<usize> {
        let mine: HashSet<ChunkId> = self.pinned(owner)?.into_iter().collect();
        let dropped: Vec<ChunkId> = chunks
            .iter()
            .filter(|c| mine.contains(c))
            .copied()
            .collect();
        for id in &dropped {
            self.i().pins.remove(pin_key(owner, id))?;
        }
        self.commit()?;
        let live = self.referenced_chunks()?;
        let mut removed = 0;
        for id in dropped {
            if !live.contains(&id) && self.chunks().remove(&id)? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Drops every pin of `owner`, and the chunks nothing else keeps; returns how many
    /// chunks were removed.
    pub fn unpin(&self, owner: &str) -> Result<usize> {
        let mine = self.pinned(owner)?;
        for id in &mine {
            self.i().pins.remove(pin_key(owner, id))?;
        }
        self.commit()?;
        let live = self.referenced_chunks()?;
        let mut removed = 0;
        for id in mine {
            if !live.contains(&id) && self.chunks().remove(&id)? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// A chunk's bytes, verified against its id.
    pub fn chunk(&self, id: &ChunkId) -> Result<Vec<u8>> {
        self.chunks().get(id)
    }

    /// Replaces a damaged copy of a chunk with `bytes`, which must hash to `id` (a good
    /// copy fetched from another holder), and flushes.
    pub fn repair_chunk(&self, id: &ChunkId, bytes: &[u8]) -> Result<()> {
        crate::chunk::verify(id, bytes)?;
        self.chunks().remove(id)?;
        self.chunks().write(bytes)?;
        self.flush()
    }

    /// Whether the store holds a chunk.
    pub fn has_chunk(&self, id: &ChunkId) -> Result<bool> {
        self.chunks().contains(id)
    }

    /// Removes chunks no manifest references, artifacts no model entry references, and
    /// stray pages. Returns the number of chunks and artifacts removed.
    pub fn collect_garbage(&self) -> Result<usize> {
        let live = self.referenced_chunks()?;
        let mut removed = 0;
        for id in self.chunks().ids()? {
            if !live.contains(&id) {
                self.chunks().remove(&id)?;
                removed += 1;
            }
        }
        let live_models: HashSet<ChunkId> = self.models()?.iter().map(|m| m.artifact).collect();
        for id in self.blobs().ids()? {
            if !live_models.contains(&id) {
                self.blobs().remove(&id)?;
                removed += 1;
            }
        }
        let pages = self.i().chunks.sweep()? + self.i().blobs.sweep()?;
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
            if !self.chunks().contains(&c.id)? {
                return Err(StorageError::Missing(c.id));
            }
        }
        self.chunks().flush()?;
        let bytes = rmp_serde::to_vec_named(m).expect("manifests encode");
        let prev = self.i().datasets.compare_and_swap(
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
        Ok(self.i().datasets.contains_key(name.as_bytes())?)
    }

    /// A dataset's manifest.
    pub fn dataset(&self, name: &str) -> Result<DatasetManifest> {
        let bytes = self
            .i()
            .datasets
            .get(name.as_bytes())?
            .ok_or_else(|| StorageError::DatasetNotFound(name.to_string()))?;
        decode_record(format!("dataset manifest '{name}'"), &bytes)
    }

    /// Every dataset's manifest, by name.
    pub fn datasets(&self) -> Result<Vec<DatasetManifest>> {
        self.i()
            .datasets
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

    /// Reads and decodes chunk `i` of a dataset whose layout is `layout`
    /// ([`DatasetManifest::layout`]).
    pub fn read_chunk(&self, m: &DatasetManifest, layout: &ChunkLayout, i: usize) -> Result<Chunk> {
        let c = &m.chunks[i];
        let bytes = self.chunks().get(&c.id)?;
        layout.decode(&c.id, &bytes)
    }

    /// Materialises a whole dataset in memory.
    pub fn load_dataset(&self, name: &str) -> Result<Dataset> {
        let m = self.dataset(name)?;
        let mut data = m.assembler()?;
        for c in &m.chunks {
            data.push(&c.id, &self.chunks().get(&c.id)?)?;
        }
        data.finish()
    }

    /// Removes a dataset; its chunks go unless another dataset shares them.
    pub fn remove_dataset(&mut self, name: &str) -> Result<Removal> {
        let m = self.dataset(name)?;
        self.i().datasets.remove(name.as_bytes())?;
        self.commit()?;
        let still_used = self.referenced_chunks()?;
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
            } else if self.chunks().remove(&c.id)? {
                r.chunks_removed += 1;
            }
        }
        self.flush()?;
        self.maybe_compact()?;
        Ok(r)
    }

    /// Stores a model artifact as the next version of `name`; returns the version.
    pub fn put_model(&self, name: &str, artifact: &ModelArtifact) -> Result<u32> {
        check_name(name)?;
        let bytes = artifact.to_bytes()?;
        let id = self.blobs().put(&bytes)?;
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
            let swapped = self.i().models.compare_and_swap(
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
        self.i()
            .models
            .scan_prefix(prefix)
            .values()
            .map(|v| decode_record(format!("model entry '{name}'"), &v?))
            .collect()
    }

    /// Every stored model version.
    pub fn models(&self) -> Result<Vec<ModelEntry>> {
        self.i()
            .models
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
        let bytes = self.blobs().get(&entry.artifact)?;
        let art =
            ModelArtifact::from_bytes(&bytes, Path::new(&format!("{name}@{}", entry.version)))?;
        Ok((entry, art))
    }

    /// Removes one version of a model, or all of them; returns how many went.
    pub fn remove_model(&mut self, name: &str, version: Option<u32>) -> Result<usize> {
        let versions = self.model_versions(name)?;
        let doomed: Vec<&ModelEntry> = versions
            .iter()
            .filter(|e| version.is_none_or(|v| e.version == v))
            .collect();
        if doomed.is_empty() {
            return Err(StorageError::ModelNotFound(name.to_string()));
        }
        for e in &doomed {
            self.i().models.remove(model_key(name, e.version))?;
        }
        self.commit()?;
        let live: HashSet<ChunkId> = self.models()?.iter().map(|m| m.artifact).collect();
        for e in &doomed {
            if !live.contains(&e.artifact) {
                self.blobs().remove(&e.artifact)?;
            }
        }
        self.flush()?;
        self.maybe_compact()?;
        Ok(doomed.len())
    }
}

fn pin_key(owner: &str, id: &ChunkId) -> Vec<u8> {
    let mut k = owner.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

fn pin_chunk(key: &[u8]) -> Option<ChunkId> {
    let at = key.iter().position(|&b| b == 0)?;
    let id: [u8; 32] = key[at + 1..].try_into().ok()?;
    Some(ChunkId::from_bytes(id))
}
