//! Pull requests (GitHub, Gitea/Forgejo) and merge requests (GitLab) as a
//! seam: the engine asks a [`Forge`] to find, open, update and close the
//! request for a head branch. The REST clients ([`Http`]) are behind the
//! default `http` feature; without it this crate is the trait and its types.

#[cfg(feature = "http")]
mod app;
#[cfg(feature = "http")]
mod client;

#[cfg(feature = "http")]
pub use client::Http;

use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which REST API a repository's forge speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForgeKind {
    GitHub,
    GitLab,
    Gitea,
}

impl ForgeKind {
    pub fn parse(s: &str) -> Option<ForgeKind> {
        match s.to_ascii_lowercase().as_str() {
            "github" => Some(ForgeKind::GitHub),
            "gitlab" => Some(ForgeKind::GitLab),
            "gitea" | "forgejo" => Some(ForgeKind::Gitea),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::GitHub => "github",
            ForgeKind::GitLab => "gitlab",
            ForgeKind::Gitea => "gitea",
        }
    }

    /// "pull request" or GitLab's "merge request", for messages.
    pub fn noun(self) -> &'static str {
        match self {
            ForgeKind::GitLab => "merge request",
            _ => "pull request",
        }
    }
}

/// One repository on one forge.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub kind: ForgeKind,
    /// The API base, e.g. `https://api.github.com`,
    /// `https://gitlab.example.com/api/v4`, `https://gitea.example.com/api/v1`.
    pub api: String,
    /// `owner/repo`, or GitLab's `group/subgroup/project`.
    pub project: String,
}

impl Target {
    /// The forge and project of a Git URL (`https://github.com/org/repo.git`,
    /// `ssh://git@github.com/org/repo`, `git@github.com:org/repo.git`), with
    /// the kind and API base given or found from the host: github.com and
    /// gitlab.com are known, other hosts need the kind.
    pub fn from_git_url(
        url: &str,
        kind: Option<ForgeKind>,
        api: Option<&str>,
    ) -> Result<Target, ForgeError> {
        let (host, path) = split_git_url(url).ok_or_else(|| {
            ForgeError::Config(format!(
                "cannot read a host and repository path from the GitRepository URL '{}'",
                tagwarden_api::redact::url(url)
            ))
        })?;
        let project = path
            .trim_matches('/')
            .trim_end_matches(".git")
            .trim_matches('/')
            .to_string();
        if project.split('/').count() < 2 || project.split('/').any(str::is_empty) {
            return Err(ForgeError::Config(format!(
                "the GitRepository URL path '{path}' is not owner/repository"
            )));
        }
        let host_only = host.split(':').next().unwrap_or(&host).to_ascii_lowercase();
        // Over HTTP(S) the API shares the Git URL's scheme and port; an SSH
        // port says nothing about where the API listens.
        let web = match url.split_once("://") {
            Some((scheme @ ("http" | "https"), _)) => {
                format!("{scheme}://{}", host.to_ascii_lowercase())
            }
            _ => format!("https://{host_only}"),
        };
        let kind = match kind {
            Some(k) => k,
            None if host_only == "github.com" => ForgeKind::GitHub,
            None if host_only == "gitlab.com" => ForgeKind::GitLab,
            None => {
                return Err(ForgeError::Config(format!(
                    "which forge serves '{host_only}' is not known: set the annotation {FORGE_ANNOTATION} to github, gitlab or gitea"
                )));
            }
        };
        let api = match api {
            Some(a) => {
                let u = url::Url::parse(a).map_err(|e| {
                    ForgeError::Config(format!("{API_ANNOTATION}: '{a}' is not a URL: {e}"))
                })?;
                if !matches!(u.scheme(), "https" | "http") || !u.username().is_empty() {
                    return Err(ForgeError::Config(format!(
                        "{API_ANNOTATION}: '{a}' must be an http(s) URL without credentials"
                    )));
                }
                a.trim_end_matches('/').to_string()
            }
            None => match (kind, host_only.as_str()) {
                (ForgeKind::GitHub, "github.com") => "https://api.github.com".into(),
                (ForgeKind::GitHub, _) => format!("{web}/api/v3"),
                (ForgeKind::GitLab, _) => format!("{web}/api/v4"),
                (ForgeKind::Gitea, _) => format!("{web}/api/v1"),
            },
        };
        Ok(Target { kind, api, project })
    }
}

/// Host (with port) and path of a Git URL, scp-like forms included.
fn split_git_url(url: &str) -> Option<(String, String)> {
    if let Ok(u) = url::Url::parse(url)
        && let Some(h) = u.host_str()
    {
        let host = match u.port() {
            Some(p) => format!("{h}:{p}"),
            None => h.to_string(),
        };
        return Some((host, u.path().to_string()));
    }
    // git@host:org/repo.git
    let (user_host, path) = url.split_once(':')?;
    let host = user_host.rsplit('@').next()?;
    (!host.is_empty() && !path.starts_with('/')).then(|| (host.to_string(), path.to_string()))
}

/// The annotation naming the forge of a host we do not know.
pub const FORGE_ANNOTATION: &str = "tagwarden.io/forge";
/// The annotation giving the API base URL.
pub const API_ANNOTATION: &str = "tagwarden.io/forge-api-url";

/// How we authenticate to the forge, from the GitRepository's Secret.
#[derive(Clone)]
pub enum Credential {
    /// `password` or `bearerToken`.
    Token(String),
    /// `githubAppID`, `githubAppInstallationID` (looked up when absent),
    /// `githubAppPrivateKey`, `githubAppBaseURL`.
    GitHubApp(GitHubApp),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Token(_) => f.write_str("Token(<redacted>)"),
            Credential::GitHubApp(a) => write!(f, "GitHubApp({})", a.app_id),
        }
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct GitHubApp {
    pub app_id: String,
    pub installation_id: Option<String>,
    pub private_key_pem: Vec<u8>,
    /// The API base for the app's calls (GitHub Enterprise).
    pub base_url: Option<String>,
}

impl Credential {
    /// From a GitRepository Secret's data; `None` when it holds none.
    pub fn from_secret(data: &std::collections::BTreeMap<String, Vec<u8>>) -> Option<Credential> {
        let text = |k: &str| {
            data.get(k)
                .map(|v| String::from_utf8_lossy(v).trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if let (Some(app_id), Some(key)) = (text("githubAppID"), data.get("githubAppPrivateKey")) {
            return Some(Credential::GitHubApp(GitHubApp {
                app_id,
                installation_id: text("githubAppInstallationID"),
                private_key_pem: key.clone(),
                base_url: text("githubAppBaseURL"),
            }));
        }
        text("bearerToken")
            .or_else(|| text("password"))
            .map(Credential::Token)
    }
}

/// What the request should say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
    pub reviewers: Vec<String>,
    pub assignees: Vec<String>,
    pub draft: bool,
    pub auto_merge: bool,
}

/// An open request as the forge reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    pub url: String,
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
}

impl PullRequest {
    /// Whether title, body and labels already say what `p` says.
    pub fn matches(&self, p: &Proposal) -> bool {
        let mut have = self.labels.clone();
        let mut want = p.labels.clone();
        have.sort();
        want.sort();
        self.title == p.title && self.body.trim_end() == p.body.trim_end() && have == want
    }
}

/// What went wrong talking to a forge; never carries a token.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    #[error("{0}")]
    Config(String),
    /// 401/403: only a change of credentials or permissions helps.
    #[error("{forge} API refused the credentials (HTTP {status}) for {what}: {message}")]
    Unauthorized {
        forge: &'static str,
        status: u16,
        what: String,
        message: String,
    },
    /// 400/409/422: the forge names what it did not accept.
    #[error("{forge} API rejected {what} (HTTP {status}): {message}")]
    Invalid {
        forge: &'static str,
        status: u16,
        what: String,
        message: String,
    },
    /// Rate limited: retry no sooner than this.
    #[error("{forge} API rate limit reached for {what}: retry after {retry_after_secs}s")]
    RateLimited {
        forge: &'static str,
        what: String,
        retry_after_secs: u64,
    },
    /// 5xx, unreachable, malformed answers.
    #[error("{forge} API {what}: {message}")]
    Unavailable {
        forge: &'static str,
        what: String,
        message: String,
    },
}

impl ForgeError {
    pub fn is_stalled(&self) -> bool {
        matches!(
            self,
            ForgeError::Config(_) | ForgeError::Unauthorized { .. } | ForgeError::Invalid { .. }
        )
    }

    /// How long the forge asked us to wait, when it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            ForgeError::RateLimited {
                retry_after_secs, ..
            } => Some(std::time::Duration::from_secs(*retry_after_secs)),
            _ => None,
        }
    }
}

/// The forge operations an automation in pull-request mode uses.
pub trait Forge: Send + Sync {
    /// The open request whose head is `head` (and base `base`), if any.
    fn find_open<'a>(
        &'a self,
        target: &'a Target,
        credential: &'a Credential,
        head: &'a str,
        base: &'a str,
    ) -> BoxFuture<'a, Result<Option<PullRequest>, ForgeError>>;

    /// Opens a request, with its labels, reviewers, assignees and auto-merge.
    fn create<'a>(
        &'a self,
        target: &'a Target,
        credential: &'a Credential,
        proposal: &'a Proposal,
    ) -> BoxFuture<'a, Result<PullRequest, ForgeError>>;

    /// Refreshes title, body and labels of an open request.
    fn update<'a>(
        &'a self,
        target: &'a Target,
        credential: &'a Credential,
        existing: &'a PullRequest,
        proposal: &'a Proposal,
    ) -> BoxFuture<'a, Result<PullRequest, ForgeError>>;

    /// Closes a request and deletes its head branch.
    fn close<'a>(
        &'a self,
        target: &'a Target,
        credential: &'a Credential,
        existing: &'a PullRequest,
        head: &'a str,
    ) -> BoxFuture<'a, Result<(), ForgeError>>;

    /// Username and password for Git over HTTPS when the credential is
    /// not a plain one (a GitHub App's installation token).
    fn git_login<'a>(
        &'a self,
        target: &'a Target,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<Option<(String, String)>, ForgeError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_from_git_urls() {
        let t = Target::from_git_url("https://github.com/org/repo.git", None, None).expect("gh");
        assert_eq!(
            (t.kind, t.api.as_str(), t.project.as_str()),
            (ForgeKind::GitHub, "https://api.github.com", "org/repo")
        );
        let t =
            Target::from_git_url("git@gitlab.com:group/sub/project.git", None, None).expect("gl");
        assert_eq!(
            (t.kind, t.api.as_str(), t.project.as_str()),
            (
                ForgeKind::GitLab,
                "https://gitlab.com/api/v4",
                "group/sub/project"
            )
        );
        let t = Target::from_git_url(
            "ssh://git@git.example.com:2222/team/app",
            Some(ForgeKind::Gitea),
            None,
        )
        .expect("gitea");
        assert_eq!(t.api, "https://git.example.com/api/v1", "not the SSH port");
        let t = Target::from_git_url(
            "http://127.0.0.1:3000/team/app.git",
            Some(ForgeKind::Gitea),
            None,
        )
        .expect("gitea over http");
        assert_eq!(t.api, "http://127.0.0.1:3000/api/v1");
        let t = Target::from_git_url(
            "https://ghe.example.com/org/repo",
            Some(ForgeKind::GitHub),
            Some("https://ghe.example.com/api/v3/"),
        )
        .expect("ghe");
        assert_eq!(t.api, "https://ghe.example.com/api/v3");
        let e = Target::from_git_url("https://git.example.com/org/repo", None, None)
            .expect_err("unknown");
        assert!(
            e.to_string()
                .contains("set the annotation tagwarden.io/forge"),
            "{e}"
        );
        assert!(Target::from_git_url("https://github.com/org", None, None).is_err());
        let e = Target::from_git_url("https://github.com/o/r", None, Some("https://u:p@x/api"))
            .expect_err("creds");
        assert!(!e.to_string().contains("u:p") || e.to_string().contains("without credentials"));
    }

    #[test]
    fn credentials_from_secrets_never_print() {
        let mut d = std::collections::BTreeMap::new();
        d.insert("password".to_string(), b"ghp_s3cret".to_vec());
        let c = Credential::from_secret(&d).expect("token");
        assert!(!format!("{c:?}").contains("s3cret"));
        d.insert("githubAppID".to_string(), b"42".to_vec());
        d.insert("githubAppPrivateKey".to_string(), b"-----BEGIN".to_vec());
        assert!(
            matches!(Credential::from_secret(&d), Some(Credential::GitHubApp(a)) if a.app_id == "42")
        );
        assert!(Credential::from_secret(&Default::default()).is_none());
    }
}
