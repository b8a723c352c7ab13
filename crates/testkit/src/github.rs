//! A stateful stand-in for the GitHub REST v3 API as GitHub Enterprise
//! serves it (`/api/v3`), GitHub App installation tokens, the one GraphQL
//! mutation for auto-merge, and Git smart HTTP for the repository.

use crate::forge::{
    Faults, ForgePull, Page, basic_credentials, branch_sha, commits_ahead, delete_branch,
    git_challenge, is_write, json_body, lock, paginate, resolve_repo, scheme_token, serve_git,
    string_list,
};
use crate::standin::{CloudRequest, Outcome, Reply, Server, now_secs, rfc3339};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const DOCS: &str = "https://docs.github.com/rest";
const CREATE_DOCS: &str = "https://docs.github.com/rest/pulls/pulls#create-a-pull-request";
const UPDATE_DOCS: &str = "https://docs.github.com/rest/pulls/pulls#update-a-pull-request";
const REF_DOCS: &str = "https://docs.github.com/rest/git/refs#delete-a-reference";
const JWT_UNDECODABLE: &str = "A JSON web token could not be decoded";

/// GitHub (Enterprise layout) on `http://127.0.0.1:PORT`: the REST API at
/// `/api/v3`, GraphQL at `/api/graphql` (and `/api/v3/graphql`), Git at
/// `/{owner}/{repo}.git`. One repository, backed by a real bare repository.
///
/// Every API request needs `User-Agent` (else 403, as GitHub) and
/// `Authorization: Bearer T` or `token T` with a token from
/// [`GitHubStandIn::add_token`] or an installation token it issued (else 401
/// `{"message":"Bad credentials","documentation_url":…}`).
///
/// REST endpoints (under `/api/v3`, `{o}/{r}` compared case-insensitively):
/// - `GET /repos/{o}/{r}`; `GET /repos/{o}/{r}/branches/{branch}` (404 `Branch not found`).
/// - `GET /repos/{o}/{r}/pulls?state=open|closed|all&head={o}:{branch}&base=&per_page=&page=`:
///   newest first, 30 a page by default (at most 100), `Link` with `next`/`last`
///   (`first`/`prev`) when there are several pages. A `head` without `owner:` is ignored,
///   as GitHub ignores it.
/// - `POST /repos/{o}/{r}/pulls` `{title, head, base, body, draft}` → 201. 422 `Validation
///   Failed` with `errors`: `missing_field` for a missing `title`/`head`/`base`; field `head`
///   (or `base`) code `invalid` when that branch is not in the repository; `custom` `A pull
///   request already exists for o:b.` for a second open PR on one head; `custom` `No commits
///   between BASE and HEAD` when the head adds nothing. 400 `Problems parsing JSON`.
/// - `GET`/`PATCH /repos/{o}/{r}/pulls/{n}` (`title`, `body`, `base`, `state`: `open`|`closed`).
/// - `PATCH /repos/{o}/{r}/issues/{n}` (`labels`, `assignees` replace; `title`, `body`, `state`).
/// - `PUT`/`POST /repos/{o}/{r}/issues/{n}/labels` `{labels:[..]}` (replace/add; unknown labels
///   are created) → 200 label array; `DELETE …/labels/{name}`.
/// - `POST`/`DELETE /repos/{o}/{r}/pulls/{n}/requested_reviewers` `{reviewers:[..]}` → 201/200 PR.
/// - `POST`/`DELETE /repos/{o}/{r}/issues/{n}/assignees` `{assignees:[..]}` → 201/200 issue.
/// - `DELETE /repos/{o}/{r}/git/refs/heads/{branch}` → 204 (422 `Reference does not exist`);
///   really deletes the ref, and open PRs on it close, as on GitHub.
/// - GraphQL `enablePullRequestAutoMerge(input:{pullRequestId, mergeMethod})` (literal or
///   variables), recorded on the PR (`auto_merge` in its REST JSON); an unknown id is a
///   GraphQL `NOT_FOUND` error (HTTP 200).
///
/// GitHub App ([`GitHubStandIn::add_app`]): `GET /api/v3/repos/{o}/{r}/installation` and
/// `POST /api/v3/app/installations/{id}/access_tokens` (201 `{token:"ghs_…", expires_at}`)
/// (also `GET /api/v3/orgs/{o}/installation`, `/users/{o}/installation`)
/// want `Authorization: Bearer JWT`, RS256 signed by the app's key, `iss` the app id (string
/// or number), `iat` not in the future (60 s skew), `exp` in the future and at most 600 s
/// after `iat`; otherwise 401 with GitHub's message. `GET /api/v3/app` too.
///
/// Git (`/{o}/{r}.git/...`, `git http-backend`): Basic auth, any user with a token from
/// `add_token` as password, or user `x-access-token` with an issued installation token.
///
/// An open PR's `head.sha` is read from the repository at each answer, so a force-push
/// to its head branch shows at once.
pub struct GitHubStandIn {
    server: Server,
    state: Arc<Mutex<State>>,
}

struct App {
    public_key: Vec<u8>,
    installation: u64,
}

struct Pr {
    number: u64,
    id: u64,
    node_id: String,
    title: String,
    body: Option<String>,
    draft: bool,
    head: String,
    base: String,
    sha: String,
    open: bool,
    merged: bool,
    labels: Vec<String>,
    reviewers: Vec<String>,
    assignees: Vec<String>,
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
    /// Issued installation tokens and their expiry (Unix seconds).
    installation_tokens: BTreeMap<String, u64>,
    token_ttl: u64,
    apps: BTreeMap<u64, App>,
    labels: Vec<String>,
    pulls: Vec<Pr>,
    faults: Faults,
    served: u64,
}

impl GitHubStandIn {
    /// Serves the bare repository found at `repo_root` (the repository
    /// itself, `repo_root/{repo}.git`, or `repo_root/repo.git` as a
    /// [`crate::BareRepo`] root holds it) as `{owner}/{repo}`.
    pub fn start(repo_root: &Path, owner: &str, repo: &str) -> GitHubStandIn {
        let state = Arc::new(Mutex::new(State {
            repo: resolve_repo(repo_root, repo),
            owner: owner.to_string(),
            name: repo.to_string(),
            port: 0,
            tokens: BTreeSet::new(),
            installation_tokens: BTreeMap::new(),
            token_ttl: 3600,
            apps: BTreeMap::new(),
            labels: Vec::new(),
            pulls: Vec::new(),
            faults: Faults::default(),
            served: 0,
        }));
        let shared = state.clone();
        let server = Server::start_raw(None, move |req, body| {
            Outcome::Reply(handle(&mut lock(&shared), req, body))
        });
        lock(&state).port = server.port;
        GitHubStandIn { server, state }
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// `http://127.0.0.1:PORT/api/v3`, the GitHub Enterprise API base URL.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v3", self.server.port)
    }

    /// `http://127.0.0.1:PORT/{owner}/{repo}.git`.
    pub fn git_url(&self) -> String {
        let s = lock(&self.state);
        format!("http://127.0.0.1:{}/{}/{}.git", s.port, s.owner, s.name)
    }

    /// Accepts `token` for the API and (as a Basic password) for Git.
    pub fn add_token(&self, token: &str) {
        lock(&self.state).tokens.insert(token.to_string());
    }

    /// Registers a GitHub App installed on the repository; returns its
    /// installation id. `public_key_pem` is SPKI (`BEGIN PUBLIC KEY`) or
    /// PKCS#1 (`BEGIN RSA PUBLIC KEY`).
    pub fn add_app(&self, app_id: u64, public_key_pem: &str) -> u64 {
        let public_key = rsa_public_key_der(public_key_pem)
            .unwrap_or_else(|| panic!("add_app: not an RSA public key PEM"));
        let installation = 40_000 + app_id;
        lock(&self.state).apps.insert(
            app_id,
            App {
                public_key,
                installation,
            },
        );
        installation
    }

    /// Lifetime of installation tokens issued from now on (default 3600 s).
    pub fn set_token_ttl(&self, secs: u64) {
        lock(&self.state).token_ttl = secs;
    }

    /// Installation tokens issued so far (expired ones too).
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.state)
            .installation_tokens
            .keys()
            .cloned()
            .collect()
    }

    /// Makes every issued installation token expired now: the API answers
    /// 401 `Bad credentials` to it and Git refuses it.
    pub fn expire_installation_tokens(&self) {
        for exp in lock(&self.state).installation_tokens.values_mut() {
            *exp = 0;
        }
    }

    /// Answers the next `n` API requests (not Git) with this instead, before
    /// any auth check: 500s, 401s, rate limits (`Retry-After`, or
    /// `X-RateLimit-Remaining: 0` with `X-RateLimit-Reset`).
    pub fn fail_next(&self, n: usize, status: u16, headers: Vec<(String, String)>, body: &str) {
        lock(&self.state).faults.set(n, status, headers, body);
    }

    /// Like `fail_next`, for requests with this method (`None`: any) whose
    /// path starts with `path_prefix` (the full path, e.g.
    /// `/api/v3/repos/o/r/pulls`): the GET before a failing POST still works.
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

    /// Every API request received (REST and GraphQL; not Git), in order.
    pub fn requests(&self) -> Vec<CloudRequest> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.path().starts_with("/api/"))
            .collect()
    }

    /// The API requests that could change something: not GET/HEAD, and not
    /// the installation-token exchange.
    pub fn writes(&self) -> Vec<CloudRequest> {
        self.requests()
            .into_iter()
            .filter(|r| is_write(r) && !r.path().ends_with("/access_tokens"))
            .collect()
    }

    /// Git smart HTTP requests received.
    pub fn git_requests(&self) -> Vec<CloudRequest> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| !r.path().starts_with("/api/"))
            .collect()
    }

    /// Merges PR `number` as a person would on GitHub: the base branch is
    /// fast-forwarded to the head, the PR closed and `merged`. False when
    /// it is not open or not a fast-forward.
    pub fn merge_pull(&self, number: u64) -> bool {
        let mut s = lock(&self.state);
        s.refresh();
        let Some(i) = s.pulls.iter().position(|p| p.number == number && p.open) else {
            return false;
        };
        let (base, head) = (s.pulls[i].base.clone(), s.pulls[i].head.clone());
        if !crate::forge::fast_forward(&s.repo, &base, &head) {
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

    /// The pull requests, oldest first, as an API read would show them now.
    pub fn pulls(&self) -> Vec<ForgePull> {
        let mut s = lock(&self.state);
        s.refresh();
        s.pulls
            .iter()
            .map(|p| ForgePull {
                number: p.number,
                id: p.id,
                state: if p.open { "open" } else { "closed" }.into(),
                merged: p.merged,
                title: p.title.clone(),
                body: p.body.clone().unwrap_or_default(),
                draft: p.draft,
                head: p.head.clone(),
                sha: p.sha.clone(),
                base: p.base.clone(),
                labels: p.labels.clone(),
                reviewers: p.reviewers.clone(),
                assignees: p.assignees.clone(),
                auto_merge: p.auto_merge.clone(),
                node_id: p.node_id.clone(),
                remove_source_branch: false,
            })
            .collect()
    }
}

fn error(status: u16, message: &str, docs: &str) -> Reply {
    Reply::json(
        status,
        &json!({"message": message, "documentation_url": docs, "status": status.to_string()}),
    )
}

fn validation(errors: Value, docs: &str) -> Reply {
    Reply::json(
        422,
        &json!({"message": "Validation Failed", "errors": errors, "documentation_url": docs, "status": "422"}),
    )
}

fn not_found() -> Reply {
    error(404, "Not Found", DOCS)
}

enum Caller {
    /// A PAT or an installation token.
    Token,
    App(u64),
}

impl State {
    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn token_ok(&self, t: &str) -> bool {
        self.tokens.contains(t)
            || self
                .installation_tokens
                .get(t)
                .is_some_and(|exp| *exp > now_secs())
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
                    p.updated = now;
                }
            }
        }
    }

    fn label_json(&self, name: &str) -> Value {
        let id = self.labels.iter().position(|l| l == name).unwrap_or(0) as u64 + 1;
        json!({
            "id": 700 + id,
            "node_id": format!("LA_{id}"),
            "url": format!("{}/api/v3/repos/{}/{}/labels/{}", self.origin(), self.owner, self.name, name),
            "name": name,
            "color": "ededed",
            "default": false,
            "description": null,
        })
    }

    fn user(&self, login: &str) -> Value {
        json!({"login": login, "id": login.len() as u64 * 1000 + 7, "type": "User"})
    }

    fn pr_json(&self, p: &Pr) -> Value {
        let origin = self.origin();
        let (o, r) = (&self.owner, &self.name);
        let repo_json = json!({"name": r, "full_name": format!("{o}/{r}"), "owner": self.user(o)});
        json!({
            "id": p.id,
            "node_id": p.node_id,
            "number": p.number,
            "url": format!("{origin}/api/v3/repos/{o}/{r}/pulls/{}", p.number),
            "html_url": format!("{origin}/{o}/{r}/pull/{}", p.number),
            "issue_url": format!("{origin}/api/v3/repos/{o}/{r}/issues/{}", p.number),
            "state": if p.open { "open" } else { "closed" },
            "locked": false,
            "title": p.title,
            "body": p.body,
            "draft": p.draft,
            "user": self.user("tagwarden"),
            "head": {"label": format!("{o}:{}", p.head), "ref": p.head, "sha": p.sha, "repo": repo_json},
            "base": {
                "label": format!("{o}:{}", p.base),
                "ref": p.base,
                "sha": branch_sha(&self.repo, &p.base).unwrap_or_default(),
                "repo": repo_json,
            },
            "labels": p.labels.iter().map(|l| self.label_json(l)).collect::<Vec<_>>(),
            "requested_reviewers": p.reviewers.iter().map(|l| self.user(l)).collect::<Vec<_>>(),
            "requested_teams": [],
            "assignees": p.assignees.iter().map(|l| self.user(l)).collect::<Vec<_>>(),
            "assignee": p.assignees.first().map(|l| self.user(l)),
            "merged": p.merged,
            "merged_at": if p.merged { p.closed.map(rfc3339) } else { None },
            "merge_commit_sha": null,
            "auto_merge": p.auto_merge.as_ref().map(|m| json!({
                "enabled_by": self.user("tagwarden"),
                "merge_method": m.to_lowercase(),
                "commit_title": null,
                "commit_message": null,
            })),
            "created_at": rfc3339(p.created),
            "updated_at": rfc3339(p.updated),
            "closed_at": p.closed.map(rfc3339),
        })
    }

    fn issue_json(&self, p: &Pr) -> Value {
        let origin = self.origin();
        let (o, r) = (&self.owner, &self.name);
        json!({
            "id": p.id + 1,
            "number": p.number,
            "url": format!("{origin}/api/v3/repos/{o}/{r}/issues/{}", p.number),
            "html_url": format!("{origin}/{o}/{r}/pull/{}", p.number),
            "state": if p.open { "open" } else { "closed" },
            "title": p.title,
            "body": p.body,
            "labels": p.labels.iter().map(|l| self.label_json(l)).collect::<Vec<_>>(),
            "assignees": p.assignees.iter().map(|l| self.user(l)).collect::<Vec<_>>(),
            "assignee": p.assignees.first().map(|l| self.user(l)),
            "pull_request": {"url": format!("{origin}/api/v3/repos/{o}/{r}/pulls/{}", p.number)},
        })
    }

    fn pull_index(&self, n: &str) -> Option<usize> {
        let n: u64 = n.parse().ok()?;
        self.pulls.iter().position(|p| p.number == n)
    }

    fn repo_json(&self) -> Value {
        let origin = self.origin();
        let (o, r) = (&self.owner, &self.name);
        let default = crate::forge::head_branch(&self.repo);
        json!({
            "id": 1296269,
            "node_id": "R_kgDOtestkit",
            "name": r,
            "full_name": format!("{o}/{r}"),
            "private": true,
            "owner": self.user(o),
            "html_url": format!("{origin}/{o}/{r}"),
            "url": format!("{origin}/api/v3/repos/{o}/{r}"),
            "clone_url": format!("{origin}/{o}/{r}.git"),
            "default_branch": default,
            "allow_auto_merge": true,
        })
    }
}

fn handle(s: &mut State, req: &CloudRequest, body: &[u8]) -> Reply {
    let path = req.path().to_string();
    if !path.starts_with("/api/") {
        return handle_git(s, req, body, &path);
    }
    if let Some(fault) = s.faults.take(req) {
        return fault;
    }
    s.served += 1;
    let limit_headers = |r: Reply, served: u64| {
        r.with_header("X-RateLimit-Limit", "5000")
            .with_header(
                "X-RateLimit-Remaining",
                &5000u64.saturating_sub(served).to_string(),
            )
            .with_header("X-RateLimit-Used", &served.to_string())
            .with_header("X-RateLimit-Reset", &(now_secs() + 3600).to_string())
            .with_header("X-RateLimit-Resource", "core")
            .with_header("X-GitHub-Media-Type", "github.v3; format=json")
    };
    let reply = api(s, req, &path);
    limit_headers(reply, s.served)
}

fn api(s: &mut State, req: &CloudRequest, path: &str) -> Reply {
    if req.header("user-agent").is_none_or(str::is_empty) {
        return Reply::text(
            403,
            "text/plain",
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.\n",
        );
    }
    let segs: Vec<String> = path
        .trim_start_matches("/api/")
        .split('/')
        .map(crate::forge::path_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let is_app_route = matches!(
        segs[..],
        ["v3", "app"]
            | ["v3", "app", "installations", _, "access_tokens"]
            | ["v3", "repos", _, _, "installation"]
            | ["v3", "orgs" | "users", _, "installation"]
    );
    let caller = match authenticate(s, req, is_app_route) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Caller::App(app_id) = caller {
        return app_api(s, req, &segs, app_id);
    }
    match segs[..] {
        ["graphql"] | ["v3", "graphql"] if req.method == "POST" => graphql(s, req),
        ["v3", "repos", o, r, ..]
            if o.eq_ignore_ascii_case(&s.owner) && r.eq_ignore_ascii_case(&s.name) =>
        {
            let rest: Vec<&str> = segs[4..].to_vec();
            repo_api(s, req, &rest)
        }
        _ => not_found(),
    }
}

fn authenticate(s: &State, req: &CloudRequest, app_route: bool) -> Result<Caller, Reply> {
    if app_route {
        // GitHub takes app JWTs as `Bearer` only.
        let Some(jwt) = scheme_token(req, &["bearer"]) else {
            return Err(error(401, JWT_UNDECODABLE, DOCS));
        };
        return verify_jwt(s, &jwt).map(Caller::App);
    }
    match scheme_token(req, &["bearer", "token"]) {
        Some(t) if s.token_ok(&t) => Ok(Caller::Token),
        _ => Err(error(401, "Bad credentials", DOCS)),
    }
}

/// Checks an app JWT as GitHub does; the app id, or GitHub's 401.
fn verify_jwt(s: &State, jwt: &str) -> Result<u64, Reply> {
    use base64::Engine;
    let undecodable = || error(401, JWT_UNDECODABLE, DOCS);
    let b64 = |p: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .ok()
    };
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, p, sig] = parts[..] else {
        return Err(undecodable());
    };
    let header: Value = b64(h)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(undecodable)?;
    let claims: Value = b64(p)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(undecodable)?;
    let sig = b64(sig).ok_or_else(undecodable)?;
    if header["alg"] != "RS256" {
        return Err(undecodable());
    }
    let app_id = match &claims["iss"] {
        Value::Number(n) => n.as_u64(),
        Value::String(t) => t.parse().ok(),
        _ => None,
    };
    let Some(app_id) = app_id else {
        return Err(error(
            401,
            "'Issuer' claim ('iss') must be an Integer",
            DOCS,
        ));
    };
    let Some(app) = s.apps.get(&app_id) else {
        return Err(error(401, "Integration not found", DOCS));
    };
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        &app.public_key,
    );
    if key.verify(format!("{h}.{p}").as_bytes(), &sig).is_err() {
        return Err(undecodable());
    }
    let now = now_secs();
    let iat = claims["iat"].as_u64();
    let exp = claims["exp"].as_u64();
    let Some(iat) = iat.filter(|i| *i <= now + 60) else {
        return Err(error(
            401,
            "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
            DOCS,
        ));
    };
    let Some(exp) = exp.filter(|e| *e > now) else {
        return Err(error(
            401,
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
            DOCS,
        ));
    };
    if exp.saturating_sub(iat) > 600 {
        return Err(error(
            401,
            "'Expiration time' claim ('exp') is too far in the future",
            DOCS,
        ));
    }
    Ok(app_id)
}

fn app_api(s: &mut State, req: &CloudRequest, segs: &[&str], app_id: u64) -> Reply {
    let installation = s.apps.get(&app_id).map_or(0, |a| a.installation);
    match (req.method.as_str(), segs) {
        ("GET", ["v3", "app"]) => Reply::json(
            200,
            &json!({"id": app_id, "slug": "tagwarden-test", "name": "tagwarden test", "owner": s.user(&s.owner)}),
        ),
        ("GET", ["v3", "repos", o, r, "installation"])
            if o.eq_ignore_ascii_case(&s.owner) && r.eq_ignore_ascii_case(&s.name) =>
        {
            installation_json(s, app_id, installation)
        }
        ("GET", ["v3", "orgs" | "users", o, "installation"])
            if o.eq_ignore_ascii_case(&s.owner) =>
        {
            installation_json(s, app_id, installation)
        }
        ("POST", ["v3", "app", "installations", id, "access_tokens"])
            if id.parse::<u64>().ok() == Some(installation) =>
        {
            let n = s.installation_tokens.len() + 1;
            let token = format!("ghs_testkit{n:04}{}", now_secs() % 100_000);
            let expires = now_secs() + s.token_ttl;
            s.installation_tokens.insert(token.clone(), expires);
            Reply::json(
                201,
                &json!({
                    "token": token,
                    "expires_at": rfc3339(expires),
                    "permissions": {"contents": "write", "pull_requests": "write", "metadata": "read"},
                    "repository_selection": "all",
                }),
            )
        }
        _ => not_found(),
    }
}

fn installation_json(s: &State, app_id: u64, installation: u64) -> Reply {
    let origin = s.origin();
    Reply::json(
        200,
        &json!({
            "id": installation,
            "app_id": app_id,
            "account": s.user(&s.owner),
            "target_type": "Organization",
            "repository_selection": "all",
            "access_tokens_url": format!("{origin}/api/v3/app/installations/{installation}/access_tokens"),
            "permissions": {"contents": "write", "pull_requests": "write", "metadata": "read"},
        }),
    )
}

fn repo_api(s: &mut State, req: &CloudRequest, rest: &[&str]) -> Reply {
    s.refresh();
    let m = req.method.as_str();
    match (m, rest) {
        ("GET", []) => Reply::json(200, &s.repo_json()),
        ("GET", ["branches", branch @ ..]) => {
            let branch = branch.join("/");
            match branch_sha(&s.repo, &branch) {
                Some(sha) => Reply::json(
                    200,
                    &json!({"name": branch, "commit": {"sha": sha}, "protected": false}),
                ),
                None => error(404, "Branch not found", DOCS),
            }
        }
        ("GET", ["pulls"]) => list_pulls(s, req),
        ("POST", ["pulls"]) => create_pull(s, req),
        ("GET", ["pulls", n]) => match s.pull_index(n) {
            Some(i) => Reply::json(200, &s.pr_json(&s.pulls[i])),
            None => not_found(),
        },
        ("PATCH", ["pulls", n]) => match s.pull_index(n) {
            Some(i) => update_pull(s, req, i),
            None => not_found(),
        },
        ("PATCH", ["issues", n]) => match s.pull_index(n) {
            Some(i) => update_issue(s, req, i),
            None => not_found(),
        },
        (_, ["issues", n, "labels", name @ ..]) => match s.pull_index(n) {
            Some(i) => labels(s, req, i, &name.join("/")),
            None => not_found(),
        },
        ("POST" | "DELETE", ["pulls", n, "requested_reviewers"]) => match s.pull_index(n) {
            Some(i) => {
                let Some(b) = json_body(req) else {
                    return error(400, "Problems parsing JSON", DOCS);
                };
                let who = string_list(&b["reviewers"]);
                let p = &mut s.pulls[i];
                if m == "POST" {
                    for w in who {
                        if !p.reviewers.contains(&w) {
                            p.reviewers.push(w);
                        }
                    }
                } else {
                    p.reviewers.retain(|r| !who.contains(r));
                }
                p.updated = now_secs();
                let status = if m == "POST" { 201 } else { 200 };
                Reply::json(status, &s.pr_json(&s.pulls[i]))
            }
            None => not_found(),
        },
        ("POST" | "DELETE", ["issues", n, "assignees"]) => match s.pull_index(n) {
            Some(i) => {
                let Some(b) = json_body(req) else {
                    return error(400, "Problems parsing JSON", DOCS);
                };
                let who = string_list(&b["assignees"]);
                let p = &mut s.pulls[i];
                if m == "POST" {
                    for w in who {
                        if !p.assignees.contains(&w) {
                            p.assignees.push(w);
                        }
                    }
                } else {
                    p.assignees.retain(|r| !who.contains(r));
                }
                p.updated = now_secs();
                let status = if m == "POST" { 201 } else { 200 };
                Reply::json(status, &s.issue_json(&s.pulls[i]))
            }
            None => not_found(),
        },
        ("DELETE", ["git", "refs", "heads", branch @ ..]) if !branch.is_empty() => {
            if delete_branch(&s.repo, &branch.join("/")) {
                s.refresh();
                Reply {
                    status: 204,
                    headers: Vec::new(),
                    body: Vec::new(),
                }
            } else {
                error(422, "Reference does not exist", REF_DOCS)
            }
        }
        _ => not_found(),
    }
}

fn list_pulls(s: &State, req: &CloudRequest) -> Reply {
    let state = req.query("state").unwrap_or_else(|| "open".into());
    if !["open", "closed", "all"].contains(&state.as_str()) {
        return validation(
            json!([{"resource": "PullRequest", "field": "state", "code": "invalid"}]),
            "https://docs.github.com/rest/pulls/pulls#list-pull-requests",
        );
    }
    // `owner:branch`; without the owner GitHub ignores the filter.
    let head = req.query("head").and_then(|h| {
        h.split_once(':')
            .map(|(o, b)| (o.to_string(), b.to_string()))
    });
    let base = req.query("base").filter(|b| !b.is_empty());
    let oldest_first = req.query("direction").as_deref() == Some("asc");
    let mut ordered: Vec<&Pr> = s.pulls.iter().collect();
    if !oldest_first {
        ordered.reverse();
    }
    let items: Vec<Value> = ordered
        .into_iter()
        .filter(|p| state == "all" || (state == "open") == p.open)
        .filter(|p| {
            head.as_ref()
                .is_none_or(|(o, b)| o.eq_ignore_ascii_case(&s.owner) && *b == p.head)
        })
        .filter(|p| base.as_ref().is_none_or(|b| *b == p.base))
        .map(|p| s.pr_json(p))
        .collect();
    let page: Page = paginate(req, items, "page", "per_page", 30, 100);
    let mut r = Reply::json(200, &Value::Array(page.items.clone()));
    if let Some(link) = page.link(req, &s.origin(), "page") {
        r = r.with_header("Link", &link);
    }
    r
}

/// `o:branch` or `branch` as the head of this repository's owner.
fn own_branch(s: &State, head: &str) -> Option<String> {
    match head.split_once(':') {
        Some((o, b)) if o.eq_ignore_ascii_case(&s.owner) => Some(b.to_string()),
        Some(_) => None,
        None => Some(head.to_string()),
    }
}

fn create_pull(s: &mut State, req: &CloudRequest) -> Reply {
    let Some(b) = json_body(req) else {
        return error(400, "Problems parsing JSON", CREATE_DOCS);
    };
    let text = |k: &str| b[k].as_str().map(String::from).filter(|t| !t.is_empty());
    let missing: Vec<Value> = ["title", "head", "base"]
        .into_iter()
        .filter(|k| text(k).is_none())
        .map(|k| json!({"resource": "PullRequest", "code": "missing_field", "field": k}))
        .collect();
    if !missing.is_empty() {
        return validation(Value::Array(missing), CREATE_DOCS);
    }
    let (title, head_field, base) = (
        text("title").unwrap_or_default(),
        text("head").unwrap_or_default(),
        text("base").unwrap_or_default(),
    );
    let head = own_branch(s, &head_field).unwrap_or_default();
    let Some(sha) = branch_sha(&s.repo, &head) else {
        return validation(
            json!([{"resource": "PullRequest", "field": "head", "code": "invalid"}]),
            CREATE_DOCS,
        );
    };
    if branch_sha(&s.repo, &base).is_none() {
        return validation(
            json!([{"resource": "PullRequest", "field": "base", "code": "invalid"}]),
            CREATE_DOCS,
        );
    }
    if s.pulls.iter().any(|p| p.open && p.head == head) {
        return validation(
            json!([{"resource": "PullRequest", "code": "custom",
                "message": format!("A pull request already exists for {}:{head}.", s.owner)}]),
            CREATE_DOCS,
        );
    }
    if commits_ahead(&s.repo, &base, &head) == 0 {
        return validation(
            json!([{"resource": "PullRequest", "code": "custom",
                "message": format!("No commits between {base} and {head}")}]),
            CREATE_DOCS,
        );
    }
    let number = s.pulls.len() as u64 + 1;
    let now = now_secs();
    s.pulls.push(Pr {
        number,
        id: 1_000_000 + number,
        node_id: format!("PR_kwDOtestkit{number}"),
        title,
        body: b["body"].as_str().map(String::from),
        draft: b["draft"].as_bool().unwrap_or(false),
        head,
        base,
        sha,
        open: true,
        merged: false,
        labels: Vec::new(),
        reviewers: Vec::new(),
        assignees: Vec::new(),
        auto_merge: None,
        created: now,
        updated: now,
        closed: None,
    });
    let p = &s.pulls[s.pulls.len() - 1];
    Reply::json(201, &s.pr_json(p)).with_header(
        "Location",
        &format!(
            "{}/api/v3/repos/{}/{}/pulls/{number}",
            s.origin(),
            s.owner,
            s.name
        ),
    )
}

fn update_pull(s: &mut State, req: &CloudRequest, i: usize) -> Reply {
    let Some(b) = json_body(req) else {
        return error(400, "Problems parsing JSON", UPDATE_DOCS);
    };
    let invalid = |field: &str| {
        validation(
            json!([{"resource": "PullRequest", "field": field, "code": "invalid"}]),
            UPDATE_DOCS,
        )
    };
    let state = b["state"].as_str();
    if state.is_some_and(|st| st != "open" && st != "closed") {
        return invalid("state");
    }
    if let Some(base) = b["base"].as_str()
        && branch_sha(&s.repo, base).is_none()
    {
        return invalid("base");
    }
    let reopen = state == Some("open") && !s.pulls[i].open;
    if reopen {
        let head = s.pulls[i].head.clone();
        if branch_sha(&s.repo, &head).is_none() {
            return invalid("state");
        }
        if s.pulls.iter().any(|p| p.open && p.head == head) {
            return validation(
                json!([{"resource": "PullRequest", "code": "custom",
                    "message": format!("A pull request already exists for {}:{head}.", s.owner)}]),
                UPDATE_DOCS,
            );
        }
    }
    let now = now_secs();
    let repo = s.repo.clone();
    let p = &mut s.pulls[i];
    if let Some(t) = b["title"].as_str() {
        p.title = t.to_string();
    }
    if b.get("body").is_some() {
        p.body = b["body"].as_str().map(String::from);
    }
    if let Some(base) = b["base"].as_str() {
        p.base = base.to_string();
    }
    match state {
        Some("closed") if p.open => {
            p.open = false;
            p.closed = Some(now);
        }
        Some("open") if reopen => {
            p.open = true;
            p.closed = None;
            p.sha = branch_sha(&repo, &p.head).unwrap_or_default();
        }
        _ => {}
    }
    p.updated = now;
    Reply::json(200, &s.pr_json(&s.pulls[i]))
}

/// `PATCH /issues/{n}` on a PR: `labels` and `assignees` replace, `title`,
/// `body`, `state` as on the pull; answers the issue.
fn update_issue(s: &mut State, req: &CloudRequest, i: usize) -> Reply {
    let Some(b) = json_body(req) else {
        return error(400, "Problems parsing JSON", DOCS);
    };
    let state = b["state"].as_str();
    if state.is_some_and(|st| st != "open" && st != "closed") {
        return validation(
            json!([{"resource": "Issue", "field": "state", "code": "invalid"}]),
            "https://docs.github.com/rest/issues/issues#update-an-issue",
        );
    }
    if b.get("title").is_some() || b.get("body").is_some() || state.is_some() {
        let r = update_pull(s, req, i);
        if r.status != 200 {
            return r;
        }
    }
    if b.get("labels").is_some_and(|l| !l.is_null()) {
        let wanted = string_list(&b["labels"]);
        for l in &wanted {
            if !s.labels.contains(l) {
                s.labels.push(l.clone());
            }
        }
        s.pulls[i].labels = wanted;
    }
    if b.get("assignees").is_some_and(|a| !a.is_null()) {
        s.pulls[i].assignees = string_list(&b["assignees"]);
    }
    s.pulls[i].updated = now_secs();
    Reply::json(200, &s.issue_json(&s.pulls[i]))
}

fn labels(s: &mut State, req: &CloudRequest, i: usize, name: &str) -> Reply {
    let m = req.method.as_str();
    if m == "DELETE" && !name.is_empty() {
        if !s.pulls[i].labels.iter().any(|l| l == name) {
            return error(
                404,
                "Label does not exist",
                "https://docs.github.com/rest/issues/labels#remove-a-label-from-an-issue",
            );
        }
        s.pulls[i].labels.retain(|l| l != name);
    } else if !name.is_empty() {
        return not_found();
    } else {
        match m {
            "PUT" | "POST" => {
                let Some(b) = json_body(req) else {
                    return error(400, "Problems parsing JSON", DOCS);
                };
                // `{labels: [..]}` or, as GitHub also takes, a bare array.
                let wanted = if b.is_array() {
                    string_list(&b)
                } else {
                    string_list(&b["labels"])
                };
                for l in &wanted {
                    if !s.labels.contains(l) {
                        s.labels.push(l.clone());
                    }
                }
                let p = &mut s.pulls[i];
                if m == "PUT" {
                    p.labels.clear();
                }
                for l in wanted {
                    if !p.labels.contains(&l) {
                        p.labels.push(l);
                    }
                }
            }
            "DELETE" => s.pulls[i].labels.clear(),
            "GET" => {}
            _ => return not_found(),
        }
    }
    s.pulls[i].updated = now_secs();
    if m == "DELETE" && name.is_empty() {
        return Reply {
            status: 204,
            headers: Vec::new(),
            body: Vec::new(),
        };
    }
    let list: Vec<Value> = s.pulls[i].labels.iter().map(|l| s.label_json(l)).collect();
    Reply::json(200, &Value::Array(list))
}

/// The GraphQL endpoint: only `enablePullRequestAutoMerge`.
fn graphql(s: &mut State, req: &CloudRequest) -> Reply {
    let Some(b) = json_body(req) else {
        return Reply::json(
            200,
            &json!({"errors": [{"message": "Problems parsing JSON"}]}),
        );
    };
    let query = b["query"].as_str().unwrap_or_default();
    if !query.contains("enablePullRequestAutoMerge") {
        return Reply::json(
            200,
            &json!({"errors": [{"message": "stand-in: only the enablePullRequestAutoMerge mutation is served"}]}),
        );
    }
    let arg = |name: &str| -> Option<String> {
        let at = query.find(&format!("{name}:"))? + name.len() + 1;
        let v = query[at..].trim_start();
        if let Some(var) = v.strip_prefix('$') {
            let var: String = var
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let val = &b["variables"][var.as_str()];
            return val.as_str().map(String::from);
        }
        if let Some(lit) = v.strip_prefix('"') {
            return lit.split('"').next().map(String::from);
        }
        Some(
            v.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect(),
        )
    };
    // `input: $input` passes the whole input object as a variable.
    let input_var = b["variables"]
        .as_object()
        .and_then(|vars| vars.values().find(|v| v.get("pullRequestId").is_some()))
        .cloned();
    let id = arg("pullRequestId").or_else(|| {
        input_var
            .as_ref()
            .and_then(|v| v["pullRequestId"].as_str().map(String::from))
    });
    let method = arg("mergeMethod")
        .or_else(|| {
            input_var
                .as_ref()
                .and_then(|v| v["mergeMethod"].as_str().map(String::from))
        })
        .unwrap_or_else(|| "MERGE".into());
    let Some(i) = id
        .as_ref()
        .and_then(|id| s.pulls.iter().position(|p| p.node_id == *id))
    else {
        let id = id.unwrap_or_default();
        return Reply::json(
            200,
            &json!({
                "data": {"enablePullRequestAutoMerge": null},
                "errors": [{
                    "type": "NOT_FOUND",
                    "path": ["enablePullRequestAutoMerge"],
                    "locations": [{"line": 1, "column": 1}],
                    "message": format!("Could not resolve to a node with the global id of '{id}'"),
                }],
            }),
        );
    };
    let now = now_secs();
    let p = &mut s.pulls[i];
    p.auto_merge = Some(method.clone());
    p.updated = now;
    Reply::json(
        200,
        &json!({"data": {"enablePullRequestAutoMerge": {
            "clientMutationId": null,
            "pullRequest": {
                "id": p.node_id,
                "number": p.number,
                "autoMergeRequest": {"enabledAt": rfc3339(now), "mergeMethod": method},
            },
        }}}),
    )
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
    let allowed = basic_credentials(req).is_some_and(|(user, password)| {
        s.tokens.contains(&password)
            || (user == "x-access-token"
                && s.installation_tokens
                    .get(&password)
                    .is_some_and(|exp| *exp > now_secs()))
    });
    if !allowed {
        return git_challenge("GitHub");
    }
    serve_git(&s.repo, req, body, rest)
}

/// The PKCS#1 `RSAPublicKey` DER ring verifies with, from an SPKI or
/// PKCS#1 public key PEM.
fn rsa_public_key_der(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let label = pem.lines().next()?.trim();
    let b64: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    match label {
        "-----BEGIN RSA PUBLIC KEY-----" => Some(der),
        "-----BEGIN PUBLIC KEY-----" => {
            // SEQUENCE { AlgorithmIdentifier, BIT STRING { 0 unused bits, RSAPublicKey } }
            let (outer, _) = der_item(&der, 0x30)?;
            let (_, after_alg) = der_item(outer, 0x30)?;
            let (bits, _) = der_item(after_alg, 0x03)?;
            bits.strip_prefix(&[0u8]).map(<[u8]>::to_vec)
        }
        _ => None,
    }
}

/// The contents of the DER item at the start of `b` with this tag, and what follows.
fn der_item(b: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *b.first()? != tag {
        return None;
    }
    let first = *b.get(1)? as usize;
    let (len, start) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    Some((b.get(start..start + len)?, b.get(start + len..)?))
}

/// An app JWT as a GitHub App signs it: RS256 over `{iat, exp, iss}` with
/// `iss` the app id as a string, signed with a PKCS#1 or PKCS#8 private
/// key PEM. Panics on a key ring cannot read (test helper).
pub fn github_app_jwt(private_key_pem: &str, app_id: u64, iat: u64, exp: u64) -> String {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let label = private_key_pem.lines().next().unwrap_or_default().trim();
    let body: String = private_key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("private key PEM base64");
    let key = if label == "-----BEGIN RSA PRIVATE KEY-----" {
        ring::signature::RsaKeyPair::from_der(&der)
    } else {
        ring::signature::RsaKeyPair::from_pkcs8(&der)
    }
    .expect("RSA private key");
    let signing_input = format!(
        "{}.{}",
        b64(json!({"alg": "RS256", "typ": "JWT"}).to_string().as_bytes()),
        b64(json!({"iat": iat, "exp": exp, "iss": app_id.to_string()})
            .to_string()
            .as_bytes())
    );
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .expect("RSA signing");
    format!("{signing_input}.{}", b64(&sig))
}
