"""The part of a binarized test NLL that no model can remove.

The zoo binarizes a grey image x by drawing each pixel from Bernoulli(x_i).
Whatever the model, the expected NLL of such draws is at least their entropy
given the grey image, sum_i H(x_i) with H(p) = -p ln p - (1 - p) ln(1 - p):
the noise the binarization adds. This prints its mean over a test split (nats
per image, with the standard error over images), which puts a dataset's NLL in
context: a dataset with more grey pixels has a higher floor.

    python scripts/binarization_entropy.py mnist fashion_mnist --manual-dir ../shared/data --data-dir .cache/tfds
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from keras_vae import data  # noqa: E402


def binarization_entropy(images):
    """Per-image sum of the pixels' Bernoulli entropies, in nats (float64)."""
    p = np.clip(np.asarray(images, np.float64).reshape(len(images), -1), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log(p) + (1 - p) * np.log1p(-p))
    return np.nan_to_num(h).sum(axis=1)  # 0 ln 0 = 0 at p = 0 and p = 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="+", choices=data.DATASETS)
    parser.add_argument("--split", default="test")
    parser.add_argument("--data-dir")
    parser.add_argument("--manual-dir", help="folder with the official files (or holding <dataset>/)")
    args = parser.parse_args(argv)
    for name in args.datasets:
        start = time.perf_counter()
        ds = data.load_dataset(name, split=args.split, batch_size=1000, shuffle=False,
                               data_dir=args.data_dir, manual_dir=args.manual_dir)
        h = np.concatenate([binarization_entropy(batch) for batch in ds.as_numpy_iterator()])
        print(f"{name} {args.split}: {len(h)} images, binarization entropy {h.mean():.2f} "
              f"± {h.std(ddof=1) / np.sqrt(len(h)):.2f} nats per image "
              f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
