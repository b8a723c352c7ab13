//! Kubernetes label selectors (`policySelector`, receiver `matchLabels`).

use crate::node::{Field, Node};
use std::collections::BTreeMap;

/// `matchLabels` and `matchExpressions`, all of which must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl LabelSelector {
    pub(crate) fn read(n: Node<'_>) -> Field<LabelSelector> {
        let match_labels = n.string_map("matchLabels")?;
        let mut match_expressions = Vec::new();
        for e in n.map_list("matchExpressions")? {
            let e = e.node();
            let key = e.required_str("key")?;
            let values = e.string_list("values")?.unwrap_or_default();
            let op = e.one_of("operator", &["In", "NotIn", "Exists", "DoesNotExist"], "")?;
            match_expressions.push(match op.as_str() {
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::DoesNotExist(key),
                _ => return Err(e.err("operator", "required field is missing")),
            });
        }
        Ok(LabelSelector {
            match_labels,
            match_expressions,
        })
    }

    /// Whether an object with `labels` is selected. An empty selector selects all.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| match r {
                Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
                Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
                Requirement::Exists(k) => labels.contains_key(k),
                Requirement::DoesNotExist(k) => !labels.contains_key(k),
            })
    }
}
