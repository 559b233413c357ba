"""`ConvVAE`: strided-convolution encoder, transposed-convolution decoder."""

import keras

from keras_vae import validation
from keras_vae.layers import networks
from keras_vae.models.base import BaseVAE


@keras.saving.register_keras_serializable(package="keras_vae")
class ConvVAE(BaseVAE):
    """A VAE with convolutional networks for `H x W x C` images of any size.

    Encoder: `Conv2D(f, kernel_size, strides=2)` for f in `filters`, then a
    dense layer to `2 * latent_dim`. Decoder: a dense layer to the smallest
    feature map, `Conv2DTranspose(f, strides=2)` for f in reversed `filters`,
    a stride-1 `Conv2DTranspose` to C channels, and a crop back to `H x W`.

    Args:
        data_shape: `(H, W, C)`.
        latent_dim: dimension of z.
        filters: channels of the encoder's convolutions (reversed in the decoder).
        kernel_size: convolution kernel size.
        activation: activation of the hidden layers.
        **kwargs: `BaseVAE` and `keras.Model` arguments.
    """

    # Measured with scripts/benchmark.py: XLA slows these convolutions down on CPU.
    default_jit_compile = False
    # Measured with scripts/benchmark_score.py: `score` runs these decoders
    # about 1.2x faster on CPU with 4096 rows per call than with 8192 (the
    # MLP decoders are faster with 8192).
    score_rows = 4096

    def __init__(
        self,
        data_shape=(28, 28, 1),
        latent_dim=16,
        filters=(32, 64),
        kernel_size=3,
        activation="relu",
        **kwargs,
    ):
        data_shape, filters, kernel_size, activation = validation.conv_args(
            "ConvVAE", data_shape, filters, kernel_size, activation
        )
        latent_dim = validation.positive_int("latent_dim", latent_dim)
        dtype = kwargs.get("dtype")
        encoder = networks.conv_encoder(
            data_shape, filters, kernel_size, activation, self.params_per_latent * latent_dim, dtype=dtype
        )
        decoder = networks.conv_decoder(
            latent_dim, filters[::-1], kernel_size, activation, data_shape, dtype=dtype
        )
        super().__init__(encoder, decoder, data_shape=data_shape, latent_dim=latent_dim, **kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.activation = activation

    def get_config(self):
        return {
            **self._common_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "activation": self.activation,
        }
