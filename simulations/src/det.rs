//! Deterministic mode: the driver's scheduling and election logic over a simulated network,
//! in virtual time, from one seed.
//!
//! Every node runs the same pure pieces the real node runs, with no sockets and no wall
//! clock:
//! - election: Raft's leader election (terms, one vote per term, randomised timeouts, a
//!   vote only for a candidate whose log is at least as up to date, a leader steps down
//!   when it has not heard from a quorum for [`Timing::quorum_silence_us`], as the real
//!   driver stops driving). The real node gets this from openraft; here it is a model of
//!   its rules, so that thousands of seeded histories run in seconds;
//! - the replicated state: the log of finished tasks, committed when a majority holds it
//!   (an entry of an earlier term only with one of the leader's own);
//! - the driver: meshml's own [`Scheduler`] (queue, slots, retries, lost nodes), rebuilt by
//!   each new leader from the replicated log, so finished tasks are not run again;
//! - the workers: meshml's own [`TermGuard`], refusing assignments from a deposed driver.
//!
//! Faults (crashes, restarts, partitions, loss) come on a timeline; [`run`] returns a
//! [`DetReport`] with the timeline of events, the committed results and the invariants
//! that were violated, if any. The same [`DetConfig`] gives the same report.

use std::collections::{BTreeMap, BTreeSet};

use meshml_node::cluster::driver::TermGuard;
use meshml_node::scheduler::{Command, Scheduler, TaskKey};
use serde::Serialize;

use crate::net::{LinkConfig, SimNet};

/// Timers, in virtual microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Timing {
    /// A leader's heartbeat period.
    pub heartbeat_us: u64,
    /// Election timeouts are drawn from `[min, 2 * min)`.
    pub election_min_us: u64,
    /// A leader that has not heard from a quorum for this long steps down.
    pub quorum_silence_us: u64,
    /// A leader gives a node's tasks to others after not hearing from it for this long.
    pub node_timeout_us: u64,
    /// Task durations are drawn from `[min, 4 * min)`.
    pub task_min_us: u64,
    /// An assignment not acknowledged within this is failed and retried.
    pub rpc_timeout_us: u64,
    /// A worker sends an unacknowledged report again after this.
    pub report_retry_us: u64,
}

impl Default for Timing {
    /// Heartbeat 50 ms, elections 150-300 ms, quorum silence 500 ms, node timeout 400 ms,
    /// tasks 5-20 ms, assignments acknowledged within 100 ms, reports sent again every
    /// 300 ms (as the real worker does).
    fn default() -> Self {
        Self {
            heartbeat_us: 50_000,
            election_min_us: 150_000,
            quorum_silence_us: 500_000,
            node_timeout_us: 400_000,
            task_min_us: 5_000,
            rpc_timeout_us: 100_000,
            report_retry_us: 300_000,
        }
    }
}

/// A fault, at a virtual time.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DetFault {
    /// The node stops (its running tasks and in-flight messages are lost; its Raft term,
    /// vote and log survive, as on disk).
    Crash(usize),
    /// Whichever node leads at that moment stops.
    CrashLeader,
    /// Whichever node leads at that moment is cut off from all others.
    IsolateLeader,
    /// A stopped node starts again.
    Restart(usize),
    /// The nodes listed are cut off from the others (both directions).
    Partition(Vec<usize>),
    /// Every link works again.
    Heal,
    /// Every link loses this share of messages from now on.
    Loss(f64),
}

/// One deterministic run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetConfig {
    /// Nodes.
    pub nodes: usize,
    /// Worker slots per node.
    pub slots: usize,
    /// Tasks in the job.
    pub tasks: usize,
    /// The seed of every random choice.
    pub seed: u64,
    /// Message delay and loss at the start.
    pub link: LinkConfig,
    /// Timers.
    pub timing: Timing,
    /// Attempts per task before the scheduler abandons it.
    pub max_attempts: u32,
    /// Faults, by virtual time in microseconds.
    pub faults: Vec<(u64, DetFault)>,
    /// The run stops here even if the job has not finished.
    pub horizon_us: u64,
    /// Raft's vote rule (a vote only for a candidate whose log is at least as up to date).
    /// Turned off only to show that the checker catches what follows: committed entries
    /// missing from a later leader's log.
    pub vote_rule: bool,
}

impl DetConfig {
    /// `nodes` nodes with 2 slots each, `tasks` tasks, no faults, up to 20 virtual seconds.
    pub fn new(nodes: usize, tasks: usize, seed: u64) -> Self {
        Self {
            nodes,
            slots: 2,
            tasks,
            seed,
            link: LinkConfig::default(),
            timing: Timing::default(),
            max_attempts: 20,
            faults: Vec::new(),
            horizon_us: 20_000_000,
            vote_rule: true,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetReport {
    /// Events in virtual time (microseconds): elections, faults, node losses, retries.
    pub events: Vec<(u64, String)>,
    /// The leader of each term.
    pub leaders: BTreeMap<u64, usize>,
    /// Committed task results.
    pub results: BTreeMap<usize, u64>,
    /// When the last task was committed.
    pub finished_us: Option<u64>,
    /// Assignments beyond each task's first.
    pub retries: u64,
    /// Assignments refused by a worker as coming from a stale term.
    pub stale_refused: u64,
    /// Tasks the scheduler gave up on.
    pub abandoned: Vec<usize>,
    /// From each leader crash to the next leader's election.
    pub failovers_us: Vec<u64>,
    /// Messages lost to loss or cuts.
    pub dropped: u64,
    /// Broken invariants, empty when all held.
    pub violations: Vec<String>,
}

/// The result a task computes: a function of the seed and the task alone, so every run with
/// the same seed must commit the same values.
pub fn task_value(seed: u64, task: usize) -> u64 {
    let mut x = seed ^ (task as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^ (x >> 33)
}

/// The task of the entry a new leader appends first (Raft's no-op: it lets the leader
/// commit the entries of earlier terms, which it may not count replicas of directly).
const NO_OP: usize = usize::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
struct Entry {
    term: u64,
    task: usize,
    value: u64,
}

#[derive(Debug, Clone)]
enum Msg {
    Vote {
        term: u64,
        last_term: u64,
        len: usize,
    },
    VoteReply {
        term: u64,
        granted: bool,
    },
    Beat {
        term: u64,
        log: Vec<Entry>,
        commit: usize,
    },
    BeatReply {
        term: u64,
        len: usize,
    },
    Assign {
        term: u64,
        task: usize,
    },
    Done {
        term: u64,
        task: usize,
        value: u64,
    },
    Refused {
        term: u64,
        task: usize,
    },
    Accepted {
        term: u64,
        task: usize,
    },
    DoneAck {
        term: u64,
        task: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Follower,
    Candidate,
    Leader,
}

/// The driver state of a leader.
struct Lead {
    sched: Scheduler,
    /// Log length each node has acknowledged in this term.
    matched: BTreeMap<usize, usize>,
    /// When each node last answered.
    heard: BTreeMap<usize, u64>,
    next_beat: u64,
    /// Assignments waiting for their acknowledgement: task -> deadline.
    pending: BTreeMap<usize, u64>,
}

impl Lead {
    fn wake(&self) -> u64 {
        self.pending
            .values()
            .copied()
            .min()
            .map_or(self.next_beat, |t| t.min(self.next_beat))
    }
}

struct Node {
    up: bool,
    term: u64,
    voted: Option<usize>,
    role: Role,
    votes: BTreeSet<usize>,
    log: Vec<Entry>,
    commit: usize,
    deadline: u64,
    lead: Option<Lead>,
    guard: TermGuard,
    /// Tasks running here: (finish time, task, term, assigning node).
    work: Vec<(u64, usize, u64, usize)>,
    /// Finished tasks whose report is not acknowledged yet: (next send, task, term, to).
    reports: Vec<(u64, usize, u64, usize)>,
}

impl Node {
    fn last_term(&self) -> u64 {
        self.log.last().map_or(0, |e| e.term)
    }
}

struct Sim {
    cfg: DetConfig,
    net: SimNet<Msg>,
    nodes: Vec<Node>,
    report: DetReport,
    /// Committed entries seen so far (task -> value), for the leader-completeness check.
    committed: BTreeMap<usize, u64>,
    /// When the leader crashed, until a new one is elected.
    leaderless_since: Option<u64>,
}

fn key(task: usize) -> TaskKey {
    TaskKey {
        job: "job".into(),
        task: task.to_string(),
    }
}

fn task_of(key: &TaskKey) -> usize {
    key.task.parse().expect("task keys are numbers")
}

impl Sim {
    fn now(&self) -> u64 {
        self.net.now_us()
    }

    fn event(&mut self, what: String) {
        let t = self.now();
        self.report.events.push((t, what));
    }

    fn majority(&self) -> usize {
        self.cfg.nodes / 2 + 1
    }

    fn election_deadline(&mut self) -> u64 {
        let min = self.cfg.timing.election_min_us.max(1);
        self.now() + min + self.net.random() % min
    }

    fn send_all(&mut self, from: usize, msg: &Msg) {
        for to in (0..self.cfg.nodes).filter(|&to| to != from) {
            self.net.send(from, to, msg.clone());
        }
    }

    fn become_follower(&mut self, i: usize, term: u64) {
        let n = &mut self.nodes[i];
        if term > n.term {
            n.term = term;
            n.voted = None;
        }
        if n.role == Role::Leader {
            let t = n.term;
            self.event(format!("node {i} stops leading (term {t})"));
        }
        let n = &mut self.nodes[i];
        n.role = Role::Follower;
        n.lead = None;
    }

    fn start_election(&mut self, i: usize) {
        let deadline = self.election_deadline();
        let n = &mut self.nodes[i];
        n.term += 1;
        n.role = Role::Candidate;
        n.voted = Some(i);
        n.votes = BTreeSet::from([i]);
        n.lead = None;
        n.deadline = deadline;
        let msg = Msg::Vote {
            term: n.term,
            last_term: n.last_term(),
            len: n.log.len(),
        };
        if self.majority() == 1 {
            self.become_leader(i);
        } else {
            self.send_all(i, &msg);
        }
    }

    fn become_leader(&mut self, i: usize) {
        let now = self.now();
        let term = self.nodes[i].term;
        if let Some(&other) = self.report.leaders.get(&term) {
            if other != i {
                self.report
                    .violations
                    .push(format!("two leaders in term {term}: {other} and {i}"));
            }
        }
        self.report.leaders.insert(term, i);
        if let Some(since) = self.leaderless_since.take() {
            self.report.failovers_us.push(now - since);
        }
        // Leader completeness: every committed entry is in the new leader's log.
        let have: BTreeMap<usize, u64> = self.nodes[i]
            .log
            .iter()
            .filter(|e| e.task != NO_OP)
            .map(|e| (e.task, e.value))
            .collect();
        for (task, value) in &self.committed {
            if have.get(task) != Some(value) {
                self.report.violations.push(format!(
                    "term {term} leader {i} lacks committed task {task}"
                ));
            }
        }
        // A new driver: every node is assumed up until it stays silent; every task not in
        // the replicated log is queued.
        let mut sched = Scheduler::new(self.cfg.max_attempts);
        for node in 0..self.cfg.nodes {
            sched.node_up(node as u64, self.cfg.slots);
        }
        let done: BTreeSet<usize> = have.keys().copied().collect();
        for task in (0..self.cfg.tasks).filter(|t| !done.contains(t)) {
            sched.submit(key(task), Vec::new());
        }
        let n = &mut self.nodes[i];
        n.role = Role::Leader;
        n.log.push(Entry {
            term,
            task: NO_OP,
            value: 0,
        });
        n.lead = Some(Lead {
            sched,
            matched: BTreeMap::from([(i, n.log.len())]),
            heard: (0..self.cfg.nodes).map(|k| (k, now)).collect(),
            next_beat: now,
            pending: BTreeMap::new(),
        });
        self.event(format!(
            "node {i} elected driver in term {term} ({} of {} tasks already done)",
            done.len(),
            self.cfg.tasks
        ));
        self.drive(i);
    }

    /// The leader's round: heartbeats when due, lost nodes, dispatch.
    fn drive(&mut self, i: usize) {
        let now = self.now();
        let (timing, nodes) = (self.cfg.timing, self.cfg.nodes);
        let Some(lead) = self.nodes[i].lead.as_mut() else {
            return;
        };
        // Step down after a quorum's silence.
        let heard_recently = lead
            .heard
            .iter()
            .filter(|(&k, &t)| k == i || now.saturating_sub(t) < timing.quorum_silence_us)
            .count();
        if heard_recently < nodes / 2 + 1 {
            let term = self.nodes[i].term;
            self.event(format!(
                "node {i} has not heard from a quorum: stops driving"
            ));
            self.become_follower(i, term);
            let d = self.election_deadline();
            self.nodes[i].deadline = d;
            return;
        }
        let mut lost = Vec::new();
        let mut back = Vec::new();
        let lead = self.nodes[i].lead.as_mut().expect("leading");
        let known: BTreeSet<u64> = lead.sched.nodes().into_iter().collect();
        for (&k, &t) in &lead.heard {
            let silent = k != i && now.saturating_sub(t) >= timing.node_timeout_us;
            if silent && known.contains(&(k as u64)) {
                lost.push(k);
            } else if !silent && !known.contains(&(k as u64)) {
                back.push(k);
            }
        }
        let mut commands = Vec::new();
        let expired: Vec<usize> = lead
            .pending
            .iter()
            .filter(|(_, &t)| t <= now)
            .map(|(&task, _)| task)
            .collect();
        for task in &expired {
            lead.pending.remove(task);
            commands.extend(
                lead.sched
                    .failed(&key(*task), true, "assignment not acknowledged"),
            );
        }
        for k in &lost {
            commands.extend(lead.sched.node_down(*k as u64));
        }
        for k in &back {
            lead.sched.node_up(*k as u64, self.cfg.slots);
        }
        commands.extend(lead.sched.dispatch());
        let beat = now >= lead.next_beat;
        if beat {
            lead.next_beat = now + timing.heartbeat_us;
        }
        for k in lost {
            self.event(format!("driver {i} lost node {k}: its tasks go elsewhere"));
        }
        for k in back {
            self.event(format!("driver {i} sees node {k} again"));
        }
        let term = self.nodes[i].term;
        for c in commands {
            match c {
                Command::Assign { key, node, attempt } => {
                    let task = task_of(&key);
                    if attempt > 1 {
                        self.report.retries += 1;
                        self.event(format!(
                            "task {task} retried on node {node} (attempt {attempt})"
                        ));
                    }
                    let deadline = now + timing.rpc_timeout_us;
                    if let Some(lead) = self.nodes[i].lead.as_mut() {
                        lead.pending.insert(task, deadline);
                    }
                    self.net.send(i, node as usize, Msg::Assign { term, task });
                }
                Command::Abandon { key, error } => {
                    let task = task_of(&key);
                    self.report.abandoned.push(task);
                    self.event(format!("task {task} abandoned: {error}"));
                }
            }
        }
        if beat {
            let n = &self.nodes[i];
            let msg = Msg::Beat {
                term,
                log: n.log.clone(),
                commit: n.commit,
            };
            self.send_all(i, &msg);
        }
    }

    fn advance_commit(&mut self, i: usize) {
        let majority = self.majority();
        let n = &self.nodes[i];
        let Some(lead) = n.lead.as_ref() else {
            return;
        };
        let mut lens: Vec<usize> = lead.matched.values().copied().collect();
        lens.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&reach) = lens.get(majority - 1) else {
            return;
        };
        // Raft commits an earlier term's entries only through one of its own.
        if reach > n.commit && n.log[reach - 1].term == n.term {
            let newly: Vec<Entry> = n.log[n.commit..reach].to_vec();
            self.nodes[i].commit = reach;
            for e in newly.into_iter().filter(|e| e.task != NO_OP) {
                if let Some(old) = self.committed.insert(e.task, e.value) {
                    if old != e.value {
                        self.report.violations.push(format!(
                            "task {} committed twice with different values",
                            e.task
                        ));
                    }
                }
            }
            if self.committed.len() == self.cfg.tasks && self.report.finished_us.is_none() {
                self.report.finished_us = Some(self.now());
                self.event(format!("all {} tasks committed", self.cfg.tasks));
            }
        }
    }

    fn deliver(&mut self, from: usize, to: usize, msg: Msg) {
        if !self.nodes[to].up {
            return;
        }
        let term_of = |m: &Msg| match m {
            Msg::Vote { term, .. }
            | Msg::VoteReply { term, .. }
            | Msg::Beat { term, .. }
            | Msg::BeatReply { term, .. } => Some(*term),
            _ => None,
        };
        if let Some(t) = term_of(&msg) {
            if t > self.nodes[to].term {
                self.become_follower(to, t);
            }
        }
        match msg {
            Msg::Vote {
                term,
                last_term,
                len,
            } => {
                let n = &self.nodes[to];
                let up_to_date =
                    !self.cfg.vote_rule || (last_term, len) >= (n.last_term(), n.log.len());
                let granted = term == n.term
                    && n.voted.is_none_or(|v| v == from)
                    && up_to_date
                    && n.role != Role::Leader;
                if granted {
                    let d = self.election_deadline();
                    let n = &mut self.nodes[to];
                    n.voted = Some(from);
                    n.deadline = d;
                }
                let term = self.nodes[to].term;
                self.net.send(to, from, Msg::VoteReply { term, granted });
            }
            Msg::VoteReply { term, granted } => {
                let n = &mut self.nodes[to];
                if granted && term == n.term && n.role == Role::Candidate {
                    n.votes.insert(from);
                    if n.votes.len() > self.cfg.nodes / 2 {
                        self.become_leader(to);
                    }
                }
            }
            Msg::Beat { term, log, commit } => {
                let d = self.election_deadline();
                let n = &mut self.nodes[to];
                if term < n.term {
                    let t = n.term;
                    self.net.send(to, from, Msg::BeatReply { term: t, len: 0 });
                    return;
                }
                if n.role != Role::Follower {
                    self.become_follower(to, term);
                }
                let n = &mut self.nodes[to];
                n.log = log;
                n.commit = commit.min(n.log.len());
                n.deadline = d;
                let _ = n.guard.admit(term, n.term);
                let len = n.log.len();
                self.net.send(to, from, Msg::BeatReply { term, len });
            }
            Msg::BeatReply { term, len } => {
                let now = self.now();
                let n = &mut self.nodes[to];
                if term != n.term {
                    return;
                }
                if let Some(lead) = n.lead.as_mut() {
                    lead.heard.insert(from, now);
                    lead.matched.insert(from, len);
                    self.advance_commit(to);
                    self.drive(to);
                }
            }
            Msg::Assign { term, task } => {
                let n = &self.nodes[to];
                match n.guard.admit(term, n.term) {
                    Ok(()) => {
                        let min = self.cfg.timing.task_min_us.max(1);
                        let finish = self.now() + min + self.net.random() % (3 * min);
                        self.nodes[to].work.push((finish, task, term, from));
                        self.net.send(to, from, Msg::Accepted { term, task });
                    }
                    Err(_) => {
                        self.report.stale_refused += 1;
                        self.event(format!(
                            "node {to} refused task {task} from stale term {term}"
                        ));
                        self.net.send(to, from, Msg::Refused { term, task });
                    }
                }
            }
            Msg::Done { term, task, value } => {
                // Taken or not, the worker can stop sending it: a driver that no longer
                // leads in `term` drops it, and the next one runs the task again.
                self.net.send(to, from, Msg::DoneAck { term, task });
                let now = self.now();
                let n = &mut self.nodes[to];
                if n.role != Role::Leader || term != n.term {
                    return;
                }
                if !n.log.iter().any(|e| e.task == task) {
                    n.log.push(Entry { term, task, value });
                }
                let len = n.log.len();
                if let Some(lead) = n.lead.as_mut() {
                    lead.heard.insert(from, now);
                    lead.matched.insert(to, len);
                    lead.pending.remove(&task);
                    lead.sched.finished(&key(task));
                }
                self.advance_commit(to);
                self.drive(to);
            }
            Msg::Refused { term, task } => {
                let n = &mut self.nodes[to];
                if n.role == Role::Leader && term == n.term {
                    if let Some(lead) = n.lead.as_mut() {
                        lead.pending.remove(&task);
                        let _ = lead.sched.failed(&key(task), true, "stale term");
                    }
                    self.drive(to);
                }
            }
            Msg::Accepted { term, task } => {
                let n = &mut self.nodes[to];
                if let Some(lead) = n.lead.as_mut().filter(|_| term == n.term) {
                    lead.pending.remove(&task);
                }
            }
            Msg::DoneAck { term, task } => {
                self.nodes[to]
                    .reports
                    .retain(|r| !(r.1 == task && r.2 == term && r.3 == from));
            }
        }
    }

    /// Sends the report due at `t` (again), unless its driver has been replaced: a worker
    /// that has seen a newer term drops it, and the new driver runs the task again.
    fn report_again(&mut self, i: usize, t: u64) {
        let retry = self.cfg.timing.report_retry_us.max(1);
        let n = &mut self.nodes[i];
        let Some(at) = n.reports.iter().position(|r| r.0 == t) else {
            return;
        };
        let (_, task, term, to) = n.reports[at];
        if n.guard.highest().max(n.term) > term {
            n.reports.swap_remove(at);
            return;
        }
        n.reports[at].0 = t + retry;
        let value = task_value(self.cfg.seed, task);
        self.net.send(i, to, Msg::Done { term, task, value });
    }

    fn fault(&mut self, f: DetFault) {
        match f {
            DetFault::Crash(i) => self.crash(i),
            DetFault::CrashLeader => {
                let leader = (0..self.cfg.nodes)
                    .find(|&i| self.nodes[i].up && self.nodes[i].role == Role::Leader);
                match leader {
                    Some(i) => self.crash(i),
                    None => self.event("no leader to crash".into()),
                }
            }
            DetFault::IsolateLeader => {
                let leader = (0..self.cfg.nodes)
                    .find(|&i| self.nodes[i].up && self.nodes[i].role == Role::Leader);
                match leader {
                    Some(i) => {
                        self.net.partition(&[i]);
                        self.event(format!("partition: driver {i} cut off from the rest"));
                    }
                    None => self.event("no leader to isolate".into()),
                }
            }
            DetFault::Restart(i) if i < self.cfg.nodes && !self.nodes[i].up => {
                let d = self.election_deadline();
                let n = &mut self.nodes[i];
                n.up = true;
                n.role = Role::Follower;
                n.deadline = d;
                n.guard = TermGuard::default();
                self.event(format!("node {i} restarts"));
            }
            DetFault::Restart(i) => self.event(format!("node {i} is not down")),
            DetFault::Partition(side) => {
                self.net.partition(&side);
                self.event(format!("partition: {side:?} cut off from the rest"));
            }
            DetFault::Heal => {
                self.net.heal();
                self.event("partition healed".into());
            }
            DetFault::Loss(rate) => {
                let link = LinkConfig {
                    drop_rate: rate,
                    ..self.net.link()
                };
                self.net.set_link(link);
                self.event(format!("links lose {:.0}% of messages", rate * 100.0));
            }
        }
    }

    fn crash(&mut self, i: usize) {
        if i >= self.cfg.nodes || !self.nodes[i].up {
            return;
        }
        if self.nodes[i].role == Role::Leader {
            self.leaderless_since.get_or_insert(self.now());
        }
        let n = &mut self.nodes[i];
        n.up = false;
        n.role = Role::Follower;
        n.lead = None;
        n.votes.clear();
        n.work.clear();
        n.reports.clear();
        let term = n.term;
        self.event(format!("node {i} killed (term {term})"));
    }

    /// The next timer: (time, node, what) with what 0 = election, 1 = the driver's round,
    /// 2 = a task finishing, 3 = a report to send again.
    fn next_timer(&self) -> Option<(u64, usize, u8)> {
        let mut best: Option<(u64, usize, u8)> = None;
        let mut offer = |t: (u64, usize, u8)| {
            if best.is_none_or(|b| t < b) {
                best = Some(t);
            }
        };
        for (i, n) in self.nodes.iter().enumerate().filter(|(_, n)| n.up) {
            match &n.lead {
                Some(l) => offer((l.wake(), i, 1)),
                None => offer((n.deadline, i, 0)),
            }
            if let Some(&(t, ..)) = n.work.iter().min() {
                offer((t, i, 2));
            }
            if let Some(&(t, ..)) = n.reports.iter().min() {
                offer((t, i, 3));
            }
        }
        best
    }
}

/// Runs one deterministic history.
pub fn run(cfg: &DetConfig) -> DetReport {
    assert!(cfg.nodes >= 1, "at least one node");
    let mut faults = cfg.faults.clone();
    faults.sort_by_key(|(t, _)| *t);
    let mut faults = std::collections::VecDeque::from(faults);
    let mut sim = Sim {
        net: SimNet::new(cfg.nodes, cfg.seed, cfg.link),
        nodes: Vec::with_capacity(cfg.nodes),
        cfg: cfg.clone(),
        report: DetReport {
            events: Vec::new(),
            leaders: BTreeMap::new(),
            results: BTreeMap::new(),
            finished_us: None,
            retries: 0,
            stale_refused: 0,
            abandoned: Vec::new(),
            failovers_us: Vec::new(),
            dropped: 0,
            violations: Vec::new(),
        },
        committed: BTreeMap::new(),
        leaderless_since: None,
    };
    for _ in 0..cfg.nodes {
        let deadline = sim.election_deadline();
        sim.nodes.push(Node {
            up: true,
            term: 0,
            voted: None,
            role: Role::Follower,
            votes: BTreeSet::new(),
            log: Vec::new(),
            commit: 0,
            deadline,
            lead: None,
            guard: TermGuard::default(),
            work: Vec::new(),
            reports: Vec::new(),
        });
    }
    // Bounded: every step handles one event at a strictly later or equal time, and the
    // horizon bounds time; the step cap guards against a livelock at one instant.
    let mut steps = 0u64;
    while sim.report.finished_us.is_none() && steps < 50_000_000 {
        steps += 1;
        let fault_at = faults.front().map(|(t, _)| *t);
        let msg_at = sim.net.next_at();
        let timer = sim.next_timer();
        let next = [fault_at, msg_at, timer.map(|t| t.0)]
            .into_iter()
            .flatten()
            .min();
        let Some(at) = next else { break };
        if at > cfg.horizon_us {
            break;
        }
        if fault_at == Some(at) {
            sim.net.advance_to(at);
            let (_, f) = faults.pop_front().expect("peeked");
            sim.fault(f);
        } else if msg_at == Some(at) {
            if let Some(d) = sim.net.step() {
                sim.deliver(d.from, d.to, d.msg);
            }
        } else if let Some((t, i, what)) = timer {
            sim.net.advance_to(t);
            match what {
                0 => sim.start_election(i),
                1 => sim.drive(i),
                2 => {
                    let n = &mut sim.nodes[i];
                    let at = n.work.iter().position(|w| w.0 == t).expect("due work");
                    let (_, task, term, to) = n.work.swap_remove(at);
                    n.reports.push((t, task, term, to));
                    sim.report_again(i, t);
                }
                _ => sim.report_again(i, t),
            }
        }
    }
    let mut report = sim.report;
    report.results = sim.committed;
    report.dropped = sim.net.dropped();
    report
}

/// Runs `cfg` and the same seed without faults, and adds to the report the invariants a
/// faulty history must keep: at most one leader per term (checked as it runs), committed
/// entries in every later leader's log (as it runs), no task lost or abandoned when the
/// history ends with a quorum up and connected, and the same results as the fault-free run.
pub fn run_checked(cfg: &DetConfig) -> DetReport {
    let mut report = run(cfg);
    let clean = run(&DetConfig {
        faults: Vec::new(),
        link: LinkConfig {
            drop_rate: 0.0,
            ..cfg.link
        },
        ..cfg.clone()
    });
    if clean.results.len() != cfg.tasks {
        report.violations.push(format!(
            "the fault-free run committed {} of {} tasks",
            clean.results.len(),
            cfg.tasks
        ));
    }
    if report.results.len() != cfg.tasks {
        report.violations.push(format!(
            "tasks lost: {} of {} committed by {} µs",
            report.results.len(),
            cfg.tasks,
            cfg.horizon_us
        ));
    }
    for (task, value) in &report.results {
        if clean.results.get(task) != Some(value) {
            report.violations.push(format!(
                "task {task}'s result differs from the fault-free run"
            ));
        }
    }
    if !report.abandoned.is_empty() {
        report
            .violations
            .push(format!("tasks abandoned: {:?}", report.abandoned));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_replays_the_same_history() {
        let mut cfg = DetConfig::new(5, 40, 3);
        cfg.faults = vec![
            (400_000, DetFault::CrashLeader),
            (700_000, DetFault::Restart(0)),
        ];
        assert_eq!(run(&cfg), run(&cfg));
        let other = run(&DetConfig {
            seed: 4,
            ..cfg.clone()
        });
        assert_ne!(run(&cfg).events, other.events);
    }

    #[test]
    fn a_fault_free_run_commits_every_task_once_under_one_leader() {
        let r = run_checked(&DetConfig::new(3, 30, 1));
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!(r.leaders.len(), 1, "{:?}", r.events);
        assert_eq!(r.retries, 0);
        assert_eq!(r.results.len(), 30);
        assert!(r.results.iter().all(|(&t, &v)| v == task_value(1, t)));
    }

    #[test]
    fn a_lone_minority_cannot_finish_the_job() {
        let mut cfg = DetConfig::new(5, 200, 2);
        cfg.horizon_us = 3_000_000;
        // Three of five nodes gone for good: no quorum, so no commits after that.
        cfg.faults = vec![
            (300_000, DetFault::Crash(0)),
            (300_000, DetFault::Crash(1)),
            (300_000, DetFault::Crash(2)),
        ];
        let r = run_checked(&cfg);
        assert!(
            r.violations.iter().any(|v| v.starts_with("tasks lost")),
            "{:?}",
            r.violations
        );
        assert!(r.finished_us.is_none());
    }
}
