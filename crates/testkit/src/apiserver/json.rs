//! JSON helpers of the stand-in API server: merge patch (RFC 7386), JSON
//! patch (RFC 6902), field paths for server-side apply, selectors and time.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A field path below the object root, e.g. `["spec", "interval"]`.
pub type Path = Vec<String>;

/// RFC 7386: `null` removes, objects merge recursively, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return };
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Why a JSON patch could not be applied: a malformed document (400) or an
/// operation that failed on this object (422).
pub enum JsonPatchError {
    Malformed(String),
    Failed(String),
}

/// RFC 6902 add, remove, replace, move, copy and test.
pub fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), JsonPatchError> {
    let ops = patch.as_array().ok_or_else(|| {
        JsonPatchError::Malformed("a json patch must be an array of operations".into())
    })?;
    for op in ops {
        let name = op.get("op").and_then(Value::as_str).ok_or_else(|| {
            JsonPatchError::Malformed("a json patch operation needs a string \"op\"".into())
        })?;
        let path = op.get("path").and_then(Value::as_str).ok_or_else(|| {
            JsonPatchError::Malformed(format!("operation {name} needs a string \"path\""))
        })?;
        let value = || {
            op.get("value").cloned().ok_or_else(|| {
                JsonPatchError::Malformed(format!("operation {name} needs a \"value\""))
            })
        };
        let from = || {
            op.get("from").and_then(Value::as_str).ok_or_else(|| {
                JsonPatchError::Malformed(format!("operation {name} needs a string \"from\""))
            })
        };
        match name {
            "add" => pointer_add(doc, path, value()?)?,
            "remove" => {
                pointer_remove(doc, path)?;
            }
            "replace" => {
                pointer_remove(doc, path)?;
                pointer_add(doc, path, value()?)?;
            }
            "move" => {
                let v = pointer_remove(doc, from()?)?;
                pointer_add(doc, path, v)?;
            }
            "copy" => {
                let v = doc
                    .pointer(from()?)
                    .cloned()
                    .ok_or_else(|| JsonPatchError::Failed(format!("missing path {path}")))?;
                pointer_add(doc, path, v)?;
            }
            "test" => {
                let want = value()?;
                if doc.pointer(path) != Some(&want) {
                    return Err(JsonPatchError::Failed(format!(
                        "testing value {path} failed"
                    )));
                }
            }
            other => {
                return Err(JsonPatchError::Malformed(format!(
                    "unexpected json patch operation {other:?}"
                )));
            }
        }
    }
    Ok(())
}

fn split_pointer(path: &str) -> Result<(String, String), JsonPatchError> {
    if path.is_empty() {
        return Err(JsonPatchError::Failed(
            "the whole document cannot be patched".into(),
        ));
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(JsonPatchError::Malformed(format!(
            "path {path:?} must start with /"
        )));
    };
    let (parent, last) = match rest.rsplit_once('/') {
        Some((p, l)) => (format!("/{p}"), l),
        None => (String::new(), rest),
    };
    Ok((parent, last.replace("~1", "/").replace("~0", "~")))
}

fn pointer_add(doc: &mut Value, path: &str, v: Value) -> Result<(), JsonPatchError> {
    let (parent, key) = split_pointer(path)?;
    let missing = || JsonPatchError::Failed(format!("missing path {path}"));
    match doc.pointer_mut(&parent).ok_or_else(missing)? {
        Value::Object(m) => {
            m.insert(key, v);
        }
        Value::Array(a) => {
            if key == "-" {
                a.push(v);
            } else {
                let i: usize = key.parse().map_err(|_| missing())?;
                if i > a.len() {
                    return Err(missing());
                }
                a.insert(i, v);
            }
        }
        _ => return Err(missing()),
    }
    Ok(())
}

fn pointer_remove(doc: &mut Value, path: &str) -> Result<Value, JsonPatchError> {
    let (parent, key) = split_pointer(path)?;
    let missing = || JsonPatchError::Failed(format!("missing path {path}"));
    match doc.pointer_mut(&parent).ok_or_else(missing)? {
        Value::Object(m) => m.remove(&key).ok_or_else(missing),
        Value::Array(a) => {
            let i: usize = key.parse().map_err(|_| missing())?;
            if i >= a.len() {
                return Err(missing());
            }
            Ok(a.remove(i))
        }
        _ => Err(missing()),
    }
}

/// The leaves of `v` with their values. Lists are atomic leaves; an empty
/// object is a leaf of its own.
pub fn leaves(v: &Value, prefix: &mut Path, out: &mut BTreeMap<Path, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                prefix.push(k.clone());
                leaves(c, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone(), v.clone());
        }
    }
}

/// Paths where `a` and `b` differ: the shallowest differing path of each
/// branch (so a path covers everything below it).
pub fn diff(a: Option<&Value>, b: Option<&Value>, prefix: &mut Path, out: &mut Vec<Path>) {
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) if !x.is_empty() && !y.is_empty() => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                prefix.push(k.clone());
                diff(x.get(k), y.get(k), prefix, out);
                prefix.pop();
            }
        }
        (x, y) if x == y => {}
        _ => out.push(prefix.clone()),
    }
}

/// Whether one path lies inside the other (or they are equal).
pub fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

pub fn get_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.get(k))
}

pub fn remove_path(v: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for k in parent {
        match cur.get_mut(k) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Value::Object(m) = cur {
        m.remove(last);
    }
}

/// Applied fields win; objects merge, lists and scalars replace; `null` removes.
pub fn deep_merge(live: &mut Value, applied: &Value) {
    merge_patch(live, applied);
}

/// A field path as Kubernetes prints it in conflicts: `.spec.interval`.
pub fn dotted(path: &[String]) -> String {
    path.iter().map(|p| format!(".{p}")).collect()
}

/// The FieldsV1 tree of a field set: `{"f:spec":{"f:interval":{}}}`.
pub fn fields_v1(paths: &std::collections::BTreeSet<Path>) -> Value {
    let mut root = Value::Object(Map::new());
    for p in paths {
        let mut cur = &mut root;
        for k in p {
            let Value::Object(m) = cur else { break };
            cur = m
                .entry(format!("f:{k}"))
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    root
}

/// One requirement of a label selector.
#[derive(Debug, Clone)]
enum Req {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector`, all requirements ANDed.
#[derive(Debug, Clone, Default)]
pub struct LabelSelector(Vec<Req>);

impl LabelSelector {
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            reqs.push(parse_req(part)?);
        }
        Ok(LabelSelector(reqs))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v.as_str()),
            Req::Ne(k, v) => get(k) != Some(v.as_str()),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
        })
    }
}

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn valid_label_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 316
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

fn valid_label_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn parse_req(part: &str) -> Result<Req, String> {
    let bad = || format!("unable to parse requirement: {part:?}");
    let check = |k: &str, vs: &[&str]| -> Result<(), String> {
        if !valid_label_key(k) {
            return Err(format!("invalid label key {k:?}"));
        }
        if let Some(v) = vs.iter().find(|v| !valid_label_value(v)) {
            return Err(format!("invalid label value: {v:?}"));
        }
        Ok(())
    };
    if let Some(k) = part.strip_prefix('!') {
        let k = k.trim();
        check(k, &[])?;
        return Ok(Req::NotExists(k.into()));
    }
    for (op, is_in) in [(" notin ", false), (" in ", true)] {
        if let Some((k, rest)) = part.split_once(op) {
            let (k, rest) = (k.trim(), rest.trim());
            let inner = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(bad)?;
            let vs: Vec<&str> = inner.split(',').map(str::trim).collect();
            check(k, &vs)?;
            let vs = vs.into_iter().map(String::from).collect();
            return Ok(if is_in {
                Req::In(k.into(), vs)
            } else {
                Req::NotIn(k.into(), vs)
            });
        }
    }
    for (op, ne) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((k, v)) = part.split_once(op) {
            let (k, v) = (k.trim(), v.trim());
            check(k, &[v])?;
            return Ok(if ne {
                Req::Ne(k.into(), v.into())
            } else {
                Req::Eq(k.into(), v.into())
            });
        }
    }
    if part.contains(|c: char| c.is_whitespace() || "()<>".contains(c)) {
        return Err(bad());
    }
    check(part, &[])?;
    Ok(Req::Exists(part.into()))
}

/// A parsed `fieldSelector` over `metadata.name` and `metadata.namespace`.
#[derive(Debug, Clone, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<FieldSelector, String> {
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, eq, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: {part:?}; can't understand {part:?}"
                ));
            };
            let field = field.trim();
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(format!(
                    "field label not supported: {field} (only metadata.name and metadata.namespace)"
                ));
            }
            reqs.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector(reqs))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, eq, value)| {
            let key = field.trim_start_matches("metadata.");
            let actual = obj
                .get("metadata")
                .and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .unwrap_or("");
            (actual == value) == *eq
        })
    }
}

/// Decodes one `application/x-www-form-urlencoded` component.
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The documents of a YAML stream as JSON (empty documents left out).
pub fn yaml_docs(text: &str) -> Result<Vec<Value>, String> {
    let docs = yaml_rust2::YamlLoader::load_from_str(text)
        .map_err(|e| format!("error converting YAML to JSON: {e}"))?;
    docs.iter()
        .filter(|d| !d.is_null())
        .map(yaml_value)
        .collect()
}

fn yaml_value(y: &yaml_rust2::Yaml) -> Result<Value, String> {
    use yaml_rust2::Yaml;
    Ok(match y {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(r) => r
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("error converting YAML to JSON: bad number {r:?}"))?,
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_value).collect::<Result<_, _>>()?),
        Yaml::Hash(h) => {
            let mut m = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => {
                        return Err(format!(
                            "error converting YAML to JSON: unsupported map key {other:?}"
                        ));
                    }
                };
                m.insert(key, yaml_value(v)?);
            }
            Value::Object(m)
        }
        Yaml::Alias(_) | Yaml::BadValue => {
            return Err("error converting YAML to JSON: aliases are not supported".into());
        }
    })
}

/// A request body as Kubernetes reads it: JSON, or YAML where the media
/// type allows it (one document).
pub fn body_value(body: &[u8], yaml: bool) -> Result<Value, String> {
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(e) if !yaml => Err(format!("the request body is not valid JSON: {e}")),
        Err(_) => {
            let text = std::str::from_utf8(body)
                .map_err(|_| "the request body is not UTF-8".to_string())?;
            let mut docs = yaml_docs(text)?;
            match docs.len() {
                1 => Ok(docs.remove(0)),
                0 => Err("the request body is empty".into()),
                _ => Err("the request body holds more than one YAML document".into()),
            }
        }
    }
}

/// RFC 3339 in UTC with second precision, as Kubernetes prints timestamps.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_798_770_148), "2027-01-01T02:22:28Z");
    }

    #[test]
    fn url_decode_plus_and_percent() {
        assert_eq!(url_decode("a+in+%28x%2Cy%29"), "a in (x,y)");
        assert_eq!(url_decode("100%"), "100%");
    }

    #[test]
    fn selectors() {
        let o = json!({"metadata": {"name": "n", "labels": {"a": "1", "b": "x"}}});
        let ok = |s: &str| LabelSelector::parse(s).expect("parse").matches(&o);
        assert!(ok("a=1"));
        assert!(ok("a==1,b in (x, y)"));
        assert!(!ok("a!=1"));
        assert!(ok("c!=1"));
        assert!(ok("b notin (y),a,!c"));
        assert!(!ok("!a"));
        assert!(!ok("c in (1)"));
        assert!(LabelSelector::parse("a in x").is_err());
        assert!(LabelSelector::parse("a b").is_err());
        let f = FieldSelector::parse("metadata.name=n").expect("parse");
        assert!(f.matches(&o));
        assert!(FieldSelector::parse("spec.x=1").is_err());
    }

    #[test]
    fn json_patch_ops() {
        let mut d = json!({"a": [1, 2], "b": {"c": 1}});
        let p = json!([
            {"op": "test", "path": "/b/c", "value": 1},
            {"op": "add", "path": "/a/-", "value": 3},
            {"op": "replace", "path": "/b/c", "value": 2},
            {"op": "remove", "path": "/a/0"},
            {"op": "add", "path": "/d~1e", "value": true},
        ]);
        assert!(json_patch(&mut d, &p).is_ok());
        assert_eq!(d, json!({"a": [2, 3], "b": {"c": 2}, "d/e": true}));
        let bad = json!([{"op": "test", "path": "/b/c", "value": 9}]);
        assert!(matches!(
            json_patch(&mut d, &bad),
            Err(JsonPatchError::Failed(_))
        ));
    }
}
