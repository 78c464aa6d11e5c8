//! Issue 14, item 11: a configuration entry "without effect" (it would reuse a removed id)
//! changes nothing, and when later configuration entries are truncated by a new leader the
//! node falls back to the configuration in force before them, which is the one in force
//! when the entry without effect was noted.

use raft::core::{
    encode_conf_change, ConfChange, ConfState, Config, Entry, EntryKind, MemStorage, Message,
    MessageBody, RawNode,
};

fn conf_entry(index: u64, term: u64, voters: &[u64], learners: &[u64]) -> Entry {
    Entry {
        term,
        index,
        kind: EntryKind::ConfChange,
        data: encode_conf_change(&ConfChange::Enter {
            voters: voters.to_vec(),
            learners: learners.to_vec(),
        })
        .into(),
    }
}

fn append(from: u64, term: u64, prev: (u64, u64), entries: Vec<Entry>) -> Message {
    Message {
        from,
        to: 1,
        term,
        body: MessageBody::Append {
            prev_index: prev.0,
            prev_term: prev.1,
            entries,
            commit: 0,
        },
        from_incarnation: 0,
        to_incarnation: 0,
    }
}

#[test]
fn truncated_configurations_fall_back_past_an_entry_without_effect() {
    let storage = MemStorage::new_with_conf(ConfState::with_voters([1, 2, 3]));
    let mut n = RawNode::new(Config::new(1), storage).unwrap();
    // Leader 2 (term 1): remove 3; try to add 3 back (no effect: removed ids are never
    // reused); add learner 5.
    n.step(append(
        2,
        1,
        (0, 0),
        vec![
            conf_entry(1, 1, &[1, 2], &[]),
            conf_entry(2, 1, &[1, 2, 3], &[]),
            conf_entry(3, 1, &[1, 2], &[5]),
        ],
    ));
    assert_eq!(n.raft.conf().voters, vec![1, 2]);
    assert_eq!(n.raft.conf().learners, vec![5]);
    assert_eq!(n.raft.conf_index(), 3);
    // A new leader (term 2) never had entries 2 and 3: they are replaced.
    n.step(append(
        1 + 1,
        2,
        (1, 1),
        vec![Entry {
            term: 2,
            index: 2,
            kind: EntryKind::Normal,
            data: Vec::new().into(),
        }],
    ));
    assert_eq!(n.raft.log.last_index(), 2);
    // Back to the configuration of entry 1: the one in force when entry 2 had no effect.
    assert_eq!(n.raft.conf().voters, vec![1, 2]);
    assert!(n.raft.conf().learners.is_empty(), "{:?}", n.raft.conf());
    assert_eq!(n.raft.conf_index(), 1);
    assert_eq!(n.raft.pending_conf_changes(), 1);
}
