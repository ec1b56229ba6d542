//! Chunk stores: immutable, content-addressed blobs.
//!
//! [`SledStore`] keeps each chunk as pages of at most [`PAGE_SIZE`] bytes in a sled tree
//! (sled writes larger values to blob files that it never fsyncs), with the chunk's length
//! in a second tree. [`MemStore`] keeps them in memory, for tests and simulations. Both
//! check every read against the chunk's BLAKE3 id.

use std::collections::HashMap;
use std::sync::RwLock;

use meshml_protocol::ChunkId;

use crate::chunk::{chunk_id, verify};
use crate::error::{Result, StorageError};

/// Largest value written to sled: well under its 128 KiB blob threshold.
pub const PAGE_SIZE: usize = 64 * 1024;

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

/// Chunks in a sled database, paged.
#[derive(Debug, Clone)]
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

    /// Bytes used by the whole database on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stores() -> (tempfile::TempDir, Vec<Box<dyn ChunkStore>>) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        let sled: Box<dyn ChunkStore> = Box::new(SledStore::open(&db, "chunks").unwrap());
        (dir, vec![Box::new(MemStore::new()), sled])
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
    fn mem_store_detects_tampering() {
        let s = MemStore::new();
        let id = s.put(b"abc").unwrap();
        s.tamper(&id, b"abd".to_vec());
        assert!(matches!(s.get(&id), Err(StorageError::Corrupt { .. })));
    }
}
