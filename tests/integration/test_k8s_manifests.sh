#!/usr/bin/env bash
# deploy/k8s/*.yaml validate against the Kubernetes JSON schemas (strict: no
# unknown fields) of two Kubernetes versions, and the KEDA objects against
# KEDA's own CRD schemas, with kubeconform - all offline from GitHub:
#   kubeconform   built from the Go module proxy (go install ...@version)
#   k8s schemas   the kubernetes-validate wheel on PyPI ships the
#                 kubernetes-json-schema files (standalone, strict) per version
#   KEDA schemas  the CRDs in the github.com/kedacore/keda/v2 Go module
#                 (config/crd/bases), converted from openAPIV3Schema
# Then: the validator rejects broken manifests (so a pass means something),
# and every ConfigMap/Secret the manifests reference is defined, the probes
# use the worker's HTTP contract and the KEDA triggers name the real stream,
# group and topic. No cluster is involved (none runs here).
#
# Everything downloaded is cached in $SF_K8S_CACHE (default
# ~/.cache/sandfleet/k8s-validate): a fresh machine needs ~1-2 min (the
# kubeconform build), a warm one ~2 s.
set -euo pipefail

src=${SF_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
k8s=$src/deploy/k8s
cache=${SF_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sandfleet/k8s-validate}
KUBECONFORM_VERSION=${KUBECONFORM_VERSION:-v0.6.7}
KV_VERSION=${KV_VERSION:-1.37.0}            # kubernetes-validate wheel (schemas 1.25 ... 1.37)
KEDA_VERSION=${KEDA_VERSION:-v2.16.1}
K8S_VERSIONS=${K8S_VERSIONS:-"1.31.0 1.37.0"}

pass=0 failed=0
ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }
die() { echo "test_k8s_manifests: $*" >&2; echo "0 passed, 1 failed"; exit 1; }
mkdir -p "$cache"
apt_install() {   # as root only; the package lists may be empty on a fresh machine
  [ "$(id -u)" = 0 ] || die "needs: apt-get install $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "$@" >/dev/null 2>&1 || { apt-get update -qq >/dev/null; apt-get install -y -qq "$@" >/dev/null; }
}

# ---- tools --------------------------------------------------------------------
export GOPATH=$cache/go GOMODCACHE=$cache/go/pkg/mod GOFLAGS=-modcacherw GOTOOLCHAIN=local
export PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || apt_install golang-go
# A python3 with PyYAML: the one on PATH, else Debian's (python3-yaml).
py=python3
if ! python3 -c 'import yaml' 2>/dev/null; then
  py=/usr/bin/python3
  $py -c 'import yaml' 2>/dev/null || apt_install python3-yaml
fi
$py -m pip --version >/dev/null 2>&1 || apt_install python3-pip
kc=$cache/bin/kubeconform-$KUBECONFORM_VERSION
if [ ! -x "$kc" ]; then
  echo "building kubeconform $KUBECONFORM_VERSION from the Go module proxy (once)"
  GOBIN=$cache/bin.tmp go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" ||
    die "go install kubeconform failed"
  mkdir -p "$cache/bin" && mv "$cache/bin.tmp/kubeconform" "$kc" && rm -rf "$cache/bin.tmp"
fi

# ---- schemas ------------------------------------------------------------------
schemas=$cache/schemas-kv$KV_VERSION-keda$KEDA_VERSION
if [ ! -f "$schemas/.complete" ]; then
  echo "preparing schemas: kubernetes-validate $KV_VERSION (PyPI), KEDA $KEDA_VERSION (Go proxy)"
  rm -rf "$schemas" "$schemas.tmp" && mkdir -p "$schemas.tmp/dl"
  $py -m pip download -q --no-deps --disable-pip-version-check \
      "kubernetes-validate==$KV_VERSION" -d "$schemas.tmp/dl" || die "pip download kubernetes-validate"
  keda_dir=$(go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" |
             $py -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') ||
    die "go mod download keda"
  $py - "$schemas.tmp" "$keda_dir/config/crd/bases" $K8S_VERSIONS <<'PY' || die "schema conversion"
import glob, json, os, re, sys, zipfile, yaml
out, crd_dir, versions = sys.argv[1], sys.argv[2], sys.argv[3:]
whl = glob.glob(os.path.join(out, "dl", "kubernetes_validate-*.whl"))[0]
z = zipfile.ZipFile(whl)
for v in versions:
    prefix = "kubernetes_validate/kubernetes-json-schema/v%s-local-strict/" % v
    names = [n for n in z.namelist() if n.startswith(prefix) and n.endswith(".json")]
    if not names:
        sys.exit("no schemas for Kubernetes %s in %s" % (v, whl))
    dst = os.path.join(out, "v%s-standalone-strict" % v)
    os.makedirs(dst)
    for n in names:
        text = z.read(n).decode()
        # The wheel's files refer to "/api/_definitions.json" (its own resolver's
        # base); for kubeconform they refer to the file beside them.
        # Their "$id"s (https://kubernetes.io/api/...) would make references
        # resolve against kubernetes.io: drop them, so they resolve here.
        text = text.replace('"/api/_definitions.json#', '"_definitions.json#')
        doc = json.loads(text)
        doc.pop("$id", None)
        json.dump(doc, open(os.path.join(dst, os.path.basename(n)), "w"))

def strict(s):
    """openAPIV3Schema -> JSON schema; objects with properties get
    additionalProperties: false unless they keep unknown fields."""
    if isinstance(s, dict):
        s = {k: strict(v) for k, v in s.items()}
        if s.get("type") == "object" and "properties" in s and "additionalProperties" not in s \
                and not s.get("x-kubernetes-preserve-unknown-fields"):
            s["additionalProperties"] = False
        if s.get("x-kubernetes-int-or-string"):
            s.pop("type", None)
            s["oneOf"] = [{"type": "string"}, {"type": "integer"}]
        return s
    if isinstance(s, list):
        return [strict(x) for x in s]
    return s

n = 0
for f in sorted(glob.glob(os.path.join(crd_dir, "*.yaml"))):
    crd = yaml.safe_load(open(f))
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    for ver in crd["spec"]["versions"]:
        schema = strict(ver["schema"]["openAPIV3Schema"])
        schema["properties"]["apiVersion"] = {"type": "string", "enum": ["%s/%s" % (group, ver["name"])]}
        schema["properties"]["kind"] = {"type": "string", "enum": [kind]}
        name = "%s-%s-%s.json" % (kind.lower(), group.split(".")[0], ver["name"])
        for v in versions:
            json.dump(schema, open(os.path.join(out, "v%s-standalone-strict" % v, name), "w"))
        n += 1
print("schemas: %d Kubernetes versions, %d KEDA CRD versions" % (len(versions), n))
PY
  rm -rf "$schemas.tmp/dl"
  touch "$schemas.tmp/.complete"
  mv "$schemas.tmp" "$schemas"
fi
location="$schemas/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"

validate() {   # validate VERSION FILES...: kubeconform, strict, no missing schemas
  local v=$1
  shift
  "$kc" -strict -summary -kubernetes-version "$v" -schema-location "$location" \
        -skip Kustomization "$@"
}

# ---- 1. the manifests, per Kubernetes version ---------------------------------
mapfile -t files < <(ls "$k8s"/*.yaml)
[ ${#files[@]} -ge 5 ] || die "expected the manifests in $k8s"
for v in $K8S_VERSIONS; do
  if out=$(validate "$v" "${files[@]}" 2>&1); then
    ok "kubeconform -strict, Kubernetes $v: $(echo "$out" | tail -1)"
  else
    bad "kubeconform -strict, Kubernetes $v:"; echo "$out"
  fi
done
# Every kind was checked against a schema (none skipped as unknown).
kinds=$($py -c '
import sys, yaml
ks = set()
for f in sys.argv[1:]:
    for d in yaml.safe_load_all(open(f)):
        if d: ks.add(d["kind"])
print(" ".join(sorted(ks)))' "${files[@]}")
echo "kinds: $kinds"
for want in Deployment StatefulSet Service ConfigMap Secret Job ScaledObject TriggerAuthentication Namespace PodDisruptionBudget; do
  case " $kinds " in *" $want "*) ok "a $want is among the manifests" ;; *) bad "no $want in deploy/k8s" ;; esac
done

# ---- 2. the validator rejects broken manifests --------------------------------
neg=$(mktemp -d)
trap 'rm -rf "$neg"' EXIT
v1=${K8S_VERSIONS%% *}
$py - "$k8s" "$neg" <<'PY'
import copy, os, sys, yaml
k8s, neg = sys.argv[1], sys.argv[2]
def load(name, kind):
    return next(d for d in yaml.safe_load_all(open(os.path.join(k8s, name))) if d and d["kind"] == kind)
dep = load("worker.yaml", "Deployment")
so = load("keda-redis.yaml", "ScaledObject")
cases = {}
d = copy.deepcopy(dep); d["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGett"] = {}
cases["unknown-field"] = d
d = copy.deepcopy(dep); d["spec"]["replicas"] = "three"
cases["wrong-type"] = d
d = copy.deepcopy(dep); del d["spec"]["selector"]
cases["missing-required"] = d
d = copy.deepcopy(dep); d["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] = "SYS_ADMIN"
cases["caps-not-a-list"] = d
s = copy.deepcopy(so); s["spec"]["maxReplicas"] = 3
cases["keda-unknown-field"] = s
s = copy.deepcopy(so); del s["spec"]["triggers"]
cases["keda-missing-triggers"] = s
s = copy.deepcopy(so); s["apiVersion"] = "keda.sh/v9"
cases["unknown-kind-version"] = s
for name, doc in cases.items():
    yaml.safe_dump(doc, open(os.path.join(neg, name + ".yaml"), "w"))
PY
for f in "$neg"/*.yaml; do
  name=$(basename "$f" .yaml)
  if validate "$v1" "$f" >"$neg/out" 2>&1; then
    bad "a broken manifest passed: $name"; cat "$neg/out"
  elif [ "$name" = unknown-kind-version ]; then
    # no schema for keda.sh/v9: an error, never a silent skip
    grep -q 'could not find schema' "$neg/out" && ok "rejected: $name (no schema)" ||
      { bad "$name: unexpected output"; cat "$neg/out"; }
  elif grep -q 'is invalid' "$neg/out" && ! grep -q 'could not find schema' "$neg/out"; then
    ok "rejected by the schema: $name: $(grep -o 'is invalid: .*' "$neg/out" | head -1 | cut -c1-110)"
  else
    bad "$name failed for another reason than the schema:"; cat "$neg/out"
  fi
done

# ---- 3. consistency with sandfleet's contracts ---------------------------------
if $py - "${files[@]}" <<'PY'; then ok "references, probes and KEDA triggers are consistent"; else bad "consistency"; fi
import sys, yaml
docs = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d and d["kind"] != "Kustomization"]
defined = {(d["kind"], d["metadata"]["name"]) for d in docs}
errors = []
external = {("Secret", "e2b")}        # worker-e2b.yaml: the user's E2B key, documented there
def need(kind, name, where):
    if (kind, name) not in defined and (kind, name) not in external:
        errors.append("%s references %s/%s, which no manifest defines" % (where, kind, name))
def walk(o, where):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "configMapRef": need("ConfigMap", v["name"], where)
            if k == "secretRef": need("Secret", v["name"], where)
            if k == "secretKeyRef": need("Secret", v["name"], where)
            if k == "configMap" and "name" in v: need("ConfigMap", v["name"], where)
            walk(v, where)
    elif isinstance(o, list):
        for x in o: walk(x, where)
for d in docs:
    where = "%s/%s" % (d["kind"], d["metadata"]["name"])
    walk(d.get("spec", {}), where)
    if d["kind"] == "TriggerAuthentication":
        for r in d["spec"]["secretTargetRef"]: need("Secret", r["name"], where)
    if d["kind"] == "ScaledObject":
        need("Deployment", d["spec"]["scaleTargetRef"]["name"], where)
        for t in d["spec"]["triggers"]:
            m = t["metadata"]
            if t["type"] == "redis-streams":
                if (m["stream"], m["consumerGroup"]) != ("sf:default:tasks", "workers"):
                    errors.append("%s: redis stream/group %s/%s" % (where, m["stream"], m["consumerGroup"]))
                if "authenticationRef" in t: need("TriggerAuthentication", t["authenticationRef"]["name"], where)
            elif t["type"] == "kafka":
                if (m["topic"], m["consumerGroup"]) != ("sandfleet.tasks", "sandfleet-workers"):
                    errors.append("%s: kafka topic/group %s/%s" % (where, m["topic"], m["consumerGroup"]))
            else:
                errors.append("%s: unexpected trigger %s" % (where, t["type"]))
    if d["kind"] == "Deployment":
        for c in d["spec"]["template"]["spec"]["containers"]:
            if c["livenessProbe"]["httpGet"]["path"] != "/healthz": errors.append(where + ": liveness not /healthz")
            if c["readinessProbe"]["httpGet"]["path"] != "/readyz": errors.append(where + ": readiness not /readyz")
            if d["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30) <= 30:
                errors.append(where + ": terminationGracePeriodSeconds must exceed SANDFLEET_GRACE_S (30)")
cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "sandfleet-config")
if not all(k.startswith("SANDFLEET_") for k in cm["data"]): errors.append("sandfleet-config: non-SANDFLEET_ key")
if cm["data"].get("SANDFLEET_HTTP", "").rsplit(":", 1)[-1] != "9090": errors.append("SANDFLEET_HTTP port is not 9090")
for e in errors: print("  " + e)
sys.exit(1 if errors else 0)
PY

echo "$pass passed, $failed failed"
[ "$failed" = 0 ]
