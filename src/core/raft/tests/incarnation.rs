//! Incarnations (see `raft::incarnation`): messages are stamped, voters' incarnations are
//! learned and reported for storage only when they change, a voter back with a wiped data
//! directory is ignored (and knows it must not vote) until it is re-admitted as a learner,
//! and nodes that stop being voters are forgotten.

use super::Cluster;
use crate::core::{ConfChange, ConfState, Config};
use std::collections::BTreeMap;

fn inc(id: u64) -> u64 {
    0x100 + id
}

fn tracked(c: &mut Config) {
    c.incarnation = inc(c.id);
    c.check_quorum = false;
}

fn enter(voters: &[u64], learners: &[u64]) -> ConfChange {
    ConfChange::Enter {
        voters: voters.to_vec(),
        learners: learners.to_vec(),
    }
}

/// One heartbeat round from the leader, node 1.
fn heartbeat(c: &mut Cluster) {
    for _ in 0..c.node(1).raft.cfg.heartbeat_ticks {
        c.node(1).tick();
    }
    c.deliver(|_| true);
}

/// Every message carries the sender's incarnation and, once known, the recipient's; the
/// leader learns its voters' incarnations from their answers and reports the change once.
/// Without an incarnation (0) nothing is stamped, learned or reported.
#[test]
fn incarnations_are_stamped_learned_and_reported_once() {
    let mut c = Cluster::new(3, tracked);
    c.node(1).campaign();
    let mut seen = c.deliver(|_| true);
    c.node(1).propose(vec![b"a".to_vec()]).unwrap();
    seen.extend(c.deliver(|_| true));
    assert!(seen.iter().all(|m| m.from_incarnation == inc(m.from)));
    assert!(seen
        .iter()
        .all(|m| m.to_incarnation == 0 || m.to_incarnation == inc(m.to)));
    // Node 1's appends after the election know their recipients.
    assert!(seen
        .iter()
        .any(|m| m.from == 1 && m.to_incarnation == inc(m.to)));
    assert_eq!(
        c.node(1).raft.take_incarnation_changes(),
        Some(BTreeMap::from([(2, inc(2)), (3, inc(3))]))
    );
    assert_eq!(c.node(1).raft.take_incarnation_changes(), None);
    for id in 1..=3 {
        assert!(!c.node(id).raft.awaiting_readmission(), "node {id}");
        assert!(c.node(id).raft.replaced_voters().is_empty(), "node {id}");
    }
    let log = &c.node(1).raft.log;
    assert_eq!(log.committed, log.last_index());

    let mut c = Cluster::new(3, |c| c.check_quorum = false);
    c.node(1).campaign();
    let seen = c.deliver(|_| true);
    assert!(seen
        .iter()
        .all(|m| m.from_incarnation == 0 && m.to_incarnation == 0));
    assert_eq!(c.node(1).raft.take_incarnation_changes(), None);
}

/// A message from a learner leaves a pending report of learned incarnations in place.
#[test]
fn a_learner_message_keeps_the_pending_report() {
    let conf = ConfState {
        voters: vec![1, 2, 3],
        learners: vec![4],
        ..Default::default()
    };
    let mut c = Cluster::with_conf(conf, tracked);
    c.node(1).campaign();
    // The votes teach node 1 the voters' incarnations; then the appends' answers arrive,
    // the learner's among them.
    let seen = c.deliver(|_| true);
    assert!(seen.iter().any(|m| m.from == 4 && m.to == 1));
    assert_eq!(
        c.node(1).raft.take_incarnation_changes(),
        Some(BTreeMap::from([(2, inc(2)), (3, inc(3))]))
    );
}

/// A voter whose data directory was wiped comes back with another incarnation: the leader
/// drops its messages and starts its progress afresh; the node, told that it is known by
/// its old incarnation, neither votes nor campaigns. Made a learner, it is caught up and no
/// longer waits; promoted again, its new incarnation is learned, and a late message naming
/// the old one does not send it back to waiting.
#[test]
fn a_wiped_voter_waits_until_readmitted_as_a_learner() {
    let mut c = Cluster::new(3, tracked);
    c.elect(1);
    c.node(1).propose(vec![b"a".to_vec()]).unwrap();
    c.deliver(|_| true);
    assert_eq!(c.node(1).raft.progress[&3].matched, 2);
    c.node(1).raft.take_incarnation_changes();

    // Node 3 restarts on an empty store with a new incarnation.
    c.start(3, &ConfState::with_voters(1..=3), |cfg| {
        cfg.incarnation = 0x999;
        cfg.check_quorum = false;
    });
    assert!(!c.node(3).raft.awaiting_readmission());
    c.node(1).propose(vec![b"b".to_vec()]).unwrap();
    c.deliver(|_| true);
    assert!(c.node(3).raft.awaiting_readmission());
    assert!(!c.node(3).raft.promotable());
    assert_eq!(
        c.node(1).raft.replaced_voters(),
        &BTreeMap::from([(3, (inc(3), 0x999))])
    );
    assert_eq!(c.node(1).raft.progress[&3].matched, 0);
    // Still waiting after more traffic; it does not campaign.
    c.node(3).campaign();
    c.deliver(|_| true);
    assert!(c.node(3).raft.awaiting_readmission());
    assert_eq!(c.node(1).raft.role, super::Role::Leader);
    let log = &c.node(1).raft.log;
    assert_eq!(log.committed, log.last_index());

    // Re-admitted as a learner and caught up.
    c.node(1)
        .propose_conf_change(enter(&[1, 2], &[3]), None)
        .unwrap();
    c.deliver(|_| true);
    // Its answers count again once the demotion commits: one round catches it up (the last
    // append carries its demotion), the next finds it a learner.
    heartbeat(&mut c);
    assert_eq!(c.node(3).raft.conf().learners, vec![3]);
    assert!(c.node(3).raft.awaiting_readmission());
    heartbeat(&mut c);
    let last = c.node(1).raft.log.last_index();
    assert_eq!(c.node(3).raft.conf().learners, vec![3]);
    assert_eq!(c.node(3).raft.log.last_index(), last);
    assert!(!c.node(3).raft.awaiting_readmission());
    assert!(c.node(1).raft.replaced_voters().is_empty());
    assert_eq!(
        c.node(1).raft.take_incarnation_changes(),
        Some(BTreeMap::from([(2, inc(2))]))
    );

    // Promoted: voting again, known by its new incarnation.
    c.node(1)
        .propose_conf_change(enter(&[1, 2, 3], &[]), None)
        .unwrap();
    c.deliver(|_| true);
    assert!(c.node(3).raft.promotable());
    assert_eq!(
        c.node(1).raft.take_incarnation_changes(),
        Some(BTreeMap::from([(2, inc(2)), (3, 0x999)]))
    );
    // A message sent before the wipe was noticed, naming the old incarnation.
    c.node(1).propose(vec![b"c".to_vec()]).unwrap();
    let mut late = c.take().into_iter().find(|m| m.to == 3).unwrap();
    late.to_incarnation = inc(3);
    c.node(3).step(late);
    assert!(!c.node(3).raft.awaiting_readmission());
    assert!(c.node(3).raft.promotable());
}

/// A node removed from the configuration is forgotten once the removal commits (and the
/// change is reported); a change that forgets nobody reports nothing.
#[test]
fn removed_voters_are_forgotten_and_reported() {
    let mut c = Cluster::new(3, tracked);
    c.elect(1);
    assert!(c.node(1).raft.take_incarnation_changes().is_some());
    c.node(1)
        .propose_conf_change(enter(&[1, 2], &[]), None)
        .unwrap();
    c.deliver(|m| m.from != 3 && m.to != 3);
    assert_eq!(c.node(1).raft.conf().voters, vec![1, 2]);
    assert_eq!(
        c.node(1).raft.take_incarnation_changes(),
        Some(BTreeMap::from([(2, inc(2))]))
    );
    // Adding a learner (node 4, not running) forgets nobody.
    c.node(1)
        .propose_conf_change(enter(&[1, 2], &[4]), None)
        .unwrap();
    c.deliver(|_| true);
    assert_eq!(c.node(1).raft.conf().learners, vec![4]);
    assert_eq!(c.node(1).raft.take_incarnation_changes(), None);
}
