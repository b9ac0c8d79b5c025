//! Reading and writing the timestamps forges send and we store.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Formats a time as RFC 3339 in UTC, to the second (`2026-03-02T09:41:07Z`).
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t);
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Parses an RFC 3339 timestamp with any offset (`Z`, `+00:00`, `+08:00`) and fraction.
pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// How long ago `t` was, for people: `12s ago`, `3h 10m ago`, `2d 4h ago` (`in …` for a
/// time still to come).
pub fn ago(now: OffsetDateTime, t: OffsetDateTime) -> String {
    let d = now - t;
    let secs = d.whole_seconds().unsigned_abs();
    let text = human_duration(std::time::Duration::from_secs(secs));
    if d.is_negative() {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// A short human rendering of a duration: `2d 3h`, `45m`, `12s`, `0.4s`.
pub fn human_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let (days, hours, mins) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (days, hours, mins) {
        (0, 0, 0) if secs < 10 => format!("{:.1}s", d.as_secs_f64()),
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_offsets_forges_send() {
        let z = parse_rfc3339("2026-01-30T08:05:19Z").unwrap();
        assert_eq!(parse_rfc3339("2026-01-30T09:05:19+01:00"), Some(z));
        assert_eq!(parse_rfc3339("2026-01-30T08:05:19.000+00:00"), Some(z));
        assert!(parse_rfc3339("2026-03-02T09:30:12.418Z").is_some());
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(
            rfc3339(parse_rfc3339("2026-01-30T09:05:19.5+01:00").unwrap()),
            "2026-01-30T08:05:19Z"
        );
    }

    #[test]
    fn renders_durations_briefly() {
        assert_eq!(human_duration(std::time::Duration::from_secs(12)), "12s");
        assert_eq!(
            human_duration(std::time::Duration::from_millis(430)),
            "0.4s"
        );
        assert_eq!(human_duration(std::time::Duration::from_secs(2700)), "45m");
        assert_eq!(
            human_duration(std::time::Duration::from_secs(3 * 3600 + 60)),
            "3h 1m"
        );
        assert_eq!(
            human_duration(std::time::Duration::from_secs(2 * 86_400 + 3 * 3600)),
            "2d 3h"
        );
    }
}
