//! Values as Go's text/template sees them through reflection.
//!
//! gotmpl's own `Value` has no structs, no `String()` methods and only
//! string-keyed maps, but Flux's template data is made of exactly those
//! (`.AutomationObject` prints `namespace/name`, `.Changed.Objects` is keyed by
//! a struct). So the executor works on this richer model: every container
//! carries its Go type name (for `%T` and error text), structs know which
//! members are fields (printed by `%v`) and which are methods, and maps keep
//! their entries in the order Go's `fmtsort` gives them.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub(crate) enum Value {
    /// Go's invalid `reflect.Value`: what a missing map key or an argument-less
    /// `{{template}}` yields. An action prints it as `<no value>`.
    Invalid,
    /// An untyped nil (`nil` literal, nil interface from a function).
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Arc<str>),
    List(Arc<List>),
    Map(Arc<Map>),
    Struct(Arc<Struct>),
}

#[derive(Debug)]
pub(crate) struct List {
    pub ty: String,
    pub items: Vec<Value>,
}

#[derive(Debug)]
pub(crate) struct Map {
    pub ty: String,
    /// Keys are strings, or structs for `map[update.ObjectIdentifier]…`.
    pub string_keys: bool,
    /// Sorted as Go's `fmtsort` sorts, which is also `range`'s order.
    pub entries: Vec<(Value, Value)>,
    /// What `index` returns for a missing key: the element type's zero value.
    pub zero: Value,
}

#[derive(Debug)]
pub(crate) struct Struct {
    pub ty: &'static str,
    pub members: Vec<Member>,
    /// The result of the type's `String()` method, which `fmt` prefers.
    pub stringer: Option<Arc<str>>,
}

#[derive(Debug)]
pub(crate) struct Member {
    pub name: &'static str,
    pub value: Value,
    pub kind: MemberKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberKind {
    Field,
    /// An embedded struct: printed as a field, its own fields promoted.
    Embedded,
    /// A niladic method: reachable as `.Name`, never printed.
    Method,
}

impl Value {
    pub(crate) fn str(s: impl AsRef<str>) -> Value {
        Value::Str(Arc::from(s.as_ref()))
    }

    pub(crate) fn list(ty: impl Into<String>, items: Vec<Value>) -> Value {
        Value::List(Arc::new(List {
            ty: ty.into(),
            items,
        }))
    }

    /// A map whose entries get sorted the way Go's `fmtsort` sorts them.
    pub(crate) fn map(
        ty: impl Into<String>,
        mut entries: Vec<(Value, Value)>,
        zero: Value,
    ) -> Value {
        entries.sort_by(|a, b| go_cmp(&a.0, &b.0));
        let ty = ty.into();
        // Only maps keyed by string answer `.Key`; the named ObjectChanges
        // type is keyed by a struct.
        let string_keys = ty.starts_with("map[string]");
        Value::Map(Arc::new(Map {
            ty,
            string_keys,
            entries,
            zero,
        }))
    }

    pub(crate) fn string_map(
        ty: impl Into<String>,
        entries: Vec<(String, Value)>,
        zero: Value,
    ) -> Value {
        Value::map(
            ty,
            entries
                .into_iter()
                .map(|(k, v)| (Value::str(k), v))
                .collect(),
            zero,
        )
    }

    pub(crate) fn strukt(
        ty: &'static str,
        members: Vec<Member>,
        stringer: Option<String>,
    ) -> Value {
        Value::Struct(Arc::new(Struct {
            ty,
            members,
            stringer: stringer.map(Arc::from),
        }))
    }

    /// The Go type name, as `%T` and error messages show it.
    pub(crate) fn type_name(&self) -> String {
        match self {
            Value::Invalid => "<invalid reflect.Value>".into(),
            Value::Nil => "<nil>".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) => "int".into(),
            Value::Float(_) => "float64".into(),
            Value::Str(_) => "string".into(),
            Value::List(l) => l.ty.clone(),
            Value::Map(m) => m.ty.clone(),
            Value::Struct(s) => s.ty.into(),
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Go's `truth`: what `if`, `with`, `and`, `or` and `not` test.
    pub(crate) fn truth(&self) -> bool {
        match self {
            Value::Invalid | Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(n) => *n != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.items.is_empty(),
            Value::Map(m) => !m.entries.is_empty(),
            Value::Struct(_) => true,
        }
    }

    /// A struct member by name, looking through embedded structs the way Go
    /// promotes their fields (shallowest first).
    pub(crate) fn member(&self, name: &str) -> Option<&Value> {
        let Value::Struct(s) = self else { return None };
        if let Some(m) = s.members.iter().find(|m| m.name == name) {
            return Some(&m.value);
        }
        s.members
            .iter()
            .filter(|m| m.kind == MemberKind::Embedded)
            .find_map(|m| m.value.member(name))
    }

    /// Go's `==` for comparable values (basic kinds and structs of them).
    pub(crate) fn go_eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Int(a), Value::Float(b)) | (Value::Float(b), Value::Int(a)) => {
                (*a as f64) == *b
            }
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Struct(a), Value::Struct(b)) => {
                a.ty == b.ty
                    && a.stringer == b.stringer
                    && a.members
                        .iter()
                        .zip(&b.members)
                        .all(|(x, y)| x.kind == MemberKind::Method || x.value.go_eq(&y.value))
            }
            (Value::Nil | Value::Invalid, Value::Nil | Value::Invalid) => true,
            _ => false,
        }
    }
}

/// The order Go's `internal/fmtsort` gives map keys: numbers numerically,
/// strings bytewise, structs field by field in declaration order.
pub(crate) fn go_cmp(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Value::Str(x), Value::Str(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Struct(x), Value::Struct(y)) => {
            let fields = |s: &Struct| {
                s.members
                    .iter()
                    .filter(|m| m.kind != MemberKind::Method)
                    .map(|m| m.value.clone())
                    .collect::<Vec<_>>()
            };
            let (fx, fy) = (fields(x), fields(y));
            fx.iter()
                .zip(&fy)
                .map(|(p, q)| go_cmp(p, q))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        }
        _ => Ordering::Equal,
    }
}

/// How `fmt` prints a value with `%v` (`plus` for `%+v`).
pub(crate) fn format_v(v: &Value, plus: bool) -> String {
    let mut out = String::new();
    write_v(&mut out, v, plus, 0);
    out
}

fn write_v(out: &mut String, v: &Value, plus: bool, depth: usize) {
    match v {
        // Inside fmt, Go shows a zero reflect.Value this way; at the top of an
        // action the executor prints `<no value>` before getting here.
        Value::Invalid => out.push_str(if depth == 0 {
            "<nil>"
        } else {
            "<invalid reflect.Value>"
        }),
        Value::Nil => out.push_str("<nil>"),
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Float(f) => out.push_str(&format_float_g(*f, None)),
        Value::Str(s) => out.push_str(s),
        Value::List(l) => {
            out.push('[');
            for (i, item) in l.items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_v(out, item, plus, depth + 1);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (i, (k, val)) in m.entries.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_v(out, k, plus, depth + 1);
                out.push(':');
                write_v(out, val, plus, depth + 1);
            }
            out.push(']');
        }
        Value::Struct(s) => {
            if let Some(text) = &s.stringer {
                out.push_str(text);
                return;
            }
            out.push('{');
            let mut first = true;
            for m in s.members.iter().filter(|m| m.kind != MemberKind::Method) {
                if !first {
                    out.push(' ');
                }
                first = false;
                if plus {
                    out.push_str(m.name);
                    out.push(':');
                }
                write_v(out, &m.value, plus, depth + 1);
            }
            out.push('}');
        }
    }
}

/// Go's `strconv.FormatFloat(f, 'g', prec, 64)`. `None` is the shortest
/// representation `%v` uses, which switches to exponent form when the decimal
/// exponent is below -4 or at least 6 (so `1e+08`, not `100000000`).
pub(crate) fn format_float_g(f: f64, prec: Option<usize>) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Decimal digits and the decimal exponent from Rust's exact formatting.
    let sci = match prec {
        None => format!("{f:e}"),
        Some(p) => format!("{:.*e}", p.max(1) - 1, f),
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = match prec {
        // %g drops trailing zeros; the shortest form never has any.
        Some(_) => digits.trim_end_matches('0').to_string(),
        None => digits,
    };
    let digits = if digits.is_empty() {
        "0".to_string()
    } else {
        digits
    };
    let eprec = match prec {
        None => 6,
        Some(p) => {
            let p = p.max(1) as i32;
            if p > digits.len() as i32 && digits.len() as i32 > exp {
                digits.len() as i32
            } else {
                p
            }
        }
    };
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if exp < -4 || exp >= eprec {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go_percent_v() {
        for (f, want) in [
            (1.5, "1.5"),
            (100000000.0, "1e+08"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.25, "-2.25"),
            (3.0, "3"),
        ] {
            assert_eq!(format_float_g(f, None), want, "{f}");
        }
    }

    #[test]
    fn struct_keys_sort_field_by_field() {
        let s = |a: &str, b: &str| {
            Value::strukt(
                "t",
                vec![
                    Member {
                        name: "A",
                        value: Value::str(a),
                        kind: MemberKind::Field,
                    },
                    Member {
                        name: "B",
                        value: Value::str(b),
                        kind: MemberKind::Field,
                    },
                ],
                None,
            )
        };
        // Bytewise per field: "a" < "ab" decides before the second field.
        assert_eq!(go_cmp(&s("ab", "a"), &s("a", "z")), Ordering::Greater);
        assert_eq!(go_cmp(&s("a", "b"), &s("a", "c")), Ordering::Less);
        // Uppercase sorts before lowercase, as bytes do.
        assert_eq!(go_cmp(&Value::str("Z"), &Value::str("a")), Ordering::Less);
    }
}
