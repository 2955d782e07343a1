"""Agent A (the note's first agent): analyze a text, print the analysis as JSON.

Contract: the input JSON arrives on stdin (and in /tmp/input.json); the output
JSON goes to stdout; exit 0 means success."""
import json
import sys

task = json.load(sys.stdin)
words = task.get("text", "").split()
result = {
    "task": task.get("task"),
    "words": len(words),
    "longest": max(words, key=len) if words else None,
    "keywords": sorted({w.strip(";,.").lower() for w in words if len(w) > 6}),
}
print(json.dumps(result))
