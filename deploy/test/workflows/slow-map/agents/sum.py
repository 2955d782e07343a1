"""Reduce of the kill test: every element must be there, in order."""
import json
import sys

items = json.load(sys.stdin)
assert [i["n"] for i in items] == list(range(len(items))), items
print(json.dumps({"count": len(items), "sum_of_squares": sum(i["square"] for i in items)}))
