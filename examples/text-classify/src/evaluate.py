"""Evaluate the naive Bayes model on the test split and write metrics as JSON.

Reports accuracy, precision, recall and f1 (positive class: `pos`) plus n_test,
and appends `positives=<count>` (test items of the positive class) to $MLRUN_METRICS when mlrun provides that file.
"""
import argparse
import os

from common import fmt, merge_features, read_json, write_json


def predict(model, counts):
    scores = {}
    for c in model["classes"]:
        lik = model["log_likelihood"][c]
        scores[c] = model["log_prior"][c] + sum(n * lik[f] for f, n in counts.items() if f in lik)
    return max(sorted(scores), key=lambda c: scores[c])  # sorted => deterministic ties


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="model.json")
    ap.add_argument("--bow", default="features/bow.json")
    ap.add_argument("--ngrams", default="features/ngrams.json")
    ap.add_argument("--positive", default="pos")
    ap.add_argument("--out", default="metrics.json")
    args = ap.parse_args()

    model = read_json(args.model)
    test = [d for d in merge_features(args.bow, args.ngrams) if d["split"] == "test"]
    tp = fp = fn = correct = 0
    for d in test:
        pred, gold = predict(model, d["counts"]), d["label"]
        correct += pred == gold
        tp += pred == gold == args.positive
        fp += pred == args.positive != gold
        fn += gold == args.positive != pred

    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    metrics = {
        "accuracy": fmt(correct / len(test)),
        "f1": fmt(f1),
        "n_test": len(test),
        "precision": fmt(precision),
        "recall": fmt(recall),
    }
    write_json(args.out, metrics)
    if os.environ.get("MLRUN_METRICS"):
        with open(os.environ["MLRUN_METRICS"], "a", encoding="utf-8") as f:
            f.write(f"positives={tp + fn}\n")
    print("evaluate: " + " ".join(f"{k}={v}" for k, v in metrics.items()))


if __name__ == "__main__":
    main()
