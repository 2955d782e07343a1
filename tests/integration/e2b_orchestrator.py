"""The note's orchestrator (pattern 1: the coordinator is the message bus),
written against the official, unpatched `e2b` SDK, plus the checks that make
it an acceptance test of `sandfleet-worker --e2b-listen`.

Environment: E2B_API_KEY, E2B_API_URL, E2B_SANDBOX_URL point at the server.
Prints "ok - ..." / "not ok - ..." per check; exits 1 on any failure.
"""
import json
import os
import sys
import time

from e2b import (AuthenticationException, CommandExitException, NotFoundException, Sandbox,
                 SandboxException, TimeoutException)

AGENT_A = r'''
import json
words = "the quick brown fox jumps over the lazy dog the end".split()
counts = {}
for w in words:
    counts[w] = counts.get(w, 0) + 1
print(json.dumps({"task": "analyze", "counts": counts, "total": len(words)}))
'''

AGENT_B = r'''
import json, sys
data = json.load(open("/tmp/input.json"))
top = max(data["counts"], key=lambda w: data["counts"][w])
print(json.dumps({"report": f"{data['total']} words, most common: {top}", "top": top}))
'''

FAILED = []


def check(name, cond, detail=""):
    if cond:
        print(f"ok - {name}")
    else:
        FAILED.append(name)
        print(f"not ok - {name} {detail}")


def expect_raises(name, exc, fn):
    try:
        fn()
    except exc as e:
        check(name, True)
        return e
    except Exception as e:  # noqa: BLE001 - reported as a failure
        check(name, False, f"raised {type(e).__name__}: {e}")
        return None
    check(name, False, "nothing raised")
    return None


def listed_ids(**kw):
    pager = Sandbox.list(**kw)
    ids = []
    while pager.has_next:
        ids += [s.sandbox_id for s in pager.next_items()]
    return ids


def main():
    # --- mode 1 of the note: agent A in sandbox 1, its stdout JSON into sandbox 2
    sandbox1 = Sandbox.create(metadata={"role": "agent-a", "suite": "orchestrator"})
    sandbox1.files.write("/home/user/agent_a.py", AGENT_A)
    result1 = sandbox1.commands.run("python3 agent_a.py")
    data = json.loads(result1.stdout)
    check("agent A ran and printed JSON", data.get("total") == 11 and result1.exit_code == 0,
          result1.stdout)

    sandbox1.files.write("/tmp/secret.txt", "only in sandbox 1")
    check("files.read returns what files.write stored",
          sandbox1.files.read("/tmp/secret.txt") == "only in sandbox 1")

    sandbox2 = Sandbox.create(metadata={"role": "agent-b", "suite": "orchestrator"})
    check("two sandboxes have different ids", sandbox1.sandbox_id != sandbox2.sandbox_id)
    sandbox2.files.write("/tmp/input.json", json.dumps(data))
    sandbox2.files.write("/home/user/agent_b.py", AGENT_B)
    result2 = sandbox2.commands.run("python3 agent_b.py")
    out = json.loads(result2.stdout)
    check("agent B read A's data from /tmp/input.json", out == {"report": "11 words, most common: the",
                                                               "top": "the"}, result2.stdout)
    check("/tmp/input.json in B holds A's output",
          json.loads(sandbox2.files.read("/tmp/input.json")) == data)

    # --- isolation
    expect_raises("a file written in A is absent in B (files.read)", NotFoundException,
                  lambda: sandbox2.files.read("/tmp/secret.txt"))
    r = sandbox2.commands.run("test -e /tmp/secret.txt || echo absent")
    check("a file written in A is absent in B (shell)", r.stdout == "absent\n", r.stdout)
    r = sandbox2.commands.run("ps -e -o pid= | wc -l")
    check("B sees only its own processes", int(r.stdout.strip()) < 10, r.stdout)

    # --- exit codes, stderr, streaming callbacks
    e = expect_raises("a failing command raises CommandExitException", CommandExitException,
                      lambda: sandbox1.commands.run("echo partial; echo boom >&2; exit 3"))
    if e is not None:
        check("the exception carries exit code, stdout and stderr",
              e.exit_code == 3 and e.stdout == "partial\n" and e.stderr == "boom\n",
              f"{e.exit_code!r} {e.stdout!r} {e.stderr!r}")
    r = sandbox1.commands.run("echo to-stderr >&2")
    check("stderr is captured apart from stdout", r.stderr == "to-stderr\n" and r.stdout == "")

    seen = []
    t0 = time.monotonic()
    r = sandbox1.commands.run("echo one; sleep 1.5; echo two >&2; echo three",
                              on_stdout=lambda s: seen.append(("out", s, time.monotonic() - t0)),
                              on_stderr=lambda s: seen.append(("err", s, time.monotonic() - t0)))
    total = time.monotonic() - t0
    texts = [(k, s) for k, s, _ in seen]
    check("on_stdout / on_stderr get every chunk in order",
          "".join(s for k, s in texts if k == "out") == "one\nthree\n" and
          "".join(s for k, s in texts if k == "err") == "two\n", repr(texts))
    check("output streams as it happens (first chunk long before the end)",
          bool(seen) and seen[0][2] < total - 1.0, repr(seen))

    r = sandbox1.commands.run("echo $GREETING-$HOME", envs={"GREETING": "hi"}, cwd="/tmp")
    check("envs are passed and HOME is /home/user", r.stdout == "hi-/home/user\n", r.stdout)
    r = sandbox1.commands.run("pwd", cwd="/tmp")
    check("cwd is honoured", r.stdout == "/tmp\n", r.stdout)
    expect_raises("a missing cwd is refused", SandboxException,
                  lambda: sandbox1.commands.run("true", cwd="/no/such/dir"))
    expect_raises("a command over its timeout raises TimeoutException", TimeoutException,
                  lambda: sandbox1.commands.run("sleep 10", timeout=1))

    # --- background processes: stdin, list, signals (SendInput/CloseStdin/List/SendSignal)
    h = sandbox1.commands.run("cat", background=True, stdin=True)
    sandbox1.commands.send_stdin(h.pid, "through stdin\n")
    sandbox1.commands.close_stdin(h.pid)
    res = h.wait()
    check("send_stdin + close_stdin reach a background process", res.stdout == "through stdin\n",
          repr(res.stdout))
    sleeper = sandbox1.commands.run("sleep 60", background=True)
    pids = [p.pid for p in sandbox1.commands.list()]
    check("commands.list shows the running process", sleeper.pid in pids, repr(pids))
    check("commands.kill stops it", sandbox1.commands.kill(sleeper.pid) is True)
    expect_raises("the killed process ends with an error", CommandExitException, sleeper.wait)
    check("commands.kill of an unknown pid is False", sandbox1.commands.kill(999999) is False)

    # --- files: binary, bytes, relative paths, many at once
    blob = bytes(range(256)) * 64
    sandbox1.files.write("data/blob.bin", blob)
    check("binary files round-trip (relative to /home/user)",
          sandbox1.files.read("/home/user/data/blob.bin", format="bytes") == blob)

    # --- list, connect, kill
    ids = listed_ids()
    check("Sandbox.list shows both sandboxes",
          sandbox1.sandbox_id in ids and sandbox2.sandbox_id in ids, repr(ids))
    from e2b import SandboxQuery
    ids = listed_ids(query=SandboxQuery(metadata={"role": "agent-b"}))
    check("Sandbox.list filters on metadata", ids == [sandbox2.sandbox_id], repr(ids))
    again = Sandbox.connect(sandbox2.sandbox_id)
    check("Sandbox.connect reaches the same sandbox",
          again.files.read("/tmp/input.json") == json.dumps(data))
    check("is_running is true for a live sandbox", sandbox1.is_running())

    sandbox1.kill()
    check("a killed sandbox is gone from the list", sandbox1.sandbox_id not in listed_ids())
    check("is_running is false after kill", not sandbox1.is_running())
    expect_raises("a killed sandbox refuses commands", SandboxException,
                  lambda: sandbox1.commands.run("true"))
    sandbox2.kill()

    # --- timeouts: set_timeout makes the server kill it
    sandbox3 = Sandbox.create(timeout=60)
    sandbox3.set_timeout(1)
    time.sleep(2.5)
    check("set_timeout kills the sandbox at expiry", not sandbox3.is_running())

    # --- wrong key
    expect_raises("a wrong API key is refused", AuthenticationException,
                  lambda: Sandbox.create(api_key="e2b_" + "f" * 40))

    print(f"{len(FAILED)} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
