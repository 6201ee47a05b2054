#!/usr/bin/env bash
# Validates what operators deploy, with real tools:
#   1. renders every kustomize overlay with `kubectl kustomize`;
#   2. validates the output with kubernetes-validate --strict (CRD kinds
#      without a bundled schema only warn);
#   3. runs `trailwatch run --config FILE --check` on every config.yaml in
#      the rendered ConfigMaps (unknown keys are errors), with the rules
#      ConfigMap as the rule directory and the container's real args, and
#      checks that the dummy SASL password never shows in the output;
#   4. checks the Dockerfile's CMD against the binary's flags the same way,
#      and lints the Dockerfile with hadolint when installed;
#   5. runs `promtool check rules` on deploy/prometheus/alerts.yaml and
#      checks that k8s/base/prometheusrule.yaml carries the same groups.
# Tools: scripts/install-ops-tools.sh. Exit status non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.tools/venv
py=$venv/bin/python
[[ -x $py ]] || { echo "check-manifests: run scripts/install-ops-tools.sh first" >&2; exit 2; }
command -v kubectl >/dev/null || { echo "check-manifests: kubectl missing" >&2; exit 2; }
command -v promtool >/dev/null || { echo "check-manifests: promtool missing" >&2; exit 2; }

if [[ -n ${TRAILWATCH_BIN:-} ]]; then
    bin=$TRAILWATCH_BIN
else
    cargo build -q --bin trailwatch
    bin=${CARGO_TARGET_DIR:-target}/debug/trailwatch
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

dummy_password="dummy-sasl-password-$RANDOM$RANDOM"

for overlay in k8s/overlays/*/; do
    name=$(basename "$overlay")
    out=$work/$name
    mkdir -p "$out"
    echo "== overlay $name"
    if ! kubectl kustomize "$overlay" > "$out/rendered.yaml"; then
        fail "$name: kubectl kustomize failed"
        continue
    fi
    if ! "$venv/bin/kubernetes-validate" --strict --quiet "$out/rendered.yaml"; then
        fail "$name: kubernetes-validate"
    fi
    # Extract configs, rules and the container args from the rendered output.
    if ! "$py" - "$out" <<'PY'
import json, os, sys, yaml
out = sys.argv[1]
docs = [d for d in yaml.safe_load_all(open(os.path.join(out, "rendered.yaml"))) if d]
configs, args, problems = [], None, []
for d in docs:
    kind, meta = d.get("kind"), d.get("metadata", {})
    if kind == "ConfigMap" and meta.get("name", "").startswith("trailwatch-rules"):
        os.makedirs(os.path.join(out, "rules"), exist_ok=True)
        for fname, text in d.get("data", {}).items():
            open(os.path.join(out, "rules", fname), "w").write(text)
    elif kind == "ConfigMap":
        for fname, text in d.get("data", {}).items():
            if fname.endswith((".yaml", ".yml")):
                path = os.path.join(out, "cm-" + meta["name"] + "-" + fname)
                open(path, "w").write(text)
                configs.append(path)
    elif kind == "Deployment":
        pod = d["spec"]["template"]["spec"]
        c = pod["containers"][0]
        args = c.get("args", [])
        sc = c.get("securityContext", {})
        psc = pod.get("securityContext", {})
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")): problems.append("runAsNonRoot")
        if sc.get("readOnlyRootFilesystem") is not True: problems.append("readOnlyRootFilesystem")
        if sc.get("allowPrivilegeEscalation") is not False: problems.append("allowPrivilegeEscalation")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]: problems.append("capabilities.drop ALL")
        seccomp = sc.get("seccompProfile") or psc.get("seccompProfile") or {}
        if seccomp.get("type") != "RuntimeDefault": problems.append("seccomp RuntimeDefault")
        for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz"), ("startupProbe", "/livez")):
            if c.get(probe, {}).get("httpGet", {}).get("path") != path:
                problems.append(f"{probe} on {path}")
        if not c.get("resources", {}).get("requests"): problems.append("resource requests")
        # RUST_LOG would override the ConfigMap's log.level.
        if any(e.get("name") == "RUST_LOG" for e in c.get("env", [])): problems.append("no RUST_LOG in env")
json.dump({"configs": configs, "args": args, "problems": problems}, open(os.path.join(out, "extract.json"), "w"))
PY
    then
        fail "$name: cannot read the rendered manifests"
        continue
    fi
    problems=$("$py" -c 'import json,sys; print(", ".join(json.load(open(sys.argv[1]))["problems"]))' "$out/extract.json")
    [[ -z $problems ]] || fail "$name: deployment lacks: $problems"
    mapfile -t configs < <("$py" -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["configs"]))' "$out/extract.json")
    mapfile -t args < <("$py" -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["args"]))' "$out/extract.json")
    ((${#configs[@]})) || fail "$name: no config.yaml in any ConfigMap"
    for config in "${configs[@]}"; do
        # The pod mounts the rules ConfigMap at /etc/trailwatch/rules.
        sed -i "s#/etc/trailwatch/rules#$out/rules#g" "$config"
        # The container's own args, with the config path pointing here.
        run_args=()
        for a in "${args[@]}"; do
            [[ $a == /etc/trailwatch/config.yaml ]] && a=$config
            run_args+=("$a")
        done
        if ! printf '%s\n' "${run_args[@]}" | grep -qx -- --config; then
            fail "$name: container args (${args[*]}) do not pass --config"
        fi
        if KAFKA_SASL_USERNAME=dummy KAFKA_SASL_PASSWORD=$dummy_password POD_NAME=trailwatch-0 \
            "$bin" "${run_args[@]}" --check > "$out/check.out" 2>&1; then
            echo "ok: $name $(basename "$config") accepted by: trailwatch ${args[*]} --check"
        else
            fail "$name: trailwatch ${args[*]} --check rejected $(basename "$config"):"
            sed 's/^/    /' "$out/check.out" >&2
        fi
        if grep -q "$dummy_password" "$out/check.out"; then
            fail "$name: --check printed the SASL password"
        fi
    done
done

echo "== deploy/config"
# As shipped, from the repository root: README tells users to check them so
# (kafka.yaml's static membership takes the pod's name, as in the pod).
for config in deploy/config/*.yaml; do
    [[ -e $config ]] || continue
    if KAFKA_SASL_USERNAME=dummy KAFKA_SASL_PASSWORD=$dummy_password POD_NAME=trailwatch-0 \
        "$bin" run --config "$config" --check > "$work/out" 2>&1; then
        echo "ok: $config"
    else
        fail "$config rejected by --check:"; sed 's/^/    /' "$work/out" >&2
    fi
    if grep -q "$dummy_password" "$work/out"; then
        fail "$config: --check printed the SASL password"
    fi
done

echo "== Dockerfile"
# The image's dependency step, replayed: the manifest with stand-in targets
# must satisfy cargo (it failed on every [[bench]] but one).
grep -q '^RUN sh deploy/stub-targets.sh && cargo fetch --locked$' deploy/Dockerfile \
    || fail "Dockerfile: the dependency step no longer runs deploy/stub-targets.sh"
mkdir -p "$work/deps"
cp Cargo.toml Cargo.lock build.rs "$work/deps/"
cp -r rules "$work/deps/"
if (repo=$PWD && cd "$work/deps" && sh "$repo/deploy/stub-targets.sh" && cargo fetch --locked --offline) > "$work/out" 2>&1; then
    echo "ok: Dockerfile dependency step (stand-in targets satisfy cargo fetch)"
else
    fail "Dockerfile dependency step fails:"; sed 's/^/    /' "$work/out" >&2
fi
cmd_json=$(sed -n 's/^CMD \(\[.*\]\)$/\1/p' deploy/Dockerfile)
entry=$(sed -n 's/^ENTRYPOINT \(\[.*\]\)$/\1/p' deploy/Dockerfile)
[[ $entry == '["/trailwatch"]' ]] || fail "Dockerfile ENTRYPOINT is $entry, expected [\"/trailwatch\"]"
mapfile -t cmd < <("$py" -c 'import json,sys; print("\n".join(json.loads(sys.argv[1])))' "$cmd_json")
# A minimal config, so this checks the flags whatever sources are built in.
printf 'sources:\n  - type: file\n    paths: ["-"]\nmetrics:\n  listen: 0.0.0.0:9464\n' > "$work/docker-config.yaml"
docker_args=()
for a in "${cmd[@]}"; do
    [[ $a == /etc/trailwatch/config.yaml ]] && a=$work/docker-config.yaml
    docker_args+=("$a")
done
if "$bin" "${docker_args[@]}" --check > "$work/out" 2>&1; then
    echo "ok: Dockerfile CMD (${cmd[*]}) matches the binary's flags"
else
    fail "Dockerfile CMD (${cmd[*]}) rejected:"; sed 's/^/    /' "$work/out" >&2
fi
if [[ -x $venv/bin/hadolint ]]; then
    if "$venv/bin/hadolint" deploy/Dockerfile; then echo "ok: hadolint"; else fail "hadolint deploy/Dockerfile"; fi
else
    echo "skip: hadolint not installed"
fi

echo "== Prometheus rules"
promtool check rules deploy/prometheus/alerts.yaml || fail "promtool check rules"
if "$py" - <<'PY'
import sys, yaml
a = yaml.safe_load(open("deploy/prometheus/alerts.yaml"))
b = yaml.safe_load(open("k8s/base/prometheusrule.yaml"))
sys.exit(0 if a["groups"] == b["spec"]["groups"] else 1)
PY
then
    echo "ok: k8s PrometheusRule matches deploy/prometheus/alerts.yaml"
else
    fail "k8s/base/prometheusrule.yaml drifted from deploy/prometheus/alerts.yaml"
fi

echo "== Grafana dashboard"
# Every panel query must parse: wrap them as recording rules for promtool.
if "$py" - "$work/dashboard-rules.yaml" <<'PY'
import json, sys, yaml
d = json.load(open("deploy/grafana/trailwatch.json"))
rules = []
for p in d["panels"]:
    for t in p["targets"]:
        expr = t["expr"].replace("$__rate_interval", "1m").replace('job=~"$job"', 'job=~".+"')
        rules.append({"record": f"dashboard:panel{p['id']}:{t['refId'].lower()}", "expr": expr})
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[1], "w"))
PY
then
    promtool check rules "$work/dashboard-rules.yaml" > /dev/null \
        && echo "ok: every dashboard query parses" || fail "dashboard PromQL"
else
    fail "cannot read deploy/grafana/trailwatch.json"
fi

if ((failures)); then
    echo "check-manifests: $failures failure(s)" >&2
    exit 1
fi
echo "check-manifests: all checks passed"
