//! Driver election with real `meshml node` processes on 127.0.0.1: a one-node mesh is its
//! own driver; three nodes elect exactly one and elect another when it is killed.

// Tests report failover times on stderr.
#![allow(clippy::print_stderr)]

use crate::common;

use std::time::{Duration, Instant};

use crate::common::{agreed_driver, raft, start, status, three_node_cluster, wait_for, Node};
use meshml_protocol::{ErrorCode, JobId, Request, Response, TaskId};

#[test]
fn a_one_node_mesh_is_its_own_driver() {
    let tmp = tempfile::tempdir().unwrap();
    let a = start(&tmp.path().join("a"), &[]);
    assert!(wait_for(Duration::from_secs(15), || agreed_driver(&[&a])
        .is_some_and(|d| d.0 == a.id))
    .is_some());
    let voters = status(&a)["raft"]["voters"].as_array().unwrap().len();
    assert_eq!(voters, 1);
}

#[test]
fn three_nodes_elect_one_driver_and_replace_it_when_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, driver, term) = three_node_cluster(tmp.path(), &[]);
    for n in &nodes {
        assert_eq!(status(n)["raft"]["voters"].as_array().unwrap().len(), 3);
    }
    // The driver actor runs on the leader only, in the leader's term.
    assert!(
        wait_for(Duration::from_secs(5), || driving(&nodes)
            == vec![(driver.clone(), term)])
        .is_some(),
        "driver actors: {:?}",
        driving(&nodes)
    );
    // The driver records every member and what it offers in the replicated state.
    let recorded = wait_for(Duration::from_secs(15), || {
        nodes.iter().all(|n| {
            let m = status(n)["raft"]["members"].clone();
            m.as_array().is_some_and(|a| {
                a.len() == 3 && a.iter().all(|x| x["cores"].as_u64().unwrap_or(0) >= 1)
            })
        })
    });
    assert!(
        recorded.is_some(),
        "members in the replicated state: {}",
        status(&nodes[0])["raft"]["members"]
    );

    // SIGKILL the driver; the other two elect a new one in a later term.
    let idx = nodes.iter().position(|n| n.id == driver).unwrap();
    drop(nodes.remove(idx));
    let t = Instant::now();
    let mut second = None;
    assert!(
        wait_for(Duration::from_secs(20), || {
            second = agreed_driver(&nodes.iter().collect::<Vec<_>>());
            second.as_ref().is_some_and(|s| s.0 != driver)
        })
        .is_some(),
        "a new driver after the old one was killed"
    );
    let (new_driver, new_term) = second.unwrap();
    assert!(new_term > term, "term {new_term} after {term}");
    assert_ne!(new_driver, driver);
    eprintln!(
        "failover: new driver after {:?} (term {term} -> {new_term})",
        t.elapsed()
    );
    assert!(
        wait_for(Duration::from_secs(5), || driving(&nodes)
            == vec![(new_driver.clone(), new_term)])
        .is_some(),
        "driver actors after failover: {:?}",
        driving(&nodes)
    );
    // Workers refuse assignments from the old driver's term, over the real network.
    for n in &nodes {
        match assign(n, term) {
            Response::Error(e) => assert_eq!(e.code, ErrorCode::StaleTerm, "{e:?}"),
            other => panic!("a stale assignment was not refused: {other:?}"),
        }
        if let Response::Error(e) = assign(n, new_term) {
            assert_ne!(
                e.code,
                ErrorCode::StaleTerm,
                "the current term is admitted: {e:?}"
            );
        }
    }
}

/// (peer id, term) of every node that reports a driver actor running on it.
fn driving(nodes: &[Node]) -> Vec<(String, u64)> {
    nodes
        .iter()
        .filter_map(|n| {
            let d = status(n)["raft"]["driving"].clone();
            d["term"].as_u64().map(|t| (n.id.clone(), t))
        })
        .collect()
}

/// Sends `AssignTask` with `term` to `n` from a fresh peer on 127.0.0.1.
fn assign(n: &Node, term: u64) -> Response {
    use meshml_node::network::{self, NetworkConfig};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let cfg = NetworkConfig {
            mdns: false,
            ..NetworkConfig::default()
        };
        let (client, _events, event_loop) = network::new(key, cfg).unwrap();
        tokio::spawn(event_loop.run());
        let peer = n.id.parse().unwrap();
        client.dial(n.addr.parse().unwrap()).await.unwrap();
        let req = Request::AssignTask {
            job: JobId::new("j"),
            task: TaskId::new(0, 0),
            term,
            spec: Vec::new(),
        };
        tokio::time::timeout(Duration::from_secs(20), client.request(peer, req))
            .await
            .expect("an answer within 20 s")
            .expect("a response")
    })
}

/// Starts `n` nodes at the same moment with `--expect expect`; node i is given the
/// addresses of the nodes `boot(i)` names. Returns them once they agree on one driver and
/// the cluster has min(n, 5) voters and the rest learners (panics after 40 s).
fn start_at_once(
    dir: &std::path::Path,
    n: usize,
    expect: usize,
    boot: impl Fn(usize) -> Vec<usize>,
) -> (Vec<Node>, Duration) {
    use std::process::{Command, Stdio};
    // Identities and ports decided up front, so all can start at the same moment with each
    // other's addresses.
    let mut ids = Vec::new();
    let mut ports = Vec::new();
    for i in 0..n {
        let d = dir.join(format!("n{i}"));
        std::fs::create_dir_all(&d).unwrap();
        let key = meshml_node::network::identity::load_or_create_keypair(&d.join("identity.key"))
            .unwrap();
        ids.push(key.public().to_peer_id().to_string());
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        ports.push(l.local_addr().unwrap().port());
    }
    let mut children = Vec::new();
    for i in 0..n {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshml"));
        cmd.args(["node", "--data-dir"])
            .arg(dir.join(format!("n{i}")))
            .args(["--listen", &format!("/ip4/127.0.0.1/tcp/{}", ports[i])])
            .args([
                "--http",
                "127.0.0.1:0",
                "--no-mdns",
                "--heartbeat-ms",
                "250",
            ])
            .args(["--expect", &expect.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for j in boot(i) {
            cmd.args([
                "--bootstrap",
                &format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", ports[j], ids[j]),
            ]);
        }
        children.push(cmd.spawn().unwrap());
    }
    let nodes: Vec<Node> = children.into_iter().map(common::adopt).collect();
    let refs: Vec<&Node> = nodes.iter().collect();
    let (voters, learners) = (n.min(5), n.saturating_sub(5));
    let count = |n: &Node, what: &str| status(n)["raft"][what].as_array().map_or(0, Vec::len);
    let took = wait_for(Duration::from_secs(40), || {
        agreed_driver(&refs).is_some()
            && refs
                .iter()
                .all(|n| count(n, "voters") == voters && count(n, "learners") == learners)
    });
    let views: Vec<_> = refs.iter().map(|n| raft(n)).collect();
    let took = took.unwrap_or_else(|| {
        panic!("{n} simultaneous starts did not form one cluster of {voters} voters and {learners} learners: {views:?}")
    });
    (nodes, took)
}

#[test]
fn five_nodes_started_at_once_form_one_cluster() {
    for round in 0..3 {
        let tmp = tempfile::tempdir().unwrap();
        let (_nodes, took) =
            start_at_once(tmp.path(), 5, 5, |i| (0..5).filter(|&j| j != i).collect());
        eprintln!("round {round}: one cluster of five after {took:?}");
    }
}

#[test]
fn six_nodes_expecting_five_with_partial_views_form_one_cluster() {
    // Each node starts knowing only the next one in a ring, so their first views differ,
    // and one node more than expected starts: the formation promises keep it to one cluster
    // (five voters, the sixth a learner).
    for round in 0..2 {
        let tmp = tempfile::tempdir().unwrap();
        let (_nodes, took) = start_at_once(tmp.path(), 6, 5, |i| vec![(i + 1) % 6]);
        eprintln!("round {round}: one cluster of six after {took:?}");
    }
}

#[test]
fn late_nodes_join_as_voters_up_to_five_then_as_learners() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _, _) = three_node_cluster(tmp.path(), &[]);
    let [a, b, c]: [Node; 3] = nodes.try_into().map_err(|_| ()).unwrap();
    // Three more, each knowing only a's address and expecting nobody: they find the running
    // cluster within their formation window and join it instead of forming their own.
    let d = start(&tmp.path().join("d"), &["--bootstrap", &a.addr]);
    let e = start(&tmp.path().join("e"), &["--bootstrap", &a.addr]);
    let f = start(&tmp.path().join("f"), &["--bootstrap", &a.addr]);
    let all = [&a, &b, &c, &d, &e, &f];
    let counts = |n: &Node| {
        let r = status(n)["raft"].clone();
        (
            r["voters"].as_array().map_or(0, Vec::len),
            r["learners"].as_array().map_or(0, Vec::len),
        )
    };
    let joined = wait_for(Duration::from_secs(40), || {
        counts(&a) == (5, 1) && agreed_driver(&all).is_some()
    });
    assert!(
        joined.is_some(),
        "five voters and one learner, one driver: a sees {:?}",
        counts(&a)
    );
    let learners = status(&a)["raft"]["learners"].as_array().unwrap().clone();
    assert_eq!(learners.len(), 1);
    assert!([&d.id, &e.id, &f.id]
        .iter()
        .any(|id| learners[0] == id.as_str()));
}

#[test]
fn a_restarted_member_rejoins_with_its_state_and_catches_up() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, driver, _) = three_node_cluster(tmp.path(), &[]);
    // Stop a follower, then change the membership while it is away.
    let f = nodes.iter().position(|n| n.id != driver).unwrap();
    let gone = nodes.remove(f);
    let (gone_id, gone_dir) = (gone.id.clone(), tmp.path().join(["a", "b", "c"][f]));
    drop(gone);
    let d = start(&tmp.path().join("d"), &["--bootstrap", &nodes[0].addr]);
    let leader = nodes.iter().find(|n| n.id == driver).unwrap();
    assert!(
        wait_for(Duration::from_secs(30), || status(leader)["raft"]["voters"]
            .as_array()
            .map_or(0, Vec::len)
            == 4)
        .is_some(),
        "d joined while the follower was away"
    );
    // Restart it from its data directory: same identity, its log, and what it missed.
    let back = start(&gone_dir, &["--bootstrap", &nodes[0].addr]);
    assert_eq!(back.id, gone_id);
    let caught_up = wait_for(Duration::from_secs(30), || {
        let (l, r) = (
            status(leader)["raft"].clone(),
            status(&back)["raft"].clone(),
        );
        r["voters"].as_array().map_or(0, Vec::len) == 4
            && r["applied"] == l["applied"]
            && r["driver"] == l["driver"]
    });
    assert!(
        caught_up.is_some(),
        "the restarted member caught up: {}",
        status(&back)["raft"]
    );
    drop(d);
}

#[test]
fn autopilot_removes_dead_members_and_promotes_a_learner() {
    const FAST: &str = "2000";
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, _, _) = three_node_cluster(tmp.path(), &["--remove-after-ms", FAST]);
    for n in ["d", "e", "f"] {
        let boot = nodes[0].addr.clone();
        nodes.push(start(
            &tmp.path().join(n),
            &["--remove-after-ms", FAST, "--bootstrap", &boot],
        ));
    }
    let members = |n: &Node| {
        let r = status(n)["raft"].clone();
        let ids = |k: &str| -> Vec<String> {
            r[k].as_array().map_or_else(Vec::new, |a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
        };
        (ids("voters"), ids("learners"))
    };
    let mut driver = String::new();
    assert!(wait_for(Duration::from_secs(40), || {
        let refs: Vec<&Node> = nodes.iter().collect();
        match agreed_driver(&refs) {
            Some((d, _)) => {
                driver = d;
                let (v, l) = members(refs[0]);
                v.len() == 5 && l.len() == 1
            }
            None => false,
        }
    })
    .is_some());
    // Kill a voter that is not the driver: the learner takes its place.
    let victim = members(&nodes[0])
        .0
        .into_iter()
        .find(|v| *v != driver)
        .unwrap();
    nodes.retain(|n| n.id != victim);
    let leader = nodes.iter().find(|n| n.id == driver).unwrap();
    let promoted = wait_for(Duration::from_secs(30), || {
        let (v, l) = members(leader);
        v.len() == 5 && l.is_empty() && !v.contains(&victim)
    });
    assert!(
        promoted.is_some(),
        "dead voter removed and learner promoted: {:?}",
        members(leader)
    );
}
