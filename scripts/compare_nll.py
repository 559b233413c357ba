"""Paired comparison of two zoo runs' test NLLs, image by image.

`scripts/train_zoo.py` keeps every test image's importance-weighted
log-likelihood in `<work-dir>/scores_k<k>.npz`. Two runs scored on the same
binarized test images (the protocol fixes the binarization seed) can be
compared pair by pair, which is far tighter than comparing two means with
their own standard errors: most of an image's NLL is the image, not the model.

    python scripts/compare_nll.py runs/zoo/conv_vae_mnist runs/zoo/vae_mnist

prints each run's NLL, the mean per-image difference (first minus second)
with its standard error, and the share of images the first run scores better.
"""

import argparse
import os

import numpy as np


def load_nll(work_dir, k, examples=None):
    path = os.path.join(work_dir, f"scores_k{k}.npz")
    if not os.path.exists(path):
        raise SystemExit(f"compare_nll: error: no scores at {path} (run scripts/train_zoo.py to the end first)")
    with np.load(path) as saved:
        nll = -saved["log_likelihood"].astype("float64")
    if examples is not None and len(nll) < examples:
        raise SystemExit(f"compare_nll: error: --examples {examples} but {path} holds {len(nll)} images")
    return nll[:examples]


def compare(first, second):
    """NLLs per image of two runs over the same images -> summary dict."""
    if first.shape != second.shape:
        raise ValueError(f"the two runs scored different numbers of images: {first.shape[0]} and {second.shape[0]}")
    diff = first - second
    return {
        "images": int(diff.size),
        "first": float(first.mean()),
        "second": float(second.mean()),
        "difference": float(diff.mean()),
        "standard_error": float(diff.std(ddof=1) / np.sqrt(diff.size)),
        "first_better": float(np.mean(diff < 0)),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", help="work directory of the first run")
    parser.add_argument("second", help="work directory of the second run")
    parser.add_argument("--k", type=int, default=5000, help="importance samples of the saved scores")
    parser.add_argument("--examples", type=int, help="compare the first N test images only (default: all scored)")
    args = parser.parse_args(argv)
    if args.examples is not None and args.examples <= 0:
        parser.error(f"--examples: expected a positive number of images, got {args.examples}")
    result = compare(load_nll(args.first, args.k, args.examples), load_nll(args.second, args.k, args.examples))
    print(f"{result['images']} test images, k={args.k}")
    print(f"NLL {args.first}: {result['first']:.2f}   {args.second}: {result['second']:.2f}")
    print(f"difference (first - second): {result['difference']:.2f} ± {result['standard_error']:.2f} nats "
          f"(standard error of the paired difference); first better on {100 * result['first_better']:.0f}% "
          "of the images")


if __name__ == "__main__":
    main()
