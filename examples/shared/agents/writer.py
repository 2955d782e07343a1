"""Agent A of the note's one-sandbox pattern: write data for agent B into
/tmp/shared (the file system both agents share), print only a receipt."""
import json
import os
import sys

task = json.load(sys.stdin)
shared = os.environ.get("SF_ROOT", "") + "/tmp/shared"   # SF_ROOT is set only by --sandbox process
with open(os.path.join(shared, "data.json"), "w") as f:
    json.dump({"topic": task["topic"], "points": task["points"]}, f)
print(json.dumps({"wrote": "/tmp/shared/data.json", "points": len(task["points"])}))
