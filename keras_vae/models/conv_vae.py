"""`ConvVAE`: strided-convolution encoder, transposed-convolution decoder."""

import keras

from keras_vae import precision, validation
from keras_vae.layers import networks
from keras_vae.models.base import BaseVAE, likelihood_plan

#: The network families `ConvVAE(network=...)` builds.
NETWORKS = ("conv", "residual", "locatello")
#: The dense layer `network="locatello"` puts between the convolutions and the latent.
LOCATELLO_HIDDEN_UNITS = (256,)


@keras.saving.register_keras_serializable(package="keras_vae")
class ConvVAE(BaseVAE):
    """A VAE with convolutional networks for `H x W x C` images of any size.

    `network="conv"`: encoder `Conv2D(f, kernel_size, strides=2)` for f in
    `filters`, then a dense layer to `2 * latent_dim`; decoder a dense layer
    to the smallest feature map, `Conv2DTranspose(f, strides=2)` for f in
    reversed `filters`, a stride-1 `Conv2DTranspose` to C channels, and a
    crop back to `H x W`.

    `network="locatello"`: the convolutional architecture of
    disentanglement_lib (Locatello et al. 2019) for 64x64 images with
    `filters=(32, 32, 64, 64)` and `kernel_size=4`: the encoder's strided
    convolutions, then a 256-unit dense layer before the posterior's
    parameters; the decoder a 256-unit dense layer, a dense layer to the
    smallest map, `Conv2DTranspose(f, stride 2)` for f in reversed
    `filters[:-1]` and a last stride-2 `Conv2DTranspose` to C channels.

    `network="residual"`: the same plan with residual stages
    (`keras_vae.layers.networks.residual_encoder` / `residual_decoder`): one
    stage per entry of `filters`, each a stride-2 pre-activation residual
    block followed by `blocks_per_stage - 1` stride-1 blocks, optionally
    weight-normalised (`weight_norm`; `initialize_from_data(x)` sets those
    layers from a batch before training, Salimans & Kingma 2016).

    Args:
        data_shape: `(H, W, C)`.
        latent_dim: dimension of z.
        filters: channels of the encoder's stages (reversed in the decoder),
            one per down-sampling stage; or `None` (default) or an int `f`:
            as many stages as the image size takes (`networks.stages_for`:
            28 -> 2, 32 -> 3, 64 -> 4, halving while the smaller side stays
            >= 4 pixels) with `f` (default 32) channels in the first,
            doubling per stage up to 256 (28x28: `(32, 64)`; 64x64:
            `(32, 64, 128, 256)`).
        kernel_size: convolution kernel size.
        activation: activation of the hidden layers.
        network: "conv", "locatello" or "residual".
        blocks_per_stage: residual blocks per stage (`network="residual"`).
        weight_norm: weight-normalised residual convolutions (`network="residual"`).
        dense_units: widths of the dense layers (with `activation`) between
            the flattened feature map and the posterior's parameters, mirrored
            in the decoder before its dense layer to the smallest map (Kingma
            et al. 2016's MNIST ResNet has one of 450); `None` (default): the
            network's own, `(256,)` for "locatello" and none otherwise.
        **kwargs: `BaseVAE` and `keras.Model` arguments.
    """

    # Measured with scripts/benchmark.py: XLA slows these convolutions down on CPU.
    default_jit_compile = False
    # Measured with scripts/benchmark_score.py: `score` runs these decoders
    # about 1.2x faster on CPU with 4096 rows per call than with 8192 (the
    # MLP decoders are faster with 8192).
    score_rows = 4096
    # Measured with scripts/precision_study.py: 1.32x faster training (conv
    # networks), 1.09x (residual), no measurable likelihood cost (README).
    default_dtype = "mixed_bfloat16"

    def __init__(
        self,
        data_shape=(28, 28, 1),
        latent_dim=16,
        filters=None,
        kernel_size=3,
        activation="relu",
        network="conv",
        blocks_per_stage=2,
        weight_norm=True,
        dense_units=None,
        **kwargs,
    ):
        shape = validation.int_tuple("data_shape", data_shape)
        if len(shape) == 3:  # else conv_args refuses the shape
            filters = networks.stage_filters(shape, filters)
        data_shape, filters, kernel_size, activation = validation.conv_args(
            "ConvVAE", data_shape, filters, kernel_size, activation
        )
        latent_dim = validation.positive_int("latent_dim", latent_dim)
        network = validation.choice("network", network, NETWORKS)
        blocks_per_stage = validation.positive_int("blocks_per_stage", blocks_per_stage)
        if not isinstance(weight_norm, bool):
            raise ValueError(f"`weight_norm` must be True or False. Received: weight_norm={weight_norm!r}")
        if dense_units is None:
            dense_units = LOCATELLO_HIDDEN_UNITS if network == "locatello" else ()
        dense_units = validation.int_tuple("dense_units", dense_units, min_len=0)
        dtype = kwargs["dtype"] = precision.model_dtype(kwargs.get("dtype"), self.default_dtype)
        kwargs["posterior"], outputs = self.encoder_outputs(latent_dim, kwargs.get("posterior", "diagonal_gaussian"))
        params_shape, input_scale = likelihood_plan(data_shape, kwargs)
        if network in ("conv", "locatello"):
            encoder = networks.conv_encoder(data_shape, filters, kernel_size, activation, outputs, dtype=dtype,
                                            input_scale=input_scale, hidden_units=dense_units)
            decoder = networks.conv_decoder(latent_dim, filters[::-1], kernel_size, activation, params_shape,
                                            dtype=dtype, hidden_units=dense_units[::-1],
                                            last_doubles=network == "locatello")
        else:
            encoder = networks.residual_encoder(data_shape, filters, blocks_per_stage, kernel_size, activation,
                                                outputs, weight_norm=weight_norm, dtype=dtype, input_scale=input_scale,
                                                hidden_units=dense_units)
            decoder = networks.residual_decoder(latent_dim, filters[::-1], blocks_per_stage, kernel_size,
                                                activation, params_shape, weight_norm=weight_norm, dtype=dtype,
                                                hidden_units=dense_units[::-1])
        super().__init__(encoder, decoder, data_shape=data_shape, latent_dim=latent_dim, **kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.activation = activation
        self.network = network
        self.blocks_per_stage = blocks_per_stage
        self.weight_norm = weight_norm
        self.dense_units = dense_units

    def get_config(self):
        return {
            **self._common_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "activation": self.activation,
            "network": self.network,
            "blocks_per_stage": self.blocks_per_stage,
            "weight_norm": self.weight_norm,
            "dense_units": self.dense_units,
        }
