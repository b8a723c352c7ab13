//! Go `regexp` patterns compiled with Rust's `regex`, with Go's meaning.
//!
//! The two syntaxes are close but not equal. Where Go means something Rust
//! spells differently we rewrite it (`\d` is ASCII in Go, `\Q…\E`, octal
//! escapes, a literal `[` or `&&` inside a class, a lone `{`); where a pattern
//! would mean something else or nothing in Go we refuse it with the reason.
//! Capture groups are never added or removed, so `$1` keeps its meaning.

use regex::{Regex, RegexBuilder};
use std::collections::HashMap;

/// A pattern Go's `regexp.Compile` would not accept, or one that would match
/// differently here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid regular expression pattern '{pattern}': {reason}")]
pub struct PatternError {
    pub pattern: String,
    pub reason: String,
}

/// Compiled patterns, shared by every reconcile: an exclusion list or a
/// `filterTags` pattern is compiled once per process, not once per scan.
/// Cleared when full, so hostile manifests cannot grow it without bound.
static COMPILED: std::sync::Mutex<Option<HashMap<String, Result<Regex, PatternError>>>> =
    std::sync::Mutex::new(None);
const COMPILED_MAX: usize = 4096;

/// Compiles a Go regular expression (memoised; a `Regex` clone is cheap).
pub fn compile(pattern: &str) -> Result<Regex, PatternError> {
    let mut memo = COMPILED.lock().unwrap_or_else(|p| p.into_inner());
    let memo = memo.get_or_insert_with(HashMap::new);
    if let Some(r) = memo.get(pattern) {
        return r.clone();
    }
    if memo.len() >= COMPILED_MAX {
        memo.clear();
    }
    let r = compile_uncached(pattern);
    memo.insert(pattern.to_string(), r.clone());
    r
}

fn compile_uncached(pattern: &str) -> Result<Regex, PatternError> {
    let fail = |reason: String| PatternError {
        pattern: pattern.to_string(),
        reason,
    };
    let translated = translate(pattern).map_err(fail)?;
    RegexBuilder::new(&translated)
        .build()
        .map_err(|e| fail(rust_error_reason(&e)))
}

fn rust_error_reason(e: &regex::Error) -> String {
    match e {
        // The last line of regex-syntax's report names the problem.
        regex::Error::Syntax(s) => s
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .unwrap_or(s)
            .to_string(),
        regex::Error::CompiledTooBig(_) => "pattern is too large".to_string(),
        _ => e.to_string(),
    }
}

const ASCII_SPACE: &str = r"\t\n\x0C\r ";
const ASCII_WORD: &str = "0-9A-Za-z_";
/// Go allows counts up to 1000 in `{n,m}`.
const MAX_REPEAT: u32 = 1000;

fn translate(p: &str) -> Result<String, String> {
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    // Position of the current class's first member, when inside `[...]`.
    let mut class_start: Option<usize> = None;
    while i < chars.len() {
        let c = chars[i];
        if let Some(start) = class_start {
            i = class_char(&chars, i, start, &mut out, &mut class_start)?;
            continue;
        }
        match c {
            '\\' => i = escape(&chars, i, &mut out, false)?,
            '[' => {
                out.push('[');
                i += 1;
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                // A `]` right after `[` or `[^` is a member, in both syntaxes.
                if chars.get(i) == Some(&']') {
                    out.push_str(r"\]");
                    i += 1;
                }
                class_start = Some(i);
            }
            '(' if chars.get(i + 1) == Some(&'?') => i = group_open(&chars, i, &mut out)?,
            '{' => i = brace(&chars, i, &mut out)?,
            '}' => {
                out.push_str(r"\}");
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    if class_start.is_some() {
        return Err("missing closing ]".to_string());
    }
    Ok(out)
}

/// One step inside a character class.
fn class_char(
    chars: &[char],
    i: usize,
    start: usize,
    out: &mut String,
    class_start: &mut Option<usize>,
) -> Result<usize, String> {
    let c = chars[i];
    match c {
        ']' => {
            out.push(']');
            *class_start = None;
            Ok(i + 1)
        }
        '\\' => escape(chars, i, out, true),
        '[' if chars.get(i + 1) == Some(&':') => {
            // POSIX class `[:alpha:]` / `[:^alpha:]`, the same in both.
            let rest: String = chars[i..].iter().collect();
            match rest.find(":]") {
                Some(end) if end > 1 => {
                    out.push_str(&rest[..end + 2]);
                    Ok(i + rest[..end + 2].chars().count())
                }
                _ => {
                    out.push_str(r"\[");
                    Ok(i + 1)
                }
            }
        }
        // Rust reads these as a nested class or set operators; Go as members.
        '[' | '&' | '~' => {
            out.push('\\');
            out.push(c);
            Ok(i + 1)
        }
        '-' if chars.get(i + 1) == Some(&'-') && i > start => Err(
            "'--' inside a character class is ambiguous here; escape the '-' as '\\-'".to_string(),
        ),
        _ => {
            out.push(c);
            Ok(i + 1)
        }
    }
}

/// A backslash escape at `i`; returns the index after it.
fn escape(chars: &[char], i: usize, out: &mut String, in_class: bool) -> Result<usize, String> {
    let Some(&e) = chars.get(i + 1) else {
        return Err("trailing backslash at end of expression".to_string());
    };
    let next = i + 2;
    let class = |members: &str, negated: bool| -> String {
        match (in_class, negated) {
            (true, false) => members.to_string(),
            (_, true) => format!("[^{members}]"),
            (false, false) => format!("[{members}]"),
        }
    };
    match e {
        // Go's Perl classes are ASCII-only; Rust's are Unicode.
        'd' => out.push_str(&class("0-9", false)),
        'D' => out.push_str(&class("0-9", true)),
        'w' => out.push_str(&class(ASCII_WORD, false)),
        'W' => out.push_str(&class(ASCII_WORD, true)),
        's' => out.push_str(&class(ASCII_SPACE, false)),
        'S' => out.push_str(&class(ASCII_SPACE, true)),
        'b' | 'B' if !in_class => out.push_str(&format!("(?-u:\\{e})")),
        'A' | 'z' if !in_class => {
            out.push('\\');
            out.push(e);
        }
        'a' | 'f' | 't' | 'n' | 'r' | 'v' => {
            out.push('\\');
            out.push(e);
        }
        'x' => {
            out.push_str(r"\x");
            return Ok(copy_braced(chars, next, out));
        }
        'p' | 'P' => {
            // `\p{^Greek}` is Go's spelling of `\P{Greek}`.
            if chars.get(next) == Some(&'{') && chars.get(next + 1) == Some(&'^') {
                out.push('\\');
                out.push(if e == 'p' { 'P' } else { 'p' });
                let mut braced = String::new();
                let end = copy_braced(chars, next, &mut braced);
                out.push_str(&braced.replacen("{^", "{", 1));
                return Ok(end);
            }
            out.push('\\');
            out.push(e);
            return Ok(copy_braced(chars, next, out));
        }
        'Q' if !in_class => {
            let rest: String = chars[next..].iter().collect();
            let (lit, consumed) = match rest.find(r"\E") {
                Some(end) => (&rest[..end], rest[..end].chars().count() + 2),
                None => (rest.as_str(), rest.chars().count()),
            };
            out.push_str(&regex::escape(lit));
            return Ok(next + consumed);
        }
        '0'..='7' => return octal(chars, i, out),
        '8' | '9' => return Err(format!("invalid escape sequence: \\{e}")),
        c if c.is_ascii_punctuation() => {
            // Go allows escaping any punctuation as itself; Rust gives some
            // (`\<`, `\>`) a meaning of their own.
            out.push_str(&regex::escape(&c.to_string()));
        }
        c => {
            return Err(format!(
                "invalid escape sequence: \\{c} (not part of Go's regexp syntax)"
            ));
        }
    }
    Ok(next)
}

/// Copies a `{...}` argument of `\x` or `\p` verbatim, if one follows.
fn copy_braced(chars: &[char], at: usize, out: &mut String) -> usize {
    if chars.get(at) != Some(&'{') {
        return at;
    }
    match chars[at..].iter().position(|&c| c == '}') {
        Some(len) => {
            out.extend(&chars[at..=at + len]);
            at + len + 1
        }
        None => at,
    }
}

/// Go reads `\0`, `\012`, `\12`, `\123` as octal; a single non-zero digit
/// would be a backreference, which neither syntax supports.
fn octal(chars: &[char], i: usize, out: &mut String) -> Result<usize, String> {
    let digits: String = chars[i + 1..]
        .iter()
        .take(3)
        .take_while(|c| ('0'..='7').contains(*c))
        .collect();
    if digits.len() == 1 && digits != "0" {
        return Err(format!(
            "invalid escape sequence: \\{digits} (backreferences are not supported)"
        ));
    }
    let value = u32::from_str_radix(&digits, 8).map_err(|e| e.to_string())?;
    out.push_str(&format!("\\x{{{value:X}}}"));
    Ok(i + 1 + digits.len())
}

/// `(?` at `i`: named groups and flags. Returns the index after what it copied.
fn group_open(chars: &[char], i: usize, out: &mut String) -> Result<usize, String> {
    let rest: String = chars[i + 2..].iter().collect();
    if rest.starts_with("P<")
        || (rest.starts_with('<') && !rest.starts_with("<=") && !rest.starts_with("<!"))
    {
        out.push_str("(?");
        return Ok(i + 2);
    }
    // Flags: (?ims) or (?i-s:...). Go knows i, m, s and U.
    let mut j = i + 2;
    while let Some(&f) = chars.get(j) {
        match f {
            'i' | 'm' | 's' | 'U' | '-' => j += 1,
            ')' | ':' => {
                let text: String = chars[i..=j].iter().collect();
                out.push_str(&text);
                return Ok(j + 1);
            }
            other => {
                return Err(if other.is_ascii_alphabetic() {
                    format!(
                        "flag '{other}' is not part of Go's regexp syntax (Go knows i, m, s, U)"
                    )
                } else {
                    format!(
                        "invalid or unsupported group syntax '(?{other}' (Go has no look-around or backreferences)"
                    )
                });
            }
        }
    }
    Err("missing closing )".to_string())
}

/// `{` at `i`: a counted repetition if it reads as one in Go, else a literal.
fn brace(chars: &[char], i: usize, out: &mut String) -> Result<usize, String> {
    let rest: String = chars[i + 1..].iter().take(24).collect();
    let Some(end) = rest.find('}') else {
        out.push_str(r"\{");
        return Ok(i + 1);
    };
    let body = &rest[..end];
    let (lo, hi) = match body.split_once(',') {
        Some((lo, hi)) => (lo, Some(hi)),
        None => (body, None),
    };
    let is_num = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !is_num(lo) || hi.is_some_and(|h| !h.is_empty() && !is_num(h)) {
        // `{`, `{,3}` and `{a}` are plain text in Go.
        out.push_str(r"\{");
        return Ok(i + 1);
    }
    for n in std::iter::once(lo).chain(hi.filter(|h| !h.is_empty())) {
        if n.parse::<u32>().map_or(true, |n| n > MAX_REPEAT) {
            return Err(format!(
                "invalid repeat count: {{{body}}} (Go allows at most {MAX_REPEAT})"
            ));
        }
    }
    out.push('{');
    out.push_str(body);
    out.push('}');
    Ok(i + 1 + end + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        compile(p).unwrap_or_else(|e| panic!("{e}")).is_match(s)
    }

    #[test]
    fn perl_classes_are_ascii_like_go() {
        assert!(m(r"^\d+$", "123"));
        assert!(!m(r"^\d+$", "١٢٣"), "Arabic-Indic digits are not \\d in Go");
        assert!(!m(r"^\w+$", "héllo"));
        assert!(m(r"^[\w.-]+$", "main-abc.1"));
        assert!(m(r"^[^\d]+$", "abc"));
        assert!(m(r"^[\D]+$", "abc"));
        assert!(!m(r"^[\D]+$", "a1"));
        assert!(m(r"^\s$", "\t"));
        assert!(!m(r"^\s$", "\u{a0}"));
        assert!(m(r"\bmain\b", "main-1"));
    }

    #[test]
    fn go_spellings_are_kept() {
        assert!(m(r"^\Qa.b\E$", "a.b"));
        assert!(!m(r"^\Qa.b\E$", "axb"));
        assert!(m(r"^\Q1+1", "1+1"));
        assert!(m(r"^\101$", "A"), "octal escape");
        assert!(m(r"^\0$", "\0"));
        assert!(m(r"^a{$", "a{"));
        assert!(m(r"^a{,2}$", "a{,2}"));
        assert!(m(r"^x}$", "x}"));
        assert!(m(r"^[[a]+$", "[a["));
        assert!(m(r"^[a&&b]+$", "a&b"));
        assert!(m(r"^[~~]$", "~"));
        assert!(m(r"^\<v\>$", "<v>"));
        assert!(m(r"^[]a]+$", "]a"));
        assert!(m(r"^[[:digit:]]+$", "42"));
        assert!(m(r"^\p{Greek}+$", "αβ"));
        assert!(m(r"^\p{^Greek}+$", "ab"));
        assert!(m(r"(?i)^MAIN$", "main"));
        assert!(m(r"^(?P<ts>\d+)$", "1"));
        assert!(m(r"^(?<ts>\d+)$", "1"));
        assert!(m(r"^a{2,1000}$", "aa"));
    }

    #[test]
    fn rejects_what_go_rejects_or_reads_differently() {
        let table = [
            (r"(?x) a", "flag 'x'"),
            (r"(?u)a", "flag 'u'"),
            (r"(?R)a", "flag 'R'"),
            (r"a(?=b)", "look-around"),
            (r"\1", "backreferences"),
            (r"\8", "invalid escape"),
            (r"\u0041", "\\u"),
            (r"\h", "\\h"),
            (r"a\", "trailing backslash"),
            (r"[a--b]", "'--'"),
            (r"a{1001}", "repeat count"),
            (r"[a-", "closing ]"),
            (r"(a", "unclosed group"),
            (r"(?P<1a>x)", "capture group"),
        ];
        for (p, needle) in table {
            let err = compile(p).expect_err(p).to_string();
            assert!(err.contains(needle), "{p}: {err}");
            assert!(
                err.contains(&format!("'{p}'")),
                "message names the pattern: {err}"
            );
        }
    }
}
