"""What goes wrong and right with a VAE, shown: one small conv network
(`ConvVAE` / `ConvAE`, 16 latents, filters 16-32) trained on MNIST for 10
epochs under each setting, one figure per setting and a table.

| setting | model | data | loss |
|---|---|---|---|
| `ae` | `ConvAE`, Bernoulli | dynamically binarized | -log p(x\\|z) |
| `vae_bce` | `ConvVAE`, Bernoulli (binary cross-entropy) | dynamically binarized | the negative ELBO |
| `mse_sum` | `ConvVAE`, Gaussian with sigma^2 = 1/2 | grey levels | squared error summed over pixels + KL |
| `mse_mean` | the same | grey levels | squared error *averaged* over pixels + KL |
| `kl_only` | `ConvVAE`, Bernoulli | dynamically binarized | KL alone (reconstruction weight 0) |

With sigma^2 = 1/2 the Gaussian's -log p(x|z) is the summed squared error (plus
a constant), so `mse_sum` is the `F.mse_loss(reduction="sum") + KL` of many
tutorials and `mse_mean` their `reduction="mean"`: the same as weighting the
KL 784 times more. Both report the true ELBO; `loss` is what is minimised.

Each figure: 32 samples decoded from prior noise (top), 16 test images and
their reconstructions (bottom); and `interpolation.png`: `vae_bce`'s decoded
straight lines between the codes of test digits. Table: test ELBO (each
model's own likelihood: the Gaussian ones in their own units, not comparable
with the Bernoulli ones), KL, active units (Burda et al.: Cov_x E[z_u] >
0.01), and the Fréchet distance of 10,000 prior samples to the test images in
the package's MNIST classifier's features (`keras_vae.quality`, not FID).

    python scripts/experiments.py --manual-dir ../shared/data --data-dir .cache/tfds --output-dir runs/experiments
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_vae  # noqa: E402
from active_units import active_units, posterior_means  # noqa: E402
from keras_vae import data, files, plotting, quality  # noqa: E402


class WeightedTerms(keras_vae.ConvVAE):
    """`ConvVAE` minimising `reconstruction_weight * reconstruction_loss +
    kl`; `elbo`, `kl` and `reconstruction_loss` are reported unweighted.
    (Used here only, to show what a reweighted loss does.)"""

    def __init__(self, reconstruction_weight=1.0, **kwargs):
        super().__init__(**kwargs)
        self.reconstruction_weight = float(reconstruction_weight)

    def compute_terms(self, x, training=False):
        terms = super().compute_terms(x, training)
        terms["loss"] = self.reconstruction_weight * terms["reconstruction_loss"] + terms["kl"]
        return terms


NETWORK = {"latent_dim": 16, "filters": (16, 32)}
GAUSSIAN = {"likelihood": "gaussian", "likelihood_scale": float(np.sqrt(0.5))}
SETTINGS = {
    "ae": (lambda: keras_vae.ConvAE(**NETWORK, seed=0), "binary"),
    "vae_bce": (lambda: keras_vae.ConvVAE(**NETWORK, seed=0), "binary"),
    "mse_sum": (lambda: keras_vae.ConvVAE(**NETWORK, **GAUSSIAN, seed=0), "grey"),
    "mse_mean": (lambda: WeightedTerms(reconstruction_weight=1 / 784, **NETWORK, **GAUSSIAN, seed=0), "grey"),
    "kl_only": (lambda: WeightedTerms(reconstruction_weight=0.0, **NETWORK, seed=0), "binary"),
}


class KLTrace(keras.callbacks.Callback):
    """The training batches' KL as `fit` logs it (every `steps_per_execution` steps)."""

    def __init__(self):
        super().__init__()
        self.trace = []

    def on_train_batch_end(self, batch, logs=None):
        if logs and "kl" in logs:
            self.trace.append((int(self.model.optimizer.iterations.numpy()), float(logs["kl"])))


def figure(model, test_x, path, title):
    """32 prior samples above 16 test images and their reconstructions, one PNG."""
    samples = plotting.tile(np.asarray(model.sample(32, seed=0)) / model.likelihood.value_scale, columns=8)
    recon = plotting.reconstruction_grid(model, test_x, num_images=16)
    gap = np.ones((6, samples.shape[1], 1), "float32")
    plotting.save_grid(np.concatenate([samples, gap, recon])[None], path, columns=1, title=title)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("settings", nargs="*", help=f"some of {', '.join(SETTINGS)} (default: all)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train-examples", type=int, help="the first N training images (quick checks)")
    parser.add_argument("--num-samples", type=int, default=10000, help="samples in the Fréchet distance")
    parser.add_argument("--data-dir")
    parser.add_argument("--manual-dir")
    parser.add_argument("--output-dir", default="runs/experiments")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.settings) - set(SETTINGS))
    if unknown:
        parser.error(f"unknown settings {unknown}; choose from {', '.join(SETTINGS)}")
    os.makedirs(args.output_dir, exist_ok=True)
    common = dict(data_dir=args.data_dir, manual_dir=args.manual_dir)

    def pipeline(split, values, training):
        binarize = ("dynamic" if training else "static") if values == "binary" else None
        return data.load_dataset("mnist", split=split, batch_size=128 if training else 1000, binarize=binarize,
                                 shuffle=training, seed=0, num_examples=args.train_examples if training else None,
                                 **common)

    grey_test = np.concatenate(list(pipeline("test", "grey", False).as_numpy_iterator()))
    test_features = quality.features(grey_test)
    rows, start = {}, time.perf_counter()
    for name in args.settings or SETTINGS:
        make, values = SETTINGS[name]
        keras.utils.set_random_seed(0)
        model = make()
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        trace = KLTrace()
        t0 = time.perf_counter()
        model.fit(pipeline("train", values, True), epochs=args.epochs, verbose=2, callbacks=[trace])
        fit_seconds = time.perf_counter() - t0
        test = pipeline("test", values, False)
        logs = model.evaluate(test, return_dict=True, verbose=0)
        test_x = np.concatenate(list(test.as_numpy_iterator()))
        generated = quality.generate(model, args.num_samples, seed=0)
        row = {
            "test_elbo": logs.get("elbo"), "test_kl": logs.get("kl"),
            "test_reconstruction_loss": logs["reconstruction_loss"],
            "active_units": active_units(posterior_means(model, test_x))[0],
            "frechet_distance": quality.frechet_distance(quality.features(generated), test_features),
            "reconstructions_spread": float(np.asarray(model.reconstruct(test_x[:100])).std(axis=0).mean()),
            "fit_seconds": fit_seconds,
        }
        if model.has_kl_term:
            below = [step for step, kl in trace.trace if kl < 0.1]
            row["first_step_kl_below_0.1"] = below[0] if below else None
        rows[name] = row
        figure(model, test_x, os.path.join(args.output_dir, f"{name}.png"), f"{name}: prior samples (top), "
               "test images and reconstructions (bottom)")
        if name == "vae_bce":
            plotting.plot_interpolations(model, test_x[:12], os.path.join(args.output_dir, "interpolation.png"))
        print(name, json.dumps(row), flush=True)
    wall = time.perf_counter() - start
    record = {"command": "python " + " ".join(sys.argv), "epochs": args.epochs,
              "train_examples": args.train_examples or 60000, "wall_seconds": wall, "rows": rows}
    files.write_text(os.path.join(args.output_dir, "results.json"), json.dumps(record, indent=2) + "\n")
    print("\n| setting | test ELBO | KL | active units | Fréchet distance, prior samples |\n|---|---|---|---|---|")
    for name, r in rows.items():
        elbo = "n/a (no ELBO)" if r["test_elbo"] is None else f"{r['test_elbo']:.2f}"
        kl = "n/a" if r["test_kl"] is None else f"{r['test_kl']:.2f}"
        print(f"| `{name}` | {elbo} | {kl} | {r['active_units']} | {r['frechet_distance']:.2f} |")
    print(f"\nwall time {wall / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
