//! Reading a rewritten scalar back the way go-yaml does (a port of libyaml,
//! what Flux, kustomize and Kubernetes' decoders read manifests with). Kept
//! apart from the writer in `scalar.rs` and written from the reader's rules,
//! so a quoting mistake there cannot pass this check by sharing it.

/// Whether `raw`, written where a single-line flow scalar stood (`flow`: in
/// a `[...]`/`{...}` collection), reads back as exactly one string equal to
/// `want`; if not, why, in words for the user.
pub(crate) fn check(raw: &str, flow: bool, want: &str) -> Result<(), String> {
    for c in raw.chars() {
        if is_break(c) {
            return Err(format!(
                "{want:?} would be written with {} unescaped, a line break to YAML 1.1 readers (go-yaml, libyaml, kustomize)",
                code(c)
            ));
        }
        if !printable(c) {
            return Err(format!(
                "{want:?} would be written with the non-printable character {} unescaped",
                code(c)
            ));
        }
    }
    let got = match raw.chars().next() {
        Some('"') => double_quoted(raw),
        Some('\'') => single_quoted(raw),
        _ => plain(raw, flow),
    }
    // `raw` is printable and on one line by now: safe to show as is.
    .map_err(|why| format!("{want:?} would be written as `{raw}`, which {why}"))?;
    if got != want {
        return Err(format!(
            "{want:?} would be written as `{raw}`, which reads back as {got:?}"
        ));
    }
    Ok(())
}

/// Line breaks to libyaml and go-yaml (YAML 1.1); YAML 1.2 keeps only LF, CR.
fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// What go-yaml's reader lets through; it refuses the rest. The byte-order
/// mark is refused here too: mid-stream, readers disagree about it.
fn printable(c: char) -> bool {
    matches!(c as u32, 0x09 | 0x20..=0x7e | 0xa0..=0xd7ff | 0xe000..=0xfffd | 0x10000..=0x10ffff)
        && c != '\u{feff}'
}

fn code(c: char) -> String {
    format!("U+{:04X}", c as u32)
}

fn double_quoted(raw: &str) -> Result<String, &'static str> {
    let mut out = String::new();
    let mut chars = raw.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' if i + 1 == raw.len() => return Ok(out),
            '"' => return Err("ends before its last character"),
            '\\' => {
                let Some((_, e)) = chars.next() else {
                    return Err("ends inside an escape");
                };
                let hex = |n: usize, chars: &mut dyn Iterator<Item = (usize, char)>| {
                    let digits: String = chars.take(n).map(|(_, c)| c).collect();
                    u32::from_str_radix(&digits, 16)
                        .ok()
                        .filter(|_| digits.len() == n)
                        .and_then(char::from_u32)
                        .ok_or("has an invalid escape")
                };
                out.push(match e {
                    'x' => hex(2, &mut chars)?,
                    'u' => hex(4, &mut chars)?,
                    'U' => hex(8, &mut chars)?,
                    _ => crate::scalar::simple_escape(e)
                        .ok_or("has an escape go-yaml does not know")?,
                });
            }
            c => out.push(c),
        }
    }
    Err("is not closed")
}

fn single_quoted(raw: &str) -> Result<String, &'static str> {
    let inner = &raw[1..];
    let mut out = String::new();
    let mut rest = inner;
    while let Some(q) = rest.find('\'') {
        out.push_str(&rest[..q]);
        if rest[q + 1..].starts_with('\'') {
            out.push('\'');
            rest = &rest[q + 2..];
        } else if q + 1 == rest.len() {
            return Ok(out);
        } else {
            return Err("ends before its last character");
        }
    }
    Err("is not closed")
}

/// A plain scalar as libyaml scans it (`yaml_parser_scan_plain_scalar`),
/// then resolved as go-yaml resolves an untagged plain scalar.
fn plain(raw: &str, flow: bool) -> Result<String, &'static str> {
    let b = raw.as_bytes();
    let blank_or_end = |i: usize| matches!(b.get(i), None | Some(b' ' | b'\t'));
    let Some(&first) = b.first() else {
        return Err("reads as null");
    };
    if b"-?:,[]{}#&*!|>'\"%@`".contains(&first) {
        let starts_plain = match first {
            b'-' => !blank_or_end(1),
            b'?' | b':' => !flow && !blank_or_end(1),
            _ => false,
        };
        if !starts_plain {
            return Err("starts with an indicator");
        }
    }
    if matches!(first, b' ' | b'\t') {
        return Err("starts with a blank, which readers drop");
    }
    if (raw.starts_with("---") || raw.starts_with("...")) && blank_or_end(3) {
        return Err("is a document marker");
    }
    let flow_indicator = |c: Option<&u8>| matches!(c, Some(b',' | b'[' | b']' | b'{' | b'}'));
    let mut i = 0;
    let mut end = 0;
    while i < b.len() {
        if matches!(b[i], b' ' | b'\t') {
            i += 1;
            if b.get(i) == Some(&b'#') {
                break;
            }
            continue;
        }
        // One word: up to a blank, `: `, or (in flow) an indicator.
        while i < b.len() && !matches!(b[i], b' ' | b'\t') {
            let next = b.get(i + 1);
            if b[i] == b':' && (blank_or_end(i + 1) || flow && flow_indicator(next)) {
                break;
            }
            if flow && flow_indicator(Some(&b[i])) {
                break;
            }
            i += 1;
        }
        end = i;
        if i < b.len() && !matches!(b[i], b' ' | b'\t') {
            break;
        }
    }
    if end != b.len() {
        return Err("would end early as a plain scalar");
    }
    if let Some(kind) = non_string(raw) {
        return Err(kind);
    }
    Ok(raw.to_string())
}

/// What go-yaml (v2, YAML 1.1 as Kubernetes' sigs.k8s.io/yaml uses it, and
/// v3) makes of an untagged plain scalar when it is not a string.
fn non_string(s: &str) -> Option<&'static str> {
    match s {
        "~" | "null" | "Null" | "NULL" => return Some("reads as null"),
        "y" | "Y" | "yes" | "Yes" | "YES" | "n" | "N" | "no" | "No" | "NO" | "on" | "On" | "ON"
        | "off" | "Off" | "OFF" | "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => {
            return Some("reads as a boolean");
        }
        "<<" => return Some("is the merge key"),
        _ => {}
    }
    // go-yaml tries numbers only for these first characters.
    if !s.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.')) {
        return None;
    }
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    if matches!(
        unsigned,
        ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN"
    ) {
        return Some("reads as a number");
    }
    // go-yaml drops `_` before parsing numbers.
    let n: String = unsigned.chars().filter(|&c| c != '_').collect();
    let signed: String = s.chars().filter(|&c| c != '_').collect();
    if go_int(&n) || yaml_float(&signed) || yaml_float(s) {
        return Some("reads as a number");
    }
    if timestamp(s) {
        return Some("reads as a timestamp");
    }
    None
}

/// Go's `strconv.ParseInt(s, 0, _)` digits (overflow aside: too-long digit
/// runs still read as floats).
fn go_int(n: &str) -> bool {
    let all = |s: &str, radix: u32| !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
    let lower = n.to_ascii_lowercase();
    if let Some(h) = lower.strip_prefix("0x") {
        all(h, 16)
    } else if let Some(o) = lower.strip_prefix("0o") {
        all(o, 8)
    } else if let Some(bin) = lower.strip_prefix("0b") {
        all(bin, 2)
    } else {
        all(n, 10)
    }
}

/// go-yaml's float pattern: `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
fn yaml_float(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        None => !mantissa.is_empty() && digits(mantissa),
        Some(("", frac)) => !frac.is_empty() && digits(frac),
        Some((int, frac)) => digits(int) && digits(frac),
    };
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exp_ok
}

/// go-yaml tries `2006-1-2`, alone or followed by a time; counted as a
/// timestamp whenever the date part is there.
fn timestamp(s: &str) -> bool {
    let mut parts = s.splitn(3, '-');
    let (Some(y), Some(m), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let d_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    let digits = |p: &str| p.bytes().all(|c| c.is_ascii_digit());
    y.len() == 4
        && digits(y)
        && (1..=2).contains(&m.len())
        && digits(m)
        && (1..=2).contains(&d_len)
        && matches!(
            rest.as_bytes().get(d_len),
            None | Some(b'T' | b't' | b' ' | b'\t')
        )
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn what_reads_back_and_what_does_not() {
        let ok: &[(&str, bool, &str)] = &[
            ("5.0.3", false, "5.0.3"),
            ("ghcr.io/a/b:1.0", false, "ghcr.io/a/b:1.0"),
            ("-x", true, "-x"),
            ("a#b", false, "a#b"),
            ("a b", false, "a b"),
            ("\"1.0\\L- name: evil\"", false, "1.0\u{2028}- name: evil"),
            (
                "\"\\x01\\N\\P\\uFEFF\\U0010FFFF\"",
                false,
                "\u{1}\u{85}\u{2029}\u{feff}\u{10ffff}",
            ),
            ("'it''s'", false, "it's"),
            ("_+0", false, "_+0"),
            ("++0", false, "++0"),
            ("\"\"", false, ""),
        ];
        for (raw, flow, want) in ok {
            assert_eq!(check(raw, *flow, want), Ok(()), "{raw:?}");
        }
        let bad: &[(&str, bool, &str, &str)] = &[
            (
                "1.0\u{2028}- name: evil",
                false,
                "1.0\u{2028}- name: evil",
                "\"1.0\\u{2028}- name: evil\" would be written with U+2028 unescaped, a line break to YAML 1.1 readers (go-yaml, libyaml, kustomize)",
            ),
            (
                "'a\u{85}b'",
                false,
                "a\u{85}b",
                "\"a\\u{85}b\" would be written with U+0085 unescaped, a line break to YAML 1.1 readers (go-yaml, libyaml, kustomize)",
            ),
            (
                "a\u{1b}b",
                false,
                "a\u{1b}b",
                "\"a\\u{1b}b\" would be written with the non-printable character U+001B unescaped",
            ),
            (
                "1.10",
                false,
                "1.10",
                "\"1.10\" would be written as `1.10`, which reads as a number",
            ),
            (
                "on",
                false,
                "on",
                "\"on\" would be written as `on`, which reads as a boolean",
            ),
            (
                "2024-01-05",
                false,
                "2024-01-05",
                "\"2024-01-05\" would be written as `2024-01-05`, which reads as a timestamp",
            ),
            (
                "a: b",
                false,
                "a: b",
                "\"a: b\" would be written as `a: b`, which would end early as a plain scalar",
            ),
            (
                "x #y",
                false,
                "x #y",
                "\"x #y\" would be written as `x #y`, which would end early as a plain scalar",
            ),
            (
                "a,b",
                true,
                "a,b",
                "\"a,b\" would be written as `a,b`, which would end early as a plain scalar",
            ),
            (
                "- x",
                false,
                "- x",
                "\"- x\" would be written as `- x`, which starts with an indicator",
            ),
            (
                " $",
                false,
                " $",
                "\" $\" would be written as ` $`, which starts with a blank, which readers drop",
            ),
            (
                "",
                false,
                "",
                "\"\" would be written as ``, which reads as null",
            ),
            (
                "\"a\\qb\"",
                false,
                "aqb",
                "\"aqb\" would be written as `\"a\\qb\"`, which has an escape go-yaml does not know",
            ),
            (
                "'x'",
                false,
                "y",
                "\"y\" would be written as `'x'`, which reads back as \"x\"",
            ),
        ];
        for (raw, flow, want, why) in bad {
            assert_eq!(check(raw, *flow, want), Err(why.to_string()), "{raw:?}");
        }
    }
}
