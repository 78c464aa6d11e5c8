//! Membership: the configuration history (configurations take effect on append and are
//! committed with their entry), membership proposals and their log encoding
//! (etcd-io/raft: `confchange/`).

use super::{ProposeError, Raft, Role};
use crate::core::confchange::apply_conf_change;
use crate::core::progress::Progress;
use crate::core::storage::Storage;
use crate::core::types::{ConfChange, Entry, EntryKind, NodeId, NO_NODE};

/// Encodes a membership change for a log entry.
pub fn encode_conf_change(cc: &ConfChange) -> Vec<u8> {
    postcard::to_stdvec(cc).expect("encoding a configuration change")
}

/// Decodes a membership change from a log entry.
pub fn decode_conf_change(data: &[u8]) -> Option<ConfChange> {
    postcard::from_bytes(data).ok()
}

impl<S: Storage> Raft<S> {
    /// Proposes a membership change. `expected` is the configuration id the caller saw
    /// (compare-and-set); the change is refused if the configuration moved.
    pub fn propose_conf_change(
        &mut self,
        cc: ConfChange,
        expected: Option<u64>,
    ) -> Result<u64, ProposeError> {
        self.check_can_propose()?;
        if let Some(x) = expected {
            if x != self.conf_index() {
                return Err(ProposeError::ConfMismatch {
                    current: self.conf_index(),
                });
            }
        }
        if self.pending_conf_index > self.log.committed || self.confs.len() > 1 {
            return Err(ProposeError::ConfChangeInProgress);
        }
        apply_conf_change(self.conf(), &cc)
            .map_err(|e| ProposeError::InvalidConfChange(e.to_string()))?;
        let idx = self.log.last_index() + 1;
        self.pending_conf_index = idx;
        self.append_local(vec![Entry {
            term: self.term,
            index: idx,
            kind: EntryKind::ConfChange,
            data: encode_conf_change(&cc).into(),
        }]);
        Ok(idx)
    }

    /// Called for every entry appended to the log: configurations take effect on append.
    pub(super) fn note_appended(&mut self, e: &Entry) {
        if e.kind != EntryKind::ConfChange {
            return;
        }
        let Some(cc) = decode_conf_change(&e.data) else {
            tracing::error!(index = e.index, "undecodable configuration entry ignored");
            return;
        };
        match apply_conf_change(self.conf(), &cc) {
            Ok(conf) => {
                self.confs.push((e.index, conf));
                self.on_conf_changed();
            }
            Err(err) => tracing::warn!(index = e.index, %err, "configuration entry has no effect"),
        }
    }

    pub(super) fn truncate_confs(&mut self, from: u64) {
        let before = self.confs.len();
        while self.confs.len() > 1 && self.confs.last().is_some_and(|c| c.0 >= from) {
            self.confs.pop();
        }
        if self.confs.len() != before {
            self.on_conf_changed();
        }
    }

    pub(super) fn prune_confs(&mut self) {
        let c = self.log.committed;
        let before = self.confs.len();
        while self.confs.len() > 1 && self.confs[1].0 <= c {
            let (_, committed) = self.confs.remove(0);
            self.on_conf_committed(&committed);
        }
        if self.confs.len() != before {
            let committed = self.confs[0].1.clone();
            self.on_conf_committed(&committed);
            self.forget_non_voter_incarnations();
        }
        if self.role != Role::Leader {
            return;
        }
        // Drop progress of nodes no longer in any pending or committed configuration.
        let members = self.member_ids();
        self.progress.retain(|id, _| members.contains(id));
    }

    pub(super) fn on_conf_changed(&mut self) {
        self.forget_non_voter_incarnations();
        if self.role == Role::Leader {
            let last = self.log.last_index();
            for id in self.member_ids() {
                self.progress.entry(id).or_insert_with(|| {
                    let mut p = Progress::new(
                        last,
                        self.cfg.max_inflight_msgs,
                        self.cfg.max_inflight_bytes,
                    );
                    p.recent_active = true;
                    p
                });
            }
        } else if self.role != Role::Follower && !self.promotable() {
            let term = self.term;
            self.become_follower(term, NO_NODE);
        }
        if self.conf().contains(self.id()) {
            self.removed = false;
        }
    }

    pub(super) fn member_ids(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self
            .confs
            .iter()
            .flat_map(|(_, c)| c.all_members())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}
