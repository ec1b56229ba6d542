//! The node's HTTP API (actix-web): the server, health and status here; the mesh routes
//! (datasets, jobs, models, predictions) in [`routes`]; what the handlers share, and the
//! bearer-token check, in [`state`].
//!
//! Binds 127.0.0.1 by default; bound to any other address it requires a bearer token.

pub mod openapi;
pub mod routes;
pub mod state;

use std::net::SocketAddr;

use crate::membership::GetPeers;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

use state::{authorized, error};
pub use state::{read_token_file, ApiState};

use meshml_client::api::Health;
pub use meshml_client::api::{StatusView, WorkerView};

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
    let store = match &state.mesh {
        Some(m) => m
            .chunks
            .with_store(|s| {
                let chunks = s.chunks().ids()?.len() as u64;
                let owners = s.owners()?.into_iter().map(|(o, (n, _))| (o, n)).collect();
                Ok(meshml_client::api::StoreView { chunks, owners })
            })
            .await
            .ok(),
        None => None,
    };
    HttpResponse::Ok().json(StatusView {
        node: state.node.clone(),
        cluster: state.cluster.clone(),
        protocol_version: meshml_protocol::PROTOCOL_VERSION,
        version: env!("CARGO_PKG_VERSION").to_string(),
        listen,
        peers,
        raft: state.raft.as_ref().map(|(r, sm)| {
            let driving = state.driving.lock().expect("driver slot").clone();
            crate::raft::view(r, sm, driving)
        }),
        worker: state.worker.as_ref().map(|w| WorkerView {
            slots: w.slots(),
            executed: w.executions(),
        }),
        scrub: state.mesh.as_ref().map(|m| m.scrub.view()),
        store,
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
            // A query or path that does not parse is refused with the JSON error body
            // every other refusal has (actix answers text/plain by default).
            .app_data(web::QueryConfig::default().error_handler(|e, req| {
                let why = match &e {
                    actix_web::error::QueryPayloadError::Deserialize(d) => d.to_string(),
                    other => other.to_string(),
                };
                let message = format!("bad query '{}': {why}", req.query_string());
                actix_web::error::InternalError::from_response(
                    e,
                    error(actix_web::http::StatusCode::BAD_REQUEST, &message),
                )
                .into()
            }))
            .app_data(web::PathConfig::default().error_handler(|e, _| {
                let message = format!("bad path: {e}");
                actix_web::error::InternalError::from_response(
                    e,
                    error(actix_web::http::StatusCode::NOT_FOUND, &message),
                )
                .into()
            }))
            .configure(routes::configure)
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
