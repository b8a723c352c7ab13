//! Image references as an ImageRepository's `spec.image` names them, made
//! canonical the way Flux (through go-containerregistry) does: `alpine` is
//! `index.docker.io/library/alpine`.

/// Docker Hub's registry host in canonical names.
pub const DOCKER_HUB: &str = "index.docker.io";

/// A repository in a registry, without tag or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// `host[:port]`, e.g. `ghcr.io`, `localhost:5000`, `index.docker.io`.
    pub registry: String,
    /// Path inside the registry, e.g. `stefanprodan/podinfo`, `library/alpine`.
    pub repository: String,
}

/// Why `spec.image` is not usable; Flux reports these as `ImageURLInvalid`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error("image is empty")]
    Empty,
    #[error("image '{0}' should not start with URL scheme; remove '{1}://'")]
    Scheme(String, String),
    #[error("image '{0}' should not contain a tag; remove ':{1}'")]
    Tag(String, String),
    #[error("image '{0}' should not contain a digest; remove '@{1}'")]
    Digest(String, String),
    #[error(
        "image '{0}': invalid repository '{1}': expected lowercase letters, digits and separators (. _ - /)"
    )]
    Repository(String, String),
    #[error("image '{0}': invalid registry host '{1}'")]
    Registry(String, String),
}

impl ImageRef {
    /// Parses `spec.image`.
    pub fn parse(image: &str) -> Result<ImageRef, ImageRefError> {
        let err_image = || image.to_string();
        if image.is_empty() {
            return Err(ImageRefError::Empty);
        }
        if let Some((scheme, _)) = image.split_once("://") {
            return Err(ImageRefError::Scheme(err_image(), scheme.to_string()));
        }
        let (rest, digest) = match image.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (image, None),
        };
        if let Some(d) = digest {
            return Err(ImageRefError::Digest(err_image(), d.to_string()));
        }
        let (first, remainder) = rest.split_once('/').unwrap_or(("", rest));
        let is_host = !first.is_empty()
            && (first.contains('.') || first.contains(':') || first == "localhost");
        let (registry, path) = if is_host {
            (first.to_string(), remainder)
        } else {
            (DOCKER_HUB.to_string(), rest)
        };
        // A ':' in the last path component is a tag.
        let last_slash = path.rfind('/').map_or(0, |i| i + 1);
        if let Some(colon) = path[last_slash..].find(':') {
            let tag = &path[last_slash + colon + 1..];
            return Err(ImageRefError::Tag(err_image(), tag.to_string()));
        }
        let registry = match registry.as_str() {
            "docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
            _ => registry,
        };
        if !valid_host(&registry) {
            return Err(ImageRefError::Registry(err_image(), registry));
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        if !valid_repository(&repository) {
            return Err(ImageRefError::Repository(err_image(), path.to_string()));
        }
        Ok(ImageRef {
            registry,
            repository,
        })
    }

    /// `registry/repository`, as Flux's `status.canonicalImageName`.
    pub fn canonical(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Whether go-containerregistry would talk plain HTTP to this registry
    /// without being told: loopback and private-network hosts.
    pub fn defaults_to_http(&self) -> bool {
        let host = host_of(&self.registry);
        if host == "localhost" || host == "::1" {
            return true;
        }
        match host.parse::<std::net::Ipv4Addr>() {
            Ok(ip) => ip.is_loopback() || ip.is_private(),
            Err(_) => false,
        }
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

fn host_of(registry: &str) -> &str {
    if let Some(v6) = registry.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    registry.rsplit_once(':').map_or(registry, |(h, _)| h)
}

fn valid_host(registry: &str) -> bool {
    let (host, port) = if registry.starts_with('[') {
        match registry.split_once(']') {
            Some((h, p)) => (&h[1..], p.strip_prefix(':')),
            None => return false,
        }
    } else {
        match registry.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        }
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b));
    port_ok && host_ok
}

/// Lowercase components `[a-z0-9]+([._-][a-z0-9]+)*` joined by `/`.
fn valid_repository(repo: &str) -> bool {
    repo.len() <= 255
        && repo.split('/').all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
                && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_as_flux_reports_them() {
        let table = [
            ("alpine", "index.docker.io/library/alpine"),
            ("library/alpine", "index.docker.io/library/alpine"),
            ("docker.io/alpine", "index.docker.io/library/alpine"),
            ("docker.io/org/app-name", "index.docker.io/org/app-name"),
            (
                "stefanprodan/podinfo",
                "index.docker.io/stefanprodan/podinfo",
            ),
            (
                "ghcr.io/stefanprodan/podinfo",
                "ghcr.io/stefanprodan/podinfo",
            ),
            ("localhost/app", "localhost/app"),
            ("localhost:5000/app", "localhost:5000/app"),
            ("127.0.0.1:35000/team/app", "127.0.0.1:35000/team/app"),
            (
                "123456789012.dkr.ecr.me-central-1.amazonaws.com/app-name",
                "123456789012.dkr.ecr.me-central-1.amazonaws.com/app-name",
            ),
            (
                "region-docker.pkg.dev/project-id/repo/app-name",
                "region-docker.pkg.dev/project-id/repo/app-name",
            ),
            ("[::1]:5000/app", "[::1]:5000/app"),
        ];
        for (input, want) in table {
            let r = ImageRef::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.canonical(), want, "{input}");
        }
    }

    #[test]
    fn tags_digests_and_schemes_are_refused() {
        let table = [
            (
                "ghcr.io/stefanprodan/podinfo:5.0.0",
                "should not contain a tag; remove ':5.0.0'",
            ),
            ("alpine:3", "should not contain a tag; remove ':3'"),
            ("localhost:5000/app:v1", "remove ':v1'"),
            (
                "alpine@sha256:abc",
                "should not contain a digest; remove '@sha256:abc'",
            ),
            (
                "https://ghcr.io/a/b",
                "should not start with URL scheme; remove 'https://'",
            ),
            ("ghcr.io/Upper/case", "invalid repository 'Upper/case'"),
            ("ghcr.io/a//b", "invalid repository"),
            ("ghcr.io/a/b-", "invalid repository"),
            ("host:port/x", "invalid registry host 'host:port'"),
            ("", "image is empty"),
        ];
        for (input, needle) in table {
            let e = ImageRef::parse(input).expect_err(input).to_string();
            assert!(e.contains(needle), "{input}: {e}");
        }
    }

    #[test]
    fn plain_http_by_default_only_for_local_hosts() {
        let http = |s: &str| ImageRef::parse(s).expect("valid").defaults_to_http();
        assert!(http("localhost:5000/a"));
        assert!(http("127.0.0.1:5000/a"));
        assert!(http("10.1.2.3/a"));
        assert!(http("[::1]:5000/a"));
        assert!(!http("ghcr.io/a"));
        assert!(!http("alpine"));
    }
}
