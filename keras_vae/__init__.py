"""keras_vae: variational autoencoders for Keras 3, trained with `model.fit`.

Models (`keras_vae.models`): `BaseVAE` (bring your own encoder and decoder),
`VAE`, `BetaVAE`, `ConvVAE` and the deterministic baseline `AE`. Data
(`keras_vae.data`): MNIST and Fashion-MNIST through tensorflow-datasets.
Plots (`keras_vae.plotting`): sample, reconstruction and interpolation grids.
"""

__version__ = "0.1.0"

from keras_vae import likelihoods, priors  # noqa: E402
from keras_vae.models import AE, BaseVAE, BetaVAE, ConvVAE, VAE  # noqa: E402

__all__ = ["AE", "BaseVAE", "BetaVAE", "ConvVAE", "VAE", "likelihoods", "priors"]
