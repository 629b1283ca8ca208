#!/usr/bin/env python3
"""List the files over ~800 lines and the functions over ~120 lines that do not say why.

A source file under src/ counts whole (its inline tests too); test files (tests/) count for
their functions only. A function is excused by a comment saying why it must be so long, written
`// Long on purpose: <why>` just above it (attributes and other comment lines may sit between)
or on the first line of its body.

    scripts/long-items.py [--files N] [--fns N] [PATH …]    default: src tests benches, 800, 120
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXCUSE = re.compile(r"//\s*long on purpose:", re.I)


def mask(text):
    """`text` with comments, strings and char literals blanked (newlines kept), so braces
    inside them do not count."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif m := re.match(r'b?r(#*)"', text[i:i + 40]):
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(re.sub(r"[^\n]", " ", text[i:j + 1]))
            i = j + 1
        elif c == "'" and (m := re.match(r"'(\\.[^']*|[^\\'])'", text[i:i + 12])):
            out.append(" " * m.end())
            i += m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(text):
    """(name, first line, number of lines, excused) of each function with a body."""
    masked = mask(text)
    lines = text.split("\n")
    for m in re.finditer(r"\bfn\s+(\w+)", masked):
        # the body starts at the first `{` outside the signature's brackets; `;` means none
        depth, j = 0, m.end()
        while j < len(masked):
            ch = masked[j]
            if ch in "([":
                depth += 1
            elif ch in ")]":
                depth -= 1
            elif depth == 0 and ch in "{;":
                break
            j += 1
        if j >= len(masked) or masked[j] == ";":
            continue
        depth, k = 0, j
        while k < len(masked):
            if masked[k] == "{":
                depth += 1
            elif masked[k] == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        first = masked.count("\n", 0, m.start()) + 1
        last = masked.count("\n", 0, k) + 1
        body_first = masked.count("\n", 0, j) + 1
        above, i = [], first - 2
        while i >= 0 and re.match(r"\s*(//|#\[)", lines[i]):
            above.append(lines[i])
            i -= 1
        excused = any(EXCUSE.search(l) for l in above)
        excused |= body_first < len(lines) and bool(EXCUSE.search(lines[body_first]))
        yield m.group(1), first, last - first + 1, excused


def main(argv):
    max_file, max_fn, paths = 800, 120, []
    it = iter(argv)
    for a in it:
        if a == "--files":
            max_file = int(next(it))
        elif a == "--fns":
            max_fn = int(next(it))
        else:
            paths.append(Path(a).resolve())
    paths = paths or [ROOT / "src", ROOT / "tests", ROOT / "benches"]
    files = sorted(f for p in paths for f in ([p] if p.is_file() else p.rglob("*.rs")))
    long_files, long_fns, excused = [], [], []
    for f in files:
        text = f.read_text()
        rel = f.resolve().relative_to(ROOT)
        n = text.count("\n")
        if rel.parts[0] == "src" and n > max_file:
            long_files.append((n, rel))
        for name, line, length, ok in functions(text):
            if length > max_fn:
                (excused if ok else long_fns).append((length, f"{rel}:{line}", name))
    print(f"files over {max_file} lines:")
    for n, rel in sorted(long_files, reverse=True):
        print(f"  {n:5}  {rel}")
    print(f"functions over {max_fn} lines without a comment saying why:")
    for n, where, name in sorted(long_fns, reverse=True):
        print(f"  {n:5}  {where}  {name}")
    print(f"functions over {max_fn} lines that say why:")
    for n, where, name in sorted(excused, reverse=True):
        print(f"  {n:5}  {where}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
