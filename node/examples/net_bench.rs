//! Network micro-benchmarks between two nodes in one process on 127.0.0.1 (tcp + noise +
//! yamux + request-response with the MessagePack codec):
//!
//! - round trip of a small request (heartbeat -> ack), sequential: median and p99;
//! - throughput of 1 MiB responses with 8 requests in flight;
//! - the same two over a plain tokio TCP socket in the same process, as the baseline
//!   (a 64-byte ping-pong, and 1 MiB messages over one connection).
//!
//! `cargo run --release -p meshml-node --example net_bench -- [ROUNDS]`; one JSON line per
//! figure.

// A benchmark binary reports on stdout.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use meshml_node::network::{self, Client, Event, NetworkConfig};
use meshml_protocol::{ChunkId, Heartbeat, NodeId, Piece, Request, Response};

async fn node() -> (
    Client,
    tokio::sync::mpsc::Receiver<Event>,
    libp2p::Multiaddr,
) {
    let key = libp2p::identity::Keypair::generate_ed25519();
    let cfg = NetworkConfig {
        mdns: false,
        ..NetworkConfig::default()
    };
    let (client, mut events, event_loop) = network::new(key, cfg).expect("network");
    tokio::spawn(event_loop.run());
    client
        .listen("/ip4/127.0.0.1/tcp/0".parse().expect("addr"))
        .await
        .expect("listen");
    let addr = loop {
        if let Some(Event::Listening(a)) = events.recv().await {
            break a;
        }
    };
    (client, events, addr)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// Plain TCP: (p50, p99) of a 64-byte ping-pong in µs, and MiB/s of 512 x 1 MiB.
async fn tcp_baseline() -> (f64, f64, f64) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.expect("accept");
        s.set_nodelay(true).expect("nodelay");
        let mut small = [0u8; 64];
        loop {
            // 'p' = ping (echo 64 bytes), 'b' = send 1 MiB back.
            if s.read_exact(&mut small).await.is_err() {
                return;
            }
            if small[0] == b'b' {
                let big = vec![0x5au8; 1 << 20];
                if s.write_all(&big).await.is_err() {
                    return;
                }
            } else if s.write_all(&small).await.is_err() {
                return;
            }
        }
    });
    let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
    c.set_nodelay(true).expect("nodelay");
    let mut buf = [b'p'; 64];
    let mut lat = Vec::with_capacity(5000);
    for i in 0..5500 {
        let t = Instant::now();
        c.write_all(&buf).await.expect("write");
        c.read_exact(&mut buf).await.expect("read");
        if i >= 500 {
            lat.push(t.elapsed());
        }
    }
    lat.sort();
    let mut big = vec![0u8; 1 << 20];
    let t = Instant::now();
    for _ in 0..512 {
        c.write_all(&[b'b'; 64]).await.expect("write");
        c.read_exact(&mut big).await.expect("read");
    }
    let mibs = 512.0 / t.elapsed().as_secs_f64();
    (pct(&lat, 0.5), pct(&lat, 0.99), mibs)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let (server, mut server_events, addr) = node().await;
    let server_id = server.local_peer_id();
    let object = vec![0x5au8; 1 << 20];
    let s = server.clone();
    tokio::spawn(async move {
        while let Some(ev) = server_events.recv().await {
            if let Event::Request {
                request, channel, ..
            } = ev
            {
                let response = match request {
                    Request::GetChunk { offset, .. } => Response::Piece(Piece {
                        offset,
                        total_len: object.len() as u64,
                        bytes: object.clone(),
                    }),
                    _ => Response::Ack,
                };
                let _ = s.respond(channel, response).await;
            }
        }
    });
    let (client, _events, _) = node().await;
    client
        .dial(format!("{addr}/p2p/{server_id}").parse().expect("addr"))
        .await
        .expect("dial");
    let hb = || {
        Request::Heartbeat(Heartbeat {
            node: NodeId::new("bench"),
            seq: 0,
            running_tasks: 0,
        })
    };
    for _ in 0..500 {
        client.request(server_id, hb()).await.expect("warm-up");
    }
    for round in 0..rounds {
        let mut lat = Vec::with_capacity(5000);
        for _ in 0..5000 {
            let t = Instant::now();
            client.request(server_id, hb()).await.expect("request");
            lat.push(t.elapsed());
        }
        lat.sort();
        println!(
            "{{\"bench\":\"rtt_small\",\"round\":{round},\"n\":5000,\"p50_us\":{:.1},\"p99_us\":{:.1}}}",
            pct(&lat, 0.5),
            pct(&lat, 0.99)
        );

        let total = 512usize;
        let in_flight = 8usize;
        let t = Instant::now();
        let mut next = 0usize;
        let mut running = tokio::task::JoinSet::new();
        let mut bytes = 0usize;
        while next < total || !running.is_empty() {
            while next < total && running.len() < in_flight {
                let c = client.clone();
                let req = Request::GetChunk {
                    id: ChunkId::from_bytes([0; 32]),
                    offset: 0,
                    max_len: 1 << 20,
                };
                running.spawn(async move { c.request(server_id, req).await });
                next += 1;
            }
            if let Some(Ok(Ok(Response::Piece(p)))) = running.join_next().await {
                bytes += p.bytes.len();
            }
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{{\"bench\":\"throughput_1mib\",\"round\":{round},\"requests\":{total},\"in_flight\":{in_flight},\"mib_per_s\":{:.1}}}",
            bytes as f64 / secs / 1048576.0
        );
        let (p50, p99, mibs) = tcp_baseline().await;
        println!(
            "{{\"bench\":\"tcp_baseline\",\"round\":{round},\"p50_us\":{p50:.1},\"p99_us\":{p99:.1},\"mib_per_s\":{mibs:.1}}}"
        );
    }
}
