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
