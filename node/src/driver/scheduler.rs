//! The driver's scheduler: a plain state machine (events in, commands out) with no
//! sockets, so tests and the simulator drive it directly.
//!
//! Everything that happens to it is an [`Event`], handled by [`Scheduler::handle`];
//! [`Scheduler::dispatch`] then places queued tasks on free slots.
//!
//! - Nodes offer slots (cores by default). A task waits in a FIFO queue until a slot is
//!   free; it goes to a free node that holds its data if there is one (most free slots
//!   first), else to any free node.
//! - A failed task is queued again while it is retryable and has attempts left; a lost
//!   node's running tasks are queued again at the front. Attempts are bounded either way,
//!   so a task that kills every node it runs on is abandoned, not retried forever. The
//!   scheduler is the one place that counts attempts: a task whose reported success could
//!   not be recorded is [released](Event::Released) and later [confirmed](Event::Confirmed)
//!   or [retried](Event::Retry) against the same count.
//! - A cancelled job's tasks leave the queue; late reports about them are ignored.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use meshml_protocol::{JobId, TaskId};

/// A member's Raft node id.
pub type NodeId = u64;

/// The longest a failed task waits before its next try, milliseconds.
pub const MAX_BACKOFF_MS: u64 = 10_000;

/// A task of a job.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskKey {
    /// Job id.
    pub job: JobId,
    /// Task id within the job.
    pub task: TaskId,
}

impl TaskKey {
    /// Task `task` of job `job`.
    pub fn new(job: JobId, task: TaskId) -> Self {
        Self { job, task }
    }
}

impl std::fmt::Display for TaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.job, self.task)
    }
}

/// What happens to the scheduler.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A node is up with this many worker slots (a known node's count is updated).
    NodeUp {
        /// The node.
        node: NodeId,
        /// Its worker slots.
        slots: usize,
    },
    /// A node is gone: its running tasks go back to the front of the queue, or are
    /// abandoned when out of attempts.
    NodeDown {
        /// The node.
        node: NodeId,
    },
    /// A task is queued, to run preferably on one of `prefer` (the nodes holding its
    /// data). A task already queued or running is not queued twice.
    Submitted {
        /// The task.
        key: TaskKey,
        /// Nodes holding its data.
        prefer: Vec<NodeId>,
    },
    /// The task succeeded and its outcome is recorded: its slot is free and its attempts
    /// are forgotten.
    Finished {
        /// The task.
        key: TaskKey,
    },
    /// The task reported success that is not recorded yet: its slot is free at once (the
    /// worker is idle), and it is later [`Event::Confirmed`] or [`Event::Retry`]-ed.
    Released {
        /// The task.
        key: TaskKey,
    },
    /// A released task's outcome is recorded: its attempts are forgotten.
    Confirmed {
        /// The task.
        key: TaskKey,
    },
    /// A released task must run again (its output could not be copied or recorded): queued
    /// again while attempts remain, else abandoned.
    Retry {
        /// The task.
        key: TaskKey,
        /// Why.
        error: String,
    },
    /// The task's node was busy and refused it (its queue full): the task goes back to
    /// the front of the queue without using up an attempt, and the node gets no more tasks
    /// until one of its running tasks ends or it is reported up again.
    Bounced {
        /// The task.
        key: TaskKey,
    },
    /// The task failed on its node: queued again when `retryable` and attempts remain,
    /// else abandoned.
    Failed {
        /// The task.
        key: TaskKey,
        /// Whether another attempt may succeed.
        retryable: bool,
        /// Why it failed.
        error: String,
    },
    /// The job's queued and running tasks are dropped (their slots are free at once).
    JobCancelled {
        /// The job.
        job: JobId,
    },
}

/// What the scheduler asks the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send the task to the node (its `attempt`-th try, from 1).
    Assign {
        /// The task.
        key: TaskKey,
        /// Where.
        node: NodeId,
        /// Which try.
        attempt: u32,
    },
    /// Give up on the task: the job fails with this error.
    Abandon {
        /// The task.
        key: TaskKey,
        /// Why.
        error: String,
    },
}

#[derive(Debug)]
struct Slots {
    total: usize,
    busy: usize,
}

#[derive(Debug)]
struct Queued {
    key: TaskKey,
    prefer: Vec<NodeId>,
}

/// The scheduler's state.
#[derive(Debug)]
pub struct Scheduler {
    nodes: BTreeMap<NodeId, Slots>,
    queue: VecDeque<Queued>,
    queued: HashSet<TaskKey>,
    running: HashMap<TaskKey, (NodeId, Vec<NodeId>)>,
    /// Tasks whose success is reported but not recorded, with the nodes they prefer.
    released: HashMap<TaskKey, Vec<NodeId>>,
    /// Failed tasks waiting out their backoff, with when they are due.
    delayed: Vec<(u64, Queued)>,
    /// The first retry's backoff, milliseconds (doubling after each failure); 0: none.
    backoff_ms: u64,
    /// The time as [`Scheduler::set_now`] last gave it.
    now_ms: u64,
    attempts: HashMap<TaskKey, u32>,
    max_attempts: u32,
}

impl Scheduler {
    /// A scheduler that tries each task at most `max_attempts` times.
    pub fn new(max_attempts: u32) -> Self {
        Self {
            nodes: BTreeMap::new(),
            queue: VecDeque::new(),
            queued: HashSet::new(),
            running: HashMap::new(),
            released: HashMap::new(),
            delayed: Vec::new(),
            backoff_ms: 0,
            now_ms: 0,
            attempts: HashMap::new(),
            max_attempts: max_attempts.max(1),
        }
    }

    /// The same scheduler, making a task that failed wait `base_ms` before its second try,
    /// twice that before its third, and so on (at most [`MAX_BACKOFF_MS`]): a task that
    /// fails at once on a node still recovering does not use up its attempts in a moment.
    /// The wait counts in the time [`Scheduler::set_now`] gives. A task whose node was lost
    /// is not delayed.
    pub fn with_backoff(mut self, base_ms: u64) -> Self {
        self.backoff_ms = base_ms;
        self
    }

    /// Sets the time (milliseconds, never back): tasks whose backoff has passed go to the
    /// front of the queue.
    pub fn set_now(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let now = self.now_ms;
        let (due, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.delayed)
            .into_iter()
            .partition(|(t, _)| *t <= now);
        self.delayed = wait;
        for (_, q) in due.into_iter().rev() {
            self.queue.push_front(q);
        }
    }

    /// Handles one event; returns the abandonments it causes (assignments come from
    /// [`Scheduler::dispatch`]).
    pub fn handle(&mut self, event: Event) -> Vec<Command> {
        match event {
            Event::NodeUp { node, slots } => {
                self.node_up(node, slots);
                Vec::new()
            }
            Event::NodeDown { node } => self.node_down(node),
            Event::Submitted { key, prefer } => {
                self.submit(key, prefer);
                Vec::new()
            }
            Event::Finished { key } => {
                self.finished(&key);
                Vec::new()
            }
            Event::Released { key } => {
                self.release(&key);
                Vec::new()
            }
            Event::Confirmed { key } => {
                self.released.remove(&key);
                self.attempts.remove(&key);
                Vec::new()
            }
            Event::Retry { key, error } => {
                let prefer = self.released.remove(&key).unwrap_or_default();
                if self.running.contains_key(&key) || self.queued.contains(&key) {
                    return Vec::new();
                }
                self.retry(key, prefer, true, error, true)
                    .into_iter()
                    .collect()
            }
            Event::Bounced { key } => {
                if let Some((node, prefer)) = self.running.remove(&key) {
                    if let Some(s) = self.nodes.get_mut(&node) {
                        s.busy = s.busy.saturating_sub(1);
                        s.total = s.busy;
                    }
                    if let Some(a) = self.attempts.get_mut(&key) {
                        *a = a.saturating_sub(1);
                    }
                    self.queued.insert(key.clone());
                    self.queue.push_front(Queued { key, prefer });
                }
                Vec::new()
            }
            Event::Failed {
                key,
                retryable,
                error,
            } => self.failed(&key, retryable, &error).into_iter().collect(),
            Event::JobCancelled { job } => {
                self.cancel_job(&job);
                Vec::new()
            }
        }
    }

    /// A node is up with `slots` worker slots (updates the count of a known node).
    pub fn node_up(&mut self, node: NodeId, slots: usize) {
        self.nodes
            .entry(node)
            .and_modify(|s| s.total = slots)
            .or_insert(Slots {
                total: slots,
                busy: 0,
            });
    }

    /// A node is gone: its running tasks go back to the front of the queue (or are
    /// abandoned when out of attempts). Returns the commands that causes.
    pub fn node_down(&mut self, node: NodeId) -> Vec<Command> {
        self.nodes.remove(&node);
        let mut lost: Vec<(TaskKey, Vec<NodeId>)> = self
            .running
            .iter()
            .filter(|(_, (n, _))| *n == node)
            .map(|(k, (_, p))| (k.clone(), p.clone()))
            .collect();
        lost.sort();
        let mut out = Vec::new();
        for (key, prefer) in lost.into_iter().rev() {
            self.running.remove(&key);
            if let Some(c) = self.retry(key, prefer, true, format!("node {node} was lost"), false) {
                out.push(c);
            }
        }
        out
    }

    /// Nodes known to be up.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Queues a task, to run preferably on one of `prefer` (the nodes holding its data).
    pub fn submit(&mut self, key: TaskKey, prefer: Vec<NodeId>) {
        if self.running.contains_key(&key) || !self.queued.insert(key.clone()) {
            return;
        }
        self.queue.push_back(Queued { key, prefer });
    }

    fn free(&mut self, key: &TaskKey) -> Option<Vec<NodeId>> {
        let (node, prefer) = self.running.remove(key)?;
        if let Some(s) = self.nodes.get_mut(&node) {
            s.busy = s.busy.saturating_sub(1);
        }
        Some(prefer)
    }

    /// The task succeeded: its slot is free. Returns whether it was running (a report
    /// for an unknown or cancelled task changes nothing).
    pub fn finished(&mut self, key: &TaskKey) -> bool {
        let was = self.free(key).is_some();
        self.released.remove(key);
        self.attempts.remove(key);
        was
    }

    /// The task reported success, not recorded yet: its slot is free, its attempts are
    /// kept. Returns whether it was running.
    pub fn release(&mut self, key: &TaskKey) -> bool {
        // A success reported for a task queued again (its node was thought lost) settles
        // it: the queued copy leaves the queue.
        if self.queued.remove(key) {
            self.queue.retain(|q| q.key != *key);
            self.delayed.retain(|(_, q)| q.key != *key);
        }
        match self.free(key) {
            Some(prefer) => {
                self.released.insert(key.clone(), prefer);
                true
            }
            None => false,
        }
    }

    /// The task failed: queued again when `retryable` and attempts remain, else
    /// abandoned.
    pub fn failed(&mut self, key: &TaskKey, retryable: bool, error: &str) -> Option<Command> {
        let prefer = self.free(key)?;
        self.retry(key.clone(), prefer, retryable, error.to_string(), true)
    }

    /// Queues a task again (after its backoff when `delay`), or abandons it when it is not
    /// retryable or out of attempts.
    fn retry(
        &mut self,
        key: TaskKey,
        prefer: Vec<NodeId>,
        retryable: bool,
        error: String,
        delay: bool,
    ) -> Option<Command> {
        let tried = self.attempts.get(&key).copied().unwrap_or(0);
        if retryable && tried < self.max_attempts {
            self.queued.insert(key.clone());
            if delay && self.backoff_ms > 0 {
                let wait = self
                    .backoff_ms
                    .saturating_mul(1 << tried.saturating_sub(1).min(16))
                    .min(MAX_BACKOFF_MS);
                self.delayed
                    .push((self.now_ms + wait, Queued { key, prefer }));
            } else {
                self.queue.push_front(Queued { key, prefer });
            }
            None
        } else {
            self.attempts.remove(&key);
            let error = if retryable {
                format!("{error} (gave up after {tried} attempts)")
            } else {
                error
            };
            Some(Command::Abandon { key, error })
        }
    }

    /// Drops a job's queued and running tasks (their slots are free at once).
    pub fn cancel_job(&mut self, job: &JobId) {
        self.queue.retain(|q| q.key.job != *job);
        self.delayed.retain(|(_, q)| q.key.job != *job);
        self.queued.retain(|k| k.job != *job);
        self.released.retain(|k, _| k.job != *job);
        let doomed: Vec<TaskKey> = self
            .running
            .keys()
            .filter(|k| k.job == *job)
            .cloned()
            .collect();
        for k in doomed {
            self.free(&k);
            self.attempts.remove(&k);
        }
        self.attempts.retain(|k, _| k.job != *job);
    }

    /// Tasks waiting for a slot (or out their backoff).
    pub fn queued(&self) -> usize {
        self.queue.len() + self.delayed.len()
    }

    /// Tasks running.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Where a task runs, if it does.
    pub fn node_of(&self, key: &TaskKey) -> Option<NodeId> {
        self.running.get(key).map(|(n, _)| *n)
    }

    /// Assigns queued tasks to free slots, in queue order.
    pub fn dispatch(&mut self) -> Vec<Command> {
        let mut out = Vec::new();
        let mut free: usize = self
            .nodes
            .values()
            .map(|s| s.total.saturating_sub(s.busy))
            .sum();
        while free > 0 {
            let Some(q) = self.queue.pop_front() else {
                break;
            };
            self.queued.remove(&q.key);
            let pick = |ids: &mut dyn Iterator<Item = NodeId>, nodes: &BTreeMap<NodeId, Slots>| {
                ids.filter_map(|n| {
                    let s = nodes.get(&n)?;
                    let f = s.total.saturating_sub(s.busy);
                    (f > 0).then_some((f, std::cmp::Reverse(n)))
                })
                .max()
                .map(|(_, std::cmp::Reverse(n))| n)
            };
            let node = pick(&mut q.prefer.iter().copied(), &self.nodes)
                .or_else(|| pick(&mut self.nodes.keys().copied(), &self.nodes))
                .expect("a free slot exists");
            self.nodes.get_mut(&node).expect("picked").busy += 1;
            free -= 1;
            let attempt = {
                let a = self.attempts.entry(q.key.clone()).or_insert(0);
                *a += 1;
                *a
            };
            self.running.insert(q.key.clone(), (node, q.prefer));
            out.push(Command::Assign {
                key: q.key,
                node,
                attempt,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(j: &str, t: usize) -> TaskKey {
        TaskKey {
            job: j.into(),
            task: TaskId::new(0, t as u32),
        }
    }

    fn assigned(cmds: &[Command]) -> Vec<(String, NodeId)> {
        cmds.iter()
            .filter_map(|c| match c {
                Command::Assign { key, node, .. } => {
                    Some((format!("{:04}", key.task.index), *node))
                }
                Command::Abandon { .. } => None,
            })
            .collect()
    }

    #[test]
    fn tasks_go_to_the_nodes_holding_their_data_while_they_have_room() {
        let mut s = Scheduler::new(3);
        s.node_up(1, 2);
        s.node_up(2, 2);
        s.node_up(3, 2);
        for t in 0..3 {
            s.submit(key("j", t), vec![3]);
        }
        s.submit(key("j", 3), vec![2]);
        let a = assigned(&s.dispatch());
        // Node 3 holds the data of tasks 0-2 but has two slots: the third goes elsewhere.
        assert_eq!(a[0], ("0000".into(), 3));
        assert_eq!(a[1], ("0001".into(), 3));
        assert_ne!(a[2].1, 3);
        assert_eq!(a[3], ("0003".into(), 2));
        assert_eq!(s.running(), 4);
        assert_eq!(s.queued(), 0);
    }

    #[test]
    fn slots_bound_what_runs_and_finishing_frees_them() {
        let mut s = Scheduler::new(3);
        s.node_up(1, 1);
        for t in 0..3 {
            s.submit(key("j", t), vec![]);
        }
        assert_eq!(assigned(&s.dispatch()).len(), 1);
        assert!(s.dispatch().is_empty(), "no free slot");
        assert!(s.finished(&key("j", 0)));
        assert!(!s.finished(&key("j", 0)), "a second report changes nothing");
        assert_eq!(assigned(&s.dispatch()), vec![("0001".into(), 1)]);
        // Submitting a queued or running task again does not duplicate it.
        s.submit(key("j", 1), vec![]);
        s.submit(key("j", 2), vec![]);
        assert_eq!(s.queued(), 1);
    }

    #[test]
    fn retries_are_bounded() {
        let mut s = Scheduler::new(2);
        s.node_up(1, 1);
        s.submit(key("j", 0), vec![]);
        let first = s.dispatch();
        assert!(matches!(first[0], Command::Assign { attempt: 1, .. }));
        assert!(s.failed(&key("j", 0), true, "io").is_none(), "retried");
        let second = s.dispatch();
        assert!(matches!(second[0], Command::Assign { attempt: 2, .. }));
        match s.failed(&key("j", 0), true, "io") {
            Some(Command::Abandon { error, .. }) => {
                assert!(error.contains("gave up after 2 attempts"), "{error}")
            }
            other => panic!("{other:?}"),
        }
        assert!(s.dispatch().is_empty());
        // A permanent error is not retried at all.
        s.submit(key("j", 1), vec![]);
        s.dispatch();
        assert!(matches!(
            s.failed(&key("j", 1), false, "bad parameter"),
            Some(Command::Abandon { .. })
        ));
    }

    #[test]
    fn a_lost_nodes_tasks_are_reassigned_first() {
        let mut s = Scheduler::new(3);
        s.node_up(1, 2);
        s.node_up(2, 2);
        for t in 0..6 {
            s.submit(key("j", t), vec![1]);
        }
        let a = assigned(&s.dispatch());
        assert_eq!(a.len(), 4);
        let on1: Vec<String> = a.iter().filter(|x| x.1 == 1).map(|x| x.0.clone()).collect();
        assert!(s.node_down(1).is_empty());
        assert_eq!(s.running(), 2);
        // Node 2 finishes one; the lost tasks come back before tasks 4 and 5.
        let on2 = a.iter().find(|x| x.1 == 2).unwrap().0.clone();
        s.finished(&key("j", on2.parse().unwrap()));
        let next = assigned(&s.dispatch());
        assert_eq!(next.len(), 1);
        assert!(
            on1.contains(&next[0].0),
            "{next:?} should be one of {on1:?}"
        );
        assert_eq!(next[0].1, 2);
        // Late news from the lost node changes nothing.
        assert!(!s.finished(&key("x", 0)));
    }

    #[test]
    fn a_cancelled_jobs_tasks_leave_and_free_their_slots() {
        let mut s = Scheduler::new(3);
        s.node_up(1, 1);
        s.submit(key("a", 0), vec![]);
        s.submit(key("a", 1), vec![]);
        s.submit(key("b", 0), vec![]);
        s.dispatch();
        s.cancel_job(&"a".into());
        assert_eq!((s.running(), s.queued()), (0, 1));
        assert_eq!(assigned(&s.dispatch()), vec![("0000".into(), 1)]);
        assert_eq!(s.node_of(&key("b", 0)), Some(1));
    }

    #[test]
    fn thousands_of_tasks_dispatch_in_bounded_rounds() {
        let mut s = Scheduler::new(3);
        for n in 1..=32 {
            s.node_up(n, 2);
        }
        for t in 0..5000 {
            s.submit(key("j", t), vec![(t % 32) as u64 + 1]);
        }
        let mut done = 0;
        let mut rounds = 0;
        while done < 5000 {
            let cmds = s.dispatch();
            assert!(cmds.len() <= 64);
            for c in cmds {
                if let Command::Assign { key, .. } = c {
                    assert!(s.finished(&key));
                    done += 1;
                }
            }
            rounds += 1;
            assert!(rounds <= 5000 / 64 + 1);
        }
        assert_eq!((s.running(), s.queued()), (0, 0));
    }

    #[test]
    fn a_released_task_keeps_its_attempts_until_confirmed() {
        let mut s = Scheduler::new(2);
        s.handle(Event::NodeUp { node: 1, slots: 1 });
        s.handle(Event::Submitted {
            key: key("j", 0),
            prefer: vec![1],
        });
        s.handle(Event::Submitted {
            key: key("j", 1),
            prefer: vec![],
        });
        assert_eq!(assigned(&s.dispatch()), vec![("0000".into(), 1)]);
        // The success is reported: the slot is free for the next task at once.
        s.handle(Event::Released { key: key("j", 0) });
        assert_eq!(assigned(&s.dispatch()), vec![("0001".into(), 1)]);
        s.handle(Event::Finished { key: key("j", 1) });
        // Its output could not be recorded: it runs again, counted as a second attempt.
        assert!(s
            .handle(Event::Retry {
                key: key("j", 0),
                error: "copy failed".into()
            })
            .is_empty());
        let again = s.dispatch();
        assert!(
            matches!(again[0], Command::Assign { attempt: 2, .. }),
            "{again:?}"
        );
        s.handle(Event::Released { key: key("j", 0) });
        match s
            .handle(Event::Retry {
                key: key("j", 0),
                error: "copy failed".into(),
            })
            .as_slice()
        {
            [Command::Abandon { error, .. }] => {
                assert!(error.contains("gave up after 2 attempts"), "{error}")
            }
            other => panic!("{other:?}"),
        }
        // A confirmed task is forgotten: a late retry of it changes nothing.
        s.handle(Event::Submitted {
            key: key("j", 2),
            prefer: vec![],
        });
        s.dispatch();
        s.handle(Event::Released { key: key("j", 2) });
        s.handle(Event::Confirmed { key: key("j", 2) });
        assert_eq!((s.running(), s.queued()), (0, 0));
        assert!(s.released.is_empty() && s.attempts.is_empty());
    }

    #[test]
    fn a_busy_node_bounces_a_task_without_using_up_its_attempts() {
        let mut s = Scheduler::new(2);
        s.handle(Event::NodeUp { node: 1, slots: 2 });
        s.handle(Event::NodeUp { node: 2, slots: 1 });
        for t in 0..3 {
            s.handle(Event::Submitted {
                key: key("j", t),
                prefer: vec![1],
            });
        }
        assert_eq!(s.dispatch().len(), 3);
        // Node 1 refuses task 0 (its queue is full) many times over: never abandoned.
        for _ in 0..10 {
            assert!(s.handle(Event::Bounced { key: key("j", 0) }).is_empty());
            assert_eq!(s.queued(), 1);
            // Node 1 takes nothing new until a task of its own ends; node 2 is full.
            assert!(s.dispatch().is_empty());
            s.handle(Event::NodeUp { node: 1, slots: 2 });
            let again = s.dispatch();
            assert!(
                matches!(
                    again.as_slice(),
                    [Command::Assign {
                        node: 1,
                        attempt: 1,
                        ..
                    }]
                ),
                "{again:?}"
            );
        }
    }

    #[test]
    fn with_a_backoff_a_failed_task_waits_longer_after_each_failure() {
        let mut s = Scheduler::new(3).with_backoff(100);
        s.handle(Event::NodeUp { node: 1, slots: 1 });
        s.set_now(1_000);
        s.handle(Event::Submitted {
            key: key("j", 0),
            prefer: vec![],
        });
        assert_eq!(s.dispatch().len(), 1);
        assert!(s.failed(&key("j", 0), true, "unreachable chunk").is_none());
        assert_eq!(s.queued(), 1);
        // The first retry waits 100 ms.
        s.set_now(1_099);
        assert!(s.dispatch().is_empty());
        s.set_now(1_100);
        assert!(matches!(
            s.dispatch()[..],
            [Command::Assign { attempt: 2, .. }]
        ));
        // The second waits 200 ms.
        assert!(s.failed(&key("j", 0), true, "unreachable chunk").is_none());
        s.set_now(1_299);
        assert!(s.dispatch().is_empty());
        s.set_now(1_300);
        assert!(matches!(
            s.dispatch()[..],
            [Command::Assign { attempt: 3, .. }]
        ));
        // Out of attempts: abandoned at once, and a lost node's tasks are not delayed.
        assert!(matches!(
            s.failed(&key("j", 0), true, "unreachable chunk"),
            Some(Command::Abandon { .. })
        ));
        s.handle(Event::Submitted {
            key: key("j", 1),
            prefer: vec![],
        });
        s.dispatch();
        s.handle(Event::NodeUp { node: 2, slots: 1 });
        assert!(s.node_down(1).is_empty());
        assert!(matches!(
            s.dispatch()[..],
            [Command::Assign { node: 2, .. }]
        ));
        // A cancelled job's waiting tasks leave too.
        s.handle(Event::Submitted {
            key: key("k", 0),
            prefer: vec![],
        });
        s.dispatch();
        assert!(s.failed(&key("k", 0), true, "x").is_none());
        s.cancel_job(&"k".into());
        assert_eq!(s.queued(), 0);
    }
}
