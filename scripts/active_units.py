"""Active latent units of a VAE on the test set (Burda et al. 2015, section 5.2).

A unit u is active when its posterior mean varies with the image:
Cov_x(E_q(z|x)[z_u]) > 0.01 over the test images (MNIST: all 10,000, each
binarized once with seed 0, as in the NLL protocol of `scripts/train_zoo.py`).
Units that every image maps to the same mean carry no information; the KL
term pushes a VAE's unused units to the prior exactly. For a flow posterior
(IAF) the per-image code is `model.latent(x)`, the flow applied to its base
Gaussian's mean (the code `decode` takes), in place of E_q[z], which has no
closed form there.

    python scripts/active_units.py vae_mnist runs/zoo/vae_mnist_b20/model.keras

takes zoo names or `.keras` files and prints one line per model.
"""

import argparse

import numpy as np

import keras_vae
from keras_vae import data
from keras_vae.cli import _load as load  # a .keras file or a zoo name, as everywhere in the CLI


def posterior_means(model, images, batch_size=1000):
    """`model.latent` of each image: the posterior mean, or a flow's point latent."""
    return np.concatenate([
        np.asarray(model.latent(images[i:i + batch_size])) for i in range(0, len(images), batch_size)
    ])


def active_units(means, threshold=0.01):
    """`means`: `[num_images, latent_dim]` posterior means -> (number of
    active units, the per-unit variances, largest first)."""
    variances = np.sort(np.var(np.asarray(means, "float64"), axis=0))[::-1]
    return int(np.sum(variances > threshold)), variances


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="zoo names or .keras files")
    parser.add_argument("--dataset", default="mnist", choices=("mnist", "fashion_mnist"))
    parser.add_argument("--threshold", type=float, default=0.01)
    parser.add_argument("--data-dir")
    parser.add_argument("--manual-dir")
    args = parser.parse_args(argv)
    test = data.load_dataset(args.dataset, split="test", batch_size=10000, binarize="static", shuffle=False,
                             seed=0, data_dir=args.data_dir, manual_dir=args.manual_dir)
    images = np.concatenate(list(test.as_numpy_iterator()))
    results = {}
    for name in args.models:
        try:
            model = load(name)
        except ValueError as err:
            raise SystemExit(f"active_units: error: {err}") from None
        if not isinstance(model, (keras_vae.VAE, keras_vae.ConvVAE)) or not model.defines_density:
            raise SystemExit(f"active_units: error: {name} has no Gaussian posterior (a VAE is needed). "
                             f"Received: {type(model).__name__}")
        count, variances = active_units(posterior_means(model, images), args.threshold)
        results[name] = count
        print(f"{name}: {count} of {variances.size} units active (Cov_x E_q[z] > {args.threshold} over "
              f"{len(images)} {args.dataset} test images); largest variances "
              f"{', '.join(f'{v:.3f}' for v in variances[:count + 2])}")
    return results


if __name__ == "__main__":
    main()
