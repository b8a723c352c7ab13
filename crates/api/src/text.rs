//! Text from outside (registry tags and error bodies, file contents) on its
//! way to a terminal or a commit message: control characters and Unicode
//! line breaks are shown escaped, never emitted raw, so they can neither
//! drive a terminal nor start a forged line.

use std::borrow::Cow;

/// Characters some reader takes as a line break or that print nothing:
/// C0 and C1 controls, DEL, U+2028/U+2029, the BOM, bidi overrides.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{200e}' | '\u{200f}'
        )
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// `s` with every unsafe character written as `\u{…}` (`\n` and `\t` kept
/// when `multiline`).
pub fn escape(s: &str, multiline: bool) -> Cow<'_, str> {
    let keep = |c: char| multiline && (c == '\n' || c == '\t');
    if !s.chars().any(|c| is_unsafe(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) && !keep(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_line_breaks_are_escaped() {
        assert_eq!(escape("5.0.3", false), "5.0.3");
        assert_eq!(
            escape("1.0\u{2028}- name: evil\x1b[31m\r\u{85}", false),
            "1.0\\u{2028}- name: evil\\u{1b}[31m\\u{d}\\u{85}"
        );
        assert_eq!(escape("a\nb\tc\x07", true), "a\nb\tc\\u{7}");
        assert_eq!(escape("a\nb", false), "a\\u{a}b");
    }
}
