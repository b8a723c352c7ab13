#!/usr/bin/env python3
"""Writes a GitOps-like tree of N YAML files into DIR, M of them with
$imagepolicy markers (Deployments, HelmRelease values, kustomizations), the
rest plain manifests of similar size. Deterministic for a seed.
Usage: gen-tree.py DIR [N] [M] [SEED]"""
import os, random, sys

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
m = int(sys.argv[3]) if len(sys.argv) > 3 else 100
rnd = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 42)
marker = '# {"$imagepolicy": "flux-system:%s"}'


def deployment(name, marked):
    tail = " " + marker % "podinfo" if marked else ""
    env = "".join(
        f"        - name: VAR_{j}\n          value: \"{rnd.randrange(10**6)}\"\n"
        for j in range(rnd.randrange(3, 12))
    )
    return f"""---
# {name}: generated for the update benchmark
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: team-{rnd.randrange(20)}
  labels:
    app.kubernetes.io/name: {name}
spec:
  replicas: {rnd.randrange(1, 5)}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: app
        image: ghcr.io/stefanprodan/podinfo:5.0.0{tail}
        ports:
        - containerPort: 9898
        env:
{env}        resources:
          limits:
            memory: 256Mi
"""


def values(name):
    return f"""# Helm values for {name}
replicaCount: 2
image:
  repository: ghcr.io/stefanprodan/podinfo {marker % "podinfo:name"}
  tag: 5.0.0 {marker % "podinfo:tag"}
  pullPolicy: IfNotPresent
service:
  type: ClusterIP
  port: 80
"""


def kustomization(name):
    return f"""apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- deployment.yaml
images:
- name: ghcr.io/stefanprodan/podinfo
  newName: ghcr.io/stefanprodan/podinfo {marker % "podinfo:name"}
  newTag: 5.0.0 {marker % "podinfo:tag"}
"""


marked = set(rnd.sample(range(n), m))
per_dir = 100
for i in range(n):
    d = os.path.join(out, f"apps/team-{i // (per_dir * 10)}/svc-{i // per_dir}")
    os.makedirs(d, exist_ok=True)
    name = f"svc-{i}"
    if i in marked:
        kind = i % 3
        text = (deployment(name, True), values(name), kustomization(name))[kind]
        fname = ("deployment.yaml", "values.yaml", "kustomization.yaml")[kind]
        fname = f"{i}-{fname}"
    else:
        text, fname = deployment(name, False), f"{i}-deployment.yaml"
    with open(os.path.join(d, fname), "w") as f:
        f.write(text)
