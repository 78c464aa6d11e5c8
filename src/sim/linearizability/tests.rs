//! Tests of the key-value linearizability checker.

use super::*;
use crate::core::rng::Rng;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn get(key: &str) -> Op {
    Op::Get {
        key: key.to_string(),
    }
}

fn put(key: &str, value: &str) -> Op {
    Op::Put {
        key: key.to_string(),
        value: value.to_string(),
    }
}

fn cas(key: &str, expected: Option<&str>, new: &str) -> Op {
    Op::Cas {
        key: key.to_string(),
        expected: expected.map(str::to_string),
        new: new.to_string(),
    }
}

fn read(v: Option<&str>) -> Outcome {
    Outcome::Get(v.map(str::to_string))
}

/// Builds a history from (client, op, invoke, complete, outcome) tuples.
fn history(ops: Vec<(u64, Op, u64, Option<u64>, Outcome)>) -> History {
    let mut h = History::new();
    for (client, op, invoke, complete, outcome) in ops {
        let id = h.invoke(client, op, invoke);
        if let Some(t) = complete {
            h.complete(id, t, outcome);
        }
    }
    h
}

#[test]
fn empty_history_passes() {
    check(&History::new()).unwrap();
}

#[test]
fn sequential_history_passes() {
    let h = history(vec![
        (1, get("a"), 0, Some(1), read(None)),
        (1, put("a", "1"), 2, Some(3), Outcome::Put),
        (2, get("a"), 4, Some(5), read(Some("1"))),
        (2, cas("a", Some("1"), "2"), 6, Some(7), Outcome::Cas(true)),
        (1, cas("a", Some("1"), "3"), 8, Some(9), Outcome::Cas(false)),
        (1, get("a"), 10, Some(11), read(Some("2"))),
        (3, cas("b", None, "x"), 12, Some(13), Outcome::Cas(true)),
        (3, get("b"), 14, Some(15), read(Some("x"))),
        (3, get("a"), 16, Some(17), read(Some("2"))),
    ]);
    check(&h).unwrap();
}

#[test]
fn overlapping_writes_pass_with_either_read_order() {
    for (first, second) in [("1", "2"), ("2", "1")] {
        // Reads concurrent with both writes may see them in either order...
        let h = history(vec![
            (1, put("a", "1"), 0, Some(10), Outcome::Put),
            (2, put("a", "2"), 0, Some(10), Outcome::Put),
            (3, get("a"), 1, Some(4), read(Some(first))),
            (3, get("a"), 5, Some(9), read(Some(second))),
            (3, get("a"), 20, Some(21), read(Some(second))),
        ]);
        check(&h).unwrap();
        // ...and a later read sees whichever was ordered last.
        let h = history(vec![
            (1, put("a", "1"), 0, Some(10), Outcome::Put),
            (2, put("a", "2"), 0, Some(10), Outcome::Put),
            (3, get("a"), 20, Some(21), read(Some(first))),
        ]);
        check(&h).unwrap();
    }
}

#[test]
fn reads_going_back_in_time_fail() {
    let h = history(vec![
        (1, put("a", "1"), 0, Some(10), Outcome::Put),
        (2, put("a", "2"), 0, Some(10), Outcome::Put),
        (3, get("a"), 11, Some(12), read(Some("1"))),
        (3, get("a"), 13, Some(14), read(Some("2"))),
    ]);
    check(&h).unwrap_err();
}

#[test]
fn stale_read_fails() {
    let h = history(vec![
        (1, put("a", "1"), 0, Some(10), Outcome::Put),
        (1, put("a", "2"), 20, Some(30), Outcome::Put),
        (2, get("a"), 40, Some(50), read(Some("1"))),
    ]);
    let err = check(&h).unwrap_err();
    assert_eq!(err.key, "a");
    assert!(!err.budget_exhausted());
    println!("{err}");
    // The report names the stale read and the write it missed.
    assert!(err.explanation.contains("#2 client 2 get"), "{err}");
    assert!(err.explanation.contains("#1 client 1 put \"2\""), "{err}");
}

#[test]
fn read_of_unwritten_value_fails() {
    let h = history(vec![
        (1, put("a", "1"), 0, Some(10), Outcome::Put),
        (2, get("a"), 20, Some(30), read(Some("7"))),
    ]);
    let err = check(&h).unwrap_err();
    assert!(err.explanation.contains("\"7\""), "{err}");
    // Written, but only after the read completed.
    let h = history(vec![
        (2, get("a"), 0, Some(10), read(Some("1"))),
        (1, put("a", "1"), 20, Some(30), Outcome::Put),
    ]);
    check(&h).unwrap_err();
    // Absent while a value is there.
    let h = history(vec![
        (1, put("a", "1"), 0, Some(10), Outcome::Put),
        (2, get("a"), 20, Some(30), read(None)),
    ]);
    check(&h).unwrap_err();
}

#[test]
fn failed_cas_that_should_have_succeeded_fails() {
    let h = history(vec![
        (1, put("a", "1"), 0, Some(10), Outcome::Put),
        (
            2,
            cas("a", Some("1"), "2"),
            20,
            Some(30),
            Outcome::Cas(false),
        ),
    ]);
    let err = check(&h).unwrap_err();
    assert!(err.explanation.contains("failed although"), "{err}");
    let h = history(vec![(
        2,
        cas("a", None, "2"),
        20,
        Some(30),
        Outcome::Cas(false),
    )]);
    check(&h).unwrap_err();
    // Succeeding without the expected value fails too.
    let h = history(vec![
        (1, put("a", "1"), 0, Some(10), Outcome::Put),
        (
            2,
            cas("a", Some("0"), "2"),
            20,
            Some(30),
            Outcome::Cas(true),
        ),
    ]);
    check(&h).unwrap_err();
    // A concurrent write may explain a failure.
    let h = history(vec![
        (1, put("a", "1"), 0, Some(10), Outcome::Put),
        (
            2,
            cas("a", Some("1"), "2"),
            20,
            Some(30),
            Outcome::Cas(false),
        ),
        (3, put("a", "3"), 25, Some(35), Outcome::Put),
    ]);
    check(&h).unwrap();
}

#[test]
fn unknown_writes_may_or_may_not_apply() {
    for seen in ["1", "2"] {
        // Never completed.
        let h = history(vec![
            (1, put("a", "1"), 0, Some(10), Outcome::Put),
            (2, put("a", "2"), 20, None, Outcome::Unknown),
            (3, get("a"), 30, Some(40), read(Some(seen))),
            (3, get("a"), 50, Some(60), read(Some(seen))),
        ]);
        check(&h).unwrap();
        // Completed with a timeout.
        let h = history(vec![
            (1, put("a", "1"), 0, Some(10), Outcome::Put),
            (2, cas("a", Some("1"), "2"), 20, Some(25), Outcome::Unknown),
            (3, get("a"), 30, Some(40), read(Some(seen))),
        ]);
        check(&h).unwrap();
    }
    // It can take effect late, but only once.
    let h = history(vec![
        (1, put("a", "1"), 0, Some(10), Outcome::Put),
        (2, put("a", "2"), 20, None, Outcome::Unknown),
        (3, get("a"), 30, Some(40), read(Some("1"))),
        (3, get("a"), 50, Some(60), read(Some("2"))),
        (3, get("a"), 70, Some(80), read(Some("2"))),
    ]);
    check(&h).unwrap();
    let h = history(vec![
        (1, put("a", "1"), 0, Some(10), Outcome::Put),
        (2, put("a", "2"), 20, None, Outcome::Unknown),
        (3, get("a"), 30, Some(40), read(Some("2"))),
        (3, get("a"), 50, Some(60), read(Some("1"))),
    ]);
    check(&h).unwrap_err();
    // It cannot take effect before it was invoked.
    let h = history(vec![
        (1, put("a", "1"), 0, Some(10), Outcome::Put),
        (3, get("a"), 20, Some(30), read(Some("2"))),
        (2, put("a", "2"), 40, None, Outcome::Unknown),
    ]);
    check(&h).unwrap_err();
    // An unknown CAS only applies when its expectation holds.
    let h = history(vec![
        (1, put("a", "1"), 0, Some(10), Outcome::Put),
        (2, cas("a", Some("0"), "2"), 20, None, Outcome::Unknown),
        (3, get("a"), 30, Some(40), read(Some("2"))),
    ]);
    check(&h).unwrap_err();
    // A read with an unknown result says nothing.
    let h = history(vec![
        (1, put("a", "1"), 0, Some(10), Outcome::Put),
        (3, get("a"), 20, None, Outcome::Unknown),
        (3, get("a"), 30, Some(40), Outcome::Unknown),
    ]);
    check(&h).unwrap();
}

#[test]
fn chained_unknown_writes_can_explain_a_read() {
    let h = history(vec![
        (1, put("a", "1"), 0, None, Outcome::Unknown),
        (2, cas("a", Some("1"), "2"), 5, None, Outcome::Unknown),
        (3, put("a", "3"), 10, Some(20), Outcome::Put),
        (4, get("a"), 30, Some(40), read(Some("2"))),
    ]);
    check(&h).unwrap();
}

#[test]
fn equal_times_count_as_concurrent() {
    let h = history(vec![
        (1, put("a", "1"), 0, Some(10), Outcome::Put),
        (1, put("a", "2"), 10, Some(20), Outcome::Put),
        (2, get("a"), 20, Some(30), read(Some("1"))),
    ]);
    check(&h).unwrap();
}

#[test]
fn keys_are_independent() {
    let h = history(vec![
        (1, put("a", "1"), 0, Some(10), Outcome::Put),
        (2, put("b", "1"), 20, Some(30), Outcome::Put),
        (3, get("a"), 40, Some(50), read(Some("1"))),
        (3, get("b"), 40, Some(50), read(Some("1"))),
        (3, get("c"), 40, Some(50), read(None)),
    ]);
    check(&h).unwrap();
    let h = history(vec![
        (1, put("a", "1"), 0, Some(10), Outcome::Put),
        (3, get("b"), 40, Some(50), read(Some("1"))),
    ]);
    assert_eq!(check(&h).unwrap_err().key, "b");
}

#[test]
fn malformed_events_are_rejected() {
    let h = history(vec![(1, put("a", "1"), 0, Some(10), Outcome::Cas(true))]);
    assert!(check(&h).unwrap_err().explanation.contains("malformed"));
    let h = history(vec![(1, put("a", "1"), 10, Some(5), Outcome::Put)]);
    assert!(check(&h).unwrap_err().explanation.contains("malformed"));
}

/// A stale value a read could be made to return.
struct Stale {
    /// The read's event id.
    read: usize,
    /// The value the register held before the last write that completed before the
    /// read was invoked.
    value: Option<String>,
    /// That value's writer completed before the overwriting write was invoked, so no
    /// reordering of the writes can explain the read.
    certain: bool,
}

/// A linearizable history from a random sequential schedule: operation `i` takes effect
/// at time `10 * i + 5` and its interval is stretched randomly around that point. About
/// one write in twelve has an unknown outcome and applies or not at random. Also returns
/// the reads that could be made stale.
fn random_history(seed: u64, n: usize, keys: u64, spread: u64) -> (History, Vec<Stale>) {
    random_history_mix(seed, n, keys, spread, true)
}

/// As [`random_history`]; without compare-and-swaps unless `cas`.
fn random_history_mix(
    seed: u64,
    n: usize,
    keys: u64,
    spread: u64,
    cas_too: bool,
) -> (History, Vec<Stale>) {
    let mut rng = Rng::new(seed);
    let mut h = History::new();
    // Per key: current value, and its writer's completion if acknowledged.
    let mut model: HashMap<String, (Option<String>, Option<u64>)> = HashMap::new();
    // Per key, acknowledged value changes: (completion, value before, Stale::certain).
    let mut writes: HashMap<String, Vec<(u64, Option<String>, bool)>> = HashMap::new();
    let mut stale = Vec::new();
    for i in 0..n as u64 {
        let key = format!("k{}", rng.range(0, keys));
        let point = 10 * i + 5;
        let invoke = point.saturating_sub(rng.range(0, spread));
        let complete = point + rng.range(0, spread);
        let client = rng.range(0, 16);
        let (cur, cur_writer) = model.get(&key).cloned().unwrap_or_default();
        let fresh = format!("v{i}");
        let roll = rng.range(0, if cas_too { 100 } else { 75 });
        let unknown = rng.chance(1, 12);
        let (op, outcome, next) = if roll < 45 {
            let outcome = if rng.chance(1, 30) {
                Outcome::Unknown
            } else {
                Outcome::Get(cur.clone())
            };
            (get(&key), outcome, cur.clone())
        } else if roll < 75 {
            (put(&key, &fresh), Outcome::Put, Some(fresh.clone()))
        } else {
            let expected = if rng.chance(1, 2) {
                cur.clone()
            } else if rng.chance(1, 2) {
                None
            } else {
                Some(format!("v{}", rng.range(0, i + 1)))
            };
            let ok = expected == cur;
            let op = cas(&key, expected.as_deref(), &fresh);
            let next = if ok { Some(fresh.clone()) } else { cur.clone() };
            (op, Outcome::Cas(ok), next)
        };
        let is_read = matches!(op, Op::Get { .. });
        let id = h.invoke(client, op, invoke);
        if unknown && !is_read {
            // May or may not have applied; the client never learns which.
            if rng.chance(1, 2) {
                model.insert(key.clone(), (next, None));
            }
            if rng.chance(1, 2) {
                h.complete(id, complete, Outcome::Unknown);
            }
            continue;
        }
        h.complete(id, complete, outcome.clone());
        if is_read {
            if outcome == Outcome::Unknown {
                continue;
            }
            let last = writes
                .get(&key)
                .into_iter()
                .flatten()
                .rev()
                .find(|(done, _, _)| *done < invoke);
            if let Some((_, before, certain)) = last {
                if *before != cur {
                    stale.push(Stale {
                        read: id,
                        value: before.clone(),
                        certain: *certain,
                    });
                }
            }
        } else if next != cur {
            let certain = cur_writer.is_some_and(|c| c < invoke);
            writes
                .entry(key.clone())
                .or_default()
                .push((complete, cur, certain));
            model.insert(key, (next, Some(complete)));
        }
    }
    (h, stale)
}

#[test]
fn random_linearizable_histories_pass() {
    for seed in 0..200 {
        let spread = 10 + seed % 80;
        let (h, _) = random_history(seed, 200, 1 + seed % 4, spread);
        if let Err(e) = check(&h) {
            panic!("seed {seed}: {e}");
        }
    }
}

#[test]
fn random_stale_reads_are_caught() {
    let (mut tried, mut caught) = ([0; 2], [0; 2]);
    for seed in 0..300 {
        let spread = 10 + seed % 60;
        let (h, stale) = random_history(1000 + seed, 150, 1 + seed % 3, spread);
        // One stale read of each kind per history.
        for certain in [false, true] {
            let choices: Vec<&Stale> = stale.iter().filter(|s| s.certain == certain).collect();
            if choices.is_empty() {
                continue;
            }
            let pick = choices[(seed as usize * 7919) % choices.len()];
            let mut h = h.clone();
            h.events[pick.read].outcome = Outcome::Get(pick.value.clone());
            tried[usize::from(certain)] += 1;
            if check(&h).is_err() {
                caught[usize::from(certain)] += 1;
            }
        }
    }
    println!("stale reads caught: {caught:?} of {tried:?} (uncertain, certain)");
    assert!(
        tried.iter().all(|&t| t >= 200),
        "too few stale reads planted: {tried:?}"
    );
    // A read returning the value some write overwrote before the read began: caught
    // unless the overwritten value's own write overlapped that write (and so may have
    // come after it).
    assert!(
        caught[0] * 100 >= tried[0] * 85,
        "caught {} of {} stale reads",
        caught[0],
        tried[0]
    );
    // When the writes were ordered in real time too, nothing can explain the read.
    assert_eq!(caught[1], tried[1], "stale reads that no order explains");
}

#[test]
fn large_history_checks_fast() {
    let (h, _) = random_history(7, 2000, 10, 60);
    assert_eq!(h.events().len(), 2000);
    let start = Instant::now();
    check(&h).unwrap();
    let took = start.elapsed();
    // Also a single hot key, with much more concurrency.
    let (h, _) = random_history(8, 2000, 1, 100);
    let start2 = Instant::now();
    check(&h).unwrap();
    let took2 = start2.elapsed();
    println!("2000 events: 10 keys {took:?}, 1 key {took2:?}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(took2 < Duration::from_secs(1), "took {took2:?}");
}

#[test]
fn highly_concurrent_puts_and_gets_check() {
    // Dozens of operations overlap at every instant on a single key; most writes are
    // never read.
    let (h, _) = random_history_mix(12, 2000, 1, 300, false);
    let start = Instant::now();
    check(&h).unwrap();
    println!(
        "2000 events, one key, ~50 overlapping: {:?}",
        start.elapsed()
    );
}

#[test]
fn budget_exhaustion_is_reported() {
    let (h, _) = random_history(9, 500, 1, 200);
    let err = check_with_budget(&h, 100).unwrap_err();
    assert!(err.explanation.contains("search budget exhausted"), "{err}");
    assert!(err.budget_exhausted());
    // With the default budget it is decided.
    check(&h).unwrap();
}

/// Reference semantics by exhaustive search over every order of every subset of the
/// operations with an unknown outcome (tiny histories only).
fn brute_force(h: &History) -> bool {
    struct Item<'a> {
        op: &'a Op,
        outcome: Option<&'a Outcome>,
        invoke: u64,
        complete: Option<u64>,
    }
    fn search(items: &[Item], used: &mut Vec<bool>, val: Option<&str>) -> bool {
        let required_left = items
            .iter()
            .zip(used.iter())
            .any(|(it, u)| !u && it.outcome.is_some());
        if !required_left {
            return true;
        }
        for i in 0..items.len() {
            if used[i] {
                continue;
            }
            // Every unused acknowledged operation must not have completed before `i`
            // was invoked.
            let blocked = items.iter().zip(used.iter()).any(|(it, u)| {
                !u && it.outcome.is_some() && it.complete.is_some_and(|c| c < items[i].invoke)
            });
            if blocked {
                continue;
            }
            let next: Option<Option<&str>> = match (items[i].op, items[i].outcome) {
                (Op::Get { .. }, Some(Outcome::Get(v))) => (v.as_deref() == val).then_some(val),
                (Op::Put { value, .. }, _) => Some(Some(value)),
                (Op::Cas { expected, new, .. }, Some(Outcome::Cas(true))) => {
                    (expected.as_deref() == val).then_some(Some(new))
                }
                (Op::Cas { expected, .. }, Some(Outcome::Cas(false))) => {
                    (expected.as_deref() != val).then_some(val)
                }
                (Op::Cas { expected, new, .. }, None) => Some(if expected.as_deref() == val {
                    Some(new.as_str())
                } else {
                    val
                }),
                _ => unreachable!(),
            };
            if let Some(next) = next {
                used[i] = true;
                let ok = search(items, used, next);
                used[i] = false;
                if ok {
                    return true;
                }
            }
        }
        false
    }
    let mut keys: Vec<&str> = h.events().iter().map(|e| e.op.key()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter().all(|key| {
        let items: Vec<Item> = h
            .events()
            .iter()
            .filter(|e| e.op.key() == key)
            .filter_map(|e| {
                let known = e.complete.is_some() && e.outcome != Outcome::Unknown;
                if !known && matches!(e.op, Op::Get { .. }) {
                    return None;
                }
                Some(Item {
                    op: &e.op,
                    outcome: known.then_some(&e.outcome),
                    invoke: e.invoke,
                    complete: e.complete,
                })
            })
            .collect();
        search(&items, &mut vec![false; items.len()], None)
    })
}

#[test]
fn agrees_with_exhaustive_search_on_small_random_histories() {
    const CASES: u64 = 20_000;
    const MAXN: u64 = 10;
    let mut rng = Rng::new(42);
    let values = [None, Some("1"), Some("2"), Some("3")];
    let (mut ok, mut bad) = (0, 0);
    for case in 0..CASES {
        let mut h = History::new();
        let n = rng.range(1, MAXN);
        for c in 0..n {
            let key = if rng.chance(1, 5) { "b" } else { "a" };
            let invoke = rng.range(0, 20);
            let complete = invoke + rng.range(0, 10);
            let pick = |rng: &mut Rng| values[rng.range(0, 4) as usize];
            let some = |rng: &mut Rng| values[rng.range(1, 4) as usize].unwrap_or("1");
            let (op, outcome) = match rng.range(0, 3) {
                0 => (get(key), read(pick(&mut rng))),
                1 => (put(key, some(&mut rng)), Outcome::Put),
                _ => {
                    let expected = pick(&mut rng);
                    let op = cas(key, expected, some(&mut rng));
                    (op, Outcome::Cas(rng.chance(1, 2)))
                }
            };
            let id = h.invoke(c, op, invoke);
            match rng.range(0, 10) {
                0 => {}
                1 => h.complete(id, complete, Outcome::Unknown),
                _ => h.complete(id, complete, outcome),
            }
        }
        let expected = brute_force(&h);
        let got = check(&h);
        assert_eq!(got.is_ok(), expected, "case {case}: {got:?}\n{h:#?}");
        if expected {
            ok += 1;
        } else {
            bad += 1;
        }
    }
    // Both verdicts were exercised.
    println!("{ok} linearizable, {bad} not");
    assert!(ok > 500 && bad > 500, "{ok} linearizable, {bad} not");
}
