//! Per-peer outgoing queue with a byte cap and class-aware dropping (pure data structure; the
//! locking lives in `peer.rs`).
//!
//! Policy:
//! - Heartbeat and Normal messages share one FIFO (`main`); Bulk messages have their own FIFO.
//! - All queued bytes count against one cap. A Heartbeat is always enqueued, then the oldest
//!   heartbeats are evicted until the queue is back under the cap (possibly the new one).
//! - A Normal or Bulk message that does not fit evicts queued heartbeats (oldest first) as far
//!   as needed; if it would not fit even with every heartbeat gone, it is refused (`QueueFull`)
//!   and nothing is evicted.
//! - Dequeue order: `main` first, but after [`BULK_SHARE_BYTES`] of `main` traffic since the last
//!   bulk message, one bulk message goes next — so bulk never starves heartbeats and is never
//!   starved itself.

use super::SendClass;
use std::collections::VecDeque;

/// How many bytes of heartbeat/normal traffic may pass before a waiting bulk message gets a turn.
pub const BULK_SHARE_BYTES: usize = 256 << 10;

/// Outcome of [`SendQueue::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PushOutcome {
    /// Whether the pushed message is in the queue.
    pub accepted: bool,
    /// Heartbeats evicted to make room (may include the pushed one).
    pub evicted_heartbeats: u64,
}

/// Byte-capped outgoing queue.
#[derive(Debug)]
pub struct SendQueue {
    main: VecDeque<(SendClass, Vec<u8>)>,
    bulk: VecDeque<Vec<u8>>,
    bytes: usize,
    heartbeats: usize,
    heartbeat_bytes: usize,
    max_bytes: usize,
    main_since_bulk: usize,
}

impl SendQueue {
    /// An empty queue holding at most `max_bytes` of payload.
    pub fn new(max_bytes: usize) -> Self {
        SendQueue {
            main: VecDeque::new(),
            bulk: VecDeque::new(),
            bytes: 0,
            heartbeats: 0,
            heartbeat_bytes: 0,
            max_bytes,
            main_since_bulk: 0,
        }
    }

    /// Queued payload bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of queued messages.
    pub fn len(&self) -> usize {
        self.main.len() + self.bulk.len()
    }

    /// Enqueues according to the policy in the module docs.
    pub fn push(&mut self, bytes: Vec<u8>, class: SendClass) -> PushOutcome {
        let mut out = PushOutcome::default();
        let len = bytes.len();
        match class {
            SendClass::Heartbeat => {
                self.bytes += len;
                self.heartbeats += 1;
                self.heartbeat_bytes += len;
                self.main.push_back((class, bytes));
                out.evicted_heartbeats = self.evict_heartbeats(0);
                // Eviction goes oldest first, so the new heartbeat is gone only if no
                // heartbeat is left.
                out.accepted = self.heartbeats > 0;
            }
            SendClass::Normal | SendClass::Bulk => {
                // Refuse without evicting anything if even evicting every heartbeat would not
                // make room.
                if self.bytes - self.heartbeat_bytes + len > self.max_bytes {
                    return out;
                }
                out.evicted_heartbeats = self.evict_heartbeats(len);
                self.bytes += len;
                if class == SendClass::Bulk {
                    self.bulk.push_back(bytes);
                } else {
                    self.main.push_back((class, bytes));
                }
                out.accepted = true;
            }
        }
        out
    }

    /// Evicts the oldest heartbeats until `bytes + extra <= max_bytes` or none are left.
    fn evict_heartbeats(&mut self, extra: usize) -> u64 {
        let mut evicted = 0;
        let mut i = 0;
        while self.bytes + extra > self.max_bytes && self.heartbeats > 0 && i < self.main.len() {
            if self.main[i].0 == SendClass::Heartbeat {
                let (_, b) = self.main.remove(i).expect("index in range");
                self.bytes -= b.len();
                self.heartbeats -= 1;
                self.heartbeat_bytes -= b.len();
                evicted += 1;
            } else {
                i += 1;
            }
        }
        evicted
    }

    /// Dequeues the next message to write.
    pub fn pop(&mut self) -> Option<(SendClass, Vec<u8>)> {
        let take_bulk = !self.bulk.is_empty()
            && (self.main.is_empty() || self.main_since_bulk >= BULK_SHARE_BYTES);
        let (class, bytes) = if take_bulk {
            self.main_since_bulk = 0;
            (SendClass::Bulk, self.bulk.pop_front()?)
        } else {
            let (class, bytes) = self.main.pop_front()?;
            if class == SendClass::Heartbeat {
                self.heartbeats -= 1;
                self.heartbeat_bytes -= bytes.len();
            }
            self.main_since_bulk += bytes.len();
            (class, bytes)
        };
        self.bytes -= bytes.len();
        Some((class, bytes))
    }

    /// Puts a just-popped message back at the front (it was already admitted, so the cap is
    /// not rechecked).
    pub fn push_front(&mut self, bytes: Vec<u8>, class: SendClass) {
        self.bytes += bytes.len();
        match class {
            SendClass::Bulk => self.bulk.push_front(bytes),
            SendClass::Heartbeat => {
                self.heartbeats += 1;
                self.heartbeat_bytes += bytes.len();
                self.main.push_front((class, bytes));
            }
            SendClass::Normal => self.main.push_front((class, bytes)),
        }
    }

    /// Drops everything queued; returns the number of messages dropped.
    pub fn clear(&mut self) -> u64 {
        let n = self.len() as u64;
        self.main.clear();
        self.bulk.clear();
        self.bytes = 0;
        self.heartbeats = 0;
        self.heartbeat_bytes = 0;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, len: usize) -> Vec<u8> {
        vec![tag; len]
    }

    #[test]
    fn oldest_heartbeats_dropped_first() {
        let mut q = SendQueue::new(100);
        assert!(q.push(msg(1, 30), SendClass::Normal).accepted);
        for tag in 10..20 {
            q.push(msg(tag, 10), SendClass::Heartbeat);
        }
        // 30 normal + 7 newest heartbeats of 10 = 100.
        assert_eq!(q.bytes(), 100);
        let order: Vec<u8> = std::iter::from_fn(|| q.pop()).map(|(_, b)| b[0]).collect();
        assert_eq!(order, vec![1, 13, 14, 15, 16, 17, 18, 19]);
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn normal_evicts_heartbeats_then_refuses() {
        let mut q = SendQueue::new(100);
        for tag in 0..5 {
            q.push(msg(tag, 20), SendClass::Heartbeat);
        }
        let out = q.push(msg(50, 50), SendClass::Normal);
        assert_eq!(
            out,
            PushOutcome {
                accepted: true,
                evicted_heartbeats: 3
            }
        );
        // Would not fit even without heartbeats: refused, nothing evicted.
        let out = q.push(msg(51, 61), SendClass::Normal);
        assert_eq!(
            out,
            PushOutcome {
                accepted: false,
                evicted_heartbeats: 0
            }
        );
        assert_eq!(q.len(), 3);
        assert!(q.push(msg(51, 50), SendClass::Normal).accepted); // evicts the last 2
        let out = q.push(msg(52, 1), SendClass::Normal);
        assert!(!out.accepted);
        // A heartbeat that cannot fit is itself dropped.
        let out = q.push(msg(53, 5), SendClass::Heartbeat);
        assert_eq!(
            out,
            PushOutcome {
                accepted: false,
                evicted_heartbeats: 1
            }
        );
        assert_eq!(q.bytes(), 100);
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn bulk_interleaves_without_starving() {
        let mut q = SendQueue::new(usize::MAX);
        q.push(msg(1, 1000), SendClass::Bulk);
        q.push(msg(2, 1000), SendClass::Bulk);
        q.push(msg(3, 10), SendClass::Heartbeat);
        q.push(msg(4, 10), SendClass::Normal);
        // Heartbeat/normal first, then bulk when main is empty.
        let order: Vec<u8> = std::iter::from_fn(|| q.pop()).map(|(_, b)| b[0]).collect();
        assert_eq!(order, vec![3, 4, 1, 2]);
        // Under sustained main traffic, bulk still gets a turn every BULK_SHARE_BYTES.
        q.push(msg(9, 10), SendClass::Bulk);
        let chunk = 64 << 10;
        for _ in 0..8 {
            q.push(msg(5, chunk), SendClass::Normal);
        }
        let order: Vec<u8> = std::iter::from_fn(|| q.pop()).map(|(_, b)| b[0]).collect();
        assert_eq!(order, vec![5, 5, 5, 5, 9, 5, 5, 5, 5]);
    }
}
