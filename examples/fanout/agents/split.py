"""Split a text into words: the array output fans the next (map) step out."""
import json
import sys

print(json.dumps(json.load(sys.stdin)["text"].split()))
