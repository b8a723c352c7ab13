//! ImageUpdateAutomation: check out, set the marked values, commit, push —
//! and when the branch moved under us, start again from its new tip.

use crate::outcome::{events, success_conditions};
use crate::{Change, Context, EngineError, Failure, Outcome, PushResult};
use std::collections::BTreeMap;
use std::time::Duration;
use tagwarden_api::status::{ConditionStatus, ImageUpdateAutomationStatus, Status};
use tagwarden_api::time::Time;
use tagwarden_api::{GitRepository, ImageUpdateAutomation, Kind, Object, ObjectId};
use tagwarden_git::{Checkout, GitAuth, GitError, GitRemote, OpenRequest, Signer};
use tagwarden_setters::{PolicyImage, Setters};

/// Pushes rejected by a moving branch before we give up for this run.
const PUSH_ATTEMPTS: u32 = 8;

/// Flux's reasons for Git failures.
impl Failure {
    fn git(e: GitError) -> Failure {
        let reason = match &e {
            GitError::Config(_) => "InvalidConfiguration",
            // Flux reports a refused host key or TLS certificate as a failed
            // clone, retried on the interval; every other step alike.
            _ => "GitOperationFailed",
        };
        // A server hook's refusal stays until someone changes the hook or
        // the automation: report it once, with the remote's text.
        let stalled = matches!(e, GitError::Config(_) | GitError::Declined { .. });
        Failure::new(reason, e.to_string(), stalled)
    }
}

/// What a successful run did, and the checkout it started from.
#[derive(Debug)]
pub(crate) enum Done {
    UpToDate {
        revision: String,
        /// Markers held back (downgrades), as the status says them.
        held: Vec<String>,
    },
    Pushed {
        push: PushResult,
        revision: String,
        data: Box<tagwarden_template::TemplateData>,
        held: Vec<String>,
    },
    /// A rebuilt branch already held exactly this change: nothing pushed.
    Current {
        revision: String,
        data: Box<tagwarden_template::TemplateData>,
    },
    /// A dry run: committed in the scratch clone only.
    Planned {
        revision: String,
        branch: String,
        message: String,
        diff: String,
        data: Box<tagwarden_template::TemplateData>,
    },
    /// `tagwarden.io/batch-window`: policy changes wait for others.
    Batching {
        until: std::time::SystemTime,
        pending: usize,
        window: Duration,
    },
    /// Pull-request mode: what happened to the request(s).
    PullRequests {
        revision: String,
        message: String,
        result: Option<crate::PullRequestResult>,
        /// A dry run's plan.
        plan: Option<String>,
    },
}

/// Where an update goes: the automation's push branch, or a pull
/// request's head, rebuilt from the checkout each run.
pub(crate) struct Destination<'a> {
    pub push_branch: Option<&'a str>,
    pub rebuild: bool,
    /// Commit locally and report the diff; push nothing.
    pub dry_run: bool,
    /// Setter → value this automation wrote lately (the flap guard).
    pub contested: &'a std::collections::HashMap<String, String>,
}

/// A dry run's text: the branch, the message and the diff.
pub(crate) fn plan_text(branch: &str, message: &str, diff: &str) -> String {
    format!("would push to branch '{branch}' a commit with the message:\n\n{message}\n\n{diff}")
}

pub(crate) async fn reconcile(
    auto: &ImageUpdateAutomation,
    ctx: &Context,
) -> Result<Outcome, EngineError> {
    let id = ObjectId::new(
        Kind::ImageUpdateAutomation,
        auto.meta.namespace.clone(),
        auto.meta.name.clone(),
    );
    let previous = match ctx.status.read(&id)? {
        Some(Status::ImageUpdateAutomation(s)) => s,
        _ => ImageUpdateAutomationStatus::default(),
    };
    if auto.suspend {
        return Ok(Outcome::suspended(
            id,
            Status::ImageUpdateAutomation(previous),
        ));
    }
    let now = ctx.clock.now();
    let generation = auto.meta.generation;
    let mut status = ImageUpdateAutomationStatus {
        observed_generation: generation,
        last_automation_run_time: Some(Time::from_system(now)),
        last_handled_reconcile_at: auto
            .meta
            .reconcile_requested_at()
            .map(str::to_string)
            .or(previous.last_handled_reconcile_at.clone()),
        ..previous.clone()
    };
    let mut plan = None;
    let mut requeue_after = Some(auto.interval);
    let (change, failure) = match run(auto, ctx, &previous.observed_policies).await? {
        Ok((
            Done::Batching {
                until,
                pending,
                window,
            },
            _,
        )) => {
            // observedPolicies stays: the changes are still to be applied.
            let wait = until.duration_since(now).unwrap_or_default();
            requeue_after = Some(wait.min(auto.interval));
            let message = format!(
                "waiting for more policy changes until {} ({} {}): {pending} pending",
                Time::from_system(until),
                crate::guards::BATCH_WINDOW,
                tagwarden_api::duration::format(window)
            );
            status.conditions = success_conditions(&previous.conditions, &message, generation, now);
            (None, None)
        }
        Ok((done, policies)) => {
            // The batch (if any) is applied.
            crate::guards::clear_batch(&*ctx.db, &auto.meta.namespace, &auto.meta.name)?;
            // Flux's observedPolicies: by name, in the automation's namespace.
            status.observed_policies = policies
                .iter()
                .map(|p| (p.name.clone(), p.latest.clone()))
                .collect::<BTreeMap<_, _>>();
            match done {
                Done::Batching { .. } => (None, None),
                Done::Planned {
                    revision,
                    branch,
                    message,
                    diff,
                    ..
                } => {
                    status.observed_source_revision = Some(revision);
                    plan = Some(plan_text(&branch, &message, &diff));
                    status.conditions = success_conditions(
                        &previous.conditions,
                        &format!("dry run: would push a commit to branch '{branch}'"),
                        generation,
                        now,
                    );
                    (None, None)
                }
                Done::PullRequests {
                    revision,
                    message,
                    result,
                    plan: p,
                } => {
                    plan = p;
                    tracing::info!(kind = Kind::ImageUpdateAutomation.as_str(), namespace = %auto.meta.namespace, name = %auto.meta.name, %message, "pull request");
                    status.observed_source_revision = Some(revision);
                    status.conditions =
                        success_conditions(&previous.conditions, &message, generation, now);
                    if let Some(p) = result.as_ref().and_then(|r| r.push.as_ref()) {
                        status.last_push_commit = Some(p.commit.clone());
                        status.last_push_time = Some(Time::from_system(now));
                    }
                    (result.map(Change::PullRequest), None)
                }
                Done::Current { revision, .. } => {
                    status.observed_source_revision = Some(revision);
                    status.conditions = success_conditions(
                        &previous.conditions,
                        "repository up-to-date",
                        generation,
                        now,
                    );
                    (None, None)
                }
                Done::UpToDate { revision, held } => {
                    tracing::info!(kind = Kind::ImageUpdateAutomation.as_str(), namespace = %auto.meta.namespace, name = %auto.meta.name, "repository up-to-date");
                    status.observed_source_revision = Some(revision);
                    let message = std::iter::once("repository up-to-date".to_string())
                        .chain(held)
                        .collect::<Vec<_>>()
                        .join("; ");
                    status.conditions =
                        success_conditions(&previous.conditions, &message, generation, now);
                    (None, None)
                }
                Done::Pushed {
                    push,
                    revision,
                    held,
                    data,
                } => {
                    if let Ok(Some(window)) = crate::guards::automation_flap_window(auto) {
                        crate::guards::record_writes(
                            &*ctx.db,
                            &auto.meta.namespace,
                            &auto.meta.name,
                            data.changes
                                .iter()
                                .map(|c| (c.setter.clone(), c.new_value.clone())),
                            window,
                            now,
                        )?;
                    }
                    let short: String = push.commit.chars().take(7).collect();
                    let message = std::iter::once(format!(
                        "pushed commit '{short}' to branch '{}'",
                        push.branch
                    ))
                    .chain(held)
                    .collect::<Vec<_>>()
                    .join("; ");
                    tracing::info!(kind = Kind::ImageUpdateAutomation.as_str(), namespace = %auto.meta.namespace, name = %auto.meta.name, commit = %push.commit, branch = %push.branch, "pushed");
                    status.observed_source_revision = Some(revision);
                    status.conditions =
                        success_conditions(&previous.conditions, &message, generation, now);
                    status.last_push_commit = Some(push.commit.clone());
                    status.last_push_time = Some(Time::from_system(now));
                    (Some(Change::Pushed(push)), None)
                }
            }
        }
        Err(f) => {
            tracing::warn!(kind = Kind::ImageUpdateAutomation.as_str(), namespace = %auto.meta.namespace, name = %auto.meta.name, reason = f.reason, error = %f.message, "automation failed");
            status.conditions = f.conditions(&previous.conditions, generation, now);
            (None, Some(f))
        }
    };
    let mut events = events(&previous.conditions, &status.conditions);
    // Every push is news, even with the same words as the last one.
    if let (Some(Change::Pushed(_) | Change::PullRequest(_)), true) = (&change, events.is_empty())
        && let Some(ready) = tagwarden_api::status::find(&status.conditions, "Ready")
    {
        events.push(crate::Event {
            kind: crate::EventType::Normal,
            reason: ready.reason.clone(),
            message: ready.message.clone(),
        });
    }
    Ok(Outcome {
        id,
        events,
        status: Status::ImageUpdateAutomation(status),
        change,
        requeue_after,
        plan,
        failure,
        suspended: false,
    })
}

async fn run(
    auto: &ImageUpdateAutomation,
    ctx: &Context,
    observed: &BTreeMap<String, tagwarden_api::LatestRef>,
) -> Result<Result<(Done, Vec<PolicyImage>), Failure>, EngineError> {
    let ns = &auto.meta.namespace;
    if auto.source_ref.kind != Kind::GitRepository.as_str() {
        return Ok(Err(Failure::new(
            "InvalidSourceRef",
            format!(
                "spec.sourceRef.kind: '{}' is not supported; expected GitRepository",
                auto.source_ref.kind
            ),
            true,
        )));
    }
    let repo_ns = auto
        .source_ref
        .namespace
        .clone()
        .unwrap_or_else(|| ns.clone());
    let source = ObjectId::new(
        Kind::GitRepository,
        repo_ns.clone(),
        auto.source_ref.name.clone(),
    );
    if let Some(f) = ctx.cross_namespace_denied(ns, &source) {
        return Ok(Err(f));
    }
    let Some(Object::GitRepository(git_repo)) = ctx.objects.get(&source) else {
        return Ok(Err(Failure::new(
            "DependencyNotReady",
            format!(
                "referenced GitRepository '{repo_ns}/{}' not found",
                auto.source_ref.name
            ),
            false,
        )));
    };
    let policies = match ready_policies(auto, ctx)? {
        Ok(p) => p,
        Err(f) => return Ok(Err(f)),
    };
    // A batch window holds the first change back for the others to join.
    let window = match crate::guards::batch_window(auto) {
        Ok(w) => w,
        Err(f) => return Ok(Err(f)),
    };
    if let Some(window) = window
        && !observed.is_empty()
        && !ctx.dry_run
    {
        let pending = policies
            .iter()
            .filter(|p| observed.get(&p.name) != Some(&p.latest))
            .count();
        let (ns, name) = (&auto.meta.namespace, &auto.meta.name);
        if pending == 0 {
            crate::guards::clear_batch(&*ctx.db, ns, name)?;
        } else {
            let now = ctx.clock.now();
            let start = crate::guards::batch_start(&*ctx.db, ns, name, now)?;
            let until = start + window;
            if now < until {
                return Ok(Ok((
                    Done::Batching {
                        until,
                        pending,
                        window,
                    },
                    policies,
                )));
            }
        }
    }
    if let Some(t) = &auto.message_template
        && let Err(e) = tagwarden_template::check(t)
    {
        return Ok(Err(Failure::new(
            "InvalidCommitTemplate",
            format!("spec.git.commit.messageTemplate: {e}"),
            true,
        )));
    }
    let auth = match git_auth(&git_repo, ctx) {
        Ok(a) => a,
        Err(f) => return Ok(Err(f)),
    };
    let signer = match signer(auto, ctx) {
        Ok(s) => s,
        Err(f) => return Ok(Err(f)),
    };
    if let Some(config) = crate::pull_request::config(auto, &git_repo) {
        let config = match config {
            Ok(c) => c,
            Err(f) => return Ok(Err(f)),
        };
        let done = crate::pull_request::run(
            auto,
            ctx,
            &git_repo,
            auth,
            signer.map(std::sync::Arc::new),
            &policies,
            &config,
        )
        .await;
        return Ok(done.map(|d| (d, policies)));
    }
    let done = blocking_update(
        ctx,
        auto,
        &git_repo,
        auth,
        signer.map(std::sync::Arc::new),
        policies.clone(),
        auto.push_branch.clone(),
        false,
    )
    .await;
    Ok(done.map(|d| (d, policies)))
}

/// [`update_and_push`] on a blocking thread (Git blocks).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn blocking_update(
    ctx: &Context,
    auto: &ImageUpdateAutomation,
    git_repo: &GitRepository,
    auth: GitAuth,
    signer: Option<std::sync::Arc<Signer>>,
    policies: Vec<PolicyImage>,
    push_branch: Option<String>,
    rebuild: bool,
) -> Result<Done, Failure> {
    let contested = match crate::guards::automation_flap_window(auto) {
        Ok(Some(w)) => crate::guards::recent_writes(
            &*ctx.db,
            &auto.meta.namespace,
            &auto.meta.name,
            w,
            ctx.clock.now(),
        ),
        Ok(None) => Default::default(),
        Err(f) => return Err(f),
    };
    let auto = auto.clone();
    let git_repo = git_repo.clone();
    let git = ctx.git.clone();
    let scratch = ctx.scratch.clone();
    let dry_run = ctx.dry_run;
    let joined = tokio::task::spawn_blocking(move || {
        update_and_push(
            &*git,
            &auto,
            &git_repo,
            &auth,
            signer.as_deref(),
            &policies,
            scratch.as_deref(),
            &Destination {
                push_branch: push_branch.as_deref(),
                rebuild,
                dry_run,
                contested: &contested,
            },
        )
    })
    .await;
    joined.unwrap_or_else(|e| {
        Err(Failure::new(
            "ReconciliationFailed",
            format!("update task failed: {e}"),
            false,
        ))
    })
}

/// The policies the automation applies (its namespace, its selector), each
/// with what it resolved to. Flux waits until every one of them is ready.
fn ready_policies(
    auto: &ImageUpdateAutomation,
    ctx: &Context,
) -> Result<Result<Vec<PolicyImage>, Failure>, EngineError> {
    let mut out = Vec::new();
    for p in crate::selected_policies(auto, &*ctx.objects) {
        let id = ObjectId::new(
            Kind::ImagePolicy,
            p.meta.namespace.clone(),
            p.meta.name.clone(),
        );
        let status = match ctx.status.read(&id)? {
            Some(Status::ImagePolicy(s)) => Some(s),
            _ => None,
        };
        let ready = status.as_ref().is_some_and(|s| {
            tagwarden_api::status::ready(&s.conditions).0 == ConditionStatus::True
        });
        match status.and_then(|s| s.latest_ref) {
            Some(latest) if ready => out.push(PolicyImage {
                // On the policy, or on the automation for all its policies.
                no_downgrade: [&p.meta.annotations, &auto.meta.annotations]
                    .iter()
                    .any(|a| {
                        a.get(crate::guards::NO_DOWNGRADE)
                            .is_some_and(|v| v.trim() == "true")
                    })
                    .then(|| p.policy_spec()),
                namespace: p.meta.namespace.clone(),
                name: p.meta.name.clone(),
                labels: p.meta.labels.clone(),
                latest,
            }),
            _ => {
                return Ok(Err(Failure::new(
                    "DependencyNotReady",
                    format!(
                        "ImagePolicy '{}/{}' is not ready",
                        p.meta.namespace, p.meta.name
                    ),
                    false,
                )));
            }
        }
    }
    Ok(Ok(out))
}

pub(crate) fn git_auth(repo: &GitRepository, ctx: &Context) -> Result<GitAuth, Failure> {
    let Some(name) = &repo.secret_ref else {
        return Ok(GitAuth::default());
    };
    ctx.secret(&repo.meta.namespace, name)
        .map(|s| GitAuth::from_secret(&s.data))
        .ok_or_else(|| {
            Failure::new(
                "AuthenticationFailed",
                format!(
                    "GitRepository '{}/{}' spec.secretRef: secret '{name}' not found",
                    repo.meta.namespace, repo.meta.name
                ),
                false,
            )
        })
}

/// The key of `spec.git.commit.signingKey.secretRef`, read and unlocked
/// before any clone so a bad key fails fast.
fn signer(auto: &ImageUpdateAutomation, ctx: &Context) -> Result<Option<Signer>, Failure> {
    let Some(name) = &auto.signing_key_secret else {
        return Ok(None);
    };
    let secret = ctx.secret(&auto.meta.namespace, name).ok_or_else(|| {
        Failure::new(
            "GitOperationFailed",
            format!(
                "spec.git.commit.signingKey.secretRef: secret '{}/{name}' not found",
                auto.meta.namespace
            ),
            false,
        )
    })?;
    Signer::from_secret(&secret.data)
        .map(Some)
        .map_err(Failure::git)
}

#[allow(clippy::too_many_arguments)]
fn update_and_push(
    git: &dyn GitRemote,
    auto: &ImageUpdateAutomation,
    repo: &GitRepository,
    auth: &GitAuth,
    signer: Option<&Signer>,
    policies: &[PolicyImage],
    scratch: Option<&std::path::Path>,
    to: &Destination<'_>,
) -> Result<Done, Failure> {
    let checkout = Checkout::from_ref(auto.checkout_ref.as_ref().or(repo.reference.as_ref()));
    let dir = crate::workdir::create(scratch)
        .map_err(|e| Failure::new("ReconciliationFailed", e, false))?;
    let result = (|| {
        let started = std::time::Instant::now();
        let mut ws = git
            .open(&OpenRequest {
                url: &repo.url,
                checkout: &checkout,
                push_branch: to.push_branch,
                auth,
                dir: dir.path(),
                timeout: repo.timeout,
                rebuild: to.rebuild,
                sparse: Some(&auto.update_path),
            })
            .map_err(Failure::git)?;
        tracing::debug!(url = %tagwarden_api::redact::url(&repo.url), ms = started.elapsed().as_millis() as u64, "checked out");
        let mut setters = Setters::new(
            &auto.meta.namespace,
            auto.policy_selector.as_ref(),
            policies,
        );
        setters.hold_flaps(to.contested.clone());
        let mut backoff = Duration::from_millis(100);
        for attempt in 1..=PUSH_ATTEMPTS {
            let result = tagwarden_setters::apply(ws.workdir(), &auto.update_path, &setters)
                .map_err(|e| Failure::new("UpdateFailed", e.to_string(), !e.is_transient()))?;
            tracing::debug!(
                ms = started.elapsed().as_millis() as u64,
                files = result.files.len(),
                "markers set"
            );
            for s in &result.skipped {
                tracing::warn!(file = %s.path.display(), line = s.error.line, error = %s.error.message, "file skipped: not valid YAML");
            }
            let held: Vec<String> = result
                .held
                .iter()
                .map(|h| {
                    let at = format!("{} in {}:{}", h.setter, tagwarden_setters::slash_path(&h.path), h.line);
                    match h.hold {
                        tagwarden_setters::Hold::Downgrade => format!(
                            "held back a downgrade of {at}: {} -> {}",
                            h.old_value, h.new_value
                        ),
                        tagwarden_setters::Hold::Flap => format!(
                            "stopped a flap of {at} ({}): this automation set {} lately, someone set {} since",
                            crate::guards::FLAP_WINDOW,
                            h.new_value,
                            h.old_value
                        ),
                    }
                })
                .collect();
            for h in &held {
                tracing::warn!(note = %h, "downgrade held back");
            }
            if result.change_count() == 0 {
                return Ok(Done::UpToDate {
                    revision: ws.revision(),
                    held,
                });
            }
            let data = crate::message::data(auto, &result, policies);
            let message = crate::message::render_with(auto.message_template.as_deref(), &data)
                .map_err(|e| Failure::new("InvalidCommitTemplate", e, true))?;
            tracing::debug!(
                ms = started.elapsed().as_millis() as u64,
                "message rendered"
            );
            let commit = ws
                .commit(
                    &auto.author_name,
                    &auto.author_email,
                    &message,
                    signer,
                    &result
                        .files
                        .iter()
                        .map(|f| f.target.clone())
                        .collect::<Vec<_>>(),
                )
                .map_err(Failure::git)?;
            let Some(commit) = commit else {
                return Ok(Done::UpToDate {
                    revision: ws.revision(),
                    held,
                });
            };
            tracing::debug!(ms = started.elapsed().as_millis() as u64, "committed");
            if to.dry_run {
                let diff = ws.diff().map_err(Failure::git)?;
                return Ok(Done::Planned {
                    revision: ws.revision(),
                    branch: ws.push_branch().to_string(),
                    message,
                    diff,
                    data: Box::new(data),
                });
            }
            if to.rebuild && ws.remote_has_our_tree() {
                return Ok(Done::Current {
                    revision: ws.revision(),
                    data: Box::new(data),
                });
            }
            let pushed = ws.push(auto.push_refspec.as_deref(), &auto.push_options);
            tracing::debug!(ms = started.elapsed().as_millis() as u64, "push returned");
            match pushed {
                Ok(()) => {
                    return Ok(Done::Pushed {
                        push: PushResult {
                            commit,
                            branch: ws.push_branch().to_string(),
                        },
                        revision: ws.revision(),
                        data: Box::new(data),
                        held,
                    });
                }
                // Only a lost race is retried; a refusal (GitError::Declined) is final.
                Err(GitError::Rejected { message, .. }) if attempt < PUSH_ATTEMPTS => {
                    tracing::info!(attempt, reason = %tagwarden_api::redact::text(&message, &repo.url), "push rejected: re-applying on the new tip");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    ws.refresh().map_err(Failure::git)?;
                }
                Err(e) => return Err(Failure::git(e)),
            }
        }
        Err(Failure::new(
            "GitOperationFailed",
            format!("push rejected {PUSH_ATTEMPTS} times: the branch keeps moving"),
            false,
        ))
    })();
    // Git and servers quote the URL in errors; credentials in it stay out of
    // status, the store and the logs.
    result.map_err(|mut f| {
        f.message = tagwarden_api::redact::text(&f.message, &repo.url);
        f
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tagwarden_api::{LoadOptions, Manifests};
    use tagwarden_testkit::{BareRepo, GitHttpServer, SshServer, git, ssh_keygen};

    const DEPLOY: &str =
        "image: ghcr.io/stefanprodan/podinfo:5.0.0 # {\"$imagepolicy\": \"flux-system:podinfo\"}\n";

    fn objects(url: &str) -> (ImageUpdateAutomation, GitRepository) {
        let text = format!(
            "apiVersion: source.toolkit.fluxcd.io/v1\n\
             kind: GitRepository\n\
             metadata: {{name: repo, namespace: flux-system}}\n\
             spec: {{interval: 1m, url: '{url}', ref: {{branch: main}}}}\n\
             ---\n\
             apiVersion: image.toolkit.fluxcd.io/v1beta2\n\
             kind: ImageUpdateAutomation\n\
             metadata: {{name: auto, namespace: flux-system}}\n\
             spec:\n  interval: 1m\n  sourceRef: {{kind: GitRepository, name: repo}}\n  \
             git: {{commit: {{author: {{name: bot, email: bot@example.com}}}}}}\n  \
             update: {{path: ./, strategy: Setters}}\n"
        );
        let m = Manifests::load_str(
            &text,
            std::path::Path::new("t.yaml"),
            &LoadOptions::default(),
        );
        assert!(m.errors.is_empty(), "{:?}", m.errors);
        let mut auto = None;
        let mut repo = None;
        for o in m.objects {
            match o {
                Object::ImageUpdateAutomation(a) => auto = Some(*a),
                Object::GitRepository(g) => repo = Some(g),
                _ => {}
            }
        }
        (auto.expect("automation"), repo.expect("repository"))
    }

    fn policies() -> Vec<PolicyImage> {
        vec![PolicyImage {
            no_downgrade: None,
            namespace: "flux-system".into(),
            name: "podinfo".into(),
            labels: Default::default(),
            latest: tagwarden_api::LatestRef {
                name: "ghcr.io/stefanprodan/podinfo".into(),
                tag: "5.0.3".into(),
                digest: None,
            },
        }]
    }

    fn hook(bare: &BareRepo, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let p = bare.path().join("hooks/pre-receive");
        std::fs::write(&p, format!("#!/bin/sh\ncat > /dev/null\n{body}\n")).expect("hook");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    enum Via {
        File,
        Http,
        Ssh,
    }

    /// A refusing pre-receive hook: reported once, stalled, in the remote's words.
    fn refused_once(via: Via) {
        let bare = BareRepo::new("main", &[("deploy.yaml", DEPLOY)]);
        let counter = bare.root().join("runs.txt");
        hook(
            &bare,
            &format!(
                "echo run >> '{}'\necho 'refusing: frozen branch' >&2\nexit 1",
                counter.display()
            ),
        );
        let (url, auth, _server) = match via {
            Via::File => (bare.url(), GitAuth::default(), None),
            Via::Http => {
                git(&bare.path(), &["config", "http.receivepack", "true"]);
                let s = GitHttpServer::start(bare.root(), "git", "s3cret");
                let auth = GitAuth {
                    username: Some("git".into()),
                    password: Some("s3cret".into()),
                    ..GitAuth::default()
                };
                (s.url("repo.git"), auth, None)
            }
            Via::Ssh => {
                let key = ssh_keygen("ed25519", "", false);
                let s = SshServer::start(bare.root(), &key.public);
                let auth = GitAuth {
                    identity: Some(key.private.clone()),
                    known_hosts: Some(s.known_hosts_line()),
                    ..GitAuth::default()
                };
                (s.url("repo.git"), auth, Some((s, key)))
            }
        };
        let (auto, repo) = objects(&url);
        let before = bare.log("main", "%H");
        let Err(f) = update_and_push(
            &tagwarden_git::Git2,
            &auto,
            &repo,
            &auth,
            None,
            &policies(),
            None,
            &Destination {
                push_branch: None,
                rebuild: false,
                dry_run: false,
                contested: &Default::default(),
            },
        ) else {
            panic!("the hook refuses every push");
        };
        assert_eq!(
            f.message,
            "push to 'main' declined by the remote: refs/heads/main: pre-receive hook declined; \
             remote: refusing: frozen branch"
        );
        assert_eq!(f.reason, "GitOperationFailed");
        assert!(f.stalled, "a refusal is final until something changes");
        let runs = std::fs::read_to_string(&counter).expect("the hook ran");
        assert_eq!(runs.lines().count(), 1, "pushed once, not retried");
        assert_eq!(bare.log("main", "%H"), before, "branch unchanged");
    }

    #[test]
    fn a_refusing_hook_is_reported_once_over_file() {
        refused_once(Via::File);
    }

    #[test]
    fn a_refusing_hook_is_reported_once_over_http() {
        refused_once(Via::Http);
    }

    #[test]
    fn a_refusing_hook_is_reported_once_over_ssh() {
        refused_once(Via::Ssh);
    }

    /// The branch moves inside the push window (from the hook): retried on
    /// the new tip, and the other commit is kept.
    #[test]
    fn a_lost_race_is_reapplied_on_the_new_tip() {
        let bare = BareRepo::new("main", &[("deploy.yaml", DEPLOY)]);
        let old = bare.log("main", "%H")[0].clone();
        let theirs = git(
            &bare.path(),
            &["commit-tree", "main^{tree}", "-p", "main", "-m", "theirs"],
        );
        let marker = bare.root().join("moved");
        hook(
            &bare,
            &format!(
                "if [ ! -e '{m}' ]; then touch '{m}'; \
                 env -u GIT_QUARANTINE_PATH -u GIT_OBJECT_DIRECTORY -u GIT_ALTERNATE_OBJECT_DIRECTORIES \
                 git update-ref refs/heads/main {theirs} {old}; fi",
                m = marker.display()
            ),
        );
        let (auto, repo) = objects(&bare.url());
        match update_and_push(
            &tagwarden_git::Git2,
            &auto,
            &repo,
            &GitAuth::default(),
            None,
            &policies(),
            None,
            &Destination {
                push_branch: None,
                rebuild: false,
                dry_run: false,
                contested: &Default::default(),
            },
        ) {
            Ok(Done::Pushed { push, revision, .. }) => {
                assert_eq!(push.branch, "main");
                assert!(revision.starts_with("main@sha1:"), "{revision}");
            }
            Ok(_) => panic!("up to date"),
            Err(f) => panic!("{}", f.message),
        }
        assert_eq!(
            bare.log("main", "%s"),
            [
                "Update from image update automation",
                "theirs",
                "initial commit"
            ]
        );
    }
}
