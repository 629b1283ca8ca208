"""Train a multinomial naive Bayes classifier on the combined bow + n-gram features.

Uses only documents in the train split; --alpha is the additive (Laplace) smoothing.
Writes the model (class log-priors and per-feature log-likelihoods) as JSON.
"""
import argparse
import math
from collections import Counter

from common import fmt, merge_features, write_json


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bow", default="features/bow.json")
    ap.add_argument("--ngrams", default="features/ngrams.json")
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--out", default="model.json")
    args = ap.parse_args()

    train = [d for d in merge_features(args.bow, args.ngrams) if d["split"] == "train"]
    classes = sorted({d["label"] for d in train})
    features = sorted({f for d in train for f in d["counts"]})

    doc_counts = Counter(d["label"] for d in train)
    feat_counts = {c: Counter() for c in classes}
    for d in train:
        feat_counts[d["label"]].update(d["counts"])

    log_prior, log_lik = {}, {}
    for c in classes:
        log_prior[c] = fmt(math.log(doc_counts[c] / len(train)))
        total = sum(feat_counts[c].values()) + args.alpha * len(features)
        log_lik[c] = {f: fmt(math.log((feat_counts[c][f] + args.alpha) / total)) for f in features}

    write_json(args.out, {
        "alpha": fmt(args.alpha),
        "classes": classes,
        "log_likelihood": log_lik,
        "log_prior": log_prior,
        "n_train": len(train),
    })
    print(f"train: {len(train)} docs, {len(features)} features, classes={classes}")


if __name__ == "__main__":
    main()
