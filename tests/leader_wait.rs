//! Blocking calls wait up to their timeout for a leader instead of failing at once with
//! `NotLeader(0)` (issue 16: the README's first proposal raced the first election).

use raft::core::{NodeId, Role};
use raft::runtime::{Committed, Error, MessageSink, Node, NodeConfig, StateMachine};
use raft::transport::SendClass;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counts applied commands and answers with the count.
struct Count(u64);

impl StateMachine for Count {
    fn apply(&mut self, batch: &[Committed<'_>]) -> Result<Vec<Option<Vec<u8>>>, String> {
        Ok(batch
            .iter()
            .map(|_| {
                self.0 += 1;
                Some(self.0.to_string().into_bytes())
            })
            .collect())
    }
    fn snapshot(&mut self, out: &mut dyn Write) -> Result<(), String> {
        out.write_all(&self.0.to_le_bytes())
            .map_err(|e| e.to_string())
    }
    fn restore(&mut self, input: &mut dyn Read) -> Result<(), String> {
        let mut b = [0u8; 8];
        input.read_exact(&mut b).map_err(|e| e.to_string())?;
        self.0 = u64::from_le_bytes(b);
        Ok(())
    }
}

struct Nowhere;

impl MessageSink for Nowhere {
    fn send(&self, _: NodeId, _: Vec<u8>, _: SendClass) {}
}

fn start(voters: &[NodeId], election: Duration) -> Node {
    let mut c = NodeConfig::new(1, voters.iter().copied());
    c.election_timeout = election;
    c.heartbeat_interval = election / 5;
    Node::start(c, Box::new(Count(0)), Arc::new(Nowhere)).expect("start")
}

#[test]
fn first_proposal_and_read_wait_for_the_first_election() {
    // A 500 ms election timeout: the node elects itself between 0.5 and 1 s after start.
    let n = start(&[1], Duration::from_millis(500));
    assert_ne!(n.status().unwrap().role, Role::Leader, "no leader yet");
    let r = n.propose(b"x".to_vec(), Duration::from_secs(5));
    assert_eq!(r, Ok(Some(b"1".to_vec())));
    n.shutdown().unwrap();

    let n = start(&[1], Duration::from_millis(500));
    let i = n.read_index(Duration::from_secs(5)).expect("read index");
    assert!(i >= 1, "the leader's no-op entry is index 1, got {i}");
    n.propose_session(7, 1, b"y".to_vec(), Duration::from_secs(5))
        .expect("session proposal after the election");
    n.shutdown().unwrap();
}

#[test]
fn no_leader_is_reported_after_the_timeout_not_at_once() {
    // Two voters, one running: no leader can ever be elected.
    let n = start(&[1, 2], Duration::from_millis(100));
    for call in ["propose", "read_index"] {
        let t0 = Instant::now();
        let r = match call {
            "propose" => n
                .propose(b"x".to_vec(), Duration::from_millis(300))
                .map(|_| 0),
            _ => n.read_index(Duration::from_millis(300)),
        };
        let waited = t0.elapsed();
        assert_eq!(r, Err(Error::NotLeader(0)), "{call}");
        // It stops trying 50 ms before the deadline (so the last try gets its answer).
        assert!(
            waited >= Duration::from_millis(200),
            "{call} gave up after {waited:?}"
        );
        assert!(
            waited < Duration::from_secs(3),
            "{call} overran: {waited:?}"
        );
    }
    assert_eq!(
        Error::NotLeader(0).to_string(),
        "not the leader (no leader known)"
    );
    assert_eq!(
        Error::NotLeader(3).to_string(),
        "not the leader (leader: 3)"
    );
    n.shutdown().unwrap();
}

#[test]
fn a_proposal_during_a_leadership_transfer_is_busy_not_invalid() {
    use raft::core::ProposeError;
    // Nothing is proposed while a transfer is in progress: the caller retries, as for Busy.
    assert_eq!(Error::from(ProposeError::TransferInProgress), Error::Busy);
}
