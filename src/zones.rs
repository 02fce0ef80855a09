//! Loading every configured zone into a [`ZoneSet`], and reloading them without losing any.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyns_wire::Name;
use anyns_zone::{Zone, ZoneErrors, ZoneSet, load_zone_file, load_zone_text};

use crate::config::{EXAMPLE_ZONE_TEXT, ZoneConfig, ZoneSource};

/// What happened to one zone during a load.
#[derive(Debug)]
pub enum Outcome {
    Loaded {
        serial: u32,
        records: usize,
        warnings: Vec<String>,
        millis: u128,
    },
    /// Refused; `kept` says whether an older version keeps serving.
    Failed {
        errors: ZoneErrors,
        kept: Option<u32>,
    },
}

#[derive(Debug, Default)]
pub struct Report {
    pub zones: Vec<(Name, Outcome)>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.zones
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Failed { .. }))
            .count()
    }

    /// Logs every zone's outcome, one line each (errors one line per finding).
    pub fn log(&self) {
        for (name, outcome) in &self.zones {
            match outcome {
                Outcome::Loaded {
                    serial,
                    records,
                    warnings,
                    millis,
                } => {
                    for w in warnings {
                        tracing::warn!(zone = %name, "{w}");
                    }
                    tracing::info!(zone = %name, serial, records, millis, "zone loaded");
                }
                Outcome::Failed { errors, kept } => {
                    for e in &errors.0 {
                        tracing::error!(zone = %name, "{e}");
                    }
                    match kept {
                        Some(serial) => tracing::error!(
                            zone = %name, serial,
                            "zone refused, the previous version keeps serving"
                        ),
                        None => tracing::error!(zone = %name, "zone refused, not served"),
                    }
                }
            }
        }
    }
}

/// Holds the zones being served and builds the next set on reload.
#[derive(Default)]
pub struct ZoneLoader {
    loaded: HashMap<Name, Arc<Zone>>,
}

impl ZoneLoader {
    /// Loads (or reloads) every configured zone that comes from a file (secondary zones come
    /// from transfers). Every file is read again: a changed `$INCLUDE` leaves the including
    /// file's timestamp alone. A zone that fails keeps its previous version; zones no longer
    /// configured are dropped. Returns the new set of file zones.
    pub fn load(&mut self, configs: &[ZoneConfig]) -> (ZoneSet, Report) {
        let mut report = Report::default();
        let mut next = HashMap::new();
        for config in configs.iter().filter(|c| c.secondary().is_none()) {
            let previous = self.loaded.remove(&config.name);
            let started = Instant::now();
            match load_one(config) {
                Ok(built) => {
                    let zone = Arc::new(built.zone);
                    report.zones.push((
                        config.name.clone(),
                        Outcome::Loaded {
                            serial: zone.serial(),
                            records: zone.record_count(),
                            warnings: built.warnings.iter().map(ToString::to_string).collect(),
                            millis: started.elapsed().as_millis(),
                        },
                    ));
                    next.insert(config.name.clone(), zone);
                }
                Err(errors) => {
                    let kept = previous.as_ref().map(|z| z.serial());
                    report
                        .zones
                        .push((config.name.clone(), Outcome::Failed { errors, kept }));
                    if let Some(prev) = previous {
                        next.insert(config.name.clone(), prev);
                    }
                }
            }
        }
        self.loaded = next;
        let set = ZoneSet::new(self.loaded.values().cloned());
        (set, report)
    }
}

fn load_one(config: &ZoneConfig) -> Result<anyns_zone::Built, ZoneErrors> {
    match &config.source {
        ZoneSource::File(path) => load_zone_file(&config.name, path),
        ZoneSource::Embedded => {
            load_zone_text(&config.name, "example.test.zone", EXAMPLE_ZONE_TEXT)
        }
        ZoneSource::Secondary(_) => Err(ZoneErrors(vec![anyns_zone::Diagnostic::new(
            None,
            "a secondary zone has no file to load",
        )])),
    }
}
