#!/usr/bin/env bash
# Renders k8s/base and every overlay under k8s/overlays with a pinned kustomize
# and validates every object offline against the Kubernetes JSON schemas
# (kubernetes-validate --strict: unknown fields, kinds and API versions fail),
# then checks what schemas cannot see (references between objects, probes,
# resources, non-root). Needs Go and Python 3, no Docker and no cluster.
#
#   scripts/k8s-validate.sh                 # Kubernetes 1.33 (K8S_VERSIONS="1.30.0 1.37.0" for others)
#
# The tools go to .infra/k8s-tools (git-ignored) and are reused while their
# pinned versions match; the Go module and build caches and pip's cache make a
# reinstall quick, and a machine without them installs from the registries.
set -euo pipefail
cd "$(dirname "$0")/.."

# v5.8.3 needs Go 1.27; v5.8.2 builds with the Go 1.26 of our machines.
KUSTOMIZE_VERSION=v5.8.2
KUBERNETES_VALIDATE_VERSION=1.37.0
# The Kubernetes versions whose schemas the objects must satisfy.
K8S_VERSIONS=${K8S_VERSIONS:-1.33.0}
TOOLS=${K8S_TOOLS_DIR:-$PWD/.infra/k8s-tools}
# Default: k8s/base and every overlay; arguments name other kustomization folders.
if (($#)); then
    targets=("$@")
else
    targets=(k8s/base k8s/overlays/*/)
    targets=("${targets[@]%/}")
fi

log() { printf 'k8s-validate: %s\n' "$*" >&2; }

install_kustomize() {
    local bin=$TOOLS/bin/kustomize
    if [[ -x $bin && "$("$bin" version 2>/dev/null)" == "$KUSTOMIZE_VERSION" ]]; then
        return
    fi
    command -v go >/dev/null || { log "go is needed to install kustomize"; exit 1; }
    log "installing kustomize $KUSTOMIZE_VERSION (Go module proxy)"
    mkdir -p "$TOOLS/bin"
    # GOFLAGS replaced so that a caller's flags (-mod=vendor, say) cannot break it.
    GOBIN=$TOOLS/bin GOFLAGS=-buildvcs=false \
        go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
}

install_validator() {
    local venv=$TOOLS/venv
    if [[ -x $venv/bin/kubernetes-validate \
        && "$("$venv/bin/kubernetes-validate" --version 2>/dev/null)" == *"$KUBERNETES_VALIDATE_VERSION"* ]]; then
        return
    fi
    log "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION (PyPI)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
}

install_kustomize
install_validator
KUSTOMIZE=$TOOLS/bin/kustomize
PYTHON=$TOOLS/venv/bin/python
VALIDATE=$TOOLS/venv/bin/kubernetes-validate

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

rendered=()
for target in "${targets[@]}"; do
    target=${target%/}
    name=${target#/}
    file=$out/${name//\//_}.yaml
    "$KUSTOMIZE" build "$target" >"$file"
    rendered+=("$file")
    log "rendered $target: $(grep -c '^kind:' "$file") objects"
done

# The example Secret, generated the way the README creates the real one, so the
# example file stays well-formed and is validated like the rest.
mkdir -p "$out/secret"
cp k8s/secret.example.env "$out/secret/secret.env"
cat >"$out/secret/kustomization.yaml" <<'EOF'
secretGenerator:
  - name: wallex-credentials
    envs: [secret.env]
    options: {disableNameSuffixHash: true}
EOF
"$KUSTOMIZE" build "$out/secret" >"$out/secret.yaml"
rendered+=("$out/secret.yaml")

failed=0
for version in $K8S_VERSIONS; do
    # kubernetes-validate only warns (and exits 0) for a kind or API version it
    # has no schema for: a typo there must fail too, so every WARN counts.
    report=$out/report-$version.txt
    if ! "$VALIDATE" --strict --kubernetes-version "$version" "${rendered[@]}" >"$report" 2>&1; then
        failed=1
    fi
    if grep -E '^(WARN|ERROR)' "$report" >&2; then
        failed=1
    fi
    log "Kubernetes $version: $(grep -c ' passed for resource ' "$report" || true) objects passed the schemas"
done

# What the schemas cannot see: references between objects and our own rules.
"$PYTHON" - k8s/secret.example.env "${rendered[@]}" <<'EOF' || failed=1
import sys
import yaml

secret_keys = {
    line.split("=", 1)[0].strip()
    for line in open(sys.argv[1])
    if "=" in line and not line.lstrip().startswith("#")
}
problems = []


def check(rendering, objects):
    def named(kind):
        return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}

    def matches(selector, labels):
        return all(labels.get(k) == v for k, v in selector.items())

    config_maps = named("ConfigMap")
    workloads = {**named("Deployment"), **named("Job")}
    policies = named("NetworkPolicy").values()
    for name, workload in workloads.items():
        where = f"{rendering}: {workload['kind']} {name}"
        template = workload["spec"]["template"]
        labels = template["metadata"].get("labels", {})
        selector = workload["spec"].get("selector", {}).get("matchLabels")
        if selector is not None and not matches(selector, labels):
            problems.append(f"{where}: selector does not match the pod labels")
        pod = template["spec"]
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            problems.append(f"{where}: runAsNonRoot is not set")
        if not any(
            "Egress" in p["spec"].get("policyTypes", [])
            and p["spec"]["podSelector"].get("matchLabels")
            and matches(p["spec"]["podSelector"]["matchLabels"], labels)
            and p["spec"].get("egress")
            and p["metadata"]["name"] != "wallex-allow-dns"
            for p in policies
        ):
            problems.append(f"{where}: no NetworkPolicy of its own")
        for container in pod["containers"]:
            at = f"{where} container {container['name']}"
            for key in ("requests", "limits"):
                if not container.get("resources", {}).get(key):
                    problems.append(f"{at}: no resource {key}")
            context = container.get("securityContext", {})
            if not context.get("readOnlyRootFilesystem") or context.get("allowPrivilegeEscalation", True):
                problems.append(f"{at}: root file system writable or privilege escalation allowed")
            if workload["kind"] == "Deployment":
                ports = {p.get("name") for p in container.get("ports", [])}
                # Readiness asks /health (the stores); liveness and start-up may
                # ask /health/live instead (the process serves), as the consumers'
                # do: restarting a consumer brings no store back.
                paths = {"readinessProbe": {"/health"},
                         "livenessProbe": {"/health", "/health/live"},
                         "startupProbe": {"/health", "/health/live"}}
                for probe, allowed in paths.items():
                    if probe == "startupProbe" and probe not in container:
                        continue
                    get = container.get(probe, {}).get("httpGet")
                    if not get or get.get("path") not in allowed or get.get("port") not in ports:
                        problems.append(f"{at}: {probe} is not GET {' or '.join(sorted(allowed))} on a named port")
            for ref in container.get("envFrom", []):
                name = ref.get("configMapRef", {}).get("name")
                if name and name not in config_maps:
                    problems.append(f"{at}: ConfigMap {name} is not rendered")
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and (ref["name"] != "wallex-credentials" or ref["key"] not in secret_keys):
                    problems.append(f"{at}: {env['name']} reads {ref['name']}/{ref['key']}, not in k8s/secret.example.env")
    for service in named("Service").values():
        selector = service["spec"].get("selector", {})
        if not any(matches(selector, w["spec"]["template"]["metadata"]["labels"]) for w in workloads.values()):
            problems.append(f"{rendering}: Service {service['metadata']['name']} selects no pod")
    for kind in ("HorizontalPodAutoscaler",):
        for name, o in named(kind).items():
            if o["spec"]["scaleTargetRef"]["name"] not in workloads:
                problems.append(f"{rendering}: {kind} {name} targets no Deployment")
    for name, o in named("PodDisruptionBudget").items():
        selector = o["spec"]["selector"]["matchLabels"]
        if not any(matches(selector, w["spec"]["template"]["metadata"]["labels"]) for w in workloads.values()):
            problems.append(f"{rendering}: PodDisruptionBudget {name} selects no pod")


for path in sys.argv[2:]:
    with open(path) as stream:
        check(path.rsplit("/", 1)[-1], [o for o in yaml.safe_load_all(stream) if o])
for problem in problems:
    print(f"ERROR {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
EOF

if ((failed)); then
    log "FAILED"
    exit 1
fi
log "ok: ${targets[*]} and k8s/secret.example.env"
