//! Cheap tests of the normal form (what the typed round trip returns) for kinds written often.
//!
//! A node's heartbeat is a Lease update; [`crate::handlers::write`] puts the object but its
//! metadata through the typed round trip to find whether it is in normal form. For a Lease that
//! is a decode into `LeaseSpec` and an encode back, with two timestamps parsed and formatted.
//! [`lease`] answers the same question by looking: true only where the round trip would change
//! nothing; false says nothing (the round trip then runs and decides).

use serde_json::Value;

/// Whether the round trip of a Lease (with its metadata set aside: `{}`) changes nothing.
pub fn lease(obj: &Value) -> bool {
    let Value::Object(members) = obj else {
        return false;
    };
    members.iter().all(|(k, v)| match k.as_str() {
        "apiVersion" => v.as_str() == Some("coordination.k8s.io/v1"),
        "kind" => v.as_str() == Some("Lease"),
        "metadata" => v.as_object().is_some_and(serde_json::Map::is_empty),
        "spec" => v.as_object().is_some_and(|spec| {
            spec.iter().all(|(k, v)| match k.as_str() {
                "holderIdentity" | "preferredHolder" | "strategy" => v.is_string(),
                "leaseDurationSeconds" | "leaseTransitions" => is_int32(v),
                "acquireTime" | "renewTime" => v.as_str().is_some_and(is_micro_time),
                _ => false,
            })
        }),
        _ => false,
    }) && ["apiVersion", "kind", "metadata"]
        .iter()
        .all(|k| members.contains_key(*k))
}

/// An integer the round trip keeps as it is (`int32`: not `40.0`, not out of range).
fn is_int32(v: &Value) -> bool {
    v.as_i64().is_some_and(|i| i32::try_from(i).is_ok())
}

/// Whether `s` is a `MicroTime` as it is encoded: `2026-11-29T10:00:05.123456Z`, UTC, six
/// fractional digits, a real date and time of day, in years 1 to 9998.
pub fn is_micro_time(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 27 {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let seps = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (26, b'Z'),
    ];
    if seps.iter().any(|&(i, c)| b[i] != c) || digits(20..26).is_none() {
        return false;
    }
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        digits(0..4),
        digits(5..7),
        digits(8..10),
        digits(11..13),
        digits(14..16),
        digits(17..19),
    ) else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    // (The typed form's timestamps end in the last days of year 9999.)
    (1..=9998).contains(&year)
        && (1..=days).contains(&day)
        && hour < 24
        && minute < 60
        && second < 60
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::kinds::round_trip;
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    fn heartbeat() -> Value {
        json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {},
            "spec": {
                "holderIdentity": "sim-0001", "leaseDurationSeconds": 40,
                "renewTime": "2026-11-29T10:00:05.123456Z"
            }
        })
    }

    /// What the round trip says: normal when it returns `None`.
    fn round_trip_normal(obj: &Value) -> bool {
        matches!(round_trip::<Lease>(obj), Ok(None))
    }

    #[test]
    fn heartbeats_and_every_spec_member_are_seen_as_normal() {
        let all = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {},
            "spec": {
                "acquireTime": "2024-02-29T23:59:59.000000Z", "holderIdentity": "a",
                "leaseDurationSeconds": 2147483647, "leaseTransitions": -2147483648,
                "preferredHolder": "b", "renewTime": "0001-01-01T00:00:00.999999Z",
                "strategy": "OldestEmulationVersion"
            }
        });
        let empty_spec = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {}, "spec": {}
        });
        let no_spec =
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {}});
        for obj in [heartbeat(), all, empty_spec, no_spec] {
            assert!(lease(&obj), "{obj}");
            assert!(round_trip_normal(&obj), "{obj}");
        }
    }

    /// Every variant the test calls normal, the round trip leaves as it is; the variants it
    /// leaves to the round trip are those it should.
    #[test]
    fn only_what_the_round_trip_leaves_alone_is_called_normal() {
        let spec_variants: Vec<(&str, Value)> = vec![
            ("holderIdentity", json!(null)),
            ("holderIdentity", json!(5)),
            ("holderIdentity", json!(["a"])),
            ("leaseDurationSeconds", json!(40.0)),
            ("leaseDurationSeconds", json!(2147483648_i64)),
            ("leaseDurationSeconds", json!(-2147483649_i64)),
            ("leaseDurationSeconds", json!("40")),
            ("leaseDurationSeconds", json!(null)),
            ("leaseTransitions", json!(1.5)),
            ("renewTime", json!("2026-11-29T10:00:05.123Z")),
            ("renewTime", json!("2026-11-29T10:00:05Z")),
            ("renewTime", json!("2026-11-29T10:00:05.123456+00:00")),
            ("renewTime", json!("2026-11-29T11:00:05.123456+01:00")),
            ("renewTime", json!("2026-11-29t10:00:05.123456Z")),
            ("renewTime", json!("2026-11-29 10:00:05.123456Z")),
            ("renewTime", json!("2026-11-29T10:00:05.123456z")),
            ("renewTime", json!("2026-02-29T10:00:05.123456Z")),
            ("renewTime", json!("2026-04-31T10:00:05.123456Z")),
            ("renewTime", json!("2026-13-01T10:00:05.123456Z")),
            ("renewTime", json!("2026-00-01T10:00:05.123456Z")),
            ("renewTime", json!("2026-11-00T10:00:05.123456Z")),
            ("renewTime", json!("2026-11-29T24:00:05.123456Z")),
            ("renewTime", json!("2026-11-29T10:60:05.123456Z")),
            ("renewTime", json!("2026-11-29T23:59:60.123456Z")),
            ("renewTime", json!("+2026-11-29T10:00:05.12345Z")),
            ("renewTime", json!("2026-11-29T10:00:05.1234567")),
            ("renewTime", json!(1_764_410_405)),
            ("renewTime", json!(null)),
            ("acquireTime", json!("nope")),
            ("unknownField", json!("x")),
            ("renewtime", json!("2026-11-29T10:00:05.123456Z")),
        ];
        for (field, value) in spec_variants {
            let mut obj = heartbeat();
            obj["spec"][field] = value;
            assert!(!lease(&obj), "{obj}");
            assert!(
                !round_trip_normal(&obj),
                "the round trip changes or refuses {obj}"
            );
        }
        let top_variants: Vec<(&str, Value)> = vec![
            ("apiVersion", json!("coordination.k8s.io/v1beta1")),
            ("kind", json!("Node")),
            ("metadata", json!({"name": "a"})),
            ("metadata", json!(null)),
            ("spec", json!(null)),
            ("spec", json!("x")),
            ("status", json!({})),
        ];
        for (field, value) in top_variants {
            let mut obj = heartbeat();
            obj[field] = value;
            assert!(!lease(&obj), "{obj}");
        }
        for field in ["apiVersion", "kind", "metadata"] {
            let mut obj = heartbeat();
            obj.as_object_mut().unwrap().remove(field);
            assert!(!lease(&obj), "{obj}");
            assert!(!round_trip_normal(&obj), "the round trip changes {obj}");
        }
    }

    /// `is_micro_time` accepts what the typed form writes, over every day of four years (a leap
    /// year among them) and times of day across the range.
    #[test]
    fn micro_times_as_written_are_recognized() {
        let start = Timestamp::from_second(1_704_067_200).unwrap(); // 2024-01-01T00:00:00Z
        for i in 0..(4 * 366) {
            let t = start
                .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(
                    i * 86_400 + (i * 7_919) % 86_400,
                ))
                .unwrap()
                .checked_add(k8s_openapi::jiff::SignedDuration::from_micros(
                    i * 123_457 % 1_000_000,
                ))
                .unwrap();
            let written = serde_json::to_value(MicroTime(t)).unwrap();
            let s = written.as_str().unwrap();
            assert!(is_micro_time(s), "{s}");
        }
        for s in [
            "2024-02-29T00:00:00.000000Z",
            "2000-02-29T12:34:56.654321Z",
            "9998-12-31T23:59:59.999999Z",
        ] {
            assert!(is_micro_time(s), "{s}");
            let parsed: MicroTime = serde_json::from_value(json!(s)).unwrap();
            assert_eq!(serde_json::to_value(parsed).unwrap(), json!(s));
        }
        for s in [
            "1900-02-29T00:00:00.000000Z",
            "2023-02-29T00:00:00.000000Z",
            "0000-01-01T00:00:00.000000Z",
            "9999-12-31T23:59:59.999999Z",
        ] {
            assert!(!is_micro_time(s), "{s}");
        }
    }
}
