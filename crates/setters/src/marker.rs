//! `# {"$imagepolicy": "NS:NAME[:FIELD]"}` comments, read as Flux reads them.

use std::collections::HashMap;

/// The key Flux registers as its setter short-hand.
pub const MARKER_KEY: &str = "$imagepolicy";

/// The setter named by a comment, or `None` when the comment is not a marker.
///
/// `comment` is the text after the comment's `#`. Flux trims every leading
/// `#`, decodes the rest as a JSON object of strings and takes its
/// `$imagepolicy` entry, so other string keys may sit beside it; anything
/// else (a value other than a string or null, an empty setter, trailing text,
/// typographic quotes) is an ordinary comment.
pub fn parse(comment: &str) -> Option<String> {
    let body = comment.trim_start_matches('#');
    // Cheap reject before JSON: every marker is an object.
    if !body.trim_start().starts_with('{') {
        return None;
    }
    // Go decodes `null` into a string as "": still a map of strings.
    let mut map: HashMap<String, Option<String>> = serde_json::from_str(body).ok()?;
    map.remove(MARKER_KEY).flatten().filter(|s| !s.is_empty())
}

/// Which part of a policy's latest image a setter writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `NS:NAME`: `IMAGE:TAG`, or `IMAGE:TAG@DIGEST` when there is a digest.
    Image,
    /// `NS:NAME:tag`
    Tag,
    /// `NS:NAME:name`: the image name without tag.
    Name,
    /// `NS:NAME:digest`
    Digest,
}

/// A setter string split into its parts: `NS:NAME` or `NS:NAME:FIELD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setter<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub field: Field,
}

impl<'a> Setter<'a> {
    /// `None` for strings no policy could produce (wrong number of parts,
    /// empty parts, unknown field, a namespace or name Kubernetes refuses).
    pub fn parse(s: &'a str) -> Option<Setter<'a>> {
        let mut parts = s.split(':');
        let namespace = parts.next().filter(|p| !p.is_empty())?;
        let name = parts.next().filter(|p| !p.is_empty())?;
        let field = match parts.next() {
            None => Field::Image,
            Some("tag") => Field::Tag,
            Some("name") => Field::Name,
            Some("digest") => Field::Digest,
            Some(_) => return None,
        };
        if parts.next().is_some()
            || !tagwarden_api::names::is_label(namespace)
            || !tagwarden_api::names::is_subdomain(name)
        {
            return None;
        }
        Some(Setter {
            namespace,
            name,
            field,
        })
    }
}

/// The setter string a policy answers to for `field`.
pub fn setter_string(namespace: &str, name: &str, field: Field) -> String {
    match field {
        Field::Image => format!("{namespace}:{name}"),
        Field::Tag => format!("{namespace}:{name}:tag"),
        Field::Name => format!("{namespace}:{name}:name"),
        Field::Digest => format!("{namespace}:{name}:digest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_as_flux_reads_them() {
        let table: &[(&str, Option<&str>)] = &[
            (
                r#" {"$imagepolicy": "flux-system:podinfo"}"#,
                Some("flux-system:podinfo"),
            ),
            (
                r#"{"$imagepolicy":"flux-system:podinfo:tag"}"#,
                Some("flux-system:podinfo:tag"),
            ),
            (
                "#   {  \"$imagepolicy\" :\t\"ns:p:name\"  }  ",
                Some("ns:p:name"),
            ),
            // JSON escapes are JSON.
            (r#" {"\u0024imagepolicy": "ns:p"}"#, Some("ns:p")),
            // A duplicated key collapses to one entry, the last.
            (
                r#" {"$imagepolicy": "ns:a", "$imagepolicy": "ns:b"}"#,
                Some("ns:b"),
            ),
            // The seed lab's typographic quotes are not JSON.
            (" {“$imagepolicy”: “flux-system:vote”}", None),
            // Extra string keys are allowed, as in Flux's map of strings.
            (r#" {"$imagepolicy": "ns:p", "other": "x"}"#, Some("ns:p")),
            (
                r#" {"note": "bumped by flux", "$imagepolicy": "ns:p:tag", "x": ""}"#,
                Some("ns:p:tag"),
            ),
            // A value that is not a string makes the whole comment no marker.
            (r#" {"$imagepolicy": "ns:p", "replicas": 2}"#, None),
            (r#" {"$imagepolicy": "ns:p", "x": null}"#, Some("ns:p")),
            (r#" {"$imagepolicy": null}"#, None),
            (r#" {"$imagepolicy": "ns:p", "x": {"y": "z"}}"#, None),
            (r#" {"other": "x"}"#, None),
            (r#" {"$imagepolicy": ""}"#, None),
            (r#" {"$imagepolicy": 1}"#, None),
            (r#" {"$ImagePolicy": "ns:p"}"#, None),
            (r#" {"$imagepolicy": "ns:p"} trailing"#, None),
            (r#" see {"$imagepolicy": "ns:p"}"#, None),
            (" plain comment", None),
            ("", None),
        ];
        for (comment, want) in table {
            assert_eq!(parse(comment).as_deref(), *want, "{comment:?}");
        }
    }

    #[test]
    fn setter_strings_split_into_parts() {
        let s = Setter::parse("flux-system:podinfo:tag").expect("valid");
        assert_eq!(
            (s.namespace, s.name, s.field),
            ("flux-system", "podinfo", Field::Tag)
        );
        assert_eq!(Setter::parse("ns:p").map(|s| s.field), Some(Field::Image));
        for bad in [
            "ns",
            "ns:",
            ":p",
            "ns:p:version",
            "ns:p:tag:x",
            "",
            "../../etc:p",
            "ns:../../etc",
            "Flux_System!:p",
            "ns:P",
        ] {
            assert_eq!(Setter::parse(bad), None, "{bad}");
        }
        for f in [Field::Image, Field::Tag, Field::Name, Field::Digest] {
            let s = setter_string("a", "b", f);
            assert_eq!(Setter::parse(&s).map(|p| p.field), Some(f), "{s}");
        }
    }
}
