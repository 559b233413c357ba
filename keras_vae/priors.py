"""Priors p(z), chosen by name.

A prior is a small Keras layer whose `distribution(encode)` returns p(z) as a
`tfd.Distribution` with event `[latent_dim]` and no batch shape. It owns the
prior's variables (pseudo-inputs, flow networks), so they are trained, saved
and restored with the model. `encode` maps a batch of inputs to the
diagonal-Gaussian part of q(z|x) (the whole posterior for
`diagonal_gaussian`, the flow's base for `iaf`); only `vamp` uses it.

| name | p(z) | KL(q \\|\\| p) |
|---|---|---|
| `standard_normal` | `N(0, I)` | analytic for a diagonal-Gaussian posterior |
| `vamp` | VampPrior (Tomczak & Welling 2018): `1/K sum_k q(z \\| u_k)`, K learned pseudo-inputs u_k | Monte Carlo |
| `maf` | `N(0, I)` through `num_steps` masked autoregressive flow steps (Papamakarios et al. 2017) | Monte Carlo |

`maf` scores log p(z) with one network pass per step (the flow's inverse);
drawing from it (`sample`) takes `latent_dim` passes per step.

All computations are float32, whatever the model's dtype policy.
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae import validation
from keras_vae.layers import autoregressive
from keras_vae.posteriors import LatentComponent, diagonal_gaussian  # noqa: F401 - diagonal_gaussian kept importable

tfd = tfp.distributions
tfb = tfp.bijectors


def standard_normal(latent_dim):
    """N(0, I) over `latent_dim` dimensions, float32, as `Independent(Normal, 1)`
    (so the analytic KL against a diagonal Gaussian is registered)."""
    zeros = tf.zeros([latent_dim], tf.float32)
    return tfd.Independent(tfd.Normal(loc=zeros, scale=tf.ones_like(zeros)), 1)


@keras.saving.register_keras_serializable(package="keras_vae")
class Prior(LatentComponent):
    """Base class: p(z) over `latent_dim` dimensions (`distribution(encode)`)."""

    def distribution(self, encode=None):
        raise NotImplementedError


@keras.saving.register_keras_serializable(package="keras_vae")
class StandardNormal(Prior):
    """p(z) = N(0, I)."""

    def distribution(self, encode=None):
        return standard_normal(self.latent_dim)


@keras.saving.register_keras_serializable(package="keras_vae")
class VampPrior(Prior):
    """p(z) = 1/K sum_k q(z | u_k): a uniform mixture of the posterior's
    diagonal Gaussians at K learned pseudo-inputs u_k (Tomczak & Welling
    2018), as a `tfd.MixtureSameFamily`; with a flow posterior, of its base
    Gaussians q(z_0 | u_k) (so not exactly the mixture of the posteriors).

    The pseudo-inputs start uniform in [0, `value_scale`) (the range of the
    data's pixel values: a model passes its likelihood's, 255 for 8-bit
    values), or at K training images with `model.initialize_from_data(x)`.
    With an `iaf` posterior the components are the flow's base Gaussians.

    Args:
        latent_dim: dimension of z.
        data_shape: shape of one input (a pseudo-input's shape).
        num_components: K.
        value_scale: the top of the pseudo-inputs' initial range.
    """

    def __init__(self, latent_dim, data_shape, num_components=50, value_scale=1.0, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.data_shape = validation.int_tuple("data_shape", data_shape)
        self.num_components = validation.positive_int("num_components", num_components)
        self.value_scale = validation.positive_float("value_scale", value_scale)

    def build(self, input_shape=None):
        self.pseudo_inputs = self.add_weight(
            name="pseudo_inputs", shape=(self.num_components, *self.data_shape),
            initializer=keras.initializers.RandomUniform(0.0, self.value_scale),
        )
        self.built = True

    def distribution(self, encode=None):
        if encode is None:
            raise ValueError("A `vamp` prior needs `encode` (inputs -> q(z|x)). Received: encode=None")
        components = encode(self.pseudo_inputs)
        mixture = tfd.Categorical(logits=tf.zeros([self.num_components], tf.float32))
        return tfd.MixtureSameFamily(mixture, components)

    def get_config(self):
        return {**super().get_config(), "data_shape": self.data_shape, "num_components": self.num_components,
                "value_scale": self.value_scale}


@keras.saving.register_keras_serializable(package="keras_vae")
class MAFPrior(Prior):
    """p(z): N(0, I) pushed through `num_steps` masked autoregressive flow
    steps, the order of z reversed between steps. Each step is
    `tfb.MaskedAutoregressiveFlow` with a `MaskedAutoregressiveNetwork`
    giving a shift and a log-scale (soft-clipped to +-`max_log_scale`); the
    networks' output layers start at zero, so p(z) starts at N(0, I).

    Args:
        latent_dim: dimension of z (>= 2).
        num_steps: flow steps (>= 1).
        hidden_units: widths of each step's network.
        activation: activation of the networks' hidden layers.
        max_log_scale: bound of each step's log-scale.
    """

    def __init__(self, latent_dim, num_steps=2, hidden_units=(256, 256), activation="elu", max_log_scale=3.0,
                 **kwargs):
        super().__init__(latent_dim, **kwargs)
        if self.latent_dim < 2:
            raise ValueError(f"`latent_dim` must be >= 2 for a `maf` prior. Received: latent_dim={latent_dim!r}")
        self.num_steps = validation.positive_int("num_steps", num_steps)
        self.hidden_units = validation.int_tuple("hidden_units", hidden_units)
        self.activation = validation.activation("activation", activation)
        self.max_log_scale = validation.positive_float("max_log_scale", max_log_scale)
        self.networks = self._flow_networks(self.num_steps, self.hidden_units, 0, self.activation)

    def _step(self, network):
        outputs = autoregressive.once_per_input(network)

        def shift_and_log_scale(z):
            out = outputs(z)
            bound = self.max_log_scale
            return out[..., 0], bound * tf.tanh(out[..., 1] / bound)

        return tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=shift_and_log_scale)

    def distribution(self, encode=None):
        steps = [self._step(network) for network in self.networks]
        return tfd.TransformedDistribution(standard_normal(self.latent_dim), autoregressive.flow(steps, self.latent_dim))

    def get_config(self):
        return {
            **super().get_config(),
            "num_steps": self.num_steps,
            "hidden_units": self.hidden_units,
            "activation": self.activation,
            "max_log_scale": self.max_log_scale,
        }


_BY_NAME = {
    "standard_normal": lambda latent_dim, data_shape, value_scale: StandardNormal(latent_dim),
    "vamp": lambda latent_dim, data_shape, value_scale: VampPrior(latent_dim, data_shape, value_scale=value_scale),
    "maf": lambda latent_dim, data_shape, value_scale: MAFPrior(latent_dim),
}

#: Valid prior names.
NAMES = tuple(_BY_NAME)


def get(prior, latent_dim, data_shape, value_scale=1.0):
    """The prior layer for `prior` (a name in `NAMES`, or a `Prior` instance,
    returned as it is) over `latent_dim` dimensions, for inputs of
    `data_shape` whose pixel values reach `value_scale` (both used by
    `vamp`).

    Raises:
        ValueError: for an unknown name, or a layer of another `latent_dim`.
    """
    return validation.component("prior", prior, Prior, NAMES,
                                lambda name: _BY_NAME[name](latent_dim, data_shape, value_scale), latent_dim)
