//! `tagwarden update PATH`: set the values marked with `$imagepolicy` in place,
//! as an ImageUpdateAutomation's Setters strategy does, changing no other byte.

use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use tagwarden_setters::{LatestRef, PolicyImage, Setters, UpdateResult, slash_path};

#[derive(Args)]
#[command(after_help = "Examples:\n  \
    tagwarden update clusters/my-cluster --policy flux-system/podinfo=ghcr.io/stefanprodan/podinfo:5.0.3\n  \
    tagwarden update . --policy flux-system/app=localhost:5000/app:v2@sha256:0123abcd --dry-run\n  \
    tagwarden update apps --namespace apps --policy apps/web=ghcr.io/acme/web:1.4.0 --json")]
pub struct UpdateArgs {
    /// Directory (or single file) to update, like update.path in a checkout;
    /// nothing outside it is read or written.
    path: PathBuf,
    /// A policy's latest image, NS/NAME=IMAGE:TAG[@DIGEST]; repeatable.
    #[arg(long = "policy", value_name = "NS/NAME=IMAGE:TAG[@DIGEST]", value_parser = parse_policy)]
    policies: Vec<PolicyImage>,
    /// The automation's namespace: markers naming other namespaces are left alone.
    #[arg(long, value_name = "NS", default_value = "flux-system")]
    namespace: String,
    /// Write nothing; print a unified diff of what would change.
    #[arg(long)]
    dry_run: bool,
    /// Print the changes as JSON (paths relative to PATH).
    #[arg(long)]
    json: bool,
    /// Also report markers left alone and why, on stderr.
    #[arg(short, long)]
    verbose: bool,
}

fn parse_policy(s: &str) -> Result<PolicyImage, String> {
    let Some((id, latest)) = s.split_once('=') else {
        return Err("expected NS/NAME=IMAGE:TAG[@DIGEST]".into());
    };
    let (namespace, name) = match id.split_once('/') {
        Some((ns, n)) if !ns.is_empty() && !n.is_empty() && !n.contains('/') => (ns, n),
        _ => return Err(format!("'{id}': expected NS/NAME before '='")),
    };
    Ok(PolicyImage {
        no_downgrade: None,
        namespace: namespace.into(),
        name: name.into(),
        labels: Default::default(),
        latest: LatestRef::parse(latest).map_err(|e| e.to_string())?,
    })
}

pub fn run(args: UpdateArgs) -> Result<ExitCode> {
    if args.verbose {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(std::io::stderr)
            .without_time()
            .with_target(false)
            .init();
    }
    if !args.path.exists() {
        bail!("{}: no such file or directory", args.path.display());
    }
    for p in args
        .policies
        .iter()
        .filter(|p| p.namespace != args.namespace)
    {
        eprintln!(
            "warning: --policy {}/{}: not in namespace '{}', so its markers are left alone",
            p.namespace, p.name, args.namespace
        );
    }
    let setters = Setters::new(&args.namespace, None, &args.policies);
    let plan = tagwarden_setters::plan(&args.path, ".", &setters)?;
    if !args.dry_run {
        plan.write()?;
    }
    let result = plan.result();
    for s in &result.skipped {
        eprintln!("warning: {} skipped: {}", slash_path(&s.path), s.error);
    }

    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&json(&result))?)?;
    } else if args.dry_run {
        write!(out, "{}", plan.diff())?;
    } else {
        for f in &result.files {
            for o in &f.objects {
                for c in &o.changes {
                    writeln!(
                        out,
                        "{}: {}{} -> {} ({})",
                        slash_path(&f.path),
                        object_label(&o.id),
                        c.old_value,
                        c.new_value,
                        c.setter
                    )?;
                }
            }
        }
    }
    let (n, files) = (result.change_count(), result.files.len());
    let verb = if args.dry_run {
        "would update"
    } else {
        "updated"
    };
    if n == 0 {
        eprintln!("✔ nothing to update");
    } else {
        eprintln!(
            "✔ {verb} {n} value{} in {files} file{}",
            if n == 1 { "" } else { "s" },
            if files == 1 { "" } else { "s" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `Deployment default/podinfo: ` or nothing for plain YAML.
fn object_label(id: &tagwarden_setters::ObjectId) -> String {
    match (id.kind.is_empty(), id.namespace.is_empty()) {
        (true, _) => String::new(),
        (false, true) => format!("{} {}: ", id.kind, id.name),
        (false, false) => format!("{} {}/{}: ", id.kind, id.namespace, id.name),
    }
}

/// `--json`: the result as Flux's template data shapes it, keys in that order.
#[derive(Serialize)]
struct JsonResult<'a> {
    files: Vec<JsonFile<'a>>,
}

#[derive(Serialize)]
struct JsonFile<'a> {
    file: String,
    objects: Vec<JsonObject<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonObject<'a> {
    api_version: &'a str,
    kind: &'a str,
    namespace: &'a str,
    name: &'a str,
    changes: Vec<JsonChange<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonChange<'a> {
    old_value: &'a str,
    new_value: &'a str,
    setter: &'a str,
}

fn json(result: &UpdateResult) -> JsonResult<'_> {
    JsonResult {
        files: result
            .files
            .iter()
            .map(|f| JsonFile {
                file: slash_path(&f.path),
                objects: f
                    .objects
                    .iter()
                    .map(|o| JsonObject {
                        api_version: &o.id.api_version,
                        kind: &o.id.kind,
                        namespace: &o.id.namespace,
                        name: &o.id.name,
                        changes: o
                            .changes
                            .iter()
                            .map(|c| JsonChange {
                                old_value: &c.old_value,
                                new_value: &c.new_value,
                                setter: &c.setter,
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
    }
}
