//! Power-loss fault injection for [`DiskStorage`](super::DiskStorage) (and anything else
//! that syncs through this module): a hook around every fsync the store issues, and a
//! [`PowerLossRecorder`] that follows what each fsync made durable and can materialise the
//! directory a power loss at that moment could leave behind.
//!
//! A SIGKILL keeps the page cache, so it only tests the order of writes. A power loss drops
//! the page cache: what was fsynced survives exactly, everything else is undefined. The
//! recorder models the worst a file system may do:
//! - unsynced file contents are lost **per page** (not as a prefix): each 4 KiB page written
//!   since the file's last fsync holds, in the bytes that changed, the new bytes, the old
//!   bytes, zeros or garbage (bytes the fsync made durable and nobody rewrote stay), and
//!   the file length is anywhere between the synced and the current length;
//! - unsynced **directory operations** (creations, unlinks, renames not followed by an fsync
//!   of the directory) are each independently kept or undone.
//!
//! Observation is keyed by directory (process-wide): [`observe`] registers an observer for
//! every fsync of that directory and of the files in it until the returned guard is dropped.
//! Costs one atomic load per fsync when nothing is observed.

use crate::core::rng::Rng;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Page size of the loss model: unsynced data is lost or kept in units of this many bytes.
pub const PAGE: usize = 4096;

/// An fsync about to be issued (or just issued).
#[derive(Debug, Clone, Copy)]
pub enum SyncEvent<'a> {
    /// `fsync`/`fdatasync` of a file.
    File(&'a Path),
    /// `fsync` of a directory (makes its creations, unlinks and renames durable).
    Dir(&'a Path),
}

impl SyncEvent<'_> {
    fn path(&self) -> &Path {
        match self {
            SyncEvent::File(p) | SyncEvent::Dir(p) => p,
        }
    }
}

/// Sees every fsync in an observed directory.
pub trait SyncObserver: Send + Sync {
    /// Called before the fsync; an error is returned to the store instead of syncing (the
    /// store then fails as on a real fsync error: it is poisoned).
    fn before(&self, ev: SyncEvent<'_>) -> io::Result<()>;
    /// Called after a successful fsync.
    fn after(&self, ev: SyncEvent<'_>);
}

type Entry = (PathBuf, Arc<dyn SyncObserver>);

static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static OBSERVERS: RwLock<Vec<Entry>> = RwLock::new(Vec::new());

/// Keeps an observation registered; dropping it unregisters the observer.
#[must_use = "the observer is unregistered when this guard is dropped"]
pub struct Observation {
    dir: PathBuf,
    obs: Arc<dyn SyncObserver>,
}

impl Drop for Observation {
    fn drop(&mut self) {
        let mut g = OBSERVERS.write();
        if let Some(k) = g
            .iter()
            .position(|(d, o)| d == &self.dir && Arc::ptr_eq(o, &self.obs))
        {
            g.remove(k);
            ACTIVE.fetch_sub(1, Ordering::Release);
        }
    }
}

/// Registers `obs` for every fsync of `dir` and of the files directly in it.
pub fn observe(dir: &Path, obs: Arc<dyn SyncObserver>) -> Observation {
    OBSERVERS.write().push((dir.to_path_buf(), obs.clone()));
    ACTIVE.fetch_add(1, Ordering::Release);
    Observation {
        dir: dir.to_path_buf(),
        obs,
    }
}

fn observers_of(ev: SyncEvent<'_>) -> Vec<Arc<dyn SyncObserver>> {
    if ACTIVE.load(Ordering::Acquire) == 0 {
        return Vec::new();
    }
    let p = ev.path();
    let dir = match ev {
        SyncEvent::File(_) => p.parent().unwrap_or(p),
        SyncEvent::Dir(_) => p,
    };
    OBSERVERS
        .read()
        .iter()
        .filter(|(d, _)| d == dir)
        .map(|(_, o)| o.clone())
        .collect()
}

/// Runs `sync` between the observers' `before` and `after` hooks.
pub(super) fn synced(ev: SyncEvent<'_>, sync: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
    let obs = observers_of(ev);
    for o in &obs {
        o.before(ev)?;
    }
    sync()?;
    for o in &obs {
        o.after(ev);
    }
    Ok(())
}

/// What the fsyncs so far made durable in one directory.
#[derive(Default)]
struct Durable {
    /// Content of each inode as of its last fsync.
    files: HashMap<u64, Vec<u8>>,
    /// Name -> inode as of the last directory fsync.
    names: BTreeMap<String, u64>,
    /// Fsyncs seen.
    events: u64,
}

type Trigger = Box<dyn FnMut(u64, &PowerLossRecorder) -> io::Result<()> + Send>;

/// Follows the fsyncs of one directory (a flat store directory) and materialises
/// power-loss images of it. Register it with [`observe`]; use [`PowerLossRecorder::image`]
/// at any moment, or [`PowerLossRecorder::set_trigger`] to act right before a given fsync.
pub struct PowerLossRecorder {
    dir: PathBuf,
    state: Mutex<Durable>,
    trigger: Mutex<Option<Trigger>>,
}

impl std::fmt::Debug for PowerLossRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerLossRecorder")
            .field("dir", &self.dir)
            .field("events", &self.state.lock().events)
            .finish()
    }
}

/// Name -> inode of the regular files directly in `dir`.
fn list(dir: &Path) -> io::Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for ent in fs::read_dir(dir)? {
        let ent = ent?;
        let md = ent.metadata()?;
        if md.is_file() {
            out.insert(ent.file_name().to_string_lossy().into_owned(), md.ino());
        }
    }
    Ok(out)
}

impl PowerLossRecorder {
    /// A recorder for `dir` (created if missing); whatever the directory holds now counts as
    /// durable.
    pub fn new(dir: &Path) -> io::Result<Arc<PowerLossRecorder>> {
        fs::create_dir_all(dir)?;
        let names = list(dir)?;
        let mut files = HashMap::new();
        for (name, ino) in &names {
            files.insert(*ino, fs::read(dir.join(name))?);
        }
        Ok(Arc::new(PowerLossRecorder {
            dir: dir.to_path_buf(),
            state: Mutex::new(Durable {
                files,
                names,
                events: 0,
            }),
            trigger: Mutex::new(None),
        }))
    }

    /// Registers this recorder for its directory (see [`observe`]).
    pub fn observe(self: &Arc<Self>) -> Observation {
        observe(&self.dir, self.clone())
    }

    /// The number of fsyncs seen so far.
    pub fn events(&self) -> u64 {
        self.state.lock().events
    }

    /// Calls `f(n, recorder)` right before fsync number `n` (from 0) is issued; an error
    /// from `f` is returned to the store instead of the fsync.
    pub fn set_trigger(
        &self,
        f: impl FnMut(u64, &PowerLossRecorder) -> io::Result<()> + Send + 'static,
    ) {
        *self.trigger.lock() = Some(Box::new(f));
    }

    /// Writes into `out` (a new or empty directory) what a power loss right now could leave
    /// in the observed directory, choosing among the possible outcomes with `seed`: synced
    /// bytes and synced directory entries exactly, every unsynced page and every unsynced
    /// directory operation at random (see the module documentation).
    pub fn image(&self, seed: u64, out: &Path) -> io::Result<()> {
        let mut rng = Rng::new(seed);
        let st = self.state.lock();
        let now = list(&self.dir)?;
        fs::create_dir_all(out)?;
        let mut names: Vec<&String> = st.names.keys().chain(now.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            let durable = st.names.get(name).copied();
            let current = now.get(name).copied();
            // An unsynced creation, unlink or rename is kept or undone at random.
            let ino = if durable == current || rng.chance(1, 2) {
                current
            } else {
                durable
            };
            let Some(ino) = ino else { continue };
            let old = st.files.get(&ino).map(Vec::as_slice).unwrap_or(&[]);
            // The current content if the inode is still linked under this name.
            let new = if current == Some(ino) {
                Some(fs::read(self.dir.join(name))?)
            } else {
                None
            };
            let bytes = match new {
                Some(new) => lose_pages(&mut rng, old, &new),
                None => old.to_vec(),
            };
            fs::write(out.join(name), bytes)?;
        }
        Ok(())
    }
}

/// One possible post-power-loss content of a file whose last fsync left `old` and whose page
/// cache holds `new`.
fn lose_pages(rng: &mut Rng, old: &[u8], new: &[u8]) -> Vec<u8> {
    if old == new {
        return new.to_vec();
    }
    let len = if new.len() >= old.len() {
        match rng.range(0, 3) {
            0 => old.len(),
            1 => new.len(),
            _ => rng.range(old.len() as u64, new.len() as u64 + 1) as usize,
        }
    } else if rng.chance(1, 2) {
        old.len()
    } else {
        new.len()
    };
    let mut out = vec![0u8; len];
    for start in (0..len).step_by(PAGE) {
        let end = (start + PAGE).min(len);
        // One fate per page for the bytes written since the last fsync; bytes the last
        // fsync made durable and nobody rewrote stay exact.
        let fate = rng.range(0, 4);
        for (j, b) in out[start..end].iter_mut().enumerate() {
            let j = start + j;
            let (o, n) = (old.get(j).copied(), new.get(j).copied());
            *b = match (o, n) {
                (Some(o), Some(n)) if o == n => o,
                _ => match fate {
                    0 => n.unwrap_or(0),
                    1 => o.unwrap_or(0),
                    2 => 0,
                    _ => rng.next_u64() as u8,
                },
            };
        }
    }
    out
}

impl SyncObserver for PowerLossRecorder {
    fn before(&self, _ev: SyncEvent<'_>) -> io::Result<()> {
        let n = {
            let mut st = self.state.lock();
            st.events += 1;
            st.events - 1
        };
        let mut t = self.trigger.lock();
        match t.as_mut() {
            Some(f) => f(n, self),
            None => Ok(()),
        }
    }

    fn after(&self, ev: SyncEvent<'_>) {
        let mut st = self.state.lock();
        match ev {
            SyncEvent::File(p) => {
                // The file may be gone again (a concurrent unlink): nothing to record.
                if let (Ok(md), Ok(bytes)) = (fs::metadata(p), fs::read(p)) {
                    st.files.insert(md.ino(), bytes);
                }
            }
            SyncEvent::Dir(_) => {
                if let Ok(names) = list(&self.dir) {
                    st.names = names;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synced_pages_survive_and_unsynced_pages_vary() {
        let old = vec![1u8; 3 * PAGE];
        let mut new = old.clone();
        new[PAGE + 5] = 9;
        new.extend(vec![7u8; PAGE]);
        let mut kinds = std::collections::HashSet::new();
        for seed in 0..64 {
            let got = lose_pages(&mut Rng::new(seed), &old, &new);
            assert!(got.len() >= old.len());
            assert_eq!(&got[..PAGE], &old[..PAGE]);
            assert_eq!(&got[2 * PAGE..3 * PAGE], &old[2 * PAGE..3 * PAGE]);
            kinds.insert(got[PAGE + 5]);
        }
        // new, old, zero and garbage bytes all occur for the rewritten page.
        assert!(kinds.contains(&9) && kinds.contains(&1) && kinds.contains(&0));
        assert!(kinds.len() > 3);
    }
}
