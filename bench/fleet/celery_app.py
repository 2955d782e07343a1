"""bench/fleet/celery_app.py: the Celery side: each task runs `sh -c cat` (or
the argv in BENCH_CMD, a JSON array: bwrap around it) as a child process with
the payload on stdin (the same work as a sandfleet no-op minus the sandbox);
`double` runs the Python agent's function in the worker process itself, its
home ground. Redis broker and result backend; prefork pool."""
import json, os, subprocess
from celery import Celery

url = os.environ["BENCH_REDIS"]
app = Celery("bench", broker=url, backend=url)
app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1, result_expires=600,
                broker_connection_retry_on_startup=True)

ARGV = json.loads(os.environ["BENCH_CMD"]) if os.environ.get("BENCH_CMD") else ["sh", "-c", "cat"]

@app.task
def run(payload):
    return subprocess.run(ARGV, input=payload, capture_output=True, text=True).stdout

@app.task
def double(x):
    return {"y": x * 2}
