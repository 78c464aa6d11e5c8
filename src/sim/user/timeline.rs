//! The engine's event queue: events in time order, and in the order they were scheduled at
//! equal times. Most events fall due within a second, so they go into a wheel of one-ms
//! slots (a FIFO per slot, a bitmap of the slots in use) instead of a heap; later ones wait
//! in a heap and move into the wheel, in order, as time comes within its reach.

use std::collections::{BinaryHeap, VecDeque};

/// Slots in the wheel: events due within this many ms of the current time.
const SLOTS: u64 = 1024;
const WORDS: usize = (SLOTS / 64) as usize;

/// An event due beyond the wheel, ordered by time, then by the order it was scheduled in.
struct Later<E> {
    at: u64,
    seq: u64,
    ev: E,
}

impl<E> PartialEq for Later<E> {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}

impl<E> Eq for Later<E> {}

impl<E> PartialOrd for Later<E> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl<E> Ord for Later<E> {
    /// Reversed, so that the max-heap pops the earliest event.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// Events by due time (virtual ms); an event is never scheduled before the last one popped.
pub(super) struct Timeline<E> {
    /// Time of the last event popped: the wheel holds events due in `[now, now + SLOTS)`.
    now: u64,
    /// Slot `at % SLOTS`: the events due at `at`, in the order they were scheduled.
    slots: Vec<VecDeque<E>>,
    /// Bit `i`: slot `i` is not empty.
    used: [u64; WORDS],
    /// Events due at `now + SLOTS` or later.
    later: BinaryHeap<Later<E>>,
    seq: u64,
}

impl<E> Timeline<E> {
    pub fn new() -> Self {
        Timeline {
            now: 0,
            slots: (0..SLOTS).map(|_| VecDeque::new()).collect(),
            used: [0; WORDS],
            later: BinaryHeap::new(),
            seq: 0,
        }
    }

    /// Schedules `ev` at `at` (not before the last event popped).
    pub fn push(&mut self, at: u64, ev: E) {
        debug_assert!(at >= self.now, "event at {at} scheduled after {}", self.now);
        let at = at.max(self.now);
        if at - self.now < SLOTS {
            self.put(at, ev);
        } else {
            self.seq += 1;
            self.later.push(Later {
                at,
                seq: self.seq,
                ev,
            });
        }
    }

    fn put(&mut self, at: u64, ev: E) {
        let i = (at % SLOTS) as usize;
        self.slots[i].push_back(ev);
        self.used[i / 64] |= 1 << (i % 64);
    }

    /// Due time of the next event.
    pub fn next_at(&self) -> Option<u64> {
        match self.first_used() {
            Some(i) => Some(self.now + (i + SLOTS - self.now % SLOTS) % SLOTS),
            None => self.later.peek().map(|l| l.at),
        }
    }

    /// The first slot in use, scanning from `now`'s slot round the wheel.
    fn first_used(&self) -> Option<u64> {
        let start = (self.now % SLOTS) as usize;
        let (w0, b0) = (start / 64, start % 64);
        let high = self.used[w0] & (!0u64 << b0);
        if high != 0 {
            return Some((w0 * 64) as u64 + u64::from(high.trailing_zeros()));
        }
        for k in 1..=WORDS {
            let w = (w0 + k) % WORDS;
            let bits = if k == WORDS {
                self.used[w] & !(!0u64 << b0)
            } else {
                self.used[w]
            };
            if bits != 0 {
                return Some((w * 64) as u64 + u64::from(bits.trailing_zeros()));
            }
        }
        None
    }

    /// Removes and returns the next event with its due time.
    pub fn pop(&mut self) -> Option<(u64, E)> {
        let at = self.next_at()?;
        self.now = at;
        // Events from beyond the wheel now in reach go first in their slots: they were
        // scheduled before any event put into those slots directly.
        while self.later.peek().is_some_and(|l| l.at - at < SLOTS) {
            let l = self.later.pop().expect("peeked");
            self.put(l.at, l.ev);
        }
        let i = (at % SLOTS) as usize;
        let ev = self.slots[i].pop_front().expect("slot in use");
        if self.slots[i].is_empty() {
            self.used[i / 64] &= !(1 << (i % 64));
        }
        Some((at, ev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pops in (time, scheduling order), as a heap of (time, sequence) would, including
    /// events scheduled beyond the wheel and at equal times from both sides.
    #[test]
    fn pops_in_time_then_scheduling_order() {
        let mut rng = crate::core::rng::Rng::new(7);
        let mut t = Timeline::new();
        let mut model = std::collections::BTreeSet::new();
        let (mut now, mut seq) = (0u64, 0u64);
        for _ in 0..20_000 {
            if rng.chance(3, 5) || model.is_empty() {
                let at = now
                    + match rng.range(0, 4) {
                        0 => 0,
                        1 => rng.range(0, 50),
                        2 => rng.range(0, 2 * SLOTS),
                        _ => SLOTS + rng.range(0, 3),
                    };
                seq += 1;
                t.push(at, seq);
                model.insert((at, seq));
            } else {
                let want = model.pop_first();
                assert_eq!(t.next_at(), want.map(|w| w.0));
                let got = t.pop();
                assert_eq!(got, want);
                now = got.map_or(now, |g| g.0);
            }
        }
        while let Some(want) = model.pop_first() {
            assert_eq!(t.pop(), Some(want));
        }
        assert_eq!(t.pop(), None);
    }
}
