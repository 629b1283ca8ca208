"""Generate the committed toy dataset data/reviews.txt (run once; not a pipeline step).

Each line is `<label>\t<review text>` with label `pos` or `neg`. Some reviews use
negation ("not great") and some mix in an opposite-sentiment clause, so a bag of
words alone is not a perfect classifier. Deterministic for a given --seed.

    python3 scripts/make_reviews.py --seed 2024 --count 200 --out data/reviews.txt
"""
import argparse
import random

PRODUCTS = ["battery", "screen", "keyboard", "camera", "speaker", "charger", "case", "app"]
GOOD = ["great", "excellent", "lovely", "solid", "fast", "reliable", "sturdy", "bright"]
BAD = ["terrible", "awful", "flimsy", "slow", "broken", "dim", "noisy", "useless"]
ADVERBS = ["really", "quite", "very", "pretty", "surprisingly", "honestly"]
OPENERS = ["", "overall ", "i think ", "to be fair ", "after a week "]


def clause(rng, positive):
    """A single sentiment clause, sometimes expressed through negation."""
    product = rng.choice(PRODUCTS)
    if rng.random() < 0.25:  # "not <opposite>" carries the sentiment
        return f"the {product} is not {rng.choice(BAD if positive else GOOD)}"
    adj = rng.choice(GOOD if positive else BAD)
    return f"the {product} is {rng.choice(ADVERBS)} {adj}"


def review(rng, positive):
    text = rng.choice(OPENERS) + " and ".join(
        clause(rng, positive) for _ in range(rng.randint(1, 2)))
    if rng.random() < 0.2:  # an opposite-sentiment aside makes it noisy
        text += ", but " + clause(rng, not positive)
    return text[0].upper() + text[1:] + "."


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--out", default="data/reviews.txt")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with open(args.out, "w", encoding="utf-8", newline="") as f:
        for _ in range(args.count):
            positive = rng.random() < 0.5
            f.write(f"{'pos' if positive else 'neg'}\t{review(rng, positive)}\n")


if __name__ == "__main__":
    main()
