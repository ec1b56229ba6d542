//! The driver's engine for data-parallel fits: passes over a dataset's chunks where they
//! live, as a pure state machine (no I/O, no clock, no locks), owned by the job board and
//! run by the deterministic simulator like the board itself.
//!
//! A fit ([`meshml_models::parallel::DataParallelFit`]) asks for a pass; the engine gives
//! each chunk to one live holder (holders with the fewest chunks of this pass first), sends
//! each member its chunks in requests of at most [`Rounds::batch`] chunks with one request
//! in flight per member ([`Out::Train`]), and keeps every chunk's partial result. A member
//! that fails, or leaves the mesh, loses its chunks to another holder within the pass (a
//! chunk no holder could compute after [`MAX_CHUNK_ATTEMPTS`] tries fails the job). When
//! every chunk has answered, the partials are merged in chunk order (so the sum does not
//! depend on who computed what, or when) and told to the fit.
//!
//! Between passes the fit's state is committed to the replicated state
//! ([`Out::Checkpoint`]) every [`CHECKPOINT_EVERY_MS`] or [`CHECKPOINT_EVERY_PASSES`]
//! passes; a new driver resumes from the last one, runs the same passes again from there
//! and ends with the same model as a fault-free run.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use meshml_models::parallel::{DataParallelFit, Next, Partial, Pass};
use meshml_models::FittedModel;
use meshml_protocol::ChunkId;
use meshml_storage::raft::Checkpoint;

use super::scheduler::NodeId;

/// Tries a chunk gets within one pass before the job fails.
pub const MAX_CHUNK_ATTEMPTS: u32 = 4;

/// The fit's state is committed at least this often, milliseconds ...
pub const CHECKPOINT_EVERY_MS: u64 = 2_000;

/// ... or every this many passes, whichever comes first.
pub const CHECKPOINT_EVERY_PASSES: u64 = 10;

/// Chunks in one request, at most.
pub const MAX_CHUNKS_PER_REQUEST: usize = 16;

/// Bytes of partial results one answer may carry (under the protocol's 4 MiB frames).
pub const MAX_ANSWER_BYTES: usize = 2 << 20;

/// A member's answer to a pass: each chunk's partial result (index in the dataset,
/// MessagePack) with the member's compute time in milliseconds; or what went wrong, and
/// whether another try may succeed.
pub type Answer = Result<(Vec<(u32, Vec<u8>)>, u64), (String, bool)>;

/// What the engine asks of the driver.
#[derive(Debug, Clone)]
pub enum Out {
    /// Ask `node` to run pass `pass` over `chunks` (index in the dataset, id).
    Train {
        /// The member.
        node: NodeId,
        /// The pass's number.
        pass: u64,
        /// The chunks.
        chunks: Vec<(u32, ChunkId)>,
        /// The pass (MessagePack), shared by every request of the pass.
        spec: Arc<Vec<u8>>,
    },
    /// Commit the fit's state.
    Checkpoint(Box<Checkpoint>),
    /// The fit is done.
    Done {
        /// The model.
        model: Box<FittedModel>,
        /// Warnings the fit raised.
        warnings: Vec<String>,
        /// Passes over the data.
        passes: u64,
    },
    /// The fit cannot go on.
    Failed(String),
}

/// One pass under way.
#[derive(Debug)]
struct PassRun {
    number: u64,
    spec: Arc<Vec<u8>>,
    /// Chunks each member is still to compute.
    queues: BTreeMap<NodeId, VecDeque<usize>>,
    /// The request each member has in flight.
    in_flight: BTreeMap<NodeId, Vec<usize>>,
    partials: BTreeMap<usize, Partial>,
    attempts: Vec<u32>,
    /// Members that failed each chunk in this pass.
    failed: Vec<BTreeSet<NodeId>>,
    /// Chunks waiting for a live holder.
    homeless: BTreeSet<usize>,
    started_ms: u64,
    /// The longest a member computed in this pass, milliseconds.
    compute_ms: u64,
}

/// Timings of the passes so far, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassTimes {
    /// Passes timed.
    pub passes: u64,
    /// Their wall time, summed.
    pub wall_ms: u64,
    /// The longest member's compute time of each, summed.
    pub compute_ms: u64,
}

/// A data-parallel fit on the board (see the module docs).
#[derive(Debug)]
pub struct Rounds {
    fit: DataParallelFit,
    chunks: Vec<ChunkId>,
    holders: Vec<Vec<NodeId>>,
    live: BTreeSet<NodeId>,
    batch: usize,
    pass: Option<PassRun>,
    /// Passes and time of the last checkpoint.
    checkpointed: (u64, u64),
    times: PassTimes,
}

impl Rounds {
    /// A fit (new, or resumed from a checkpoint) over `chunks` held by `holders`, with
    /// `live` members; returns it with its first requests.
    pub fn start(
        fit: DataParallelFit,
        chunks: Vec<ChunkId>,
        holders: Vec<Vec<NodeId>>,
        live: BTreeSet<NodeId>,
        now_ms: u64,
    ) -> (Self, Vec<Out>) {
        let passes = fit.passes();
        let mut r = Self {
            fit,
            chunks,
            holders,
            live,
            batch: MAX_CHUNKS_PER_REQUEST,
            pass: None,
            checkpointed: (passes, now_ms),
            times: PassTimes::default(),
        };
        let out = r.advance(now_ms);
        (r, out)
    }

    /// Chunks per request in the current pass.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Pass timings so far.
    pub fn times(&self) -> PassTimes {
        self.times
    }

    /// The fit's state.
    pub fn fit(&self) -> &DataParallelFit {
        &self.fit
    }

    /// The members alive now: chunks of members gone go to another holder.
    pub fn members(&mut self, live: BTreeSet<NodeId>) -> Vec<Out> {
        self.live = live;
        let Some(p) = &mut self.pass else {
            return Vec::new();
        };
        let gone: Vec<NodeId> = p
            .queues
            .keys()
            .chain(p.in_flight.keys())
            .filter(|n| !self.live.contains(n))
            .copied()
            .collect();
        let mut lost = Vec::new();
        for n in gone {
            lost.extend(p.queues.remove(&n).unwrap_or_default());
            lost.extend(p.in_flight.remove(&n).unwrap_or_default());
        }
        lost.extend(std::mem::take(&mut p.homeless));
        let mut out = Vec::new();
        self.place(lost);
        self.send(&mut out);
        out
    }

    /// A member answered pass `pass`: per-chunk partials with its compute time, or why it
    /// failed and whether another try may succeed (its chunks go to another holder), else
    /// the job fails.
    pub fn trained(&mut self, node: NodeId, pass: u64, outcome: Answer, now_ms: u64) -> Vec<Out> {
        let Some(p) = self.pass.as_mut().filter(|p| p.number == pass) else {
            return Vec::new(); // An answer to a pass that is over (a member thought lost).
        };
        let Some(asked) = p.in_flight.remove(&node) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let failed = match outcome {
            Ok((partials, ms)) => {
                p.compute_ms = p.compute_ms.max(ms);
                let mut bad = None;
                let mut got = BTreeMap::new();
                for (i, bytes) in partials {
                    match rmp_serde::from_slice::<Partial>(&bytes) {
                        Ok(part) if asked.contains(&(i as usize)) => {
                            got.insert(i as usize, part);
                        }
                        Ok(_) => {
                            bad = Some(format!("member {node} answered for chunk {i}, not asked"))
                        }
                        Err(e) => {
                            bad = Some(format!("member {node} sent an unreadable result: {e}"))
                        }
                    }
                }
                match bad {
                    None if got.len() == asked.len() => {
                        p.partials.extend(got);
                        None
                    }
                    None => Some(format!(
                        "member {node} answered for {} of {} chunks",
                        got.len(),
                        asked.len()
                    )),
                    Some(e) => Some(e),
                }
            }
            // The data or the estimator is at fault: any member would fail the same.
            Err((e, false)) => return vec![Out::Failed(e)],
            Err((e, true)) => Some(e),
        };
        if let Some(why) = failed {
            tracing::debug!(node, pass, %why, "chunks of a pass failed; to another holder");
            let mut again = Vec::new();
            for i in asked {
                p.attempts[i] += 1;
                p.failed[i].insert(node);
                if p.attempts[i] >= MAX_CHUNK_ATTEMPTS {
                    return vec![Out::Failed(format!(
                        "chunk {} of the dataset failed {} times in pass {pass}: {why}",
                        self.chunks[i], p.attempts[i]
                    ))];
                }
                again.push(i);
            }
            // Its queue goes elsewhere too: the member is not given more of this pass.
            again.extend(p.queues.remove(&node).unwrap_or_default());
            self.place(again);
        }
        let p = self.pass.as_ref().expect("a pass runs");
        if p.partials.len() == self.chunks.len() {
            out.extend(self.finish_pass(now_ms));
        } else {
            self.send(&mut out);
        }
        out
    }

    /// Gives chunks to live holders that have not failed them in this pass, fewest chunks
    /// first; else to any live member that has not (it fetches the chunk from a holder);
    /// else to a live holder again (a chunk's attempts are bounded). With no member alive,
    /// a chunk waits for [`Rounds::members`].
    fn place(&mut self, chunks: Vec<usize>) {
        let p = self.pass.as_mut().expect("a pass runs");
        for i in chunks {
            let load = |n: &NodeId| {
                p.queues.get(n).map_or(0, VecDeque::len) + p.in_flight.get(n).map_or(0, Vec::len)
            };
            let mut candidates: Vec<NodeId> = self.holders[i]
                .iter()
                .filter(|n| self.live.contains(n) && !p.failed[i].contains(n))
                .copied()
                .collect();
            if candidates.is_empty() {
                candidates = (self.live.iter())
                    .filter(|n| !p.failed[i].contains(n))
                    .copied()
                    .collect();
            }
            if candidates.is_empty() {
                candidates = (self.holders[i].iter())
                    .filter(|n| self.live.contains(n))
                    .copied()
                    .collect();
            }
            if candidates.is_empty() {
                candidates = self.live.iter().copied().collect();
            }
            match candidates.iter().min_by_key(|n| (load(n), **n)) {
                Some(&n) => p.queues.entry(n).or_default().push_back(i),
                None => {
                    p.homeless.insert(i);
                }
            }
        }
    }

    /// Sends each idle member its next request.
    fn send(&mut self, out: &mut Vec<Out>) {
        let batch = self.batch;
        let Some(p) = self.pass.as_mut() else {
            return;
        };
        for (node, queue) in p.queues.iter_mut() {
            if queue.is_empty() || p.in_flight.contains_key(node) {
                continue;
            }
            let take: Vec<usize> = queue.drain(..batch.min(queue.len())).collect();
            out.push(Out::Train {
                node: *node,
                pass: p.number,
                chunks: take.iter().map(|&i| (i as u32, self.chunks[i])).collect(),
                spec: p.spec.clone(),
            });
            p.in_flight.insert(*node, take);
        }
        p.queues.retain(|_, q| !q.is_empty());
    }

    /// Every chunk answered: the merged result goes to the fit, then the next pass.
    fn finish_pass(&mut self, now_ms: u64) -> Vec<Out> {
        let p = self.pass.take().expect("a pass runs");
        self.times.passes += 1;
        self.times.wall_ms += now_ms.saturating_sub(p.started_ms);
        self.times.compute_ms += p.compute_ms;
        let mut parts = p.partials.into_values();
        let Some(mut total) = parts.next() else {
            return vec![Out::Failed("a pass over no chunks".into())];
        };
        for part in parts {
            if let Err(e) = total.merge(&part) {
                return vec![Out::Failed(e.to_string())];
            }
        }
        if let Err(e) = self.fit.tell(total) {
            return vec![Out::Failed(e.to_string())];
        }
        let mut out = Vec::new();
        let (at, since) = self.checkpointed;
        let passes = self.fit.passes();
        let done = matches!(self.fit.ask(), Ok(Next::Done(_)));
        if !done
            && (passes - at >= CHECKPOINT_EVERY_PASSES
                || now_ms.saturating_sub(since) >= CHECKPOINT_EVERY_MS)
        {
            out.push(Out::Checkpoint(Box::new(self.checkpoint(now_ms))));
            self.checkpointed = (passes, now_ms);
        }
        out.extend(self.advance(now_ms));
        out
    }

    /// The fit's state as a checkpoint.
    pub fn checkpoint(&self, now_ms: u64) -> Checkpoint {
        let (loss, gradient) = self
            .fit
            .losses()
            .last()
            .map_or((None, None), |(l, g)| (Some(*l), Some(*g)));
        Checkpoint {
            state: rmp_serde::to_vec_named(&self.fit).expect("fits encode"),
            passes: self.fit.passes(),
            stage: self.fit.stage(),
            loss,
            gradient,
            at_ms: now_ms,
        }
    }

    /// Starts the pass the fit asks for, or reports its model.
    fn advance(&mut self, now_ms: u64) -> Vec<Out> {
        let pass = match self.fit.ask() {
            Err(e) => return vec![Out::Failed(e.to_string())],
            Ok(Next::Done(model)) => {
                return vec![Out::Done {
                    model: Box::new(model),
                    warnings: self.fit.warnings().to_vec(),
                    passes: self.fit.passes(),
                }]
            }
            Ok(Next::Pass(pass)) => pass,
        };
        self.batch = batch_for(&pass, self.fit.n_features());
        let n = self.chunks.len();
        self.pass = Some(PassRun {
            number: self.fit.passes(),
            spec: Arc::new(rmp_serde::to_vec_named(&pass).expect("passes encode")),
            queues: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            partials: BTreeMap::new(),
            attempts: vec![0; n],
            failed: vec![BTreeSet::new(); n],
            homeless: BTreeSet::new(),
            started_ms: now_ms,
            compute_ms: 0,
        });
        let mut out = Vec::new();
        self.place((0..n).collect());
        self.send(&mut out);
        out
    }
}

/// Chunks per request for a pass: as many as keep an answer's partials under
/// [`MAX_ANSWER_BYTES`], at most [`MAX_CHUNKS_PER_REQUEST`].
fn batch_for(pass: &Pass, d: usize) -> usize {
    use meshml_models::parallel::PassOp;
    let floats = match &pass.op {
        PassOp::Moments { mask } => 3 * mask.len(),
        PassOp::ClassMoments { n_classes } => 3 * d * (n_classes + 1),
        PassOp::ClassCounts { n_classes } => *n_classes,
        PassOp::CrossMoments => d * d + 2 * d + 2,
        PassOp::LogLoss { w, .. } => w.len(),
    };
    (MAX_ANSWER_BYTES / (9 * floats + 64)).clamp(1, MAX_CHUNKS_PER_REQUEST)
}
