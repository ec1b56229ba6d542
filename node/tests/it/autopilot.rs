//! The driver's autopilot over in-process Raft clusters (meshml-sim, no sockets): it removes
//! members missing longer than `remove_after`, promotes a live learner into the freed voter
//! place, leaves alone a member that comes back in time, and does nothing off the leader.

use std::collections::BTreeSet;
use std::time::Duration;

use meshml_node::raft::autopilot::{Autopilot, Round};
use meshml_sim::raft_cluster::{fast_config, RaftCluster};
use meshml_storage::raft::MemberInfo;

fn info(id: u64) -> MemberInfo {
    MemberInfo {
        peer_id: format!("sim-{id}"),
        addrs: vec![],
        cores: 2,
        memory_bytes: 1 << 30,
        free_disk_bytes: 1 << 30,
        started_ms: 0,
    }
}

fn voters(c: &RaftCluster, id: u64) -> BTreeSet<u64> {
    c.metrics(id)
        .unwrap()
        .membership_config
        .membership()
        .voter_ids()
        .collect()
}

fn learners(c: &RaftCluster, id: u64) -> BTreeSet<u64> {
    c.metrics(id)
        .unwrap()
        .membership_config
        .membership()
        .learner_ids()
        .collect()
}

/// Runs autopilot rounds on `leader` every 50 ms, reporting `live(round)` as the live
/// peers, until `done` or 10 s.
async fn rounds(
    c: &RaftCluster,
    pilot: &Autopilot,
    leader: u64,
    live: impl Fn(usize) -> Vec<u64>,
    done: impl Fn(&RaftCluster) -> bool,
) -> bool {
    let raft = c.raft_handle(leader).unwrap();
    let sm = c.state_machine(leader).unwrap();
    let mut round = Round::default();
    for i in 0..200 {
        let peers = live(i).into_iter().map(|id| (id, info(id))).collect();
        pilot
            .round(&mut round, &raft, &sm, &info(leader), peers)
            .await;
        if done(c) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_voter_is_removed_and_a_live_learner_takes_its_place() {
    let mut c = RaftCluster::start(5, fast_config()).await.unwrap();
    let leader = c.wait_leader(&[], Duration::from_secs(10)).await.unwrap();
    c.add_learner(leader, 6).await.unwrap();
    assert_eq!(learners(&c, leader), BTreeSet::from([6]));
    let dead = if leader == 5 { 4 } else { 5 };
    c.crash(dead).await;
    let pilot = Autopilot {
        remove_after: Duration::from_millis(300),
        tick: Duration::from_millis(50),
    };
    let live: Vec<u64> = (1..=6).filter(|&i| i != dead && i != leader).collect();
    let ok = rounds(
        &c,
        &pilot,
        leader,
        |_| live.clone(),
        |c| {
            !voters(c, leader).contains(&dead)
                && voters(c, leader).contains(&6)
                && c.state(leader).members.len() == 5
        },
    )
    .await;
    assert!(
        ok,
        "voters {:?}, learners {:?}, records {:?}",
        voters(&c, leader),
        learners(&c, leader),
        c.state(leader).members.keys().collect::<Vec<_>>()
    );
    assert_eq!(voters(&c, leader).len(), 5, "five voters again");
    assert!(learners(&c, leader).is_empty());
    // Every live member's record is in the replicated state; the dead one's is not.
    let s = c.state(leader);
    assert!(!s.members.contains_key(&dead));
    for id in (1..=6).filter(|&i| i != dead) {
        assert_eq!(s.members.get(&id), Some(&info(id)), "record of {id}");
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_back_within_the_grace_period_stays_and_followers_do_nothing() {
    let c = RaftCluster::start(3, fast_config()).await.unwrap();
    let leader = c.wait_leader(&[], Duration::from_secs(10)).await.unwrap();
    let others: Vec<u64> = (1..=3).filter(|&i| i != leader).collect();
    let flaky = others[0];
    let pilot = Autopilot {
        remove_after: Duration::from_millis(1000),
        tick: Duration::from_millis(50),
    };
    // Missing for the first 6 rounds (about 300 ms), then back: never removed. Stop once
    // well past the grace period.
    let t = tokio::time::Instant::now();
    let all = others.clone();
    rounds(
        &c,
        &pilot,
        leader,
        |i| {
            if i < 6 {
                all.iter().copied().filter(|&p| p != flaky).collect()
            } else {
                all.clone()
            }
        },
        |_| t.elapsed() > Duration::from_millis(2000),
    )
    .await;
    assert_eq!(voters(&c, leader), (1..=3).collect());

    // On a follower the autopilot changes nothing, even for a member reported missing.
    let follower = others[1];
    let pilot = Autopilot {
        remove_after: Duration::ZERO,
        tick: Duration::from_millis(50),
    };
    let before = c.metrics(leader).unwrap().last_log_index;
    let raft = c.raft_handle(follower).unwrap();
    let sm = c.state_machine(follower).unwrap();
    let mut round = Round::default();
    for _ in 0..5 {
        pilot
            .round(&mut round, &raft, &sm, &info(follower), vec![])
            .await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(voters(&c, leader), (1..=3).collect());
    assert_eq!(c.metrics(leader).unwrap().last_log_index, before);
    c.shutdown().await;
}
