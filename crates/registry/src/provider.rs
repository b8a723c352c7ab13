//! Which registry hosts each cloud provider logs in to, as Flux checks
//! them before asking the cloud for a token: a provider whose host does not
//! match is a configuration error, not a puzzling 401.

/// The registry host forms of a provider, for messages.
pub fn expected_hosts(provider: &str) -> &'static str {
    match provider {
        "aws" => "<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn] or public.ecr.aws",
        "gcp" => "gcr.io, <region>.gcr.io or <region>-docker.pkg.dev",
        "azure" => "<name>.azurecr.io (or .azurecr.cn, .azurecr.de, .azurecr.us)",
        _ => "any host",
    }
}

fn label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn ecr(host: &str) -> bool {
    if host == "public.ecr.aws" {
        return true;
    }
    let parts: Vec<&str> = host.split('.').collect();
    // <account>.dkr.(ecr|ecr-fips).<region>.amazonaws.com[.cn]
    let tail_ok = matches!(
        &parts[..],
        [_, "dkr", _, _, "amazonaws", "com"] | [_, "dkr", _, _, "amazonaws", "com", "cn"]
    );
    tail_ok
        && parts[0].len() == 12
        && parts[0].bytes().all(|b| b.is_ascii_digit())
        && matches!(parts[2], "ecr" | "ecr-fips")
        && label(parts[3])
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
        assert!(host_matches(
            "aws",
            "123456789012.DKR.ECR.us-east-1.AMAZONAWS.com"
        ));
    }
}
