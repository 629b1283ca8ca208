#!/usr/bin/env python3
"""Print the import graph between mlrun's top-level modules and report its cycles.

An edge A -> B means a file under src/A (or src/A.rs) names `crate::B` (`use crate::B::…`,
`crate::B::f()`, or `B` inside `use crate::{…}`). Comments are ignored. Code under
`#[cfg(test)]` (inline or a `mod tests;` file) is listed apart: a unit test may build its
subject through a module above it (a real `Store`, say) without tying the two together in the
library, so only the library's own edges must be free of cycles; cycles that close only
through test code are printed as a note.

    scripts/modgraph.py            print the graph and any cycles
    scripts/modgraph.py --check    print only the cycles; exit 1 if there is one
    scripts/modgraph.py --why A B  list the lines that make the edge A -> B

The integration test `structure::no_module_import_cycles` runs `--check`.
"""

import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
ROOTS = {"lib.rs", "main.rs"}  # the crate root is not a module of its own


def strip_comments(text):
    """Blank out // and /* */ comments (keeping line numbers); strings are left as they are."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def brace_group(text, start):
    """The text inside the braces that open at `start`."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
    return text[start + 1 :]


def top_level_names(group):
    """First path segment of each item of a `{…}` use group (`a::b, c, d::{e}` -> a, c, d)."""
    names, depth, item = [], 0, ""
    for ch in group + ",":
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            m = re.match(r"\s*([A-Za-z_]\w*)", item)
            if m:
                names.append(m.group(1))
            item = ""
        else:
            item += ch
    return names


def strip_test_code(text):
    """Split `text` into (library code, test code): each `#[cfg(test)]` item moves to the second."""
    lib, test, pos = [], [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]", text):
        if m.start() < pos:
            continue
        ends = [i for i in (text.find("{", m.end()), text.find(";", m.end())) if i >= 0]
        if not ends:
            break
        end = min(ends)
        if text[end] == "{":
            end = end + len(brace_group(text, end)) + 2
        else:
            end += 1
        lib.append(text[pos : m.start()])
        lib.append("\n" * text.count("\n", m.start(), end))  # keep line numbers
        test.append("\n" * text[:m.start()].count("\n") + text[m.start() : end])
        pos = end
    lib.append(text[pos:])
    return "".join(lib), test


def test_files():
    """Files declared as `#[cfg(test)] mod NAME;`."""
    out = set()
    for path in SRC.rglob("*.rs"):
        text = strip_comments(path.read_text())
        for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text):
            base = path.parent if path.name in ("mod.rs", "lib.rs") else path.with_suffix("")
            out.add(base / f"{m.group(1)}.rs")
            out.add(base / m.group(1) / "mod.rs")
    return out


def module_of(path):
    rel = path.relative_to(SRC)
    if len(rel.parts) == 1:
        return None if rel.name in ROOTS else rel.stem
    return rel.parts[0]


def names_in(text):
    """(line, module) for each `crate::X` in `text`."""
    for m in re.finditer(r"\bcrate::(\{|[A-Za-z_]\w*)", text):
        if m.group(1) == "{":
            names = top_level_names(brace_group(text, m.start(1)))
        else:
            names = [m.group(1)]
        line = text.count("\n", 0, m.start()) + 1
        for n in names:
            yield line, n


def edges():
    """({(from, to): [(file, line), …]} of the library, the same of test code)."""
    lib, test = {}, {}
    modules = {module_of(p) for p in SRC.rglob("*.rs")} - {None}
    tests = test_files()
    for path in sorted(SRC.rglob("*.rs")):
        src = module_of(path)
        if src is None:
            continue
        text = strip_comments(path.read_text())
        if path in tests:
            parts = [(test, text)]
        else:
            code, test_parts = strip_test_code(text)
            parts = [(lib, code)] + [(test, t) for t in test_parts]
        for into, part in parts:
            for line, dst in names_in(part):
                if dst in modules and dst != src:
                    into.setdefault((src, dst), []).append((path.relative_to(SRC.parent), line))
    return lib, test


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def graph_of(found):
    graph = {}
    for a, b in found:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    return graph


def print_cycles(comps, found, title):
    for comp in comps:
        print(f"{title} among {', '.join(comp)}:")
        for a, b in sorted((a, b) for (a, b) in found if a in comp and b in comp):
            path, line = found[(a, b)][0]
            more = len(found[(a, b)]) - 1
            print(f"  {a} -> {b}  ({path}:{line}{f' and {more} more' if more else ''})")


def main(argv):
    lib, test = edges()
    both = {k: lib.get(k, []) + test.get(k, []) for k in set(lib) | set(test)}
    if argv[:1] == ["--why"] and len(argv) == 3:
        for path, line in both.get((argv[1], argv[2]), []):
            print(f"{path}:{line}{'' if (path, line) in lib.get((argv[1], argv[2]), []) else ' (test)'}")
        return 0
    graph = graph_of(lib)
    if argv[:1] != ["--check"]:
        for a in sorted(graph):
            print(f"{a} -> {', '.join(sorted(graph[a])) or '(nothing)'}")
        only_test = sorted(set(test) - set(lib))
        if only_test:
            print("test code only: " + ", ".join(f"{a} -> {b}" for a, b in only_test))
    bad = cycles(graph)
    print_cycles(bad, lib, "cycle")
    test_only = [c for c in cycles(graph_of(both)) if c not in bad]
    print_cycles(test_only, both, "note: a cycle only through test code")
    if not bad and argv[:1] == ["--check"]:
        print("no import cycle between top-level modules")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
