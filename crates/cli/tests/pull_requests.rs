//! Pull-request mode end to end with `tagwarden run --once`: the real
//! docker-registry, and forge stand-ins (GitHub, GitLab, Gitea REST) backed
//! by a real bare repository served over Git smart HTTP, so head branches
//! really exist and each request's commits are the repository's.

use std::path::Path;
use std::process::{Command, Output};
use tagwarden_testkit::{
    BareRepo, GITHUB_APP_KEY, GitHubStandIn, GitLabStandIn, GiteaStandIn, Registry, RegistryAuth,
    TempDir,
};

const TOKEN: &str = "ghp_t0ken-for-tests";

fn run(file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagwarden"))
        .args(["run", "--once", "-f"])
        .arg(file)
        .output()
        .expect("run tagwarden")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn deployment(image: &str, tag: &str, policy: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {policy}\n  namespace: apps\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: {image}:{tag} # {{\"$imagepolicy\": \"flux-system:{policy}\"}}\n"
    )
}

/// The manifests: a GitRepository with the token Secret, one repository
/// and policy per image, and an automation with `annotations`.
fn manifests(git_url: &str, secret: &str, images: &[(&str, String)], annotations: &str) -> String {
    let mut m = format!(
        r#"apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {{name: flux-system, namespace: flux-system}}
spec: {{interval: 1h, ref: {{branch: main}}, url: "{git_url}", secretRef: {{name: forge-token}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: forge-token, namespace: flux-system}}
{secret}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata:
  name: apps
  namespace: flux-system
  annotations:
{annotations}
spec:
  interval: 1h
  sourceRef: {{kind: GitRepository, name: flux-system}}
  git:
    checkout: {{ref: {{branch: main}}}}
    commit: {{author: {{name: fluxbot, email: fluxbot@example.com}}}}
  update: {{path: ./apps, strategy: Setters}}
"#
    );
    for (name, image) in images {
        m.push_str(&format!(
            "---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: {name}, namespace: flux-system}}\nspec: {{image: \"{image}\", interval: 1h}}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: {name}, namespace: flux-system}}\nspec: {{imageRepositoryRef: {{name: {name}}}, policy: {{semver: {{range: \">=1.0.0\"}}}}}}\n"
        ));
    }
    m
}

/// A bare repository whose smart-HTTP server accepts pushes.
fn pushable(bare: BareRepo) -> BareRepo {
    tagwarden_testkit::git(&bare.path(), &["config", "http.receivepack", "true"]);
    bare
}

/// The automation's annotations for pull-request mode on `forge` at `api`,
/// then `extra`, indented for the manifest.
fn annotations(forge: &str, api: &str, extra: &[(&str, &str)]) -> String {
    let mut a = format!(
        "    tagwarden.io/pull-request: \"true\"\n    tagwarden.io/forge: {forge}\n    tagwarden.io/forge-api-url: \"{api}\"\n"
    );
    for (k, v) in extra {
        a.push_str(&format!("    tagwarden.io/pull-request-{k}: \"{v}\"\n"));
    }
    a
}

fn token_secret() -> String {
    format!("stringData: {{username: git, password: \"{TOKEN}\"}}")
}

fn write(dir: &Path, content: &str) -> std::path::PathBuf {
    let p = dir.join("flux.yaml");
    std::fs::write(&p, content).expect("write");
    p
}

fn ok(out: &Output) -> String {
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    stdout
}

#[test]
fn github_first_pr_update_idempotence_and_superseded_close() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/web", &["1.0.0", "1.1.0"], None);
    let image = format!("{}/team/web", reg.host());
    let bare = pushable(BareRepo::new(
        "main",
        &[("apps/web.yaml", &deployment(&image, "1.0.0", "web"))],
    ));
    let gh = GitHubStandIn::start(bare.root(), "org", "repo");
    gh.add_token(TOKEN);
    let dir = TempDir::new("pr-github");
    let annotations = annotations(
        "github",
        &gh.api_url(),
        &[("labels", "dependencies, images"), ("reviewers", "alice")],
    );
    let file = write(
        dir.path(),
        &manifests(
            &gh.git_url(),
            &token_secret(),
            &[("web", image.clone())],
            &annotations,
        ),
    );
    let main_before = bare.log("main", "%H");

    // A dry run first: the plan, and nothing written anywhere.
    let out = Command::new(env!("CARGO_BIN_EXE_tagwarden"))
        .args(["run", "--once", "--dry-run", "-f"])
        .arg(&file)
        .output()
        .expect("dry run");
    let stdout = ok(&out);
    assert!(
        stdout.contains(&format!(
            "would open a pull request 'Update {image} to 1.1.0' from 'tagwarden/apps' into 'main'"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("+          image: "), "{stdout}");
    assert!(gh.writes().is_empty() && gh.pulls().is_empty());
    assert!(
        tagwarden_testkit::git(&bare.path(), &["branch", "--list", "tagwarden/apps"])
            .trim()
            .is_empty()
    );

    // First run: the head branch is pushed, one PR opened into main.
    let stdout = ok(&run(&file));
    assert!(stdout.contains("pull request #1 opened: "), "{stdout}");
    assert_eq!(bare.log("main", "%H"), main_before, "main is not pushed to");
    assert_eq!(
        bare.show("tagwarden/apps", "apps/web.yaml") + "\n",
        deployment(&image, "1.1.0", "web")
    );
    let pulls = gh.pulls();
    assert_eq!(pulls.len(), 1);
    let pr = &pulls[0];
    assert_eq!(
        (pr.head.as_str(), pr.base.as_str(), pr.state.as_str()),
        ("tagwarden/apps", "main", "open")
    );
    assert_eq!(pr.title, format!("Update {image} to 1.1.0"));
    assert_eq!(pr.labels, ["dependencies", "images"]);
    assert_eq!(pr.reviewers, ["alice"]);
    assert_eq!(pr.sha, bare.log("tagwarden/apps", "%H")[0]);
    assert!(
        pr.body.contains("| File | Object | Old | New | Policy |")
            && pr.body.contains("| web.yaml | Deployment apps/web |"),
        "{}",
        pr.body
    );

    // Nothing new, three times: no API write, no push.
    let writes = gh.writes().len();
    let head = bare.log("tagwarden/apps", "%H");
    for _ in 0..3 {
        let stdout = ok(&run(&file));
        assert!(stdout.contains("pull request #1 is up to date"), "{stdout}");
    }
    assert_eq!(gh.writes().len(), writes, "no API write without news");
    assert_eq!(
        bare.log("tagwarden/apps", "%H"),
        head,
        "no push without news"
    );

    // A newer tag: the same PR, rebuilt head, new title.
    reg.publish("team/web", &["1.2.0"], None);
    let stdout = ok(&run(&file));
    assert!(stdout.contains("pull request #1 updated"), "{stdout}");
    let pulls = gh.pulls();
    assert_eq!(pulls.len(), 1, "still one PR");
    assert_eq!(pulls[0].title, format!("Update {image} to 1.2.0"));
    assert_eq!(
        bare.log("tagwarden/apps", "%P")[0],
        bare.log("main", "%H")[0],
        "the head is the base plus one commit"
    );

    // Someone sets the value on main by hand: the PR is superseded.
    bare.commit_files(
        "main",
        &[("apps/web.yaml", &deployment(&image, "1.2.0", "web"))],
        "by hand",
    );
    let stdout = ok(&run(&file));
    assert!(
        stdout
            .contains("closed pull request #1 as superseded: 'main' already holds the new values"),
        "{stdout}"
    );
    assert_eq!(gh.pulls()[0].state, "closed");
    assert!(
        tagwarden_testkit::git(&bare.path(), &["branch", "--list", "tagwarden/apps"])
            .trim()
            .is_empty(),
        "the head branch is deleted"
    );
}

#[test]
fn per_policy_branches_and_a_github_app() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/web", &["1.0.0", "1.1.0"], None);
    reg.publish("team/api", &["1.0.0", "2.0.0"], None);
    let web = format!("{}/team/web", reg.host());
    let api = format!("{}/team/api", reg.host());
    let bare = pushable(BareRepo::new(
        "main",
        &[
            ("apps/web.yaml", &deployment(&web, "1.0.0", "web")),
            ("apps/api.yaml", &deployment(&api, "1.0.0", "api")),
        ],
    ));
    let gh = GitHubStandIn::start(bare.root(), "org", "repo");
    gh.add_app(4242, GITHUB_APP_KEY.public_pem);
    let dir = TempDir::new("pr-app");
    let key: String = GITHUB_APP_KEY
        .private_pem
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect();
    let secret = format!("stringData:\n  githubAppID: \"4242\"\n  githubAppPrivateKey: |\n{key}");
    let annotations = annotations(
        "github",
        &gh.api_url(),
        &[
            ("branch", "image-updates/{{ .Policy.Name }}"),
            ("draft", "true"),
            ("auto-merge", "true"),
        ],
    );
    let file = write(
        dir.path(),
        &manifests(
            &gh.git_url(),
            &secret,
            &[("web", web.clone()), ("api", api.clone())],
            &annotations,
        ),
    );
    let stdout = ok(&run(&file));
    let mut heads: Vec<String> = gh.pulls().iter().map(|p| p.head.clone()).collect();
    heads.sort();
    assert_eq!(
        heads,
        ["image-updates/api", "image-updates/web"],
        "{stdout}"
    );
    assert_eq!(
        bare.show("image-updates/web", "apps/web.yaml") + "\n",
        deployment(&web, "1.1.0", "web")
    );
    assert_eq!(
        bare.show("image-updates/web", "apps/api.yaml") + "\n",
        deployment(&api, "1.0.0", "api"),
        "one policy per branch"
    );
    assert!(
        !gh.issued_tokens().is_empty(),
        "an installation token was used"
    );
    assert!(
        gh.pulls().iter().all(|p| p.draft && p.auto_merge.is_some()),
        "{:?}",
        gh.pulls()
    );
    // The installation token pushed (git as x-access-token) and the key never shows.
    assert!(!stdout.contains("PRIVATE KEY"), "{stdout}");
}

#[test]
fn forge_failures_are_named_and_the_pushed_branch_stays() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/web", &["1.0.0", "1.1.0"], None);
    let image = format!("{}/team/web", reg.host());
    let bare = pushable(BareRepo::new(
        "main",
        &[("apps/web.yaml", &deployment(&image, "1.0.0", "web"))],
    ));
    let gh = GitHubStandIn::start(bare.root(), "org", "repo");
    gh.add_token(TOKEN);
    let dir = TempDir::new("pr-faults");
    let annotations = annotations("github", &gh.api_url(), &[]);
    let file = write(
        dir.path(),
        &manifests(
            &gh.git_url(),
            &token_secret(),
            &[("web", image.clone())],
            &annotations,
        ),
    );

    // 422 on create (after the push): the forge's words, the branch stays.
    gh.fail_matching(
        Some("POST"),
        "/api/v3/repos/org/repo/pulls",
        1,
        422,
        vec![],
        r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","field":"base","code":"invalid"}]}"#,
    );
    let out = run(&file);
    let stdout = text(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("pushed branch 'tagwarden/apps', but github API rejected opening the pull request (HTTP 422): Validation Failed; field 'base': invalid; the branch stays"),
        "{stdout}"
    );
    assert!(!bare.log("tagwarden/apps", "%H").is_empty());

    // A rate limit: reported with its wait, no request hammered.
    let before = gh.requests().len();
    gh.fail_next(
        1,
        403,
        vec![
            ("X-RateLimit-Remaining".into(), "0".into()),
            ("Retry-After".into(), "120".into()),
        ],
        r#"{"message":"API rate limit exceeded"}"#,
    );
    let stdout = text(&run(&file).stdout);
    assert!(
        stdout.contains(
            "github API rate limit reached for listing open pull requests: retry after 120s"
        ),
        "{stdout}"
    );
    assert_eq!(gh.requests().len(), before + 1, "one request, not retried");

    // 500s: retried twice, then reported.
    gh.fail_next(3, 500, vec![], r#"{"message":"boom"}"#);
    let stdout = text(&run(&file).stdout);
    assert!(
        stdout.contains("github API listing open pull requests: HTTP 500: boom"),
        "{stdout}"
    );

    // The API refuses the token (401): stalled until the credentials change.
    gh.fail_next(
        1,
        401,
        vec![],
        r#"{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}"#,
    );
    let stdout = text(&run(&file).stdout);
    assert!(
        stdout.contains("github API refused the credentials (HTTP 401) for listing open pull requests: Bad credentials"),
        "{stdout}"
    );
    assert!(!stdout.contains(TOKEN), "{stdout}");

    // A bad token: stalled, named, and the token never shows.
    let file = write(
        dir.path(),
        &manifests(
            &gh.git_url(),
            "stringData: {username: git, password: \"wrong-t0ken\"}",
            &[("web", image.clone())],
            &annotations,
        ),
    );
    // Git over HTTPS is the first to refuse it.
    let out = run(&file);
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(
        all.contains(
            "authentication failed: check the credentials in the GitRepository's secretRef"
        ),
        "{all}"
    );
    assert!(
        !all.contains("wrong-t0ken") && !all.contains(TOKEN),
        "{all}"
    );

    // After the faults, the next run opens the request for the branch that stayed.
    let file = write(
        dir.path(),
        &manifests(
            &gh.git_url(),
            &token_secret(),
            &[("web", image)],
            &annotations,
        ),
    );
    let stdout = ok(&run(&file));
    assert!(stdout.contains("pull request #1 opened"), "{stdout}");
}

/// A stand-in's requests as the test reads them, whichever forge it is.
type Pulls = Box<dyn Fn() -> Vec<tagwarden_testkit::ForgePull>>;
type Count = Box<dyn Fn() -> usize>;

#[test]
fn gitlab_and_gitea_merge_and_pull_requests() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/web", &["1.0.0", "1.1.0"], None);
    let image = format!("{}/team/web", reg.host());
    for (forge, newer) in [("gitlab", "1.3.0"), ("gitea", "1.4.0")] {
        let bare = pushable(BareRepo::new(
            "main",
            &[("apps/web.yaml", &deployment(&image, "1.0.0", "web"))],
        ));
        let dir = TempDir::new("pr-forge");
        let (api, git_url, pulls, writes): (String, String, Pulls, Count);
        let _keep: Box<dyn std::any::Any>;
        if forge == "gitlab" {
            let gl = GitLabStandIn::start(bare.root(), "org/repo");
            gl.add_token(TOKEN);
            api = gl.api_url();
            git_url = gl.git_url();
            let gl = std::rc::Rc::new(gl);
            let (a, b) = (gl.clone(), gl.clone());
            pulls = Box::new(move || a.pulls());
            writes = Box::new(move || b.writes().len());
            _keep = Box::new(gl);
        } else {
            let gt = GiteaStandIn::start(bare.root(), "org", "repo");
            gt.add_token(TOKEN);
            gt.add_label("images");
            api = gt.api_url();
            git_url = gt.git_url();
            let gt = std::rc::Rc::new(gt);
            let (a, b) = (gt.clone(), gt.clone());
            pulls = Box::new(move || a.pulls());
            writes = Box::new(move || b.writes().len());
            _keep = Box::new(gt);
        }
        let draft = if forge == "gitlab" { "true" } else { "false" };
        let annotations = annotations(forge, &api, &[("labels", "images"), ("draft", draft)]);
        let file = write(
            dir.path(),
            &manifests(
                &git_url,
                &token_secret(),
                &[("web", image.clone())],
                &annotations,
            ),
        );
        let noun = if forge == "gitlab" {
            "merge request"
        } else {
            "pull request"
        };
        let stdout = ok(&run(&file));
        assert!(
            stdout.contains(&format!("{noun} #1 opened")),
            "{forge}: {stdout}"
        );
        let p = pulls();
        assert_eq!(p.len(), 1, "{forge}");
        assert_eq!(
            (p[0].head.as_str(), p[0].base.as_str()),
            ("tagwarden/apps", "main"),
            "{forge}"
        );
        assert_eq!(p[0].labels, ["images"], "{forge}");
        if forge == "gitlab" {
            assert!(
                p[0].draft && p[0].title.starts_with("Draft: "),
                "{:?}",
                p[0]
            );
        }
        let before = writes();
        let stdout = ok(&run(&file));
        assert!(
            stdout.contains(&format!("{noun} #1 is up to date")),
            "{forge}: {stdout}"
        );
        assert_eq!(writes(), before, "{forge}: no write without news");
        reg.publish("team/web", &[newer], None);
        let stdout = ok(&run(&file));
        assert!(
            stdout.contains(&format!("{noun} #1 updated")),
            "{forge}: {stdout}"
        );
        assert_eq!(pulls().len(), 1, "{forge}: still one");
        assert_eq!(
            pulls()[0].title.trim_start_matches("Draft: "),
            format!("Update {image} to {newer}"),
            "{forge}"
        );
    }
}
