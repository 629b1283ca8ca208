"""Tokenize the reviews, assign a deterministic train/test split and build a vocabulary.

Reads `<label>\t<text>` lines and writes, into --out-dir:
  tokens.jsonl  one JSON object per review: id, label, split, tokens
  vocab.json    words seen at least --min-count times in the *train* split, with counts
(Named tokenize_text.py rather than tokenize.py so it doesn't shadow the stdlib module.)
"""
import argparse
import json
import os
import random
import re
from collections import Counter

from common import write_json

WORD = re.compile(r"[a-z']+")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", default="data/reviews.txt")
    ap.add_argument("--out-dir", default="features")
    ap.add_argument("--min-count", type=int, default=2)
    ap.add_argument("--test-fraction", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    with open(args.input, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t", 1) for line in f if line.strip()]
    order = list(range(len(rows)))
    random.Random(args.seed).shuffle(order)
    test_ids = set(order[: int(round(len(rows) * args.test_fraction))])

    os.makedirs(args.out_dir, exist_ok=True)
    counts = Counter()
    with open(os.path.join(args.out_dir, "tokens.jsonl"), "w", encoding="utf-8") as out:
        for i, (label, text) in enumerate(rows):
            split = "test" if i in test_ids else "train"
            tokens = WORD.findall(text.lower())
            if split == "train":
                counts.update(tokens)
            doc = {"id": i, "label": label, "split": split, "tokens": tokens}
            out.write(json.dumps(doc, sort_keys=True) + "\n")

    vocab = {w: c for w, c in sorted(counts.items()) if c >= args.min_count}
    write_json(os.path.join(args.out_dir, "vocab.json"), {"min_count": args.min_count, "words": vocab})
    print(f"tokenize: {len(rows)} reviews ({len(test_ids)} test), vocab size {len(vocab)}")


if __name__ == "__main__":
    main()
