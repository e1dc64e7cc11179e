//! Parsing of resource quantities (`100m`, `1Gi`, `1e3`), enough to compare them as upstream
//! `resource.Quantity.Cmp` does.

use std::cmp::Ordering;

/// Upstream's parse error text for a malformed quantity (`resource.ErrFormatWrong`).
pub const QUANTITY_FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// Why a string is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The string does not have the `<number><suffix>` form.
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    FormatWrong,
    /// The suffix is not one of the known suffixes.
    #[error("unable to parse quantity's suffix")]
    InvalidSuffix,
}

/// A parsed quantity, held as an exact number of nano-units (saturating at the i128 range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParsedQuantity {
    nanos: i128,
}

impl ParsedQuantity {
    /// The zero quantity.
    pub const ZERO: Self = Self { nanos: 0 };

    /// The value in nano-units (10^-9), rounded toward zero.
    pub fn nanos(self) -> i128 {
        self.nanos
    }

    /// The value in milli-units, rounded up (as upstream `MilliValue`).
    pub fn milli_value(self) -> i128 {
        div_ceil(self.nanos, 1_000_000)
    }

    /// The value in whole units, rounded up (as upstream `Value`).
    pub fn value(self) -> i128 {
        div_ceil(self.nanos, 1_000_000_000)
    }

    /// Compares two quantities (upstream `Cmp`).
    pub fn cmp_to(self, other: Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }

    /// Whether the quantity is an integer number of units.
    pub fn is_integer(self) -> bool {
        self.nanos % 1_000_000_000 == 0
    }
}

fn div_ceil(a: i128, b: i128) -> i128 {
    let d = a / b;
    if a % b > 0 { d + 1 } else { d }
}

/// Parses a quantity string.
pub fn parse_quantity(s: &str) -> Result<ParsedQuantity, QuantityError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(QuantityError::FormatWrong);
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut negative = false;
    if bytes[0] == b'+' || bytes[0] == b'-' {
        negative = bytes[0] == b'-';
        i = 1;
    }
    let num_start = i;
    while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
        i += 1;
    }
    let number = &s[num_start..i];
    let suffix = &s[i..];
    if number.is_empty() || number.matches('.').count() > 1 || number == "." {
        return Err(QuantityError::FormatWrong);
    }
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    // mantissa as integer, with decimal exponent
    let digits = format!("{int_part}{frac_part}");
    let mut exp10: i32 = -(frac_part.len() as i32);
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
        s if s.starts_with('e') || s.starts_with('E') => {
            let e: i32 = s[1..].parse().map_err(|_| QuantityError::InvalidSuffix)?;
            exp10 = exp10.saturating_add(e);
        }
        _ => {
            if suffix
                .bytes()
                .all(|c| b"eEinumkKMGTP+-0123456789".contains(&c))
            {
                return Err(QuantityError::InvalidSuffix);
            }
            return Err(QuantityError::FormatWrong);
        }
    }
    // value in nanos = digits * 10^(exp10 + 9) * mult
    let mut v: i128 = 0;
    for d in digits.bytes() {
        v = v.saturating_mul(10).saturating_add(i128::from(d - b'0'));
    }
    let e = exp10 + 9;
    if e >= 0 {
        for _ in 0..e.min(60) {
            v = v.saturating_mul(10);
        }
        v = v.saturating_mul(mult);
    } else {
        v = v.saturating_mul(mult);
        for _ in 0..(-e).min(60) {
            v /= 10;
        }
    }
    Ok(ParsedQuantity {
        nanos: if negative { -v } else { v },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        let q = |s| parse_quantity(s).map(ParsedQuantity::nanos);
        assert_eq!(q("1"), Ok(1_000_000_000));
        assert_eq!(q("100m"), Ok(100_000_000));
        assert_eq!(q("0.5"), Ok(500_000_000));
        assert_eq!(q("1Ki"), Ok(1024 * 1_000_000_000));
        assert_eq!(q("1k"), Ok(1_000_000_000_000));
        assert_eq!(q("1e3"), Ok(1_000_000_000_000));
        assert_eq!(q("-2"), Ok(-2_000_000_000));
        assert_eq!(q(".5"), Ok(500_000_000));
        assert_eq!(q("abc"), Err(QuantityError::FormatWrong));
        assert_eq!(q("1Zi"), Err(QuantityError::FormatWrong));
        assert_eq!(q(""), Err(QuantityError::FormatWrong));
        assert!(parse_quantity("1Gi").unwrap() > parse_quantity("1G").unwrap());
        assert_eq!(parse_quantity("1500m").unwrap().value(), 2);
        assert_eq!(parse_quantity("1.5").unwrap().milli_value(), 1500);
    }
}
