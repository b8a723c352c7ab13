//! Which registry hosts each cloud provider logs in to, as Flux checks
//! them before asking the cloud for a token: a provider whose host does not
//! match is a configuration error, not a puzzling 401.

/// A cloud whose registries tagwarden logs in to natively (`spec.provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    Aws,
    Gcp,
    Azure,
}

impl Provider {
    /// `spec.provider`'s value; `generic` (and anything else) is not a cloud.
    pub fn parse(s: &str) -> Option<Provider> {
        match s {
            "aws" => Some(Provider::Aws),
            "gcp" => Some(Provider::Gcp),
            "azure" => Some(Provider::Azure),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Aws => "aws",
            Provider::Gcp => "gcp",
            Provider::Azure => "azure",
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The registry host forms of a provider, for messages.
pub fn expected_hosts(provider: &str) -> &'static str {
    match provider {
        "aws" => {
            "<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn] (or another AWS partition's suffix) or public.ecr.aws"
        }
        "gcp" => "gcr.io, <region>.gcr.io or <region>-docker.pkg.dev",
        "azure" => "<name>.azurecr.io (or .azurecr.cn, .azurecr.de, .azurecr.us)",
        _ => "any host",
    }
}

/// The DNS suffixes of the AWS partitions ECR is served under.
const AWS_SUFFIXES: &[&str] = &[
    "amazonaws.com",
    "amazonaws.com.cn",
    "amazonaws.eu",
    "sc2s.sgov.gov",
    "c2s.ic.gov",
    "cloud.adc-e.uk",
    "csp.hci.ic.gov",
    "on.aws",
];

fn label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The region of a private ECR host,
/// `<account>.dkr.ecr[-fips].<region>.<partition suffix>` (or the dual-stack
/// `dkr-ecr` form); `us-east-1` for `public.ecr.aws`, whose login lives there.
pub fn ecr_region(host: &str) -> Option<&str> {
    if host.eq_ignore_ascii_case("public.ecr.aws") {
        return Some("us-east-1");
    }
    let (account, rest) = host.split_once('.')?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let rest = ["dkr.ecr-fips.", "dkr.ecr.", "dkr-ecr-fips.", "dkr-ecr."]
        .iter()
        .find_map(|p| {
            rest.get(..p.len())
                .filter(|head| head.eq_ignore_ascii_case(p))
                .map(|_| &rest[p.len()..])
        })?;
    let (region, suffix) = rest.split_once('.')?;
    (label(region) && AWS_SUFFIXES.iter().any(|s| suffix.eq_ignore_ascii_case(s))).then_some(region)
}

/// Whether `host` is ECR Public rather than a private registry.
pub fn is_ecr_public(host: &str) -> bool {
    host.eq_ignore_ascii_case("public.ecr.aws")
}

fn ecr(host: &str) -> bool {
    ecr_region(host).is_some()
}

fn gcp(host: &str) -> bool {
    host == "gcr.io"
        || host.strip_suffix(".gcr.io").is_some_and(label)
        || host.strip_suffix("-docker.pkg.dev").is_some_and(label)
}

fn azure(host: &str) -> bool {
    [".azurecr.io", ".azurecr.cn", ".azurecr.de", ".azurecr.us"]
        .iter()
        .any(|suffix| host.strip_suffix(suffix).is_some_and(label))
}

/// Whether `provider` logs in to `host` (a registry host, no port).
pub fn host_matches(provider: &str, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    match provider {
        "aws" => ecr(&host),
        "gcp" => gcp(&host),
        "azure" => azure(&host),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_hosts_as_flux_checks_them() {
        let table = [
            (
                "aws",
                "123456789012.dkr.ecr.me-central-1.amazonaws.com",
                true,
            ),
            (
                "aws",
                "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com",
                true,
            ),
            (
                "aws",
                "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
                true,
            ),
            ("aws", "public.ecr.aws", true),
            ("aws", "12345.dkr.ecr.us-east-1.amazonaws.com", false),
            (
                "aws",
                "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.io",
                false,
            ),
            ("aws", "123456789012.dkr.ecr..amazonaws.com", false),
            ("aws", "ghcr.io", false),
            ("aws", "123456789012.dkr-ecr.eu-west-1.on.aws", true),
            (
                "aws",
                "123456789012.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk",
                true,
            ),
            ("aws", "123456789012.dkr.ecr.us-east-1.amazonaws.org", false),
            ("gcp", "gcr.io", true),
            ("gcp", "eu.gcr.io", true),
            ("gcp", "europe-west1-docker.pkg.dev", true),
            ("gcp", "gcr.io.evil.io", false),
            ("gcp", "docker.pkg.dev", false),
            ("azure", "myregistry.azurecr.io", true),
            ("azure", "myregistry.azurecr.cn", true),
            ("azure", "azurecr.io", false),
            ("azure", "myregistry.azurecr.io.evil.io", false),
            ("generic", "anything.example", true),
        ];
        for (provider, host, ok) in table {
            assert_eq!(host_matches(provider, host), ok, "{provider} {host}");
        }
        assert_eq!(
            ecr_region("123456789012.dkr.ecr.me-central-1.amazonaws.com"),
            Some("me-central-1")
        );
        assert_eq!(ecr_region("public.ecr.aws"), Some("us-east-1"));
        assert_eq!(ecr_region("gcr.io"), None);
        assert_eq!(Provider::parse("generic"), None);
        assert_eq!(
            Provider::parse("azure").map(Provider::as_str),
            Some("azure")
        );
        assert!(host_matches(
            "aws",
            "123456789012.DKR.ECR.us-east-1.AMAZONAWS.com"
        ));
    }
}
