//! A five-node cluster split 2|3 in network namespaces this test creates (a bridge in a
//! namespace of its own, blackhole routes for the cut), with real `meshml node` processes:
//!
//! - the majority elects a new driver in a newer term;
//! - the old driver, cut off with one follower, stops its driver actor, and the minority
//!   never commits anything, although a sixth node on its side asks it to be added;
//! - after healing there is one driver, the sixth node is a learner, and every node has
//!   applied the same log and holds the same replicated state.
//!
//! Needs root and iproute2; where namespaces cannot be created the test says so on stderr
//! and checks nothing else.

// Tests report skips and timings on stderr.
#![allow(clippy::print_stderr)]

use std::time::{Duration, Instant};

use crate::common::netns::Lan;
use crate::common::wait_for;
use serde_json::Value;

struct Mesh {
    lan: Lan,
    ids: Vec<String>,
    dir: tempfile::TempDir,
}

impl Mesh {
    fn raft(&self, i: usize) -> Value {
        self.lan.status(i)["raft"].clone()
    }

    fn boot(&self, i: usize) -> String {
        format!("/ip4/{}/tcp/7000/p2p/{}", self.lan.addr(i), self.ids[i])
    }

    fn start(&mut self, i: usize, expect: usize, boot: &[usize]) {
        let data = self.dir.path().join(format!("n{i}"));
        let expect = expect.to_string();
        let boots: Vec<String> = boot.iter().map(|&j| self.boot(j)).collect();
        let mut args = vec![
            "--no-mdns",
            "--peer-timeout-ms",
            "1500",
            "--remove-after-ms",
            "120000",
            "--expect",
            &expect,
        ];
        for b in &boots {
            args.extend(["--bootstrap", b.as_str()]);
        }
        self.lan.start_node(i, &data, &args);
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

fn list(v: &Value) -> Vec<String> {
    let mut l: Vec<String> = v
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    l.sort();
    l
}

#[test]
fn a_partitioned_minority_never_commits_and_the_cluster_converges_after_healing() {
    let lan = match Lan::create(6, false) {
        Ok(lan) => lan,
        Err(e) => {
            eprintln!("SKIPPED partition test: cannot create network namespaces here ({e})");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for i in 0..6 {
        let d = dir.path().join(format!("n{i}"));
        std::fs::create_dir_all(&d).unwrap();
        let key = meshml_node::network::identity::load_or_create_keypair(&d.join("identity.key"))
            .unwrap();
        ids.push(key.public().to_peer_id().to_string());
    }
    let mut mesh = Mesh { lan, ids, dir };
    for i in 0..5 {
        let others: Vec<usize> = (0..5).filter(|&j| j != i).collect();
        mesh.start(i, 5, &others);
    }

    // One driver, five voters, every member recorded, the same log applied everywhere.
    let five: Vec<usize> = (0..5).collect();
    let settled = |m: &Mesh, hosts: &[usize]| -> Option<(String, u64, u64)> {
        let views: Vec<Value> = hosts.iter().map(|&i| m.raft(i)).collect();
        let driver = text(&views[0]["driver"]);
        let term = views[0]["term"].as_u64()?;
        let applied = views[0]["applied"].as_u64()?;
        let leaders = views.iter().filter(|v| v["role"] == "leader").count();
        let same = views.iter().all(|v| {
            text(&v["driver"]) == driver
                && v["term"].as_u64() == Some(term)
                && v["applied"].as_u64() == Some(applied)
                && v["members"].as_array().map_or(0, Vec::len)
                    == views[0]["members"].as_array().map_or(0, Vec::len)
        });
        (same && leaders == 1 && !driver.is_empty()).then_some((driver, term, applied))
    };
    let mut formed = None;
    assert!(
        wait_for(Duration::from_secs(60), || {
            formed = settled(&mesh, &five).filter(|_| {
                let r = mesh.raft(0);
                list(&r["voters"]).len() == 5 && r["members"].as_array().map_or(0, Vec::len) == 5
            });
            formed.is_some()
        })
        .is_some(),
        "five nodes form one settled cluster: {:?}",
        five.iter().map(|&i| mesh.raft(i)).collect::<Vec<_>>()
    );
    let (driver, term, applied) = formed.unwrap();
    let voters = list(&mesh.raft(0)["voters"]);
    let d = mesh.ids.iter().position(|id| *id == driver).unwrap();
    let buddy = (d + 1) % 5;
    let majority: Vec<usize> = (0..5).filter(|&i| i != d && i != buddy).collect();
    eprintln!("driver n{d} (term {term}, applied {applied}); cutting off n{d} and n{buddy}");

    // Cut the driver and one follower off (with the unstarted sixth host on their side).
    mesh.lan.partition(&[d, buddy, 5]).unwrap();
    let cut_at = Instant::now();
    // A sixth node asks the old driver to add it: a change the minority cannot commit.
    mesh.start(5, 6, &[d]);

    let mut new = None;
    assert!(
        wait_for(Duration::from_secs(30), || {
            new = settled(&mesh, &majority).filter(|(drv, t, _)| *t > term && *drv != driver);
            new.is_some()
        })
        .is_some(),
        "the majority elects a new driver"
    );
    let (new_driver, new_term, _) = new.unwrap();
    eprintln!(
        "majority: new driver after {:?}, term {new_term}",
        cut_at.elapsed()
    );
    assert!(majority.iter().any(|&i| mesh.ids[i] == new_driver));
    // The old driver notices it has lost its quorum and stops driving.
    assert!(
        wait_for(Duration::from_secs(10), || mesh.raft(d)["driving"]
            .is_null())
        .is_some(),
        "the cut-off driver stops its driver actor: {}",
        mesh.raft(d)
    );
    // The old driver took the sixth node's request: it appended a membership change ...
    assert!(
        wait_for(Duration::from_secs(15), || mesh.raft(d)["last_log"]
            .as_u64()
            .is_some_and(|l| l > applied))
        .is_some(),
        "the cut-off driver appends the sixth node's membership change: {}",
        mesh.raft(d)
    );
    // ... which it never commits: for a while longer, the minority applies nothing new.
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(5) {
        for i in [d, buddy, 5] {
            let a = mesh.raft(i)["applied"].as_u64().unwrap_or(0);
            assert!(
                a <= applied,
                "n{i} on the minority side applied {a} > {applied}"
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        !list(&mesh.raft(new_driver_index(&mesh, &new_driver))["learners"]).contains(&mesh.ids[5]),
        "the sixth node is not in the majority's membership"
    );

    mesh.lan.heal().unwrap();
    let healed_at = Instant::now();
    let all: Vec<usize> = (0..6).collect();
    let mut fin = None;
    let done = wait_for(Duration::from_secs(60), || {
        fin = settled(&mesh, &all).filter(|_| {
            let r = mesh.raft(0);
            list(&r["voters"]) == voters && list(&r["learners"]) == vec![mesh.ids[5].clone()]
        });
        fin.is_some()
    });
    assert!(
        done.is_some(),
        "after healing: one driver, five voters and the sixth node as a learner, same log: {:#?}",
        all.iter().map(|&i| mesh.raft(i)).collect::<Vec<_>>()
    );
    let (last_driver, last_term, _) = fin.unwrap();
    assert!(last_term >= new_term);
    eprintln!(
        "healed: converged after {:?} (driver {last_driver}, term {last_term})",
        healed_at.elapsed()
    );
    // The same replicated state on all six. The sixth node's record (its capabilities)
    // is committed after it became a learner, so it may still be applying on a node that
    // was cut off: the states must become equal, and six members each.
    let states = || -> Vec<Vec<String>> {
        all.iter()
            .map(|&i| {
                let mut m: Vec<String> = mesh.raft(i)["members"]
                    .as_array()
                    .map(|a| a.iter().map(|x| text(&x["peer_id"])).collect())
                    .unwrap_or_default();
                m.sort();
                m
            })
            .collect()
    };
    let same = wait_for(Duration::from_secs(15), || {
        let s = states();
        s.iter().all(|x| *x == s[0] && x.len() == 6)
    });
    assert!(same.is_some(), "{:?}", states());
}

fn new_driver_index(mesh: &Mesh, driver: &str) -> usize {
    mesh.ids.iter().position(|id| id == driver).unwrap()
}
