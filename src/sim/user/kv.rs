//! The built-in key-value model and its command format.
//!
//! Commands are UTF-8 text, one per write or read: `put KEY VALUE` (answers `ok`),
//! `append KEY SUFFIX` (answers the new value; not idempotent), `del KEY` (answers `ok`)
//! and the read `get KEY` (answers the value, empty when absent). Keys contain no spaces;
//! values may. A state machine that speaks this format is checked by [`KvModel`], one key
//! at a time.

use super::model::{Model, OpKind};

/// A parsed key-value command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvCommand<'a> {
    /// `put KEY VALUE`: set the key.
    Put(&'a str, &'a str),
    /// `append KEY SUFFIX`: append to the key's value (absent counts as empty).
    Append(&'a str, &'a str),
    /// `del KEY`: remove the key.
    Del(&'a str),
    /// `get KEY`: read the key.
    Get(&'a str),
}

impl<'a> KvCommand<'a> {
    /// Parses a command; `None` if it is not in the format above.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        let s = std::str::from_utf8(bytes).ok()?;
        let (op, rest) = s.split_once(' ')?;
        let (key, arg) = match rest.split_once(' ') {
            Some((k, a)) => (k, Some(a)),
            None => (rest, None),
        };
        match (op, arg) {
            ("put", Some(v)) => Some(KvCommand::Put(key, v)),
            ("append", Some(v)) => Some(KvCommand::Append(key, v)),
            ("del", None) => Some(KvCommand::Del(key)),
            ("get", None) => Some(KvCommand::Get(key)),
            _ => None,
        }
    }

    /// The key the command touches.
    pub fn key(&self) -> &'a str {
        match self {
            KvCommand::Put(k, _)
            | KvCommand::Append(k, _)
            | KvCommand::Del(k)
            | KvCommand::Get(k) => k,
        }
    }
}

/// `put KEY VALUE`.
pub fn put(key: &str, value: &str) -> Vec<u8> {
    format!("put {key} {value}").into_bytes()
}

/// `append KEY SUFFIX`.
pub fn append(key: &str, suffix: &str) -> Vec<u8> {
    format!("append {key} {suffix}").into_bytes()
}

/// `del KEY`.
pub fn del(key: &str) -> Vec<u8> {
    format!("del {key}").into_bytes()
}

/// `get KEY`.
pub fn get(key: &str) -> Vec<u8> {
    format!("get {key}").into_bytes()
}

/// The sequential key-value store of the format above, partitioned by key.
#[derive(Debug, Clone, Copy, Default)]
pub struct KvModel;

impl Model for KvModel {
    /// The value of the one key a partition holds (`None`: absent).
    type State = Option<String>;

    fn init(&self) -> Option<String> {
        None
    }

    fn step(&self, state: &Option<String>, _: OpKind, input: &[u8]) -> (Option<String>, Vec<u8>) {
        match KvCommand::parse(input) {
            Some(KvCommand::Put(_, v)) => (Some(v.to_string()), b"ok".to_vec()),
            Some(KvCommand::Append(_, v)) => {
                let new = format!("{}{v}", state.as_deref().unwrap_or(""));
                (Some(new.clone()), new.into_bytes())
            }
            Some(KvCommand::Del(_)) => (None, b"ok".to_vec()),
            Some(KvCommand::Get(_)) => (
                state.clone(),
                state.clone().unwrap_or_default().into_bytes(),
            ),
            None => (state.clone(), b"error: bad command".to_vec()),
        }
    }

    fn partition(&self, _: OpKind, input: &[u8]) -> Option<Vec<u8>> {
        KvCommand::parse(input).map(|c| c.key().as_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip() {
        assert_eq!(
            KvCommand::parse(&put("a", "x y")),
            Some(KvCommand::Put("a", "x y"))
        );
        assert_eq!(
            KvCommand::parse(&append("a", "z")),
            Some(KvCommand::Append("a", "z"))
        );
        assert_eq!(KvCommand::parse(&del("a")), Some(KvCommand::Del("a")));
        assert_eq!(KvCommand::parse(&get("a")), Some(KvCommand::Get("a")));
        assert_eq!(KvCommand::parse(b"get a b"), None);
        assert_eq!(KvCommand::parse(b"nope"), None);
    }

    #[test]
    fn model_appends() {
        let (s, out) = KvModel.step(&None, OpKind::Write, &append("k", "a"));
        assert_eq!(out, b"a");
        let (s, out) = KvModel.step(&s, OpKind::Write, &append("k", "b"));
        assert_eq!((s.as_deref(), out.as_slice()), (Some("ab"), &b"ab"[..]));
    }
}
