"""One element of deploy/compose-test.sh's kill test: takes SLOW_S seconds
(default 2), so a worker killed mid-run certainly holds tasks."""
import json
import os
import sys
import time

n = json.load(sys.stdin)
time.sleep(float(os.environ.get("SLOW_S", "2")))
print(json.dumps({"n": n, "square": n * n}))
