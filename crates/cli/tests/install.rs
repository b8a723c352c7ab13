//! `tagwarden install`: the binary prints the manifests for the namespace
//! and image asked for, and refuses to run without `--export`.

use std::process::{Command, Output};
use yaml_rust2::YamlLoader;

fn tagwarden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagwarden"))
        .args(args)
        .output()
        .expect("run tagwarden")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn export_substitutes_namespace_and_image() {
    let out = tagwarden(&[
        "install",
        "--export",
        "--crds",
        "-n",
        "tagwarden-system",
        "--image",
        "example.com/t:1",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    let docs = YamlLoader::load_from_str(&yaml).expect("yaml");
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
            "Service"
        ]
    );
    assert_eq!(
        docs[3]["metadata"]["name"].as_str(),
        Some("tagwarden-system")
    );
    for d in &docs[4..] {
        let kind = d["kind"].as_str().expect("kind");
        let ns = d["metadata"]["namespace"].as_str();
        if kind.starts_with("Cluster") {
            assert_eq!(ns, None, "{kind}");
        } else {
            assert_eq!(ns, Some("tagwarden-system"), "{kind}");
        }
    }
    let deployment = &docs[9];
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"].as_str(),
        Some("example.com/t:1")
    );
    assert_eq!(
        docs[6]["subjects"][0]["namespace"].as_str(),
        Some("tagwarden-system")
    );
    // Nothing of the defaults is left behind.
    assert!(!yaml.contains("flux-system"), "{yaml}");
    assert!(!yaml.contains("ghcr.io/tagwarden"), "{yaml}");
}

#[test]
fn defaults_are_flux_system_and_the_versioned_image() {
    let out = tagwarden(&["install", "--export"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    let docs = YamlLoader::load_from_str(&yaml).expect("yaml");
    assert_eq!(
        docs[0]["kind"].as_str(),
        Some("ServiceAccount"),
        "no CRDs, no Namespace"
    );
    assert_eq!(
        docs[0]["metadata"]["namespace"].as_str(),
        Some("flux-system")
    );
    assert!(
        yaml.contains(&format!(
            "        image: ghcr.io/tagwarden/tagwarden:v{}\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{yaml}"
    );
    assert!(!yaml.contains("CustomResourceDefinition"));
}

#[test]
fn without_export_it_says_applying_comes_with_the_controller() {
    let out = tagwarden(&["install", "--crds"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert_eq!(
        text(&out.stderr),
        "error: install needs --export: it prints the manifests for `kubectl apply -f -`; \
         applying them to a cluster itself comes with the controller\n"
    );
}

#[test]
fn a_bad_namespace_is_refused_before_printing() {
    let out = tagwarden(&["install", "--export", "-n", "Apps"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("--namespace 'Apps' is not a valid namespace"),
        "{}",
        text(&out.stderr)
    );
}

/// The Deployment's arguments are ones `tagwarden controller` accepts: run
/// with them (and a kubeconfig that does not exist), it fails on the
/// kubeconfig, not on a flag.
#[test]
fn the_deployment_s_arguments_are_the_controller_s_flags() {
    let out = tagwarden(&["install", "--export"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let docs = YamlLoader::load_from_str(&text(&out.stdout)).expect("yaml");
    let deploy = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("Deployment"))
        .expect("a Deployment");
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    let mut args: Vec<String> = container["args"]
        .as_vec()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    assert_eq!(args[0], "controller");
    args.push("--kubeconfig=/nonexistent/kubeconfig".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = tagwarden(&refs);
    assert!(!run.status.success());
    let err = text(&run.stderr);
    assert!(
        err.contains("kubeconfig: /nonexistent/kubeconfig"),
        "failed on something else: {err}"
    );
}
