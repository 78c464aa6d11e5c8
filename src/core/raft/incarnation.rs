//! Incarnations: every message carries the sender's incarnation (a random id its data
//! directory drew when it was created) and the incarnation the sender knows the recipient
//! by. A voter that comes back with another incarnation lost its state (a wiped data
//! directory under the same node id): its votes and acknowledgements could break quorum
//! intersection, so its messages are dropped until a configuration no longer counts it as a
//! voter (it is re-admitted as a learner, caught up and promoted). A node told that its
//! peers know it by another incarnation does not vote or campaign until then.
//!
//! Like etcd's member ids (a wiped member must be removed and added again), but detected
//! from the messages themselves. Incarnation 0 means "not tracked" (stores without an
//! identity): no check is made.

use super::{Raft, Role};
use crate::core::message::{Message, MessageBody};
use crate::core::progress::Progress;
use crate::core::storage::Storage;
use crate::core::types::NodeId;
use std::collections::BTreeMap;

impl<S: Storage> Raft<S> {
    /// Stamps outgoing messages with this node's incarnation and the recipient's.
    pub fn stamp_incarnations(&self, msgs: &mut [Message]) {
        if self.cfg.incarnation == 0 {
            return;
        }
        for m in msgs {
            m.from_incarnation = self.cfg.incarnation;
            m.to_incarnation = self.peer_incarnations.get(&m.to).copied().unwrap_or(0);
        }
    }

    /// The voters' incarnations if they changed since the last call (to be stored, e.g.
    /// with `LogStore::set_peer_incarnations`, and passed back in
    /// [`crate::core::Config::peer_incarnations`] at the next start).
    pub fn take_incarnation_changes(&mut self) -> Option<BTreeMap<NodeId, u64>> {
        std::mem::take(&mut self.incarnations_changed).then(|| self.peer_incarnations.clone())
    }

    /// Voters that came back with a new incarnation: id -> (known, new). Their messages are
    /// dropped until a configuration makes them learners (see the module documentation).
    pub fn replaced_voters(&self) -> &BTreeMap<NodeId, (u64, u64)> {
        &self.replaced
    }

    /// True if a peer knows this node by another incarnation (this data directory is not
    /// the one the cluster counted as a voter) and it has not been re-admitted yet: it then
    /// neither votes nor campaigns.
    pub fn awaiting_readmission(&self) -> bool {
        self.amnesiac
    }

    /// A configuration was committed (every one, also those superseded in the same commit).
    /// A voter it does not list as a voter lost its voter stint: its incarnation is
    /// forgotten even if a later (pending) configuration promotes it again, so a node that
    /// catches up over a rejoin (demotion and promotion) learns the new incarnation instead
    /// of refusing it. If it does not list this node as a voter, this node's incarnation was
    /// re-admitted: recorded (as its own entry) so that stale peers cannot make it stop
    /// voting after a restart.
    pub(super) fn on_conf_committed(&mut self, conf: &crate::core::ConfState) {
        let own = self.cfg.incarnation;
        if own == 0 {
            return;
        }
        let me = self.id();
        let before = self.peer_incarnations.len();
        self.peer_incarnations
            .retain(|&id, _| id == me || conf.is_voter(id));
        self.replaced.retain(|&id, _| conf.is_voter(id));
        self.incarnations_changed |= self.peer_incarnations.len() != before;
        if !conf.is_voter(me) && self.peer_incarnations.get(&me) != Some(&own) {
            self.amnesiac = false;
            self.readmitted = true;
            self.peer_incarnations.insert(me, own);
            self.incarnations_changed = true;
        }
    }

    /// Checks the incarnations a message carries; false if it must be dropped.
    pub(super) fn check_incarnations(&mut self, m: &Message) -> bool {
        let own = self.cfg.incarnation;
        if own == 0 {
            return true;
        }
        if self.amnesiac && !self.conf().is_voter(self.id()) {
            self.amnesiac = false;
            self.readmitted = true;
            tracing::info!(
                node = self.id(),
                "re-admitted as a learner under the new incarnation {own:#018x}: voting again \
                 once promoted"
            );
        }
        if m.to_incarnation != 0
            && m.to_incarnation != own
            && !self.amnesiac
            && !self.readmitted
            && self.conf().is_voter(self.id())
        {
            self.amnesiac = true;
            tracing::error!(
                node = self.id(),
                peer = m.from,
                known = format_args!("{:#018x}", m.to_incarnation),
                own = format_args!("{own:#018x}"),
                "peer {} knows node {} as incarnation {:#018x}, but this data directory is \
                 incarnation {own:#018x}: its state was lost; not voting or campaigning until \
                 the leader re-admits it as a learner",
                m.from,
                self.id(),
                m.to_incarnation
            );
        }
        let theirs = m.from_incarnation;
        if theirs == 0 {
            return true;
        }
        if self.retired.get(&m.from) == Some(&theirs) {
            return false;
        }
        let voter = self.confs.iter().any(|(_, c)| c.is_voter(m.from));
        if !voter {
            // Learners and strangers are not counted: nothing to protect. But a learner
            // that came back with another incarnation (a wiped node being re-admitted) lost
            // what it acknowledged: its progress starts afresh, else a leader still holding
            // an old acknowledgement would resend above its empty log forever.
            self.incarnations_changed |= self.peer_incarnations.remove(&m.from).is_some();
            self.replaced.remove(&m.from);
            let before = self.learner_incarnations.insert(m.from, theirs);
            if before.is_some_and(|b| b != theirs) && self.role == Role::Leader {
                self.reset_progress(m.from);
            }
            return true;
        }
        match self.peer_incarnations.get(&m.from).copied() {
            None => {
                self.peer_incarnations.insert(m.from, theirs);
                self.incarnations_changed = true;
                true
            }
            Some(known) if known == theirs => true,
            // The leader of this term or a later one: a quorum accepted its incarnation, so
            // it was re-admitted while this node was away (it missed the demotion).
            Some(known) if m.term >= self.term && leader_message(m) => {
                tracing::info!(
                    node = self.id(),
                    peer = m.from,
                    known = format_args!("{known:#018x}"),
                    new = format_args!("{theirs:#018x}"),
                    "leader {} leads as incarnation {theirs:#018x} (known as {known:#018x}): \
                     it was re-admitted meanwhile",
                    m.from
                );
                self.peer_incarnations.insert(m.from, theirs);
                self.incarnations_changed = true;
                self.replaced.remove(&m.from);
                self.retired.insert(m.from, known);
                true
            }
            Some(known) => {
                self.retired.insert(m.from, known);
                if self.replaced.insert(m.from, (known, theirs)) != Some((known, theirs)) {
                    if self.role == Role::Leader {
                        // What it acknowledged before is gone: start its progress afresh,
                        // so it is caught up (and promoted) only on what it really holds.
                        self.reset_progress(m.from);
                    }
                    tracing::warn!(
                        node = self.id(),
                        peer = m.from,
                        known = format_args!("{known:#018x}"),
                        new = format_args!("{theirs:#018x}"),
                        "voter {} came back as incarnation {theirs:#018x} (known as \
                         {known:#018x}): it lost its state; its votes and acknowledgements \
                         are ignored until it is re-admitted as a learner",
                        m.from
                    );
                }
                false
            }
        }
    }

    /// Leader: forgets what `id` acknowledged (it lost its state).
    fn reset_progress(&mut self, id: NodeId) {
        if self.progress.contains_key(&id) {
            let p = Progress::new(
                self.log.last_index(),
                self.cfg.max_inflight_msgs,
                self.cfg.max_inflight_bytes,
            );
            self.progress.insert(id, p);
        }
    }

    /// After a configuration change: a node that is no longer a voter anywhere in the
    /// history is forgotten (its incarnation is learned again once it is a voter).
    pub(super) fn forget_non_voter_incarnations(&mut self) {
        let confs = &self.confs;
        let me = self.cfg.id;
        let voter = |id: &NodeId| *id == me || confs.iter().any(|(_, c)| c.is_voter(*id));
        let before = self.peer_incarnations.len();
        self.peer_incarnations.retain(|id, _| voter(id));
        self.incarnations_changed |= self.peer_incarnations.len() != before;
        self.replaced.retain(|id, _| voter(id));
    }
}

/// Messages only a leader sends.
fn leader_message(m: &Message) -> bool {
    matches!(
        m.body,
        MessageBody::Append { .. } | MessageBody::Heartbeat { .. } | MessageBody::Snapshot { .. }
    )
}
