//! The failover scenario shown by `raft-kv-demo` and checked by the `kv_cluster` test:
//! elect, write, kill the leader, fail over, verify every acknowledged write, restart the
//! killed node and watch it catch up.
#![allow(dead_code)]

use super::cluster::Cluster;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Measurements of a successful run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The first leader (killed).
    pub old_leader: u64,
    /// The leader elected after the kill.
    pub new_leader: u64,
    /// Kill → a majority agrees on a new leader.
    pub elected_after: Duration,
    /// Kill → the new leader acknowledged a write.
    pub committed_after: Duration,
    /// Acknowledged keys, all read back.
    pub keys: usize,
    /// Restart → the restarted node applied the leader's commit index.
    pub caught_up_after: Duration,
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// Runs the scenario on a laid-out but not started 3-node `cluster`; `say` receives one
/// plain-words line per step.
pub fn failover(c: &mut Cluster, say: &mut dyn FnMut(String)) -> Result<Report, String> {
    let ids: Vec<u64> = c.nodes.keys().copied().collect();
    let et = Duration::from_millis(c.election_ms);
    let step_timeout = Duration::from_secs(10);

    say(format!(
        "Starting {} raft-kv nodes on 127.0.0.1 (election timeout {} ms), data in {}",
        ids.len(),
        c.election_ms,
        c.root.display()
    ));
    for n in c.nodes.values() {
        say(format!(
            "  node {}: raft {}  client {}",
            n.id, n.raft, n.client
        ));
    }
    let t = Instant::now();
    c.spawn_all()
        .map_err(|e| format!("cannot start nodes: {e}"))?;
    c.wait_up(&ids, step_timeout)?;
    let first = c.wait_leader(&ids, 0, step_timeout)?;
    say(format!(
        "Node {} was elected leader of term {} ({} after start).",
        first.id,
        first.term,
        ms(t.elapsed())
    ));

    // Write 100 keys, starting at a follower to show the redirect.
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    let follower = *ids.iter().find(|&&i| i != first.id).expect("a follower");
    let mut hint = follower;
    let mut redirects = 0;
    let t = Instant::now();
    for i in 0..100 {
        let (k, v) = (format!("key-{i:03}"), format!("value-{i}"));
        let a = c.write(
            &mut hint,
            &ids,
            &format!("PUT {k} {v}"),
            step_timeout,
            &mut redirects,
        )?;
        if a != "OK" {
            return Err(format!("PUT {k} answered {a}"));
        }
        acked.insert(k, v);
    }
    say(format!(
        "Wrote 100 keys through leader {} in {} (first sent to follower {}, which answered \
         ERR NOTLEADER {}; {} redirect(s) followed).",
        hint,
        ms(t.elapsed()),
        follower,
        first.id,
        redirects
    ));
    let leader = c
        .status(hint)
        .filter(|s| s.is_leader())
        .ok_or("the node that acknowledged the writes is no longer leader")?;

    // Kill the leader.
    let old = leader.id;
    say(format!(
        "Killing leader {old} with SIGKILL (term {}, commit {}).",
        leader.term, leader.commit
    ));
    let killed_at = Instant::now();
    c.kill(old);
    let survivors: Vec<u64> = ids.iter().copied().filter(|&i| i != old).collect();
    let new = c.wait_leader(&survivors, leader.term, step_timeout)?;
    let elected_after = killed_at.elapsed();
    say(format!(
        "Node {} was elected leader of term {} {} after the kill.",
        new.id,
        new.term,
        ms(elected_after)
    ));
    let mut hint = new.id;
    let mut r = 0;
    c.write(
        &mut hint,
        &survivors,
        "PUT after-failover yes",
        step_timeout,
        &mut r,
    )?;
    acked.insert("after-failover".into(), "yes".into());
    let committed_after = killed_at.elapsed();
    say(format!(
        "The new leader committed a write {} after the kill ({:.1} election timeouts).",
        ms(committed_after),
        committed_after.as_secs_f64() / et.as_secs_f64()
    ));
    let t = Instant::now();
    for i in 0..20 {
        let (k, v) = (format!("post-{i:02}"), format!("written-while-{old}-down"));
        c.write(
            &mut hint,
            &survivors,
            &format!("PUT {k} {v}"),
            step_timeout,
            &mut r,
        )?;
        acked.insert(k, v);
    }
    c.write(&mut hint, &survivors, "DEL key-099", step_timeout, &mut r)?;
    acked.remove("key-099");
    let cas = c.write(
        &mut hint,
        &survivors,
        "CAS key-000 value-0 swapped",
        step_timeout,
        &mut r,
    )?;
    if cas != "OK" {
        return Err(format!("CAS key-000 value-0 swapped answered {cas}"));
    }
    acked.insert("key-000".into(), "swapped".into());
    say(format!(
        "Wrote 20 more keys, deleted key-099 and swapped key-000 with CAS while node {old} was \
         down ({}).",
        ms(t.elapsed())
    ));

    // Read everything back with linearizable reads at the new leader.
    check_all(c, hint, &acked)?;
    check_absent(c, hint, "key-099")?;
    say(format!(
        "Read back all {} acknowledged keys from leader {hint} with linearizable GETs: every \
         one survived with the right value (and key-099 stays deleted).",
        acked.len()
    ));

    // Restart the killed node and watch it catch up.
    say(format!(
        "Restarting node {old} from its data directory {}.",
        c.nodes[&old].dir.display()
    ));
    let restarted_at = Instant::now();
    c.spawn(old)
        .map_err(|e| format!("cannot restart node {old}: {e}"))?;
    c.wait_up(&[old], step_timeout)?;
    if let Some(s) = c.status(old) {
        say(format!("  first answer of node {old}: {}", s.line()));
    }
    let end = c.until(step_timeout);
    let caught_up_after = loop {
        let lead = c.status(hint);
        let me = c.status(old);
        if let (Some(l), Some(m)) = (&lead, &me) {
            if m.applied >= l.commit && m.leader == l.id && m.term == l.term {
                let after = restarted_at.elapsed();
                say(format!("  leader {}: {}", l.id, l.line()));
                say(format!("  node {old}:   {}", m.line()));
                break after;
            }
        }
        if Instant::now() > end {
            return Err(format!(
                "node {old} did not catch up within {step_timeout:?}: leader {lead:?}, node {me:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    say(format!(
        "Node {old} caught up {} after restart: its applied index reached the leader's commit.",
        ms(caught_up_after)
    ));
    check_all(c, old, &acked)?;
    say(format!(
        "Node {old} serves all {} keys too (follower reads go through the leader's read index).",
        acked.len()
    ));
    Ok(Report {
        old_leader: old,
        new_leader: new.id,
        elected_after,
        committed_after,
        keys: acked.len(),
        caught_up_after,
    })
}

/// Checks with `GET` at node `at` that every key in `want` has its value.
pub fn check_all(c: &Cluster, at: u64, want: &BTreeMap<String, String>) -> Result<(), String> {
    for (k, v) in want {
        let a = get_retry(c, at, k)?;
        if a != format!("VALUE {v}") {
            return Err(format!(
                "GET {k} at node {at} answered {a:?}, expected VALUE {v}"
            ));
        }
    }
    Ok(())
}

/// Checks with `GET` at node `at` that `key` is absent.
pub fn check_absent(c: &Cluster, at: u64, key: &str) -> Result<(), String> {
    let a = get_retry(c, at, key)?;
    if a != "NOTFOUND" {
        return Err(format!(
            "GET {key} at node {at} answered {a:?}, expected NOTFOUND"
        ));
    }
    Ok(())
}

/// `GET key` at node `at`, retrying transient errors (`ERR ...`) for a few seconds.
pub fn get_retry(c: &Cluster, at: u64, key: &str) -> Result<String, String> {
    let end = c.until(Duration::from_secs(5));
    loop {
        let a = c.request(at, &format!("GET {key}"));
        match a {
            Ok(a) if !a.starts_with("ERR ") => return Ok(a),
            other if Instant::now() > end => {
                return Err(format!("GET {key} at node {at}: {other:?}"));
            }
            _ => std::thread::sleep(Duration::from_millis(25)),
        }
    }
}
