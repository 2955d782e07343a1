"""bench/fleet/celery_app.py: the Celery side: each task runs `sh -c cat` as a
child process with the payload on stdin (the same work as a sandfleet no-op
minus the sandbox). Redis broker and result backend; prefork pool."""
import os, subprocess
from celery import Celery

url = os.environ["BENCH_REDIS"]
app = Celery("bench", broker=url, backend=url)
app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1, result_expires=600,
                broker_connection_retry_on_startup=True)

@app.task
def run(payload):
    return subprocess.run(["sh", "-c", "cat"], input=payload, capture_output=True, text=True).stdout
