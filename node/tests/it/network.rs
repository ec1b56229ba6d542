//! Two swarms in one process on 127.0.0.1: request-response, pieces of a large object,
//! and the codec's cap on a real connection.

use std::time::Duration;

use meshml_node::network::{self, Client, Event, NetworkConfig};
use meshml_protocol::{
    ChunkId, ErrorCode, Heartbeat, NodeId, Piece, RemoteError, Request, Response,
};
use tokio::sync::mpsc;

async fn node() -> (Client, mpsc::Receiver<Event>, libp2p::Multiaddr) {
    node_with(NetworkConfig::default()).await
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

/// A meshml network on 127.0.0.1 with `config` (no mDNS).
async fn node_with(config: NetworkConfig) -> (Client, mpsc::Receiver<Event>, libp2p::Multiaddr) {
    let key = libp2p::identity::Keypair::generate_ed25519();
    let (client, mut events, event_loop) = network::new(
        key,
        NetworkConfig {
            mdns: false,
            ..config
        },
    )
    .unwrap();
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

/// Another libp2p application's swarm: identify with its own agent name (or none at all),
/// and ping.
#[derive(libp2p::swarm::NetworkBehaviour)]
struct Foreign {
    identify: libp2p::swarm::behaviour::toggle::Toggle<libp2p::identify::Behaviour>,
    ping: libp2p::ping::Behaviour,
}

fn foreign_swarm(agent: Option<&str>) -> libp2p::Swarm<Foreign> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|key| Foreign {
            identify: agent
                .map(|a| {
                    libp2p::identify::Behaviour::new(
                        libp2p::identify::Config::new("/ipfs/0.1.0".into(), key.public())
                            .with_agent_version(a.into()),
                    )
                })
                .into(),
            ping: libp2p::ping::Behaviour::default(),
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build()
}

/// What the foreign swarm saw within `limit`: connections opened, closed, and failed dials.
async fn watch(swarm: &mut libp2p::Swarm<Foreign>, limit: Duration) -> (usize, usize, usize) {
    use futures::StreamExt;
    use libp2p::swarm::SwarmEvent;
    let (mut opened, mut closed, mut failed) = (0, 0, 0);
    let end = tokio::time::Instant::now() + limit;
    while let Ok(ev) = tokio::time::timeout_at(end, swarm.select_next_some()).await {
        match ev {
            SwarmEvent::ConnectionEstablished { .. } => opened += 1,
            SwarmEvent::ConnectionClosed { .. } => closed += 1,
            SwarmEvent::OutgoingConnectionError { .. } => failed += 1,
            _ => {}
        }
        if opened > 0 && opened == closed + failed {
            break;
        }
    }
    (opened, closed, failed)
}

/// Whether the node reported `peer` to the node's actors (connected or identified).
fn reported(events: &mut mpsc::Receiver<Event>, peer: libp2p::PeerId) -> bool {
    let mut seen = false;
    while let Ok(ev) = events.try_recv() {
        match ev {
            Event::Connected(p) | Event::Disconnected(p) => seen |= p == peer,
            Event::Identified { peer: p, .. } => seen |= p == peer,
            Event::Request { peer: p, .. } => seen |= p == peer,
            _ => {}
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_libp2p_application_is_closed_refused_and_never_reported() {
    let (_node, mut events, addr) = node_with(NetworkConfig::default()).await;
    let mut foreign = foreign_swarm(Some("js-libp2p/2.8.0 UserAgent=node"));
    let foreign_id = *foreign.local_peer_id();
    foreign.dial(addr.clone()).unwrap();
    // Identify shows another application: the connection is closed at once.
    let (opened, closed, _) = watch(&mut foreign, Duration::from_secs(10)).await;
    assert_eq!((opened, closed), (1, 1), "connected, then closed");
    // Refused for a while: a second dial gets nowhere.
    foreign.dial(addr.clone()).unwrap();
    let (opened, closed, failed) = watch(&mut foreign, Duration::from_secs(5)).await;
    assert_eq!(
        opened, closed,
        "{opened} opened, {closed} closed, {failed} failed"
    );
    assert!(
        !reported(&mut events, foreign_id),
        "the node never lists it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_identifies_is_dropped() {
    let (_node, mut events, addr) = node_with(NetworkConfig {
        identify_timeout: Duration::from_millis(800),
        ..NetworkConfig::default()
    })
    .await;
    let mut silent = foreign_swarm(None);
    let silent_id = *silent.local_peer_id();
    silent.dial(addr).unwrap();
    let started = std::time::Instant::now();
    let (opened, closed, _) = watch(&mut silent, Duration::from_secs(10)).await;
    assert_eq!((opened, closed), (1, 1), "connected, then dropped");
    // Dropped by the node after its identify timeout, not by the silent peer's idle timeout
    // (two minutes).
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!reported(&mut events, silent_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_of_another_cluster_refuse_each_other_and_one_cluster_connects() {
    let (lab, mut lab_events, lab_addr) = node_with(NetworkConfig {
        cluster: "lab".into(),
        ..NetworkConfig::default()
    })
    .await;
    let (other, mut other_events, _) = node_with(NetworkConfig {
        cluster: "other".into(),
        ..NetworkConfig::default()
    })
    .await;
    let target: libp2p::Multiaddr = format!("{lab_addr}/p2p/{}", lab.local_peer_id())
        .parse()
        .unwrap();
    let _ = other.dial(target.clone()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!reported(&mut lab_events, other.local_peer_id()));
    assert!(!reported(&mut other_events, lab.local_peer_id()));
    // The positive control: a node of the same cluster is reported connected.
    let (same, mut same_events, _) = node_with(NetworkConfig {
        cluster: "lab".into(),
        ..NetworkConfig::default()
    })
    .await;
    same.dial(target).await.unwrap();
    let lab_id = lab.local_peer_id();
    let connected = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match same_events.recv().await {
                Some(Event::Connected(p)) if p == lab_id => return true,
                Some(_) => {}
                None => return false,
            }
        }
    })
    .await;
    assert_eq!(connected, Ok(true));
}
