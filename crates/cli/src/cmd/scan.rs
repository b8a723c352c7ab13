//! `tagwarden scan`: the tags an ImageRepository scan would record.

use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tagwarden_api::Kind;
use tagwarden_api::image::ImageRef;
use tagwarden_api::{LoadOptions, Manifests, Object};
use tagwarden_registry::{
    ClientOptions, ScanSettings, credentials_from_docker_config, printable, scan_result,
    scan_settings,
};

#[derive(Args)]
#[command(
    after_help = "Examples:\n  tagwarden scan ghcr.io/stefanprodan/podinfo\n  \
    tagwarden scan localhost:5000/team/app --docker-config ~/.docker/config.json --json\n  \
    tagwarden scan -f clusters/my-cluster/podinfo-registry.yaml --name podinfo"
)]
pub struct ScanArgs {
    /// Image repository without tag, e.g. ghcr.io/stefanprodan/podinfo.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    image: Option<String>,
    /// Scan the ImageRepository of this Flux manifest (file or folder), with
    /// the secretRef, certSecretRef and proxySecretRef Secrets found beside it.
    #[arg(short = 'f', long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Which ImageRepository of --file, when it holds several.
    #[arg(long, requires = "file")]
    name: Option<String>,
    /// Try HTTPS, then plain HTTP (ImageRepository spec.insecure).
    #[arg(long)]
    insecure: bool,
    /// A docker config.json / .dockerconfigjson holding credentials.
    #[arg(long, value_name = "FILE")]
    docker_config: Option<PathBuf>,
    /// Extra CA certificates (PEM) to trust, as certSecretRef's ca.crt.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS, as certSecretRef's tls.crt.
    #[arg(long, value_name = "FILE", requires = "key_file")]
    cert_file: Option<PathBuf>,
    /// Client key (PEM), as certSecretRef's tls.key.
    #[arg(long, value_name = "FILE", requires = "cert_file")]
    key_file: Option<PathBuf>,
    /// Proxy URL, with credentials if needed (proxySecretRef).
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
    /// Go regular expression of tags to drop; repeatable. Replaces the
    /// default '^.*\.sig$' as a user exclusionList does.
    #[arg(long = "exclude", value_name = "RE")]
    exclude: Vec<String>,
    /// Deadline for the whole scan (every page, retry and token request), e.g. 30s.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    timeout: String,
    /// Log in natively to the cloud's registry (credentials from this
    /// machine's environment), as spec.provider does.
    #[arg(long, default_value = "generic", value_parser = ["generic", "aws", "azure", "gcp"], conflicts_with = "file")]
    provider: String,
    /// Print the full scan result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ScanArgs) -> Result<ExitCode> {
    let settings = match &args.file {
        Some(file) => from_manifest(file, args.name.as_deref())?,
        None => from_flags(&args)?,
    };
    // A bad TAGWARDEN_CONNECT_TO or SSL_CERT_FILE is said before anything else.
    tagwarden_registry::Network::process()?;
    let pool = tagwarden_cloud::pool(None);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Registry errors are escaped where they are made; escaping again here
    // keeps any that slip through from reaching the terminal raw.
    let list = rt
        .block_on(tagwarden_registry::Registry::scan(&pool, &settings))
        .map_err(|e| anyhow::anyhow!(printable(&e.to_string())))?;
    if list.invalid > 0 {
        let n = list.invalid;
        eprintln!(
            "warning: skipped {n} {} outside the OCI tag grammar [A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}: {}",
            if n == 1 { "tag" } else { "tags" },
            list.examples_line()
        );
    }
    let result = scan_result(&settings.image.canonical(), list, &settings.exclusions);

    // Buffered: a line-buffered stdout makes one write per tag.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        let v = serde_json::json!({
            "canonicalImageName": result.canonical_image_name,
            "tagCount": result.tag_count,
            "latestTags": result.latest_tags,
            "revision": result.revision,
            "invalidTagCount": result.invalid_tag_count,
            "tags": result.tags,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        for t in &result.tags {
            writeln!(out, "{t}")?;
        }
    }
    out.flush()?;
    eprintln!(
        "✔ {} ({})",
        result.message(),
        printable(&result.canonical_image_name)
    );
    Ok(ExitCode::SUCCESS)
}

fn from_manifest(file: &Path, name: Option<&str>) -> Result<ScanSettings> {
    let m = Manifests::load_paths(&[file.to_path_buf()], &LoadOptions::default());
    let repo = super::one_object(&m, file, name, Kind::ImageRepository, |o| match o {
        Object::ImageRepository(r) => Some(r),
        _ => None,
    })?;
    let settings = scan_settings(repo, |secret| {
        m.objects.iter().find_map(|o| match o {
            Object::Secret(s)
                if s.meta.name == secret && s.meta.namespace == repo.meta.namespace =>
            {
                Some(s)
            }
            _ => None,
        })
    })
    .with_context(|| format!("{}: ImageRepository '{}'", file.display(), repo.meta.name))?;
    Ok(settings)
}

fn from_flags(args: &ScanArgs) -> Result<ScanSettings> {
    let Some(image) = &args.image else {
        bail!("give an IMAGE or --file");
    };
    let image = ImageRef::parse(image)?;
    let timeout = tagwarden_api::duration::parse(&args.timeout).with_context(|| {
        format!(
            "--timeout '{}': expected a duration like 30s or 1m",
            args.timeout
        )
    })?;
    let exclusions: Vec<&str> = if args.exclude.is_empty() {
        vec![tagwarden_api::DEFAULT_EXCLUSION]
    } else {
        args.exclude.iter().map(String::as_str).collect()
    };
    let exclusions = exclusions
        .into_iter()
        .map(|re| tagwarden_policy::go_regex(re).map_err(|e| anyhow::anyhow!("--exclude: {e}")))
        .collect::<Result<Vec<_>>>()?;
    let read = |f: &PathBuf| std::fs::read(f).with_context(|| format!("reading {}", f.display()));
    let credentials = match &args.docker_config {
        Some(f) => credentials_from_docker_config(&read(f)?, &image.registry)
            .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?,
        None => None,
    };
    let identity_pem = match (&args.cert_file, &args.key_file) {
        (Some(c), Some(k)) => {
            let mut pem = read(c)?;
            pem.push(b'\n');
            pem.extend(read(k)?);
            Some(pem)
        }
        _ => None,
    };
    let host = image
        .registry
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !tagwarden_registry::provider::host_matches(&args.provider, &host) {
        bail!(
            "--provider {} logs in to {} only; the image is on '{}'",
            args.provider,
            tagwarden_registry::provider::expected_hosts(&args.provider),
            image.registry
        );
    }
    let login = tagwarden_registry::Provider::parse(&args.provider).map(|provider| {
        tagwarden_registry::CloudLogin {
            provider,
            registry: host,
            identity: tagwarden_registry::Identity::Controller,
            proxy: args.proxy.clone(),
            timeout,
        }
    });
    if login.is_some() && credentials.is_some() {
        bail!(
            "--provider {} logs in by itself; leave out --docker-config",
            args.provider
        );
    }
    Ok(ScanSettings {
        image,
        options: ClientOptions {
            insecure: args.insecure,
            timeout,
            ca_pem: args.ca_file.as_ref().map(read).transpose()?,
            identity_pem,
            proxy: args.proxy.clone(),
            ..ClientOptions::default()
        },
        credentials,
        login,
        exclusions,
    })
}
