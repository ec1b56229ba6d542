//! Scenarios on real nodes: N `meshml node`s in this process (each its own identity, data
//! directory, libp2p listener and HTTP API on 127.0.0.1), a dataset, a job, and faults on
//! a timeline; then a report of what happened and which invariants held.
//!
//! A scenario is a small TOML file (or one of [`builtin`]'s):
//!
//! ```toml
//! name = "driver-kill"
//! nodes = 3
//! slots = 1                  # worker slots per node
//! replicas = 2               # copies of each chunk
//! timeout_s = 120
//! [dataset]
//! source = "digits"          # digits | iris (bundled) or a CSV path
//! chunk_rows = 300
//! [job]                      # the fields of a job file (`meshml fit --job`)
//! kind = "grid_search"
//! model = "standard_scaler+logistic_regression"
//! cv = 3
//! [job.grid]
//! C = [0.01, 0.1, 1]
//! [[faults]]
//! after_tasks = 4            # or at_ms = 1500, after the job's submission
//! action = "kill_driver"     # kill | kill_driver | restart | add_node | partition
//!                            # | partition_driver | heal | slow_link | corrupt_chunk
//! # node = 1                 # for kill, restart and corrupt_chunk
//! # nodes = [0, 1]           # partition: cut off from the rest; slow_link: the two ends
//! # delay_ms = 50            # slow_link
//! # loss = 0.1               # slow_link
//! ```
//!
//! Link faults act on the nodes' messages (requests and announcements; see
//! `meshml_node::network::faults`): a cut link fails requests at once and drops what comes
//! over it, a slow one delays each request, a lossy one loses a share of them.
//!
//! Invariants checked: at most one node drives in any term; every live node follows one
//! driver; the job succeeds with every task committed (none lost) and its model predicts
//! exactly as the same job run without faults (the local executor, same seed); every chunk
//! is back to `replicas` copies on live members; damaged copies are replaced; every stored
//! copy verifies. Figures: failover time (a driver's kill to the next driver seen),
//! re-replication time (a node's loss to every chunk at `replicas` copies again), tasks
//! started more than once, the job's time.
//!
//! The nodes run in this process, as `meshml-sim node` processes, or in network namespaces
//! ([`Hosts`]); link faults act on messages in this process and on routes and `tc netem`
//! in namespaces.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshml_models::plan::{run_job, LocalExecutor};
use meshml_models::{Classifier, ModelArtifact};
use meshml_node::demo::{node_config, wait_for_cluster};
use meshml_node::fit::{job_from_table, put_dataset, submit, NodeApi};
use meshml_node::network::faults::{LinkFaults, LinkRule};
use meshml_node::node::{spawn_with_faults, NodeHandle};
use meshml_node::NodeError;
use serde::{Deserialize, Serialize};

/// A scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name (the model is registered under it).
    pub name: String,
    /// What it shows.
    #[serde(default)]
    pub description: String,
    /// Nodes at the start.
    pub nodes: usize,
    /// Worker slots per node.
    #[serde(default = "one")]
    pub slots: usize,
    /// Copies of each chunk.
    #[serde(default = "two")]
    pub replicas: usize,
    /// The whole run's limit.
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
    /// The driver removes a member unreachable for this long, and re-replicates its chunks
    /// (a node's `--remove-after-ms`).
    #[serde(default = "remove_after_ms")]
    pub remove_after_ms: u64,
    /// The data.
    pub dataset: DatasetSpec,
    /// The job (a job file's fields; `dataset` and `name` are filled in).
    pub job: toml::Table,
    /// Faults, in order.
    #[serde(default)]
    pub faults: Vec<Fault>,
}

fn one() -> usize {
    1
}
fn two() -> usize {
    2
}
fn default_timeout() -> u64 {
    180
}
fn remove_after_ms() -> u64 {
    3000
}
fn chunk_rows() -> usize {
    300
}

/// Where the data comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// `digits` or `iris` (bundled), or a CSV file.
    pub source: String,
    /// Rows per chunk.
    #[serde(default = "chunk_rows")]
    pub chunk_rows: usize,
}

/// A fault and when it strikes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Milliseconds after the job's submission.
    pub at_ms: Option<u64>,
    /// Once the job has finished this many tasks.
    pub after_tasks: Option<usize>,
    /// What happens.
    pub action: Action,
    /// The node, for `kill` and `restart` (numbered from 0 in start order).
    pub node: Option<usize>,
    /// The nodes cut off from the others (`partition`), or the two ends of a link
    /// (`slow_link`).
    pub nodes: Option<Vec<usize>>,
    /// Added to each request over the link (`slow_link`), both ways.
    pub delay_ms: Option<u64>,
    /// Share of requests lost over the link (`slow_link`), both ways.
    pub loss: Option<f64>,
}

/// Fault actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Stop a node at once, as a crash would.
    Kill,
    /// Stop whichever node drives, at once.
    KillDriver,
    /// Start a killed node again on its data directory.
    Restart,
    /// Start a new node that joins the mesh.
    AddNode,
    /// Cut `nodes` off from the others, both ways.
    Partition,
    /// Cut whichever node drives off from the others.
    PartitionDriver,
    /// Restore every link.
    Heal,
    /// Slow down and/or lose messages between the two `nodes`.
    SlowLink,
    /// Stop `node` at once, flip a byte of a chunk in its store on disk, and start it
    /// again: its next read of that chunk must notice and replace the copy.
    CorruptChunk,
}

/// The built-in scenarios: (name, TOML).
pub fn builtin() -> Vec<(&'static str, &'static str)> {
    vec![
        ("driver-kill", include_str!("../scenarios/driver-kill.toml")),
        (
            "driver-kill-after-job",
            include_str!("../scenarios/driver-kill-after-job.toml"),
        ),
        (
            "worker-kill-restart",
            include_str!("../scenarios/worker-kill-restart.toml"),
        ),
        ("add-node", include_str!("../scenarios/add-node.toml")),
        (
            "partition-driver",
            include_str!("../scenarios/partition-driver.toml"),
        ),
        ("slow-links", include_str!("../scenarios/slow-links.toml")),
        (
            "corrupt-chunk",
            include_str!("../scenarios/corrupt-chunk.toml"),
        ),
        ("netns-8", include_str!("../scenarios/netns-8.toml")),
    ]
}

impl Scenario {
    /// Parses a scenario and checks it.
    pub fn parse(text: &str, origin: &str) -> Result<Self, NodeError> {
        let s: Scenario =
            toml::from_str(text).map_err(|e| NodeError::Usage(format!("{origin}: {e}")))?;
        let bad = |m: String| Err(NodeError::Usage(format!("{origin}: {m}")));
        if s.nodes == 0 || s.nodes > 32 {
            return bad(format!("nodes = {}: from 1 to 32 in one process", s.nodes));
        }
        if s.replicas == 0 {
            return bad("replicas must be at least 1".into());
        }
        for (i, f) in s.faults.iter().enumerate() {
            if f.at_ms.is_some() == f.after_tasks.is_some() {
                return bad(format!(
                    "fault {}: give exactly one of at_ms and after_tasks",
                    i + 1
                ));
            }
            let needs_node = matches!(
                f.action,
                Action::Kill | Action::Restart | Action::CorruptChunk
            );
            let nodes = f.nodes.as_deref().unwrap_or_default();
            match f.action {
                Action::Partition if nodes.is_empty() => {
                    return bad(format!("fault {}: partition needs nodes = [...]", i + 1))
                }
                Action::SlowLink if nodes.len() != 2 || nodes[0] == nodes[1] => {
                    return bad(format!("fault {}: slow_link needs nodes = [a, b]", i + 1))
                }
                Action::SlowLink if f.delay_ms.is_none() && f.loss.is_none() => {
                    return bad(format!("fault {}: slow_link needs delay_ms or loss", i + 1))
                }
                _ => {}
            }
            if f.loss.is_some_and(|l| !(0.0..=1.0).contains(&l)) {
                return bad(format!("fault {}: loss must be in [0, 1]", i + 1));
            }
            if needs_node != f.node.is_some() {
                return bad(format!(
                    "fault {}: {:?} {} a node",
                    i + 1,
                    f.action,
                    if needs_node { "needs" } else { "takes no" }
                ));
            }
        }
        Ok(s)
    }

    /// A built-in scenario by name.
    pub fn builtin(name: &str) -> Result<Self, NodeError> {
        let all = builtin();
        match all.iter().find(|(n, _)| *n == name) {
            Some((n, text)) => Self::parse(text, n),
            None => Err(NodeError::Usage(format!(
                "no built-in scenario '{name}'; there are: {}",
                all.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}

/// An invariant and whether it held.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What must hold.
    pub name: String,
    /// Whether it did.
    pub ok: bool,
    /// What was seen.
    pub detail: String,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Nodes at the start.
    pub nodes: usize,
    /// Events, in milliseconds since the job's submission.
    pub events: Vec<(u64, String)>,
    /// Invariants.
    pub checks: Vec<Check>,
    /// Kill of a driver to the next driver seen, in milliseconds.
    pub failover_ms: Vec<u64>,
    /// A node's loss to every chunk at `replicas` copies again, in milliseconds.
    pub rereplication_ms: Option<u64>,
    /// The job's state at the end and its time.
    pub job_state: String,
    /// The job's time in milliseconds, as the mesh measured it.
    pub job_ms: u64,
    /// Tasks in the job.
    pub tasks: usize,
    /// Terms seen, with the node that drove each.
    pub drivers: BTreeMap<u64, Vec<usize>>,
    /// Tasks started more than once (on any node, counted from the workers' own records
    /// as the run polled them: a start on a node killed before the next poll is missed).
    pub tasks_retried: usize,
    /// Starts beyond the first, over all tasks.
    pub extra_starts: usize,
}

impl Report {
    /// True when every invariant held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// A human-readable table.
    pub fn write_table(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out, "scenario {} ({} nodes)", self.scenario, self.nodes)?;
        writeln!(out, "\n{:>8}  event", "t (ms)")?;
        for (t, e) in &self.events {
            writeln!(out, "{t:>8}  {e}")?;
        }
        writeln!(out, "\n{:<6} invariant", "")?;
        for c in &self.checks {
            let mark = if c.ok { "ok" } else { "FAILED" };
            writeln!(out, "{mark:<6} {}: {}", c.name, c.detail)?;
        }
        let ms = |v: &[u64]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.iter()
                    .map(|m| format!("{m} ms"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        writeln!(
            out,
            "\njob:            {} in {} ms, {} tasks",
            self.job_state, self.job_ms, self.tasks
        )?;
        writeln!(out, "failover:       {}", ms(&self.failover_ms))?;
        writeln!(
            out,
            "retries:        {} tasks started again ({} extra starts)",
            self.tasks_retried, self.extra_starts
        )?;
        writeln!(
            out,
            "re-replication: {}",
            self.rereplication_ms
                .map_or("-".to_string(), |m| format!("{m} ms"))
        )?;
        writeln!(
            out,
            "result:         {}",
            if self.passed() {
                "every invariant held"
            } else {
                "INVARIANTS VIOLATED"
            }
        )
    }
}

/// Where a scenario's nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Hosts {
    /// Threads of this process, on 127.0.0.1; link faults act on the nodes' messages.
    #[default]
    InProcess,
    /// `meshml node` processes on 127.0.0.1 (a kill is SIGKILL); no link faults.
    Processes,
    /// `meshml node` processes, one per network namespace on a bridge; link faults are
    /// routes and `tc netem` (root only; see [`crate::netns`]).
    Netns,
}

/// How a run starts its nodes.
#[derive(Debug, Default)]
pub struct Setup {
    /// Where they run.
    pub hosts: Hosts,
    /// The `meshml` program (processes and namespaces).
    pub meshml: Option<PathBuf>,
    /// The namespaces (for [`Hosts::Netns`]), made by the caller.
    pub lan: Option<crate::netns::Lan>,
}

/// A node's process: a thread of this one, or a child.
enum Proc {
    Thread(NodeHandle),
    Child(std::process::Child),
}

impl Proc {
    /// Ends it at once (SIGKILL for a process).
    fn kill(self) -> Result<(), NodeError> {
        match self {
            Proc::Thread(h) => h.kill(),
            Proc::Child(mut c) => {
                let _ = c.kill();
                c.wait().map(|_| ()).map_err(|e| NodeError::io("kill", e))
            }
        }
    }

    /// Stops it cleanly (SIGTERM for a process; SIGKILL after 15 s).
    fn stop(self) -> Result<(), NodeError> {
        match self {
            Proc::Thread(h) => h.stop(),
            Proc::Child(mut c) => {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &c.id().to_string()])
                    .status();
                let until = Instant::now() + Duration::from_secs(15);
                while Instant::now() < until {
                    if let Ok(Some(_)) = c.try_wait() {
                        return Ok(());
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = c.kill();
                c.wait().map(|_| ()).map_err(|e| NodeError::io("stop", e))
            }
        }
    }
}

struct Live {
    proc: Option<Proc>,
    /// How many times this node has been started (its worker's records start afresh).
    incarnation: u32,
    dir: PathBuf,
    api: NodeApi,
    peer: libp2p::PeerId,
    /// Its member id (what chunk holders are listed by).
    member: u64,
    /// Its first libp2p address, `/p2p/ID` included (to bootstrap from).
    listen: String,
}

/// A JSON answer of the node, or `None` when it does not give one.
fn get(api: &NodeApi, path: &str) -> Option<serde_json::Value> {
    api.call("GET", path, None, Duration::from_secs(10)).ok()
}

struct Run {
    sc: Scenario,
    root: PathBuf,
    nodes: Vec<Live>,
    t0: Instant,
    events: Vec<(u64, String)>,
    links: Arc<LinkFaults>,
    hosts: Hosts,
    meshml: PathBuf,
    lan: Option<crate::netns::Lan>,
    /// The bearer token file (nodes in namespaces serve HTTP on their LAN address).
    token: Option<PathBuf>,
    /// Chunks damaged on purpose: (node, chunk, whether the node has since scrubbed).
    damaged: Vec<(usize, meshml_protocol::ChunkId, bool)>,
}

impl Run {
    /// A run with no node started yet.
    fn new(
        sc: Scenario,
        root: &Path,
        hosts: Hosts,
        meshml: PathBuf,
        lan: Option<crate::netns::Lan>,
        token: Option<PathBuf>,
    ) -> Self {
        Run {
            sc,
            root: root.to_path_buf(),
            nodes: Vec::new(),
            t0: Instant::now(),
            events: Vec::new(),
            links: Arc::new(LinkFaults::new()),
            hosts,
            meshml,
            lan,
            token,
            damaged: Vec::new(),
        }
    }

    fn ms(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }

    fn event(&mut self, e: String) {
        let t = self.ms();
        tracing::info!(t_ms = t, "{e}");
        self.events.push((t, e));
    }

    fn live_api(&self) -> Option<&NodeApi> {
        self.nodes.iter().find(|n| n.proc.is_some()).map(|n| &n.api)
    }

    fn start(&mut self, i: usize, expect: usize) -> Result<(), NodeError> {
        let boot = self
            .nodes
            .iter()
            .find(|n| n.proc.is_some())
            .map(|n| n.listen.clone());
        let dir = self.root.join(format!("node-{i}"));
        let live = if self.hosts == Hosts::InProcess {
            let mut config = node_config(&dir, expect, boot.as_deref(), self.sc.slots);
            config.remove_after = Duration::from_millis(self.sc.remove_after_ms);
            let h = spawn_with_faults(config, self.links.clone())?;
            Live {
                incarnation: 0,
                api: NodeApi {
                    node: format!("http://{}", h.info().http.first().expect("an HTTP address")),
                    token_file: None,
                },
                peer: h.info().peer,
                member: meshml_node::raft::node_id(&h.info().peer),
                listen: h.info().listen.first().cloned().unwrap_or_default(),
                proc: Some(Proc::Thread(h)),
                dir,
            }
        } else {
            self.start_process(i, expect, boot.as_deref(), dir)?
        };
        let mut live = live;
        live.incarnation = self.nodes.get(i).map_or(0, |n| n.incarnation + 1);
        if i < self.nodes.len() {
            self.nodes[i] = live;
        } else {
            self.nodes.push(live);
        }
        Ok(())
    }

    /// Starts node `i` as a `meshml node` process (in host `i`'s namespace for
    /// [`Hosts::Netns`]) and reads its addresses from its first lines.
    fn start_process(
        &mut self,
        i: usize,
        expect: usize,
        boot: Option<&str>,
        dir: PathBuf,
    ) -> Result<Live, NodeError> {
        use std::io::BufRead;
        let (listen, http) = match &self.lan {
            Some(l) => (
                format!("/ip4/{}/tcp/7000", l.addr(i)),
                format!("{}:7070", l.addr(i)),
            ),
            None => ("/ip4/127.0.0.1/tcp/0".into(), "127.0.0.1:0".into()),
        };
        let mut cmd = match &self.lan {
            Some(l) => {
                let mut c = std::process::Command::new("ip");
                c.args(["netns", "exec", &l.host(i)]).arg(&self.meshml);
                c
            }
            None => std::process::Command::new(&self.meshml),
        };
        let log = self.root.join(format!("node-{i}.log"));
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| NodeError::io(log.display().to_string(), e))?;
        cmd.arg("node")
            .arg("--data-dir")
            .arg(&dir)
            .args(["--listen", &listen, "--http", &http, "--no-mdns"])
            .args(["--heartbeat-ms", "250", "--peer-timeout-ms", "2000"])
            .args(["--expect", &expect.to_string()])
            .args(["--slots", &self.sc.slots.to_string()])
            .args(["--remove-after-ms", &self.sc.remove_after_ms.to_string()]);
        if let Some(b) = boot {
            cmd.args(["--bootstrap", b]);
        }
        if let Some(t) = &self.token {
            cmd.arg("--http-token-file").arg(t);
        }
        let mut child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(err)
            .spawn()
            .map_err(|e| NodeError::io(self.meshml.display().to_string(), e))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(64);
        // Reads the node's output to its end (the receiver goes after start-up).
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let until = Instant::now() + Duration::from_secs(30);
        let lines = std::iter::from_fn(|| {
            rx.recv_timeout(until.saturating_duration_since(Instant::now()))
                .ok()
        });
        let Some(up) = meshml_node::node::read_startup(lines) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(NodeError::Usage(format!(
                "node {i} did not start within 30 s; see {}",
                log.display()
            )));
        };
        let peer: libp2p::PeerId = up
            .peer
            .parse()
            .map_err(|e| NodeError::Usage(format!("node {i}: peer id {}: {e}", up.peer)))?;
        Ok(Live {
            incarnation: 0,
            api: NodeApi {
                node: up.http,
                token_file: self.token.clone(),
            },
            peer,
            member: meshml_node::raft::node_id(&peer),
            listen: up.listen,
            proc: Some(Proc::Child(child)),
            dir,
        })
    }

    fn apply(&mut self, f: &Fault) -> Result<(), NodeError> {
        match f.action {
            Action::Kill | Action::KillDriver => {
                let target = match f.action {
                    Action::Kill => f.node,
                    _ => self.driver().map(|(_, i)| i),
                };
                let Some(i) = target.filter(|&i| i < self.nodes.len()) else {
                    self.event(format!("{:?}: no such node", f.action));
                    return Ok(());
                };
                let Some(h) = self.nodes[i].proc.take() else {
                    self.event(format!("node {i} is already down"));
                    return Ok(());
                };
                h.kill()?;
                self.event(format!(
                    "node {i} killed{}",
                    if f.action == Action::KillDriver {
                        " (the driver)"
                    } else {
                        ""
                    }
                ));
            }
            Action::Restart => {
                let i = f.node.expect("checked");
                if self.nodes.get(i).is_none_or(|n| n.proc.is_some()) {
                    self.event(format!("node {i} is not down; not restarted"));
                    return Ok(());
                }
                let expect = self.sc.nodes;
                self.start(i, expect)?;
                self.event(format!(
                    "node {i} restarted on {}",
                    self.nodes[i].dir.display()
                ));
            }
            Action::AddNode => {
                let i = self.nodes.len();
                self.start(i, 1)?;
                self.event(format!("node {i} added"));
            }
            Action::Partition | Action::PartitionDriver => {
                let side: Vec<usize> = match f.action {
                    Action::Partition => f.nodes.clone().unwrap_or_default(),
                    _ => self.driver().map(|(_, i)| vec![i]).unwrap_or_default(),
                };
                let side: Vec<usize> = side.into_iter().filter(|&i| i < self.nodes.len()).collect();
                if side.is_empty() {
                    self.event(format!("{:?}: no such node", f.action));
                    return Ok(());
                }
                let peers = |pick: &dyn Fn(usize) -> bool| -> Vec<libp2p::PeerId> {
                    (0..self.nodes.len())
                        .filter(|&i| pick(i))
                        .map(|i| self.nodes[i].peer)
                        .collect()
                };
                let (a, b) = (
                    peers(&|i| side.contains(&i)),
                    peers(&|i| !side.contains(&i)),
                );
                match self.lan.as_mut() {
                    Some(lan) => lan
                        .partition(&side)
                        .map_err(|e| NodeError::Usage(e.to_string()))?,
                    None => self.links.partition(&a, &b),
                }
                self.event(format!("partition: nodes {side:?} cut off from the rest"));
            }
            Action::CorruptChunk => {
                let i = f.node.expect("checked");
                // A chunk of the scenario's dataset that this node keeps with a second
                // copy elsewhere (a task's output, say, may have no other copy).
                let member = self.nodes[i].member;
                let candidates: Vec<meshml_protocol::ChunkId> = self
                    .live_api()
                    .and_then(|api| get(api, "/v1/datasets/data"))
                    .and_then(|v| {
                        let cs = v["chunks"].as_array()?.iter().filter_map(|c| {
                            let h: Vec<u64> = c["holders"]
                                .as_array()?
                                .iter()
                                .filter_map(serde_json::Value::as_u64)
                                .collect();
                            (h.contains(&member) && h.len() > 1)
                                .then(|| meshml_protocol::ChunkId::from_hex(c["id"].as_str()?))
                                .flatten()
                        });
                        Some(cs.collect())
                    })
                    .unwrap_or_default();
                let Some(h) = self.nodes.get_mut(i).and_then(|n| n.proc.take()) else {
                    self.event(format!("node {i} is not running; nothing corrupted"));
                    return Ok(());
                };
                h.kill()?;
                let dir = &self.nodes[i].dir;
                let held: BTreeSet<_> = open_closed_store(dir)
                    .and_then(|s| s.chunks().ids())
                    .map_err(|e| NodeError::Usage(e.to_string()))?
                    .into_iter()
                    .collect();
                // Not one already damaged elsewhere: its other copy must be sound.
                let Some(pick) = candidates
                    .into_iter()
                    .find(|id| held.contains(id) && !self.damaged.iter().any(|(_, d, _)| d == id))
                else {
                    self.event(format!(
                        "node {i} keeps no chunk of the dataset with another copy; nothing corrupted"
                    ));
                    self.start(i, self.sc.nodes)?;
                    return Ok(());
                };
                let id = when_released(|| meshml_storage::damage_chunk(dir, Some(pick)))
                    .map_err(|e| NodeError::Usage(e.to_string()))?;
                self.damaged.push((i, id, false));
                let expect = self.sc.nodes;
                self.start(i, expect)?;
                self.event(format!(
                    "node {i}: chunk {} damaged on disk (one byte flipped); node restarted",
                    &id.to_string()[..12]
                ));
            }
            Action::Heal => {
                match self.lan.as_mut() {
                    Some(lan) => lan.heal().map_err(|e| NodeError::Usage(e.to_string()))?,
                    None => self.links.heal(),
                }
                self.event("every link restored".into());
            }
            Action::SlowLink => {
                let n = f.nodes.clone().unwrap_or_default();
                let (a, b) = (self.nodes[n[0]].peer, self.nodes[n[1]].peer);
                let rule = LinkRule {
                    cut: false,
                    delay: Duration::from_millis(f.delay_ms.unwrap_or(0)),
                    loss: f.loss.unwrap_or(0.0),
                };
                match self.lan.as_mut() {
                    Some(lan) => lan
                        .slow_link(n[0], n[1], f.delay_ms.unwrap_or(0), f.loss.unwrap_or(0.0))
                        .map_err(|e| NodeError::Usage(e.to_string()))?,
                    None => {
                        self.links.set(a, b, rule);
                        self.links.set(b, a, rule);
                    }
                }
                self.event(format!(
                    "link {}-{}: {} ms delay, {:.0}% loss",
                    n[0],
                    n[1],
                    f.delay_ms.unwrap_or(0),
                    f.loss.unwrap_or(0.0) * 100.0
                ));
            }
        }
        Ok(())
    }

    /// The node that drives now (term, index), asking the live nodes.
    fn driver(&self) -> Option<(u64, usize)> {
        self.nodes.iter().enumerate().find_map(|(i, n)| {
            n.proc.as_ref()?;
            let v = get(&n.api, "/v1/status")?;
            let term = v["raft"]["driving"]["term"].as_u64()?;
            Some((term, i))
        })
    }

    /// Whether every live node counts every live node as a member and names the same
    /// driver (a restarted or added node has joined).
    fn all_follow_one_driver(&self) -> Result<String, CheckFailed> {
        let live: Vec<(usize, &Live)> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.proc.is_some())
            .collect();
        let mut drivers = BTreeSet::new();
        for (i, n) in &live {
            let v = get(&n.api, "/v1/status")
                .ok_or_else(|| CheckFailed(format!("node {i} does not answer")))?;
            let members: BTreeSet<String> = v["raft"]["members"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .filter_map(|m| m["peer_id"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            for (j, other) in &live {
                let peer = other.peer.to_string();
                if !members.contains(&peer) {
                    return Err(CheckFailed(format!(
                        "node {i} does not count node {j} as a member"
                    )));
                }
            }
            match v["raft"]["driver"].as_str() {
                Some(d) => drivers.insert(d.to_string()),
                None => return Err(CheckFailed(format!("node {i} knows no driver"))),
            };
        }
        if drivers.len() == 1 {
            Ok(format!("{} live nodes, one driver", live.len()))
        } else {
            Err(CheckFailed(format!(
                "the live nodes name {} drivers",
                drivers.len()
            )))
        }
    }

    /// Every live node's `/v1/status` that answers, by index.
    fn statuses(&self) -> Vec<(usize, serde_json::Value)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.proc.is_some())
            .filter_map(|(i, n)| Some((i, get(&n.api, "/v1/status")?)))
            .collect()
    }
}

/// Runs a scenario on nodes in this process, under `root`; prints progress lines to `out`.
pub fn run(sc: &Scenario, root: &Path, out: &mut dyn Write) -> Result<Report, NodeError> {
    run_on(sc, root, Setup::default(), out)
}

/// The hosts a scenario needs: its nodes and the ones it adds.
pub fn host_count(sc: &Scenario) -> usize {
    sc.nodes
        + sc.faults
            .iter()
            .filter(|f| f.action == Action::AddNode)
            .count()
}

/// Runs a scenario on the hosts `setup` names, under `root` (a directory every host sees);
/// prints progress lines to `out`.
pub fn run_on(
    sc: &Scenario,
    root: &Path,
    setup: Setup,
    out: &mut dyn Write,
) -> Result<Report, NodeError> {
    let deadline = Instant::now() + Duration::from_secs(sc.timeout_s);
    if setup.hosts == Hosts::Processes {
        if let Some(f) = sc.faults.iter().find(|f| {
            matches!(
                f.action,
                Action::Partition | Action::PartitionDriver | Action::SlowLink | Action::Heal
            )
        }) {
            return Err(NodeError::Usage(format!(
                "{:?} needs nodes in this process or in namespaces (--hosts in-process or netns), not loopback processes",
                f.action
            )));
        }
    }
    let meshml = match (&setup.meshml, setup.hosts) {
        (_, Hosts::InProcess) => PathBuf::new(),
        (Some(p), _) => p.clone(),
        // This program runs nodes too (`meshml-sim node ...` is `meshml node ...`).
        (None, _) => std::env::current_exe().map_err(|e| NodeError::io("current_exe", e))?,
    };
    let token = match &setup.lan {
        Some(lan) => {
            if lan.hosts < host_count(sc) {
                return Err(NodeError::Usage(format!(
                    "the scenario needs {} hosts, the LAN has {}",
                    host_count(sc),
                    lan.hosts
                )));
            }
            let p = root.join("http-token");
            let t = format!(
                "{:x}{:x}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            );
            std::fs::write(&p, t).map_err(|e| NodeError::io(p.display().to_string(), e))?;
            Some(p)
        }
        None if setup.hosts == Hosts::Netns => {
            return Err(NodeError::Usage(
                "--hosts netns needs the namespaces (meshml-sim makes them)".into(),
            ))
        }
        None => None,
    };
    let mut r = Run::new(sc.clone(), root, setup.hosts, meshml, setup.lan, token);
    for i in 0..sc.nodes {
        r.start(i, sc.nodes)?;
    }
    let api = r.nodes[0].api.clone();
    let formed = wait_for_cluster(&api, sc.nodes)?;
    r.event(format!(
        "{} nodes formed a mesh in {} ms",
        sc.nodes,
        formed.as_millis()
    ));

    // The data, stored on the mesh and loaded here for the fault-free reference.
    let csv = match sc.dataset.source.as_str() {
        "digits" => {
            let p = root.join("digits.csv");
            std::fs::write(&p, meshml_node::demo::DIGITS_CSV)
                .map_err(|e| NodeError::io(p.display().to_string(), e))?;
            p
        }
        "iris" => {
            let p = root.join("iris.csv");
            std::fs::write(&p, meshml_models::io::IRIS_CSV)
                .map_err(|e| NodeError::io(p.display().to_string(), e))?;
            p
        }
        path => PathBuf::from(path),
    };
    let data = meshml_models::io::load_csv(&csv, &Default::default())?;
    put_dataset(
        &api,
        &csv,
        &format!(
            "name=data&replicas={}&chunk_rows={}",
            sc.replicas, sc.dataset.chunk_rows
        ),
        out,
    )?;
    let mut table = sc.job.clone();
    table.insert("dataset".into(), toml::Value::String("data".into()));
    table.insert("name".into(), toml::Value::String(sc.name.clone()));
    let request = job_from_table(table)?;
    let reference = run_job(&request.job, &data, &LocalExecutor::new(1), &|_| {})?;

    r.t0 = Instant::now();
    r.events.clear();
    let id = submit(&api, &request)?;
    r.event(format!("job {id} submitted: {}", request.job.describe()));

    let mut faults: Vec<Fault> = sc.faults.clone();
    faults.reverse();
    let mut drivers: BTreeMap<u64, BTreeSet<usize>> = BTreeMap::new();
    let mut last_driver: Option<(u64, usize)> = None;
    // When the driver was killed or cut off, and its term: the failover ends when a driver
    // of a newer term is seen.
    let mut killed_driver_at: Option<(u64, u64)> = None;
    let mut failover_ms = Vec::new();
    let mut lost_at: Option<u64> = None;
    let mut rereplication_ms = None;
    let mut last_done = usize::MAX;
    // Starts seen per (node, incarnation, task).
    let mut starts: BTreeMap<(usize, u32, String), u32> = BTreeMap::new();
    let mut job = serde_json::Value::Null;
    let mut replicas_ok = false;
    let mut ended = false;
    loop {
        if Instant::now() > deadline {
            r.event(format!("timed out after {} s", sc.timeout_s));
            break;
        }
        let statuses = r.statuses();
        // Who drives: every live node's own claim.
        let claims: Vec<(u64, usize)> = statuses
            .iter()
            .filter_map(|(i, v)| Some((v["raft"]["driving"]["term"].as_u64()?, *i)))
            .collect();
        for (term, i) in claims {
            drivers.entry(term).or_default().insert(i);
            if last_driver != Some((term, i)) && last_driver.is_none_or(|(t, _)| term >= t) {
                last_driver = Some((term, i));
                r.event(format!("node {i} drives in term {term}"));
            }
            if let Some((at, old)) = killed_driver_at.filter(|&(_, old)| term > old) {
                failover_ms.push(r.ms() - at);
                killed_driver_at = None;
                r.event(format!("failover: term {old} -> {term}"));
            }
        }
        // Task starts, from every live worker's records.
        let mut again = Vec::new();
        for (i, v) in &statuses {
            let (i, n) = (*i, &r.nodes[*i]);
            for e in v["worker"]["executed"].as_array().into_iter().flatten() {
                let (Some(job), Some(task)) = (e["job"].as_str(), e["task"].as_str()) else {
                    continue;
                };
                if job != id {
                    continue;
                }
                let runs = e["runs"].as_u64().unwrap_or(0) as u32;
                let seen = starts
                    .entry((i, n.incarnation, task.to_string()))
                    .or_insert(0);
                if runs > *seen {
                    *seen = runs;
                    let total: u32 = starts
                        .iter()
                        .filter(|((_, _, t), _)| t == task)
                        .map(|(_, r)| *r)
                        .sum();
                    if total > 1 {
                        again.push(format!(
                            "task {task} started again, on node {i} (start {total})"
                        ));
                    }
                }
            }
        }
        for e in again {
            r.event(e);
        }
        let Some(live) = r.live_api().cloned() else {
            r.event("no node is left".into());
            break;
        };
        if let Some(v) = get(&live, &format!("/v1/jobs/{id}")) {
            job = v;
        }
        let done = job["done"].as_u64().unwrap_or(0) as usize;
        if done != last_done {
            last_done = done;
            r.event(format!(
                "{done}/{} tasks done",
                job["total"].as_u64().unwrap_or(0)
            ));
        }
        // Faults that are due.
        while let Some(f) = faults.last() {
            let due =
                f.at_ms.is_some_and(|t| r.ms() >= t) || f.after_tasks.is_some_and(|n| done >= n);
            if !due {
                break;
            }
            let f = faults.pop().expect("peeked");
            let was = r.driver();
            if matches!(f.action, Action::Kill | Action::KillDriver) {
                r.apply(&f)?;
                let target = f.node.or(was.map(|(_, i)| i));
                if let Some((term, _)) = was.filter(|&(_, i)| Some(i) == target) {
                    killed_driver_at = Some((r.ms(), term));
                }
                lost_at.get_or_insert(r.ms());
            } else if f.action == Action::PartitionDriver {
                r.apply(&f)?;
                if let Some((term, _)) = was {
                    killed_driver_at = Some((r.ms(), term));
                }
            } else {
                r.apply(&f)?;
            }
        }
        // Copies of every chunk on live nodes.
        let Some(live) = r.live_api().cloned() else {
            continue;
        };
        let alive: BTreeSet<u64> = r
            .nodes
            .iter()
            .filter(|n| n.proc.is_some())
            .map(|n| n.member)
            .collect();
        let Some(min) = live_copies(&live, &alive) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let want = sc.replicas.min(alive.len());
        if min >= want && !replicas_ok {
            replicas_ok = true;
            if let Some(at) = lost_at {
                rereplication_ms = Some(r.ms() - at);
                r.event(format!("every chunk has {want} copies again"));
            }
        } else if min < want && replicas_ok {
            replicas_ok = false;
            r.event(format!("a chunk has {min} of {want} copies"));
        }
        let running = job["state"].as_str().is_none_or(|s| s == "running");
        if !running && !ended {
            ended = true;
            let state = job["state"].as_str().unwrap_or("unknown").to_string();
            r.event(format!("job {state}"));
        }
        let joined = !running && faults.is_empty() && r.all_follow_one_driver().is_ok();
        // Damaged copies: the node's scrubber (or a read) replaces them.
        let mut scrubbed = true;
        for k in 0..r.damaged.len() {
            let (i, id, seen) = r.damaged[k];
            if seen {
                continue;
            }
            let v = r.nodes[i]
                .proc
                .as_ref()
                .and_then(|_| get(&r.nodes[i].api, "/v1/status"));
            let s = v.as_ref().map(|v| &v["scrub"]);
            let done = s.is_some_and(|s| {
                s["passes"].as_u64().unwrap_or(0) >= 1
                    && s["damaged"]
                        .as_array()
                        .is_some_and(|d| !d.iter().any(|x| x.as_str() == Some(&id.to_string())))
            });
            if done {
                r.damaged[k].2 = true;
                r.event(format!(
                    "node {i}: scrub pass done, {} repaired so far",
                    s.and_then(|s| s["repaired"].as_u64()).unwrap_or(0)
                ));
            } else {
                scrubbed = false;
            }
        }
        if !running
            && faults.is_empty()
            && replicas_ok
            && killed_driver_at.is_none()
            && joined
            && scrubbed
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let job_state = job["state"].as_str().unwrap_or("unknown").to_string();
    let follow = r.all_follow_one_driver();

    let mut checks = Vec::new();
    let doubled: Vec<String> = drivers
        .iter()
        .filter(|(_, n)| n.len() > 1)
        .map(|(t, n)| format!("term {t}: nodes {n:?}"))
        .collect();
    checks.push(Check {
        name: "at most one driver per term".into(),
        ok: doubled.is_empty(),
        detail: if doubled.is_empty() {
            format!("{} term(s) seen", drivers.len())
        } else {
            doubled.join("; ")
        },
    });
    checks.push(Check {
        name: "every live node is in the mesh and follows one driver".into(),
        ok: follow.is_ok(),
        detail: follow.unwrap_or_else(|e| e.to_string()),
    });
    checks.push(Check {
        name: "the job succeeds".into(),
        ok: job_state == "succeeded",
        detail: job["error"].as_str().unwrap_or(&job_state).to_string(),
    });
    // Every task the plan made was committed as done (none dropped on a failover).
    let (done, total) = (
        job["done"].as_u64().unwrap_or(0),
        job["total"].as_u64().unwrap_or(0),
    );
    checks.push(Check {
        name: "no task lost".into(),
        ok: total > 0 && done == total,
        detail: format!("{done} of {total} tasks committed as done"),
    });
    // The registered model against the fault-free run of the same job.
    let same = match (job_state.as_str(), r.live_api().cloned()) {
        ("succeeded", Some(live)) => compare_model(&live, &job, &sc.name, &reference, &data),
        _ => Err(CheckFailed("no model to compare".into())),
    };
    checks.push(Check {
        name: "results equal a fault-free run with the same seed".into(),
        ok: same.is_ok(),
        detail: same.unwrap_or_else(|e| e.to_string()),
    });
    checks.push(Check {
        name: format!("every chunk back to {} copies", sc.replicas),
        ok: replicas_ok,
        detail: rereplication_ms.map_or("no copy was lost".into(), |m| {
            format!("restored {m} ms after the first loss")
        }),
    });
    let report = Report {
        scenario: sc.name.clone(),
        nodes: sc.nodes,
        events: r.events.clone(),
        checks,
        failover_ms,
        rereplication_ms,
        job_state,
        job_ms: job["elapsed_ms"].as_u64().unwrap_or(0),
        tasks: job["total"].as_u64().unwrap_or(0) as usize,
        drivers: drivers
            .into_iter()
            .map(|(t, n)| (t, n.into_iter().collect()))
            .collect(),
        tasks_retried: 0,
        extra_starts: 0,
    };
    let mut per_task: BTreeMap<&str, u32> = BTreeMap::new();
    for ((_, _, task), runs) in &starts {
        *per_task.entry(task.as_str()).or_default() += runs;
    }
    let mut report = report;
    report.tasks_retried = per_task.values().filter(|&&n| n > 1).count();
    report.extra_starts = per_task
        .values()
        .map(|&n| n.saturating_sub(1) as usize)
        .sum();
    for n in &mut r.nodes {
        if let Some(h) = n.proc.take() {
            h.stop()?;
        }
    }
    // With every node stopped: every copy in every store must verify.
    let scrub = scrub(&r.nodes.iter().map(|n| n.dir.clone()).collect::<Vec<_>>());
    let repaired = if r.damaged.is_empty() {
        String::new()
    } else {
        format!(", including the {} damaged on purpose", r.damaged.len())
    };
    for &(i, id, _) in &r.damaged {
        let kept = open_closed_store(&r.nodes[i].dir)
            .map_err(|e| e.to_string())
            .and_then(|s| s.chunk(&id).map_err(|e| e.to_string()));
        report.checks.push(Check {
            name: format!(
                "node {i} replaced its damaged copy of {}",
                &id.to_string()[..12]
            ),
            ok: kept.is_ok(),
            detail: match kept {
                Ok(b) => format!("{} bytes, hash verified", b.len()),
                Err(e) => e,
            },
        });
    }
    report.checks.push(Check {
        name: "every stored copy verifies".into(),
        ok: scrub.as_ref().is_ok_and(|(_, bad)| bad.is_empty()),
        detail: match scrub {
            Ok((n, bad)) if bad.is_empty() => format!("{n} copies checked{repaired}"),
            Ok((n, bad)) => format!(
                "{} of {n} copies are corrupt: {}",
                bad.len(),
                bad.join(", ")
            ),
            Err(e) => e.to_string(),
        },
    });
    Ok(report)
}

/// Opens the store of a node just stopped: a task of its runtime still finishing may hold
/// the store for a moment, so this retries for up to ten seconds.
fn open_closed_store(dir: &Path) -> meshml_storage::Result<meshml_storage::Store> {
    when_released(|| meshml_storage::Store::open(dir))
}

/// Runs `f` on the files of a node just stopped, again for up to ten seconds while they are
/// still held: by the store's lock, or by its database's (a task of the node's runtime
/// still finishing, a flush say, keeps a handle for a moment).
fn when_released<T>(mut f: impl FnMut() -> meshml_storage::Result<T>) -> meshml_storage::Result<T> {
    use meshml_storage::StorageError;
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        match f() {
            Err(StorageError::Locked(_)) if Instant::now() < until => {}
            // sled reports its held lock as an `Other` error that names it.
            Err(StorageError::Db {
                source: sled::Error::Io(e),
            }) if (e.kind() == std::io::ErrorKind::WouldBlock
                || e.to_string().contains("could not acquire lock"))
                && Instant::now() < until => {}
            r => return r,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A check of the report that does not hold, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CheckFailed(pub String);

/// Reads every chunk in the stores at `dirs` (closed): the copies checked, and the corrupt
/// ones as `node N: chunk`.
fn scrub(dirs: &[PathBuf]) -> Result<(usize, Vec<String>), CheckFailed> {
    let (mut n, mut bad) = (0, Vec::new());
    for (i, dir) in dirs.iter().enumerate() {
        let s = open_closed_store(dir).map_err(|e| CheckFailed(format!("node {i}: {e}")))?;
        for id in s
            .chunks()
            .ids()
            .map_err(|e| CheckFailed(format!("node {i}: {e}")))?
        {
            n += 1;
            if s.chunk(&id).is_err() {
                bad.push(format!("node {i}: {}", &id.to_string()[..12]));
            }
        }
    }
    Ok((n, bad))
}

/// The fewest copies any chunk of the dataset has on the `alive` members (`None` when the
/// node does not answer).
fn live_copies(api: &NodeApi, alive: &BTreeSet<u64>) -> Option<usize> {
    let v = get(api, "/v1/datasets/data")?;
    v["chunks"]
        .as_array()?
        .iter()
        .map(|c| {
            c["holders"].as_array().map_or(0, |h| {
                h.iter()
                    .filter_map(serde_json::Value::as_u64)
                    .filter(|m| alive.contains(m))
                    .count()
            })
        })
        .min()
}

/// Downloads the model and compares its predictions on `data` with the reference run's.
fn compare_model(
    api: &NodeApi,
    job: &serde_json::Value,
    name: &str,
    reference: &meshml_models::plan::JobResult,
    data: &meshml_models::Dataset,
) -> Result<String, CheckFailed> {
    let mut bytes = Vec::new();
    let (code, _, text) = meshml_node::status::http_download(
        &api.node,
        &format!("/v1/models/{name}/artifact"),
        api.token().ok().flatten().as_deref(),
        &mut bytes,
        Duration::from_secs(60),
    )
    .map_err(|e| CheckFailed(e.to_string()))?;
    if code != 200 {
        return Err(CheckFailed(format!("model download: HTTP {code}: {text}")));
    }
    let art = ModelArtifact::from_bytes(&bytes, Path::new(name))
        .map_err(|e| CheckFailed(e.to_string()))?;
    if let Some(cv) = &reference.cv {
        let theirs: Vec<f64> = job["result"]["cv"]["mean_test_score"]
            .as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
            .unwrap_or_default();
        if theirs != cv.mean_test_score {
            return Err(CheckFailed(format!(
                "cross-validation scores differ: {theirs:?} against {:?}",
                cv.mean_test_score
            )));
        }
    }
    let want = reference
        .model
        .as_ref()
        .ok_or_else(|| CheckFailed("the reference run made no model".into()))?;
    let (a, b) = (
        art.model
            .predict_proba(data.x())
            .map_err(|e| CheckFailed(e.to_string()))?,
        want.predict_proba(data.x())
            .map_err(|e| CheckFailed(e.to_string()))?,
    );
    let diff = a
        .data()
        .iter()
        .zip(b.data().iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    if diff == 0.0 {
        Ok(format!(
            "same cross-validation scores, and identical probabilities on all {} rows",
            data.n_samples()
        ))
    } else {
        Err(CheckFailed(format!("probabilities differ by up to {diff}")))
    }
}

/// One row of the dispatch-cost benchmark ([`dispatch_cost`]).
#[derive(Debug, Clone, Serialize)]
pub struct CostRow {
    /// Nodes in the mesh.
    pub nodes: usize,
    /// Time for the mesh to form (every node a member, a driver elected).
    pub form_ms: u64,
    /// Tasks of the tiny job (Gaussian naive Bayes fits on iris: the task itself is well
    /// under a millisecond, so its time is the driver's dispatch and the round trips).
    pub tiny_tasks: usize,
    /// The tiny job's time on the mesh.
    pub tiny_ms: u64,
    /// The real job's tasks (logistic regression grid on digits).
    pub real_tasks: usize,
    /// The real job's time on the mesh.
    pub real_ms: u64,
    /// The process's resident memory once the mesh formed, and after both jobs (MiB).
    pub rss_formed_mib: f64,
    /// After both jobs.
    pub rss_after_mib: f64,
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn timed_job(api: &NodeApi, table: &str) -> Result<(usize, u64), NodeError> {
    let t: toml::Table = toml::from_str(table).map_err(|e| NodeError::Usage(e.to_string()))?;
    let req = job_from_table(t)?;
    let id = submit(api, &req)?;
    let view = meshml_node::fit::follow(api, &id)?;
    if view.state != "succeeded" {
        return Err(NodeError::Usage(format!(
            "benchmark job {id} {}: {}",
            view.state,
            view.error.unwrap_or_default()
        )));
    }
    Ok((view.total, view.elapsed_ms))
}

/// Starts `n` nodes in this process (one worker slot each), stores iris and digits with two
/// copies, and times a tiny job (many near-empty tasks: the driver's dispatch cost) and a
/// real one; stops the nodes.
pub fn dispatch_cost(n: usize, root: &Path) -> Result<CostRow, NodeError> {
    let sc = Scenario::parse(
        &format!(
            "name = \"cost\"\nnodes = {n}\n[dataset]\nsource = \"iris\"\n[job]\nkind = \"fit\"\nmodel = \"gaussian_nb\"\n"
        ),
        "dispatch-cost",
    )?;
    let mut r = Run::new(sc, root, Hosts::InProcess, PathBuf::new(), None, None);
    let started = Instant::now();
    for i in 0..n {
        r.start(i, n)?;
    }
    let api = r.nodes[0].api.clone();
    wait_for_cluster(&api, n)?;
    let form_ms = started.elapsed().as_millis() as u64;
    let rss_formed_mib = rss_mib();
    let replicas = 2.min(n);
    let mut sink = std::io::sink();
    for (name, text) in [
        ("iris", meshml_models::io::IRIS_CSV),
        ("digits", meshml_node::demo::DIGITS_CSV),
    ] {
        let p = root.join(format!("{name}.csv"));
        std::fs::write(&p, text).map_err(|e| NodeError::io(p.display().to_string(), e))?;
        put_dataset(
            &api,
            &p,
            &format!("name={name}&replicas={replicas}&chunk_rows=300"),
            &mut sink,
        )?;
    }
    // 40 candidates x 5 folds + the refit: 201 tasks of well under a millisecond each.
    let smoothing: Vec<String> = (0..40).map(|i| format!("1e-{}", 2 + i % 8)).collect();
    let (tiny_tasks, tiny_ms) = timed_job(
        &api,
        &format!(
            "dataset = \"iris\"\nkind = \"grid_search\"\nmodel = \"gaussian_nb\"\ncv = 5\n[grid]\nvar_smoothing = [{}]\n",
            smoothing.join(", ")
        ),
    )?;
    let (real_tasks, real_ms) = timed_job(
        &api,
        "dataset = \"digits\"\nkind = \"grid_search\"\nmodel = \"standard_scaler+logistic_regression\"\ncv = 3\n[set]\nmax_iter = 200\n[grid]\nC = [0.01, 0.1, 1, 10]\n",
    )?;
    let rss_after_mib = rss_mib();
    for node in &mut r.nodes {
        if let Some(h) = node.proc.take() {
            h.stop()?;
        }
    }
    Ok(CostRow {
        nodes: n,
        form_ms,
        tiny_tasks,
        tiny_ms,
        real_tasks,
        real_ms,
        rss_formed_mib,
        rss_after_mib,
    })
}
