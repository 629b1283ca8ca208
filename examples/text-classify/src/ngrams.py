"""Build word n-gram features (`n:<w1>_<w2>...` counts) for every review.

Only n-grams seen at least --min-count times in the train split are kept, so
phrases like "not great" become features that a bag of words cannot express.
"""
import argparse
import os
from collections import Counter

from common import read_tokens, write_json


def ngrams(tokens, n):
    return ["_".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", default="features/tokens.jsonl")
    ap.add_argument("--out", default="features/ngrams.json")
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--min-count", type=int, default=3)
    args = ap.parse_args()

    docs = list(read_tokens(args.tokens))
    train_counts = Counter()
    for doc in docs:
        if doc["split"] == "train":
            train_counts.update(ngrams(doc["tokens"], args.n))
    keep = {g for g, c in train_counts.items() if c >= args.min_count}

    out_docs = []
    for doc in docs:
        counts = Counter(g for g in ngrams(doc["tokens"], args.n) if g in keep)
        feats = {f"n:{g}": c for g, c in sorted(counts.items())}
        out_docs.append({"counts": feats, "id": doc["id"], "label": doc["label"], "split": doc["split"]})

    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    write_json(args.out, {"docs": out_docs, "n": args.n, "n_features": len(keep)})
    print(f"ngrams: n={args.n}, {len(keep)} features kept (min count {args.min_count})")


if __name__ == "__main__":
    main()
