//! Raft RPCs over the node's libp2p request-response channel.

use libp2p::PeerId;
use meshml_protocol::{ConsensusKind, Request, Response};
use meshml_storage::raft::TypeConfig;
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::network::Client;

/// Makes a connection per target; the target's peer id is its `BasicNode.addr`.
#[derive(Debug, Clone)]
pub struct Network {
    client: Client,
}

impl Network {
    /// Raft over `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// A connection to one member.
#[derive(Debug)]
pub struct Connection {
    client: Client,
    target: u64,
    peer: Option<PeerId>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Connection {
        Connection {
            client: self.client.clone(),
            target,
            peer: node.addr.parse().ok(),
        }
    }
}

/// Bytes of entries one append may carry: a message is at most
/// [`meshml_protocol::MAX_FRAME`], with room for the request around them.
pub const MAX_APPEND_BYTES: u64 = meshml_protocol::MAX_FRAME as u64 - (256 << 10);

#[derive(Debug)]
struct Io(String);

impl std::fmt::Display for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Io {}

impl Connection {
    async fn call<Q: Serialize, P: DeserializeOwned, E: std::error::Error + DeserializeOwned>(
        &self,
        kind: ConsensusKind,
        rpc: &Q,
    ) -> Result<P, RPCError<u64, BasicNode, E>> {
        let Some(peer) = self.peer else {
            return Err(RPCError::Unreachable(Unreachable::new(&Io(format!(
                "member {} has no peer id",
                self.target
            )))));
        };
        let payload =
            rmp_serde::to_vec_named(rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        match self
            .client
            .request(peer, Request::Consensus { kind, payload })
            .await
        {
            Ok(Response::Consensus { payload }) => {
                let r: Result<P, E> = rmp_serde::from_slice(&payload)
                    .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(other) => Err(RPCError::Network(NetworkError::new(&Io(format!(
                "unexpected answer: {other:?}"
            ))))),
            Err(e) => Err(RPCError::Unreachable(Unreachable::new(&Io(e.to_string())))),
        }
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        // Entries that do not fit one message (a follower catching up on many large
        // entries: manifests, checkpoints) go in smaller batches: openraft retries at once
        // with the number of entries hinted.
        let n = rpc.entries.len() as u64;
        if n > 1 {
            let size = rmp_serde::to_vec_named(&rpc)
                .map_err(|e| RPCError::Network(NetworkError::new(&e)))?
                .len() as u64;
            if size > MAX_APPEND_BYTES {
                let hint = (n * MAX_APPEND_BYTES / size).clamp(1, n - 1);
                return Err(RPCError::PayloadTooLarge(
                    PayloadTooLarge::new_entries_hint(hint),
                ));
            }
        }
        self.call(ConsensusKind::AppendEntries, &rpc).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.call(ConsensusKind::InstallSnapshot, &rpc).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(ConsensusKind::Vote, &rpc).await
    }
}
