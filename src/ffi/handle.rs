//! The global handle table: handles given to C are encoded `(generation, slot)` values, not
//! pointers, so a freed, consumed or forged handle is detected instead of dereferenced.

use super::config::{BuilderData, ConfigData};
use super::node::NodeObj;
use super::{fail, raft_status};
use parking_lot::Mutex;
use std::sync::Arc;

/// Objects living behind handles.
pub(crate) enum Object {
    Builder(Box<BuilderData>),
    Config(Arc<ConfigData>),
    Node(Arc<NodeObj>),
}

struct Slot {
    generation: usize,
    obj: Option<Object>,
}

struct Table {
    slots: Vec<Slot>,
    free: Vec<usize>,
}

static TABLE: Mutex<Table> = parking_lot::const_mutex(Table {
    slots: Vec::new(),
    free: Vec::new(),
});

/// Low tag bits: a handle is never an aligned pointer.
const TAG_BITS: u32 = 4;
const TAG: usize = 0xA;
#[cfg(target_pointer_width = "64")]
const SLOT_BITS: u32 = 28;
#[cfg(not(target_pointer_width = "64"))]
const SLOT_BITS: u32 = 16;
const GEN_SHIFT: u32 = TAG_BITS + SLOT_BITS;
const GEN_MASK: usize = usize::MAX >> GEN_SHIFT;
const SLOT_MASK: usize = (1 << SLOT_BITS) - 1;

fn encode(slot: usize, generation: usize) -> usize {
    (generation << GEN_SHIFT) | ((slot + 1) << TAG_BITS) | TAG
}

fn decode(h: usize) -> Option<(usize, usize)> {
    if h & ((1 << TAG_BITS) - 1) != TAG {
        return None;
    }
    let slot = (h >> TAG_BITS) & SLOT_MASK;
    if slot == 0 {
        return None;
    }
    Some((slot - 1, h >> GEN_SHIFT))
}

impl Table {
    fn slot_mut(&mut self, h: usize) -> Option<&mut Slot> {
        let (i, g) = decode(h)?;
        let s = self.slots.get_mut(i)?;
        (s.generation == g && s.obj.is_some()).then_some(s)
    }

    fn take(&mut self, h: usize) -> Option<Object> {
        let (i, _) = decode(h)?;
        let s = self.slot_mut(h)?;
        let obj = s.obj.take();
        s.generation = (s.generation + 1) & GEN_MASK;
        if s.generation == 0 {
            s.generation = 1;
        }
        self.free.push(i);
        obj
    }
}

/// Stores `obj`, returning its handle value.
pub(crate) fn insert(obj: Object) -> Result<usize, raft_status> {
    let mut t = TABLE.lock();
    let i = match t.free.pop() {
        Some(i) => i,
        None => {
            if t.slots.len() + 1 >= SLOT_MASK {
                drop(t);
                return Err(fail(raft_status::Busy, "handle table is full"));
            }
            t.slots.push(Slot {
                generation: 1,
                obj: None,
            });
            t.slots.len() - 1
        }
    };
    let s = &mut t.slots[i];
    s.obj = Some(obj);
    Ok(encode(i, s.generation))
}

/// Removes the object behind `h` only if `pred` accepts it.
pub(crate) fn remove_if(h: usize, pred: impl FnOnce(&Object) -> bool) -> Option<Object> {
    let mut t = TABLE.lock();
    if !pred(t.slot_mut(h)?.obj.as_ref()?) {
        return None;
    }
    t.take(h)
}

/// Runs `f` on the object behind `h` under the table lock (keep it short: no callbacks).
pub(crate) fn with<R>(h: usize, f: impl FnOnce(&mut Object) -> R) -> Option<R> {
    let mut t = TABLE.lock();
    let s = t.slot_mut(h)?;
    s.obj.as_mut().map(f)
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
    fn encode_roundtrip() {
        let h = encode(5, 7);
        assert_eq!(decode(h), Some((5, 7)));
        assert_eq!(decode(0x1000), None);
        assert_eq!(decode(0), None);
    }
}
