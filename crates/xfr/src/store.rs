//! Keeping transferred zones on disk, so that a restart serves at once and honours expiry.
//!
//! Per zone, up to three files in one directory:
//!
//! - `<zone>.zone`, a full snapshot as an RFC 1035 master file;
//! - `<zone>.journal`, the IXFR steps (RFC 1995 section 4) received since that snapshot, so that
//!   a small change to a large zone costs a small append, not a rewrite of the whole zone;
//! - `<zone>.state`, the serial, the wall-clock time of the last successful refresh and the
//!   expiry deadline.
//!
//! The snapshot and the state file are written to a temporary file and renamed over the old one,
//! so a crash leaves either the old or the new version, never half of one. A snapshot holds every
//! step of the journal, so writing one removes the journal: after the rename, so that a crash in
//! between leaves steps that loading skips as already contained. [`ZoneStore::persist`] appends
//! while the journal stays within half the size of the snapshot, and writes a snapshot otherwise.
//!
//! # Journal format
//!
//! One entry per IXFR step, integers big-endian:
//!
//! ```text
//! entry   = magic "AXJ1" | length u32 | checksum u32 | payload (length bytes)
//! payload = old SOA record | new SOA record
//!           | removed count u32 | removed records | added count u32 | added records
//! record  = owner (uncompressed wire name) | type u16 | TTL u32 | RDLENGTH u16 | RDATA
//! ```
//!
//! The checksum is the CRC-32 (IEEE 802.3) of the payload. An entry cut short by the end of the
//! file (a crash during an append) is torn; one with another magic or checksum, or whose payload
//! is not exactly one step, is corrupt. Either ends the replay: the steps before it are served,
//! the journal is cut back to them so that later appends follow on, and the secondary's next
//! refresh fetches what is missing.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyns_wire::{Name, Rtype, name};
use anyns_zone::{Record, Zone, ZoneDiff, ZoneErrors, apply_diffs, load_zone_file};
use tracing::{info, warn};

use crate::serial;

/// The timers of a stored zone, in wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedState {
    pub serial: u32,
    /// [`UNIX_EPOCH`] when unknown, so that the zone is refreshed at once.
    pub last_refresh: SystemTime,
    pub expire_at: SystemTime,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: bad state file")]
    State { path: PathBuf },
    #[error("stored zone: {0}")]
    Zone(ZoneErrors),
    #[error("{path}: an IXFR step too large for the journal format")]
    StepTooLarge { path: PathBuf },
}

/// What [`ZoneWriter::write`] (or [`ZoneStore::persist`]) wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// A full snapshot of the zone; the journal was removed.
    Snapshot,
    /// This many IXFR steps appended to the journal.
    Journal { steps: usize },
    /// The timers.
    State,
}

/// Why replaying a journal stopped before its end. What came before is served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum JournalStop {
    #[error("entry at offset {offset} is cut short (a crash during an append?)")]
    Torn { offset: usize },
    #[error("entry at offset {offset} is corrupt: {reason}")]
    Corrupt { offset: usize, reason: &'static str },
    #[error("step {from}→{to} at offset {offset} does not follow serial {serial}")]
    Gap {
        offset: usize,
        from: u32,
        to: u32,
        serial: u32,
    },
    #[error("step {from}→{to} at offset {offset} does not apply: {errors}")]
    Rejected {
        offset: usize,
        from: u32,
        to: u32,
        errors: String,
    },
}

/// A directory of stored zones.
#[derive(Debug, Clone)]
pub struct ZoneStore {
    dir: PathBuf,
}

impl ZoneStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ZoneStore { dir: dir.into() }
    }

    pub fn zone_path(&self, zone: &Name) -> PathBuf {
        self.dir.join(format!("{}.zone", file_stem(zone)))
    }

    pub fn state_path(&self, zone: &Name) -> PathBuf {
        self.dir.join(format!("{}.state", file_stem(zone)))
    }

    pub fn journal_path(&self, zone: &Name) -> PathBuf {
        self.dir.join(format!("{}.journal", file_stem(zone)))
    }

    /// Writes a full snapshot of the zone, then removes the journal, whose steps the snapshot
    /// holds. In that order: a crash in between leaves steps that loading skips.
    pub fn save_zone(&self, zone: &Zone) -> Result<(), StoreError> {
        write_atomic(&self.zone_path(zone.origin()), |out| {
            write_master_file(zone, out)
        })?;
        let journal = self.journal_path(zone.origin());
        match std::fs::remove_file(&journal) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Io {
                path: journal,
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Appends IXFR steps (RFC 1995 section 4) to the zone's journal. They must start at the
    /// serial the snapshot and the journal end with; loading stops at a step that does not.
    pub fn append_diffs(&self, zone: &Name, diffs: &[ZoneDiff]) -> Result<(), StoreError> {
        let entries = journal_entries(diffs).ok_or_else(|| StoreError::StepTooLarge {
            path: self.journal_path(zone),
        })?;
        self.append_journal(zone, &entries)
    }

    /// Writes a new version of the zone: the IXFR steps that led to it from the stored version
    /// appended to the journal, as long as the journal, with them, stays within half the size of
    /// the snapshot; otherwise, or without steps (a full transfer) or snapshot, a full snapshot.
    pub fn persist(&self, zone: &Zone, diffs: Option<&[ZoneDiff]>) -> Result<Written, StoreError> {
        let origin = zone.origin();
        if let Some((steps, entries)) = diffs.and_then(|d| Some((d, journal_entries(d)?))) {
            let snapshot = file_len(&self.zone_path(origin))?;
            let journal = file_len(&self.journal_path(origin))?.unwrap_or(0);
            if snapshot.is_some_and(|s| journal + entries.len() as u64 <= s / 2) {
                self.append_journal(origin, &entries)?;
                return Ok(Written::Journal { steps: steps.len() });
            }
        }
        self.save_zone(zone)?;
        Ok(Written::Snapshot)
    }

    /// Writes the zone's timers.
    pub fn save_state(&self, zone: &Name, state: &SavedState) -> Result<(), StoreError> {
        let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let text = format!(
            "serial={}\nlast_refresh={}\nexpire_at={}\n",
            state.serial,
            secs(state.last_refresh),
            secs(state.expire_at)
        );
        write_atomic(&self.state_path(zone), |out| out.write_all(text.as_bytes()))
    }

    /// The stored zone, its journal replayed over the snapshot, and its timers, if the snapshot
    /// and the timers exist. A stored zone whose state file is missing is not trusted (its expiry
    /// is unknown).
    ///
    /// A journal that does not replay to its end is logged and cut back to the steps that
    /// applied, so that later appends follow the version served. When the version served is not
    /// the one the timers were saved for (a write that failed or was cut short), the time of the
    /// last refresh is returned as unknown, so that the zone is refreshed at once; the expiry is
    /// kept.
    pub fn load(&self, zone: &Name) -> Result<Option<(Zone, SavedState)>, StoreError> {
        let state_path = self.state_path(zone);
        let text = match std::fs::read_to_string(&state_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    path: state_path,
                    source,
                });
            }
        };
        let mut state = parse_state(&text).ok_or(StoreError::State {
            path: state_path.clone(),
        })?;
        let zone_path = self.zone_path(zone);
        if !zone_path.exists() {
            return Ok(None);
        }
        let snapshot = load_zone_file(zone, &zone_path).map_err(StoreError::Zone)?;
        let replayed = self.replay_journal(snapshot.zone)?;
        if replayed.applied + replayed.skipped > 0 {
            info!(
                zone = %zone,
                applied = replayed.applied,
                skipped = replayed.skipped,
                serial = replayed.zone.serial(),
                "journal replayed"
            );
        }
        if let Some(stop) = &replayed.stop {
            warn!(zone = %zone, %stop, "journal replay stopped; serving the steps before it");
        }
        if replayed.zone.serial() != state.serial {
            warn!(
                zone = %zone,
                stored = replayed.zone.serial(),
                timers = state.serial,
                "the stored timers belong to another version; refreshing at once"
            );
            state.serial = replayed.zone.serial();
            state.last_refresh = UNIX_EPOCH;
        }
        Ok(Some((replayed.zone, state)))
    }

    fn append_journal(&self, zone: &Name, entries: &[u8]) -> Result<(), StoreError> {
        let path = self.journal_path(zone);
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        f.write_all(entries).map_err(io)?;
        f.sync_data().map_err(io)
    }

    /// Replays the zone's journal over `snapshot` (RFC 1995 section 4): a step is applied when it
    /// starts at the serial reached, skipped when it ends at or before it (RFC 1982: the snapshot
    /// was written after it), and replay stops at a gap or a bad entry. The journal is cut back
    /// to the entries used.
    fn replay_journal(&self, snapshot: Zone) -> Result<Replayed, StoreError> {
        let path = self.journal_path(snapshot.origin());
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let mut reached = snapshot.serial();
        let (mut steps, mut starts) = (Vec::new(), Vec::new());
        let (mut skipped, mut stop, mut used) = (0, None, 0);
        for entry in JournalReader::new(&bytes) {
            let entry = match entry {
                Ok(entry) => entry,
                Err(bad) => {
                    stop = Some(bad);
                    break;
                }
            };
            let (from, to) = (entry.step.from_serial(), entry.step.to_serial());
            if from == reached {
                reached = to;
                starts.push(entry.start);
                steps.push(entry.step);
            } else if !serial::is_newer(to, reached) {
                skipped += 1;
            } else {
                stop = Some(JournalStop::Gap {
                    offset: entry.start,
                    from,
                    to,
                    serial: reached,
                });
                break;
            }
            used = entry.end;
        }
        let (zone, applied, rejected) = apply_steps(snapshot, &steps);
        if let (Some(errors), Some(step), Some(&start)) =
            (rejected, steps.get(applied), starts.get(applied))
        {
            used = start;
            stop = Some(JournalStop::Rejected {
                offset: start,
                from: step.from_serial(),
                to: step.to_serial(),
                errors: errors.to_string(),
            });
        }
        if used < bytes.len() {
            truncate(&path, used)?;
        }
        Ok(Replayed {
            zone,
            applied,
            skipped,
            stop,
        })
    }
}

/// A write for a [`ZoneWriter`].
#[derive(Debug, Clone)]
pub enum StoreWrite {
    /// A new version of the zone, with the IXFR steps that led to it from the version stored
    /// before (none after a full transfer).
    Zone {
        zone: Arc<Zone>,
        diffs: Option<Arc<[ZoneDiff]>>,
    },
    /// The timers after a refresh.
    State(SavedState),
}

/// The writes of a queue that still matter, in their order: a snapshot holds every version
/// before it, so zone writes queued before the last snapshot are dropped, and of the timers only
/// the last count.
pub fn supersede(writes: Vec<StoreWrite>) -> Vec<StoreWrite> {
    let last_snapshot = writes
        .iter()
        .rposition(|w| matches!(w, StoreWrite::Zone { diffs: None, .. }));
    let last_state = writes
        .iter()
        .rposition(|w| matches!(w, StoreWrite::State(_)));
    writes
        .into_iter()
        .enumerate()
        .filter(|(i, w)| match w {
            StoreWrite::Zone { .. } => last_snapshot.is_none_or(|s| *i >= s),
            StoreWrite::State(_) => last_state == Some(*i),
        })
        .map(|(_, w)| w)
        .collect()
}

/// Writes one zone's versions and timers to its store, in order, as their only writer (the
/// driver runs it off the async runtime).
#[derive(Debug)]
pub struct ZoneWriter {
    store: ZoneStore,
    zone: Name,
    /// A zone write failed: the journal no longer ends where the next steps start, so the next
    /// version is written whole.
    snapshot_due: bool,
}

impl ZoneWriter {
    pub fn new(store: ZoneStore, zone: Name) -> Self {
        ZoneWriter {
            store,
            zone,
            snapshot_due: false,
        }
    }

    pub fn zone(&self) -> &Name {
        &self.zone
    }

    pub fn write(&mut self, write: StoreWrite) -> Result<Written, StoreError> {
        match write {
            StoreWrite::Zone { zone, diffs } => {
                let diffs = diffs.as_deref().filter(|_| !self.snapshot_due);
                let written = self.store.persist(&zone, diffs);
                self.snapshot_due = written.is_err();
                written
            }
            StoreWrite::State(state) => self
                .store
                .save_state(&self.zone, &state)
                .map(|()| Written::State),
        }
    }
}

/// The outcome of [`ZoneStore::replay_journal`].
#[derive(Debug)]
struct Replayed {
    zone: Zone,
    applied: usize,
    /// Steps the snapshot already held.
    skipped: usize,
    stop: Option<JournalStop>,
}

/// Applies `steps` in one pass; if that fails, one at a time, to keep those that apply. Returns
/// the zone reached, how many steps it took, and why the next one did not apply.
fn apply_steps(zone: Zone, steps: &[ZoneDiff]) -> (Zone, usize, Option<ZoneErrors>) {
    if steps.is_empty() {
        return (zone, 0, None);
    }
    if let Ok(built) = apply_diffs(&zone, steps) {
        return (built.zone, steps.len(), None);
    }
    let mut zone = zone;
    for (i, step) in steps.iter().enumerate() {
        match apply_diffs(&zone, std::slice::from_ref(step)) {
            Ok(built) => zone = built.zone,
            Err(errors) => return (zone, i, Some(errors)),
        }
    }
    (zone, steps.len(), None)
}

const MAGIC: [u8; 4] = *b"AXJ1";
/// Magic, length and checksum.
const HEADER_LEN: usize = 12;

/// The journal entries for `steps`, or `None` if one does not fit the format (a count, a length
/// or an RDATA too long).
fn journal_entries(steps: &[ZoneDiff]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for step in steps {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER_LEN]);
        put_record(&mut out, &step.old_soa)?;
        put_record(&mut out, &step.new_soa)?;
        for records in [&step.removed, &step.added] {
            out.extend_from_slice(&u32::try_from(records.len()).ok()?.to_be_bytes());
            for r in records {
                put_record(&mut out, r)?;
            }
        }
        let payload = out.get(start + HEADER_LEN..)?;
        let len = u32::try_from(payload.len()).ok()?;
        let header = [MAGIC, len.to_be_bytes(), crc32(payload).to_be_bytes()].concat();
        out.get_mut(start..start + HEADER_LEN)?
            .copy_from_slice(&header);
    }
    Some(out)
}

fn put_record(out: &mut Vec<u8>, r: &Record) -> Option<()> {
    out.extend_from_slice(r.owner.as_wire());
    out.extend_from_slice(&r.rtype.0.to_be_bytes());
    out.extend_from_slice(&r.ttl.to_be_bytes());
    out.extend_from_slice(&u16::try_from(r.rdata.len()).ok()?.to_be_bytes());
    out.extend_from_slice(&r.rdata);
    Some(())
}

/// One journal entry and where it lies in the file.
struct JournalEntry {
    step: ZoneDiff,
    start: usize,
    end: usize,
}

/// The entries of a journal in order; a bad one is the last item.
struct JournalReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> JournalReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        JournalReader { bytes, pos: 0 }
    }
}

impl Iterator for JournalReader<'_> {
    type Item = Result<JournalEntry, JournalStop>;

    fn next(&mut self) -> Option<Self::Item> {
        let offset = self.pos;
        let rest = self.bytes.get(offset..).filter(|r| !r.is_empty())?;
        self.pos = self.bytes.len();
        let torn = Some(Err(JournalStop::Torn { offset }));
        let corrupt = |reason| Some(Err(JournalStop::Corrupt { offset, reason }));
        let mut c = Cursor(rest);
        let Some(magic) = c.take(MAGIC.len()) else {
            return torn;
        };
        if magic != MAGIC {
            return corrupt("not an entry");
        }
        let (Some(len), Some(checksum)) = (c.u32(), c.u32()) else {
            return torn;
        };
        let Some(payload) = usize::try_from(len).ok().and_then(|n| c.take(n)) else {
            return torn;
        };
        if crc32(payload) != checksum {
            return corrupt("checksum mismatch");
        }
        let Some(step) = Cursor(payload).step() else {
            return corrupt("not one IXFR step");
        };
        self.pos = self.bytes.len() - c.0.len();
        Some(Ok(JournalEntry {
            step,
            start: offset,
            end: self.pos,
        }))
    }
}

/// Reads journal data; every read checks the length first.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2)?.try_into().ok().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_be_bytes)
    }

    fn record(&mut self) -> Option<Record> {
        let owner = Name::from_wire(self.take(name::uncompressed_len(self.0)?)?).ok()?;
        let rtype = Rtype(self.u16()?);
        let ttl = self.u32()?;
        let rdlength = usize::from(self.u16()?);
        Some(Record::new(owner, rtype, ttl, self.take(rdlength)?))
    }

    fn records(&mut self) -> Option<Vec<Record>> {
        (0..self.u32()?).map(|_| self.record()).collect()
    }

    /// A whole payload as one step, bracketed by two SOAs.
    fn step(mut self) -> Option<ZoneDiff> {
        let step = ZoneDiff {
            old_soa: self.record()?,
            new_soa: self.record()?,
            removed: self.records()?,
            added: self.records()?,
        };
        let soa = |r: &Record| r.soa_serial().is_some();
        (self.0.is_empty() && soa(&step.old_soa) && soa(&step.new_soa)).then_some(step)
    }
}

/// CRC-32 as in IEEE 802.3 (and zlib): reflected polynomial 0xEDB88320.
fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut bit = 0;
            while bit < 8 {
                c = if c & 1 == 1 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                bit += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    !data.iter().fold(!0, |c: u32, &b| {
        TABLE[usize::from(c.to_le_bytes()[0] ^ b)] ^ (c >> 8)
    })
}

fn file_len(path: &Path) -> Result<Option<u64>, StoreError> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(m.len())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StoreError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn truncate(path: &Path, len: usize) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io)?;
    f.set_len(len as u64).map_err(io)?;
    f.sync_all().map_err(io)
}

fn parse_state(text: &str) -> Option<SavedState> {
    let mut serial = None;
    let mut last = None;
    let mut expire = None;
    for line in text.lines() {
        let (k, v) = line.split_once('=')?;
        match k.trim() {
            "serial" => serial = v.trim().parse::<u32>().ok(),
            "last_refresh" => last = v.trim().parse::<u64>().ok(),
            "expire_at" => expire = v.trim().parse::<u64>().ok(),
            _ => {}
        }
    }
    let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
    Some(SavedState {
        serial: serial?,
        last_refresh: at(last?),
        expire_at: at(expire?),
    })
}

/// A file name for a zone: its name without the final dot, characters other than letters,
/// digits, `-`, `_` and `.` written as `%xx`; the root is `root`.
fn file_stem(zone: &Name) -> String {
    if zone.is_root() {
        return "root".into();
    }
    let text = zone.to_string();
    let mut out = String::new();
    for b in text.trim_end_matches('.').bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02x}");
        }
    }
    out
}

/// Writes a file through `write` into a temporary file, synced, then renamed over `path`.
fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    // A name of its own per write: a secondary restarted while its predecessor's write is
    // still running must not write into the same temporary file.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!(
        "{}.{}-{n}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or(""),
        std::process::id()
    ));
    let written = std::fs::File::create(&tmp).and_then(|f| {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, f);
        write(&mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    // The rename lasts once the directory is on disk; until then a crash may undo it, and so
    // bring back a snapshot older than a journal removed after it.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

/// The zone as an RFC 1035 master file: absolute names, explicit TTL and class on every line.
/// Common types are written in their usual form, the rest in the RFC 3597 generic form, which
/// reads back to exactly the same RDATA.
///
/// Streamed record by record (a copy of a large zone as text or as a record list would cost
/// hundreds of MiB); the apex SOA first, the rest in the zone's own order.
pub fn write_master_file(zone: &Zone, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    writeln!(
        out,
        "; zone {} serial {}, written by anyns after a transfer",
        zone.origin(),
        zone.serial()
    )?;
    let origin = zone.origin();
    if let Some(soa) = zone.soa() {
        for rdata in soa.rdatas() {
            write_record(out, origin, soa.rtype, soa.ttl, rdata)?;
        }
    }
    for (owner, node) in zone.nodes() {
        for rrset in node.rrsets() {
            if rrset.rtype == Rtype::SOA && owner == origin {
                continue;
            }
            for rdata in rrset.rdatas() {
                write_record(out, owner, rrset.rtype, rrset.ttl, rdata)?;
            }
        }
    }
    Ok(())
}

fn write_record(
    out: &mut dyn std::io::Write,
    owner: &Name,
    rtype: Rtype,
    ttl: u32,
    rdata: &[u8],
) -> std::io::Result<()> {
    match presentation(rtype, rdata) {
        Some(text) => writeln!(out, "{owner} {ttl} IN {text}"),
        None => {
            write!(out, "{owner} {ttl} IN TYPE{} \\# {}", rtype.0, rdata.len())?;
            if !rdata.is_empty() {
                out.write_all(b" ")?;
                for b in rdata {
                    write!(out, "{b:02x}")?;
                }
            }
            out.write_all(b"\n")
        }
    }
}

/// The usual presentation of the RDATA of a few common types; `None` for others.
fn presentation(rtype: Rtype, d: &[u8]) -> Option<String> {
    let mut s = String::new();
    let name_at = |s: &mut String, pos: usize| -> Option<usize> {
        let len = name::uncompressed_len(d.get(pos..)?)?;
        name::write_text(&d[pos..pos + len], s).ok()?;
        Some(pos + len)
    };
    let u16_at = |pos: usize| -> Option<u16> {
        Some(u16::from_be_bytes(d.get(pos..pos + 2)?.try_into().ok()?))
    };
    let end = match rtype {
        Rtype::A => {
            let o: [u8; 4] = d.try_into().ok()?;
            let _ = write!(s, "A {}", Ipv4Addr::from(o));
            d.len()
        }
        Rtype::AAAA => {
            let o: [u8; 16] = d.try_into().ok()?;
            let _ = write!(s, "AAAA {}", Ipv6Addr::from(o));
            d.len()
        }
        Rtype::NS | Rtype::CNAME | Rtype::PTR | Rtype::DNAME => {
            let _ = write!(s, "{} ", rtype);
            name_at(&mut s, 0)?
        }
        Rtype::MX => {
            let _ = write!(s, "MX {} ", u16_at(0)?);
            name_at(&mut s, 2)?
        }
        Rtype::SRV => {
            let _ = write!(s, "SRV {} {} {} ", u16_at(0)?, u16_at(2)?, u16_at(4)?);
            name_at(&mut s, 6)?
        }
        Rtype::SOA => {
            s.push_str("SOA ");
            let p = name_at(&mut s, 0)?;
            s.push(' ');
            let p = name_at(&mut s, p)?;
            let nums = d.get(p..)?;
            if nums.len() != 20 {
                return None;
            }
            for c in nums.chunks_exact(4) {
                let _ = write!(s, " {}", u32::from_be_bytes(c.try_into().ok()?));
            }
            d.len()
        }
        _ => return None,
    };
    (end == d.len()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use anyns_zone::zone_records;

    #[test]
    fn rfc1035_5_master_file_round_trip_and_state() {
        let dir = std::env::temp_dir().join(format!("anyns-xfr-store-{}", std::process::id()));
        let store = ZoneStore::new(&dir);
        let z = zone(
            42,
            "www A 192.0.2.9\nwww AAAA 2001:db8::9\nmail MX 10 www\n_s._tcp SRV 1 2 3 www\n\
             t TXT \"a \\\"quoted\\\" string\" \"x;y\"\nc CNAME WWW\nodd TYPE65280 \\# 3 010203\n\
             e TYPE65281 \\# 0\nq.\\(x NS ns\n",
        );
        store.save_zone(&z).unwrap();
        let now = wall();
        let state = SavedState {
            serial: 42,
            last_refresh: now,
            expire_at: now + Duration::from_secs(600),
        };
        store.save_state(&origin(), &state).unwrap();
        let (back, st) = store.load(&origin()).unwrap().unwrap();
        assert_eq!(st, state);
        assert_eq!(zone_records(&back), zone_records(&z));
        let text = std::fs::read_to_string(store.zone_path(&origin())).unwrap();
        assert!(
            text.contains("mail.example.test. 300 IN MX 10 www.example.test."),
            "{text}"
        );
        assert!(
            text.contains("c.example.test. 300 IN CNAME WWW.example.test."),
            "{text}"
        );
        assert!(store.load(&name("missing.test")).unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A fresh directory for one test, removed afterwards.
    struct TestDir(PathBuf);

    impl TestDir {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("anyns-xfr-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            TestDir(dir)
        }

        fn store(&self) -> ZoneStore {
            ZoneStore::new(&self.0)
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Versions 1..=n of a zone with some bulk, each adding a host and changing a TXT record,
    /// and the IXFR steps between them.
    fn versions(n: u32) -> (Vec<Arc<Zone>>, Vec<ZoneDiff>) {
        let bulk: String = (0..50).map(|i| format!("bulk{i} A 10.0.0.{i}\n")).collect();
        let zones: Vec<Arc<Zone>> = (1..=n)
            .map(|s| {
                let hosts: String = (1..s).map(|i| format!("h{i} A 192.0.2.{i}\n")).collect();
                zone(s, &format!("{bulk}{hosts}v TXT \"{s}\"\n"))
            })
            .collect();
        let steps = zones
            .windows(2)
            .map(|w| anyns_zone::zone_diff(&w[0], &w[1]).unwrap())
            .collect();
        (zones, steps)
    }

    fn state(serial: u32) -> SavedState {
        SavedState {
            serial,
            last_refresh: wall(),
            expire_at: wall() + Duration::from_secs(600),
        }
    }

    fn journal_len(store: &ZoneStore) -> u64 {
        std::fs::metadata(store.journal_path(&origin())).map_or(0, |m| m.len())
    }

    fn snapshot(store: &ZoneStore) -> Zone {
        load_zone_file(&origin(), &store.zone_path(&origin()))
            .unwrap()
            .zone
    }

    #[test]
    fn rfc1995_4_journal_entry_two_way_vector() {
        let soa = |serial: u32| {
            let mut rdata = vec![0, 0];
            rdata.extend_from_slice(&serial.to_be_bytes());
            rdata.extend_from_slice(&[0; 16]);
            Record::new(name("t"), Rtype::SOA, 60, &rdata)
        };
        let step = ZoneDiff {
            old_soa: soa(1),
            new_soa: soa(2),
            removed: vec![],
            added: vec![Record::new(name("t"), Rtype::A, 60, &[192, 0, 2, 1])],
        };
        let entry = [
            // Magic, payload length, CRC-32 of the payload (as Python's zlib.crc32 gives it).
            &b"AXJ1"[..],
            &[0, 0, 0, 89],
            &[0x63, 0x1c, 0xc1, 0xa4],
            // Old SOA: t. type 6 TTL 60 RDLENGTH 22, root MNAME and RNAME, serial 1, zeros.
            &[1, b't', 0, 0, 6, 0, 0, 0, 60, 0, 22, 0, 0, 0, 0, 0, 1],
            &[0; 16],
            // New SOA, serial 2.
            &[1, b't', 0, 0, 6, 0, 0, 0, 60, 0, 22, 0, 0, 0, 0, 0, 2],
            &[0; 16],
            // Nothing removed; one record added: t. 60 A 192.0.2.1.
            &[0, 0, 0, 0, 0, 0, 0, 1],
            &[1, b't', 0, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1],
        ]
        .concat();
        assert_eq!(journal_entries(std::slice::from_ref(&step)).unwrap(), entry);
        let read: Vec<_> = JournalReader::new(&entry).collect();
        let [Ok(back)] = &read[..] else {
            panic!(
                "{:?}",
                read.iter().map(|r| r.as_ref().err()).collect::<Vec<_>>()
            )
        };
        assert_eq!((&back.step, back.start, back.end), (&step, 0, entry.len()));
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn rfc1995_journal_replays_after_restart() {
        let dir = TestDir::new("replay");
        let store = dir.store();
        let (v, steps) = versions(4);
        store.save_zone(&v[0]).unwrap();
        store.append_diffs(&origin(), &steps[..1]).unwrap();
        store.append_diffs(&origin(), &steps[1..]).unwrap();
        store.save_state(&origin(), &state(4)).unwrap();
        let len = journal_len(&store);
        let replayed = store.replay_journal(snapshot(&store)).unwrap();
        assert_eq!((replayed.applied, replayed.skipped), (3, 0));
        assert_eq!(replayed.stop, None);
        let (back, st) = store.load(&origin()).unwrap().unwrap();
        assert_eq!(zone_records(&back), zone_records(&v[3]));
        assert_eq!(st, state(4));
        assert_eq!(journal_len(&store), len, "a clean journal is left as it is");
    }

    #[test]
    fn rfc1995_journal_ignores_a_torn_last_entry() {
        let dir = TestDir::new("torn");
        let store = dir.store();
        let (v, steps) = versions(3);
        store.save_zone(&v[0]).unwrap();
        store.append_diffs(&origin(), &steps[..1]).unwrap();
        let first = journal_len(&store);
        store.append_diffs(&origin(), &steps[1..]).unwrap();
        let path = store.journal_path(&origin());
        let bytes = std::fs::read(&path).unwrap();
        let first_end = usize::try_from(first).unwrap();
        // Wherever an append was cut short, the entries before it read and the rest is torn.
        for cut in first_end + 1..bytes.len() {
            let read: Vec<_> = JournalReader::new(&bytes[..cut]).collect();
            assert!(
                matches!(&read[..], [Ok(_), Err(JournalStop::Torn { offset })] if *offset == first_end),
                "cut at {cut}"
            );
        }
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        store.save_state(&origin(), &state(3)).unwrap();
        let (back, st) = store.load(&origin()).unwrap().unwrap();
        assert_eq!(zone_records(&back), zone_records(&v[1]));
        // The timers were for serial 3: the expiry is kept, the last refresh unknown.
        assert_eq!(st.serial, 2);
        assert_eq!(st.last_refresh, UNIX_EPOCH);
        assert_eq!(st.expire_at, state(3).expire_at);
        // Cut back to the step served, so that the next append follows it.
        assert_eq!(journal_len(&store), first);
        store.append_diffs(&origin(), &steps[1..]).unwrap();
        let (back, _) = store.load(&origin()).unwrap().unwrap();
        assert_eq!(zone_records(&back), zone_records(&v[2]));
    }

    #[test]
    fn rfc1995_journal_stops_at_a_corrupt_entry() {
        let dir = TestDir::new("corrupt");
        let store = dir.store();
        let (v, steps) = versions(4);
        store.save_zone(&v[0]).unwrap();
        store.append_diffs(&origin(), &steps[..1]).unwrap();
        let first = usize::try_from(journal_len(&store)).unwrap();
        store.append_diffs(&origin(), &steps[1..]).unwrap();
        let path = store.journal_path(&origin());
        let good = std::fs::read(&path).unwrap();
        let mut bytes = good.clone();
        bytes[first + 30] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        let replayed = store.replay_journal(snapshot(&store)).unwrap();
        assert_eq!(
            replayed.stop,
            Some(JournalStop::Corrupt {
                offset: first,
                reason: "checksum mismatch"
            })
        );
        assert_eq!(replayed.zone.serial(), 2);
        assert_eq!(journal_len(&store), first as u64);
        // Another magic is not an entry either.
        let mut bytes = good;
        bytes[first] = b'X';
        let read: Vec<_> = JournalReader::new(&bytes).collect();
        assert!(matches!(
            &read[..],
            [
                Ok(_),
                Err(JournalStop::Corrupt {
                    reason: "not an entry",
                    ..
                })
            ]
        ));
    }

    #[test]
    fn rfc1995_journal_stops_at_a_gap_or_a_step_that_does_not_apply() {
        let dir = TestDir::new("gap");
        let store = dir.store();
        let (v, steps) = versions(3);
        store.save_zone(&v[0]).unwrap();
        store.append_diffs(&origin(), &steps[1..]).unwrap();
        let replayed = store.replay_journal(snapshot(&store)).unwrap();
        assert_eq!(
            replayed.stop,
            Some(JournalStop::Gap {
                offset: 0,
                from: 2,
                to: 3,
                serial: 1
            })
        );
        assert_eq!((replayed.zone.serial(), journal_len(&store)), (1, 0));
        // A step that deletes what the zone does not hold: the steps before it are served.
        let mut bad = steps[1].clone();
        bad.removed.push(a("nowhere.example.test", [192, 0, 2, 99]));
        store.append_diffs(&origin(), &steps[..1]).unwrap();
        let first = usize::try_from(journal_len(&store)).unwrap();
        store.append_diffs(&origin(), &[bad]).unwrap();
        let replayed = store.replay_journal(snapshot(&store)).unwrap();
        assert!(
            matches!(
                &replayed.stop,
                Some(JournalStop::Rejected { offset, from: 2, to: 3, .. }) if *offset == first
            ),
            "{:?}",
            replayed.stop
        );
        assert_eq!(zone_records(&replayed.zone), zone_records(&v[1]));
        assert_eq!(journal_len(&store), first as u64);
    }

    #[test]
    fn rfc1995_snapshot_removes_the_journal() {
        let dir = TestDir::new("snapshot");
        let store = dir.store();
        let (v, steps) = versions(3);
        store.save_zone(&v[0]).unwrap();
        store.append_diffs(&origin(), &steps).unwrap();
        assert!(store.journal_path(&origin()).exists());
        store.save_zone(&v[2]).unwrap();
        assert!(!store.journal_path(&origin()).exists());
        store.save_state(&origin(), &state(3)).unwrap();
        let (back, st) = store.load(&origin()).unwrap().unwrap();
        assert_eq!(zone_records(&back), zone_records(&v[2]));
        assert_eq!(st, state(3));
    }

    #[test]
    fn rfc1982_journal_skips_steps_a_later_snapshot_holds() {
        let dir = TestDir::new("skip");
        let store = dir.store();
        let (v, steps) = versions(4);
        store.save_zone(&v[0]).unwrap();
        store.append_diffs(&origin(), &steps[..2]).unwrap();
        let path = store.journal_path(&origin());
        let journal = std::fs::read(&path).unwrap();
        // A crash after the snapshot of serial 3 was renamed into place, before the journal was
        // removed; then the next IXFR step appended.
        store.save_zone(&v[2]).unwrap();
        std::fs::write(&path, &journal).unwrap();
        store.append_diffs(&origin(), &steps[2..]).unwrap();
        let replayed = store.replay_journal(snapshot(&store)).unwrap();
        assert_eq!((replayed.applied, replayed.skipped), (1, 2));
        assert_eq!(replayed.stop, None);
        assert_eq!(zone_records(&replayed.zone), zone_records(&v[3]));
    }

    #[test]
    fn rfc1995_journal_compacts_past_half_the_snapshot() {
        let dir = TestDir::new("compact");
        let store = dir.store();
        let (v, steps) = versions(3);
        // Without a snapshot, steps have nothing to apply to.
        let written = store.persist(&v[1], Some(&steps[..1])).unwrap();
        assert_eq!(written, Written::Snapshot);
        let written = store.persist(&v[2], Some(&steps[1..])).unwrap();
        assert_eq!(written, Written::Journal { steps: 1 });
        let entry = journal_entries(&steps[1..]).unwrap().len() as u64;
        assert_eq!(journal_len(&store), entry);
        // A step that would take the journal past half the snapshot: a snapshot instead.
        let snapshot_len = std::fs::metadata(store.zone_path(&origin())).unwrap().len();
        let big = big_zone(4, 100);
        let step = anyns_zone::zone_diff(&v[2], &big).unwrap();
        let more = journal_entries(std::slice::from_ref(&step)).unwrap().len() as u64;
        assert!(
            entry + more > snapshot_len / 2,
            "{entry} + {more} vs {snapshot_len}"
        );
        let written = store.persist(&big, Some(&[step])).unwrap();
        assert_eq!(written, Written::Snapshot);
        assert!(!store.journal_path(&origin()).exists());
        // A full transfer is always a snapshot.
        let written = store.persist(&v[0], None).unwrap();
        assert_eq!(written, Written::Snapshot);
    }

    #[test]
    fn a_failed_zone_write_makes_the_next_a_snapshot() {
        let dir = TestDir::new("writer");
        let store = dir.store();
        let (v, steps) = versions(4);
        let mut writer = ZoneWriter::new(store.clone(), origin());
        let version = |i: usize| StoreWrite::Zone {
            zone: v[i].clone(),
            diffs: i.checked_sub(1).map(|s| steps[s..=s].into()),
        };
        assert_eq!(writer.write(version(0)).unwrap(), Written::Snapshot);
        let journal = store.journal_path(&origin());
        std::fs::create_dir(&journal).unwrap();
        assert!(writer.write(version(1)).is_err());
        std::fs::remove_dir(&journal).unwrap();
        // What the failed write left on disk is unknown, so the step 2→3 may not follow it:
        // serial 3 is written whole.
        assert_eq!(writer.write(version(2)).unwrap(), Written::Snapshot);
        assert_eq!(
            writer.write(version(3)).unwrap(),
            Written::Journal { steps: 1 }
        );
        let timers = StoreWrite::State(state(4));
        assert_eq!(writer.write(timers).unwrap(), Written::State);
        let (back, st) = store.load(&origin()).unwrap().unwrap();
        assert_eq!(zone_records(&back), zone_records(&v[3]));
        assert_eq!(st, state(4));
    }

    #[test]
    fn queued_writes_before_a_snapshot_are_superseded() {
        let (v, steps) = versions(3);
        let snapshot = |i: usize| StoreWrite::Zone {
            zone: v[i].clone(),
            diffs: None,
        };
        let step = |i: usize| StoreWrite::Zone {
            zone: v[i + 1].clone(),
            diffs: Some(steps[i..=i].into()),
        };
        let queue = vec![
            step(0),
            StoreWrite::State(state(2)),
            snapshot(1),
            StoreWrite::State(state(2)),
            step(1),
            StoreWrite::State(state(3)),
        ];
        let kept: Vec<(bool, u32)> = supersede(queue)
            .iter()
            .map(|w| match w {
                StoreWrite::Zone { zone, diffs } => (diffs.is_some(), zone.serial()),
                StoreWrite::State(s) => (false, s.serial + 100),
            })
            .collect();
        assert_eq!(kept, [(false, 2), (true, 3), (false, 103)]);
    }

    #[test]
    fn zone_file_names_are_safe() {
        assert_eq!(file_stem(&name("Example.TEST.")), "example.test");
        assert_eq!(file_stem(&Name::root()), "root");
        assert_eq!(file_stem(&name("a/b.test")), "a%2fb.test");
    }
}
