"""Trains and measures the VQ-VAE zoo entry on MNIST: the autoencoder in the
keras.io configuration, then its gated PixelCNN prior; writes the model file,
sample grids, `metrics.json` and the model card.

    python scripts/train_vq_vae.py --manual-dir ../shared/data --data-dir .cache/tfds

Protocol (keras.io "Vector-Quantized Variational Autoencoders" as baseline):
- data: MNIST grey values in [0, 1] (no binarization), train 60,000 / test
  10,000, batch 128, shuffled each epoch;
- VQVAE: D=16, K=128, beta=0.25, encoder conv 32-64 (stride 2) to a 7x7 code
  map, codebook learned by the codebook loss, Adam 1e-3, `--epochs` 30.
  Gaussian likelihood with sigma = sqrt(var / 2), var the train-set pixel
  variance: its reconstruction term is sum (x - x')^2 / var per image, so the
  balance against the codebook/commitment terms (summed over the 7x7x16 map)
  is exactly keras.io's mean(x - x')^2 / var + mean vq terms, times 784.
- reconstruction quality: mean (x - reconstruct(x))^2 / var over the test
  set (and the train set, keras.io's figure);
- codebook: perplexity and fraction of codes used, over the test set
  (`evaluate`);
- prior: PixelCNN on the code maps of the first 54,000 train images,
  validated on the last 6,000 (keras.io's validation_split=0.1), Adam with
  the learning rate decayed from 1e-3 to 0 on a cosine over
  `--prior-epochs` 40 (`--prior-filters`, `--prior-layers`, `--prior-kernel-size`, `--prior-dropout`
  shape it; `--prior-shift N` trains it on the code maps of training images
  shifted by up to N pixels instead); cross-entropy in nats per code on that validation split and on
  the test set's code maps;
- a re-check value for CI: reconstruction MSE / variance and prior
  cross-entropy on the first 1,000 test images, which `tests/test_zoo.py`
  recomputes from the shipped weights.

The defaults are the shipped entry's settings (codebook initialised by
keras.io's `random_uniform`, prior dropout 0.25, 40 prior epochs), so the
command above reproduces it.

Every `fit` runs with `keras_vae.callbacks.BackupAndRestore` in `--work-dir`, so
an interrupted run resumes where it stopped when started again; finished
phases are skipped (their wall time is kept in `--work-dir/timings.json`).
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_vae  # noqa: E402
from keras_vae import callbacks, data, files, plotting  # noqa: E402
from zoo_tools import CHECK_EXAMPLES, Timings, files_section, run_record, write_entry  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--prior-epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--prior-filters", type=int, default=64)
    parser.add_argument("--prior-layers", type=int, default=6)
    parser.add_argument("--prior-kernel-size", type=int, default=3)
    parser.add_argument("--prior-dropout", type=float, default=0.25)
    parser.add_argument("--prior-shift", type=int, default=0,
                        help="train the prior on code maps of training images shifted by up to N pixels")
    parser.add_argument("--codebook-initializer", default="random_uniform",
                        help="Keras initializer of the codebook (default: keras.io's random_uniform, ±0.05; "
                        "'layer_default': VectorQuantizer's own, uniform with variance 1/D)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--manual-dir", default=None)
    parser.add_argument("--work-dir", default="runs/vq_vae_mnist", help="checkpoints and intermediate files")
    parser.add_argument("--output-dir", default="zoo/vq_vae_mnist", help="the zoo entry: model, grids, metrics, card")
    return parser.parse_args(argv)


def images(split, args, shuffle):
    return data.load_dataset(
        "mnist", split=split, batch_size=args.batch_size, binarize=None, shuffle=shuffle,
        seed=args.seed, data_dir=args.data_dir, manual_dir=args.manual_dir,
    )


def pixel_variance(ds):
    total = total_sq = count = 0.0
    for x in ds:
        x = x.numpy().astype("float64")
        total, total_sq, count = total + x.sum(), total_sq + np.square(x).sum(), count + x.size
    mean = total / count
    return total_sq / count - mean**2


def check_values(model, test, test_codes, variance):
    """The CI re-check (`tests/test_zoo.py`): per-image reconstruction MSE /
    variance and prior cross-entropy, averaged over the first
    `CHECK_EXAMPLES` test images (`test_codes`: the test set's code maps)."""
    x = next(iter(test.unbatch().batch(CHECK_EXAMPLES))).numpy()
    mse = ((model.reconstruct(x).numpy() - x) ** 2).mean(axis=(1, 2, 3)) / variance
    codes = test_codes[:CHECK_EXAMPLES]
    nats = -model.pixelcnn.log_prob(codes).numpy() / codes[0].size
    return {
        "check_mse_over_variance": float(mse.mean()),
        "check_prior_nats_per_code": float(nats.mean()),
        "check_examples": CHECK_EXAMPLES,
    }


def normalized_mse(model, ds, variance):
    se = count = 0.0
    for x in ds:
        se += float(tf.reduce_sum(tf.square(model.reconstruct(x) - x)))
        count += int(tf.size(x))
    return se / count / variance


def train_autoencoder(args, timings, variance):
    path = os.path.join(args.work_dir, "vq_vae.keras")
    if os.path.exists(path):
        return keras.models.load_model(path)
    keras.utils.set_random_seed(args.seed)
    model = keras_vae.VQVAE(
        num_codes=128, code_dim=16, filters=(32, 64), beta=0.25, codebook_update="loss",
        likelihood="gaussian", likelihood_scale=float(np.sqrt(variance / 2)), seed=args.seed, name="vq_vae",
        codebook_initializer=None if args.codebook_initializer == "layer_default" else args.codebook_initializer,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    backup = callbacks.BackupAndRestore(os.path.join(args.work_dir, "backup_vq_vae"), delete_checkpoint=False)
    model.fit(
        images("train", args, shuffle=True), epochs=args.epochs, verbose=2,
        callbacks=[backup, timings.callback("vq_vae_fit")],
    )
    files.save_model(model, path)
    backup.remove_backup()  # only now: a kill before the save still resumes
    return model


def with_prior_settings(model, args):
    """The trained autoencoder with an untrained prior of the requested shape."""
    settings = {"prior_filters": args.prior_filters, "prior_layers": args.prior_layers,
                "prior_kernel_size": args.prior_kernel_size,
                "prior_dropout": args.prior_dropout}
    config = model.get_config()
    if all(config[k] == v for k, v in settings.items()):
        return model
    fresh = type(model).from_config({**config, **settings})
    for part in ("encoder", "decoder", "quantizer"):
        getattr(fresh, part).set_weights(getattr(model, part).get_weights())
    fresh.compile(optimizer=keras.optimizers.Adam(1e-3))
    fresh._build_optimizer()  # saved with its slots, so the file reloads its step count
    fresh.optimizer.iterations.assign(model.optimizer.iterations)
    return fresh


def shifted(x, dy, dx):
    """Images moved by (dy, dx) pixels, zeros shifted in."""
    pad = max(abs(dy), abs(dx))
    height, width = x.shape[1], x.shape[2]
    padded = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    return padded[:, pad - dy : pad - dy + height, pad - dx : pad - dx + width]


def shifted_code_maps(model, ds, max_shift):
    """`[N, V, h, w]`: the code maps of every image under each of the V =
    (2 max_shift + 1)^2 shifts (the unshifted one included)."""
    shifts = [(dy, dx) for dy in range(-max_shift, max_shift + 1) for dx in range(-max_shift, max_shift + 1)]
    return np.stack([model.code_maps(ds.map(lambda x, s=s: shifted(x, *s))) for s in shifts], axis=1)


def prior_training_data(args, train_codes, variants, split):
    """The prior's training set: the code maps as they are, or with
    `--prior-shift`, those of one randomly shifted copy of each image, drawn
    afresh every epoch."""
    if variants is None:
        return {"x": train_codes[:split], "batch_size": args.batch_size}
    ds = tf.data.Dataset.from_tensor_slices(variants[:split]).shuffle(split, seed=args.seed)
    num = variants.shape[1]
    ds = ds.map(lambda maps: maps[tf.random.uniform([], 0, num, dtype=tf.int32)])
    return {"x": ds.batch(args.batch_size).prefetch(tf.data.AUTOTUNE)}


def train_prior(args, timings, model, train_codes, variants=None):
    path = os.path.join(args.work_dir, "vq_vae_with_prior.keras")
    if os.path.exists(path):
        return keras.models.load_model(path)
    model = with_prior_settings(model, args)
    keras.utils.set_random_seed(args.seed + 1)
    split = int(0.9 * len(train_codes))
    steps = args.prior_epochs * (split // args.batch_size + bool(split % args.batch_size))
    model.pixelcnn.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-3, steps)))
    backup = callbacks.BackupAndRestore(os.path.join(args.work_dir, "backup_prior"), delete_checkpoint=False)
    history = model.pixelcnn.fit(
        **prior_training_data(args, train_codes, variants, split), validation_data=(train_codes[split:],),
        epochs=args.prior_epochs, verbose=2, callbacks=[backup, timings.callback("prior_fit")],
    )
    files.write_text(os.path.join(args.work_dir, "prior_history.json"), json.dumps(history.history))
    files.save_model(model, path)
    backup.remove_backup()  # only now: a kill before the save still resumes
    return model


def code_entropies(codes, num_codes):
    """Entropies (nats) of the training code maps' code frequencies: over all
    positions, and per position averaged over the positions (what a prior
    that knew only the position would pay per code)."""
    def entropy(values):
        p = np.bincount(values.ravel(), minlength=num_codes) / values.size
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())
    flat = codes.reshape(len(codes), -1)
    return {
        "train_code_entropy_nats": entropy(flat),
        "train_code_position_entropy_nats": float(np.mean([entropy(flat[:, i]) for i in range(flat.shape[1])])),
    }


BASELINE = {"mse_over_variance": 0.0444, "prior_nats_per_code": 1.034}


def codebook_init_text(config):
    initializer = config.get("codebook_initializer")
    if initializer is None:
        return "codebook initialised uniformly with variance 1/D (the layer's default)"
    arguments = ", ".join(f"{k}={v}" for k, v in initializer["config"].items() if v is not None)
    return f"codebook initialised by `keras.initializers.{initializer['class_name']}({arguments})`"


def model_card(record):
    m, t = record["metrics"], record["wall_seconds"]
    ok = lambda value, bound: "meets" if value <= bound else "misses"  # noqa: E731
    return f"""# vq_vae_mnist: VQ-VAE with a gated PixelCNN prior, MNIST

`keras_vae.VQVAE` in the keras.io configuration (D=16, K=128, beta=0.25,
codebook learned by the codebook loss, {codebook_init_text(record["config"])},
encoder conv 32-64 to a 7x7 code map), {record["args"]["epochs"]} epochs, and its `PixelCNN` prior
(`prior_filters={record["config"]["prior_filters"]}`, `prior_layers={record["config"]["prior_layers"]}`,
`prior_kernel_size={record["config"]["prior_kernel_size"]}`, `prior_dropout={record["config"].get("prior_dropout", 0.0)}`),
{record["args"]["prior_epochs"]} epochs.

![64 samples from the prior, seed {record["args"]["seed"]}](samples.png)

Samples: `model.sample(64, seed={record["args"]["seed"]})`, code maps drawn from the PixelCNN
position by position and decoded (likelihood mean).

![test images (top) and reconstructions (bottom)](reconstructions.png)

## Numbers

| measure | value | keras.io baseline |
|---|---|---|
| reconstruction MSE / data variance, **test** set | **{m["test_mse_over_variance"]:.4f}** ({ok(m["test_mse_over_variance"], BASELINE["mse_over_variance"])} the baseline) | 0.0444 (train) |
| reconstruction MSE / data variance, train set | {m["train_mse_over_variance"]:.4f} | 0.0444 |
| PixelCNN cross-entropy, validation codes (nats per code) | **{m["prior_val_nats_per_code"]:.4f}** ({ok(m["prior_val_nats_per_code"], BASELINE["prior_nats_per_code"])} the baseline) | 1.034 |
| PixelCNN cross-entropy, test-set codes (nats per code) | {m["prior_test_nats_per_code"]:.4f} | |
| codebook perplexity, test set | {m["test_perplexity"]:.2f} of 128 | |
| fraction of codes used, test set | {m["test_codebook_usage"]:.3f} | |
| entropy of the training code maps' codes (all positions / per position, nats) | {m["train_code_entropy_nats"]:.3f} / {m["train_code_position_entropy_nats"]:.3f} | |
| CI re-check: MSE / variance and prior nats per code, first {m["check_examples"]} test images | {m["check_mse_over_variance"]:.4f} / {m["check_prior_nats_per_code"]:.4f} | |

Wall time on a 2-core CPU machine without GPU: VQ-VAE `fit` {t.get("vq_vae_fit", 0) / 60:.1f} min,
prior `fit` {t.get("prior_fit", 0) / 60:.1f} min, code extraction {t.get("code_extraction", 0) / 60:.1f} min, evaluation
{t.get("evaluation", 0) / 60:.1f} min (the machine was shared with other work during the run).
Run on {record["date"]} with TensorFlow {record["versions"]["tensorflow"]}, Keras {record["versions"]["keras"]}.

## Protocol

Command (from the repository root; `--manual-dir` points at the official MNIST
files for machines without internet):

    {record["command"]}

- Data: MNIST through tensorflow-datasets, grey values in [0, 1], no
  binarization; train 60,000, test 10,000; batch {record["args"]["batch_size"]}, shuffled each epoch.
- Likelihood: Gaussian with sigma = sqrt(var / 2) = {m["likelihood_scale"]:.4f}, var = {m["train_pixel_variance"]:.5f} the
  train-set pixel variance, so the objective equals keras.io's
  `mean((x - x')^2) / var + mean(vq terms)` times 784 (784 pixels, 7x7x16 = 784 latent values).
- Optimizer: Adam 1e-3 for the VQ-VAE ({m["vq_vae_steps"]} steps); Adam with a cosine decay from 1e-3
  to 0 for the prior ({m["prior_steps"]} steps).
- Reconstruction: `model.reconstruct(x)` (nearest codes, likelihood mean);
  MSE over all pixels of the split, divided by var.
- Codebook: `model.evaluate(test)`; perplexity exp(H) of the code frequencies
  over the whole test set, fraction of the 128 codes used at least once.
- Prior: trained on the code maps of train images 0-53,999, validated on
  54,000-59,999 (keras.io's `validation_split=0.1`); cross-entropy
  `-log p(z) / 49` averaged over the maps.

{files_section("vq_vae_mnist", record)}"""


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    os.makedirs(args.output_dir, exist_ok=True)
    timings = Timings(os.path.join(args.work_dir, "timings.json"))
    train_eval, test = images("train", args, shuffle=False), images("test", args, shuffle=False)
    variance = pixel_variance(train_eval)
    print(f"train pixel variance {variance:.5f}", flush=True)

    model = train_autoencoder(args, timings, variance)
    vq_vae_steps = int(model.optimizer.iterations.numpy())
    start = time.perf_counter()
    train_codes, test_codes = model.code_maps(train_eval), model.code_maps(test)
    timings.set("code_extraction", time.perf_counter() - start)
    variants = shifted_code_maps(model, train_eval, args.prior_shift) if args.prior_shift else None
    model = train_prior(args, timings, model, train_codes, variants)
    split = int(0.9 * len(train_codes))
    start = time.perf_counter()

    if not model.compiled:
        model.compile()
    logs = model.evaluate(test, return_dict=True, verbose=0)
    if not model.pixelcnn.compiled:
        model.pixelcnn.compile()
    metrics = {
        "test_mse_over_variance": normalized_mse(model, test, variance),
        "train_mse_over_variance": normalized_mse(model, train_eval, variance),
        "test_perplexity": logs["perplexity"],
        "test_codebook_usage": logs["codebook_usage"],
        "test_reconstruction_loss_nats": logs["reconstruction_loss"],
        "prior_val_nats_per_code": model.pixelcnn.evaluate(train_codes[split:], batch_size=512, return_dict=True, verbose=0)["loss"],
        "prior_test_nats_per_code": model.pixelcnn.evaluate(test_codes, batch_size=512, return_dict=True, verbose=0)["loss"],
        **code_entropies(train_codes, model.num_codes),
        **check_values(model, test, test_codes, variance),
        "train_pixel_variance": variance,
        "likelihood_scale": model.likelihood_scale,
        "vq_vae_steps": vq_vae_steps,
        "prior_steps": model.pixelcnn.trained_steps,
    }
    print(json.dumps(metrics, indent=2), flush=True)
    timings.set("evaluation", time.perf_counter() - start)

    plotting.save_grid(model.sample(64, seed=args.seed), os.path.join(args.output_dir, "samples.png"))
    plotting.plot_reconstructions(model, next(iter(test)), os.path.join(args.output_dir, "reconstructions.png"))
    record = run_record(
        args,
        config={k: v for k, v in model.get_config().items() if k.startswith("prior_") or k == "codebook_initializer"},
        metrics=metrics,
        wall_seconds=timings.values,
    )
    headline = {
        "test_mse_over_variance": round(metrics["test_mse_over_variance"], 4),
        "prior_val_nats_per_code": round(metrics["prior_val_nats_per_code"], 4),
        "test_perplexity": round(metrics["test_perplexity"], 2),
    }
    description = "VQ-VAE (keras.io configuration: D=16, K=128) with a gated PixelCNN prior, MNIST grey values"
    write_entry(model, args.output_dir, description, headline, record, model_card)
    print(f"wrote {args.output_dir}/{{config.json,model.weights.h5,preset.json,metrics.json,README.md,samples.png,reconstructions.png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
