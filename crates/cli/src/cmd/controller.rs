//! `tagwarden controller`: inside a cluster, on Flux's own CRDs, in place of
//! Flux's image-reflector-controller and image-automation-controller. Flags
//! carry Flux's names and defaults.

use anyhow::{Context as _, Result};
use clap::{ArgAction, Args, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogEncoding {
    Json,
    Console,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  tagwarden controller --kubeconfig ~/.kube/config\n  \
    tagwarden controller --enable-leader-election --watch-label-selector=sharding.fluxcd.io/key=shard1"
)]
pub struct ControllerArgs {
    /// Path to a kubeconfig; in-cluster config or $KUBECONFIG otherwise.
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long)]
    context: Option<String>,
    /// Reconciles in flight per kind.
    #[arg(long, default_value_t = 4)]
    concurrent: usize,
    /// Hold a Lease in the runtime namespace: one replica reconciles.
    #[arg(long)]
    enable_leader_election: bool,
    #[arg(long, default_value = "35s", value_parser = duration)]
    leader_election_lease_duration: Duration,
    #[arg(long, default_value = "30s", value_parser = duration)]
    leader_election_renew_deadline: Duration,
    #[arg(long, default_value = "5s", value_parser = duration)]
    leader_election_retry_period: Duration,
    /// Watch every namespace; with =false only the runtime namespace
    /// ($RUNTIME_NAMESPACE, else flux-system).
    #[arg(long, default_value_t = true, action = ArgAction::Set, value_name = "BOOL",
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    watch_all_namespaces: bool,
    /// Only this namespace (overrides --watch-all-namespaces).
    #[arg(long, value_name = "NAMESPACE")]
    watch_namespace: Option<String>,
    /// Only objects with these labels (sharding across Deployments).
    #[arg(long, value_name = "SELECTOR")]
    watch_label_selector: Option<String>,
    /// Refuse references to objects in other namespaces (a policy's
    /// repository, an automation's GitRepository).
    #[arg(long)]
    no_cross_namespace_refs: bool,
    /// First wait after a failure (doubled each time).
    #[arg(long, default_value = "750ms", value_parser = duration)]
    min_retry_delay: Duration,
    #[arg(long, default_value = "15m", value_parser = duration)]
    max_retry_delay: Duration,
    /// Where /metrics is served.
    #[arg(long, default_value = ":8080", value_parser = address)]
    metrics_addr: SocketAddr,
    /// Where /healthz and /readyz are served.
    #[arg(long, default_value = ":9440", value_parser = address)]
    health_addr: SocketAddr,
    /// Serve the Receivers' /hook/… here, for clusters without
    /// notification-controller.
    #[arg(long, value_parser = address)]
    receivers_addr: Option<SocketAddr>,
    /// Flux's feature gates, e.g. ObjectLevelWorkloadIdentity=true: cloud
    /// logins of repositories with spec.serviceAccountName use that account.
    /// The other gates of image-reflector and image-automation are accepted.
    #[arg(long, value_name = "NAME=BOOL,...", value_parser = feature_gates)]
    feature_gates: Option<FeatureGates>,
    /// The tag database (embedded store); in memory when not given.
    #[arg(long, value_name = "DIR")]
    storage_path: Option<PathBuf>,
    #[arg(long, default_value = "info", value_parser = ["debug", "info", "error"])]
    log_level: String,
    #[arg(long, value_enum, default_value = "json")]
    log_encoding: LogEncoding,
}

/// The gates a Flux image controller Deployment may set.
const KNOWN_GATES: &[&str] = &[
    "ObjectLevelWorkloadIdentity",
    "CacheSecretsAndConfigMaps",
    "DisableConfigWatchers",
    "GitShallowClone",
    "GitAllBranchReferences",
    "GitSparseCheckout",
];

#[derive(Debug, Clone, Default)]
struct FeatureGates {
    object_level_identity: bool,
}

fn feature_gates(s: &str) -> Result<FeatureGates, String> {
    let mut gates = FeatureGates::default();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, value) = entry
            .split_once('=')
            .ok_or_else(|| format!("'{entry}': expected NAME=true or NAME=false"))?;
        let on = match value {
            "true" => true,
            "false" => false,
            _ => return Err(format!("'{entry}': expected NAME=true or NAME=false")),
        };
        if !KNOWN_GATES.contains(&name) {
            return Err(format!(
                "unknown feature gate '{name}'; known: {}",
                KNOWN_GATES.join(", ")
            ));
        }
        if name == "ObjectLevelWorkloadIdentity" {
            gates.object_level_identity = on;
        }
    }
    Ok(gates)
}

fn duration(s: &str) -> Result<Duration, String> {
    tagwarden_api::duration::parse(s)
        .ok_or_else(|| format!("'{s}' is not a duration (e.g. 750ms, 30s, 15m)"))
}

/// `:8080` (every interface, as Go's net.Listen) or `HOST:PORT`.
fn address(s: &str) -> Result<SocketAddr, String> {
    let full = match s.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => s.to_string(),
    };
    full.parse()
        .map_err(|_| format!("'{s}' is not an address (e.g. :8080, 127.0.0.1:8080)"))
}

pub fn run(args: ControllerArgs) -> Result<ExitCode> {
    let level = match args.log_level.as_str() {
        "debug" => tracing::Level::DEBUG,
        "error" => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false);
    match args.log_encoding {
        LogEncoding::Json => builder.json().init(),
        LogEncoding::Console => builder.init(),
    }
    let runtime_ns = std::env::var("RUNTIME_NAMESPACE").unwrap_or_else(|_| "flux-system".into());
    let instance = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| format!("tagwarden-{}", std::process::id()));
    tagwarden_registry::Network::process()?;
    let config = tagwarden_kube::Config {
        kubeconfig: args.kubeconfig,
        context: args.context,
        watch_namespace: args
            .watch_namespace
            .or_else(|| (!args.watch_all_namespaces).then(|| runtime_ns.clone())),
        label_selector: args.watch_label_selector,
        concurrent: args.concurrent,
        storage_path: args.storage_path,
        leader_election: args
            .enable_leader_election
            .then(|| tagwarden_kube::LeaderElection {
                lease_duration: args.leader_election_lease_duration,
                renew_deadline: args.leader_election_renew_deadline,
                retry_period: args.leader_election_retry_period,
                ..tagwarden_kube::LeaderElection::new(&runtime_ns, &instance)
            }),
        backoff: tagwarden_engine::Backoff {
            min: args.min_retry_delay,
            max: args.max_retry_delay,
        },
        health_addr: Some(args.health_addr),
        metrics_addr: Some(args.metrics_addr),
        instance,
        no_cross_namespace_refs: args.no_cross_namespace_refs,
        object_level_identity: args
            .feature_gates
            .as_ref()
            .is_some_and(|g| g.object_level_identity),
        receivers_addr: args.receivers_addr,
        ..tagwarden_kube::Config::default()
    };
    // Long-running: fewer arenas, fewer places for freed memory to sit.
    tagwarden_trim::limit_arenas(super::MALLOC_ARENAS);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(tagwarden_kube::run(config, super::run::shutdown_signal()));
    rt.shutdown_timeout(Duration::from_millis(200));
    result.context("controller")?;
    Ok(ExitCode::SUCCESS)
}
