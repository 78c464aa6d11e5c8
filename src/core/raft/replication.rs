//! Log replication: the follower's append handling, the leader's progress tracking and
//! append sending, commitment by quorum (own-term rule, Figure 8), persistence callbacks
//! and proposals.

use super::{encode_conf_change, ProposeError, Raft, Role};
use crate::core::message::{Message, MessageBody};
use crate::core::progress::ProgressState;
use crate::core::quorum;
use crate::core::storage::{Storage, StorageError};
use crate::core::types::{ConfChange, Entry, EntryKind, NodeId, NO_NODE};

impl<S: Storage> Raft<S> {
    pub(super) fn handle_leader_message(&mut self, m: Message) {
        match m.body {
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            } => self.handle_append(m.from, prev_index, prev_term, entries, commit),
            MessageBody::Heartbeat { commit, read_ctx } => {
                let c = commit.min(self.log.last_index());
                self.log.commit_to(c);
                self.send(m.from, MessageBody::HeartbeatResponse { read_ctx });
            }
            MessageBody::Snapshot {
                meta,
                offset,
                data,
                done,
            } => self.handle_snapshot_chunk(m.from, meta, offset, data, done),
            _ => {}
        }
        // The commit index may have moved: configurations it covers are now committed.
        self.prune_confs();
    }

    pub(super) fn handle_append(
        &mut self,
        from: NodeId,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        commit: u64,
    ) {
        if self.incoming.as_ref().is_some_and(|i| i.complete) {
            // A received snapshot is being installed; the leader will retry.
            return;
        }
        if prev_index < self.log.committed {
            let idx = self.log.committed;
            self.send_after_persist(
                from,
                self.term,
                MessageBody::AppendResponse {
                    index: idx,
                    reject: false,
                    hint_index: 0,
                    hint_term: 0,
                },
            );
            return;
        }
        let old_last = self.log.last_index();
        match self
            .log
            .maybe_append(prev_index, prev_term, commit, &entries)
        {
            Some((last_new, first_appended)) => {
                if first_appended != 0 {
                    if first_appended <= old_last {
                        self.truncate_confs(first_appended);
                    }
                    let skip = (first_appended - prev_index - 1) as usize;
                    for e in &entries[skip..] {
                        self.note_appended(e);
                    }
                }
                self.send_after_persist(
                    from,
                    self.term,
                    MessageBody::AppendResponse {
                        index: last_new,
                        reject: false,
                        hint_index: 0,
                        hint_term: 0,
                    },
                );
            }
            None => {
                let probe = prev_index.min(self.log.last_index());
                let (hint_index, hint_term) = self.log.find_conflict_by_term(probe, prev_term);
                self.send(
                    from,
                    MessageBody::AppendResponse {
                        index: prev_index,
                        reject: true,
                        hint_index,
                        hint_term,
                    },
                );
            }
        }
    }

    pub(super) fn handle_append_response(
        &mut self,
        from: NodeId,
        index: u64,
        reject: bool,
        hint_index: u64,
        hint_term: u64,
    ) {
        if !self.progress.contains_key(&from) {
            return;
        }
        if reject {
            if index == 0 && hint_index == 0 {
                return; // notification of a higher term handled by the term check
            }
            let next_probe = if hint_term > 0 {
                self.log.find_conflict_by_term(hint_index, hint_term).0 + 1
            } else {
                hint_index + 1
            };
            let p = self.progress.get_mut(&from).expect("progress");
            if p.maybe_decr_to(index, next_probe) {
                if p.state == ProgressState::Replicate {
                    p.become_probe();
                }
                self.send_append(from);
            }
            return;
        }
        let p = self.progress.get_mut(&from).expect("progress");
        // A probe answered at the match point also proves the match (etcd-io/raft does the
        // same): without this the follower would wait for a heartbeat to unpause it.
        let probe_matched = p.state == ProgressState::Probe && index == p.matched;
        let moved = p.maybe_update(index) || probe_matched;
        p.inflights.free_to(index);
        if moved {
            match p.state {
                ProgressState::Probe => p.become_replicate(),
                ProgressState::Snapshot => {
                    if p.snapshot
                        .as_ref()
                        .is_none_or(|s| p.matched >= s.meta.index)
                    {
                        p.become_probe();
                    }
                }
                ProgressState::Replicate => {}
            }
            if self.maybe_commit() {
                self.bcast_pending = true;
            }
            if from == self.transferee && self.progress[&from].matched == self.log.last_index() {
                self.send(from, MessageBody::TimeoutNow);
            }
        }
        // The answer freed room in the window (or ended a probe): fill it at once, so a
        // lagging follower gets a pipeline of byte-bounded appends, not one per round trip.
        while self.maybe_send_append(from, false) {}
    }

    /// Appends entries at the leader and schedules replication.
    pub(super) fn append_local(&mut self, mut entries: Vec<Entry>) {
        let first = self.log.last_index() + 1;
        for (next, e) in (first..).zip(entries.iter_mut()) {
            e.term = self.term;
            e.index = next;
        }
        for e in &entries {
            if e.kind == EntryKind::Normal {
                self.uncommitted.push_back((e.index, e.size()));
                self.uncommitted_bytes += e.size();
            }
        }
        self.log.append(&entries);
        for e in &entries {
            self.note_appended(e);
        }
        self.bcast_pending = true;
    }

    pub(super) fn maybe_commit(&mut self) -> bool {
        let id = self.id();
        let persisted = self.log.persisted;
        let prog = &self.progress;
        let idx = quorum::committed_index(self.conf(), |n| {
            if n == id {
                persisted
            } else {
                prog.get(&n).map(|p| p.matched).unwrap_or(0)
            }
        });
        // Only entries of the current term are committed by counting (Figure 8).
        if idx > self.log.committed && self.log.term(idx) == Ok(self.term) {
            let first_own_term = self
                .log
                .term(self.log.committed)
                .map(|t| t != self.term)
                .unwrap_or(true);
            self.log.commit_to(idx);
            self.on_committed(first_own_term);
            return true;
        }
        false
    }

    pub(super) fn on_committed(&mut self, first_own_term: bool) {
        let c = self.log.committed;
        while let Some(&(i, b)) = self.uncommitted.front() {
            if i > c {
                break;
            }
            self.uncommitted_bytes -= b;
            self.uncommitted.pop_front();
        }
        self.prune_confs();
        if first_own_term {
            let waiting: Vec<_> = self.reads_waiting.drain(..).collect();
            for (ctx, from) in waiting {
                self.read_index_from(ctx, from);
            }
        }
        if self.role != Role::Leader {
            return;
        }
        // Leave joint consensus automatically once C_old,new commits.
        if self.conf().is_joint() && self.conf_index() <= c && self.pending_conf_index <= c {
            let data = encode_conf_change(&ConfChange::LeaveJoint);
            let idx = self.log.last_index() + 1;
            self.pending_conf_index = idx;
            self.append_local(vec![Entry {
                term: self.term,
                index: idx,
                kind: EntryKind::ConfChange,
                data: data.into(),
            }]);
        }
        // A leader removed by a committed configuration hands over and steps down.
        if !self.conf().is_voter(self.id()) && self.conf_index() <= c && !self.conf().is_joint() {
            tracing::info!(
                node = self.id(),
                "removed from the configuration; stepping down"
            );
            if let Some(to) = self.most_up_to_date_voter() {
                self.send_append(to);
                self.send(to, MessageBody::TimeoutNow);
            }
            let term = self.term;
            self.become_follower(term, NO_NODE);
            self.removed = !self.conf().contains(self.id());
        }
    }

    /// Sends what a follower needs next (entries, or a snapshot), even if that is an empty
    /// append (to probe or carry the commit index).
    pub(super) fn send_append(&mut self, to: NodeId) {
        self.maybe_send_append(to, true);
    }

    /// Sends what a follower needs next; with `send_if_empty` false nothing is sent when
    /// there are no new entries (no append/ack ping-pong). Returns true if an append carrying
    /// entries was sent (the caller may call again to fill the flow-control window).
    pub(super) fn maybe_send_append(&mut self, to: NodeId, send_if_empty: bool) -> bool {
        if to == self.id() {
            return false;
        }
        let Some(p) = self.progress.get(&to) else {
            return false;
        };
        if p.state == ProgressState::Snapshot {
            self.send_snapshot_chunks(to);
            return false;
        }
        if p.is_paused() {
            return false;
        }
        let next = p.next;
        let prev_index = next - 1;
        let prev_term = self.log.term(prev_index);
        let entries = self.log.entries(next, self.cfg.max_msg_bytes);
        let (prev_term, entries) = match (prev_term, entries) {
            (Ok(_), Ok(e)) if e.is_empty() && !send_if_empty => return false,
            (Ok(t), Ok(e)) => (t, e),
            (Err(StorageError::Compacted), _) | (_, Err(StorageError::Compacted)) => {
                self.start_snapshot(to);
                return false;
            }
            (Ok(t), Err(StorageError::Unavailable)) => (t, Vec::new()),
            (a, b) => {
                tracing::error!(?a, ?b, "cannot read log for replication");
                return false;
            }
        };
        let sent_entries = !entries.is_empty();
        let commit = self.log.committed;
        let p = self.progress.get_mut(&to).expect("progress");
        let bytes: u64 = entries.iter().map(Entry::size).sum();
        if let Some(last) = entries.last() {
            if p.state == ProgressState::Replicate {
                p.next = last.index + 1;
                p.inflights.add(last.index, bytes);
            } else {
                p.probe_sent = true;
            }
        } else if p.state == ProgressState::Probe {
            p.probe_sent = true;
        }
        self.send(
            to,
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            },
        );
        sent_entries
    }

    /// Sends every follower what it needs next, filling each flow-control window.
    pub(super) fn bcast_append(&mut self) {
        let ids: Vec<NodeId> = self.progress.keys().copied().collect();
        for id in ids {
            if self.maybe_send_append(id, true) {
                while self.maybe_send_append(id, false) {}
            }
        }
    }

    /// Broadcasts a heartbeat round: every broadcast gets the next round number, and the
    /// tick it was sent at is kept for lease reads.
    pub(super) fn bcast_heartbeat(&mut self) {
        self.read_round += 1;
        self.read_bcast_pending = false;
        let read_ctx = self.read_round;
        let now = self.ticks;
        if self.round_ticks.back().is_none_or(|&(_, t)| t != now) {
            self.round_ticks.push_back((read_ctx, now));
        }
        // Rounds sent an election timeout ago or earlier can no longer hold a lease.
        let et = self.cfg.election_ticks;
        while self
            .round_ticks
            .front()
            .is_some_and(|&(_, t)| now - t >= et)
        {
            self.round_ticks.pop_front();
        }
        let ids: Vec<NodeId> = self.progress.keys().copied().collect();
        let committed = self.log.committed;
        for id in ids {
            if id == self.id() {
                continue;
            }
            let m = self.progress[&id].matched;
            self.send(
                id,
                MessageBody::Heartbeat {
                    commit: m.min(committed),
                    read_ctx,
                },
            );
        }
        // A single voter acknowledges its own round at once.
        self.advance_reads();
    }

    /// True if batched appends or a read round wait for [`Self::flush`].
    pub fn has_pending_broadcast(&self) -> bool {
        self.role == Role::Leader && (self.bcast_pending || self.read_bcast_pending)
    }

    /// Sends pending broadcasts (batched appends and read rounds); called once per ready.
    pub fn flush(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        if self.bcast_pending {
            self.bcast_pending = false;
            self.bcast_append();
        }
        if self.read_bcast_pending {
            self.bcast_heartbeat();
        }
    }

    /// Storage reported entries/hard state durable up to `(index, term)`.
    pub fn on_persisted(&mut self, index: u64, term: u64) {
        self.log.stable_to(index, term);
        if self.role == Role::Leader {
            let id = self.id();
            let persisted = self.log.persisted;
            if let Some(p) = self.progress.get_mut(&id) {
                p.matched = p.matched.max(persisted);
                p.next = p.next.max(persisted + 1);
            }
            if self.maybe_commit() {
                self.bcast_pending = true;
            }
        }
    }

    /// Appends a batch of commands; returns the index of the first one.
    pub fn propose(&mut self, commands: Vec<Vec<u8>>) -> Result<u64, ProposeError> {
        self.check_can_propose()?;
        let bytes: u64 = commands.iter().map(|c| c.len() as u64 + 24).sum();
        if self.uncommitted_bytes > 0
            && self.uncommitted_bytes + bytes > self.cfg.max_uncommitted_bytes
        {
            return Err(ProposeError::Busy);
        }
        let first = self.log.last_index() + 1;
        let entries = commands
            .into_iter()
            .map(|data| Entry {
                term: 0,
                index: 0,
                kind: EntryKind::Normal,
                data: data.into(),
            })
            .collect();
        self.append_local(entries);
        Ok(first)
    }

    pub(super) fn check_can_propose(&self) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader(self.leader));
        }
        if self.transferee != NO_NODE {
            return Err(ProposeError::TransferInProgress);
        }
        Ok(())
    }
}
