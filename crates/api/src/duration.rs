//! Go `time.Duration` text: what `interval: 1m` means, and how Flux prints it
//! back (`1m0s`).

use std::time::Duration;

/// Parses Go's duration syntax: `300ms`, `1.5h`, `1h30m`, `0`. Negative
/// durations are refused: no interval or timeout can be negative.
pub fn parse(s: &str) -> Option<Duration> {
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * nanos;
    }
    if !total.is_finite() || total > 9.2e18 {
        return None;
    }
    Some(Duration::from_nanos(total.round() as u64))
}

/// Formats as Go's `Duration.String()`: `1m0s`, `1h0m0s`, `1.5s`, `300ms`.
pub fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        let (unit, div) = if nanos < 1_000 {
            ("ns", 1u128)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", fraction(nanos, div));
    }
    let secs = nanos / 1_000_000_000;
    let sub = nanos % 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let sec = if sub == 0 {
        s.to_string()
    } else {
        fraction(s * 1_000_000_000 + sub, 1_000_000_000)
    };
    match (h, m) {
        (0, 0) => format!("{sec}s"),
        (0, m) => format!("{m}m{sec}s"),
        (h, m) => format!("{h}h{m}m{sec}s"),
    }
}

fn fraction(value: u128, div: u128) -> String {
    let whole = value / div;
    let rem = value % div;
    if rem == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{rem:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format_like_go() {
        let table = [
            ("1m", "1m0s"),
            ("1m0s", "1m0s"),
            ("5m", "5m0s"),
            ("1h", "1h0m0s"),
            ("1h30m", "1h30m0s"),
            ("90s", "1m30s"),
            ("30s", "30s"),
            ("1.5s", "1.5s"),
            ("300ms", "300ms"),
            ("0", "0s"),
            ("2h45m10.5s", "2h45m10.5s"),
        ];
        for (input, printed) in table {
            let d = parse(input).unwrap_or_else(|| panic!("{input}"));
            assert_eq!(format(d), printed, "{input}");
        }
        for bad in ["", "1", "m", "1x", "-1m", "1..5s", "1m 30s", "one minute"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
