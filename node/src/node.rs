//! `meshml node`: a long-running mesh node.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use actix::Actor;
use meshml_protocol::Capabilities;

use crate::batch::Batches;
use crate::config::NodeConfig;
use crate::driver;
use crate::membership::{Leave, Membership, MembershipConfig, NetEvent};
use crate::mesh::Mesh;
use crate::network::faults::LinkFaults;
use crate::network::{self, identity, NetworkConfig};
use crate::raft;
use crate::services::chunks::Chunks;
use crate::services::consensus::Consensus;
use crate::services::datasets::Datasets;
use crate::serving::Models;
use crate::NodeError;
use meshml_storage::raft::MemberInfo;

fn usage(msg: impl Into<String>) -> NodeError {
    NodeError::Usage(msg.into())
}

/// What this machine offers: cores, available memory, free disk in `dir`.
pub fn capabilities(dir: &Path) -> Capabilities {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let memory_bytes = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024);
    let free_disk_bytes = rustix::fs::statvfs(dir).map_or(0, |s| s.f_bavail * s.f_frsize);
    Capabilities {
        cores,
        memory_bytes,
        free_disk_bytes,
        started_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    }
}

pub use crate::config::parse_bootstrap;

fn net_err(e: network::NetworkError) -> NodeError {
    NodeError::Usage(e.to_string())
}

/// What a started node tells its caller.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// Its peer id.
    pub peer: libp2p::PeerId,
    /// Where it listens, `/p2p/ID` included.
    pub listen: Vec<String>,
    /// Its HTTP API addresses.
    pub http: Vec<std::net::SocketAddr>,
    /// Its cluster name.
    pub cluster: String,
}

/// A node running on a thread of its own (with its own actix system).
#[derive(Debug)]
pub struct NodeHandle {
    info: NodeInfo,
    /// Sends whether to leave cleanly.
    stop: Option<tokio::sync::oneshot::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<Result<(), NodeError>>>,
}

impl NodeHandle {
    /// Its addresses.
    pub fn info(&self) -> &NodeInfo {
        &self.info
    }

    /// Stops it (leaving the mesh cleanly) and waits for it.
    pub fn stop(mut self) -> Result<(), NodeError> {
        self.shutdown(true)
    }

    /// Stops it at once, as a crash would: no goodbye to the mesh, no Raft shutdown, the
    /// HTTP server and connections dropped, running tasks abandoned. What the store had
    /// acknowledged is on disk (every write is flushed before it is acknowledged).
    pub fn kill(mut self) -> Result<(), NodeError> {
        self.shutdown(false)
    }

    fn shutdown(&mut self, graceful: bool) -> Result<(), NodeError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(graceful);
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(usage("the node's thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        let _ = self.shutdown(true);
    }
}

const NODE_LINE: &str = "node ";
const LISTEN_LINE: &str = "listening on ";
const HTTP_LINE: &str = "http api on ";

/// A node process's addresses as [`run`] prints them at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Startup {
    /// Its peer id.
    pub peer: String,
    /// Its first listen address, `/p2p/ID` included.
    pub listen: String,
    /// Its HTTP API, `http://HOST:PORT`.
    pub http: String,
}

/// Reads a node process's start-up lines (its standard output) up to its HTTP address;
/// `None` when they end first.
pub fn read_startup(lines: impl IntoIterator<Item = String>) -> Option<Startup> {
    let (mut peer, mut listen) = (String::new(), String::new());
    for line in lines {
        if let Some(rest) = line.strip_prefix(NODE_LINE) {
            peer = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
        } else if let Some(a) = line.strip_prefix(LISTEN_LINE) {
            if listen.is_empty() {
                listen = a.to_string();
            }
        } else if let Some(h) = line.strip_prefix(HTTP_LINE) {
            return Some(Startup {
                peer,
                listen,
                http: h.to_string(),
            });
        }
    }
    None
}

/// Runs a node until SIGINT or SIGTERM. Prints its id, listen addresses and HTTP address.
pub fn run(config: NodeConfig, out: &mut dyn Write) -> Result<(), NodeError> {
    let node = spawn(config)?;
    let say = |out: &mut dyn Write, line: String| -> Result<(), NodeError> {
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| NodeError::io("stdout", e))
    };
    let info = node.info().clone();
    say(
        out,
        format!("{NODE_LINE}{} (cluster '{}')", info.peer, info.cluster),
    )?;
    for a in &info.listen {
        say(out, format!("{LISTEN_LINE}{a}"))?;
    }
    for a in &info.http {
        say(out, format!("{HTTP_LINE}http://{a}"))?;
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| NodeError::io("runtime", e))?
        .block_on(shutdown_signal());
    tracing::info!("shutting down");
    node.stop()?;
    say(out, "stopped".to_string())
}

/// Starts a node on a thread of its own and returns once it listens; the configuration is
/// checked first ([`NodeConfig::validate`]).
pub fn spawn(config: NodeConfig) -> Result<NodeHandle, NodeError> {
    spawn_inner(config, None)
}

/// [`spawn`], with simulated link faults shared with other nodes of this process (the
/// simulator's).
pub fn spawn_with_faults(
    config: NodeConfig,
    faults: std::sync::Arc<LinkFaults>,
) -> Result<NodeHandle, NodeError> {
    spawn_inner(config, Some(faults))
}

fn spawn_inner(
    config: NodeConfig,
    faults: Option<std::sync::Arc<LinkFaults>>,
) -> Result<NodeHandle, NodeError> {
    let addresses = config.addresses()?;
    let (info_tx, info_rx) = std::sync::mpsc::sync_channel::<Result<NodeInfo, NodeError>>(1);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<bool>();
    let thread = std::thread::Builder::new()
        .name("meshml-node".into())
        .spawn(move || {
            let failed = info_tx.clone();
            let r = serve(config, addresses, faults, info_tx, stop_rx);
            if let Err(e) = &r {
                let _ = failed.try_send(Err(usage(e.to_string())));
            }
            r
        })
        .map_err(|e| NodeError::io("thread", e))?;
    match info_rx.recv() {
        Ok(Ok(info)) => Ok(NodeHandle {
            info,
            stop: Some(stop_tx),
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => match thread.join() {
            Ok(Err(e)) => Err(e),
            _ => Err(usage("the node stopped while starting")),
        },
    }
}

fn serve(
    cfg: NodeConfig,
    addresses: crate::config::Addresses,
    faults: Option<std::sync::Arc<LinkFaults>>,
    started: std::sync::mpsc::SyncSender<Result<NodeInfo, NodeError>>,
    stop: tokio::sync::oneshot::Receiver<bool>,
) -> Result<(), NodeError> {
    let dir = crate::dataset::data_dir(cfg.data_dir.clone())?;
    std::fs::create_dir_all(&dir).map_err(|e| NodeError::io(dir.display().to_string(), e))?;
    let crate::config::Addresses { listen, bootstrap } = addresses;
    // Off loopback a token file is required: `addresses` checked that.
    let token = cfg
        .http_token_file
        .as_deref()
        .map(crate::http::read_token_file)
        .transpose()?;
    let psk = cfg
        .secret_file
        .as_deref()
        .map(identity::read_psk)
        .transpose()
        .map_err(net_err)?;
    let key = identity::load_or_create_keypair(&dir.join("identity.key")).map_err(net_err)?;
    let caps = capabilities(&dir);
    let config = NetworkConfig {
        psk,
        mdns: cfg.mdns,
        capabilities: caps.clone(),
        cluster: cfg.cluster.clone(),
        faults,
        ..NetworkConfig::default()
    };
    let membership_config = MembershipConfig {
        heartbeat: cfg.heartbeat,
        peer_timeout: cfg.effective_peer_timeout(),
        forget_after: cfg.forget_after,
    };
    let store = meshml_storage::Store::open(&dir).map_err(|e| {
        usage(format!(
            "cannot open the store in {}: {e} (is another meshml node or command using it?)",
            dir.display()
        ))
    })?;
    let mut caps = caps;
    if let Some(slots) = cfg.slots {
        caps.cores = slots as u32;
    }
    let slots = caps.cores as usize;
    let system = actix_rt::System::new();
    system.block_on(async move {
        let (client, mut events, event_loop) = network::new(key, config).map_err(net_err)?;
        let local = client.local_peer_id();
        // The swarm gets a thread of its own; actors and HTTP run on this one.
        let net_arbiter = actix_rt::Arbiter::new();
        net_arbiter.spawn(event_loop.run());
        for l in &listen {
            client.listen(l.clone()).await.map_err(net_err)?;
        }
        let membership = Membership::new(client.clone(), membership_config).start();
        // Raft gets a thread of its own too.
        let raft_arbiter = actix_rt::Arbiter::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (raft_dir, raft_client, raft_cfg) = (
            dir.join("raft"),
            client.clone(),
            raft::default_config(&cfg.cluster),
        );
        raft_arbiter.spawn(async move {
            let _ = tx.send(raft::start(&raft_dir, local, raft_client, raft_cfg).await);
        });
        let (raft, state) = rx
            .await
            .map_err(|_| usage("the Raft node did not start"))?
            .map_err(|e| usage(format!("cannot start the Raft node: {e}")))?;
        let live_members = {
            let (fm, cluster_name) = (membership.clone(), cfg.cluster.clone());
            move || {
                let (fm, cluster_name) = (fm.clone(), cluster_name.clone());
                let f: futures::future::BoxFuture<'static, Vec<(libp2p::PeerId, MemberInfo)>> =
                    Box::pin(async move {
                        fm.send(crate::membership::GetPeers)
                            .await
                            .unwrap_or_default()
                            .into_iter()
                            .filter(|p| {
                                p.state == crate::membership::PeerState::Alive
                                    && p.cluster == cluster_name
                            })
                            .filter_map(|p| {
                                let id = p.id.parse().ok()?;
                                Some((
                                    id,
                                    MemberInfo {
                                        peer_id: p.id,
                                        addrs: p.addrs,
                                        cores: p.cores,
                                        memory_bytes: p.memory_bytes,
                                        free_disk_bytes: p.free_disk_bytes,
                                        started_ms: p.started_ms,
                                    },
                                ))
                            })
                            .collect()
                    });
                f
            }
        };
        let alive: raft::AlivePeers = std::sync::Arc::new(live_members.clone());
        raft_arbiter.spawn(raft::election_gate(
            raft.clone(),
            alive.clone(),
            Duration::from_millis(200),
        ));
        // The mesh services, each over the one below it.
        let consensus = Consensus::new(raft.clone(), state.clone(), client.clone(), alive.clone());
        let chunks = Chunks::new(consensus.clone(), store, dir.clone());
        let datasets = Datasets::new(chunks.clone(), cfg.cache_bytes);
        let models = Models::new(chunks.clone(), cfg.model_cache_bytes);
        let mesh = Mesh {
            consensus,
            chunks: chunks.clone(),
            datasets: datasets.clone(),
            models: models.clone(),
            batches: Batches::new(models.clone(), datasets.clone()),
            scrub: Default::default(),
            train_memory: cfg
                .train_memory_bytes
                .unwrap_or_else(|| (capabilities(&dir).memory_bytes / 2).max(64 << 20)),
        };
        actix_rt::spawn(models.preload_aliases());
        actix_rt::spawn(datasets.clone().release_forever());
        if let Some(every) = cfg.scrub_every {
            actix_rt::spawn(crate::scrub::run(
                chunks,
                mesh.scrub.clone(),
                crate::scrub::ScrubConfig {
                    first_after: Duration::from_secs(2),
                    every,
                    bytes_per_s: cfg.scrub_bytes_per_s,
                },
            ));
        }
        let inbox: driver::inbox::InboxSlot = Default::default();
        let worker = crate::driver::worker::Worker::new(
            datasets.clone(),
            slots,
            inbox.clone(),
            mesh.train_memory,
        );
        let m = membership.clone();
        let (r, c) = (raft.clone(), client.clone());
        let promises = std::sync::Arc::new(raft::Promises::default());
        let formation_promises = promises.clone();
        let (bridge_mesh, bridge_worker, bridge_inbox) =
            (mesh.clone(), worker.clone(), inbox.clone());
        actix_rt::spawn(async move {
            while let Some(ev) = events.recv().await {
                use meshml_protocol::Request as Q;
                let (peer, request, channel) = match ev {
                    network::Event::Request {
                        peer,
                        request,
                        channel,
                    } => (peer, request, channel),
                    other => {
                        if m.send(NetEvent(other)).await.is_err() {
                            break;
                        }
                        continue;
                    }
                };
                let (r, c, p) = (r.clone(), c.clone(), promises.clone());
                let (mesh, worker, inbox) = (
                    bridge_mesh.clone(),
                    bridge_worker.clone(),
                    bridge_inbox.clone(),
                );
                match request {
                    Q::Hello(_) | Q::Heartbeat(_) => {
                        let ev = network::Event::Request {
                            peer,
                            request,
                            channel,
                        };
                        if m.send(NetEvent(ev)).await.is_err() {
                            break;
                        }
                    }
                    Q::AssignTask {
                        job,
                        task,
                        term,
                        spec,
                    } => {
                        let key = crate::driver::scheduler::TaskKey::new(job, task);
                        let resp = worker.assign(key, term, &spec);
                        let _ = c.respond(channel, resp).await;
                    }
                    Q::TrainChunks {
                        term,
                        dataset,
                        chunks,
                        spec,
                        ..
                    } => {
                        actix_rt::spawn(async move {
                            let resp = worker.train_chunks(term, &dataset, chunks, &spec).await;
                            let _ = c.respond(channel, resp).await;
                        });
                    }
                    request => {
                        actix_rt::spawn(async move {
                            let resp = answer(&r, &p, &mesh, &inbox, peer, request).await;
                            let _ = c.respond(channel, resp).await;
                        });
                    }
                }
            }
        });
        let formation = raft::Formation {
            promises: formation_promises,
            expect: cfg.expect,
            window: cfg.form_window,
            poll: Duration::from_millis(200),
        };
        let alive_peers = {
            let live = live_members.clone();
            move || {
                let f = live();
                let g: futures::future::BoxFuture<'static, Vec<libp2p::PeerId>> =
                    Box::pin(async move { f.await.into_iter().map(|(p, _)| p).collect() });
                g
            }
        };
        let (fr, fc, alive_f) = (raft.clone(), client.clone(), alive_peers.clone());
        actix_rt::spawn(async move {
            formation.run(&fr, &fc, &alive_f).await;
            formation.watch(&fr, &fc, &alive_f).await;
        });
        for (peer, addr) in bootstrap {
            client.bootstrap(peer, addr).await.map_err(net_err)?;
        }
        let mut addrs = Vec::new();
        for _ in 0..100 {
            addrs = client.listen_addrs().await.map_err(net_err)?;
            if !addrs.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let local_info = MemberInfo {
            peer_id: local.to_string(),
            addrs: addrs.iter().map(ToString::to_string).collect(),
            cores: caps.cores,
            memory_bytes: caps.memory_bytes,
            free_disk_bytes: caps.free_disk_bytes,
            started_ms: caps.started_ms,
        };
        let driving = driver::DriverSlot::default();
        actix_rt::spawn(driver::supervise(
            raft.clone(),
            state.clone(),
            driver::DriverConfig {
                local: local_info,
                alive,
                autopilot: raft::autopilot::Autopilot {
                    remove_after: cfg.remove_after,
                    tick: Duration::from_millis(500),
                },
                datasets: Some(datasets),
                inbox,
                worker: Some(worker.clone()),
            },
            driving.clone(),
        ));
        let (http, http_addrs) = crate::http::start(
            crate::http::ApiState {
                node: local.to_string(),
                cluster: cfg.cluster.clone(),
                client: client.clone(),
                membership: membership.clone(),
                token,
                raft: Some((raft.clone(), state.clone())),
                driving,
                mesh: Some(mesh.clone()),
                worker: Some(worker.clone()),
                max_request_bytes: cfg.max_request_bytes,
            },
            &cfg.http,
        )
        .map_err(|e| NodeError::io(format!("--http {}", cfg.http), e))?;
        let _ = started.send(Ok(NodeInfo {
            peer: local,
            listen: addrs.iter().map(|a| format!("{a}/p2p/{local}")).collect(),
            http: http_addrs,
            cluster: cfg.cluster.clone(),
        }));
        tracing::info!(node = %local, "node running");
        // A dropped handle (the sender gone) stops cleanly too.
        if stop.await.unwrap_or(true) {
            let _ = membership.send(Leave).await;
            let _ = raft.shutdown().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            http.stop(true).await;
        } else {
            http.stop(false).await;
        }
        raft_arbiter.stop();
        net_arbiter.stop();
        Ok::<(), NodeError>(())
    })
}

/// Answers the requests that neither membership nor the worker takes.
async fn answer(
    raft: &raft::ClusterRaft,
    promises: &raft::Promises,
    mesh: &Mesh,
    inbox: &driver::inbox::InboxSlot,
    peer: libp2p::PeerId,
    request: meshml_protocol::Request,
) -> meshml_protocol::Response {
    use meshml_protocol::{ErrorCode, RemoteError, Request as Q, Response};
    let refuse = |code, message: String, retryable| {
        Response::Error(RemoteError {
            code,
            message,
            retryable,
        })
    };
    match request {
        Q::Consensus { kind, payload } => raft::serve_consensus(raft, kind, &payload).await,
        request @ (Q::ClusterInfo | Q::JoinCluster { .. } | Q::PromiseFormation { .. }) => {
            raft::serve_membership(raft, promises, &request)
                .await
                .unwrap_or(Response::Ack)
        }
        Q::Propose { command } => mesh.consensus.serve_propose(&command).await,
        Q::GetChunk {
            id,
            offset,
            max_len,
        } => mesh.chunks.serve_get_chunk(id, offset, max_len).await,
        Q::Replicate {
            owner,
            chunks,
            source,
        } => mesh.chunks.serve_replicate(owner, chunks, &source).await,
        Q::PredictChunk {
            model,
            version,
            chunk,
            offset,
            rows,
            proba,
        } => {
            mesh.batches
                .serve_predict_chunk(&model, version, chunk, offset, rows, proba)
                .await
        }
        Q::TaskUpdate {
            job,
            task,
            state,
            result,
            error,
            ..
        } => {
            let slot = inbox.lock().expect("inbox slot").clone();
            let Some((_, inbox)) = slot else {
                return refuse(ErrorCode::Unavailable, "not the driver".into(), true);
            };
            let outcome = match (state, error) {
                (meshml_protocol::TaskState::Succeeded, _) => {
                    match rmp_serde::from_slice::<crate::job::TaskDone>(&result) {
                        Ok(done) => Ok(done),
                        Err(e) => {
                            return refuse(ErrorCode::BadRequest, format!("bad result: {e}"), false)
                        }
                    }
                }
                (_, Some(e)) => Err(e),
                (s, None) => Err(RemoteError {
                    code: ErrorCode::Internal,
                    message: format!("task reported {s:?} without an error"),
                    retryable: true,
                }),
            };
            let report = driver::board::Report {
                key: crate::driver::scheduler::TaskKey::new(job, task),
                from: raft::node_id(&peer),
                outcome,
            };
            match inbox.try_send(driver::board::Event::TaskReported(Box::new(report))) {
                Ok(()) => Response::Ack,
                Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => refuse(
                    ErrorCode::Unavailable,
                    "the driver's inbox is full".into(),
                    true,
                ),
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                    refuse(ErrorCode::Unavailable, "not the driver".into(), true)
                }
            }
        }
        other => refuse(
            ErrorCode::BadRequest,
            format!("this node does not serve {}", request_name(&other)),
            false,
        ),
    }
}

fn request_name(r: &meshml_protocol::Request) -> String {
    let s = format!("{r:?}");
    s.split([' ', '(', '{'])
        .next()
        .unwrap_or("that")
        .to_string()
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_up_lines_give_the_node_s_addresses() {
        let lines = [
            "node 12D3KooWAbc (cluster 'meshml')",
            "listening on /ip4/127.0.0.1/tcp/7000/p2p/12D3KooWAbc",
            "listening on /ip4/10.0.0.2/tcp/7000/p2p/12D3KooWAbc",
            "http api on http://127.0.0.1:7070",
            "stopped",
        ]
        .map(String::from);
        let s = read_startup(lines).unwrap();
        assert_eq!(s.peer, "12D3KooWAbc");
        assert_eq!(s.listen, "/ip4/127.0.0.1/tcp/7000/p2p/12D3KooWAbc");
        assert_eq!(s.http, "http://127.0.0.1:7070");
        assert!(read_startup(["node x".to_string()]).is_none());
    }

    #[test]
    fn capabilities_are_read_from_the_machine() {
        let c = capabilities(Path::new("/"));
        assert!(c.cores >= 1);
        assert!(c.free_disk_bytes > 0);
    }
}
