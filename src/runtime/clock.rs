//! Protocol time from the monotonic clock: the ticks due are the ticks that elapsed, so a
//! stalled or paused process catches up on every tick it missed before it handles anything
//! else (a leader's lease and check-quorum see the real elapsed time, never a count of
//! delivered timer events).

use std::time::{Duration, Instant};

/// Converts monotonic time into whole ticks.
pub(crate) struct TickClock {
    start: Instant,
    tick: Duration,
    delivered: u64,
    /// Most ticks delivered in one catch-up: past this many, more ticks change nothing (every
    /// timeout has fired), and a pass stays short.
    max_catch_up: u64,
}

impl TickClock {
    /// A clock started now with ticks of `tick`, catching up at most `max_catch_up` at once.
    pub(crate) fn new(start: Instant, tick: Duration, max_catch_up: u64) -> Self {
        TickClock {
            start,
            tick: tick.max(Duration::from_micros(1)),
            delivered: 0,
            max_catch_up: max_catch_up.max(1),
        }
    }

    fn elapsed_ticks(&self, now: Instant) -> u64 {
        let us = now.saturating_duration_since(self.start).as_micros();
        u64::try_from(us / self.tick.as_micros().max(1)).unwrap_or(u64::MAX)
    }

    /// The ticks to deliver at `now` (and marks them delivered).
    pub(crate) fn due(&mut self, now: Instant) -> u64 {
        let elapsed = self.elapsed_ticks(now);
        let n = elapsed.saturating_sub(self.delivered);
        self.delivered = self.delivered.max(elapsed);
        n.min(self.max_catch_up)
    }

    /// Ticks delivered so far (the loop's notion of now).
    pub(crate) fn now_ticks(&self) -> u64 {
        self.delivered
    }

    /// When the next tick is due.
    pub(crate) fn next_at(&self) -> Instant {
        let next = u32::try_from(self.delivered.saturating_add(1)).unwrap_or(u32::MAX);
        self.start + self.tick.saturating_mul(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missed_ticks_are_delivered_not_collapsed() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut c = TickClock::new(t0, ms(10), 1000);
        assert_eq!(c.due(t0 + ms(5)), 0);
        assert_eq!(c.due(t0 + ms(10)), 1);
        assert_eq!(c.due(t0 + ms(10)), 0);
        // A pause of 2.5 s: every tick of it arrives at once.
        assert_eq!(c.due(t0 + ms(2_515)), 250);
        assert_eq!(c.now_ticks(), 251);
        assert_eq!(c.next_at(), t0 + ms(2_520));
    }

    #[test]
    fn a_very_long_pause_is_capped() {
        let t0 = Instant::now();
        let mut c = TickClock::new(t0, Duration::from_millis(10), 100);
        assert_eq!(c.due(t0 + Duration::from_secs(3600)), 100);
        assert_eq!(c.now_ticks(), 360_000);
        assert_eq!(c.due(t0 + Duration::from_secs(3600)), 0);
    }
}
