//! The forge stand-ins driven by the real `curl` and `git` CLIs: every
//! success and refusal the PR engine's clients will meet.

use serde_json::{Value, json};
use std::process::Command;
use tagwarden_testkit::{
    BareRepo, GITHUB_APP_KEY, GITLAB_PROJECT_ID, GitHubStandIn, GitLabStandIn, GiteaStandIn,
    OTHER_RSA_KEY, TempDir, git, github_app_jwt,
};

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `curl -i` with these headers and an optional JSON body.
fn curl(method: &str, url: &str, headers: &[&str], body: Option<&str>) -> Resp {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "-X", method, "-H", "Expect:"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    cmd.arg(url);
    let out = cmd.output().expect("run curl");
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer from {url}: {raw}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_string(),
    }
}

/// A repository with `main` and the head branches given, each one commit ahead.
fn repo_with_branches(branches: &[&str]) -> BareRepo {
    let repo = BareRepo::new("main", &[("apps/podinfo.yaml", "image: podinfo:6.0.0\n")]);
    for b in branches {
        // From main, as the engine builds head branches.
        git(&repo.path(), &["branch", b, "main"]);
        repo.commit_files(
            b,
            &[(
                "apps/podinfo.yaml",
                &format!("image: podinfo:6.1.0 # {b}\n"),
            )],
            "update podinfo",
        );
    }
    repo
}

/// The `key` string of each element of a JSON array.
fn strings(v: &Value, key: &str) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x[key].as_str().unwrap_or_default().to_string())
        .collect()
}

fn rev(repo: &BareRepo, refname: &str) -> String {
    git(&repo.path(), &["rev-parse", refname])
}

const AUTH: &str = "Authorization: Bearer ghp_good";

fn github(branches: &[&str]) -> (BareRepo, GitHubStandIn) {
    let repo = repo_with_branches(branches);
    let gh = GitHubStandIn::start(repo.root(), "acme", "podinfo");
    gh.add_token("ghp_good");
    (repo, gh)
}

#[test]
fn github_refuses_bad_or_missing_token_and_missing_user_agent() {
    let (_repo, gh) = github(&[]);
    let url = format!("{}/repos/acme/podinfo/pulls", gh.api_url());
    for auth in ["Authorization: Bearer ghp_wrong", "X-None: 1"] {
        let r = curl("GET", &url, &[auth], None);
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["message"], "Bad credentials");
        assert_eq!(
            r.json()["documentation_url"],
            "https://docs.github.com/rest"
        );
    }
    // `token T` is as good as `Bearer T`.
    let r = curl("GET", &url, &["Authorization: token ghp_good"], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!([]));
    let r = curl("GET", &url, &[AUTH, "User-Agent:"], None);
    assert_eq!(r.status, 403);
    assert!(
        r.body
            .starts_with("Request forbidden by administrative rules")
    );
    let r = curl(
        "GET",
        &format!("{}/repos/acme/other/pulls", gh.api_url()),
        &[AUTH],
        None,
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "Not Found");
}

#[test]
fn github_creates_lists_and_updates_a_pull_request() {
    let (repo, gh) = github(&["image-updates/podinfo"]);
    let api = gh.api_url();
    let pulls = format!("{api}/repos/acme/podinfo/pulls");
    let r = curl(
        "POST",
        &pulls,
        &[AUTH],
        Some(
            r#"{"title":"Update podinfo","head":"acme:image-updates/podinfo","base":"main","body":"| file |","draft":true}"#,
        ),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let pr = r.json();
    let port = gh.port();
    assert_eq!(pr["number"], 1);
    assert_eq!(pr["state"], "open");
    assert_eq!(pr["draft"], true);
    assert_eq!(pr["title"], "Update podinfo");
    assert_eq!(pr["body"], "| file |");
    assert_eq!(
        pr["html_url"],
        format!("http://127.0.0.1:{port}/acme/podinfo/pull/1")
    );
    assert_eq!(pr["url"], format!("{api}/repos/acme/podinfo/pulls/1"));
    assert_eq!(pr["head"]["ref"], "image-updates/podinfo");
    assert_eq!(pr["head"]["label"], "acme:image-updates/podinfo");
    assert_eq!(pr["head"]["sha"], rev(&repo, "image-updates/podinfo"));
    assert_eq!(pr["base"]["ref"], "main");
    assert_eq!(pr["merged"], false);
    assert!(pr["node_id"].as_str().is_some_and(|n| n.starts_with("PR_")));

    // A second PR for one head is refused as GitHub does.
    let r = curl(
        "POST",
        &pulls,
        &[AUTH],
        Some(r#"{"title":"again","head":"image-updates/podinfo","base":"main"}"#),
    );
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["errors"],
        json!([{"resource":"PullRequest","code":"custom","message":"A pull request already exists for acme:image-updates/podinfo."}])
    );
    assert_eq!(r.json()["message"], "Validation Failed");

    // The list filters by `owner:branch`, state and base.
    let r = curl(
        "GET",
        &format!("{pulls}?state=open&head=acme:image-updates/podinfo&base=main"),
        &[AUTH],
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json().as_array().map(Vec::len), Some(1));
    assert_eq!(r.header("Link"), None);
    let r = curl("GET", &format!("{pulls}?head=acme:other"), &[AUTH], None);
    assert_eq!(r.json(), json!([]));
    // Without `owner:` GitHub ignores the filter: every PR comes back.
    let r = curl("GET", &format!("{pulls}?head=other"), &[AUTH], None);
    assert_eq!(r.json().as_array().map(Vec::len), Some(1));
    let r = curl("GET", &format!("{pulls}?state=closed"), &[AUTH], None);
    assert_eq!(r.json(), json!([]));

    // Update, labels (replace then add), reviewers, assignees, close.
    let r = curl(
        "PATCH",
        &format!("{pulls}/1"),
        &[AUTH],
        Some(r#"{"title":"Update podinfo to 6.2.0","body":"new"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["title"], "Update podinfo to 6.2.0");
    let labels = format!("{api}/repos/acme/podinfo/issues/1/labels");
    let r = curl("PUT", &labels, &[AUTH], Some(r#"{"labels":["a","b"]}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = curl(
        "PUT",
        &labels,
        &[AUTH],
        Some(r#"{"labels":["image-update"]}"#),
    );
    assert_eq!(strings(&r.json(), "name"), ["image-update"]);
    let r = curl("POST", &labels, &[AUTH], Some(r#"{"labels":["auto"]}"#));
    assert_eq!(r.json().as_array().map(Vec::len), Some(2));
    let r = curl(
        "POST",
        &format!("{pulls}/1/requested_reviewers"),
        &[AUTH],
        Some(r#"{"reviewers":["alice"]}"#),
    );
    assert_eq!(r.status, 201);
    assert_eq!(
        r.json()["requested_reviewers"],
        json!([{"login":"alice","id":5007,"type":"User"}])
    );
    let r = curl(
        "POST",
        &format!("{api}/repos/acme/podinfo/issues/1/assignees"),
        &[AUTH],
        Some(r#"{"assignees":["bob"]}"#),
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["assignees"][0]["login"], "bob");
    let r = curl("GET", &format!("{pulls}/1"), &[AUTH], None);
    assert_eq!(r.json()["labels"][1]["name"], "auto");
    let issue = format!("{api}/repos/acme/podinfo/issues/1");
    let r = curl(
        "PATCH",
        &issue,
        &[AUTH],
        Some(r#"{"labels":["x"],"assignees":["carol"]}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(strings(&r.json()["labels"], "name"), ["x"]);
    assert_eq!(strings(&r.json()["assignees"], "login"), ["carol"]);
    let r = curl(
        "PATCH",
        &issue,
        &[AUTH],
        Some(r#"{"labels":["image-update","auto"],"assignees":["bob"]}"#),
    );
    assert_eq!(
        r.json()["pull_request"]["url"],
        format!("{api}/repos/acme/podinfo/pulls/1")
    );
    let r = curl(
        "PATCH",
        &format!("{pulls}/1"),
        &[AUTH],
        Some(r#"{"state":"closed"}"#),
    );
    assert_eq!(r.json()["state"], "closed");
    let state = &gh.pulls()[0];
    assert_eq!(state.state, "closed");
    assert_eq!(state.labels, ["image-update", "auto"]);
    assert_eq!(state.reviewers, ["alice"]);
    assert_eq!(state.assignees, ["bob"]);
    let r = curl("GET", &format!("{pulls}?state=all"), &[AUTH], None);
    assert_eq!(r.json()[0]["state"], "closed");
    let r = curl("GET", &format!("{pulls}/9"), &[AUTH], None);
    assert_eq!(r.status, 404);
}

#[test]
fn github_refuses_pull_requests_the_repository_cannot_back() {
    let (repo, gh) = github(&["image-updates/podinfo"]);
    let pulls = format!("{}/repos/acme/podinfo/pulls", gh.api_url());
    let r = curl(
        "POST",
        &pulls,
        &[AUTH],
        Some(r#"{"title":"t","head":"acme:no-such-branch","base":"main"}"#),
    );
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["errors"],
        json!([{"resource":"PullRequest","field":"head","code":"invalid"}])
    );
    let r = curl(
        "POST",
        &pulls,
        &[AUTH],
        Some(r#"{"head":"image-updates/podinfo","base":"main"}"#),
    );
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["errors"],
        json!([{"resource":"PullRequest","code":"missing_field","field":"title"}])
    );
    let r = curl(
        "POST",
        &pulls,
        &[AUTH],
        Some(r#"{"title":"t","head":"image-updates/podinfo","base":"nope"}"#),
    );
    assert_eq!(r.json()["errors"][0]["field"], "base");
    let r = curl("POST", &pulls, &[AUTH], Some("{not json"));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "Problems parsing JSON");
    // A head that adds nothing to the base.
    git(&repo.path(), &["branch", "same-as-main", "main"]);
    let r = curl(
        "POST",
        &pulls,
        &[AUTH],
        Some(r#"{"title":"t","head":"same-as-main","base":"main"}"#),
    );
    assert_eq!(
        r.json()["errors"][0]["message"],
        "No commits between main and same-as-main"
    );
    assert!(gh.pulls().is_empty());
}

#[test]
fn github_paginates_pull_requests_with_link_headers() {
    let (_repo, gh) = github(&["b1", "b2", "b3"]);
    let pulls = format!("{}/repos/acme/podinfo/pulls", gh.api_url());
    for b in ["b1", "b2", "b3"] {
        let body = json!({"title": b, "head": b, "base": "main"}).to_string();
        assert_eq!(curl("POST", &pulls, &[AUTH], Some(&body)).status, 201);
    }
    let r = curl(
        "GET",
        &format!("{pulls}?state=open&per_page=2"),
        &[AUTH],
        None,
    );
    assert_eq!(strings(&r.json(), "title"), ["b3", "b2"], "newest first");
    assert_eq!(
        r.header("Link"),
        Some(
            format!(
                "<{pulls}?state=open&per_page=2&page=2>; rel=\"next\", <{pulls}?state=open&per_page=2&page=2>; rel=\"last\""
            )
            .as_str()
        )
    );
    let r = curl(
        "GET",
        &format!("{pulls}?state=open&per_page=2&page=2"),
        &[AUTH],
        None,
    );
    assert_eq!(r.json()[0]["title"], "b1");
    let asc = curl(
        "GET",
        &format!("{pulls}?per_page=2&direction=asc"),
        &[AUTH],
        None,
    );
    assert_eq!(strings(&asc.json(), "title"), ["b1", "b2"]);
    assert_eq!(
        r.header("Link"),
        Some(
            format!(
                "<{pulls}?state=open&per_page=2&page=1>; rel=\"first\", <{pulls}?state=open&per_page=2&page=1>; rel=\"prev\""
            )
            .as_str()
        )
    );
}

#[test]
fn github_branch_delete_removes_the_ref_and_closes_its_pull_request() {
    let (repo, gh) = github(&["image-updates/podinfo"]);
    let api = gh.api_url();
    let r = curl(
        "POST",
        &format!("{api}/repos/acme/podinfo/pulls"),
        &[AUTH],
        Some(r#"{"title":"t","head":"image-updates/podinfo","base":"main"}"#),
    );
    assert_eq!(r.status, 201);
    let sha = rev(&repo, "image-updates/podinfo");
    let del = format!("{api}/repos/acme/podinfo/git/refs/heads/image-updates/podinfo");
    let r = curl("DELETE", &del, &[AUTH], None);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        git(&repo.path(), &["branch", "--list", "image-updates/*"]),
        ""
    );
    let pr = &gh.pulls()[0];
    assert_eq!(
        (pr.state.as_str(), pr.sha.as_str()),
        ("closed", sha.as_str())
    );
    let r = curl("DELETE", &del, &[AUTH], None);
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["message"], "Reference does not exist");
}

#[test]
fn github_serves_git_push_with_the_token_and_the_pr_follows_its_head() {
    let (repo, gh) = github(&["image-updates/podinfo"]);
    let api = gh.api_url();
    let r = curl(
        "POST",
        &format!("{api}/repos/acme/podinfo/pulls"),
        &[AUTH],
        Some(r#"{"title":"t","head":"image-updates/podinfo","base":"main"}"#),
    );
    assert_eq!(r.status, 201);
    let work = TempDir::new("gh-work");
    let authed = gh.git_url().replace("http://", "http://anyone:ghp_good@");
    git(work.path(), &["clone", "-q", &authed, "w"]);
    let w = work.path().join("w");
    git(
        &w,
        &[
            "checkout",
            "-q",
            "-B",
            "image-updates/podinfo",
            "origin/main",
        ],
    );
    std::fs::write(w.join("apps/podinfo.yaml"), "image: podinfo:6.2.0\n").expect("write");
    git(&w, &["commit", "-qam", "podinfo 6.2.0"]);
    git(
        &w,
        &["push", "-q", "--force", "origin", "image-updates/podinfo"],
    );
    let pushed = git(&w, &["rev-parse", "HEAD"]);
    assert_eq!(rev(&repo, "image-updates/podinfo"), pushed);
    let r = curl(
        "GET",
        &format!("{api}/repos/acme/podinfo/pulls/1"),
        &[AUTH],
        None,
    );
    assert_eq!(r.json()["head"]["sha"], pushed);
    // A wrong password gets the Basic challenge, and git gives up.
    let bad = gh.git_url().replace("http://", "http://anyone:wrong@");
    let out = Command::new("git")
        .args(["ls-remote", &bad])
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("run git");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Authentication failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(gh.git_requests().len() >= 3);
    assert_eq!(gh.requests().len(), 2, "git is not in the API log");
}

#[test]
fn github_answers_injected_faults_then_recovers_and_logs_writes() {
    let (_repo, gh) = github(&["b1"]);
    let pulls = format!("{}/repos/acme/podinfo/pulls", gh.api_url());
    gh.fail_next(1, 500, vec![], r#"{"message":"Server Error"}"#);
    let r = curl("GET", &pulls, &[AUTH], None);
    assert_eq!(
        (r.status, r.json()["message"].as_str()),
        (500, Some("Server Error"))
    );
    gh.fail_next(
        2,
        403,
        vec![
            ("X-RateLimit-Remaining".into(), "0".into()),
            ("X-RateLimit-Reset".into(), "1796180470".into()),
        ],
        r#"{"message":"API rate limit exceeded for installation ID 1."}"#,
    );
    for _ in 0..2 {
        let r = curl("GET", &pulls, &[AUTH], None);
        assert_eq!(r.status, 403);
        assert_eq!(r.header("X-RateLimit-Remaining"), Some("0"));
        assert_eq!(r.header("X-RateLimit-Reset"), Some("1796180470"));
    }
    gh.fail_next(1, 429, vec![("Retry-After".into(), "7".into())], "{}");
    let r = curl(
        "POST",
        &pulls,
        &[AUTH],
        Some(r#"{"title":"t","head":"b1","base":"main"}"#),
    );
    assert_eq!((r.status, r.header("Retry-After")), (429, Some("7")));
    assert!(gh.pulls().is_empty(), "a faulted write changes nothing");
    let r = curl("GET", &pulls, &[AUTH], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-RateLimit-Limit"), Some("5000"));
    let r = curl(
        "POST",
        &pulls,
        &[AUTH],
        Some(r#"{"title":"t","head":"b1","base":"main"}"#),
    );
    assert_eq!(r.status, 201);
    // Only the write fails: the list before it is answered.
    gh.fail_matching(
        Some("PATCH"),
        "/api/v3/repos/acme/podinfo/pulls",
        1,
        502,
        vec![],
        "{}",
    );
    assert_eq!(curl("GET", &pulls, &[AUTH], None).status, 200);
    let patch = format!("{pulls}/1");
    assert_eq!(
        curl("PATCH", &patch, &[AUTH], Some(r#"{"title":"u"}"#)).status,
        502
    );
    assert_eq!(gh.pulls()[0].title, "t");
    assert_eq!(
        curl("PATCH", &patch, &[AUTH], Some(r#"{"title":"u"}"#)).status,
        200
    );
    let log = gh.requests();
    assert_eq!(log.len(), 9);
    assert!(log.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(log[0].method, "GET");
    assert_eq!(log[0].target, "/api/v3/repos/acme/podinfo/pulls");
    assert_eq!(log[0].header("authorization"), Some("Bearer ghp_good"));
    let writes = gh.writes();
    assert_eq!(writes.len(), 4);
    assert_eq!(writes[1].body, r#"{"title":"t","head":"b1","base":"main"}"#);
    assert_eq!(writes[3].method, "PATCH");
}

#[test]
fn github_graphql_enables_auto_merge_by_node_id() {
    let (_repo, gh) = github(&["b1"]);
    let api = gh.api_url();
    let r = curl(
        "POST",
        &format!("{api}/repos/acme/podinfo/pulls"),
        &[AUTH],
        Some(r#"{"title":"t","head":"b1","base":"main"}"#),
    );
    let node = r.json()["node_id"].as_str().expect("node_id").to_string();
    let graphql = format!("http://127.0.0.1:{}/api/graphql", gh.port());
    let q = json!({
        "query": "mutation($id: ID!) { enablePullRequestAutoMerge(input: {pullRequestId: $id, mergeMethod: SQUASH}) { pullRequest { id } } }",
        "variables": {"id": node},
    });
    let r = curl("POST", &graphql, &[AUTH], Some(&q.to_string()));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["data"]["enablePullRequestAutoMerge"]["pullRequest"]["id"],
        node
    );
    assert_eq!(gh.pulls()[0].auto_merge.as_deref(), Some("SQUASH"));
    let r = curl(
        "GET",
        &format!("{api}/repos/acme/podinfo/pulls/1"),
        &[AUTH],
        None,
    );
    assert_eq!(r.json()["auto_merge"]["merge_method"], "squash");
    let q = json!({"query": "mutation { enablePullRequestAutoMerge(input: {pullRequestId: \"PR_nope\"}) { clientMutationId } }"});
    let r = curl(
        "POST",
        &format!("{api}/graphql"),
        &[AUTH],
        Some(&q.to_string()),
    );
    assert_eq!(r.json()["errors"][0]["type"], "NOT_FOUND");
    assert_eq!(
        r.json()["errors"][0]["message"],
        "Could not resolve to a node with the global id of 'PR_nope'"
    );
    let r = curl(
        "POST",
        &graphql,
        &["Authorization: Bearer nope"],
        Some(&q.to_string()),
    );
    assert_eq!(r.status, 401);
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A JWT signed by the `openssl` CLI, independent of the stand-in's ring code.
fn openssl_jwt(private_pem: &str, claims: &Value) -> String {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    let dir = TempDir::new("jwt");
    let (key, data) = (dir.path().join("key.pem"), dir.path().join("input"));
    std::fs::write(&key, private_pem).expect("write key");
    std::fs::write(&data, &input).expect("write input");
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-binary", "-sign"])
        .arg(&key)
        .arg(&data)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("{input}.{}", b64(&out.stdout))
}

#[test]
fn github_app_jwt_becomes_an_installation_token_for_api_and_git() {
    let (_repo, gh) = github(&["b1"]);
    let installation = gh.add_app(4242, GITHUB_APP_KEY.public_pem);
    let api = gh.api_url();
    let t = now();
    let jwt = github_app_jwt(GITHUB_APP_KEY.private_pem, 4242, t - 60, t + 540);
    let bearer = format!("Authorization: Bearer {jwt}");
    let r = curl(
        "GET",
        &format!("{api}/repos/acme/podinfo/installation"),
        &[&bearer],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["id"], installation);
    let r = curl(
        "GET",
        &format!("{api}/orgs/acme/installation"),
        &[&bearer],
        None,
    );
    assert_eq!(r.json()["id"], installation);
    assert_eq!(
        r.json()["access_tokens_url"],
        format!("{api}/app/installations/{installation}/access_tokens")
    );
    let tokens_url = format!("{api}/app/installations/{installation}/access_tokens");
    let r = curl("POST", &tokens_url, &[&bearer], None);
    assert_eq!(r.status, 201, "{}", r.body);
    let token = r.json()["token"].as_str().expect("token").to_string();
    assert!(token.starts_with("ghs_"));
    let expires = r.json()["expires_at"]
        .as_str()
        .expect("expires_at")
        .to_string();
    assert_eq!(expires.len(), "2026-12-02T04:00:00Z".len());
    assert!(expires.ends_with('Z'));
    // The JWT itself is no good for repository calls; the token is.
    let pulls = format!("{api}/repos/acme/podinfo/pulls");
    assert_eq!(curl("GET", &pulls, &[&bearer], None).status, 401);
    let tok = format!("Authorization: token {token}");
    assert_eq!(curl("GET", &pulls, &[&tok], None).status, 200);
    // Git as x-access-token, and not under another user name.
    let work = TempDir::new("app-git");
    let url = gh
        .git_url()
        .replace("http://", &format!("http://x-access-token:{token}@"));
    git(work.path(), &["ls-remote", &url]);
    let other = gh
        .git_url()
        .replace("http://", &format!("http://someone:{token}@"));
    let out = Command::new("git")
        .args(["ls-remote", &other])
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("run git");
    assert!(!out.status.success());
    // Expired tokens are refused everywhere.
    gh.expire_installation_tokens();
    let r = curl("GET", &pulls, &[&tok], None);
    assert_eq!(
        (r.status, r.json()["message"].as_str()),
        (401, Some("Bad credentials"))
    );
    assert!(
        Command::new("git")
            .args(["ls-remote", &url])
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .expect("run git")
            .status
            .code()
            != Some(0)
    );
    assert_eq!(gh.issued_tokens(), [token]);
    assert!(gh.writes().is_empty(), "the token exchange is not a write");
    // A JWT made by openssl with iss as a number is as good.
    let jwt = openssl_jwt(
        GITHUB_APP_KEY.private_pem,
        &json!({"iat": t - 30, "exp": t + 300, "iss": 4242}),
    );
    let r = curl(
        "POST",
        &tokens_url,
        &[&format!("Authorization: Bearer {jwt}")],
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

#[test]
fn github_app_refuses_bad_signature_expired_and_overlong_jwts() {
    let (_repo, gh) = github(&[]);
    let installation = gh.add_app(4242, GITHUB_APP_KEY.public_pem);
    let url = format!(
        "{}/app/installations/{installation}/access_tokens",
        gh.api_url()
    );
    let t = now();
    let refused = |jwt: &str| {
        let r = curl(
            "POST",
            &url,
            &[&format!("Authorization: Bearer {jwt}")],
            None,
        );
        assert_eq!(r.status, 401, "{}", r.body);
        r.json()["message"].as_str().unwrap_or_default().to_string()
    };
    assert_eq!(
        refused(&github_app_jwt(
            OTHER_RSA_KEY.private_pem,
            4242,
            t - 60,
            t + 500
        )),
        "A JSON web token could not be decoded"
    );
    assert_eq!(
        refused("not.a.jwt"),
        "A JSON web token could not be decoded"
    );
    assert_eq!(refused("ghp_good"), "A JSON web token could not be decoded");
    // An app JWT goes as `Bearer`, not `token`.
    let good = github_app_jwt(GITHUB_APP_KEY.private_pem, 4242, t - 60, t + 500);
    let r = curl(
        "POST",
        &url,
        &[&format!("Authorization: token {good}")],
        None,
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        refused(&github_app_jwt(
            GITHUB_APP_KEY.private_pem,
            4242,
            t - 700,
            t - 100
        )),
        "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires"
    );
    assert_eq!(
        refused(&github_app_jwt(
            GITHUB_APP_KEY.private_pem,
            4242,
            t - 60,
            t + 900
        )),
        "'Expiration time' claim ('exp') is too far in the future"
    );
    assert_eq!(
        refused(&github_app_jwt(
            GITHUB_APP_KEY.private_pem,
            4242,
            t + 300,
            t + 600
        )),
        "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
    );
    assert_eq!(
        refused(&github_app_jwt(
            GITHUB_APP_KEY.private_pem,
            99,
            t - 60,
            t + 500
        )),
        "Integration not found"
    );
    // 60 s of clock skew on iat is allowed.
    let ok = github_app_jwt(GITHUB_APP_KEY.private_pem, 4242, t + 30, t + 500);
    let r = curl(
        "POST",
        &url,
        &[&format!("Authorization: Bearer {ok}")],
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = curl(
        "POST",
        &format!("{}/app/installations/1/access_tokens", gh.api_url()),
        &[&format!("Authorization: Bearer {ok}")],
        None,
    );
    assert_eq!(r.status, 404);
    assert!(gh.issued_tokens().len() == 1);
}

const GL: &str = "PRIVATE-TOKEN: glpat-good";

fn gitlab(branches: &[&str]) -> (BareRepo, GitLabStandIn) {
    let repo = repo_with_branches(branches);
    let gl = GitLabStandIn::start(repo.root(), "group/project");
    gl.add_token("glpat-good");
    (repo, gl)
}

#[test]
fn gitlab_refuses_bad_tokens_and_unknown_projects() {
    let (_repo, gl) = gitlab(&[]);
    let mrs = format!("{}/projects/group%2Fproject/merge_requests", gl.api_url());
    for auth in [
        "PRIVATE-TOKEN: nope",
        "Authorization: Bearer nope",
        "X-None: 1",
    ] {
        let r = curl("GET", &mrs, &[auth], None);
        assert_eq!(r.status, 401);
        assert_eq!(r.body, r#"{"message":"401 Unauthorized"}"#);
    }
    assert_eq!(curl("GET", &mrs, &[GL], None).status, 200);
    let r = curl("GET", &mrs, &["Authorization: Bearer glpat-good"], None);
    assert_eq!((r.status, r.body.as_str()), (200, "[]"));
    let by_id = format!(
        "{}/projects/{GITLAB_PROJECT_ID}/merge_requests",
        gl.api_url()
    );
    assert_eq!(curl("GET", &by_id, &[GL], None).status, 200);
    let r = curl(
        "GET",
        &format!("{}/projects/group%2Fother/merge_requests", gl.api_url()),
        &[GL],
        None,
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, r#"{"message":"404 Project Not Found"}"#)
    );
}

#[test]
fn gitlab_creates_lists_and_updates_merge_requests() {
    let (repo, gl) = gitlab(&["image-updates/podinfo"]);
    let alice = gl.add_user("alice");
    let bob = gl.add_user("bob");
    let api = gl.api_url();
    let r = curl("GET", &format!("{api}/users?username=alice"), &[GL], None);
    assert_eq!(r.json()[0]["id"], alice);
    assert_eq!(r.json()[0]["username"], "alice");
    assert_eq!(
        curl("GET", &format!("{api}/users?username=nobody"), &[GL], None).body,
        "[]"
    );
    let mrs = format!("{api}/projects/group%2Fproject/merge_requests");
    let create = json!({
        "source_branch": "image-updates/podinfo",
        "target_branch": "main",
        "title": "Draft: Update podinfo",
        "description": "| file |",
        "labels": "image-update,auto",
        "assignee_ids": [alice],
        "reviewer_ids": [bob],
        "remove_source_branch": true,
    });
    let r = curl("POST", &mrs, &[GL], Some(&create.to_string()));
    assert_eq!(r.status, 201, "{}", r.body);
    let mr = r.json();
    assert_eq!(mr["iid"], 1);
    assert_eq!(mr["state"], "opened");
    assert_eq!(mr["draft"], true);
    assert_eq!(mr["sha"], rev(&repo, "image-updates/podinfo"));
    assert_eq!(mr["labels"], json!(["image-update", "auto"]));
    assert_eq!(mr["assignees"][0]["username"], "alice");
    assert_eq!(mr["reviewers"][0]["username"], "bob");
    assert_eq!(mr["force_remove_source_branch"], true);
    assert_eq!(
        mr["web_url"],
        format!(
            "http://127.0.0.1:{}/group/project/-/merge_requests/1",
            gl.port()
        )
    );
    let r = curl("POST", &mrs, &[GL], Some(&create.to_string()));
    assert_eq!(r.status, 409);
    assert_eq!(
        r.body,
        r#"{"message":["Another open merge request already exists for this source branch: !1"]}"#
    );
    let r = curl(
        "GET",
        &format!("{mrs}?state=opened&source_branch=image-updates/podinfo&target_branch=main"),
        &[GL],
        None,
    );
    assert_eq!(r.json().as_array().map(Vec::len), Some(1));
    assert_eq!(r.header("X-Total"), Some("1"));
    assert_eq!(r.header("X-Next-Page"), Some(""));
    let r = curl(
        "GET",
        &format!("{mrs}?state=opened&source_branch=other"),
        &[GL],
        None,
    );
    assert_eq!(r.body, "[]");
    let r = curl(
        "PUT",
        &format!("{mrs}/1"),
        &[GL],
        Some(r#"{"title":"Update podinfo to 6.2.0","description":"new","labels":"image-update"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["draft"], false);
    assert_eq!(r.json()["labels"], json!(["image-update"]));
    let r = curl(
        "PUT",
        &format!("{mrs}/1"),
        &[GL],
        Some(r#"{"state_event":"close"}"#),
    );
    assert_eq!(r.json()["state"], "closed");
    assert!(r.json()["closed_at"].is_string());
    let state = &gl.pulls()[0];
    assert_eq!(
        (state.state.as_str(), state.title.as_str()),
        ("closed", "Update podinfo to 6.2.0")
    );
    assert_eq!(state.assignees, ["alice"]);
    assert_eq!(state.reviewers, ["bob"]);
    let r = curl("GET", &format!("{mrs}?state=opened"), &[GL], None);
    assert_eq!(r.body, "[]");
    // A closed MR does not block a new one.
    let r = curl("POST", &mrs, &[GL], Some(&create.to_string()));
    assert_eq!(r.json()["iid"], 2);
    let r = curl(
        "PUT",
        &format!("{mrs}/1"),
        &[GL],
        Some(r#"{"state_event":"reopen"}"#),
    );
    assert_eq!(r.status, 409);
    let r = curl("GET", &format!("{mrs}/7"), &[GL], None);
    assert_eq!(r.status, 404);
}

#[test]
fn gitlab_refuses_missing_branches_titles_and_empty_updates() {
    let (_repo, gl) = gitlab(&["b1"]);
    let mrs = format!("{}/projects/group%2Fproject/merge_requests", gl.api_url());
    let r = curl(
        "POST",
        &mrs,
        &[GL],
        Some(r#"{"source_branch":"b1","target_branch":"main"}"#),
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, r#"{"error":"title is missing"}"#)
    );
    let r = curl("POST", &mrs, &[GL], Some("{}"));
    assert_eq!(
        r.body,
        r#"{"error":"title is missing, source_branch is missing, target_branch is missing"}"#
    );
    let r = curl(
        "POST",
        &mrs,
        &[GL],
        Some(r#"{"source_branch":"nope","target_branch":"main","title":"t"}"#),
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, r#"{"message":{"source_branch":["does not exist"]}}"#)
    );
    let r = curl(
        "POST",
        &mrs,
        &[GL],
        Some(r#"{"source_branch":"b1","target_branch":"nope","title":"t"}"#),
    );
    assert_eq!(
        r.body,
        r#"{"message":{"target_branch":["does not exist"]}}"#
    );
    let r = curl(
        "POST",
        &mrs,
        &[GL],
        Some(r#"{"source_branch":"main","target_branch":"main","title":"t"}"#),
    );
    assert_eq!(r.status, 422);
    assert_eq!(
        r.body,
        r#"{"message":["You can't use same project/branch for source and target"]}"#
    );
    let r = curl(
        "POST",
        &mrs,
        &[GL],
        Some(r#"{"source_branch":"b1","target_branch":"main","title":"  "}"#),
    );
    assert_eq!(r.body, r#"{"error":"title is empty"}"#);
    // Form bodies work as well as JSON.
    let out = Command::new("curl")
        .args([
            "-s",
            "-H",
            GL,
            "-d",
            "source_branch=b1",
            "-d",
            "target_branch=main",
            "-d",
            "title=form",
            "-d",
            "labels=x,y",
        ])
        .arg(&mrs)
        .output()
        .expect("run curl");
    let mr: Value = serde_json::from_slice(&out.stdout).expect("MR JSON");
    assert_eq!(
        (mr["title"].as_str(), mr["labels"].clone()),
        (Some("form"), json!(["x", "y"]))
    );
    let r = curl("PUT", &format!("{mrs}/1"), &[GL], Some("{}"));
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .is_some_and(|e| e.ends_with("at least one parameter must be provided"))
    );
    let r = curl(
        "PUT",
        &format!("{mrs}/1"),
        &[GL],
        Some(r#"{"state_event":"shut"}"#),
    );
    assert_eq!(
        r.body,
        r#"{"error":"state_event does not have a valid value"}"#
    );
}

#[test]
fn gitlab_paginates_with_x_headers_and_link() {
    let (_repo, gl) = gitlab(&["b1", "b2", "b3"]);
    let mrs = format!("{}/projects/group%2Fproject/merge_requests", gl.api_url());
    for b in ["b1", "b2", "b3"] {
        let body = json!({"source_branch": b, "target_branch": "main", "title": b}).to_string();
        assert_eq!(curl("POST", &mrs, &[GL], Some(&body)).status, 201);
    }
    let r = curl(
        "GET",
        &format!("{mrs}?state=opened&per_page=2"),
        &[GL],
        None,
    );
    assert_eq!(strings(&r.json(), "title"), ["b3", "b2"]);
    let h = |k: &str| r.header(k).map(String::from);
    assert_eq!(
        (
            h("X-Page"),
            h("X-Per-Page"),
            h("X-Next-Page"),
            h("X-Prev-Page"),
            h("X-Total"),
            h("X-Total-Pages")
        ),
        (
            Some("1".into()),
            Some("2".into()),
            Some("2".into()),
            Some(String::new()),
            Some("3".into()),
            Some("2".into())
        )
    );
    assert_eq!(
        h("Link"),
        Some(format!(
            "<{mrs}?state=opened&per_page=2&page=2>; rel=\"next\", <{mrs}?state=opened&per_page=2&page=1>; rel=\"first\", <{mrs}?state=opened&per_page=2&page=2>; rel=\"last\""
        ))
    );
    let r = curl(
        "GET",
        &format!("{mrs}?state=opened&per_page=2&page=2"),
        &[GL],
        None,
    );
    assert_eq!(strings(&r.json(), "title"), ["b1"]);
    assert_eq!(r.header("X-Next-Page"), Some(""));
    assert_eq!(r.header("X-Prev-Page"), Some("1"));
}

#[test]
fn gitlab_auto_merge_branch_delete_git_push_and_faults() {
    let (repo, gl) = gitlab(&["image-updates/podinfo"]);
    let api = gl.api_url();
    let mrs = format!("{api}/projects/group%2Fproject/merge_requests");
    let body = r#"{"source_branch":"image-updates/podinfo","target_branch":"main","title":"t"}"#;
    assert_eq!(curl("POST", &mrs, &[GL], Some(body)).status, 201);
    let r = curl(
        "PUT",
        &format!("{mrs}/1/merge"),
        &[GL],
        Some(r#"{"merge_when_pipeline_succeeds":true}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["merge_when_pipeline_succeeds"], true);
    assert_eq!(r.json()["state"], "opened");
    assert_eq!(
        gl.pulls()[0].auto_merge.as_deref(),
        Some("merge_when_pipeline_succeeds")
    );

    // Git as oauth2 with the token; the MR follows a force-push.
    let work = TempDir::new("gl-work");
    let url = gl.git_url().replace("http://", "http://oauth2:glpat-good@");
    git(work.path(), &["clone", "-q", &url, "w"]);
    let w = work.path().join("w");
    git(
        &w,
        &[
            "checkout",
            "-q",
            "-B",
            "image-updates/podinfo",
            "origin/main",
        ],
    );
    std::fs::write(w.join("apps/podinfo.yaml"), "image: podinfo:6.3.0\n").expect("write");
    git(&w, &["commit", "-qam", "podinfo 6.3.0"]);
    git(
        &w,
        &["push", "-q", "--force", "origin", "image-updates/podinfo"],
    );
    let r = curl("GET", &format!("{mrs}/1"), &[GL], None);
    assert_eq!(r.json()["sha"], git(&w, &["rev-parse", "HEAD"]));

    let branch =
        format!("{api}/projects/group%2Fproject/repository/branches/image-updates%2Fpodinfo");
    assert_eq!(
        curl("GET", &branch, &[GL], None).json()["name"],
        "image-updates/podinfo"
    );
    let r = curl("DELETE", &branch, &[GL], None);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        git(&repo.path(), &["branch", "--list", "image-updates/*"]),
        ""
    );
    let r = curl("DELETE", &branch, &[GL], None);
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, r#"{"message":"404 Branch Not Found"}"#)
    );

    gl.fail_next(
        2,
        503,
        vec![("Retry-After".into(), "3".into())],
        r#"{"message":"503"}"#,
    );
    assert_eq!(
        curl("GET", &mrs, &[GL], None).header("Retry-After"),
        Some("3")
    );
    assert_eq!(
        curl("PUT", &format!("{mrs}/1"), &[GL], Some(r#"{"title":"x"}"#)).status,
        503
    );
    assert_eq!(gl.pulls()[0].title, "t");
    assert_eq!(curl("GET", &mrs, &[GL], None).status, 200);
    let writes: Vec<String> = gl
        .writes()
        .iter()
        .map(|r| format!("{} {}", r.method, r.target))
        .collect();
    assert_eq!(
        writes,
        [
            "POST /api/v4/projects/group%2Fproject/merge_requests",
            "PUT /api/v4/projects/group%2Fproject/merge_requests/1/merge",
            "DELETE /api/v4/projects/group%2Fproject/repository/branches/image-updates%2Fpodinfo",
            "DELETE /api/v4/projects/group%2Fproject/repository/branches/image-updates%2Fpodinfo",
            "PUT /api/v4/projects/group%2Fproject/merge_requests/1",
        ]
    );
    assert!(!gl.git_requests().is_empty());
}

const GT: &str = "Authorization: token gitea-good";

fn gitea(branches: &[&str]) -> (BareRepo, GiteaStandIn) {
    let repo = repo_with_branches(branches);
    let gt = GiteaStandIn::start(repo.root(), "acme", "podinfo");
    gt.add_token("gitea-good");
    (repo, gt)
}

#[test]
fn gitea_refuses_bad_tokens() {
    let (_repo, gt) = gitea(&[]);
    let pulls = format!("{}/repos/acme/podinfo/pulls", gt.api_url());
    for auth in ["Authorization: token nope", "X-None: 1"] {
        let r = curl("GET", &pulls, &[auth], None);
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["message"], "token is required");
        assert_eq!(
            r.json()["url"],
            format!("http://127.0.0.1:{}/api/swagger", gt.port())
        );
    }
    assert_eq!(curl("GET", &pulls, &[GT], None).body, "[]");
    assert_eq!(
        curl("GET", &pulls, &["Authorization: Bearer gitea-good"], None).status,
        200
    );
    let r = curl(
        "GET",
        &format!("{}/repos/acme/other/pulls", gt.api_url()),
        &[GT],
        None,
    );
    assert_eq!(
        (r.status, r.json()["message"].as_str()),
        (404, Some("The target couldn't be found."))
    );
}

#[test]
fn gitea_creates_lists_and_edits_pull_requests_with_label_ids() {
    let (repo, gt) = gitea(&["image-updates/podinfo"]);
    let auto = gt.add_label("auto");
    let upd = gt.add_label("image-update");
    let api = gt.api_url();
    let r = curl(
        "GET",
        &format!("{api}/repos/acme/podinfo/labels"),
        &[GT],
        None,
    );
    assert_eq!(strings(&r.json(), "name"), ["auto", "image-update"]);
    assert_eq!(r.json()[0]["id"], auto);
    assert_eq!(r.header("X-Total-Count"), Some("2"));
    let pulls = format!("{api}/repos/acme/podinfo/pulls");
    let create = json!({
        "head": "image-updates/podinfo", "base": "main", "title": "Update podinfo",
        "body": "| file |", "labels": [upd, 999], "assignees": ["alice"],
    });
    let r = curl("POST", &pulls, &[GT], Some(&create.to_string()));
    assert_eq!(r.status, 201, "{}", r.body);
    let pr = r.json();
    assert_eq!(pr["number"], 1);
    assert_eq!(pr["state"], "open");
    assert_eq!(pr["head"]["ref"], "image-updates/podinfo");
    assert_eq!(pr["head"]["sha"], rev(&repo, "image-updates/podinfo"));
    assert_eq!(pr["base"]["ref"], "main");
    assert_eq!(
        pr["labels"],
        json!([{"id": upd, "name": "image-update", "exclusive": false, "is_archived": false, "color": "ededed", "description": "", "url": format!("{api}/repos/acme/podinfo/labels/{upd}")}])
    );
    assert_eq!(pr["assignees"][0]["login"], "alice");
    assert_eq!(
        pr["html_url"],
        format!("http://127.0.0.1:{}/acme/podinfo/pulls/1", gt.port())
    );
    let r = curl("POST", &pulls, &[GT], Some(&create.to_string()));
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json()["message"],
        "pull request already exists for these targets [id: 3001, issue_id: 1, head_repo_id: 1, base_repo_id: 1, head_branch: image-updates/podinfo, base_branch: main]"
    );
    let r = curl(
        "GET",
        &format!("{pulls}/main/image-updates/podinfo"),
        &[GT],
        None,
    );
    assert_eq!(r.json()["number"], 1);
    let r = curl(
        "POST",
        &format!("{pulls}/1/requested_reviewers"),
        &[GT],
        Some(r#"{"reviewers":["bob"]}"#),
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.json()[0]["state"], "REQUEST_REVIEW");
    assert_eq!(r.json()[0]["user"]["login"], "bob");
    let r = curl(
        "PATCH",
        &format!("{pulls}/1"),
        &[GT],
        Some(
            &json!({"title": "Update podinfo to 6.2.0", "body": "new", "labels": [auto, upd]})
                .to_string(),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        strings(&r.json()["labels"], "name"),
        ["auto", "image-update"]
    );
    let r = curl(
        "PUT",
        &format!("{api}/repos/acme/podinfo/issues/1/labels"),
        &[GT],
        Some(r#"{"labels":["image-update"]}"#),
    );
    assert_eq!(strings(&r.json(), "name"), ["image-update"]);
    let r = curl(
        "PATCH",
        &format!("{pulls}/1"),
        &[GT],
        Some(r#"{"state":"closed"}"#),
    );
    assert_eq!(r.json()["state"], "closed");
    let state = &gt.pulls()[0];
    assert_eq!(state.labels, ["image-update"]);
    assert_eq!(state.reviewers, ["bob"]);
    assert_eq!(
        (state.state.as_str(), state.title.as_str()),
        ("closed", "Update podinfo to 6.2.0")
    );
    assert_eq!(curl("GET", &pulls, &[GT], None).body, "[]");
    let r = curl("GET", &format!("{pulls}?state=closed"), &[GT], None);
    assert_eq!(r.json()[0]["number"], 1);
}

#[test]
fn gitea_refuses_missing_branches_titles_and_empty_heads() {
    let (_repo, gt) = gitea(&["b1"]);
    let pulls = format!("{}/repos/acme/podinfo/pulls", gt.api_url());
    let r = curl(
        "POST",
        &pulls,
        &[GT],
        Some(r#"{"head":"nope","base":"main","title":"t"}"#),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "The target couldn't be found.");
    let r = curl(
        "POST",
        &pulls,
        &[GT],
        Some(r#"{"head":"b1","base":"nope","title":"t"}"#),
    );
    assert_eq!(r.status, 404);
    let r = curl(
        "POST",
        &pulls,
        &[GT],
        Some(r#"{"head":"b1","base":"main"}"#),
    );
    assert_eq!(
        (r.status, r.json()["message"].as_str()),
        (422, Some("[Title]: Required"))
    );
    let r = curl(
        "POST",
        &pulls,
        &[GT],
        Some(r#"{"head":"main","base":"main","title":"t"}"#),
    );
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["message"],
        "Invalid PullRequest: There are no changes between the head and the base"
    );
    assert!(gt.pulls().is_empty());
}

#[test]
fn gitea_paginates_deletes_branches_serves_git_and_faults() {
    let (repo, gt) = gitea(&["b1", "b2", "b3"]);
    let api = gt.api_url();
    let pulls = format!("{api}/repos/acme/podinfo/pulls");
    for b in ["b1", "b2", "b3"] {
        let body = json!({"head": b, "base": "main", "title": b}).to_string();
        assert_eq!(curl("POST", &pulls, &[GT], Some(&body)).status, 201);
    }
    let r = curl("GET", &format!("{pulls}?state=open&limit=2"), &[GT], None);
    assert_eq!(strings(&r.json(), "title"), ["b3", "b2"]);
    assert_eq!(r.header("X-Total-Count"), Some("3"));
    assert_eq!(
        r.header("Link"),
        Some(
            format!("<{pulls}?state=open&limit=2&page=2>; rel=\"next\", <{pulls}?state=open&limit=2&page=2>; rel=\"last\"")
                .as_str()
        )
    );
    let r = curl(
        "GET",
        &format!("{pulls}?state=open&limit=2&page=2"),
        &[GT],
        None,
    );
    assert_eq!(strings(&r.json(), "title"), ["b1"]);

    // Git with the token as password; the PR follows a force-push.
    let work = TempDir::new("gt-work");
    let url = gt
        .git_url()
        .replace("http://", "http://tagwarden:gitea-good@");
    git(work.path(), &["clone", "-q", &url, "w"]);
    let w = work.path().join("w");
    git(&w, &["checkout", "-q", "-B", "b1", "origin/main"]);
    std::fs::write(w.join("apps/podinfo.yaml"), "image: podinfo:7.0.0\n").expect("write");
    git(&w, &["commit", "-qam", "podinfo 7.0.0"]);
    git(&w, &["push", "-q", "--force", "origin", "b1"]);
    let r = curl("GET", &format!("{pulls}/1"), &[GT], None);
    assert_eq!(r.json()["head"]["sha"], git(&w, &["rev-parse", "HEAD"]));

    let r = curl(
        "POST",
        &format!("{pulls}/2/merge"),
        &[GT],
        Some(r#"{"Do":"squash","merge_when_checks_succeed":true}"#),
    );
    assert_eq!((r.status, r.body.as_str()), (201, ""));
    assert_eq!(gt.pulls()[1].auto_merge.as_deref(), Some("squash"));

    let del = format!("{api}/repos/acme/podinfo/branches/b1");
    assert_eq!(curl("DELETE", &del, &[GT], None).status, 204);
    assert_eq!(git(&repo.path(), &["branch", "--list", "b1"]), "");
    assert_eq!(gt.pulls()[0].state, "closed");
    let r = curl("DELETE", &del, &[GT], None);
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json()["errors"],
        json!(["branch does not exist [name: b1]"])
    );

    gt.fail_next(1, 500, vec![], r#"{"message":"internal"}"#);
    assert_eq!(
        curl(
            "PATCH",
            &format!("{pulls}/3"),
            &[GT],
            Some(r#"{"title":"x"}"#)
        )
        .status,
        500
    );
    assert_eq!(gt.pulls()[2].title, "b3");
    gt.fail_next(1, 429, vec![("Retry-After".into(), "5".into())], "{}");
    assert_eq!(
        curl("GET", &pulls, &[GT], None).header("Retry-After"),
        Some("5")
    );
    assert_eq!(curl("GET", &pulls, &[GT], None).status, 200);
    assert_eq!(gt.writes().len(), 7);
    assert!(
        gt.requests()
            .iter()
            .all(|r| r.path().starts_with("/api/v1/"))
    );
}

#[test]
fn forges_merge_by_hand_fast_forwards_the_base_and_marks_the_pr_merged() {
    let (repo, gh) = github(&["b1"]);
    let pulls = format!("{}/repos/acme/podinfo/pulls", gh.api_url());
    let r = curl(
        "POST",
        &pulls,
        &[AUTH],
        Some(r#"{"title":"t","head":"b1","base":"main"}"#),
    );
    assert_eq!(r.status, 201);
    assert!(gh.merge_pull(1));
    assert!(!gh.merge_pull(1), "already merged");
    assert_eq!(rev(&repo, "main"), rev(&repo, "b1"));
    let r = curl("GET", &format!("{pulls}/1"), &[AUTH], None);
    assert_eq!(
        (r.json()["state"].as_str(), r.json()["merged"].as_bool()),
        (Some("closed"), Some(true))
    );
    assert!(r.json()["merged_at"].is_string());
    assert!(gh.pulls()[0].merged);

    let (repo, gl) = gitlab(&["b1"]);
    let mrs = format!("{}/projects/group%2Fproject/merge_requests", gl.api_url());
    let body = r#"{"source_branch":"b1","target_branch":"main","title":"t"}"#;
    assert_eq!(curl("POST", &mrs, &[GL], Some(body)).status, 201);
    assert!(gl.merge_pull(1));
    assert_eq!(rev(&repo, "main"), rev(&repo, "b1"));
    let r = curl("GET", &format!("{mrs}?state=merged"), &[GL], None);
    assert_eq!(r.json()[0]["state"], "merged");

    let (repo, gt) = gitea(&["b1"]);
    let pulls = format!("{}/repos/acme/podinfo/pulls", gt.api_url());
    let body = r#"{"head":"b1","base":"main","title":"t"}"#;
    assert_eq!(curl("POST", &pulls, &[GT], Some(body)).status, 201);
    assert!(gt.merge_pull(1));
    assert_eq!(rev(&repo, "main"), rev(&repo, "b1"));
    let r = curl("GET", &format!("{pulls}/1"), &[GT], None);
    assert_eq!(
        (r.json()["state"].as_str(), r.json()["merged"].as_bool()),
        (Some("closed"), Some(true))
    );
}
