//! Go's template builtins and the hermetic sprig functions Flux registers
//! (`sprig.HermeticTxtFuncMap`), with sprig's argument order. Arguments are
//! checked the way Go converts them to the function's parameter types.

use std::sync::Arc;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::gofmt::{go_quote, sprint, sprintf, sprintln, strval};
use crate::value::{Value, go_cmp};

pub(crate) enum FnError {
    /// Raised before the call (argument count or type): Go's text as is.
    Go(String),
    /// Returned by the function: Go prefixes `error calling NAME: `.
    Call(String),
}

type F = fn(&[Value]) -> Result<Value, FnError>;

enum Arity {
    Exact(usize),
    AtLeast(usize),
}
use Arity::{AtLeast, Exact};

/// Every function a template may call. `and` and `or` are evaluated lazily by
/// the executor and only listed here so that parsing accepts them.
const FUNCS: &[(&str, Arity, F)] = &[
    // Go's builtins.
    ("and", AtLeast(1), |_| Ok(Value::Invalid)),
    ("or", AtLeast(1), |_| Ok(Value::Invalid)),
    ("not", Exact(1), |a| Ok(Value::Bool(!a[0].truth()))),
    ("len", Exact(1), len),
    ("index", AtLeast(1), index),
    ("slice", AtLeast(1), slice),
    ("print", AtLeast(0), |a| Ok(Value::str(sprint(&anys(a))))),
    ("println", AtLeast(0), |a| {
        Ok(Value::str(sprintln(&anys(a))))
    }),
    ("printf", AtLeast(1), |a| {
        Ok(Value::str(sprintf(&s(a, 0)?, &anys(&a[1..]))))
    }),
    ("html", AtLeast(0), |a| {
        Ok(Value::str(gotmpl::html_escape(&eval_args(a))))
    }),
    ("js", AtLeast(0), |a| {
        Ok(Value::str(gotmpl::js_escape(&eval_args(a))))
    }),
    ("urlquery", AtLeast(0), |a| {
        Ok(Value::str(gotmpl::url_encode(&eval_args(a))))
    }),
    ("eq", AtLeast(1), eq),
    ("ne", Exact(2), |a| eq(a).map(|v| Value::Bool(!v.truth()))),
    ("lt", Exact(2), |a| order(a).map(|o| Value::Bool(o.is_lt()))),
    ("le", Exact(2), |a| order(a).map(|o| Value::Bool(o.is_le()))),
    ("gt", Exact(2), |a| order(a).map(|o| Value::Bool(o.is_gt()))),
    ("ge", Exact(2), |a| order(a).map(|o| Value::Bool(o.is_ge()))),
    ("call", AtLeast(1), |a| {
        Err(FnError::Call(format!(
            "non-function of type {}",
            a[0].type_name()
        )))
    }),
    // sprig: strings.
    ("upper", Exact(1), |a| {
        Ok(Value::str(s(a, 0)?.to_uppercase()))
    }),
    ("lower", Exact(1), |a| {
        Ok(Value::str(s(a, 0)?.to_lowercase()))
    }),
    ("title", Exact(1), |a| Ok(Value::str(title(&s(a, 0)?)))),
    ("trim", Exact(1), |a| Ok(Value::str(s(a, 0)?.trim()))),
    ("trimAll", Exact(2), trim_all),
    ("trimall", Exact(2), trim_all),
    ("trimPrefix", Exact(2), |a| {
        let (p, v) = (s(a, 0)?, s(a, 1)?);
        Ok(Value::str(v.strip_prefix(p.as_str()).unwrap_or(&v)))
    }),
    ("trimSuffix", Exact(2), |a| {
        let (p, v) = (s(a, 0)?, s(a, 1)?);
        Ok(Value::str(v.strip_suffix(p.as_str()).unwrap_or(&v)))
    }),
    ("replace", Exact(3), |a| {
        let (old, new, v) = (s(a, 0)?, s(a, 1)?, s(a, 2)?);
        Ok(Value::str(go_replace_all(&v, &old, &new)))
    }),
    ("repeat", Exact(2), |a| {
        let (n, v) = (i(a, 0)?, s(a, 1)?);
        if n < 0 {
            return Err(FnError::Call("strings: negative Repeat count".into()));
        }
        bounded((n as u64).saturating_mul(v.len() as u64), "repeat")?;
        Ok(Value::str(v.repeat(n as usize)))
    }),
    ("nospace", Exact(1), |a| {
        Ok(Value::str(
            s(a, 0)?
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>(),
        ))
    }),
    ("trunc", Exact(2), |a| {
        Ok(Value::str(trunc(i(a, 0)?, &s(a, 1)?)))
    }),
    ("abbrev", Exact(2), |a| {
        let (w, v) = (i(a, 0)?, s(a, 1)?);
        if w < 4 || v.len() as i64 <= w {
            return Ok(Value::str(v));
        }
        Ok(Value::str(format!(
            "{}...",
            byte_prefix(&v, (w - 3) as usize)
        )))
    }),
    ("substr", Exact(3), substr),
    ("contains", Exact(2), |a| {
        Ok(Value::Bool(s(a, 1)?.contains(s(a, 0)?.as_str())))
    }),
    ("hasPrefix", Exact(2), |a| {
        Ok(Value::Bool(s(a, 1)?.starts_with(s(a, 0)?.as_str())))
    }),
    ("hasSuffix", Exact(2), |a| {
        Ok(Value::Bool(s(a, 1)?.ends_with(s(a, 0)?.as_str())))
    }),
    ("indent", Exact(2), |a| {
        Ok(Value::str(indent(i(a, 0)?, &s(a, 1)?)))
    }),
    ("nindent", Exact(2), |a| {
        Ok(Value::str(format!("\n{}", indent(i(a, 0)?, &s(a, 1)?))))
    }),
    ("plural", Exact(3), |a| {
        let (one, many, n) = (s(a, 0)?, s(a, 1)?, i(a, 2)?);
        Ok(Value::str(if n == 1 { one } else { many }))
    }),
    ("quote", AtLeast(0), |a| {
        let parts: Vec<String> = present(a).map(|v| go_quote(&strval(v))).collect();
        Ok(Value::str(parts.join(" ")))
    }),
    ("squote", AtLeast(0), |a| {
        let parts: Vec<String> = present(a).map(|v| format!("'{}'", strval(v))).collect();
        Ok(Value::str(parts.join(" ")))
    }),
    ("cat", AtLeast(0), |a| {
        let parts: Vec<String> = present(a).map(strval).collect();
        Ok(Value::str(parts.join(" ")))
    }),
    ("split", Exact(2), |a| {
        let parts = go_split(&s(a, 1)?, &s(a, 0)?);
        let entries = parts
            .into_iter()
            .enumerate()
            .map(|(n, p)| (format!("_{n}"), Value::str(p)))
            .collect();
        Ok(Value::string_map(
            "map[string]string",
            entries,
            Value::str(""),
        ))
    }),
    ("splitList", Exact(2), |a| {
        let parts = go_split(&s(a, 1)?, &s(a, 0)?);
        Ok(Value::list(
            "[]string",
            parts.into_iter().map(Value::str).collect(),
        ))
    }),
    ("join", Exact(2), |a| {
        Ok(Value::str(strslice(&any(&a[1])).join(&s(a, 0)?)))
    }),
    ("toString", Exact(1), |a| {
        Ok(Value::str(strval(&any(&a[0]))))
    }),
    ("toStrings", Exact(1), |a| {
        Ok(Value::list(
            "[]string",
            strslice(&any(&a[0])).into_iter().map(Value::str).collect(),
        ))
    }),
    ("sha256sum", Exact(1), |a| {
        let digest = Sha256::digest(s(a, 0)?.as_bytes());
        Ok(Value::str(
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
        ))
    }),
    ("b64enc", Exact(1), |a| {
        Ok(Value::str(
            base64::engine::general_purpose::STANDARD.encode(s(a, 0)?.as_bytes()),
        ))
    }),
    ("b64dec", Exact(1), |a| {
        // sprig returns the decoding error's text instead of failing.
        Ok(Value::str(
            match base64::engine::general_purpose::STANDARD.decode(s(a, 0)?.as_bytes()) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) => e.to_string(),
            },
        ))
    }),
    // sprig: regular expressions (Rust's regex reads RE2 syntax alike).
    ("regexMatch", Exact(2), |a| {
        // sprig ignores a bad pattern here and reports no match.
        let (pattern, v) = (s(a, 0)?, s(a, 1)?);
        Ok(Value::Bool(
            regex::Regex::new(&pattern).is_ok_and(|r| r.is_match(&v)),
        ))
    }),
    ("regexFind", Exact(2), |a| {
        let v = s(a, 1)?;
        Ok(Value::str(
            re(a)?.find(&v).map(|m| m.as_str()).unwrap_or(""),
        ))
    }),
    ("regexFindAll", Exact(3), |a| {
        let (v, n) = (s(a, 1)?, i(a, 2)?);
        let r = re(a)?;
        let all = r.find_iter(&v).map(|m| Value::str(m.as_str()));
        let items: Vec<Value> = if n < 0 {
            all.collect()
        } else {
            all.take(n as usize).collect()
        };
        Ok(Value::list("[]string", items))
    }),
    ("regexReplaceAll", Exact(3), |a| {
        let (v, repl) = (s(a, 1)?, s(a, 2)?);
        Ok(Value::str(re(a)?.replace_all(&v, repl.as_str())))
    }),
    ("regexReplaceAllLiteral", Exact(3), |a| {
        let (v, repl) = (s(a, 1)?, s(a, 2)?);
        Ok(Value::str(re(a)?.replace_all(&v, regex::NoExpand(&repl))))
    }),
    ("regexSplit", Exact(3), |a| {
        let (v, n) = (s(a, 1)?, i(a, 2)?);
        let r = re(a)?;
        let parts: Vec<Value> = match n {
            0 => vec![],
            n if n < 0 => r.split(&v).map(Value::str).collect(),
            n => r.splitn(&v, n as usize).map(Value::str).collect(),
        };
        Ok(Value::list("[]string", parts))
    }),
    // sprig: defaults and flow.
    ("default", AtLeast(1), |a| {
        let given = a.get(1).map(any).unwrap_or(Value::Nil);
        Ok(if a.len() < 2 || empty(&given) {
            any(&a[0])
        } else {
            given
        })
    }),
    ("empty", Exact(1), |a| Ok(Value::Bool(empty(&any(&a[0]))))),
    ("coalesce", AtLeast(0), |a| {
        Ok(present(a)
            .find(|v| !empty(v))
            .cloned()
            .unwrap_or(Value::Nil))
    }),
    ("ternary", Exact(3), |a| {
        Ok(if b(a, 2)? { any(&a[0]) } else { any(&a[1]) })
    }),
    ("fail", Exact(1), |a| Err(FnError::Call(s(a, 0)?))),
    // sprig: lists and dicts.
    ("list", AtLeast(0), |a| {
        Ok(Value::list("[]interface {}", anys(a)))
    }),
    ("first", Exact(1), |a| {
        Ok(items(&a[0], "first")?
            .first()
            .cloned()
            .unwrap_or(Value::Nil))
    }),
    ("last", Exact(1), |a| {
        Ok(items(&a[0], "last")?.last().cloned().unwrap_or(Value::Nil))
    }),
    ("rest", Exact(1), |a| {
        let l = items(&a[0], "rest")?;
        Ok(if l.is_empty() {
            Value::Nil
        } else {
            Value::list("[]interface {}", l[1..].to_vec())
        })
    }),
    ("initial", Exact(1), |a| {
        let l = items(&a[0], "initial")?;
        Ok(if l.is_empty() {
            Value::Nil
        } else {
            Value::list("[]interface {}", l[..l.len() - 1].to_vec())
        })
    }),
    ("uniq", Exact(1), |a| {
        let mut out: Vec<Value> = Vec::new();
        for v in items(&a[0], "uniq")? {
            if !out.iter().any(|o| deep_eq(o, &v)) {
                out.push(v);
            }
        }
        Ok(Value::list("[]interface {}", out))
    }),
    ("compact", Exact(1), |a| {
        let out = items(&a[0], "compact")?
            .into_iter()
            .filter(|v| !empty(v))
            .collect();
        Ok(Value::list("[]interface {}", out))
    }),
    ("has", Exact(2), |a| {
        let needle = any(&a[0]);
        Ok(Value::Bool(match &a[1] {
            Value::Nil | Value::Invalid => false,
            hay => items(hay, "has")?.iter().any(|v| deep_eq(v, &needle)),
        }))
    }),
    ("without", AtLeast(1), |a| {
        let omit = anys(&a[1..]);
        let out = items(&a[0], "without")?
            .into_iter()
            .filter(|v| !omit.iter().any(|o| deep_eq(o, v)))
            .collect();
        Ok(Value::list("[]interface {}", out))
    }),
    ("sortAlpha", Exact(1), |a| {
        let mut l = strslice(&any(&a[0]));
        l.sort();
        Ok(Value::list(
            "[]string",
            l.into_iter().map(Value::str).collect(),
        ))
    }),
    ("until", Exact(1), |a| {
        let n = i(a, 0)?;
        bounded(n.unsigned_abs(), "until")?;
        let seq: Vec<Value> = if n >= 0 {
            (0..n).map(Value::Int).collect()
        } else {
            (n + 1..=0).rev().map(Value::Int).collect()
        };
        Ok(Value::list("[]int", seq))
    }),
    ("dict", AtLeast(0), |a| {
        let mut entries: Vec<(String, Value)> = Vec::new();
        for pair in a.chunks(2) {
            let key = strval(&any(&pair[0]));
            let val = pair.get(1).map(any).unwrap_or(Value::str(""));
            entries.retain(|(k, _)| *k != key);
            entries.push((key, val));
        }
        Ok(Value::string_map(
            "map[string]interface {}",
            entries,
            Value::Nil,
        ))
    }),
    ("get", Exact(2), |a| {
        let key = s(a, 1)?;
        Ok(map_get(&a[0], &key)?.unwrap_or(Value::str("")))
    }),
    ("hasKey", Exact(2), |a| {
        let key = s(a, 1)?;
        Ok(Value::Bool(map_get(&a[0], &key)?.is_some()))
    }),
    ("keys", AtLeast(0), |a| {
        let mut keys: Vec<String> = Vec::new();
        for m in a {
            match m {
                Value::Map(m) if m.string_keys => {
                    keys.extend(m.entries.iter().map(|(k, _)| strval(k)))
                }
                other => return Err(type_err("map[string]interface {}", other)),
            }
        }
        Ok(Value::list(
            "[]string",
            keys.into_iter().map(Value::str).collect(),
        ))
    }),
    // sprig: numbers (sprig converts with spf13/cast and computes in int64).
    ("atoi", Exact(1), |a| {
        Ok(Value::Int(s(a, 0)?.parse::<i64>().unwrap_or(0)))
    }),
    ("int", Exact(1), |a| Ok(Value::Int(to_int64(&a[0])))),
    ("int64", Exact(1), |a| Ok(Value::Int(to_int64(&a[0])))),
    ("float64", Exact(1), |a| Ok(Value::Float(to_float64(&a[0])))),
    ("add", AtLeast(0), |a| {
        Ok(Value::Int(
            a.iter().map(to_int64).fold(0i64, i64::wrapping_add),
        ))
    }),
    ("add1", Exact(1), |a| {
        Ok(Value::Int(to_int64(&a[0]).wrapping_add(1)))
    }),
    ("sub", Exact(2), |a| {
        Ok(Value::Int(to_int64(&a[0]).wrapping_sub(to_int64(&a[1]))))
    }),
    ("mul", AtLeast(1), |a| {
        Ok(Value::Int(
            a.iter().map(to_int64).fold(1i64, i64::wrapping_mul),
        ))
    }),
    ("div", Exact(2), |a| {
        let d = to_int64(&a[1]);
        if d == 0 {
            return Err(FnError::Call(
                "runtime error: integer divide by zero".into(),
            ));
        }
        Ok(Value::Int(to_int64(&a[0]).wrapping_div(d)))
    }),
    ("mod", Exact(2), |a| {
        let d = to_int64(&a[1]);
        if d == 0 {
            return Err(FnError::Call(
                "runtime error: integer divide by zero".into(),
            ));
        }
        Ok(Value::Int(to_int64(&a[0]).wrapping_rem(d)))
    }),
    ("max", AtLeast(1), |a| {
        Ok(Value::Int(a.iter().map(to_int64).max().unwrap_or(0)))
    }),
    ("min", AtLeast(1), |a| {
        Ok(Value::Int(a.iter().map(to_int64).min().unwrap_or(0)))
    }),
];

pub(crate) fn is_defined(name: &str) -> bool {
    FUNCS.iter().any(|(n, _, _)| *n == name)
}

pub(crate) fn call(name: &str, args: &[Value]) -> Result<Value, FnError> {
    let Some((_, arity, f)) = FUNCS.iter().find(|(n, _, _)| *n == name) else {
        return Err(FnError::Go(format!("{name:?} is not a defined function")));
    };
    match arity {
        Exact(n) if args.len() != *n => {
            return Err(FnError::Go(format!(
                "wrong number of args for {name}: want {n} got {}",
                args.len()
            )));
        }
        AtLeast(n) if args.len() < *n => {
            return Err(FnError::Go(format!(
                "wrong number of args for {name}: want at least {n} got {}",
                args.len()
            )));
        }
        _ => {}
    }
    f(args)
}

fn type_err(want: &str, got: &Value) -> FnError {
    match got {
        Value::Invalid => FnError::Go(format!("invalid value; expected {want}")),
        other => FnError::Go(format!(
            "wrong type for value; expected {want}; got {}",
            other.type_name()
        )),
    }
}

/// A `string` parameter: Go converts nothing else into one.
fn s(a: &[Value], n: usize) -> Result<String, FnError> {
    match &a[n] {
        Value::Str(v) => Ok(v.to_string()),
        other => Err(type_err("string", other)),
    }
}

/// An `int` parameter.
fn i(a: &[Value], n: usize) -> Result<i64, FnError> {
    match &a[n] {
        Value::Int(v) => Ok(*v),
        other => Err(type_err("int", other)),
    }
}

fn b(a: &[Value], n: usize) -> Result<bool, FnError> {
    match &a[n] {
        Value::Bool(v) => Ok(*v),
        other => Err(type_err("bool", other)),
    }
}

/// An `interface{}` parameter: a missing value arrives as nil.
fn any(v: &Value) -> Value {
    match v {
        Value::Invalid => Value::Nil,
        other => other.clone(),
    }
}

fn anys(a: &[Value]) -> Vec<Value> {
    a.iter().map(any).collect()
}

/// The non-nil arguments, which sprig's variadic helpers keep.
fn present(a: &[Value]) -> impl Iterator<Item = &Value> {
    a.iter()
        .filter(|v| !matches!(v, Value::Nil | Value::Invalid))
}

/// Go's `evalArgs` for `html`, `js` and `urlquery`.
fn eval_args(a: &[Value]) -> String {
    match a {
        [Value::Str(s)] => s.to_string(),
        _ => sprint(&anys(a)),
    }
}

fn re(a: &[Value]) -> Result<regex::Regex, FnError> {
    let pattern = s(a, 0)?;
    regex::Regex::new(&pattern)
        .map_err(|e| FnError::Call(format!("regexp: Compile({}): {e}", go_quote(&pattern))))
}

fn trim_all(a: &[Value]) -> Result<Value, FnError> {
    let (cut, v) = (s(a, 0)?, s(a, 1)?);
    Ok(Value::str(v.trim_matches(|c| cut.contains(c))))
}

/// Go's `strings.ReplaceAll`, including its empty-`old` behaviour of
/// inserting `new` around every character.
fn go_replace_all(v: &str, old: &str, new: &str) -> String {
    if !old.is_empty() {
        return v.replace(old, new);
    }
    let mut out = String::from(new);
    for c in v.chars() {
        out.push(c);
        out.push_str(new);
    }
    out
}

/// Go's `strings.Split`: an empty separator splits into characters.
fn go_split(v: &str, sep: &str) -> Vec<String> {
    if sep.is_empty() {
        return v.chars().map(String::from).collect();
    }
    v.split(sep).map(String::from).collect()
}

/// Go's deprecated `strings.Title`, which sprig's `title` is: the first letter
/// of every word upper-cased, words broken at spaces and ASCII punctuation.
fn title(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut prev_sep = true;
    for c in v.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            c.is_whitespace()
        };
    }
    out
}

/// The longest prefix of at most `n` bytes that ends on a character
/// boundary (Go slices bytes and may split a character; Rust cannot).
fn byte_prefix(v: &str, n: usize) -> &str {
    let mut end = n.min(v.len());
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    &v[..end]
}

fn byte_suffix(v: &str, start: usize) -> &str {
    let mut start = start.min(v.len());
    while !v.is_char_boundary(start) {
        start += 1;
    }
    &v[start..]
}

fn trunc(c: i64, v: &str) -> String {
    let len = v.len() as i64;
    if c < 0 && len + c > 0 {
        return byte_suffix(v, (len + c) as usize).to_string();
    }
    if c >= 0 && len > c {
        return byte_prefix(v, c as usize).to_string();
    }
    v.to_string()
}

fn substr(a: &[Value]) -> Result<Value, FnError> {
    let (start, end, v) = (i(a, 0)?, i(a, 1)?, s(a, 2)?);
    let len = v.len() as i64;
    let bounds = |lo: i64, hi: i64| -> Result<Value, FnError> {
        if lo < 0 || hi < lo || hi > len {
            return Err(FnError::Call(format!(
                "runtime error: slice bounds out of range [{lo}:{hi}] with length {len}"
            )));
        }
        let (lo, hi) = (lo as usize, hi as usize);
        if !v.is_char_boundary(lo) || !v.is_char_boundary(hi) {
            return Ok(Value::str(String::from_utf8_lossy(&v.as_bytes()[lo..hi])));
        }
        Ok(Value::str(&v[lo..hi]))
    };
    if start < 0 {
        return bounds(0, end);
    }
    if end < 0 || end > len {
        return bounds(start, len);
    }
    bounds(start, end)
}

/// Refuses results too big for a commit message before allocating them.
fn bounded(size: u64, what: &str) -> Result<u64, FnError> {
    if size > 1 << 24 {
        return Err(FnError::Call(format!("{what}: result too large ({size})")));
    }
    Ok(size)
}

fn indent(n: i64, v: &str) -> String {
    let pad = " ".repeat(n.max(0) as usize);
    format!("{pad}{}", v.replace('\n', &format!("\n{pad}")))
}

/// sprig's `strslice`: the elements of a list as strings, nils dropped; any
/// other value is a one-element list.
fn strslice(v: &Value) -> Vec<String> {
    match v {
        Value::List(l) => present(&l.items).map(strval).collect(),
        Value::Nil | Value::Invalid => vec![],
        other => vec![strval(other)],
    }
}

fn items(v: &Value, what: &str) -> Result<Vec<Value>, FnError> {
    match v {
        Value::List(l) => Ok(l.items.clone()),
        other => Err(FnError::Call(format!(
            "Cannot find {what} on type {}",
            other.type_name()
        ))),
    }
}

fn map_get(m: &Value, key: &str) -> Result<Option<Value>, FnError> {
    match m {
        Value::Map(m) if m.string_keys => Ok(m
            .entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v.clone())),
        other => Err(type_err("map[string]interface {}", other)),
    }
}

/// sprig's `empty`: zero values and empty containers; structs never are.
fn empty(v: &Value) -> bool {
    match v {
        Value::Struct(_) => false,
        other => !other.truth(),
    }
}

fn deep_eq(a: &Value, b: &Value) -> bool {
    a.type_name() == b.type_name()
        && crate::value::format_v(a, true) == crate::value::format_v(b, true)
}

/// spf13/cast's `ToInt64` as sprig uses it: unparsable input becomes 0.
fn to_int64(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => parse_go_int(s).unwrap_or(0),
        _ => 0,
    }
}

fn to_float64(v: &Value) -> f64 {
    match v {
        Value::Int(n) => *n as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// `strconv.ParseInt(s, 0, 64)`: sign, then 0x/0o/0b/0 prefixes, underscores.
fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string())
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string())
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        (10, lower.clone())
    };
    let digits = digits.replace('_', "");
    if digits.is_empty() {
        return None;
    }
    let n = i64::from_str_radix(&digits, radix).ok()?;
    Some(if neg { -n } else { n })
}

/// Go's `eq`: true if the first argument equals any of the others.
fn eq(a: &[Value]) -> Result<Value, FnError> {
    let first = &a[0];
    if a.len() < 2 {
        return Err(FnError::Call("missing argument for comparison".into()));
    }
    for other in &a[1..] {
        let nil_a = matches!(first, Value::Nil | Value::Invalid);
        let nil_b = matches!(other, Value::Nil | Value::Invalid);
        if nil_a || nil_b {
            if nil_a && nil_b {
                return Ok(Value::Bool(true));
            }
            continue;
        }
        let basic = |v: &Value| {
            matches!(
                v,
                Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::Str(_)
            )
        };
        if basic(first) || basic(other) {
            if std::mem::discriminant(first) != std::mem::discriminant(other) {
                return Err(FnError::Call("incompatible types for comparison".into()));
            }
        } else if matches!(first, Value::List(_) | Value::Map(_))
            || matches!(other, Value::List(_) | Value::Map(_))
        {
            return Err(FnError::Call(format!(
                "non-comparable type {}: {}",
                crate::value::format_v(other, false),
                other.type_name()
            )));
        }
        if first.go_eq(other) {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

/// Go's `lt` family: numbers with numbers of the same kind, strings with strings.
fn order(a: &[Value]) -> Result<std::cmp::Ordering, FnError> {
    match (&a[0], &a[1]) {
        (Value::Int(_), Value::Int(_))
        | (Value::Float(_), Value::Float(_))
        | (Value::Str(_), Value::Str(_)) => Ok(go_cmp(&a[0], &a[1])),
        (x, y) if is_ordered(x) && is_ordered(y) => {
            Err(FnError::Call("incompatible types for comparison".into()))
        }
        _ => Err(FnError::Call("invalid type for comparison".into())),
    }
}

fn is_ordered(v: &Value) -> bool {
    matches!(v, Value::Int(_) | Value::Float(_) | Value::Str(_))
}

fn len(a: &[Value]) -> Result<Value, FnError> {
    match &a[0] {
        Value::Str(s) => Ok(Value::Int(s.len() as i64)),
        Value::List(l) => Ok(Value::Int(l.items.len() as i64)),
        Value::Map(m) => Ok(Value::Int(m.entries.len() as i64)),
        Value::Nil | Value::Invalid => Err(FnError::Call("len of nil pointer".into())),
        other => Err(FnError::Call(format!("len of type {}", other.type_name()))),
    }
}

fn index_int(v: &Value, what: &str) -> Result<i64, FnError> {
    match v {
        Value::Int(n) => Ok(*n),
        Value::Nil | Value::Invalid => Err(FnError::Call(format!("cannot index {what} with nil"))),
        other => Err(FnError::Call(format!(
            "cannot index {what} with type {}",
            other.type_name()
        ))),
    }
}

/// Go's `index`: a missing map key gives the element type's zero value.
fn index(a: &[Value]) -> Result<Value, FnError> {
    let mut item = a[0].clone();
    for idx in &a[1..] {
        item = match &item {
            Value::List(l) => {
                let n = index_int(idx, "slice/array")?;
                if n < 0 || n as usize >= l.items.len() {
                    return Err(FnError::Call(format!("index out of range: {n}")));
                }
                l.items[n as usize].clone()
            }
            Value::Str(s) => {
                let n = index_int(idx, "string")?;
                match usize::try_from(n).ok().and_then(|n| s.as_bytes().get(n)) {
                    Some(b) => Value::Int(i64::from(*b)),
                    None => return Err(FnError::Call(format!("index out of range: {n}"))),
                }
            }
            Value::Map(m) => {
                if m.string_keys && !matches!(idx, Value::Str(_)) {
                    return Err(type_err("string", idx));
                }
                m.entries
                    .iter()
                    .find(|(k, _)| k.go_eq(idx))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| m.zero.clone())
            }
            Value::Nil | Value::Invalid => {
                return Err(FnError::Call("index of untyped nil".into()));
            }
            other => {
                return Err(FnError::Call(format!(
                    "can't index item of type {}",
                    other.type_name()
                )));
            }
        };
    }
    Ok(item)
}

/// Go's `slice x i j`.
fn slice(a: &[Value]) -> Result<Value, FnError> {
    let idx: Vec<i64> = a[1..]
        .iter()
        .map(|v| index_int(v, "slice"))
        .collect::<Result<_, _>>()?;
    let (len, is_str) = match &a[0] {
        Value::Str(s) => (s.len() as i64, true),
        Value::List(l) => (l.items.len() as i64, false),
        Value::Nil | Value::Invalid => return Err(FnError::Call("slice of untyped nil".into())),
        other => {
            return Err(FnError::Call(format!(
                "can't slice item of type {}",
                other.type_name()
            )));
        }
    };
    if idx.len() > 3 || (is_str && idx.len() > 2) {
        return Err(FnError::Call(format!(
            "too many slice indexes: {}",
            idx.len()
        )));
    }
    let lo = idx.first().copied().unwrap_or(0);
    let hi = idx.get(1).copied().unwrap_or(len);
    if lo < 0 || hi < lo || hi > len {
        return Err(FnError::Call(format!(
            "index out of range: {}",
            if lo < 0 || lo > len { lo } else { hi }
        )));
    }
    Ok(match &a[0] {
        Value::Str(s) => Value::str(String::from_utf8_lossy(
            &s.as_bytes()[lo as usize..hi as usize],
        )),
        Value::List(l) => Value::List(Arc::new(crate::value::List {
            ty: l.ty.clone(),
            items: l.items[lo as usize..hi as usize].to_vec(),
        })),
        _ => Value::Nil,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_int_parsing_accepts_prefixes() {
        assert_eq!(parse_go_int("42"), Some(42));
        assert_eq!(parse_go_int("-0x1f"), Some(-31));
        assert_eq!(parse_go_int("010"), Some(8));
        assert_eq!(parse_go_int("1_000"), Some(1000));
        assert_eq!(parse_go_int("x"), None);
    }

    #[test]
    fn title_breaks_words_like_strings_title() {
        assert_eq!(
            title("hello wide-world foo_bar"),
            "Hello Wide-World Foo_bar"
        );
    }
}
