//! The parts of Go's `fmt` that templates reach: `print`, `println`,
//! `printf` and sprig's string conversions.

use std::fmt::Write as _;

use crate::value::{MemberKind, Value, format_float_g, format_v};

/// `fmt.Sprint`: spaces between operands when neither side is a string.
pub(crate) fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Value::Str(_));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        out.push_str(&format_v(a, false));
        prev_string = is_string;
    }
    out
}

/// `fmt.Sprintln`: always spaces, then a newline.
pub(crate) fn sprintln(args: &[Value]) -> String {
    let mut out = args
        .iter()
        .map(|a| format_v(a, false))
        .collect::<Vec<_>>()
        .join(" ");
    out.push('\n');
    out
}

/// sprig's `strval`: strings as they are, Stringers through `String()`,
/// everything else as `%v`.
pub(crate) fn strval(v: &Value) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        _ => format_v(v, false),
    }
}

/// Go's `strconv.Quote`.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        quote_char(&mut out, c, '"');
    }
    out.push('"');
    out
}

fn quote_char(out: &mut String, c: char, quote: char) {
    match c {
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if c.is_control() || c == '\u{a0}' || c == '\u{feff}' => {
            if (c as u32) > 0xffff {
                let _ = write!(out, "\\U{:08x}", c as u32);
            } else {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
        }
        c => out.push(c),
    }
}

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// `fmt.Sprintf` for the verbs a commit message plausibly uses: `v s q d x X
/// o b c t e E f F g G T %`, with flags, width and precision (`*` included).
/// Argument indexes (`%[2]s`) are not supported and print as a bad verb.
pub(crate) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut next = 0usize;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                _ => break,
            }
            chars.next();
        }
        spec.width = read_num(&mut chars, args, &mut next, &mut spec.minus);
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut ignored = false;
            spec.prec = Some(read_num(&mut chars, args, &mut next, &mut ignored).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        next += 1;
        let text = format_one(verb, spec, arg);
        out.push_str(&text);
    }
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), format_v(a, false)))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

fn read_num(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    args: &[Value],
    next: &mut usize,
    minus: &mut bool,
) -> Option<usize> {
    if chars.peek() == Some(&'*') {
        chars.next();
        let n = match args.get(*next) {
            Some(Value::Int(n)) => *n,
            _ => 0,
        };
        *next += 1;
        if n < 0 {
            *minus = true;
        }
        return Some(n.unsigned_abs() as usize);
    }
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        chars.next();
        n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
    }
    n
}

fn bad_verb(verb: char, arg: &Value) -> String {
    match arg {
        Value::Nil | Value::Invalid => format!("%!{verb}(<nil>)"),
        _ => format!("%!{verb}({}={})", arg.type_name(), format_v(arg, false)),
    }
}

fn format_one(verb: char, spec: Spec, arg: &Value) -> String {
    // Containers apply the verb to each element, as fmt does.
    let body = match (verb, arg) {
        ('T', _) => return pad(arg.type_name(), spec),
        ('v', _) => match arg {
            Value::Int(_) | Value::Float(_) => return format_number(verb, spec, arg),
            _ => format_v(arg, spec.plus),
        },
        (_, Value::Struct(s)) if s.stringer.is_some() && matches!(verb, 's' | 'q') => {
            let text = s.stringer.as_deref().unwrap_or_default();
            string_verb(verb, spec, text)
        }
        (_, Value::List(l)) => {
            let parts: Vec<String> = l
                .items
                .iter()
                .map(|i| {
                    format_one(
                        verb,
                        Spec {
                            width: None,
                            ..spec
                        },
                        i,
                    )
                })
                .collect();
            format!("[{}]", parts.join(" "))
        }
        (_, Value::Map(m)) => {
            let inner = Spec {
                width: None,
                ..spec
            };
            let parts: Vec<String> = m
                .entries
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}:{}",
                        format_one(verb, inner, k),
                        format_one(verb, inner, v)
                    )
                })
                .collect();
            format!("map[{}]", parts.join(" "))
        }
        (_, Value::Struct(s)) => {
            let inner = Spec {
                width: None,
                ..spec
            };
            let parts: Vec<String> = s
                .members
                .iter()
                .filter(|m| m.kind != MemberKind::Method)
                .map(|m| format_one(verb, inner, &m.value))
                .collect();
            format!("{{{}}}", parts.join(" "))
        }
        ('s' | 'q' | 'x' | 'X', Value::Str(s)) => string_verb(verb, spec, s),
        (_, Value::Int(_) | Value::Float(_)) => return format_number(verb, spec, arg),
        ('t', Value::Bool(b)) => b.to_string(),
        _ => return bad_verb(verb, arg),
    };
    pad(body, spec)
}

fn string_verb(verb: char, spec: Spec, s: &str) -> String {
    let s: String = match spec.prec {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_string(),
    };
    match verb {
        'q' => go_quote(&s),
        'x' => s.bytes().map(|b| format!("{b:02x}")).collect(),
        'X' => s.bytes().map(|b| format!("{b:02X}")).collect(),
        _ => s,
    }
}

fn format_number(verb: char, spec: Spec, arg: &Value) -> String {
    let (neg, digits) = match (verb, arg) {
        ('v' | 'd', Value::Int(n)) => (*n < 0, n.unsigned_abs().to_string()),
        ('x', Value::Int(n)) => (*n < 0, format!("{:x}", n.unsigned_abs())),
        ('X', Value::Int(n)) => (*n < 0, format!("{:X}", n.unsigned_abs())),
        ('o', Value::Int(n)) => (*n < 0, format!("{:o}", n.unsigned_abs())),
        ('b', Value::Int(n)) => (*n < 0, format!("{:b}", n.unsigned_abs())),
        ('c', Value::Int(n)) => {
            let c = u32::try_from(*n)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{fffd}');
            return pad(c.to_string(), spec);
        }
        ('q', Value::Int(n)) => {
            let c = u32::try_from(*n)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{fffd}');
            let mut q = String::from("'");
            quote_char(&mut q, c, '\'');
            q.push('\'');
            return pad(q, spec);
        }
        ('v' | 'g' | 'G', Value::Float(f)) => {
            let s = format_float_g(f.abs(), spec.prec);
            (
                f.is_sign_negative(),
                if verb == 'G' { s.to_uppercase() } else { s },
            )
        }
        ('f' | 'F', Value::Float(f)) => (
            f.is_sign_negative(),
            format!("{:.*}", spec.prec.unwrap_or(6), f.abs()),
        ),
        ('e' | 'E', Value::Float(f)) => {
            let s = go_exp(f.abs(), spec.prec.unwrap_or(6));
            (
                f.is_sign_negative(),
                if verb == 'E' { s.to_uppercase() } else { s },
            )
        }
        _ => return bad_verb(verb, arg),
    };
    let sign = if neg {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    let prefix = match (spec.sharp, verb) {
        (true, 'x') => "0x",
        (true, 'X') => "0X",
        (true, 'o') => "0",
        _ => "",
    };
    let body = format!("{prefix}{digits}");
    if let (true, Some(w)) = (spec.zero && !spec.minus, spec.width) {
        let len = sign.len() + body.chars().count();
        if len < w {
            return format!("{sign}{}{body}", "0".repeat(w - len));
        }
    }
    pad(format!("{sign}{body}"), spec)
}

/// `%e`: Go always prints at least two exponent digits.
fn go_exp(f: f64, prec: usize) -> String {
    let s = format!("{f:.prec$e}");
    match s.split_once('e') {
        Some((m, e)) => {
            let n: i32 = e.parse().unwrap_or(0);
            format!("{m}e{}{:02}", if n < 0 { '-' } else { '+' }, n.abs())
        }
        None => s,
    }
}

fn pad(s: String, spec: Spec) -> String {
    let Some(w) = spec.width else { return s };
    let len = s.chars().count();
    if len >= w {
        return s;
    }
    let fill = " ".repeat(w - len);
    if spec.minus {
        format!("{s}{fill}")
    } else {
        format!("{fill}{s}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::str(v)
    }

    #[test]
    fn printf_matches_go() {
        let cases: Vec<(&str, Vec<Value>, &str)> = vec![
            ("%s-%s", vec![s("a"), s("b")], "a-b"),
            ("%d items", vec![Value::Int(3)], "3 items"),
            (
                "%5d|%-5d|%05d",
                vec![Value::Int(42), Value::Int(42), Value::Int(-42)],
                "   42|42   |-0042",
            ),
            ("%q", vec![s("a\"b\n")], "\"a\\\"b\\n\""),
            ("%x %X", vec![Value::Int(255), s("hi")], "ff 6869"),
            (
                "%.2f %e %g",
                vec![
                    Value::Float(2.5051),
                    Value::Float(1234.5),
                    Value::Float(0.5),
                ],
                "2.51 1.234500e+03 0.5",
            ),
            ("%t", vec![Value::Bool(true)], "true"),
            ("%T %T", vec![s("x"), Value::Int(1)], "string int"),
            ("%d", vec![s("x")], "%!d(string=x)"),
            ("%s", vec![Value::Int(5)], "%!s(int=5)"),
            ("%s %s", vec![s("a")], "a %!s(MISSING)"),
            ("%s", vec![s("a"), Value::Int(1)], "a%!(EXTRA int=1)"),
            ("100%%", vec![], "100%"),
            ("%.3s|%6.2s|", vec![s("abcdef"), s("abcdef")], "abc|    ab|"),
            ("%v", vec![Value::Nil], "<nil>"),
            ("%s", vec![Value::Nil], "%!s(<nil>)"),
            ("%c%c", vec![Value::Int(72), Value::Int(105)], "Hi"),
            ("%*d", vec![Value::Int(4), Value::Int(7)], "   7"),
            ("%+d % d", vec![Value::Int(5), Value::Int(5)], "+5  5"),
            ("%", vec![], "%!(NOVERB)"),
        ];
        for (f, args, want) in cases {
            assert_eq!(sprintf(f, &args), want, "format {f:?}");
        }
    }

    #[test]
    fn sprint_spaces_only_between_non_strings() {
        assert_eq!(sprint(&[s("a"), s("b")]), "ab");
        assert_eq!(sprint(&[Value::Int(1), Value::Int(2)]), "1 2");
        assert_eq!(sprint(&[s("a"), Value::Int(1), s("b")]), "a1b");
        assert_eq!(sprintln(&[s("a"), Value::Int(1)]), "a 1\n");
    }

    #[test]
    fn quote_escapes_like_strconv() {
        assert_eq!(go_quote("tab\there"), "\"tab\\there\"");
        assert_eq!(go_quote("\u{1b}[0m"), "\"\\x1b[0m\"");
        assert_eq!(go_quote("héllo"), "\"héllo\"");
        assert_eq!(go_quote("back\\slash"), "\"back\\\\slash\"");
    }
}
