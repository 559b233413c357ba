"""keras_vae: variational autoencoders for Keras 3, trained with `model.fit`.

Models (`keras_vae.models`, also importable from here): `BaseVAE` (bring your
own encoder and decoder), `VAE`, `BetaVAE`, `ConvVAE`, `VQVAE` (with its
PixelCNN prior), the disentanglement family `BetaTCVAE`, `FactorVAE`,
`DIPVAE` (on `keras_vae.penalties`) and the deterministic baseline `AE`.
Disentanglement metrics: `keras_vae.disentanglement`; the dSprites factor
grid, rendered or from TFDS: `keras_vae.sprites`. Observation models:
`keras_vae.likelihoods`; posterior families `keras_vae.posteriors`; priors
`keras_vae.priors`; samplers fitted after training (`model.fit_sampler`)
`keras_vae.samplers`.
Data (`keras_vae.data`): MNIST and Fashion-MNIST through tensorflow-datasets.
Plots (`keras_vae.plotting`): sample, reconstruction, interpolation and
latent traversal grids; latent maps, the manifold of a 2-d latent, KL per unit.
Pretrained models (`keras_vae.zoo`): `zoo.list()`, `zoo.load(name)`. TF
Serving export (`keras_vae.export`, or `model.export_serving(base_path,
version)`). Kill-safe training backups and TensorBoard pictures:
`keras_vae.callbacks.BackupAndRestore`, `keras_vae.callbacks.ImageSummaries`.
Measured precision defaults (`ConvVAE`: bfloat16 on CPUs with the
instructions): `keras_vae.precision`.
"""

import importlib
import os
import sys

__version__ = "0.1.0"


def _started_as_command():
    """True while the `keras-vae` command (or `python -m keras_vae.cli`) imports the package."""
    argv = getattr(sys, "orig_argv", sys.argv)
    return os.path.basename(sys.argv[0]) in ("keras-vae", "keras-vae.exe") or any(
        flag == "-m" and module == "keras_vae.cli" for flag, module in zip(argv, argv[1:]))


if _started_as_command():
    # The command's console stays free of TensorFlow's C++ INFO lines (TFRecord
    # buffer sizes and the like); warnings and errors still show. TensorFlow
    # reads the level once, so it is set before TensorFlow loads; a
    # TF_CPP_MIN_LOG_LEVEL the user set wins. `import keras_vae` in a program
    # changes nothing.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from keras_vae import likelihoods, penalties, posteriors, priors, samplers  # noqa: E402
from keras_vae.models import AE, DIPVAE, VAE, VQVAE, BaseVAE, BetaTCVAE, BetaVAE, ConvAE, ConvVAE, FactorVAE  # noqa: E402,E501

_LAZY = ("callbacks", "data", "disentanglement", "export", "plotting", "sprites", "zoo")  # loaded on first use (tensorflow-datasets, matplotlib)


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"keras_vae.{name}")
    raise AttributeError(f"module 'keras_vae' has no attribute {name!r}")


__all__ = [
    "AE", "BaseVAE", "BetaTCVAE", "BetaVAE", "ConvAE", "ConvVAE", "DIPVAE", "FactorVAE", "VAE", "VQVAE",
    "callbacks", "data", "disentanglement", "export", "likelihoods", "penalties", "plotting", "posteriors", "priors",
    "samplers", "sprites", "zoo",
]
