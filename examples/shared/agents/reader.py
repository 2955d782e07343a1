"""Agent B of the note's one-sandbox pattern: read what agent A left in
/tmp/shared. Its stdin holds only A's receipt, so the data must come from
the shared file system."""
import json
import os
import sys

receipt = json.load(sys.stdin)
shared = os.environ.get("SF_ROOT", "") + "/tmp/shared"
with open(os.path.join(shared, "data.json")) as f:
    data = json.load(f)
print(json.dumps({"topic": data["topic"], "summary": "; ".join(data["points"]),
                  "receipt_points": receipt["points"]}))
