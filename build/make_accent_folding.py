"""Writes src/CacheService/Engine/Encoders/AccentFolding.txt: BERT's accent stripping as a table.

BERT (and every uncased WordPiece model after it) strips accents with NFD, then drops non-spacing marks
(category Mn). The service runs with .NET's invariant globalization, where string.Normalize does not
decompose, so the engine reads this table instead: one line per code point whose "NFD, drop Mn" form
differs from itself, as 'CODEPOINT REPLACEMENT...' in hex (no replacement: the code point is dropped).
Hangul syllables are left out: their decomposition is algorithmic and done in code (AccentFolding.cs).
Run: /usr/bin/python3 build/make_accent_folding.py   (Python's unicodedata; the header names its version)
"""
import os
import unicodedata

out = os.path.join(os.path.dirname(__file__), "..", "src", "CacheService", "Engine", "Encoders", "AccentFolding.txt")
lines = []
for cp in range(0x110000):
    if 0xAC00 <= cp <= 0xD7A3 or 0xD800 <= cp <= 0xDFFF:
        continue
    c = chr(cp)
    folded = "".join(x for x in unicodedata.normalize("NFD", c) if unicodedata.category(x) != "Mn")
    if folded != c:
        lines.append(" ".join([f"{cp:X}"] + [f"{ord(x):X}" for x in folded]))
with open(out, "w", encoding="ascii", newline="\n") as f:
    f.write(f"# NFD then drop Mn, Unicode {unicodedata.unidata_version}; made by build/make_accent_folding.py\n")
    f.write("\n".join(lines) + "\n")
print(len(lines), "entries")
