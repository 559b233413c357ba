"""keras_vae: variational autoencoders for Keras 3, trained with `model.fit`.

Models (`keras_vae.models`, also importable from here): `BaseVAE` (bring your
own encoder and decoder), `VAE`, `BetaVAE`, `ConvVAE` and the deterministic
baseline `AE`. Observation models: `keras_vae.likelihoods`; prior and
posterior families: `keras_vae.priors`. Data (`keras_vae.data`): MNIST and
Fashion-MNIST through tensorflow-datasets. Plots (`keras_vae.plotting`):
sample, reconstruction and interpolation grids.
"""

import importlib

__version__ = "0.1.0"

from keras_vae import likelihoods, priors  # noqa: E402
from keras_vae.models import AE, VAE, VQVAE, BaseVAE, BetaVAE, ConvVAE  # noqa: E402

_LAZY = ("data", "plotting")  # tensorflow-datasets / matplotlib load on first use


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"keras_vae.{name}")
    raise AttributeError(f"module 'keras_vae' has no attribute {name!r}")


__all__ = ["AE", "BaseVAE", "BetaVAE", "ConvVAE", "VAE", "VQVAE", "data", "likelihoods", "plotting", "priors"]
