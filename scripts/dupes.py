#!/usr/bin/env python3
"""Find near-copies in Rust sources: runs of at least N tokens (default 80) that occur twice.

Comments and whitespace are ignored; string literals and numbers count as one token each, and
identifiers are kept, so only real copies match (a renamed variable breaks a match).

    scripts/dupes.py [--tokens N] [PATH …]    default: src tests/it
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKEN = re.compile(r'r#*"|"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])\'|[A-Za-z_]\w*|\d[\w.]*|::|->|=>|\S')


def tokens(path):
    text = path.read_text()
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    out = []
    for n, line in enumerate(text.split("\n"), 1):
        line = re.sub(r"//.*", "", line)
        for t in TOKEN.findall(line):
            out.append((t if not t.startswith('"') else '"…"', n))
    return out


def main(argv):
    size, paths, it = 80, [], iter(argv)
    for a in it:
        if a == "--tokens":
            size = int(next(it))
        else:
            paths.append(Path(a).resolve())
    paths = paths or [ROOT / "src", ROOT / "tests" / "it"]
    files = sorted(f for p in paths for f in ([p] if p.is_file() else p.rglob("*.rs")))
    seen, hits = {}, []
    for f in files:
        toks = tokens(f)
        words = [t for t, _ in toks]
        last_hit = {}
        for i in range(len(toks) - size + 1):
            key = hash(tuple(words[i : i + size]))
            if key in seen:
                g, j = seen[key]
                # extend a match already reported instead of printing every shifted window
                if last_hit.get((g, j - 1)) == i - 1:
                    last_hit[(g, j)] = i
                    hits[-1][4] = toks[i + size - 1][1]
                    hits[-1][5] = None
                    continue
                if g == f and j + size > i:
                    continue  # overlapping with itself
                last_hit[(g, j)] = i
                other = tokens_cache.setdefault(g, tokens(g))
                hits.append([g, other[j][1], f, toks[i][1], toks[i + size - 1][1], None])
            else:
                seen[key] = (f, i)
    for g, gl, f, fl, fe, _ in hits:
        print(f"{f.relative_to(ROOT)}:{fl}-{fe}  copies  {g.relative_to(ROOT)}:{gl}")
    return 0


tokens_cache = {}

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
