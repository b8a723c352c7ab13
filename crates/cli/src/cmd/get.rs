//! `tagwarden get|suspend|resume|reconcile image …`: through the daemon's
//! API when it runs (it holds the store's lock), else the store directly.

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};
use tagwarden_api::{Kind, ObjectId};
use tagwarden_engine::listing::{self, ObjectRow};
use tagwarden_store::{FileStore, Store};

#[derive(Subcommand)]
pub enum GetGroup {
    /// ImageRepositories, ImagePolicies and ImageUpdateAutomations.
    #[command(visible_alias = "images")]
    Image(GetArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GetKind {
    Repository,
    Policy,
    Update,
    All,
}

#[derive(Args)]
#[command(after_help = "Examples:\n  tagwarden get image repository\n  \
    tagwarden get image all -A\n  tagwarden get image policy podinfo -n apps")]
pub struct GetArgs {
    kind: GetKind,
    /// Only the object with this name.
    name: Option<String>,
    #[command(flatten)]
    scope: Scope,
}

#[derive(Args)]
pub struct Scope {
    /// Namespace of the objects.
    #[arg(short = 'n', long, default_value = "flux-system")]
    namespace: String,
    /// Every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// The daemon's state dir (its control socket `daemon.sock`, else its
    /// store).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["kubeconfig", "context"])]
    state_dir: Option<PathBuf>,
    /// Act on the cluster of this kubeconfig (objects and their status, as
    /// `flux` does) instead of the standalone daemon.
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (implies the cluster).
    #[arg(long)]
    context: Option<String>,
}

#[derive(Subcommand)]
pub enum ActGroup {
    /// An ImageRepository, ImagePolicy or ImageUpdateAutomation.
    #[command(visible_alias = "images")]
    Image(ActArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ActKind {
    Repository,
    Policy,
    Update,
}

impl ActKind {
    fn kind(self) -> &'static str {
        self.id_kind().as_str()
    }

    fn id_kind(self) -> Kind {
        match self {
            ActKind::Repository => Kind::ImageRepository,
            ActKind::Policy => Kind::ImagePolicy,
            ActKind::Update => Kind::ImageUpdateAutomation,
        }
    }

    fn human(self) -> &'static str {
        match self {
            ActKind::Repository => "image repository",
            ActKind::Policy => "image policy",
            ActKind::Update => "image update automation",
        }
    }
}

#[derive(Args)]
pub struct ActArgs {
    kind: ActKind,
    name: String,
    #[command(flatten)]
    scope: Scope,
}

/// Where the rows come from.
enum Backend {
    Api(super::control::Control),
    Store(std::sync::Arc<dyn Store>),
    Cluster(Cluster),
}

/// A Kubernetes API client and the runtime its calls run on.
struct Cluster {
    client: tagwarden_kube::Client,
    rt: tokio::runtime::Runtime,
}

/// How long a request waits: the daemon's reconcile waits up to a minute.
const API_TIMEOUT: Duration = Duration::from_secs(90);

fn state_dir(scope: &Scope) -> Result<PathBuf> {
    scope
        .state_dir
        .clone()
        .or_else(super::default_state_dir)
        .context("no --state-dir and no HOME to find the state in")
}

/// How long `reconcile` waits for the status to say it was handled.
const RECONCILE_WAIT: Duration = Duration::from_secs(120);

impl Backend {
    /// The cluster when `--kubeconfig` or `--context` says so; else the
    /// daemon (its socket) or its store.
    fn open(scope: &Scope) -> Result<Backend> {
        if scope.kubeconfig.is_none() && scope.context.is_none() {
            return Backend::connect(&state_dir(scope)?);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = rt.block_on(tagwarden_kube::client(
            scope.kubeconfig.as_deref(),
            scope.context.as_deref(),
        ))?;
        Ok(Backend::Cluster(Cluster { client, rt }))
    }

    fn connect(dir: &Path) -> Result<Backend> {
        let socket = dir.join(tagwarden_daemon::SOCKET_FILE);
        if let Some(c) = super::control::Control::connect(&socket) {
            return Ok(Backend::Api(c));
        }
        let store = FileStore::open(dir).with_context(|| {
            format!(
                "no daemon answers on {} and the store cannot be opened",
                socket.display()
            )
        })?;
        Ok(Backend::Store(std::sync::Arc::new(store)))
    }

    fn rows(&self) -> Result<Vec<ObjectRow>> {
        match self {
            Backend::Api(c) => {
                let (status, body) = c.request("GET", "/api/v1/objects", API_TIMEOUT)?;
                if status != 200 {
                    bail!(
                        "the daemon answered {status}: {}",
                        String::from_utf8_lossy(&body).trim()
                    );
                }
                serde_json::from_slice(&body).context("the daemon's object list")
            }
            Backend::Store(s) => {
                let status = tagwarden_engine::KvStatus::new(s.clone());
                Ok(listing::rows(&status, &**s)?)
            }
            Backend::Cluster(c) => Ok(c.rt.block_on(tagwarden_kube::ops::rows(&c.client, None))?),
        }
    }

    /// POSTs an action; the row on success, else the daemon's message.
    fn act(
        &self,
        action: &str,
        kind: &str,
        ns: &str,
        name: &str,
    ) -> Result<Result<ObjectRow, String>> {
        if let Backend::Cluster(c) = self {
            return Ok(c.act(action, kind, ns, name));
        }
        let Backend::Api(c) = self else {
            bail!("not connected to a daemon")
        };
        let (status, body) = c.request(
            "POST",
            &format!(
                "/api/v1/{action}/{kind}/{}/{}",
                path_segment(ns),
                path_segment(name)
            ),
            API_TIMEOUT,
        )?;
        Ok(if (200..300).contains(&status) {
            Ok(serde_json::from_slice(&body).context("the daemon's answer")?)
        } else {
            Err(String::from_utf8_lossy(&body).into_owned())
        })
    }
}

impl Cluster {
    /// `suspend`/`resume` set `spec.suspend`; `reconcile` sets Flux's
    /// annotation and waits until the status has handled it.
    fn act(&self, action: &str, kind: &str, ns: &str, name: &str) -> Result<ObjectRow, String> {
        let kind = Kind::parse(kind).ok_or_else(|| format!("unknown kind '{kind}'"))?;
        let id = ObjectId::new(kind, ns, name);
        let done = match action {
            "suspend" | "resume" => self
                .rt
                .block_on(tagwarden_kube::ops::set_suspended(
                    &self.client,
                    &id,
                    action == "suspend",
                ))
                .map(Some),
            _ => {
                let token = requested_at(std::time::SystemTime::now());
                self.rt.block_on(tagwarden_kube::ops::reconcile(
                    &self.client,
                    &id,
                    &token,
                    RECONCILE_WAIT,
                ))
            }
        };
        match done {
            Ok(Some(row)) => Ok(row),
            Ok(None) => Err("timeout waiting for reconciliation".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The value `flux reconcile` writes: RFC 3339 with nanoseconds.
fn requested_at(t: std::time::SystemTime) -> String {
    let nanos = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let whole = tagwarden_api::time::Time::from_system(t).to_string();
    format!("{}.{nanos:09}Z", whole.trim_end_matches('Z'))
}

/// `s` percent-encoded for one path segment (names are DNS labels, but a
/// space or slash must not change the request line).
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn get(group: GetGroup) -> Result<ExitCode> {
    let GetGroup::Image(args) = group;
    let backend = Backend::open(&args.scope)?;
    let rows: Vec<ObjectRow> = backend
        .rows()?
        .into_iter()
        .filter(|r| args.scope.all_namespaces || r.namespace == args.scope.namespace)
        .filter(|r| args.name.as_ref().is_none_or(|n| &r.name == n))
        .collect();
    let kinds: &[GetKind] = match args.kind {
        GetKind::All => &[GetKind::Repository, GetKind::Policy, GetKind::Update],
        one => std::slice::from_ref(match one {
            GetKind::Repository => &GetKind::Repository,
            GetKind::Policy => &GetKind::Policy,
            _ => &GetKind::Update,
        }),
    };
    let mut out = std::io::stdout().lock();
    let mut first = true;
    for &kind in kinds {
        let (kind_name, prefix) = match kind {
            GetKind::Repository => (Kind::ImageRepository, "imagerepository/"),
            GetKind::Policy => (Kind::ImagePolicy, "imagepolicy/"),
            _ => (Kind::ImageUpdateAutomation, "imageupdateautomation/"),
        };
        let of_kind: Vec<&ObjectRow> = rows.iter().filter(|r| r.kind == kind_name).collect();
        if of_kind.is_empty() {
            if args.kind != GetKind::All {
                eprintln!("{}", not_found(kind_name.as_str(), &args.scope));
            }
            continue;
        }
        if !first {
            writeln!(out)?;
        }
        first = false;
        let prefix = if args.kind == GetKind::All {
            prefix
        } else {
            ""
        };
        out.write_all(table(kind, &of_kind, prefix, args.scope.all_namespaces).as_bytes())?;
    }
    if first && args.kind == GetKind::All {
        eprintln!("{}", not_found("image automation", &args.scope));
    }
    Ok(ExitCode::SUCCESS)
}

fn not_found(what: &str, scope: &Scope) -> String {
    if scope.all_namespaces {
        format!("✗ no {what} objects found")
    } else {
        format!("✗ no {what} objects found in {} namespace", scope.namespace)
    }
}

/// Flux's layout: cells padded to their column's width and joined by tabs,
/// the last column unpadded.
fn table(kind: GetKind, rows: &[&ObjectRow], prefix: &str, namespaces: bool) -> String {
    let header: Vec<&str> = match kind {
        GetKind::Repository => vec!["NAME", "LAST SCAN", "SUSPENDED", "READY", "MESSAGE"],
        GetKind::Policy => vec!["NAME", "IMAGE", "TAG", "READY", "MESSAGE"],
        _ => vec!["NAME", "LAST RUN", "SUSPENDED", "READY", "MESSAGE"],
    };
    let bool_str = |b: bool| if b { "True" } else { "False" }.to_string();
    let time = |t: Option<SystemTime>| {
        t.map(|t| tagwarden_api::time::Time::from_system(t).to_string())
            .unwrap_or_default()
    };
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for r in rows {
        let name = format!("{prefix}{}", r.name);
        let message =
            tagwarden_api::text::escape(&r.message.replace('\n', " "), false).into_owned();
        cells.push(match kind {
            GetKind::Repository => vec![
                name,
                time(r.last_scan),
                bool_str(r.suspended),
                r.ready.clone(),
                message,
            ],
            GetKind::Policy => vec![
                name,
                r.image.clone().unwrap_or_default(),
                r.tag.clone().unwrap_or_default(),
                r.ready.clone(),
                message,
            ],
            _ => vec![
                name,
                time(r.last_run),
                bool_str(r.suspended),
                r.ready.clone(),
                message,
            ],
        });
    }
    if namespaces {
        cells[0].insert(0, "NAMESPACE".into());
        for (row, r) in cells.iter_mut().skip(1).zip(rows) {
            row.insert(0, r.namespace.clone());
        }
    }
    let columns = cells[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &cells {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == columns {
                    c.clone()
                } else {
                    format!("{c:w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(line.join("\t").trim_end());
        out.push('\n');
    }
    out
}

pub fn suspend(group: ActGroup, suspend: bool) -> Result<ExitCode> {
    let ActGroup::Image(args) = group;
    let (kind, human, ns, name) = (
        args.kind.kind(),
        args.kind.human(),
        &args.scope.namespace,
        &args.name,
    );
    let verb = if suspend { "suspending" } else { "resuming" };
    let done = if suspend { "suspended" } else { "resumed" };
    eprintln!("► {verb} {human} {name} in {ns} namespace");
    match Backend::open(&args.scope)? {
        b @ (Backend::Api(_) | Backend::Cluster(_)) => {
            let action = if suspend { "suspend" } else { "resume" };
            if let Err(message) = b.act(action, kind, ns, name)? {
                eprintln!("✗ {}", message.trim());
                return Ok(ExitCode::FAILURE);
            }
        }
        Backend::Store(store) => {
            let id = ObjectId::new(args.kind.id_kind(), ns.as_str(), name.as_str());
            let status = tagwarden_engine::KvStatus::new(store.clone());
            if tagwarden_engine::StatusStore::read(&status, &id)?.is_none() {
                eprintln!("✗ {kind} '{ns}/{name}' not found in the store");
                return Ok(ExitCode::FAILURE);
            }
            listing::set_suspended(&*store, &id, suspend)?;
        }
    }
    eprintln!("✔ {human} {done}");
    Ok(ExitCode::SUCCESS)
}

pub fn reconcile(group: ActGroup) -> Result<ExitCode> {
    let ActGroup::Image(args) = group;
    let (kind, ns, name) = (args.kind.kind(), &args.scope.namespace, &args.name);
    if args.kind == ActKind::Policy {
        bail!("reconcile image policy is not supported: reconcile its repository");
    }
    let backend = Backend::open(&args.scope)?;
    if let Backend::Store(_) = backend {
        eprintln!("✗ the daemon is not running: start it with `tagwarden run -f PATH`");
        return Ok(ExitCode::FAILURE);
    }
    eprintln!("► annotating {kind} {name} in {ns} namespace");
    eprintln!("✔ {kind} annotated");
    eprintln!("◎ waiting for {kind} reconciliation");
    let row = match backend.act("reconcile", kind, ns, name)? {
        Ok(row) => row,
        Err(message) => {
            eprintln!("✗ {}", message.trim());
            return Ok(ExitCode::FAILURE);
        }
    };
    if row.ready != "True" {
        eprintln!("✗ {}", tagwarden_api::text::escape(&row.message, false));
        return Ok(ExitCode::FAILURE);
    }
    eprintln!("✔ {kind} reconciliation completed");
    match args.kind {
        ActKind::Repository => {
            eprintln!("✔ scan fetched {} tags", row.tag_count.unwrap_or(0));
        }
        _ => match row.last_run {
            Some(t) => eprintln!("✔ last run: {}", tagwarden_api::time::Time::from_system(t)),
            None => eprintln!("✔ {}", tagwarden_api::text::escape(&row.message, false)),
        },
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconcile_requests_carry_nanoseconds_as_flux_writes_them() {
        let t = std::time::UNIX_EPOCH + Duration::new(1_796_172_075, 42);
        assert_eq!(requested_at(t), "2026-12-02T00:41:15.000000042Z");
    }
}
