//! Pure membership-change rules, shared by the core (on append) and the apply path.

use super::types::{ConfChange, ConfState, NodeId};
use std::collections::BTreeSet;

/// Why a membership change is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfChangeError {
    /// The target has no voters.
    NoVoters,
    /// A node is named as both voter and learner.
    VoterAndLearner(NodeId),
    /// Node id 0 is reserved.
    ZeroId,
    /// A joint configuration must be left before another change.
    InJoint,
    /// `LeaveJoint` outside a joint configuration.
    NotJoint,
    /// The id belonged to a removed member; ids are never reused.
    ReusedId(NodeId),
}

impl std::fmt::Display for ConfChangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfChangeError::NoVoters => write!(f, "configuration needs at least one voter"),
            ConfChangeError::VoterAndLearner(id) => write!(f, "node {id} is voter and learner"),
            ConfChangeError::ZeroId => write!(f, "node id 0 is reserved"),
            ConfChangeError::InJoint => write!(f, "joint configuration still in force"),
            ConfChangeError::NotJoint => write!(f, "not in a joint configuration"),
            ConfChangeError::ReusedId(id) => {
                write!(f, "node id {id} was removed and cannot be reused")
            }
        }
    }
}

impl std::error::Error for ConfChangeError {}

fn sorted(ids: &[NodeId]) -> Vec<NodeId> {
    ids.iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The configuration that results from applying `cc` to `conf`. Changing at most one voter
/// moves directly to the target; changing more enters joint consensus (C_old,new).
pub fn apply_conf_change(conf: &ConfState, cc: &ConfChange) -> Result<ConfState, ConfChangeError> {
    let next = match cc {
        ConfChange::LeaveJoint => {
            if !conf.is_joint() {
                return Err(ConfChangeError::NotJoint);
            }
            ConfState {
                voters: conf.voters.clone(),
                voters_outgoing: Vec::new(),
                learners: conf.learners.clone(),
                removed: conf.removed.clone(),
            }
        }
        ConfChange::Enter { voters, learners } => {
            if conf.is_joint() {
                return Err(ConfChangeError::InJoint);
            }
            let voters = sorted(voters);
            let learners = sorted(learners);
            if voters.is_empty() {
                return Err(ConfChangeError::NoVoters);
            }
            if voters.contains(&0) || learners.contains(&0) {
                return Err(ConfChangeError::ZeroId);
            }
            if let Some(id) = voters.iter().find(|v| learners.contains(v)) {
                return Err(ConfChangeError::VoterAndLearner(*id));
            }
            if let Some(id) = voters
                .iter()
                .chain(&learners)
                .find(|v| conf.removed.contains(v))
            {
                return Err(ConfChangeError::ReusedId(*id));
            }
            let old: BTreeSet<_> = conf.voters.iter().copied().collect();
            let new: BTreeSet<_> = voters.iter().copied().collect();
            let changed = old.symmetric_difference(&new).count();
            ConfState {
                voters,
                voters_outgoing: if changed > 1 {
                    conf.voters.clone()
                } else {
                    Vec::new()
                },
                learners,
                removed: conf.removed.clone(),
            }
        }
    };
    // Whoever was a member before and is no member now is removed for good.
    let mut removed: BTreeSet<NodeId> = next.removed.iter().copied().collect();
    for id in conf.all_members() {
        if !next.contains(id) {
            removed.insert(id);
        }
    }
    Ok(ConfState {
        removed: removed.into_iter().collect(),
        ..next
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_change_is_direct_and_multi_is_joint() {
        let c = ConfState::with_voters([1, 2, 3]);
        let one = apply_conf_change(
            &c,
            &ConfChange::Enter {
                voters: vec![1, 2, 3, 4],
                learners: vec![],
            },
        )
        .unwrap();
        assert!(!one.is_joint());
        let two = apply_conf_change(
            &c,
            &ConfChange::Enter {
                voters: vec![1, 4, 5],
                learners: vec![2],
            },
        )
        .unwrap();
        assert_eq!(two.voters_outgoing, vec![1, 2, 3]);
        assert_eq!(
            apply_conf_change(
                &two,
                &ConfChange::Enter {
                    voters: vec![1],
                    learners: vec![]
                }
            ),
            Err(ConfChangeError::InJoint)
        );
        let left = apply_conf_change(&two, &ConfChange::LeaveJoint).unwrap();
        assert_eq!(left.voters, vec![1, 4, 5]);
        assert_eq!(left.learners, vec![2]);
        assert!(!left.is_joint());
    }

    #[test]
    fn refusals_are_explicit() {
        let c = ConfState::with_voters([1]);
        let e = |v: Vec<u64>, l: Vec<u64>| {
            apply_conf_change(
                &c,
                &ConfChange::Enter {
                    voters: v,
                    learners: l,
                },
            )
        };
        assert_eq!(e(vec![], vec![2]), Err(ConfChangeError::NoVoters));
        assert_eq!(
            e(vec![1, 2], vec![2]),
            Err(ConfChangeError::VoterAndLearner(2))
        );
        assert_eq!(e(vec![0], vec![]), Err(ConfChangeError::ZeroId));
        assert_eq!(
            apply_conf_change(&c, &ConfChange::LeaveJoint),
            Err(ConfChangeError::NotJoint)
        );
    }

    #[test]
    fn removed_ids_are_never_reused() {
        let c = ConfState::with_voters([1, 2, 3]);
        let two = apply_conf_change(
            &c,
            &ConfChange::Enter {
                voters: vec![1, 2],
                learners: vec![],
            },
        )
        .unwrap();
        assert_eq!(two.removed, vec![3]);
        assert_eq!(
            apply_conf_change(
                &two,
                &ConfChange::Enter {
                    voters: vec![1, 2],
                    learners: vec![3]
                }
            ),
            Err(ConfChangeError::ReusedId(3))
        );
        // Leaving a joint configuration records the outgoing voters that left.
        let joint = apply_conf_change(
            &two,
            &ConfChange::Enter {
                voters: vec![4, 5, 6],
                learners: vec![],
            },
        )
        .unwrap();
        assert!(joint.is_joint());
        let done = apply_conf_change(&joint, &ConfChange::LeaveJoint).unwrap();
        assert_eq!(done.removed, vec![1, 2, 3]);
    }
}
