//! Keeping transferred zones on disk, so that a restart serves at once and honours expiry.
//!
//! Per zone, two files in one directory: the zone as an RFC 1035 master file, and a small state
//! file with the wall-clock time of the last successful refresh and the expiry deadline. Each is
//! written to a temporary file and renamed over the old one, so a crash leaves either the old or
//! the new version, never half of one.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyns_wire::{Name, Rtype, name};
use anyns_zone::{Record, Zone, ZoneErrors, load_zone_file, zone_records};

/// The timers of a stored zone, in wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedState {
    pub serial: u32,
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

    /// Writes the zone's master file.
    pub fn save_zone(&self, zone: &Zone) -> Result<(), StoreError> {
        write_atomic(&self.zone_path(zone.origin()), master_file(zone).as_bytes())
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
        write_atomic(&self.state_path(zone), text.as_bytes())
    }

    /// The stored zone and its timers, if both exist. A stored zone whose state file is missing
    /// is not trusted (its expiry is unknown).
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
        let state = parse_state(&text).ok_or(StoreError::State {
            path: state_path.clone(),
        })?;
        let zone_path = self.zone_path(zone);
        if !zone_path.exists() {
            return Ok(None);
        }
        let built = load_zone_file(zone, &zone_path).map_err(StoreError::Zone)?;
        Ok(Some((built.zone, state)))
    }
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

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(data).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)
}

/// The zone as an RFC 1035 master file: absolute names, explicit TTL and class on every line.
/// Common types are written in their usual form, the rest in the RFC 3597 generic form, which
/// reads back to exactly the same RDATA.
pub fn master_file(zone: &Zone) -> String {
    let mut out = format!(
        "; zone {} serial {}, written by anyns after a transfer\n",
        zone.origin(),
        zone.serial()
    );
    for r in zone_records(zone) {
        let _ = writeln!(out, "{} {} IN {}", r.owner, r.ttl, rdata_text(&r));
    }
    out
}

fn rdata_text(r: &Record) -> String {
    presentation(r).unwrap_or_else(|| {
        let mut s = format!("TYPE{} \\# {}", r.rtype.0, r.rdata.len());
        if !r.rdata.is_empty() {
            s.push(' ');
            for b in r.rdata.iter() {
                let _ = write!(s, "{b:02x}");
            }
        }
        s
    })
}

/// The usual presentation of the RDATA of a few common types; `None` for others.
fn presentation(r: &Record) -> Option<String> {
    let d = &r.rdata[..];
    let mut s = String::new();
    let name_at = |s: &mut String, pos: usize| -> Option<usize> {
        let len = name::uncompressed_len(d.get(pos..)?)?;
        name::write_text(&d[pos..pos + len], s).ok()?;
        Some(pos + len)
    };
    let u16_at = |pos: usize| -> Option<u16> {
        Some(u16::from_be_bytes(d.get(pos..pos + 2)?.try_into().ok()?))
    };
    let end = match r.rtype {
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
            let _ = write!(s, "{} ", r.rtype);
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

    #[test]
    fn zone_file_names_are_safe() {
        assert_eq!(file_stem(&name("Example.TEST.")), "example.test");
        assert_eq!(file_stem(&Name::root()), "root");
        assert_eq!(file_stem(&name("a/b.test")), "a%2fb.test");
    }
}
