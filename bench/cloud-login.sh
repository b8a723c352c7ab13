#!/usr/bin/env bash
# What a native ECR login costs: `tagwarden scan -f` of an ImageRepository
# with `provider: aws` (IRSA: STS AssumeRoleWithWebIdentity, then a
# SigV4-signed ECR GetAuthorizationToken, then the tag list over TLS) against
# curl doing the same three requests, same servers (moto, the real
# docker-registry over TLS), same run. Then the same scan with a Secret
# (basic auth, no cloud calls), to show the login's share.
# Usage: bench/cloud-login.sh [RUNS] [N_TAGS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-15}
tags=${2:-1000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source bench/lib.sh

cargo build --release -q -p tagwarden
cargo build --release -q -p tagwarden-testkit --example serve-ecr
bin=$PWD/target/release/tagwarden
coproc ECR { exec target/release/examples/serve-ecr "$tags"; }
read -r host port ca moto password <&"${ECR[0]}"
echo "eyJhbGciOiJSUzI1NiJ9.YmVuY2g.c2ln" > "$work/token"

cat > "$work/aws.yaml" <<YAML
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {name: app, namespace: flux-system}
spec: {image: "$host/app-name", interval: 1m, provider: aws}
YAML
auth=$(printf 'AWS:%s' "$password" | base64 -w0)
cat > "$work/secret.yaml" <<YAML
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {name: app, namespace: flux-system}
spec: {image: "$host/app-name", interval: 1m, secretRef: {name: ecr}}
---
apiVersion: v1
kind: Secret
metadata: {name: ecr, namespace: flux-system}
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '{"auths":{"$host":{"auth":"$auth"}}}'
YAML

export AWS_ROLE_ARN=arn:aws:iam::123456789012:role/bench AWS_WEB_IDENTITY_TOKEN_FILE=$work/token
export AWS_ENDPOINT_URL=$moto AWS_EC2_METADATA_DISABLED=true
export TAGWARDEN_CONNECT_TO="$host:443:127.0.0.1:$port" SSL_CERT_FILE=$ca

tagwarden_aws() { "$bin" scan -f "$work/aws.yaml" >/dev/null 2>&1; }
tagwarden_secret() { "$bin" scan -f "$work/secret.yaml" >/dev/null 2>&1; }
curl_aws() {
  curl -sf -X POST "$moto/" --data-urlencode Action=AssumeRoleWithWebIdentity \
    --data-urlencode Version=2011-06-15 --data-urlencode "RoleArn=$AWS_ROLE_ARN" \
    --data-urlencode RoleSessionName=bench --data-urlencode "WebIdentityToken@$work/token" >/dev/null
  # moto does not check signatures; curl sends a well-formed header, unsigned.
  curl -sf -X POST "$moto/" -H 'X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken' \
    -H 'Content-Type: application/x-amz-json-1.1' \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=ASIA/20260101/me-central-1/ecr/aws4_request, SignedHeaders=host, Signature=0' \
    -d '{}' >/dev/null
  curl -sf --connect-to "$host:443:127.0.0.1:$port" --cacert "$ca" -u "AWS:$password" \
    "https://$host/v2/app-name/tags/list?n=1000" >/dev/null
}

"$bin" scan -f "$work/aws.yaml" >/dev/null  # fails loudly if the setup is wrong
t=$(median_ms tagwarden_aws); c=$(median_ms curl_aws); s=$(median_ms tagwarden_secret)
printf 'scan with provider aws (IRSA + ECR + %s tags): tagwarden %s ms, curl (3 requests) %s ms, ratio %.2f\n' \
  "$tags" "$t" "$c" "$(echo "$t / $c" | bc -l)"
printf 'same scan with a dockerconfigjson Secret: tagwarden %s ms; the login adds %.2f ms\n' \
  "$s" "$(echo "$t - $s" | bc -l)"
