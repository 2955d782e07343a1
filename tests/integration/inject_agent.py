"""The agent of test_egress_inject.sh: calls an API through HTTPS with a key
it does not have, and says what it saw. Input: {"url": ..., "other": ...}.
Output: what the server saw for each call, and the agent's environment."""
import json
import os
import ssl
import sys
import urllib.request

task = json.load(sys.stdin)
out = {"env": dict(os.environ)}


def get(url, ctx=None):
    req = urllib.request.Request(url, headers={"Authorization": "Bearer agent-made-up",
                                               "X-Agent": "yes"})
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            return json.loads(r.read())
    except Exception as e:  # the exception's name is the answer
        return "err:%s:%s" % (type(e).__name__, str(e)[:200])


out["injected"] = get(task["url"])
# A large request body and a large answer through the intercepted path.
body = os.urandom(3 << 20)
try:
    req = urllib.request.Request(task["url"] + "?n=%d" % (4 << 20), data=body, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        ans = json.loads(r.read())
    out["big"] = {"sent_ok": ans["len"] == len(body) and ans["sha256"] == __import__("hashlib").sha256(body).hexdigest(),
                  "got": len(ans["pad"]), "auth": ans["auth"]}
except Exception as e:
    out["big"] = "err:%s:%s" % (type(e).__name__, str(e)[:200])
# A host without rules: not intercepted, so the agent sees the server's own
# certificate (from a CA it does not trust): it skips verification here.
out["plain"] = get(task["other"], ssl._create_unverified_context())
print(json.dumps(out))
