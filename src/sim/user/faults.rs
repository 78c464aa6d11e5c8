//! The fault model: network knobs applied to every message, and a schedule of cluster
//! faults (partitions, crashes, pauses, membership changes, leader transfers) drawn from the
//! seed. A schedule prints as one line and parses back, so a shrunk schedule replays.

use crate::core::rng::Rng;
use std::fmt;

/// Fault knobs. [`FaultConfig::default`] turns everything on at moderate rates; [`FaultConfig::none`]
/// is a healthy cluster. Every field can be overridden.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultConfig {
    /// Messages dropped, per 1000.
    pub drop_per_mille: u64,
    /// Messages delivered twice, per 1000.
    pub dup_per_mille: u64,
    /// Message delay range in virtual ms.
    pub delay_ms: (u64, u64),
    /// Messages on one link may overtake each other (otherwise each link is FIFO).
    pub reorder: bool,
    /// Disk sync latency range in virtual ms; a crash loses writes not yet synced.
    pub sync_ms: (u64, u64),
    /// Symmetric partitions into two groups.
    pub partitions: bool,
    /// One-way link cuts (A hears B, B does not hear A).
    pub one_way: bool,
    /// Bridge partitions: two groups that only one node can talk to.
    pub bridges: bool,
    /// Crashes (losing unsynced writes) followed by restarts.
    pub crashes: bool,
    /// Process pauses (no ticks, messages or disk completions for a while).
    pub pauses: bool,
    /// Membership changes: a voter demoted to learner, later promoted back.
    pub membership: bool,
    /// Leadership transfers to a random voter.
    pub transfers: bool,
    /// Virtual ms between two scheduled faults (drawn from the range).
    pub interval_ms: (u64, u64),
    /// Virtual ms a partition, crash, pause or demotion lasts (drawn from the range).
    pub duration_ms: (u64, u64),
    /// Each node snapshots (and compacts its log) every this many applied entries (0:
    /// never); small values force snapshot transfers to laggards.
    pub snapshot_every: u64,
    /// Entries kept behind a snapshot.
    pub snapshot_trailing: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            drop_per_mille: 20,
            dup_per_mille: 10,
            delay_ms: (1, 20),
            reorder: true,
            sync_ms: (1, 10),
            partitions: true,
            one_way: true,
            bridges: true,
            crashes: true,
            pauses: true,
            membership: true,
            transfers: true,
            interval_ms: (200, 1500),
            duration_ms: (100, 1500),
            snapshot_every: 30,
            snapshot_trailing: 5,
        }
    }
}

impl FaultConfig {
    /// A healthy network and disk, no scheduled faults, no snapshots.
    pub fn none() -> Self {
        FaultConfig {
            drop_per_mille: 0,
            dup_per_mille: 0,
            delay_ms: (1, 2),
            reorder: false,
            sync_ms: (1, 2),
            partitions: false,
            one_way: false,
            bridges: false,
            crashes: false,
            pauses: false,
            membership: false,
            transfers: false,
            interval_ms: (1000, 1000),
            duration_ms: (100, 100),
            snapshot_every: 0,
            snapshot_trailing: 5,
        }
    }

    /// The network noise knobs in the one-line form `RAFT_SIM_NET` takes:
    /// `drop=20,dup=10,delay=1-20,reorder=on`.
    pub fn format_net(&self) -> String {
        format!(
            "drop={},dup={},delay={}-{},reorder={}",
            self.drop_per_mille,
            self.dup_per_mille,
            self.delay_ms.0,
            self.delay_ms.1,
            if self.reorder { "on" } else { "off" }
        )
    }

    /// Sets the network noise knobs from [`FaultConfig::format_net`]'s form (every field
    /// optional; rates at most 1000, delays at least 1 ms).
    pub fn parse_net(&mut self, text: &str) -> Result<(), String> {
        let num = |v: &str| -> Result<u64, String> {
            v.trim()
                .parse()
                .map_err(|_| format!("{v:?} is not a number"))
        };
        for field in text.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| format!("{field:?} is not name=value"))?;
            match k.trim() {
                "drop" | "dup" => {
                    let n = num(v)?;
                    if n > 1000 {
                        return Err(format!("{k} is per 1000 (at most 1000), got {n}"));
                    }
                    *if k.trim() == "drop" {
                        &mut self.drop_per_mille
                    } else {
                        &mut self.dup_per_mille
                    } = n;
                }
                "delay" => {
                    let (lo, hi) = v
                        .split_once('-')
                        .ok_or_else(|| format!("delay {v:?} is not LO-HI"))?;
                    let (lo, hi) = (num(lo)?, num(hi)?);
                    if lo == 0 || hi < lo {
                        return Err(format!("delay {v:?} needs 1 <= LO <= HI"));
                    }
                    self.delay_ms = (lo, hi);
                }
                "reorder" => {
                    self.reorder = match v.trim() {
                        "on" => true,
                        "off" => false,
                        _ => return Err(format!("reorder is on or off, got {v:?}")),
                    }
                }
                _ => {
                    return Err(format!(
                        "unknown network knob {k:?} (drop, dup, delay, reorder)"
                    ))
                }
            }
        }
        Ok(())
    }

    fn kinds(&self, nodes: u64) -> Vec<u8> {
        let on = [
            self.partitions && nodes > 1,
            self.one_way && nodes > 1,
            self.bridges && nodes > 2,
            self.crashes,
            self.pauses,
            self.membership && nodes > 2,
            self.transfers && nodes > 1,
        ];
        (0..on.len() as u8).filter(|&k| on[k as usize]).collect()
    }
}

/// One cluster fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// No traffic between the groups.
    Partition(Vec<Vec<u64>>),
    /// Messages from `.0` to `.1` are lost.
    OneWay(u64, u64),
    /// `.0` talks to both groups, which cannot talk to each other.
    Bridge(u64, Vec<u64>, Vec<u64>),
    /// Every link restored.
    Heal,
    /// The node crashes, losing unsynced writes and its state machine.
    Crash(u64),
    /// The node restarts from its disk with a fresh state machine.
    Restart(u64),
    /// The node's process stops for `.1` ms.
    Pause(u64, u64),
    /// The voter becomes a learner.
    Demote(u64),
    /// The learner becomes a voter again.
    Promote(u64),
    /// The leader hands leadership to the node.
    Transfer(u64),
}

/// A fault at a virtual time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// Virtual ms from the start of the run.
    pub at_ms: u64,
    /// The fault.
    pub fault: Fault,
}

fn ids(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

impl fmt::Display for Scheduled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms ", self.at_ms)?;
        match &self.fault {
            Fault::Partition(g) => {
                let groups: Vec<String> = g.iter().map(|x| ids(x)).collect();
                write!(f, "partition {}", groups.join("|"))
            }
            Fault::OneWay(a, b) => write!(f, "cut {a}>{b}"),
            Fault::Bridge(n, a, b) => write!(f, "bridge {n} {}|{}", ids(a), ids(b)),
            Fault::Heal => write!(f, "heal"),
            Fault::Crash(n) => write!(f, "crash {n}"),
            Fault::Restart(n) => write!(f, "restart {n}"),
            Fault::Pause(n, ms) => write!(f, "pause {n} {ms}ms"),
            Fault::Demote(n) => write!(f, "demote {n}"),
            Fault::Promote(n) => write!(f, "promote {n}"),
            Fault::Transfer(n) => write!(f, "transfer {n}"),
        }
    }
}

/// A schedule on one line: faults separated by `; ` (the format [`parse_schedule`] reads).
pub fn format_schedule(s: &[Scheduled]) -> String {
    s.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parses a schedule printed by [`format_schedule`].
pub fn parse_schedule(text: &str) -> Result<Vec<Scheduled>, String> {
    let list = |s: &str| -> Result<Vec<u64>, String> {
        s.split(',')
            .map(|x| x.parse().map_err(|_| format!("bad node id {x:?}")))
            .collect()
    };
    let num = |s: &str| -> Result<u64, String> {
        s.trim_end_matches("ms")
            .parse()
            .map_err(|_| format!("bad number {s:?}"))
    };
    let mut out = Vec::new();
    for item in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let w: Vec<&str> = item.split_whitespace().collect();
        let bad = || format!("bad fault {item:?}");
        let at_ms = num(w.first().ok_or_else(bad)?)?;
        let arg = |i: usize| w.get(i).copied().ok_or_else(bad);
        let fault = match *w.get(1).ok_or_else(bad)? {
            "partition" => {
                Fault::Partition(arg(2)?.split('|').map(list).collect::<Result<_, _>>()?)
            }
            "cut" => {
                let (a, b) = arg(2)?.split_once('>').ok_or_else(bad)?;
                Fault::OneWay(num(a)?, num(b)?)
            }
            "bridge" => {
                let (a, b) = arg(3)?.split_once('|').ok_or_else(bad)?;
                Fault::Bridge(num(arg(2)?)?, list(a)?, list(b)?)
            }
            "heal" => Fault::Heal,
            "crash" => Fault::Crash(num(arg(2)?)?),
            "restart" => Fault::Restart(num(arg(2)?)?),
            "pause" => Fault::Pause(num(arg(2)?)?, num(arg(3)?)?),
            "demote" => Fault::Demote(num(arg(2)?)?),
            "promote" => Fault::Promote(num(arg(2)?)?),
            "transfer" => Fault::Transfer(num(arg(2)?)?),
            _ => return Err(bad()),
        };
        out.push(Scheduled { at_ms, fault });
    }
    Ok(out)
}

/// Draws a schedule of faults for `nodes` nodes up to `horizon_ms` from `rng`. Every
/// partition ends with a heal, every crash with a restart, every demotion with a promotion.
pub fn draw(rng: &mut Rng, nodes: u64, f: &FaultConfig, horizon_ms: u64) -> Vec<Scheduled> {
    let kinds = f.kinds(nodes);
    let mut out = Vec::new();
    if kinds.is_empty() {
        return out;
    }
    let span = |rng: &mut Rng, (lo, hi): (u64, u64)| rng.range(lo, hi.max(lo) + 1);
    let shuffled = |rng: &mut Rng| {
        let mut v: Vec<u64> = (1..=nodes).collect();
        for i in (1..v.len()).rev() {
            v.swap(i, rng.range(0, i as u64 + 1) as usize);
        }
        v
    };
    let mut t = span(rng, f.interval_ms);
    // Nodes down or demoted until the given time (a node gets one such fault at a time).
    let mut busy: Vec<u64> = vec![0; nodes as usize + 1];
    while t < horizon_ms {
        let dur = span(rng, f.duration_ms);
        let kind = kinds[rng.range(0, kinds.len() as u64) as usize];
        let v = shuffled(rng);
        let at = |at_ms, fault| Scheduled { at_ms, fault };
        match kind {
            0 => {
                let cut = rng.range(1, nodes) as usize;
                out.push(at(
                    t,
                    Fault::Partition(vec![v[..cut].to_vec(), v[cut..].to_vec()]),
                ));
                out.push(at(t + dur, Fault::Heal));
            }
            1 => {
                out.push(at(t, Fault::OneWay(v[0], v[1])));
                out.push(at(t + dur, Fault::Heal));
            }
            2 => {
                let cut = rng.range(2, nodes) as usize;
                out.push(at(
                    t,
                    Fault::Bridge(v[0], v[1..cut].to_vec(), v[cut..].to_vec()),
                ));
                out.push(at(t + dur, Fault::Heal));
            }
            3..=5 => {
                if let Some(&n) = v.iter().find(|&&n| busy[n as usize] <= t) {
                    busy[n as usize] = t + dur + 1;
                    match kind {
                        3 => {
                            out.push(at(t, Fault::Crash(n)));
                            out.push(at(t + dur, Fault::Restart(n)));
                        }
                        4 => out.push(at(t, Fault::Pause(n, dur))),
                        _ => {
                            out.push(at(t, Fault::Demote(n)));
                            out.push(at(t + dur, Fault::Promote(n)));
                        }
                    }
                }
            }
            _ => out.push(at(t, Fault::Transfer(v[0]))),
        }
        t += span(rng, f.interval_ms);
    }
    out.sort_by_key(|s| s.at_ms);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_print_and_parse_back() {
        let mut rng = Rng::new(7);
        let s = draw(&mut rng, 5, &FaultConfig::default(), 30_000);
        assert!(s.len() > 10, "{}", format_schedule(&s));
        assert_eq!(parse_schedule(&format_schedule(&s)).unwrap(), s);
        assert!(parse_schedule("12ms explode 3").is_err());
    }

    #[test]
    fn every_crash_is_followed_by_a_restart() {
        let mut rng = Rng::new(3);
        let s = draw(&mut rng, 3, &FaultConfig::default(), 60_000);
        for (i, e) in s.iter().enumerate() {
            if let Fault::Crash(n) = e.fault {
                assert!(s[i..].iter().any(|r| r.fault == Fault::Restart(n)));
            }
        }
    }
}
