//! Snapshots: the leader's chunked snapshot sending with a window, and the follower's
//! chunk reception, resumption and installation.

use super::{Raft, SnapshotChunk};
use crate::core::message::MessageBody;
use crate::core::progress::ProgressState;
use crate::core::storage::{Storage, StorageError};
use crate::core::types::{NodeId, SnapshotMeta, NO_NODE};

/// A snapshot being received.
#[derive(Debug, Clone)]
pub(super) struct Incoming {
    pub(super) meta: SnapshotMeta,
    pub(super) next_offset: u64,
    pub(super) complete: bool,
}

impl<S: Storage> Raft<S> {
    pub(super) fn handle_snapshot_chunk(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        offset: u64,
        data: Vec<u8>,
        done: bool,
    ) {
        let max = self.cfg.max_snapshot_bytes;
        let end = offset.checked_add(data.len() as u64);
        if meta.size > max || end.is_none_or(|e| e > max) {
            tracing::warn!(
                from,
                size = meta.size,
                max,
                "snapshot above max_snapshot_bytes refused"
            );
            self.refused_messages += 1;
            return;
        }
        if meta.index <= self.log.committed {
            // Already have everything the snapshot covers.
            self.send_after_persist(
                from,
                self.term,
                MessageBody::SnapshotResponse {
                    index: meta.index,
                    next_offset: meta.size,
                    done: true,
                    reject: false,
                },
            );
            return;
        }
        let same = self
            .incoming
            .as_ref()
            .is_some_and(|i| i.meta.same_snapshot(&meta));
        if !same {
            if offset != 0 {
                self.send(
                    from,
                    MessageBody::SnapshotResponse {
                        index: meta.index,
                        next_offset: 0,
                        done: false,
                        reject: true,
                    },
                );
                return;
            }
            self.incoming = Some(Incoming {
                meta: meta.clone(),
                next_offset: 0,
                complete: false,
            });
        }
        let inc = self.incoming.as_mut().expect("incoming snapshot");
        if inc.complete || offset != inc.next_offset {
            let next = inc.next_offset;
            if !inc.complete {
                self.send(
                    from,
                    MessageBody::SnapshotResponse {
                        index: meta.index,
                        next_offset: next,
                        done: false,
                        reject: false,
                    },
                );
            }
            return;
        }
        inc.next_offset += data.len() as u64;
        inc.complete = done;
        let next = inc.next_offset;
        self.snapshot_chunks.push(SnapshotChunk {
            meta: meta.clone(),
            offset,
            data,
            done,
        });
        if !done {
            self.send_after_persist(
                from,
                self.term,
                MessageBody::SnapshotResponse {
                    index: meta.index,
                    next_offset: next,
                    done: false,
                    reject: false,
                },
            );
        }
    }

    /// Storage finished (or failed) installing a fully received snapshot.
    pub fn snapshot_received(&mut self, meta: &SnapshotMeta, ok: bool) {
        let Some(inc) = self.incoming.take() else {
            return;
        };
        if !inc.meta.same_snapshot(meta) {
            self.incoming = Some(inc);
            return;
        }
        let to = self.leader;
        if !ok {
            if to != NO_NODE {
                self.send(
                    to,
                    MessageBody::SnapshotResponse {
                        index: meta.index,
                        next_offset: 0,
                        done: false,
                        reject: true,
                    },
                );
            }
            return;
        }
        // Storage has dropped the entries the snapshot covers; the state machine must
        // restore it unless it has already applied past it.
        if meta.index > self.log.applying {
            if self.log.match_term(meta.index, meta.term) {
                self.log.commit_to(meta.index);
                self.log.applying = meta.index;
            } else {
                self.log.restore(meta.clone());
            }
            // The snapshot's configuration is the committed one up to its index. Local
            // configurations at or below it may come from a log the snapshot replaced (the
            // store may already answer `match_term` from the new snapshot), so they must
            // not become "committed" here; later ones still in the log stay.
            let last = self.log.last_index();
            let tail: Vec<_> = self
                .confs
                .drain(..)
                .filter(|c| c.0 > meta.index && c.0 <= last)
                .collect();
            self.confs = vec![(meta.conf_index, meta.conf.clone())];
            self.confs.extend(tail);
            self.on_conf_committed(&meta.conf);
            self.pending_restore = Some(meta.clone());
        }
        if to != NO_NODE {
            self.send_after_persist(
                to,
                self.term,
                MessageBody::SnapshotResponse {
                    index: meta.index,
                    next_offset: meta.size,
                    done: true,
                    reject: false,
                },
            );
        }
    }

    pub(super) fn handle_snapshot_response(
        &mut self,
        from: NodeId,
        index: u64,
        next_offset: u64,
        done: bool,
        reject: bool,
    ) {
        let Some(p) = self.progress.get_mut(&from) else {
            return;
        };
        if p.state != ProgressState::Snapshot {
            return;
        }
        let Some(s) = p.snapshot.as_mut() else { return };
        if s.meta.index != index {
            return;
        }
        s.stalled_rounds = 0;
        if done {
            p.matched = p.matched.max(index);
            p.become_probe();
            p.next = p.next.max(index + 1);
            self.send_append(from);
            return;
        }
        if reject {
            s.acked = next_offset;
            s.sent = next_offset;
            s.sent_done = false;
        } else {
            s.acked = s.acked.max(next_offset);
            if s.sent < s.acked || next_offset < s.acked {
                s.sent = s.acked;
            }
            if next_offset < s.sent && next_offset == s.acked {
                // The follower asks to resume from where its durable prefix ends.
                s.sent = next_offset;
                s.sent_done = false;
            }
        }
        self.send_snapshot_chunks(from);
    }

    pub(super) fn start_snapshot(&mut self, to: NodeId) {
        let meta = self.log.storage.snapshot_meta();
        if meta.index == 0 {
            tracing::error!(to, "log compacted but no snapshot to send");
            return;
        }
        tracing::debug!(to, index = meta.index, "sending snapshot");
        self.progress
            .get_mut(&to)
            .expect("progress")
            .become_snapshot(meta);
        self.send_snapshot_chunks(to);
    }

    pub(super) fn send_snapshot_chunks(&mut self, to: NodeId) {
        loop {
            let Some(p) = self.progress.get(&to) else {
                return;
            };
            let Some(s) = p.snapshot.as_ref() else { return };
            let window = self.cfg.snapshot_window * self.cfg.snapshot_chunk_bytes as u64;
            if s.sent_done || s.sent - s.acked >= window {
                return;
            }
            let (index, offset, size) = (s.meta.index, s.sent, s.meta.size);
            let data =
                match self
                    .log
                    .storage
                    .snapshot_chunk(index, offset, self.cfg.snapshot_chunk_bytes)
                {
                    Ok(d) => d,
                    Err(StorageError::SnapshotOutOfDate) => {
                        // A newer snapshot replaced it: start over with that one.
                        self.start_snapshot(to);
                        return;
                    }
                    Err(e) => {
                        tracing::error!(%e, "cannot read snapshot chunk");
                        return;
                    }
                };
            let done = offset + data.len() as u64 >= size;
            let p = self.progress.get_mut(&to).expect("progress");
            let s = p.snapshot.as_mut().expect("snapshot transfer");
            let meta = s.meta.clone();
            s.sent += data.len() as u64;
            s.sent_done = done;
            self.send(
                to,
                MessageBody::Snapshot {
                    meta,
                    offset,
                    data,
                    done,
                },
            );
            if done {
                return;
            }
        }
    }
}
