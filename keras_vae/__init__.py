"""keras_vae: variational autoencoders for Keras 3, trained with `model.fit`.

Models (`keras_vae.models`, also importable from here): `BaseVAE` (bring your
own encoder and decoder), `VAE`, `BetaVAE`, `ConvVAE`, `VQVAE` (with its
PixelCNN prior) and the deterministic baseline `AE`. Observation models:
`keras_vae.likelihoods`; prior and posterior families: `keras_vae.priors`.
Data (`keras_vae.data`): MNIST and Fashion-MNIST through tensorflow-datasets.
Plots (`keras_vae.plotting`): sample, reconstruction and interpolation grids.
Pretrained models (`keras_vae.zoo`): `zoo.list()`, `zoo.load(name)`. TF
Serving export (`keras_vae.export`, or `model.export_serving(base_path,
version)`). Kill-safe training backups: `keras_vae.callbacks.BackupAndRestore`.
"""

import importlib

__version__ = "0.1.0"

from keras_vae import likelihoods, priors  # noqa: E402
from keras_vae.models import AE, VAE, VQVAE, BaseVAE, BetaVAE, ConvVAE  # noqa: E402

_LAZY = ("callbacks", "data", "export", "plotting", "zoo")  # loaded on first use (tensorflow-datasets, matplotlib)


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"keras_vae.{name}")
    raise AttributeError(f"module 'keras_vae' has no attribute {name!r}")


__all__ = [
    "AE", "BaseVAE", "BetaVAE", "ConvVAE", "VAE", "VQVAE",
    "callbacks", "data", "export", "likelihoods", "plotting", "priors", "zoo",
]
