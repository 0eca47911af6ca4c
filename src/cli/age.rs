//! Times as kubectl shows them: ages like `5m3s`, timestamps in RFC 3339 UTC.

use std::time::{Duration, SystemTime};

use jiff::Timestamp;

use super::exit::Usage;

/// Environment variable that fixes "now", so that ages in output are
/// reproducible (tests, documentation). RFC 3339, e.g. `2026-01-01T00:00:00Z`.
pub const NOW_ENV: &str = "KUBE_PERSIST_NOW";

/// The current time, or the one `KUBE_PERSIST_NOW` fixes. Set but empty
/// counts as unset (as `VAR= cmd` usually means "no value"); any other value
/// that is not an RFC 3339 time is a usage error naming the variable.
pub fn now() -> anyhow::Result<Timestamp> {
    let Some(fixed) = std::env::var_os(NOW_ENV).filter(|v| !v.is_empty()) else {
        return Ok(Timestamp::now());
    };
    let parsed = match fixed.to_str() {
        Some(text) => text.parse().map_err(|e: jiff::Error| e.to_string()),
        None => Err("it is not valid UTF-8".to_string()),
    };
    parsed.map_err(|reason| {
        Usage(format!(
            "environment variable {NOW_ENV}={fixed:?} is not an RFC 3339 time (e.g. 2026-01-01T00:00:00Z): {reason}"
        ))
        .into()
    })
}

/// A stored time in RFC 3339 UTC, seconds precision.
pub fn timestamp(t: SystemTime) -> String {
    match Timestamp::try_from(t) {
        Ok(ts) => ts.round(jiff::Unit::Second).unwrap_or(ts).to_string(),
        Err(_) => "<invalid>".to_string(),
    }
}

/// Age of `then` at `now`, the way kubectl prints it.
pub fn since(now: Timestamp, then: Timestamp) -> String {
    let secs = now.as_second() - then.as_second();
    if secs < -1 {
        return "<invalid>".to_string();
    }
    human(Duration::from_secs(secs.max(0) as u64))
}

/// Age of an RFC 3339 string (an object's `creationTimestamp`).
pub fn since_str(now: Timestamp, then: Option<&str>) -> String {
    match then.map(str::parse::<Timestamp>) {
        Some(Ok(then)) => since(now, then),
        _ => "<unknown>".to_string(),
    }
}

/// Age of a stored `SystemTime`.
pub fn since_system(now: Timestamp, then: SystemTime) -> String {
    match Timestamp::try_from(then) {
        Ok(then) => since(now, then),
        Err(_) => "<invalid>".to_string(),
    }
}

/// kubectl's `HumanDuration`: precise when short, coarse when long.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (m, h, days) = (s / 60, s / 3600, s / 86_400);
    let years = days / 365;
    match () {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 && s.is_multiple_of(60) => format!("{m}m"),
        _ if m < 10 => format!("{m}m{}s", s % 60),
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 && m.is_multiple_of(60) => format!("{h}h"),
        _ if h < 8 => format!("{h}h{}m", m % 60),
        _ if h < 48 => format!("{h}h"),
        _ if h < 24 * 8 && h.is_multiple_of(24) => format!("{days}d"),
        _ if h < 24 * 8 => format!("{days}d{}h", h % 24),
        _ if h < 24 * 365 * 2 => format!("{days}d"),
        _ if h < 24 * 365 * 8 && days.is_multiple_of(365) => format!("{years}y"),
        _ if h < 24 * 365 * 8 => format!("{years}y{}d", days % 365),
        _ => format!("{years}y"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_durations() {
        for (secs, want) in [
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60, "3h1m"),
            (47 * 3600, "47h"),
            (3 * 86_400, "3d"),
            (3 * 86_400 + 3600, "3d1h"),
            (400 * 86_400, "400d"),
            (3 * 365 * 86_400, "3y"),
            (3 * 365 * 86_400 + 86_400, "3y1d"),
            (10 * 365 * 86_400, "10y"),
        ] {
            assert_eq!(human(Duration::from_secs(secs)), want, "{secs}s");
        }
    }

    #[test]
    fn ages_of_strings() {
        let now: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        assert_eq!(since_str(now, Some("2026-01-01T00:00:00Z")), "10m");
        assert_eq!(since_str(now, Some("garbage")), "<unknown>");
        assert_eq!(since_str(now, None), "<unknown>");
        assert_eq!(since_str(now, Some("2026-01-01T01:00:00Z")), "<invalid>");
    }
}
