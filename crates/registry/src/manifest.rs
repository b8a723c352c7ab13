//! Reading platforms out of manifests: an image index (OCI or Docker
//! manifest list) names them per entry, a single image's config blob names
//! its one. Everything here reads untrusted bytes, so every field is checked
//! before it is used, and errors name the field.

use crate::Platform;
use crate::tags::printable;
use serde_json::Value;

pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const IMAGE_CONFIGS: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// What a manifest says about platforms.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Manifest {
    /// An index: the platforms of its entries, attestations left out, and
    /// the digest of the first such entry.
    Index {
        platforms: Vec<Platform>,
        first: Option<String>,
    },
    /// One image: its platform is in the config blob with this digest.
    Image { config: String },
}

/// The OCI digest grammar, `algorithm:encoded`, where `algorithm` is
/// components of `[a-z0-9]` joined by one of `+._-` and `encoded` is
/// `[A-Za-z0-9=_-]+`; sha256 and sha512 must also have their exact length of
/// lowercase hex. A digest that passes is safe in a URL path.
pub fn is_valid_digest(s: &str) -> bool {
    let Some((algorithm, encoded)) = s.split_once(':') else {
        return false;
    };
    let components_ok = algorithm.split(['+', '.', '_', '-']).all(|c| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    let encoded_ok = !encoded.is_empty()
        && encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
    let hex = |n: usize| {
        encoded.len() == n
            && encoded
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    components_ok
        && encoded_ok
        && match algorithm {
            "sha256" => hex(64),
            "sha512" => hex(128),
            _ => true,
        }
}

/// Whether `body` hashes to `digest`; only sha256 and sha512 can be checked.
pub(crate) fn check_digest(digest: &str, body: &[u8]) -> Result<(), String> {
    use sha2::Digest as _;
    let actual = match digest.split_once(':').map(|(a, _)| a) {
        Some("sha256") => format!("sha256:{:x}", sha2::Sha256::digest(body)),
        Some("sha512") => format!("sha512:{:x}", sha2::Sha512::digest(body)),
        _ => {
            return Err(format!(
                "digest '{}' uses an algorithm this client cannot verify (sha256 or sha512 expected)",
                printable(digest)
            ));
        }
    };
    if actual == digest {
        Ok(())
    } else {
        Err(format!(
            "the blob's content is {actual}, not the {digest} the manifest names"
        ))
    }
}

fn json(body: &[u8], what: &str) -> Result<serde_json::Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(format!("{what} is not a JSON object")),
        Err(e) => Err(format!("{what} is not JSON: {}", printable(&e.to_string()))),
    }
}

/// Reads an index or an image manifest; `content_type` is the response's
/// header, used when the body names no `mediaType`.
pub(crate) fn parse_manifest(body: &[u8], content_type: Option<&str>) -> Result<Manifest, String> {
    let m = json(body, "manifest")?;
    let media_type = match m.get("mediaType") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("manifest field 'mediaType' is not a string".into()),
        None => content_type
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_string())
            .unwrap_or_default(),
    };
    let is_index = match media_type.as_str() {
        OCI_INDEX | DOCKER_LIST => true,
        OCI_MANIFEST | DOCKER_MANIFEST => false,
        // OCI makes mediaType optional; the shape tells then.
        _ if m.contains_key("manifests") => true,
        _ if m.contains_key("config") => false,
        other => {
            return Err(format!(
                "manifest is neither an image index nor an image manifest (media type '{}')",
                printable(other)
            ));
        }
    };
    if is_index {
        let Some(Value::Array(entries)) = m.get("manifests") else {
            return Err("image index has no 'manifests' list".into());
        };
        let mut out = Vec::new();
        let mut first = None;
        for (i, entry) in entries.iter().enumerate() {
            // An entry without a platform (an artifact, a nested index) runs on nothing in particular.
            let Some(p) = entry.get("platform") else {
                continue;
            };
            let Value::Object(p) = p else {
                return Err(format!("manifests[{i}].platform is not an object"));
            };
            let platform = platform(p, &format!("manifests[{i}].platform"))?;
            // BuildKit lists attestations (SBOM, provenance) as unknown/unknown.
            if platform.os == "unknown" && platform.architecture == "unknown" {
                continue;
            }
            if first.is_none()
                && let Some(d) = entry.get("digest").and_then(Value::as_str)
                && is_valid_digest(d)
            {
                first = Some(d.to_string());
            }
            out.push(platform);
        }
        return Ok(Manifest::Index {
            platforms: out,
            first,
        });
    }
    let Some(Value::Object(config)) = m.get("config") else {
        return Err("image manifest has no 'config' descriptor".into());
    };
    if let Some(mt) = config.get("mediaType").and_then(Value::as_str)
        && !IMAGE_CONFIGS.contains(&mt)
    {
        return Err(format!(
            "config media type '{}' is not an image config, so the manifest names no platform",
            printable(mt)
        ));
    }
    let digest = match config.get("digest") {
        Some(Value::String(d)) => d,
        _ => return Err("image manifest's config has no 'digest'".into()),
    };
    if !is_valid_digest(digest) {
        return Err(format!(
            "config digest '{}' is not a digest (algorithm:hex, e.g. sha256: and 64 hex digits)",
            printable(digest)
        ));
    }
    Ok(Manifest::Image {
        config: digest.clone(),
    })
}

/// The `created` time an image config blob states, if any (RFC 3339).
pub(crate) fn parse_created(body: &[u8]) -> Result<Option<std::time::SystemTime>, String> {
    let c = json(body, "image config")?;
    match c.get("created") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => tagwarden_api::time::Time::parse(s)
            .map(|t| Some(t.system()))
            .ok_or_else(|| {
                format!(
                    "image config 'created' '{}' is not RFC 3339",
                    printable(&s.chars().take(80).collect::<String>())
                )
            }),
        Some(_) => Err("image config 'created' is not a string".into()),
    }
}

/// The platform an image config blob names.
pub(crate) fn parse_config(body: &[u8]) -> Result<Platform, String> {
    platform(&json(body, "image config")?, "image config")
}

/// `os`, `architecture` and an optional `variant` of `obj`; values must be
/// short names (`[A-Za-z0-9._-]`), as they end up in status and messages.
fn platform(obj: &serde_json::Map<String, Value>, at: &str) -> Result<Platform, String> {
    let field = |k: &str, required: bool| -> Result<Option<String>, String> {
        match obj.get(k) {
            None | Some(Value::Null) if !required => Ok(None),
            None | Some(Value::Null) => Err(format!("{at} has no '{k}'")),
            Some(Value::String(s)) if s.is_empty() && !required => Ok(None),
            Some(Value::String(s))
                if !s.is_empty()
                    && s.len() <= 64
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) =>
            {
                Ok(Some(s.clone()))
            }
            Some(Value::String(s)) => Err(format!(
                "{at}.{k} '{}' is not a platform name (1 to 64 of A-Z a-z 0-9 . _ -)",
                printable(&s.chars().take(80).collect::<String>())
            )),
            Some(_) => Err(format!("{at}.{k} is not a string")),
        }
    };
    Ok(Platform {
        os: field("os", true)?.unwrap_or_default(),
        architecture: field("architecture", true)?.unwrap_or_default(),
        variant: field("variant", false)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(String::from),
        }
    }

    const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn the_digest_grammar() {
        assert!(is_valid_digest(SHA));
        assert!(is_valid_digest(&format!("sha512:{}", "ab".repeat(64))));
        assert!(is_valid_digest(
            "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8"
        ));
        for bad in [
            "",
            "sha256",
            ":abc",
            "sha256:",
            "sha256:abc",
            &SHA.to_uppercase(),
            &format!("{SHA}0"),
            "sha256:../../../v2/_catalog",
            "sha256:ab/cd",
            "sha256:ab?x=1",
            "sha256:ab%2f",
            "SHA256:abc",
            "sha..256:abc",
            "-sha:abc",
        ] {
            assert!(!is_valid_digest(bad), "{bad}");
        }
    }

    #[test]
    fn indexes_and_manifest_lists_give_their_platforms_without_attestations() {
        let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[
            {"digest":"sha256:a","platform":{"os":"linux","architecture":"amd64"}},
            {"digest":"sha256:b","platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
            {"digest":"sha256:c","platform":{"os":"unknown","architecture":"unknown"}},
            {"digest":"sha256:d","platform":{"os":"windows","architecture":"amd64","os.version":"10.0.17763.1"}},
            {"digest":"sha256:e","artifactType":"application/example"}]}"#;
        assert_eq!(
            parse_manifest(index, None),
            Ok(Manifest::Index {
                platforms: vec![
                    p("linux", "amd64", None),
                    p("linux", "arm64", Some("v8")),
                    p("windows", "amd64", None),
                ],
                first: None,
            })
        );
        // No mediaType in the body: the header or the shape decides.
        let bare =
            br#"{"manifests":[{"platform":{"os":"linux","architecture":"s390x","variant":""}}]}"#;
        assert_eq!(
            parse_manifest(bare, Some(&format!("{OCI_INDEX}; charset=utf-8"))),
            Ok(Manifest::Index {
                platforms: vec![p("linux", "s390x", None)],
                first: None,
            })
        );
        assert_eq!(
            parse_manifest(bare, None),
            Ok(Manifest::Index {
                platforms: vec![p("linux", "s390x", None)],
                first: None,
            })
        );
    }

    #[test]
    fn an_image_manifest_points_at_its_config() {
        let m = format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{SHA}","size":2}},"layers":[]}}"#
        );
        assert_eq!(
            parse_manifest(m.as_bytes(), None),
            Ok(Manifest::Image { config: SHA.into() })
        );
        assert_eq!(
            parse_config(br#"{"os":"linux","architecture":"arm","variant":"v7","rootfs":{}}"#),
            Ok(p("linux", "arm", Some("v7")))
        );
    }

    #[test]
    fn malformed_manifests_say_what_is_wrong() {
        let err = |b: &str| parse_manifest(b.as_bytes(), None).expect_err(b);
        assert_eq!(
            err("{not json"),
            "manifest is not JSON: key must be a string at line 1 column 2"
        );
        assert_eq!(err("[1]"), "manifest is not a JSON object");
        assert_eq!(
            err(r#"{"mediaType":"text/plain"}"#),
            "manifest is neither an image index nor an image manifest (media type 'text/plain')"
        );
        assert_eq!(
            err(&format!(r#"{{"mediaType":"{OCI_INDEX}"}}"#)),
            "image index has no 'manifests' list"
        );
        assert_eq!(
            err(r#"{"manifests":[{"platform":{"os":"linux"}}]}"#),
            "manifests[0].platform has no 'architecture'"
        );
        assert_eq!(
            err(r#"{"manifests":[{"platform":{"os":"linux","architecture":"amd64\u001b[2J"}}]}"#),
            "manifests[0].platform.architecture 'amd64\\u{1b}[2J' is not a platform name (1 to 64 of A-Z a-z 0-9 . _ -)"
        );
        assert_eq!(
            err(r#"{"config":{"digest":"sha256:../../../v2/_catalog"}}"#),
            "config digest 'sha256:../../../v2/_catalog' is not a digest (algorithm:hex, e.g. sha256: and 64 hex digits)"
        );
        assert_eq!(
            err(
                r#"{"config":{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"sha256:x"}}"#
            ),
            "config media type 'application/vnd.cncf.helm.config.v1+json' is not an image config, so the manifest names no platform"
        );
        assert_eq!(
            err(&format!(r#"{{"mediaType":"{DOCKER_MANIFEST}"}}"#)),
            "image manifest has no 'config' descriptor"
        );
        assert_eq!(
            parse_config(br#"{"architecture":"amd64"}"#),
            Err("image config has no 'os'".into())
        );
    }

    #[test]
    fn blobs_are_checked_against_their_digest() {
        let body = b"{}";
        let good = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        assert_eq!(check_digest(good, body), Ok(()));
        assert_eq!(
            check_digest(SHA, body),
            Err(format!(
                "the blob's content is {good}, not the {SHA} the manifest names"
            ))
        );
        assert!(check_digest("md5:abc", body).is_err());
    }
}
