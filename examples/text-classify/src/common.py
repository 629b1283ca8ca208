"""Helpers shared by the text-classify steps: deterministic JSON I/O and feature files."""
import json


def fmt(x):
    """Fixed float formatting so outputs are byte-identical across runs."""
    return float(format(x, ".10g"))


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_tokens(path):
    """Yield one dict per review ({id, label, split, tokens}) from tokens.jsonl."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def merge_features(*paths):
    """Combine per-document feature files (bow.json, ngrams.json) by document id."""
    docs = {}
    for path in paths:
        for doc in read_json(path)["docs"]:
            merged = docs.setdefault(doc["id"], {"label": doc["label"], "split": doc["split"], "counts": {}})
            if merged["label"] != doc["label"]:
                raise SystemExit(f"label mismatch for doc {doc['id']} in {path}")
            merged["counts"].update(doc["counts"])
    return [docs[k] | {"id": k} for k in sorted(docs)]
