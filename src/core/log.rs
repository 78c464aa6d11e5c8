//! The Raft log as the core sees it: durable entries in [`Storage`] plus an unstable tail
//! not yet reported durable, and the commit/apply cursors.

use super::storage::{Storage, StorageError, StorageResult};
use super::types::{Entry, SnapshotMeta};

/// The log: storage + unstable tail + cursors.
pub struct RaftLog<S: Storage> {
    /// Durable part.
    pub storage: S,
    /// Entries not yet reported durable; `unstable[0].index == offset`.
    unstable: Vec<Entry>,
    /// Index of the first unstable entry (or where it will go).
    offset: u64,
    /// A received snapshot not yet reported durable.
    unstable_snapshot: Option<SnapshotMeta>,
    /// Highest index known committed.
    pub committed: u64,
    /// Highest index handed out for applying.
    pub applying: u64,
    /// Highest index the state machine reported applied.
    pub applied: u64,
    /// Highest index reported durable locally (with the term this log holds there).
    pub persisted: u64,
}

impl<S: Storage> RaftLog<S> {
    /// A log over `storage`, with `applied` the state machine's applied index. Refuses an
    /// `applied` index beyond the log's last entry: the state machine holds entries the
    /// storage lost (a lying disk, or a state machine paired with the wrong store), and
    /// starting would apply different entries at those indexes a second time.
    pub fn new(storage: S, commit: u64, applied: u64) -> Result<Self, String> {
        let last = storage.last_index();
        let first = storage.first_index();
        if applied > last {
            return Err(format!(
                "the state machine has applied index {applied} but the log ends at index \
                 {last}: the storage lost entries the state machine already applied"
            ));
        }
        if commit > last {
            // Storage that lost an fsync'd tail: the commit index is relearned from the
            // leader, the lost entries re-replicated.
            tracing::warn!(
                commit,
                last,
                "hard state commit index beyond the last log index; lowering it"
            );
        }
        // Whatever the state machine applied was committed (the hard state's commit index
        // is not rewritten on every advance), so it raises the commit index rather than
        // being lowered to it (which would apply those entries twice).
        let applied = applied.max(first - 1);
        let committed = commit.min(last).max(applied);
        Ok(RaftLog {
            storage,
            unstable: Vec::new(),
            offset: last + 1,
            unstable_snapshot: None,
            committed,
            applying: applied,
            applied,
            persisted: last,
        })
    }

    /// First index available (after the snapshot/compaction point).
    pub fn first_index(&self) -> u64 {
        match &self.unstable_snapshot {
            Some(s) => s.index + 1,
            None => self.storage.first_index(),
        }
    }

    /// Last index of the log.
    pub fn last_index(&self) -> u64 {
        if let Some(e) = self.unstable.last() {
            return e.index;
        }
        match &self.unstable_snapshot {
            Some(s) => s.index,
            None => self.storage.last_index(),
        }
    }

    /// Term of the last entry.
    pub fn last_term(&self) -> u64 {
        self.term(self.last_index()).unwrap_or(0)
    }

    /// Term at `index`.
    pub fn term(&self, index: u64) -> StorageResult<u64> {
        if index >= self.offset {
            return self
                .unstable
                .get((index - self.offset) as usize)
                .map(|e| e.term)
                .ok_or(StorageError::Unavailable);
        }
        if let Some(s) = &self.unstable_snapshot {
            if index == s.index {
                return Ok(s.term);
            }
            return Err(if index < s.index {
                StorageError::Compacted
            } else {
                StorageError::Unavailable
            });
        }
        if index == 0 {
            return Ok(0);
        }
        self.storage.term(index)
    }

    /// True if the log holds `index` with `term`.
    pub fn match_term(&self, index: u64, term: u64) -> bool {
        self.term(index).map(|t| t == term).unwrap_or(false)
    }

    /// True if a candidate's log (last term/index) is at least as up to date as ours.
    pub fn is_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        let our_term = self.last_term();
        last_term > our_term || (last_term == our_term && last_index >= self.last_index())
    }

    /// Entries in `[lo, last]` up to about `max_bytes` (at least one if any exist).
    pub fn entries(&self, lo: u64, max_bytes: u64) -> StorageResult<Vec<Entry>> {
        let hi = self.last_index() + 1;
        self.slice(lo, hi, max_bytes)
    }

    /// Entries in `[lo, hi)` up to about `max_bytes` (at least one if the range is non-empty).
    pub fn slice(&self, lo: u64, hi: u64, max_bytes: u64) -> StorageResult<Vec<Entry>> {
        if lo >= hi {
            return Ok(Vec::new());
        }
        if lo < self.first_index() {
            return Err(StorageError::Compacted);
        }
        if hi > self.last_index() + 1 {
            return Err(StorageError::Unavailable);
        }
        let mut out = Vec::new();
        let mut size = 0u64;
        if lo < self.offset {
            let stored_hi = hi.min(self.offset);
            out = self.storage.entries(lo, stored_hi, max_bytes)?;
            size = out.iter().map(Entry::size).sum();
            if (out.len() as u64) < stored_hi - lo || size >= max_bytes || hi <= self.offset {
                return Ok(out);
            }
        }
        let start = lo.max(self.offset);
        for e in &self.unstable[(start - self.offset) as usize..(hi - self.offset) as usize] {
            size += e.size();
            if !out.is_empty() && size > max_bytes {
                break;
            }
            out.push(e.clone());
        }
        Ok(out)
    }

    /// First index among `entries` whose term conflicts with (or is missing from) our log;
    /// 0 if every entry is already present with the same term.
    fn find_conflict(&self, entries: &[Entry]) -> u64 {
        for e in entries {
            if !self.match_term(e.index, e.term) {
                return e.index;
            }
        }
        0
    }

    /// For fast backtracking: the largest index <= `index` whose term is <= `term`, and that
    /// entry's term.
    pub fn find_conflict_by_term(&self, index: u64, term: u64) -> (u64, u64) {
        let mut i = index;
        loop {
            match self.term(i) {
                Ok(t) if t > term => {
                    if i == 0 {
                        return (0, 0);
                    }
                    i -= 1;
                }
                Ok(t) => return (i, t),
                Err(_) => return (i, 0),
            }
        }
    }

    /// Follower append: if `(prev_index, prev_term)` matches, appends what conflicts or is
    /// new (never truncating on entries that already match) and advances commit to
    /// `min(leader_commit, last new index)`. Returns the last index now known to match, or
    /// `None` if the prev check fails, with the index of the first entry actually appended
    /// (0 if all were already present).
    pub fn maybe_append(
        &mut self,
        prev_index: u64,
        prev_term: u64,
        leader_commit: u64,
        entries: &[Entry],
    ) -> Option<(u64, u64)> {
        if !self.match_term(prev_index, prev_term) {
            return None;
        }
        let last_new = prev_index + entries.len() as u64;
        let conflict = self.find_conflict(entries);
        if conflict != 0 {
            assert!(
                conflict > self.committed,
                "entry {conflict} conflicts with committed entry (commit {})",
                self.committed
            );
            let start = (conflict - prev_index - 1) as usize;
            self.append(&entries[start..]);
        }
        self.commit_to(leader_commit.min(last_new));
        Some((last_new, conflict))
    }

    /// Appends entries at `entries[0].index`, replacing any suffix from there.
    pub fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        let after = first.index;
        assert!(after > self.committed, "truncating committed entries");
        assert!(after <= self.last_index() + 1, "append leaves a gap");
        if after >= self.offset + self.unstable.len() as u64 {
            // Plain extension.
        } else if after <= self.offset {
            // Replace the whole unstable tail (and some stored entries).
            self.offset = after;
            self.unstable.clear();
        } else {
            self.unstable.truncate((after - self.offset) as usize);
        }
        if self.unstable.is_empty() {
            self.offset = after;
        }
        self.persisted = self.persisted.min(after - 1);
        self.unstable.extend_from_slice(entries);
    }

    /// Raises the commit index (never lowers it).
    pub fn commit_to(&mut self, index: u64) {
        if index > self.committed {
            assert!(
                index <= self.last_index(),
                "commit {index} beyond last index {}",
                self.last_index()
            );
            self.committed = index;
        }
    }

    /// Unstable entries to hand out for persistence.
    pub fn unstable_entries(&self) -> &[Entry] {
        &self.unstable
    }

    /// The received snapshot awaiting persistence, if any.
    pub fn unstable_snapshot(&self) -> Option<&SnapshotMeta> {
        self.unstable_snapshot.as_ref()
    }

    /// Storage reported entries up to `(index, term)` durable.
    pub fn stable_to(&mut self, index: u64, term: u64) {
        if index >= self.offset && self.match_term(index, term) {
            let n = (index + 1 - self.offset) as usize;
            self.unstable.drain(..n);
            self.offset = index + 1;
        }
        if index < self.offset && self.match_term(index, term) && index > self.persisted {
            self.persisted = index;
        }
    }

    /// Storage reported the received snapshot at `index` durable.
    pub fn stable_snapshot_to(&mut self, index: u64) {
        if self.unstable_snapshot.as_ref().map(|s| s.index) == Some(index) {
            self.unstable_snapshot = None;
            self.persisted = self.persisted.max(index);
        }
    }

    /// Resets the log to a received snapshot.
    pub fn restore(&mut self, meta: SnapshotMeta) {
        self.committed = meta.index;
        self.applying = self.applying.max(meta.index);
        self.unstable.clear();
        self.offset = meta.index + 1;
        self.persisted = self.persisted.min(meta.index);
        self.unstable_snapshot = Some(meta);
    }

    /// Committed, durable entries not yet handed out for applying (up to `max_bytes`).
    pub fn next_committed_entries(&self, max_bytes: u64) -> Vec<Entry> {
        let hi = self.committed.min(self.persisted);
        if hi <= self.applying || self.unstable_snapshot.is_some() {
            return Vec::new();
        }
        self.slice(self.applying + 1, hi + 1, max_bytes)
            .expect("committed entries must be readable")
    }

    /// True if [`Self::next_committed_entries`] would return something.
    pub fn has_next_committed_entries(&self) -> bool {
        self.unstable_snapshot.is_none() && self.committed.min(self.persisted) > self.applying
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{ConfState, EntryKind, MemStorage};

    fn store(last: u64) -> MemStorage {
        let s = MemStorage::new_with_conf(ConfState::with_voters([1]));
        let es: Vec<Entry> = (1..=last)
            .map(|i| Entry {
                term: 1,
                index: i,
                kind: EntryKind::Normal,
                data: Vec::new().into(),
            })
            .collect();
        s.append(&es);
        s
    }

    #[test]
    fn applied_beyond_the_log_is_refused() {
        let e = RaftLog::new(store(5), 5, 7).err().expect("refused");
        assert!(
            e.contains("applied index 7") && e.contains("ends at index 5"),
            "{e}"
        );
    }

    #[test]
    fn applied_entries_count_as_committed_and_are_not_reapplied() {
        let log = RaftLog::new(store(5), 2, 4).unwrap();
        assert_eq!((log.committed, log.applied, log.applying), (4, 4, 4));
        let log = RaftLog::new(store(5), 9, 1).unwrap();
        assert_eq!((log.committed, log.applied), (5, 1));
    }
}
