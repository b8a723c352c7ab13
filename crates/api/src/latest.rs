//! `status.latestRef` of an ImagePolicy: what every setter writes from.

use crate::image::ImageRef;

/// An ImagePolicy's `status.latestRef`: image name, tag, optional digest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LatestRef {
    /// The repository's `spec.image`, as written.
    pub name: String,
    pub tag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl LatestRef {
    /// Reads `IMAGE:TAG[@DIGEST]`; IMAGE may carry a registry port
    /// (`localhost:5000/app:v1`). The image is kept as written.
    pub fn parse(s: &str) -> Result<LatestRef, LatestRefError> {
        let err = |reason: &str| LatestRefError {
            value: s.to_string(),
            reason: reason.to_string(),
        };
        let (named, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (s, None),
        };
        if let Some(d) = digest {
            let ok = d.split_once(':').is_some_and(|(alg, hex)| {
                !alg.is_empty()
                    && alg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+._-".contains(&b))
                    && !hex.is_empty()
                    && hex
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"=_-".contains(&b))
            });
            if !ok {
                return Err(err("digest must look like sha256:<hex>"));
            }
        }
        let last_slash = named.rfind('/').map_or(0, |i| i + 1);
        let Some(colon) = named[last_slash..].rfind(':') else {
            return Err(err("expected IMAGE:TAG[@DIGEST]; the tag is missing"));
        };
        let (image, tag) = (
            &named[..last_slash + colon],
            &named[last_slash + colon + 1..],
        );
        let tag_ok = tag.len() <= 128
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !tag_ok {
            return Err(err(&format!("invalid tag '{tag}'")));
        }
        ImageRef::parse(image).map_err(|e| err(&e.to_string()))?;
        Ok(LatestRef {
            name: image.to_string(),
            tag: tag.to_string(),
            digest: digest.map(str::to_string),
        })
    }
}

impl std::fmt::Display for LatestRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)?;
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// A latest image that is not `IMAGE:TAG[@DIGEST]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("latest image '{value}': {reason}")]
pub struct LatestRefError {
    pub value: String,
    pub reason: String,
}
