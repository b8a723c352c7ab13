//! Numbers read the way Go's `strconv.ParseFloat(s, 64)` reads them, because
//! Flux's numerical policy is defined by it: decimal and hexadecimal floats,
//! `_` between digits, `Inf`/`Infinity`/`NaN` in any case, and an error (not
//! infinity) when a finite-looking number is out of range.

/// Parses `s` as Go's `strconv.ParseFloat(s, 64)` would, or returns `None`.
pub fn parse_go_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let (neg, body) = match b.first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Some(if neg {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    // Go takes NaN only unsigned.
    if lower == "nan" {
        return (body.len() == s.len()).then_some(f64::NAN);
    }
    let v = if lower.starts_with("0x") {
        parse_hex(&body[2..])?
    } else {
        parse_decimal(body)?
    };
    // A finite literal that rounds to infinity is ErrRange in Go.
    if v.is_infinite() {
        return None;
    }
    Some(if neg { -v } else { v })
}

/// Removes Go's digit-separating underscores, checking they only stand
/// between digits (the base prefix counts as a digit).
fn strip_underscores(s: &str, prefix_counts: bool, is_digit: fn(u8) -> bool) -> Option<String> {
    if !s.contains('_') {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' {
            let before = if i == 0 {
                prefix_counts
            } else {
                is_digit(b[i - 1])
            };
            let after = b.get(i + 1).is_some_and(|&n| is_digit(n));
            if !before || !after {
                return None;
            }
        } else {
            out.push(c as char);
        }
    }
    Some(out)
}

fn parse_decimal(s: &str) -> Option<f64> {
    let s = strip_underscores(s, false, |c| c.is_ascii_digit())?;
    // Rust's float grammar is a superset of Go's decimal one only through
    // inf/nan words, handled above; reject anything but digits . e E + -.
    let (mant, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s.as_str(), None),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let all_digits = |x: &str| x.bytes().all(|c| c.is_ascii_digit());
    if !all_digits(int) || !all_digits(frac) || (int.is_empty() && frac.is_empty()) {
        return None;
    }
    if let Some(e) = exp {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        if e.is_empty() || !all_digits(e) {
            return None;
        }
    }
    s.parse::<f64>().ok()
}

/// Hex floats need a `p` exponent in Go: `0x1.8p1` is 3.
fn parse_hex(s: &str) -> Option<f64> {
    let s = strip_underscores(s, true, |c| c.is_ascii_hexdigit())?;
    let (mant, exp) = s.split_once(['p', 'P'])?;
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|c| c.is_ascii_hexdigit())
        || !frac.bytes().all(|c| c.is_ascii_hexdigit())
    {
        return None;
    }
    let (eneg, edigits) = match exp.as_bytes().first() {
        Some(b'-') => (true, &exp[1..]),
        Some(b'+') => (false, &exp[1..]),
        _ => (false, exp),
    };
    if edigits.is_empty() || !edigits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    // Exponents past a few thousand all mean overflow or zero.
    let e: i64 = edigits.parse::<i64>().unwrap_or(i64::MAX).min(100_000);
    let e = if eneg { -e } else { e };
    let mut value = 0f64;
    for c in int.bytes().chain(frac.bytes()) {
        value = value * 16.0 + f64::from(hex_val(c));
    }
    let shift = e - 4 * i64::try_from(frac.len()).ok()?;
    Some(value * 2f64.powi(i32::try_from(shift.clamp(-2000, 2000)).ok()?))
}

fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_go_float;

    #[test]
    fn go_parse_float_table() {
        let ok: &[(&str, f64)] = &[
            ("0", 0.0),
            ("1619063680", 1619063680.0),
            ("-12", -12.0),
            ("+3.5", 3.5),
            ("1.", 1.0),
            (".5", 0.5),
            ("1e3", 1000.0),
            ("1E-2", 0.01),
            ("1_000", 1000.0),
            ("0x1p4", 16.0),
            ("0x1.8p1", 3.0),
            ("0X_1p0", 1.0),
            ("inf", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
            ("+INF", f64::INFINITY),
            ("007", 7.0),
            ("1e-400", 0.0),
        ];
        for (s, want) in ok {
            assert_eq!(parse_go_float(s), Some(*want), "{s}");
        }
        assert!(parse_go_float("NaN").is_some_and(f64::is_nan));
        assert!(parse_go_float("nan").is_some_and(f64::is_nan));
        let bad = [
            "",
            " 1",
            "1 ",
            "+nan",
            "-NaN",
            "1e",
            "e1",
            ".",
            "1.2.3",
            "1__0",
            "_1",
            "1_",
            "0x1",
            "0x",
            "0xp1",
            "1e400",
            "-1e400",
            "0x1p99999",
            "abc",
            "1,0",
            "infinite",
            "1.0.0",
            "main-abc-1",
            "v1",
            "0b101",
            "١",
        ];
        for s in bad {
            assert_eq!(parse_go_float(s), None, "{s:?}");
        }
    }
}
