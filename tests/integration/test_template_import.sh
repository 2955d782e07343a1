#!/usr/bin/env bash
# `sandfleet-worker template import NAME IMAGE.tar`: docker-archive and OCI
# archives (as docker save / podman save write them) become a template root
# with their layers' whiteouts applied; hostile entries ("..", hard links
# out, symlinks planted to redirect later entries) never touch the host and
# fail the import cleanly; the imported template then runs an E2B sandbox.
set -u
. "$(dirname "$0")/../lib/testlib.sh"
W="$SF_BIN/sandfleet-worker"
STORE="$T_TMP/store"
chmod 755 "$T_TMP"                       # the sandboxes' ids must reach the store
ESC="/tmp/sf-import-escape-$$"
t_cleanup_hooks+=("rm -f $ESC")

python3 - "$T_TMP" "$ESC" <<'PY'
import gzip, hashlib, io, json, os, subprocess, sys, tarfile
out, esc = sys.argv[1], sys.argv[2]

def tar(entries, gz=False):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.PAX_FORMAT) as t:
        for e in entries:
            ti = tarfile.TarInfo(e["name"])
            ti.type = e.get("type", tarfile.REGTYPE)
            ti.mode = e.get("mode", 0o644)
            ti.linkname = e.get("link", "")
            data = e.get("data", b"")
            ti.size = len(data) if ti.type == tarfile.REGTYPE else 0
            if ti.type in (tarfile.CHRTYPE,): ti.devmajor, ti.devminor = 1, 3
            t.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)
    raw = b.getvalue()
    return gzip.compress(raw) if gz else raw

def f(name, data=b"", mode=0o644): return {"name": name, "data": data, "mode": mode}
def d(name, mode=0o755): return {"name": name, "type": tarfile.DIRTYPE, "mode": mode}
def sym(name, to): return {"name": name, "type": tarfile.SYMTYPE, "link": to}
def hard(name, to): return {"name": name, "type": tarfile.LNKTYPE, "link": to}

# layer 1: a shell that runs (dash and its libraries), files to whiteout later
base = [d("bin"), d("etc"), d("a"), d("opq"), d("lib64"), d("lib"), d("lib/x86_64-linux-gnu")]
base.append(f("bin/sh", open("/usr/bin/dash", "rb").read(), 0o755))
base.append(f("bin/cat", open("/usr/bin/cat", "rb").read(), 0o755))
for lib in subprocess.run(["ldd", "/usr/bin/dash", "/usr/bin/cat"], capture_output=True, text=True).stdout.split():
    if lib.startswith("/") and os.path.isfile(lib):
        base.append(f(lib.lstrip("/"), open(lib, "rb").read(), 0o755))
seen = set(); base = [e for e in base if not (e["name"] in seen or seen.add(e["name"]))]
base += [f("etc/marker", b"v1\n"), f("a/keep", b"k"), f("a/gone", b"g"), f("opq/old", b"o"),
         sym("etc/link", "marker"), hard("etc/hard", "etc/marker"), f("bin/suid", b"#!", 0o4755),
         {"name": "dev-null-node", "type": tarfile.CHRTYPE}]
# layer 2 (gzip): whiteouts, an opaque dir, a replaced file
upper = [f("a/.wh.gone"), f("opq/.wh..wh..opq"), f("opq/new", b"n"), f("etc/marker", b"v2\n")]
# layer 3: symlinks planted to send later entries out of the root
trick = [sym("escape", "/"), f("escape" + esc, b"pwned"), sym("up", "../../../../../.."),
         f("up" + esc, b"pwned"), sym("etc/pw", "/etc/passwd"), f("etc/pw", b"replaced, not followed")]
layers = [tar(base), tar(upper, gz=True), tar(trick)]

def docker_archive(path, layers):
    with tarfile.open(path, "w") as t:
        names = []
        for i, l in enumerate(layers):
            n = f"l{i}/layer.tar"; names.append(n)
            ti = tarfile.TarInfo(n); ti.size = len(l); t.addfile(ti, io.BytesIO(l))
        m = json.dumps([{"Config": "c.json", "RepoTags": ["t:1"], "Layers": names}]).encode()
        ti = tarfile.TarInfo("manifest.json"); ti.size = len(m); t.addfile(ti, io.BytesIO(m))

def oci_archive(path, layers):
    with tarfile.open(path, "w") as t:
        def blob(data):
            h = hashlib.sha256(data).hexdigest()
            ti = tarfile.TarInfo(f"blobs/sha256/{h}"); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
            return "sha256:" + h
        descs = [{"mediaType": "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if l[:2] == b"\x1f\x8b" else ""),
                  "digest": blob(l), "size": len(l)} for l in layers]
        man = json.dumps({"schemaVersion": 2, "layers": descs, "config": descs[0]}).encode()
        idx = json.dumps({"schemaVersion": 2, "manifests": [{"digest": blob(man), "size": len(man)}]}).encode()
        for n, data in (("index.json", idx), ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')):
            ti = tarfile.TarInfo(n); ti.size = len(data); t.addfile(ti, io.BytesIO(data))

docker_archive(f"{out}/docker.tar", layers)
oci_archive(f"{out}/oci.tar", layers)
docker_archive(f"{out}/dotdot.tar", [tar(base), tar([f("../../evil", b"x")])])
docker_archive(f"{out}/hardout.tar", [tar(base), tar([hard("h", "../../etc/passwd")])])
with open(f"{out}/notar.tar", "wb") as fh: fh.write(b"this is not a tar archive" * 50)
PY
check "test images made (docker-archive, OCI, hostile ones)" [ -s "$T_TMP/oci.tar" ]

for fmt in docker oci; do
  out=$("$W" template import "t$fmt" "$T_TMP/$fmt.tar" --template-store "$STORE" 2>&1); rc=$?
  R="$STORE/t$fmt/rootfs"
  check "$fmt archive imports ($out)" [ $rc -eq 0 ]
  check "$fmt: the last layer's file wins" [ "$(cat "$R/etc/marker")" = v2 ]
  check "$fmt: .wh.NAME removed a lower layer's file" bash -c "[ ! -e '$R/a/gone' ] && [ -e '$R/a/keep' ]"
  check "$fmt: an opaque directory hides the lower layer's entries" bash -c "[ ! -e '$R/opq/old' ] && [ -e '$R/opq/new' ]"
  check "$fmt: symlinks and hard links" bash -c "[ \"\$(readlink '$R/etc/link')\" = marker ] && [ \"\$(cat '$R/etc/hard')\" = 'v1' ]"
  check "$fmt: setuid dropped, devices skipped" bash -c "[ ! -u '$R/bin/suid' ] && [ ! -e '$R/dev-null-node' ]"
  check "$fmt: entries behind planted symlinks stay in the new root" \
    bash -c "[ ! -e '$ESC' ] && [ \"\$(cat '$R$ESC')\" = pwned ] && [ ! -L '$R/etc/pw' ] && grep -q '^root:' /etc/passwd"
done
"$W" template import tdocker "$T_TMP/docker.tar" --template-store "$STORE" >"$T_TMP/again.out" 2>&1; rc=$?
check "importing a name that exists is refused" bash -c "[ $rc -ne 0 ] && grep -q 'exists already' '$T_TMP/again.out'"
for bad in dotdot hardout notar; do
  "$W" template import "t$bad" "$T_TMP/$bad.tar" --template-store "$STORE" >"$T_TMP/$bad.out" 2>&1; rc=$?
  check "hostile image '$bad' fails the import: $(head -c 160 "$T_TMP/$bad.out")" \
    bash -c "[ $rc -ne 0 ] && [ ! -e '$STORE/t$bad' ] && [ -z \"\$(ls -A '$STORE' | grep '^\\.import')\" ]"
done
check "no file escaped to the host" bash -c "[ ! -e /tmp/evil ] && [ ! -e '$T_TMP/evil' ] && [ ! -e '$ESC' ]"
list=$("$W" template list --template-store "$STORE")
check "template list shows the imports" bash -c "echo '$list' | grep -q '^tdocker' && echo '$list' | grep -q '^toci'"

# podman's own save output, when podman is here (no registry needed: import + save)
if command -v podman >/dev/null && podman info >/dev/null 2>&1; then
  img=localhost/sf-import-test-$$
  tar -xOf "$T_TMP/docker.tar" l0/layer.tar > "$T_TMP/l0.tar"
  podman import -q "$T_TMP/l0.tar" "$img" >/dev/null 2>&1
  t_cleanup_hooks+=("podman rmi -f $img >/dev/null 2>&1")
  for f in docker-archive oci-archive; do
    podman save -q --format "$f" -o "$T_TMP/p-$f.tar" "$img" >/dev/null 2>&1
    "$W" template import "p$f" "$T_TMP/p-$f.tar" --template-store "$STORE" >"$T_TMP/p$f.out" 2>&1
    check "podman save --format $f imports" [ "$(cat "$STORE/p$f/rootfs/etc/marker" 2>/dev/null)" = v1 ]
  done
else
  echo "ok - podman save round trip skipped (no podman) # SKIP"
fi

# the imported template runs a sandbox through the E2B server
KEY=e2b_$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$W" --e2b-listen "127.0.0.1:$PORT" --e2b-api-key "$KEY" --template-store "$STORE" >"$T_TMP/worker.log" 2>&1 &
WPID=$!
t_cleanup_hooks+=("kill $WPID 2>/dev/null; wait $WPID 2>/dev/null")
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
got=$(python3 - "$PORT" "$KEY" <<'PY'
import http.client, json, struct, sys
port, key = int(sys.argv[1]), sys.argv[2]
def call(method, path, body, headers):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse(); return r.status, r.read()
st, b = call("POST", "/v2/sandboxes", json.dumps({"templateID": "toci"}), {"X-API-Key": key})
sb = json.loads(b)
msg = json.dumps({"process": {"cmd": "/bin/sh", "args": ["-c", "cat /etc/marker; cat /etc/pw"]}}).encode()
st, b = call("POST", "/process.Process/Start", b"\0" + struct.pack(">I", len(msg)) + msg,
             {"Content-Type": "application/connect+json", "E2b-Sandbox-Id": sb["sandboxID"],
              "X-Access-Token": sb["envdAccessToken"], "Authorization": "Basic cm9vdDo="})
out = b""
while b:
    flags, n = b[0], struct.unpack(">I", b[1:5])[0]
    m = json.loads(b[5:5 + n]); b = b[5 + n:]
    data = m.get("event", {}).get("data", {}).get("stdout")
    if data:
        import base64; out += base64.b64decode(data)
call("DELETE", f"/sandboxes/{sb['sandboxID']}", None, {"X-API-Key": key})
print(out.decode().replace("\n", "|"))
PY
)
check "Sandbox.create(template=<imported>) runs on it ($got)" [ "$got" = "v2|replaced, not followed" ]
t_done
