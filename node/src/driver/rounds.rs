//! The driver's engine for data-parallel fits: passes over a dataset's chunks where they
//! live, as a pure state machine (no I/O, no clock, no locks) owned by the job board.
//!
//! A fit or a grid search ([`meshml_models::parallel::DataParallelJob`]) asks for a pass;
//! the engine gives
//! each chunk to one live holder (the holder with the fewest chunks of this pass first),
//! sends each member its chunks in numbered requests of at most [`Rounds::batch`] chunks,
//! one request in flight per member ([`Out::Train`]), and merges the chunks' partial
//! results in chunk order as they arrive (so the sum does not depend on who computed what,
//! or when, and the driver holds only the partials that arrived ahead of their turn).
//!
//! A member that fails a request, or leaves the mesh with one in flight, costs each of its
//! chunks an attempt; the chunks go to another holder (else to any live member, which
//! fetches them) after a backoff that doubles with each attempt, and a chunk out of
//! [`MAX_CHUNK_ATTEMPTS`] fails the job, as does a refusal that no member would answer
//! otherwise (bad data). A refusal for a stale term means this driver was deposed: the fit
//! waits for its successor, which resumes it.
//!
//! Between passes the fit's state is committed to the replicated state
//! ([`Out::Checkpoint`]) every [`CHECKPOINT_EVERY_MS`] or [`CHECKPOINT_EVERY_PASSES`]
//! passes; a new driver resumes from the last one, runs the same passes again from there
//! and, on a mesh of like machines, ends with the same model as a fault-free run.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use meshml_models::parallel::{DataParallelJob, JobNext, Partial, Pass};
use meshml_models::plan::CvResults;
use meshml_models::FittedModel;
use meshml_protocol::ChunkId;
use meshml_storage::raft::{Checkpoint, MAX_CHECKPOINT_BYTES};

use super::scheduler::NodeId;

/// Tries a chunk gets within one pass before the job fails.
pub const MAX_CHUNK_ATTEMPTS: u32 = 4;

/// A chunk whose try failed waits this long before the next (twice that before the one
/// after, ...), milliseconds.
pub const RETRY_BACKOFF_MS: u64 = 200;

/// The fit's state is committed at least this often, milliseconds ...
pub const CHECKPOINT_EVERY_MS: u64 = 2_000;

/// ... or every this many passes, whichever comes first.
pub const CHECKPOINT_EVERY_PASSES: u64 = 10;

/// Chunks in one request, at most.
pub const MAX_CHUNKS_PER_REQUEST: usize = 16;

/// Bytes of partial results one answer may carry (a message is at most 4 MiB).
pub const MAX_ANSWER_BYTES: usize = 2 << 20;

/// What a member computed for a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Trained {
    /// Each chunk's partial result: (index in the dataset, MessagePack).
    pub partials: Vec<(u32, Vec<u8>)>,
    /// The member's compute time, milliseconds.
    pub ms: u64,
}

/// Why a member did not compute a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Another try, here or elsewhere, may succeed (unreachable, busy, a chunk not found).
    Retry(String),
    /// No member would do better: the data or the estimator is at fault.
    Fatal(String),
    /// The member follows a newer driver: this one was deposed.
    Deposed,
}

/// A member's answer to a request.
pub type Answer = Result<Trained, Refusal>;

/// What the engine asks of the driver.
#[derive(Debug, Clone)]
pub enum Out {
    /// Ask `node` to run pass `pass` over `chunks` (index in the dataset, id); the answer
    /// comes back to [`Rounds::trained`] with the request's number.
    Train {
        /// The member.
        node: NodeId,
        /// The request's number.
        request: u64,
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
        /// The model (none for a search without refit).
        model: Option<Box<FittedModel>>,
        /// A search's cross-validation table.
        cv: Option<Box<CvResults>>,
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
    /// The request each member has in flight: its number and chunks.
    in_flight: BTreeMap<NodeId, (u64, Vec<usize>)>,
    /// The partials merged so far (of chunks `0..merged_to`), and those that arrived
    /// ahead of their turn.
    merged: Option<Partial>,
    merged_to: usize,
    ahead: BTreeMap<usize, Partial>,
    attempts: Vec<u32>,
    /// Members that failed each chunk in this pass.
    failed: Vec<BTreeSet<NodeId>>,
    /// Chunks waiting for their next try (when), or for a live member (at 0).
    waiting: BTreeMap<usize, u64>,
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
    fit: DataParallelJob,
    chunks: Vec<ChunkId>,
    holders: Vec<Vec<NodeId>>,
    live: BTreeSet<NodeId>,
    batch: usize,
    pass: Option<PassRun>,
    next_request: u64,
    /// Passes and time of the last checkpoint.
    checkpointed: (u64, u64),
    times: PassTimes,
    now_ms: u64,
}

impl Rounds {
    /// A fit (new, or resumed from a checkpoint) over `chunks` held by `holders`, with
    /// `live` members; returns it with its first requests.
    pub fn start(
        fit: DataParallelJob,
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
            next_request: 1,
            checkpointed: (passes, now_ms),
            times: PassTimes::default(),
            now_ms,
        };
        let out = r.advance();
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
    pub fn fit(&self) -> &DataParallelJob {
        &self.fit
    }

    /// The time: chunks whose backoff is over are tried again.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Out> {
        self.now_ms = self.now_ms.max(now_ms);
        let mut out = Vec::new();
        self.place_ready();
        self.send(&mut out);
        out
    }

    /// The members alive now: the chunks of members gone go to another holder, those that
    /// were in flight at the cost of an attempt.
    pub fn members(&mut self, live: BTreeSet<NodeId>, now_ms: u64) -> Vec<Out> {
        self.now_ms = self.now_ms.max(now_ms);
        self.live = live;
        let Some(p) = &mut self.pass else {
            return Vec::new();
        };
        let gone: BTreeSet<NodeId> = (p.queues.keys().chain(p.in_flight.keys()))
            .filter(|n| !self.live.contains(n))
            .copied()
            .collect();
        for n in gone {
            let queued: Vec<usize> = p.queues.remove(&n).unwrap_or_default().into();
            for i in queued {
                p.waiting.insert(i, 0);
            }
            if let Some((_, asked)) = p.in_flight.remove(&n) {
                if let Some(e) =
                    fail_chunks(p, &self.chunks, n, asked, "left the mesh", self.now_ms)
                {
                    return vec![Out::Failed(e)];
                }
            }
        }
        let mut out = Vec::new();
        self.place_ready();
        self.send(&mut out);
        out
    }

    /// A member answered request `request`.
    pub fn trained(&mut self, node: NodeId, request: u64, answer: Answer, now_ms: u64) -> Vec<Out> {
        self.now_ms = self.now_ms.max(now_ms);
        let Some(p) = self.pass.as_mut() else {
            return Vec::new();
        };
        // An answer to a request of a pass that is over, or one this member no longer has
        // in flight (it was thought lost), is late: its chunks went elsewhere.
        if p.in_flight.get(&node).is_none_or(|(r, _)| *r != request) {
            return Vec::new();
        }
        let (_, asked) = p.in_flight.remove(&node).expect("checked");
        let why = match answer {
            Ok(t) => {
                p.compute_ms = p.compute_ms.max(t.ms);
                match read_partials(node, &asked, t.partials) {
                    Ok(got) => {
                        for (i, part) in got {
                            p.ahead.insert(i, part);
                        }
                        if let Err(e) = merge_in_order(p) {
                            return vec![Out::Failed(e)];
                        }
                        None
                    }
                    Err(e) => Some(e),
                }
            }
            Err(Refusal::Fatal(e)) => return vec![Out::Failed(e)],
            Err(Refusal::Deposed) => {
                // The successor resumes the fit; this driver stops.
                tracing::info!(
                    node,
                    "a member follows a newer driver; the fit waits for it"
                );
                return Vec::new();
            }
            Err(Refusal::Retry(e)) => Some(e),
        };
        if let Some(why) = why {
            tracing::debug!(node, pass = p.number, %why, "chunks of a pass failed; to another holder");
            if let Some(e) = fail_chunks(p, &self.chunks, node, asked, &why, self.now_ms) {
                return vec![Out::Failed(e)];
            }
            // The member's queue goes elsewhere too, and it is not given those chunks again
            // in this pass unless no other member can take them.
            for i in p.queues.remove(&node).unwrap_or_default() {
                p.failed[i].insert(node);
                p.waiting.insert(i, 0);
            }
        }
        if p.merged_to == self.chunks.len() {
            return self.finish_pass();
        }
        let mut out = Vec::new();
        self.place_ready();
        self.send(&mut out);
        out
    }

    /// Places the waiting chunks whose time has come (see [`Rounds::place`]).
    fn place_ready(&mut self) {
        let now = self.now_ms;
        let Some(p) = self.pass.as_mut() else {
            return;
        };
        let ready: Vec<usize> = (p.waiting.iter())
            .filter(|(_, at)| **at <= now)
            .map(|(i, _)| *i)
            .collect();
        for i in &ready {
            p.waiting.remove(i);
        }
        self.place(ready);
    }

    /// Gives chunks to live holders that have not failed them in this pass, fewest chunks
    /// first; else to any live member that has not (it fetches the chunk from a holder);
    /// else to a live holder again (a chunk's attempts are bounded). With no member alive,
    /// a chunk waits for [`Rounds::members`].
    fn place(&mut self, chunks: Vec<usize>) {
        let p = self.pass.as_mut().expect("a pass runs");
        for i in chunks {
            let load = |n: &NodeId| {
                p.queues.get(n).map_or(0, VecDeque::len)
                    + p.in_flight.get(n).map_or(0, |(_, c)| c.len())
            };
            let holders = || self.holders[i].iter().filter(|n| self.live.contains(n));
            let mut candidates: Vec<NodeId> = holders()
                .filter(|n| !p.failed[i].contains(n))
                .copied()
                .collect();
            if candidates.is_empty() {
                candidates = (self.live.iter())
                    .filter(|n| !p.failed[i].contains(n))
                    .copied()
                    .collect();
            }
            if candidates.is_empty() {
                candidates = holders().copied().collect();
            }
            if candidates.is_empty() {
                candidates = self.live.iter().copied().collect();
            }
            match candidates.iter().min_by_key(|n| (load(n), **n)) {
                Some(&n) => p.queues.entry(n).or_default().push_back(i),
                None => {
                    p.waiting.insert(i, 0);
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
            let request = self.next_request;
            self.next_request += 1;
            out.push(Out::Train {
                node: *node,
                request,
                pass: p.number,
                chunks: take.iter().map(|&i| (i as u32, self.chunks[i])).collect(),
                spec: p.spec.clone(),
            });
            p.in_flight.insert(*node, (request, take));
        }
        p.queues.retain(|_, q| !q.is_empty());
    }

    /// Every chunk merged: the sum goes to the fit, then the next pass.
    fn finish_pass(&mut self) -> Vec<Out> {
        let p = self.pass.take().expect("a pass runs");
        let now = self.now_ms;
        self.times.passes += 1;
        self.times.wall_ms += now.saturating_sub(p.started_ms);
        self.times.compute_ms += p.compute_ms;
        let Some(total) = p.merged else {
            return vec![Out::Failed("a pass over no chunks".into())];
        };
        let told = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.fit.tell(total)));
        match told {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return vec![Out::Failed(e.to_string())],
            Err(_) => {
                return vec![Out::Failed(
                    "the pass's merged result is malformed (a member's partial result)".into(),
                )]
            }
        }
        let mut out = Vec::new();
        let (at, since) = self.checkpointed;
        let passes = self.fit.passes();
        let done = matches!(self.fit.ask(), Ok(JobNext::Done { .. }));
        if !done
            && (passes - at >= CHECKPOINT_EVERY_PASSES
                || now.saturating_sub(since) >= CHECKPOINT_EVERY_MS)
        {
            match self.checkpoint() {
                Some(c) => out.push(Out::Checkpoint(Box::new(c))),
                None => tracing::warn!(
                    passes,
                    "the fit's state is too large to checkpoint: a new driver would start it again"
                ),
            }
            self.checkpointed = (passes, now);
        }
        out.extend(self.advance());
        out
    }

    /// The fit's state as a checkpoint, within [`MAX_CHECKPOINT_BYTES`] (`None` when even
    /// its smallest form is larger).
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        let (loss, gradient) = self
            .fit
            .losses()
            .last()
            .map_or((None, None), |(l, g)| (Some(*l), Some(*g)));
        Some(Checkpoint {
            state: self.fit.checkpoint(MAX_CHECKPOINT_BYTES)?,
            passes: self.fit.passes(),
            stage: self.fit.stage(),
            loss,
            gradient,
            at_ms: self.now_ms,
        })
    }

    /// Starts the pass the fit asks for, or reports its model.
    fn advance(&mut self) -> Vec<Out> {
        let pass = match self.fit.ask() {
            Err(e) => return vec![Out::Failed(e.to_string())],
            Ok(JobNext::Done { model, cv }) => {
                return vec![Out::Done {
                    model: model.map(Box::new),
                    cv,
                    warnings: self.fit.warnings().to_vec(),
                    passes: self.fit.passes(),
                }]
            }
            Ok(JobNext::Pass(pass)) => pass,
        };
        self.batch = batch_for(&pass, self.fit.n_features());
        let n = self.chunks.len();
        if n == 0 {
            return vec![Out::Failed("the dataset has no chunks".into())];
        }
        self.pass = Some(PassRun {
            number: self.fit.passes(),
            spec: Arc::new(rmp_serde::to_vec_named(&pass).expect("passes encode")),
            queues: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            merged: None,
            merged_to: 0,
            ahead: BTreeMap::new(),
            attempts: vec![0; n],
            failed: vec![BTreeSet::new(); n],
            waiting: BTreeMap::new(),
            started_ms: self.now_ms,
            compute_ms: 0,
        });
        let mut out = Vec::new();
        self.place((0..n).collect());
        self.send(&mut out);
        out
    }
}

/// The partials of an answer, checked against the chunks asked.
fn read_partials(
    node: NodeId,
    asked: &[usize],
    partials: Vec<(u32, Vec<u8>)>,
) -> Result<Vec<(usize, Partial)>, String> {
    if partials.len() != asked.len() {
        return Err(format!(
            "member {node} answered for {} of {} chunks",
            partials.len(),
            asked.len()
        ));
    }
    let mut got = Vec::with_capacity(partials.len());
    for (i, bytes) in partials {
        let i = i as usize;
        if !asked.contains(&i) || got.iter().any(|(j, _)| *j == i) {
            return Err(format!("member {node} answered for chunk {i}, not asked"));
        }
        let part = rmp_serde::from_slice::<Partial>(&bytes)
            .map_err(|e| format!("member {node} sent an unreadable result: {e}"))?;
        got.push((i, part));
    }
    Ok(got)
}

/// Merges the partials that are next in chunk order.
fn merge_in_order(p: &mut PassRun) -> Result<(), String> {
    while let Some(part) = p.ahead.remove(&p.merged_to) {
        match &mut p.merged {
            None => p.merged = Some(part),
            // Partials come from other members: a malformed one that the checks miss
            // fails the job, not the driver.
            Some(m) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.merge(&part)))
                .map_err(|_| "a member's partial result is malformed".to_string())?
                .map_err(|e| e.to_string())?,
        }
        p.merged_to += 1;
    }
    Ok(())
}

/// Chunks `asked` of `node` failed: each costs an attempt and waits for its backoff; the
/// error that fails the job when one is out of attempts.
fn fail_chunks(
    p: &mut PassRun,
    chunks: &[ChunkId],
    node: NodeId,
    asked: Vec<usize>,
    why: &str,
    now_ms: u64,
) -> Option<String> {
    for i in asked {
        p.attempts[i] += 1;
        p.failed[i].insert(node);
        if p.attempts[i] >= MAX_CHUNK_ATTEMPTS {
            return Some(format!(
                "chunk {} of the dataset failed {} times in pass {}; the last time on member {node}: {why}",
                chunks[i], p.attempts[i], p.number
            ));
        }
        p.waiting
            .insert(i, now_ms + (RETRY_BACKOFF_MS << (p.attempts[i] - 1)));
    }
    None
}

/// Chunks per request for a pass: as many as keep an answer's partials under
/// [`MAX_ANSWER_BYTES`], at most [`MAX_CHUNKS_PER_REQUEST`].
fn batch_for(pass: &Pass, d: usize) -> usize {
    (MAX_ANSWER_BYTES / (pass.partial_bytes(d) + 64)).clamp(1, MAX_CHUNKS_PER_REQUEST)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshml_models::parallel::{compute, DataParallelFit};
    use meshml_models::{Dataset, Estimator};

    /// A small dataset (3 classes, 4 features) cut into `k` chunks.
    fn data(k: usize) -> (Dataset, Vec<Dataset>) {
        let iris = meshml_models::io::iris();
        let n = iris.n_samples();
        let per = n.div_ceil(k);
        let parts = (0..k)
            .map(|c| {
                let idx: Vec<usize> = (c * per..((c + 1) * per).min(n)).collect();
                iris.select(&idx).unwrap()
            })
            .collect();
        (iris, parts)
    }

    fn start(
        k: usize,
        holders: Vec<Vec<NodeId>>,
        live: &[NodeId],
    ) -> (Rounds, Vec<Out>, Vec<Dataset>) {
        let (iris, parts) = data(k);
        let e = Estimator::from_name("standard_scaler+logistic_regression").unwrap();
        let fit = DataParallelJob::Fit(Box::new(
            DataParallelFit::new(&e, &iris.select(&[]).unwrap(), iris.n_samples() as u64).unwrap(),
        ));
        let chunks = (0..k).map(|i| ChunkId::from_bytes([i as u8; 32])).collect();
        let (r, out) = Rounds::start(fit, chunks, holders, live.iter().copied().collect(), 0);
        (r, out, parts)
    }

    /// What a member answers for a request: the chunks' partials.
    fn answer(out: &Out, parts: &[Dataset]) -> (NodeId, u64, Answer) {
        let Out::Train {
            node,
            request,
            chunks,
            spec,
            ..
        } = out
        else {
            panic!("not a request: {out:?}")
        };
        let pass: Pass = rmp_serde::from_slice(spec).unwrap();
        let partials = chunks
            .iter()
            .map(|(i, _)| {
                let p = compute(&pass, parts[*i as usize].clone()).unwrap();
                (*i, rmp_serde::to_vec_named(&p).unwrap())
            })
            .collect();
        (*node, *request, Ok(Trained { partials, ms: 1 }))
    }

    fn requests(out: &[Out]) -> Vec<&Out> {
        out.iter()
            .filter(|o| matches!(o, Out::Train { .. }))
            .collect()
    }

    /// Answers every request until the fit ends; returns the model's weights.
    fn run_to_end(r: &mut Rounds, mut out: Vec<Out>, parts: &[Dataset]) -> Vec<f64> {
        let mut now = 0;
        for _ in 0..100_000 {
            now += 1;
            let mut next = Vec::new();
            for o in &out {
                match o {
                    Out::Train { .. } => {
                        let (node, request, a) = answer(o, parts);
                        next.extend(r.trained(node, request, a, now));
                    }
                    Out::Done { model, .. } => return weights(model.as_ref().expect("a model")),
                    Out::Failed(e) => panic!("failed: {e}"),
                    Out::Checkpoint(_) => {}
                }
            }
            if next.is_empty() {
                now += 1_000;
                next = r.tick(now);
            }
            out = next;
        }
        panic!("no end");
    }

    fn weights(m: &FittedModel) -> Vec<f64> {
        match m {
            FittedModel::Pipeline(p) => weights(&p.estimator),
            FittedModel::LogisticRegression(m) => m.coef().to_vec(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn chunks_go_to_their_least_loaded_live_holders_in_bounded_requests() {
        let holders = (0..6).map(|i| vec![1 + i % 3, 1 + (i + 1) % 3]).collect();
        let (r, out, _) = start(6, holders, &[1, 2, 3]);
        let reqs = requests(&out);
        assert_eq!(reqs.len(), 3, "{out:?}");
        for o in reqs {
            let Out::Train { node, chunks, .. } = o else {
                unreachable!()
            };
            assert_eq!(chunks.len(), 2, "{out:?}");
            for (i, _) in chunks {
                assert!(r.holders[*i as usize].contains(node));
            }
        }
    }

    #[test]
    fn a_fit_ends_with_the_same_model_whoever_answers_first_or_fails() {
        let holders: Vec<Vec<NodeId>> = (0..5).map(|i| vec![1 + i % 2, 3]).collect();
        let (mut r, out, parts) = start(5, holders.clone(), &[1, 2, 3]);
        let clean = run_to_end(&mut r, out, &parts);

        // Answers in reverse order, one member failing its first request (retryable) and
        // another leaving the mesh in the middle.
        let (mut r, out, parts) = start(5, holders, &[1, 2, 3]);
        let mut out: Vec<Out> = out.into_iter().rev().collect();
        let Some(Out::Train { node, request, .. }) = out.first().cloned() else {
            panic!()
        };
        out.remove(0);
        let mut more = r.trained(node, request, Err(Refusal::Retry("busy".into())), 1);
        assert!(
            requests(&more).is_empty(),
            "the failed chunks wait: {more:?}"
        );
        more.extend(r.tick(1_000));
        // Then go to other members (queued behind their requests in flight).
        let p = r.pass.as_ref().unwrap();
        assert!(
            p.waiting.is_empty() && !p.queues.contains_key(&node),
            "{p:?}"
        );
        out.extend(more);
        let mut live = BTreeSet::from([1, 2, 3]);
        live.remove(&2);
        out.extend(r.members(live, 2));
        assert_eq!(run_to_end(&mut r, out, &parts), clean);
    }

    #[test]
    fn late_answers_are_ignored_and_fatal_ones_end_the_fit() {
        let (mut r, out, parts) = start(2, vec![vec![1], vec![2]], &[1, 2]);
        let reqs = requests(&out);
        let (node, request, a) = answer(reqs[0], &parts);
        // An answer to a request never made, or made to another member, changes nothing.
        assert!(r.trained(node, request + 100, a.clone(), 1).is_empty());
        assert!(r.trained(node + 7, request, a.clone(), 1).is_empty());
        assert!(r.trained(node, request, a.clone(), 1).is_empty());
        // The same answer again is late.
        assert!(r.trained(node, request, a, 2).is_empty());
        let (node, request, _) = answer(reqs[1], &parts);
        // A stale term: this driver was deposed and waits; nothing fails.
        assert!(r
            .trained(node, request, Err(Refusal::Deposed), 3)
            .is_empty());
        let (mut r, out, _) = start(2, vec![vec![1], vec![2]], &[1, 2]);
        let Out::Train { node, request, .. } = requests(&out)[0].clone() else {
            unreachable!()
        };
        let o = r.trained(node, request, Err(Refusal::Fatal("NaN in row 3".into())), 1);
        assert!(
            matches!(&o[..], [Out::Failed(e)] if e.contains("NaN")),
            "{o:?}"
        );
    }

    #[test]
    fn a_chunk_that_fails_on_every_try_fails_the_fit() {
        let (mut r, out, _) = start(1, vec![vec![1]], &[1, 2]);
        let mut out = out;
        for attempt in 1..=MAX_CHUNK_ATTEMPTS {
            let Out::Train { node, request, .. } = requests(&out)[0].clone() else {
                panic!("{out:?}")
            };
            let now = 10_000 * u64::from(attempt);
            let o = r.trained(node, request, Err(Refusal::Retry("crash".into())), now);
            if attempt == MAX_CHUNK_ATTEMPTS {
                assert!(
                    matches!(&o[..], [Out::Failed(e)] if e.contains("failed 4 times")),
                    "{o:?}"
                );
                return;
            }
            out = r.tick(now + 10_000);
        }
    }

    #[test]
    fn a_member_lost_with_a_request_in_flight_costs_its_chunks_an_attempt() {
        let (mut r, _, _) = start(1, vec![vec![1, 2]], &[1, 2]);
        let p = r.pass.as_ref().unwrap();
        assert_eq!(p.attempts, vec![0]);
        let o = r.members(BTreeSet::from([2]), 1);
        assert_eq!(r.pass.as_ref().unwrap().attempts, vec![1]);
        assert!(requests(&o).is_empty(), "after its backoff: {o:?}");
        let o = r.tick(1_000);
        assert!(
            matches!(requests(&o)[..], [Out::Train { node: 2, .. }]),
            "{o:?}"
        );
    }
}
