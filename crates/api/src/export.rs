//! Manifests as `flux create image … --export` prints them.
//!
//! Flux marshals objects with sigs.k8s.io/yaml: struct → JSON → go-yaml v2.
//! The JSON detour turns every struct into a map, so keys come out sorted
//! (go-yaml's key order), empty optional fields vanish, and scalars are quoted
//! by go-yaml's rules: plain when the text reads back as the same string,
//! `'…'` when a plain scalar would be misread (`{{`, `>=`), `"…"` when it
//! would resolve to another type (`true`, `1`, ``), `|-` for multi-line text,
//! and long lines folded at 80 columns. This module reproduces that output
//! for the three image kinds, without a YAML library.

use crate::duration;
use crate::model::{IMAGE_GROUP, PolicyChoice};
use std::collections::BTreeMap;
use std::time::Duration;

/// The apiVersion `flux create image` writes for all three kinds (Flux 2.7+).
pub const EXPORT_VERSION: &str = "v1";

/// go-yaml's preferred line width: plain and quoted scalars fold past it.
const BEST_WIDTH: usize = 80;

/// `metadata` as the CLI fills it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportMeta {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
}

/// `flux create image repository`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryExport {
    pub meta: ExportMeta,
    pub image: String,
    pub interval: Duration,
    pub secret_ref: Option<String>,
    pub cert_secret_ref: Option<String>,
    /// `--scan-timeout`; Flux leaves `timeout` out when it is zero.
    pub timeout: Option<Duration>,
    /// `--provider`: aws, azure or gcp; `generic` (the default) is left out.
    pub provider: Option<String>,
}

/// `flux create image policy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyExport {
    pub meta: ExportMeta,
    pub image_repository_ref: String,
    pub policy: PolicyChoice,
    pub filter_pattern: Option<String>,
    pub filter_extract: Option<String>,
    pub digest_reflection_policy: Option<String>,
    pub interval: Option<Duration>,
}

/// `flux create image update`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateExport {
    pub meta: ExportMeta,
    pub git_repo_ref: String,
    pub git_repo_namespace: Option<String>,
    pub git_repo_path: Option<String>,
    pub checkout_branch: String,
    pub push_branch: Option<String>,
    pub author_name: String,
    pub author_email: String,
    pub commit_template: Option<String>,
    pub interval: Duration,
}

/// A YAML value: strings and maps in the image manifests; lists, booleans
/// and integers too in what `install` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Map(Vec<(String, Value)>),
    Seq(Vec<Value>),
    Bool(bool),
    Int(i64),
}

/// Builds a map from entries, dropping absent ones as `omitempty` does.
fn map(entries: Vec<(&str, Option<Value>)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect(),
    )
}

fn s(text: &str) -> Option<Value> {
    Some(Value::Str(text.to_string()))
}

fn opt(text: &Option<String>) -> Option<Value> {
    text.as_deref().filter(|t| !t.is_empty()).and_then(s)
}

fn name_ref(name: &Option<String>) -> Option<Value> {
    opt(name).map(|n| map(vec![("name", Some(n))]))
}

fn object(kind: crate::Kind, meta: &ExportMeta, spec: Value) -> Value {
    let kind = kind.as_str();
    let labels = (!meta.labels.is_empty()).then(|| {
        Value::Map(
            meta.labels
                .iter()
                .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
                .collect(),
        )
    });
    map(vec![
        ("apiVersion", s(&format!("{IMAGE_GROUP}/{EXPORT_VERSION}"))),
        ("kind", s(kind)),
        (
            "metadata",
            Some(map(vec![
                ("labels", labels),
                ("name", s(&meta.name)),
                ("namespace", s(&meta.namespace)),
            ])),
        ),
        ("spec", Some(spec)),
    ])
}

impl RepositoryExport {
    pub fn to_value(&self) -> Value {
        let spec = map(vec![
            ("certSecretRef", name_ref(&self.cert_secret_ref)),
            ("image", s(&self.image)),
            ("interval", s(&duration::format(self.interval))),
            (
                "provider",
                self.provider
                    .as_deref()
                    .filter(|p| *p != "generic")
                    .and_then(s),
            ),
            ("secretRef", name_ref(&self.secret_ref)),
            (
                "timeout",
                self.timeout
                    .filter(|t| !t.is_zero())
                    .and_then(|t| s(&duration::format(t))),
            ),
        ]);
        object(crate::Kind::ImageRepository, &self.meta, spec)
    }

    pub fn to_yaml(&self) -> String {
        document(&self.to_value())
    }
}

impl PolicyExport {
    pub fn to_value(&self) -> Value {
        let policy = match &self.policy {
            PolicyChoice::SemVer { range } => {
                map(vec![("semver", Some(map(vec![("range", s(range))])))])
            }
            PolicyChoice::Numerical { order } => {
                map(vec![("numerical", Some(map(vec![("order", s(order))])))])
            }
            PolicyChoice::Alphabetical { order } => {
                map(vec![("alphabetical", Some(map(vec![("order", s(order))])))])
            }
        };
        let filter = opt(&self.filter_pattern).map(|p| {
            map(vec![
                ("extract", opt(&self.filter_extract)),
                ("pattern", Some(p)),
            ])
        });
        let spec = map(vec![
            (
                "digestReflectionPolicy",
                opt(&self.digest_reflection_policy),
            ),
            ("filterTags", filter),
            (
                "imageRepositoryRef",
                Some(map(vec![("name", s(&self.image_repository_ref))])),
            ),
            (
                "interval",
                self.interval.and_then(|i| s(&duration::format(i))),
            ),
            ("policy", Some(policy)),
        ]);
        object(crate::Kind::ImagePolicy, &self.meta, spec)
    }

    pub fn to_yaml(&self) -> String {
        document(&self.to_value())
    }
}

impl UpdateExport {
    pub fn to_value(&self) -> Value {
        let git = map(vec![
            (
                "checkout",
                Some(map(vec![(
                    "ref",
                    Some(map(vec![("branch", s(&self.checkout_branch))])),
                )])),
            ),
            (
                "commit",
                Some(map(vec![
                    (
                        "author",
                        Some(map(vec![
                            ("email", s(&self.author_email)),
                            (
                                "name",
                                s(&self.author_name).filter(|_| !self.author_name.is_empty()),
                            ),
                        ])),
                    ),
                    ("messageTemplate", opt(&self.commit_template)),
                ])),
            ),
            (
                "push",
                opt(&self.push_branch).map(|b| map(vec![("branch", Some(b))])),
            ),
        ]);
        let update = opt(&self.git_repo_path)
            .map(|p| map(vec![("path", Some(p)), ("strategy", s("Setters"))]));
        let spec = map(vec![
            ("git", Some(git)),
            ("interval", s(&duration::format(self.interval))),
            (
                "sourceRef",
                Some(map(vec![
                    ("kind", s(crate::Kind::GitRepository.as_str())),
                    ("name", s(&self.git_repo_ref)),
                    ("namespace", opt(&self.git_repo_namespace)),
                ])),
            ),
            ("update", update),
        ]);
        object(crate::Kind::ImageUpdateAutomation, &self.meta, spec)
    }

    pub fn to_yaml(&self) -> String {
        document(&self.to_value())
    }
}

/// One document as Flux's `printExport` writes it: `---` then the object.
pub fn document(v: &Value) -> String {
    let mut out = String::from("---\n");
    match v {
        Value::Map(entries) => emit_map(&mut out, entries, 0, false),
        Value::Seq(items) => emit_seq(&mut out, items, 0, false),
        other => {
            out.push_str(&plain_value(other, 0, 0));
            out.push('\n');
        }
    }
    out
}

/// A scalar value as text; booleans and integers are never quoted.
fn plain_value(v: &Value, column: usize, indent: usize) -> String {
    match v {
        Value::Str(text) => scalar(text, column, indent, true),
        Value::Bool(b) => b.to_string(),
        Value::Int(n) => n.to_string(),
        Value::Map(m) if m.is_empty() => "{}".to_string(),
        Value::Seq(s) if s.is_empty() => "[]".to_string(),
        // Non-empty collections are emitted as blocks by the callers.
        Value::Map(_) | Value::Seq(_) => String::new(),
    }
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Map(m) => !m.is_empty(),
        Value::Seq(s) => !s.is_empty(),
        _ => false,
    }
}

/// `inline`: the first entry goes on the current line (after `- `).
fn emit_map(out: &mut String, entries: &[(String, Value)], indent: usize, inline: bool) {
    let mut sorted: Vec<&(String, Value)> = entries.iter().collect();
    sorted.sort_by(|a, b| key_order(&a.0, &b.0));
    for (i, (key, value)) in sorted.into_iter().enumerate() {
        if !(inline && i == 0) {
            out.push_str(&" ".repeat(indent));
        }
        let k = scalar(key, indent, indent, false);
        out.push_str(&k);
        out.push(':');
        match value {
            Value::Map(inner) if is_block(value) => {
                out.push('\n');
                emit_map(out, inner, indent + 2, false);
            }
            // go-yaml v2 writes a list under a key at the key's own indent.
            Value::Seq(items) if is_block(value) => {
                out.push('\n');
                emit_seq(out, items, indent, false);
            }
            _ => {
                out.push(' ');
                let column = indent + k.chars().count() + 2;
                // go-yaml indents a value's continuation lines one step past its key.
                out.push_str(&plain_value(value, column, indent + 2));
                out.push('\n');
            }
        }
    }
}

fn emit_seq(out: &mut String, items: &[Value], indent: usize, inline: bool) {
    for (i, item) in items.iter().enumerate() {
        if !(inline && i == 0) {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str("- ");
        match item {
            Value::Map(inner) if is_block(item) => emit_map(out, inner, indent + 2, true),
            Value::Seq(inner) if is_block(item) => emit_seq(out, inner, indent + 2, true),
            _ => {
                out.push_str(&plain_value(item, indent + 2, indent + 2));
                out.push('\n');
            }
        }
    }
}

/// go-yaml v2's map key order: letters after other characters, digit runs by
/// their number, otherwise by code point; a prefix sorts first.
fn key_order(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (ar, br): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    for i in 0..ar.len().min(br.len()) {
        let (x, y) = (ar[i], br[i]);
        if x == y {
            continue;
        }
        let (xl, yl) = (x.is_alphabetic(), y.is_alphabetic());
        if xl && yl {
            return x.cmp(&y);
        }
        if xl || yl {
            return if yl {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        let run = |r: &[char]| -> (u128, usize) {
            let digits: Vec<u32> = r[i..].iter().map_while(|c| c.to_digit(10)).collect();
            let n = digits.iter().fold(0u128, |acc, d| {
                acc.saturating_mul(10).saturating_add(*d as u128)
            });
            (n, digits.len())
        };
        let ((an, al), (bn, bl)) = (run(&ar), run(&br));
        if an != bn {
            return an.cmp(&bn);
        }
        if al != bl {
            return al.cmp(&bl);
        }
        return x.cmp(&y);
    }
    ar.len().cmp(&br.len())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

/// Renders one string scalar the way go-yaml v2 would. `column` is where the
/// scalar starts on its line, `indent` where continuation lines start;
/// `allow_breaks` is false for keys, which go-yaml never folds.
pub fn scalar(text: &str, column: usize, indent: usize, allow_breaks: bool) -> String {
    match style(text, !allow_breaks) {
        Style::Plain => write_plain(text, column, indent, allow_breaks),
        Style::Single => write_single(text, column, indent, allow_breaks),
        Style::Double => write_double(text, column, indent, allow_breaks),
        Style::Literal => write_literal(text, indent),
    }
}

/// What libyaml's scalar analysis allows for a text.
struct Analysis {
    multiline: bool,
    block_plain: bool,
    single_quoted: bool,
    block: bool,
}

fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// libyaml's printable set (go-yaml emits Unicode as is).
fn is_printable(c: char) -> bool {
    matches!(c, '\n' | '\u{20}'..='\u{7e}' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
        && c != '\u{feff}'
}

fn analyze(text: &str) -> Analysis {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return Analysis {
            multiline: false,
            block_plain: true,
            single_quoted: true,
            block: false,
        };
    }
    let mut block_indicators = text.starts_with("---") || text.starts_with("...");
    if block_indicators && chars.len() > 3 && !matches!(chars[3], ' ' | '\t') && !is_break(chars[3])
    {
        block_indicators = false;
    }
    let (mut special, mut line_breaks) = (false, false);
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut prev_space, mut prev_break) = (false, false);
    let mut preceded_by_ws = true;
    for (i, &c) in chars.iter().enumerate() {
        let next = chars.get(i + 1).copied();
        let followed_by_ws = next.is_none_or(|n| n == ' ' || n == '\t' || is_break(n));
        let last = i + 1 == chars.len();
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => block_indicators = true,
                '?' | ':' if followed_by_ws => block_indicators = true,
                '-' if followed_by_ws => block_indicators = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_ws => block_indicators = true,
                '#' if preceded_by_ws => block_indicators = true,
                _ => {}
            }
        }
        if !is_printable(c) {
            special = true;
        }
        if is_break(c) {
            line_breaks = true;
        }
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if last {
                trailing_space = true;
            }
            if prev_break {
                break_space = true;
            }
            prev_space = true;
            prev_break = false;
        } else if is_break(c) {
            if i == 0 {
                leading_break = true;
            }
            if last {
                trailing_break = true;
            }
            if prev_space {
                space_break = true;
            }
            prev_break = true;
            prev_space = false;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_by_ws = c == ' ' || c == '\t' || is_break(c);
    }
    let mut a = Analysis {
        multiline: line_breaks,
        block_plain: true,
        single_quoted: true,
        block: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.block_plain = false;
    }
    if trailing_space {
        a.block = false;
    }
    if break_space {
        a.block_plain = false;
        a.single_quoted = false;
    }
    if space_break || special {
        a.block_plain = false;
        a.single_quoted = false;
        a.block = false;
    }
    if line_breaks || block_indicators {
        a.block_plain = false;
    }
    a
}

fn style(text: &str, simple_key: bool) -> Style {
    // go-yaml picks literal for newlines, plain when the text resolves back
    // to a string, double quotes otherwise; the emitter then downgrades.
    let wanted = if text.contains('\n') {
        Style::Literal
    } else if resolves_to_string(text) && !is_base60_float(text) {
        Style::Plain
    } else {
        Style::Double
    };
    let a = analyze(text);
    let mut style = wanted;
    if style == Style::Plain && (!a.block_plain || (simple_key && a.multiline)) {
        style = Style::Single;
    }
    if style == Style::Single && !a.single_quoted {
        style = Style::Double;
    }
    if style == Style::Literal && (!a.block || simple_key) {
        style = Style::Double;
    }
    style
}

/// Whether go-yaml v2 reads the plain text back as a string (not a bool,
/// null, number or timestamp).
fn resolves_to_string(text: &str) -> bool {
    const SPECIAL: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
        "-.Inf", "-.INF", "<<",
    ];
    if SPECIAL.contains(&text) {
        return false;
    }
    match text.as_bytes()[0] {
        b'.' => !is_dot_float(text),
        b'+' | b'-' | b'0'..=b'9' => {
            let plain = text.replace('_', "");
            !(is_timestamp(text) || is_go_int(&plain) || is_yaml_float(&plain) || is_binary(&plain))
        }
        _ => true,
    }
}

/// Go's `strconv.ParseFloat` for a text that starts with `.`.
fn is_dot_float(text: &str) -> bool {
    let rest = &text[1..];
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    all_digits(mantissa) && exp.is_none_or(|e| all_digits(e.strip_prefix(['+', '-']).unwrap_or(e)))
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Go's `strconv.ParseInt(s, 0, 64)` syntax (range aside: an overflow is
/// still a number to go-yaml through its float rule).
fn is_go_int(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = s.to_ascii_lowercase();
    if let Some(hex) = lower.strip_prefix("0x") {
        return !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    if let Some(bin) = lower.strip_prefix("0b") {
        return !bin.is_empty() && bin.bytes().all(|b| b == b'0' || b == b'1');
    }
    if let Some(oct) = lower.strip_prefix("0o") {
        return !oct.is_empty() && oct.bytes().all(|b| (b'0'..=b'7').contains(&b));
    }
    if s.len() > 1 && s.starts_with('0') {
        return s.bytes().all(|b| (b'0'..=b'7').contains(&b));
    }
    all_digits(s)
}

/// go-yaml's float pattern `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
fn is_yaml_float(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => all_digits(frac),
        Some((int, frac)) => all_digits(int) && (frac.is_empty() || all_digits(frac)),
        None => all_digits(mantissa),
    };
    mantissa_ok && exp.is_none_or(|e| all_digits(e.strip_prefix(['+', '-']).unwrap_or(e)))
}

fn is_binary(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    s.strip_prefix("0b")
        .is_some_and(|b| !b.is_empty() && b.bytes().all(|c| c == b'0' || c == b'1'))
}

/// go-yaml's timestamp forms: `2006-1-2`, optionally followed by a time.
fn is_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() < 8 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let rest = &text[5..];
    let mut parts = rest.splitn(2, '-');
    let month = parts.next().unwrap_or("");
    let Some(tail) = parts.next() else {
        return false;
    };
    let day_len = tail.bytes().take_while(u8::is_ascii_digit).count();
    let valid_md =
        (1..=2).contains(&month.len()) && all_digits(month) && (1..=2).contains(&day_len);
    if !valid_md {
        return false;
    }
    let after = &tail[day_len..];
    // A bare date, or a date and a time; anything else stays a string.
    after.is_empty()
        || (after.starts_with(['T', 't', ' '])
            && after[1..].bytes().take_while(u8::is_ascii_digit).count() >= 1
            && after[1..].contains(':'))
}

/// `1:20`, `-1:30:00.5`: YAML 1.1 sexagesimal floats, which go-yaml quotes.
fn is_base60_float(text: &str) -> bool {
    let s = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (main, frac) = match s.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (s, None),
    };
    let mut groups = main.split(':');
    let Some(first) = groups.next() else {
        return false;
    };
    let first_ok = first.starts_with(|c: char| c.is_ascii_digit())
        && first.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    let rest: Vec<&str> = groups.collect();
    first_ok
        && !rest.is_empty()
        && rest.iter().all(|g| {
            (1..=2).contains(&g.len()) && all_digits(g) && (g.len() == 1 || g.as_bytes()[0] <= b'5')
        })
        && frac.is_none_or(|f| f.bytes().all(|b| b.is_ascii_digit() || b == b'_'))
}

fn newline_indent(out: &mut String, column: &mut usize, indent: usize) {
    out.push('\n');
    out.push_str(&" ".repeat(indent));
    *column = indent;
}

fn write_plain(text: &str, mut column: usize, indent: usize, allow_breaks: bool) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut spaces = false;
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let next_space = chars.get(i + 1) == Some(&' ');
            if allow_breaks && !spaces && column > BEST_WIDTH && !next_space {
                newline_indent(&mut out, &mut column, indent);
            } else {
                out.push(c);
                column += 1;
            }
            spaces = true;
        } else {
            out.push(c);
            column += 1;
            spaces = false;
        }
    }
    out
}

fn write_single(text: &str, mut column: usize, indent: usize, allow_breaks: bool) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::from("'");
    column += 1;
    let mut spaces = false;
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let next_space = chars.get(i + 1) == Some(&' ');
            if allow_breaks
                && !spaces
                && column > BEST_WIDTH
                && i > 0
                && i + 1 < chars.len()
                && !next_space
            {
                newline_indent(&mut out, &mut column, indent);
            } else {
                out.push(c);
                column += 1;
            }
            spaces = true;
        } else {
            if c == '\'' {
                out.push('\'');
                column += 1;
            }
            out.push(c);
            column += 1;
            spaces = false;
        }
    }
    out.push('\'');
    out
}

fn write_double(text: &str, mut column: usize, indent: usize, allow_breaks: bool) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::from("\"");
    column += 1;
    let mut spaces = false;
    for (i, &c) in chars.iter().enumerate() {
        let escape = match c {
            '\0' => Some("\\0".to_string()),
            '\u{7}' => Some("\\a".to_string()),
            '\u{8}' => Some("\\b".to_string()),
            '\t' => Some("\\t".to_string()),
            '\n' => Some("\\n".to_string()),
            '\u{b}' => Some("\\v".to_string()),
            '\u{c}' => Some("\\f".to_string()),
            '\r' => Some("\\r".to_string()),
            '\u{1b}' => Some("\\e".to_string()),
            '"' => Some("\\\"".to_string()),
            '\\' => Some("\\\\".to_string()),
            '\u{85}' => Some("\\N".to_string()),
            '\u{a0}' => Some("\\_".to_string()),
            '\u{2028}' => Some("\\L".to_string()),
            '\u{2029}' => Some("\\P".to_string()),
            c if !is_printable(c) || c == '\u{feff}' => Some(match c as u32 {
                v if v <= 0xff => format!("\\x{v:02X}"),
                v if v <= 0xffff => format!("\\u{v:04X}"),
                v => format!("\\U{v:08X}"),
            }),
            _ => None,
        };
        if let Some(e) = escape {
            column += e.chars().count();
            out.push_str(&e);
            spaces = false;
        } else if c == ' ' {
            if allow_breaks && !spaces && column > BEST_WIDTH && i > 0 && i + 1 < chars.len() {
                newline_indent(&mut out, &mut column, indent);
                if chars.get(i + 1) == Some(&' ') {
                    out.push('\\');
                    column += 1;
                }
            } else {
                out.push(c);
                column += 1;
            }
            spaces = true;
        } else {
            out.push(c);
            column += 1;
            spaces = false;
        }
    }
    out.push('"');
    out
}

fn write_literal(text: &str, indent: usize) -> String {
    let mut out = String::from("|");
    if text.starts_with([' ', '\n']) {
        out.push('2');
    }
    let trailing = text.len() - text.trim_end_matches('\n').len();
    match trailing {
        0 => out.push('-'),
        1 if text.len() > 1 => {}
        _ => out.push('+'),
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&" ".repeat(indent));
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LoadOptions, Manifests, Object};
    use std::path::Path;

    fn meta(name: &str) -> ExportMeta {
        ExportMeta {
            name: name.to_string(),
            namespace: "flux-system".to_string(),
            labels: BTreeMap::new(),
        }
    }

    fn load_one(text: &str) -> Object {
        let m = Manifests::load_str(text, Path::new("export.yaml"), &LoadOptions::default());
        assert!(m.errors.is_empty(), "{:?}\n{text}", m.errors);
        // What `create` writes uses only known fields.
        assert!(m.warnings.is_empty(), "{:?}\n{text}", m.warnings);
        assert_eq!(m.objects.len(), 1, "{text}");
        m.objects.into_iter().next().expect("one object")
    }

    #[test]
    fn quotes_like_go_yaml_v2() {
        let table = [
            ("podinfo", "podinfo"),
            ("5.0.x", "5.0.x"),
            (">=5.0.0", "'>=5.0.0'"),
            (">5.0.1", "'>5.0.1'"),
            (
                "{{range .Updated.Images}}{{println .}}{{end}}",
                "'{{range .Updated.Images}}{{println .}}{{end}}'",
            ),
            (
                "^main-[a-f0-9]+-(?P<ts>[0-9]+)",
                "^main-[a-f0-9]+-(?P<ts>[0-9]+)",
            ),
            ("$ts", "$ts"),
            ("./clusters/my-cluster", "./clusters/my-cluster"),
            (
                "fluxcdbot@users.noreply.github.com",
                "fluxcdbot@users.noreply.github.com",
            ),
            ("", "\"\""),
            ("true", "\"true\""),
            ("yes", "\"yes\""),
            ("~", "\"~\""),
            ("1", "\"1\""),
            ("0x1F", "\"0x1F\""),
            ("1.5", "\"1.5\""),
            ("1e3", "\"1e3\""),
            (".5", "\".5\""),
            ("1:20", "\"1:20\""),
            ("2024-01-02", "\"2024-01-02\""),
            ("1.2.3", "1.2.3"),
            ("a: b", "'a: b'"),
            ("a #b", "'a #b'"),
            ("it's", "it's"),
            ("'x'", "'''x'''"),
            ("- x", "'- x'"),
            (" lead", "' lead'"),
            ("tab\there", "\"tab\\there\""),
            ("@home", "'@home'"),
            ("*", "'*'"),
        ];
        for (input, want) in table {
            assert_eq!(scalar(input, 10, 2, true), want, "{input:?}");
        }
    }

    #[test]
    fn multi_line_text_is_a_literal_block() {
        assert_eq!(scalar("a\nb", 19, 6, true), "|-\n      a\n      b");
        assert_eq!(scalar("a\n\nb\n", 19, 6, true), "|\n      a\n\n      b");
        assert_eq!(scalar("a \nb", 19, 6, true), "\"a \\nb\"");
    }

    #[test]
    fn long_plain_text_folds_past_80_columns() {
        let words = ["word"; 30].join(" ");
        let folded = scalar(&words, 23, 6, true);
        let lines: Vec<&str> = folded.lines().collect();
        assert!(lines.len() > 1, "{folded}");
        assert!(lines[1].starts_with("      word"), "{folded}");
        // Reading it back yields the same words.
        let rejoined: Vec<&str> = folded.split_whitespace().collect();
        assert_eq!(rejoined.join(" "), words);
    }

    #[test]
    fn lists_booleans_and_integers_as_go_yaml_writes_them() {
        let v = Value::Map(vec![
            ("replicas".into(), Value::Int(1)),
            ("empty".into(), Value::Seq(vec![])),
            ("emptyDir".into(), Value::Map(vec![])),
            (
                "items".into(),
                Value::Seq(vec![
                    Value::Map(vec![
                        ("name".into(), Value::Str("a".into())),
                        ("drop".into(), Value::Seq(vec![Value::Str("ALL".into())])),
                    ]),
                    Value::Str("".into()),
                    Value::Str("true".into()),
                    Value::Bool(false),
                    Value::Seq(vec![Value::Int(-1), Value::Str("x".into())]),
                    Value::Map(vec![]),
                ]),
            ),
        ]);
        assert_eq!(
            document(&v),
            "---\nempty: []\nemptyDir: {}\nitems:\n- drop:\n  - ALL\n  name: a\n- \"\"\n- \"true\"\n- false\n- - -1\n  - x\n- {}\nreplicas: 1\n"
        );
        let back = yaml_rust2::YamlLoader::load_from_str(&document(&v)).expect("yaml");
        assert_eq!(back[0]["items"][4][0].as_i64(), Some(-1));
        assert_eq!(back[0]["items"][0]["drop"][0].as_str(), Some("ALL"));
        assert_eq!(back[0]["items"][2].as_str(), Some("true"));
    }

    #[test]
    fn keys_sort_as_go_yaml_sorts_them() {
        let mut keys = vec![
            "sourceRef",
            "interval",
            "git",
            "update",
            "app10",
            "app9",
            "Zed",
        ];
        keys.sort_by(|a, b| key_order(a, b));
        assert_eq!(
            keys,
            vec![
                "Zed",
                "app9",
                "app10",
                "git",
                "interval",
                "sourceRef",
                "update"
            ]
        );
    }

    #[test]
    fn repository_round_trips() {
        let mut m = meta("podinfo");
        m.labels.insert("app".to_string(), "1".to_string());
        let r = RepositoryExport {
            meta: m,
            image: "ghcr.io/stefanprodan/podinfo".to_string(),
            interval: Duration::from_secs(60),
            secret_ref: Some("regcred".to_string()),
            cert_secret_ref: None,
            timeout: Some(Duration::from_secs(30)),
            provider: None,
        };
        let yaml = r.to_yaml();
        assert_eq!(
            yaml,
            "---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata:\n  labels:\n    app: \"1\"\n  name: podinfo\n  namespace: flux-system\nspec:\n  image: ghcr.io/stefanprodan/podinfo\n  interval: 1m0s\n  secretRef:\n    name: regcred\n  timeout: 30s\n"
        );
        let Object::ImageRepository(back) = load_one(&yaml) else {
            panic!("not a repository: {yaml}");
        };
        assert_eq!(back.image, r.image);
        assert_eq!(back.interval, r.interval);
        assert_eq!(back.timeout, r.timeout);
        assert_eq!(back.secret_ref, r.secret_ref);
        assert_eq!(back.meta.labels, r.meta.labels);
        assert_eq!(back.meta.api_version, "image.toolkit.fluxcd.io/v1");
    }

    #[test]
    fn policy_round_trips() {
        let p = PolicyExport {
            meta: meta("vote"),
            image_repository_ref: "vote".to_string(),
            policy: PolicyChoice::Numerical {
                order: "asc".to_string(),
            },
            filter_pattern: Some("^main-[a-f0-9]+-(?P<ts>[0-9]+)".to_string()),
            filter_extract: Some("$ts".to_string()),
            digest_reflection_policy: None,
            interval: None,
        };
        let yaml = p.to_yaml();
        let Object::ImagePolicy(back) = load_one(&yaml) else {
            panic!("not a policy: {yaml}");
        };
        assert_eq!(back.policy, p.policy);
        assert_eq!(back.image_repository_ref.name, "vote");
        let f = back.filter_tags.expect("filterTags");
        assert_eq!(Some(f.pattern), p.filter_pattern);
        assert_eq!(Some(f.extract), p.filter_extract);
    }

    #[test]
    fn update_round_trips_with_odd_text() {
        let u = UpdateExport {
            meta: meta("flux-system"),
            git_repo_ref: "flux-system".to_string(),
            git_repo_namespace: Some("apps".to_string()),
            git_repo_path: Some("./clusters/my-cluster".to_string()),
            checkout_branch: "main".to_string(),
            push_branch: Some("image-updates".to_string()),
            author_name: "Flux Bot: #1".to_string(),
            author_email: "flux@example.com".to_string(),
            commit_template: Some(format!(
                "Automated update\n\n{}\n{{{{range .Changed.Changes}}}}{{{{println .OldValue \"->\" .NewValue}}}}{{{{end}}}}\n",
                ["long words here"; 10].join(" ")
            )),
            interval: Duration::from_secs(300),
        };
        let yaml = u.to_yaml();
        let Object::ImageUpdateAutomation(back) = load_one(&yaml) else {
            panic!("not an automation: {yaml}");
        };
        assert_eq!(back.author_name, u.author_name);
        assert_eq!(back.message_template, u.commit_template);
        assert_eq!(back.source_ref.namespace.as_deref(), Some("apps"));
        assert_eq!(back.push_branch, u.push_branch);
        assert_eq!(back.update_path, "./clusters/my-cluster");
        assert_eq!(back.interval, u.interval);
    }

    #[test]
    fn folded_scalars_read_back_unchanged() {
        for text in [
            ["alpha"; 40].join(" "),
            format!("{{{{ {} }}}}", ["beta"; 40].join(" ")),
            format!("true {}", ["x: y"; 30].join(" ")),
            format!("\"{}\"", ["q"; 60].join(" ")),
        ] {
            let u = UpdateExport {
                meta: meta("a"),
                git_repo_ref: "r".to_string(),
                git_repo_namespace: None,
                git_repo_path: None,
                checkout_branch: "main".to_string(),
                push_branch: None,
                author_name: "n".to_string(),
                author_email: "e@x".to_string(),
                commit_template: Some(text.clone()),
                interval: Duration::from_secs(60),
            };
            let yaml = u.to_yaml();
            let Object::ImageUpdateAutomation(back) = load_one(&yaml) else {
                panic!("{yaml}");
            };
            assert_eq!(
                back.message_template.as_deref(),
                Some(text.as_str()),
                "{yaml}"
            );
        }
    }
}
