"""Posterior families q(z | x), chosen by name.

A posterior is a small Keras layer that turns the encoder's output
(`[..., params_size]`) into a `tfd.Distribution` over z (event
`[latent_dim]`). It owns the variables of the family (an inverse
autoregressive flow's networks), so they are trained, saved and restored
with the model.

| name | q(z \\| x) | encoder outputs |
|---|---|---|
| `diagonal_gaussian` | `N(mu, diag(sigma^2))` | `2 * latent_dim`: mu, pre-softplus sigma |
| `iaf` | the diagonal Gaussian pushed through `num_steps` inverse autoregressive flow steps (Kingma et al. 2016) | `2 * latent_dim + context_size`: mu, sigma, a context h |

Every family is either a diagonal Gaussian or a `tfd.TransformedDistribution`
of one (its `base`): `reparameterize(q, eps)` maps standard-normal noise to z
and log q(z|x) with the flow's forward pass only, never its (sequential)
inverse, so training and `score` cost one pass of each flow step.

All computations are float32, whatever the model's dtype policy.
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae import validation
from keras_vae.layers import autoregressive

tfd = tfp.distributions
tfb = tfp.bijectors

_MIN_SCALE = 1e-5


def diagonal_gaussian(params):
    """N(loc, diag(scale^2)) from `[..., 2 * latent_dim]`: the first half is the
    mean, the second passes through `softplus` (plus a small floor) to give
    the standard deviation. `Independent(Normal, 1)`, so that the analytic KL
    against a standard-normal prior is registered."""
    loc, raw_scale = tf.split(params, 2, axis=-1)
    scale = tf.nn.softplus(raw_scale) + _MIN_SCALE
    return tfd.Independent(tfd.Normal(loc=loc, scale=scale), 1)


def is_diagonal_gaussian(distribution):
    if isinstance(distribution, tfd.MultivariateNormalDiag):
        return True
    return isinstance(distribution, tfd.Independent) and isinstance(distribution.distribution, tfd.Normal)


def is_transformed(distribution):
    """Whether `distribution` is a `tfd.TransformedDistribution` (TFP builds
    them as a private class that is not a subclass of the public one)."""
    return isinstance(getattr(distribution, "bijector", None), tfb.Bijector)


def gaussian_base(distribution):
    """The diagonal Gaussian that `distribution` is, or transforms; None otherwise."""
    if is_diagonal_gaussian(distribution):
        return distribution
    if is_transformed(distribution) and is_diagonal_gaussian(distribution.distribution):
        return distribution.distribution
    return None


def reparameterize(distribution, eps):
    """`(z, log q(z))` for standard-normal noise `eps` (`[..., *batch, latent_dim]`):
    `z0 = mu + sigma * eps` through the flow's forward pass, and
    `log q(z) = log N(z0) - log|det dz/dz0|`. None for a family that is not a
    (transformed) diagonal Gaussian."""
    base = gaussian_base(distribution)
    if base is None:
        return None
    z0 = base.mean() + base.stddev() * eps
    if base is distribution:
        return z0, distribution.log_prob(z0)
    bijector = distribution.bijector
    z = bijector.forward(z0)
    return z, base.log_prob(z0) - bijector.forward_log_det_jacobian(z0, event_ndims=1)


@keras.saving.register_keras_serializable(package="keras_vae")
class LatentComponent(keras.layers.Layer):
    """Base of posteriors and priors: a float32 layer over `latent_dim`
    dimensions whose flow networks, if any, are in `self.networks`."""

    #: The autoregressive networks of a flow (built with the layer).
    networks = ()

    def __init__(self, latent_dim, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.latent_dim = validation.positive_int("latent_dim", latent_dim)

    def build(self, input_shape=None):
        for network in self.networks:
            network.build((None, self.latent_dim))
        self.built = True

    def _flow_networks(self, num_steps, hidden_units, context_size, activation):
        """`num_steps` autoregressive networks over z (a shift and a gate or log-scale each)."""
        return [
            autoregressive.MaskedAutoregressiveNetwork(
                self.latent_dim, hidden_units, 2, context_size, activation, name=f"step_{i}")
            for i in range(num_steps)
        ]

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)
        config["latent_dim"] = self.latent_dim
        return config


@keras.saving.register_keras_serializable(package="keras_vae")
class Posterior(LatentComponent):
    """Base class: maps encoder outputs to q(z | x).

    Subclasses implement `params_size()` and `distribution(params)`;
    `params` has shape `[..., params_size()]` and the returned distribution
    has batch shape `[...]` and event shape `[latent_dim]`.
    `gaussian_part(params)` is the diagonal Gaussian the family starts from
    (the whole posterior for `diagonal_gaussian`, the flow's base for `iaf`).
    """

    def params_size(self):
        raise NotImplementedError

    def distribution(self, params):
        raise NotImplementedError

    def gaussian_part(self, params):
        return diagonal_gaussian(params[..., : 2 * self.latent_dim])


@keras.saving.register_keras_serializable(package="keras_vae")
class DiagonalGaussian(Posterior):
    """q(z|x) = N(mu(x), diag(sigma(x)^2)) (Kingma & Welling 2014)."""

    def params_size(self):
        return 2 * self.latent_dim

    def distribution(self, params):
        return diagonal_gaussian(params)


@keras.saving.register_keras_serializable(package="keras_vae")
class IAF(Posterior):
    """Inverse autoregressive flow posterior (Kingma et al. 2016).

    z_0 ~ N(mu(x), diag(sigma(x)^2)); each of `num_steps` steps applies

        z_t = s_t * z_{t-1} + (1 - s_t) * m_t,   [m_t, logit s_t] = AR_t(z_{t-1}, h(x))

    with `AR_t` a `MaskedAutoregressiveNetwork` conditioned on the context
    h(x) (the encoder's last `context_size` outputs), `s_t = sigmoid(...)`
    (the paper's numerically stable form; its logit starts at
    `gate_bias`, so `s_t` starts near 1), and the order of z reversed between
    steps. Each step is `tfb.Invert(tfb.MaskedAutoregressiveFlow)`: the
    forward pass (sampling, and log q of the sample) is one network pass
    per step.

    Args:
        latent_dim: dimension of z (>= 2).
        num_steps: flow steps (>= 1).
        hidden_units: widths of each step's network.
        context_size: width of the context h (encoder outputs beyond the
            Gaussian's `2 * latent_dim`).
        activation: activation of the networks' hidden layers.
        gate_bias: initial logit of the gates s_t.
    """

    def __init__(self, latent_dim, num_steps=2, hidden_units=(320, 320), context_size=64, activation="elu",
                 gate_bias=2.0, **kwargs):
        super().__init__(latent_dim, **kwargs)
        if self.latent_dim < 2:
            raise ValueError(f"`latent_dim` must be >= 2 for an `iaf` posterior. Received: latent_dim={latent_dim!r}")
        self.num_steps = validation.positive_int("num_steps", num_steps)
        self.hidden_units = validation.int_tuple("hidden_units", hidden_units)
        self.context_size = validation.non_negative_int("context_size", context_size)
        self.activation = validation.activation("activation", activation)
        self.gate_bias = validation.finite_float("gate_bias", gate_bias)
        self.networks = self._flow_networks(self.num_steps, self.hidden_units, self.context_size, self.activation)

    def params_size(self):
        return 2 * self.latent_dim + self.context_size

    def _step(self, network, context):
        outputs = autoregressive.once_per_input(network, context)

        def step(z):
            # Invert(MAF) maps z with `step(z).inverse`: s * z + (1 - s) * mean,
            # s = sigmoid(gate_logit), computed as written (no exp(-logit),
            # which overflows for a very negative logit); its log-det is sum log s.
            out = outputs(z)
            mean, gate_logit = out[..., 0], out[..., 1] + self.gate_bias
            gate = tf.sigmoid(gate_logit)
            affine = tfb.Chain([tfb.Shift((1.0 - gate) * mean), tfb.Scale(log_scale=tf.math.log_sigmoid(gate_logit))])
            return tfb.Invert(affine)

        return tfb.Invert(tfb.MaskedAutoregressiveFlow(bijector_fn=step))

    def distribution(self, params):
        base = self.gaussian_part(params)
        context = params[..., 2 * self.latent_dim:] if self.context_size else None
        steps = [self._step(network, context) for network in self.networks]
        return tfd.TransformedDistribution(base, autoregressive.flow(steps, self.latent_dim))

    def get_config(self):
        return {
            **super().get_config(),
            "num_steps": self.num_steps,
            "hidden_units": self.hidden_units,
            "context_size": self.context_size,
            "activation": self.activation,
            "gate_bias": self.gate_bias,
        }


_BY_NAME = {"diagonal_gaussian": DiagonalGaussian, "iaf": IAF}

#: Valid posterior names.
NAMES = tuple(_BY_NAME)


def get(posterior, latent_dim):
    """The posterior layer for `posterior` (a name in `NAMES`, or a
    `Posterior` instance, returned as it is) over `latent_dim` dimensions.

    Raises:
        ValueError: for an unknown name, or a layer of another `latent_dim`.
    """
    return validation.component("posterior", posterior, Posterior, NAMES, lambda name: _BY_NAME[name](latent_dim),
                                latent_dim)
