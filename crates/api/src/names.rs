//! Kubernetes object names: what the API server would refuse, refused here
//! too, so a name never becomes a path (`../../etc`) or a state key no
//! cluster could hold.

fn label_ok(part: &str) -> bool {
    let b = part.as_bytes();
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.first().is_some_and(edge)
        && b.last().is_some_and(edge)
        && b.iter().all(|c| edge(c) || *c == b'-')
}

/// Whether `name` is a DNS-1123 subdomain, as Kubernetes object names.
pub fn is_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(label_ok)
}

/// Whether `namespace` is a DNS-1123 label, as Kubernetes namespaces.
pub fn is_label(namespace: &str) -> bool {
    namespace.len() <= 63 && label_ok(namespace)
}

/// Why `name` is not a DNS-1123 subdomain (object names), if it is not.
pub(crate) fn subdomain_error(name: &str) -> Option<String> {
    if is_subdomain(name) {
        return None;
    }
    Some(format!(
        "invalid name '{}': must be a lowercase RFC 1123 subdomain of at most 253 characters \
         (lower case letters, digits, '-' and '.', starting and ending with a letter or digit)",
        name.escape_debug()
    ))
}

/// Why `namespace` is not a DNS-1123 label, if it is not.
pub(crate) fn label_error(namespace: &str) -> Option<String> {
    if is_label(namespace) {
        return None;
    }
    Some(format!(
        "invalid namespace '{}': must be a lowercase RFC 1123 label of at most 63 characters \
         (lower case letters, digits and '-', starting and ending with a letter or digit)",
        namespace.escape_debug()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_kubernetes() {
        for ok in [
            "podinfo",
            "a",
            "flux-system",
            "app.v1",
            "0abc",
            &"a".repeat(253),
        ] {
            assert_eq!(subdomain_error(ok), None, "{ok}");
        }
        for bad in [
            "",
            "../../etc",
            "Flux_System!",
            "-a",
            "a-",
            "a..b",
            ".a",
            &"a".repeat(254),
        ] {
            assert!(subdomain_error(bad).is_some(), "{bad}");
        }
        assert_eq!(label_error("flux-system"), None);
        for bad in ["a.b", "Flux_System!", "", &"a".repeat(64)] {
            assert!(label_error(bad).is_some(), "{bad}");
        }
    }
}
