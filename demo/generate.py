"""Generate a synthetic two-class tabular dataset and split it into train/test CSVs.

Each row has 4 numeric features and a 0/1 label. Class 1 is shifted along a fixed
direction, feature x4 is pure noise. Output is fully determined by --rows and --seed.

    python3 demo/generate.py --rows 2000 --seed 42 --out data/
"""
import argparse
import os
import random

# Per-feature class separation: x = label_sign * SHIFT[j] + N(0, 1).
SHIFT = (1.0, -0.6, 0.3, 0.0)
HEADER = "x1,x2,x3,x4,label\n"


def make_rows(n, rng):
    rows = []
    for _ in range(n):
        label = rng.randint(0, 1)
        sign = 1.0 if label else -1.0
        feats = [sign * s + rng.gauss(0.0, 1.0) for s in SHIFT]
        rows.append(",".join(format(x, ".6f") for x in feats) + f",{label}\n")
    return rows


def write_csv(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(HEADER)
        f.writelines(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--test-frac", type=float, default=0.25)
    ap.add_argument("--out", default="data/", help="output directory")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    rows = make_rows(args.rows, rng)
    n_test = int(round(args.rows * args.test_frac))
    os.makedirs(args.out, exist_ok=True)
    write_csv(os.path.join(args.out, "train.csv"), rows[n_test:])
    write_csv(os.path.join(args.out, "test.csv"), rows[:n_test])
    print(f"generate: {len(rows) - n_test} train rows, {n_test} test rows -> {args.out}")


if __name__ == "__main__":
    main()
