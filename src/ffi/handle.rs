//! The global handle table: handles given to C are encoded `(version, slot)` keys of a
//! [`slotmap::SlotMap`], not pointers, so a freed, consumed or forged handle is detected
//! instead of dereferenced. Encoding (64-bit): `version u32 | slot index u28 | tag 0xA u4`.

use super::config::{BuilderData, ConfigData};
use super::node::NodeObj;
use super::{fail, raft_status};
use parking_lot::Mutex;
use slotmap::{DefaultKey, Key, KeyData, SlotMap};
use std::sync::Arc;

/// Objects living behind handles.
pub(crate) enum Object {
    Builder(Box<BuilderData>),
    Config(Arc<ConfigData>),
    Node(Arc<NodeObj>),
}

/// The table: a [`SlotMap`] (generational slots, freed slots reused with a new version).
static TABLE: Mutex<Option<SlotMap<DefaultKey, Object>>> = parking_lot::const_mutex(None);

/// Low tag bits: a handle is never an aligned pointer.
const TAG_BITS: u32 = 4;
const TAG: usize = 0xA;
/// Bits of the slot index (the slot map never hands out index 0, so a handle is never 0).
const SLOT_BITS: u32 = 28;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
/// The slot map's 32-bit version sits above the index and the tag.
const VERSION_SHIFT: u32 = TAG_BITS + SLOT_BITS;

// A handle packs the tag, the 28-bit index and the full 32-bit version: it needs 64 bits.
const _: () = assert!(usize::BITS >= 64, "C handles need 64-bit pointers");

/// Handle value of `key`, or `None` when its index does not fit the encoding.
fn encode(key: DefaultKey) -> Option<usize> {
    let ffi = key.data().as_ffi();
    let (index, version) = (ffi & 0xFFFF_FFFF, ffi >> 32);
    if index > SLOT_MASK {
        return None;
    }
    Some(((version << VERSION_SHIFT) | (index << TAG_BITS)) as usize | TAG)
}

/// The key a handle value names; `None` for anything [`encode`] cannot have produced.
fn decode(h: usize) -> Option<DefaultKey> {
    if h & ((1 << TAG_BITS) - 1) != TAG {
        return None;
    }
    let h = h as u64;
    let index = (h >> TAG_BITS) & SLOT_MASK;
    let version = h >> VERSION_SHIFT;
    // Occupied slots have odd versions; `from_ffi` would round an even one up, so two
    // handle values could name one object: refuse it here instead.
    if index == 0 || version & 1 == 0 {
        return None;
    }
    Some(KeyData::from_ffi((version << 32) | index).into())
}

/// Stores `obj`, returning its handle value.
pub(crate) fn insert(obj: Object) -> Result<usize, raft_status> {
    let mut t = TABLE.lock();
    let map = t.get_or_insert_with(SlotMap::new);
    let key = map.insert(obj);
    match encode(key) {
        Some(h) => Ok(h),
        None => {
            map.remove(key);
            drop(t);
            Err(fail(raft_status::Busy, "handle table is full"))
        }
    }
}

/// Removes the object behind `h` only if `pred` accepts it.
pub(crate) fn remove_if(h: usize, pred: impl FnOnce(&Object) -> bool) -> Option<Object> {
    let key = decode(h)?;
    let mut t = TABLE.lock();
    let map = t.as_mut()?;
    if !pred(map.get(key)?) {
        return None;
    }
    map.remove(key)
}

/// Runs `f` on the object behind `h` under the table lock (keep it short: no callbacks).
pub(crate) fn with<R>(h: usize, f: impl FnOnce(&mut Object) -> R) -> Option<R> {
    let key = decode(h)?;
    let mut t = TABLE.lock();
    t.as_mut()?.get_mut(key).map(f)
}

/// The config behind `h`.
pub(crate) fn config(h: usize) -> Result<Arc<ConfigData>, raft_status> {
    if h == 0 {
        return Err(fail(raft_status::NullArgument, "config is NULL"));
    }
    match with(h, |o| match o {
        Object::Config(c) => Some(c.clone()),
        _ => None,
    }) {
        Some(Some(c)) => Ok(c),
        _ => Err(fail(
            raft_status::InvalidHandle,
            "not a live raft_config handle",
        )),
    }
}

/// The node behind `h`.
pub(crate) fn node(h: usize) -> Result<Arc<NodeObj>, raft_status> {
    if h == 0 {
        return Err(fail(raft_status::NullArgument, "node is NULL"));
    }
    match with(h, |o| match o {
        Object::Node(n) => Some(n.clone()),
        _ => None,
    }) {
        Some(Some(n)) => Ok(n),
        _ => Err(fail(
            raft_status::InvalidHandle,
            "not a live raft_node handle",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_roundtrip_and_forgeries() {
        let mut map: SlotMap<DefaultKey, u8> = SlotMap::new();
        let k = map.insert(1);
        let h = encode(k).unwrap();
        assert_eq!(h & 0xF, TAG);
        assert_eq!(decode(h), Some(k));
        // A freed slot comes back with a new version: the old handle no longer matches.
        map.remove(k);
        let k2 = map.insert(2);
        let h2 = encode(k2).unwrap();
        assert_ne!(h, h2);
        assert_eq!(decode(h2), Some(k2));
        assert!(map.get(decode(h).unwrap()).is_none());
        // Untagged (an aligned pointer), zero index, even version: never a handle.
        assert_eq!(decode(0x1000), None);
        assert_eq!(decode(0), None);
        assert_eq!(decode(TAG), None);
        assert_eq!(decode(h ^ (1 << VERSION_SHIFT)), None);
    }

    #[test]
    fn freed_and_retyped_handles_are_refused() {
        let h = insert(Object::Builder(Box::default())).unwrap();
        assert!(with(h, |_| ()).is_some());
        assert!(remove_if(h, |o| matches!(o, Object::Config(_))).is_none());
        assert!(remove_if(h, |o| matches!(o, Object::Builder(_))).is_some());
        assert!(with(h, |_| ()).is_none());
        assert!(remove_if(h, |_| true).is_none());
        assert!(matches!(config(h), Err(raft_status::InvalidHandle)));
    }
}
