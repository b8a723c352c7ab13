//! Typed reads from a YAML tree that remember where they are, so every error
//! names the field (`spec.policy.semver.range: expected a string`).

use std::collections::BTreeMap;
use std::time::Duration;
use yaml_rust2::Yaml;

/// A field that is present but wrong, or required and missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

pub type Field<T> = Result<T, FieldError>;

/// A node and its dotted path from the document root.
#[derive(Clone, Copy)]
pub struct Node<'y> {
    yaml: &'y Yaml,
    path: &'y str,
}

/// A node that owns its path; reads borrow it through [`Owned::node`].
pub struct Owned<'y> {
    yaml: &'y Yaml,
    path: String,
}

impl<'y> Owned<'y> {
    pub fn root(yaml: &'y Yaml) -> Self {
        Owned {
            yaml,
            path: String::new(),
        }
    }

    pub fn node(&self) -> Node<'_> {
        Node {
            yaml: self.yaml,
            path: &self.path,
        }
    }
}

fn describe(y: &Yaml) -> &'static str {
    match y {
        Yaml::Real(_) => "a number",
        Yaml::Integer(_) => "a number",
        Yaml::String(_) => "a string",
        Yaml::Boolean(_) => "a boolean",
        Yaml::Array(_) => "a list",
        Yaml::Hash(_) => "a mapping",
        Yaml::Alias(_) => "an alias",
        Yaml::Null => "null",
        Yaml::BadValue => "an invalid value",
    }
}

impl<'y> Node<'y> {
    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub fn err(&self, key: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            field: self.child_path(key),
            message: message.into(),
        }
    }

    fn wrong(&self, key: &str, expected: &str, got: &Yaml) -> FieldError {
        self.err(key, format!("expected {expected}, got {}", describe(got)))
    }

    /// The raw child, `None` when absent or null.
    pub fn raw(&self, key: &str) -> Option<&'y Yaml> {
        match self.yaml {
            Yaml::Hash(h) => match h.get(&Yaml::String(key.to_string())) {
                None | Some(Yaml::Null) => None,
                Some(y) => Some(y),
            },
            _ => None,
        }
    }

    /// A child mapping, for further reads.
    pub fn map(&self, key: &str) -> Field<Option<Owned<'y>>> {
        match self.raw(key) {
            None => Ok(None),
            Some(y @ Yaml::Hash(_)) => Ok(Some(Owned {
                yaml: y,
                path: self.child_path(key),
            })),
            Some(y) => Err(self.wrong(key, "a mapping", y)),
        }
    }

    pub fn required_map(&self, key: &str) -> Field<Owned<'y>> {
        self.map(key)?
            .ok_or_else(|| self.err(key, "required field is missing"))
    }

    pub fn str(&self, key: &str) -> Field<Option<String>> {
        match self.raw(key) {
            None => Ok(None),
            Some(Yaml::String(s)) => Ok(Some(s.clone())),
            Some(y) => Err(self.wrong(key, "a string", y)),
        }
    }

    pub fn required_str(&self, key: &str) -> Field<String> {
        match self.str(key)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(self.err(key, "required field is missing")),
        }
    }

    /// A required object name: a DNS-1123 subdomain, as Kubernetes.
    pub fn name(&self, key: &str) -> Field<String> {
        let name = self.required_str(key)?;
        match crate::names::subdomain_error(&name) {
            None => Ok(name),
            Some(m) => Err(self.err(key, m)),
        }
    }

    /// An optional namespace: a DNS-1123 label, as Kubernetes.
    pub fn namespace(&self, key: &str) -> Field<Option<String>> {
        match self.str(key)? {
            None => Ok(None),
            Some(ns) => match crate::names::label_error(&ns) {
                None => Ok(Some(ns)),
                Some(m) => Err(self.err(key, m)),
            },
        }
    }

    /// A duration that must be more than zero (`interval`, `timeout`):
    /// zero would time out at once or spin.
    pub fn positive_duration(&self, key: &str) -> Field<Option<Duration>> {
        if let Some(s) = self.str(key)? {
            let negative = s
                .strip_prefix('-')
                .is_some_and(|rest| crate::duration::parse(rest).is_some());
            if negative || crate::duration::parse(&s) == Some(Duration::ZERO) {
                return Err(self.err(key, format!("must be greater than 0, got {s}")));
            }
        }
        self.duration(key)
    }

    pub fn bool(&self, key: &str) -> Field<bool> {
        match self.raw(key) {
            None => Ok(false),
            Some(Yaml::Boolean(b)) => Ok(*b),
            Some(y) => Err(self.wrong(key, "true or false", y)),
        }
    }

    pub fn string_list(&self, key: &str) -> Field<Option<Vec<String>>> {
        match self.raw(key) {
            None => Ok(None),
            Some(Yaml::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, y)| match y {
                    Yaml::String(s) => Ok(s.clone()),
                    other => Err(self.wrong(&format!("{key}[{i}]"), "a string", other)),
                })
                .collect::<Field<Vec<_>>>()
                .map(Some),
            Some(y) => Err(self.wrong(key, "a list of strings", y)),
        }
    }

    /// A list of mappings, each with its own path (`resources[2]`).
    pub fn map_list(&self, key: &str) -> Field<Vec<Owned<'y>>> {
        match self.raw(key) {
            None => Ok(Vec::new()),
            Some(Yaml::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, y)| match y {
                    Yaml::Hash(_) => Ok(Owned {
                        yaml: y,
                        path: self.child_path(&format!("{key}[{i}]")),
                    }),
                    other => Err(self.wrong(&format!("{key}[{i}]"), "a mapping", other)),
                })
                .collect(),
            Some(y) => Err(self.wrong(key, "a list", y)),
        }
    }

    /// A mapping of strings to strings (labels, messageTemplateValues).
    pub fn string_map(&self, key: &str) -> Field<BTreeMap<String, String>> {
        match self.raw(key) {
            None => Ok(BTreeMap::new()),
            Some(Yaml::Hash(h)) => h
                .iter()
                .map(|(k, v)| {
                    let Yaml::String(k) = k else {
                        return Err(self.wrong(key, "string keys", k));
                    };
                    match v {
                        Yaml::String(s) => Ok((k.clone(), s.clone())),
                        Yaml::Null => Ok((k.clone(), String::new())),
                        other => Err(self.wrong(&format!("{key}.{k}"), "a string", other)),
                    }
                })
                .collect(),
            Some(y) => Err(self.wrong(key, "a mapping of strings", y)),
        }
    }

    /// A Go duration such as `1m`, `1m0s` or `1h30m`.
    pub fn duration(&self, key: &str) -> Field<Option<Duration>> {
        match self.str(key)? {
            None => Ok(None),
            Some(s) => crate::duration::parse(&s).map(Some).ok_or_else(|| {
                self.err(
                    key,
                    format!("invalid duration '{s}': expected a duration like 30s, 1m or 1h30m"),
                )
            }),
        }
    }

    /// One of a fixed set of words; absent gives the default.
    pub fn one_of(&self, key: &str, allowed: &[&str], default: &str) -> Field<String> {
        match self.str(key)? {
            None => Ok(default.to_string()),
            Some(s) if allowed.contains(&s.as_str()) => Ok(s),
            Some(s) => Err(self.err(
                key,
                format!(
                    "invalid value '{s}': expected one of {}",
                    allowed.join(", ")
                ),
            )),
        }
    }
}
