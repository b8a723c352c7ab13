//! Single-line flow scalars: where their bytes end, what they decode to, and
//! how a new value is written in the same style.

/// The styles a marked value can be rewritten in. Block scalars (`|`, `>`)
/// are never rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
}

/// The end (exclusive) of the scalar starting at byte `start`. Quoted
/// scalars may span lines here (so callers can tell where they end); plain
/// ones stop at the end of the line and drop trailing blanks.
pub(crate) fn span_end(s: &str, start: usize, style: Style, flow: bool) -> Option<usize> {
    let b = s.as_bytes();
    match style {
        Style::SingleQuoted => {
            if b.get(start) != Some(&b'\'') {
                return None;
            }
            let mut i = start + 1;
            loop {
                let q = i + memchr::memchr(b'\'', b.get(i..)?)?;
                if b.get(q + 1) == Some(&b'\'') {
                    i = q + 2;
                } else {
                    return Some(q + 1);
                }
            }
        }
        Style::DoubleQuoted => {
            if b.get(start) != Some(&b'"') {
                return None;
            }
            let mut i = start + 1;
            loop {
                let q = i + memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
                if b[q] == b'\\' {
                    i = q + 2;
                } else {
                    return Some(q + 1);
                }
            }
        }
        Style::Plain => {
            let mut i = start;
            while i < b.len() {
                let c = b[i];
                let next = b.get(i + 1).copied();
                let ends = match c {
                    b'\n' | b'\r' => true,
                    b' ' | b'\t' => next == Some(b'#'),
                    b':' => match next {
                        None | Some(b' ' | b'\t' | b'\n' | b'\r') => true,
                        Some(n) => flow && is_flow_indicator(n),
                    },
                    _ => flow && is_flow_indicator(c),
                };
                if ends {
                    break;
                }
                i += 1;
            }
            while i > start && matches!(b[i - 1], b' ' | b'\t') {
                i -= 1;
            }
            Some(i)
        }
    }
}

fn is_flow_indicator(c: u8) -> bool {
    matches!(c, b',' | b'[' | b']' | b'{' | b'}')
}

/// The value of a single-line scalar's source text, or `None` when the text
/// spans lines or is not a scalar of that style.
pub(crate) fn decode(raw: &str, style: Style) -> Option<String> {
    if raw.contains(['\n', '\r']) {
        return None;
    }
    match style {
        Style::Plain => Some(raw.to_string()),
        Style::SingleQuoted => {
            let inner = raw.strip_prefix('\'')?.strip_suffix('\'')?;
            Some(inner.replace("''", "'"))
        }
        Style::DoubleQuoted => unescape(raw.strip_prefix('"')?.strip_suffix('"')?),
    }
}

fn unescape(inner: &str) -> Option<String> {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next()?;
        let hex = |n: usize, chars: &mut std::str::Chars<'_>| -> Option<char> {
            let digits: String = chars.by_ref().take(n).collect();
            if digits.len() != n {
                return None;
            }
            char::from_u32(u32::from_str_radix(&digits, 16).ok()?)
        };
        out.push(match e {
            'x' => hex(2, &mut chars)?,
            'u' => hex(4, &mut chars)?,
            'U' => hex(8, &mut chars)?,
            _ => simple_escape(e)?,
        });
    }
    Some(out)
}

/// `value` written as a scalar of `style` (the old value's), or double-quoted
/// when that style cannot hold it: a plain value that would not read back as
/// the same string (`1606364286`, `1.10`, `on`, `null`, `a: b`), a
/// single-quoted value with characters only escapes can carry.
pub fn render(value: &str, style: Style, flow: bool) -> String {
    match style {
        Style::Plain if plain_safe(value, flow) && reads_as_string(value) => value.to_string(),
        Style::SingleQuoted if value.chars().all(single_quotable) => {
            format!("'{}'", value.replace('\'', "''"))
        }
        _ => double_quote(value),
    }
}

/// YAML's printable set, minus the byte-order mark and every character a
/// YAML reader of any version breaks lines at: YAML 1.1 readers (go-yaml,
/// libyaml, kustomize) also break at U+0085, U+2028 and U+2029, which YAML
/// 1.2 counts as printable text. Written raw, such a value would become new
/// lines of YAML for them.
fn single_quotable(c: char) -> bool {
    matches!(c, '\t' | '\u{20}'..='\u{7e}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
        && !matches!(c, '\u{feff}' | '\u{2028}' | '\u{2029}')
}

fn double_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if single_quotable(c) => out.push(c),
            c if (c as u32) <= 0xff => out.push_str(&format!("\\x{:02X}", c as u32)),
            c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Whether `s` can stand as a plain scalar where the old one stood: no
/// indicator up front, nothing that starts a comment, mapping value or (in
/// flow context) ends the node, no document marker, one line of printable
/// text.
fn plain_safe(s: &str, flow: bool) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let second = s[first.len_utf8()..].chars().next();
    let indicator_ok = match first {
        '-' => {
            second.is_some_and(|c| !(matches!(c, ' ' | '\t') || flow && is_flow_indicator_char(c)))
        }
        // In a flow collection libyaml and go-yaml always take a leading
        // `?` or `:` as an indicator (`[a, :0]` holds a mapping).
        '?' | ':' => !flow && second.is_some_and(|c| !matches!(c, ' ' | '\t')),
        ',' | '[' | ']' | '{' | '}' | '#' | '&' | '*' | '!' | '|' | '>' | '\'' | '"' | '%'
        | '@' | '`' => false,
        _ => true,
    };
    indicator_ok
        && !s.starts_with("---")
        && !s.starts_with("...")
        && !s.starts_with([' ', '\t'])
        && !s.ends_with([' ', '\t', ':'])
        && !s.contains(": ")
        && !s.contains(":\t")
        && !s.contains(" #")
        && !s.contains("\t#")
        && s.chars().all(|c| single_quotable(c) && c != '\t')
        && !(flow && (s.contains(is_flow_indicator_char)))
}

fn is_flow_indicator_char(c: char) -> bool {
    matches!(c, ',' | '[' | ']' | '{' | '}')
}

/// Whether a plain scalar `s` reads back as a string, under YAML 1.1 (what
/// Kubernetes' decoders follow) and 1.2 alike: not null, a boolean, a
/// number, a timestamp, or the merge/value keys.
pub fn reads_as_string(s: &str) -> bool {
    const NON_STRINGS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        "<<", "=",
    ];
    !(NON_STRINGS.contains(&s) || is_number(s) || is_timestamp(s))
}

fn is_number(s: &str) -> bool {
    let t = s.strip_prefix(['+', '-']).unwrap_or(s);
    if matches!(t, ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    // YAML 1.1 ignores `_` in numbers.
    let t: String = t.chars().filter(|&c| c != '_').collect();
    let all = |s: &str, f: fn(char) -> bool| !s.is_empty() && s.chars().all(f);
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return all(h, |c| c.is_ascii_hexdigit());
    }
    if let Some(o) = t.strip_prefix("0o").or_else(|| t.strip_prefix("0O")) {
        return all(o, |c| c.is_ascii_digit());
    }
    if let Some(b) = t.strip_prefix("0b").or_else(|| t.strip_prefix("0B")) {
        return all(b, |c| c == '0' || c == '1');
    }
    // Sexagesimal (1.1): 190:20:30, 1:30.5
    if t.contains(':') {
        let (int, frac) = t.split_once('.').unwrap_or((&t, ""));
        return int.split(':').all(|p| all(p, |c| c.is_ascii_digit()))
            && frac.chars().all(|c| c.is_ascii_digit());
    }
    // Decimal integers and floats: 1, 017, 1.10, .5, 1., 1e3, 1.5E-3
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t.as_str(), None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = match frac {
        None => all(int, |c| c.is_ascii_digit()),
        Some(f) => digits(int) && digits(f) && !(int.is_empty() && f.is_empty()),
    };
    let exp_ok = exp.is_none_or(|e| {
        all(e.strip_prefix(['+', '-']).unwrap_or(e), |c| {
            c.is_ascii_digit()
        })
    });
    mantissa_ok && exp_ok
}

/// `YYYY-M-D`, alone or followed by a time.
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if !(digits(0..4) && b.get(4) == Some(&b'-')) {
        return false;
    }
    let mut i = 5;
    for part in 0..2 {
        let n = b[i.min(b.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if !(1..=2).contains(&n) {
            return false;
        }
        i += n;
        if part == 0 {
            if b.get(i) != Some(&b'-') {
                return false;
            }
            i += 1;
        }
    }
    matches!(b.get(i), None | Some(b'T' | b't' | b' ' | b'\t'))
}

/// What a one-character escape (`\\n`, `\\L`, …) in a double-quoted scalar
/// stands for, as YAML 1.2 and go-yaml read it.
pub(crate) fn simple_escape(e: char) -> Option<char> {
    Some(match e {
        '0' => '\0',
        'a' => '\u{7}',
        'b' => '\u{8}',
        't' | '\t' => '\t',
        'n' => '\n',
        'v' => '\u{b}',
        'f' => '\u{c}',
        'r' => '\r',
        'e' => '\u{1b}',
        ' ' => ' ',
        '"' => '"',
        '/' => '/',
        '\\' => '\\',
        'N' => '\u{85}',
        '_' => '\u{a0}',
        'L' => '\u{2028}',
        'P' => '\u{2029}',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_would_not_read_back_as_strings() {
        for s in [
            "1606364286",
            "1.10",
            "on",
            "Off",
            "null",
            "~",
            "",
            "yes",
            "y",
            "0x1F",
            "0o17",
            "017",
            "1_000",
            "+1",
            "-1.5",
            ".5",
            "1.",
            "1e3",
            "1.5E-3",
            ".inf",
            "-.Inf",
            ".NaN",
            "190:20:30",
            "2024-01-05",
            "2001-12-14t21:59:43.10-05:00",
            "2001-1-2 10:00",
            "<<",
            "=",
        ] {
            assert!(!reads_as_string(s), "{s:?} should need quotes");
        }
        for s in [
            "5.0.0",
            "v1.10",
            "1.2.3-rc.1",
            "latest",
            "main-abc123-1606364286",
            "sha256:abc",
            "ghcr.io/stefanprodan/podinfo",
            "1e",
            "0x",
            "e3",
            ".",
            "1..2",
            "2024-01",
            "on-call",
            "2024-01-05x",
            "dev-abc1234-12345678",
            "+",
            "-",
        ] {
            assert!(reads_as_string(s), "{s:?} reads as a string");
        }
    }

    #[test]
    fn rendering_keeps_style_or_quotes() {
        let table = [
            ("5.0.3", Style::Plain, false, "5.0.3"),
            ("1606364286", Style::Plain, false, "\"1606364286\""),
            ("on", Style::Plain, false, "\"on\""),
            ("a: b", Style::Plain, false, "\"a: b\""),
            ("x #y", Style::Plain, false, "\"x #y\""),
            ("- x", Style::Plain, false, "\"- x\""),
            ("-x", Style::Plain, false, "-x"),
            ("---x", Style::Plain, false, "\"---x\""),
            ("a,b", Style::Plain, false, "a,b"),
            ("a,b", Style::Plain, true, "\"a,b\""),
            (":0", Style::Plain, false, ":0"),
            (" $", Style::Plain, false, "\" $\""),
            (":0", Style::Plain, true, "\":0\""),
            ("?x", Style::Plain, true, "\"?x\""),
            ("it's", Style::SingleQuoted, false, "'it''s'"),
            ("1606364286", Style::SingleQuoted, false, "'1606364286'"),
            ("tab\tx", Style::SingleQuoted, false, "'tab\tx'"),
            ("nl\nx", Style::SingleQuoted, false, "\"nl\\nx\""),
            ("q\"b\\", Style::DoubleQuoted, false, "\"q\\\"b\\\\\""),
            (
                "\u{1}\u{85}\u{feff}",
                Style::DoubleQuoted,
                false,
                "\"\\x01\\N\\uFEFF\"",
            ), // Line breaks to YAML 1.1 readers (go-yaml, libyaml) and
            // non-printables force double quotes with escapes, whatever the
            // old style: single quotes cannot escape.
            (
                "1.0\u{2028}- name: evil",
                Style::Plain,
                false,
                "\"1.0\\L- name: evil\"",
            ),
            (
                "1.0\u{2028}- name: evil",
                Style::SingleQuoted,
                false,
                "\"1.0\\L- name: evil\"",
            ),
            ("a\u{2029}b", Style::Plain, true, "\"a\\Pb\""),
            ("a\u{85}b", Style::SingleQuoted, false, "\"a\\Nb\""),
            ("a\nb\rc", Style::Plain, false, "\"a\\nb\\rc\""),
            ("del\u{7f}", Style::Plain, false, "\"del\\x7F\""),
            ("csi\u{9b}", Style::SingleQuoted, false, "\"csi\\x9B\""),
            ("esc\u{1b}[2J", Style::Plain, false, "\"esc\\x1B[2J\""),
            ("\u{feff}bom", Style::Plain, false, "\"\\uFEFFbom\""),
            ("nul\u{0}", Style::DoubleQuoted, false, "\"nul\\x00\""),
        ];
        for (value, style, flow, want) in table {
            assert_eq!(render(value, style, flow), want, "{value:?} {style:?}");
        }
    }

    #[test]
    fn rendered_text_decodes_to_the_value() {
        for v in [
            "it's",
            "q\"b\\",
            "\u{1}é\u{85}\u{2028}x\u{10ffff}",
            "a\tb",
            "x\u{80}",
        ] {
            for style in [Style::Plain, Style::SingleQuoted, Style::DoubleQuoted] {
                let r = render(v, style, false);
                let style = match r.chars().next() {
                    Some('"') => Style::DoubleQuoted,
                    Some('\'') => Style::SingleQuoted,
                    _ => Style::Plain,
                };
                assert_eq!(decode(&r, style).as_deref(), Some(v), "{r}");
            }
        }
    }

    #[test]
    fn spans_end_where_the_scalar_ends() {
        let cases = [
            ("image: a:1 # c", 7, Style::Plain, false, "a:1"),
            ("image: a:1   \r\n", 7, Style::Plain, false, "a:1"),
            ("k: a#b c", 3, Style::Plain, false, "a#b c"),
            ("[a:1, b]", 1, Style::Plain, true, "a:1"),
            ("{k: v}", 4, Style::Plain, true, "v"),
            ("k: 'it''s' # c", 3, Style::SingleQuoted, false, "'it''s'"),
            (
                "k: \"a\\\"b\" # c",
                3,
                Style::DoubleQuoted,
                false,
                "\"a\\\"b\"",
            ),
            ("k: \"a\n  b\"", 3, Style::DoubleQuoted, false, "\"a\n  b\""),
        ];
        for (src, start, style, flow, want) in cases {
            let end = span_end(src, start, style, flow).expect(src);
            assert_eq!(&src[start..end], want, "{src:?}");
        }
        assert_eq!(span_end("k: 'open", 3, Style::SingleQuoted, false), None);
        assert_eq!(
            span_end("k: \"open\\\"", 3, Style::DoubleQuoted, false),
            None
        );
    }
}
