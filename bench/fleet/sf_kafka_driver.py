"""bench/fleet/sf_kafka_driver.py: drive sandfleet workers through Kafka
(the twin of sf_driver.py). usage: sf_kafka_driver.py BOOTSTRAP throughput N | latency N
throughput: produce N no-op tasks (key = task id), time until N results of
the run are on sandfleet.results. latency: N sequential 1-step tasks,
produce -> result read back, measured here. Needs confluent-kafka."""
import json, sys, time
from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_END

boot, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
prod = Producer({"bootstrap.servers": boot, "linger.ms": 1, "enable.idempotence": True})
cons = Consumer({"bootstrap.servers": boot, "group.id": f"bench-{time.time_ns()}",
                 "enable.auto.commit": False, "fetch.wait.max.ms": 10})
md = cons.list_topics("sandfleet.results", timeout=10)
parts = list(md.topics["sandfleet.results"].partitions)
cons.assign([TopicPartition("sandfleet.results", p, OFFSET_END) for p in parts])

def task(i, run_id):
    return json.dumps({"v": 1, "id": f"{run_id}:s:{i}", "run_id": run_id, "step": "s",
                       "index": i, "run": "cat", "input": {"i": i}})

def results(run, want, deadline):
    got, bad = set(), 0
    while len(got) < want and time.time() < deadline:
        m = cons.poll(0.05)
        if m is None or m.error() or m.key() != run.encode():
            continue
        r = json.loads(m.value())
        if r["task_id"] not in got and r.get("status") != "ok":
            bad += 1
        got.add(r["task_id"])
    return got, bad

cons.poll(0.5)   # let the assignment settle before anything is produced
if mode == "throughput":
    run = f"ktp{time.time_ns()}"
    t0 = time.perf_counter()
    for i in range(n):
        prod.produce("sandfleet.tasks", task(i, run), key=f"{run}:s:{i}")
        prod.poll(0)
    prod.flush()
    got, bad = results(run, n, time.time() + 600)
    el = time.perf_counter() - t0
    print(json.dumps({"tasks": len(got), "seconds": round(el, 3), "per_s": round(n / el, 1), "failed": bad}))
else:
    run = f"klat{time.time_ns()}"
    lat = []
    for i in range(n):
        t0 = time.perf_counter()
        prod.produce("sandfleet.tasks", task(i, run), key=f"{run}:s:{i}")
        prod.flush()
        results(run, 1, time.time() + 10)
        lat.append((time.perf_counter() - t0) * 1000)
    lat.sort()
    q = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))], 2)
    print(json.dumps({"n": n, "p50_ms": q(0.50), "p99_ms": q(0.99), "max_ms": round(lat[-1], 2)}))
cons.close()
