"""bench/fleet/sf_driver.py: drive sandfleet workers through Redis.
usage: sf_driver.py PORT throughput N | latency N
throughput: XADD N no-op tasks (pipelined), time until N results exist.
latency: N sequential 1-step tasks, submit -> result on a reply_to stream."""
import json, sys, time, redis

port, mode, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
r = redis.Redis(port=port)

def task(i, run_id, reply=None):
    t = {"v": 1, "id": f"{run_id}:s:{i}", "run_id": run_id, "step": "s", "index": i,
         "run": "cat", "input": {"i": i}}
    if reply:
        t["reply_to"] = reply
    return json.dumps(t)

if mode == "throughput":
    run = f"tp{time.time_ns()}"
    t0 = time.perf_counter()
    p = r.pipeline(transaction=False)
    for i in range(n):
        p.xadd("sf:default:tasks", {"task": task(i, run)})
    p.execute()
    key = f"sf:run:{run}:results"
    while r.xlen(key) < n:
        time.sleep(0.005)
    el = time.perf_counter() - t0
    bad = sum(1 for _, f in r.xrange(key) if b'"status":"ok"' not in f[b"result"])
    print(json.dumps({"tasks": n, "seconds": round(el, 3), "per_s": round(n / el, 1), "failed": bad}))
else:
    run = f"lat{time.time_ns()}"
    reply = f"sf:reply:bench-{run}"
    last = "0-0"
    lat = []
    for i in range(n):
        t0 = time.perf_counter()
        r.xadd("sf:default:tasks", {"task": task(i, run, reply)})
        got = r.xread({reply: last}, block=10000, count=1)
        lat.append((time.perf_counter() - t0) * 1000)
        last = got[0][1][0][0]
    lat.sort()
    q = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))], 2)
    print(json.dumps({"n": n, "p50_ms": q(0.50), "p99_ms": q(0.99), "max_ms": round(lat[-1], 2)}))
