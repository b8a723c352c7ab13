//! A stateful stand-in for the Gitea/Forgejo REST v1 API (pull requests,
//! labels, reviewers, branches) and Git smart HTTP for one repository.

use crate::forge::{
    Faults, ForgePull, basic_credentials, branch_sha, commits_ahead, delete_branch, fast_forward,
    git_challenge, head_branch, id_list, is_write, json_body, lock, no_content, paginate,
    resolve_repo, scheme_token, serve_git, string_list, truthy,
};
use crate::standin::{CloudRequest, Outcome, Reply, Server, now_secs, rfc3339};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const NOT_FOUND: &str = "The target couldn't be found.";

/// Gitea (or Forgejo) on `http://127.0.0.1:PORT`: the API at `/api/v1`,
/// Git at `/{owner}/{repo}.git`. One repository, backed by a real bare repository.
///
/// Every API request needs `Authorization: token T` or `Bearer T` (or the
/// legacy `?access_token=T` / `?token=T`) with a token from
/// [`GiteaStandIn::add_token`], else 401 `{"message":"token is required","url":…}`.
/// Errors are `{"message", "url"}` (404s add `"errors":[..]`), as Gitea's.
///
/// Endpoints (under `/api/v1`, `{o}/{r}` case-insensitive):
/// - `GET /repos/{o}/{r}` (`default_branch`, `clone_url`).
/// - `GET /repos/{o}/{r}/pulls?state=open|closed|all&page=&limit=`: newest first, 30 a page
///   by default (at most 50), `X-Total-Count` and `Link` (`next`, `last`, `first`, `prev`).
/// - `GET /repos/{o}/{r}/pulls/{index}`; `GET /repos/{o}/{r}/pulls/{base}/{head}` (the
///   open-or-not PR for that pair, newest).
/// - `POST /repos/{o}/{r}/pulls` `{head, base, title, body, labels:[ids], assignees:[..],
///   assignee, reviewers:[..]}` → 201 (`draft` when the title starts with `WIP:` or `[WIP]`).
///   422 `{"message":"[Title]: Required"}` for a missing title; 422 `Invalid PullRequest:
///   There are no changes between the head and the base` when head = base (or head adds
///   nothing); 404 `The target couldn't be found.` when a branch is not in the repository;
///   409 `pull request already exists for these targets [id: …, issue_id: N, head_repo_id: …,
///   base_repo_id: …, head_branch: H, base_branch: B]` for an open PR on the same head and base.
///   Unknown label ids are dropped, as Gitea drops them.
/// - `PATCH /repos/{o}/{r}/pulls/{index}` (`title`, `body`, `state`: `open`|`closed`, `labels`
///   ids (replace), `assignees`, `base`) → 201, as Gitea answers.
/// - `GET /repos/{o}/{r}/labels?page=&limit=` → `[{id, name, color, …}]` (from
///   [`GiteaStandIn::add_label`]); `PUT`/`POST /repos/{o}/{r}/issues/{index}/labels`
///   `{labels:[ids or names]}` (replace/add) → 200 label array.
/// - `POST`/`DELETE /repos/{o}/{r}/pulls/{index}/requested_reviewers` `{reviewers:[..]}` →
///   201 `[{id, user, state:"REQUEST_REVIEW"}]` / 204.
/// - `POST /repos/{o}/{r}/pulls/{index}/merge` `{Do, merge_when_checks_succeed}`: with the
///   flag recorded and 201 (scheduled, as while checks run), without a fast-forward merge
///   and 200; a closed PR is 404, a non-fast-forward 409.
/// - `DELETE /repos/{o}/{r}/branches/{branch}` → 204 (404 with `errors: ["branch does not
///   exist [name: B]"]`); really deletes the ref, and open PRs on it close, as on Gitea.
///
/// Git (`/{o}/{r}.git/...`): Basic auth, any user with a token as password (or the token
/// as user name, as Gitea also takes).
pub struct GiteaStandIn {
    server: Server,
    state: Arc<Mutex<State>>,
}

struct Pr {
    number: u64,
    title: String,
    body: String,
    head: String,
    base: String,
    sha: String,
    open: bool,
    merged: bool,
    labels: Vec<u64>,
    assignees: Vec<String>,
    reviewers: Vec<String>,
    auto_merge: Option<String>,
    created: u64,
    updated: u64,
    closed: Option<u64>,
}

struct State {
    repo: PathBuf,
    owner: String,
    name: String,
    port: u16,
    tokens: BTreeSet<String>,
    labels: Vec<(u64, String)>,
    pulls: Vec<Pr>,
    faults: Faults,
}

impl GiteaStandIn {
    /// Serves the bare repository at `repo_root` (the repository itself,
    /// `repo_root/{repo}.git`, or `repo_root/repo.git`) as `{owner}/{repo}`.
    pub fn start(repo_root: &Path, owner: &str, repo: &str) -> GiteaStandIn {
        let state = Arc::new(Mutex::new(State {
            repo: resolve_repo(repo_root, repo),
            owner: owner.to_string(),
            name: repo.to_string(),
            port: 0,
            tokens: BTreeSet::new(),
            labels: Vec::new(),
            pulls: Vec::new(),
            faults: Faults::default(),
        }));
        let shared = state.clone();
        let server = Server::start_raw(None, move |req, body| {
            Outcome::Reply(handle(&mut lock(&shared), req, body))
        });
        lock(&state).port = server.port;
        GiteaStandIn { server, state }
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// `http://127.0.0.1:PORT/api/v1`.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1", self.server.port)
    }

    /// `http://127.0.0.1:PORT/{owner}/{repo}.git`.
    pub fn git_url(&self) -> String {
        let s = lock(&self.state);
        format!("http://127.0.0.1:{}/{}/{}.git", s.port, s.owner, s.name)
    }

    pub fn add_token(&self, token: &str) {
        lock(&self.state).tokens.insert(token.to_string());
    }

    /// A repository label; returns its id (what `labels` in a PR body holds).
    pub fn add_label(&self, name: &str) -> u64 {
        let mut s = lock(&self.state);
        let id = 10 + s.labels.len() as u64;
        s.labels.push((id, name.to_string()));
        id
    }

    /// Answers the next `n` API requests (not Git) with this, before auth.
    pub fn fail_next(&self, n: usize, status: u16, headers: Vec<(String, String)>, body: &str) {
        lock(&self.state).faults.set(n, status, headers, body);
    }

    /// Like `fail_next`, for requests with this method (`None`: any) whose
    /// path starts with `path_prefix` (the full path, e.g.
    /// `/api/v1/repos/o/r/pulls`): the GET before a failing POST still works.
    pub fn fail_matching(
        &self,
        method: Option<&str>,
        path_prefix: &str,
        n: usize,
        status: u16,
        headers: Vec<(String, String)>,
        body: &str,
    ) {
        lock(&self.state)
            .faults
            .push(method, path_prefix, n, status, headers, body);
    }

    /// Every API request received (not Git), in order.
    pub fn requests(&self) -> Vec<CloudRequest> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.path().starts_with("/api/"))
            .collect()
    }

    /// The API requests other than GET/HEAD.
    pub fn writes(&self) -> Vec<CloudRequest> {
        self.requests().into_iter().filter(is_write).collect()
    }

    /// Git smart HTTP requests received.
    pub fn git_requests(&self) -> Vec<CloudRequest> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| !r.path().starts_with("/api/"))
            .collect()
    }

    /// Merges PR `number` as a person would: the base fast-forwarded to the
    /// head, the PR closed and `merged`. False when not open or not a fast-forward.
    pub fn merge_pull(&self, number: u64) -> bool {
        let mut s = lock(&self.state);
        s.refresh();
        let Some(i) = s.pulls.iter().position(|p| p.number == number && p.open) else {
            return false;
        };
        let (base, head) = (s.pulls[i].base.clone(), s.pulls[i].head.clone());
        if !fast_forward(&s.repo, &base, &head) {
            return false;
        }
        let now = now_secs();
        let p = &mut s.pulls[i];
        p.open = false;
        p.merged = true;
        p.closed = Some(now);
        p.updated = now;
        true
    }

    /// The pull requests, oldest first (labels by name; `state` `open`/`closed`).
    pub fn pulls(&self) -> Vec<ForgePull> {
        let mut s = lock(&self.state);
        s.refresh();
        s.pulls
            .iter()
            .map(|p| ForgePull {
                number: p.number,
                id: 3000 + p.number,
                state: if p.open { "open" } else { "closed" }.into(),
                merged: p.merged,
                title: p.title.clone(),
                body: p.body.clone(),
                draft: is_wip(&p.title),
                head: p.head.clone(),
                sha: p.sha.clone(),
                base: p.base.clone(),
                labels: p.labels.iter().filter_map(|id| s.label_name(*id)).collect(),
                reviewers: p.reviewers.clone(),
                assignees: p.assignees.clone(),
                auto_merge: p.auto_merge.clone(),
                node_id: String::new(),
                remove_source_branch: false,
            })
            .collect()
    }
}

fn is_wip(title: &str) -> bool {
    let t = title.trim_start().to_ascii_uppercase();
    t.starts_with("WIP:") || t.starts_with("[WIP]")
}

impl State {
    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn error(&self, status: u16, message: &str) -> Reply {
        Reply::json(
            status,
            &json!({"message": message, "url": format!("{}/api/swagger", self.origin())}),
        )
    }

    fn not_found(&self, errors: &[String]) -> Reply {
        Reply::json(
            404,
            &json!({"message": NOT_FOUND, "url": format!("{}/api/swagger", self.origin()), "errors": errors}),
        )
    }

    /// Open PRs follow their head branch; a deleted head branch closes them.
    fn refresh(&mut self) {
        let now = now_secs();
        let repo = self.repo.clone();
        for p in self.pulls.iter_mut().filter(|p| p.open) {
            match branch_sha(&repo, &p.head) {
                Some(sha) => p.sha = sha,
                None => {
                    p.open = false;
                    p.closed = Some(now);
                }
            }
        }
    }

    fn label_name(&self, id: u64) -> Option<String> {
        self.labels
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, n)| n.clone())
    }

    /// Label ids for ids or names; unknown ones dropped.
    fn label_ids(&self, v: &Value) -> Vec<u64> {
        string_list(v)
            .iter()
            .filter_map(|x| {
                self.labels
                    .iter()
                    .find(|(id, n)| id.to_string() == *x || n == x)
                    .map(|(id, _)| *id)
            })
            .collect()
    }

    fn label_json(&self, id: u64) -> Option<Value> {
        let name = self.label_name(id)?;
        Some(json!({
            "id": id,
            "name": name,
            "exclusive": false,
            "is_archived": false,
            "color": "ededed",
            "description": "",
            "url": format!("{}/api/v1/repos/{}/{}/labels/{id}", self.origin(), self.owner, self.name),
        }))
    }

    fn user(&self, login: &str) -> Value {
        json!({"id": login.len() as u64 * 100 + 3, "login": login, "username": login, "full_name": ""})
    }

    fn pr_json(&self, p: &Pr) -> Value {
        let origin = self.origin();
        let (o, r) = (&self.owner, &self.name);
        let repo =
            json!({"id": 1, "name": r, "full_name": format!("{o}/{r}"), "owner": self.user(o)});
        let html = format!("{origin}/{o}/{r}/pulls/{}", p.number);
        json!({
            "id": 3000 + p.number,
            "url": html,
            "number": p.number,
            "user": self.user("tagwarden"),
            "title": p.title,
            "body": p.body,
            "labels": p.labels.iter().filter_map(|id| self.label_json(*id)).collect::<Vec<_>>(),
            "milestone": null,
            "assignee": p.assignees.first().map(|a| self.user(a)),
            "assignees": p.assignees.iter().map(|a| self.user(a)).collect::<Vec<_>>(),
            "requested_reviewers": p.reviewers.iter().map(|a| self.user(a)).collect::<Vec<_>>(),
            "state": if p.open { "open" } else { "closed" },
            "draft": is_wip(&p.title),
            "is_locked": false,
            "comments": 0,
            "html_url": html,
            "diff_url": format!("{html}.diff"),
            "patch_url": format!("{html}.patch"),
            "mergeable": true,
            "merged": p.merged,
            "merged_at": if p.merged { p.closed.map(rfc3339) } else { None },
            "merge_commit_sha": null,
            "allow_maintainer_edit": false,
            "base": {"label": p.base, "ref": p.base, "sha": branch_sha(&self.repo, &p.base).unwrap_or_default(), "repo_id": 1, "repo": repo},
            "head": {"label": p.head, "ref": p.head, "sha": p.sha, "repo_id": 1, "repo": repo},
            "created_at": rfc3339(p.created),
            "updated_at": rfc3339(p.updated),
            "closed_at": p.closed.map(rfc3339),
        })
    }

    fn already_exists(&self, p: &Pr) -> Reply {
        self.error(
            409,
            &format!(
                "pull request already exists for these targets [id: {}, issue_id: {}, head_repo_id: 1, base_repo_id: 1, head_branch: {}, base_branch: {}]",
                3000 + p.number,
                p.number,
                p.head,
                p.base
            ),
        )
    }
}

fn handle(s: &mut State, req: &CloudRequest, body: &[u8]) -> Reply {
    let path = req.path().to_string();
    let Some(api_path) = path.strip_prefix("/api/v1/") else {
        return handle_git(s, req, body, &path);
    };
    if let Some(fault) = s.faults.take(req) {
        return fault;
    }
    let token = scheme_token(req, &["token", "bearer"])
        .or_else(|| req.query("access_token"))
        .or_else(|| req.query("token"));
    if !token.is_some_and(|t| s.tokens.contains(&t)) {
        return s.error(401, "token is required");
    }
    let segs: Vec<String> = api_path.split('/').map(crate::forge::path_decode).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match &segs[..] {
        ["repos", o, r, rest @ ..]
            if o.eq_ignore_ascii_case(&s.owner) && r.eq_ignore_ascii_case(&s.name) =>
        {
            s.refresh();
            repo_api(s, req, rest)
        }
        _ => s.not_found(&[]),
    }
}

fn repo_api(s: &mut State, req: &CloudRequest, rest: &[&str]) -> Reply {
    let m = req.method.as_str();
    let index = |n: &str, s: &State| {
        n.parse::<u64>()
            .ok()
            .and_then(|n| s.pulls.iter().position(|p| p.number == n))
    };
    match (m, rest) {
        ("GET", []) => {
            let origin = s.origin();
            Reply::json(
                200,
                &json!({
                    "id": 1,
                    "name": s.name,
                    "full_name": format!("{}/{}", s.owner, s.name),
                    "owner": s.user(&s.owner),
                    "private": true,
                    "default_branch": head_branch(&s.repo),
                    "html_url": format!("{origin}/{}/{}", s.owner, s.name),
                    "clone_url": format!("{origin}/{}/{}.git", s.owner, s.name),
                }),
            )
        }
        ("GET", ["pulls"]) => list(s, req),
        ("POST", ["pulls"]) => create(s, req),
        ("GET", ["labels"]) => {
            let items: Vec<Value> = s
                .labels
                .iter()
                .filter_map(|(id, _)| s.label_json(*id))
                .collect();
            page_reply(s, req, items)
        }
        ("GET", ["pulls", n]) => match index(n, s) {
            Some(i) => Reply::json(200, &s.pr_json(&s.pulls[i])),
            None => s.not_found(&[]),
        },
        ("PATCH", ["pulls", n]) => match index(n, s) {
            Some(i) => update(s, req, i),
            None => s.not_found(&[]),
        },
        ("POST" | "DELETE", ["pulls", n, "requested_reviewers"]) => match index(n, s) {
            Some(i) => {
                let Some(b) = json_body(req) else {
                    return s.error(422, "invalid JSON body");
                };
                let who = string_list(&b["reviewers"]);
                let p = &mut s.pulls[i];
                if m == "DELETE" {
                    p.reviewers.retain(|r| !who.contains(r));
                    return no_content();
                }
                for w in &who {
                    if !p.reviewers.contains(w) {
                        p.reviewers.push(w.clone());
                    }
                }
                let number = p.number;
                let reviews: Vec<Value> = who
                    .iter()
                    .enumerate()
                    .map(|(k, w)| {
                        json!({
                            "id": 900 + k,
                            "user": s.user(w),
                            "state": "REQUEST_REVIEW",
                            "body": "",
                            "official": false,
                            "stale": false,
                            "dismissed": false,
                            "pull_request_url": format!("{}/{}/{}/pulls/{number}", s.origin(), s.owner, s.name),
                        })
                    })
                    .collect();
                Reply::json(201, &Value::Array(reviews))
            }
            None => s.not_found(&[]),
        },
        ("POST", ["pulls", n, "merge"]) => match index(n, s) {
            Some(i) => merge(s, req, i),
            None => s.not_found(&[]),
        },
        ("GET", ["pulls", base, head @ ..]) if !head.is_empty() => {
            let head = head.join("/");
            match s
                .pulls
                .iter()
                .rev()
                .find(|p| p.base == *base && p.head == head)
            {
                Some(p) => Reply::json(200, &s.pr_json(p)),
                None => s.not_found(&[]),
            }
        }
        ("PUT" | "POST", ["issues", n, "labels"]) => match index(n, s) {
            Some(i) => {
                let Some(b) = json_body(req) else {
                    return s.error(422, "invalid JSON body");
                };
                let ids = s.label_ids(&b["labels"]);
                let p = &mut s.pulls[i];
                if m == "PUT" {
                    p.labels.clear();
                }
                for id in ids {
                    if !p.labels.contains(&id) {
                        p.labels.push(id);
                    }
                }
                p.updated = now_secs();
                let list: Vec<Value> = s.pulls[i]
                    .labels
                    .iter()
                    .filter_map(|id| s.label_json(*id))
                    .collect();
                Reply::json(200, &Value::Array(list))
            }
            None => s.not_found(&[]),
        },
        ("DELETE", ["branches", branch @ ..]) if !branch.is_empty() => {
            let branch = branch.join("/");
            if delete_branch(&s.repo, &branch) {
                s.refresh();
                no_content()
            } else {
                s.not_found(&[format!("branch does not exist [name: {branch}]")])
            }
        }
        _ => s.not_found(&[]),
    }
}

fn page_reply(s: &State, req: &CloudRequest, items: Vec<Value>) -> Reply {
    let page = paginate(req, items, "page", "limit", 30, 50);
    let mut r = Reply::json(200, &Value::Array(page.items.clone()))
        .with_header("X-Total-Count", &page.total.to_string());
    if let Some(link) = page.link(req, &s.origin(), "page") {
        r = r.with_header("Link", &link);
    }
    r
}

fn list(s: &State, req: &CloudRequest) -> Reply {
    let state = req.query("state").unwrap_or_else(|| "open".into());
    let items: Vec<Value> = s
        .pulls
        .iter()
        .rev()
        .filter(|p| match state.as_str() {
            "closed" => !p.open,
            "all" => true,
            _ => p.open,
        })
        .map(|p| s.pr_json(p))
        .collect();
    page_reply(s, req, items)
}

fn create(s: &mut State, req: &CloudRequest) -> Reply {
    let Some(b) = json_body(req) else {
        return s.error(422, "invalid JSON body");
    };
    let text = |k: &str| b[k].as_str().unwrap_or_default().to_string();
    let (title, head_field, base) = (text("title"), text("head"), text("base"));
    if title.trim().is_empty() {
        return s.error(422, "[Title]: Required");
    }
    if head_field == base {
        return s.error(
            422,
            "Invalid PullRequest: There are no changes between the head and the base",
        );
    }
    // `owner:branch` names the head repository; only this one exists here.
    let head = match head_field.split_once(':') {
        Some((o, b)) if o.eq_ignore_ascii_case(&s.owner) => b.to_string(),
        Some(_) => return s.not_found(&["GetUserByName".into()]),
        None => head_field.clone(),
    };
    let Some(sha) = branch_sha(&s.repo, &head) else {
        return s.not_found(&[]);
    };
    if branch_sha(&s.repo, &base).is_none() {
        return s.not_found(&[]);
    }
    if let Some(p) = s
        .pulls
        .iter()
        .find(|p| p.open && p.head == head && p.base == base)
    {
        return s.already_exists(p);
    }
    if commits_ahead(&s.repo, &base, &head) == 0 {
        return s.error(
            422,
            "Invalid PullRequest: There are no changes between the head and the base",
        );
    }
    let mut assignees = string_list(&b["assignees"]);
    if let Some(a) = b["assignee"].as_str().filter(|a| !a.is_empty())
        && !assignees.iter().any(|x| x == a)
    {
        assignees.insert(0, a.to_string());
    }
    let labels = id_list(&b["labels"])
        .into_iter()
        .filter(|id| s.label_name(*id).is_some())
        .collect();
    let number = s.pulls.len() as u64 + 1;
    let now = now_secs();
    s.pulls.push(Pr {
        number,
        title,
        body: text("body"),
        head,
        base,
        sha,
        open: true,
        merged: false,
        labels,
        assignees,
        reviewers: string_list(&b["reviewers"]),
        auto_merge: None,
        created: now,
        updated: now,
        closed: None,
    });
    Reply::json(201, &s.pr_json(&s.pulls[s.pulls.len() - 1]))
}

fn update(s: &mut State, req: &CloudRequest, i: usize) -> Reply {
    let Some(b) = json_body(req) else {
        return s.error(422, "invalid JSON body");
    };
    let state = b["state"].as_str();
    if state.is_some() && s.pulls[i].merged {
        return s.error(
            412,
            "cannot change state of this pull request, it was already merged",
        );
    }
    if let Some(base) = b["base"].as_str().filter(|x| !x.is_empty())
        && branch_sha(&s.repo, base).is_none()
    {
        return s.error(404, &format!("new base '{base}' not exist"));
    }
    if state == Some("open") && !s.pulls[i].open {
        let p = &s.pulls[i];
        if branch_sha(&s.repo, &p.head).is_none() {
            return s.error(422, "head branch does not exist");
        }
        if let Some(other) = s
            .pulls
            .iter()
            .find(|o| o.open && o.head == p.head && o.base == p.base)
        {
            return s.already_exists(other);
        }
    }
    let labels = b
        .get("labels")
        .filter(|l| !l.is_null())
        .map(|l| s.label_ids(l));
    let now = now_secs();
    let repo = s.repo.clone();
    let p = &mut s.pulls[i];
    if let Some(t) = b["title"].as_str().filter(|t| !t.is_empty()) {
        p.title = t.to_string();
    }
    if let Some(body) = b["body"].as_str() {
        p.body = body.to_string();
    }
    if let Some(base) = b["base"].as_str().filter(|x| !x.is_empty()) {
        p.base = base.to_string();
    }
    if let Some(l) = labels {
        p.labels = l;
    }
    if b.get("assignees").is_some_and(|a| !a.is_null()) {
        p.assignees = string_list(&b["assignees"]);
    }
    match state {
        Some("closed") if p.open => {
            p.open = false;
            p.closed = Some(now);
        }
        Some("open") if !p.open => {
            p.open = true;
            p.closed = None;
            p.sha = branch_sha(&repo, &p.head).unwrap_or_default();
        }
        _ => {}
    }
    p.updated = now;
    // Gitea answers an edit with 201.
    Reply::json(201, &s.pr_json(&s.pulls[i]))
}

fn merge(s: &mut State, req: &CloudRequest, i: usize) -> Reply {
    let b = json_body(req).unwrap_or_else(|| json!({}));
    if !s.pulls[i].open {
        return s.not_found(&[]);
    }
    let style = b["Do"]
        .as_str()
        .filter(|d| !d.is_empty())
        .unwrap_or("merge")
        .to_string();
    let now = now_secs();
    if truthy(&b["merge_when_checks_succeed"]).unwrap_or(false) {
        if s.pulls[i].auto_merge.is_some() {
            return s.error(409, "pull request is already scheduled to auto merge");
        }
        s.pulls[i].auto_merge = Some(style);
        s.pulls[i].updated = now;
        return Reply {
            status: 201,
            headers: Vec::new(),
            body: Vec::new(),
        };
    }
    let (base, head) = (s.pulls[i].base.clone(), s.pulls[i].head.clone());
    if !fast_forward(&s.repo, &base, &head) {
        return s.error(409, "merge failed because of conflict");
    }
    let p = &mut s.pulls[i];
    p.open = false;
    p.merged = true;
    p.closed = Some(now);
    p.updated = now;
    Reply {
        status: 200,
        headers: Vec::new(),
        body: Vec::new(),
    }
}

fn handle_git(s: &State, req: &CloudRequest, body: &[u8], path: &str) -> Reply {
    let prefix = format!("/{}/{}", s.owner, s.name);
    let rest = path
        .strip_prefix(&format!("{prefix}.git"))
        .or_else(|| path.strip_prefix(&prefix))
        .filter(|r| r.starts_with('/'));
    let Some(rest) = rest else {
        return Reply::text(404, "text/plain", "Not Found\n");
    };
    let ok = basic_credentials(req)
        .is_some_and(|(user, password)| s.tokens.contains(&password) || s.tokens.contains(&user));
    if !ok {
        return git_challenge("Gitea");
    }
    serve_git(&s.repo, req, body, rest)
}
