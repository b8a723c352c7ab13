//! `tagwarden run --once -f PATH…`: every ImageRepository, ImagePolicy and
//! ImageUpdateAutomation reconciled once, as `flux` would in a cluster.

use anyhow::{Context as _, Result};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tagwarden_api::status::ConditionStatus;
use tagwarden_api::{LoadOptions, Manifests};
use tagwarden_engine::reconcile_all;
use tagwarden_store::{FileStore, MemoryStore, Store};

#[derive(Args)]
#[command(
    after_help = "Examples:\n  tagwarden run --once -f clusters/my-cluster/\n  \
    tagwarden run --once -f flux/ -f secrets.yaml --state-dir .tagwarden"
)]
pub struct RunArgs {
    /// Reconcile every object once and exit (CI, cron). Exit code 0 only if
    /// all ended Ready. Without it tagwarden keeps running: every object on
    /// its interval, at once on webhooks, manifests reloaded when they change.
    #[arg(long)]
    once: bool,
    /// Serve /metrics, /healthz, /readyz and the Receivers' /hook/… here
    /// (daemon only). The control API (get, suspend, resume, reconcile) is
    /// never served here: it is on <state-dir>/daemon.sock (mode 0600).
    #[arg(long, value_name = "ADDR", conflicts_with = "once")]
    listen: Option<std::net::SocketAddr>,
    /// After SIGTERM/SIGINT, how long reconciles in flight may take before
    /// they are abandoned and the daemon exits.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration, conflicts_with = "once")]
    shutdown_grace: std::time::Duration,
    /// Close a connection to --listen that has not sent its request headers
    /// within this time.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration, conflicts_with = "once")]
    header_timeout: std::time::Duration,
    /// Connections to --listen served at once (more wait).
    #[arg(long, value_name = "N", default_value_t = 512, conflicts_with = "once")]
    max_connections: usize,
    /// Webhook requests per second per source address on /hook/…, in bursts
    /// of up to 3×N; beyond that 429 with Retry-After. 0 turns it off (for
    /// a proxy in front that limits).
    #[arg(long, value_name = "N", default_value_t = 10, conflicts_with = "once")]
    hook_rate_limit: u32,
    /// Manifest files or folders (*.yaml, *.yml), repeatable.
    /// Plan only (with --once): show per automation the diff, the commit
    /// message and the pull request it would open or update; push nothing,
    /// write to no forge, keep no state.
    #[arg(long, requires = "once", conflicts_with = "state_dir")]
    dry_run: bool,
    #[arg(short = 'f', long = "file", value_name = "PATH", required = true)]
    files: Vec<PathBuf>,
    /// Keep tags and status between runs in DIR (embedded store). The daemon
    /// defaults to $XDG_STATE_HOME/tagwarden (~/.local/state/tagwarden).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Namespace of objects that name none.
    #[arg(long, default_value = "flux-system")]
    namespace: String,
    /// Refuse objects with unknown fields (a typo such as `suspnd`) instead
    /// of warning; with --once the run then fails.
    #[arg(long)]
    strict: bool,
    /// Log each step (debug level) on stderr; by default one line per
    /// reconcile at info.
    #[arg(short, long)]
    verbose: bool,
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_max_level(if args.verbose {
            tracing::Level::DEBUG
        } else {
            tracing::Level::INFO
        })
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    // A bad TAGWARDEN_CONNECT_TO or SSL_CERT_FILE is said before anything else.
    tagwarden_registry::Network::process()?;
    if !args.once {
        return daemon(args);
    }
    let manifests = super::unknown_fields(
        Manifests::load_paths(
            &args.files,
            &LoadOptions {
                default_namespace: args.namespace.clone(),
            },
        ),
        args.strict,
    );
    for e in &manifests.errors {
        eprintln!("✗ {e}");
    }
    let load_failed = !manifests.errors.is_empty();
    let store: Arc<dyn Store> = match &args.state_dir {
        // Cron and CI can start a run while the last one still pushes: wait
        // for it rather than fail, and say so.
        Some(dir) => Arc::new(FileStore::open_waiting(dir, STATE_LOCK_WAIT, |path| {
            eprintln!(
                "◎ waiting for another tagwarden process to release {} (up to {}s)",
                path.display(),
                STATE_LOCK_WAIT.as_secs()
            )
        })?),
        None => Arc::new(MemoryStore::default()),
    };
    super::drop_legacy_records(&*store);
    let mut ctx = super::once_context(manifests, store);
    ctx.dry_run = args.dry_run;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = rt.block_on(reconcile_all(&ctx));
    let reports: Vec<_> = results.iter().map(super::summary).collect();
    let plans: Vec<(String, String)> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter_map(|o| {
            o.plan.as_ref().map(|p| {
                (
                    format!("{}/{}/{}", o.id.kind, o.id.namespace, o.id.name),
                    p.clone(),
                )
            })
        })
        .collect();

    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let rows: Vec<[String; 4]> = reports
        .iter()
        .map(|(id, ready, message)| {
            [
                id.kind.to_string(),
                format!("{}/{}", id.namespace, id.name),
                ready.to_string(),
                // Messages quote registries and servers: one line, no raw controls.
                tagwarden_api::text::escape(&message.replace('\n', " "), false).into_owned(),
            ]
        })
        .collect();
    let header = ["KIND", "NAME", "READY", "MESSAGE"].map(String::from);
    let width = |i: usize| {
        rows.iter()
            .chain(std::iter::once(&header))
            .map(|r| r[i].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    for r in std::iter::once(&header).chain(&rows) {
        writeln!(out, "{:w0$}  {:w1$}  {:w2$}  {}", r[0], r[1], r[2], r[3])?;
    }
    for (who, plan) in &plans {
        // Diffs quote files: tabs and newlines kept, other controls escaped.
        writeln!(
            out,
            "\n=== {who}\n{}",
            tagwarden_api::text::escape(plan, true).trim_end()
        )?;
    }
    out.flush()?;
    let all_ready = reports.iter().all(|r| r.1 == ConditionStatus::True);
    Ok(if all_ready && !load_failed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// How long `run --once` waits for another process holding the state dir.
const STATE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

fn daemon(args: RunArgs) -> Result<ExitCode> {
    let dir = args
        .state_dir
        .clone()
        .or_else(super::default_state_dir)
        .context("no --state-dir and no HOME to put the state in")?;
    let store: Arc<dyn Store> = Arc::new(FileStore::open(&dir)?);
    tracing::info!(state_dir = %dir.display(), "state");
    super::drop_legacy_records(&*store);
    let config = tagwarden_daemon::Config {
        state_dir: Some(dir.clone()),
        paths: args.files,
        default_namespace: args.namespace,
        listen: args.listen,
        shutdown_grace: args.shutdown_grace,
        http: tagwarden_daemon::HttpLimits {
            header_timeout: args.header_timeout,
            max_connections: args.max_connections,
            hook_rate: f64::from(args.hook_rate_limit),
            hook_burst: args.hook_rate_limit.saturating_mul(3),
            ..tagwarden_daemon::HttpLimits::default()
        },
        strict: args.strict,
        ..tagwarden_daemon::Config::default()
    };
    // Long-running: fewer arenas, fewer places for freed memory to sit.
    tagwarden_trim::limit_arenas(super::MALLOC_ARENAS);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(tagwarden_daemon::run(config, store, shutdown_signal()));
    // Work abandoned after the grace period may sit in blocking threads
    // (a hung push): do not wait for it.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    result?;
    eprintln!("✔ stopped");
    Ok(ExitCode::SUCCESS)
}

fn duration(s: &str) -> Result<std::time::Duration, String> {
    tagwarden_api::duration::parse(s)
        .ok_or_else(|| format!("'{s}' is not a duration (e.g. 10s, 1m30s)"))
}

/// SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("signal received: stopping");
}
