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

    fn secs(s: i64) -> TimeDelta {
        TimeDelta::seconds(s)
    }

    // Cases from upstream `duration_test.go` (TestHumanDuration).
    #[test]
    fn human_duration_matches_upstream() {
        let cases: &[(TimeDelta, &str)] = &[
            (secs(1), "1s"),
            (secs(70), "70s"),
            (secs(190), "3m10s"),
            (secs(70 * 60), "70m"),
            (TimeDelta::hours(47), "47h"),
            (TimeDelta::hours(49), "2d1h"),
            (TimeDelta::hours(8 * 24 + 2), "8d"),
            (TimeDelta::hours(367 * 24), "367d"),
            (TimeDelta::hours(365 * 24 * 3 + 24), "3y1d"),
            (TimeDelta::hours(365 * 24 * 10 + 24), "10y"),
            (secs(0), "0s"),
            (secs(119), "119s"),
            (secs(120), "2m"),
            (secs(3 * 60 + 2), "3m2s"),
            (secs(10 * 60 + 59), "10m"),
            (secs(45 * 60), "45m"),
            (secs(179 * 60 + 59), "179m"),
            (secs(3 * 3600), "3h"),
            (secs(5 * 3600 + 3 * 60 + 20), "5h3m"),
            (TimeDelta::hours(8), "8h"),
            (TimeDelta::hours(48), "2d"),
            (TimeDelta::hours(2 * 365 * 24), "2y"),
            (TimeDelta::milliseconds(-1500), "0s"),
            (TimeDelta::milliseconds(-1999), "0s"),
            (secs(-2), "<invalid>"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(*d), *want, "duration {d:?}");
        }
    }

    #[test]
    fn short_human_duration_matches_upstream() {
        let cases: &[(TimeDelta, &str)] = &[
            (secs(1), "1s"),
            (secs(70), "1m"),
            (secs(70 * 60), "1h"),
            (TimeDelta::hours(47), "1d"),
            (TimeDelta::hours(24 * 400), "1y"),
            (secs(-1), "0s"),
            (secs(-3), "<invalid>"),
        ];
        for (d, want) in cases {
            assert_eq!(short_human_duration(*d), *want, "duration {d:?}");
        }
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
