"""Reduce the map's outputs (an array in input order) to one summary."""
import json
import sys

scores = json.load(sys.stdin)
best = max(scores, key=lambda s: s["score"])
print(json.dumps({"words": len(scores), "total": sum(s["score"] for s in scores), "best": best["word"]}))
