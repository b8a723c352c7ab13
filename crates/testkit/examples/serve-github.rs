//! For bench/pull-request.sh: the test registry with `team/web` (1.0.0,
//! 1.1.0), a bare repository whose `main` marks that image at 1.0.0, and
//! the GitHub stand-in serving it (token `bench-token`). Prints one line,
//! `REGISTRY_HOST GIT_URL API_URL BARE_GIT_DIR`, then serves until stdin closes.

use std::io::Read;
use tagwarden_testkit::{BareRepo, GitHubStandIn, Registry, RegistryAuth};

fn main() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/web", &["1.0.0", "1.1.0"], None);
    let image = format!("{}/team/web", reg.host());
    let deploy = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: apps\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: {image}:1.0.0 # {{\"$imagepolicy\": \"flux-system:web\"}}\n"
    );
    let bare = BareRepo::new("main", &[("apps/web.yaml", &deploy), ("README", "bench\n")]);
    tagwarden_testkit::git(&bare.path(), &["config", "http.receivepack", "true"]);
    let gh = GitHubStandIn::start(bare.root(), "org", "repo");
    gh.add_token("bench-token");
    println!(
        "{} {} {} {}",
        reg.host(),
        gh.git_url(),
        gh.api_url(),
        bare.path().display()
    );
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
