//! Quorum arithmetic for simple and joint configurations.

use super::types::{ConfState, NodeId};
use std::collections::HashMap;

/// Outcome of counting votes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteResult {
    /// A quorum granted.
    Won,
    /// A quorum can no longer be reached.
    Lost,
    /// Still waiting for answers.
    Pending,
}

/// Highest index replicated on a majority of `voters` (`None` for an empty set, so an
/// empty half of a joint configuration never limits the result).
pub fn majority_index(voters: &[NodeId], matched: impl Fn(NodeId) -> u64) -> Option<u64> {
    if voters.is_empty() {
        return None;
    }
    let mut idx: Vec<u64> = voters.iter().map(|&v| matched(v)).collect();
    idx.sort_unstable_by(|a, b| b.cmp(a));
    Some(idx[voters.len() / 2])
}

/// Highest index replicated on a quorum of the configuration (both halves when joint).
pub fn committed_index(conf: &ConfState, matched: impl Fn(NodeId) -> u64) -> u64 {
    match (
        majority_index(&conf.voters, &matched),
        majority_index(&conf.voters_outgoing, &matched),
    ) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => 0,
    }
}

fn majority_vote(voters: &[NodeId], votes: &HashMap<NodeId, bool>) -> VoteResult {
    if voters.is_empty() {
        return VoteResult::Won;
    }
    let (mut yes, mut no) = (0, 0);
    for v in voters {
        match votes.get(v) {
            Some(true) => yes += 1,
            Some(false) => no += 1,
            None => {}
        }
    }
    let q = voters.len() / 2 + 1;
    if yes >= q {
        VoteResult::Won
    } else if no > voters.len() - q {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

/// Counts votes under the configuration (a joint configuration needs both halves).
pub fn vote_result(conf: &ConfState, votes: &HashMap<NodeId, bool>) -> VoteResult {
    match (
        majority_vote(&conf.voters, votes),
        majority_vote(&conf.voters_outgoing, votes),
    ) {
        (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
        (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
        _ => VoteResult::Pending,
    }
}

/// True if the nodes for which `active` holds form a quorum of the configuration.
pub fn is_quorum(conf: &ConfState, active: impl Fn(NodeId) -> bool) -> bool {
    let votes: HashMap<NodeId, bool> = conf
        .voters
        .iter()
        .chain(&conf.voters_outgoing)
        .map(|&v| (v, active(v)))
        .collect();
    vote_result(conf, &votes) == VoteResult::Won
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rng::Rng;

    /// Brute-force oracle: the largest index i such that the set of voters with match >= i
    /// is a majority of each half.
    fn oracle(conf: &ConfState, m: &HashMap<NodeId, u64>) -> u64 {
        let mut best = 0;
        for &i in m.values() {
            let ok = |vs: &[NodeId]| {
                vs.is_empty() || vs.iter().filter(|v| m[v] >= i).count() * 2 > vs.len()
            };
            if ok(&conf.voters) && ok(&conf.voters_outgoing) {
                best = best.max(i);
            }
        }
        best
    }

    #[test]
    fn committed_index_matches_oracle_with_learners_and_joint() {
        let mut rng = Rng::new(7);
        for _ in 0..5000 {
            let mut conf = ConfState::default();
            let mut m = HashMap::new();
            for id in 1..=7u64 {
                m.insert(id, rng.range(0, 10));
                match rng.range(0, 4) {
                    0 => conf.voters.push(id),
                    1 => conf.voters_outgoing.push(id),
                    2 => {
                        conf.voters.push(id);
                        conf.voters_outgoing.push(id)
                    }
                    _ => conf.learners.push(id),
                }
            }
            if conf.voters.is_empty() {
                continue;
            }
            // Learners have high match indexes but must never count.
            for l in &conf.learners {
                m.insert(*l, 100);
            }
            assert_eq!(
                committed_index(&conf, |id| m[&id]),
                oracle(&conf, &m),
                "{conf:?} {m:?}"
            );
        }
    }

    /// Brute-force oracle for one half: won when the grants are a strict majority, lost
    /// when grants plus the votes still missing cannot be one.
    fn half_oracle(vs: &[NodeId], votes: &HashMap<NodeId, bool>) -> VoteResult {
        let yes = vs.iter().filter(|v| votes.get(v) == Some(&true)).count();
        let open = vs.iter().filter(|v| !votes.contains_key(v)).count();
        if vs.is_empty() || yes * 2 > vs.len() {
            VoteResult::Won
        } else if (yes + open) * 2 <= vs.len() {
            VoteResult::Lost
        } else {
            VoteResult::Pending
        }
    }

    /// Every assignment of grant / refusal / no answer over configurations of one to five
    /// voters, simple and joint, against the oracle; `is_quorum` agrees with "won".
    #[test]
    fn vote_result_matches_oracle_exhaustively() {
        let confs = [
            (vec![1], vec![]),
            (vec![1, 2], vec![]),
            (vec![1, 2, 3], vec![]),
            (vec![1, 2, 3, 4], vec![]),
            (vec![1, 2, 3, 4, 5], vec![]),
            (vec![1, 2, 3], vec![3, 4, 5]),
            (vec![1, 2], vec![3]),
            (vec![1], vec![2, 3, 4, 5]),
        ];
        let mut checked = 0;
        for (voters, outgoing) in confs {
            let conf = ConfState {
                voters,
                voters_outgoing: outgoing,
                learners: vec![9],
                removed: vec![],
            };
            for code in 0..3u32.pow(6) {
                let mut votes = HashMap::new();
                for id in 1..=6u64 {
                    match (code / 3u32.pow(id as u32 - 1)) % 3 {
                        0 => {}
                        1 => {
                            votes.insert(id, true);
                        }
                        _ => {
                            votes.insert(id, false);
                        }
                    }
                }
                // A learner's grant never counts.
                votes.insert(9, true);
                let want = match (
                    half_oracle(&conf.voters, &votes),
                    half_oracle(&conf.voters_outgoing, &votes),
                ) {
                    (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
                    (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
                    _ => VoteResult::Pending,
                };
                assert_eq!(vote_result(&conf, &votes), want, "{conf:?} {votes:?}");
                let active = |n: NodeId| votes.get(&n) == Some(&true);
                assert_eq!(
                    is_quorum(&conf, active),
                    want == VoteResult::Won,
                    "{conf:?} {votes:?}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 8 * 729);
    }

    #[test]
    fn votes_need_both_halves() {
        let conf = ConfState {
            voters: vec![1, 2, 3],
            voters_outgoing: vec![3, 4, 5],
            learners: vec![6],
            removed: vec![],
        };
        let mut votes = HashMap::new();
        votes.insert(1, true);
        votes.insert(2, true);
        votes.insert(6, true);
        assert_eq!(vote_result(&conf, &votes), VoteResult::Pending);
        votes.insert(4, false);
        votes.insert(5, false);
        assert_eq!(vote_result(&conf, &votes), VoteResult::Lost);
        votes.insert(4, true);
        votes.insert(3, true);
        assert_eq!(vote_result(&conf, &votes), VoteResult::Won);
    }
}
