//! Exports a client [`History`] for porcupine (github.com/anishathalye/porcupine), the
//! linearizability checker etcd uses, so our own checker can be compared with it
//! (`tools/porcupine-check` reads this format).
//!
//! One operation per line, fields separated by single spaces, strings hex-encoded:
//! `CLIENT CALL RETURN KIND KEY ARG1 ARG2 OUTCOME`, where `RETURN` is `-` for an operation
//! that never completed, `KIND` is `get`, `put` or `cas`, `ARG1`/`ARG2` are `-` when absent
//! (put: value; cas: expected, new) and `OUTCOME` is `unknown`, `ok` (put), `true`/`false`
//! (cas), `none` or `=HEX` (get).

use super::linearizability::{History, Op, Outcome};
use std::fmt::Write;

fn hex(s: &str) -> String {
    if s.is_empty() {
        return "=".into();
    }
    s.bytes().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// The history in the line format above.
pub fn export(history: &History) -> String {
    let mut out = String::new();
    for e in history.events() {
        let ret = e.complete.map_or("-".to_string(), |t| t.to_string());
        let outcome = match (&e.complete, &e.outcome) {
            (None, _) | (_, Outcome::Unknown) => "unknown".to_string(),
            (_, Outcome::Put) => "ok".to_string(),
            (_, Outcome::Cas(ok)) => ok.to_string(),
            (_, Outcome::Get(None)) => "none".to_string(),
            (_, Outcome::Get(Some(v))) => format!("={}", hex(v)),
        };
        let (kind, key, a, b) = match &e.op {
            Op::Get { key } => ("get", key, "-".to_string(), "-".to_string()),
            Op::Put { key, value } => ("put", key, hex(value), "-".to_string()),
            Op::Cas { key, expected, new } => (
                "cas",
                key,
                expected.as_deref().map_or("-".to_string(), hex),
                hex(new),
            ),
        };
        let _ = writeln!(
            out,
            "{} {} {ret} {kind} {} {a} {b} {outcome}",
            e.client,
            e.invoke,
            hex(key)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_format() {
        let mut h = History::new();
        let a = h.invoke(
            1,
            Op::Put {
                key: "k".into(),
                value: "v1".into(),
            },
            3,
        );
        h.complete(a, 5, Outcome::Put);
        let b = h.invoke(2, Op::Get { key: "k".into() }, 4);
        h.complete(b, 6, Outcome::Get(Some("v1".into())));
        h.invoke(
            3,
            Op::Cas {
                key: "k".into(),
                expected: None,
                new: "".into(),
            },
            7,
        );
        assert_eq!(
            export(&h),
            "1 3 5 put 6b 7631 - ok\n2 4 6 get 6b - - =7631\n3 7 - cas 6b - = unknown\n"
        );
    }
}
