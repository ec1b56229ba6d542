//! Real `meshml node` processes on 127.0.0.1: discovery through one bootstrap address,
//! failure detection, private-network keys, hostile raw TCP input, graceful shutdown.

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use crate::common::{alive, sorted, start, start_with_timeout, status, wait_for, TIMEOUT_MS};

#[test]
fn three_nodes_from_one_bootstrap_address_then_one_is_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let a = start(&tmp.path().join("a"), &[]);
    let b = start(&tmp.path().join("b"), &["--bootstrap", &a.addr]);
    let c = start(&tmp.path().join("c"), &["--bootstrap", &a.addr]);
    let everyone = [&a, &b, &c];
    let found = wait_for(Duration::from_secs(20), || {
        everyone.iter().all(|n| {
            let others = sorted(
                everyone
                    .iter()
                    .filter(|m| m.id != n.id)
                    .map(|m| m.id.clone())
                    .collect(),
            );
            alive(n) == others
        })
    });
    assert!(
        found.is_some(),
        "b and c only know a's address, yet all three find each other"
    );
    // Capabilities travel with identify.
    let st = status(&c);
    let peer_a = st["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == a.id.as_str())
        .unwrap();
    assert!(peer_a["cores"].as_u64().unwrap() >= 1);
    assert!(peer_a["connected"].as_bool().unwrap());

    // SIGKILL b: a and c report it gone within the peer timeout (plus one heartbeat tick).
    let b_id = b.id.clone();
    drop(b);
    let limit = Duration::from_millis(TIMEOUT_MS.parse::<u64>().unwrap() + 1500);
    let took = wait_for(limit, || {
        !alive(&a).contains(&b_id) && !alive(&c).contains(&b_id)
    });
    assert!(took.is_some(), "b reported gone within {limit:?}");
    assert_eq!(alive(&a), vec![c.id.clone()]);
}

#[test]
fn a_peer_gone_longer_than_forget_after_leaves_the_peer_table() {
    let tmp = tempfile::tempdir().unwrap();
    let forget = ["--forget-after-ms", "2000"];
    let a = start(&tmp.path().join("a"), &forget);
    let b = start(
        &tmp.path().join("b"),
        &["--bootstrap", &a.addr, "--forget-after-ms", "2000"],
    );
    let b_id = b.id.clone();
    assert!(wait_for(Duration::from_secs(20), || alive(&a) == [b_id.clone()]).is_some());
    let listed = |n| {
        status(n)["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == b_id.as_str())
    };
    drop(b);
    // Gone after the peer timeout, still listed (as gone) for a while...
    assert!(wait_for(Duration::from_secs(5), || !alive(&a).contains(&b_id)).is_some());
    assert!(listed(&a), "a gone peer stays listed until forget-after");
    // ...then forgotten.
    assert!(
        wait_for(Duration::from_secs(8), || !listed(&a)).is_some(),
        "{}",
        status(&a)["peers"]
    );
}

#[test]
fn private_network_keys_keep_other_nodes_out() {
    let tmp = tempfile::tempdir().unwrap();
    let key1 = tmp.path().join("k1");
    let key2 = tmp.path().join("k2");
    for k in [&key1, &key2] {
        let o = Command::new(env!("CARGO_BIN_EXE_meshml"))
            .args(["secret", "new"])
            .output()
            .unwrap();
        std::fs::write(k, o.stdout).unwrap();
    }
    let k1 = key1.to_str().unwrap();
    let a = start(&tmp.path().join("a"), &["--secret-file", k1]);
    let b = start(
        &tmp.path().join("b"),
        &["--secret-file", k1, "--bootstrap", &a.addr],
    );
    assert!(
        wait_for(Duration::from_secs(15), || alive(&a) == vec![b.id.clone()]).is_some(),
        "same key: connected"
    );
    let wrong = start(
        &tmp.path().join("w"),
        &[
            "--secret-file",
            key2.to_str().unwrap(),
            "--bootstrap",
            &a.addr,
        ],
    );
    let open = start(&tmp.path().join("o"), &["--bootstrap", &a.addr]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        alive(&a),
        vec![b.id.clone()],
        "nodes with another key or none are refused"
    );
    assert!(alive(&wrong).is_empty());
    assert!(alive(&open).is_empty());
}

#[test]
fn raw_tcp_garbage_and_oversized_frames_do_not_hurt_a_node() {
    let tmp = tempfile::tempdir().unwrap();
    let a = start(&tmp.path().join("a"), &[]);
    let b = start(&tmp.path().join("b"), &["--bootstrap", &a.addr]);
    assert!(wait_for(Duration::from_secs(15), || alive(&a) == vec![b.id.clone()]).is_some());
    // /ip4/127.0.0.1/tcp/PORT/p2p/ID -> 127.0.0.1:PORT
    let parts: Vec<&str> = a.addr.split('/').collect();
    let sock = format!("{}:{}", parts[2], parts[4]);
    let payloads: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![0xff; 64 * 1024],
        // A multistream header, then a frame claiming 4 GiB.
        [
            b"\x13/multistream/1.0.0\n".as_slice(),
            &[0xff, 0xff, 0xff, 0xff],
            &[0u8; 1024],
        ]
        .concat(),
        (0..=255u8).cycle().take(1 << 20).collect(),
    ];
    for p in &payloads {
        if let Ok(mut s) = std::net::TcpStream::connect(&sock) {
            let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
            let _ = s.write_all(p);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let (code, body) = meshml_node::status::http_get(&a.http, "/v1/health", None).unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        alive(&a),
        vec![b.id.clone()],
        "the real peer is still there"
    );
}

#[test]
fn sigterm_stops_a_node_cleanly_and_peers_see_it_leave_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    // A long peer timeout, so only the announcement can explain a quick "gone".
    let a = start_with_timeout(&tmp.path().join("a"), "20000", &[]);
    let mut b = start(&tmp.path().join("b"), &["--bootstrap", &a.addr]);
    assert!(wait_for(Duration::from_secs(15), || alive(&a) == vec![b.id.clone()]).is_some());
    let pid = b.child.id();
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let status = b.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let last = b.lines.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(last, "stopped");
    // Announced departure: well before a's 20 s peer timeout.
    assert!(wait_for(Duration::from_secs(5), || alive(&a).is_empty()).is_some());
    // Its identity survives a restart.
    let b2 = start(&tmp.path().join("b"), &["--bootstrap", &a.addr]);
    assert_eq!(b2.id, b.id);
}

#[test]
fn the_http_api_needs_a_token_off_loopback_and_checks_it() {
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_meshml"))
        .args(["node", "--data-dir"])
        .arg(tmp.path().join("x"))
        .args([
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--http",
            "0.0.0.0:0",
            "--no-mdns",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("give --http-token-file"));

    let token = tmp.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let a = start(
        &tmp.path().join("a"),
        &["--http-token-file", token.to_str().unwrap()],
    );
    let (code, _) = meshml_node::status::http_get(&a.http, "/v1/status", None).unwrap();
    assert_eq!(code, 401);
    let (code, _) = meshml_node::status::http_get(&a.http, "/v1/status", Some("wrong")).unwrap();
    assert_eq!(code, 401);
    let (code, body) =
        meshml_node::status::http_get(&a.http, "/v1/status", Some("s3cret")).unwrap();
    assert_eq!(code, 200, "{body}");
    let o = Command::new(env!("CARGO_BIN_EXE_meshml"))
        .args([
            "status",
            "--node",
            &a.http,
            "--token-file",
            token.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&a.id),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (code, _) = meshml_node::status::http_get(&a.http, "/v1/nope", Some("s3cret")).unwrap();
    assert_eq!(code, 404);
}
