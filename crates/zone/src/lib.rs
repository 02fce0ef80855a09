//! Zones: loading master files, checking them, and the immutable snapshot the engine reads.

pub mod builder;
pub mod file;
pub mod model;

pub use builder::{Built, Diagnostic, Location, ZoneBuilder, ZoneErrors, soa_fields, soa_serial};
pub use file::{load_zone_file, load_zone_text};
pub use model::{Node, RRset, Zone, ZoneSet};
