"""Build bag-of-words features (`w:<word>` counts over the vocabulary) for every review.

Usage: python3 src/bow.py TOKENS_JSONL VOCAB_JSON OUT_JSON

The `bow.binary` param is read from the MLRUN_PARAM_BOW_BINARY env var that mlrun
sets (true => presence 0/1 instead of counts); it defaults to false when run by hand.
"""
import os
import sys
from collections import Counter

from common import read_json, read_tokens, write_json


def env_flag(name, default=False):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    tokens_path, vocab_path, out_path = sys.argv[1:]
    binary = env_flag("MLRUN_PARAM_BOW_BINARY")
    vocab = read_json(vocab_path)["words"]

    docs = []
    for doc in read_tokens(tokens_path):
        counts = Counter(t for t in doc["tokens"] if t in vocab)
        feats = {f"w:{t}": (1 if binary else n) for t, n in sorted(counts.items())}
        docs.append({"counts": feats, "id": doc["id"], "label": doc["label"], "split": doc["split"]})

    os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
    write_json(out_path, {"binary": binary, "docs": docs, "n_features": len(vocab)})
    print(f"bow: {len(docs)} docs, {len(vocab)} features, binary={binary}")


if __name__ == "__main__":
    main()
