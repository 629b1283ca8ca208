"""Helpers shared by the demo scripts: CSV loading, the logistic model, JSON output."""
import json
import math


def load_csv(path):
    """Return (features, labels) from a CSV written by generate.py."""
    xs, ys = [], []
    with open(path, encoding="utf-8") as f:
        next(f)  # header
        for line in f:
            *feats, label = line.strip().split(",")
            xs.append([float(v) for v in feats])
            ys.append(int(label))
    return xs, ys


def sigmoid(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def predict_proba(weights, bias, x):
    return sigmoid(bias + sum(w * v for w, v in zip(weights, x)))


def fmt(x):
    """Fixed float formatting so outputs are byte-identical across runs."""
    return float(format(x, ".10g"))


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
