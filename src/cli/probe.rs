//! `anyns probe consistency`: asks every site for each zone's SOA and reports the serial skew,
//! so that an operator sees at once whether every site gives the same answer.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use anyns_wire::Name;
use anyns_xfr::driver::query_soa;
use anyns_xfr::serial;

use crate::config::{NodeConfig, Overrides};

/// What one site said about one zone.
type Answer = Result<u32, String>;

pub fn consistency(
    overrides: &Overrides,
    sites: &[SocketAddr],
    zones: &[String],
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let config = overrides
        .config
        .is_some()
        .then(|| NodeConfig::load(overrides))
        .transpose()?;
    let sites: Vec<SocketAddr> = if sites.is_empty() {
        config
            .as_ref()
            .map(|c| c.probe_sites.clone())
            .unwrap_or_default()
    } else {
        sites.to_vec()
    };
    if sites.is_empty() {
        bail!("no sites to ask: give --sites ADDR:PORT,... or [probe] sites in the config");
    }
    let zones: Vec<Name> = if zones.is_empty() {
        config
            .as_ref()
            .map(|c| c.zones.iter().map(|z| z.name.clone()).collect())
            .unwrap_or_default()
    } else {
        zones
            .iter()
            .map(|z| Name::from_text(z).map_err(|e| anyhow::anyhow!("zone {z:?}: {e}")))
            .collect::<anyhow::Result<_>>()?
    };
    if zones.is_empty() {
        bail!("no zones to compare: give --zone NAME (repeat) or a config with zones");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let answers = runtime.block_on(ask_all(&sites, &zones, timeout));
    let (text, consistent) = report(&sites, &zones, &answers);
    print!("{text}");
    Ok(if consistent {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Every site's answer for every zone, asked all at once; `answers[zone][site]`.
async fn ask_all(sites: &[SocketAddr], zones: &[Name], timeout: Duration) -> Vec<Vec<Answer>> {
    let mut tasks = tokio::task::JoinSet::new();
    for (z, zone) in zones.iter().enumerate() {
        for (s, &site) in sites.iter().enumerate() {
            let zone = zone.clone();
            tasks.spawn(async move {
                let answer = query_soa(site, &zone, None, timeout)
                    .await
                    .map_err(|e| e.to_string());
                (z, s, answer)
            });
        }
    }
    let mut answers = vec![vec![Err("no answer".to_string()); sites.len()]; zones.len()];
    while let Some(done) = tasks.join_next().await {
        if let Ok((z, s, answer)) = done {
            answers[z][s] = answer;
        }
    }
    answers
}

/// The serial skew of a zone: how far (RFC 1982 distance) the oldest serial is behind the
/// newest one.
pub fn skew(serials: &[u32]) -> u32 {
    let Some(&first) = serials.first() else {
        return 0;
    };
    let newest = serials
        .iter()
        .copied()
        .fold(first, |n, s| if serial::is_newer(s, n) { s } else { n });
    serials
        .iter()
        .map(|&s| newest.wrapping_sub(s))
        .max()
        .unwrap_or(0)
}

/// The table, and whether every site answered every zone with the same serial.
fn report(sites: &[SocketAddr], zones: &[Name], answers: &[Vec<Answer>]) -> (String, bool) {
    let mut rows = vec![{
        let mut head = vec!["zone".to_string()];
        head.extend(sites.iter().map(ToString::to_string));
        head.push("skew".into());
        head
    }];
    let mut consistent = true;
    for (zone, answers) in zones.iter().zip(answers) {
        let serials: Vec<u32> = answers
            .iter()
            .filter_map(|a| a.as_ref().ok().copied())
            .collect();
        let failed = serials.len() != answers.len();
        let skew = skew(&serials);
        consistent &= !failed && skew == 0;
        let mut row = vec![zone.to_string()];
        row.extend(answers.iter().map(|a| match a {
            Ok(serial) => serial.to_string(),
            Err(e) => format!("error: {e}"),
        }));
        row.push(match (failed, skew) {
            (true, _) => "unknown (a site did not answer)".to_string(),
            (false, 0) => "0".to_string(),
            (false, n) => format!("{n} (serials differ)"),
        });
        rows.push(row);
    }
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text.push_str(if consistent {
        "consistent: every site serves the same serial of every zone\n"
    } else {
        "INCONSISTENT: the sites do not all serve the same serials\n"
    });
    (text, consistent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1982_skew_wraps_around() {
        assert_eq!(skew(&[5, 5, 5]), 0);
        assert_eq!(skew(&[5, 7, 6]), 2);
        assert_eq!(skew(&[u32::MAX, 1]), 2);
        assert_eq!(skew(&[]), 0);
    }

    #[test]
    fn report_marks_differences_and_failures() {
        let sites: Vec<SocketAddr> = vec![
            "192.0.2.1:53".parse().unwrap(),
            "192.0.2.2:53".parse().unwrap(),
        ];
        let zones = vec![
            Name::from_text("a.test").unwrap(),
            Name::from_text("b.test").unwrap(),
        ];
        let (text, ok) = report(&sites, &zones, &[vec![Ok(3), Ok(3)], vec![Ok(4), Ok(2)]]);
        assert!(!ok);
        assert!(
            text.contains("b.test.  4             2             2 (serials differ)"),
            "{text}"
        );
        let (_, ok) = report(&sites, &zones[..1], &[vec![Ok(3), Ok(3)]]);
        assert!(ok);
        let (text, ok) = report(&sites, &zones[..1], &[vec![Ok(3), Err("timed out".into())]]);
        assert!(!ok && text.contains("error: timed out"), "{text}");
    }
}
