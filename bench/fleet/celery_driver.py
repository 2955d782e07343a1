"""bench/fleet/celery_driver.py N [run|double]: N tasks, time until all results
are in. run: the payload through a child process (celery_app.run); double: the
Python agent's function in the worker process (celery_app.double)."""
import json, sys, time
from celery_app import double, run

n = int(sys.argv[1])
kind = sys.argv[2] if len(sys.argv) > 2 else "run"
if kind == "double":
    double.delay(0).get(timeout=60)
    t0 = time.perf_counter()
    rs = [double.delay(i) for i in range(n)]
    out = [x.get(timeout=600) for x in rs]
    el = time.perf_counter() - t0
    assert out == [{"y": 2 * i} for i in range(n)]
else:
    run.delay('{"warm":1}').get(timeout=60)
    t0 = time.perf_counter()
    rs = [run.delay(json.dumps({"i": i})) for i in range(n)]
    out = [x.get(timeout=600) for x in rs]
    el = time.perf_counter() - t0
    assert all(o.startswith('{"i"') for o in out), out[:3]
print(json.dumps({"tasks": n, "seconds": round(el, 3), "per_s": round(n / el, 1)}))
