//! What the forge stand-ins (GitHub, GitLab, Gitea) share: the bare
//! repository they are backed by, token sets, injected faults, request logs,
//! pagination, and Git smart HTTP through `git http-backend`.

use crate::standin::{CloudRequest, Reply};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

/// A pull/merge request as a stand-in holds it, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgePull {
    /// The number in the repository (GitHub/Gitea `number`, GitLab `iid`).
    pub number: u64,
    /// The forge-wide id (GitHub/Gitea `id`, GitLab `id`).
    pub id: u64,
    /// As the forge spells it: `open`/`closed` (GitHub, Gitea),
    /// `opened`/`closed` (GitLab).
    pub state: String,
    /// Merged (GitHub `merged`, GitLab state `merged`, Gitea `merged`).
    pub merged: bool,
    pub title: String,
    pub body: String,
    pub draft: bool,
    /// The head (source) branch name, without `refs/heads/`.
    pub head: String,
    /// The head commit: live from the repository while open, frozen at close.
    pub sha: String,
    /// The base (target) branch.
    pub base: String,
    pub labels: Vec<String>,
    /// Logins (GitHub, Gitea) or usernames (GitLab).
    pub reviewers: Vec<String>,
    pub assignees: Vec<String>,
    /// Auto-merge as requested: GitHub's merge method (`MERGE`, `SQUASH`,
    /// `REBASE`), `merge_when_pipeline_succeeds` for GitLab, Gitea's `Do`.
    pub auto_merge: Option<String>,
    /// GitHub's GraphQL node id (empty elsewhere).
    pub node_id: String,
    /// GitLab's `force_remove_source_branch` (from `remove_source_branch`).
    pub remove_source_branch: bool,
}

/// Answers queued by `fail_next` and `fail_matching`, first queued first.
#[derive(Default)]
pub(crate) struct Faults {
    rules: Vec<Fault>,
}

struct Fault {
    left: usize,
    /// Only requests with this method (any when None)...
    method: Option<String>,
    /// ...and a path starting with this.
    path_prefix: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Faults {
    pub fn set(&mut self, n: usize, status: u16, headers: Vec<(String, String)>, body: &str) {
        self.push(None, "", n, status, headers, body);
    }

    pub fn push(
        &mut self,
        method: Option<&str>,
        path_prefix: &str,
        n: usize,
        status: u16,
        headers: Vec<(String, String)>,
        body: &str,
    ) {
        self.rules.push(Fault {
            left: n,
            method: method.map(str::to_ascii_uppercase),
            path_prefix: path_prefix.to_string(),
            status,
            headers,
            body: body.to_string(),
        });
    }

    /// The injected answer for this request, if a queued fault matches it.
    pub fn take(&mut self, req: &CloudRequest) -> Option<Reply> {
        self.rules.retain(|f| f.left > 0);
        let f = self.rules.iter_mut().find(|f| {
            f.method.as_ref().is_none_or(|m| *m == req.method)
                && req.path().starts_with(&f.path_prefix)
        })?;
        f.left -= 1;
        let mut r = Reply::text(f.status, "application/json; charset=utf-8", &f.body);
        for (k, v) in &f.headers {
            if k.eq_ignore_ascii_case("content-type") {
                r.headers
                    .retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
            }
            r.headers.push((k.clone(), v.clone()));
        }
        Some(r)
    }
}

/// A path segment decoded (`%2F` → `/`; a `+` stays a plus, as in paths).
pub(crate) fn path_decode(seg: &str) -> String {
    crate::pki::percent_decode(&seg.replace('+', "%2B"))
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The bare repository a stand-in serves: `root` itself when it is one
/// (has `HEAD`), else `root/NAME.git`, else `root/repo.git` (what
/// [`crate::BareRepo::root`] holds).
pub(crate) fn resolve_repo(root: &Path, name: &str) -> PathBuf {
    if root.join("HEAD").is_file() && root.join("objects").is_dir() {
        return root.to_path_buf();
    }
    let named = root.join(format!("{name}.git"));
    if named.join("HEAD").is_file() {
        return named;
    }
    let bare = root.join("repo.git");
    assert!(
        bare.join("HEAD").is_file(),
        "no bare repository at {}, {} or {}",
        root.display(),
        named.display(),
        bare.display()
    );
    bare
}

fn git_out(repo: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The commit `refs/heads/BRANCH` points at, if the branch exists.
pub(crate) fn branch_sha(repo: &Path, branch: &str) -> Option<String> {
    if branch.is_empty() {
        return None;
    }
    git_out(
        repo,
        &[
            "rev-parse",
            "--verify",
            "-q",
            &format!("refs/heads/{branch}^{{commit}}"),
        ],
    )
    .filter(|s| !s.is_empty())
}

/// Commits on `head` not on `base` (`git rev-list --count base..head`).
pub(crate) fn commits_ahead(repo: &Path, base: &str, head: &str) -> usize {
    git_out(
        repo,
        &[
            "rev-list",
            "--count",
            &format!("refs/heads/{base}..refs/heads/{head}"),
        ],
    )
    .and_then(|n| n.parse().ok())
    .unwrap_or(0)
}

/// `git update-ref -d refs/heads/BRANCH`; false when it did not exist.
pub(crate) fn delete_branch(repo: &Path, branch: &str) -> bool {
    branch_sha(repo, branch).is_some()
        && git_out(repo, &["update-ref", "-d", &format!("refs/heads/{branch}")]).is_some()
}

/// Serves one Git smart HTTP request for `repo`; `rest` is what follows
/// the repository in the URL (`/info/refs`, `/git-upload-pack`, ...).
pub(crate) fn serve_git(repo: &Path, req: &CloudRequest, body: &[u8], rest: &str) -> Reply {
    let (Some(root), Some(name)) = (repo.parent(), repo.file_name()) else {
        return Reply::text(500, "text/plain", "stand-in: repository path");
    };
    let path = format!("/{}{rest}", name.to_string_lossy());
    let query = req.target.split_once('?').map_or("", |(_, q)| q);
    crate::git::run_cgi(root, &req.method, &path, query, &req.headers, body)
}

/// `Authorization: Basic` as (user, password).
pub(crate) fn basic_credentials(req: &CloudRequest) -> Option<(String, String)> {
    use base64::Engine;
    let v = req.header("authorization")?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// The token of `Authorization: SCHEME TOKEN` for one of `schemes`
/// (compared case-insensitively, as the forges do).
pub(crate) fn scheme_token(req: &CloudRequest, schemes: &[&str]) -> Option<String> {
    let v = req.header("authorization")?;
    let (scheme, token) = v.split_once(' ')?;
    schemes
        .iter()
        .any(|s| s.eq_ignore_ascii_case(scheme))
        .then(|| token.trim().to_string())
}

/// The 401 a Git client needs to send its credentials.
pub(crate) fn git_challenge(realm: &str) -> Reply {
    Reply::text(401, "text/plain", "authentication required\n")
        .with_header("WWW-Authenticate", &format!("Basic realm=\"{realm}\""))
}

/// One page of `items` and the page links, as the forges compute them.
pub(crate) struct Page {
    pub items: Vec<serde_json::Value>,
    pub page: usize,
    pub per_page: usize,
    pub total: usize,
    pub total_pages: usize,
}

/// Cuts `items` into the `page`-th page of `per_page` (both from the
/// query under these names, with these defaults; `per_page` capped at `max`).
pub(crate) fn paginate(
    req: &CloudRequest,
    items: Vec<serde_json::Value>,
    page_key: &str,
    per_page_key: &str,
    default_per_page: usize,
    max: usize,
) -> Page {
    let page = req
        .query(page_key)
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| *p > 0)
        .unwrap_or(1);
    let per_page = req
        .query(per_page_key)
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| *p > 0)
        .unwrap_or(default_per_page)
        .min(max);
    let total = items.len();
    let total_pages = total.div_ceil(per_page).max(1);
    let items = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    Page {
        items,
        page,
        per_page,
        total,
        total_pages,
    }
}

impl Page {
    /// An RFC 8288 `Link` header as GitHub and Gitea send it: `next`/`last`
    /// when more follow, `first`/`prev` when not on the first page; None on
    /// a single page.
    pub fn link(&self, req: &CloudRequest, origin: &str, page_key: &str) -> Option<String> {
        let url = self.url_for(req, origin, page_key);
        let mut rels = Vec::new();
        if self.page < self.total_pages {
            rels.push(format!("{}; rel=\"next\"", url(self.page + 1)));
            rels.push(format!("{}; rel=\"last\"", url(self.total_pages)));
        }
        if self.page > 1 {
            rels.push(format!("{}; rel=\"first\"", url(1)));
            rels.push(format!(
                "{}; rel=\"prev\"",
                url((self.page - 1).min(self.total_pages))
            ));
        }
        (!rels.is_empty()).then(|| rels.join(", "))
    }

    /// GitLab's `Link`: `prev` and `next` when they exist, `first` and `last` always.
    pub fn gitlab_link(&self, req: &CloudRequest, origin: &str) -> String {
        let url = self.url_for(req, origin, "page");
        let mut rels = Vec::new();
        if self.page > 1 {
            rels.push(format!(
                "{}; rel=\"prev\"",
                url((self.page - 1).min(self.total_pages))
            ));
        }
        if self.page < self.total_pages {
            rels.push(format!("{}; rel=\"next\"", url(self.page + 1)));
        }
        rels.push(format!("{}; rel=\"first\"", url(1)));
        rels.push(format!("{}; rel=\"last\"", url(self.total_pages)));
        rels.join(", ")
    }

    /// The request's URL with `page_key` set to a page (other parameters kept, in order).
    fn url_for<'a>(
        &self,
        req: &'a CloudRequest,
        origin: &'a str,
        page_key: &'a str,
    ) -> impl Fn(usize) -> String + 'a {
        let path = req.path();
        let others: Vec<&str> = req
            .target
            .split_once('?')
            .map_or("", |(_, q)| q)
            .split('&')
            .filter(|kv| !kv.is_empty() && kv.split('=').next() != Some(page_key))
            .collect();
        move |p: usize| {
            let mut q = others.clone();
            let page = format!("{page_key}={p}");
            q.push(&page);
            format!("<{origin}{path}?{}>", q.join("&"))
        }
    }
}

/// The JSON body of a request, None when it is not JSON (an empty body is `{}`).
pub(crate) fn json_body(req: &CloudRequest) -> Option<serde_json::Value> {
    if req.body.trim().is_empty() {
        return Some(serde_json::json!({}));
    }
    serde_json::from_str(&req.body).ok()
}

/// Strings of a JSON array (numbers rendered), or of a comma-separated string.
pub(crate) fn string_list(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|x| match x {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                serde_json::Value::Object(o) => {
                    o.get("name").and_then(|n| n.as_str()).map(String::from)
                }
                _ => None,
            })
            .collect(),
        serde_json::Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    }
}

/// Requests other than GET/HEAD, as idempotence checks count them.
pub(crate) fn is_write(req: &CloudRequest) -> bool {
    req.method != "GET" && req.method != "HEAD"
}

/// The branch `HEAD` names (the default branch), `main` when unreadable.
pub(crate) fn head_branch(repo: &Path) -> String {
    git_out(repo, &["symbolic-ref", "--short", "HEAD"]).unwrap_or_else(|| "main".into())
}

/// The parameters of a request: its JSON body, or its form fields as an
/// object (`k[]=a&k[]=b` as an array), or `{}` for an empty body; None
/// when the body is neither.
pub(crate) fn params(req: &CloudRequest) -> Option<serde_json::Value> {
    let is_form = req
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return json_body(req);
    }
    let mut obj = serde_json::Map::new();
    for (k, v) in &req.form {
        if let Some(k) = k.strip_suffix("[]") {
            let e = obj
                .entry(k.to_string())
                .or_insert_with(|| serde_json::Value::Array(Vec::new()));
            if let Some(a) = e.as_array_mut() {
                a.push(v.clone().into());
            }
        } else {
            obj.insert(k.clone(), v.clone().into());
        }
    }
    Some(serde_json::Value::Object(obj))
}

/// A JSON boolean, or a form's `true`/`false`.
pub(crate) fn truthy(v: &serde_json::Value) -> Option<bool> {
    match v {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::String(s) => match s.as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Numbers of a JSON array (or of numeric strings, or one number).
pub(crate) fn id_list(v: &serde_json::Value) -> Vec<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64().into_iter().collect(),
        other => string_list(other)
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect(),
    }
}

/// Fast-forwards `base` to `head` when `base` is an ancestor of it.
pub(crate) fn fast_forward(repo: &Path, base: &str, head: &str) -> bool {
    let (Some(b), Some(h)) = (branch_sha(repo, base), branch_sha(repo, head)) else {
        return false;
    };
    git_out(repo, &["merge-base", "--is-ancestor", &b, &h]).is_some()
        && git_out(repo, &["update-ref", &format!("refs/heads/{base}"), &h, &b]).is_some()
}

pub(crate) fn no_content() -> Reply {
    Reply {
        status: 204,
        headers: Vec::new(),
        body: Vec::new(),
    }
}
