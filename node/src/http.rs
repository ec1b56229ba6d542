//! The node's HTTP API (actix-web): health and status for now.
//!
//! Binds 127.0.0.1 by default; bound to any other address it requires a bearer token.

use std::net::SocketAddr;

use crate::membership::{GetPeers, Membership};
use crate::network::Client;
use actix::Addr;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// This node's id.
    pub node: String,
    /// Cluster name.
    pub cluster: String,
    /// Network handle.
    pub client: Client,
    /// The membership actor.
    pub membership: Addr<Membership>,
    /// Required bearer token, if any.
    pub token: Option<String>,
    /// The Raft group and its state machine.
    pub raft: Option<(
        crate::cluster::ClusterRaft,
        meshml_storage::raft::StateMachine,
    )>,
    /// The driver actor running here, if any.
    pub driving: crate::cluster::driver::DriverSlot,
    /// The mesh services (datasets, jobs, models).
    pub mesh: Option<crate::mesh::Mesh>,
    /// The worker, for its counters.
    pub worker: Option<std::sync::Arc<crate::worker::Worker>>,
    /// Largest prediction request body.
    pub max_request_bytes: usize,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("node", &self.node)
            .finish()
    }
}

use meshml_client::api::{DriverView, ErrorBody, ExecutionView, Health, MemberView, RaftView};
pub use meshml_client::api::{StatusView, WorkerView};

/// The wire view of the cluster as this node's Raft group reports it.
fn raft_view(c: crate::cluster::ClusterView) -> RaftView {
    RaftView {
        node_id: c.node_id,
        role: c.role,
        term: c.term,
        driver: c.driver,
        voters: c.voters,
        learners: c.learners,
        applied: c.applied,
        last_log: c.last_log,
        members: c
            .members
            .into_iter()
            .map(|m| MemberView {
                peer_id: m.peer_id,
                addrs: m.addrs,
                cores: m.cores,
                memory_bytes: m.memory_bytes,
                free_disk_bytes: m.free_disk_bytes,
            })
            .collect(),
        driving: c.driving.map(|d| DriverView {
            term: d.term,
            since_ms: d.since_ms,
        }),
    }
}

/// Reads a bearer token file (the token is its trimmed contents).
pub fn read_token_file(path: &std::path::Path) -> Result<String, crate::NodeError> {
    Ok(meshml_client::read_token_file(path)?)
}

/// A JSON error response.
pub fn error(status: actix_web::http::StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody {
        error: message.to_string(),
    })
}

/// Whether the request carries the token the API requires (if any).
pub fn authorized(req: &HttpRequest, state: &ApiState) -> bool {
    match &state.token {
        None => true,
        Some(t) => req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| given == t),
    }
}

async fn health(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    if !authorized(&req, &state) {
        return error(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        );
    }
    HttpResponse::Ok().json(Health {
        status: "ok".into(),
        node: state.node.clone(),
    })
}

async fn status(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    if !authorized(&req, &state) {
        return error(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        );
    }
    let peers = match state.membership.send(GetPeers).await {
        Ok(p) => p,
        Err(e) => {
            return error(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                &e.to_string(),
            )
        }
    };
    let listen = state
        .client
        .listen_addrs()
        .await
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect();
    HttpResponse::Ok().json(StatusView {
        node: state.node.clone(),
        cluster: state.cluster.clone(),
        protocol_version: meshml_protocol::PROTOCOL_VERSION,
        version: env!("CARGO_PKG_VERSION").to_string(),
        listen,
        peers,
        raft: state.raft.as_ref().map(|(r, sm)| {
            let driving = state.driving.lock().expect("driver slot").clone();
            raft_view(crate::cluster::view(r, sm, driving))
        }),
        worker: state.worker.as_ref().map(|w| WorkerView {
            slots: w.slots(),
            executed: w
                .executions()
                .into_iter()
                .map(|e| ExecutionView {
                    job: e.job,
                    task: e.task,
                    runs: e.runs,
                })
                .collect(),
        }),
        scrub: state.mesh.as_ref().map(|m| m.scrub_stats().view()),
    })
}

async fn not_found() -> HttpResponse {
    error(
        actix_web::http::StatusCode::NOT_FOUND,
        "no such route; see /v1/status, /v1/health, /v1/datasets, /v1/jobs and /v1/models",
    )
}

/// Starts the API server; returns its handle and the bound addresses.
pub fn start(
    state: ApiState,
    addr: &str,
) -> std::io::Result<(actix_web::dev::ServerHandle, Vec<SocketAddr>)> {
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/v1/health", web::get().to(health))
            .route("/v1/status", web::get().to(status))
            .configure(crate::api::configure)
            .default_service(web::to(not_found))
    })
    .workers(1)
    .disable_signals()
    .bind(addr)?;
    let addrs = server.addrs();
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok((handle, addrs))
}
