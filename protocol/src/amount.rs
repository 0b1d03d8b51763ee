//! Amounts: milli-hours (`mh`, i64) and weights in basis points (`bp`, u32), read from
//! decimal text exactly, with checked integer arithmetic only.

/// One hour in milli-hours.
pub const MH_PER_HOUR: i64 = 1_000;
/// A weight of 1.0 in basis points.
pub const WEIGHT_ONE_BP: u32 = 10_000;

/// Why an amount could not be read or computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("{what} {text:?} is not a decimal number (digits with an optional '.' and at most {decimals} decimals)")]
    NotDecimal {
        what: &'static str,
        text: String,
        decimals: u32,
    },
    #[error("{what} {text:?} has more than {decimals} decimals")]
    TooManyDecimals {
        what: &'static str,
        text: String,
        decimals: u32,
    },
    #[error("{what} {text:?} must not be negative")]
    Negative { what: &'static str, text: String },
    #[error("weight {text:?} must be above 0")]
    NotPositive { text: String },
    #[error("{what} {text:?} is too large")]
    TooLarge { what: &'static str, text: String },
    #[error("arithmetic overflow")]
    Overflow,
}

/// Reads a decimal string with at most `decimals` fractional digits as an integer number
/// of `10^-decimals` units. Accepts an optional leading '-' (the caller decides whether a
/// negative value is allowed). No exponent, no '+', no spaces inside.
fn parse_fixed(what: &'static str, text: &str, decimals: u32) -> Result<i128, AmountError> {
    let t = text.trim();
    let not_decimal = || AmountError::NotDecimal {
        what,
        text: text.to_string(),
        decimals,
    };
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let (int_part, frac_part) = match digits.split_once('.') {
        Some((i, f)) => (i, f),
        None => (digits, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(not_decimal());
    }
    if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_decimal());
    }
    if digits.contains('.') && frac_part.is_empty() {
        return Err(not_decimal());
    }
    if !frac_part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_decimal());
    }
    // Trailing zeros beyond the allowed precision are harmless ("2.5000" hours).
    let frac_trimmed = frac_part.trim_end_matches('0');
    if frac_trimmed.len() > decimals as usize {
        return Err(AmountError::TooManyDecimals {
            what,
            text: text.to_string(),
            decimals,
        });
    }
    if int_part.len() > 20 {
        return Err(AmountError::TooLarge {
            what,
            text: text.to_string(),
        });
    }
    let too_large = || AmountError::TooLarge {
        what,
        text: text.to_string(),
    };
    let int: i128 = int_part.parse().map_err(|_| too_large())?;
    let mut frac: i128 = 0;
    for i in 0..decimals as usize {
        let d = frac_trimmed
            .as_bytes()
            .get(i)
            .map(|b| i128::from(b - b'0'))
            .unwrap_or(0);
        frac = frac * 10 + d;
    }
    let scale = 10i128.pow(decimals);
    let v = int
        .checked_mul(scale)
        .and_then(|v| v.checked_add(frac))
        .ok_or_else(too_large)?;
    Ok(if neg { -v } else { v })
}

/// Reads hours ("2.5", at most 3 decimals, not negative) as milli-hours.
pub fn parse_hours(text: &str) -> Result<i64, AmountError> {
    let v = parse_fixed("hours", text, 3)?;
    if v < 0 {
        return Err(AmountError::Negative {
            what: "hours",
            text: text.to_string(),
        });
    }
    i64::try_from(v).map_err(|_| AmountError::TooLarge {
        what: "hours",
        text: text.to_string(),
    })
}

/// Reads a signed amount of hours (opening balances only) as milli-hours.
pub fn parse_signed_hours(text: &str) -> Result<i64, AmountError> {
    let v = parse_fixed("hours", text, 3)?;
    i64::try_from(v).map_err(|_| AmountError::TooLarge {
        what: "hours",
        text: text.to_string(),
    })
}

/// Reads a weight ("1.5", at most 4 decimals, above 0) as basis points.
pub fn parse_weight(text: &str) -> Result<u32, AmountError> {
    let v = parse_fixed("weight", text, 4)?;
    if v <= 0 {
        return Err(AmountError::NotPositive {
            text: text.to_string(),
        });
    }
    u32::try_from(v).map_err(|_| AmountError::TooLarge {
        what: "weight",
        text: text.to_string(),
    })
}

/// Weighted effort of `hours_mh` at `weight_bp`: `(h * L + 5000) / 10000` in i128,
/// checked back into i64.
pub fn weighted(hours_mh: i64, weight_bp: u32) -> Result<i64, AmountError> {
    let p = i128::from(hours_mh)
        .checked_mul(i128::from(weight_bp))
        .and_then(|p| p.checked_add(5_000))
        .ok_or(AmountError::Overflow)?;
    // Integer division truncates toward zero, which for h >= 0 is rounding half up.
    i64::try_from(p / 10_000).map_err(|_| AmountError::Overflow)
}

/// Formats milli-hours as decimal hours for people ("-16", "2.5", "0.001").
pub fn format_mh(mh: i64) -> String {
    let neg = mh < 0;
    let abs = i128::from(mh).unsigned_abs();
    let int = abs / 1000;
    let frac = abs % 1000;
    let mut s = if neg { "-".to_string() } else { String::new() };
    s.push_str(&int.to_string());
    if frac != 0 {
        let f = format!("{frac:03}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s
}

/// Formats a weight in basis points as a decimal ("1.5").
pub fn format_bp(bp: u32) -> String {
    let int = bp / 10_000;
    let frac = bp % 10_000;
    if frac == 0 {
        int.to_string()
    } else {
        format!("{int}.{}", format!("{frac:04}").trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hours_exactly() {
        assert_eq!(parse_hours("2.5"), Ok(2_500));
        assert_eq!(parse_hours("0.001"), Ok(1));
        assert_eq!(parse_hours("10"), Ok(10_000));
        assert_eq!(parse_hours("2.5000"), Ok(2_500));
        assert!(matches!(
            parse_hours("0.0001"),
            Err(AmountError::TooManyDecimals { .. })
        ));
        assert!(matches!(
            parse_hours("-1"),
            Err(AmountError::Negative { .. })
        ));
        for bad in [
            "", ".", "1.", ".5", "1e3", "+1", "1,5", "abc", "1.2.3", "- 1",
        ] {
            assert!(parse_hours(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(parse_hours("99999999999999999999999").is_err());
    }

    #[test]
    fn parses_weights_exactly() {
        assert_eq!(parse_weight("1.5"), Ok(15_000));
        assert_eq!(parse_weight("0.0001"), Ok(1));
        assert!(matches!(
            parse_weight("0"),
            Err(AmountError::NotPositive { .. })
        ));
        assert!(matches!(
            parse_weight("-0.5"),
            Err(AmountError::NotPositive { .. })
        ));
        assert!(matches!(
            parse_weight("1.00001"),
            Err(AmountError::TooManyDecimals { .. })
        ));
        assert!(parse_weight("500000").is_err());
    }

    #[test]
    fn weighted_rounds_half_up() {
        assert_eq!(weighted(2_000, 15_000), Ok(3_000));
        assert_eq!(weighted(1, 5_000), Ok(1)); // 0.5 rounds up
        assert_eq!(weighted(1, 4_999), Ok(0));
        assert_eq!(weighted(i64::MAX, u32::MAX), Err(AmountError::Overflow));
    }

    #[test]
    fn formats() {
        assert_eq!(format_mh(-16_000), "-16");
        assert_eq!(format_mh(2_500), "2.5");
        assert_eq!(format_mh(-1), "-0.001");
        assert_eq!(format_mh(i64::MIN), "-9223372036854775.808");
        assert_eq!(format_bp(15_000), "1.5");
        assert_eq!(format_bp(10_000), "1");
        assert_eq!(format_bp(1), "0.0001");
    }
}
