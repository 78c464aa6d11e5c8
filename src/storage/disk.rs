//! [`DiskStorage`]: the durable storage engine (segmented WAL, hard state file, snapshots).
//!
//! See `docs/STORAGE.md` for the on-disk format and the recovery rules.

use super::fsutil::{fsync_dir, io_err, sync_file};
use super::hard_state;
use super::identity::Identity;
use super::record::{self, Parsed};
use super::segment::{self, corrupt, HEADER_LEN};
use super::snapshot_file::{self, CheckedReader, PARTIAL_FILE};
use super::LogStore;
use crate::core::{
    ConfState, Entry, HardState, SnapshotMeta, Storage, StorageError, StorageResult,
};
use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const WRITE_BUFFER: usize = 256 << 10;
pub(super) const LOCK_FILE: &str = "LOCK";

/// One WAL segment file.
pub(super) struct Segment {
    pub(super) path: PathBuf,
    /// Read/write handle for positional reads and synced-mark writes (appends go through
    /// [`Inner::writer`]).
    pub(super) file: File,
    /// Logical length, including bytes still in the write buffer.
    pub(super) len: u64,
    /// Format version (1: no synced-length slots; never appended to).
    pub(super) version: u32,
    /// Generation and value of the synced mark last written to the header.
    pub(super) mark_gen: u32,
    pub(super) mark: u64,
}

impl Segment {
    /// Writes the synced mark `synced` into the next slot of a version 2 header (not synced:
    /// the caller's next fsync of the segment carries it).
    pub(super) fn write_mark(&mut self, synced: u64) -> io::Result<()> {
        if self.version < 2 {
            return Ok(());
        }
        let gen = self.mark_gen + 1;
        let (off, slot) = segment::encode_slot(gen, synced);
        self.file.write_all_at(&slot, off)?;
        self.mark_gen = gen;
        self.mark = synced;
        Ok(())
    }
}

/// Where an entry lives on disk.
#[derive(Debug, Clone, Copy)]
pub(super) struct Loc {
    pub(super) term: u64,
    /// First index of the segment holding it (its key in `segments`).
    pub(super) seg: u64,
    pub(super) offset: u64,
    pub(super) len: u32,
}

/// The current snapshot file.
pub(super) struct SnapFile {
    pub(super) path: PathBuf,
    pub(super) file: File,
    pub(super) data_offset: u64,
}

/// A snapshot being received.
pub(super) struct Partial {
    pub(super) meta: SnapshotMeta,
    pub(super) file: File,
    pub(super) data_offset: u64,
    /// Bytes of data durably written.
    pub(super) durable: u64,
}

pub(super) struct Inner {
    pub(super) dir: PathBuf,
    pub(super) fsync: bool,
    pub(super) segment_bytes: u64,
    pub(super) cache_limit: u64,
    pub(super) hs: HardState,
    pub(super) snap: SnapshotMeta,
    pub(super) snap_file: Option<SnapFile>,
    pub(super) segments: BTreeMap<u64, Segment>,
    /// Buffered appender for the last segment.
    pub(super) writer: Option<BufWriter<File>>,
    /// Index of `locs[0]` (the first entry physically present in the WAL).
    pub(super) phys_first: u64,
    pub(super) locs: VecDeque<Loc>,
    /// Compaction point: the entry before the first readable one.
    pub(super) offset_index: u64,
    pub(super) offset_term: u64,
    /// The most recent entries (a suffix of the log), bounded by `cache_limit` bytes.
    pub(super) cache: VecDeque<Entry>,
    pub(super) cache_bytes: u64,
    pub(super) partial: Option<Partial>,
    pub(super) poisoned: Option<String>,
    pub(super) scratch: Vec<u8>,
    pub(super) identity: Identity,
}

/// A durable [`Storage`] + [`LogStore`] in a directory. Thread-safe; every method takes
/// `&self`. Only one `DiskStorage` may have a directory open at a time (enforced with
/// `flock` on `LOCK`).
pub struct DiskStorage {
    pub(super) inner: Mutex<Inner>,
    pub(super) _lock: File,
}

impl std::fmt::Debug for DiskStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.inner.lock();
        f.debug_struct("DiskStorage")
            .field("dir", &g.dir)
            .field("first_index", &(g.offset_index + 1))
            .field("last_index", &g.last_index())
            .field("snapshot_index", &g.snap.index)
            .finish()
    }
}

impl DiskStorage {
    /// The directory this store lives in.
    pub fn dir(&self) -> PathBuf {
        self.inner.lock().dir.clone()
    }

    /// The current hard state.
    pub fn hard_state(&self) -> HardState {
        self.inner.lock().hs
    }

    /// Whose state this directory holds (cluster, node, incarnation).
    pub fn identity(&self) -> Identity {
        self.inner.lock().identity
    }

    /// The error that poisoned the store, if a write or fsync has failed.
    pub fn poisoned(&self) -> Option<String> {
        self.inner.lock().poisoned.clone()
    }

    /// The WAL segment files as `(first index, path, bytes)`, oldest first.
    pub fn segment_files(&self) -> Vec<(u64, PathBuf, u64)> {
        let g = self.inner.lock();
        g.segments
            .iter()
            .map(|(f, s)| (*f, s.path.clone(), s.len))
            .collect()
    }
}

pub(super) fn open_writer(path: &Path) -> io::Result<BufWriter<File>> {
    let f = OpenOptions::new().append(true).open(path)?;
    Ok(BufWriter::with_capacity(WRITE_BUFFER, f))
}

impl Inner {
    pub(super) fn last_index(&self) -> u64 {
        self.phys_first + self.locs.len() as u64 - 1
    }

    pub(super) fn log_holds(&self, index: u64, term: u64) -> bool {
        index >= self.phys_first
            && self
                .locs
                .get((index - self.phys_first) as usize)
                .is_some_and(|l| l.term == term)
    }

    fn check(&self) -> StorageResult<()> {
        match &self.poisoned {
            Some(p) => Err(StorageError::Io(format!(
                "store is poisoned by an earlier write/fsync failure: {p}"
            ))),
            None => Ok(()),
        }
    }

    /// Records a fatal write/fsync failure: every later write fails.
    fn poison(&mut self, what: impl std::fmt::Display, e: io::Error) -> StorageError {
        let msg = format!("{what}: {e}");
        tracing::error!(
            error = msg.as_str(),
            "storage write failed; store is now poisoned"
        );
        if self.poisoned.is_none() {
            self.poisoned = Some(msg.clone());
        }
        StorageError::Io(msg)
    }

    /// Records `first` (0: none) as the newest segment before newer ones are removed.
    pub(super) fn lower_wal_head(&mut self, first: u64) -> StorageResult<()> {
        if let Err(e) = hard_state::write_wal_head(&self.dir, first, self.fsync) {
            return Err(self.poison("write wal.head", e));
        }
        Ok(())
    }

    /// The path of the last (active) segment (empty if there is none).
    fn active_path(&self) -> PathBuf {
        self.segments
            .values()
            .next_back()
            .map(|s| s.path.clone())
            .unwrap_or_default()
    }

    fn sync_dir(&mut self) -> StorageResult<()> {
        if self.fsync {
            if let Err(e) = fsync_dir(&self.dir) {
                let d = self.dir.display().to_string();
                return Err(self.poison(format!("fsync directory {d}"), e));
            }
        }
        Ok(())
    }

    pub(super) fn recompute_offset(&mut self) {
        match self.locs.front() {
            Some(l) if self.phys_first <= self.snap.index => {
                self.offset_index = self.phys_first;
                self.offset_term = l.term;
            }
            _ => {
                self.offset_index = self.snap.index;
                self.offset_term = self.snap.term;
                if self.segments.is_empty() {
                    self.phys_first = self.snap.index + 1;
                }
            }
        }
    }

    fn term(&self, index: u64) -> StorageResult<u64> {
        if index == self.offset_index {
            return Ok(self.offset_term);
        }
        if index < self.offset_index {
            return Err(StorageError::Compacted);
        }
        if index > self.last_index() {
            return Err(StorageError::Unavailable);
        }
        Ok(self.locs[(index - self.phys_first) as usize].term)
    }

    fn entry(&mut self, i: u64) -> StorageResult<Entry> {
        let last = self.last_index();
        let cache_first = last + 1 - self.cache.len() as u64;
        if i >= cache_first {
            return Ok(self.cache[(i - cache_first) as usize].clone());
        }
        let loc = self.locs[(i - self.phys_first) as usize];
        let is_active = self.segments.keys().next_back() == Some(&loc.seg);
        if is_active {
            if let Some(w) = self.writer.as_mut() {
                if !w.buffer().is_empty() {
                    if let Err(e) = w.flush() {
                        return Err(self.poison("flush WAL", e));
                    }
                }
            }
        }
        let seg = &self.segments[&loc.seg];
        let mut buf = vec![0u8; loc.len as usize];
        seg.file
            .read_exact_at(&mut buf, loc.offset)
            .map_err(|e| corrupt(&seg.path, loc.offset, format!("read: {e}")))?;
        match record::parse(&buf) {
            Parsed::Record(e, _) if e.index == i => Ok(e),
            other => Err(corrupt(
                &seg.path,
                loc.offset,
                format!("record {i} is damaged on read ({other:?})"),
            )),
        }
    }

    fn push_cache(&mut self, e: Entry) {
        self.cache_bytes += e.size();
        self.cache.push_back(e);
        while self.cache_bytes > self.cache_limit {
            match self.cache.pop_front() {
                Some(old) => self.cache_bytes -= old.size(),
                None => break,
            }
        }
    }

    /// Creates a new (empty) last segment starting at `first`, atomically.
    fn create_segment(&mut self, first: u64) -> StorageResult<()> {
        let name = segment::file_name(first);
        let path = self.dir.join(&name);
        let res = (|| -> io::Result<File> {
            let tmp = self.dir.join(format!("{name}.tmp"));
            {
                let mut f = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&tmp)?;
                f.write_all(&segment::encode_header(first))?;
                if self.fsync {
                    sync_file(&f, &tmp, false)?;
                }
            }
            fs::rename(&tmp, &path)?;
            if self.fsync {
                fsync_dir(&self.dir)?;
            }
            // Only a segment that is durably in place is recorded as the newest.
            hard_state::write_wal_head(&self.dir, first, self.fsync)?;
            OpenOptions::new().read(true).write(true).open(&path)
        })();
        let file = match res {
            Ok(f) => f,
            Err(e) => return Err(self.poison(format!("create segment {}", path.display()), e)),
        };
        match open_writer(&path) {
            Ok(w) => self.writer = Some(w),
            Err(e) => return Err(self.poison(format!("open {}", path.display()), e)),
        }
        if self.locs.is_empty() {
            self.phys_first = first;
        }
        self.segments.insert(
            first,
            Segment {
                path,
                file,
                len: HEADER_LEN,
                version: segment::FORMAT_VERSION,
                mark_gen: 1,
                mark: HEADER_LEN,
            },
        );
        Ok(())
    }

    /// Flushes and fsyncs the current writer and closes it.
    fn close_writer(&mut self) -> StorageResult<()> {
        if let Some(mut w) = self.writer.take() {
            if let Err(e) = w.flush() {
                return Err(self.poison("flush WAL", e));
            }
            if self.fsync {
                let path = self.active_path();
                if let Err(e) = sync_file(w.get_ref(), &path, true) {
                    return Err(self.poison("fsync WAL", e));
                }
            }
        }
        Ok(())
    }

    fn write_entry(&mut self, e: &Entry) -> StorageResult<()> {
        let need_new = match self.segments.values().next_back() {
            None => true,
            // A version 1 segment (from an older build) is never appended to.
            Some(s) => s.version < 2 || (s.len >= self.segment_bytes && s.len > HEADER_LEN),
        };
        if need_new {
            self.close_writer()?;
            self.create_segment(e.index)?;
        }
        let active = *self.segments.keys().next_back().expect("active segment");
        self.scratch.clear();
        let n = record::encode(e, &mut self.scratch);
        let w = self.writer.as_mut().expect("writer");
        if let Err(err) = w.write_all(&self.scratch) {
            return Err(self.poison("write WAL", err));
        }
        let seg = self.segments.get_mut(&active).expect("segment");
        let offset = seg.len;
        seg.len += n as u64;
        if self.locs.is_empty() {
            self.phys_first = e.index;
        }
        self.locs.push_back(Loc {
            term: e.term,
            seg: active,
            offset,
            len: n as u32,
        });
        self.push_cache(e.clone());
        Ok(())
    }

    /// Durably removes entries `idx..` before new ones are written at `idx`.
    fn truncate_from(&mut self, idx: u64) -> StorageResult<()> {
        let pos = (idx - self.phys_first) as usize;
        let loc = self.locs[pos];
        if let Some(mut w) = self.writer.take() {
            if let Err(e) = w.flush() {
                return Err(self.poison("flush WAL", e));
            }
        }
        let later: Vec<u64> = self
            .segments
            .range(loc.seg + 1..)
            .map(|(k, _)| *k)
            .collect();
        if !later.is_empty() {
            self.lower_wal_head(loc.seg)?;
        }
        for k in later.iter().rev() {
            let s = self.segments.remove(k).expect("segment");
            if let Err(e) = fs::remove_file(&s.path) {
                return Err(self.poison(format!("remove {}", s.path.display()), e));
            }
        }
        // The unlinks are durable before the kept segment changes: a crash can never leave
        // a later segment after a cut one (a gap that would refuse to open).
        if !later.is_empty() {
            self.sync_dir()?;
        }
        let fsync = self.fsync;
        let seg = self.segments.get_mut(&loc.seg).expect("segment");
        let path = seg.path.clone();
        let res = (|| -> io::Result<()> {
            // Lower the synced mark durably before cutting, so the file is never shorter
            // than its mark (which recovery refuses as a cut file).
            if seg.mark > loc.offset {
                seg.write_mark(loc.offset)?;
                if fsync {
                    sync_file(&seg.file, &seg.path, true)?;
                }
            }
            seg.file.set_len(loc.offset)?;
            if fsync {
                sync_file(&seg.file, &seg.path, false)?;
            }
            Ok(())
        })();
        if let Err(e) = res {
            return Err(self.poison(format!("truncate {}", path.display()), e));
        }
        self.segments.get_mut(&loc.seg).expect("segment").len = loc.offset;

        let removed = self.last_index() - idx + 1;
        for _ in 0..removed.min(self.cache.len() as u64) {
            let e = self.cache.pop_back().expect("cache");
            self.cache_bytes -= e.size();
        }
        self.locs.truncate(pos);
        match open_writer(&path) {
            Ok(w) => self.writer = Some(w),
            Err(e) => return Err(self.poison(format!("open {}", path.display()), e)),
        }
        Ok(())
    }

    /// Removes whole segments whose entries are all `< c` (or all `<= c` when `c` is the
    /// new snapshot's index `snap_index`, whose term the snapshot records), oldest first, so
    /// a crash leaves a contiguous suffix. Keeping the segment holding `c` keeps `term(c)`
    /// known and entries after `c` readable. Call [`Inner::recompute_offset`] afterwards.
    fn compact_through(&mut self, c: u64, snap_index: u64) -> StorageResult<()> {
        let keys: Vec<u64> = self.segments.keys().copied().collect();
        let last = self.last_index();
        let mut removed = 0;
        for (k, &first) in keys.iter().enumerate() {
            let is_last = k + 1 == keys.len();
            let seg_last = if is_last { last } else { keys[k + 1] - 1 };
            if !(seg_last < c || (seg_last == c && c == snap_index)) {
                break;
            }
            if is_last {
                self.close_writer()?;
                self.lower_wal_head(0)?;
            }
            let s = self.segments.remove(&first).expect("segment");
            if let Err(e) = fs::remove_file(&s.path) {
                return Err(self.poison(format!("remove {}", s.path.display()), e));
            }
            removed += 1;
        }
        if removed == 0 {
            return Ok(());
        }
        self.sync_dir()?;
        match self.segments.keys().next().copied() {
            Some(f) => {
                let drop_n = (f - self.phys_first) as usize;
                self.locs.drain(..drop_n);
                self.phys_first = f;
                let cache_first = self.last_index() + 1 - self.cache.len() as u64;
                for _ in cache_first..f.max(cache_first) {
                    let e = self.cache.pop_front().expect("cache");
                    self.cache_bytes -= e.size();
                }
            }
            None => {
                self.locs.clear();
                self.cache.clear();
                self.cache_bytes = 0;
            }
        }
        Ok(())
    }

    /// Removes every segment (newest first). Call [`Inner::recompute_offset`] afterwards.
    pub(super) fn reset_log(&mut self) -> StorageResult<()> {
        self.writer = None;
        if !self.segments.is_empty() {
            self.lower_wal_head(0)?;
        }
        while let Some((_, s)) = self.segments.pop_last() {
            if let Err(e) = fs::remove_file(&s.path) {
                return Err(self.poison(format!("remove {}", s.path.display()), e));
            }
        }
        self.sync_dir()?;
        self.locs.clear();
        self.cache.clear();
        self.cache_bytes = 0;
        Ok(())
    }

    /// Makes `path` (already renamed into place) the current snapshot with `meta`, removes
    /// the previous snapshot file, and raises the commit index to the snapshot.
    fn adopt_snapshot(&mut self, meta: SnapshotMeta, path: PathBuf) -> StorageResult<()> {
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => return Err(self.poison(format!("open {}", path.display()), e)),
        };
        let data_offset = snapshot_file::data_offset_for(&meta);
        let old = self.snap_file.replace(SnapFile {
            path: path.clone(),
            file,
            data_offset,
        });
        self.snap = meta;
        self.recompute_offset();
        if let Some(old) = old {
            if old.path != path {
                if let Err(e) = fs::remove_file(&old.path) {
                    return Err(self.poison(format!("remove {}", old.path.display()), e));
                }
                self.sync_dir()?;
            }
        }
        if let Some(p) = &self.partial {
            if p.meta.index <= self.snap.index {
                let _ = fs::remove_file(self.dir.join(PARTIAL_FILE));
                self.partial = None;
            }
        }
        if self.hs.commit < self.snap.index {
            let hs = HardState {
                commit: self.snap.index,
                ..self.hs
            };
            if let Err(e) = hard_state::write_hard_state(&self.dir, &hs, self.fsync) {
                return Err(self.poison("write hardstate", e));
            }
            self.hs = hs;
        }
        Ok(())
    }
}

impl Storage for DiskStorage {
    fn initial_state(&self) -> StorageResult<(HardState, ConfState)> {
        let g = self.inner.lock();
        Ok((g.hs, g.snap.conf.clone()))
    }

    fn entries(&self, lo: u64, hi: u64, max_bytes: u64) -> StorageResult<Vec<Entry>> {
        let mut g = self.inner.lock();
        if lo <= g.offset_index {
            return Err(StorageError::Compacted);
        }
        if hi > g.last_index() + 1 || lo > hi {
            return Err(StorageError::Unavailable);
        }
        let mut out = Vec::new();
        let mut size = 0;
        for i in lo..hi {
            let e = g.entry(i)?;
            size += e.size();
            if !out.is_empty() && size > max_bytes {
                break;
            }
            out.push(e);
        }
        Ok(out)
    }

    fn term(&self, index: u64) -> StorageResult<u64> {
        self.inner.lock().term(index)
    }

    fn first_index(&self) -> u64 {
        self.inner.lock().offset_index + 1
    }

    fn last_index(&self) -> u64 {
        self.inner.lock().last_index()
    }

    fn snapshot_meta(&self) -> SnapshotMeta {
        self.inner.lock().snap.clone()
    }

    fn snapshot_chunk(&self, index: u64, offset: u64, max_len: usize) -> StorageResult<Vec<u8>> {
        let g = self.inner.lock();
        let Some(sf) = g.snap_file.as_ref().filter(|_| g.snap.index == index) else {
            return Err(StorageError::SnapshotOutOfDate);
        };
        let start = offset.min(g.snap.size);
        let end = start.saturating_add(max_len as u64).min(g.snap.size);
        let mut buf = vec![0u8; (end - start) as usize];
        sf.file
            .read_exact_at(&mut buf, sf.data_offset + start)
            .map_err(|e| corrupt(&sf.path, sf.data_offset + start, format!("read: {e}")))?;
        Ok(buf)
    }

    fn partial_snapshot(&self) -> Option<(SnapshotMeta, u64)> {
        let g = self.inner.lock();
        g.partial.as_ref().map(|p| (p.meta.clone(), p.durable))
    }
}

impl LogStore for DiskStorage {
    fn append(&self, entries: &[Entry]) -> StorageResult<()> {
        let mut g = self.inner.lock();
        g.check()?;
        let skip = entries
            .iter()
            .take_while(|e| e.index <= g.offset_index)
            .count();
        let entries = &entries[skip..];
        let Some(first) = entries.first() else {
            return Ok(());
        };
        for (k, e) in entries.iter().enumerate() {
            if k > 0 && e.term < entries[k - 1].term {
                return Err(StorageError::Io(format!(
                    "append: entry {} has a lower term than the entry before it",
                    e.index
                )));
            }
            if e.index != first.index + k as u64 {
                return Err(StorageError::Io(format!(
                    "append: entries are not contiguous at index {}",
                    e.index
                )));
            }
            if e.data.len() > record::MAX_PAYLOAD {
                return Err(StorageError::Io(format!(
                    "append: entry {} payload of {} bytes exceeds the {} byte limit",
                    e.index,
                    e.data.len(),
                    record::MAX_PAYLOAD
                )));
            }
        }
        let last = g.last_index();
        if first.index > last + 1 {
            return Err(StorageError::Io(format!(
                "append at index {} leaves a gap after the last index {last}",
                first.index
            )));
        }
        let prev_term = g.term(first.index - 1).unwrap_or(0);
        if first.term < prev_term {
            return Err(StorageError::Io(format!(
                "append: entry {} has term {} below the previous entry's term {prev_term}",
                first.index, first.term
            )));
        }
        if first.index <= last {
            g.truncate_from(first.index)?;
        }
        for e in entries {
            g.write_entry(e)?;
        }
        Ok(())
    }

    fn set_hard_state(&self, hs: HardState) -> StorageResult<()> {
        let mut g = self.inner.lock();
        g.check()?;
        if let Err(e) = hard_state::write_hard_state(&g.dir, &hs, g.fsync) {
            return Err(g.poison("write hardstate", e));
        }
        g.hs = hs;
        Ok(())
    }

    fn sync(&self) -> StorageResult<()> {
        let mut g = self.inner.lock();
        g.check()?;
        let fsync = g.fsync;
        let path = g.active_path();
        let res = match g.writer.as_mut() {
            Some(w) => w.flush().and_then(|_| {
                if fsync {
                    sync_file(w.get_ref(), &path, true)
                } else {
                    Ok(())
                }
            }),
            None => Ok(()),
        };
        if let Err(e) = res {
            return Err(g.poison("sync WAL", e));
        }
        // Record what this fsync made durable; the next fsync carries the record, and a
        // power loss before it leaves the previous (still true) mark.
        let inner = &mut *g;
        if let Some(seg) = inner.segments.values_mut().next_back() {
            if fsync && seg.mark < seg.len {
                if let Err(e) = seg.write_mark(seg.len) {
                    return Err(g.poison("write WAL synced mark", e));
                }
            }
        }
        Ok(())
    }

    fn write_snapshot_chunk(
        &self,
        meta: &SnapshotMeta,
        offset: u64,
        data: &[u8],
    ) -> StorageResult<bool> {
        let mut g = self.inner.lock();
        g.check()?;
        let fresh = !matches!(&g.partial, Some(p) if p.meta.same_snapshot(meta));
        if fresh {
            if offset != 0 {
                return Ok(false);
            }
            g.partial = None;
            let path = g.dir.join(PARTIAL_FILE);
            let data_offset = snapshot_file::data_offset_for(meta);
            let res = (|| -> io::Result<File> {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)?;
                f.write_all_at(&snapshot_file::encode_header(meta, data_offset), 0)?;
                f.set_len(data_offset)?;
                Ok(f)
            })();
            let file = match res {
                Ok(f) => f,
                Err(e) => return Err(g.poison(format!("create {}", path.display()), e)),
            };
            g.partial = Some(Partial {
                meta: meta.clone(),
                file,
                data_offset,
                durable: 0,
            });
        }
        let fsync = g.fsync;
        let partial_path = g.dir.join(PARTIAL_FILE);
        let p = g.partial.as_ref().expect("partial");
        if p.durable != offset {
            return Ok(false);
        }
        if offset + data.len() as u64 > meta.size {
            return Err(StorageError::Io(format!(
                "snapshot chunk at {offset} of {} bytes exceeds the snapshot size {}",
                data.len(),
                meta.size
            )));
        }
        let res = p
            .file
            .write_all_at(data, p.data_offset + offset)
            .and_then(|_| {
                if fsync {
                    sync_file(&p.file, &partial_path, false)
                } else {
                    Ok(())
                }
            });
        if let Err(e) = res {
            return Err(g.poison("write incoming snapshot", e));
        }
        if fresh {
            g.sync_dir()?;
        }
        g.partial.as_mut().expect("partial").durable += data.len() as u64;
        Ok(true)
    }

    fn finish_incoming_snapshot(&self, meta: &SnapshotMeta) -> StorageResult<()> {
        let mut g = self.inner.lock();
        g.check()?;
        let partial_path = g.dir.join(PARTIAL_FILE);
        let Some(p) = g.partial.as_ref().filter(|p| p.meta.same_snapshot(meta)) else {
            return Err(StorageError::Io(format!(
                "no incoming snapshot matching index {} term {}",
                meta.index, meta.term
            )));
        };
        let verdict = snapshot_file::verify_data(&p.file, &partial_path, meta, p.data_offset);
        if let Err(e) = verdict {
            tracing::warn!(error = %e, "incoming snapshot failed verification; discarding it");
            g.partial = None;
            let _ = fs::remove_file(&partial_path);
            return Err(e);
        }
        if meta.index <= g.snap.index {
            g.partial = None;
            let _ = fs::remove_file(&partial_path);
            return Err(StorageError::SnapshotOutOfDate);
        }
        let final_path = g.dir.join(snapshot_file::file_name(meta.index, meta.term));
        if let Err(e) = fs::rename(&partial_path, &final_path) {
            return Err(g.poison(format!("rename to {}", final_path.display()), e));
        }
        g.partial = None;
        g.sync_dir()?;
        if g.log_holds(meta.index, meta.term) {
            g.compact_through(meta.index, meta.index)?;
        } else {
            g.reset_log()?;
        }
        g.adopt_snapshot(meta.clone(), final_path)
    }

    fn create_snapshot(
        &self,
        mut meta: SnapshotMeta,
        data: &mut dyn Read,
        keep_trailing: u64,
    ) -> StorageResult<SnapshotMeta> {
        let (dir, fsync) = {
            let g = self.inner.lock();
            g.check()?;
            if meta.index <= g.snap.index {
                return Err(StorageError::SnapshotOutOfDate);
            }
            let t = g.term(meta.index)?;
            if t != meta.term {
                return Err(StorageError::Io(format!(
                    "snapshot at index {} claims term {} but the log has term {t}",
                    meta.index, meta.term
                )));
            }
            (g.dir.clone(), g.fsync)
        };
        // Stream the data to a temp file without holding the lock.
        let name = snapshot_file::file_name(meta.index, meta.term);
        let tmp = dir.join(format!("{name}.tmp"));
        let data_offset = snapshot_file::data_offset_for(&meta);
        let written = (|| -> io::Result<(u64, u32, File)> {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            w.seek(SeekFrom::Start(data_offset))?;
            let mut buf = vec![0u8; 1 << 16];
            let (mut size, mut crc) = (0u64, 0u32);
            loop {
                let n = match data.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                crc = crate::crc32c::crc32c_append(crc, &buf[..n]);
                size += n as u64;
                w.write_all(&buf[..n])?;
            }
            let f = w.into_inner().map_err(|e| e.into_error())?;
            f.set_len(data_offset + size)?;
            Ok((size, crc, f))
        })();
        let (size, crc, file) = match written {
            Ok(x) => x,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(io_err(format!("write snapshot {}", tmp.display()), e));
            }
        };
        meta.size = size;
        meta.checksum = crc;
        let header = snapshot_file::encode_header(&meta, data_offset);
        if let Err(e) = file.write_all_at(&header, 0) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(format!("write snapshot {}", tmp.display()), e));
        }
        let mut g = self.inner.lock();
        if fsync {
            if let Err(e) = sync_file(&file, &tmp, false) {
                let _ = fs::remove_file(&tmp);
                return Err(g.poison(format!("fsync {}", tmp.display()), e));
            }
        }
        drop(file);
        g.check()?;
        if meta.index <= g.snap.index {
            let _ = fs::remove_file(&tmp);
            return Err(StorageError::SnapshotOutOfDate);
        }
        let final_path = dir.join(&name);
        if let Err(e) = fs::rename(&tmp, &final_path) {
            return Err(g.poison(format!("rename to {}", final_path.display()), e));
        }
        g.sync_dir()?;
        g.compact_through(meta.index.saturating_sub(keep_trailing), meta.index)?;
        g.adopt_snapshot(meta.clone(), final_path)?;
        Ok(meta)
    }

    fn open_snapshot(&self) -> StorageResult<Option<(SnapshotMeta, Box<dyn Read + Send>)>> {
        let (mut f, path, data_offset, meta) = {
            let g = self.inner.lock();
            let Some(sf) = g.snap_file.as_ref() else {
                return Ok(None);
            };
            let f = sf
                .file
                .try_clone()
                .map_err(|e| io_err(sf.path.display(), e))?;
            (f, sf.path.clone(), sf.data_offset, g.snap.clone())
        };
        // Verified before the caller sees a byte (a restore that stops reading early must not
        // restore damaged data); without the lock, on this handle, so a snapshot installed
        // meanwhile does not matter and the storage thread is not held up.
        snapshot_file::verify_data(&f, &path, &meta, data_offset)?;
        f.seek(SeekFrom::Start(data_offset))
            .map_err(|e| io_err(path.display(), e))?;
        let reader = CheckedReader::new(BufReader::new(f), meta.size, meta.checksum);
        Ok(Some((meta, Box::new(reader))))
    }
}
