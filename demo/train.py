"""Train a logistic-regression classifier with plain batch gradient descent.

Hyperparameters come from --lr/--epochs, or else from the MLRUN_PARAM_TRAIN_LR /
MLRUN_PARAM_TRAIN_EPOCHS environment variables that mlrun sets for the step's
declared params, or else from built-in defaults (so it also runs by hand).

Writes <out>/model.json (weights, bias) and <out>/train_metrics.json (final loss).
"""
import argparse
import math
import os

from common import fmt, load_csv, predict_proba, write_json


def param(cli_value, env_name, default, cast):
    if cli_value is not None:
        return cast(cli_value)
    return cast(os.environ.get(env_name, default))


def log_loss(weights, bias, xs, ys):
    eps = 1e-12
    total = 0.0
    for x, y in zip(xs, ys):
        p = min(max(predict_proba(weights, bias, x), eps), 1.0 - eps)
        total -= y * math.log(p) + (1 - y) * math.log(1.0 - p)
    return total / len(xs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/train.csv")
    ap.add_argument("--out", default="model/", help="output directory")
    ap.add_argument("--lr", default=None)
    ap.add_argument("--epochs", default=None)
    args = ap.parse_args()
    lr = param(args.lr, "MLRUN_PARAM_TRAIN_LR", "0.5", float)
    epochs = param(args.epochs, "MLRUN_PARAM_TRAIN_EPOCHS", "100", int)

    xs, ys = load_csv(args.data)
    n, d = len(xs), len(xs[0])
    weights, bias = [0.0] * d, 0.0
    for _ in range(epochs):
        grad_w, grad_b = [0.0] * d, 0.0
        for x, y in zip(xs, ys):
            err = predict_proba(weights, bias, x) - y
            grad_b += err
            for j in range(d):
                grad_w[j] += err * x[j]
        weights = [w - lr * g / n for w, g in zip(weights, grad_w)]
        bias -= lr * grad_b / n

    loss = log_loss(weights, bias, xs, ys)
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "model.json"), {
        "bias": fmt(bias),
        "features": ["x1", "x2", "x3", "x4"][:d],
        "weights": [fmt(w) for w in weights],
    })
    write_json(os.path.join(args.out, "train_metrics.json"), {
        "final_loss": fmt(loss),
        "n_train": n,
    })
    print(f"train: lr={lr} epochs={epochs} n={n} final_loss={loss:.6f}")


if __name__ == "__main__":
    main()
