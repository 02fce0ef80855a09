//! `anyns status` for a person: the control API's JSON status as a few aligned lines.

use std::fmt::Write as _;

use serde_json::Value;

pub fn render(status: &Value) -> String {
    let mut out = String::new();
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    let node = &status["node"];
    let _ = writeln!(
        out,
        "node      {} (site {}, node {}), anyns {}",
        text(&node["identity"]),
        text(&node["site"]),
        text(&node["node"]),
        text(&node["version"])
    );
    let listen: Vec<String> = status["listen"]
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    let _ = writeln!(out, "listen    {}", listen.join(", "));
    let _ = writeln!(out, "intent    {}", text(&status["intent"]));
    let health = &status["health"];
    if !health.is_null() {
        let route = &health["route"];
        let _ = writeln!(
            out,
            "route     {} for {} ms{}",
            if route["announced"].as_bool() == Some(true) {
                "announced"
            } else {
                "withdrawn"
            },
            text(&route["since_ms"]),
            match route["hold_down_remaining_ms"].as_u64() {
                Some(ms) if ms > 0 => format!(", hold-down {ms} ms left"),
                _ => String::new(),
            }
        );
        let _ = writeln!(
            out,
            "drain     {}   maintenance {}",
            text(&health["drain"]["stage"]),
            text(&health["maintenance"])
        );
        let budget = &health["flap_budget"];
        let _ = writeln!(
            out,
            "flaps     {} of {} per hour{}",
            text(&budget["used"]),
            text(&budget["limit_per_hour"]),
            if budget["exhausted"].as_bool() == Some(true) {
                " (exhausted: staying withdrawn)"
            } else {
                ""
            }
        );
        for probe in health["probes"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "probe     {:<24} {:<8} last {}",
                text(&probe["name"]),
                text(&probe["health"]),
                match &probe["last_result"] {
                    Value::Object(o) => o.values().map(text).collect::<Vec<_>>().join(": "),
                    other => text(other),
                }
            );
        }
    }
    let bgp = &status["bgp"];
    if bgp.is_null() {
        let _ = writeln!(out, "bgp       not configured: nothing is announced");
    } else {
        for route in bgp["routes"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "route     {:<24} {}",
                text(&route["prefix"]),
                compact(&route["attributes"])
            );
        }
        if bgp["routes"].as_array().is_some_and(|r| r.is_empty()) {
            let _ = writeln!(out, "route     (none: withdrawn)");
        }
        for peer in bgp["peers"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "peer      {:<24} AS{:<10} {:<12} {} prefixes announced{}",
                text(&peer["address"]),
                text(&peer["remote_asn"]),
                text(&peer["state"]),
                peer["announced"].as_array().map_or(0, Vec::len),
                match &peer["last_error"] {
                    Value::String(e) => format!(", last error: {e}"),
                    _ => String::new(),
                }
            );
        }
    }
    for zone in status["zones"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "zone      {:<32} serial {:<12} {:>8} records  {}",
            text(&zone["name"]),
            text(&zone["serial"]),
            text(&zone["records"]),
            zone_state(zone)
        );
        if let Value::String(error) = &zone["last_error"] {
            let _ = writeln!(out, "          last error: {error}");
        }
    }
    let q = &status["queries"];
    let _ = writeln!(
        out,
        "queries   udp {} received, {} answered; tcp {} received, {} connections open",
        text(&q["udp_received"]),
        text(&q["udp_answered"]),
        text(&q["tcp_received"]),
        text(&q["tcp_connections_open"])
    );
    out
}

/// A zone's source and freshness in a few words: where it comes from, and for a secondary how
/// current it is.
fn zone_state(zone: &Value) -> String {
    let kind = zone["kind"].as_str().unwrap_or("file");
    if kind == "file" {
        return "file".to_string();
    }
    let secs = |v: &Value| v.as_u64().map(|s| format!("{s} s"));
    let mut parts = vec![match &zone["catalog"] {
        Value::String(c) => format!("{kind} of {c}"),
        _ => kind.to_string(),
    }];
    if zone["expired"].as_bool() == Some(true) {
        parts.push("EXPIRED (answering SERVFAIL)".to_string());
    } else if zone["loaded"].as_bool() != Some(true) {
        parts.push("NOT LOADED yet".to_string());
    }
    if let Some(p) = zone["primary_serial"].as_u64() {
        parts.push(format!("primary serial {p}"));
    }
    if let Some(s) = secs(&zone["last_refresh_secs_ago"]) {
        parts.push(format!("refreshed {s} ago"));
    }
    if let Some(s) = secs(&zone["expire_in_secs"]) {
        parts.push(format!("expires in {s}"));
    }
    if let Some(s) = secs(&zone["behind_primary_secs"]) {
        let lagging = if zone["lag_exceeded"].as_bool() == Some(true) {
            " (beyond the bound: de-preferred)"
        } else {
            ""
        };
        parts.push(format!("behind the primary for {s}{lagging}"));
    }
    if let Some(n) = zone["members"].as_u64() {
        parts.push(format!("{n} members"));
    }
    parts.join(", ")
}

/// Route attributes in one line, leaving out what is empty.
fn compact(attributes: &Value) -> String {
    let Value::Object(map) = attributes else {
        return String::new();
    };
    map.iter()
        .filter(|(_, v)| match v {
            Value::Null => false,
            Value::Array(a) => !a.is_empty(),
            Value::Number(n) => n.as_u64() != Some(0),
            _ => true,
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_important_lines() {
        let status = serde_json::json!({
            "node": {"identity": "n1.ams", "site": "ams", "node": "n1", "version": "0.1.0"},
            "listen": ["127.0.0.1:53"],
            "intent": "withdraw: zone not loaded",
            "zones": [{"name": "example.test.", "serial": 7, "records": 12}],
            "queries": {"udp_received": 5, "udp_answered": 5, "tcp_received": 0, "tcp_connections_open": 0},
            "health": null,
        });
        let text = render(&status);
        assert!(
            text.contains("node      n1.ams (site ams, node n1)"),
            "{text}"
        );
        assert!(
            text.contains("intent    withdraw: zone not loaded"),
            "{text}"
        );
        assert!(text.contains("example.test."), "{text}");
        let mut secondary = status.clone();
        secondary["zones"] = serde_json::json!([{
            "name": "sec.test.", "kind": "secondary", "serial": 4, "records": 9, "loaded": true,
            "expired": true, "primary_serial": 5, "last_refresh_secs_ago": 20,
            "expire_in_secs": null, "last_error": "192.0.2.1:53: timed out",
        }]);
        let text = render(&secondary);
        assert!(
            text.contains(
                "secondary, EXPIRED (answering SERVFAIL), primary serial 5, refreshed 20 s ago"
            ),
            "{text}"
        );
        assert!(
            text.contains("last error: 192.0.2.1:53: timed out"),
            "{text}"
        );
        assert!(text.contains("bgp       not configured"), "{text}");
        let mut with_bgp = status.clone();
        with_bgp["bgp"] = serde_json::json!({
            "routes": [{"prefix": "192.0.2.53/32", "attributes": {"med": 10, "communities": [], "as_path_prepend": 0}}],
            "peers": [{"address": "198.51.100.1", "remote_asn": 65001, "state": "Established", "announced": [1, 2], "last_error": null}],
        });
        let text = render(&with_bgp);
        assert!(
            text.contains("route     192.0.2.53/32            med=10"),
            "{text}"
        );
        assert!(
            text.contains(
                "peer      198.51.100.1             AS65001      Established  2 prefixes"
            ),
            "{text}"
        );
    }
}
