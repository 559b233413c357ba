"""Throughput of `model.score` (the importance-weighted bound) against the
size of the decoder's batch, `score_rows`.

`score` runs the decoder on `score_rows // batch` draws per test image at a
time. For the zoo's MLP and convolutional VAEs (untrained: the cost does not
depend on the weights) on 100 real MNIST test images, binarized once, this
times `score` with k = `--samples` for each `score_rows` in `--rows`,
interleaved round by round, and prints the median samples/s (images x k per
second) and its ratio to the first value of `--rows` measured in the same run.

    python scripts/benchmark_score.py --manual-dir ../shared/data/mnist
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import keras_vae  # noqa: E402
from keras_vae import data  # noqa: E402

MODELS = {
    "VAE 784-200-200-50": lambda: keras_vae.VAE(latent_dim=50, hidden_units=(200, 200), activation="tanh"),
    "ConvVAE (32, 64)": lambda: keras_vae.ConvVAE(latent_dim=32, filters=(32, 64)),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="8192,4096,2048,1024")
    parser.add_argument("--samples", type=int, default=1000, help="k per image in each timed call")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--manual-dir", default=None)
    args = parser.parse_args()
    rows = [int(r) for r in args.rows.split(",")]
    ds = data.load_dataset("mnist", split="test", batch_size=100, binarize="static", shuffle=False, seed=0,
                           data_dir=args.data_dir, manual_dir=args.manual_dir, num_examples=100)
    x = np.concatenate([b.numpy() for b in ds])
    for name, build in MODELS.items():
        scorers = {}
        for r in rows:  # one model per size: each keeps its own traced function
            scorer = build()  # untrained weights: the cost does not depend on them
            scorer.score_rows = r
            scorer.score(x, num_samples=r // len(x) + 1)  # trace, not timed
            scorers[r] = scorer
        rates = {r: [] for r in rows}
        for i in range(args.rounds):
            for r in rows if i % 2 == 0 else rows[::-1]:
                start = time.perf_counter()
                scorers[r].score(x, num_samples=args.samples)
                rates[r].append(len(x) * args.samples / (time.perf_counter() - start))
        base = statistics.median(rates[rows[0]])
        print(f"{name}: k={args.samples}, {len(x)} images, median of {args.rounds} rounds")
        for r in rows:
            rate = statistics.median(rates[r])
            print(f"  score_rows {r:5d}: {rate:9.0f} samples/s  ratio {rate / base:.2f}", flush=True)


if __name__ == "__main__":
    main()
