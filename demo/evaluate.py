"""Evaluate the trained logistic-regression model on the held-out test split.

Writes accuracy, precision, recall and f1 to --out (JSON), and, when mlrun provides
$MLRUN_METRICS, appends an extra `n_test=<count>` metric line to that file.
"""
import argparse
import json
import os

from common import fmt, load_csv, predict_proba, write_json


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="model/model.json")
    ap.add_argument("--data", default="data/test.csv")
    ap.add_argument("--out", default="eval/metrics.json")
    ap.add_argument("--threshold", type=float, default=0.5)
    args = ap.parse_args()

    with open(args.model, encoding="utf-8") as f:
        model = json.load(f)
    xs, ys = load_csv(args.data)

    tp = fp = tn = fn = 0
    for x, y in zip(xs, ys):
        pred = int(predict_proba(model["weights"], model["bias"], x) >= args.threshold)
        if pred and y:
            tp += 1
        elif pred:
            fp += 1
        elif y:
            fn += 1
        else:
            tn += 1

    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    metrics = {
        "accuracy": fmt((tp + tn) / len(ys)),
        "f1": fmt(f1),
        "precision": fmt(precision),
        "recall": fmt(recall),
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    write_json(args.out, metrics)

    metrics_file = os.environ.get("MLRUN_METRICS")
    if metrics_file:
        with open(metrics_file, "a", encoding="utf-8") as f:
            f.write(f"n_test={len(ys)}\n")
    print("evaluate: " + " ".join(f"{k}={v}" for k, v in metrics.items()))


if __name__ == "__main__":
    main()
