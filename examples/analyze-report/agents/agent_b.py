"""Agent B (the note's second agent): turn agent A's analysis into a report."""
import json
import sys

analysis = json.load(sys.stdin)
report = {
    "title": "Report on task '%s'" % analysis.get("task"),
    "summary": "%d words; longest is '%s'" % (analysis["words"], analysis["longest"]),
    "keywords": analysis["keywords"],
}
print(json.dumps(report))
