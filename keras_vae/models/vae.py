"""`VAE`: multilayer-perceptron encoder and decoder (Kingma & Welling 2014)."""

import keras

from keras_vae import validation
from keras_vae.layers import networks
from keras_vae.models.base import BaseVAE, likelihood_plan


@keras.saving.register_keras_serializable(package="keras_vae")
class VAE(BaseVAE):
    """A VAE with MLP networks.

    The encoder is `Flatten -> Dense(h) for h in hidden_units -> Dense(2 * latent_dim)`,
    the decoder `Dense(h) for h in reversed(hidden_units) -> Dense(prod(data_shape))`.
    Burda et al. (2015)'s 784-200-200-50 architecture is
    `VAE(latent_dim=50, hidden_units=(200, 200), activation="tanh")`.

    Args:
        data_shape: shape of one example.
        latent_dim: dimension of z.
        hidden_units: widths of the encoder's hidden layers (the decoder uses
            them in reverse order).
        activation: activation of the hidden layers (any Keras activation name).
        **kwargs: `BaseVAE` arguments (`likelihood`, `num_samples`, `seed`, ...)
            and `keras.Model` arguments.
    """

    # Measured with scripts/benchmark.py: XLA speeds the MLP up on CPU.
    default_jit_compile = True

    def __init__(
        self,
        data_shape=(28, 28, 1),
        latent_dim=16,
        hidden_units=(512, 256),
        activation="relu",
        **kwargs,
    ):
        data_shape = validation.int_tuple("data_shape", data_shape)
        latent_dim = validation.positive_int("latent_dim", latent_dim)
        hidden_units = validation.int_tuple("hidden_units", hidden_units, min_len=0)
        activation = validation.activation("activation", activation)
        dtype = kwargs.get("dtype")
        kwargs["posterior"], outputs = self.encoder_outputs(latent_dim, kwargs.get("posterior", "diagonal_gaussian"))
        params_shape, input_scale = likelihood_plan(data_shape, kwargs)
        encoder = networks.mlp_encoder(data_shape, hidden_units, activation, outputs, dtype=dtype,
                                       input_scale=input_scale)
        decoder = networks.mlp_decoder(latent_dim, hidden_units[::-1], activation, params_shape, dtype=dtype)
        super().__init__(encoder, decoder, data_shape=data_shape, latent_dim=latent_dim, **kwargs)
        self.hidden_units = hidden_units
        self.activation = activation

    def get_config(self):
        return {**self._common_config(), "hidden_units": self.hidden_units, "activation": self.activation}

