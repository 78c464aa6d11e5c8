//! Membership: the index and compare-and-set of a proposed change, one change in flight
//! at a time, progress kept for pending members and dropped once a removal commits, and a
//! removed follower that keeps its leader while the removal is pending.

use super::Cluster;
use crate::core::{ConfChange, ProposeError, Role};

fn voters(v: &[u64]) -> ConfChange {
    ConfChange::Enter {
        voters: v.to_vec(),
        learners: vec![],
    }
}

/// A change is refused while another is in flight or when the configuration id moved; an
/// accepted change returns the index of its entry; after it commits (and after later
/// entries commit) the next change is accepted.
#[test]
fn conf_change_index_compare_and_set_and_one_at_a_time() {
    let mut c = Cluster::new(4, |c| c.check_quorum = false);
    c.elect(1);
    let id0 = c.node(1).raft.conf_index();
    assert_eq!(
        c.node(1)
            .propose_conf_change(voters(&[1, 2, 3]), Some(id0 + 1)),
        Err(ProposeError::ConfMismatch { current: id0 })
    );
    let idx = c
        .node(1)
        .propose_conf_change(voters(&[1, 2, 3]), Some(id0))
        .unwrap();
    assert_eq!(idx, c.node(1).raft.log.last_index());
    assert_eq!(c.node(1).raft.conf_index(), idx);
    assert_eq!(c.node(1).raft.pending_conf_changes(), 1);
    assert_eq!(
        c.node(1).propose_conf_change(voters(&[1, 2]), None),
        Err(ProposeError::ConfChangeInProgress)
    );
    c.deliver(|_| true);
    assert_eq!(c.node(1).raft.log.committed, idx);
    assert_eq!(c.node(1).raft.pending_conf_changes(), 0);
    // Later entries commit too: the change at `idx` is long done.
    c.node(1).propose(vec![b"a".to_vec()]).unwrap();
    c.deliver(|_| true);
    assert!(c.node(1).raft.log.committed > idx);
    let next = c
        .node(1)
        .propose_conf_change(voters(&[1, 2]), Some(idx))
        .unwrap();
    assert_eq!(next, c.node(1).raft.log.last_index());
    assert!(matches!(
        c.node(1).propose_conf_change(voters(&[]), None),
        Err(ProposeError::ConfChangeInProgress)
    ));
}

/// The leader tracks a removed node while its removal is pending (it is still a member of
/// the configuration in force before the commit) and forgets it once the removal commits.
#[test]
fn leader_drops_progress_of_a_removed_node_once_committed() {
    let mut c = Cluster::new(3, |c| c.check_quorum = false);
    c.elect(1);
    c.node(1)
        .propose_conf_change(voters(&[1, 2]), None)
        .unwrap();
    assert!(c.node(1).raft.progress.contains_key(&3));
    c.deliver(|m| m.to != 3 && m.from != 3);
    assert_eq!(c.node(1).raft.conf().voters, vec![1, 2]);
    assert_eq!(c.node(1).raft.pending_conf_changes(), 0);
    assert_eq!(
        c.node(1).raft.progress.keys().copied().collect::<Vec<_>>(),
        vec![1, 2]
    );
}

/// A follower that appends its own removal (not yet committed) stays a follower of the
/// same leader: only a campaigning node stops when it is no longer a voter.
#[test]
fn removed_follower_keeps_its_leader_while_removal_is_pending() {
    let mut c = Cluster::new(3, |c| c.check_quorum = false);
    c.elect(1);
    let term = c.node(1).raft.term;
    c.node(1)
        .propose_conf_change(voters(&[1, 2]), None)
        .unwrap();
    // The entry reaches node 3; its acknowledgement and node 2's are lost.
    let sent = c.take();
    for m in sent {
        if m.to == 3 {
            c.node(3).step(m);
        }
    }
    c.take();
    let r = &c.node(3).raft;
    assert!(!r.conf().is_voter(3));
    assert!(!r.promotable());
    assert_eq!((r.role, r.term, r.leader), (Role::Follower, term, 1));
}
