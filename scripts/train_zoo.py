"""Trains, measures and writes a zoo entry (all but `vq_vae_mnist`, which has
its own script for its prior): `vae_mnist`, `beta_vae_mnist`,
`beta_vae_capacity_mnist`, `conv_vae_mnist`, `conv_vae_fashion_mnist`, `ae_mnist`,
`resnet_vae_mnist`, `iaf_vae_mnist`, `conv_vae_fashion_mnist_8bit` (the
8-bit grey values with a discretized logistic likelihood: no binarization,
bits per dimension as papers report them for 8-bit images), and the
disentanglement entries `beta_vae_sprites`, `beta_tcvae_sprites` and
`factor_vae_sprites` (the rendered dSprites grid, measured by the
disentanglement metrics: protocol in `scripts/zoo_sprites.py`).

    python scripts/train_zoo.py vae_mnist --manual-dir ../shared/data --data-dir .cache/tfds

Protocol (test NLL as in Burda et al. 2015):
- training data: the 60,000 training images, dynamically binarized (a fresh
  Bernoulli draw with the grey value as probability every time an image is
  used), shuffled every epoch;
- test NLL: the importance-weighted bound with k = `--eval-k` (5000)
  samples per image (`model.score`), over all 10,000 test images, each
  binarized once by a Bernoulli draw (seed 0); also the Monte Carlo ELBO from
  the same draws, and bits per dimension;
- a re-check value for CI: the same bound with k = 50 on the first 1,000
  test images (same binarization, noise seed 0), which `tests/test_zoo.py`
  recomputes from the shipped weights.

`--model-arg KEY=VALUE` (repeatable; VALUE read as JSON, else as a string)
overrides one argument of the recipe's model, for recipe comparisons: e.g.
`--model-arg blocks_per_stage=1 --work-dir runs/cmp/b1 --output-dir runs/cmp/b1`.

`fit` runs with `keras_vae.callbacks.BackupAndRestore` in `--work-dir`, so a
killed run resumes from its last finished epoch when started again with the
same command; a finished training phase is skipped and its wall time kept.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_vae  # noqa: E402
import zoo_sprites  # noqa: E402
from keras_vae import callbacks, data, files, penalties, plotting, sprites  # noqa: E402
from keras_vae.models.disentangled import LOCATELLO  # noqa: E402
from zoo_tools import (  # noqa: E402
    CHECK_EXAMPLES, Timings, figures_markdown, files_section, quality_markdown, run_record, test_images, write_entry,
    write_latent_figures,
)

CHECK_K = 50


def burda_learning_rate(epoch):
    """Burda et al. (2015): 3^i epochs at 1e-3 * 10^(-i/7), i = 0..7 (3280 epochs)."""
    i, end = 0, 1
    while epoch >= end and i < 7:
        i += 1
        end += 3**i
    return 1e-3 * 10 ** (-i / 7)


def _mlp(cls, name, **kwargs):
    defaults = {"likelihood": "bernoulli", "seed": 0, "name": name, "dtype": "float32"}
    return lambda **overrides: cls(**{**defaults, **kwargs, **overrides})


def _weighted_kl(cls, name, beta, **kwargs):
    """`_mlp` with a `penalties.WeightedKL(beta)` penalty, a new one per model
    (`--model-arg beta=...` sets its beta)."""
    make = _mlp(cls, name, **kwargs)
    return lambda **overrides: make(penalty=penalties.WeightedKL(beta=overrides.pop("beta", beta)), **overrides)


def decaying_learning_rate(epochs, start=1e-3, end=1e-5):
    """`start` decayed geometrically to `end` over `epochs` epochs."""
    return lambda epoch: start * (end / start) ** (min(epoch, epochs - 1) / max(epochs - 1, 1))


_CONV = {
    "architecture": "`ConvVAE(latent_dim=32, filters=(32, 64))`: encoder Conv2D(32, 3, stride 2) - "
    "Conv2D(64, 3, stride 2) - Dense(64); decoder Dense(7*7*64) - Conv2DTranspose(64, 3, stride 2) - "
    "Conv2DTranspose(32, 3, stride 2) - Conv2DTranspose(1, 3) (relu), Bernoulli likelihood",
    "batch_size": 100,
    "optimizer": lambda: keras.optimizers.Adam(1e-3),
}


_ADAM = {"optimizer": lambda: keras.optimizers.Adam(1e-3), "optimizer_text": "Adam 1e-3"}
_RESNET = {"latent_dim": 32, "filters": (16, 32, 32), "network": "residual", "blocks_per_stage": 2, "activation": "elu",
           "weight_norm": True}
_RESNET_TEXT = ("`ConvVAE(network=\"residual\", latent_dim=32, filters=(16, 32, 32), blocks_per_stage=2, "
                "activation=\"elu\", weight_norm=True{extra})`")
_RESNET_TRAINING = {
    "dataset": "mnist", "epochs": 200, "batch_size": 100,
    "optimizer": lambda: keras.optimizers.Adamax(2e-3, use_ema=True, ema_momentum=0.999),
    "optimizer_text": "Adamax, learning rate 2e-3 decayed geometrically to 2e-5 over the {epochs} epochs, with Polyak "
    "averaging of the weights (`use_ema=True, ema_momentum=0.999`): the saved weights and every number below "
    "are the averaged weights",
    "schedule": lambda epochs: decaying_learning_rate(epochs, 2e-3, 2e-5),
}
_MLP_512 = "MLP 784-512-256-{latent}-256-512-784 (relu), Bernoulli likelihood"
_LOCATELLO_TEXT = ("disentanglement_lib's architecture (Locatello et al. 2019): encoder four Conv2D(4x4, stride 2) "
                   "with 32, 32, 64, 64 filters (relu), Dense(256), 10 Gaussian latents; decoder Dense(256), "
                   "Dense(4*4*64), Conv2DTranspose(4x4, stride 2) with 64, 32, 32 and 1 filters, Bernoulli pixels")
_SPRITES = {
    "dataset": "sprites", "batch_size": 64, "epochs": 100, "steps_per_epoch": 1000,  # 100,000 steps
    "optimizer": lambda: keras.optimizers.Adam(1e-4, beta_1=0.9, beta_2=0.999, epsilon=1e-8),
    "optimizer_text": "Adam, learning rate 1e-4, beta_1 0.9, beta_2 0.999, epsilon 1e-8 (disentanglement_lib's)",
}


def _sprites_plan(name, milliseconds, hours):
    return (f"Planned before the run: 200-step chunks measured on the 2 cores alone at {milliseconds} ms per step "
            f"of 64 images, so the 100,000 steps (a third of disentanglement_lib's 300,000, chosen to fit this "
            f"machine beside the likelihood entries) are about {hours} hours, checkpointed every 1,000 steps with "
            f"`--work-dir runs/resume/{name}`; the metrics at disentanglement_lib's settings took 15 minutes for "
            f"one model.")


RECIPES = {
    "vae_mnist": {
        "model": _mlp(keras_vae.VAE, "vae_mnist", latent_dim=50, hidden_units=(200, 200), activation="tanh"),
        "architecture": "`VAE(latent_dim=50, hidden_units=(200, 200), activation=\"tanh\")`: "
        "Burda et al.'s 784-200-200-50 MLP, one stochastic layer, Bernoulli likelihood",
        "dataset": "mnist",
        "epochs": 3280,
        "batch_size": 20,  # Burda et al.'s; 100 gave 87.30 (0.25 ± 0.03 nats worse, paired)
        "output_bias": "data",  # as Burda et al.'s code; zeros gave 87.05 (0.95 ± 0.04 nats worse, paired)
        "steps_per_execution": 50,
        "optimizer": lambda: keras.optimizers.Adam(1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-4),
        "optimizer_text": "Adam (beta_1 0.9, beta_2 0.999, epsilon 1e-4) with Burda et al.'s schedule: "
        "3^i epochs at 1e-3 * 10^(-i/7) for i = 0..7",
        "schedule": lambda epochs: burda_learning_rate,
        "description": "VAE 784-200-200-50 (tanh), Bernoulli, dynamically binarized MNIST (Burda et al. 2015)",
        "reference": (86.76, "Burda et al. 2015, Table 1, VAE, 1 stochastic layer, k=5000"),
        "target": 87.0,
    },
    "beta_vae_mnist": {
        "model": _mlp(keras_vae.BetaVAE, "beta_vae_mnist", beta=4.0, latent_dim=10),
        "architecture": "`BetaVAE(beta=4, latent_dim=10)`: " + _MLP_512.format(latent=10)
        + ", objective reconstruction + 4 KL (Higgins et al. 2017)",
        "dataset": "mnist", "epochs": 100, "batch_size": 128, **_ADAM,
        "description": "beta-VAE (beta=4), 10 latents, MLP, dynamically binarized MNIST",
    },
    "beta_vae_capacity_mnist": {
        "model": _mlp(keras_vae.BetaVAE, "beta_vae_capacity_mnist", capacity=25.0, gamma=100.0,
                      capacity_steps=23400, latent_dim=10),
        "architecture": "`BetaVAE(capacity=25, gamma=100, capacity_steps=23400, latent_dim=10)`: "
        + _MLP_512.format(latent=10) + ", objective reconstruction + 100 |KL - C| with C raised linearly "
        "from 0 to 25 nats over the first 50 epochs (Burgess et al. 2018)",
        "dataset": "mnist", "epochs": 100, "batch_size": 128, **_ADAM,
        "description": "capacity-annealed beta-VAE (C: 0 to 25 nats), 10 latents, MLP, dynamically binarized MNIST",
    },
    "conv_vae_mnist": {
        "model": _mlp(keras_vae.ConvVAE, "conv_vae_mnist", latent_dim=32, filters=(32, 64)),
        **_CONV, "dataset": "mnist", "epochs": 300,
        "optimizer_text": "Adam, learning rate 1e-3 decayed geometrically to 1e-5 over the {epochs} epochs",
        "schedule": decaying_learning_rate,
        "description": "convolutional VAE, 32 latents, Bernoulli, dynamically binarized MNIST",
        "reference": (86.76, "Burda et al. 2015, Table 1, MLP VAE, 1 stochastic layer, k=5000: the bar to beat"),
        "target": 86.76,
    },
    "conv_vae_fashion_mnist": {
        "model": _mlp(keras_vae.ConvVAE, "conv_vae_fashion_mnist", latent_dim=32, filters=(32, 64)),
        **_CONV, "dataset": "fashion_mnist", "epochs": 100,
        "optimizer_text": "Adam, learning rate 1e-3 decayed geometrically to 1e-5 over the {epochs} epochs",
        "schedule": decaying_learning_rate,
        "description": "convolutional VAE, 32 latents, Bernoulli, dynamically binarized Fashion-MNIST",
    },
    "conv_vae_fashion_mnist_8bit": {
        "model": _mlp(keras_vae.ConvVAE, "conv_vae_fashion_mnist_8bit", latent_dim=32, filters=(32, 64),
                      likelihood="discretized_logistic"),
        **_CONV, "dataset": "fashion_mnist", "values": "8bit", "epochs": 100,
        "architecture": "`ConvVAE(latent_dim=32, filters=(32, 64), likelihood=\"discretized_logistic\")`: "
        "`conv_vae_mnist`'s networks (the encoder rescales the integers to [0, 1]), the decoder giving "
        "each pixel a location and a log-scale; the likelihood is the probability mass of each integer value "
        "0..255 under a logistic, the edge bins open (PixelCNN++'s, one component)",
        "optimizer_text": "Adam, learning rate 1e-3 decayed geometrically to 1e-5 over the {epochs} epochs",
        "schedule": decaying_learning_rate,
        "description": "convolutional VAE, 32 latents, discretized logistic, 8-bit Fashion-MNIST",
        "notes": "Planned before the run: an epoch of the first 10,000 training images took 7.5 s on the 2 "
        "cores (about 45 s for the 60,000, 75 min for 100 epochs); scoring ran at 6,400 samples per second, "
        "the decoder's convolutions taking nearly all of it (so about 2.2 hours for k=5000 over the 10,000 test "
        "images; XLA was 5x slower on this graph). One logistic per pixel rather than a mixture of 5: a "
        "paired comparison of 5-epoch runs on the first 10,000 training images (k=500, first 1,000 test "
        "images) gave 2127.70 nats (3.915 bits/dim) for one logistic against 2131.03 for the mixture, a "
        "difference of -3.33 ± 2.48, at half the training time (`python scripts/compare_nll.py "
        "runs/resume/conv_vae_fashion_mnist_8bit/likelihood/logistic "
        "runs/resume/conv_vae_fashion_mnist_8bit/likelihood/mixture --k 500`; both runs: "
        "`--train-examples 10000 --epochs 5 --eval-k 500 --eval-examples 1000`, the mixture with `--model-arg "
        "likelihood=discretized_logistic_mixture`).",
    },
    "resnet_vae_mnist": {
        "model": _mlp(keras_vae.ConvVAE, "resnet_vae_mnist", **_RESNET),
        "architecture": _RESNET_TEXT.format(extra="") + ": Kingma et al. (2016)'s MNIST ResNet: three stages of a "
        "stride-2 and a stride-1 pre-activation residual block (16, 32, 32 feature maps), weight-normalised "
        "convolutions with data-dependent initialisation on the first training batch, one 32-d Gaussian latent, "
        "diagonal posterior, standard normal prior, Bernoulli likelihood",
        **_RESNET_TRAINING,
        "description": "ResNet VAE, 32 latents, diagonal posterior, Bernoulli, dynamically binarized MNIST",
        "reference": (81.08, "Kingma et al. 2016, Table 1, ResNet VAE with a diagonal posterior, k=128"),
        "target": 81.0,
        "notes": "Planned before the run: one epoch measured at 123 s on the 2 cores alone (205 ms per step of "
        "100 images; 150 to 250 s while sharing them), so 200 epochs are about 7 hours of training alone, run "
        "over several sessions with `--work-dir runs/resume/resnet_vae_mnist`, whose backups are committed so "
        "that a new machine resumes. Two blocks per stage rather than one: a paired comparison of 8-epoch runs "
        "(k=500, first 1,000 test images) gave 95.00 vs 96.57 nats, a difference of -1.57 ± 0.09, at twice "
        "the time per epoch (`python scripts/compare_nll.py runs/resume/resnet_vae_mnist/blocks_per_stage/b2 "
        "runs/resume/resnet_vae_mnist/blocks_per_stage/b1 --k 500`; both runs: `--epochs 8 --eval-k 500 "
        "--eval-examples 1000 --model-arg blocks_per_stage=N`).",
    },
    "iaf_vae_mnist": {
        "model": _mlp(keras_vae.ConvVAE, "iaf_vae_mnist", **_RESNET, dense_units=(450,), posterior="iaf"),
        "architecture": _RESNET_TEXT.format(extra=', dense_units=(450,), posterior=\"iaf\"') + ": `resnet_vae_mnist`'s "
        "networks with a 450-unit dense layer between the last stage and the latent (mirrored in the decoder; the "
        "fully connected layer of Kingma et al.'s MNIST ResNet) and an inverse autoregressive flow posterior "
        "(`keras_vae.posteriors.IAF`: 2 steps of 320-320 masked autoregressive networks conditioned on a 64-d "
        "encoder context, Kingma et al. 2016), standard normal prior, Bernoulli likelihood",
        **_RESNET_TRAINING,
        "description": "ResNet VAE with an IAF posterior, 32 latents, Bernoulli, dynamically binarized MNIST",
        "reference": (79.10, "Kingma et al. 2016, Table 1, ResNet VAE with IAF (8 steps, width 1920), k=128; "
                      "2 steps of width 320: 79.77"),
        "target": 79.1,
        "notes": "Planned before the run: 8-epoch trials took 81 to 143 s per epoch on the 2 cores (median about "
        "95; 135 to 165 ms per step of 100 images), so 200 epochs are about 5.5 hours of training alone, and "
        "scoring about 5.5 hours more (as `resnet_vae_mnist`'s), run over several sessions with `--work-dir "
        "runs/resume/iaf_vae_mnist`, whose backups are committed so that a new machine resumes. The 450-unit "
        "dense layer: a paired comparison of 8-epoch runs (k=500, first 1,000 test images) gave 91.05 against "
        "92.78 nats without it, a difference of -1.73 ± 0.08, better on 78% of the images, at no measurable cost "
        "per step (`python scripts/compare_nll.py runs/resume/iaf_vae_mnist/recipe/dense450 "
        "runs/resume/iaf_vae_mnist/recipe/base --k 500`; both runs: `--epochs 8 --eval-k 500 --eval-examples "
        "1000`, the first with `--model-arg dense_units=[450]`, the second with `--model-arg dense_units=[]`, "
        "which builds the same 630,659-parameter model). "
        "Free bits were not tried: on a flow posterior the floor holds for the 32 dimensions as one group "
        "(0.25 nats each: 8 nats), and the KL was 27 nats after the first epoch and 29 after eight, so the "
        "floor would not act.",
    },
    "beta_vae_sprites": {
        "model": _weighted_kl(keras_vae.ConvVAE, "beta_vae_sprites", beta=4.0, **LOCATELLO),
        "architecture": "`ConvVAE(**LOCATELLO, penalty=penalties.WeightedKL(beta=4))`: " + _LOCATELLO_TEXT
        + "; objective reconstruction + 4 KL (Higgins et al. 2017)",
        **_SPRITES, "notes": _sprites_plan("beta_vae_sprites", 54, "1.5") + "\n\nHow the run went: the 100 chunks "
        "ran at 54 to 74 ms per step (median 62; the plan's 54 was measured with the cores alone), 6,286 s of "
        "training in one session without pauses. The metrics took 20.4 minutes over two sessions, not the "
        "planned 15: the beta-VAE score (548 s) finished in the first; the process was stopped (SIGSTOP, "
        "2026-12-06 23:08 UTC) for a CI run and ended with that session, and the rest (FactorVAE score to modularity, 676 s) ran from "
        "the saved beta-VAE score on 2026-12-07. The KL sits in 7 of the 10 units (3 below 0.001 nats), close "
        "to the 7 active dimensions the FactorVAE score counts.",
        "description": "beta-VAE (beta=4), 10 latents, disentanglement_lib's conv networks, rendered dSprites",
    },
    "beta_tcvae_sprites": {
        "model": _mlp(keras_vae.BetaTCVAE, "beta_tcvae_sprites", dataset_size=sprites.NUM_IMAGES, beta=6.0),
        "architecture": "`BetaTCVAE(dataset_size=737280, beta=6)`: " + _LOCATELLO_TEXT + "; objective "
        "reconstruction + MI + 6 TC + dimension-wise KL, minibatch-weighted sampling (Chen et al. 2018)",
        **_SPRITES, "notes": _sprites_plan("beta_tcvae_sprites", 53, "1.5") + "\n\nHow the run went: the 100 "
        "chunks ran over two sessions at 54 to 116 ms per step (median 63; 95 to 116 while the test suite ran "
        "beside it, 54 to 69 with the cores alone). The training wall time above, 3.04 h, includes two pauses "
        "(SIGSTOP) inside chunks, 2026-12-07 01:28-01:59 UTC for a benchmark and 01:59-02:35 for a CI run, 67 "
        "minutes in all, so about 1.93 hours of training. The first session stopped after chunk 60 (03:13 UTC); "
        "the next, on a new machine, resumed from that chunk's committed backup at 03:52. The KL sits in 4 of "
        "the 10 units (2.97, 2.64, 2.32, 1.61 nats), the other 6 below 0.001: "
        "beta=6 on the total correlation closed more units than `beta_vae_sprites`' beta=4 on the whole KL "
        "(7 open), with a higher MIG (0.206 against 0.155) and a lower FactorVAE score (0.483 against 0.627). "
        "The training log's minibatch-weighted estimates after the last chunk read MI 17.66, TC 126.02 and "
        "dimension-wise KL -134.24 nats. Chen et al.'s weights 1/(N B) (N = 737,280 images, B = 64 per batch) "
        "shift each log-density estimate by -log N = -13.51, so these carry constants without gradient, +log N, "
        "+(D - 1) log N = +121.60 and -D log N = -135.11 (D = 10), that cancel in their sum, the KL (9.43). "
        "Without them: MI 4.15, at the estimator's ceiling log B = 4.16 (each code is far likelier under its "
        "own image than under the batch's others), TC 4.42, dimension-wise KL 0.87.",
        "description": "beta-TCVAE (beta=6), 10 latents, disentanglement_lib's conv networks, rendered dSprites",
    },
    "factor_vae_sprites": {
        "model": _mlp(keras_vae.FactorVAE, "factor_vae_sprites", gamma=35.0),
        "architecture": "`FactorVAE(gamma=35)`: " + _LOCATELLO_TEXT + "; objective the ELBO's + 35 TC, TC "
        "from a 6 x 1000 discriminator trained beside it by Adam(1e-4, beta_1 0.5, beta_2 0.9) (Kim & Mnih 2018)",
        **_SPRITES, "notes": _sprites_plan("factor_vae_sprites", 86, "2.4") + "\n\nHow the run went: the 100 "
        "chunks ran over two sessions at 90 to 192 ms per step (median 97; 88 chunks with the cores alone at 90 "
        "to 110, above the plan's 86; 12 at 113 to 192 while the test suite or other work ran beside it, logged "
        "in `runs/resume/factor_vae_sprites/pauses.txt`). The training wall time above is the sum of the "
        "chunks' times; the first session stopped after chunk 45 (SIGSTOP 2026-12-07 06:11 UTC, its unfinished "
        "chunk discarded), and the next, on a new machine, resumed from that chunk's committed backup at 07:20. "
        "The KL sits in 4 of the 10 units (4.10, 4.08, 3.56, 2.35 nats), the other 6 at 0.001 to 0.002; the "
        "discriminator's estimate of the total correlation (chunk means) peaked at 0.26 nats in chunk 2 and "
        "stayed between 0.019 and 0.035 from chunk 32 on.",
        "description": "FactorVAE (gamma=35), 10 latents, disentanglement_lib's conv networks, rendered dSprites",
    },
    "ae_mnist": {
        "model": _mlp(keras_vae.AE, "ae_mnist", latent_dim=10),
        "architecture": "`AE(latent_dim=10)`: " + _MLP_512.format(latent=10) + ", no KL: the deterministic "
        "baseline",
        "dataset": "mnist", "epochs": 50, "batch_size": 128, **_ADAM,
        "description": "deterministic autoencoder baseline, 10-d code, MLP, dynamically binarized MNIST",
    },
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("entry", choices=sorted(RECIPES))
    parser.add_argument("--epochs", type=int, help="default: the recipe's")
    parser.add_argument("--batch-size", type=int, help="training minibatch (default: the recipe's)")
    parser.add_argument("--eval-k", type=int, default=5000)
    parser.add_argument("--eval-examples", type=int, default=10000, help="test images in the NLL (all: 10000)")
    parser.add_argument("--train-examples", type=int, help="train on the first N training images only "
                        "(recipe comparisons on a subset; default: all 60000)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--manual-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-bias", choices=OUTPUT_BIASES, help="decoder output bias at the start: "
                        "'zeros' (Keras' default) or 'data' (the logit of each pixel's mean grey value over the "
                        "training images, as in Burda et al.'s code; MLP decoders only). Default: the recipe's")
    parser.add_argument("--model-arg", action="append", default=[], type=model_arg, metavar="KEY=VALUE",
                        help="override one argument of the recipe's model (repeatable; VALUE as JSON)")
    parser.add_argument("--steps-per-epoch", type=int, help="sprites entries: training steps per checkpointed "
                        "chunk (default: the recipe's, 1000)")
    parser.add_argument("--metric-points", type=int, help="sprites entries: training points of every "
                        "disentanglement metric, half as many test points (default: disentanglement_lib's settings)")
    parser.add_argument("--work-dir", help="checkpoints (default runs/zoo/<entry>)")
    parser.add_argument("--output-dir", help="the zoo entry (default zoo/<entry>)")
    args = parser.parse_args(argv)
    args.epochs = args.epochs or RECIPES[args.entry]["epochs"]
    args.batch_size = args.batch_size or RECIPES[args.entry]["batch_size"]
    args.output_bias = args.output_bias or RECIPES[args.entry].get("output_bias", "zeros")
    args.work_dir = args.work_dir or os.path.join("runs", "zoo", args.entry)
    args.output_dir = args.output_dir or os.path.join("zoo", args.entry)
    return args


def model_arg(text):
    """`KEY=VALUE` -> `(KEY, VALUE)`, VALUE parsed as JSON where it parses."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY an argument name, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def schedule(recipe, epochs):
    """The recipe's learning-rate schedule (a function of the epoch) for a run
    of `epochs` epochs: a recipe's `"schedule"` maps the run's length to it."""
    return recipe["schedule"](epochs) if "schedule" in recipe else None


def eight_bit(recipe):
    """Whether the recipe models the raw 8-bit pixel values (bits per dimension headline)."""
    return recipe.get("values") == "8bit"


def dataset(args, recipe, split, training, num_examples=None, batch_size=None, grey=False):
    """Training images binarized afresh at every use and shuffled; test
    images binarized once (seed 0) in order; or, with `grey`, the grey values.
    A recipe with `"values": "8bit"` takes the integer pixel values as they
    are (no binarization), shuffled for training, in order for testing."""
    values = "unit" if grey else recipe.get("values", "unit")
    binarize = None if grey or values != "unit" else "dynamic" if training else "static"
    if training and num_examples is None:
        num_examples = args.train_examples
    return data.load_dataset(
        recipe["dataset"], split=split, batch_size=batch_size or args.batch_size,
        binarize=binarize, values=values, shuffle=training, seed=args.seed if training else 0,
        data_dir=args.data_dir, manual_dir=args.manual_dir, num_examples=num_examples,
    )


def train(args, recipe, timings):
    path = os.path.join(args.work_dir, "model.keras")
    if os.path.exists(path):
        return keras.models.load_model(path)
    keras.utils.set_random_seed(args.seed)
    model = recipe["model"](**dict(args.model_arg))
    if model.initializes_from_data:  # a resumed run restores its trained weights over this
        model.initialize_from_data(next(iter(dataset(args, recipe, "train", training=True))), seed=args.seed)
    if args.output_bias == "data":  # a resumed run restores its trained bias over this
        initialize_output_bias(model, dataset(args, recipe, "train", training=False, batch_size=10000, grey=True))
    # Several steps per call: the same updates with less per-step overhead (small MLP batches).
    model.compile(optimizer=recipe["optimizer"](), steps_per_execution=recipe.get("steps_per_execution", 1))
    backup = callbacks.BackupAndRestore(os.path.join(args.work_dir, "backup"), delete_checkpoint=False)
    run_callbacks = [
        backup,
        timings.callback("fit"),
        keras.callbacks.CSVLogger(os.path.join(args.work_dir, "history.csv"), append=True),
    ]
    if schedule(recipe, args.epochs):
        run_callbacks.append(keras.callbacks.LearningRateScheduler(schedule(recipe, args.epochs)))
    if zoo_sprites.is_sprites(recipe):  # steps in chunks of `steps_per_epoch`, one backup per chunk
        train_data, chunk = zoo_sprites.training_data(args), {
            "steps_per_epoch": args.steps_per_epoch or recipe["steps_per_epoch"]}
    else:
        train_data, chunk = dataset(args, recipe, "train", training=True), {}
    model.fit(train_data, epochs=args.epochs, verbose=2, callbacks=run_callbacks, **chunk)
    files.save_model(model, path)
    backup.remove_backup()  # only now: a kill before the save still resumes
    return model


OUTPUT_BIASES = ("zeros", "data")


def initialize_output_bias(model, grey_images, clip=1e-3):
    """Sets the decoder's output bias to the logit of each pixel's mean grey
    value over `grey_images` (clipped to [clip, 1 - clip]): an untrained
    Bernoulli decoder then predicts the average image rather than 0.5 for
    every pixel. Burda et al.'s code starts this way."""
    likelihood = model.get_config().get("likelihood")
    if likelihood != "bernoulli":
        raise ValueError(f"`--output-bias data` needs a Bernoulli likelihood. Received: likelihood={likelihood!r}")
    bias = model.decoder.get_layer("params").bias
    total, count = 0.0, 0
    for x in grey_images:
        total, count = total + np.asarray(x, "float64").sum(axis=0), count + len(x)
    mean = np.clip(np.reshape(total / count, -1), clip, 1 - clip)
    if mean.shape != tuple(bias.shape):
        raise ValueError(f"`--output-bias data` needs a decoder with one output bias per pixel ({mean.shape}). "
                         f"Received: a bias of shape {tuple(bias.shape)}")
    bias.assign(np.log(mean) - np.log1p(-mean))


def reconstruction_losses(model, ds):
    """-log p(x | decoder(encoder(x))) per example, nats."""
    return np.concatenate([-model.decode(model.latent(x)).log_prob(x).numpy() for x in ds])


def resumable_scores(model, ds, k, path, timings, save_every=1):
    """`model.score(ds, k, seed=0)`, batch by batch, with the finished
    batches kept in `path`: a killed evaluation resumes where it stopped.
    (`score` draws each batch's noise from the same seed, so this equals one
    call over the whole dataset.) The time spent is added to the
    "evaluation" phase of `timings` at every save, so it adds up across
    resumed runs."""
    done, start, last = {"elbo": [], "log_likelihood": []}, 0, time.perf_counter()
    if os.path.exists(path):
        with np.load(path) as saved:
            done = {key: [saved[key]] for key in done}
            start = int(saved["batches"])

    def save(batches):
        nonlocal last
        arrays = {key: np.concatenate(values) for key, values in done.items()}
        files.replace_atomically(path, lambda tmp: np.savez(tmp, batches=batches, **arrays), suffix=".npz")
        timings.add("evaluation", time.perf_counter() - last)
        last = time.perf_counter()

    for i, x in enumerate(ds):
        if i < start:
            continue
        for key, values in model.score(x, num_samples=k, seed=0, batch_size=len(x)).items():
            done[key].append(values)
        if (i + 1) % save_every == 0:
            save(i + 1)
    save(max(start, i + 1))
    return {key: np.concatenate(values) for key, values in done.items()}


def measure(args, recipe, model, timings):
    """The card's numbers; their wall time goes to the "evaluation" phase of
    `timings` (from zero unless a killed evaluation is being resumed)."""
    scores_path = os.path.join(args.work_dir, f"scores_k{args.eval_k}.npz")
    if not os.path.exists(scores_path):
        timings.set("evaluation", 0.0)
    start = time.perf_counter()
    test = dataset(args, recipe, "test", training=False, num_examples=args.eval_examples, batch_size=100)
    logs = model.evaluate(test, return_dict=True, verbose=0)
    steps = int(model.optimizer.iterations.numpy())
    check = dataset(args, recipe, "test", training=False, num_examples=CHECK_EXAMPLES, batch_size=100)
    if not model.defines_density:  # AE, ConvAE: reconstruction only
        metrics = {
            "test_reconstruction_loss": logs["reconstruction_loss"],
            "check_reconstruction_loss": float(reconstruction_losses(model, check).mean()),
            "check_examples": CHECK_EXAMPLES,
            "steps": steps,
        }
        timings.add("evaluation", time.perf_counter() - start)
        return metrics
    timings.add("evaluation", time.perf_counter() - start)
    scores = resumable_scores(model, test, args.eval_k, scores_path, timings)
    start = time.perf_counter()
    nll = -scores["log_likelihood"]
    pixels = float(np.prod(model.data_shape))
    metrics = {
        "test_nll": float(nll.mean()),
        "test_nll_standard_error": float(nll.std(ddof=1) / np.sqrt(len(nll))),
        "test_bits_per_dim": float(nll.mean() / (pixels * np.log(2))),
        "test_bits_per_dim_standard_error": float(nll.std(ddof=1) / np.sqrt(len(nll)) / (pixels * np.log(2))),
        "test_elbo_k_draws": float(scores["elbo"].mean()),
        "test_elbo": logs["elbo"],
        "test_kl": logs["kl"],
        "test_reconstruction_loss": logs["reconstruction_loss"],
        "eval_k": args.eval_k,
        "eval_examples": int(len(nll)),
        "check_nll": float(-model.log_likelihood(check, num_samples=CHECK_K, seed=0).mean()),
        "check_k": CHECK_K,
        "check_examples": CHECK_EXAMPLES,
        "steps": steps,
    }
    timings.add("evaluation", time.perf_counter() - start)
    return metrics


def numbers_table(recipe, m):
    """The card's table rows for what `measure` measured."""
    if "test_nll" not in m:
        return [
            ("test reconstruction loss, nats (-log p(x \\| decoder(encoder(x))))",
             f"**{m['test_reconstruction_loss']:.2f}**", ""),
            (f"CI re-check: reconstruction loss, first {m['check_examples']} test images",
             f"{m['check_reconstruction_loss']:.3f}", ""),
        ]
    nll = f"**{m['test_nll']:.2f}** ± {m['test_nll_standard_error']:.2f} (standard error over images"
    reference = ""
    if "target" in recipe:
        verdict = "meets" if m["test_nll"] <= recipe["target"] else "misses"
        nll += f"; {verdict} the target {recipe['target']}"
        reference = "{} ({})".format(*recipe["reference"])
    bits = f"{m['test_bits_per_dim']:.4f}"
    if eight_bit(recipe):  # the headline: the number papers report for 8-bit images
        bits = f"**{m['test_bits_per_dim']:.3f}** ± {m['test_bits_per_dim_standard_error']:.3f}"
    return [
        (f"test NLL, nats (k={m['eval_k']})", nll + ")", reference),
        ("test bits per dimension", bits, ""),
        (f"test ELBO, mean over the same {m['eval_k']} draws", f"{m['test_elbo_k_draws']:.2f}", ""),
        ("test ELBO / KL / reconstruction (`evaluate`, 1 draw)",
         f"{m['test_elbo']:.2f} / {m['test_kl']:.2f} / {m['test_reconstruction_loss']:.2f}", ""),
        (f"CI re-check: NLL, k={m['check_k']}, first {m['check_examples']} test images", f"{m['check_nll']:.3f}", ""),
    ]


def model_card(args, recipe):
    def card(record):
        m, t = record["metrics"], record["wall_seconds"]
        hours = t.get("fit", 0) / 3600
        fit_time = f"{hours:.2f} h" if hours >= 1 else f"{hours * 60:.1f} min"
        rows = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in numbers_table(recipe, m))
        test_images = ("their 8-bit values (integers 0..255)" if eight_bit(recipe)
                       else "each binarized once (Bernoulli draw, seed 0)")
        if "test_nll" in m:
            dims = int(np.prod(record["config"]["data_shape"]))
            evaluation = (
                f"- Test NLL: `model.score(test, num_samples={m['eval_k']}, seed=0)`, the importance-weighted\n"
                f"  bound of Burda et al. with k={m['eval_k']} draws from q(z|x) per image, over\n"
                f"  {m['eval_examples']} test images, {test_images};\n"
                f"  minus its mean. Bits per dimension: NLL / ({dims} ln 2)."
            )
        else:
            evaluation = f"- Test reconstruction loss: `model.evaluate(test)` on the 10,000 test images, {test_images}."
        training_data = ("their 8-bit grey values as they are (integers 0..255, no binarization)"
                         if eight_bit(recipe) else
                         "dynamically binarized\n  (a fresh Bernoulli draw per pixel every time an image is used)")
        notes = f"\n{recipe['notes']}\n" if "notes" in recipe else ""
        train_count = f"the first {args.train_examples:,}" if args.train_examples else "60,000"
        bias_text = ("\n- Decoder output bias at the start: the logit of each pixel's mean grey value over the\n"
                     "  training images, clipped to [0.001, 0.999] (`--output-bias data`)."
                     if args.output_bias == "data" else "")
        return f"""# {args.entry}: {recipe["description"]}

{recipe["architecture"]}; trained {args.epochs} epochs ({m["steps"]} steps of batch {args.batch_size}).

![64 samples from the prior, seed 0](samples.png)

![test images (top) and reconstructions (bottom)](reconstructions.png)

{figures_markdown(args.output_dir)}## Numbers

| measure | value | reference |
|---|---|---|
{rows}

Wall time on a 2-core CPU machine without GPU (shared with other work):
training {fit_time}, evaluation {t.get("evaluation", 0) / 60:.1f} min.
Run on {record["date"]} with TensorFlow {record["versions"]["tensorflow"]}, Keras {record["versions"]["keras"]}.

{quality_markdown(args.output_dir)}## Protocol

Command (from the repository root; `--manual-dir` points at the official
files for machines without internet):

    {record["command"]}

- Training data: {recipe["dataset"]} train split ({train_count} images), {training_data}, shuffled each epoch.
- Optimizer: {recipe["optimizer_text"].format(epochs=args.epochs)}.{bias_text}
{evaluation}
{notes}
{files_section(args.entry, record)}"""

    return card


def main(argv=None):
    args = parse_args(argv)
    recipe = RECIPES[args.entry]
    os.makedirs(args.work_dir, exist_ok=True)
    timings = Timings(os.path.join(args.work_dir, "timings.json"))
    model = train(args, recipe, timings)
    if zoo_sprites.is_sprites(recipe):
        return main_sprites(args, recipe, model, timings)
    metrics = measure(args, recipe, model, timings)
    print(json.dumps(metrics, indent=2), flush=True)

    os.makedirs(args.output_dir, exist_ok=True)
    stale = os.path.join(args.output_dir, "sample_quality.json")  # measured on the weights this run replaces
    if os.path.exists(stale):
        os.remove(stale)
    plotting.plot_samples(model, os.path.join(args.output_dir, "samples.png"), num_samples=64, seed=0)
    test_batch = next(iter(dataset(args, recipe, "test", training=False, num_examples=16, batch_size=16)))
    plotting.plot_reconstructions(model, test_batch, os.path.join(args.output_dir, "reconstructions.png"))
    write_latent_figures(model, args.output_dir, *test_images(recipe["dataset"], model, args.data_dir, args.manual_dir))
    values = recipe.get("values", "unit")
    record = run_record(args, dataset=recipe["dataset"], values=values, config=model.get_config(), metrics=metrics,
                        wall_seconds=timings.values)
    headline = ({"test_nll": round(metrics["test_nll"], 2), "eval_k": args.eval_k} if "test_nll" in metrics
                else {"test_reconstruction_loss": round(metrics["test_reconstruction_loss"], 2)})
    if eight_bit(recipe):
        headline = {"test_bits_per_dim": round(metrics["test_bits_per_dim"], 3), **headline}
    write_entry(model, args.output_dir, recipe["description"], headline, record, model_card(args, recipe))
    print(f"wrote {args.output_dir}")
    return 0


def main_sprites(args, recipe, model, timings):
    metrics = zoo_sprites.measure(args, model, timings)
    print(json.dumps(metrics, indent=2), flush=True)
    os.makedirs(args.output_dir, exist_ok=True)
    zoo_sprites.write_figures(model, args.output_dir)
    record = run_record(args, dataset="sprites (rendered)", values="binary", config=model.get_config(),
                        metrics=metrics, wall_seconds=timings.values)
    write_entry(model, args.output_dir, recipe["description"], zoo_sprites.headline(metrics), record,
                zoo_sprites.card(args, recipe))
    print(f"wrote {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
