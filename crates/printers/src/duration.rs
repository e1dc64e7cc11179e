//! Port of `k8s.io/apimachinery/pkg/util/duration` and of the timestamp helpers of
//! upstream `printers.go` (`translateTimestampSince`, `translateMicroTimestampSince`).

use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const NANOS_PER_MINUTE: i64 = 60 * NANOS_PER_SECOND;
const NANOS_PER_HOUR: i64 = 60 * NANOS_PER_MINUTE;

/// Converts a chrono duration to Go's `time.Duration` (int64 nanoseconds), saturating like
/// Go's `time.Sub` does.
fn go_nanos(d: TimeDelta) -> i64 {
    d.num_nanoseconds().unwrap_or(if d > TimeDelta::zero() {
        i64::MAX
    } else {
        i64::MIN
    })
}

/// `duration.HumanDuration`: a succinct representation of a duration with ~2-3 significant
/// figures (`5s`, `3m2s`, `45m`, `5h3m`, `2d`, `3y`...).
pub fn human_duration(d: TimeDelta) -> String {
    let d = go_nanos(d);
    // Allow deviation no more than 2 seconds (excluded) to tolerate machine time
    // inconsistency; it can be considered as almost now.
    let seconds = d / NANOS_PER_SECOND;
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d / NANOS_PER_MINUTE;
    if minutes < 10 {
        let s = (d / NANOS_PER_SECOND) % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d / NANOS_PER_HOUR;
    if hours < 8 {
        let m = (d / NANOS_PER_MINUTE) % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        format!("{hours}h{m}m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        format!("{}d{}h", hours / 24, h)
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        format!("{}y{}d", hours / 24 / 365, dy)
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// `duration.ShortHumanDuration`: one unit only (`5s`, `3m`, `4h`, `2d`, `3y`).
pub fn short_human_duration(d: TimeDelta) -> String {
    let d = go_nanos(d);
    let seconds = d / NANOS_PER_SECOND;
    if seconds < -1 {
        "<invalid>".to_string()
    } else if seconds < 0 {
        "0s".to_string()
    } else if seconds < 60 {
        format!("{seconds}s")
    } else if d / NANOS_PER_MINUTE < 60 {
        format!("{}m", d / NANOS_PER_MINUTE)
    } else if d / NANOS_PER_HOUR < 24 {
        format!("{}h", d / NANOS_PER_HOUR)
    } else if d / NANOS_PER_HOUR < 24 * 365 {
        format!("{}d", d / NANOS_PER_HOUR / 24)
    } else {
        format!("{}y", d / NANOS_PER_HOUR / 24 / 365)
    }
}

/// Go's `time.Time.IsZero()`: the zero time is January 1, year 1, 00:00:00 UTC.
pub(crate) fn is_go_zero(t: &DateTime<Utc>) -> bool {
    t.year() == 1
        && t.month() == 1
        && t.day() == 1
        && t.num_seconds_from_midnight() == 0
        && t.nanosecond() == 0
}

/// `translateTimestampSince`: `<unknown>` for a missing (zero) timestamp, else the human
/// duration between the timestamp and `now`.
pub fn translate_timestamp_since(t: Option<&DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match t {
        Some(t) if !is_go_zero(t) => human_duration(now.signed_duration_since(*t)),
        _ => "<unknown>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: i64 = 1;
    const MS: i64 = 1_000_000;
    const SEC: i64 = 1_000 * MS;
    const MIN: i64 = 60 * SEC;
    const HOUR: i64 = 60 * MIN;
    const DAY: i64 = 24 * HOUR;
    const YEAR: i64 = 365 * DAY;

    fn check(f: fn(TimeDelta) -> String, cases: &[(i64, &str)]) {
        for (nanos, want) in cases {
            assert_eq!(f(TimeDelta::nanoseconds(*nanos)), *want, "{nanos}ns");
        }
    }

    // Upstream `duration_test.go`: TestHumanDuration.
    #[test]
    fn human_duration_matches_upstream() {
        check(
            human_duration,
            &[
                (SEC, "1s"),
                (70 * SEC, "70s"),
                (190 * SEC, "3m10s"),
                (70 * MIN, "70m"),
                (47 * HOUR, "47h"),
                (49 * HOUR, "2d1h"),
                ((8 * 24 + 2) * HOUR, "8d"),
                (367 * 24 * HOUR, "367d"),
                ((365 * 2 * 24 + 25) * HOUR, "2y1d"),
                ((365 * 8 * 24 + 2) * HOUR, "8y"),
            ],
        );
    }

    // Upstream `duration_test.go`: TestHumanDurationBoundaries.
    #[test]
    fn human_duration_boundaries_match_upstream() {
        check(
            human_duration,
            &[
                (-2 * SEC, "<invalid>"),
                (-2 * SEC + NS, "0s"),
                (0, "0s"),
                (SEC - MS, "0s"),
                (2 * MIN - MS, "119s"),
                (2 * MIN, "2m"),
                (2 * MIN + SEC, "2m1s"),
                (10 * MIN - MS, "9m59s"),
                (10 * MIN, "10m"),
                (10 * MIN + SEC, "10m"),
                (3 * HOUR - MS, "179m"),
                (3 * HOUR, "3h"),
                (3 * HOUR + MIN, "3h1m"),
                (8 * HOUR - MS, "7h59m"),
                (8 * HOUR, "8h"),
                (8 * HOUR + 59 * MIN, "8h"),
                (2 * DAY - MS, "47h"),
                (2 * DAY, "2d"),
                (2 * DAY + HOUR, "2d1h"),
                (8 * DAY - MS, "7d23h"),
                (8 * DAY, "8d"),
                (8 * DAY + 23 * HOUR, "8d"),
                (2 * YEAR - MS, "729d"),
                (2 * YEAR, "2y"),
                (2 * YEAR + 23 * HOUR, "2y"),
                (2 * YEAR + 23 * HOUR + 59 * MIN, "2y"),
                (2 * YEAR + 24 * HOUR - MS, "2y"),
                (2 * YEAR + 24 * HOUR, "2y1d"),
                (3 * YEAR, "3y"),
                (4 * YEAR, "4y"),
                (5 * YEAR, "5y"),
                (6 * YEAR, "6y"),
                (7 * YEAR, "7y"),
                (8 * YEAR - MS, "7y364d"),
                (8 * YEAR, "8y"),
                (8 * YEAR + 364 * DAY, "8y"),
                (9 * YEAR, "9y"),
            ],
        );
    }

    // Upstream `duration_test.go`: TestShortHumanDurationBoundaries.
    #[test]
    fn short_human_duration_boundaries_match_upstream() {
        check(
            short_human_duration,
            &[
                (-2 * SEC, "<invalid>"),
                (-2 * SEC + NS, "0s"),
                (0, "0s"),
                (SEC - MS, "0s"),
                (SEC, "1s"),
                (2 * SEC - MS, "1s"),
                (MIN - MS, "59s"),
                (MIN, "1m"),
                (2 * MIN - MS, "1m"),
                (HOUR - MS, "59m"),
                (HOUR, "1h"),
                (2 * HOUR - MS, "1h"),
                (DAY - MS, "23h"),
                (DAY, "1d"),
                (2 * DAY - MS, "1d"),
                (YEAR - MS, "364d"),
                (YEAR, "1y"),
                (2 * YEAR - MS, "1y"),
                (2 * YEAR, "2y"),
            ],
        );
    }

    #[test]
    fn huge_durations_saturate_instead_of_panicking() {
        assert_eq!(human_duration(TimeDelta::MAX), "292y");
        assert_eq!(human_duration(TimeDelta::MIN), "<invalid>");
    }

    #[test]
    fn zero_timestamp_is_unknown() {
        let now = Utc::now();
        let zero = DateTime::parse_from_rfc3339("0001-01-01T00:00:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!(translate_timestamp_since(Some(&zero), now), "<unknown>");
        assert_eq!(translate_timestamp_since(None, now), "<unknown>");
        let earlier = now - TimeDelta::seconds(5);
        assert_eq!(translate_timestamp_since(Some(&earlier), now), "5s");
    }
}
