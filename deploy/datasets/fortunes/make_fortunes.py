"""Builds the fortunes dataset from Debian's `fortunes` package (fortune-mod 1.99.1, BSD licence).

Each item is one fortune cookie of 20-300 characters from one of ten categories, labelled by its
category (a group id). At most 250 per category, then a fixed shuffle and an 80/20 split per category.
Run: apt-get install fortunes && /usr/bin/python3 make_fortunes.py   (writes train.jsonl, val.jsonl)
"""
import json
import random

CATEGORIES = ["art", "computers", "education", "food", "law", "love", "politics", "science", "sports", "startrek"]
SOURCE = "/usr/share/games/fortunes/"
PER_CATEGORY = 250

train, val = [], []
for label, category in enumerate(CATEGORIES):
    with open(SOURCE + category, encoding="utf-8", errors="replace") as f:
        items = [" ".join(t.split()) for t in f.read().split("\n%\n")]
    items = sorted({t for t in items if 20 <= len(t) <= 300})
    rng = random.Random(f"fortunes-{category}")
    rng.shuffle(items)
    items = items[:PER_CATEGORY]
    cut = len(items) * 4 // 5
    train += [{"text": t, "label": label, "category": category} for t in items[:cut]]
    val += [{"text": t, "label": label, "category": category} for t in items[cut:]]

for name, rows in (("train.jsonl", train), ("val.jsonl", val)):
    random.Random(name).shuffle(rows)
    with open(name, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
print(len(train), "train,", len(val), "val")
