//! CustomResourceDefinitions: what a CRD object must hold to be accepted,
//! the resources it serves, and the structural-schema pass every custom
//! object goes through (unknown fields pruned, types, required and enum
//! checked), as apiextensions does it.

use super::store::Resource;
use serde_json::{Map, Value};

/// The resources a CRD serves (one per served version), or why it is invalid
/// as `(field, message)`.
pub fn resources_of(crd: &Value) -> Result<Vec<Resource>, (String, String)> {
    let err = |f: &str, m: &str| Err((f.to_string(), m.to_string()));
    let spec = crd.get("spec").cloned().unwrap_or(Value::Null);
    let s = |p: &str| spec.pointer(p).and_then(Value::as_str).unwrap_or("");
    let (group, plural, kind, scope) = (
        s("/group"),
        s("/names/plural"),
        s("/names/kind"),
        s("/scope"),
    );
    if group.is_empty() {
        return err("spec.group", "Required value");
    }
    if !group.contains('.') {
        return err(
            "spec.group",
            &format!("Invalid value: {group:?}: should be a domain with at least one dot"),
        );
    }
    if plural.is_empty() {
        return err("spec.names.plural", "Required value");
    }
    if kind.is_empty() {
        return err("spec.names.kind", "Required value");
    }
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name != format!("{plural}.{group}") {
        return err(
            "metadata.name",
            &format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
        );
    }
    let namespaced = match scope {
        "Namespaced" => true,
        "Cluster" => false,
        other => {
            return err(
                "spec.scope",
                &format!(
                    "Unsupported value: {other:?}: supported values: \"Cluster\", \"Namespaced\""
                ),
            );
        }
    };
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        return err(
            "spec.versions",
            "Invalid value: must have at least one version",
        );
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if storage != 1 {
        return err(
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version",
        );
    }
    let mut out = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let vname = v.get("name").and_then(Value::as_str).unwrap_or("");
        if vname.is_empty() {
            return err(&format!("spec.versions[{i}].name"), "Required value");
        }
        let schema = v.pointer("/schema/openAPIV3Schema");
        if schema.is_none() {
            return err(
                &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "Required value: schemas are required",
            );
        }
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        out.push(Resource {
            namespaced,
            status_subresource: v.pointer("/subresources/status").is_some(),
            custom: true,
            schema: schema.cloned(),
            ..Resource::new(group, vname, plural, kind)
        });
    }
    Ok(out)
}

/// The status a real server gives an accepted CRD.
pub fn accepted_status(crd: &Value, now: &str) -> Value {
    let storage: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let cond = |t: &str, reason: &str, msg: &str| serde_json::json!({"type": t, "status": "True", "lastTransitionTime": now, "reason": reason, "message": msg});
    serde_json::json!({
        "acceptedNames": crd.pointer("/spec/names").cloned().unwrap_or(Value::Null),
        "conditions": [
            cond("NamesAccepted", "NoConflicts", "no conflicts found"),
            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "storedVersions": storage,
    })
}

/// Prunes the fields `schema` does not know and returns the violations as
/// `field: message`, as a structural schema does. apiVersion, kind and
/// metadata are the server's and left alone.
pub fn check(obj: &mut Value, schema: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let Value::Object(m) = obj else {
        return errs;
    };
    let props = schema.get("properties");
    let keys: Vec<String> = m.keys().cloned().collect();
    for k in keys {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match props.and_then(|p| p.get(&k)) {
            Some(s) => {
                if m[&k].is_null() && s.get("nullable").and_then(Value::as_bool) != Some(true) {
                    m.remove(&k);
                    continue;
                }
                if let Some(v) = m.get_mut(&k) {
                    walk(v, s, &k, &mut errs);
                }
            }
            None if preserves(schema) => {}
            None => {
                m.remove(&k);
            }
        }
    }
    required(m, schema, "", &mut errs);
    errs
}

fn preserves(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

fn required(m: &Map<String, Value>, schema: &Value, path: &str, errs: &mut Vec<String>) {
    for r in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if matches!(r, "apiVersion" | "kind" | "metadata") && path.is_empty() {
            continue;
        }
        if !m.contains_key(r) {
            let field = if path.is_empty() {
                r.to_string()
            } else {
                format!("{path}.{r}")
            };
            errs.push(format!("{field}: Required value"));
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn walk(v: &mut Value, schema: &Value, path: &str, errs: &mut Vec<String>) {
    let got = type_name(v);
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        if got != "integer" && got != "string" {
            errs.push(format!("{path}: Invalid value: \"{got}\": {path} in body must be of type int-or-string: \"{got}\""));
        }
        return;
    }
    if let Some(want) = schema.get("type").and_then(Value::as_str) {
        let ok = want == got || (want == "number" && got == "integer");
        if !ok {
            errs.push(format!(
                "{path}: Invalid value: \"{got}\": {path} in body must be of type {want}: \"{got}\""
            ));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        errs.push(format!(
            "{path}: Unsupported value: {v}: supported values: {}",
            list.join(", ")
        ));
    }
    match v {
        Value::Object(m) => {
            let props = schema.get("properties");
            let extra = schema.get("additionalProperties");
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let sub = props
                    .and_then(|p| p.get(&k))
                    .or(extra.filter(|e| e.is_object()));
                let child = format!("{path}.{k}");
                match sub {
                    Some(s) => {
                        if m[&k].is_null()
                            && s.get("nullable").and_then(Value::as_bool) != Some(true)
                        {
                            m.remove(&k);
                            continue;
                        }
                        if let Some(c) = m.get_mut(&k) {
                            walk(c, s, &child, errs);
                        }
                    }
                    None if preserves(schema) || extra == Some(&Value::Bool(true)) => {}
                    None => {
                        m.remove(&k);
                    }
                }
            }
            required(m, schema, path, errs);
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, c) in items.iter_mut().enumerate() {
                    walk(c, s, &format!("{path}[{i}]"), errs);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prunes_and_checks() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["interval"], "properties": {
                "interval": {"type": "string"},
                "order": {"type": "string", "enum": ["asc", "desc"]},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "port": {"x-kubernetes-int-or-string": true},
                "list": {"type": "array", "items": {"type": "integer"}},
            }},
            "status": {"type": "object", "properties": {"latestRef": {"type": "object", "properties": {"tag": {"type": "string"}}}}},
        }});
        let mut o = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
            "spec": {"interval": "1m", "labels": {"a": "b"}, "free": {"x": 1}, "port": 80, "list": [1, 2], "gone": 1},
            "status": {"latestRef": {"tag": "1"}, "latestImage": "app:1"}, "extra": true});
        assert!(check(&mut o, &schema).is_empty());
        assert_eq!(o["spec"].get("gone"), None);
        assert_eq!(o["status"].get("latestImage"), None);
        assert_eq!(o.get("extra"), None);
        assert_eq!(o["spec"]["free"], json!({"x": 1}));
        let mut bad = json!({"spec": {"order": "up", "list": ["a"]}});
        assert_eq!(
            check(&mut bad, &schema),
            [
                "spec.list[0]: Invalid value: \"string\": spec.list[0] in body must be of type integer: \"string\"",
                "spec.order: Unsupported value: \"up\": supported values: \"asc\", \"desc\"",
                "spec.interval: Required value",
            ]
        );
    }
}
