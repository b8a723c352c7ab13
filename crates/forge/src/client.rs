//! The REST clients: GitHub v3, GitLab v4, Gitea/Forgejo v1, over reqwest.
//! Errors carry the forge's own words (never a token); 5xx is retried
//! twice with a pause, a rate limit is reported with its wait, not waited.

use crate::{
    BoxFuture, Credential, Forge, ForgeError, ForgeKind, GitHubApp, Proposal, PullRequest, Target,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Pages read at most when looking for an open request.
const MAX_PAGES: usize = 20;
/// Response bodies larger than this are refused.
const MAX_BODY: usize = 8 << 20;

/// One client per process; installation tokens are cached until shortly
/// before they expire.
pub struct Http {
    client: reqwest::Client,
    app_tokens: Mutex<HashMap<(GitHubApp, String), (String, SystemTime)>>,
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}

struct Answer {
    headers: reqwest::header::HeaderMap,
    body: Value,
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Http {
    pub fn new() -> Http {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("tagwarden/", env!("CARGO_PKG_VERSION")))
            // A redirect would carry the token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Http {
            client,
            app_tokens: Mutex::default(),
        }
    }

    /// The token for API calls: the credential's, or an app installation's.
    async fn token(&self, t: &Target, c: &Credential) -> Result<String, ForgeError> {
        match c {
            Credential::Token(tok) => Ok(tok.clone()),
            Credential::GitHubApp(app) => self.installation_token(t, app).await,
        }
    }

    async fn installation_token(&self, t: &Target, app: &GitHubApp) -> Result<String, ForgeError> {
        let key = (app.clone(), t.project.clone());
        if let Some((tok, exp)) = self
            .app_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            && SystemTime::now() + Duration::from_secs(300) < *exp
        {
            return Ok(tok.clone());
        }
        let base = app
            .base_url
            .as_deref()
            .unwrap_or(&t.api)
            .trim_end_matches('/')
            .to_string();
        let jwt = crate::app::jwt(&app.app_id, &app.private_key_pem, now_secs())?;
        let bearer = format!("Bearer {jwt}");
        let id = match &app.installation_id {
            Some(id) => id.clone(),
            None => {
                let a = self
                    .send(
                        ForgeKind::GitHub,
                        reqwest::Method::GET,
                        &format!("{base}/repos/{}/installation", t.project),
                        &bearer,
                        None,
                        "the app's installation lookup",
                    )
                    .await?;
                match a.body.get("id") {
                    Some(Value::Number(n)) => n.to_string(),
                    Some(Value::String(s)) => s.clone(),
                    _ => {
                        return Err(malformed(
                            ForgeKind::GitHub,
                            "the installation lookup",
                            "no id",
                        ));
                    }
                }
            }
        };
        let a = self
            .send(
                ForgeKind::GitHub,
                reqwest::Method::POST,
                &format!("{base}/app/installations/{id}/access_tokens"),
                &bearer,
                Some(&json!({})),
                "the installation token",
            )
            .await?;
        let token = a
            .body
            .get("token")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(ForgeKind::GitHub, "the installation token", "no token"))?
            .to_string();
        let expires = a
            .body
            .get("expires_at")
            .and_then(Value::as_str)
            .and_then(tagwarden_api::time::Time::parse)
            .map_or(SystemTime::now() + Duration::from_secs(3000), |t| {
                t.system()
            });
        self.app_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (token.clone(), expires));
        Ok(token)
    }

    fn auth_header(kind: ForgeKind, token: &str) -> (&'static str, String) {
        match kind {
            ForgeKind::GitHub => ("Authorization", format!("Bearer {token}")),
            ForgeKind::GitLab => ("PRIVATE-TOKEN", token.to_string()),
            ForgeKind::Gitea => ("Authorization", format!("token {token}")),
        }
    }

    /// One API call with the token; `what` names it in errors.
    async fn call(
        &self,
        t: &Target,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Answer, ForgeError> {
        let (name, value) = Http::auth_header(t.kind, token);
        let url = format!("{}{path}", t.api);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = self
                .send_raw(t.kind, method.clone(), &url, name, &value, body, what)
                .await;
            match r {
                Err(ForgeError::Unavailable { .. }) if attempt < 3 => {
                    tokio::time::sleep(Duration::from_millis(250 * attempt)).await;
                }
                r => return r,
            }
        }
    }

    async fn send(
        &self,
        kind: ForgeKind,
        method: reqwest::Method,
        url: &str,
        authorization: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Answer, ForgeError> {
        self.send_raw(
            kind,
            method,
            url,
            "Authorization",
            authorization,
            body,
            what,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_raw(
        &self,
        kind: ForgeKind,
        method: reqwest::Method,
        url: &str,
        header: &str,
        value: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Answer, ForgeError> {
        let forge = kind.as_str();
        let mut req = self
            .client
            .request(method, url)
            .header(header, value)
            .header("Accept", "application/json");
        if kind == ForgeKind::GitHub {
            req = req
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28");
        }
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let mut resp = req.send().await.map_err(|e| ForgeError::Unavailable {
            forge,
            what: what.to_string(),
            message: format!("cannot connect: {}", chain(&e)),
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut raw = Vec::new();
        while let Some(c) = resp.chunk().await.map_err(|e| ForgeError::Unavailable {
            forge,
            what: what.to_string(),
            message: chain(&e),
        })? {
            if raw.len() + c.len() > MAX_BODY {
                return Err(malformed(kind, what, "the answer is too large"));
            }
            raw.extend_from_slice(&c);
        }
        let parsed: Value = if raw.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&raw).unwrap_or(Value::Null)
        };
        if (200..300).contains(&status) {
            return Ok(Answer {
                headers,
                body: parsed,
            });
        }
        let message = reason(&parsed, &raw);
        let header_num = |k: &str| {
            headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let exhausted = header_num("x-ratelimit-remaining") == Some(0)
            || header_num("ratelimit-remaining") == Some(0);
        if status == 429 || (status == 403 && (exhausted || header_num("retry-after").is_some())) {
            let wait = header_num("retry-after")
                .or_else(|| {
                    header_num("x-ratelimit-reset")
                        .or_else(|| header_num("ratelimit-reset"))
                        .map(|reset| reset.saturating_sub(now_secs()))
                })
                .unwrap_or(60)
                .clamp(1, 3600);
            return Err(ForgeError::RateLimited {
                forge,
                what: what.to_string(),
                retry_after_secs: wait,
            });
        }
        match status {
            401 | 403 => Err(ForgeError::Unauthorized {
                forge,
                status,
                what: what.to_string(),
                message,
            }),
            400 | 404 | 405 | 409 | 422 => Err(ForgeError::Invalid {
                forge,
                status,
                what: what.to_string(),
                message,
            }),
            _ => Err(ForgeError::Unavailable {
                forge,
                what: what.to_string(),
                message: format!("HTTP {status}: {message}"),
            }),
        }
    }
}

fn malformed(kind: ForgeKind, what: &str, why: &str) -> ForgeError {
    ForgeError::Unavailable {
        forge: kind.as_str(),
        what: what.to_string(),
        message: format!("malformed answer: {why}"),
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}

/// The forge's words: `message` (string, list or map: GitLab), GitHub's
/// `errors[]` (`field`, `code`, `message`).
fn reason(v: &Value, raw: &[u8]) -> String {
    let mut parts: Vec<String> = Vec::new();
    match v.get("message") {
        Some(Value::String(s)) => parts.push(s.clone()),
        Some(Value::Array(a)) => {
            parts.extend(a.iter().filter_map(|x| x.as_str().map(String::from)))
        }
        Some(Value::Object(o)) => {
            for (k, x) in o {
                parts.push(format!("{k} {}", x.to_string().trim_matches('"')));
            }
        }
        _ => {}
    }
    if let Some(Value::String(e)) = v.get("error") {
        parts.push(e.clone());
    }
    if let Some(errors) = v.get("errors").and_then(Value::as_array) {
        for e in errors {
            let field = e.get("field").and_then(Value::as_str);
            let msg = e
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| e.get("code").and_then(Value::as_str));
            match (field, msg) {
                (Some(f), Some(m)) => parts.push(format!("field '{f}': {m}")),
                (None, Some(m)) => parts.push(m.to_string()),
                (Some(f), None) => parts.push(format!("field '{f}'")),
                _ => {}
            }
        }
    }
    let text = if parts.is_empty() {
        String::from_utf8_lossy(raw).chars().take(200).collect()
    } else {
        parts.join("; ")
    };
    tagwarden_api::text::escape(&text.chars().take(400).collect::<String>(), false).into_owned()
}

fn pr_of(kind: ForgeKind, v: &Value) -> Option<PullRequest> {
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let labels = v
        .get("labels")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|l| {
                    l.as_str()
                        .or_else(|| l.get("name").and_then(Value::as_str))
                        .map(String::from)
                })
                .collect()
        })
        .unwrap_or_default();
    let (number, url, body) = match kind {
        ForgeKind::GitLab => (v.get("iid")?.as_u64()?, s("web_url"), s("description")),
        _ => (v.get("number")?.as_u64()?, s("html_url"), s("body")),
    };
    let mut title = s("title");
    // GitLab marks drafts in the title; compare what we wrote.
    if kind == ForgeKind::GitLab
        && let Some(t) = title.strip_prefix("Draft:")
    {
        title = t.trim_start().to_string();
    }
    Some(PullRequest {
        number,
        url,
        title,
        body,
        labels,
    })
}

/// The next page of a `Link` header, when there is one.
fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

impl Http {
    async fn find(
        &self,
        t: &Target,
        token: &str,
        head: &str,
        base: &str,
    ) -> Result<Option<PullRequest>, ForgeError> {
        let what = format!("listing open {}s", t.kind.noun());
        let p = &t.project;
        let mut path = match t.kind {
            ForgeKind::GitHub => {
                let owner = p.split('/').next().unwrap_or_default();
                format!(
                    "/repos/{p}/pulls?state=open&head={}&base={}&per_page=100",
                    enc(&format!("{owner}:{head}")),
                    enc(base)
                )
            }
            ForgeKind::GitLab => format!(
                "/projects/{}/merge_requests?state=opened&source_branch={}&target_branch={}&per_page=100",
                enc(p),
                enc(head),
                enc(base)
            ),
            ForgeKind::Gitea => format!("/repos/{p}/pulls?state=open&limit=50&page=1"),
        };
        for page in 1..=MAX_PAGES {
            let a = self
                .call(t, token, reqwest::Method::GET, &path, None, &what)
                .await?;
            let items = a
                .body
                .as_array()
                .ok_or_else(|| malformed(t.kind, &what, "not a list"))?;
            for item in items {
                let (h, b) = match t.kind {
                    ForgeKind::GitLab => (
                        item.get("source_branch").and_then(Value::as_str),
                        item.get("target_branch").and_then(Value::as_str),
                    ),
                    _ => (
                        item.pointer("/head/ref").and_then(Value::as_str),
                        item.pointer("/base/ref").and_then(Value::as_str),
                    ),
                };
                if h == Some(head) && b == Some(base) {
                    return Ok(pr_of(t.kind, item));
                }
            }
            // The next page: Link (all three), GitLab's X-Next-Page, or
            // Gitea's page counter while pages come back full.
            let next =
                next_link(&a.headers).and_then(|u| u.strip_prefix(&t.api).map(str::to_string));
            path = match (t.kind, next) {
                (_, Some(n)) => n,
                (ForgeKind::GitLab, None) => match a
                    .headers
                    .get("x-next-page")
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty())
                {
                    Some(n) => format!(
                        "/projects/{}/merge_requests?state=opened&source_branch={}&target_branch={}&per_page=100&page={n}",
                        enc(p),
                        enc(head),
                        enc(base)
                    ),
                    None => return Ok(None),
                },
                (ForgeKind::Gitea, None) if items.len() >= 50 => {
                    format!("/repos/{p}/pulls?state=open&limit=50&page={}", page + 1)
                }
                _ => return Ok(None),
            };
        }
        Ok(None)
    }

    /// GitLab user ids of usernames (reviewers, assignees).
    async fn gitlab_ids(
        &self,
        t: &Target,
        token: &str,
        names: &[String],
    ) -> Result<Vec<u64>, ForgeError> {
        let mut ids = Vec::new();
        for n in names {
            let a = self
                .call(
                    t,
                    token,
                    reqwest::Method::GET,
                    &format!("/users?username={}", enc(n)),
                    None,
                    "looking up a user",
                )
                .await?;
            match a.body.pointer("/0/id").and_then(Value::as_u64) {
                Some(id) => ids.push(id),
                None => {
                    return Err(ForgeError::Invalid {
                        forge: "gitlab",
                        status: 404,
                        what: "looking up a user".into(),
                        message: format!("no user '{n}'"),
                    });
                }
            }
        }
        Ok(ids)
    }

    /// Gitea label ids by name; names it does not have are an error.
    async fn gitea_labels(
        &self,
        t: &Target,
        token: &str,
        names: &[String],
    ) -> Result<Vec<u64>, ForgeError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let a = self
            .call(
                t,
                token,
                reqwest::Method::GET,
                &format!("/repos/{}/labels?limit=50", t.project),
                None,
                "listing labels",
            )
            .await?;
        let all = a.body.as_array().cloned().unwrap_or_default();
        names
            .iter()
            .map(|n| {
                all.iter()
                    .find(|l| l.get("name").and_then(Value::as_str) == Some(n))
                    .and_then(|l| l.get("id").and_then(Value::as_u64))
                    .ok_or_else(|| ForgeError::Invalid {
                        forge: "gitea",
                        status: 404,
                        what: "labels".into(),
                        message: format!("the repository has no label '{n}'"),
                    })
            })
            .collect()
    }

    async fn open(&self, t: &Target, token: &str, p: &Proposal) -> Result<PullRequest, ForgeError> {
        let what = format!("opening the {}", t.kind.noun());
        let proj = &t.project;
        let pr = match t.kind {
            ForgeKind::GitHub => {
                let a = self
                    .call(
                        t,
                        token,
                        reqwest::Method::POST,
                        &format!("/repos/{proj}/pulls"),
                        Some(&json!({"title": p.title, "head": p.head, "base": p.base, "body": p.body, "draft": p.draft})),
                        &what,
                    )
                    .await?;
                let pr =
                    pr_of(t.kind, &a.body).ok_or_else(|| malformed(t.kind, &what, "no number"))?;
                let n = pr.number;
                if !p.labels.is_empty() {
                    self.call(
                        t,
                        token,
                        reqwest::Method::POST,
                        &format!("/repos/{proj}/issues/{n}/labels"),
                        Some(&json!({"labels": p.labels})),
                        "adding labels",
                    )
                    .await?;
                }
                if !p.reviewers.is_empty() {
                    self.call(
                        t,
                        token,
                        reqwest::Method::POST,
                        &format!("/repos/{proj}/pulls/{n}/requested_reviewers"),
                        Some(&json!({"reviewers": p.reviewers})),
                        "requesting reviewers",
                    )
                    .await?;
                }
                if !p.assignees.is_empty() {
                    self.call(
                        t,
                        token,
                        reqwest::Method::POST,
                        &format!("/repos/{proj}/issues/{n}/assignees"),
                        Some(&json!({"assignees": p.assignees})),
                        "adding assignees",
                    )
                    .await?;
                }
                if p.auto_merge
                    && let Some(node) = a.body.get("node_id").and_then(Value::as_str)
                {
                    let graphql = match t.api.strip_suffix("/api/v3") {
                        Some(host) => format!("{host}/api/graphql"),
                        None => format!("{}/graphql", t.api),
                    };
                    let q = json!({
                        "query": "mutation($id: ID!) { enablePullRequestAutoMerge(input: {pullRequestId: $id}) { clientMutationId } }",
                        "variables": {"id": node},
                    });
                    let a = self
                        .send(
                            t.kind,
                            reqwest::Method::POST,
                            &graphql,
                            &format!("Bearer {token}"),
                            Some(&q),
                            "enabling auto-merge",
                        )
                        .await?;
                    if let Some(e) = a.body.pointer("/errors/0/message").and_then(Value::as_str) {
                        tracing::warn!(number = n, error = %e, "auto-merge not enabled");
                    }
                }
                PullRequest {
                    labels: p.labels.clone(),
                    ..pr
                }
            }
            ForgeKind::GitLab => {
                let title = if p.draft && !p.title.starts_with("Draft:") {
                    format!("Draft: {}", p.title)
                } else {
                    p.title.clone()
                };
                let mut body = json!({
                    "source_branch": p.head, "target_branch": p.base, "title": title,
                    "description": p.body, "labels": p.labels.join(","), "remove_source_branch": true,
                });
                if !p.assignees.is_empty() {
                    body["assignee_ids"] = json!(self.gitlab_ids(t, token, &p.assignees).await?);
                }
                if !p.reviewers.is_empty() {
                    body["reviewer_ids"] = json!(self.gitlab_ids(t, token, &p.reviewers).await?);
                }
                let a = self
                    .call(
                        t,
                        token,
                        reqwest::Method::POST,
                        &format!("/projects/{}/merge_requests", enc(proj)),
                        Some(&body),
                        &what,
                    )
                    .await?;
                let pr =
                    pr_of(t.kind, &a.body).ok_or_else(|| malformed(t.kind, &what, "no iid"))?;
                if p.auto_merge {
                    self.call(
                        t,
                        token,
                        reqwest::Method::PUT,
                        &format!("/projects/{}/merge_requests/{}/merge", enc(proj), pr.number),
                        Some(&json!({"merge_when_pipeline_succeeds": true})),
                        "setting merge when the pipeline succeeds",
                    )
                    .await?;
                }
                pr
            }
            ForgeKind::Gitea => {
                let labels = self.gitea_labels(t, token, &p.labels).await?;
                let a = self
                    .call(
                        t,
                        token,
                        reqwest::Method::POST,
                        &format!("/repos/{proj}/pulls"),
                        Some(&json!({"head": p.head, "base": p.base, "title": p.title, "body": p.body, "labels": labels, "assignees": p.assignees})),
                        &what,
                    )
                    .await?;
                let pr =
                    pr_of(t.kind, &a.body).ok_or_else(|| malformed(t.kind, &what, "no number"))?;
                if !p.reviewers.is_empty() {
                    self.call(
                        t,
                        token,
                        reqwest::Method::POST,
                        &format!("/repos/{proj}/pulls/{}/requested_reviewers", pr.number),
                        Some(&json!({"reviewers": p.reviewers})),
                        "requesting reviewers",
                    )
                    .await?;
                }
                pr
            }
        };
        Ok(pr)
    }

    async fn refresh(
        &self,
        t: &Target,
        token: &str,
        old: &PullRequest,
        p: &Proposal,
    ) -> Result<PullRequest, ForgeError> {
        let what = format!("updating {} #{}", t.kind.noun(), old.number);
        let proj = &t.project;
        let n = old.number;
        match t.kind {
            ForgeKind::GitHub => {
                self.call(
                    t,
                    token,
                    reqwest::Method::PATCH,
                    &format!("/repos/{proj}/pulls/{n}"),
                    Some(&json!({"title": p.title, "body": p.body})),
                    &what,
                )
                .await?;
                self.call(
                    t,
                    token,
                    reqwest::Method::PUT,
                    &format!("/repos/{proj}/issues/{n}/labels"),
                    Some(&json!({"labels": p.labels})),
                    "setting labels",
                )
                .await?;
            }
            ForgeKind::GitLab => {
                let title = if p.draft && !p.title.starts_with("Draft:") {
                    format!("Draft: {}", p.title)
                } else {
                    p.title.clone()
                };
                self.call(t, token, reqwest::Method::PUT, &format!("/projects/{}/merge_requests/{n}", enc(proj)), Some(&json!({"title": title, "description": p.body, "labels": p.labels.join(",")})), &what).await?;
            }
            ForgeKind::Gitea => {
                let labels = self.gitea_labels(t, token, &p.labels).await?;
                self.call(
                    t,
                    token,
                    reqwest::Method::PATCH,
                    &format!("/repos/{proj}/pulls/{n}"),
                    Some(&json!({"title": p.title, "body": p.body, "labels": labels})),
                    &what,
                )
                .await?;
            }
        }
        Ok(PullRequest {
            number: n,
            url: old.url.clone(),
            title: p.title.clone(),
            body: p.body.clone(),
            labels: p.labels.clone(),
        })
    }

    async fn shut(
        &self,
        t: &Target,
        token: &str,
        old: &PullRequest,
        head: &str,
    ) -> Result<(), ForgeError> {
        let what = format!("closing {} #{}", t.kind.noun(), old.number);
        let proj = &t.project;
        let n = old.number;
        let (close, close_body, delete) = match t.kind {
            ForgeKind::GitHub => (
                (reqwest::Method::PATCH, format!("/repos/{proj}/pulls/{n}")),
                json!({"state": "closed"}),
                format!("/repos/{proj}/git/refs/heads/{head}"),
            ),
            ForgeKind::GitLab => (
                (
                    reqwest::Method::PUT,
                    format!("/projects/{}/merge_requests/{n}", enc(proj)),
                ),
                json!({"state_event": "close"}),
                format!("/projects/{}/repository/branches/{}", enc(proj), enc(head)),
            ),
            ForgeKind::Gitea => (
                (reqwest::Method::PATCH, format!("/repos/{proj}/pulls/{n}")),
                json!({"state": "closed"}),
                format!("/repos/{proj}/branches/{head}"),
            ),
        };
        self.call(t, token, close.0, &close.1, Some(&close_body), &what)
            .await?;
        match self
            .call(
                t,
                token,
                reqwest::Method::DELETE,
                &delete,
                None,
                "deleting the head branch",
            )
            .await
        {
            // Already gone is what we wanted.
            Err(ForgeError::Invalid {
                status: 404 | 422, ..
            }) => Ok(()),
            r => r.map(|_| ()),
        }
    }
}

impl Forge for Http {
    fn find_open<'a>(
        &'a self,
        t: &'a Target,
        c: &'a Credential,
        head: &'a str,
        base: &'a str,
    ) -> BoxFuture<'a, Result<Option<PullRequest>, ForgeError>> {
        Box::pin(async move {
            let token = self.token(t, c).await?;
            self.find(t, &token, head, base).await
        })
    }

    fn create<'a>(
        &'a self,
        t: &'a Target,
        c: &'a Credential,
        p: &'a Proposal,
    ) -> BoxFuture<'a, Result<PullRequest, ForgeError>> {
        Box::pin(async move {
            let token = self.token(t, c).await?;
            self.open(t, &token, p).await
        })
    }

    fn update<'a>(
        &'a self,
        t: &'a Target,
        c: &'a Credential,
        old: &'a PullRequest,
        p: &'a Proposal,
    ) -> BoxFuture<'a, Result<PullRequest, ForgeError>> {
        Box::pin(async move {
            let token = self.token(t, c).await?;
            self.refresh(t, &token, old, p).await
        })
    }

    fn close<'a>(
        &'a self,
        t: &'a Target,
        c: &'a Credential,
        old: &'a PullRequest,
        head: &'a str,
    ) -> BoxFuture<'a, Result<(), ForgeError>> {
        Box::pin(async move {
            let token = self.token(t, c).await?;
            self.shut(t, &token, old, head).await
        })
    }

    fn git_login<'a>(
        &'a self,
        t: &'a Target,
        c: &'a Credential,
    ) -> BoxFuture<'a, Result<Option<(String, String)>, ForgeError>> {
        Box::pin(async move {
            match c {
                Credential::Token(_) => Ok(None),
                Credential::GitHubApp(app) => Ok(Some((
                    "x-access-token".to_string(),
                    self.installation_token(t, app).await?,
                ))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forge_error_words() {
        let v: Value = serde_json::from_str(r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","code":"custom","message":"A pull request already exists for o:b."}]}"#).expect("json");
        assert_eq!(
            reason(&v, b""),
            "Validation Failed; A pull request already exists for o:b."
        );
        let v: Value = serde_json::from_str(r#"{"message":["Another open merge request already exists for this source branch: !1"]}"#).expect("json");
        assert_eq!(
            reason(&v, b""),
            "Another open merge request already exists for this source branch: !1"
        );
        let v: Value = serde_json::from_str(r#"{"message":"Validation Failed","errors":[{"field":"head","code":"invalid","resource":"PullRequest"}]}"#).expect("json");
        assert_eq!(reason(&v, b""), "Validation Failed; field 'head': invalid");
        assert_eq!(reason(&Value::Null, b"oops\x1b"), "oops\\u{1b}");
    }
}
