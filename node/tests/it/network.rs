//! Two swarms in one process on 127.0.0.1: request-response, pieces of a large object,
//! and the codec's cap on a real connection.

use std::time::Duration;

use meshml_node::network::{self, Client, Event, NetworkConfig};
use meshml_protocol::{
    ChunkId, ErrorCode, Heartbeat, NodeId, Piece, RemoteError, Request, Response,
};
use tokio::sync::mpsc;

async fn node() -> (Client, mpsc::Receiver<Event>, libp2p::Multiaddr) {
    let key = libp2p::identity::Keypair::generate_ed25519();
    let cfg = NetworkConfig {
        mdns: false,
        ..NetworkConfig::default()
    };
    let (client, mut events, event_loop) = network::new(key, cfg).unwrap();
    tokio::spawn(event_loop.run());
    client
        .listen("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .await
        .unwrap();
    let addr = loop {
        if let Some(Event::Listening(a)) = events.recv().await {
            break a;
        }
    };
    (client, events, addr)
}

/// Serves one object by pieces and answers heartbeats, until the events end.
async fn serve(client: Client, mut events: mpsc::Receiver<Event>, object: Vec<u8>) {
    let id = ChunkId::from_bytes(*blake3::hash(&object).as_bytes());
    while let Some(ev) = events.recv().await {
        if let Event::Request {
            request, channel, ..
        } = ev
        {
            let response = match request {
                Request::Heartbeat(_) => Response::Ack,
                Request::GetChunk {
                    id: want,
                    offset,
                    max_len,
                } if want == id => {
                    let start = (offset as usize).min(object.len());
                    let end = (start + max_len as usize).min(object.len());
                    Response::Piece(Piece {
                        offset,
                        total_len: object.len() as u64,
                        bytes: object[start..end].to_vec(),
                    })
                }
                _ => Response::Error(RemoteError {
                    code: ErrorCode::NotFound,
                    message: "no such chunk".into(),
                    retryable: false,
                }),
            };
            client.respond(channel, response).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_response_and_a_9_mib_object_in_pieces() {
    let (server, server_events, server_addr) = node().await;
    let object: Vec<u8> = (0..9 * 1024 * 1024 + 17)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let id = ChunkId::from_bytes(*blake3::hash(&object).as_bytes());
    let server_id = server.local_peer_id();
    tokio::spawn(serve(server.clone(), server_events, object.clone()));

    let (client, _events, _) = node().await;
    client
        .dial(format!("{server_addr}/p2p/{server_id}").parse().unwrap())
        .await
        .unwrap();
    let hb = Request::Heartbeat(Heartbeat {
        node: NodeId::new("c"),
        seq: 1,
        running_tasks: 0,
    });
    assert_eq!(client.request(server_id, hb).await.unwrap(), Response::Ack);

    let got = tokio::time::timeout(Duration::from_secs(60), client.fetch_chunk(server_id, id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), object.len());
    assert!(
        got == object,
        "9 MiB arrived intact in three pieces of at most 4 MiB"
    );

    let missing = ChunkId::from_bytes([7; 32]);
    let e = client
        .fetch_chunk(server_id, missing)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("NotFound: no such chunk"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_over_the_frame_cap_fails_the_request_not_the_node() {
    let (server, mut server_events, server_addr) = node().await;
    let server_id = server.local_peer_id();
    let s = server.clone();
    tokio::spawn(async move {
        while let Some(ev) = server_events.recv().await {
            if let Event::Request {
                channel, request, ..
            } = ev
            {
                let response = match request {
                    Request::Heartbeat(_) => Response::Ack,
                    // 5 MiB of payload: over the 4 MiB frame cap, so the codec refuses it.
                    _ => Response::Piece(Piece {
                        offset: 0,
                        total_len: 5 << 20,
                        bytes: vec![1; 5 << 20],
                    }),
                };
                let _ = s.respond(channel, response).await;
            }
        }
    });
    let (client, _events, _) = node().await;
    client
        .dial(format!("{server_addr}/p2p/{server_id}").parse().unwrap())
        .await
        .unwrap();
    let req = Request::GetChunk {
        id: ChunkId::from_bytes([1; 32]),
        offset: 0,
        max_len: u32::MAX,
    };
    let e = tokio::time::timeout(Duration::from_secs(40), client.request(server_id, req))
        .await
        .unwrap();
    assert!(e.is_err(), "{e:?}");
    // Both ends keep working.
    let hb = Request::Heartbeat(Heartbeat {
        node: NodeId::new("c"),
        seq: 2,
        running_tasks: 0,
    });
    assert!(client.request(server_id, hb).await.is_ok());
}
