//! The deterministic part of applying committed entries: client sessions, membership and
//! the applied index, as a pure function of the log. The apply thread and the simulator run
//! this same code, so every seed exercises the decisions a real node makes.
//!
//! Commands are handed to the state machine in batches, but every decision is the one a
//! one-entry-at-a-time replica would make: a batch is cut before a session command whose
//! client already has a command in it (so a retry sees the first one recorded) and before
//! any index at which a session expires, and the table moves to every index in order.

use super::error::Error;
use super::session::{self, SessionId, SessionTable, Verdict};
use super::state_machine::Committed;
use crate::core::{apply_conf_change, decode_conf_change, ConfState, Entry, EntryKind};

/// The outcome of one applied entry.
pub type EntryResult = Result<Option<Vec<u8>>, Error>;

/// Applies a batch of commands to the state machine (its `apply`): one response each.
pub type ApplyBatch<'a> = dyn FnMut(&[Committed<'_>]) -> Result<Vec<Option<Vec<u8>>>, String> + 'a;

/// Applied state that every replica agrees on at equal applied index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyCore {
    /// Last applied index.
    pub applied: u64,
    /// Term of the last applied entry.
    pub applied_term: u64,
    /// Membership as of `applied`.
    pub conf: ConfState,
    /// Index of the configuration entry in force.
    pub conf_index: u64,
    /// Client sessions (replicated, carried in snapshots).
    pub sessions: SessionTable,
}

enum Pending {
    /// Waits for the state machine's response; records it in the session, if any.
    Apply(Option<SessionId>),
    /// A retry of an applied command: its recorded response; the session is used again.
    Duplicate(u64, Option<Vec<u8>>),
    /// Refused without the state machine.
    Refused(Error),
}

/// Callbacks of [`ApplyCore::apply`].
pub trait ApplyObserver {
    /// Entry `pos` of the input was applied at `index` with `result` (in log order; `None`
    /// for no-op and configuration entries); `sessions` is the table as of `index`.
    fn applied(
        &mut self,
        pos: usize,
        index: u64,
        result: Option<EntryResult>,
        sessions: &SessionTable,
    );
    /// A configuration entry took effect.
    fn conf_changed(&mut self, _conf: &ConfState) {}
}

/// The last index at which a session used at `index` is alive (`u64::MAX`: never expires).
fn deadline(index: u64, expiry: u64) -> u64 {
    if expiry == 0 {
        u64::MAX
    } else {
        index.saturating_add(expiry)
    }
}

impl ApplyCore {
    /// The state of a replica restored from a snapshot (or empty: index 0).
    pub fn new(
        applied: u64,
        applied_term: u64,
        conf: ConfState,
        conf_index: u64,
        sessions: SessionTable,
    ) -> Self {
        ApplyCore {
            applied,
            applied_term,
            conf,
            conf_index,
            sessions,
        }
    }

    /// Applies `entries` (the next ones in log order) through `sm`, reporting each outcome
    /// to `obs` in order. An `Err` is fatal: a gap in the log, an undecodable command or a
    /// failed state machine.
    pub fn apply(
        &mut self,
        sm: &mut ApplyBatch<'_>,
        entries: &[Entry],
        obs: &mut dyn ApplyObserver,
    ) -> Result<(), String> {
        let mut batch: Vec<Committed<'_>> = Vec::new();
        let mut pending: Vec<(usize, u64, u64, Pending)> = Vec::new();
        let mut clients: Vec<u64> = Vec::new();
        // Earliest expiry among the session changes waiting in the batch.
        let mut batch_deadline = u64::MAX;
        let first = self.applied + 1;
        for (pos, e) in entries.iter().enumerate() {
            let expected = first + pos as u64;
            if e.index != expected {
                return Err(format!(
                    "entry {} handed to apply after {}",
                    e.index,
                    expected - 1
                ));
            }
            let cut = match e.kind {
                EntryKind::Normal => {
                    self.sessions.would_expire(e.index) || batch_deadline < e.index
                }
                _ => true,
            };
            let cmd = match e.kind {
                EntryKind::Normal => Some(
                    session::decode(&e.data)
                        .ok_or_else(|| format!("undecodable command at index {}", e.index))?,
                ),
                _ => None,
            };
            let repeat = cmd
                .and_then(|c| c.session)
                .is_some_and(|s| clients.contains(&s.client));
            if cut || repeat {
                self.flush(sm, &mut batch, &mut pending, obs)?;
                clients.clear();
                batch_deadline = u64::MAX;
            }
            self.sessions.advance(e.index);
            let Some(cmd) = cmd else {
                self.apply_internal(e, obs);
                obs.applied(pos, e.index, None, &self.sessions);
                continue;
            };
            let verdict = match cmd.session {
                Some(s) => self.sessions.check(s.client, s.seq),
                None => Verdict::Apply,
            };
            let p = match verdict {
                Verdict::Apply => {
                    batch.push(Committed {
                        index: e.index,
                        term: e.term,
                        data: cmd.data,
                    });
                    if let Some(s) = cmd.session {
                        clients.push(s.client);
                        batch_deadline = batch_deadline.min(deadline(e.index, s.expiry));
                    }
                    Pending::Apply(cmd.session)
                }
                Verdict::Duplicate(resp) => {
                    let client = cmd.session.map_or(0, |s| s.client);
                    let expiry = self.sessions.expiry_of(client).unwrap_or(0);
                    batch_deadline = batch_deadline.min(deadline(e.index, expiry));
                    Pending::Duplicate(client, resp)
                }
                Verdict::Stale => Pending::Refused(Error::Invalid(
                    "session command older than the client's latest one".into(),
                )),
            };
            pending.push((pos, e.index, e.term, p));
        }
        self.flush(sm, &mut batch, &mut pending, obs)
    }

    /// Applies the batch and reports every pending entry in order; when an entry is
    /// reported, the sessions hold exactly the changes of the entries up to it.
    fn flush(
        &mut self,
        sm: &mut ApplyBatch<'_>,
        batch: &mut Vec<Committed<'_>>,
        pending: &mut Vec<(usize, u64, u64, Pending)>,
        obs: &mut dyn ApplyObserver,
    ) -> Result<(), String> {
        let responses = if batch.is_empty() {
            Vec::new()
        } else {
            let first = batch[0].index;
            sm(batch).map_err(|e| format!("state machine apply failed at index {first}: {e}"))?
        };
        batch.clear();
        let mut responses = responses.into_iter();
        for (pos, index, term, p) in pending.drain(..) {
            let result = match p {
                Pending::Apply(sess) => {
                    let resp = responses.next().flatten();
                    if let Some(s) = sess {
                        self.sessions.record(s, index, resp.clone());
                    }
                    Ok(resp)
                }
                Pending::Duplicate(client, resp) => {
                    self.sessions.touch(client, index);
                    Ok(resp)
                }
                Pending::Refused(e) => Err(e),
            };
            self.applied = index;
            self.applied_term = term;
            obs.applied(pos, index, Some(result), &self.sessions);
        }
        Ok(())
    }

    fn apply_internal(&mut self, e: &Entry, obs: &mut dyn ApplyObserver) {
        if e.kind == EntryKind::ConfChange {
            if let Some(cc) = decode_conf_change(&e.data) {
                if let Ok(c) = apply_conf_change(&self.conf, &cc) {
                    self.conf = c;
                    self.conf_index = e.index;
                    obs.conf_changed(&self.conf);
                }
            }
        }
        self.applied = e.index;
        self.applied_term = e.term;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::session::{encode_plain, encode_session};
    use crate::runtime::StateMachine;

    /// Counts applications per command and answers with the running count.
    #[derive(Default)]
    struct Counter {
        applied: Vec<Vec<u8>>,
        batches: usize,
    }

    impl StateMachine for Counter {
        fn apply(&mut self, batch: &[Committed<'_>]) -> Result<Vec<Option<Vec<u8>>>, String> {
            self.batches += 1;
            Ok(batch
                .iter()
                .map(|c| {
                    self.applied.push(c.data.to_vec());
                    Some(self.applied.len().to_le_bytes().to_vec())
                })
                .collect())
        }
        fn snapshot(&mut self, _: &mut dyn std::io::Write) -> Result<(), String> {
            Ok(())
        }
        fn restore(&mut self, _: &mut dyn std::io::Read) -> Result<(), String> {
            Ok(())
        }
    }

    /// Every outcome with the session table's digest as of its index.
    #[derive(Default)]
    struct Results(Vec<(u64, Option<EntryResult>, u64)>);

    impl ApplyObserver for Results {
        fn applied(&mut self, _: usize, index: u64, r: Option<EntryResult>, s: &SessionTable) {
            self.0.push((index, r, s.digest()));
        }
    }

    fn entry(index: u64, data: Vec<u8>) -> Entry {
        Entry {
            term: 1,
            index,
            kind: EntryKind::Normal,
            data: data.into(),
        }
    }

    fn sess(client: u64, seq: u64, expiry: u64, data: &[u8]) -> Vec<u8> {
        encode_session(
            SessionId {
                client,
                seq,
                expiry,
            },
            data,
        )
    }

    /// Applies `entries` split into runs at `cuts`; returns the state, the commands the
    /// state machine saw and every result.
    fn run(entries: &[Entry], cuts: &[usize]) -> (ApplyCore, Vec<Vec<u8>>, Results) {
        let mut core = ApplyCore::default();
        let mut sm = Counter::default();
        let mut res = Results::default();
        let mut start = 0;
        for &c in cuts.iter().chain([entries.len()].iter()) {
            core.apply(&mut |b| sm.apply(b), &entries[start..c], &mut res)
                .unwrap();
            start = c;
        }
        (core, sm.applied, res)
    }

    #[test]
    fn a_retry_in_the_same_run_is_answered_not_applied_again() {
        let entries = vec![
            entry(1, sess(7, 1, 100, b"a")),
            entry(2, sess(7, 1, 100, b"a")),
            entry(3, sess(7, 2, 100, b"b")),
            entry(4, sess(7, 1, 100, b"a")),
            entry(5, encode_plain(b"p")),
        ];
        let (core, applied, res) = run(&entries, &[]);
        assert_eq!(applied, vec![b"a".to_vec(), b"b".to_vec(), b"p".to_vec()]);
        let r: Vec<_> = res.0.iter().map(|(_, r, _)| r.clone().unwrap()).collect();
        assert_eq!(r[0], r[1], "the retry gets the first answer");
        assert!(matches!(r[3], Err(Error::Invalid(_))), "older seq refused");
        assert_eq!(core.applied, 5);
    }

    #[test]
    fn outcome_does_not_depend_on_how_the_log_is_cut_into_runs() {
        // Client 1 expires after 2 entries of disuse, so its retry at 5 applies again.
        let entries: Vec<Entry> = vec![
            entry(1, sess(1, 1, 2, b"x")),
            entry(2, sess(2, 1, 50, b"y")),
            entry(3, sess(2, 2, 50, b"y2")),
            entry(4, sess(2, 2, 50, b"y2")),
            entry(5, sess(1, 1, 2, b"x")),
            entry(6, sess(2, 1, 50, b"y")),
        ];
        let (whole, applied, res) = run(&entries, &[]);
        assert_eq!(applied.len(), 4, "x, y, y2, and x again after expiry");
        for cuts in [vec![1], vec![2, 4], vec![1, 2, 3, 4, 5], vec![3]] {
            let (c, a, r) = run(&entries, &cuts);
            assert_eq!(c, whole, "cuts {cuts:?}");
            assert_eq!(a, applied, "cuts {cuts:?}");
            assert_eq!(r.0, res.0, "cuts {cuts:?}");
        }
    }

    #[test]
    fn a_session_recorded_and_expired_inside_one_run_is_expired() {
        // Client 1 (expiry 1) is recorded at 1 and expired at 3, within what could be one
        // batch; client 2 is touched at 3 (a duplicate) and must outlive it.
        let entries: Vec<Entry> = vec![
            entry(1, sess(1, 1, 1, b"x")),
            entry(2, sess(2, 1, 2, b"y")),
            entry(3, sess(2, 1, 2, b"y")),
            entry(4, encode_plain(b"p")),
            entry(5, sess(1, 1, 1, b"x")),
        ];
        let (whole, applied, res) = run(&entries, &[]);
        assert_eq!(
            applied.len(),
            4,
            "x, y, p, then x again: its session expired at 3"
        );
        assert_eq!(whole.sessions.len(), 2);
        for cuts in [vec![1], vec![2], vec![3], vec![4], vec![1, 2, 3, 4]] {
            let (c, a, r) = run(&entries, &cuts);
            assert_eq!(
                (c, a, r.0),
                (whole.clone(), applied.clone(), res.0.clone()),
                "{cuts:?}"
            );
        }
    }

    #[test]
    fn gaps_and_garbage_are_fatal() {
        let mut core = ApplyCore::default();
        let mut sm = Counter::default();
        let mut res = Results::default();
        let mut sm = |b: &[Committed<'_>]| sm.apply(b);
        assert!(core
            .apply(&mut sm, &[entry(2, encode_plain(b"x"))], &mut res)
            .is_err());
        assert!(core.apply(&mut sm, &[entry(1, vec![9])], &mut res).is_err());
    }
}
