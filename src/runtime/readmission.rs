//! Membership changes a leader makes by itself: promoting learners registered for automatic
//! promotion once they are caught up, and re-admitting voters that lost their state (a new
//! incarnation: demoted to learner, caught up, promoted; docs/STORAGE.md). Shared by the
//! Raft loop and the simulator, which runs these decisions unchanged.

use super::node::{demotion, promotion};
use crate::core::{NodeId, RawNode, Role, Storage};
use std::collections::BTreeMap;

/// The leader's pending automatic promotions and rejoins (volatile: a new leader finds
/// replaced voters again from their messages).
#[derive(Debug, Default)]
pub(crate) struct Readmission {
    /// [`super::NodeConfig::auto_rejoin`].
    auto_rejoin: Option<u64>,
    /// Learners to promote once they are within the given lag of the leader's log.
    auto_promote: BTreeMap<NodeId, u64>,
    /// Voters with a new incarnation already handled here: id -> that incarnation.
    rejoining: BTreeMap<NodeId, u64>,
}

impl Readmission {
    /// Nothing pending; `auto_rejoin` as [`super::NodeConfig::auto_rejoin`].
    pub(crate) fn new(auto_rejoin: Option<u64>) -> Self {
        Readmission {
            auto_rejoin,
            ..Readmission::default()
        }
    }

    /// Registers learner `id` for promotion once its log is within `lag` entries.
    pub(crate) fn promote_when_caught_up(&mut self, id: NodeId, lag: u64) {
        self.auto_promote.insert(id, lag);
    }

    /// One pass (leader only; a no-op elsewhere): proposes at most one promotion and the
    /// demotions of voters that came back with a new incarnation.
    pub(crate) fn drive<S: Storage>(&mut self, raw: &mut RawNode<S>) {
        self.maybe_auto_promote(raw);
        self.maybe_rejoin(raw);
    }

    /// Leader only: promotes one caught-up learner registered for automatic promotion (it
    /// holds the configuration in force and is within its lag of the leader's log).
    fn maybe_auto_promote<S: Storage>(&mut self, raw: &mut RawNode<S>) {
        if self.auto_promote.is_empty() || raw.raft.role != Role::Leader {
            return;
        }
        let st = raw.status();
        let ready = self.auto_promote.iter().find_map(|(&id, &lag)| {
            let p = st.peers.iter().find(|p| p.id == id)?;
            // It must hold the configuration that made it a learner: a learner that holds
            // nothing is within the lag of a short log, and a rejoining node that has not
            // seen its demotion still refuses to vote (it does not know it was re-admitted).
            let holds_conf = p.matched >= st.conf_index;
            (st.conf.learners.contains(&id) && holds_conf && p.matched + lag >= st.last_index)
                .then_some(id)
        });
        let Some(id) = ready else { return };
        let cc = promotion(&st.conf, id);
        if raw.propose_conf_change(cc, Some(st.conf_index)).is_ok() {
            tracing::info!(node = id, "learner caught up: promoting to voter");
            self.auto_promote.remove(&id);
        }
    }

    /// Leader only: a voter that came back with a new incarnation (it lost its state; the
    /// core ignores its messages) is demoted to learner and registered for automatic
    /// promotion, or, with automatic rejoin off, reported for the operator.
    fn maybe_rejoin<S: Storage>(&mut self, raw: &mut RawNode<S>) {
        if raw.raft.role != Role::Leader {
            return;
        }
        let replaced: Vec<(NodeId, (u64, u64))> = raw
            .raft
            .replaced_voters()
            .iter()
            .filter(|(id, (_, new))| self.rejoining.get(id) != Some(new))
            .map(|(&id, &inc)| (id, inc))
            .collect();
        for (id, (old, new)) in replaced {
            let Some(lag) = self.auto_rejoin else {
                tracing::error!(
                    node = id,
                    old = format_args!("{old:#018x}"),
                    new = format_args!("{new:#018x}"),
                    "voter {id} lost its state (new incarnation); automatic rejoin is off: \
                     make it a learner (a membership change), then promote it once caught up"
                );
                self.rejoining.insert(id, new);
                continue;
            };
            let st = raw.status();
            if !st.conf.voters.contains(&id) {
                if st.conf.learners.contains(&id) {
                    // Demoted already (by an earlier leader, or before a restart).
                    tracing::info!(
                        node = id,
                        "rejoin: node {id} is a learner already; promoting it once caught up"
                    );
                    self.rejoining.insert(id, new);
                    self.auto_promote.insert(id, lag);
                }
                continue;
            }
            match raw.propose_conf_change(demotion(&st.conf, id), Some(st.conf_index)) {
                Ok(index) => {
                    tracing::warn!(
                        node = id,
                        old = format_args!("{old:#018x}"),
                        new = format_args!("{new:#018x}"),
                        index,
                        "rejoin: voter {id} lost its state; demoting it to learner, to be \
                         caught up and promoted within {lag} entries"
                    );
                    self.rejoining.insert(id, new);
                    self.auto_promote.insert(id, lag);
                }
                // Another change in flight: tried again on a later pass.
                Err(e) => tracing::debug!(node = id, %e, "rejoin: demotion not proposed yet"),
            }
        }
    }
}
