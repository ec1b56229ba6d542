//! Driver election on in-process Raft clusters (no sockets): one leader among 1, 3 and 5
//! nodes; failover after a crash with the replicated state intact; a minority partition
//! never commits, and after healing there is one leader and the state converges.

use std::time::Duration;

use meshml_sim::raft_cluster::{fast_config, RaftCluster};
use meshml_storage::raft::{ClusterCommand, MemberInfo};

fn member(n: u64) -> ClusterCommand {
    ClusterCommand::PutMember {
        id: n,
        info: MemberInfo {
            peer_id: format!("peer-{n}"),
            addrs: vec![],
            cores: 2,
            memory_bytes: 0,
            free_disk_bytes: 0,
            started_ms: 0,
        },
    }
}

const ELECTION: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_three_and_five_nodes_elect_exactly_one_leader() {
    for n in [1u64, 3, 5] {
        let c = RaftCluster::start(n, fast_config()).await.unwrap();
        let leader = c.wait_leader(&[], ELECTION).await.expect("a leader");
        let leaders = c.leaders();
        assert_eq!(leaders.len(), 1, "{n} nodes: {leaders:?}");
        assert_eq!(leaders[0].0, leader);
        assert!(c.write(leader, member(1)).await.unwrap().ok);
        c.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_leader_is_replaced_and_the_state_survives() {
    let c = RaftCluster::start(3, fast_config()).await.unwrap();
    let first = c.wait_leader(&[], ELECTION).await.unwrap();
    assert!(c.write(first, member(10)).await.unwrap().ok);
    c.crash(first).await;
    let t = tokio::time::Instant::now();
    let second = c.wait_leader(&[], ELECTION).await.expect("a new leader");
    assert_ne!(second, first);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "failover took {:?}",
        t.elapsed()
    );
    assert!(
        c.state(second).members.contains_key(&10),
        "committed state survives"
    );
    assert!(c.write(second, member(11)).await.unwrap().ok);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_partition_never_commits_and_healing_converges() {
    let c = RaftCluster::start(5, fast_config()).await.unwrap();
    let old = c.wait_leader(&[], ELECTION).await.unwrap();
    let buddy = if old == 1 { 2 } else { 1 };
    let majority: Vec<u64> = (1..=5).filter(|&i| i != old && i != buddy).collect();
    c.partition(&[old, buddy]);

    // The old leader cannot commit: its write waits for a quorum it cannot reach.
    let stuck = tokio::time::timeout(Duration::from_secs(2), c.write(old, member(99))).await;
    assert!(
        !matches!(stuck, Ok(Ok(ref r)) if r.ok),
        "minority committed: {stuck:?}"
    );

    let new = c
        .wait_leader(&majority, ELECTION)
        .await
        .expect("the majority elects a leader");
    assert!(majority.contains(&new));
    assert!(c.write(new, member(42)).await.unwrap().ok);

    c.heal();
    let leader = c
        .wait_leader(&[], ELECTION)
        .await
        .expect("one leader after healing");
    assert_eq!(c.leaders().len(), 1);
    // Everyone converges on the majority's history; the minority's write is gone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in 1..=5 {
        let s = c.state(id);
        assert!(
            s.members.contains_key(&42),
            "node {id} has the majority's write"
        );
        assert!(
            !s.members.contains_key(&99),
            "node {id} never applied the minority's write"
        );
    }
    assert!(c.write(leader, member(43)).await.unwrap().ok);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_catches_up_through_a_snapshot_once_the_log_is_compacted() {
    // Snapshot every 10 entries and keep no log behind a snapshot.
    let config = openraft::Config {
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(10),
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        ..fast_config()
    };
    let mut c = RaftCluster::start(3, config).await.unwrap();
    let leader = c.wait_leader(&[], ELECTION).await.unwrap();
    assert!(c.write(leader, member(1)).await.unwrap().ok);
    let away = if leader == 3 { 2 } else { 3 };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let had = c.metrics(away).unwrap().last_log_index.unwrap();
    c.crash(away).await;

    for n in 2..=60 {
        assert!(c.write(leader, member(n)).await.unwrap().ok);
    }
    // Every live node has compacted its log past what the away node holds, so the entries
    // it missed exist nowhere as log entries any more.
    let compacted = tokio::time::timeout(ELECTION, async {
        loop {
            let purged = |id| c.metrics(id).and_then(|m| m.purged).map_or(0, |p| p.index);
            if (1..=3).filter(|&id| id != away).all(|id| purged(id) > had) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(compacted.is_ok(), "the live nodes compacted their logs");

    c.restart(away).await.unwrap();
    let caught_up = tokio::time::timeout(ELECTION, async {
        while (1..=60).any(|n| !c.state(away).members.contains_key(&n)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(caught_up.is_ok(), "the restarted node has all 60 records");
    assert!(
        c.snapshots_installed(away) >= 1,
        "it caught up by installing the leader's snapshot"
    );
    assert_eq!(c.state(away), c.state(leader));
    // And it keeps following: a later write reaches it through the log.
    assert!(c.write(leader, member(61)).await.unwrap().ok);
    let followed = tokio::time::timeout(ELECTION, async {
        while !c.state(away).members.contains_key(&61) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(followed.is_ok());
    c.shutdown().await;
}
