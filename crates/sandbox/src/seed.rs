//! The getting-started guide's podinfo scenario, shared by the tests, the
//! benchmarks and `tagwarden demo`.

/// The guide's GitRepository, ImageRepository, ImagePolicy (semver `5.0.x`)
/// and ImageUpdateAutomation, pointed at `git_url` and `image`;
/// `git_secret` is inserted into the GitRepository's spec (e.g. a
/// `secretRef` and the Secret document).
pub fn podinfo_manifests(git_url: &str, image: &str, template: &str, git_secret: &str) -> String {
    format!(
        r#"apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 1m0s
  ref:
    branch: main
  url: {git_url}
{git_secret}---
apiVersion: image.toolkit.fluxcd.io/v1beta1
kind: ImageRepository
metadata:
  name: podinfo
  namespace: flux-system
spec:
  image: {image}
  interval: 1m0s
---
apiVersion: image.toolkit.fluxcd.io/v1beta1
kind: ImagePolicy
metadata:
  name: podinfo
  namespace: flux-system
spec:
  imageRepositoryRef:
    name: podinfo
  policy:
    semver:
      range: 5.0.x
---
apiVersion: image.toolkit.fluxcd.io/v1beta1
kind: ImageUpdateAutomation
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 1m0s
  sourceRef:
    kind: GitRepository
    name: flux-system
  git:
    checkout:
      ref:
        branch: main
    commit:
      author:
        email: fluxcdbot@users.noreply.github.com
        name: fluxcdbot
      messageTemplate: '{template}'
    push:
      branch: main
  update:
    path: ./clusters/my-cluster
    strategy: Setters
"#
    )
}
