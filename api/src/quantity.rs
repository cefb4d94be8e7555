//! Kubernetes resource quantities (`500m`, `1Gi`, `2e3`, `1.5`).
//!
//! Quantities are kept as strings in objects; this module parses them into
//! exact integers so that validation (requests ≤ limits), the scheduler and
//! the node agent can compare and add them without floating point.
//!
//! The grammar is Kubernetes': an optional sign, a decimal number, then one
//! suffix out of the binary SI suffixes (`Ki` … `Ei`), the decimal SI suffixes
//! (`n`, `u`, `m`, ``, `k`, `M`, `G`, `T`, `P`, `E`) or a decimal exponent
//! (`e3`, `E-2`). Values are rounded up to the requested precision, as
//! Kubernetes does.

/// The error for a string that is not a quantity; the message is the one the
/// Kubernetes API server uses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The string does not follow the quantity grammar.
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    Syntax,
    /// The value does not fit in the integer range used for arithmetic.
    #[error("quantity is too large")]
    TooLarge,
}

/// A quantity broken into an exact decimal mantissa and scaling factors:
/// value = mantissa × 2^bin_exp × 10^dec_exp.
struct Parts {
    mantissa: i128,
    bin_exp: u32,
    dec_exp: i32,
}

/// Parse `s` and return its value in thousandths (milli-units), rounded up.
/// `"500m"` → 500, `"1"` → 1000, `"1Ki"` → 1 024 000.
pub fn parse_milli(s: &str) -> Result<i128, QuantityError> {
    scaled(s, 3)
}

/// Parse `s` and return its value in whole units, rounded up.
/// `"1Gi"` → 1 073 741 824, `"500m"` → 1.
pub fn parse_value(s: &str) -> Result<i128, QuantityError> {
    scaled(s, 0)
}

/// Whether `s` is a syntactically valid quantity.
pub fn is_valid(s: &str) -> bool {
    parse_milli(s).is_ok()
}

/// The value of `s` multiplied by 10^`extra_exp`, rounded away from zero.
fn scaled(s: &str, extra_exp: i32) -> Result<i128, QuantityError> {
    let p = parse_parts(s)?;
    let mut v = p
        .mantissa
        .checked_mul(1i128 << p.bin_exp)
        .ok_or(QuantityError::TooLarge)?;
    let exp = p.dec_exp + extra_exp;
    if exp >= 0 {
        let factor = 10i128
            .checked_pow(exp.unsigned_abs())
            .ok_or(QuantityError::TooLarge)?;
        v = v.checked_mul(factor).ok_or(QuantityError::TooLarge)?;
    } else {
        // A divisor beyond i128 range means the value is a tiny fraction,
        // which rounds up to one unit (or stays zero).
        match 10i128.checked_pow(exp.unsigned_abs()) {
            Some(div) => {
                let q = v / div;
                v = if v % div != 0 { q + v.signum() } else { q };
            }
            None => v = v.signum(),
        }
    }
    Ok(v)
}

fn parse_parts(s: &str) -> Result<Parts, QuantityError> {
    let bytes = s.as_bytes();
    let mut i = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut mantissa: i128 = 0;
    let mut digits = 0usize;
    let mut frac_digits = 0i32;
    let mut seen_dot = false;
    while let Some(&c) = bytes.get(i) {
        match c {
            b'0'..=b'9' => {
                mantissa = mantissa
                    .checked_mul(10)
                    .and_then(|m| m.checked_add(i128::from(c - b'0')))
                    .ok_or(QuantityError::TooLarge)?;
                digits += 1;
                if seen_dot {
                    frac_digits += 1;
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => break,
        }
        i += 1;
    }
    if digits == 0 {
        return Err(QuantityError::Syntax);
    }
    let suffix = s.get(i..).ok_or(QuantityError::Syntax)?;
    let (bin_exp, dec_exp) = match suffix {
        "" => (0, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        other => (0, parse_exponent(other)?),
    };
    Ok(Parts {
        mantissa: if negative { -mantissa } else { mantissa },
        bin_exp,
        dec_exp: dec_exp - frac_digits,
    })
}

/// Parse a decimal exponent suffix such as `e3`, `E-2` or `e+10`.
fn parse_exponent(suffix: &str) -> Result<i32, QuantityError> {
    let rest = suffix
        .strip_prefix('e')
        .or_else(|| suffix.strip_prefix('E'))
        .ok_or(QuantityError::Syntax)?;
    let (negative, digits) = match rest.as_bytes().first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QuantityError::Syntax);
    }
    let n: i32 = digits.parse().map_err(|_| QuantityError::TooLarge)?;
    Ok(if negative { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milli_values() {
        let cases: &[(&str, i128)] = &[
            ("0", 0),
            ("1", 1000),
            ("500m", 500),
            ("0.5", 500),
            ("1.5", 1500),
            (".5", 500),
            ("5.", 5000),
            ("+2", 2000),
            ("-2", -2000),
            ("100k", 100_000_000),
            ("1Ki", 1_024_000),
            ("1Mi", 1_048_576_000),
            ("1.5Gi", 1_610_612_736_000),
            ("2M", 2_000_000_000),
            ("1e3", 1_000_000),
            ("1E3", 1_000_000),
            ("1e-3", 1),
            ("1e+2", 100_000),
            ("1E", 1_000_000_000_000_000_000_000),
            ("1Ei", 1_152_921_504_606_846_976_000),
            ("100u", 1),
            ("1n", 1),
            ("0.1m", 1),
            ("1500u", 2),
        ];
        for (s, want) in cases {
            assert_eq!(parse_milli(s), Ok(*want), "{s}");
        }
    }

    #[test]
    fn whole_values() {
        assert_eq!(parse_value("1Gi"), Ok(1_073_741_824));
        assert_eq!(parse_value("500m"), Ok(1));
        assert_eq!(parse_value("128974848"), Ok(128_974_848));
        assert_eq!(parse_value("129e6"), Ok(129_000_000));
        assert_eq!(parse_value("123Mi"), Ok(128_974_848));
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "", "m", "abc", "1x", "1 Gi", "1.2.3", "1gi", "1KI", "1e", "1e-", "--1", "1Gi1", " 1", "1.5.",
            "e3", "1ee3",
        ] {
            assert_eq!(parse_milli(s), Err(QuantityError::Syntax), "{s:?}");
            assert!(!is_valid(s));
        }
        assert_eq!(
            parse_milli("99999999999999999999999999999999999999999"),
            Err(QuantityError::TooLarge)
        );
        assert_eq!(parse_milli("1e400"), Err(QuantityError::TooLarge));
        assert_eq!(parse_milli("1e-400"), Ok(1));
    }
}
