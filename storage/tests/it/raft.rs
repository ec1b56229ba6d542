//! The sled-backed Raft log and state machine against openraft's own storage test suite,
//! and across a reopen.

use meshml_storage::raft::{self, ClusterCommand, LogStore, MemberInfo, StateMachine, TypeConfig};
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, StorageError};

struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for SledBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path().join("db")).expect("sled opens");
        let (log, sm) = raft::open(&db).await?;
        Ok((dir, log, sm))
    }
}

#[test]
fn passes_the_openraft_storage_suite() {
    Suite::test_all(SledBuilder).unwrap();
}

fn entry(index: u64, cmd: ClusterCommand) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
        payload: EntryPayload::Normal(cmd),
    }
}

#[tokio::test]
async fn state_and_log_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let member = MemberInfo {
        peer_id: "p".into(),
        addrs: vec![],
        cores: 4,
        memory_bytes: 0,
        free_disk_bytes: 0,
        started_ms: 0,
    };
    {
        let db = sled::open(dir.path().join("db")).unwrap();
        let (_log, mut sm) = raft::open(&db).await.unwrap();
        let r = sm
            .apply(vec![entry(
                1,
                ClusterCommand::PutMember {
                    id: 7,
                    info: member.clone(),
                },
            )])
            .await
            .unwrap();
        assert!(r[0].ok);
    }
    let db = sled::open(dir.path().join("db")).unwrap();
    let (mut log, mut sm) = raft::open(&db).await.unwrap();
    assert_eq!(sm.state().members[&7], member);
    assert_eq!(sm.applied_state().await.unwrap().0.unwrap().index, 1);
    assert!(log.get_log_state().await.unwrap().last_log_id.is_none());
}

/// Many databases persisting at once (32 nodes in one process) must all finish: sled's
/// `flush_async` waits on sled's own small I/O pool for a write that needs a thread of the
/// same pool, and 16 in-process nodes hung there for good.
#[test]
fn thirty_two_stores_persisting_at_once_all_finish() {
    // On a thread of its own, so that a hang fails the test instead of stalling it.
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let _ = tx.send(rt.block_on(persist_in_32_stores()));
    });
    let members = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("every store persisted within 60 s");
    assert!(members.into_iter().all(|n| n == 20));
}

async fn persist_in_32_stores() -> Vec<usize> {
    let dirs: Vec<tempfile::TempDir> = (0..32).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut machines = Vec::new();
    for d in &dirs {
        let db = sled::open(d.path().join("db")).unwrap();
        machines.push(raft::open(&db).await.unwrap().1);
    }
    let member = MemberInfo {
        peer_id: "p".into(),
        addrs: vec![],
        cores: 1,
        memory_bytes: 0,
        free_disk_bytes: 0,
        started_ms: 0,
    };
    let all: Vec<_> = machines
        .into_iter()
        .map(|mut sm| {
            let member = member.clone();
            tokio::spawn(async move {
                for i in 1..=20u64 {
                    let cmd = ClusterCommand::PutMember {
                        id: i,
                        info: member.clone(),
                    };
                    assert!(sm.apply(vec![entry(i, cmd)]).await.unwrap()[0].ok);
                }
                sm.state().members.len()
            })
        })
        .collect();
    let mut members = Vec::new();
    for h in all {
        members.push(h.await.unwrap());
    }
    members
}
