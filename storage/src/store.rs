//! Chunk stores: immutable, content-addressed blobs.
//!
//! - [`FileStore`] keeps each chunk in its own file named by its id, written to a temporary
//!   name, fsynced and renamed into place. The default: it uses the disk space of the live
//!   data and nothing more (see docs/BENCHMARKS.md for sled's figures).
//! - [`SledStore`] keeps each chunk as pages of at most [`PAGE_SIZE`] bytes in a sled tree
//!   with the chunk's length in a second tree. Pages are small enough that a full sled leaf
//!   (up to 17 entries) stays under sled's blob threshold: sled writes larger nodes to blob
//!   files that it never fsyncs.
//! - [`MemStore`] keeps them in memory, for tests and simulations.
//!
//! All of them check every read against the chunk's BLAKE3 id.

use std::collections::HashMap;
use std::sync::RwLock;

use meshml_protocol::ChunkId;

use crate::chunk::{chunk_id, verify};
use crate::error::{Result, StorageError};

/// Largest value written to sled. sled splits a leaf above 16 entries and stores any node
/// bigger than a quarter segment (128 KiB by default) as an unsynced blob file, so 17
/// pages plus keys must stay under that.
pub const PAGE_SIZE: usize = 4 * 1024;

/// A store of immutable, content-addressed chunks.
pub trait ChunkStore: Send + Sync {
    /// Stores `bytes` durably (flushed before returning) and returns their id. Storing the
    /// same bytes twice is a no-op.
    fn put(&self, bytes: &[u8]) -> Result<ChunkId> {
        let id = self.write(bytes)?;
        self.flush()?;
        Ok(id)
    }

    /// Stores `bytes` without waiting for them to reach the disk; call
    /// [`ChunkStore::flush`] before acknowledging anything that depends on them.
    fn write(&self, bytes: &[u8]) -> Result<ChunkId>;

    /// Makes every earlier write durable.
    fn flush(&self) -> Result<()>;

    /// The chunk's bytes, verified against its id.
    fn get(&self, id: &ChunkId) -> Result<Vec<u8>>;

    /// Whether the store has the chunk (without reading or verifying it).
    fn contains(&self, id: &ChunkId) -> Result<bool>;

    /// Removes the chunk; returns whether it was there.
    fn remove(&self, id: &ChunkId) -> Result<bool>;

    /// Every chunk id in the store.
    fn ids(&self) -> Result<Vec<ChunkId>>;
}

/// Chunks in memory.
#[derive(Debug, Default)]
pub struct MemStore {
    chunks: RwLock<HashMap<ChunkId, Vec<u8>>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces a chunk's stored bytes without changing its id (to test corruption).
    pub fn tamper(&self, id: &ChunkId, bytes: Vec<u8>) {
        self.chunks.write().expect("lock").insert(*id, bytes);
    }
}

impl ChunkStore for MemStore {
    fn write(&self, bytes: &[u8]) -> Result<ChunkId> {
        let id = chunk_id(bytes);
        self.chunks
            .write()
            .expect("lock")
            .entry(id)
            .or_insert_with(|| bytes.to_vec());
        Ok(id)
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn get(&self, id: &ChunkId) -> Result<Vec<u8>> {
        let bytes = self
            .chunks
            .read()
            .expect("lock")
            .get(id)
            .cloned()
            .ok_or(StorageError::Missing(*id))?;
        verify(id, &bytes)?;
        Ok(bytes)
    }

    fn contains(&self, id: &ChunkId) -> Result<bool> {
        Ok(self.chunks.read().expect("lock").contains_key(id))
    }

    fn remove(&self, id: &ChunkId) -> Result<bool> {
        Ok(self.chunks.write().expect("lock").remove(id).is_some())
    }

    fn ids(&self) -> Result<Vec<ChunkId>> {
        Ok(self.chunks.read().expect("lock").keys().copied().collect())
    }
}

/// Chunks in a sled database, paged. Not `Clone`: a copy could outlive a compaction of
/// the [`crate::Store`] that made it and write to a retired database.
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    /// chunk id -> length in bytes (u64 LE)
    lens: sled::Tree,
    /// chunk id ++ page number (u32 BE) -> page bytes
    pages: sled::Tree,
}

fn page_key(id: &ChunkId, page: u32) -> [u8; 36] {
    let mut k = [0u8; 36];
    k[..32].copy_from_slice(id.as_bytes());
    k[32..].copy_from_slice(&page.to_be_bytes());
    k
}

impl SledStore {
    /// Opens the chunk trees of `db` (prefix `name`, so one database can hold several).
    pub fn open(db: &sled::Db, name: &str) -> Result<Self> {
        Ok(Self {
            db: db.clone(),
            lens: db.open_tree(format!("{name}.lens"))?,
            pages: db.open_tree(format!("{name}.pages"))?,
        })
    }

    /// Flips the first byte of chunk `id` (or of the first one kept) where it lies, and
    /// flushes: corruption on purpose, for fault injection. The chunk damaged, if any.
    pub fn damage(&self, id: Option<ChunkId>) -> Result<Option<ChunkId>> {
        let id = match id {
            Some(id) => id,
            None => match self.ids()?.into_iter().next() {
                Some(first) => first,
                None => return Ok(None),
            },
        };
        let key = page_key(&id, 0);
        let Some(page) = self.pages.get(key)? else {
            return Ok(None);
        };
        let mut page = page.to_vec();
        let Some(first) = page.first_mut() else {
            return Ok(None);
        };
        *first ^= 0xff;
        self.pages.insert(key, page)?;
        self.db.flush()?;
        Ok(Some(id))
    }

    /// Stores arbitrary bytes under `id` (which must be their hash) without hashing again.
    fn write_pages(&self, id: &ChunkId, bytes: &[u8]) -> Result<()> {
        if self.lens.contains_key(id.as_bytes())? {
            return Ok(());
        }
        for (i, page) in bytes.chunks(PAGE_SIZE).enumerate() {
            self.pages.insert(page_key(id, i as u32), page)?;
        }
        // The length goes in last: a chunk whose length is present has all its pages.
        self.lens
            .insert(id.as_bytes(), &(bytes.len() as u64).to_le_bytes())?;
        Ok(())
    }
}

impl ChunkStore for SledStore {
    fn write(&self, bytes: &[u8]) -> Result<ChunkId> {
        let id = chunk_id(bytes);
        self.write_pages(&id, bytes)?;
        Ok(id)
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    fn get(&self, id: &ChunkId) -> Result<Vec<u8>> {
        let damaged = |message: String| StorageError::Damaged { id: *id, message };
        let len = match self.lens.get(id.as_bytes())? {
            None => return Err(StorageError::Missing(*id)),
            Some(v) => u64::from_le_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| damaged("its length record is malformed".into()))?,
            ) as usize,
        };
        let mut out = Vec::with_capacity(len);
        let n_pages = len.div_ceil(PAGE_SIZE);
        for page in 0..n_pages {
            let p = self
                .pages
                .get(page_key(id, page as u32))?
                .ok_or_else(|| damaged(format!("page {page} of {n_pages} is missing")))?;
            out.extend_from_slice(&p);
        }
        if out.len() != len {
            return Err(damaged(format!(
                "{} bytes stored, {len} expected",
                out.len()
            )));
        }
        verify(id, &out)?;
        Ok(out)
    }

    fn contains(&self, id: &ChunkId) -> Result<bool> {
        Ok(self.lens.contains_key(id.as_bytes())?)
    }

    fn remove(&self, id: &ChunkId) -> Result<bool> {
        // The length goes first, so a crash mid-way leaves unreachable pages, not a chunk
        // with missing pages; `sweep_pages` collects them.
        let existed = self.lens.remove(id.as_bytes())?.is_some();
        for kv in self.pages.scan_prefix(id.as_bytes()).keys() {
            self.pages.remove(kv?)?;
        }
        Ok(existed)
    }

    fn ids(&self) -> Result<Vec<ChunkId>> {
        self.lens
            .iter()
            .keys()
            .map(|k| {
                let k = k?;
                let b: [u8; 32] = k.as_ref().try_into().map_err(|_| StorageError::Record {
                    what: "chunk index".into(),
                    message: format!("key of {} bytes", k.len()),
                })?;
                Ok(ChunkId::from_bytes(b))
            })
            .collect()
    }
}

impl SledStore {
    /// Removes pages that belong to no chunk (left by a crash during a write or removal).
    /// Returns the number of pages removed.
    pub fn sweep_pages(&self) -> Result<usize> {
        let mut removed = 0;
        let mut current: Option<([u8; 32], bool)> = None;
        for key in self.pages.iter().keys() {
            let key = key?;
            let mut id = [0u8; 32];
            id.copy_from_slice(&key[..32.min(key.len())]);
            let live = match current {
                Some((c, live)) if c == id => live,
                _ => {
                    let live = key.len() == 36 && self.lens.contains_key(id)?;
                    current = Some((id, live));
                    live
                }
            };
            if !live {
                self.pages.remove(&key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Chunks as files: `DIR/ab/abcd...` (the id in hex, fanned out by its first byte).
#[derive(Debug)]
pub struct FileStore {
    dir: std::path::PathBuf,
    /// Fan-out directories with renames not yet made durable.
    dirty: std::sync::Mutex<std::collections::BTreeSet<std::path::PathBuf>>,
    counter: std::sync::atomic::AtomicU64,
}

impl FileStore {
    /// Opens (creating) a file store rooted at `dir`, removing temporary files left by an
    /// interrupted write.
    pub fn open(dir: impl Into<std::path::PathBuf>) -> Result<Self> {
        let dir = dir.into();
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| StorageError::io(&tmp, e))?;
        for e in std::fs::read_dir(&tmp).map_err(|e| StorageError::io(&tmp, e))? {
            let p = e.map_err(|e| StorageError::io(&tmp, e))?.path();
            std::fs::remove_file(&p).map_err(|e| StorageError::io(&p, e))?;
        }
        Ok(Self {
            dir,
            dirty: Default::default(),
            counter: Default::default(),
        })
    }

    fn path(&self, id: &ChunkId) -> std::path::PathBuf {
        let hex = id.to_string();
        self.dir.join(&hex[..2]).join(hex)
    }

    /// Flips the first byte of chunk `id` (or of the first one kept) in its file:
    /// corruption on purpose, for fault injection. The chunk damaged, if any.
    pub fn damage(&self, id: Option<ChunkId>) -> Result<Option<ChunkId>> {
        let id = match id {
            Some(id) => id,
            None => match self.ids()?.into_iter().next() {
                Some(first) => first,
                None => return Ok(None),
            },
        };
        let path = self.path(&id);
        let mut bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io(&path, e)),
        };
        let Some(first) = bytes.first_mut() else {
            return Ok(None);
        };
        *first ^= 0xff;
        std::fs::write(&path, &bytes).map_err(|e| StorageError::io(&path, e))?;
        Ok(Some(id))
    }

    fn sync_dir(p: &std::path::Path) -> Result<()> {
        std::fs::File::open(p)
            .and_then(|f| f.sync_all())
            .map_err(|e| StorageError::io(p, e))
    }
}

impl ChunkStore for FileStore {
    fn write(&self, bytes: &[u8]) -> Result<ChunkId> {
        let id = chunk_id(bytes);
        let path = self.path(&id);
        if path.exists() {
            return Ok(id);
        }
        let parent = path.parent().expect("fan-out dir").to_path_buf();
        std::fs::create_dir_all(&parent).map_err(|e| StorageError::io(&parent, e))?;
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self
            .dir
            .join("tmp")
            .join(format!("{id}.{}.{n}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(StorageError::io(&path, e));
        }
        self.dirty.lock().expect("lock").insert(parent);
        Ok(id)
    }

    fn flush(&self) -> Result<()> {
        let dirs = std::mem::take(&mut *self.dirty.lock().expect("lock"));
        for d in &dirs {
            Self::sync_dir(d)?;
        }
        if !dirs.is_empty() {
            Self::sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn get(&self, id: &ChunkId) -> Result<Vec<u8>> {
        let path = self.path(id);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::Missing(*id))
            }
            Err(e) => return Err(StorageError::io(&path, e)),
        };
        verify(id, &bytes)?;
        Ok(bytes)
    }

    fn contains(&self, id: &ChunkId) -> Result<bool> {
        Ok(self.path(id).exists())
    }

    fn remove(&self, id: &ChunkId) -> Result<bool> {
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                self.dirty
                    .lock()
                    .expect("lock")
                    .insert(path.parent().expect("fan-out dir").to_path_buf());
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StorageError::io(&path, e)),
        }
    }

    fn ids(&self) -> Result<Vec<ChunkId>> {
        let mut out = Vec::new();
        let rd = std::fs::read_dir(&self.dir).map_err(|e| StorageError::io(&self.dir, e))?;
        for fan in rd {
            let fan = fan.map_err(|e| StorageError::io(&self.dir, e))?.path();
            if !fan.is_dir() || fan.file_name().is_some_and(|n| n == "tmp") {
                continue;
            }
            for f in std::fs::read_dir(&fan).map_err(|e| StorageError::io(&fan, e))? {
                let f = f.map_err(|e| StorageError::io(&fan, e))?;
                if let Some(id) = f.file_name().to_str().and_then(ChunkId::from_hex) {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stores() -> (tempfile::TempDir, Vec<Box<dyn ChunkStore>>) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        let sled: Box<dyn ChunkStore> = Box::new(SledStore::open(&db, "chunks").unwrap());
        let files: Box<dyn ChunkStore> =
            Box::new(FileStore::open(dir.path().join("files")).unwrap());
        (dir, vec![Box::new(MemStore::new()), sled, files])
    }

    #[test]
    fn put_get_remove_in_both_stores() {
        let (_dir, stores) = stores();
        // 200 KiB spans 4 pages.
        let big: Vec<u8> = (0..200 * 1024).map(|i| (i * 7 % 251) as u8).collect();
        for s in &stores {
            let id = s.put(&big).unwrap();
            assert_eq!(id, chunk_id(&big));
            assert_eq!(s.put(&big).unwrap(), id, "idempotent");
            assert_eq!(s.get(&id).unwrap(), big);
            let small = s.put(b"tiny").unwrap();
            let mut ids = s.ids().unwrap();
            ids.sort();
            let mut want = vec![id, small];
            want.sort();
            assert_eq!(ids, want);
            assert!(s.remove(&id).unwrap());
            assert!(!s.contains(&id).unwrap());
            assert!(matches!(s.get(&id), Err(StorageError::Missing(_))));
            assert!(!s.remove(&id).unwrap());
        }
    }

    #[test]
    fn sled_store_detects_a_damaged_page_and_sweeps_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        let s = SledStore::open(&db, "chunks").unwrap();
        let bytes = vec![3u8; PAGE_SIZE + 10];
        let id = s.put(&bytes).unwrap();
        assert!(dir
            .path()
            .join("db")
            .join("blobs")
            .read_dir()
            .unwrap()
            .next()
            .is_none());
        // Flip one byte of the second page.
        let key = page_key(&id, 1);
        let mut page = s.pages.get(key).unwrap().unwrap().to_vec();
        page[5] ^= 0xff;
        s.pages.insert(key, page).unwrap();
        let e = s.get(&id).unwrap_err().to_string();
        assert!(e.starts_with(&format!("chunk {id} is corrupt")), "{e}");
        // Drop a page: reported as missing, not as a short read.
        s.pages.remove(key).unwrap();
        assert!(s
            .get(&id)
            .unwrap_err()
            .to_string()
            .contains("page 1 of 2 is missing"));
        // Orphan pages (no length record) are swept.
        s.lens.remove(id.as_bytes()).unwrap();
        assert_eq!(s.sweep_pages().unwrap(), 1);
        assert!(s.pages.is_empty());
    }

    #[test]
    fn file_store_detects_a_flipped_byte_and_clears_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path()).unwrap();
        let id = s.put(b"some chunk bytes").unwrap();
        let p = s.path(&id);
        let mut b = std::fs::read(&p).unwrap();
        b[2] ^= 1;
        std::fs::write(&p, b).unwrap();
        assert!(matches!(s.get(&id), Err(StorageError::Corrupt { .. })));
        std::fs::write(dir.path().join("tmp").join("partial"), b"x").unwrap();
        let s = FileStore::open(dir.path()).unwrap();
        assert!(dir.path().join("tmp").read_dir().unwrap().next().is_none());
        assert_eq!(s.ids().unwrap(), vec![id]);
    }

    #[test]
    fn mem_store_detects_tampering() {
        let s = MemStore::new();
        let id = s.put(b"abc").unwrap();
        s.tamper(&id, b"abd".to_vec());
        assert!(matches!(s.get(&id), Err(StorageError::Corrupt { .. })));
    }
}
