//! `tagwarden scan IMAGE`: the tags an ImageRepository scan would record.

use anyhow::{Context, Result};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use tagwarden_api::image::ImageRef;
use tagwarden_registry::{Client, ClientOptions, credentials_from_docker_config, scan_result};

#[derive(Args)]
#[command(
    after_help = "Examples:\n  tagwarden scan ghcr.io/stefanprodan/podinfo\n  \
    tagwarden scan localhost:5000/team/app --docker-config ~/.docker/config.json --json"
)]
pub struct ScanArgs {
    /// Image repository without tag, e.g. ghcr.io/stefanprodan/podinfo.
    image: String,
    /// Talk plain HTTP (ImageRepository spec.insecure).
    #[arg(long)]
    insecure: bool,
    /// A docker config.json / .dockerconfigjson holding credentials.
    #[arg(long, value_name = "FILE")]
    docker_config: Option<PathBuf>,
    /// Extra CA certificates (PEM) to trust, as certSecretRef's ca.crt.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Go regular expression of tags to drop; repeatable. Replaces the
    /// default '^.*\.sig$' as a user exclusionList does.
    #[arg(long = "exclude", value_name = "RE")]
    exclude: Vec<String>,
    /// Per-request timeout, e.g. 30s.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    timeout: String,
    /// Print the full scan result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ScanArgs) -> Result<ExitCode> {
    let image = ImageRef::parse(&args.image)?;
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
    let creds = match &args.docker_config {
        Some(f) => {
            let json = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            credentials_from_docker_config(&json, &image.registry)
                .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?
        }
        None => None,
    };
    let ca_pem = match &args.ca_file {
        Some(f) => Some(std::fs::read(f).with_context(|| format!("reading {}", f.display()))?),
        None => None,
    };
    let client = Client::new(ClientOptions {
        insecure: args.insecure,
        timeout,
        ca_pem,
        ..ClientOptions::default()
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let tags = rt.block_on(client.list_tags(&image, creds.as_ref()))?;
    let result = scan_result(&image.canonical(), tags, &exclusions);

    let mut out = std::io::stdout().lock();
    if args.json {
        let v = serde_json::json!({
            "canonicalImageName": result.canonical_image_name,
            "tagCount": result.tag_count,
            "latestTags": result.latest_tags,
            "revision": result.revision,
            "tags": result.tags,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        for t in &result.tags {
            writeln!(out, "{t}")?;
        }
    }
    eprintln!("✔ {} ({})", result.message(), result.canonical_image_name);
    Ok(ExitCode::SUCCESS)
}
