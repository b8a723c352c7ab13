//! `tagwarden demo`: the getting-started guide's podinfo scenario, entirely
//! on this machine — a local registry, a local Git repository, one run.

use anyhow::{Context as _, Result};
use clap::Args;
use std::process::ExitCode;
use std::sync::Arc;
use tagwarden_api::status::ConditionStatus;
use tagwarden_api::{LoadOptions, Manifests};
use tagwarden_engine::reconcile_all;
use tagwarden_sandbox::{BareRepo, Registry, TempDir, git};
use tagwarden_store::MemoryStore;

#[derive(Args)]
pub struct DemoArgs {}

const TAGS: &[&str] = &["5.0.0", "5.0.1", "5.0.2", "5.0.3", "5.1.0", "6.0.0"];

/// The guide's Deployment, with the marker it adds.
fn deployment(image: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
  namespace: default
spec:
  selector:
    matchLabels:
      app: podinfo
  template:
    metadata:
      labels:
        app: podinfo
    spec:
      containers:
        - name: podinfod
          image: {image}:5.0.0 # {{"$imagepolicy": "flux-system:podinfo"}}
          imagePullPolicy: IfNotPresent
          ports:
            - name: http
              containerPort: 9898
              protocol: TCP
"#
    )
}

/// The guide's image manifests, pointed at the local registry and repository.
fn flux_manifests(image: &str, git_url: &str) -> String {
    tagwarden_sandbox::seed::podinfo_manifests(
        git_url,
        image,
        "{{range .Updated.Images}}{{println .}}{{end}}",
        "",
    )
}

pub fn run(_args: DemoArgs) -> Result<ExitCode> {
    const DEPLOY: &str = "clusters/my-cluster/podinfo-deployment.yaml";
    let step = |s: &str| eprintln!("► {s}");
    // Before anything starts, so a missing git is named with its package.
    tagwarden_sandbox::require_git()?;
    step("starting a local registry (Debian's docker-registry) on 127.0.0.1");
    let registry = Registry::start()?;
    let image = format!("{}/stefanprodan/podinfo", registry.host());
    step(&format!("publishing {image} tags {}", TAGS.join(", ")));
    registry.publish("stefanprodan/podinfo", TAGS, None)?;

    step("creating a local Git repository with the guide's Deployment and image manifests");
    let bare = BareRepo::new("main", &[(DEPLOY, &deployment(&image))]);
    let dir = TempDir::new("demo");
    let manifests_file = dir.path().join("flux-image-automation.yaml");
    std::fs::write(&manifests_file, flux_manifests(&image, &bare.url()))
        .with_context(|| format!("writing {}", manifests_file.display()))?;
    bare.commit_files(
        "main",
        &[(
            "clusters/my-cluster/flux-image-automation.yaml",
            &flux_manifests(&image, &bare.url()),
        )],
        "add image update automation",
    );
    let before = bare.log("main", "%H")[0].clone();

    step("running tagwarden: scan, select 5.0.x, update, commit, push");
    let ctx = super::once_context(
        Manifests::load_paths(
            std::slice::from_ref(&manifests_file),
            &LoadOptions::default(),
        ),
        Arc::new(MemoryStore::default()),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let reports: Vec<_> = rt
        .block_on(reconcile_all(&ctx))
        .iter()
        .map(super::summary)
        .collect();
    for (id, ready, message) in &reports {
        let mark = if *ready == ConditionStatus::True {
            "✔"
        } else {
            "✗"
        };
        println!("{mark} {} {}/{}: {message}", id.kind, id.namespace, id.name);
    }
    let head = bare.log("main", "%H")[0].clone();
    if head == before || reports.iter().any(|r| r.1 != ConditionStatus::True) {
        return Ok(ExitCode::FAILURE);
    }
    println!();
    let commit = git(
        &bare.path(),
        &[
            "log",
            "-1",
            "--format=commit %H%nAuthor: %an <%ae>%n%n%w(0,4,4)%B",
            &head,
        ],
    );
    println!("{commit}\n");
    // `show` trims; the files end with a newline.
    let old = bare.show(&format!("{head}~1"), DEPLOY) + "\n";
    let new = bare.show(&head, DEPLOY) + "\n";
    print!("{}", tagwarden_setters::unified_diff(DEPLOY, &old, &new));
    eprintln!("✔ done; the registry and repository were temporary and are removed now");
    drop(registry);
    Ok(ExitCode::SUCCESS)
}
