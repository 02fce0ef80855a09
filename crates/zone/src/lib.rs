//! Zones: loading master files, checking them, and the immutable snapshot the engine reads.

pub mod builder;
pub mod diff;
pub mod file;
pub mod model;

pub use builder::{Built, Diagnostic, Location, ZoneBuilder, ZoneErrors, soa_fields, soa_serial};
pub use diff::{Record, ZoneDiff, apply_diffs, build_zone, zone_diff, zone_records};
pub use file::{load_zone_file, load_zone_text};
pub use model::{Node, RRset, Zone, ZoneLookup, ZoneSet};
