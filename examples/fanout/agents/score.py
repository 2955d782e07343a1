"""Score one word (runs once per element of the map, each in its own sandbox)."""
import json
import sys

word = json.load(sys.stdin)
print(json.dumps({"word": word, "score": sum(ord(c) - 96 for c in word.lower() if c.isalpha())}))
