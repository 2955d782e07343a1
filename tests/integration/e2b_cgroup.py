#!/usr/bin/env python3
"""E2B pause/resume and get_metrics seen from the sandbox's cgroup
(test_e2b_cgroup.sh), with the standard library only: the test VM of `make
test-cgroup2` runs it on a real cgroup v2 kernel, as root and as an
unprivileged user, and `make test` on the host's cgroup v1.

  - pause freezes the sandbox's cgroup (v2: cgroup.freeze 1 and the kernel's
    cgroup.events "frozen 1"; v1: its freezer cgroup FROZEN): a counter
    process inside stops, the cgroup's CPU time stands still, and metrics
    say 0 % CPU with memUsed the cgroup's memory.current;
  - resume thaws it (frozen 0 / THAWED) and the same counter goes on;
  - metrics of a running sandbox: memTotal is the cgroup's memory limit,
    cpuUsedPct > 0 once the cgroup's cpu.stat usage_usec has grown.

Environment: SF_API (http://HOST:PORT of `sandfleet-worker --e2b-listen`),
SF_KEY (its API key). Prints "N passed, N failed"."""
import base64
import http.client
import json
import os
import struct
import sys
import time
import urllib.parse

API = urllib.parse.urlsplit(os.environ["SF_API"])
KEY = os.environ["SF_KEY"]
PASS, FAIL = [0], [0]
MARK = "sf-cg-%d" % os.getpid()


def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    (PASS if cond else FAIL)[0] += 1
    return cond


def call(method, path, body=None, headers=None):
    c = http.client.HTTPConnection(API.hostname, API.port, timeout=60)
    h = {"X-API-Key": KEY, "Content-Type": "application/json"}
    h.update(headers or {})
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def wait_for(cond, secs):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    return cond()


class Sbx:
    def __init__(self, info):
        self.id, self.token = info["sandboxID"], info.get("envdAccessToken", "")
        self.envd = {"E2b-Sandbox-Id": self.id, "E2b-Sandbox-Port": "49983",
                     "X-Access-Token": self.token,
                     "Authorization": "Basic " + base64.b64encode(b"root:").decode()}

    def start(self, script):
        """Start `sh -c script` through envd's Connect Start; the stream stays
        open (returned) so the process is the server's to keep."""
        msg = json.dumps({"process": {"cmd": "/bin/sh", "args": ["-c", script]}}).encode()
        c = http.client.HTTPConnection(API.hostname, API.port, timeout=60)
        h = dict(self.envd, **{"Content-Type": "application/connect+json",
                               "Connect-Protocol-Version": "1"})
        c.request("POST", "/process.Process/Start", body=struct.pack(">BI", 0, len(msg)) + msg,
                  headers=h)
        r = c.getresponse()
        flags, n = struct.unpack(">BI", r.read(5))
        first = json.loads(r.read(n))
        return c, r, first

    def read(self, path):
        st, data = call("GET", "/files?path=" + urllib.parse.quote(path), headers=self.envd)
        return data.decode() if st == 200 else None


def counter(sb):
    v = sb.read("/tmp/cnt")
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def proc_of_mark():
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                if MARK.encode() in f.read() and p != str(os.getpid()):
                    return p
        except OSError:
            pass
    return None


def cgroup_dirs(pid):
    """{controller or "": directory} of a process, as this host mounts them."""
    out = {}
    with open("/proc/%s/cgroup" % pid) as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in (ctrls.split(",") if ctrls else [""]):
                base = "/sys/fs/cgroup" + ("/" + c if c and not c.startswith("name=") else "")
                out[c] = base + path
    return out


def rd(d, name):
    try:
        with open(os.path.join(d, name)) as f:
            return f.read()
    except OSError:
        return None


def usage_usec(d):
    for line in (rd(d, "cpu.stat") or "").splitlines():
        k, v = line.split()
        if k == "usage_usec":
            return int(v)
    return None


def ticks(pid):
    """utime + stime of a process (v1's metrics add those of the cgroup's)."""
    with open("/proc/%s/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def metrics(sb):
    st, data = call("GET", "/sandboxes/%s/metrics" % sb.id)
    m = json.loads(data) if st == 200 else []
    return m[-1] if m else None


def main():
    st, data = call("POST", "/sandboxes", {"templateID": "base", "timeout": 300,
                                           "allow_internet_access": False})
    if not check(st == 201, "create (%d %s)" % (st, data[:200])):
        return
    sb = Sbx(json.loads(data))
    # Some CPU of its own each round (a shell loop, no fork), then a count,
    # renamed into place: frozen mid-write, the file still holds a number.
    conn = sb.start("i=0; while :; do j=0; while [ $j -lt 300 ]; do j=$((j+1)); done; "
                    "i=$((i+1)); echo $i > /tmp/cnt.new; mv /tmp/cnt.new /tmp/cnt; sleep 0.05; "
                    "done # " + MARK)
    check(conn[2].get("event", {}).get("start", {}).get("pid", 0) > 0,
          "a counter process starts in it (%s)" % json.dumps(conn[2])[:100])
    check(wait_for(lambda: counter(sb), 20) is not None, "... and counts")
    pid = proc_of_mark()
    if not check(pid is not None, "its host process is found"):
        return
    dirs = cgroup_dirs(pid)
    v2 = "" in dirs and os.path.exists(os.path.join(dirs[""], "cgroup.freeze"))
    mem = dirs[""] if v2 else dirs.get("memory")
    print("# cgroup v%d: %s" % (2 if v2 else 1, mem), flush=True)

    # metrics of the running sandbox
    m0 = metrics(sb)
    if v2:
        limit = (rd(mem, "memory.max") or "").strip()
        check(m0 and limit.isdigit() and m0["memTotal"] == int(limit),
              "metrics: memTotal is the cgroup's memory.max (%s, %s)" % (m0 and m0["memTotal"], limit))
        u0 = usage_usec(mem)
        check(wait_for(lambda: usage_usec(mem) >= u0 + 20000, 30),
              "the counter uses CPU: cpu.stat usage_usec grows")
    else:
        limit = (rd(mem, "memory.limit_in_bytes") or "").strip()
        check(m0 and limit.isdigit() and m0["memTotal"] == int(limit),
              "metrics: memTotal is the cgroup's memory.limit_in_bytes (%s, %s)" %
              (m0 and m0["memTotal"], limit))
        t0 = ticks(pid)
        check(wait_for(lambda: ticks(pid) >= t0 + 3, 30),
              "the counter uses CPU: its utime+stime grows")
    m1 = metrics(sb)
    check(m1 and m1["cpuUsedPct"] > 0 and m1["memUsed"] > 0,
          "metrics of a running sandbox: cpuUsedPct %s > 0, memUsed %s > 0" %
          (m1 and m1["cpuUsedPct"], m1 and m1["memUsed"]))

    # pause
    st, data = call("POST", "/sandboxes/%s/pause" % sb.id)
    check(st == 204, "pause (%d %s)" % (st, data[:100]))
    if v2:
        check((rd(mem, "cgroup.freeze") or "").strip() == "1", "paused: cgroup.freeze is 1")
        check("frozen 1" in (rd(mem, "cgroup.events") or ""),
              "paused: the kernel says cgroup.events frozen 1")
    else:
        fz = cgroup_dirs(pid).get("freezer")
        check(fz and (rd(fz, "freezer.state") or "").strip() == "FROZEN",
              "paused: its freezer cgroup is FROZEN (%s)" % fz)
    a, ua = counter(sb), usage_usec(mem) if v2 else None
    metrics(sb)
    mem_a = int(rd(mem, "memory.current" if v2 else "memory.usage_in_bytes"))
    m2 = metrics(sb)
    mem_b = int(rd(mem, "memory.current" if v2 else "memory.usage_in_bytes"))
    b, ub = counter(sb), usage_usec(mem) if v2 else None
    check(a is not None and a == b, "paused: the counter stands still (%s == %s)" % (a, b))
    if v2:
        check(ua == ub, "paused: cpu.stat usage_usec stands still (%s == %s)" % (ua, ub))
    check(m2 and m2["cpuUsedPct"] == 0, "metrics of a paused sandbox: cpuUsedPct 0 (%s)" %
          (m2 and m2["cpuUsedPct"]))
    check(m2 and min(mem_a, mem_b) <= m2["memUsed"] <= max(mem_a, mem_b),
          "metrics: memUsed is the cgroup's %s (%s in [%d, %d])" %
          ("memory.current" if v2 else "memory.usage_in_bytes", m2 and m2["memUsed"], mem_a, mem_b))
    st, _ = call("POST", "/sandboxes/%s/pause" % sb.id)
    check(st == 409, "pause of a paused sandbox: 409 (%d)" % st)

    # resume
    st, data = call("POST", "/sandboxes/%s/resume" % sb.id, {"timeout": 300})
    check(st == 201, "resume (%d %s)" % (st, data[:100]))
    if v2:
        check((rd(mem, "cgroup.freeze") or "").strip() == "0", "resumed: cgroup.freeze is 0")
        check("frozen 0" in (rd(mem, "cgroup.events") or ""), "resumed: cgroup.events frozen 0")
    else:
        fz = cgroup_dirs(pid).get("freezer")
        check(fz and (rd(fz, "freezer.state") or "").strip() == "THAWED", "resumed: THAWED")
    check(wait_for(lambda: (counter(sb) or 0) > b + 3, 30),
          "resumed: the same counter goes on (%s > %s)" % (counter(sb), b))
    check(proc_of_mark() == pid, "... in the same process")
    conn[0].close()
    st, _ = call("DELETE", "/sandboxes/%s" % sb.id)
    check(st == 204, "kill (%d)" % st)


main()
print("%d passed, %d failed" % (PASS[0], FAIL[0]))
sys.exit(1 if FAIL[0] else 0)
