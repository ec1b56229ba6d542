//! The worker every node runs: takes task assignments from the driver, runs them on the
//! blocking pool (at most `slots` at a time, never on network or actor threads), keeps each
//! output in the local store, and reports it to whoever drives when it is done.
//!
//! Assignments carry the driver's term; the [`TermGuard`] refuses older ones. The queue of
//! accepted tasks is bounded (`4 x slots`): beyond it an assignment is refused as
//! retryable, and the driver tries again later.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meshml_client::api::ExecutionView;
use meshml_models::parallel::{compute_with, Pass};
use meshml_models::plan::run_task;
use meshml_models::Dataset;
use meshml_protocol::{ChunkId, ErrorCode, RemoteError, Response, TaskState};
use tokio::sync::Semaphore;

use super::board::{Event, Report};
use super::inbox::{InboxSlot, TermGuard};
use super::scheduler::TaskKey;
use crate::error::MeshError;
use crate::job::{job_owner, TaskDone, TaskSpec};
use crate::services::consensus::Consensus;
use crate::services::datasets::Datasets;

/// The thread data-parallel passes compute on. One thread, always the same: the chunks
/// it decodes and the products it computes are allocated from one of the allocator's
/// arenas, whose free memory serves the next chunk, where the blocking pool's many threads
/// would each keep an arena's worth of a chunk's size (the difference measured: 22 MB
/// against 7.5 MB of peak growth on a worker over a 126-pass fit of 340 KB chunks).
struct PassThread {
    jobs: std::sync::mpsc::SyncSender<Box<dyn FnOnce() + Send>>,
}

impl std::fmt::Debug for PassThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PassThread")
    }
}

impl PassThread {
    fn start() -> Self {
        // One pass computes at a time (the worker's turn): one job waits at most.
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Box<dyn FnOnce() + Send>>(1);
        let spawned = std::thread::Builder::new()
            .name("meshml-pass".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            });
        if let Err(e) = spawned {
            tracing::error!(cause = %e, "no thread for data-parallel passes");
        }
        Self { jobs }
    }

    /// Runs `f` on the thread; a panic is an error.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = Box::new(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(r.map_err(|_| "a pass panicked".to_string()));
        });
        self.jobs
            .try_send(job)
            .map_err(|_| "the pass thread is gone or busy".to_string())?;
        rx.await
            .map_err(|_| "the pass thread is gone".to_string())?
    }
}

/// A decoded chunk kept across the passes of a data-parallel fit.
#[derive(Debug, Clone)]
struct CachedChunk {
    data: Dataset,
    /// Whether the model's input check passed on it.
    checked: Arc<std::sync::atomic::AtomicBool>,
    bytes: u64,
}

impl CachedChunk {
    fn new(data: Dataset, checked: bool) -> Self {
        let bytes = (data.n_samples() * (data.n_features() + 1) * 4) as u64;
        Self {
            data,
            checked: Arc::new(checked.into()),
            bytes,
        }
    }

    fn checked(&self) -> bool {
        self.checked.load(Ordering::Relaxed)
    }

    fn mark_checked(&self) {
        self.checked.store(true, Ordering::Relaxed);
    }
}

/// The decoded chunks a worker keeps across the passes of data-parallel fits, within its
/// training memory, by (dataset owner, chunk). A chunk that does not fit is decoded again
/// at each pass; nothing of the same dataset is evicted for it (a fit reads its chunks in
/// the same order every pass, where evicting the oldest would make every read a miss), but
/// another dataset's chunks are.
#[derive(Debug)]
struct ChunkCache {
    capacity: u64,
    used: u64,
    entries: BTreeMap<(String, ChunkId), CachedChunk>,
}

impl ChunkCache {
    fn new(capacity: u64) -> Self {
        Self {
            capacity,
            used: 0,
            entries: BTreeMap::new(),
        }
    }

    /// Keeps the chunks of the dataset owners `keep` says.
    fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        let used = &mut self.used;
        self.entries.retain(|k, e| {
            let kept = keep(&k.0);
            if !kept {
                *used -= e.bytes;
            }
            kept
        });
    }

    fn get(&self, key: &(String, ChunkId)) -> Option<CachedChunk> {
        self.entries.get(key).cloned()
    }

    fn put(&mut self, key: (String, ChunkId), entry: CachedChunk) {
        if self.entries.contains_key(&key) || entry.bytes > self.capacity {
            return;
        }
        if self.used + entry.bytes > self.capacity {
            let others: Vec<(String, ChunkId)> = (self.entries.keys())
                .filter(|k| k.0 != key.0)
                .cloned()
                .collect();
            for k in others {
                if let Some(e) = self.entries.remove(&k) {
                    self.used -= e.bytes;
                }
            }
        }
        if self.used + entry.bytes <= self.capacity {
            self.used += entry.bytes;
            self.entries.insert(key, entry);
        }
    }
}

/// Chunks one data-parallel request may name, at most.
pub const MAX_CHUNKS_PER_PASS_REQUEST: usize = 64;

/// How long a worker keeps trying to report a finished task.
const REPORT_FOR: Duration = Duration::from_secs(120);

/// The worker.
pub struct Worker {
    datasets: Datasets,
    /// Decoded chunks of data-parallel fits, kept across passes.
    cache: Arc<Mutex<ChunkCache>>,
    slots: Arc<Semaphore>,
    /// One data-parallel pass computes at a time ...
    passes: Semaphore,
    /// ... on this thread.
    pass_thread: PassThread,
    n_slots: usize,
    accepted: AtomicUsize,
    guard: TermGuard,
    executions: Mutex<BTreeMap<TaskKey, u32>>,
    inbox: InboxSlot,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("slots", &self.n_slots)
            .finish()
    }
}

fn refuse(code: ErrorCode, message: impl Into<String>, retryable: bool) -> Response {
    Response::Error(RemoteError {
        code,
        message: message.into(),
        retryable,
    })
}

impl Worker {
    /// A worker with `slots` concurrent tasks over `datasets` (where it reads its data and
    /// keeps its outputs); when this node drives, reports go straight to the driver's
    /// `inbox`.
    pub fn new(datasets: Datasets, slots: usize, inbox: InboxSlot, train_memory: u64) -> Arc<Self> {
        let n_slots = slots.max(1);
        Arc::new(Self {
            datasets,
            slots: Arc::new(Semaphore::new(n_slots)),
            passes: Semaphore::new(1),
            pass_thread: PassThread::start(),
            cache: Arc::new(Mutex::new(ChunkCache::new(train_memory))),
            n_slots,
            accepted: AtomicUsize::new(0),
            guard: TermGuard::default(),
            executions: Mutex::new(BTreeMap::new()),
            inbox,
        })
    }

    /// Worker slots.
    pub fn slots(&self) -> usize {
        self.n_slots
    }

    fn consensus(&self) -> &Consensus {
        self.datasets.consensus()
    }

    /// Tasks started here, with how often each was started, for `/v1/status`.
    pub fn executions(&self) -> Vec<ExecutionView> {
        self.executions
            .lock()
            .expect("executions")
            .iter()
            .map(|(key, runs)| ExecutionView {
                job: key.job.to_string(),
                task: key.task.to_string(),
                runs: *runs,
            })
            .collect()
    }

    /// Answers `AssignTask`: checks the term, decodes the task, accepts it and starts it.
    pub fn assign(self: &Arc<Self>, key: TaskKey, term: u64, spec: &[u8]) -> Response {
        if let Err(refused) = self.admit(term) {
            return refused;
        }
        match rmp_serde::from_slice(spec) {
            Ok(spec) => self.start(key, term, spec),
            Err(e) => refuse(ErrorCode::BadRequest, format!("bad task: {e}"), false),
        }
    }

    /// Checks the term, accepts the task and starts it (an assignment from this node's own
    /// driver).
    pub fn assign_spec(self: &Arc<Self>, key: TaskKey, term: u64, spec: TaskSpec) -> Response {
        match self.admit(term) {
            Ok(()) => self.start(key, term, spec),
            Err(refused) => refused,
        }
    }

    /// Refuses a driver of a stale term.
    fn admit(&self, term: u64) -> Result<(), Response> {
        let local_term = self.consensus().raft().metrics().borrow().current_term;
        self.guard.admit(term, local_term).map_err(Response::Error)
    }

    /// Accepts an admitted task, within the bounded queue, and starts it.
    fn start(self: &Arc<Self>, key: TaskKey, term: u64, spec: TaskSpec) -> Response {
        if self.accepted.fetch_add(1, Ordering::SeqCst) >= 4 * self.n_slots {
            self.accepted.fetch_sub(1, Ordering::SeqCst);
            return refuse(ErrorCode::Unavailable, "worker queue is full", true);
        }
        let me = self.clone();
        actix_rt::spawn(async move {
            let outcome = me.run(&key, spec).await;
            me.accepted.fetch_sub(1, Ordering::SeqCst);
            me.report(key, term, outcome).await;
        });
        Response::Ack
    }

    #[tracing::instrument(skip_all, fields(job_id = %key.job, task_id = %key.task))]
    async fn run(&self, key: &TaskKey, spec: TaskSpec) -> Result<TaskDone, RemoteError> {
        let slot = self.slots.acquire().await.map_err(|_| RemoteError {
            code: ErrorCode::Unavailable,
            message: "worker shutting down".into(),
            retryable: true,
        })?;
        *self
            .executions
            .lock()
            .expect("executions")
            .entry(key.clone())
            .or_insert(0) += 1;
        let data = self
            .datasets
            .load(&spec.dataset)
            .await
            .map_err(|e| match e {
                // No such dataset: running the task again will not help.
                MeshError::NotFound(message) => RemoteError {
                    code: ErrorCode::NotFound,
                    message,
                    retryable: false,
                },
                // A chunk unreachable or unreadable for now: another try may find a copy.
                other => RemoteError {
                    code: ErrorCode::Unavailable,
                    message: other.to_string(),
                    retryable: true,
                },
            })?;
        let t = spec.task;
        // The fit and the encoding of its output both run on the blocking pool.
        let (out, bytes) = tokio::task::spawn_blocking(move || {
            run_task(&t, &data).map(|out| {
                let bytes = rmp_serde::to_vec_named(&out).expect("outputs encode");
                (out, bytes)
            })
        })
        .await
        .map_err(|e| RemoteError {
            code: ErrorCode::Internal,
            message: format!("task panicked: {e}"),
            retryable: false,
        })?
        .map_err(|e| RemoteError {
            code: ErrorCode::BadRequest,
            message: e.to_string(),
            retryable: false,
        })?;
        // The CPU work is done: storing the output does not hold a slot.
        drop(slot);
        let (score, has_payload, fit_ms, warnings) = (
            out.score,
            out.model.is_some() || out.predictions.is_some(),
            out.fit_ms,
            out.warnings.clone(),
        );
        // An output without payload is its score, which the report carries: nothing reads it
        // back, so it is not stored (its address still names it).
        let output = if has_payload {
            let owner = job_owner(key.job.as_str());
            self.datasets
                .chunks()
                .with_store(move |s| s.put_pinned(&owner, &bytes))
                .await
                .map_err(|e| RemoteError {
                    code: ErrorCode::Internal,
                    message: e.to_string(),
                    retryable: true,
                })?
        } else {
            meshml_storage::chunk::chunk_id(&bytes)
        };
        Ok(TaskDone {
            output,
            score,
            has_payload,
            fit_ms,
            warnings,
        })
    }

    /// Answers `TrainChunks`: one pass of a data-parallel fit over chunks of `dataset`, one
    /// chunk at a time on the pass thread (from the chunk cache, else read here or fetched
    /// from a holder and decoded, then kept if the cache has room), one pass at a time and
    /// not on a task slot. Each chunk's partial result comes back on its own, so the
    /// driver merges them in chunk order whoever computed them.
    pub async fn train_chunks(
        &self,
        term: u64,
        dataset: &str,
        chunks: Vec<(u32, ChunkId)>,
        spec: &[u8],
    ) -> Response {
        if let Err(refused) = self.admit(term) {
            return refused;
        }
        if chunks.len() > MAX_CHUNKS_PER_PASS_REQUEST {
            return refuse(
                ErrorCode::BadRequest,
                format!(
                    "{} chunks in one request (at most {MAX_CHUNKS_PER_PASS_REQUEST})",
                    chunks.len()
                ),
                false,
            );
        }
        let pass: Pass = match rmp_serde::from_slice(spec) {
            Ok(p) => p,
            Err(e) => return refuse(ErrorCode::BadRequest, format!("bad pass: {e}"), false),
        };
        // A member whose replicated state lags may not know the dataset yet: retryable.
        let (manifest, holders) = match self.datasets.holders(dataset) {
            Ok(h) => h,
            Err(e) => return refuse(ErrorCode::NotFound, e.to_string(), true),
        };
        let reader = match manifest.chunk_reader() {
            Ok(r) => Arc::new(r),
            Err(e) => return refuse(ErrorCode::BadRequest, e.to_string(), false),
        };
        let (owner, owners) = (self.consensus().state()).read(|s| {
            let owners: std::collections::BTreeSet<String> =
                s.datasets.keys().map(|n| s.dataset_owner(n)).collect();
            (s.dataset_owner(dataset), owners)
        });
        // Chunks of datasets removed (or stored again) since are of no more use.
        (self.cache.lock().expect("chunk cache")).retain(|o| owners.contains(o));
        // Passes do not wait for a task slot (a long task would make a pass time out):
        // one pass computes at a time.
        let Ok(_turn) = self.passes.acquire().await else {
            return refuse(ErrorCode::Unavailable, "worker shutting down", true);
        };
        let (pass, started) = (Arc::new(pass), std::time::Instant::now());
        let mut partials = Vec::with_capacity(chunks.len());
        for (index, id) in chunks {
            let Some(hs) = (manifest.chunks.get(index as usize))
                .filter(|c| c.id == id)
                .and_then(|_| holders.get(index as usize))
            else {
                return refuse(
                    ErrorCode::BadRequest,
                    format!("chunk {index} of '{dataset}' is not {id}"),
                    false,
                );
            };
            let key = (owner.clone(), id);
            let cached = self.cache.lock().expect("chunk cache").get(&key);
            let bytes = match cached {
                Some(_) => None,
                None => match self.datasets.chunks().chunk_from(id, hs).await {
                    Ok((b, _)) => Some(b),
                    Err(e) => return refuse(ErrorCode::Unavailable, e.to_string(), true),
                },
            };
            let (reader, pass, cache) = (reader.clone(), pass.clone(), self.cache.clone());
            let work = move || -> Result<Vec<u8>, String> {
                let part = match (cached, bytes) {
                    (Some(c), _) => {
                        // Checked once for the model, in the first pass that needs it.
                        let check = pass.checks_input() && !c.checked();
                        let part = compute_with(&pass, c.data.clone(), check);
                        if check && part.is_ok() {
                            c.mark_checked();
                        }
                        part
                    }
                    (None, Some(bytes)) => {
                        let data = reader.chunk(&id, &bytes).map_err(|e| e.to_string())?;
                        drop(bytes);
                        let part = compute_with(&pass, data.clone(), true);
                        if part.is_ok() {
                            let entry = CachedChunk::new(data, pass.checks_input());
                            cache.lock().expect("chunk cache").put(key, entry);
                        }
                        part
                    }
                    (None, None) => unreachable!("a chunk is cached or read"),
                }
                .map_err(|e| e.to_string())?;
                Ok(rmp_serde::to_vec_named(&part).expect("partials encode"))
            };
            match self.pass_thread.run(work).await {
                Ok(Ok(p)) => partials.push((index, serde_bytes::ByteBuf::from(p))),
                // The data or the estimator is wrong: another member would fail the same.
                Ok(Err(e)) => return refuse(ErrorCode::BadRequest, e, false),
                // This member's pass thread failed (a panic, or gone): another member may
                // compute the chunk.
                Err(e) => return refuse(ErrorCode::Internal, e, true),
            }
        }
        Response::Trained {
            partials,
            ms: started.elapsed().as_millis() as u64,
        }
    }

    /// Sends the outcome to the current driver until one takes it (bounded in time).
    async fn report(&self, key: TaskKey, term: u64, outcome: Result<TaskDone, RemoteError>) {
        let request = meshml_protocol::Request::TaskUpdate {
            job: key.job.clone(),
            task: key.task,
            term,
            state: if outcome.is_ok() {
                TaskState::Succeeded
            } else {
                TaskState::Failed
            },
            result: match &outcome {
                Ok(done) => rmp_serde::to_vec_named(done).expect("reports encode"),
                Err(_) => Vec::new(),
            },
            error: outcome.as_ref().err().cloned(),
        };
        let mut local = Some(Event::TaskReported(Box::new(Report {
            key: key.clone(),
            from: self.consensus().id(),
            outcome,
        })));
        let deadline = tokio::time::Instant::now() + REPORT_FOR;
        while tokio::time::Instant::now() < deadline {
            let leader = self.consensus().raft().metrics().borrow().current_leader;
            if leader == Some(self.consensus().id()) {
                let inbox = self.inbox.lock().expect("inbox slot").clone();
                if let Some((_, inbox)) = inbox {
                    match local.take().map(|event| inbox.try_send(event)) {
                        Some(Ok(())) | None => return,
                        Some(Err(
                            tokio::sync::mpsc::error::TrySendError::Full(event)
                            | tokio::sync::mpsc::error::TrySendError::Closed(event),
                        )) => local = Some(event),
                    }
                }
            } else if let Some(peer) = leader.and_then(|l| self.consensus().peer_of(l)) {
                match self
                    .consensus()
                    .client()
                    .request(peer, request.clone())
                    .await
                {
                    Ok(Response::Ack) => return,
                    Ok(Response::Error(e)) if !e.retryable => {
                        tracing::debug!(job_id = %key.job, task_id = %key.task, cause = %e.message, "report refused");
                        return;
                    }
                    Ok(other) => tracing::debug!(?other, "report not taken; retrying"),
                    Err(e) => tracing::debug!(cause = %e, "report failed; retrying"),
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        tracing::warn!(job_id = %key.job, task_id = %key.task, "no driver took the task's report; the driver will run it again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(rows: usize) -> CachedChunk {
        let iris = meshml_models::io::iris();
        CachedChunk::new(iris.select(&(0..rows).collect::<Vec<_>>()).unwrap(), false)
    }

    fn id(i: u8) -> ChunkId {
        ChunkId::from_bytes([i; 32])
    }

    #[test]
    fn the_chunk_cache_keeps_a_fit_s_first_chunks_and_gives_way_to_another_dataset() {
        // 10 rows of 4 features and a target: 200 bytes each; room for two.
        let mut c = ChunkCache::new(450);
        for i in 0..3 {
            c.put(("a".into(), id(i)), chunk(10));
        }
        // A scan in order keeps the first two, never evicting one of its own for the third.
        assert!(c.get(&("a".into(), id(0))).is_some());
        assert!(c.get(&("a".into(), id(1))).is_some());
        assert!(c.get(&("a".into(), id(2))).is_none());
        assert_eq!(c.used, 400);
        // Another dataset's chunk evicts the first dataset's.
        c.put(("b".into(), id(0)), chunk(10));
        assert!(c.get(&("a".into(), id(0))).is_none());
        assert!(c.get(&("b".into(), id(0))).is_some());
        assert_eq!(c.used, 200);
        // Larger than the whole cache: not kept.
        c.put(("b".into(), id(1)), chunk(100));
        assert!(c.get(&("b".into(), id(1))).is_none());
        // Removed datasets leave.
        c.retain(|o| o != "b");
        assert_eq!((c.entries.len(), c.used), (0, 0));
        // A chunk checked once stays checked in every copy handed out.
        c.put(("a".into(), id(5)), chunk(10));
        let e = c.get(&("a".into(), id(5))).unwrap();
        assert!(!e.checked());
        e.mark_checked();
        assert!(c.get(&("a".into(), id(5))).unwrap().checked());
    }
}
