//! `anyns check`: validate the configuration and every zone, serve nothing.

use std::process::ExitCode;

use crate::config::{NodeConfig, Overrides};
use crate::zones::{Outcome, ZoneLoader};

pub fn run(overrides: &Overrides) -> anyhow::Result<ExitCode> {
    let config = NodeConfig::load(overrides)?;
    let (_, report) = ZoneLoader::default().load(&config.zones);
    for (name, outcome) in &report.zones {
        match outcome {
            Outcome::Loaded {
                serial,
                records,
                warnings,
                ..
            } => {
                for w in warnings {
                    println!("warning: {w}");
                }
                println!("ok: {name} serial {serial}, {records} records");
            }
            Outcome::Failed { errors, .. } => {
                for e in &errors.0 {
                    println!("error: {e}");
                }
                println!("FAILED: {name}");
            }
        }
    }
    for zone in &config.zones {
        if let Some(secondary) = zone.secondary() {
            let primaries: Vec<String> = secondary
                .primaries
                .iter()
                .map(|p| match &p.key {
                    Some(k) => format!("{} (key {})", p.addr, k.name()),
                    None => p.addr.to_string(),
                })
                .collect();
            println!(
                "ok: {} secondary of {}, kept in {}",
                zone.name,
                primaries.join(", "),
                secondary.store.display()
            );
        }
    }
    for catalog in &config.catalogs {
        println!(
            "ok: catalog {} from {} primaries, kept in {}",
            catalog.name,
            catalog.source.primaries.len(),
            catalog.source.store.display()
        );
    }
    let failed = report.failed();
    if failed > 0 {
        println!("{failed} of {} zones have errors", report.zones.len());
        return Ok(ExitCode::from(1));
    }
    println!("configuration and {} zones are valid", report.zones.len());
    Ok(ExitCode::SUCCESS)
}
