//! `tagwarden create image repository|policy|update NAME`: the manifests
//! `flux create image … --export` prints, checked the way Flux checks them.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tagwarden_api::Kind;
use tagwarden_api::PolicyChoice;
use tagwarden_api::duration;
use tagwarden_api::export::{ExportMeta, PolicyExport, RepositoryExport, UpdateExport};
use tagwarden_api::image::ImageRef;
use tagwarden_policy::{Policy, PolicyError, PolicySpec};

#[derive(Args)]
pub struct CreateArgs {
    #[command(subcommand)]
    command: CreateCommand,
    #[command(flatten)]
    common: Common,
}

/// Flags every `create` subcommand takes, before or after its name.
#[derive(Args)]
struct Common {
    /// Print the manifest as YAML on stdout instead of writing a file.
    #[arg(long, global = true)]
    export: bool,
    /// Namespace of the object.
    #[arg(short, long, global = true, default_value = "flux-system")]
    namespace: String,
    /// Labels as key=value (repeatable, or comma-separated).
    #[arg(short, long = "label", global = true, value_delimiter = ',')]
    label: Vec<String>,
    /// Folder to write the manifest into (the first one given is used).
    #[arg(short = 'f', long = "file", global = true)]
    file: Vec<PathBuf>,
    /// Apply to the cluster of this kubeconfig (server-side apply).
    #[arg(long, global = true, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (implies the cluster).
    #[arg(long, global = true)]
    context: Option<String>,
}

/// The kubeconfig `create` applies with when no -f folder is given:
/// --kubeconfig, else $KUBECONFIG, else ~/.kube/config when it exists.
fn cluster_kubeconfig(common: &Common) -> Option<PathBuf> {
    if let Some(k) = &common.kubeconfig {
        return Some(k.clone());
    }
    if let Some(k) = std::env::var_os("KUBECONFIG").filter(|k| !k.is_empty()) {
        return Some(PathBuf::from(k));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from)?;
    let default = home.join(".kube/config");
    default.is_file().then_some(default)
}

#[derive(Subcommand)]
enum CreateCommand {
    /// Create ImageRepository, ImagePolicy or ImageUpdateAutomation manifests.
    #[command(visible_alias = "images")]
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// An ImageRepository: which image to scan, how often.
    Repository(RepositoryArgs),
    /// An ImagePolicy: how to pick the latest tag of an ImageRepository.
    Policy(PolicyArgs),
    /// An ImageUpdateAutomation: where to write the picks in Git.
    Update(UpdateArgs),
}

#[derive(Args)]
struct RepositoryArgs {
    name: String,
    /// The image to scan, without tag or digest (e.g. ghcr.io/org/app).
    #[arg(long)]
    image: Option<String>,
    /// How often to scan (Go duration).
    #[arg(long, default_value = "1m")]
    interval: String,
    /// Secret with registry credentials (docker-registry type).
    #[arg(long)]
    secret_ref: Option<String>,
    /// Secret with TLS certificates for the registry.
    #[arg(long)]
    cert_ref: Option<String>,
    /// Timeout of one scan (Go duration); the interval when unset.
    #[arg(long)]
    scan_timeout: Option<String>,
    /// Log in natively to the cloud's registry instead of a secret.
    #[arg(long, default_value = "generic", value_parser = ["generic", "aws", "azure", "gcp"])]
    provider: String,
}

#[derive(Args)]
struct PolicyArgs {
    name: String,
    /// The ImageRepository whose tags the policy picks from.
    #[arg(long)]
    image_ref: Option<String>,
    /// A semver range, e.g. 5.0.x or '>=1.0.0 <2.0.0'.
    #[arg(long)]
    select_semver: Option<String>,
    /// Numerical order: asc picks the highest, desc the lowest.
    #[arg(long)]
    select_numeric: Option<String>,
    /// Alphabetical order: asc picks the last, desc the first.
    #[arg(long)]
    select_alpha: Option<String>,
    /// Only tags matching this regular expression are considered.
    #[arg(long)]
    filter_regex: Option<String>,
    /// What to sort by, from --filter-regex's capture groups (e.g. '$ts').
    #[arg(long)]
    filter_extract: Option<String>,
    /// Digest reflection: Never, IfNotPresent or Always.
    #[arg(long)]
    reflect_digest: Option<String>,
    /// How often to look up digests when --reflect-digest is Always.
    #[arg(long)]
    interval: Option<String>,
}

#[derive(Args)]
struct UpdateArgs {
    name: String,
    /// The GitRepository to update.
    #[arg(long)]
    git_repo_ref: Option<String>,
    /// Namespace of the GitRepository (default: the automation's).
    #[arg(long)]
    git_repo_namespace: Option<String>,
    /// Folder in the repository whose manifests are updated (default: root).
    #[arg(long)]
    git_repo_path: Option<String>,
    /// Branch to check out.
    #[arg(long)]
    checkout_branch: Option<String>,
    /// Branch to push to (default: the checkout branch).
    #[arg(long)]
    push_branch: Option<String>,
    /// Commit author name.
    #[arg(long)]
    author_name: Option<String>,
    /// Commit author email.
    #[arg(long)]
    author_email: Option<String>,
    /// Commit message template (Go text/template).
    #[arg(long)]
    commit_template: Option<String>,
    /// How often to run the automation (Go duration).
    #[arg(long, default_value = "1m")]
    interval: String,
}

pub fn run(args: CreateArgs) -> Result<ExitCode> {
    let CreateCommand::Image { command } = args.command;
    let common = args.common;
    let (kind, name, suffix, yaml) = match command {
        ImageCommand::Repository(a) => {
            let yaml = repository(&a, meta(&a.name, &common)?)?.to_yaml();
            (Kind::ImageRepository, a.name, "registry", yaml)
        }
        ImageCommand::Policy(a) => {
            let yaml = policy(&a, meta(&a.name, &common)?)?.to_yaml();
            (Kind::ImagePolicy, a.name, "policy", yaml)
        }
        ImageCommand::Update(a) => {
            let yaml = update(&a, meta(&a.name, &common)?)?.to_yaml();
            (Kind::ImageUpdateAutomation, a.name, "automation", yaml)
        }
    };
    if common.export {
        print!("{yaml}");
        return Ok(ExitCode::SUCCESS);
    }
    let Some(dir) = common.file.first() else {
        let Some(kubeconfig) =
            cluster_kubeconfig(&common).or_else(|| common.context.as_ref().map(|_| PathBuf::new()))
        else {
            bail!(
                "tagwarden has no cluster to apply {kind} to: use --export to print it, -f DIR to write it into a folder, or --kubeconfig"
            );
        };
        eprintln!("✚ generating {kind}");
        let explicit = (!kubeconfig.as_os_str().is_empty()).then_some(kubeconfig.as_path());
        match explicit {
            Some(k) => eprintln!("► applying {kind} to the cluster of {}", k.display()),
            None => eprintln!("► applying {kind} to the cluster"),
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let applied = rt.block_on(async {
            let client = tagwarden_kube::client(explicit, common.context.as_deref()).await?;
            tagwarden_kube::apply::apply(&client, &yaml, "tagwarden").await
        })?;
        for a in applied {
            eprintln!("✔ {a} applied");
        }
        return Ok(ExitCode::SUCCESS);
    };
    // The name becomes a file name: refuse anything that could leave the folder.
    if !valid_name(&name) {
        bail!(
            "invalid {kind} name '{name}': expected lowercase letters, digits, '-' and '.' (a Kubernetes object name)"
        );
    }
    if !dir.is_dir() {
        bail!("-f {}: not a folder", dir.display());
    }
    let path = dir.join(format!("{name}-{suffix}.yaml"));
    let existed = path.exists();
    eprintln!("✚ generating {kind}");
    eprintln!("► applying {kind}");
    std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
    let verb = if existed { "updated" } else { "created" };
    eprintln!("✔ {kind} {verb} ({})", path.display());
    Ok(ExitCode::SUCCESS)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn meta(name: &str, common: &Common) -> Result<ExportMeta> {
    let mut labels = BTreeMap::new();
    for l in &common.label {
        match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                labels.insert(k.to_string(), v.to_string());
            }
            _ => bail!("invalid label format '{l}', must be key=value (--label)"),
        }
    }
    Ok(ExportMeta {
        name: name.to_string(),
        namespace: common.namespace.clone(),
        labels,
    })
}

fn go_duration(flag: &str, text: &str) -> Result<Duration> {
    duration::parse(text).with_context(|| {
        format!("invalid argument \"{text}\" for \"--{flag}\" flag: expected a Go duration such as 1m or 1h30m")
    })
}

fn present(v: &Option<String>) -> Option<String> {
    v.clone().filter(|s| !s.is_empty())
}

fn repository(a: &RepositoryArgs, meta: ExportMeta) -> Result<RepositoryExport> {
    let Some(image) = present(&a.image) else {
        bail!("an image repository (--image) is required");
    };
    let parsed = ImageRef::parse(&image)
        .map_err(|e| anyhow::anyhow!("unable to parse image value (--image): {e}"))?;
    let host = parsed.registry.split(':').next().unwrap_or_default();
    if !tagwarden_registry::provider::host_matches(&a.provider, host) {
        bail!(
            "--provider {} logs in to {} only; --image is on '{}'",
            a.provider,
            tagwarden_registry::provider::expected_hosts(&a.provider),
            parsed.registry
        );
    }
    Ok(RepositoryExport {
        meta,
        image,
        interval: go_duration("interval", &a.interval)?,
        secret_ref: present(&a.secret_ref),
        cert_secret_ref: present(&a.cert_ref),
        timeout: a
            .scan_timeout
            .as_deref()
            .map(|t| go_duration("scan-timeout", t))
            .transpose()?,
        provider: Some(a.provider.clone()),
    })
}

fn policy(a: &PolicyArgs, meta: ExportMeta) -> Result<PolicyExport> {
    let Some(image_ref) = present(&a.image_ref) else {
        bail!("the name of an ImageRepository in the namespace is required (--image-ref)");
    };
    let (semver, numeric, alpha) = (
        present(&a.select_semver),
        present(&a.select_numeric),
        present(&a.select_alpha),
    );
    let chosen = [&semver, &numeric, &alpha]
        .iter()
        .filter(|o| o.is_some())
        .count();
    if chosen > 1 {
        bail!("only one of --select-semver, --select-alpha or --select-numeric can be specified");
    }
    let choice = if let Some(range) = &semver {
        PolicyChoice::SemVer {
            range: range.clone(),
        }
    } else if let Some(order) = &numeric {
        if order != "asc" && order != "desc" {
            bail!("--select-numeric must be one of [\"asc\", \"desc\"]");
        }
        PolicyChoice::Numerical {
            order: order.clone(),
        }
    } else if let Some(order) = &alpha {
        if order != "asc" && order != "desc" {
            bail!("--select-alpha must be one of [\"asc\", \"desc\"]");
        }
        PolicyChoice::Alphabetical {
            order: order.clone(),
        }
    } else {
        bail!(
            "a policy must be provided with either --select-semver, --select-numeric or --select-alpha"
        );
    };
    let (pattern, extract) = (present(&a.filter_regex), present(&a.filter_extract));
    if extract.is_some() && pattern.is_none() {
        bail!("cannot specify --filter-extract without specifying --filter-regex");
    }
    // The same checks the controller makes: the range parses, the regex
    // compiles, the extract names groups the regex has.
    let spec = PolicySpec {
        semver_range: semver.clone(),
        numerical_order: numeric.clone(),
        alphabetical_order: alpha.clone(),
        filter_pattern: pattern.clone(),
        filter_extract: extract.clone(),
    };
    if let Err(e) = Policy::new(&spec) {
        match e {
            PolicyError::Range(r) => bail!("invalid semver range (--select-semver): {r}"),
            PolicyError::Filter(f) => {
                bail!("invalid tag filter (--filter-regex/--filter-extract): {f}")
            }
            other => bail!("{other}"),
        }
    }
    let reflect = present(&a.reflect_digest);
    if let Some(r) = &reflect
        && !["Never", "IfNotPresent", "Always"].contains(&r.as_str())
    {
        bail!(
            "--reflect-digest must be one of [\"Never\", \"IfNotPresent\", \"Always\"], got '{r}'"
        );
    }
    let interval = a
        .interval
        .as_deref()
        .map(|i| go_duration("interval", i))
        .transpose()?;
    if reflect.as_deref() == Some("Always") && interval.is_none() {
        bail!("--interval is required when --reflect-digest is Always");
    }
    Ok(PolicyExport {
        meta,
        image_repository_ref: image_ref,
        policy: choice,
        filter_pattern: pattern,
        filter_extract: extract,
        digest_reflection_policy: reflect,
        interval,
    })
}

fn update(a: &UpdateArgs, meta: ExportMeta) -> Result<UpdateExport> {
    let Some(git_repo_ref) = present(&a.git_repo_ref) else {
        bail!("a reference to a GitRepository is required (--git-repo-ref)");
    };
    let Some(checkout_branch) = present(&a.checkout_branch) else {
        bail!("the Git repository branch is required (--checkout-branch)");
    };
    let Some(author_name) = present(&a.author_name) else {
        bail!("the author name is required (--author-name)");
    };
    let Some(author_email) = present(&a.author_email) else {
        bail!("the author email is required (--author-email)");
    };
    Ok(UpdateExport {
        meta,
        git_repo_ref,
        git_repo_namespace: present(&a.git_repo_namespace),
        git_repo_path: present(&a.git_repo_path),
        checkout_branch,
        push_branch: present(&a.push_branch),
        author_name,
        author_email,
        commit_template: present(&a.commit_template),
        interval: go_duration("interval", &a.interval)?,
    })
}
