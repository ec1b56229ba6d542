//! Autopilot, run by the driver ([`crate::driver`]) each tick: removes members unreachable
//! for `remove_after`, keeps up to [`super::MAX_VOTERS`] voters by promoting live learners,
//! and records every member's capabilities in the replicated state.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use openraft::{BasicNode, ChangeMembers, ServerState};
use tokio::time::Instant;

use meshml_storage::raft::{ClusterCommand, MemberInfo};

use super::{ClusterRaft, MAX_VOTERS};

/// Autopilot settings.
#[derive(Debug, Clone)]
pub struct Autopilot {
    /// A member unreachable this long is removed (default 30 s).
    pub remove_after: Duration,
    /// How often the driver looks (500 ms in `meshml node`).
    pub tick: Duration,
}

/// What the autopilot remembers between rounds: since when each member has been missing.
#[derive(Debug, Default)]
pub struct Round {
    missing_since: HashMap<u64, Instant>,
}

impl Autopilot {
    /// One round on the driver. `peers` are the node ids of the peers the membership actor
    /// currently considers alive, with what they offer.
    pub async fn round(
        &self,
        round: &mut Round,
        raft: &ClusterRaft,
        state: &meshml_storage::raft::StateMachine,
        local: &MemberInfo,
        peers: Vec<(u64, MemberInfo)>,
    ) {
        let missing_since = &mut round.missing_since;
        let m = raft.metrics().borrow().clone();
        if m.state != ServerState::Leader {
            missing_since.clear();
            return;
        }
        let live: BTreeSet<u64> = peers.iter().map(|(id, _)| *id).chain([m.id]).collect();
        let membership = m.membership_config.membership().clone();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let learners: BTreeSet<u64> = membership.learner_ids().collect();
        let now = Instant::now();
        let mut dead = BTreeSet::new();
        for id in voters.iter().chain(&learners) {
            if live.contains(id) {
                missing_since.remove(id);
            } else if now.duration_since(*missing_since.entry(*id).or_insert(now))
                >= self.remove_after
            {
                dead.insert(*id);
            }
        }
        let dead_voters: BTreeSet<u64> = dead.intersection(&voters).copied().collect();
        let dead_learners: BTreeSet<u64> = dead.intersection(&learners).copied().collect();
        // Promote live learners into the places dead voters leave (and any free ones).
        let room = MAX_VOTERS.saturating_sub(voters.len() - dead_voters.len());
        let promote: BTreeSet<u64> = learners
            .iter()
            .filter(|l| live.contains(l))
            .take(room)
            .copied()
            .collect();
        change(
            raft,
            promote,
            ChangeMembers::AddVoterIds,
            true,
            "promoted learners to voters",
        )
        .await;
        change(
            raft,
            dead_voters,
            ChangeMembers::RemoveVoters,
            false,
            "removed unreachable voters",
        )
        .await;
        change(
            raft,
            dead_learners,
            ChangeMembers::RemoveNodes,
            false,
            "removed unreachable learners",
        )
        .await;
        let known = state.state().members;
        for id in &dead {
            missing_since.remove(id);
            if known.contains_key(id) {
                let _ = raft
                    .client_write(ClusterCommand::RemoveMember { id: *id })
                    .await;
            }
        }
        // Record what each live member offers, when it is new or has changed.
        let infos = peers.into_iter().chain([(m.id, local.clone())]);
        for (id, info) in infos {
            let member = voters.contains(&id) || learners.contains(&id);
            if member && !dead.contains(&id) && known.get(&id) != Some(&info) {
                if let Err(e) = raft
                    .client_write(ClusterCommand::PutMember { id, info })
                    .await
                {
                    tracing::debug!(cause = %e, "member record not written");
                }
            }
        }
    }
}

/// Applies `make(ids)` as a membership change (skipped when `ids` is empty) and logs it.
async fn change(
    raft: &ClusterRaft,
    ids: BTreeSet<u64>,
    make: fn(BTreeSet<u64>) -> ChangeMembers<u64, BasicNode>,
    retain: bool,
    what: &str,
) {
    if ids.is_empty() {
        return;
    }
    match raft.change_membership(make(ids.clone()), retain).await {
        Ok(_) => tracing::info!(?ids, "autopilot {what}"),
        Err(e) => tracing::warn!(?ids, cause = %e, "autopilot failed: {what}"),
    }
}
