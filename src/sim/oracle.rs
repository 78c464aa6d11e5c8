//! Step oracles: checks that look at one node, one message or one read at the moment it
//! happens, from facts the simulator observes (disks, deliveries, times), never from the
//! core's own bookkeeping. Each check is a plain function over plain data, so the tests
//! below feed them hand-built histories and show that each fires on the bug it is for.
//!
//! The quorum arithmetic here is the checker's own ([`majority`]); it deliberately does not
//! reuse the core's, so a bug there cannot hide itself.

use crate::core::{ConfState, Message, MessageBody, NodeId};
use std::collections::BTreeMap;

/// True if the nodes for which `has` holds are a majority of every non-empty half of
/// `conf` (learners never count). An empty configuration has no quorum.
pub fn majority(conf: &ConfState, has: impl Fn(NodeId) -> bool) -> bool {
    let half = |vs: &[NodeId]| {
        let mut ids = vs.to_vec();
        ids.sort_unstable();
        ids.dedup();
        ids.is_empty() || ids.iter().filter(|&&v| has(v)).count() * 2 > ids.len()
    };
    !(conf.voters.is_empty() && conf.voters_outgoing.is_empty())
        && half(&conf.voters)
        && half(&conf.voters_outgoing)
}

/// What a node's disk durably holds, as far as promises go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Durable {
    /// Durable term.
    pub term: u64,
    /// Durable vote in that term (0 for none).
    pub vote: NodeId,
    /// Last durable log index.
    pub last_index: u64,
    /// Index covered by the durable snapshot.
    pub snapshot_index: u64,
}

/// Durability before send: a message that promises something (a vote, a candidacy, entries
/// or an installed snapshot) may leave its sender only once the sender's disk holds that
/// promise; a message released after persistence (`persisted`) may also not carry a term
/// the disk does not hold. A promise made in a term the disk has already left is stale and
/// harmless (the node durably moved on), so it is not held against the sender.
pub fn check_promise(d: &Durable, m: &Message, persisted: bool) -> Result<(), String> {
    if persisted && d.term < m.term {
        return Err(format!(
            "node {} released a term-{} message {:?} with only term {} on disk",
            m.from, m.term, m.body, d.term
        ));
    }
    let holds_vote =
        |voted_for: NodeId| d.term > m.term || (d.term == m.term && d.vote == voted_for);
    match &m.body {
        MessageBody::Vote {
            pre_vote: false, ..
        } if !holds_vote(m.from) => Err(format!(
            "candidate {} asked for votes in term {} before its own vote was durable (disk: term {} vote {})",
            m.from, m.term, d.term, d.vote
        )),
        MessageBody::VoteResponse {
            pre_vote: false,
            reject: false,
        } if !holds_vote(m.to) => Err(format!(
            "node {} granted its term-{} vote to {} before the vote was durable (disk: term {} vote {})",
            m.from, m.term, m.to, d.term, d.vote
        )),
        MessageBody::AppendResponse {
            index,
            reject: false,
            ..
        }
        | MessageBody::SnapshotResponse {
            index,
            done: true,
            reject: false,
            ..
        } if d.term <= m.term && *index > d.last_index.max(d.snapshot_index) => Err(format!(
            "node {} acknowledged index {index} in term {} with only {} durable",
            m.from,
            m.term,
            d.last_index.max(d.snapshot_index)
        )),
        _ => Ok(()),
    }
}

/// Terms never decrease along a log: checks `lo..=hi` (`term(i)` is `None` where the log no
/// longer or not yet holds index `i`).
pub fn check_terms_nondecreasing(
    term: impl Fn(u64) -> Option<u64>,
    lo: u64,
    hi: u64,
) -> Result<(), String> {
    let mut prev: Option<(u64, u64)> = None;
    for i in lo..=hi {
        let Some(t) = term(i) else { continue };
        if let Some((pi, pt)) = prev {
            if t < pt {
                return Err(format!("term {t} at index {i} follows term {pt} at {pi}"));
            }
        }
        prev = Some((i, t));
    }
    Ok(())
}

/// A view of one log for the commit checks.
pub struct LogView<'a> {
    /// Commit index.
    pub commit: u64,
    /// Last index.
    pub last_index: u64,
    /// Term at an index, `None` if compacted or absent.
    pub term: &'a dyn Fn(u64) -> Option<u64>,
}

/// A follower's commit never exceeds what it matched with the leader of its term: the
/// leader holds the follower's commit index, with the same term there.
pub fn check_follower_commit(f: &LogView, leader: &LogView) -> Result<(), String> {
    let c = f.commit;
    if c == 0 {
        return Ok(());
    }
    if c > leader.last_index {
        return Err(format!(
            "follower committed {c} beyond the leader's last index {}",
            leader.last_index
        ));
    }
    match ((f.term)(c), (leader.term)(c)) {
        (Some(a), Some(b)) if a != b => Err(format!(
            "follower committed term {a} at {c} where its leader has term {b}"
        )),
        _ => Ok(()),
    }
}

/// A leader advances its commit index by counting only onto an entry of its own term
/// (Raft §5.4.2, Figure 8): `term_at_new_commit` is its log's term at the new commit index.
pub fn check_leader_commit(
    leader_term: u64,
    old_commit: u64,
    new_commit: u64,
    term_at_new_commit: Option<u64>,
) -> Result<(), String> {
    if new_commit > old_commit && term_at_new_commit.is_some_and(|t| t != leader_term) {
        return Err(format!(
            "leader of term {leader_term} advanced commit {old_commit} -> {new_commit} onto a term-{} entry",
            term_at_new_commit.unwrap_or(0)
        ));
    }
    Ok(())
}

/// Check-quorum: a leader that has led (in an unchanged configuration) for longer than
/// `window` must have heard from a quorum within the last `window`; `heard(n)` says whether
/// a message of its term from `n` arrived in that window. (The core checks every election
/// timeout that a quorum was active since the previous check, so a leader still in office
/// heard a quorum within the last two timeouts.)
pub fn check_leader_heard(
    leader: NodeId,
    conf: &ConfState,
    heard: impl Fn(NodeId) -> bool,
) -> Result<(), String> {
    if majority(conf, |n| n == leader || heard(n)) {
        Ok(())
    } else {
        Err(format!(
            "leader {leader} still leads without having heard from a quorum of {:?} within two election timeouts",
            conf.voters
        ))
    }
}

/// Reads are answered only at an index the leader proved current.
///
/// A read invoked when the cluster had committed up to `min_index` must be answered at or
/// after it; and the leader must prove, after the request reached it, that it still led:
/// every node of a quorum of its configuration sent it a heartbeat answer in its term after
/// that moment (a node that answered in term T at time t had not voted in any later term by
/// t, so no newer leader existed when the request arrived). With lease reads the proof is a
/// quorum heard within the lease window instead.
#[derive(Default)]
pub struct ReadOracle {
    /// (leader, peer, term) -> creation time of the peer's latest heartbeat answer.
    hb: BTreeMap<(NodeId, NodeId, u64), u64>,
    /// (leader, peer, term) -> arrival time of the peer's latest message of that term
    /// (pre-vote messages excluded: they carry a term their sender is not in).
    any: BTreeMap<(NodeId, NodeId, u64), u64>,
    /// (leader, origin, ctx) -> (time the request reached the leader, min index).
    requests: BTreeMap<(NodeId, NodeId, u64), (u64, u64)>,
    /// (origin, ctx) -> min index at invocation, for reads forwarded to a leader.
    invoked: BTreeMap<(NodeId, u64), u64>,
    /// Highest commit index any node has known so far.
    pub max_commit: u64,
}

/// How a leader may prove it is current.
#[derive(Debug, Clone, Copy)]
pub enum Proof {
    /// A quorum round after the request.
    Round,
    /// A lease: a quorum heard within this many ms.
    Lease(u64),
}

impl ReadOracle {
    /// A message from `m.from` created at `sent_at` reached `m.to` at `now`.
    pub fn on_deliver(&mut self, m: &Message, sent_at: u64, now: u64) {
        let key = (m.to, m.from, m.term);
        if let MessageBody::HeartbeatResponse { .. } = m.body {
            let e = self.hb.entry(key).or_insert(sent_at);
            *e = (*e).max(sent_at);
        }
        if let MessageBody::ReadIndex { ctx } = m.body {
            // A duplicated request keeps the first arrival (the answer may be to either).
            let min = self
                .invoked
                .remove(&(m.from, ctx))
                .unwrap_or(self.max_commit);
            self.requests
                .entry((m.to, m.from, ctx))
                .or_insert((now, min));
        }
        let pre_vote = matches!(
            m.body,
            MessageBody::Vote { pre_vote: true, .. }
                | MessageBody::VoteResponse { pre_vote: true, .. }
        );
        if !pre_vote {
            let e = self.any.entry(key).or_insert(now);
            *e = (*e).max(now);
        }
    }

    /// True if a message of `term` from `peer` reached `leader` at or after `since`.
    pub fn heard_since(&self, leader: NodeId, peer: NodeId, term: u64, since: u64) -> bool {
        self.any
            .get(&(leader, peer, term))
            .is_some_and(|&at| at >= since)
    }

    /// A client asked `node` for a read index `ctx`; `leader` says whether it leads.
    pub fn on_request(&mut self, node: NodeId, ctx: u64, leader: bool, now: u64) {
        if leader {
            self.requests
                .insert((node, node, ctx), (now, self.max_commit));
        } else {
            self.invoked.insert((node, ctx), self.max_commit);
        }
    }

    /// True if `leader` took a read request `(origin, ctx)` (so its answer is checked).
    pub fn tracks(&self, leader: NodeId, origin: NodeId, ctx: u64) -> bool {
        self.requests.contains_key(&(leader, origin, ctx))
    }

    /// `leader` (term `term`, configuration `conf`) answers the read `(origin, ctx)` at
    /// `index` at time `now`.
    #[allow(clippy::too_many_arguments)]
    pub fn check_answer(
        &mut self,
        leader: NodeId,
        origin: NodeId,
        ctx: u64,
        index: u64,
        term: u64,
        conf: &ConfState,
        proof: Proof,
        now: u64,
    ) -> Result<(), String> {
        let Some((t0, min)) = self.requests.remove(&(leader, origin, ctx)) else {
            return Ok(());
        };
        if index < min {
            return Err(format!(
                "leader {leader} answered read {ctx} of node {origin} at index {index}, but {min} was committed when the read was invoked"
            ));
        }
        let proved = |n: NodeId| {
            n == leader
                || match proof {
                    Proof::Round => self.hb.get(&(leader, n, term)).is_some_and(|&at| at >= t0),
                    Proof::Lease(ms) => self
                        .any
                        .get(&(leader, n, term))
                        .is_some_and(|&at| at + ms >= now),
                }
        };
        if !majority(conf, proved) {
            return Err(format!(
                "leader {leader} (term {term}) answered read {ctx} of node {origin} at index {index} without proof from a quorum since the request ({proof:?}, request at {t0}ms, now {now}ms)"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(from: NodeId, to: NodeId, term: u64, body: MessageBody) -> Message {
        Message {
            from_incarnation: 0,
            to_incarnation: 0,
            from,
            to,
            term,
            body,
        }
    }

    fn disk(term: u64, vote: NodeId, last: u64) -> Durable {
        Durable {
            term,
            vote,
            last_index: last,
            snapshot_index: 0,
        }
    }

    #[test]
    fn majority_is_per_half_and_ignores_learners() {
        let c = ConfState {
            voters: vec![1, 2, 3],
            voters_outgoing: vec![3, 4, 5],
            learners: vec![6],
            removed: vec![],
        };
        assert!(!majority(&c, |n| [1, 2, 6].contains(&n)));
        assert!(majority(&c, |n| [1, 3, 4].contains(&n)));
        assert!(!majority(&ConfState::default(), |_| true));
        assert!(majority(&ConfState::with_voters([7]), |n| n == 7));
        assert!(!majority(&ConfState::with_voters([1, 2]), |n| n == 1));
    }

    #[test]
    fn vote_granted_before_durable_fires() {
        let grant = msg(
            2,
            1,
            5,
            MessageBody::VoteResponse {
                pre_vote: false,
                reject: false,
            },
        );
        // The vote sits in the page cache only: the disk still has term 4.
        assert!(check_promise(&disk(4, 0, 3), &grant, false).is_err());
        // Durable vote for someone else in the same term.
        assert!(check_promise(&disk(5, 3, 3), &grant, true).is_err());
        assert!(check_promise(&disk(5, 1, 3), &grant, true).is_ok());
        // A later durable term: the promise is stale, not broken.
        assert!(check_promise(&disk(6, 0, 3), &grant, true).is_ok());
        // Pre-vote grants and refusals promise nothing.
        let pre = msg(
            2,
            1,
            5,
            MessageBody::VoteResponse {
                pre_vote: true,
                reject: false,
            },
        );
        assert!(check_promise(&disk(4, 0, 3), &pre, false).is_ok());
    }

    #[test]
    fn candidacy_and_acks_before_durable_fire() {
        let ask = msg(
            1,
            2,
            5,
            MessageBody::Vote {
                pre_vote: false,
                last_index: 3,
                last_term: 4,
                transfer: false,
            },
        );
        assert!(check_promise(&disk(4, 0, 3), &ask, true).is_err());
        assert!(check_promise(&disk(5, 1, 3), &ask, true).is_ok());
        let ack = msg(
            2,
            1,
            5,
            MessageBody::AppendResponse {
                index: 9,
                reject: false,
                hint_index: 0,
                hint_term: 0,
            },
        );
        assert!(check_promise(&disk(5, 1, 8), &ack, true).is_err());
        assert!(check_promise(&disk(5, 1, 9), &ack, true).is_ok());
        let snap = Durable {
            snapshot_index: 9,
            ..disk(5, 1, 2)
        };
        assert!(check_promise(&snap, &ack, true).is_ok());
        // A released message may not carry a term the disk does not hold.
        let hb = msg(2, 1, 6, MessageBody::HeartbeatResponse { read_ctx: 0 });
        assert!(check_promise(&disk(5, 1, 9), &hb, true).is_err());
        assert!(check_promise(&disk(5, 1, 9), &hb, false).is_ok());
    }

    #[test]
    fn decreasing_terms_fire() {
        let log = [(1, 1), (2, 2), (3, 2), (4, 1)];
        let term = |i: u64| log.iter().find(|e| e.0 == i).map(|e| e.1);
        assert!(check_terms_nondecreasing(term, 1, 3).is_ok());
        assert!(check_terms_nondecreasing(term, 0, 4).is_err());
    }

    #[test]
    fn follower_commit_beyond_leader_fires() {
        let lt = |i: u64| (i <= 5).then_some(if i <= 3 { 1 } else { 2 });
        let leader = LogView {
            commit: 5,
            last_index: 5,
            term: &lt,
        };
        // The follower kept a stale term-1 entry at 4 and commits it.
        let ft = |i: u64| (i <= 4).then_some(1);
        let f = LogView {
            commit: 4,
            last_index: 4,
            term: &ft,
        };
        assert!(check_follower_commit(&f, &leader).is_err());
        let f = LogView {
            commit: 3,
            last_index: 4,
            term: &ft,
        };
        assert!(check_follower_commit(&f, &leader).is_ok());
        let long = |i: u64| (i <= 7).then_some(1);
        let f = LogView {
            commit: 7,
            last_index: 7,
            term: &long,
        };
        assert!(check_follower_commit(&f, &leader).is_err());
    }

    #[test]
    fn figure_8_commit_by_counting_fires() {
        assert!(check_leader_commit(4, 2, 3, Some(2)).is_err());
        assert!(check_leader_commit(4, 2, 3, Some(4)).is_ok());
        assert!(check_leader_commit(4, 3, 3, Some(2)).is_ok());
    }

    #[test]
    fn leader_without_quorum_contact_fires() {
        let conf = ConfState::with_voters([1, 2, 3, 4, 5]);
        assert!(check_leader_heard(1, &conf, |n| n == 2).is_err());
        assert!(check_leader_heard(1, &conf, |n| n == 2 || n == 5).is_ok());
        let mut o = ReadOracle::default();
        o.on_deliver(
            &msg(2, 1, 3, MessageBody::HeartbeatResponse { read_ctx: 0 }),
            5,
            9,
        );
        assert!(o.heard_since(1, 2, 3, 9));
        assert!(!o.heard_since(1, 2, 3, 10));
        assert!(!o.heard_since(1, 2, 4, 0));
        // A pre-vote carries a term its sender is not in: it neither counts nor hides the
        // sender's messages in its real term.
        let pre = MessageBody::Vote {
            pre_vote: true,
            last_index: 0,
            last_term: 0,
            transfer: false,
        };
        o.on_deliver(&msg(3, 1, 4, pre), 10, 11);
        o.on_deliver(
            &msg(3, 1, 3, MessageBody::HeartbeatResponse { read_ctx: 0 }),
            12,
            13,
        );
        assert!(!o.heard_since(1, 3, 4, 0));
        assert!(o.heard_since(1, 3, 3, 13));
    }

    #[test]
    fn read_without_quorum_round_fires() {
        let conf = ConfState::with_voters([1, 2, 3]);
        let hb = |from, term| {
            msg(
                from,
                1,
                term,
                MessageBody::HeartbeatResponse { read_ctx: 1 },
            )
        };
        let mut o = ReadOracle {
            max_commit: 7,
            ..Default::default()
        };
        // An answer older than the request proves nothing.
        o.on_deliver(&hb(2, 3), 10, 12);
        o.on_request(1, 42, true, 20);
        let r = o.check_answer(1, 1, 42, 7, 3, &conf, Proof::Round, 21);
        assert!(r.is_err(), "{r:?}");
        // An answer after the request, but in an older term, proves nothing either.
        o.on_request(1, 43, true, 20);
        o.on_deliver(&hb(2, 2), 25, 26);
        o.on_deliver(&hb(3, 2), 25, 26);
        assert!(o
            .check_answer(1, 1, 43, 7, 3, &conf, Proof::Round, 27)
            .is_err());
        // One peer in the leader's term after the request: a quorum of three.
        o.on_request(1, 44, true, 30);
        o.on_deliver(&hb(3, 3), 31, 33);
        assert!(o
            .check_answer(1, 1, 44, 7, 3, &conf, Proof::Round, 33)
            .is_ok());
        // A proven leader answering below what was committed at invocation.
        o.on_request(1, 45, true, 40);
        o.on_deliver(&hb(2, 3), 41, 42);
        assert!(o
            .check_answer(1, 1, 45, 6, 3, &conf, Proof::Round, 42)
            .is_err());
    }

    #[test]
    fn forwarded_and_lease_reads() {
        let conf = ConfState::with_voters([1, 2, 3]);
        let mut o = ReadOracle {
            max_commit: 5,
            ..Default::default()
        };
        o.on_request(2, 7, false, 10);
        o.max_commit = 9;
        o.on_deliver(&msg(2, 1, 3, MessageBody::ReadIndex { ctx: 7 }), 10, 12);
        assert!(o.tracks(1, 2, 7));
        // The minimum is what was committed when the follower's client asked.
        let ok = msg(
            3,
            1,
            3,
            MessageBody::AppendResponse {
                index: 5,
                reject: false,
                hint_index: 0,
                hint_term: 0,
            },
        );
        o.on_deliver(&ok, 11, 13);
        assert!(o
            .check_answer(1, 2, 7, 5, 3, &conf, Proof::Lease(50), 20)
            .is_ok());
        o.on_deliver(&msg(2, 1, 3, MessageBody::ReadIndex { ctx: 8 }), 30, 31);
        assert!(o
            .check_answer(1, 2, 8, 9, 3, &conf, Proof::Lease(5), 100)
            .is_err());
    }
}
