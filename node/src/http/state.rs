//! What the HTTP handlers share: the node's services, and the bearer-token check.

use actix::Addr;
use actix_web::{HttpRequest, HttpResponse};
use meshml_client::api::ErrorBody;

use crate::membership::Membership;
use crate::network::Client;

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
    pub raft: Option<(crate::raft::ClusterRaft, meshml_storage::raft::StateMachine)>,
    /// The driver actor running here, if any.
    pub driving: crate::driver::DriverSlot,
    /// The mesh services (datasets, jobs, models).
    pub mesh: Option<crate::mesh::Mesh>,
    /// The worker, for its counters.
    pub worker: Option<std::sync::Arc<crate::driver::worker::Worker>>,
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
