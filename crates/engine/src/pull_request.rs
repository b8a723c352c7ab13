//! Pull-request mode: an ImageUpdateAutomation annotated
//! `tagwarden.io/pull-request: "true"` pushes its commit to a head branch
//! of its own (rebuilt from the checkout branch every run) and opens or
//! updates one pull/merge request into the checkout branch. When the base
//! already holds the new values the request is closed as superseded.
//!
//! Everything is configured through annotations, so the manifest stays
//! valid under Flux's CRD schema:
//!
//! | annotation | meaning |
//! |---|---|
//! | `tagwarden.io/pull-request` | `"true"` turns it on |
//! | `tagwarden.io/pull-request-branch` | head branch; `{{ .Policy.Name }}` makes one request per policy |
//! | `tagwarden.io/pull-request-title`, `…-body` | Go templates over the commit message's data |
//! | `tagwarden.io/pull-request-labels`, `…-reviewers`, `…-assignees` | comma-separated |
//! | `tagwarden.io/pull-request-draft`, `…-auto-merge` | `"true"` / `"false"` |
//! | `tagwarden.io/forge`, `tagwarden.io/forge-api-url` | github, gitlab, gitea; the API base |

use crate::automation::{Done, blocking_update};
use crate::{Context, Failure, PullRequestAction, PullRequestResult};
use std::sync::Arc;
use tagwarden_api::{GitRepository, ImageUpdateAutomation};
use tagwarden_forge::{
    BoxFuture, Credential, Forge, ForgeError, ForgeKind, Proposal, PullRequest, Target,
};
use tagwarden_git::{Checkout, GitAuth, Signer};
use tagwarden_setters::PolicyImage;
use tagwarden_template::TemplateData;

const ON: &str = "tagwarden.io/pull-request";

/// Every annotation this mode reads, for messages.
fn key(suffix: &str) -> String {
    format!("{ON}-{suffix}")
}

/// The mode's settings, read from the automation's annotations.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub target: Target,
    pub branch: Option<String>,
    pub title: Option<String>,
    pub body: Option<String>,
    pub labels: Vec<String>,
    pub reviewers: Vec<String>,
    pub assignees: Vec<String>,
    pub draft: bool,
    pub auto_merge: bool,
}

fn flag(a: &std::collections::BTreeMap<String, String>, k: &str) -> Result<bool, Failure> {
    match a.get(k).map(|v| v.trim()) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(v) => Err(invalid(format!(
            "annotation {k}: '{}' is not \"true\" or \"false\"",
            tagwarden_api::text::escape(v, false)
        ))),
    }
}

fn invalid(message: String) -> Failure {
    Failure::new("InvalidConfiguration", message, true)
}

fn list(a: &std::collections::BTreeMap<String, String>, k: &str) -> Vec<String> {
    a.get(k)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// `None` when the automation does not ask for pull requests.
pub(crate) fn config(
    auto: &ImageUpdateAutomation,
    repo: &GitRepository,
) -> Option<Result<Config, Failure>> {
    let a = &auto.meta.annotations;
    match flag(a, ON) {
        Ok(false) => None,
        Err(e) => Some(Err(e)),
        Ok(true) => Some((|| {
            let kind = match a.get(tagwarden_forge::FORGE_ANNOTATION) {
                Some(k) => Some(ForgeKind::parse(k).ok_or_else(|| {
                    invalid(format!(
                        "annotation {}: '{}' is not github, gitlab or gitea",
                        tagwarden_forge::FORGE_ANNOTATION,
                        tagwarden_api::text::escape(k, false)
                    ))
                })?),
                None => None,
            };
            let target = Target::from_git_url(
                &repo.url,
                kind,
                a.get(tagwarden_forge::API_ANNOTATION).map(String::as_str),
            )
            .map_err(|e| invalid(e.to_string()))?;
            for (k, t) in [("title", key("title")), ("body", key("body"))] {
                if let Some(text) = a.get(&t)
                    && let Err(e) = tagwarden_template::check(text)
                {
                    return Err(Failure::new(
                        "InvalidCommitTemplate",
                        format!("annotation {t} ({k}): {e}"),
                        true,
                    ));
                }
            }
            Ok(Config {
                target,
                branch: a.get(&key("branch")).cloned(),
                title: a.get(&key("title")).cloned(),
                body: a.get(&key("body")).cloned(),
                labels: list(a, &key("labels")),
                reviewers: list(a, &key("reviewers")),
                assignees: list(a, &key("assignees")),
                draft: flag(a, &key("draft"))?,
                auto_merge: flag(a, &key("auto-merge"))?,
            })
        })()),
    }
}

impl Config {
    /// One request per policy when the branch names the policy.
    fn per_policy(&self) -> bool {
        self.branch
            .as_deref()
            .is_some_and(|b| b.contains(".Policy"))
    }
}

/// The head branch: the template with `{{ .Policy.Name }}`,
/// `{{ .Policy.Namespace }}`, `{{ .AutomationObject.Name }}` and
/// `{{ .AutomationObject.Namespace }}` filled in; else `spec.git.push.branch`
/// when it is not the base; else `tagwarden/<automation>`.
fn head_branch(
    cfg: &Config,
    auto: &ImageUpdateAutomation,
    policy: Option<&PolicyImage>,
    base: &str,
) -> Result<String, Failure> {
    let branch = match &cfg.branch {
        Some(t) => {
            let mut out = String::new();
            let mut rest = t.as_str();
            while let Some(start) = rest.find("{{") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let end = after.find("}}").ok_or_else(|| {
                    invalid(format!("annotation {}: unclosed '{{{{'", key("branch")))
                })?;
                let field = after[..end].trim();
                let value = match (field, policy) {
                    (".Policy.Name", Some(p)) => p.name.clone(),
                    (".Policy.Namespace", Some(p)) => p.namespace.clone(),
                    (".AutomationObject.Name", _) => auto.meta.name.clone(),
                    (".AutomationObject.Namespace", _) => auto.meta.namespace.clone(),
                    _ => {
                        return Err(invalid(format!(
                            "annotation {}: '{{{{ {field} }}}}' is not one of .Policy.Name, .Policy.Namespace, .AutomationObject.Name, .AutomationObject.Namespace",
                            key("branch")
                        )));
                    }
                };
                out.push_str(&value);
                rest = &after[end + 2..];
            }
            out.push_str(rest);
            out
        }
        None => match &auto.push_branch {
            Some(p) if p != base => p.clone(),
            _ => format!("tagwarden/{}", auto.meta.name),
        },
    };
    if !valid_branch(&branch) {
        return Err(invalid(format!(
            "the pull request branch '{}' is not a valid Git branch name",
            tagwarden_api::text::escape(&branch, false)
        )));
    }
    if branch == base {
        return Err(invalid(format!(
            "the pull request branch '{branch}' is the checkout branch; name another (annotation {})",
            key("branch")
        )));
    }
    Ok(branch)
}

/// `git check-ref-format` rules for a branch, in short.
fn valid_branch(b: &str) -> bool {
    !b.is_empty()
        && b.len() <= 200
        && !b.starts_with(['/', '-', '.'])
        && !b.ends_with(['/', '.'])
        && !b.ends_with(".lock")
        && !b.contains("..")
        && !b.contains("//")
        && !b.contains("@{")
        && !b.contains("/.")
        && b.bytes().all(|c| {
            c > 0x20 && c != 0x7f && !matches!(c, b'~' | b'^' | b':' | b'?' | b'*' | b'[' | b'\\')
        })
}

/// Markdown text with its specials escaped (values come from files and
/// registries).
fn md(s: &str) -> String {
    let s = tagwarden_api::text::escape(s, false);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_punctuation() && !matches!(c, '.' | '-' | '/' | ':' | ',') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn default_title(data: &TemplateData) -> String {
    match data.images.as_slice() {
        [one] => format!("Update {} to {}", one.image, one.tag),
        many => format!("Update {} images", many.len()),
    }
}

fn default_body(data: &TemplateData) -> String {
    let mut b = format!(
        "Image update by tagwarden (ImageUpdateAutomation {}/{}).\n\n| File | Object | Old | New | Policy |\n|---|---|---|---|---|\n",
        md(&data.automation.namespace),
        md(&data.automation.name)
    );
    for c in &data.changes {
        let object = if c.object.namespace.is_empty() {
            format!("{} {}", c.object.kind, c.object.name)
        } else {
            format!("{} {}/{}", c.object.kind, c.object.namespace, c.object.name)
        };
        let policy = c
            .setter
            .splitn(3, ':')
            .take(2)
            .collect::<Vec<_>>()
            .join(":");
        b.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            md(&c.file),
            md(&object),
            md(&c.old_value),
            md(&c.new_value),
            md(&policy)
        ));
    }
    b
}

fn proposal(
    cfg: &Config,
    data: &TemplateData,
    head: &str,
    base: &str,
) -> Result<Proposal, Failure> {
    let render = |t: &Option<String>, which: &str, default: String| match t {
        Some(t) => crate::message::render_with(Some(t), data).map_err(|e| {
            Failure::new(
                "InvalidCommitTemplate",
                format!("annotation {}: {e}", key(which)),
                true,
            )
        }),
        None => Ok(default),
    };
    let title = render(&cfg.title, "title", default_title(data))?;
    // A title is one line.
    let title = title.lines().next().unwrap_or_default().trim().to_string();
    Ok(Proposal {
        head: head.to_string(),
        base: base.to_string(),
        title,
        body: render(&cfg.body, "body", default_body(data))?,
        labels: cfg.labels.clone(),
        reviewers: cfg.reviewers.clone(),
        assignees: cfg.assignees.clone(),
        draft: cfg.draft,
        auto_merge: cfg.auto_merge,
    })
}

fn forge_failure(e: ForgeError, after_push: Option<&str>) -> Failure {
    let stalled = e.is_stalled();
    let retry_after = e.retry_after();
    let message = match after_push {
        Some(head) => format!(
            "pushed branch '{head}', but {e}; the branch stays and the next run opens or updates the request"
        ),
        None => e.to_string(),
    };
    let mut f = Failure::new(
        if matches!(e, ForgeError::Unauthorized { .. }) {
            "AuthenticationFailed"
        } else {
            "PullRequestFailed"
        },
        message,
        stalled,
    );
    f.retry_after = retry_after;
    f
}

/// Runs every head branch of the automation; the message says what
/// happened to each request.
pub(crate) async fn run(
    auto: &ImageUpdateAutomation,
    ctx: &Context,
    repo: &GitRepository,
    mut auth: GitAuth,
    signer: Option<Arc<Signer>>,
    policies: &[PolicyImage],
    cfg: &Config,
) -> Result<Done, Failure> {
    let credential = repo
        .secret_ref
        .as_ref()
        .and_then(|name| ctx.secret(&repo.meta.namespace, name))
        .and_then(|s| Credential::from_secret(&s.data))
        .ok_or_else(|| {
            Failure::new(
                "AuthenticationFailed",
                format!(
                    "pull requests need a token: GitRepository '{}/{}' spec.secretRef has no 'password', 'bearerToken' or GitHub App keys",
                    repo.meta.namespace, repo.meta.name
                ),
                true,
            )
        })?;
    let base = match Checkout::from_ref(auto.checkout_ref.as_ref().or(repo.reference.as_ref())) {
        Checkout::Branch(b) => b,
        other => {
            return Err(invalid(format!(
                "pull requests go into a branch; the checkout ref {other:?} is not one"
            )));
        }
    };
    let forge = ctx.forge.clone();
    let target = &cfg.target;
    if let Some((user, password)) = forge
        .git_login(target, &credential)
        .await
        .map_err(|e| forge_failure(e, None))?
    {
        auth.username = Some(user);
        auth.password = Some(password);
    }
    let groups: Vec<(String, Vec<PolicyImage>)> = if cfg.per_policy() {
        policies
            .iter()
            .map(|p| Ok((head_branch(cfg, auto, Some(p), &base)?, vec![p.clone()])))
            .collect::<Result<_, Failure>>()?
    } else {
        vec![(head_branch(cfg, auto, None, &base)?, policies.to_vec())]
    };
    let noun = target.kind.noun();
    let mut plans: Vec<String> = Vec::new();
    let mut messages = Vec::new();
    let mut result: Option<PullRequestResult> = None;
    let mut revision = String::new();
    for (head, group) in groups {
        let done = blocking_update(
            ctx,
            auto,
            repo,
            auth.clone(),
            signer.clone(),
            group,
            Some(head.clone()),
            true,
        )
        .await?;
        let (data, push) = match done {
            Done::UpToDate { revision: r, .. } => {
                revision = checkout_revision(&r, &head, &base);
                // The base holds the new values: an open request is stale.
                let open = forge
                    .find_open(target, &credential, &head, &base)
                    .await
                    .map_err(|e| forge_failure(e, None))?;
                if let Some(pr) = open {
                    if ctx.dry_run {
                        plans.push(format!(
                            "would close {noun} #{} ({}) as superseded: '{base}' already holds the new values",
                            pr.number, pr.url
                        ));
                        continue;
                    }
                    forge
                        .close(target, &credential, &pr, &head)
                        .await
                        .map_err(|e| forge_failure(e, None))?;
                    messages.push(format!(
                        "closed {noun} #{} as superseded: '{base}' already holds the new values",
                        pr.number
                    ));
                    result.get_or_insert(PullRequestResult {
                        action: PullRequestAction::Closed,
                        number: pr.number,
                        url: pr.url,
                        push: None,
                    });
                }
                continue;
            }
            Done::Pushed {
                push,
                revision: r,
                data,
                ..
            } => {
                revision = checkout_revision(&r, &head, &base);
                (data, Some(push))
            }
            Done::Current { revision: r, data } => {
                revision = checkout_revision(&r, &head, &base);
                (data, None)
            }
            Done::Planned {
                branch,
                message,
                diff,
                data,
                ..
            } => {
                let proposal = proposal(cfg, &data, &head, &base)?;
                let open = forge
                    .find_open(target, &credential, &head, &base)
                    .await
                    .map_err(|e| forge_failure(e, None))?;
                let would = match open {
                    None => format!(
                        "would open a {noun} '{}' from '{head}' into '{base}'",
                        proposal.title
                    ),
                    Some(pr) if !pr.matches(&proposal) => format!(
                        "would update {noun} #{} ({}) to '{}'",
                        pr.number, pr.url, proposal.title
                    ),
                    Some(pr) => format!("{noun} #{} ({}) already says this", pr.number, pr.url),
                };
                plans.push(format!(
                    "{}\n\n{would}\n\n{}",
                    crate::automation::plan_text(&branch, &message, &diff).trim_end(),
                    proposal.body.trim_end()
                ));
                continue;
            }
            Done::PullRequests { .. } | Done::Batching { .. } => continue,
        };
        let after_push = push.as_ref().map(|_| head.as_str());
        let proposal = proposal(cfg, &data, &head, &base)?;
        let open = forge
            .find_open(target, &credential, &head, &base)
            .await
            .map_err(|e| forge_failure(e, after_push))?;
        let (action, pr) = match open {
            None => (
                Some(PullRequestAction::Opened),
                forge
                    .create(target, &credential, &proposal)
                    .await
                    .map_err(|e| forge_failure(e, after_push))?,
            ),
            Some(pr) if !pr.matches(&proposal) => (
                Some(PullRequestAction::Updated),
                forge
                    .update(target, &credential, &pr, &proposal)
                    .await
                    .map_err(|e| forge_failure(e, after_push))?,
            ),
            // New commits on the head branch update the request by themselves.
            Some(pr) => (push.is_some().then_some(PullRequestAction::Updated), pr),
        };
        let said = match action {
            Some(a) => a.as_str(),
            None => "is up to date",
        };
        messages.push(format!("{noun} #{} {said}: {}", pr.number, pr.url));
        if let Some(action) = action
            && result
                .as_ref()
                .is_none_or(|r| r.action == PullRequestAction::Closed)
        {
            result = Some(PullRequestResult {
                action,
                number: pr.number,
                url: pr.url,
                push,
            });
        }
    }
    let message = if ctx.dry_run && !plans.is_empty() {
        format!("dry run: {} {noun} change(s) planned", plans.len())
    } else if messages.is_empty() {
        "repository up-to-date".to_string()
    } else {
        messages.join("; ")
    };
    Ok(Done::PullRequests {
        revision,
        message,
        result,
        plan: (!plans.is_empty()).then(|| plans.join("\n\n---\n\n")),
    })
}

/// A rebuilt head starts at the checkout: report the checkout branch, as
/// Flux's `observedSourceRevision` does (`<branch>@sha1:<commit>`).
fn checkout_revision(revision: &str, head: &str, base: &str) -> String {
    match revision.strip_prefix(&format!("{head}@")) {
        Some(rest) => format!("{base}@{rest}"),
        None => revision.to_string(),
    }
}

/// The forge of a process that has none wired (engine tests).
pub struct NoForge;

fn none<'a, T: Send + 'a>() -> BoxFuture<'a, Result<T, ForgeError>> {
    Box::pin(async {
        Err(ForgeError::Config(
            "pull requests are not available in this process".into(),
        ))
    })
}

impl Forge for NoForge {
    fn find_open<'a>(
        &'a self,
        _: &'a Target,
        _: &'a Credential,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Option<PullRequest>, ForgeError>> {
        none()
    }

    fn create<'a>(
        &'a self,
        _: &'a Target,
        _: &'a Credential,
        _: &'a Proposal,
    ) -> BoxFuture<'a, Result<PullRequest, ForgeError>> {
        none()
    }

    fn update<'a>(
        &'a self,
        _: &'a Target,
        _: &'a Credential,
        _: &'a PullRequest,
        _: &'a Proposal,
    ) -> BoxFuture<'a, Result<PullRequest, ForgeError>> {
        none()
    }

    fn close<'a>(
        &'a self,
        _: &'a Target,
        _: &'a Credential,
        _: &'a PullRequest,
        _: &'a str,
    ) -> BoxFuture<'a, Result<(), ForgeError>> {
        none()
    }

    fn git_login<'a>(
        &'a self,
        _: &'a Target,
        _: &'a Credential,
    ) -> BoxFuture<'a, Result<Option<(String, String)>, ForgeError>> {
        none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_and_markdown_cells() {
        for ok in ["tagwarden/auto", "image-updates/podinfo", "a.b-c_d"] {
            assert!(valid_branch(ok), "{ok}");
        }
        for bad in [
            "", "-x", "a..b", "a b", "a~1", "a:b", "x.lock", "a/", "a//b", "a/.b", "a@{1}",
            "a\u{1b}",
        ] {
            assert!(!valid_branch(bad), "{bad:?}");
        }
        assert_eq!(md("a|b*`c`<x>"), "a\\|b\\*\\`c\\`\\<x\\>");
        assert_eq!(md("ghcr.io/org/app:1.2.3"), "ghcr.io/org/app:1.2.3");
        // The escape's backslash is itself escaped, so it shows as written.
        assert_eq!(md("evil\nline"), "evil\\\\u\\{a\\}line");
    }
}
