"""bench/fleet/celery_driver.py N: N tasks, time until all results are in."""
import json, sys, time
from celery_app import run

n = int(sys.argv[1])
run.delay('{"warm":1}').get(timeout=60)
t0 = time.perf_counter()
rs = [run.delay(json.dumps({"i": i})) for i in range(n)]
out = [x.get(timeout=600) for x in rs]
el = time.perf_counter() - t0
assert all(o.startswith('{"i"') for o in out)
print(json.dumps({"tasks": n, "seconds": round(el, 3), "per_s": round(n / el, 1)}))
