"""Observation models p(x | z), chosen by name.

A likelihood is a small Keras layer that turns the decoder's output tensor
(one value per data element, shape `[..., *event_shape]`) into a
`tfd.Distribution` whose event is one whole data point. It owns any learned
parameter of the observation model (a Gaussian's scale) so that the parameter
is trained, saved and restored with the model.

| name | distribution | decoder output | data support |
|---|---|---|---|
| `bernoulli` | `Bernoulli(logits)` | logits | {0, 1} |
| `continuous_bernoulli` | `ContinuousBernoulli(logits)` (Loaiza-Ganem & Cunningham 2019) | logits | [0, 1] |
| `gaussian` | `Normal(loc, scale)`, `scale` fixed | loc | reals |
| `gaussian_learned_scale` | `Normal(loc, s)`, one learned `s` | loc | reals |
| `gaussian_learned_pixel_scale` | `Normal(loc, s)`, one learned `s` per element | loc | reals |

All log-probabilities are computed in float32, whatever the model's dtype
policy.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

_MIN_SCALE = 1e-4


@keras.saving.register_keras_serializable(package="keras_vae")
class Likelihood(keras.layers.Layer):
    """Base class: maps decoder outputs to p(x | z).

    Subclasses implement `distribution(params)`; `params` has shape
    `[..., *event_shape]` and the returned distribution has that batch shape
    `[...]` and event shape `event_shape`.

    Args:
        event_shape: shape of one data point, e.g. `(28, 28, 1)`.
    """

    #: Human-readable support, used in error messages.
    support = "the real numbers"

    def __init__(self, event_shape, **kwargs):
        kwargs["dtype"] = "float32"  # log-probs stay float32 under mixed precision
        super().__init__(**kwargs)
        self.event_shape = tuple(int(d) for d in event_shape)

    def build(self, input_shape=None):
        self.built = True

    def distribution(self, params):
        raise NotImplementedError

    def _independent(self, base):
        return tfd.Independent(base, reinterpreted_batch_ndims=len(self.event_shape))

    def support_violation(self, x):
        """Returns a description of the values of numpy `x` outside the support, or None."""
        return None

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)
        config["event_shape"] = self.event_shape
        return config


@keras.saving.register_keras_serializable(package="keras_vae")
class Bernoulli(Likelihood):
    """Independent Bernoulli pixels parameterised by logits (binary data)."""

    support = "{0, 1}"

    def distribution(self, params):
        return self._independent(tfd.Bernoulli(logits=params, dtype=params.dtype))

    def support_violation(self, x):
        bad = (x != 0) & (x != 1)
        if bad.any():
            return (
                f"{int(bad.sum())} values not in {{0, 1}} (e.g. {x[bad].flat[0]!r}); "
                "binarize the data (e.g. `binarize='dynamic'`) or use "
                "likelihood='continuous_bernoulli' for grey values"
            )
        return None


@keras.saving.register_keras_serializable(package="keras_vae")
class ContinuousBernoulli(Likelihood):
    """Continuous Bernoulli pixels parameterised by logits (grey values in [0, 1])."""

    support = "[0, 1]"

    def distribution(self, params):
        return self._independent(tfd.ContinuousBernoulli(logits=params))

    def support_violation(self, x):
        bad = (x < 0) | (x > 1)
        if bad.any():
            return f"{int(bad.sum())} values outside [0, 1] (e.g. {x[bad].flat[0]!r})"
        return None


@keras.saving.register_keras_serializable(package="keras_vae")
class Gaussian(Likelihood):
    """Independent Normal pixels with mean from the decoder.

    Args:
        event_shape: shape of one data point.
        scale: the fixed standard deviation (a positive float), or `"learned"`
            for one learned standard deviation shared by all elements, or
            `"learned_per_element"` for one per element of the event.
    """

    SCALES = ("learned", "learned_per_element")

    def __init__(self, event_shape, scale=0.1, **kwargs):
        super().__init__(event_shape, **kwargs)
        if isinstance(scale, str):
            if scale not in self.SCALES:
                raise ValueError(
                    f"`scale` must be a positive float or one of {self.SCALES}. "
                    f"Received: scale={scale!r}"
                )
        elif not (np.isscalar(scale) and np.isfinite(scale) and scale > 0):
            raise ValueError(
                f"`scale` must be a positive float or one of {self.SCALES}. "
                f"Received: scale={scale!r}"
            )
        self.scale = scale if isinstance(scale, str) else float(scale)

    def build(self, input_shape=None):
        if isinstance(self.scale, str):
            shape = () if self.scale == "learned" else self.event_shape
            # softplus(0.5413) == 1.0: start at unit scale.
            self.raw_scale = self.add_weight(
                name="raw_scale", shape=shape, initializer=keras.initializers.Constant(0.5413)
            )
        self.built = True

    def stddev(self):
        if isinstance(self.scale, str):
            return tf.nn.softplus(self.raw_scale) + _MIN_SCALE
        return tf.constant(self.scale, tf.float32)

    def distribution(self, params):
        return self._independent(tfd.Normal(loc=params, scale=self.stddev()))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


_BY_NAME = {
    "bernoulli": lambda shape, scale: Bernoulli(shape),
    "continuous_bernoulli": lambda shape, scale: ContinuousBernoulli(shape),
    "gaussian": lambda shape, scale: Gaussian(shape, scale=scale),
    "gaussian_learned_scale": lambda shape, scale: Gaussian(shape, scale="learned"),
    "gaussian_learned_pixel_scale": lambda shape, scale: Gaussian(
        shape, scale="learned_per_element"
    ),
}

#: Valid likelihood names.
NAMES = tuple(_BY_NAME)


def get(name, event_shape, scale=0.1):
    """Returns the likelihood layer called `name` for data of `event_shape`.

    Args:
        name: one of `NAMES`.
        event_shape: shape of one data point.
        scale: the fixed standard deviation of the `gaussian` likelihood;
            ignored by the others.

    Raises:
        ValueError: for an unknown name.
    """
    if not isinstance(name, str) or name not in _BY_NAME:
        raise ValueError(f"`likelihood` must be one of {NAMES}. Received: likelihood={name!r}")
    layer = _BY_NAME[name](event_shape, scale)
    layer.build(event_shape)
    return layer
