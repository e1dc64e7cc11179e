//! Kubernetes resource quantities (`100m`, `1.5`, `2Gi`, `1e3`), rounded up as upstream's
//! `Quantity.MilliValue()` and `Quantity.Value()` do.

/// The value of a quantity in thousandths (CPU in millicores), rounded up; `None` if it does
/// not parse or overflows.
pub fn parse_milli(s: &str) -> Option<i64> {
    parse_scaled(s, 3)
}

/// The value of a quantity in units (bytes, pods), rounded up; `None` if it does not parse.
pub fn parse_value(s: &str) -> Option<i64> {
    parse_scaled(s, 0)
}

/// `value × 10^extra_exp10`, rounded up (away from zero for positive values, toward zero for
/// negative ones, as `math.Ceil`).
fn parse_scaled(s: &str, extra_exp10: i32) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let (negative, rest) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (num, suffix) = rest.split_at(num_end);
    if num.is_empty() || num == "." {
        return None;
    }
    let (int_part, frac_part) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if frac_part.contains('.') {
        return None;
    }
    let mut mantissa: i128 = 0;
    for c in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(i128::from(c - b'0'))?;
    }
    let mut exp10: i32 = extra_exp10 - i32::try_from(frac_part.len()).ok()?;
    let mut mult: i128 = 1;
    match suffix {
        "" => {}
        "Ki" => mult = 1 << 10,
        "Mi" => mult = 1 << 20,
        "Gi" => mult = 1 << 30,
        "Ti" => mult = 1 << 40,
        "Pi" => mult = 1 << 50,
        "Ei" => mult = 1 << 60,
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        other => {
            let e = other.strip_prefix(['e', 'E'])?;
            exp10 += e.parse::<i32>().ok()?;
        }
    }
    let mut v = mantissa.checked_mul(mult)?;
    if exp10 >= 0 {
        for _ in 0..exp10 {
            v = v.checked_mul(10)?;
        }
    } else {
        let mut div: i128 = 1;
        for _ in 0..(-exp10) {
            div = div.checked_mul(10)?;
            if div > v.saturating_mul(10) && div > 1_000_000_000_000_000_000_000 {
                // Far below one unit: a positive value rounds up to 1.
                return Some(if v > 0 && !negative { 1 } else { 0 });
            }
        }
        let q = v / div;
        v = if v % div != 0 && !negative { q + 1 } else { q };
    }
    let v = if negative { -v } else { v };
    i64::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_memory() {
        assert_eq!(parse_milli("100m"), Some(100));
        assert_eq!(parse_milli("1"), Some(1000));
        assert_eq!(parse_milli("1.5"), Some(1500));
        assert_eq!(parse_milli("0.1"), Some(100));
        assert_eq!(parse_milli("32"), Some(32000));
        assert_eq!(parse_milli("1u"), Some(1));
        assert_eq!(parse_value("2Gi"), Some(2 * 1024 * 1024 * 1024));
        assert_eq!(parse_value("256Gi"), Some(256 * 1024 * 1024 * 1024));
        assert_eq!(parse_value("500M"), Some(500_000_000));
        assert_eq!(parse_value("1e3"), Some(1000));
        assert_eq!(parse_value("110"), Some(110));
        assert_eq!(parse_value("1.5Ki"), Some(1536));
        assert_eq!(parse_value("100m"), Some(1));
        assert_eq!(parse_value("0"), Some(0));
        assert_eq!(parse_value("-1"), Some(-1));
        assert_eq!(parse_value("abc"), None);
        assert_eq!(parse_value("1Xi"), None);
        assert_eq!(parse_value(""), None);
    }
}
