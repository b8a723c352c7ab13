//! A stateful stand-in for the GitLab REST v4 API (merge requests, branches,
//! users) and Git smart HTTP for one project.

use crate::forge::{
    Faults, ForgePull, basic_credentials, branch_sha, delete_branch, fast_forward, git_challenge,
    head_branch, id_list, is_write, lock, no_content, paginate, params, resolve_repo, scheme_token,
    serve_git, string_list, truthy,
};
use crate::standin::{CloudRequest, Outcome, Reply, Server, now_secs, rfc3339};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The project's numeric id, accepted wherever `:id` is.
pub const GITLAB_PROJECT_ID: u64 = 42;

/// GitLab on `http://127.0.0.1:PORT`: the API at `/api/v4`, Git at
/// `/{group}/{project}.git`. One project, backed by a real bare repository.
///
/// Every API request needs `PRIVATE-TOKEN: T` or `Authorization: Bearer T`
/// with a token from [`GitLabStandIn::add_token`], else 401
/// `{"message":"401 Unauthorized"}`. `:id` is the URL-encoded project path
/// (`group%2Fproject`) or [`GITLAB_PROJECT_ID`]; another is 404
/// `{"message":"404 Project Not Found"}`. Bodies are JSON or form-encoded.
///
/// Endpoints (under `/api/v4`):
/// - `GET /projects/:id` (`default_branch`, `web_url`, `http_url_to_repo`).
/// - `GET /projects/:id/merge_requests?state=opened|closed|merged|all&source_branch=&target_branch=&per_page=&page=`:
///   newest first, 20 a page by default (at most 100); `X-Page`, `X-Per-Page`, `X-Next-Page`
///   and `X-Prev-Page` (empty when none), `X-Total`, `X-Total-Pages`, `Link`.
/// - `GET /projects/:id/merge_requests/:iid`.
/// - `POST /projects/:id/merge_requests` `{source_branch, target_branch, title, description,
///   labels: "a,b" (or an array), assignee_id, assignee_ids, reviewer_ids, remove_source_branch,
///   squash}` → 201; `draft` when the title starts with `Draft:`, `[Draft]` or `(Draft)`.
///   400 `{"error":"title is missing"}` (Grape's missing parameters, joined by `, `), 400
///   `{"error":"title is empty"}`, 400 `{"message":{"source_branch":["does not exist"]}}` (or
///   `target_branch`) when the branch is not in the repository, 422 `{"message":["You can't use
///   same project/branch for source and target"]}`, 409 `{"message":["Another open merge
///   request already exists for this source branch: !N"]}`.
/// - `PUT /projects/:id/merge_requests/:iid` (`title`, `description`, `labels` (replace),
///   `add_labels`, `remove_labels`, `state_event: close|reopen`, `assignee_ids`,
///   `reviewer_ids`, `target_branch`, `remove_source_branch`) → 200; 400 `{"error":"... at
///   least one parameter must be provided"}` when none is given.
/// - `PUT /projects/:id/merge_requests/:iid/merge`: with `merge_when_pipeline_succeeds: true`
///   (or `auto_merge: true`) recorded and answered 200, the MR staying open (as while a
///   pipeline runs); without, a fast-forward merge of the target (405 `{"message":"405 Method
///   Not Allowed"}` when closed, 406 `{"message":"Branch cannot be merged"}` when not a
///   fast-forward).
/// - `GET`/`DELETE /projects/:id/repository/branches/:branch` (URL-encoded) → 200/204, 404
///   `{"message":"404 Branch Not Found"}`; the delete really removes the ref (an MR stays
///   open, as on GitLab).
/// - `GET /users?username=x` → `[{id, username, ...}]` (empty when unknown; users from
///   [`GitLabStandIn::add_user`]); `GET /user`.
///
/// Git (`/{group}/{project}.git/...`): Basic auth, any user (`oauth2`) with a token as password.
pub struct GitLabStandIn {
    server: Server,
    state: Arc<Mutex<State>>,
}

struct Mr {
    iid: u64,
    title: String,
    description: String,
    source: String,
    target: String,
    sha: String,
    /// `opened`, `closed` or `merged`.
    state: &'static str,
    labels: Vec<String>,
    assignees: Vec<u64>,
    reviewers: Vec<u64>,
    remove_source_branch: bool,
    squash: bool,
    auto_merge: bool,
    created: u64,
    updated: u64,
    closed: Option<u64>,
}

struct State {
    repo: PathBuf,
    project: String,
    port: u16,
    tokens: BTreeSet<String>,
    users: BTreeMap<u64, String>,
    mrs: Vec<Mr>,
    faults: Faults,
}

impl GitLabStandIn {
    /// Serves the bare repository at `repo_root` (the repository itself,
    /// `repo_root/{last path segment}.git`, or `repo_root/repo.git`) as the
    /// project `project_path` (`group/project`, subgroups allowed).
    pub fn start(repo_root: &Path, project_path: &str) -> GitLabStandIn {
        let name = project_path.rsplit('/').next().unwrap_or(project_path);
        let state = Arc::new(Mutex::new(State {
            repo: resolve_repo(repo_root, name),
            project: project_path.to_string(),
            port: 0,
            tokens: BTreeSet::new(),
            users: BTreeMap::new(),
            mrs: Vec::new(),
            faults: Faults::default(),
        }));
        let shared = state.clone();
        let server = Server::start_raw(None, move |req, body| {
            Outcome::Reply(handle(&mut lock(&shared), req, body))
        });
        lock(&state).port = server.port;
        GitLabStandIn { server, state }
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// `http://127.0.0.1:PORT/api/v4`.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v4", self.server.port)
    }

    /// `http://127.0.0.1:PORT/{group}/{project}.git`.
    pub fn git_url(&self) -> String {
        let s = lock(&self.state);
        format!("http://127.0.0.1:{}/{}.git", s.port, s.project)
    }

    pub fn add_token(&self, token: &str) {
        lock(&self.state).tokens.insert(token.to_string());
    }

    /// A user `GET /users?username=` finds, for `assignee_ids` and
    /// `reviewer_ids`; returns its id.
    pub fn add_user(&self, username: &str) -> u64 {
        let mut s = lock(&self.state);
        let id = 100 + s.users.len() as u64;
        s.users.insert(id, username.to_string());
        id
    }

    /// Answers the next `n` API requests (not Git) with this, before auth.
    pub fn fail_next(&self, n: usize, status: u16, headers: Vec<(String, String)>, body: &str) {
        lock(&self.state).faults.set(n, status, headers, body);
    }

    /// Like `fail_next`, for requests with this method (`None`: any) whose
    /// path starts with `path_prefix` (the full path, e.g.
    /// `/api/v4/repos/o/r/pulls`): the GET before a failing POST still works.
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

    /// Merges MR `iid` as a person would: the target fast-forwarded to the
    /// source, the MR `merged`. False when not open or not a fast-forward.
    pub fn merge_pull(&self, iid: u64) -> bool {
        let mut s = lock(&self.state);
        s.refresh();
        let Some(i) = s
            .mrs
            .iter()
            .position(|m| m.iid == iid && m.state == "opened")
        else {
            return false;
        };
        let (target, source) = (s.mrs[i].target.clone(), s.mrs[i].source.clone());
        if !fast_forward(&s.repo, &target, &source) {
            return false;
        }
        let now = now_secs();
        let m = &mut s.mrs[i];
        m.state = "merged";
        m.closed = Some(now);
        m.updated = now;
        true
    }

    /// The merge requests, oldest first (`number` is the `iid`, reviewers
    /// and assignees as usernames, `auto_merge` `merge_when_pipeline_succeeds`).
    pub fn pulls(&self) -> Vec<ForgePull> {
        let mut s = lock(&self.state);
        s.refresh();
        let names = |ids: &[u64]| -> Vec<String> {
            ids.iter().filter_map(|i| s.users.get(i).cloned()).collect()
        };
        s.mrs
            .iter()
            .map(|m| ForgePull {
                number: m.iid,
                id: 5000 + m.iid,
                state: m.state.into(),
                merged: m.state == "merged",
                title: m.title.clone(),
                body: m.description.clone(),
                draft: is_draft(&m.title),
                head: m.source.clone(),
                sha: m.sha.clone(),
                base: m.target.clone(),
                labels: m.labels.clone(),
                reviewers: names(&m.reviewers),
                assignees: names(&m.assignees),
                auto_merge: m
                    .auto_merge
                    .then(|| "merge_when_pipeline_succeeds".to_string()),
                node_id: String::new(),
                remove_source_branch: m.remove_source_branch,
            })
            .collect()
    }
}

fn is_draft(title: &str) -> bool {
    let t = title.trim_start().to_ascii_lowercase();
    ["draft:", "[draft]", "(draft)"]
        .iter()
        .any(|p| t.starts_with(p))
}

fn message(status: u16, m: Value) -> Reply {
    Reply::json(status, &json!({ "message": m }))
}

fn grape_error(e: &str) -> Reply {
    Reply::json(400, &json!({ "error": e }))
}

impl State {
    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Open MRs follow their source branch (a deleted branch keeps its last sha).
    fn refresh(&mut self) {
        let repo = self.repo.clone();
        for m in self.mrs.iter_mut().filter(|m| m.state == "opened") {
            if let Some(sha) = branch_sha(&repo, &m.source) {
                m.sha = sha;
            }
        }
    }

    fn user_json(&self, id: u64) -> Option<Value> {
        let name = self.users.get(&id)?;
        Some(json!({
            "id": id,
            "username": name,
            "name": name,
            "state": "active",
            "avatar_url": null,
            "web_url": format!("{}/{name}", self.origin()),
        }))
    }

    fn mr_json(&self, m: &Mr) -> Value {
        let users =
            |ids: &[u64]| -> Vec<Value> { ids.iter().filter_map(|i| self.user_json(*i)).collect() };
        json!({
            "id": 5000 + m.iid,
            "iid": m.iid,
            "project_id": GITLAB_PROJECT_ID,
            "title": m.title,
            "description": m.description,
            "state": m.state,
            "created_at": rfc3339(m.created),
            "updated_at": rfc3339(m.updated),
            "closed_at": if m.state == "closed" { m.closed.map(rfc3339) } else { None },
            "merged_at": if m.state == "merged" { m.closed.map(rfc3339) } else { None },
            "target_branch": m.target,
            "source_branch": m.source,
            "source_project_id": GITLAB_PROJECT_ID,
            "target_project_id": GITLAB_PROJECT_ID,
            "author": {"id": 1, "username": "tagwarden", "name": "tagwarden"},
            "assignee": m.assignees.first().and_then(|i| self.user_json(*i)),
            "assignees": users(&m.assignees),
            "reviewers": users(&m.reviewers),
            "labels": m.labels,
            "draft": is_draft(&m.title),
            "work_in_progress": is_draft(&m.title),
            "merge_when_pipeline_succeeds": m.auto_merge,
            "merge_status": "can_be_merged",
            "detailed_merge_status": "mergeable",
            "sha": m.sha,
            "merge_commit_sha": null,
            "squash": m.squash,
            "force_remove_source_branch": m.remove_source_branch,
            "has_conflicts": false,
            "references": {
                "short": format!("!{}", m.iid),
                "relative": format!("!{}", m.iid),
                "full": format!("{}!{}", self.project, m.iid),
            },
            "web_url": format!("{}/{}/-/merge_requests/{}", self.origin(), self.project, m.iid),
        })
    }

    fn duplicate_of(&self, source: &str, except: u64) -> Option<u64> {
        self.mrs
            .iter()
            .find(|m| m.state == "opened" && m.source == source && m.iid != except)
            .map(|m| m.iid)
    }
}

fn duplicate(iid: u64) -> Reply {
    message(
        409,
        json!([format!(
            "Another open merge request already exists for this source branch: !{iid}"
        )]),
    )
}

fn handle(s: &mut State, req: &CloudRequest, body: &[u8]) -> Reply {
    let path = req.path().to_string();
    let Some(api_path) = path.strip_prefix("/api/v4/") else {
        return handle_git(s, req, body, &path);
    };
    if let Some(fault) = s.faults.take(req) {
        return fault;
    }
    let token = req
        .header("private-token")
        .map(String::from)
        .or_else(|| scheme_token(req, &["bearer"]));
    if !token.is_some_and(|t| s.tokens.contains(&t)) {
        return message(401, json!("401 Unauthorized"));
    }
    // Split before decoding: `group%2Fproject` is one segment.
    let segs: Vec<String> = api_path.split('/').map(crate::forge::path_decode).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (req.method.as_str(), &segs[..]) {
        ("GET", ["users"]) => {
            let wanted = req.query("username");
            let list: Vec<Value> = s
                .users
                .iter()
                .filter(|(_, n)| wanted.as_ref().is_none_or(|w| w.eq_ignore_ascii_case(n)))
                .filter_map(|(id, _)| s.user_json(*id))
                .collect();
            Reply::json(200, &Value::Array(list))
        }
        ("GET", ["user"]) => Reply::json(
            200,
            &json!({"id": 1, "username": "tagwarden", "name": "tagwarden", "state": "active"}),
        ),
        (_, ["projects", id, rest @ ..]) => {
            let ours = *id == s.project || id.parse::<u64>().ok() == Some(GITLAB_PROJECT_ID);
            if !ours {
                return message(404, json!("404 Project Not Found"));
            }
            s.refresh();
            project_api(s, req, rest)
        }
        _ => message(404, json!("404 Not Found")),
    }
}

fn project_api(s: &mut State, req: &CloudRequest, rest: &[&str]) -> Reply {
    match (req.method.as_str(), rest) {
        ("GET", []) => {
            let origin = s.origin();
            Reply::json(
                200,
                &json!({
                    "id": GITLAB_PROJECT_ID,
                    "path_with_namespace": s.project,
                    "path": s.project.rsplit('/').next(),
                    "default_branch": head_branch(&s.repo),
                    "web_url": format!("{origin}/{}", s.project),
                    "http_url_to_repo": format!("{origin}/{}.git", s.project),
                }),
            )
        }
        ("GET", ["merge_requests"]) => list(s, req),
        ("POST", ["merge_requests"]) => create(s, req),
        (m, ["merge_requests", iid, more @ ..]) => {
            let Some(i) = iid
                .parse::<u64>()
                .ok()
                .and_then(|n| s.mrs.iter().position(|x| x.iid == n))
            else {
                return message(404, json!("404 Not found"));
            };
            match (m, more) {
                ("GET", []) => Reply::json(200, &s.mr_json(&s.mrs[i])),
                ("PUT", []) => update(s, req, i),
                ("PUT", ["merge"]) => merge(s, req, i),
                _ => message(404, json!("404 Not Found")),
            }
        }
        (m @ ("GET" | "DELETE"), ["repository", "branches", branch @ ..]) if !branch.is_empty() => {
            let branch = branch.join("/");
            let Some(sha) = branch_sha(&s.repo, &branch) else {
                return message(404, json!("404 Branch Not Found"));
            };
            if m == "GET" {
                return Reply::json(
                    200,
                    &json!({"name": branch, "commit": {"id": sha}, "merged": false, "protected": false}),
                );
            }
            if delete_branch(&s.repo, &branch) {
                no_content()
            } else {
                message(404, json!("404 Branch Not Found"))
            }
        }
        _ => message(404, json!("404 Not Found")),
    }
}

fn list(s: &State, req: &CloudRequest) -> Reply {
    let state = req.query("state").unwrap_or_else(|| "all".into());
    if !["opened", "closed", "locked", "merged", "all"].contains(&state.as_str()) {
        return grape_error("state does not have a valid value");
    }
    let source = req.query("source_branch");
    let target = req.query("target_branch");
    let items: Vec<Value> = s
        .mrs
        .iter()
        .rev()
        .filter(|m| state == "all" || m.state == state)
        .filter(|m| source.as_ref().is_none_or(|b| *b == m.source))
        .filter(|m| target.as_ref().is_none_or(|b| *b == m.target))
        .map(|m| s.mr_json(m))
        .collect();
    let page = paginate(req, items, "page", "per_page", 20, 100);
    let next = if page.page < page.total_pages {
        (page.page + 1).to_string()
    } else {
        String::new()
    };
    let prev = if page.page > 1 {
        (page.page - 1).to_string()
    } else {
        String::new()
    };
    let link = page.gitlab_link(req, &s.origin());
    Reply::json(200, &Value::Array(page.items))
        .with_header("X-Page", &page.page.to_string())
        .with_header("X-Per-Page", &page.per_page.to_string())
        .with_header("X-Next-Page", &next)
        .with_header("X-Prev-Page", &prev)
        .with_header("X-Total", &page.total.to_string())
        .with_header("X-Total-Pages", &page.total_pages.to_string())
        .with_header("Link", &link)
}

/// Ids from `key_ids` (array) or `key_id` (one).
fn ids(b: &Value, key: &str) -> Option<Vec<u64>> {
    if let Some(v) = b.get(format!("{key}_ids").as_str()) {
        return Some(id_list(v));
    }
    b.get(format!("{key}_id").as_str()).map(id_list)
}

fn create(s: &mut State, req: &CloudRequest) -> Reply {
    let Some(b) = params(req) else {
        return grape_error("body is invalid JSON");
    };
    let missing: Vec<String> = ["title", "source_branch", "target_branch"]
        .into_iter()
        .filter(|k| b.get(*k).is_none_or(Value::is_null))
        .map(|k| format!("{k} is missing"))
        .collect();
    if !missing.is_empty() {
        return grape_error(&missing.join(", "));
    }
    let text = |k: &str| b[k].as_str().unwrap_or_default().to_string();
    let (title, source, target) = (text("title"), text("source_branch"), text("target_branch"));
    for (k, v) in [
        ("title", &title),
        ("source_branch", &source),
        ("target_branch", &target),
    ] {
        if v.trim().is_empty() {
            return grape_error(&format!("{k} is empty"));
        }
    }
    if source == target {
        return message(
            422,
            json!(["You can't use same project/branch for source and target"]),
        );
    }
    let Some(sha) = branch_sha(&s.repo, &source) else {
        return message(400, json!({"source_branch": ["does not exist"]}));
    };
    if branch_sha(&s.repo, &target).is_none() {
        return message(400, json!({"target_branch": ["does not exist"]}));
    }
    if let Some(iid) = s.duplicate_of(&source, 0) {
        return duplicate(iid);
    }
    let iid = s.mrs.len() as u64 + 1;
    let now = now_secs();
    s.mrs.push(Mr {
        iid,
        title,
        description: b["description"].as_str().unwrap_or_default().to_string(),
        source,
        target,
        sha,
        state: "opened",
        labels: string_list(&b["labels"]),
        assignees: ids(&b, "assignee").unwrap_or_default(),
        reviewers: ids(&b, "reviewer").unwrap_or_default(),
        remove_source_branch: truthy(&b["remove_source_branch"]).unwrap_or(false),
        squash: truthy(&b["squash"]).unwrap_or(false),
        auto_merge: false,
        created: now,
        updated: now,
        closed: None,
    });
    Reply::json(201, &s.mr_json(&s.mrs[s.mrs.len() - 1]))
}

const UPDATE_PARAMS: [&str; 11] = [
    "title",
    "description",
    "labels",
    "add_labels",
    "remove_labels",
    "state_event",
    "assignee_id",
    "assignee_ids",
    "reviewer_ids",
    "target_branch",
    "remove_source_branch",
];

fn update(s: &mut State, req: &CloudRequest, i: usize) -> Reply {
    let Some(b) = params(req) else {
        return grape_error("body is invalid JSON");
    };
    if !UPDATE_PARAMS.iter().any(|k| b.get(*k).is_some()) {
        return grape_error(&format!(
            "{} are missing, at least one parameter must be provided",
            UPDATE_PARAMS.join(", ")
        ));
    }
    let event = b["state_event"].as_str();
    if event.is_some_and(|e| e != "close" && e != "reopen") {
        return grape_error("state_event does not have a valid value");
    }
    if let Some(t) = b["target_branch"].as_str()
        && branch_sha(&s.repo, t).is_none()
    {
        return message(400, json!({"target_branch": ["does not exist"]}));
    }
    if event == Some("reopen") && s.mrs[i].state == "closed" {
        let (source, iid) = (s.mrs[i].source.clone(), s.mrs[i].iid);
        if let Some(other) = s.duplicate_of(&source, iid) {
            return duplicate(other);
        }
    }
    let now = now_secs();
    let repo = s.repo.clone();
    let m = &mut s.mrs[i];
    if let Some(t) = b["title"].as_str() {
        m.title = t.to_string();
    }
    if let Some(d) = b["description"].as_str() {
        m.description = d.to_string();
    }
    if let Some(t) = b["target_branch"].as_str() {
        m.target = t.to_string();
    }
    if b.get("labels").is_some() {
        m.labels = string_list(&b["labels"]);
    }
    for l in string_list(&b["add_labels"]) {
        if !m.labels.contains(&l) {
            m.labels.push(l);
        }
    }
    let remove = string_list(&b["remove_labels"]);
    m.labels.retain(|l| !remove.contains(l));
    if let Some(a) = ids(&b, "assignee") {
        m.assignees = a;
    }
    if let Some(r) = b.get("reviewer_ids") {
        m.reviewers = id_list(r);
    }
    if let Some(r) = truthy(&b["remove_source_branch"]) {
        m.remove_source_branch = r;
    }
    match event {
        Some("close") if m.state == "opened" => {
            m.state = "closed";
            m.closed = Some(now);
        }
        Some("reopen") if m.state == "closed" => {
            m.state = "opened";
            m.closed = None;
            if let Some(sha) = branch_sha(&repo, &m.source) {
                m.sha = sha;
            }
        }
        _ => {}
    }
    m.updated = now;
    Reply::json(200, &s.mr_json(&s.mrs[i]))
}

fn merge(s: &mut State, req: &CloudRequest, i: usize) -> Reply {
    let b = params(req).unwrap_or_else(|| json!({}));
    if s.mrs[i].state != "opened" {
        return message(405, json!("405 Method Not Allowed"));
    }
    let auto = truthy(&b["merge_when_pipeline_succeeds"]).unwrap_or(false)
        || truthy(&b["auto_merge"]).unwrap_or(false);
    let now = now_secs();
    if auto {
        s.mrs[i].auto_merge = true;
    } else {
        let (target, source) = (s.mrs[i].target.clone(), s.mrs[i].source.clone());
        if !fast_forward(&s.repo, &target, &source) {
            return message(406, json!("Branch cannot be merged"));
        }
        let m = &mut s.mrs[i];
        m.state = "merged";
        m.closed = Some(now);
        if m.remove_source_branch {
            delete_branch(&s.repo, &source);
        }
    }
    s.mrs[i].updated = now;
    Reply::json(200, &s.mr_json(&s.mrs[i]))
}

fn handle_git(s: &State, req: &CloudRequest, body: &[u8], path: &str) -> Reply {
    let prefix = format!("/{}", s.project);
    let rest = path
        .strip_prefix(&format!("{prefix}.git"))
        .or_else(|| path.strip_prefix(&prefix))
        .filter(|r| r.starts_with('/'));
    let Some(rest) = rest else {
        return Reply::text(404, "text/plain", "Not Found\n");
    };
    if !basic_credentials(req).is_some_and(|(_, password)| s.tokens.contains(&password)) {
        return git_challenge("GitLab");
    }
    serve_git(&s.repo, req, body, rest)
}
